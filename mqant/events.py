"""Connection events the gate reports to the modules that listen for them.

Each node is told with a call it answers once its hook has run, not a message sent into the
void: a close sent while Redis hangs, or to a node that dies, is not taken for delivered, and
the gate's keeper tries again (gate.keeper) until every node still alive has answered. The
hooks must therefore bear being told twice (a reply lost after the hook ran); Chat's and
Login's do.
"""

import asyncio
import logging

from mqant import current
from mqant.errors import RPCError
from mqant.module import SESSION_CLOSED, SESSION_OPENED
from mqant.rpc import call_node, default_timeout
from mqant.session import Session

logger = logging.getLogger(__name__)


async def session_opened(session: Session, told: set[str] | None = None) -> None:
    """Tell every node whose module overrides ``on_session_opened`` that ``session`` began.
    ``told``: see ``session_closed``."""
    await _tell(SESSION_OPENED, session, told)


async def session_closed(session: Session, told: set[str] | None = None) -> None:
    """Tell every node whose module overrides ``on_session_closed`` that ``session`` ended.

    ``told``, when given, holds the ids of the nodes already told and gains each node told:
    a caller that tries again after a failure (Redis down, a node dying) tells each node
    once. A node that left the registry meanwhile is no longer waited for. Raises the first
    failure when a node did not answer.
    """
    await _tell(SESSION_CLOSED, session, told)


def module_types(node_ids: set[str]) -> frozenset[str]:
    """The module types of nodes ``Type@id``."""
    return frozenset(node_id.partition("@")[0] for node_id in node_ids)


async def _tell(event: str, session: Session, told: set[str] | None) -> None:
    app = current.get().app
    done = told if told is not None else set()
    nodes = [node for node in app.registry.listening(event) if node.node_id not in done]
    if not nodes:
        return
    timeout = default_timeout()
    answers = await asyncio.gather(
        *(call_node(node, event, (session,), timeout=timeout) for node in nodes),
        return_exceptions=True,
    )
    failure: BaseException | None = None
    for node, answer in zip(nodes, answers, strict=True):
        if isinstance(answer, BaseException):
            if isinstance(answer, RPCError) and failure is None:
                logger.debug("%s of %s: %s did not answer: %s", event, session, node, answer)
            failure = failure or answer
        else:
            done.add(node.node_id)
    if failure is not None:
        raise failure
