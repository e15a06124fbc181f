"""What a connection tells the outside world about its session, off its read loop: the
StorageHandler (persisted settings), the Presence (who is connected where) and the modules'
connection events.

Each connection's jobs run in order, and each until it succeeds: a close that happens while
Redis or the database is down is reported once it is back, not lost (issue 12). A job that
a newer one supersedes (a presence snapshot, a heartbeat) is replaced while it waits, so a
connection holds a bounded number of jobs through a long outage.
"""

import asyncio
import logging
from collections.abc import Hashable

from gate.inorder import Job, UntilDone, workers
from mqant import RemoteError, Session, conf, dependencies, owners
from mqant import events as mqant_events
from mqant.errors import ServiceUnavailable
from mqant.gates import ClosedLog
from mqant.ops import Close
from mqant.storage import Presence, StorageHandler, presence, storage_handler

logger = logging.getLogger(__name__)

ALREADY_CONNECTED = "The user is already connected"

# Seconds a session operation (bind, logout) waits for its write to be tried: behind writes
# that wait for an outage to end, it would hold the connection's events (its pushes) too.
WRITE_WAIT = 2.0


def _at_most(future: "asyncio.Future[None]", seconds: float) -> "asyncio.Future[None]":
    """A future done when ``future`` is, or after ``seconds``."""
    loop = asyncio.get_running_loop()
    bounded: asyncio.Future[None] = loop.create_future()

    def done(*_: object) -> None:
        if not bounded.done():
            bounded.set_result(None)

    future.add_done_callback(done)
    timer = loop.call_later(seconds, done)
    bounded.add_done_callback(lambda _: timer.cancel())
    return bounded


