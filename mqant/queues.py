"""The queued pushes of persistent MQTT sessions, kept while their client is away.

A client that connects with MQTT 3.1.1's clean session 0, or MQTT 5's Session Expiry Interval
above 0, keeps its session when its connection drops: the QoS 1 pushes meant for it are queued
until it connects again with the same client id, possibly to another gate process. While it is
connected, each QoS 1 push is appended before it is sent and acknowledged (removed) when the
client's PUBACK arrives, so that a gate killed in between loses none.

``MQANT["SESSION_QUEUES"]`` names the store, as ``MQANT["REGISTRY"]`` names the registry:
``MemorySessionQueues`` (below) keeps sessions in this process, which is all there is without
Redis; ``mqant.redis.queues.RedisSessionQueues`` keeps them in Redis for every gate process.

A session is owned by one token at a time (the gate channel of the connection that claimed it);
only the owner appends, binds a user, releases or discards, and an owner whose session was
claimed by another (taken over), discarded or expired finds out at its next call. Bounds:
``SESSION_QUEUE_MAX_MESSAGES`` and ``SESSION_QUEUE_MAX_BYTES`` per session (past either, the
oldest pushes are dropped and counted), ``MAX_PERSISTENT_SESSIONS`` sessions in all.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from mqant import conf, metrics

__all__ = [
    "Bounds",
    "Claim",
    "MemorySessionQueues",
    "Queued",
    "SessionBelongsToAnother",
    "SessionQueues",
    "SessionRefused",
    "TooManySessions",
    "check_claim",
    "count_dropped",
    "entry_size",
    "from_settings",
]


@dataclass(frozen=True, slots=True)
class Queued:
    """A push waiting for its client: ``seq`` orders it within its session."""

    seq: int
    topic: str
    payload: bytes
    qos: int


@dataclass(frozen=True, slots=True)
class Claim:
    """What a claim found: whether a (live) session existed under the client id, the owner
    token that held it (``""`` when none), the user it belonged to (``""``: a guest's), and
    how many pushes were dropped for its bounds since the claim before (reset by this one)."""

    present: bool
    previous_owner: str
    user_id: str
    dropped: int


class SessionRefused(Exception):
    """A claim was refused; ``str(err)`` says why."""


class SessionBelongsToAnother(SessionRefused):
    """The client id holds a live session of another user: a client may take over its own
    user's session, or a guest's, never someone else's."""

    @classmethod
    def for_client(cls, client_id: str) -> "SessionBelongsToAnother":
        return cls(f"The session of client id {client_id!r} belongs to another user")


class TooManySessions(SessionRefused):
    """``MAX_PERSISTENT_SESSIONS`` sessions are stored already."""

    @classmethod
    def for_client(cls, client_id: str, limit: int) -> "TooManySessions":
        return cls(
            f"Expected at most {limit} persistent sessions (MAX_PERSISTENT_SESSIONS), got one "
            f"more: client id {client_id!r} refused"
        )


class SessionQueues(Protocol):
    """The store of persistent sessions and their queued pushes.

    Every call is atomic. Seqs increase within a session and are never reused while it lives
    (a clean claim empties its queue but keeps counting), so that a late ``ack`` cannot remove
    a newer push. Stores that depend on a service raise ``mqant.errors.ServiceUnavailable``
    when it is down or does not answer in time; such a call was applied whole or not at all.
    """

    async def claim(self, client_id: str, owner: str, *, user_id: str, clean: bool) -> Claim:
        """Make ``owner`` the session's owner (created when there is none, emptied when
        ``clean``) and cancel its pending expiry. Raises SessionBelongsToAnother when the
        live session belongs to a user other than ``user_id`` (a guest's may be claimed by
        anyone), TooManySessions when a new one would pass MAX_PERSISTENT_SESSIONS."""
        ...

    async def bind_user(self, client_id: str, owner: str, user_id: str) -> bool:
        """The session's user is now ``user_id`` (a login on its connection); False when
        ``owner`` no longer owns it."""
        ...

    async def append(
        self, client_id: str, owner: str, topic: str, payload: bytes, qos: int
    ) -> int | None:
        """Queue a push; its seq, or None when ``owner`` no longer owns the session (the
        caller stops). Past the session's bounds the oldest pushes are dropped and counted; a
        push larger than SESSION_QUEUE_MAX_BYTES alone is dropped itself (its seq is returned,
        it is never pending)."""
        ...

    async def pending(self, client_id: str, after_seq: int, limit: int) -> list[Queued]:
        """At most ``limit`` queued pushes with a seq above ``after_seq``, in seq order."""
        ...

    async def ack(self, client_id: str, seq: int) -> None:
        """The client acknowledged push ``seq``: remove it (nothing when it is gone)."""
        ...

    async def release(self, client_id: str, owner: str, expiry: float) -> None:
        """The owner's connection ended: keep the session ``expiry`` seconds more (0: discard
        it now), if ``owner`` still owns it. The owner may still append meanwhile (pushes for
        a client that is away); an expired session vanishes with its queue."""
        ...

    async def discard(self, client_id: str, owner: str) -> None:
        """Forget the session and its queue now, if ``owner`` still owns it."""
        ...

    async def owner(self, client_id: str) -> str | None:
        """The owner token of the live session, or None when there is none."""
        ...

    async def close(self) -> None:
        """Let go of what the store holds open (connections, timers)."""
        ...


@dataclass(frozen=True, slots=True)
class Bounds:
    """A store's bounds: pushes and bytes (topic and payload) queued per session, and sessions
    stored at once."""

    max_messages: int
    max_bytes: int
    max_sessions: int

    @classmethod
    def from_settings(
        cls,
        max_messages: int | None = None,
        max_bytes: int | None = None,
        max_sessions: int | None = None,
    ) -> "Bounds":
        """The bounds given, the settings' for those that are None. Raises
        ImproperlyConfigured for a bound that is not a positive integer."""
        return cls(
            _bound("SESSION_QUEUE_MAX_MESSAGES", max_messages),
            _bound("SESSION_QUEUE_MAX_BYTES", max_bytes),
            _bound("MAX_PERSISTENT_SESSIONS", max_sessions),
        )


def _bound(name: str, value: int | None) -> int:
    found = conf.get(name) if value is None else value
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        raise ImproperlyConfigured(f"Expected {name} a positive integer, got {found!r}")
    return found


_DROPPED_FOR_MESSAGES = metrics.SESSION_PUSHES_DROPPED.child("messages")
_DROPPED_FOR_BYTES = metrics.SESSION_PUSHES_DROPPED.child("bytes")


def count_dropped(for_messages: int, for_bytes: int) -> None:
    """Count pushes dropped for a session's bound on messages and on bytes."""
    if for_messages:
        _DROPPED_FOR_MESSAGES.add(for_messages)
    if for_bytes:
        _DROPPED_FOR_BYTES.add(for_bytes)


def entry_size(topic: str, payload: bytes) -> int:
    """The bytes a push counts against SESSION_QUEUE_MAX_BYTES: its topic's and payload's."""
    return len(topic.encode()) + len(payload)


def from_settings() -> SessionQueues:
    """A new store, the one ``MQANT["SESSION_QUEUES"]`` names ({"BACKEND": a dotted path,
    "CONFIG": its keyword arguments}); a gate process makes one and closes it when it stops."""
    spec: dict[str, Any] = conf.get("SESSION_QUEUES")
    store: SessionQueues = import_string(spec["BACKEND"])(**spec.get("CONFIG", {}))
    return store


def check_claim(client_id: str, owner: str) -> None:
    """Raise ValueError for an empty client id or owner token (neither can own a session)."""
    if not client_id:
        raise ValueError("Expected a client id, got ''")
    if not owner:
        raise ValueError("Expected an owner token, got ''")


@dataclass(slots=True, eq=False)
class _Session:
    owner: str
    user_id: str
    entries: dict[int, Queued] = field(default_factory=dict)  # in seq order
    bytes: int = 0
    seq: int = 0
    dropped: int = 0
    expires: float | None = None  # the loop's time when it ends, while released
    timer: asyncio.TimerHandle | None = None  # that end, on the loop


class MemorySessionQueues:
    """Sessions in this process's memory, for a deployment of one gate process: they do not
    survive it. A released session ends by a timer on the event loop (checked again when it
    is read, in case the loop runs late). Bounds are the settings', unless given."""

    def __init__(
        self,
        *,
        max_messages: int | None = None,
        max_bytes: int | None = None,
        max_sessions: int | None = None,
    ) -> None:
        self.bounds = Bounds.from_settings(max_messages, max_bytes, max_sessions)
        self._sessions: dict[str, _Session] = {}

    async def claim(self, client_id: str, owner: str, *, user_id: str, clean: bool) -> Claim:
        check_claim(client_id, owner)
        session = self._live(client_id)
        if session is None:
            if len(self._sessions) >= self.bounds.max_sessions:
                raise TooManySessions.for_client(client_id, self.bounds.max_sessions)
            self._sessions[client_id] = _Session(owner, user_id)
            return Claim(present=False, previous_owner="", user_id="", dropped=0)
        if session.user_id and session.user_id != user_id:
            raise SessionBelongsToAnother.for_client(client_id)
        found = Claim(
            present=True,
            previous_owner=session.owner,
            user_id=session.user_id,
            dropped=session.dropped,
        )
        self._keep(session)
        session.owner, session.user_id, session.dropped = owner, user_id, 0
        if clean:
            session.entries, session.bytes = {}, 0
        return found

    async def bind_user(self, client_id: str, owner: str, user_id: str) -> bool:
        session = self._owned(client_id, owner)
        if session is not None:
            session.user_id = user_id
        return session is not None

    async def append(
        self, client_id: str, owner: str, topic: str, payload: bytes, qos: int
    ) -> int | None:
        session = self._owned(client_id, owner)
        if session is None:
            return None
        session.seq += 1
        size = entry_size(topic, payload)
        if size > self.bounds.max_bytes:
            session.dropped += 1
            count_dropped(0, 1)
            return session.seq
        session.entries[session.seq] = Queued(session.seq, topic, payload, qos)
        session.bytes += size
        for_messages = for_bytes = 0
        while len(session.entries) > self.bounds.max_messages:
            self._drop_oldest(session)
            for_messages += 1
        while session.bytes > self.bounds.max_bytes:
            self._drop_oldest(session)
            for_bytes += 1
        session.dropped += for_messages + for_bytes
        count_dropped(for_messages, for_bytes)
        return session.seq

    async def pending(self, client_id: str, after_seq: int, limit: int) -> list[Queued]:
        session = self._live(client_id)
        found: list[Queued] = []
        if session is None or limit < 1:
            return found
        for seq, entry in session.entries.items():  # at most SESSION_QUEUE_MAX_MESSAGES
            if seq > after_seq:
                found.append(entry)
                if len(found) == limit:
                    break
        return found

    async def ack(self, client_id: str, seq: int) -> None:
        session = self._live(client_id)
        entry = None if session is None else session.entries.pop(seq, None)
        if session is not None and entry is not None:
            session.bytes -= entry_size(entry.topic, entry.payload)

    async def release(self, client_id: str, owner: str, expiry: float) -> None:
        session = self._owned(client_id, owner)
        if session is None:
            return
        if expiry <= 0:
            self._forget(client_id)
            return
        self._keep(session)
        loop = asyncio.get_running_loop()
        session.expires = loop.time() + expiry
        session.timer = loop.call_later(expiry, self._expire, client_id, session)

    async def discard(self, client_id: str, owner: str) -> None:
        if self._owned(client_id, owner) is not None:
            self._forget(client_id)

    async def owner(self, client_id: str) -> str | None:
        session = self._live(client_id)
        return None if session is None else session.owner

    async def close(self) -> None:
        for session in self._sessions.values():
            self._keep(session)

    def _live(self, client_id: str) -> _Session | None:
        session = self._sessions.get(client_id)
        expires = None if session is None else session.expires
        if expires is not None and expires <= asyncio.get_running_loop().time():
            self._forget(client_id)  # its timer is late
            return None
        return session

    def _owned(self, client_id: str, owner: str) -> _Session | None:
        session = self._live(client_id)
        return session if session is not None and session.owner == owner else None

    def _keep(self, session: _Session) -> None:
        """Cancel the session's pending end."""
        if session.timer is not None:
            session.timer.cancel()
        session.expires = session.timer = None

    def _forget(self, client_id: str) -> None:
        session = self._sessions.pop(client_id, None)
        if session is not None:
            self._keep(session)

    def _expire(self, client_id: str, session: _Session) -> None:
        if self._sessions.get(client_id) is session:  # not claimed again since
            self._forget(client_id)

    @staticmethod
    def _drop_oldest(session: _Session) -> None:
        entry = session.entries.pop(next(iter(session.entries)))
        session.bytes -= entry_size(entry.topic, entry.payload)
