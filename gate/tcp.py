"""MQTT over TCP (mqant's port 3563): an asyncio server whose connections are the same
MQTTConnection the WebSocket consumer uses, optionally over TLS."""

import asyncio
import logging
import ssl

from gate import conf
from gate.connection import MQTTConnection
from gate.limits import ConnectionSlot, TokenBucket
from gate.node import GATE_ID
from mqant import config as mqant_config

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


def listener_settings() -> tuple[str, str, str]:
    """(TCP address, certificate, key) of this process's listener: its ``Gate`` entry in the
    deployment file (mqant's ``TCPAddr``, ``TLS``/``Tls``, ``CertFile``, ``KeyFile``) where it
    says, else ``TCP_ADDR``, ``TLS_CERT``, ``TLS_KEY``."""
    addr, cert, key = conf.get("TCP_ADDR"), conf.get("TLS_CERT"), conf.get("TLS_KEY")
    gate = mqant_config.gate_settings() or {}
    addr = str(gate.get("TCPAddr", addr))
    if gate.get("TLS", gate.get("Tls")):
        cert, key = gate.get("CertFile", cert), gate.get("KeyFile", key)
    return addr, cert, key


def tls_context(cert: str, key: str) -> ssl.SSLContext | None:
    """A server TLS context from a PEM certificate and key, or None when they are not set."""
    if not cert or not key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def parse_addr(addr: str) -> tuple[str, int]:
    """``"host:port"`` (``":3563"`` for every interface) as (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"Expected TCP_ADDR as host:port, got {addr!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":port" means every interface


_servers: list[asyncio.Server] = []


async def start_listener() -> asyncio.Server | None:
    """Start the TCP listener of TCP_ADDR (none when it is empty). A port already taken is
    logged as an error; the WebSocket gate goes on serving."""
    addr, cert, key = listener_settings()
    if not addr:
        return None
    host, port = parse_addr(addr)
    context = tls_context(cert, key)
    try:
        server = await asyncio.start_server(
            serve_client,
            host,
            port,
            ssl=context,
            # A TLS handshake comes before CONNECT; it gets the same deadline.
            ssl_handshake_timeout=float(conf.get("CONNECT_TIMEOUT")) if context else None,
        )
    except OSError as err:
        logger.error("MQTT over TCP could not listen on %s: %s", addr, err)
        return None
    _servers.append(server)
    scheme = "mqtts" if context else "mqtt"
    logger.info("MQTT over TCP listening on %s://%s:%d", scheme, host, port)
    return server


async def stop_listeners() -> None:
    while _servers:
        server = _servers.pop()
        server.close()
        await server.wait_closed()
