"""The gates' census: the live sessions of every live gate process, with the groups each is in.

A module keeps what it knows of sessions (who is in which room, who is online) in its
process's memory, and loses it when that process dies; the gates still hold the connections,
their sessions and their groups. Each gate process is a node of type ``Gate`` in the registry
(its node id is the ``server_id`` of its sessions) and answers the RPC ``live_sessions`` on
its channel, a page at a time, so a module that starts again can ask them who is there
(``Module.on_node_started``)::

    census = await gates.live_sessions()
    for live in census.in_group("chat.room.lobby"):
        ...  # live.session, live.groups

Only what was named through ``mqant.groups.add`` is reported: the groups' own names.

The census also tells the sessions that ended recently while in named groups, with the module
types that heard of their end (``Census.unheard_by``): a module whose nodes were all down
when a member left learns of it when it starts again, and can tell the others
(``closed_sessions``, kept CLOSES_KEPT at most and for CLOSES_KEPT_SECONDS).
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mqant import config, rpc
from mqant.errors import FunctionNotFound, RemoteError, RPCError
from mqant.nodes import Node
from mqant.session import Session
from mqant.types import SessionState

logger = logging.getLogger(__name__)

GATE = config.GATE  # the module type of the gate nodes
LIVE_SESSIONS = "live_sessions"  # the gates' census RPC; without "HD_", no client reaches it
PAGE_SIZE = 1000  # sessions per page: a page of a gate with 20,000 connections stays small
MAX_PAGES = 1000  # pages asked of one gate at most (a million sessions)
PAGE_TIMEOUT = 3.0  # seconds a gate has to answer one page
CLOSED_SESSIONS = "closed_sessions"  # the recent ends of sessions in named groups
CLOSES_KEPT = 10_000  # ends a gate remembers at most
CLOSES_KEPT_SECONDS = 600.0  # and for how long


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A session of a live connection, and the names of the groups its connection is in."""

    session: Session
    groups: frozenset[str]


@dataclass(frozen=True, slots=True)
class ClosedSession:
    """A session that ended while its connection was in named groups: those groups, the
    module types whose nodes heard of the end (``on_session_closed``), and when (epoch
    seconds)."""

    session: Session
    groups: frozenset[str]
    told: frozenset[str]
    closed_at: float


@dataclass(frozen=True, slots=True)
class Census:
    """The live sessions of the gates that answered (``gates``, their node ids); ``missing``
    names the live gates that did not, whose sessions are unknown, not gone; ``closed`` the
    sessions that ended recently on the gates that answered."""

    sessions: list[LiveSession]
    gates: frozenset[str]
    missing: frozenset[str]
    closed: list[ClosedSession] = field(default_factory=list)

    def unheard_by(self, module_type: str) -> list[ClosedSession]:
        """The recent ends no node of ``module_type`` heard of (none was running)."""
        return [closed for closed in self.closed if module_type not in closed.told]

    def answered_for(self, session: Session) -> bool:
        """Whether the gate that owns ``session`` answered: if so and the session is not in
        the census, its connection is gone (or is in none of the groups asked about)."""
        return session.server_id in self.gates

    def in_group(self, name: str) -> list[LiveSession]:
        return [live for live in self.sessions if name in live.groups]


async def live_sessions(*, page_size: int = PAGE_SIZE, timeout: float = PAGE_TIMEOUT) -> Census:
    """Ask every live gate for its live sessions, the gates at once, each one page after the
    other (``page_size`` sessions, ``timeout`` seconds each). A gate that does not answer, or
    fails, is left out of ``sessions`` and named in ``missing`` (one WARNING names them all)."""
    gates = await rpc.nodes(GATE)
    answers = await asyncio.gather(
        *(_gate_census(node, page_size, timeout) for node in gates), return_exceptions=True
    )
    sessions: list[LiveSession] = []
    closed: list[ClosedSession] = []
    answered, missing = set(), set()
    silent = []
    for node, answer in zip(gates, answers, strict=True):
        if isinstance(answer, RPCError):
            silent.append(f"{node.node_id} ({answer})")
            missing.add(node.node_id)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            sessions.extend(answer[0])
            closed.extend(answer[1])
            answered.add(node.node_id)
    if silent:  # one line, however many gates
        logger.warning("gates that did not tell their live sessions: %s", ", ".join(silent))
    return Census(sessions, frozenset(answered), frozenset(missing), closed)


# Seconds after a node's start when every gate's snapshot of the registry has it (read every
# second): a session that closed before that was told to the node's predecessor, or nobody.
SETTLED_AFTER = 3.0


async def at_start_and_settled(
    agree: Callable[[], Awaitable[tuple[int, int]]],
    what: str,
    node_id: str,
    settled_after: float = SETTLED_AFTER,
) -> None:
    """For ``Module.on_node_started``: make the node's state agree with the census now
    (``agree()`` returns how many it added and dropped), and once more ``settled_after``
    seconds later, when every gate tells the node of each end. A pass that fails is logged
    (Redis down, say); the next tries again."""
    for delay in (0.0, settled_after):
        await asyncio.sleep(delay)
        try:
            added, dropped = await agree()
        except Exception as err:
            logger.warning("%s: %s from the gates failed: %r", node_id, what, err)
        else:
            logger.info(
                "%s: %s from the gates: %d added, %d dropped", node_id, what, added, dropped
            )


