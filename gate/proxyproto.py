"""The PROXY protocol's header (HAProxy's, versions 1 and 2), sans-IO: bytes in, the client's
address out. A proxy in front of the gate's own listeners (nginx's stream module with
``proxy_protocol on``, HAProxy's ``send-proxy``) writes it first on each connection, so that
the gate counts its per-address limits against the client, not against the proxy.

Only the source address is read; the header is bounded (a version 1 header is 107 bytes at
most, as the specification says; a version 2 one MAX_V2_LENGTH here, TLVs included) and any
deviation is a ProxyProtocolError: the connection is then closed, never read as MQTT.
"""

import ipaddress
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER = 16  # the signature, version and command, family and protocol, length
# A version 2 header, TLVs included: HAProxy's own recommended buffer.
MAX_V2_LENGTH = 536

# Version 2's address families, with the bytes of their source and destination addresses.
_V2_FAMILIES = {0x1: 4, 0x2: 16}
_V1_FAMILIES = {b"TCP4": ipaddress.IPv4Address, b"TCP6": ipaddress.IPv6Address}


class ProxyProtocolError(ValueError):
    """The bytes are not a PROXY protocol header this parser accepts."""


@dataclass(frozen=True)
class ProxyHeader:
    """A parsed header: the client's address ("" when the proxy gives none: version 1's
    UNKNOWN, version 2's LOCAL command or an unspecified family) and the header's length."""

    source: str
    length: int


def parse(data: bytes) -> ProxyHeader | None:
    """The header at the start of ``data``; None while it is incomplete. Raises
    ProxyProtocolError when the bytes cannot start a valid header."""
    if not data:
        return None
    if data[: len(V2_SIGNATURE)] == V2_SIGNATURE[: len(data)] and data[:1] == b"\r":
        return _parse_v2(data)
    if data[: len(V1_PREFIX)] == V1_PREFIX[: len(data)] and data[:1] == b"P":
        return _parse_v1(data)
    raise ProxyProtocolError(f"Expected a PROXY protocol header, got {data[:16]!r}")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyProtocolError(f"A PROXY v1 header longer than {V1_MAX_LENGTH} bytes")
        return None
    fields = data[:end].split(b" ")
    if len(fields) >= 2 and fields[1] == b"UNKNOWN":
        return ProxyHeader("", end + 2)
    if len(fields) != 6 or fields[1] not in _V1_FAMILIES:
        raise ProxyProtocolError(f"Expected PROXY TCP4|TCP6 src dst sport dport, got {fields!r}")
    family = _V1_FAMILIES[fields[1]]
    if b"%" in fields[2] or b"%" in fields[3]:  # an IPv6 zone: any text, a newline included
        raise ProxyProtocolError(f"A PROXY v1 header with an address zone: {fields[2:4]!r}")
    try:
        source = family(fields[2].decode("ascii"))
        family(fields[3].decode("ascii"))
        ports = [int(port) for port in fields[4:6] if port.isdigit() and len(port) <= 5]
    except (UnicodeDecodeError, ValueError) as err:
        raise ProxyProtocolError(f"A PROXY v1 header with a bad address: {err}") from err
    if len(ports) != 2 or not all(0 <= port <= 65535 for port in ports):
        raise ProxyProtocolError(f"A PROXY v1 header with bad ports: {fields[4:6]!r}")
    return ProxyHeader(str(source), end + 2)


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if len(data) < V2_HEADER:
        return None
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2 or command > 1:
        raise ProxyProtocolError(f"A PROXY v2 header of version {version}, command {command}")
    length = V2_HEADER + int.from_bytes(data[14:16], "big")
    if length > MAX_V2_LENGTH:
        raise ProxyProtocolError(f"A PROXY v2 header of {length} bytes, over {MAX_V2_LENGTH}")
    if len(data) < length:
        return None
    size = _V2_FAMILIES.get(data[13] >> 4)
    if command == 0 or size is None:  # LOCAL (the proxy's own check), or no address given
        return ProxyHeader("", length)
    if length < V2_HEADER + 2 * size + 4:
        raise ProxyProtocolError(f"A PROXY v2 header too short for its addresses: {length}")
    source = ipaddress.ip_address(data[V2_HEADER : V2_HEADER + size])
    return ProxyHeader(str(source), length)
