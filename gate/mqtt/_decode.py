"""Decoders for packet bodies, one per packet type and layout (3.1/3.1.1, or 5.0).

Each takes the fixed-header flags and the buffer with the body's bounds ``[i, end)``; the
fixed header (type, flags, fixed lengths) has already been checked by the Decoder. A CONNECT
is read in the layout of the level it declares, whatever the decoder's level.
"""

import functools
from collections.abc import Callable

from gate.mqtt import _wire as w
from gate.mqtt import reasons
from gate.mqtt._props import read_properties
from gate.mqtt.errors import ProtocolError
from gate.mqtt.packets import (
    SUPPORTED_PROTOCOLS,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from gate.mqtt.properties import NO_PROPERTIES, WILL, Properties

BodyDecoder = Callable[[int, bytearray, int, int], Packet]

# The most filters a SUBSCRIBE can hold: a 256 MB packet of 5-byte filters.
MAX_TOPICS = 1 << 26

malformed = w.malformed
read_str = w.read_str


def _read_packet_id(buf: bytearray, i: int, end: int, name: str) -> int:
    packet_id = w.read_u16(buf, i, end, f"{name} packet identifier")
    if packet_id == 0:
        raise ProtocolError(f"Expected a {name} packet identifier of 1-65535, got 0")
    return packet_id


def _expect_end(i: int, end: int, name: str) -> None:
    if i != end:
        raise malformed(f"{name} has {end - i} bytes left over after its last field")


def _check_code(code: int, codes: frozenset[int], name: str) -> None:
    if code not in codes:
        raise ProtocolError(f"Expected a reason code {name} may carry, got {code:#04x}")


def _check_connect_flags(flags: int, level: int) -> None:
    if flags & 0x01:
        raise malformed("CONNECT has its reserved flag set")
    if (flags >> 3) & 3 == 3:
        raise malformed("Expected a will QoS of 0-2 in CONNECT, got 3")
    if not flags & 0x04 and flags & 0x38:
        raise malformed("CONNECT sets will QoS or will retain without the will flag")
    if flags & 0x40 and not flags & 0x80 and level == 4:
        raise ProtocolError("CONNECT sets the password flag without the username flag")


def _connect_payload(
    name: str, level: int, flags: int, keepalive: int, buf: bytearray, i: int, end: int
) -> Connect:
    _check_connect_flags(flags, level)
    properties = will_properties = NO_PROPERTIES
    if level == 5:
        properties, i = read_properties(buf, i, end, w.CONNECT)
    client_id, i = read_str(buf, i, end, "Client identifier")
    will_topic = username = None
    will_message = password = None
    if flags & 0x04:
        if level == 5:
            will_properties, i = read_properties(buf, i, end, WILL)
        will_topic, i = read_str(buf, i, end, "Will topic")
        will_message, i = w.read_bytes(buf, i, end, "Will message")
    if flags & 0x80:
        username, i = read_str(buf, i, end, "User name")
    if flags & 0x40:
        password, i = w.read_bytes(buf, i, end, "Password")
    _expect_end(i, end, "CONNECT")
    return Connect(
        protocol_name=name,
        protocol_level=level,
        client_id=client_id,
        clean_session=bool(flags & 0x02),
        keepalive=keepalive,
        username=username,
        password=password,
        will_topic=will_topic,
        will_message=will_message,
        will_qos=(flags >> 3) & 3,
        will_retain=bool(flags & 0x20),
        properties=properties,
        will_properties=will_properties,
    )


def _connect(_flags: int, buf: bytearray, i: int, end: int) -> Connect:
    name, i = read_str(buf, i, end, "Protocol name")
    if end - i < 4:
        raise malformed(f"Expected 4 more CONNECT header bytes, got {end - i}")
    level, flags, keepalive = buf[i], buf[i + 1], (buf[i + 2] << 8) | buf[i + 3]
    try:
        return _connect_payload(name, level, flags, keepalive, buf, i + 4, end)
    except ProtocolError:
        if (name, level) in SUPPORTED_PROTOCOLS:
            raise
        # Another protocol may lay the rest out differently; the server still owes it
        # CONNACK 1 (3.1.1, section 3.1.2.2), so keep what was readable.
        return Connect(name, level, "", bool(flags & 0x02), keepalive)


def _connack_flags(ack_flags: int, return_code: int) -> bool:
    if ack_flags & 0xFE:
        raise malformed(f"Expected CONNACK flags 0 or 1, got {ack_flags:#04x}")
    if ack_flags and return_code:
        raise ProtocolError(f"CONNACK sets session present with return code {return_code}")
    return bool(ack_flags)


def _connack(_flags: int, buf: bytearray, i: int, _end: int) -> ConnAck:
    return ConnAck(buf[i + 1], _connack_flags(buf[i], buf[i + 1]))


def _connack5(_flags: int, buf: bytearray, i: int, end: int) -> ConnAck:
    if end - i < 2:
        raise malformed(f"Expected CONNACK flags and reason code, got {end - i} bytes")
    code = buf[i + 1]
    session_present = _connack_flags(buf[i], code)
    _check_code(code, w.CONNACK_CODES_5, "CONNACK")
    properties, i = read_properties(buf, i + 2, end, w.CONNACK)
    _expect_end(i, end, "CONNACK")
    return ConnAck(code, session_present, properties)


def _topic_name_error(topic: str, problem: str) -> ProtocolError:
    return malformed(problem) if topic else ProtocolError(problem)


def _publish(flags: int, buf: bytearray, i: int, end: int) -> Publish:
    topic, i = read_str(buf, i, end, "Topic name")
    problem = w.topic_name_problem(topic)
    if problem is not None:
        raise _topic_name_error(topic, problem)
    qos = (flags >> 1) & 3
    packet_id = None
    if qos:
        packet_id = _read_packet_id(buf, i, end, "PUBLISH")
        i += 2
    return Publish(topic, bytes(buf[i:end]), qos, bool(flags & 1), bool(flags & 8), packet_id)


def _publish5(flags: int, buf: bytearray, i: int, end: int) -> Publish:
    topic, i = read_str(buf, i, end, "Topic name")
    qos = (flags >> 1) & 3
    packet_id = None
    if qos:
        packet_id = _read_packet_id(buf, i, end, "PUBLISH")
        i += 2
    if i < end and not buf[i]:  # no properties: the common case, kept cheap
        properties, i = NO_PROPERTIES, i + 1
    else:
        properties, i = read_properties(buf, i, end, w.PUBLISH)
    if topic:
        problem = w.topic_name_problem(topic)
        if problem is not None:
            raise _topic_name_error(topic, problem)
    elif properties.topic_alias is None:  # else the empty name stands for the alias's topic
        raise ProtocolError("Expected a topic name or a topic_alias in PUBLISH, got neither")
    payload = bytes(buf[i:end])
    return Publish(topic, payload, qos, bool(flags & 1), bool(flags & 8), packet_id, properties)


def _id_only(cls: type[PubAck | PubRec | PubRel | PubComp | UnsubAck], ptype: int) -> BodyDecoder:
    name = w.TYPE_NAMES[ptype]

    def decode(_flags: int, buf: bytearray, i: int, end: int) -> Packet:
        return cls(_read_packet_id(buf, i, end, name))

    return decode


def _acknowledgement(
    cls: type[PubAck | PubRec | PubRel | PubComp], ptype: int, codes: frozenset[int]
) -> BodyDecoder:
    """PUBACK, PUBREC, PUBREL or PUBCOMP at level 5: a packet id, then a reason code and
    properties that are left out when they are 0 and empty (section 3.4.2.1)."""
    name = w.TYPE_NAMES[ptype]

    def decode(_flags: int, buf: bytearray, i: int, end: int) -> Packet:
        packet_id = _read_packet_id(buf, i, end, name)
        if end - i == 2:
            return cls(packet_id)
        code = buf[i + 2]
        _check_code(code, codes, name)
        properties = NO_PROPERTIES
        if end - i > 3:
            properties, stop = read_properties(buf, i + 3, end, ptype)
            _expect_end(stop, end, name)
        return cls(packet_id, code, properties)

    return decode


def _filters(
    buf: bytearray, i: int, end: int, max_topics: int, options: Callable[[int], None] | None
) -> list[tuple[str, int]]:
    """The (filter, options byte) pairs of SUBSCRIBE, or the filters (options 0) of
    UNSUBSCRIBE when ``options`` (the options byte's check) is None."""
    name = "UNSUBSCRIBE" if options is None else "SUBSCRIBE"
    topics: list[tuple[str, int]] = []
    while i < end:
        _check_topic_count(len(topics), max_topics, name)
        topic_filter, i = read_str(buf, i, end, "Topic filter")
        _check_filter(topic_filter)
        if options is None:
            topics.append((topic_filter, 0))
            continue
        if i >= end:
            raise malformed(f"Expected a requested QoS after {topic_filter!r}, got the end")
        options(buf[i])
        topics.append((topic_filter, buf[i]))
        i += 1
    if not topics:
        raise ProtocolError(f"Expected at least one topic filter in {name}, got none")
    return topics


def _requested_qos(options: int) -> None:
    if options > 2:
        raise malformed(f"Expected a requested QoS of 0-2 in SUBSCRIBE, got {options}")


def _subscription_options(options: int) -> None:
    """The options byte of a 5.0 SUBSCRIBE (section 3.8.3.1)."""
    if options & 0xC0:
        raise malformed(f"Expected subscription options with bits 6-7 clear, got {options:#04x}")
    if options & 3 == 3:
        raise ProtocolError("Expected a maximum QoS of 0-2 in SUBSCRIBE, got 3")
    if options >> 4 == 3:
        raise ProtocolError("Expected a retain handling of 0-2 in SUBSCRIBE, got 3")


def _subscribe(
    _flags: int, buf: bytearray, i: int, end: int, max_topics: int = MAX_TOPICS
) -> Subscribe:
    packet_id = _read_packet_id(buf, i, end, "SUBSCRIBE")
    return Subscribe(packet_id, tuple(_filters(buf, i + 2, end, max_topics, _requested_qos)))


def _subscribe5(
    _flags: int, buf: bytearray, i: int, end: int, max_topics: int = MAX_TOPICS
) -> Subscribe:
    packet_id = _read_packet_id(buf, i, end, "SUBSCRIBE")
    properties, i = read_properties(buf, i + 2, end, w.SUBSCRIBE)
    topics = _filters(buf, i, end, max_topics, _subscription_options)
    return Subscribe(packet_id, tuple(topics), properties)


def _suback(_flags: int, buf: bytearray, i: int, end: int) -> SubAck:
    packet_id = _read_packet_id(buf, i, end, "SUBACK")
    codes = tuple(buf[i + 2 : end])
    if not codes:
        raise ProtocolError("Expected at least one return code in SUBACK, got none")
    for code in codes:
        if code not in w.SUBACK_CODES:
            raise ProtocolError(f"Expected a SUBACK return code 0-2 or 0x80, got {code:#04x}")
    return SubAck(packet_id, codes)


def _codes_after_properties(
    buf: bytearray, i: int, end: int, ptype: int, codes: frozenset[int]
) -> tuple[int, tuple[int, ...], Properties]:
    """SUBACK and UNSUBACK at level 5: packet id, properties, one reason code per filter."""
    name = w.TYPE_NAMES[ptype]
    packet_id = _read_packet_id(buf, i, end, name)
    properties, i = read_properties(buf, i + 2, end, ptype)
    found = tuple(buf[i:end])
    if not found:
        raise ProtocolError(f"Expected at least one reason code in {name}, got none")
    for code in found:
        _check_code(code, codes, name)
    return packet_id, found, properties


def _suback5(_flags: int, buf: bytearray, i: int, end: int) -> SubAck:
    packet_id, codes, properties = _codes_after_properties(buf, i, end, w.SUBACK, w.SUBACK_CODES_5)
    return SubAck(packet_id, codes, properties)


def _unsuback5(_flags: int, buf: bytearray, i: int, end: int) -> UnsubAck:
    packet_id, codes, properties = _codes_after_properties(
        buf, i, end, w.UNSUBACK, w.UNSUBACK_CODES_5
    )
    return UnsubAck(packet_id, codes, properties)


def _unsubscribe(
    _flags: int, buf: bytearray, i: int, end: int, max_topics: int = MAX_TOPICS
) -> Unsubscribe:
    packet_id = _read_packet_id(buf, i, end, "UNSUBSCRIBE")
    topics = _filters(buf, i + 2, end, max_topics, None)
    return Unsubscribe(packet_id, tuple(topic for topic, _ in topics))


def _unsubscribe5(
    _flags: int, buf: bytearray, i: int, end: int, max_topics: int = MAX_TOPICS
) -> Unsubscribe:
    packet_id = _read_packet_id(buf, i, end, "UNSUBSCRIBE")
    properties, i = read_properties(buf, i + 2, end, w.UNSUBSCRIBE)
    topics = _filters(buf, i, end, max_topics, None)
    return Unsubscribe(packet_id, tuple(topic for topic, _ in topics), properties)


def _reason_and_properties(
    cls: type[Disconnect | Auth], ptype: int, codes: frozenset[int]
) -> BodyDecoder:
    """DISCONNECT or AUTH at level 5: a reason code and properties, both left out when 0 and
    empty (remaining length 0), the properties alone when empty (length 1)."""
    name, empty = w.TYPE_NAMES[ptype], cls()

    def decode(_flags: int, buf: bytearray, i: int, end: int) -> Packet:
        if i == end:
            return empty
        code = buf[i]
        _check_code(code, codes, name)
        properties = NO_PROPERTIES
        if end - i > 1:
            properties, stop = read_properties(buf, i + 1, end, ptype)
            _expect_end(stop, end, name)
        return cls(code, properties)

    return decode


def _check_topic_count(count: int, max_topics: int, name: str) -> None:
    # Checked before each filter is read: a packet full of filters costs the decoder no
    # more than max_topics of them.
    if count >= max_topics:
        message = f"Expected at most {max_topics} topic filters in {name}, got more"
        raise ProtocolError(message, reasons.QUOTA_EXCEEDED)


def _check_filter(topic_filter: str) -> None:
    problem = w.topic_filter_problem(topic_filter)
    if problem is not None:
        raise malformed(problem)


def _constant(packet: Packet) -> BodyDecoder:
    return lambda _flags, _buf, _i, _end: packet


BODY_DECODERS: dict[int, BodyDecoder] = {
    w.CONNECT: _connect,
    w.CONNACK: _connack,
    w.PUBLISH: _publish,
    w.PUBACK: _id_only(PubAck, w.PUBACK),
    w.PUBREC: _id_only(PubRec, w.PUBREC),
    w.PUBREL: _id_only(PubRel, w.PUBREL),
    w.PUBCOMP: _id_only(PubComp, w.PUBCOMP),
    w.SUBSCRIBE: _subscribe,
    w.SUBACK: _suback,
    w.UNSUBSCRIBE: _unsubscribe,
    w.UNSUBACK: _id_only(UnsubAck, w.UNSUBACK),
    w.PINGREQ: _constant(PingReq()),
    w.PINGRESP: _constant(PingResp()),
    w.DISCONNECT: _constant(Disconnect()),
}

BODY_DECODERS_5: dict[int, BodyDecoder] = {
    **BODY_DECODERS,
    w.CONNACK: _connack5,
    w.PUBLISH: _publish5,
    w.PUBACK: _acknowledgement(PubAck, w.PUBACK, w.PUBACK_CODES_5),
    w.PUBREC: _acknowledgement(PubRec, w.PUBREC, w.PUBACK_CODES_5),
    w.PUBREL: _acknowledgement(PubRel, w.PUBREL, w.PUBREL_CODES_5),
    w.PUBCOMP: _acknowledgement(PubComp, w.PUBCOMP, w.PUBREL_CODES_5),
    w.SUBSCRIBE: _subscribe5,
    w.SUBACK: _suback5,
    w.UNSUBSCRIBE: _unsubscribe5,
    w.UNSUBACK: _unsuback5,
    w.DISCONNECT: _reason_and_properties(Disconnect, w.DISCONNECT, w.DISCONNECT_CODES_5),
    w.AUTH: _reason_and_properties(Auth, w.AUTH, w.AUTH_CODES_5),
}


@functools.lru_cache(maxsize=16)
def body_decoders(level: int, max_topics: int | None) -> dict[int, BodyDecoder]:
    """The body decoders of protocol ``level`` (5, or 3-4 which share a layout), where
    SUBSCRIBE and UNSUBSCRIBE take at most ``max_topics`` filters when it is not None. One
    dict per (level, limit), shared by every decoder (read only): a connection holds none of
    its own."""
    decoders = BODY_DECODERS_5 if level == 5 else BODY_DECODERS
    if max_topics is None:
        return decoders
    subscribe, unsubscribe = _subscribe5, _unsubscribe5
    if level != 5:
        subscribe, unsubscribe = _subscribe, _unsubscribe
    return {
        **decoders,
        w.SUBSCRIBE: functools.partial(subscribe, max_topics=max_topics),
        w.UNSUBSCRIBE: functools.partial(unsubscribe, max_topics=max_topics),
    }
