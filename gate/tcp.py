"""MQTT over TCP (mqant's port 3563): the connections of an asyncio server (gate.listeners),
the same MQTTConnection the WebSocket transports use, optionally over TLS."""

import asyncio
import logging

from gate import admission, conf
from gate.connection import MQTTConnection
from gate.limits import TokenBucket
from gate.node import GATE_ID
from gate.sockets import Socket

logger = logging.getLogger(__name__)


class TCPTransport:
    """The Transport of one TCP connection. Writes never wait: the bytes a client has not
    read yet are counted in the socket's buffer."""

    __slots__ = ("socket",)
    may_block = False

    def __init__(self, socket: Socket) -> None:
        self.socket = socket

    async def write(self, data: bytes) -> None:
        self.socket.write(data)

    def pending_bytes(self) -> int:
        return self.socket.pending_bytes()

    async def close(self) -> None:
        self.socket.close()

    def abort(self) -> None:
        self.socket.abort()


async def serve_client(socket: Socket) -> None:
    """Run one client connection until either side closes it. A client the limits refuse
    (gate.limits.ConnectionSlot: the process's, or its address's, the one a trusted proxy
    names: gate.admission) is closed at once."""
    admitted = await admission.admit(socket)
    if admitted is None:  # before its TLS handshake, if any (gate.sockets)
        socket.abort()
        return
    slot, ip = admitted
    try:
        try:
            await socket.start_tls()
        except OSError as err:  # TimeoutError, ConnectionError, SSLError
            logger.debug("TLS handshake from %s failed: %s", ip, err or "too slow")
            return
        connection = await MQTTConnection.open(
            TCPTransport(socket), ip=ip, network="tcp", server_id=GATE_ID
        )
        try:
            await _feed(connection, socket)
        finally:
            await connection.connection_lost()
    finally:
        slot.release()


async def _feed(connection: MQTTConnection, socket: Socket) -> None:
    """Hand the client's bytes to its connection, at most READ_RATE a second after a
    READ_BURST, until either side closes; a lost socket ends it with a line at INFO."""
    budget = TokenBucket(float(conf.get("READ_RATE")), int(conf.get("READ_BURST")))
    while not connection.closed:
        data = await socket.read()
        if not data:
            break
        await connection.data_received(data)
        # Past its read budget, the client waits: the socket's buffer fills, it stops
        # reading, and the client's sends block in its kernel (backpressure).
        if wait := budget.spend(len(data)):
            await asyncio.sleep(wait)
    # A reset once the connection closed is no loss.
    if socket.error is not None and not connection.closed:
        logger.info("%r: connection lost: %s", connection, socket.error)
