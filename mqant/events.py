"""Connection events the gate reports to the modules that listen for them."""

from mqant import app as mqant_app
from mqant.module import SESSION_CLOSED, SESSION_OPENED
from mqant.rpc import call_node_nr
from mqant.session import Session


async def session_opened(session: Session) -> None:
    """Tell every node whose module overrides ``on_session_opened`` that ``session`` began."""
    await _tell(SESSION_OPENED, session)


async def session_closed(session: Session) -> None:
    """Tell every node whose module overrides ``on_session_closed`` that ``session`` ended."""
    await _tell(SESSION_CLOSED, session)


async def _tell(event: str, session: Session) -> None:
    app = mqant_app.current() or await mqant_app.ensure_started()
    for node in app.registry.listening(event):
        await call_node_nr(node, event, (session,))