class SessionKeeper:
    """The persistence and presence side of one connection."""

    def __init__(self, session: Session, closes: ClosedLog | None = None) -> None:
        self.session = session
        self.closes = closes  # where the ends in named groups are kept (the gate's census)
        self.storage: StorageHandler | None = storage_handler()
        self.presence: Presence | None = presence()
        self.heartbeat_every = float(conf.get("STORAGE_HEARTBEAT"))
        self._work = UntilDone(lambda: f"session {self.session}: storage or presence")
        self._last_beat = asyncio.get_running_loop().time()

    # Called by the connection

    def opened(self) -> None:
        """The connection was accepted: record it, then tell the modules."""
        snapshot = self.session.clone()
        _open[snapshot.session_id] = self
        self._record(snapshot)
        told: set[str] = set()
        self._later(snapshot, lambda: mqant_events.session_opened(snapshot, told))

    async def before_bind(self, user_id: str) -> None:
        """Apply the single-session policy to ``user_id``'s other live connections."""
        policy = conf.get("SINGLE_SESSION")
        if policy == "keep" or self.presence is None:
            return
        others = [
            s
            for s in await self.presence.sessions_of_user(user_id)
            if s.session_id != self.session.session_id
        ]
        if others and policy == "refuse":
            raise RemoteError(ALREADY_CONNECTED)
        for other in others:
            logger.info("kicking session %s of %s: a newer login", other.session_id, user_id)
            await owners.session_op_nr(other.channel, Close())

    async def stored_settings(self, user_id: str) -> dict[str, str]:
        """The settings stored for ``user_id`` (empty without a StorageHandler)."""
        if self.storage is None:
            return {}
        try:
            return await self.storage.query(user_id)
        except Exception as err:
            _report(err, f"StorageHandler.query({user_id!r})")
            return {}

    def changed(self) -> "asyncio.Future[None] | None":
        """The session's user or settings changed: store a bound one, update presence.
        Returns the future of the presence update's first try (WRITE_WAIT s at most), which
        a bind waits for (a second login that follows must see this one)."""
        snapshot = self.session.clone()
        storage = self.storage
        if storage is not None and snapshot.user_id:
            key = ("storage", snapshot.session_id)
            self._later(snapshot, lambda: storage.storage(snapshot), key)
        recorded = self._record(snapshot)
        return None if recorded is None else _at_most(recorded, WRITE_WAIT)

    async def forget(self) -> None:
        """Explicit logout: delete the user's stored session, after the writes queued before
        it, and return once it was tried (a login that follows must not find it), or after
        WRITE_WAIT s when writes before it wait for an outage to end."""
        snapshot = self.session.clone()
        storage = self.storage
        if storage is not None and snapshot.user_id:
            self._work.seal(("storage", snapshot.session_id))
            self._work.seal(("beat", snapshot.session_id))
            await _at_most(self._later(snapshot, lambda: storage.delete(snapshot)), WRITE_WAIT)

    def active(self, now: float) -> None:
        """Client packets arrived; at most once per STORAGE_HEARTBEAT, extend the stored
        session and the presence record."""
        if now - self._last_beat < self.heartbeat_every:
            return
        self._last_beat = now
        snapshot = self.session.clone()
        sid = snapshot.session_id
        storage, registry = self.storage, self.presence
        if storage is not None and snapshot.user_id:
            self._later(snapshot, lambda: storage.heartbeat(snapshot), ("beat", sid))
        if registry is not None:
            self._later(snapshot, lambda: registry.seen([sid]), ("seen", sid))

    def closed(self, groups: frozenset[str] = frozenset()) -> None:
        """The connection ended: remove it, and tell the modules once (unless a reaper that
        took the gate for dead has done both already). ``groups``: the names of the named
        groups it was in, kept with the module types told for the census (mqant.gates), so
        that a module none of whose nodes ran hears of it when it starts again."""
        snapshot = self.session.clone()
        if _open.get(snapshot.session_id) is self:
            del _open[snapshot.session_id]
        self._work.seal(("presence", snapshot.session_id))  # no record after the removal
        registry = self.presence
        removed: list[bool] = []  # the removal's answer, kept across tries
        told: set[str] = set()

        async def end() -> None:
            if not removed:
                removed.append(registry is None or await registry.disconnected(snapshot.session_id))
            if removed[0]:
                await mqant_events.session_closed(snapshot, told)
                if groups and self.closes is not None:
                    self.closes.record(snapshot, groups, mqant_events.module_types(told))

        self._later(snapshot, end)

    def restore(self) -> None:
        """The Presence lost this live session's record (a reaper took this gate for dead
        during an outage): record it again."""
        self._record(self.session.clone())

    # Internals

    def _record(self, snapshot: Session) -> "asyncio.Future[None] | None":
        registry = self.presence
        if registry is None:
            return None
        key = ("presence", snapshot.session_id)
        return self._later(snapshot, lambda: registry.connected(snapshot), key)

    def _later(
        self, snapshot: Session, job: Job, key: Hashable | None = None
    ) -> "asyncio.Future[None]":
        return self._work.add(job, snapshot.session_id, key)


def _report(err: Exception, what: str) -> None:
    if dependencies.note(err) is None and not isinstance(err, ServiceUnavailable):
        logger.error("%s failed", what, exc_info=err)


# The sessions this process has open (accepted, not yet closed), by id.
_open: dict[str, SessionKeeper] = {}


def open_sessions() -> dict[str, SessionKeeper]:
    """The keepers of this process's open sessions, by session id (a copy)."""
    return dict(_open)


def is_open(session_id: str) -> bool:
    """Whether this process has session ``session_id`` open."""
    return session_id in _open


def tell_closed(session: Session) -> None:
    """Tell the modules that ``session``, whose record this process removed, ended: in the
    background, until it is done."""
    told: set[str] = set()
    ends = UntilDone(lambda: f"the end of session {session}")
    ends.add(lambda: mqant_events.session_closed(session, told), session.session_id)


async def drain(timeout: float = 5.0) -> None:
    """Let the queued storage and presence writes and events finish (at shutdown), for
    ``timeout`` s. What is still queued then is lost with the process; the gate's records
    stay behind it, and another gate's reaper ends them once its heartbeat has expired."""
    if workers:
        await asyncio.wait(set(workers), timeout=timeout)
