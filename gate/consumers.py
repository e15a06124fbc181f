"""MQTT over WebSocket: the transport that carries a connection's bytes through daphne.

Binary frames only; a text frame closes the connection. The subprotocol the client offered
is echoed (``mqtt`` or ``mqttv3.1``), or browsers refuse the handshake.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer

from gate.connection import MQTTConnection
from gate.node import GATE_ID

logger = logging.getLogger(__name__)

MQTT_SUBPROTOCOLS = ("mqtt", "mqttv3.1")

# WebSocket close codes. Servers may send 1000 or an application code in 4000-4999 (RFC 6455
# 7.4.2; autobahn refuses the others), so a text frame gets 4003, mirroring 1003.
NORMAL_CLOSURE = 1000
UNSUPPORTED_DATA = 4003


def choose_subprotocol(offered: list[str]) -> str | None:
    """The first MQTT subprotocol the client offered; else its first offer, as mqant does."""
    for name in offered:
        if name in MQTT_SUBPROTOCOLS:
            return name
    return offered[0] if offered else None


class MQTTConsumer(AsyncConsumer):  # type: ignore[misc]
    """Moves bytes between daphne's WebSocket and an MQTTConnection."""

    connection: MQTTConnection | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels 4.2+ closes stale database connections (a thread hop) before every
        # message; the gate does no database work here, so it dispatches straight from a
        # fixed table, which is also the whitelist of message types.
        handler = _HANDLERS.get(message["type"])
        if handler is None:
            logger.warning("%r: ignoring unexpected message type %r", self, message["type"])
            return
        await handler(self, message)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        subprotocol = choose_subprotocol(list(self.scope.get("subprotocols") or []))
        await self.send({"type": "websocket.accept", "subprotocol": subprotocol})
        client = self.scope.get("client") or ("", 0)
        self.connection = MQTTConnection(
            self, ip=client[0], network="websocket", channel=self.channel_name, server_id=GATE_ID
        )

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        data = message.get("bytes")
        if data is None:
            logger.info("%r: closing, a text frame (MQTT travels in binary frames)", self)
            await self.send({"type": "websocket.close", "code": UNSUPPORTED_DATA})
            if self.connection is not None:
                self.connection.closed = True
            return
        if self.connection is not None:
            await self.connection.data_received(data)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self.connection is not None:
            await self.connection.connection_lost()
        raise StopConsumer

    async def gate_send(self, message: dict[str, Any]) -> None:
        if self.connection is not None:
            await self.connection.deliver(message["topic"], message["payload"])

    async def gate_session(self, message: dict[str, Any]) -> None:
        if self.connection is None:
            return
        state = await self.connection.apply_session_op(message["op"])
        reply = {
            "type": "mqant.reply",
            "id": message["id"],
            "result": state,
            "error": "",
            "kind": "",
        }
        await self.channel_layer.send(message["reply_to"], reply)

    async def gate_close(self, message: dict[str, Any]) -> None:
        if self.connection is not None:
            await self.connection.close()

    # Transport, for MQTTConnection

    async def write(self, data: bytes) -> None:
        await self.send({"type": "websocket.send", "bytes": data})

    async def close(self) -> None:
        await self.send({"type": "websocket.close", "code": NORMAL_CLOSURE})


_HANDLERS: dict[str, Callable[[MQTTConsumer, dict[str, Any]], Awaitable[None]]] = {
    "websocket.connect": MQTTConsumer.websocket_connect,
    "websocket.receive": MQTTConsumer.websocket_receive,
    "websocket.disconnect": MQTTConsumer.websocket_disconnect,
    "gate.send": MQTTConsumer.gate_send,
    "gate.session": MQTTConsumer.gate_session,
    "gate.close": MQTTConsumer.gate_close,
}
