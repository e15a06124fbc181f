"""Who a socket of the gate's own listeners is from, and its connection slot.

A socket from an address of ``PROXY_PROTOCOL_FROM`` (a trusted proxy: nginx's stream module
with ``proxy_protocol on``, HAProxy's ``send-proxy``) must start with a PROXY protocol
header (gate.proxyproto) naming the client. Its slot is taken at accept against the
process's MAX_CONNECTIONS only, and counted against the client's address (its
MAX_CONNECTIONS_PER_ADDRESS, its connect rate) once the header has said which, within
HEADER_TIMEOUT seconds and MAX_V2_LENGTH bytes; a socket without a valid header in time is
closed. Any other socket is never asked for a header (its first bytes are MQTT's or
HTTP's): its slot is its own address's from the start, as without a proxy.
"""

import asyncio
import functools
import ipaddress
import logging

from gate import conf, proxyproto
from gate.limits import ConnectionSlot, refusals
from gate.sockets import Socket
from mqant import metrics

logger = logging.getLogger(__name__)

# Seconds a trusted proxy has to send its header: it writes it at once, before any byte of
# the client's.
HEADER_TIMEOUT = 5.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_proxies() -> tuple[Network, ...]:
    """The networks of ``PROXY_PROTOCOL_FROM``. Raises ValueError for an entry that is not an
    address or a network."""
    entries = conf.get("PROXY_PROTOCOL_FROM") or ()
    if isinstance(entries, str):
        raise ValueError(f"expected a list of addresses, got the string {entries!r}")
    return _networks(tuple(str(entry) for entry in entries))


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def is_trusted(peer: str) -> bool:
    """Whether ``peer`` is a proxy whose sockets start with a PROXY protocol header."""
    networks = trusted_proxies()
    if not networks or not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


async def admit(
    socket: Socket, transport: str = "tcp", timeout: float = HEADER_TIMEOUT
) -> tuple[ConnectionSlot, str] | None:
    """The socket's connection slot and its client's address, or None when the limits
    refuse it or its trusted proxy sent no valid header in time (the caller closes it).
    Refusals are counted under ``transport`` (mqant.metrics.TRANSPORTS)."""
    peer = socket.peer()
    if not is_trusted(peer):
        slot = ConnectionSlot.take(peer, transport)
        return None if slot is None else (slot, peer)
    slot = ConnectionSlot.take("", transport)  # the process's cap; the client's once known
    if slot is None:
        return None
    try:
        header = await read_header(socket, timeout)
    except (proxyproto.ProxyProtocolError, OSError) as err:  # OSError: TimeoutError, closed
        refusals.note("MQTT connection refused: no valid PROXY protocol header", peer)
        metrics.transport(transport).refused("protocol")
        logger.debug("PROXY protocol header from %s refused: %s", peer, err or "too slow")
        slot.release()
        return None
    client = header.source or peer  # no address (a proxy's own check): the proxy's
    if not slot.rekey(client, transport):
        slot.release()
        return None
    return slot, client


async def read_header(socket: Socket, timeout: float) -> proxyproto.ProxyHeader:
    """Read the PROXY protocol header at the start of ``socket``; the bytes behind it stay in
    the socket for its protocol. Raises ProxyProtocolError, TimeoutError past ``timeout``,
    ConnectionError when the socket closes first."""
    data = b""
    async with asyncio.timeout(timeout):
        while True:
            chunk = await socket.read()
            if not chunk:
                raise ConnectionError("closed before its PROXY protocol header")
            data += chunk
            header = proxyproto.parse(data)
            if header is not None:
                socket.unread(data[header.length :])
                return header
