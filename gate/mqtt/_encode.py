"""Encoders for packets, one per packet type but PUBLISH (which :func:`codec.encode_publish`
writes from its fields), and the wire's fields they are built of.

Each checks what MQTT requires of the packet and raises LocalProtocolError when it cannot be
encoded.
"""

from collections.abc import Callable, Iterable
from typing import Any

from gate.mqtt import _wire as w
from gate.mqtt.errors import LocalProtocolError
from gate.mqtt.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)


def varint(n: int) -> bytes:
    """The remaining length ``n`` as MQTT's variable-length integer (1-4 bytes)."""
    if n < 0x80:
        return bytes((n,))
    if n > w.MAX_REMAINING_LENGTH:
        raise LocalProtocolError(f"Remaining length {n} exceeds {w.MAX_REMAINING_LENGTH}")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def frame(first: int, parts: Iterable[bytes]) -> bytes:
    """A whole packet: the first byte, the remaining length, then ``parts``."""
    body = b"".join(parts)
    return b"".join((bytes((first,)), varint(len(body)), body))


def u16(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise LocalProtocolError(f"Expected a {what} of 0-65535, got {value}")
    return value.to_bytes(2, "big")


def packet_id_field(value: int | None, name: str) -> bytes:
    """The packet identifier of a ``name`` packet, which must be 1-65535."""
    if value is None or not 1 <= value <= 0xFFFF:
        raise LocalProtocolError(f"Expected a {name} packet_id of 1-65535, got {value}")
    return value.to_bytes(2, "big")


def binary(data: bytes, what: str) -> bytes:
    return u16(len(data), f"{what} length") + data


def string(text: str, what: str) -> bytes:
    """A UTF-8 string field: no U+0000, at most 65535 bytes."""
    if "\x00" in text:
        raise LocalProtocolError(f"{what} contains U+0000")
    try:
        return binary(text.encode(), what)
    except UnicodeEncodeError as err:
        raise LocalProtocolError(f"{what} is not encodable as UTF-8: {err.reason}") from err


def _connect_flags(p: Connect) -> int:
    flags = int(p.clean_session) << 1
    if p.will_topic is not None:
        if p.will_message is None:
            raise LocalProtocolError("Expected a will_message with the will_topic, got None")
        if p.will_qos not in (0, 1, 2):
            raise LocalProtocolError(f"Expected a will_qos of 0-2, got {p.will_qos}")
        flags |= 0x04 | p.will_qos << 3 | int(p.will_retain) << 5
    elif p.will_message is not None or p.will_qos or p.will_retain:
        raise LocalProtocolError("CONNECT sets will fields without a will_topic")
    if p.username is not None:
        flags |= 0x80
    if p.password is not None:
        if p.username is None and p.protocol_level == 4:
            raise LocalProtocolError("MQTT 3.1.1 CONNECT has a password without a username")
        flags |= 0x40
    return flags


def _connect(p: Connect) -> bytes:
    if not 0 <= p.protocol_level <= 0xFF:
        raise LocalProtocolError(f"Expected a protocol_level of 0-255, got {p.protocol_level}")
    parts = [
        string(p.protocol_name, "Protocol name"),
        bytes((p.protocol_level, _connect_flags(p))),
        u16(p.keepalive, "keepalive"),
        string(p.client_id, "Client identifier"),
    ]
    if p.will_topic is not None and p.will_message is not None:
        parts += (string(p.will_topic, "Will topic"), binary(p.will_message, "Will message"))
    if p.username is not None:
        parts.append(string(p.username, "User name"))
    if p.password is not None:
        parts.append(binary(p.password, "Password"))
    return frame(0x10, parts)


def _connack(p: ConnAck) -> bytes:
    if not 0 <= p.return_code <= 0xFF:
        raise LocalProtocolError(f"Expected a CONNACK return_code of 0-255, got {p.return_code}")
    if p.session_present and p.return_code:
        raise LocalProtocolError("CONNACK sets session_present with a non-zero return_code")
    return bytes((0x20, 2, int(p.session_present), p.return_code))


def _subscribe(p: Subscribe) -> bytes:
    if not p.topics:
        raise LocalProtocolError("Expected at least one topic in SUBSCRIBE, got none")
    parts = [packet_id_field(p.packet_id, "SUBSCRIBE")]
    for topic_filter, qos in p.topics:
        _check_filter(topic_filter)
        if qos not in (0, 1, 2):
            raise LocalProtocolError(f"Expected a requested QoS of 0-2, got {qos}")
        parts += (string(topic_filter, "Topic filter"), bytes((qos,)))
    return frame(0x82, parts)


def _suback(p: SubAck) -> bytes:
    if not p.return_codes:
        raise LocalProtocolError("Expected at least one return code in SUBACK, got none")
    for code in p.return_codes:
        if code not in w.SUBACK_CODES:
            raise LocalProtocolError(f"Expected a SUBACK return code 0-2 or 0x80, got {code}")
    return frame(0x90, (packet_id_field(p.packet_id, "SUBACK"), bytes(p.return_codes)))


def _unsubscribe(p: Unsubscribe) -> bytes:
    if not p.topics:
        raise LocalProtocolError("Expected at least one topic in UNSUBSCRIBE, got none")
    parts = [packet_id_field(p.packet_id, "UNSUBSCRIBE")]
    for topic_filter in p.topics:
        _check_filter(topic_filter)
        parts.append(string(topic_filter, "Topic filter"))
    return frame(0xA2, parts)


def _check_filter(topic_filter: str) -> None:
    problem = w.topic_filter_problem(topic_filter)
    if problem is not None:
        raise LocalProtocolError(problem)


def _id_only(first: int, ptype: int) -> Callable[[Any], bytes]:
    """The encoder of a packet that is its fixed header and a packet identifier."""
    head, name = bytes((first, 2)), w.TYPE_NAMES[ptype]
    return lambda p: head + packet_id_field(p.packet_id, name)


def _constant(data: bytes) -> Callable[[Any], bytes]:
    return lambda _p: data


PACKET_ENCODERS: dict[type[Packet], Callable[[Any], bytes]] = {
    Connect: _connect,
    ConnAck: _connack,
    PubAck: _id_only(0x40, w.PUBACK),
    PubRec: _id_only(0x50, w.PUBREC),
    PubRel: _id_only(0x62, w.PUBREL),
    PubComp: _id_only(0x70, w.PUBCOMP),
    Subscribe: _subscribe,
    SubAck: _suback,
    Unsubscribe: _unsubscribe,
    UnsubAck: _id_only(0xB0, w.UNSUBACK),
    PingReq: _constant(b"\xc0\x00"),
    PingResp: _constant(b"\xd0\x00"),
    Disconnect: _constant(b"\xe0\x00"),
}
