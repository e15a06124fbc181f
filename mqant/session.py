"""The Session a handler receives: a copy of the connection's state, whose operations change
the live connection that owns it (mqant's gate.Session)."""

import json
from typing import Any

from mqant import owners
from mqant.types import SessionOp, SessionState


def encode_body(body: bytes | str | dict[str, Any] | list[Any]) -> bytes:
    """Bytes as they are, text as UTF-8, anything else as compact JSON."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class Session:
    """One client connection's session, as seen by a module.

    Reading fields and ``get`` use the local copy. ``bind``, ``unbind``, ``set``, ``push`` and
    ``close`` are requests to the owning connection: they return once it has applied them,
    refresh this copy, and raise ``mqant.DeadlineExceeded`` if the connection does not answer
    (it is gone). ``send`` queues a message to the client and returns at once.
    """

    __slots__ = (
        "channel",
        "ip",
        "network",
        "server_id",
        "session_id",
        "settings",
        "span_id",
        "topic",
        "trace_id",
        "user_id",
    )

    def __init__(
        self,
        *,
        ip: str,
        network: str,
        session_id: str,
        server_id: str,
        channel: str,
        user_id: str = "",
        settings: dict[str, str] | None = None,
        topic: str = "",
        trace_id: str = "",
        span_id: str = "",
    ) -> None:
        self.ip = ip
        self.network = network
        self.session_id = session_id
        self.server_id = server_id
        self.channel = channel
        self.user_id = user_id
        self.settings: dict[str, str] = dict(settings) if settings else {}
        self.topic = topic
        self.trace_id = trace_id
        self.span_id = span_id

    def __repr__(self) -> str:
        return f"<Session {self.session_id} user={self.user_id!r} {self.network} {self.ip}>"

    @classmethod
    def from_state(cls, state: SessionState) -> "Session":
        return cls(**state)

    def state(self) -> SessionState:
        """The session as plain data, for the channel layer."""
        return {
            "ip": self.ip,
            "network": self.network,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "server_id": self.server_id,
            "settings": dict(self.settings),
            "channel": self.channel,
            "topic": self.topic,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
        }

    def is_guest(self) -> bool:
        """True until the session is bound to a user."""
        return not self.user_id

    def get(self, key: str, default: str | None = None) -> str | None:
        """A setting from this copy."""
        return self.settings.get(key, default)

    async def bind(self, user_id: str) -> None:
        """Bind the live session to ``user_id``."""
        await self._apply({"op": "bind", "user_id": str(user_id)})

    async def unbind(self) -> None:
        """Make the live session a guest again."""
        await self._apply({"op": "unbind"})

    async def set(self, key: str, value: str) -> None:
        """Set one setting on the live session (keys and values are strings, as in mqant)."""
        await self._apply({"op": "set", "key": str(key), "value": str(value)})

    async def push(self) -> None:
        """Replace the live session's settings with this copy's."""
        await self._apply({"op": "push", "settings": dict(self.settings)})

    async def close(self) -> None:
        """Close the client's connection."""
        await self._apply({"op": "close"})

    async def send(self, topic: str, body: bytes | str | dict[str, Any] | list[Any]) -> None:
        """Send a PUBLISH on ``topic`` to this session's client; dicts and lists go as JSON."""
        await owners.deliver(self.channel, topic, encode_body(body))

    async def _apply(self, op: SessionOp) -> None:
        state = await owners.session_op(self.channel, op)
        self.user_id = state["user_id"]
        self.settings = dict(state["settings"])
