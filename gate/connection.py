"""One client connection, whatever carries its bytes (WebSocket or TCP).

The transport hands bytes in and takes bytes out; this class drives the MQTT protocol
(gate/mqtt): it turns the client's packets into calls (gate.calls), owns the clock (CONNECT
deadline, keepalive) and the close. Its bytes leave through an Outbox (gate.outbox); its
session lives in a SessionHost (gate.host).
"""

import asyncio
import logging
import secrets
from collections.abc import Sequence
from typing import Any, ClassVar

from gate import conf, persist, router
from gate.auth import connect_user
from gate.calls import SHUTTING_DOWN, Calls, Refusal
from gate.host import SessionHost
from gate.inbox import Inbox
from gate.limits import TokenBucket
from gate.mqtt import (
    Connected,
    ConnectionRefused,
    Disconnected,
    Event,
    MessageReceived,
    ProtocolError,
    PublishAcknowledged,
    PublishTooLarge,
    ServerProtocol,
    State,
    Subscribed,
    Unsubscribed,
    reasons,
)
from gate.mqtt.packets import NOT_AUTHORIZED, SERVER_UNAVAILABLE, Connect
from gate.mqtt.properties import Properties
from gate.outbox import Outbox, Transport
from gate.process import inbox
from mqant import RPCError, Session, groups, logs, metrics, routing
from mqant.ops import Bind, GroupAdd, Packet

logger = logging.getLogger(__name__)


