"""A lean asyncio MQTT 3.1.1 client for load: over TCP, or over WebSocket framed by hand.

The load generator shares the machine with the server it measures, so each client costs
as little as it can: an ``asyncio.Protocol`` (no stream objects), the project's own codec,
and for WebSocket just enough RFC 6455 — an upgrade, binary frames with an all-zero masking
key (a key servers must accept, which makes masking free), and the server's frames read in
place. Loopback only.
"""

import asyncio
import base64
import os
import struct
from collections.abc import Callable

from gate.mqtt import (
    ConnAck,
    Connect,
    Decoder,
    PingReq,
    PingResp,
    Publish,
    SubAck,
    Subscribe,
    encode,
    encode_publish,
)

LOOPBACK = ("127.0.0.1", "::1", "localhost")
ZERO_MASK = b"\x00\x00\x00\x00"

OnPublish = Callable[[str, bytes], None]


class ConnectionClosed(Exception):
    """The server closed the connection, or it never opened."""


def _ws_frame(data: bytes) -> bytes:
    """A masked binary frame carrying ``data``, with the all-zero key (XOR is a no-op)."""
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", 0x82, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x82, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x82, 0x80 | 127, size)
    return header + ZERO_MASK + data


class MQTTClient(asyncio.Protocol):
    """One client connection. Publishes arrive through ``on_publish(topic, payload)``."""

    def __init__(self, on_publish: OnPublish | None = None, *, websocket: bool = False) -> None:
        self.on_publish = on_publish
        self.websocket = websocket
        self.decoder = Decoder(max_packet_size=16 * 1024 * 1024)
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting: dict[type, asyncio.Future[object]] = {}
        self._upgrade: asyncio.Future[None] | None = None
        self._wsbuf = bytearray()
        self._handshake = bytearray()

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        websocket: bool = False,
        path: str = "/mqtt",
        on_publish: OnPublish | None = None,
        client_id: str = "",
        keepalive: int = 60,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        clean_session: bool = True,
    ) -> "MQTTClient":
        """Connect, upgrade to WebSocket if asked, and send CONNECT; returns after CONNACK 0."""
        if host not in LOOPBACK:
            raise ValueError(f"the load tool only talks to loopback, not {host!r}")
        loop = asyncio.get_running_loop()
        client = cls(on_publish, websocket=websocket)
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: client, host, port)
            if websocket:
                await client._upgrade_to_websocket(host, port, path)
            connect = Connect(
                "MQTT",
                4,
                client_id,
                clean_session,
                keepalive,
                username=username,
                password=None if password is None else password.encode(),
            )
            ack = await client.request(encode(connect), ConnAck)
        if not isinstance(ack, ConnAck) or ack.return_code != 0:
            client.close()
            raise ConnectionClosed(f"CONNECT refused: {ack}")
        return client

    async def _upgrade_to_websocket(self, host: str, port: int, path: str) -> None:
        assert self.transport is not None
        key = base64.b64encode(os.urandom(16)).decode()
        self._upgrade = asyncio.get_running_loop().create_future()
        self.transport.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n".encode()
        )
        await self._upgrade

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        error = ConnectionClosed("the connection closed")
        for waiter in (*self._waiting.values(), self._upgrade):
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
        self._waiting.clear()

    def data_received(self, data: bytes) -> None:
        if not self.websocket:
            self._mqtt_received(data)
        elif self._upgrade is not None and not self._upgrade.done():
            self._handshake_received(data)
        else:
            self._ws_received(data)

    # Sending

    def send(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionClosed("the connection closed")
        self.transport.write(_ws_frame(data) if self.websocket else data)

    def publish(self, topic: str, payload: bytes) -> None:
        self.send(encode_publish(topic, payload))

    async def request(self, data: bytes, answer: type) -> object:
        """Send ``data`` and wait for the next packet of type ``answer``."""
        waiter: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiting[answer] = waiter
        self.send(data)
        return await waiter

    async def subscribe(self, topic: str, packet_id: int = 1, qos: int = 0) -> None:
        ack = await self.request(encode(Subscribe(packet_id, ((topic, qos),))), SubAck)
        assert isinstance(ack, SubAck)

    async def ping(self) -> None:
        await self.request(encode(PingReq()), PingResp)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # Receiving

    def _handshake_received(self, data: bytes) -> None:
        assert self._upgrade is not None
        assert self.transport is not None
        self._handshake += data
        end = self._handshake.find(b"\r\n\r\n")
        if end < 0:
            return
        status = bytes(self._handshake[: self._handshake.find(b"\r\n")])
        rest = bytes(self._handshake[end + 4 :])
        if b" 101 " not in status:
            self._upgrade.set_exception(ConnectionClosed(f"upgrade refused: {status!r}"))
            self.transport.close()
            return
        self._upgrade.set_result(None)
        if rest:
            self._ws_received(rest)

    def _ws_received(self, data: bytes) -> None:
        buf = self._wsbuf
        buf += data
        pos, size = 0, len(buf)
        payloads = []
        while size - pos >= 2:
            opcode, length = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                (length,) = struct.unpack_from("!H", buf, start)
                start += 2
            elif length == 127:
                if size - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buf, start)
                start += 8
            end = start + length
            if end > size:
                break
            if opcode in (0, 2):  # binary, or its continuation
                payloads.append(bytes(buf[start:end]))
            elif opcode == 8 and self.transport is not None:  # close
                self.transport.close()
            elif opcode == 9:  # ping
                self.send_control(0x8A, bytes(buf[start:end]))
            pos = end
        del buf[:pos]
        if payloads:
            self._mqtt_received(b"".join(payloads))

    def send_control(self, first: int, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes((first, 0x80 | len(data))) + ZERO_MASK + data)

    def _mqtt_received(self, data: bytes) -> None:
        decoder = self.decoder
        decoder.receive_data(data)
        on_publish = self.on_publish
        while (packet := decoder.next_packet()) is not None:
            if isinstance(packet, Publish):
                if packet.packet_id is not None:  # QoS 1: acknowledged, as any client does
                    self.send(b"\x40\x02" + packet.packet_id.to_bytes(2, "big"))
                if on_publish is not None:
                    on_publish(packet.topic, packet.payload)
                continue
            waiter = self._waiting.pop(type(packet), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(packet)
