"""One client connection, whatever carries its bytes (WebSocket or TCP).

The transport hands bytes in and takes bytes out; this class runs the MQTT protocol
(gate/mqtt), owns the clock (CONNECT deadline, keepalive), the session, and the calls in
flight, and applies the session changes modules request.
"""

import asyncio
import contextlib
import logging
import secrets
from typing import Any, ClassVar, Protocol

from channels.layers import get_channel_layer

from gate import conf, router
from gate.auth import connect_user
from gate.calls import SHUTTING_DOWN, Calls
from gate.heartbeat import start_heartbeat
from gate.inbox import Inbox, inbox
from gate.inorder import InOrder
from gate.keeper import SessionKeeper
from gate.limits import TokenBucket
from gate.mqtt import (
    Connected,
    ConnectionRefused,
    Event,
    MessageReceived,
    ProtocolError,
    ServerProtocol,
    State,
)
from gate.mqtt.packets import NOT_AUTHORIZED, SERVER_UNAVAILABLE
from mqant import RPCError, Session, groups, owners
from mqant import app as mqant_app
from mqant.types import ReplyMessage, SessionOp, SessionState
from mqant.wire import empty_reply

logger = logging.getLogger(__name__)

# How long a closing connection waits for its queued bytes (a refusing CONNACK, a last
# reply) to be written before it closes anyway.
CLOSE_FLUSH_SECONDS = 1.0


class Transport(Protocol):
    """What a connection needs from whatever carries its bytes."""

    # Whether write() may wait for the client to read (backpressure); the connection then
    # queues its bytes and writes them from a task of its own.
    may_block: bool

    async def write(self, data: bytes) -> None:
        """Queue bytes for the client; returns without waiting for the client to read them."""
        ...

    def pending_bytes(self) -> int:
        """Bytes written but not yet taken by the client (0 when the transport cannot tell)."""
        ...

    async def close(self) -> None:
        """Close after the pending bytes are sent."""
        ...

    def abort(self) -> None:
        """Close at once, dropping the pending bytes."""
        ...


