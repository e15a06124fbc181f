"""Decoders for packet bodies, one per packet type.

Each takes the fixed-header flags and the buffer with the body's bounds ``[i, end)``; the
fixed header (type, flags, fixed lengths) has already been checked by the Decoder.
"""

import functools
from collections.abc import Callable

from gate.mqtt import _wire as w
from gate.mqtt.errors import ProtocolError
from gate.mqtt.packets import (
    SUPPORTED_PROTOCOLS,
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

BodyDecoder = Callable[[int, bytearray, int, int], Packet]

# The most filters a SUBSCRIBE can hold: a 256 MB packet of 5-byte filters.
MAX_TOPICS = 1 << 26


def _read_u16(buf: bytearray, i: int, end: int, what: str) -> int:
    if i + 2 > end:
        raise ProtocolError(f"Expected a 2-byte {what}, got {end - i} bytes before the packet end")
    return (buf[i] << 8) | buf[i + 1]


def _read_bytes(buf: bytearray, i: int, end: int, what: str) -> tuple[bytes, int]:
    size = _read_u16(buf, i, end, f"{what} length")
    stop = i + 2 + size
    if stop > end:
        raise ProtocolError(f"{what} of {size} bytes runs past the end of the packet")
    return bytes(buf[i + 2 : stop]), stop


def _read_str(buf: bytearray, i: int, end: int, what: str) -> tuple[str, int]:
    raw, stop = _read_bytes(buf, i, end, what)
    try:
        text = raw.decode()
    except UnicodeDecodeError as err:
        raise ProtocolError(f"{what} is not valid UTF-8: {err.reason}") from err
    if "\x00" in text:
        raise ProtocolError(f"{what} contains U+0000")
    return text, stop


def _read_packet_id(buf: bytearray, i: int, end: int, name: str) -> int:
    packet_id = _read_u16(buf, i, end, f"{name} packet identifier")
    if packet_id == 0:
        raise ProtocolError(f"Expected a {name} packet identifier of 1-65535, got 0")
    return packet_id


def _expect_end(i: int, end: int, name: str) -> None:
    if i != end:
        raise ProtocolError(f"{name} has {end - i} bytes left over after its last field")


def _check_connect_flags(flags: int, level: int) -> None:
    if flags & 0x01:
        raise ProtocolError("CONNECT has its reserved flag set")
    if (flags >> 3) & 3 == 3:
        raise ProtocolError("Expected a will QoS of 0-2 in CONNECT, got 3")
    if not flags & 0x04 and flags & 0x38:
        raise ProtocolError("CONNECT sets will QoS or will retain without the will flag")
    if flags & 0x40 and not flags & 0x80 and level == 4:
        raise ProtocolError("CONNECT sets the password flag without the username flag")


def _connect_payload(
    name: str, level: int, flags: int, keepalive: int, buf: bytearray, i: int, end: int
) -> Connect:
    _check_connect_flags(flags, level)
    client_id, i = _read_str(buf, i, end, "Client identifier")
    will_topic = username = None
    will_message = password = None
    if flags & 0x04:
        will_topic, i = _read_str(buf, i, end, "Will topic")
        will_message, i = _read_bytes(buf, i, end, "Will message")
    if flags & 0x80:
        username, i = _read_str(buf, i, end, "User name")
    if flags & 0x40:
        password, i = _read_bytes(buf, i, end, "Password")
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
    )


def _connect(_flags: int, buf: bytearray, i: int, end: int) -> Connect:
    name, i = _read_str(buf, i, end, "Protocol name")
    if end - i < 4:
        raise ProtocolError(f"Expected 4 more CONNECT header bytes, got {end - i}")
    level, flags, keepalive = buf[i], buf[i + 1], (buf[i + 2] << 8) | buf[i + 3]
    try:
        return _connect_payload(name, level, flags, keepalive, buf, i + 4, end)
    except ProtocolError:
        if (name, level) in SUPPORTED_PROTOCOLS:
            raise
        # Another protocol (MQTT 5 adds properties) may lay the rest out differently; the
        # server still owes it CONNACK 1 (3.1.1, section 3.1.2.2), so keep what was readable.
        return Connect(name, level, "", bool(flags & 0x02), keepalive)


