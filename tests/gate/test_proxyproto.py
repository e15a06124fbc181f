"""gate.proxyproto: the PROXY protocol header, versions 1 and 2, byte by byte, with the
specification's examples, bounds and malformed headers."""

import ipaddress
import struct

import pytest

from gate import proxyproto
from gate.proxyproto import ProxyHeader, ProxyProtocolError, parse

V1 = b"PROXY TCP4 192.0.2.7 127.0.0.1 56324 3563\r\n"


def v2(command: int = 1, family: int = 0x11, source: str = "192.0.2.7", tlvs: bytes = b"") -> bytes:
    """A version 2 header: ``family`` 0x11 (TCP over IPv4) or 0x21 (over IPv6)."""
    if family >> 4 == 1:
        addresses = ipaddress.IPv4Address(source).packed + bytes(4) + struct.pack("!HH", 1, 2)
    elif family >> 4 == 2:
        addresses = ipaddress.IPv6Address(source).packed + bytes(16) + struct.pack("!HH", 1, 2)
    else:
        addresses = b""
    body = addresses + tlvs
    return (
        proxyproto.V2_SIGNATURE
        + bytes([0x20 | command, family])
        + struct.pack("!H", len(body))
        + body
    )


def test_v1_tcp4_with_the_bytes_behind_it_left_alone():
    assert parse(V1 + b"\x10\x0c\x00") == ProxyHeader("192.0.2.7", len(V1))


def test_v1_tcp6_and_unknown():
    header = b"PROXY TCP6 2001:db8::1 ::1 1 3563\r\n"
    assert parse(header) == ProxyHeader("2001:db8::1", len(header))
    assert parse(b"PROXY UNKNOWN\r\n") == ProxyHeader("", 15)
    longest = b"PROXY UNKNOWN " + b"f" * 91 + b"\r\n"  # 107 bytes, the specification's most
    assert parse(longest) == ProxyHeader("", 107)


@pytest.mark.parametrize("cut", range(0, len(V1)))
def test_an_incomplete_v1_header_asks_for_more(cut):
    assert parse(V1[:cut]) is None


def test_v2_ipv4_ipv6_local_and_tlvs():
    assert parse(v2()) == ProxyHeader("192.0.2.7", 28)
    assert parse(v2(family=0x21, source="2001:db8::7")) == ProxyHeader("2001:db8::7", 52)
    assert parse(v2(command=0, family=0x00)) == ProxyHeader("", 16)  # LOCAL: a proxy's check
    assert parse(v2(family=0x31)) == ProxyHeader("", 16)  # a UNIX socket: no IP address
    with_tlv = v2(tlvs=b"\x04\x00\x03abc")
    assert parse(with_tlv + b"MQTT") == ProxyHeader("192.0.2.7", len(with_tlv))


@pytest.mark.parametrize("cut", range(0, 28))
def test_an_incomplete_v2_header_asks_for_more(cut):
    assert parse(v2()[:cut]) is None


@pytest.mark.parametrize(
    "data",
    [
        b"\x10\x0c\x00\x04MQTT",  # MQTT's CONNECT, no header
        b"GET / HTTP/1.1\r\n",
        b"PROXY TCP4 192.0.2.7 127.0.0.1 56324\r\n",  # a field missing
        b"PROXY TCP5 192.0.2.7 127.0.0.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.999 127.0.0.1 1 2\r\n",
        b"PROXY TCP4 2001:db8::1 127.0.0.1 1 2\r\n",  # IPv6 in TCP4
        b"PROXY TCP4 192.0.2.7 127.0.0.1 1 65536\r\n",
        b"PROXY TCP4 192.0.2.7 127.0.0.1 -1 2\r\n",
        b"PROXY TCP4 192.0.2.7\xff 127.0.0.1 1 2\r\n",
        b"PROXY  TCP4 192.0.2.7 127.0.0.1 1 2\r\n",
        b"proxy TCP4 192.0.2.7 127.0.0.1 1 2\r\n",
        # An IPv6 zone is no client's address; this one would forge a log line of its own.
        b"PROXY TCP6 fe80::1%a\nforged ::1 1 2\r\n",
        b"PROXY TCP6 2001:db8::1 fe80::1%eth0 1 2\r\n",
        v2()[:12] + b"\x10" + v2()[13:],  # version 1 in a version 2 signature
        v2()[:12] + b"\x22" + v2()[13:],  # command 2
        v2()[:14] + b"\x00\x04" + v2()[16:20],  # too short for its IPv4 addresses
        b"\r\n\r\n\x00\r\nQUIX\n" + bytes(8),  # a wrong signature
    ],
)
def test_malformed_headers_are_refused(data):
    with pytest.raises(ProxyProtocolError):
        parse(data)


def test_oversized_headers_are_refused_at_their_bound():
    with pytest.raises(ProxyProtocolError, match="longer than 107"):
        parse(b"PROXY UNKNOWN " + b"f" * 200)
    assert parse(b"PROXY UNKNOWN " + b"f" * 92) is None  # 106 bytes without CRLF: may end yet
    big = proxyproto.V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", proxyproto.MAX_V2_LENGTH)
    with pytest.raises(ProxyProtocolError, match="over 536"):
        parse(big)  # refused from its length field alone, before its body is buffered
