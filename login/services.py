"""Who is logged in through a Login node."""

import logging

from mqant import RPCError, call, nodes
from mqant.registry import Node

logger = logging.getLogger(__name__)

IDS_PER_CALL = 1000  # session ids per counted_sessions call of a recount
COUNTED_TIMEOUT = 2.0  # seconds a Login node has to say which sessions it counts


class OnlineUsers:
    """The users logged in through one Login node, by the sessions they logged in with."""

    def __init__(self) -> None:
        self._users: dict[str, str] = {}  # session id → user id
        self._gates: dict[str, str] = {}  # session id → the gate that owns it (server_id)

    def logged_in(self, *, session_id: str, user_id: str, server_id: str = "") -> None:
        self._users[session_id] = user_id
        self._gates[session_id] = server_id

    def session_closed(self, *, session_id: str) -> None:
        self._users.pop(session_id, None)
        self._gates.pop(session_id, None)

    def count(self) -> int:
        """Distinct users with at least one open session."""
        return len(set(self._users.values()))

    def sessions(self) -> dict[str, str]:
        """Session id → the gate that owns it, of every session counted here."""
        return dict(self._gates)

    def counted(self, session_ids: list[str]) -> list[str]:
        """Those of ``session_ids`` counted here."""
        return [session_id for session_id in session_ids if session_id in self._users]


def peers(found: list[Node], here: str) -> list[Node]:
    """The nodes of ``found`` other than ``here`` and other than those of ``here``'s own
    process: one with its process id is a node of the process it replaced, which died."""
    process = next((node.process_id for node in found if node.node_id == here), "")
    return [
        node
        for node in found
        if node.node_id != here and not (process and node.process_id == process)
    ]


async def counted_elsewhere(session_ids: list[str], *, here: str) -> dict[str, str]:
    """Session id → the Login node other than ``here`` that counts it (the smallest node id
    when several do); a node that does not answer in time is left out."""
    counted: dict[str, str] = {}
    others = peers(await nodes("Login"), here)
    for node in others:
        for start in range(0, len(session_ids), IDS_PER_CALL):
            ids = session_ids[start : start + IDS_PER_CALL]
            try:
                answer = await call(node.node_id, "counted_sessions", ids, timeout=COUNTED_TIMEOUT)
            except RPCError as err:
                logger.warning("%s did not say which sessions it counts: %s", node.node_id, err)
                break
            for session_id in answer:
                counted[session_id] = min(counted.get(session_id, node.node_id), node.node_id)
    return counted
