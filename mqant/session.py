"""The Session a handler receives: a copy of the connection's state, whose operations change
the live connection that owns it (mqant's gate.Session)."""

import json
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.utils.module_loading import import_string

from mqant import conf, owners
from mqant.ops import (
    Bind,
    Close,
    Get,
    Logout,
    Push,
    Remove,
    Send,
    SessionOp,
    Set,
    SetBatch,
    Unbind,
)
from mqant.storage import presence
from mqant.types import SessionState


def new_session_id() -> str:
    """A fresh session id: 16 hex digits."""
    return secrets.token_hex(8)


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
    (it is gone). ``send`` returns once the connection has taken the message; ``send_nr``
    returns at once.
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
        "user_properties",
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
        user_properties: Sequence[Sequence[str]] = (),
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
        # A call's MQTT 5 user properties, in the client's order: (name, value) pairs.
        self.user_properties: tuple[tuple[str, str], ...] = tuple(
            (str(name), str(value)) for name, value in user_properties
        )

    def __repr__(self) -> str:
        return f"<Session {self.session_id} user={self.user_id!r} {self.network} {self.ip}>"

    @classmethod
    def from_state(cls, state: SessionState) -> "Session":
        return cls(**state)

    @classmethod
    def for_connection(
        cls, *, ip: str, network: str, server_id: str, channel_of: Callable[[str], str]
    ) -> "Session":
        """A new guest session of a client connection; ``channel_of`` gives the channel that
        reaches the connection by the new session id."""
        session_id = new_session_id()
        return cls(
            ip=ip,
            network=network,
            session_id=session_id,
            server_id=server_id,
            channel=channel_of(session_id),
        )

    @classmethod
    def for_http(cls, *, user_id: str, ip: str, topic: str) -> "Session":
        """The session of an HTTP caller: bound to ``user_id``, with no connection (channel
        ``""``), so session operations fail at once and pushes to it go nowhere."""
        return cls(
            ip=ip,
            network="http",
            session_id=new_session_id(),
            server_id="http",
            channel="",
            user_id=user_id,
            topic=topic,
            trace_id=secrets.token_hex(16),
        )

    def for_call(self, topic: str) -> "Session":
        """The copy of this session a handler called on ``topic`` receives, with a trace id
        and a span id of its own."""
        ids = secrets.token_hex(24)  # trace and span: one read of the system's randomness
        return Session(
            ip=self.ip,
            network=self.network,
            session_id=self.session_id,
            server_id=self.server_id,
            channel=self.channel,
            user_id=self.user_id,
            settings=self.settings,
            topic=topic,
            trace_id=ids[:32],
            span_id=ids[32:],
        )

    def state(self) -> SessionState:
        """The session as plain data, for the channel layer."""
        state: SessionState = {
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
        if self.user_properties:
            state["user_properties"] = [list(pair) for pair in self.user_properties]
        return state

    def is_guest(self) -> bool:
        """Whether the session counts as a guest: by ``MQANT["GUEST_RULE"]`` when set, else
        until it is bound to a user (mqant's rule)."""
        rule = _guest_rule()
        return rule(self) if rule is not None else not self.user_id

    def clone(self) -> "Session":
        """An independent copy of this copy."""
        return Session.from_state(self.state())

    def get(self, key: str, default: str | None = None) -> str | None:
        """A setting from this copy."""
        return self.settings.get(key, default)

    def load(self, key: str) -> tuple[str, bool]:
        """A setting from this copy and whether it was there (mqant's ``Load``)."""
        value = self.settings.get(key)
        return ("", False) if value is None else (value, True)

    async def bind(self, user_id: str) -> None:
        """Bind the live session to ``user_id``. Its stored settings come back (live keys
        win); raises RemoteError when the single-session policy refuses the login.

        A session bound to another user ends first, as on a disconnect (its groups are left,
        ``on_session_closed`` is called), and this copy gets the new session id."""
        await self._apply(Bind(str(user_id)))

    async def unbind(self) -> None:
        """Make the live session a guest again, under a new session id with no settings (the
        bound one ends as on a disconnect); the user's stored session is kept."""
        await self._apply(Unbind())

    async def logout(self) -> None:
        """Forget the user's stored session, then make the live session a guest."""
        await self._apply(Logout())

    async def set(self, key: str, value: str) -> None:
        """Set one setting on the live session (keys and values are strings, as in mqant)."""
        await self._apply(Set(str(key), str(value)))

    async def set_batch(self, settings: dict[str, str]) -> None:
        """Set several settings on the live session at once."""
        batch = {str(k): str(v) for k, v in settings.items()}
        await self._apply(SetBatch(batch))

    async def set_push(self, key: str, value: str) -> None:
        """Set one setting on this copy, then push the copy (mqant's ``SetPush``)."""
        self.settings[str(key)] = str(value)
        await self.push()

    async def remove(self, key: str) -> None:
        """Remove one setting from the live session."""
        await self._apply(Remove(str(key)))

    async def push(self) -> None:
        """Replace the live session's settings with this copy's."""
        await self._apply(Push(dict(self.settings)))

    async def update(self) -> None:
        """Refresh this copy from the live session."""
        await self._apply(Get())

    async def close(self) -> None:
        """Close the client's connection."""
        await self._apply(Close())

    async def send(self, topic: str, body: bytes | str | dict[str, Any] | list[Any]) -> None:
        """Send a PUBLISH on ``topic`` to this session's client and return once its
        connection has taken it; raises DeadlineExceeded when the connection is gone.
        Dicts and lists go as JSON."""
        await owners.session_op(self.channel, Send(topic, encode_body(body)))

    async def send_nr(self, topic: str, body: bytes | str | dict[str, Any] | list[Any]) -> None:
        """Send without waiting: a connection that is gone drops it."""
        await owners.deliver(self.channel, topic, encode_body(body))

    async def send_batch(
        self, session_ids: Iterable[str], topic: str, body: bytes | str | dict[str, Any]
    ) -> int:
        """Send to the live sessions among ``session_ids``, on any gate; returns how many
        were found."""
        registry = presence()
        if registry is None:
            return 0
        payload = encode_body(body)
        channels = await registry.channels_of(session_ids)
        for channel in channels.values():
            await owners.deliver(channel, topic, payload)
        return len(channels)

    async def broadcast(self, topic: str, body: bytes | str | dict[str, Any]) -> None:
        """Send to every client connection, on every gate."""
        await owners.fan_out(owners.EVERYONE, topic, encode_body(body))

    async def is_connect(self, user_id: str) -> bool:
        """Whether ``user_id`` has a live connection on any gate that is alive."""
        registry = presence()
        return registry is not None and bool(await registry.sessions_of_user(str(user_id)))

    async def _apply(self, op: SessionOp) -> None:
        state = await owners.session_op(self.channel, op)
        self.user_id = state["user_id"]
        self.settings = dict(state["settings"])
        # A session that changes user (logout, a login as another) gets a new id.
        self.session_id, self.channel = state["session_id"], state["channel"]


def _guest_rule() -> Callable[[Session], bool] | None:
    path = conf.get("GUEST_RULE")
    if not path:
        return None
    rule: Callable[[Session], bool] = import_string(path)
    return rule
