"""One client connection, whatever carries its bytes (WebSocket or TCP).

The transport hands bytes in and takes bytes out; this class runs the MQTT protocol
(gate/mqtt), owns the clock (CONNECT deadline, keepalive), the session, and the calls in
flight, and applies the session changes modules request.
"""

import asyncio
import logging
import secrets
from typing import Any, Protocol

from gate import router
from gate.mqtt import (
    Connected,
    ConnectionRefused,
    Event,
    MessageReceived,
    ProtocolError,
    ServerProtocol,
    State,
)
from gate.mqtt.packets import SERVER_UNAVAILABLE
from mqant import Session, conf, owners
from mqant import app as mqant_app
from mqant import events as mqant_events
from mqant.types import SessionOp, SessionState

logger = logging.getLogger(__name__)


class Transport(Protocol):
    """What a connection needs from whatever carries its bytes."""

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class MQTTConnection:
    """A client connection speaking mqant's MQTT contract (CONTRACT.md)."""

    def __init__(
        self, transport: Transport, *, ip: str, network: str, channel: str, server_id: str = ""
    ) -> None:
        self.transport = transport
        self.protocol = ServerProtocol(max_packet_size=int(conf.get("MAX_PACKET_SIZE")))
        self.max_in_flight = int(conf.get("MAX_CALLS_IN_FLIGHT"))
        self.session = Session(
            ip=ip,
            network=network,
            session_id=secrets.token_hex(8),
            server_id=server_id,
            channel=channel,
        )
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._last_seen = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._accepted = False
        self._lost = False
        self._timer = self._loop.call_later(float(conf.get("CONNECT_TIMEOUT")), self._check_connect)

    def __repr__(self) -> str:
        return (
            f"<MQTTConnection {self.session.session_id} {self.session.network} {self.session.ip}>"
        )

    # Bytes in, from the transport

    async def data_received(self, data: bytes) -> None:
        """Feed bytes from the client; a protocol violation closes the connection."""
        if self.closed:
            return
        self._last_seen = self._loop.time()
        try:
            await self._handle(self.protocol.receive_data(data))
        except ProtocolError as err:
            logger.info("%r: closing, protocol error: %s", self, err)
            await self.close()
            return
        await self._flush()
        if self.protocol.state is State.CLOSED:
            await self.close()

    async def _handle(self, events: list[Event]) -> None:
        for event in events:  # accept() may append the packets held behind CONNECT
            if isinstance(event, MessageReceived):
                self._start_call(event.topic, event.payload)
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
        if self._timer is not None:
            self._timer.cancel()
        owners.detach(self.session.channel)
        for task in (*self._calls, *self._background):
            task.cancel()
        if self._accepted:
            await mqant_events.session_closed(self._snapshot(""))

    async def close(self) -> None:
        """Close the transport; ``connection_lost`` follows from it."""
        if not self.closed:
            self.closed = True
            await self.transport.close()

    # Session owner: what modules reach through mqant.owners

    async def apply_session_op(self, op: SessionOp) -> SessionState:
        name = op["op"]
        if name == "bind":
            self.session.user_id = op["user_id"]
        elif name == "unbind":
            self.session.user_id = ""
        elif name == "set":
            self.session.settings[op["key"]] = op["value"]
        elif name == "push":
            self.session.settings = dict(op["settings"])
        elif name == "close":
            await self.close()
        return self.session.state()

    async def deliver(self, topic: str, payload: bytes) -> None:
        if self.closed or self.protocol.state is not State.CONNECTED:
            return
        self.protocol.send_publish(topic, payload)
        await self._flush()

    # Internals

    async def _on_connected(self, event: Connected) -> list[Event]:
        """Accept the client; returns the events of the packets it sent behind CONNECT."""
        try:
            await mqant_app.ensure_started()
        except Exception:
            logger.exception("%r: the modules failed to start", self)
            self.protocol.refuse(SERVER_UNAVAILABLE)
            return []
        self._accepted = True
        owners.attach(self.session.channel, self)
        self._schedule_idle_check()
        return self.protocol.accept()

    def _start_call(self, topic: str, payload: bytes) -> None:
        if len(self._calls) >= self.max_in_flight:
            if router.wants_reply(topic):
                reply = router.envelope(secrets.token_hex(16), router.WORK_QUEUE_FULL, None)
                self.protocol.send_publish(topic, reply)
            return
        task = asyncio.create_task(self._call(topic, payload))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

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
        return Session(
            ip=s.ip,
            network=s.network,
            session_id=s.session_id,
            server_id=s.server_id,
            channel=s.channel,
            user_id=s.user_id,
            settings=s.settings,
            topic=topic,
            trace_id=secrets.token_hex(16),
            span_id=secrets.token_hex(8),
        )

    async def _flush(self) -> None:
        data = self.protocol.data_to_send()
        if data and not self.closed:
            await self.transport.write(data)

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
        return float(conf.get("IDLE_TIMEOUT")) if timeout is None else timeout

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