class MQTTConnection:
    """A client connection speaking mqant's MQTT contract (CONTRACT.md)."""

    # The connections of this process, so that a stopping server ends them properly.
    live: ClassVar[set["MQTTConnection"]] = set()
    # Set once the server stops (gate.drain): a CONNECT is refused, "server unavailable".
    stopping: ClassVar[bool] = False

    def __init__(
        self,
        transport: Transport,
        *,
        ip: str,
        network: str,
        inbox: Inbox,
        server_id: str = "",
        kind: str = "",
    ) -> None:
        # Counted under kind (metrics.TRANSPORTS), the network by default; its bytes and
        # packets are summed when the metrics are collected (_gather).
        self._counts = metrics.transport(kind or network)
        self.bytes_in = self.bytes_out = 0
        self.protocol = ServerProtocol(
            max_packet_size=int(conf.get("MAX_PACKET_SIZE")),
            max_topics_per_subscribe=int(conf.get("MAX_TOPICS_PER_SUBSCRIBE")),
            # A client that keeps within the receive maximum never meets "the work queue is
            # full!" with its QoS 1-2 calls (MQTT 5 announces it in CONNACK).
            receive_maximum=int(conf.get("MAX_CALLS_IN_FLIGHT")),
            topic_alias_maximum=int(conf.get("TOPIC_ALIAS_MAXIMUM")),
            manual_acks=bool(conf.get("ACK_AFTER_HANDLER")),  # see _ack
        )
        self._control_budget = TokenBucket(
            float(conf.get("CONTROL_PACKET_RATE")), int(conf.get("CONTROL_PACKET_BURST"))
        )
        self._control_counted = 0
        self.host = SessionHost.fresh(inbox, self, ip=ip, network=network, server_id=server_id)
        self.outbox = Outbox(transport, self)
        self._loop = asyncio.get_running_loop()
        self._last_seen = self._loop.time()
        self._background: set[asyncio.Task[None]] = set()
        self._accepted = False
        self._lost = False
        # The session's QoS 1 pushes, when it asked for any (gate.persist), and the seconds
        # it outlives the connection (a persistent session's).
        self.pushes: persist.Pushes | None = None
        self._expiry = 0.0
        self._handed_over = False  # another connection took the session: it does not end
        self.calls: Calls[MessageReceived] = Calls()
        self._manual_acks = bool(conf.get("ACK_AFTER_HANDLER"))
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(
            float(conf.get("CONNECT_TIMEOUT")), self._check_connect
        )
        MQTTConnection.live.add(self)
        self._counts.connections.value += 1
        self._counts.opened.value += 1

    @classmethod
    async def open(
        cls, transport: Transport, *, ip: str, network: str, server_id: str = "", kind: str = ""
    ) -> "MQTTConnection":
        """A connection of this process's inbox (gate.process); ``kind`` names its transport
        in the metrics (``network`` by default). What its transport's task logs from now on
        names the connection's session (mqant.logs), and so do the calls and timers it starts,
        until a call names its own: bound once, in the task that serves the connection for its
        whole life (the gate's listeners', the ASGI server's), not once per read."""
        connection = cls(
            transport, ip=ip, network=network, inbox=inbox(), server_id=server_id, kind=kind
        )
        logs.bind(connection.host.session)
        return connection

    def __repr__(self) -> str:
        s = self.session
        return f"<MQTTConnection {s.session_id} {s.network} {s.ip}>"

    @property
    def session(self) -> Session:
        return self.host.session

    @property
    def closed(self) -> bool:
        """Whether the connection takes no more bytes, either way."""
        return self.outbox.closed

    # Bytes in, from the transport

    async def data_received(self, data: bytes) -> None:
        """Feed bytes from the client; a protocol violation closes the connection."""
        if self.outbox.closed:
            return
        self._last_seen = now = self._loop.time()
        if self._accepted:
            self.host.keeper.active(now)
        self.bytes_in += len(data)
        try:
            events = self.protocol.receive_data(data)
        except ProtocolError as err:
            logger.info("%r: closing, protocol error: %s", self, err)
            if not self._accepted:  # it broke the protocol before it was let in
                self._counts.refused("protocol")
            await self.flush()  # MQTT 5: the DISCONNECT saying why
            await self.close()
            return
        if self._past_control_rate():
            logger.info("%r: closing, it sent control packets past their rate", self)
            metrics.RATE_LIMITS.child("control_rate").add()
            await self.close(reasons.MESSAGE_RATE_TOO_HIGH, "Control packets past their rate")
            return
        try:
            for event in events:  # accept() may append the packets held behind CONNECT
                if isinstance(event, MessageReceived):  # the common case: no coroutine
                    self._start_call(event)
                else:
                    await self._handle(event, events)
        except ProtocolError as err:  # in the packets held behind CONNECT
            logger.info("%r: closing, protocol error: %s", self, err)
            await self.flush()
            await self.close()
            return
        data = self.protocol.data_to_send()
        if data:  # a QoS 0 PUBLISH has no answer here: no coroutine for nothing to send
            await self._send(data)
        if self.protocol.state is State.CLOSED:
            await self.close()

    async def _handle(self, event: Event, events: list[Event]) -> None:
        """An event other than a PUBLISH; a CONNECT accepted appends to ``events`` those of
        the packets held behind it."""
        if isinstance(event, Connected) and MQTTConnection.stopping:
            logger.info("%r: CONNECT refused: the server is stopping", self)
            self._counts.refused("stopping")
            self.protocol.refuse(SERVER_UNAVAILABLE)
        elif isinstance(event, Connected):
            events.extend(await self._on_connected(event))
        elif isinstance(event, ConnectionRefused):
            self._counts.refused("protocol")
            logger.info("%r: CONNECT refused (code %d): %s", self, event.return_code, event.reason)
        elif isinstance(event, PublishAcknowledged):
            if self.pushes is not None:
                self.pushes.acknowledged(event.packet_id)
        elif isinstance(event, Subscribed):
            self._subscribed(event)
        elif isinstance(event, Unsubscribed):
            if self.pushes is not None:
                for topic_filter in event.topics:
                    self.pushes.subscriptions.pop(topic_filter, None)
        elif isinstance(event, Disconnected) and event.session_expiry_interval is not None:
            self._expiry = min(
                float(event.session_expiry_interval), float(conf.get("SESSION_EXPIRY_MAX"))
            )
        # Disconnected: the protocol is CLOSED now, which closes the transport.

    def stop_reading(self) -> None:
        """The transport closes by itself (it refused what the client sent): nothing more
        is read or written."""
        self.outbox.seal()

    async def connection_lost(self) -> None:
        """The transport is gone: stop everything and tell the modules, once."""
        if self._lost:
            return
        self._lost = True
        self._counts.connections.value -= 1
        self.outbox.stop()
        MQTTConnection.live.discard(self)
        _retire(self)
        if self._timer is not None:
            self._timer.cancel()
        self.calls.cancel()
        for task in self._background:
            task.cancel()
        if self._handed_over:
            return  # the session goes on with the connection that took it
        pushes = self.pushes
        if pushes is not None:
            if pushes.disconnected(self._expiry):  # a persistent session waits for the next
                self.host.link = persist.ParkedLink(pushes)
                return
            await pushes.end(discard=True)
        await self.host.end(self._accepted)

    async def close(
        self, reason_code: int = reasons.ADMINISTRATIVE_ACTION, reason: str = ""
    ) -> None:
        """Close the transport once the bytes queued for it are written (for at most a
        second); ``connection_lost`` follows from it. An MQTT 5 client still connected is
        told why first: a DISCONNECT with ``reason_code`` and ``reason`` (by default, closed
        by the server's decision: a module's, the admin's)."""
        if self.protocol.accepted and not self.outbox.closed:
            self.protocol.disconnect(reason_code, reason or None)
            await self.flush()
        await self.outbox.close()

    def drain(self) -> None:
        """The server is stopping: new calls are refused, those in flight go on."""
        self.calls.draining = True

    async def end(self) -> None:
        """The server is stopping: the calls still running are answered SHUTTING_DOWN and
        cancelled, then the connection closes (after its last bytes)."""
        if self.closed:
            return
        if self.protocol.accepted:
            for message in self.calls.give_up():
                self._answer_refused(message, SHUTTING_DOWN)
                self._ack(message, reasons.UNSPECIFIED_ERROR, SHUTTING_DOWN)
        else:
            self.calls.cancel()
        await self.flush()
        await self.close(reasons.SERVER_SHUTTING_DOWN, SHUTTING_DOWN)

    async def publish(self, topic: str, payload: bytes) -> None:
        """Write a PUBLISH to the client (gate.host's Link); dropped once it is closed."""
        if self.outbox.closed or not self.protocol.accepted:
            metrics.PUSHES_DROPPED.child("closed").add()
            return
        try:
            self.protocol.send_publish(topic, payload)
        except PublishTooLarge:
            metrics.PUSHES_DROPPED.child("too_large").add()
            return
        await self._send(self.protocol.data_to_send())

    async def publish_many(self, packets: Sequence[Packet]) -> None:
        """Write several PUBLISHes in one write (gate.host's Link): a table's frame."""
        if self.outbox.closed or not self.protocol.accepted:
            metrics.PUSHES_DROPPED.child("closed").add(len(packets))
            return
        for topic, payload in packets:
            try:
                self.protocol.send_publish(topic, payload)
            except PublishTooLarge:
                metrics.PUSHES_DROPPED.child("too_large").add()
        await self._send(self.protocol.data_to_send())

    # Internals

    async def _on_connected(self, event: Connected) -> list[Event]:
        """Accept the client (binding it when it brought credentials, resuming its session
        when it asked for a persistent one); returns the events of the packets it sent
        behind CONNECT."""
        connect = event.connect
        user = await self._credentials(connect.username, connect.password)
        if isinstance(user, int):
            logger.info("%r: CONNECT refused (code %d): credentials", self, user)
            self._counts.refused("auth")
            self.protocol.refuse(user)
            return []
        want = persist.wanted(self.protocol)
        resumed: persist.Resumed | None = None
        if want.expiry > 0 or not want.clean:
            try:
                resumed = await persist.take(self, want, connect, user or "")
            except persist.Refused as err:
                logger.info("%r: CONNECT refused (code %#x): %s", self, err.code, err)
                self._counts.refused("session")
                self.protocol.refuse(err.code, str(err))
                return []
            self._expiry = want.expiry
        adopted = resumed is not None and resumed.host is not None
        if resumed is not None:
            user = resumed.user  # read from the credentials to resume that user's session
        if user and not adopted:
            try:
                await self.host.apply_session_op(Bind(user))
            except RPCError:  # the single-session policy refuses a second connection
                logger.info("%r: CONNECT refused: the user is connected already", self)
                self._counts.refused("auth")
                self.protocol.refuse(NOT_AUTHORIZED)
                if resumed is not None:
                    await resumed.pushes.end(discard=False)
                return []
        self._accepted = True
        if not adopted:
            self.host.attach()
        self._schedule_idle_check()
        properties = self._connack_properties(connect, want, resumed)
        present = resumed is not None and resumed.present
        events = self.protocol.accept(session_present=present, properties=properties)
        if not adopted:
            self.host.keeper.opened()
            await self.host.apply_session_op(GroupAdd(groups.EVERYONE))
        if resumed is not None:
            resumed.pushes.connected(self)
            if resumed.dropped:
                await self.publish(persist.DROPPED_TOPIC, persist.dropped_notice(resumed.dropped))
        return events

    def adopt(self, host: SessionHost) -> None:
        """Carry ``host``, a session resumed from a connection of this process that ended or
        was taken over, instead of this connection's own fresh one (never attached)."""
        host.link = self
        self.host = host

    def hand_over(self) -> None:
        """Another connection takes this one's session: this one's end does not end it."""
        self._handed_over = True

    def _subscribed(self, event: Subscribed) -> None:
        """A SUBSCRIBE: pushes on matching topics go at the QoS granted (gate.persist)."""
        pushes = self.pushes
        if pushes is None:
            if all(options & 3 == 0 for _, options in event.topics):
                return  # QoS 0 is what every push gets anyway
            pushes = self.pushes = persist.clean_pushes(self)
        most = int(conf.get("MAX_SUBSCRIPTIONS"))
        for topic_filter, options in event.topics:
            if topic_filter in pushes.subscriptions or len(pushes.subscriptions) < most:
                pushes.subscriptions[topic_filter] = options & 3

    def _connack_properties(
        self, connect: Connect, want: persist.Wanted, resumed: persist.Resumed | None
    ) -> Properties | None:
        """What CONNACK tells an MQTT 5 client beyond the protocol's own announcements: the
        keepalive the server holds it to, when it asked for more than MAX_KEEPALIVE; the
        session expiry it gets, when not what it asked; the pushes its queue dropped while it
        was away (user property ``dropped``, also pushed as DROPPED_TOPIC)."""
        if self.protocol.protocol_level != 5:
            return None
        fields: dict[str, Any] = {}
        asked, most = connect.keepalive, int(conf.get("MAX_KEEPALIVE"))
        if asked > most:
            fields["server_keep_alive"] = most
        requested = connect.properties.session_expiry_interval or 0
        if requested != int(want.expiry):  # capped (0xFFFFFFFF, "never", included)
            fields["session_expiry_interval"] = int(want.expiry)
        if resumed is not None and resumed.dropped:
            fields["user_properties"] = (("dropped", str(resumed.dropped)),)
        return Properties(**fields) if fields else None

    async def _credentials(self, username: str | None, password: bytes | None) -> str | int:
        """The user CONNECT's credentials name, as CONNECT_AUTH says ("": none, a guest), or
        the CONNACK code refusing them."""
        policy = conf.get("CONNECT_AUTH")
        if policy == "ignore":
            return ""  # mqant's way: every client a guest until it logs in
        if not username:
            return NOT_AUTHORIZED if policy == "required" else ""
        return await connect_user(username, password, self.session.ip)

    def _past_control_rate(self) -> bool:
        """Whether the client sent more control packets (PINGREQ, SUBSCRIBE...) than its
        budget allows: each costs the server decoding and an answer, and no call counts it."""
        received = self.protocol.control_packets_received
        fresh, self._control_counted = received - self._control_counted, received
        return fresh > 0 and self._control_budget.spend(fresh) > 0

    def _start_call(self, message: MessageReceived) -> None:
        refusal = self.calls.start(message, lambda: self._call(message))
        if refusal is not None:
            self._refused(message, refusal)

    def _refused(self, message: MessageReceived, refusal: Refusal) -> None:
        _count_refused(message.topic, refusal)
        if refusal.error:
            self._answer_refused(message, refusal.error)
        if refusal.error == SHUTTING_DOWN:
            code = reasons.UNSPECIFIED_ERROR
        else:  # refused for its rate or the calls in flight ("": dropped for its rate)
            code = router.error_reason(refusal.error or routing.RATE_EXCEEDED)
        self._ack(message, code, refusal.error)
        if refusal.close:
            self._close_soon(refusal.close, reasons.MESSAGE_RATE_TOO_HIGH)

    def _answer_refused(self, message: MessageReceived, error: str) -> None:
        parsed = routing.parse_topic(message.topic)
        to = router.reply_to(message.topic, parsed, message.properties)
        if to is not None:
            reply = router.envelope(secrets.token_hex(16), error, None)
            self._write_reply(to, reply, router.reply_properties(message.properties))

    def _write_reply(self, topic: str, reply: bytes, properties: Properties | None) -> None:
        if self.protocol.protocol_level != 5:
            properties = None  # 3.1.1 has none
        try:
            self.protocol.send_publish(topic, reply, properties=properties)
        except PublishTooLarge:
            metrics.PUSHES_DROPPED.child("too_large").add()

    def _ack(self, message: MessageReceived, reason_code: int, error: str) -> None:
        """Acknowledge a QoS 1-2 call that has ended (ACK_AFTER_HANDLER), with ``error`` as
        the MQTT 5 reason string."""
        if self._manual_acks and message.packet_id is not None and self.protocol.accepted:
            self.protocol.ack(message.packet_id, reason_code, error or None)

    async def _call(self, message: MessageReceived) -> None:
        """Route a client's call (mqant.routing, CONTRACT.md), publish the reply, if any, and
        acknowledge a QoS 1-2 PUBLISH once its handler has finished (ACK_AFTER_HANDLER)."""
        topic, request = message.topic, message.properties
        session = self.host.session.for_call(topic)
        if request.user_properties:
            session.user_properties = request.user_properties
        error = ""
        try:
            parsed = routing.parse_topic(topic)
            if parsed is None:
                metrics.count_call("", "", metrics.BAD_REQUEST)
                error = routing.TOPIC_ERROR
                answer: dict[str, Any] | bytes = routing.envelope(session.trace_id, error, None)
            else:
                answer = await routing.dispatch(
                    session,
                    parsed.target,
                    parsed.handler,
                    message.payload,
                    router.payload_decoder(request),
                )
                error = "" if isinstance(answer, bytes) else str(answer.get("Error") or "")
            to = router.reply_to(topic, parsed, request)
            if to is not None and not self.outbox.closed and self.protocol.accepted:
                if isinstance(answer, bytes):
                    self._write_reply(to, answer, router.reply_properties(request, json=False))
                else:
                    self._write_reply(to, routing.encode(answer), router.reply_properties(request))
        except Exception:  # a cancelled call is acknowledged by whoever cancelled it
            logger.exception("%r: routing %r failed", self, topic)
            error = error or routing.INTERNAL_ERROR
        self._ack(message, router.error_reason(error), error)
        await self.flush()

    async def flush(self) -> None:
        """Write what the protocol has queued."""
        data = self.protocol.data_to_send()
        if data:
            await self._send(data)

    async def _send(self, data: bytes) -> None:
        if not self.outbox.closed:
            self.bytes_out += len(data)
            await self.outbox.send(data)

    def _close_soon(self, reason: str, code: int = reasons.UNSPECIFIED_ERROR) -> None:
        logger.info("%r: closing, %s", self, reason)
        self._spawn(self.close(code, reason[:1].upper() + reason[1:]))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _check_connect(self) -> None:
        if self.protocol.state is State.AWAITING_CONNECT and not self.closed:
            self._counts.refused("timeout")
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
            self._close_soon(
                f"silent for {idle:.1f} s (limit {limit:.1f} s)", reasons.KEEP_ALIVE_TIMEOUT
            )
        else:
            self._timer = self._loop.call_later(limit - idle, self._check_idle)


