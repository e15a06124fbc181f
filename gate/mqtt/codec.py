"""Bytes to packets and packets to bytes, for MQTT 3.1, 3.1.1 and 5.0, with no I/O.

``encode(packet, protocol_level)`` gives the bytes of one packet; a :class:`Decoder` is fed
whatever arrived on the wire and hands back complete packets as they become available. Both
speak one protocol level at a time: 3 and 4 share a layout, 5 adds reason codes and
properties to most packets, and the AUTH packet. This module frames packets; their bodies
are written by ``_encode`` and read by ``_decode``.
"""

from collections.abc import Iterator

from gate.mqtt import _wire as w
from gate.mqtt._decode import body_decoders
from gate.mqtt._encode import (
    PACKET_ENCODERS,
    PACKET_ENCODERS_5,
    is_empty,
    packet_id_field,
    v5_fields,
)
from gate.mqtt._props import properties_bytes
from gate.mqtt._wire import string, varint
from gate.mqtt.errors import LocalProtocolError, PacketTooLarge
from gate.mqtt.packets import SUPPORTED_PROTOCOLS, Auth, Connect, Packet, Publish
from gate.mqtt.properties import NO_PROPERTIES, Properties

LEVELS = frozenset({3, 4, 5})

# Precomputed for the PUBLISH hot path: the first byte for each of the 16 flag values, and
# the remaining lengths under 128 (one byte each).
_PUBLISH_FIRST = tuple(bytes((0x30 | flags,)) for flags in range(16))
_SHORT_LENGTHS = tuple(bytes((n,)) for n in range(128))
_NO_PROPERTY_LENGTH = b"\x00"
_CONNECT = w.CONNECT


def encode(packet: Packet, protocol_level: int = 4) -> bytes:
    """Encode any packet into its bytes on the wire, in the layout of ``protocol_level``.

    A CONNECT is written in the layout of its own ``protocol_level`` (it is what tells the
    server the level). Raises LocalProtocolError when the packet cannot be encoded: a QoS 1-2
    PUBLISH without a packet id, a packet id outside 1-65535, a string over 65535 bytes, a
    wildcard in a PUBLISH topic, inconsistent CONNECT will fields, an empty SUBSCRIBE; below
    level 5, a reason code or properties (or an AUTH packet); at level 5, a reason code the
    packet may not carry, a property it may not carry or out of range; and the like.
    """
    if isinstance(packet, Publish):
        p = packet
        return encode_publish(
            p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id, p.properties, protocol_level
        )
    if protocol_level == 5:
        encoder = PACKET_ENCODERS_5.get(type(packet))
    else:
        _check_level(protocol_level)
        encoder = PACKET_ENCODERS.get(type(packet))
        if isinstance(packet, Auth):
            raise LocalProtocolError(f"Expected protocol level 5 for AUTH, got {protocol_level}")
        if encoder is not None and not isinstance(packet, Connect) and v5_fields(packet):
            raise _v5_fields_error(packet, protocol_level)
    if encoder is None:
        raise LocalProtocolError(f"Expected an MQTT packet, got {type(packet).__name__}")
    return encoder(packet)


def encode_publish(
    topic: str,
    payload: bytes,
    qos: int = 0,
    retain: bool = False,
    dup: bool = False,
    packet_id: int | None = None,
    properties: Properties | None = None,
    protocol_level: int = 4,
) -> bytes:
    """Encode a PUBLISH from its fields, without building a :class:`Publish` first.

    At level 5 the ``properties`` follow the packet id, and the topic may be empty when they
    carry a topic_alias. Raises LocalProtocolError for an invalid topic name, a QoS outside
    0-2, a packet id missing at QoS 1-2 (or present at QoS 0), properties below level 5, or
    properties a PUBLISH may not carry.
    """
    problem = w.topic_name_problem(topic)
    if problem is not None and (topic or not _has_alias(properties, protocol_level)):
        raise LocalProtocolError(problem)
    if qos == 0:
        if packet_id is not None:
            raise LocalProtocolError(f"Expected no packet_id at QoS 0, got {packet_id}")
        head = string(topic, "Topic name")
    elif qos in (1, 2):
        head = string(topic, "Topic name") + packet_id_field(packet_id, "PUBLISH")
    else:
        raise LocalProtocolError(f"Expected a PUBLISH qos of 0-2, got {qos}")
    if protocol_level == 5:
        if properties is None or properties is NO_PROPERTIES:
            props = _NO_PROPERTY_LENGTH
        else:
            props = properties_bytes(properties, w.PUBLISH)
    elif protocol_level not in LEVELS or not (properties is None or is_empty(properties)):
        _check_level(protocol_level)
        raise LocalProtocolError(f"Expected no properties in PUBLISH at level {protocol_level}")
    else:
        props = b""
    size = len(head) + len(props) + len(payload)
    length = _SHORT_LENGTHS[size] if size < 128 else varint(size)
    return b"".join((_PUBLISH_FIRST[dup << 3 | qos << 1 | retain], length, head, props, payload))


