"""Where sessions persist and where live connections are known: two interfaces a project
names in settings, as Channels names its layer. ``sessions_store`` implements both on the
Django ORM; the framework never imports it.

- ``MQANT["STORAGE_HANDLER"]``: mqant's StorageHandler. A bound session's settings are
  stored; when the user binds again (after a reconnect, a restart) they come back.
- ``MQANT["PRESENCE"]``: who is connected where, on every gate, so that ``is_connect`` and
  ``send_batch`` reach across gates, and a gate that dies leaves no ghost online.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from django.utils.module_loading import import_string

from mqant import conf

if TYPE_CHECKING:  # a type only: mqant.session imports this module
    from mqant.session import Session


class StorageHandler(Protocol):
    """mqant's StorageHandler. Every method is called by the gate that owns the session,
    outside the connection's read loop, one call at a time per session; a failed write is
    called again until it succeeds (a newer ``storage`` or ``heartbeat`` replaces one that
    waits)."""

    async def storage(self, session: Session) -> None:
        """Persist the bound session's settings (after bind, and after each change)."""
        ...

    async def delete(self, session: Session) -> None:
        """Forget the user's stored session (explicit logout)."""
        ...

    async def query(self, user_id: str) -> dict[str, str]:
        """The stored settings of ``user_id``; empty when there are none (or they expired)."""
        ...

    async def heartbeat(self, session: Session) -> None:
        """The user is active: extend the stored session's lifetime."""
        ...


class Presence(Protocol):
    """The live connections of every gate.

    The gate that owns a session calls the writes one at a time per session, in order, and
    calls a failed one again (with a backoff) until it succeeds: a write must be idempotent.
    A gate beats every ``GATE_HEARTBEAT`` seconds; one silent for ``gate_dead_after()`` is
    dead, and the next live gate to reap removes its connections.
    """

    async def gate_alive(self, gate_id: str) -> None:
        """Record that gate process ``gate_id`` is alive (called every heartbeat)."""
        ...

    async def connected(self, session: Session) -> None:
        """Record a new live connection (or its change of user)."""
        ...

    async def disconnected(self, session_id: str) -> bool:
        """Remove a live connection; True when this call removed it (so that its end is
        reported once, whoever notices it first)."""
        ...

    async def seen(self, session_ids: Iterable[str]) -> None:
        """These connections were active just now."""
        ...

    async def sessions_of_user(self, user_id: str) -> list[Session]:
        """The live sessions bound to ``user_id``, on gates that are alive."""
        ...

    async def channels_of(self, session_ids: Iterable[str]) -> dict[str, str]:
        """The channels of those live sessions (unknown ids are left out)."""
        ...

    async def sessions_of_gate(self, gate_id: str) -> list[Session]:
        """The live sessions recorded for gate ``gate_id`` (its reconciler compares them with
        its connections)."""
        ...

    async def reap_dead_gates(self) -> list[Session]:
        """Remove the connections of gates silent for ``gate_dead_after()`` seconds and return
        them; each is returned by one call only."""
        ...


def gate_dead_after() -> float:
    """Seconds after its last heartbeat when a gate is dead: ``GATE_DEAD_AFTER``, and never
    less than three heartbeats (a beat late under load is not a death)."""
    beat = float(conf.get("GATE_HEARTBEAT"))
    return max(float(conf.get("GATE_DEAD_AFTER")), 3 * beat)


@cache
def _load(path: str, options: tuple[tuple[str, Any], ...]) -> Any:
    return import_string(path)(**dict(options))


def _named(setting: str) -> Any:
    value = conf.get(setting)
    if not value:
        return None
    if isinstance(value, str):
        return _load(value, ())
    return _load(value["BACKEND"], tuple(sorted(value.get("CONFIG", {}).items())))


def storage_handler() -> StorageHandler | None:
    """The configured StorageHandler, or None when persistence is off."""
    handler: StorageHandler | None = _named("STORAGE_HANDLER")
    return handler


def presence() -> Presence | None:
    """The configured Presence, or None when live connections are not recorded."""
    found: Presence | None = _named("PRESENCE")
    return found