# The packets and bytes of the connections that ended, by transport: (packets received,
# packets sent, bytes received, bytes sent).
_retired: dict[metrics.TransportCounts, list[int]] = {}


def _figures(connection: MQTTConnection) -> tuple[int, int, int, int]:
    protocol = connection.protocol
    return (
        protocol.packets_received, protocol.packets_sent, connection.bytes_in, connection.bytes_out
    )  # fmt: skip


def _retire(connection: MQTTConnection) -> None:
    totals = _retired.setdefault(connection._counts, [0, 0, 0, 0])
    for i, n in enumerate(_figures(connection)):
        totals[i] += n


def _gather() -> None:
    """The transports' packets and bytes, those of the live connections and of those that
    ended, into the metrics (at a scrape: the hot path counts only on the connection)."""
    totals = {counts: list(retired) for counts, retired in _retired.items()}
    for connection in list(MQTTConnection.live):
        figures = totals.setdefault(connection._counts, [0, 0, 0, 0])
        for i, n in enumerate(_figures(connection)):
            figures[i] += n
    for counts, (packets_in, packets_out, bytes_in, bytes_out) in totals.items():
        counts.packets_received.value = packets_in
        counts.packets_sent.value = packets_out
        counts.bytes_received.value = bytes_in
        counts.bytes_sent.value = bytes_out


metrics.on_collect(_gather)


def _count_refused(topic: str, refusal: Refusal) -> None:
    """Count a call the connection refused: for its rate (answered or dropped), for the
    calls in flight, or because the server stops."""
    if refusal.error == SHUTTING_DOWN:
        outcome = metrics.REFUSED
    elif refusal.error == routing.WORK_QUEUE_FULL:
        outcome = metrics.REFUSED
        metrics.RATE_LIMITS.child("calls_in_flight").add()
    else:
        outcome = metrics.RATE_LIMITED
        metrics.RATE_LIMITS.child("message_rate").add()
    parsed = routing.parse_topic(topic)
    target, handler = (parsed.target, parsed.handler) if parsed is not None else ("", "")
    metrics.count_call(target, handler, outcome)


async def end_all() -> None:
    """The server is stopping: end every connection of this process, so that the modules
    hear of each end and the Presence keeps no ghost (daphne cancels its consumers without
    a disconnect)."""
    for connection in list(MQTTConnection.live):
        await connection.connection_lost()
