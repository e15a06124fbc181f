"""MQTT over TCP (mqant's port 3563): the connections of an asyncio server (gate.listeners),
the same MQTTConnection the WebSocket transports use, optionally over TLS."""

import asyncio
import logging
import ssl

from gate import conf
from gate.connection import MQTTConnection
from gate.limits import ConnectionSlot, TokenBucket
from gate.node import GATE_ID

logger = logging.getLogger(__name__)

READ_SIZE = 65536


class TCPTransport:
    """The Transport of one TCP connection. Writes never wait: the bytes a client has not
    read yet are counted in the transport's buffer."""

    may_block = False

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    async def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def pending_bytes(self) -> int:
        return self.writer.transport.get_write_buffer_size()

    async def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.transport.abort()


async def serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Run one client connection until either side closes it. A client the limits refuse
    (gate.limits.ConnectionSlot: the process's, or its address's) is closed at once."""
    peer = writer.get_extra_info("peername") or ("", 0)
    ip = str(peer[0])
    slot = ConnectionSlot.take(ip)
    if slot is None:
        writer.transport.abort()
        return
    try:
        connection = await MQTTConnection.open(
            TCPTransport(writer), ip=ip, network="tcp", server_id=GATE_ID
        )
    except BaseException:  # the slot, and its address's count, must not leak
        slot.release()
        writer.transport.abort()
        raise
    try:
        await _feed(connection, reader)
    finally:
        await connection.connection_lost()
        writer.close()
        slot.release()


async def _feed(connection: MQTTConnection, reader: asyncio.StreamReader) -> None:
    """Hand the client's bytes to its connection, at most READ_RATE a second after a
    READ_BURST, until either side closes; a lost socket ends it with a line at INFO."""
    budget = TokenBucket(float(conf.get("READ_RATE")), int(conf.get("READ_BURST")))
    try:
        while not connection.closed:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            await connection.data_received(data)
            # Past its read budget, the client waits: the reader's buffer fills, asyncio stops
            # reading the socket, and the client's sends block in its kernel (backpressure).
            if wait := budget.spend(len(data)):
                await asyncio.sleep(wait)
    except (ConnectionError, ssl.SSLError, TimeoutError) as err:
        logger.info("%r: connection lost: %s", connection, err)
