"""Bytes to packets and packets to bytes, for MQTT 3.1 and 3.1.1, with no I/O.

``encode(packet)`` gives the bytes of one packet; a :class:`Decoder` is fed whatever arrived
on the wire and hands back complete packets as they become available. This module frames
packets; their bodies are written by ``_encode`` and read by ``_decode``.
"""

from collections.abc import Iterator

from gate.mqtt import _wire as w
from gate.mqtt._decode import BODY_DECODERS, with_topic_limit
from gate.mqtt._encode import PACKET_ENCODERS, frame, packet_id_field, string
from gate.mqtt.errors import LocalProtocolError, PacketTooLarge, ProtocolError
from gate.mqtt.packets import Packet, Publish


def encode(packet: Packet) -> bytes:
    """Encode any packet into its bytes on the wire.

    Raises LocalProtocolError when the packet cannot be encoded: a QoS 1-2 PUBLISH without a
    packet id, a packet id outside 1-65535, a string over 65535 bytes, a wildcard in a
    PUBLISH topic, inconsistent CONNECT will fields, an empty SUBSCRIBE, and the like.
    """
    if isinstance(packet, Publish):
        p = packet
        return encode_publish(p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id)
    encoder = PACKET_ENCODERS.get(type(packet))
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
        head = string(topic, "Topic name")
    elif qos in (1, 2):
        head = string(topic, "Topic name") + packet_id_field(packet_id, "PUBLISH")
    else:
        raise LocalProtocolError(f"Expected a PUBLISH qos of 0-2, got {qos}")
    return frame(0x30 | int(dup) << 3 | qos << 1 | int(retain), (head, payload))


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
        self._decoders = BODY_DECODERS if max_topics is None else with_topic_limit(max_topics)

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