async def _gate_census(
    node: Node, page_size: int, timeout: float
) -> tuple[list[LiveSession], list[ClosedSession]]:
    return (
        await _gate_sessions(node, page_size, timeout),
        await _gate_closes(node, page_size, timeout),
    )


async def _gate_closes(node: Node, page_size: int, timeout: float) -> list[ClosedSession]:
    closed: list[ClosedSession] = []
    after = 0
    for _ in range(MAX_PAGES):
        try:
            page = await rpc.call_node(node, CLOSED_SESSIONS, (after, page_size), timeout=timeout)
        except FunctionNotFound:  # a gate of an older version: no ends to tell
            return closed
        closed.extend(
            ClosedSession(Session.from_state(state), frozenset(names), frozenset(told), at)
            for _, at, state, names, told in page["closed"]
        )
        after = page["next"]
        if not after:
            return closed
    return closed


async def _gate_sessions(node: Node, page_size: int, timeout: float) -> list[LiveSession]:
    sessions: list[LiveSession] = []
    after = ""
    for _ in range(MAX_PAGES):
        page = await rpc.call_node(node, LIVE_SESSIONS, (after, page_size), timeout=timeout)
        sessions.extend(
            LiveSession(Session.from_state(state), frozenset(names))
            for state, names in page["sessions"]
        )
        after = page["next"]
        if not after:
            return sessions
    logger.warning(
        "%s has over %d pages of live sessions: the rest is left out", node.node_id, MAX_PAGES
    )
    return sessions


# The gate's side


class Member(Protocol):
    """What the gate's census reads of a connection."""

    session: Session

    def group_names(self) -> Iterable[str]:
        """The names of the named groups the connection is in."""
        ...


def census_page(connections: Mapping[str, Member], args: tuple[Any, ...]) -> dict[str, Any]:
    """The answer to ``live_sessions(after, limit)``: the sessions whose id follows ``after``
    (ids in order), at most ``limit`` (and PAGE_SIZE) of them, as ``{"sessions": [[state,
    [group names]], ...], "next": the last id, or "" when there is no more}``.

    Raises RemoteError for arguments of another shape."""
    if len(args) != 2 or not isinstance(args[0], str) or type(args[1]) is not int:
        raise RemoteError("live_sessions takes (after: str, limit: int)")
    after, limit = args[0], max(1, min(args[1], PAGE_SIZE))
    keys = sorted(key for key in connections if key > after)
    page = keys[:limit]
    sessions: list[tuple[SessionState, list[str]]] = []
    for key in page:
        connection = connections[key]
        sessions.append((connection.session.state(), sorted(connection.group_names())))
    return {"sessions": sessions, "next": page[-1] if len(keys) > limit else ""}


class ClosedLog:
    """A gate's recent ends of sessions that were in named groups (the census's ``closed``),
    at most ``limit`` of them and for ``keep_for`` seconds."""

    def __init__(
        self,
        limit: int = CLOSES_KEPT,
        keep_for: float = CLOSES_KEPT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit, self.keep_for, self.clock = limit, keep_for, clock
        # (sequence number, when, session state, group names, module types told)
        self._entries: deque[tuple[int, float, SessionState, list[str], list[str]]] = deque()
        self._last = 0

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, session: Session, groups: Iterable[str], told: Iterable[str]) -> None:
        """``session`` ended in ``groups``; the modules ``told`` heard of it."""
        names = sorted(groups)
        if not names:
            return
        self._expire()
        self._last += 1
        self._entries.append((self._last, self.clock(), session.state(), names, sorted(told)))
        while len(self._entries) > self.limit:
            self._entries.popleft()

    def page(self, args: tuple[Any, ...]) -> dict[str, Any]:
        """The answer to ``closed_sessions(after, limit)``: the ends recorded after sequence
        number ``after``, at most ``limit`` (and PAGE_SIZE), oldest first, as ``{"closed":
        [[number, when, state, [groups], [told]], ...], "next": the last number, or 0 when
        there is no more}``. Raises RemoteError for arguments of another shape."""
        if len(args) != 2 or type(args[0]) is not int or type(args[1]) is not int:
            raise RemoteError("closed_sessions takes (after: int, limit: int)")
        after, limit = args[0], max(1, min(args[1], PAGE_SIZE))
        self._expire()
        newer = [entry for entry in self._entries if entry[0] > after]
        page = newer[:limit]
        return {"closed": page, "next": page[-1][0] if len(newer) > limit else 0}

    def _expire(self) -> None:
        oldest = self.clock() - self.keep_for
        while self._entries and self._entries[0][1] < oldest:
            self._entries.popleft()