class MQTTConnection:
    """A client connection speaking mqant's MQTT contract (CONTRACT.md)."""

    # The connections of this process, so that a stopping server ends them properly.
    live: ClassVar[set["MQTTConnection"]] = set()
    # Set once the server stops (gate.drain): a CONNECT is refused, "server unavailable".
    stopping: ClassVar[bool] = False

    def __init__(
        self, transport: Transport, *, ip: str, network: str, inbox: Inbox, server_id: str = ""
    ) -> None:
        self.transport = transport
        self.inbox = inbox
        self.protocol = ServerProtocol(
            max_packet_size=int(conf.get("MAX_PACKET_SIZE")),
            max_topics_per_subscribe=int(conf.get("MAX_TOPICS_PER_SUBSCRIBE")),
        )
        self.max_outgoing = int(conf.get("MAX_OUTGOING_BYTES"))
        self._control_budget = TokenBucket(
            float(conf.get("CONTROL_PACKET_RATE")), int(conf.get("CONTROL_PACKET_BURST"))
        )
        self._control_counted = 0
        session_id = secrets.token_hex(8)
        self.session = Session(
            ip=ip,
            network=network,
            session_id=session_id,
            server_id=server_id,
            channel=inbox.address(session_id),
        )
        self.keeper = SessionKeeper(self.session)
        self.closed = False
        self._outbox: bytearray | None = bytearray() if transport.may_block else None
        self._writer: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._last_seen = self._loop.time()
        self._background: set[asyncio.Task[None]] = set()
        self._accepted = False
        self._lost = False
        self._groups: set[str] = set()
        self._group_names: dict[str, str] = {}  # channel-layer group → its name (the census)
        self._events: InOrder | None = None
        self.calls = Calls(self._call, self._refuse_call, self._close_soon)
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(
            float(conf.get("CONNECT_TIMEOUT")), self._check_connect
        )
        MQTTConnection.live.add(self)

    @classmethod
    async def open(
        cls, transport: Transport, *, ip: str, network: str, server_id: str = ""
    ) -> "MQTTConnection":
        """A connection of this process's inbox (started on first use)."""
        box = await inbox().started()
        return cls(transport, ip=ip, network=network, inbox=box, server_id=server_id)

    def __repr__(self) -> str:
        s = self.session
        return f"<MQTTConnection {s.session_id} {s.network} {s.ip}>"

    # Bytes in, from the transport

    async def data_received(self, data: bytes) -> None:
        """Feed bytes from the client; a protocol violation closes the connection."""
        if self.closed:
            return
        self._last_seen = now = self._loop.time()
        if self._accepted:
            self.keeper.active(now)
        try:
            events = self.protocol.receive_data(data)
        except ProtocolError as err:
            logger.info("%r: closing, protocol error: %s", self, err)
            await self.close()
            return
        if self._past_control_rate():
            logger.info("%r: closing, it sent control packets past their rate", self)
            await self.close()
            return
        try:
            await self._handle(events)
        except ProtocolError as err:  # in the packets held behind CONNECT
            logger.info("%r: closing, protocol error: %s", self, err)
            await self.close()
            return
        await self._flush()
        if self.protocol.state is State.CLOSED:
            await self.close()

    async def _handle(self, events: list[Event]) -> None:
        for event in events:  # accept() may append the packets held behind CONNECT
            if isinstance(event, MessageReceived):
                self.calls.start(event.topic, event.payload)
            elif isinstance(event, Connected) and MQTTConnection.stopping:
                logger.info("%r: CONNECT refused: the server is stopping", self)
                self.protocol.refuse(SERVER_UNAVAILABLE)
            elif isinstance(event, Connected):
                events.extend(await self._on_connected(event))
            elif isinstance(event, ConnectionRefused):
                logger.info(
                    "%r: CONNECT refused (code %d): %s", self, event.return_code, event.reason
                )
            # Disconnected: the protocol is CLOSED now, which closes the transport.

    async def connection_lost(self) -> None:
        """The transport is gone: stop everything and tell the modules, once."""
        if self._lost:
            return
        self._lost = self.closed = True
        MQTTConnection.live.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        self._detach()
        if self._events is not None:
            self._events.cancel()
        self.calls.cancel()
        for task in self._background:
            task.cancel()
        if self._writer is not None:
            self._writer.cancel()
        names = frozenset(self.group_names())
        await self._leave_groups(keep=set())
        if self._accepted:
            self.keeper.closed(names)

    async def close(self) -> None:
        """Close the transport once the bytes queued for it are written (for at most a
        second); ``connection_lost`` follows from it."""
        if self.closed:
            return
        self.closed = True
        if self._writer is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(CLOSE_FLUSH_SECONDS):
                    await asyncio.shield(self._writer)
        await self.transport.close()

    def drain(self) -> None:
        """The server is stopping: new calls are refused, those in flight go on."""
        self.calls.draining = True

    async def end(self) -> None:
        """The server is stopping: the calls still running are answered SHUTTING_DOWN and
        cancelled, then the connection closes (after its last bytes)."""
        if self.closed:
            return
        if self.protocol.accepted:
            self.calls.give_up(SHUTTING_DOWN)
        else:
            self.calls.cancel()
        await self._flush()
        await self.close()

    # Session owner: what modules reach through mqant.owners

    async def apply_session_op(self, op: SessionOp) -> SessionState:
        """Apply a module's change to the live session and return the session's state.

        Raises RemoteError when the single-session policy refuses a bind.
        """
        name = op["op"]
        session = self.session
        if name == "logout":
            await self.keeper.forget()
        if name in ("bind", "unbind", "logout") and session.user_id not in ("", op.get("user_id")):
            await self._end_identity()
        if name == "bind":
            await self.keeper.before_bind(op["user_id"])
            stored = await self.keeper.stored_settings(op["user_id"])
            session.user_id = op["user_id"]
            session.settings = {**stored, **session.settings}  # live keys win
        elif name == "set":
            session.settings[op["key"]] = op["value"]
        elif name in ("set_batch", "push"):
            base = session.settings if name == "set_batch" else {}
            session.settings = {**base, **op["settings"]}
        elif name == "remove":
            session.settings.pop(op["key"], None)
        elif name == "send":
            await self.deliver(op["key"], op["payload"])
            return session.state()
        elif name == "close":
            await self.close()
            return session.state()
        elif name in ("group_add", "group_discard"):
            await self._group(name, op["group"], op.get("name", ""))
            return session.state()
        if name != "get":
            recorded = self.keeper.changed()
            if name == "bind" and recorded is not None:
                await recorded
        return session.state()

    async def _end_identity(self) -> None:
        """The session's user leaves this connection (logout, unbind, a login as someone
        else), as on a disconnect: the connection leaves every group but everyone's, the
        modules hear of the session's end, and the connection goes on as a guest under a new
        session id with no settings. Nothing addressed to the old session (a room's
        messages, a private message, a module's stale copy of it) reaches the next user."""
        names = frozenset(self.group_names())
        await self._leave_groups(keep={groups.EVERYONE})
        self.keeper.closed(names)
        self._detach()
        session = self.session
        session.session_id = secrets.token_hex(8)
        session.channel = self.inbox.address(session.session_id)
        session.user_id, session.settings = "", {}
        self._attach()
        self.keeper.opened()

    def _attach(self) -> None:
        """Make the connection reachable by its session's channel (and key in the inbox)."""
        owners.attach(self.session.channel, self)
        self.inbox.register(self.session.session_id, self)

    def _detach(self) -> None:
        owners.detach(self.session.channel)
        self.inbox.unregister(self.session.session_id)

    async def _leave_groups(self, keep: set[str]) -> None:
        for group in self._groups - keep:
            await self.inbox.discard(group, self)
        self._groups &= keep

    async def _group(self, op: str, group: str, name: str = "") -> None:
        if op == "group_add" and not self._lost:
            self._groups.add(group)
            if name:
                self._group_names[group] = name
            await self.inbox.add(group, self)
        elif op == "group_discard":
            self._groups.discard(group)
            self._group_names.pop(group, None)
            await self.inbox.discard(group, self)

    def group_names(self) -> list[str]:
        """The names of the named groups the connection is in (mqant.gates' census)."""
        names = self._group_names
        return [names[group] for group in self._groups if group in names]

    async def deliver(self, topic: str, payload: bytes) -> None:
        if self.closed or not self.protocol.accepted:
            return
        self.protocol.send_publish(topic, payload)
        await self._flush()

    def post_event(self, message: dict[str, Any]) -> None:
        """An event from another process (through the inbox): handled after those before it."""
        if self._events is None:
            self._events = InOrder(lambda: f"{self!r}: an event")
        self._events.add(lambda: self.handle_event(message))

    async def handle_event(self, message: dict[str, Any]) -> None:
        """A channel-layer event addressed to this connection (mqant.types)."""
        kind = message["type"]
        if kind == "gate.send" or kind == "gate.fanout":
            await self.deliver(message["topic"], message["payload"])
        elif kind == "gate.session":
            reply: ReplyMessage = empty_reply(message["id"])
            try:
                reply["result"] = await self.apply_session_op(message["op"])
            except RPCError as err:
                reply["error"], reply["kind"] = str(err), err.kind
            if message["reply_to"]:
                await get_channel_layer().send(message["reply_to"], reply)
        elif kind == "gate.close":
            await self.close()
        else:
            logger.warning("%r: ignoring unexpected event type %r", self, kind)

    # Internals

    async def _on_connected(self, event: Connected) -> list[Event]:
        """Accept the client (binding it when it brought credentials); returns the events
        of the packets it sent behind CONNECT."""
        try:
            await mqant_app.ensure_started()
        except Exception:
            logger.exception("%r: the modules failed to start", self)
            self.protocol.refuse(SERVER_UNAVAILABLE)
            return []
        refusal = await self._authenticate(event.connect.username, event.connect.password)
        if refusal is not None:
            logger.info("%r: CONNECT refused (code %d): credentials", self, refusal)
            self.protocol.refuse(refusal)
            return []
        self._accepted = True
        self._attach()
        self._schedule_idle_check()
        events = self.protocol.accept()
        self.keeper.opened()
        start_heartbeat()
        await self._group("group_add", groups.EVERYONE)
        return events

    async def _authenticate(self, username: str | None, password: bytes | None) -> int | None:
        """Bind the session to CONNECT's credentials; the CONNACK code refusing them, if any."""
        if not username:
            return NOT_AUTHORIZED if conf.get("CONNECT_AUTH") == "required" else None
        user = await connect_user(username, password, self.session.ip)
        if isinstance(user, int):
            return user
        try:
            await self.apply_session_op({"op": "bind", "user_id": user})
        except RPCError:  # the single-session policy refuses a second connection
            return NOT_AUTHORIZED
        return None

    def _past_control_rate(self) -> bool:
        """Whether the client sent more control packets (PINGREQ, SUBSCRIBE...) than its
        budget allows: each costs the server decoding and an answer, and no call counts it."""
        received = self.protocol.control_packets_received
        fresh, self._control_counted = received - self._control_counted, received
        return fresh > 0 and self._control_budget.spend(fresh) > 0

    def _refuse_call(self, topic: str, error: str) -> None:
        if router.wants_reply(topic):
            reply = router.envelope(secrets.token_hex(16), error, None)
            self.protocol.send_publish(topic, reply)

    async def _call(self, topic: str, payload: bytes) -> None:
        try:
            reply = await router.route(self._snapshot(topic), topic, payload)
            if reply is not None:
                await self.deliver(topic, reply)
        except Exception:
            logger.exception("%r: routing %r failed", self, topic)

    def _snapshot(self, topic: str) -> Session:
        """The copy of the session a handler receives."""
        s = self.session
        ids = secrets.token_hex(24)  # trace and span: one read of the system's randomness
        return Session(
            ip=s.ip,
            network=s.network,
            session_id=s.session_id,
            server_id=s.server_id,
            channel=s.channel,
            user_id=s.user_id,
            settings=s.settings,
            topic=topic,
            trace_id=ids[:32],
            span_id=ids[32:],
        )

    async def _flush(self) -> None:
        data = self.protocol.data_to_send()
        if not data or self.closed:
            return
        if self._outbox is None:
            await self._write(data)
            self._check_outgoing(self.transport.pending_bytes())
            return
        # The transport's write may wait for the client to read: the bytes queue here and
        # one writer task waits for it, so that no sender ever does.
        self._outbox += data
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_outbox())
        self._check_outgoing(len(self._outbox) + self.transport.pending_bytes())

    async def _write_outbox(self) -> None:
        assert self._outbox is not None
        try:
            while self._outbox:
                data = bytes(self._outbox)
                self._outbox.clear()
                await self._write(data)
        finally:
            self._writer = None

    async def _write(self, data: bytes) -> None:
        try:
            await self.transport.write(data)
        except Exception as err:  # e.g. a message over the ASGI server's WebSocket limit
            if not self.closed:
                logger.warning("%r: closing, a write failed: %s", self, err)
                self.closed = True
                self.transport.abort()

    def _check_outgoing(self, pending: int) -> None:
        if pending > self.max_outgoing and not self.closed:
            # A client that stops reading must not hold memory, or slow the senders.
            logger.info("%r: closing, %d bytes wait for it to read", self, pending)
            self.closed = True
            if self._writer is not None:
                self._writer.cancel()
            self.transport.abort()

    def _close_soon(self, reason: str) -> None:
        logger.info("%r: closing, %s", self, reason)
        self._spawn(self.close())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _check_connect(self) -> None:
        if self.protocol.state is State.AWAITING_CONNECT and not self.closed:
            self._close_soon("no CONNECT within the deadline")

    def _idle_limit(self) -> float:
        timeout = self.protocol.keepalive_timeout
        if timeout is None:
            return float(conf.get("IDLE_TIMEOUT"))
        return min(timeout, 1.5 * float(conf.get("MAX_KEEPALIVE")))

    def _schedule_idle_check(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(self._idle_limit(), self._check_idle)

    def _check_idle(self) -> None:
        if self.closed:
            return
        limit = self._idle_limit()
        idle = self._loop.time() - self._last_seen
        if idle >= limit:
            self._close_soon(f"silent for {idle:.1f} s (limit {limit:.1f} s)")
        else:
            self._timer = self._loop.call_later(limit - idle, self._check_idle)


async def end_all() -> None:
    """The server is stopping: end every connection of this process, so that the modules
    hear of each end and the Presence keeps no ghost (daphne cancels its consumers without
    a disconnect)."""
    for connection in list(MQTTConnection.live):
        await connection.connection_lost()