def _connack(_flags: int, buf: bytearray, i: int, _end: int) -> ConnAck:
    ack_flags, return_code = buf[i], buf[i + 1]
    if ack_flags & 0xFE:
        raise ProtocolError(f"Expected CONNACK flags 0 or 1, got {ack_flags:#04x}")
    if ack_flags and return_code:
        raise ProtocolError(f"CONNACK sets session present with return code {return_code}")
    return ConnAck(return_code, bool(ack_flags))


def _publish(flags: int, buf: bytearray, i: int, end: int) -> Publish:
    topic, i = _read_str(buf, i, end, "Topic name")
    problem = w.topic_name_problem(topic)
    if problem is not None:
        raise ProtocolError(problem)
    qos = (flags >> 1) & 3
    packet_id = None
    if qos:
        packet_id = _read_packet_id(buf, i, end, "PUBLISH")
        i += 2
    return Publish(topic, bytes(buf[i:end]), qos, bool(flags & 1), bool(flags & 8), packet_id)


def _id_only(cls: type[PubAck | PubRec | PubRel | PubComp | UnsubAck], ptype: int) -> BodyDecoder:
    name = w.TYPE_NAMES[ptype]

    def decode(_flags: int, buf: bytearray, i: int, end: int) -> Packet:
        return cls(_read_packet_id(buf, i, end, name))

    return decode


def _subscribe(
    _flags: int, buf: bytearray, i: int, end: int, max_topics: int = MAX_TOPICS
) -> Subscribe:
    packet_id = _read_packet_id(buf, i, end, "SUBSCRIBE")
    i += 2
    topics: list[tuple[str, int]] = []
    while i < end:
        _check_topic_count(len(topics), max_topics, "SUBSCRIBE")
        topic_filter, i = _read_str(buf, i, end, "Topic filter")
        _check_filter(topic_filter)
        if i >= end:
            raise ProtocolError(f"Expected a requested QoS after {topic_filter!r}, got the end")
        if buf[i] > 2:
            raise ProtocolError(f"Expected a requested QoS of 0-2 in SUBSCRIBE, got {buf[i]}")
        topics.append((topic_filter, buf[i]))
        i += 1
    if not topics:
        raise ProtocolError("Expected at least one topic filter in SUBSCRIBE, got none")
    return Subscribe(packet_id, tuple(topics))


def _suback(_flags: int, buf: bytearray, i: int, end: int) -> SubAck:
    packet_id = _read_packet_id(buf, i, end, "SUBACK")
    codes = tuple(buf[i + 2 : end])
    if not codes:
        raise ProtocolError("Expected at least one return code in SUBACK, got none")
    for code in codes:
        if code not in w.SUBACK_CODES:
            raise ProtocolError(f"Expected a SUBACK return code 0-2 or 0x80, got {code:#04x}")
    return SubAck(packet_id, codes)


def _unsubscribe(
    _flags: int, buf: bytearray, i: int, end: int, max_topics: int = MAX_TOPICS
) -> Unsubscribe:
    packet_id = _read_packet_id(buf, i, end, "UNSUBSCRIBE")
    i += 2
    topics: list[str] = []
    while i < end:
        _check_topic_count(len(topics), max_topics, "UNSUBSCRIBE")
        topic_filter, i = _read_str(buf, i, end, "Topic filter")
        _check_filter(topic_filter)
        topics.append(topic_filter)
    if not topics:
        raise ProtocolError("Expected at least one topic filter in UNSUBSCRIBE, got none")
    return Unsubscribe(packet_id, tuple(topics))


def _check_topic_count(count: int, max_topics: int, name: str) -> None:
    # Checked before each filter is read: a packet full of filters costs the decoder no
    # more than max_topics of them.
    if count >= max_topics:
        raise ProtocolError(f"Expected at most {max_topics} topic filters in {name}, got more")


@functools.lru_cache(maxsize=16)
def with_topic_limit(max_topics: int) -> dict[int, BodyDecoder]:
    """BODY_DECODERS, but SUBSCRIBE and UNSUBSCRIBE take at most ``max_topics`` filters. One
    dict per limit, shared by every decoder (read only): a connection holds none of its own."""
    return {
        **BODY_DECODERS,
        w.SUBSCRIBE: functools.partial(_subscribe, max_topics=max_topics),
        w.UNSUBSCRIBE: functools.partial(_unsubscribe, max_topics=max_topics),
    }


def _check_filter(topic_filter: str) -> None:
    problem = w.topic_filter_problem(topic_filter)
    if problem is not None:
        raise ProtocolError(problem)


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
