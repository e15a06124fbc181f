"""MQTT over WebSocket: the transport that carries a connection's bytes through daphne.

Binary frames only; a text frame closes the connection. The subprotocol the client offered
is echoed (``mqtt`` or ``mqttv3.1``), or browsers refuse the handshake.
"""

import asyncio
import logging
from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer

from gate import limits
from gate.connection import MQTTConnection
from gate.node import GATE_ID
from gate.ws import (
    GOING_AWAY,
    NORMAL_CLOSURE,
    TRY_AGAIN_LATER,
    UNSUPPORTED_DATA,
    choose_subprotocol,
)
from gate.wsbuffer import SocketBuffer

logger = logging.getLogger(__name__)

# autobahn itself sends only the close codes 1000 and 3000-4999: under daphne,
# gate.daphne_guard lets the others of gate.ws through (1001, 1013).


class MQTTConsumer(AsyncConsumer):  # type: ignore[misc]
    """Moves bytes between daphne's WebSocket and an MQTTConnection, and hands the
    connection the channel-layer events addressed to it."""

    connection: MQTTConnection | None = None
    slot: limits.ConnectionSlot | None = None
    _buffer: "SocketBuffer | None" = None
    may_block = True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # No channel of its own: events from other processes reach the connection through
        # its gate process's inbox (gate/inbox.py). And one plain await per message, where
        # Channels' loop wraps every receive in a task of its own.
        self.scope = scope
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels 4.2+ closes stale database connections (a thread hop) before every
        # message; the gate does no database work here, so it skips that per packet.
        kind = message["type"]
        if kind == "websocket.receive":
            await self.websocket_receive(message)
        elif kind == "websocket.connect":
            await self.websocket_connect()
        elif kind == "websocket.disconnect":
            await self.websocket_disconnect()
        else:
            logger.warning("%r: ignoring unexpected message type %r", self, kind)

    async def websocket_connect(self) -> None:
        # Accepted even when refused: a close before the accept is an HTTP 403, which tells a
        # client it is forbidden, where a close with 1013 tells it to come back later.
        subprotocol = choose_subprotocol(list(self.scope.get("subprotocols") or []))
        await self.send({"type": "websocket.accept", "subprotocol": subprotocol})
        client = self.scope.get("client") or ("", 0)
        self.slot = limits.ConnectionSlot.take(str(client[0] or ""), "websocket")
        if self.slot is None:
            await self._close_with(TRY_AGAIN_LATER)
            return
        self._buffer = SocketBuffer.of(self.base_send)
        self.may_block = self._buffer is None or self._buffer.may_block
        try:
            self.connection = await MQTTConnection.open(
                self, ip=client[0], network="websocket", server_id=GATE_ID
            )
        except BaseException:  # the slot, and its address's count, must not leak
            self.slot.release()
            raise

    async def _close_with(self, code: int) -> None:
        try:
            await self.send({"type": "websocket.close", "code": code})
        except Exception:  # autobahn's own, bare: daphne without gate.daphne_guard (it logged
            # why) sends only 1000 and 3000-4999.
            if code == NORMAL_CLOSURE:
                raise
            await self.send({"type": "websocket.close", "code": NORMAL_CLOSURE})

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        if self.connection is None:
            return
        data = message.get("bytes")
        if data is None:
            logger.info(
                "%r: closing, a text frame (MQTT travels in binary frames)", self.connection
            )
            self.connection.stop_reading()
            await self.send({"type": "websocket.close", "code": UNSUPPORTED_DATA})
            return
        await self.connection.data_received(data)

    async def websocket_disconnect(self) -> None:
        if self.connection is not None:
            await self.connection.connection_lost()
        if self.slot is not None:
            self.slot.release()
        raise StopConsumer

    # Transport, for MQTTConnection

    async def write(self, data: bytes) -> None:
        await self.send({"type": "websocket.send", "bytes": data})

    def pending_bytes(self) -> int:
        return 0 if self._buffer is None else self._buffer.pending_bytes()

    async def close(self) -> None:
        await self._close_with(GOING_AWAY if MQTTConnection.stopping else NORMAL_CLOSURE)

    def abort(self) -> None:
        if self._buffer is not None:
            self._buffer.abort()
        else:
            self._spawn_close()

    def _spawn_close(self) -> None:
        task = asyncio.ensure_future(self.close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)


_closing: set["asyncio.Future[None]"] = set()