def _has_alias(properties: Properties | None, protocol_level: int) -> bool:
    return protocol_level == 5 and properties is not None and properties.topic_alias is not None


def _check_level(protocol_level: int) -> None:
    if protocol_level not in LEVELS:
        raise LocalProtocolError(f"Expected a protocol level of 3, 4 or 5, got {protocol_level}")


def _v5_fields_error(packet: Packet, protocol_level: int) -> LocalProtocolError:
    fields = " or ".join(v5_fields(packet))
    name = type(packet).__name__.upper()
    return LocalProtocolError(f"Expected no {fields} in {name} at level {protocol_level}")


class Decoder:
    """Turns a byte stream into packets; packets may be split or joined anyhow.

    Feed bytes with :meth:`receive_data`, then call :meth:`next_packet` (or iterate) until it
    returns None. Packets are read in the layout of :attr:`protocol_level`, which a decoded
    CONNECT of a supported protocol sets to its own level (the packets a client pipelines
    behind its CONNECT are read at that level); the application may set it too. Every
    method that decodes raises ProtocolError when the peer broke the protocol, and
    PacketTooLarge as soon as a fixed header announces a packet larger than
    ``max_packet_size`` bytes (fixed header included), before its body is buffered, and
    ProtocolError as soon as a SUBSCRIBE or UNSUBSCRIBE holds more than ``max_topics``
    filters. After an error the stream cannot be resynchronised: close the connection.
    """

    __slots__ = ("_buf", "_decoders", "_fixed", "_level", "_max", "_max_topics", "_pos")

    def __init__(
        self, max_packet_size: int = 65535, max_topics: int | None = None, protocol_level: int = 4
    ) -> None:
        self._buf = bytearray()
        self._pos = 0  # start of the first unconsumed byte in _buf
        self._max = max_packet_size
        self._max_topics = max_topics
        self.protocol_level = protocol_level

    @property
    def protocol_level(self) -> int:
        """3 (MQTT 3.1), 4 (3.1.1) or 5: the layout the next packets are read in."""
        return self._level

    @protocol_level.setter
    def protocol_level(self, level: int) -> None:
        if level not in LEVELS:
            raise LocalProtocolError(f"Expected a protocol_level of 3, 4 or 5, got {level}")
        self._level = level
        self._decoders = body_decoders(level, self._max_topics)
        self._fixed = w.FIXED_LENGTHS_5 if level == 5 else w.FIXED_LENGTHS

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
        _check_first_byte(first, self._level)
        header = _remaining_length(buf, pos, size)
        if header is None:
            return None
        length, start = header
        end = start + length
        if end - pos > self._max:
            raise PacketTooLarge(f"Packet of {end - pos} bytes exceeds the limit of {self._max}")
        ptype = first >> 4
        fixed = self._fixed.get(ptype)
        if fixed is not None and fixed != length:
            name = w.TYPE_NAMES[ptype]
            raise w.malformed(f"Expected a {name} remaining length of {fixed}, got {length}")
        if end > size:
            return None
        self._pos = end
        packet = self._decoders[ptype](first & 0x0F, buf, start, end)
        if ptype == _CONNECT:
            self._follow(packet)
        return packet

    def _follow(self, packet: Packet) -> None:
        """Switch to the level of a CONNECT the server can speak."""
        if isinstance(packet, Connect):
            protocol = (packet.protocol_name, packet.protocol_level)
            if protocol in SUPPORTED_PROTOCOLS:
                self.protocol_level = packet.protocol_level

    def packets(self) -> Iterator[Packet]:
        """Yield every complete packet buffered so far."""
        while (packet := self.next_packet()) is not None:
            yield packet

    def __iter__(self) -> Iterator[Packet]:
        return self.packets()


def _check_first_byte(first: int, level: int) -> None:
    ptype, flags = first >> 4, first & 0x0F
    if ptype == 0 or (ptype == w.AUTH and level != 5):
        last = 15 if level == 5 else 14
        raise w.malformed(f"Expected an MQTT packet type 1-{last}, got {ptype}")
    if ptype == w.PUBLISH:
        if flags & 0x06 == 0x06:
            raise w.malformed("Expected a PUBLISH QoS of 0-2, got 3")
    elif flags != w.REQUIRED_FLAGS.get(ptype, 0):
        expected = w.REQUIRED_FLAGS.get(ptype, 0)
        raise w.malformed(
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
            raise w.malformed("Remaining length exceeds 4 bytes")
    return None
