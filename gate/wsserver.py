"""MQTT over WebSocket on the gate's own port (mqant's ``WSAddr``, 3653): an asyncio server
whose connections are the same MQTTConnection as daphne's WebSocket and the TCP listener's.

The WebSocket protocol is the ``websockets`` package's sans-IO ``ServerProtocol`` (bytes in,
events and bytes out); this module moves the bytes and applies the gate's limits:

- a connection slot per socket, taken before anything is read, the TLS handshake included
  (gate.limits.ConnectionSlot: the process's MAX_CONNECTIONS, the address's
  MAX_CONNECTIONS_PER_ADDRESS and connect rate); a socket refused is closed at once; a TLS
  handshake must be done within CONNECT_TIMEOUT;
- the handshake must arrive whole within HTTP_REQUEST_TIMEOUT (the ``Gate`` entry's
  ``HTTPTimeout`` where it says) and within MAX_HANDSHAKE_BYTES; a request that is not a
  WebSocket handshake gets websockets' short answer (426, 400...), one on a path WS_PATHS
  leaves out 403;
- a WebSocket message carries at most MAX_MESSAGE_SIZE bytes (1009 past it; one or more MQTT
  packets, each within MAX_PACKET_SIZE); every byte read is metered by READ_RATE and
  READ_BURST, pings and pongs by WS_PING_RATE and WS_PING_BURST (1008 past them); a text
  frame closes with 4003;
- bytes the client does not read count against MAX_OUTGOING_BYTES (gate.outbox).

No ping is ever sent to the client: MQTT's keepalive says whether it is there (and paho-mqtt
answers a ping with an unmasked pong, which RFC 6455 calls a protocol error).
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from websockets.exceptions import PayloadTooBig
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol, Side, State
from websockets.server import ServerProtocol

from gate import conf
from gate.connection import MQTTConnection
from gate.limits import ConnectionSlot, TokenBucket
from gate.node import GATE_ID
from gate.sockets import Socket
from gate.ws import (
    GOING_AWAY,
    NORMAL_CLOSURE,
    POLICY_VIOLATION,
    UNSUPPORTED_DATA,
    carries_mqtt,
    choose_subprotocol,
)

logger = logging.getLogger(__name__)

# The largest WebSocket message, in bytes: daphne's default (and uvicorn's as the tests run it).
# A frame is handed on once it is whole, so this bounds what one socket buffers.
MAX_MESSAGE_SIZE = 1024 * 1024
# The handshake request, headers included, at most: a browser's is under 2 KiB. (websockets
# itself allows 128 header lines of 8 KiB each.)
MAX_HANDSHAKE_BYTES = 16384
# Seconds a closing connection waits for the client's close frame before it drops the socket.
CLOSE_TIMEOUT = 1.0

DATA_FRAMES = (Opcode.BINARY, Opcode.CONT)
CONTROL_FRAMES = (Opcode.PING, Opcode.PONG)


class Refused(Exception):
    """The handshake failed; its answer, if any, is written."""


class WebSocket:
    """One socket of the listener: its WebSocket protocol, and the Transport of its
    MQTTConnection once the handshake is done. Writes never wait: the bytes a client has not
    read yet are counted in the socket's buffer."""

    __slots__ = ("_closing", "_pings", "protocol", "socket")
    may_block = False

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.protocol: Protocol = ServerProtocol(
            select_subprotocol=_select_subprotocol, max_size=MAX_MESSAGE_SIZE
        )
        self._pings = TokenBucket(float(conf.get("WS_PING_RATE")), int(conf.get("WS_PING_BURST")))
        self._closing: asyncio.TimerHandle | None = None

    async def handshake(self, timeout: float) -> list[Frame]:
        """Read the handshake and answer it; the frames the client sent behind it. Raises
        Refused (its answer written) and TimeoutError."""
        server = self.protocol
        if not isinstance(server, ServerProtocol):
            raise RuntimeError("The handshake is done already")
        async with asyncio.timeout(timeout):
            events = await self._read_request(server)
        request, frames = events[0], [e for e in events[1:] if isinstance(e, Frame)]
        if not isinstance(request, Request):
            raise Refused(f"Expected a handshake request, got {request!r}")
        if not carries_mqtt(request.path):
            self._answer(server, server.reject(403, "No MQTT on this path.\n"))
            raise Refused(f"no MQTT on its path {request.path[:100]!r}")
        response = server.accept(request)
        self._answer(server, response)
        if response.status_code != 101:
            raise Refused(f"{response.status_code}: {server.handshake_exc}")
        if not frames and not server.reader.buffer:
            # A plain open protocol, without the handshake's request and response (3 KiB).
            self.protocol = Protocol(Side.SERVER, max_size=MAX_MESSAGE_SIZE)
        return frames

    async def _read_request(self, server: ServerProtocol) -> list[Any]:
        """The events of the handshake request: the request, then any frames behind it."""
        received = 0
        while True:
            data = await self.socket.read()
            if not data:
                raise Refused("closed before its handshake")
            received += len(data)
            if received > MAX_HANDSHAKE_BYTES:
                self._answer(server, server.reject(431, "Handshake request too large.\n"))
                raise Refused(f"a handshake over {MAX_HANDSHAKE_BYTES} bytes")
            server.receive_data(data)
            if events := server.events_received():
                return events
            if server.handshake_exc is not None:  # not HTTP (closed), or too long (answered)
                self.flush()
                raise Refused(str(server.handshake_exc))

    async def feed(self, connection: MQTTConnection, frames: list[Frame]) -> None:
        """Hand the client's frames to its connection, at most READ_RATE bytes a second after
        a READ_BURST, until either side closes; a lost socket ends it with a line at INFO."""
        budget = TokenBucket(float(conf.get("READ_RATE")), int(conf.get("READ_BURST")))
        await self._received(connection, frames)
        while self.protocol.state is not State.CLOSED and not self.socket.is_closing():
            data = await self.socket.read()
            if not data:
                self.protocol.receive_eof()
                break
            self.protocol.receive_data(data)
            await self._received(connection, self.protocol.events_received())
            if wait := budget.spend(len(data)):  # backpressure, as gate.tcp
                await asyncio.sleep(wait)
        # A reset after the connection closed (a client that leaves at once after its
        # DISCONNECT, before the close frame) is no loss.
        if self.socket.error is not None and not connection.closed:
            logger.info("%r: connection lost: %s", connection, self.socket.error)

    async def _received(self, connection: MQTTConnection, events: Sequence[object]) -> None:
        for frame in events:
            if connection.closed:
                # Closing already (refused, or closed by its MQTT side): what the client sends
                # while it has not answered the close is not its connection's, and is not
                # refused (and logged) again.
                break
            if not isinstance(frame, Frame):
                continue
            if frame.opcode in DATA_FRAMES:
                await connection.data_received(bytes(frame.data))
            elif frame.opcode is Opcode.TEXT:
                logger.info("%r: closing, a text frame (MQTT travels in binary frames)", connection)
                self._refuse(connection, UNSUPPORTED_DATA)
                break
            elif frame.opcode in CONTROL_FRAMES and not self._pings.admit():
                logger.info("%r: closing, it sent pings past WS_PING_RATE", connection)
                self._refuse(connection, POLICY_VIOLATION)
                break
        if self.protocol.parser_exc is not None and not connection.closed:
            code = 1009 if isinstance(self.protocol.parser_exc, PayloadTooBig) else 1002
            logger.info("%r: closing (%d), %s", connection, code, self.protocol.parser_exc)
            connection.stop_reading()
        self.flush()  # pongs, the close frame answering the client's

    def _refuse(self, connection: MQTTConnection, code: int) -> None:
        connection.stop_reading()
        self._send_close(code)

    # Transport, for MQTTConnection

    async def write(self, data: bytes) -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.send_binary(data)
            self.flush()

    def pending_bytes(self) -> int:
        return self.socket.pending_bytes()

    async def close(self) -> None:
        self._send_close(GOING_AWAY if MQTTConnection.stopping else NORMAL_CLOSURE)

    def abort(self) -> None:
        self.socket.abort()

    # Internals

    def flush(self) -> None:
        """Write what the protocol has to send, in one write (a read of pings has as many
        pongs); its end of stream closes the socket. Once the socket is closing (aborted, or
        lost) nothing is written: a flood read before the close would be answered into a
        closed socket, a write (and a warning of asyncio's) per frame."""
        chunks = self.protocol.data_to_send()
        if self.socket.is_closing():
            return
        if data := b"".join(chunks):
            self.socket.write(data)
        if b"" in chunks:  # after the close handshake, or on a failure: the server closes first
            self.socket.close()

    def _send_close(self, code: int) -> None:
        """Start the close handshake; the socket is dropped if the client does not answer
        within CLOSE_TIMEOUT."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code)
            self.flush()
        if self._closing is None and not self.socket.is_closing():
            self._closing = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.abort)

    def _answer(self, server: ServerProtocol, response: Response) -> None:
        server.send_response(response)
        self.flush()

    def stop(self) -> None:
        if self._closing is not None:
            self._closing.cancel()
        self.socket.close()


def _select_subprotocol(protocol: ServerProtocol, offered: Any) -> Any:
    return choose_subprotocol(list(offered))


async def serve_client(socket: Socket, *, handshake_timeout: float) -> None:
    """Run one client socket until either side closes it. Its connection slot
    (gate.limits.ConnectionSlot) is taken first, before anything is read: a socket the limits
    refuse is closed at once, before its TLS handshake too (gate.sockets). Then the WebSocket
    handshake must arrive within ``handshake_timeout`` seconds."""
    ip = socket.peer()
    slot = ConnectionSlot.take(ip, "ws-listener")
    if slot is None:
        socket.abort()
        return
    websocket = WebSocket(socket)
    try:
        try:
            await socket.start_tls()
            frames = await websocket.handshake(handshake_timeout)
        except (Refused, OSError) as err:  # OSError: TimeoutError, ConnectionError, SSLError
            logger.debug("WebSocket handshake from %s refused: %s", ip, err or "too slow")
            return
        connection = await MQTTConnection.open(
            websocket, ip=ip, network="websocket", server_id=GATE_ID, kind="ws-listener"
        )
        try:
            await websocket.feed(connection, frames)
        finally:
            await connection.connection_lost()
    finally:
        slot.release()
        websocket.stop()
