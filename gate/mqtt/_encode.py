"""Encoders for packets, one per packet type and layout (3.1/3.1.1, or 5.0) but PUBLISH (which
:func:`codec.encode_publish` writes from its fields), and the wire's fields they are built of.

Each checks what MQTT requires of the packet and raises LocalProtocolError when it cannot be
encoded.
"""

from collections.abc import Callable, Iterable
from typing import Any

from gate.mqtt import _wire as w
from gate.mqtt._props import properties_bytes
from gate.mqtt._wire import binary, string, u16
from gate.mqtt._wire import varint as varint  # where the tests (and callers) have found it
from gate.mqtt.errors import LocalProtocolError
from gate.mqtt.packets import (
    Auth,
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
from gate.mqtt.properties import NO_PROPERTIES, WILL, Properties


def frame(first: int, parts: Iterable[bytes]) -> bytes:
    """A whole packet: the first byte, the remaining length, then ``parts``."""
    body = b"".join(parts)
    return b"".join((bytes((first,)), varint(len(body)), body))


def packet_id_field(value: int | None, name: str) -> bytes:
    """The packet identifier of a ``name`` packet, which must be 1-65535."""
    if value is None or not 1 <= value <= 0xFFFF:
        raise LocalProtocolError(f"Expected a {name} packet_id of 1-65535, got {value}")
    return value.to_bytes(2, "big")


def is_empty(properties: Properties) -> bool:
    """True when ``properties`` sets none: the cheap identity test first."""
    return properties is NO_PROPERTIES or properties == NO_PROPERTIES


def v5_fields(packet: Any) -> list[str]:
    """The MQTT 5.0 fields ``packet`` sets (a reason code, properties), which a level 3-4
    packet cannot carry."""
    found = []
    if getattr(packet, "reason_code", 0):
        found.append("reason_code")
    if getattr(packet, "reason_codes", ()):
        found.append("reason_codes")
    for field in ("properties", "will_properties"):
        if not is_empty(getattr(packet, field, NO_PROPERTIES)):
            found.append(field)
    return found


def _check_code(code: int, codes: frozenset[int], name: str) -> None:
    if code not in codes:
        raise LocalProtocolError(f"Expected a reason code {name} may carry, got {code:#04x}")


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
    elif not is_empty(p.will_properties):
        raise LocalProtocolError("CONNECT sets will_properties without a will_topic")
    if p.username is not None:
        flags |= 0x80
    if p.password is not None:
        if p.username is None and p.protocol_level == 4:
            raise LocalProtocolError("MQTT 3.1.1 CONNECT has a password without a username")
        flags |= 0x40
    return flags


def _connect(p: Connect) -> bytes:
    """CONNECT, in the layout of its own ``protocol_level``: properties only at level 5."""
    level = p.protocol_level
    if not 0 <= level <= 0xFF:
        raise LocalProtocolError(f"Expected a protocol_level of 0-255, got {level}")
    if level != 5 and (found := v5_fields(p)):
        raise LocalProtocolError(f"Expected no {' or '.join(found)} in a level {level} CONNECT")
    parts = [
        string(p.protocol_name, "Protocol name"),
        bytes((level, _connect_flags(p))),
        u16(p.keepalive, "keepalive"),
    ]
    if level == 5:
        parts.append(properties_bytes(p.properties, w.CONNECT))
    parts.append(string(p.client_id, "Client identifier"))
    if p.will_topic is not None and p.will_message is not None:
        if level == 5:
            parts.append(properties_bytes(p.will_properties, WILL))
        parts += (string(p.will_topic, "Will topic"), binary(p.will_message, "Will message"))
    if p.username is not None:
        parts.append(string(p.username, "User name"))
    if p.password is not None:
        parts.append(binary(p.password, "Password"))
    return frame(0x10, parts)


def _connack_flags(p: ConnAck) -> bytes:
    if not 0 <= p.return_code <= 0xFF:
        raise LocalProtocolError(f"Expected a CONNACK return_code of 0-255, got {p.return_code}")
    if p.session_present and p.return_code:
        raise LocalProtocolError("CONNACK sets session_present with a non-zero return_code")
    return bytes((int(p.session_present), p.return_code))


def _connack(p: ConnAck) -> bytes:
    return b"\x20\x02" + _connack_flags(p)


def _connack5(p: ConnAck) -> bytes:
    head = _connack_flags(p)
    _check_code(p.return_code, w.CONNACK_CODES_5, "CONNACK")
    return frame(0x20, (head, properties_bytes(p.properties, w.CONNACK)))


def _requested_qos(qos: int) -> None:
    if qos not in (0, 1, 2):
        raise LocalProtocolError(f"Expected a requested QoS of 0-2, got {qos}")


def _subscription_options(options: int) -> None:
    """The options byte of a 5.0 SUBSCRIBE: QoS, No Local, Retain As Published, Retain
    Handling; bits 6-7 reserved."""
    if not 0 <= options <= 0x3F:
        raise LocalProtocolError(f"Expected subscription options of 0-0x3f, got {options:#x}")
    if options & 3 == 3:
        raise LocalProtocolError("Expected a maximum QoS of 0-2 in the options, got 3")
    if options >> 4 == 3:
        raise LocalProtocolError("Expected a retain handling of 0-2 in the options, got 3")


def _subscribe_parts(p: Subscribe, check: Callable[[int], None]) -> list[bytes]:
    if not p.topics:
        raise LocalProtocolError("Expected at least one topic in SUBSCRIBE, got none")
    parts: list[bytes] = []
    for topic_filter, options in p.topics:
        _check_filter(topic_filter)
        check(options)
        parts += (string(topic_filter, "Topic filter"), bytes((options,)))
    return parts


def _subscribe(p: Subscribe) -> bytes:
    parts = _subscribe_parts(p, _requested_qos)
    return frame(0x82, (packet_id_field(p.packet_id, "SUBSCRIBE"), *parts))


def _subscribe5(p: Subscribe) -> bytes:
    parts = _subscribe_parts(p, _subscription_options)
    head = packet_id_field(p.packet_id, "SUBSCRIBE")
    return frame(0x82, (head, properties_bytes(p.properties, w.SUBSCRIBE), *parts))


def _suback(p: SubAck) -> bytes:
    if not p.return_codes:
        raise LocalProtocolError("Expected at least one return code in SUBACK, got none")
    for code in p.return_codes:
        if code not in w.SUBACK_CODES:
            raise LocalProtocolError(f"Expected a SUBACK return code 0-2 or 0x80, got {code}")
    return frame(0x90, (packet_id_field(p.packet_id, "SUBACK"), bytes(p.return_codes)))


def _codes_after_properties(
    first: int, ptype: int, codes: frozenset[int]
) -> Callable[[Any], bytes]:
    """SUBACK or UNSUBACK at level 5: packet id, properties, then a reason code per filter."""
    name = w.TYPE_NAMES[ptype]
    field = "return_codes" if ptype == w.SUBACK else "reason_codes"

    def encode(p: Any) -> bytes:
        found: tuple[int, ...] = getattr(p, field)
        if not found:
            raise LocalProtocolError(f"Expected at least one reason code in {name}, got none")
        for code in found:
            _check_code(code, codes, name)
        head = packet_id_field(p.packet_id, name)
        return frame(first, (head, properties_bytes(p.properties, ptype), bytes(found)))

    return encode


def _unsubscribe_parts(p: Unsubscribe) -> list[bytes]:
    if not p.topics:
        raise LocalProtocolError("Expected at least one topic in UNSUBSCRIBE, got none")
    parts = []
    for topic_filter in p.topics:
        _check_filter(topic_filter)
        parts.append(string(topic_filter, "Topic filter"))
    return parts


def _unsubscribe(p: Unsubscribe) -> bytes:
    parts = _unsubscribe_parts(p)
    return frame(0xA2, (packet_id_field(p.packet_id, "UNSUBSCRIBE"), *parts))


def _unsubscribe5(p: Unsubscribe) -> bytes:
    parts = _unsubscribe_parts(p)
    head = packet_id_field(p.packet_id, "UNSUBSCRIBE")
    return frame(0xA2, (head, properties_bytes(p.properties, w.UNSUBSCRIBE), *parts))


def _check_filter(topic_filter: str) -> None:
    problem = w.topic_filter_problem(topic_filter)
    if problem is not None:
        raise LocalProtocolError(problem)


def _id_only(first: int, ptype: int) -> Callable[[Any], bytes]:
    """The encoder of a packet that is its fixed header and a packet identifier."""
    head, name = bytes((first, 2)), w.TYPE_NAMES[ptype]
    return lambda p: head + packet_id_field(p.packet_id, name)


def _acknowledgement(first: int, ptype: int, codes: frozenset[int]) -> Callable[[Any], bytes]:
    """PUBACK, PUBREC, PUBREL or PUBCOMP at level 5, in its shortest form: the packet id
    alone (remaining length 2) for success without properties, then the reason code alone."""
    name = w.TYPE_NAMES[ptype]
    short, with_code = bytes((first, 2)), bytes((first, 3))

    def encode(p: Any) -> bytes:
        packet_id = packet_id_field(p.packet_id, name)
        code = p.reason_code
        _check_code(code, codes, name)
        if not is_empty(p.properties):
            return frame(first, (packet_id, bytes((code,)), properties_bytes(p.properties, ptype)))
        if code:
            return with_code + packet_id + bytes((code,))
        return short + packet_id

    return encode


def _reason_and_properties(first: int, ptype: int, codes: frozenset[int]) -> Callable[[Any], bytes]:
    """DISCONNECT or AUTH at level 5, in its shortest form: nothing for reason code 0 without
    properties (remaining length 0), then the reason code alone."""
    name = w.TYPE_NAMES[ptype]

    def encode(p: Any) -> bytes:
        code = p.reason_code
        _check_code(code, codes, name)
        if not is_empty(p.properties):
            return frame(first, (bytes((code,)), properties_bytes(p.properties, ptype)))
        if code:
            return bytes((first, 1, code))
        return bytes((first, 0))

    return encode


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

PACKET_ENCODERS_5: dict[type[Packet], Callable[[Any], bytes]] = {
    **PACKET_ENCODERS,
    ConnAck: _connack5,
    PubAck: _acknowledgement(0x40, w.PUBACK, w.PUBACK_CODES_5),
    PubRec: _acknowledgement(0x50, w.PUBREC, w.PUBACK_CODES_5),
    PubRel: _acknowledgement(0x62, w.PUBREL, w.PUBREL_CODES_5),
    PubComp: _acknowledgement(0x70, w.PUBCOMP, w.PUBREL_CODES_5),
    Subscribe: _subscribe5,
    SubAck: _codes_after_properties(0x90, w.SUBACK, w.SUBACK_CODES_5),
    Unsubscribe: _unsubscribe5,
    UnsubAck: _codes_after_properties(0xB0, w.UNSUBACK, w.UNSUBACK_CODES_5),
    Disconnect: _reason_and_properties(0xE0, w.DISCONNECT, w.DISCONNECT_CODES_5),
    Auth: _reason_and_properties(0xF0, w.AUTH, w.AUTH_CODES_5),
}
