"""What a connection tells the outside world about its session, off its read loop: the
StorageHandler (persisted settings), the Presence (who is connected where) and the modules'
connection events. One task per connection runs these in order."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gate.inorder import InOrder
from mqant import RemoteError, Session, conf, owners
from mqant import events as mqant_events
from mqant.storage import Presence, StorageHandler, presence, storage_handler

logger = logging.getLogger(__name__)

ALREADY_CONNECTED = "The user is already connected"


class SessionKeeper:
    """The persistence and presence side of one connection."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.storage: StorageHandler | None = storage_handler()
        self.presence: Presence | None = presence()
        self.heartbeat_every = float(conf.get("STORAGE_HEARTBEAT"))
        self._work = InOrder(lambda: f"session {self.session}: storage or presence", _workers)
        self._last_beat = asyncio.get_running_loop().time()

    # Called by the connection

    def opened(self) -> None:
        """The connection was accepted: record it, then tell the modules."""
        snapshot = self.session.clone()
        if self.presence is not None:
            self._later(lambda: self.presence.connected(snapshot))  # type: ignore[union-attr]
        self._later(lambda: mqant_events.session_opened(snapshot))

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
            await owners.session_op_nr(other.channel, {"op": "close"})

    async def stored_settings(self, user_id: str) -> dict[str, str]:
        """The settings stored for ``user_id`` (empty without a StorageHandler)."""
        if self.storage is None:
            return {}
        try:
            return await self.storage.query(user_id)
        except Exception:
            logger.exception("StorageHandler.query(%r) failed", user_id)
            return {}

    def changed(self) -> "asyncio.Future[None] | None":
        """The session's user or settings changed: store a bound one, update presence.
        Returns the future of the presence update, which a bind waits for (a second login
        that follows must see this one)."""
        snapshot = self.session.clone()
        if self.storage is not None and snapshot.user_id:
            self._later(lambda: self.storage.storage(snapshot))  # type: ignore[union-attr]
        if self.presence is not None:
            return self._later(lambda: self.presence.connected(snapshot))  # type: ignore[union-attr]
        return None

    async def forget(self) -> None:
        """Explicit logout: delete the user's stored session, after the writes queued before
        it, and return once it is gone (a login that follows must not find it)."""
        snapshot = self.session.clone()
        if self.storage is not None and snapshot.user_id:
            await self._later(lambda: self.storage.delete(snapshot))  # type: ignore[union-attr]

    def active(self, now: float) -> None:
        """Client packets arrived; at most once per STORAGE_HEARTBEAT, extend the stored
        session and the presence record."""
        if now - self._last_beat < self.heartbeat_every:
            return
        self._last_beat = now
        snapshot = self.session.clone()
        if self.storage is not None and snapshot.user_id:
            self._later(lambda: self.storage.heartbeat(snapshot))  # type: ignore[union-attr]
        if self.presence is not None:
            self._later(lambda: self.presence.seen([snapshot.session_id]))  # type: ignore[union-attr]

    def closed(self) -> None:
        """The connection ended: remove it, and tell the modules once (unless a reaper that
        took the gate for dead has done both already)."""
        snapshot = self.session.clone()

        async def end() -> None:
            if self.presence is None or await self.presence.disconnected(snapshot.session_id):
                await mqant_events.session_closed(snapshot)

        self._later(end)

    # Internals

    def _later(self, job: Callable[[], Awaitable[Any]]) -> "asyncio.Future[None]":
        return self._work.add(job)


# The workers outlive their connections (the last job reports the close): keep them referenced.
_workers: set["asyncio.Task[None]"] = set()


async def drain(timeout: float = 5.0) -> None:
    """Let the queued storage and presence writes finish (at shutdown), for ``timeout`` s."""
    if _workers:
        await asyncio.wait(set(_workers), timeout=timeout)
