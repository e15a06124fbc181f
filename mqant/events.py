"""Connection events the gate reports to the modules that listen for them."""

from mqant import app as mqant_app
from mqant.module import SESSION_CLOSED
from mqant.rpc import call_node_nr
from mqant.session import Session


async def session_closed(session: Session) -> None:
    """Tell every node whose module overrides ``on_session_closed`` that ``session`` ended."""
    app = mqant_app.current()
    if app is None:
        return
    for node in app.registry.listening(SESSION_CLOSED):
        await call_node_nr(node, SESSION_CLOSED, (session,))
