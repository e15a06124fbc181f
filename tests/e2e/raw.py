"""A hand-driven MQTT client over a plain TCP socket or a WebSocket, for sending what no
library would. The WebSocket is spoken by hand too, so that a client that stops reading
really stops: client libraries keep reading into memory behind the test's back."""

import base64
import contextlib
import json
import os
import socket
import struct
import time
from typing import Any

from gate.mqtt import ConnAck, Connect, Decoder, Publish, encode, encode_publish


class RawWebSocket:
    """Just enough RFC 6455 for a client: the upgrade, masked binary frames, server frames."""

    def __init__(self, sock: socket.socket, port: int) -> None:
        self.sock = sock
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the WebSocket handshake")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))

    def send(self, data: bytes) -> None:
        self.sock.sendall(frame(data))

    def recv(self, timeout: float) -> bytes:
        """The next data frame's payload; b"" for a close frame or a closed socket."""
        self.sock.settimeout(timeout)
        while True:
            frame = self._frame()
            if frame is not None:
                opcode, payload = frame
                if opcode == 0x8:
                    return b""
                if opcode in (0x0, 0x1, 0x2):
                    return payload
                continue  # ping/pong
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self.buffer += chunk

    def _frame(self) -> tuple[int, bytes] | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        n, at = buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, at = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, at = struct.unpack("!Q", buf[2:10])[0], 10
        if len(buf) < at + n:
            return None
        self.buffer = buf[at + n :]
        return buf[0] & 0x0F, buf[at : at + n]


def frame(data: bytes, opcode: int = 0x2, *, fin: bool = True, masked: bool = True) -> bytes:
    """One client frame: binary by default, final, masked (as RFC 6455 wants of a client)."""
    n = len(data)
    first = opcode | (0x80 if fin else 0)
    bit = 0x80 if masked else 0
    if n < 126:
        header = struct.pack("!BB", first, bit | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, bit | 127, n)
    if not masked:
        return header + data
    mask = os.urandom(4)
    keystream = (mask * (n // 4 + 1))[:n]
    payload = (int.from_bytes(data, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")
    return header + mask + payload


class RawClient:
    """``transport`` is "tcp" (``port`` is the TCP gate's) or "websocket" (the HTTP port);
    ``source``, a loopback address such as 127.0.0.7, is the address the server sees."""

    def __init__(
        self,
        port: int,
        *,
        connect: bool = True,
        rcvbuf: int | None = None,
        transport: str = "tcp",
        source: str = "",
    ) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:  # another loopback address: a client the server counts apart
            self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self.ws = RawWebSocket(self.sock, port) if transport == "websocket" else None
        self.decoder = Decoder(max_packet_size=1 << 28)
        if connect:
            self.send(encode(Connect("MQTT", 4, "raw", True, 60)))
            assert self.next_packet() == ConnAck(0)

    def send(self, data: bytes) -> None:
        if self.ws is not None:
            self.ws.send(data)
        else:
            self.sock.sendall(data)

    def _recv(self, timeout: float) -> bytes:
        """Bytes from the server; b"" once it has closed."""
        if self.ws is not None:
            return self.ws.recv(timeout)
        self.sock.settimeout(timeout)
        return self.sock.recv(65536)

    def next_packet(self, timeout: float = 5) -> Any:
        deadline = time.monotonic() + timeout
        while (packet := self.decoder.next_packet()) is None:
            data = self._recv(max(0.01, deadline - time.monotonic()))
            if not data:
                raise ConnectionError("closed by the server")
            self.decoder.receive_data(data)
        return packet

    def request(self, topic: str, body: Any, timeout: float = 5) -> Any:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send(encode_publish(topic, payload))
        while True:
            packet = self.next_packet(timeout)
            if isinstance(packet, Publish) and packet.topic == topic:
                return json.loads(packet.payload)

    def closed_within(self, timeout: float) -> bool:
        """Whether the server closes the connection within ``timeout`` (what it sends first is
        read and dropped)."""
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                if not self._recv(left):
                    return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
