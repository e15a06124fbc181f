"""Bytes to packets and packets to bytes, for MQTT 3.1 and 3.1.1, with no I/O.

``encode(packet)`` gives the bytes of one packet; a :class:`Decoder` is fed whatever arrived
on the wire and hands back complete packets as they become available.
"""

from collections.abc import Iterable, Iterator

from gate.mqtt import _wire as w
from gate.mqtt._decode import BODY_DECODERS, with_topic_limit
from gate.mqtt.errors import LocalProtocolError, PacketTooLarge, ProtocolError
from gate.mqtt.packets import (
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

_PINGREQ = b"\xc0\x00"
_PINGRESP = b"\xd0\x00"
_DISCONNECT = b"\xe0\x00"


def _varint(n: int) -> bytes:
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


def _frame(first: int, parts: Iterable[bytes]) -> bytes:
    body = b"".join(parts)
    return b"".join((bytes((first,)), _varint(len(body)), body))


def _u16(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise LocalProtocolError(f"Expected a {what} of 0-65535, got {value}")
    return value.to_bytes(2, "big")


def _packet_id(value: int | None, name: str) -> bytes:
    if value is None or not 1 <= value <= 0xFFFF:
        raise LocalProtocolError(f"Expected a {name} packet_id of 1-65535, got {value}")
    return value.to_bytes(2, "big")


def _binary(data: bytes, what: str) -> bytes:
    return _u16(len(data), f"{what} length") + data


def _string(text: str, what: str) -> bytes:
    if "\x00" in text:
        raise LocalProtocolError(f"{what} contains U+0000")
    try:
        return _binary(text.encode(), what)
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


def _encode_connect(p: Connect) -> bytes:
    if not 0 <= p.protocol_level <= 0xFF:
        raise LocalProtocolError(f"Expected a protocol_level of 0-255, got {p.protocol_level}")
    parts = [
        _string(p.protocol_name, "Protocol name"),
        bytes((p.protocol_level, _connect_flags(p))),
        _u16(p.keepalive, "keepalive"),
        _string(p.client_id, "Client identifier"),
    ]
    if p.will_topic is not None and p.will_message is not None:
        parts += (_string(p.will_topic, "Will topic"), _binary(p.will_message, "Will message"))
    if p.username is not None:
        parts.append(_string(p.username, "User name"))
    if p.password is not None:
        parts.append(_binary(p.password, "Password"))
    return _frame(0x10, parts)


def _encode_connack(p: ConnAck) -> bytes:
    if not 0 <= p.return_code <= 0xFF:
        raise LocalProtocolError(f"Expected a CONNACK return_code of 0-255, got {p.return_code}")
    if p.session_present and p.return_code:
        raise LocalProtocolError("CONNACK sets session_present with a non-zero return_code")
    return bytes((0x20, 2, int(p.session_present), p.return_code))


def encode_publish(
    topic: str,
    payload: bytes,
    qos: int = 0,
    retain: bool = False,
    dup: bool = False,
    packet_id: int | None = None,
) -> bytes:
    """Encode a PUBLISH from its fields, without building a :class:`Publish` first.

    Raises LocalProtocolError for an invalid topic name, a QoS outside 0-2, or a packet id
    missing at QoS 1-2 (or present at QoS 0).
    """
    problem = w.topic_name_problem(topic)
    if problem is not None:
        raise LocalProtocolError(problem)
    if qos == 0:
        if packet_id is not None:
            raise LocalProtocolError(f"Expected no packet_id at QoS 0, got {packet_id}")
        head = _string(topic, "Topic name")
    elif qos in (1, 2):
        head = _string(topic, "Topic name") + _packet_id(packet_id, "PUBLISH")
    else:
        raise LocalProtocolError(f"Expected a PUBLISH qos of 0-2, got {qos}")
    return _frame(0x30 | int(dup) << 3 | qos << 1 | int(retain), (head, payload))


def _encode_subscribe(p: Subscribe) -> bytes:
    if not p.topics:
        raise LocalProtocolError("Expected at least one topic in SUBSCRIBE, got none")
    parts = [_packet_id(p.packet_id, "SUBSCRIBE")]
    for topic_filter, qos in p.topics:
        _check_filter(topic_filter)
        if qos not in (0, 1, 2):
            raise LocalProtocolError(f"Expected a requested QoS of 0-2, got {qos}")
        parts += (_string(topic_filter, "Topic filter"), bytes((qos,)))
    return _frame(0x82, parts)


def _encode_suback(p: SubAck) -> bytes:
    if not p.return_codes:
        raise LocalProtocolError("Expected at least one return code in SUBACK, got none")
    for code in p.return_codes:
        if code not in w.SUBACK_CODES:
            raise LocalProtocolError(f"Expected a SUBACK return code 0-2 or 0x80, got {code}")
    return _frame(0x90, (_packet_id(p.packet_id, "SUBACK"), bytes(p.return_codes)))


def _encode_unsubscribe(p: Unsubscribe) -> bytes:
    if not p.topics:
        raise LocalProtocolError("Expected at least one topic in UNSUBSCRIBE, got none")
    parts = [_packet_id(p.packet_id, "UNSUBSCRIBE")]
    for topic_filter in p.topics:
        _check_filter(topic_filter)
        parts.append(_string(topic_filter, "Topic filter"))
    return _frame(0xA2, parts)


def _check_filter(topic_filter: str) -> None:
    problem = w.topic_filter_problem(topic_filter)
    if problem is not None:
        raise LocalProtocolError(problem)


def encode(packet: Packet) -> bytes:
    """Encode any packet into its bytes on the wire.

    Raises LocalProtocolError when the packet cannot be encoded: a QoS 1-2 PUBLISH without a
    packet id, a packet id outside 1-65535, a string over 65535 bytes, a wildcard in a
    PUBLISH topic, inconsistent CONNECT will fields, an empty SUBSCRIBE, and the like.
    """
    match packet:
        case Publish():
            p = packet
            return encode_publish(p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id)
        case PubAck(packet_id=pid):
            return b"\x40\x02" + _packet_id(pid, "PUBACK")
        case PubRec(packet_id=pid):
            return b"\x50\x02" + _packet_id(pid, "PUBREC")
        case PubRel(packet_id=pid):
            return b"\x62\x02" + _packet_id(pid, "PUBREL")
        case PubComp(packet_id=pid):
            return b"\x70\x02" + _packet_id(pid, "PUBCOMP")
        case PingReq():
            return _PINGREQ
        case PingResp():
            return _PINGRESP
        case Connect():
            return _encode_connect(packet)
        case ConnAck():
            return _encode_connack(packet)
        case Subscribe():
            return _encode_subscribe(packet)
        case SubAck():
            return _encode_suback(packet)
        case Unsubscribe():
            return _encode_unsubscribe(packet)
        case UnsubAck(packet_id=pid):
            return b"\xb0\x02" + _packet_id(pid, "UNSUBACK")
        case Disconnect():
            return _DISCONNECT
    raise LocalProtocolError(f"Expected an MQTT packet, got {type(packet).__name__}")


class Decoder:
    """Turns a byte stream into packets; packets may be split or joined anyhow.

    Feed bytes with :meth:`receive_data`, then call :meth:`next_packet` (or iterate) until it
    returns None. Every method that decodes raises ProtocolError when the peer broke the
    protocol, and PacketTooLarge as soon as a fixed header announces a packet larger than
    ``max_packet_size`` bytes (fixed header included), before its body is buffered, and
    ProtocolError as soon as a SUBSCRIBE or UNSUBSCRIBE holds more than ``max_topics``
    filters. After an error the stream cannot be resynchronised: close the connection.
    """

    __slots__ = ("_buf", "_decoders", "_max", "_pos")

    def __init__(self, max_packet_size: int = 65535, max_topics: int | None = None) -> None:
        self._buf = bytearray()
        self._pos = 0  # start of the first unconsumed byte in _buf
        self._max = max_packet_size
        self._decoders = (
            BODY_DECODERS if max_topics is None else with_topic_limit(BODY_DECODERS, max_topics)
        )

    def receive_data(self, data: bytes) -> None:
        """Buffer ``data``; nothing is decoded until :meth:`next_packet` is called."""
        if self._pos:
            del self._buf[: self._pos]  # cheap: bytearray drops a prefix without copying
            self._pos = 0
        self._buf += data

    def next_packet(self) -> Packet | None:
        """Return the next complete packet, or None when more bytes are needed."""
        buf, pos = self._buf, self._pos
        size = len(buf)
        if pos >= size:
            return None
        first = buf[pos]
        _check_first_byte(first)
        header = _remaining_length(buf, pos, size)
        if header is None:
            return None
        length, start = header
        end = start + length
        if end - pos > self._max:
            raise PacketTooLarge(f"Packet of {end - pos} bytes exceeds the limit of {self._max}")
        fixed = w.FIXED_LENGTHS.get(first >> 4)
        if fixed is not None and fixed != length:
            name = w.TYPE_NAMES[first >> 4]
            raise ProtocolError(f"Expected a {name} remaining length of {fixed}, got {length}")
        if end > size:
            return None
        self._pos = end
        return self._decoders[first >> 4](first & 0x0F, buf, start, end)

    def packets(self) -> Iterator[Packet]:
        """Yield every complete packet buffered so far."""
        while (packet := self.next_packet()) is not None:
            yield packet

    def __iter__(self) -> Iterator[Packet]:
        return self.packets()


def _check_first_byte(first: int) -> None:
    ptype, flags = first >> 4, first & 0x0F
    if ptype == 0 or ptype == 15:
        raise ProtocolError(f"Expected an MQTT packet type 1-14, got {ptype}")
    if ptype == w.PUBLISH:
        if flags & 0x06 == 0x06:
            raise ProtocolError("Expected a PUBLISH QoS of 0-2, got 3")
    elif flags != w.REQUIRED_FLAGS.get(ptype, 0):
        expected = w.REQUIRED_FLAGS.get(ptype, 0)
        raise ProtocolError(
            f"Expected {w.TYPE_NAMES[ptype]} header flags {expected:#06b}, got {flags:#06b}"
        )


def _remaining_length(buf: bytearray, pos: int, size: int) -> tuple[int, int] | None:
    """(remaining length, body start), or None while the varint is incomplete."""
    length = shift = 0
    i = pos + 1
    while i < size:
        byte = buf[i]
        length |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return length, i
        shift += 7
        if shift == 28:
            raise ProtocolError("Remaining length exceeds 4 bytes")
    return None
