"""What the server sends one client beyond replies: its PUBLISHes (QoS 1 ones in flight until
their PUBACK, under the client's receive maximum), the topic aliases they use at level 5, and
the client's maximum packet size, which every packet the server sends must respect.
"""

import functools
from dataclasses import replace

from gate.mqtt.codec import encode, encode_publish
from gate.mqtt.errors import LocalProtocolError
from gate.mqtt.events import PublishAcknowledged
from gate.mqtt.packets import ConnAck, Connect, Disconnect, PubAck, PubRec, SubAck, UnsubAck
from gate.mqtt.properties import NO_PROPERTIES, Properties

InFlight = tuple[int, str, bytes, int, Properties]
"""A QoS 1 PUBLISH awaiting its PUBACK: (packet id, topic, payload, qos, properties)."""

_MAX_ID = 0xFFFF


class PublishTooLarge(LocalProtocolError):
    """The PUBLISH exceeds the maximum packet size the client announced: it was not sent."""


def encode_to_fit(
    packet: ConnAck | Disconnect | PubAck | PubRec | SubAck | UnsubAck, limit: int | None
) -> bytes | None:
    """``packet`` at level 5, without its reason string and user properties if that is what
    it takes to stay within ``limit`` bytes; None when even that is too large (MQTT 5.0,
    3.1.2.11.4: the server then drops the packet, as if it had sent it)."""
    data = encode(packet, protocol_level=5)
    if limit is None or len(data) <= limit:
        return data
    props = packet.properties
    if props.reason_string is None and not props.user_properties:
        return None
    bare = replace(props, reason_string=None, user_properties=())
    data = encode(replace(packet, properties=bare), protocol_level=5)
    return data if len(data) <= limit else None


class Outgoing:
    """The server's PUBLISHes to one client, appended to ``out`` (the connection's queue).

    Until :meth:`begin` (a CONNECT), it speaks level 4 to a client of no limits. What is in
    flight outlives the connection: the application reads it after close to resend it, with
    :meth:`resend`, on the client's next connection.
    """

    __slots__ = (
        "_alias_limit",
        "_aliases",
        "_in_flight",
        "_level",
        "_next_id",
        "_out",
        "acks",
        "max_packet_size",
        "receive_maximum",
        "unknown_acks",
    )

    def __init__(self, out: bytearray) -> None:
        self._out = out
        self._level = 4
        self._next_id = 1
        self._in_flight: dict[int, InFlight] = {}  # by packet id, in the order sent
        self._aliases: dict[str, Properties] = {}  # topic -> Properties(topic_alias=n)
        self._alias_limit = 0
        self.receive_maximum = _MAX_ID  # the client's: QoS 1 PUBLISHes it takes unacked
        self.max_packet_size: int | None = None  # the client's, level 5
        self.unknown_acks = 0  # PUBACKs for no PUBLISH in flight, ignored
        self.acks = 0  # PUBACKs for a PUBLISH in flight

    def begin(self, connect: Connect, max_aliases: int) -> None:
        """Adopt what the client's CONNECT says it accepts."""
        self._level = connect.protocol_level
        if self._level != 5:
            return
        props = connect.properties
        if props.receive_maximum is not None:
            self.receive_maximum = props.receive_maximum
        self.max_packet_size = props.maximum_packet_size
        self._alias_limit = min(props.topic_alias_maximum or 0, max_aliases)

    @property
    def send_quota(self) -> int:
        """QoS 1 PUBLISHes the client takes now: its receive maximum minus those in flight."""
        return self.receive_maximum - len(self._in_flight)

    def in_flight(self) -> list[InFlight]:
        """The QoS 1 PUBLISHes not acknowledged yet, in the order they were sent."""
        return list(self._in_flight.values())

    def publish(
        self, topic: str, payload: bytes, qos: int, properties: Properties | None, retain: bool
    ) -> int | None:
        """Queue a PUBLISH; return its packet id at QoS 1 (None at QoS 0).

        Raises LocalProtocolError for a QoS other than 0-1 or past the send quota, and
        PublishTooLarge when the packet exceeds the client's maximum packet size.
        """
        props = NO_PROPERTIES if properties is None else properties
        if qos == 0:
            self._send(topic, payload, 0, props, retain, False, None)
            return None
        packet_id = self._free_id(qos)
        self._send(topic, payload, 1, props, retain, False, packet_id)
        self._in_flight[packet_id] = (packet_id, topic, payload, 1, props)
        self._next_id = packet_id % _MAX_ID + 1
        return packet_id

    def resend(
        self, packet_id: int, topic: str, payload: bytes, qos: int, properties: Properties
    ) -> None:
        """Queue a QoS 1 PUBLISH sent before (DUP set) under its id, and count it in flight.

        Raises LocalProtocolError for a QoS other than 1, an id out of 1-65535 or in flight
        already, or past the send quota; PublishTooLarge as :meth:`publish`.
        """
        if qos != 1:
            raise LocalProtocolError(f"Expected a resent PUBLISH of QoS 1, got QoS {qos}")
        if packet_id in self._in_flight:
            raise LocalProtocolError(f"Expected a packet id not in flight, got {packet_id}")
        self._check_quota()
        self._send(topic, payload, 1, properties, False, True, packet_id)
        self._in_flight[packet_id] = (packet_id, topic, payload, 1, properties)

    def acknowledged(self, packet_id: int, reason_code: int) -> PublishAcknowledged | None:
        """The client's PUBACK: free its id; an id not in flight is counted and ignored."""
        if self._in_flight.pop(packet_id, None) is None:
            self.unknown_acks += 1
            return None
        self.acks += 1
        return PublishAcknowledged(packet_id, reason_code)

    def _free_id(self, qos: int) -> int:
        if qos != 1:
            raise LocalProtocolError(f"Expected a PUBLISH QoS of 0 or 1 to send, got {qos}")
        self._check_quota()
        packet_id = self._next_id
        while packet_id in self._in_flight:  # a free one exists: fewer than 65535 in flight
            packet_id = packet_id % _MAX_ID + 1
        return packet_id

    def _check_quota(self) -> None:
        if len(self._in_flight) >= self.receive_maximum:
            raise LocalProtocolError(
                f"Expected a send quota left, got {len(self._in_flight)} QoS 1 PUBLISHes in"
                f" flight for the client's receive maximum of {self.receive_maximum}"
            )

    def _send(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        props: Properties,
        retain: bool,
        dup: bool,
        packet_id: int | None,
    ) -> None:
        if self._level != 5:
            level = self._level
            self._out += encode_publish(topic, payload, qos, retain, dup, packet_id, props, level)
            return
        if props.topic_alias is not None:
            raise LocalProtocolError(
                f"Expected no topic_alias in properties (the protocol assigns them), got"
                f" {props.topic_alias}"
            )
        wire_topic, wire_props, alias = topic, props, self._aliases.get(topic)
        new_alias = None
        if alias is not None:  # the client knows it: the alias alone
            wire_topic = ""
        elif len(self._aliases) < self._alias_limit:  # the topic, and the alias it now has
            alias = new_alias = Properties(topic_alias=len(self._aliases) + 1)
        if alias is not None:
            same = props is NO_PROPERTIES  # the common case: no properties but the alias
            wire_props = alias if same else _with_alias(props, alias.topic_alias)
        data = encode_publish(
            wire_topic, payload, qos, retain, dup, packet_id, wire_props, protocol_level=5
        )
        limit = self.max_packet_size
        if limit is not None and len(data) > limit:
            raise PublishTooLarge(
                f"Expected a PUBLISH of at most {limit} bytes (the client's maximum packet"
                f" size), got {len(data)}"
            )
        if new_alias is not None:
            self._aliases[topic] = new_alias
        self._out += data


def _with_alias(props: Properties, alias: int | None) -> Properties:
    """``props`` with a topic alias: the same few, again and again, for a topic's PUBLISHes."""
    try:
        return _with_alias_cached(props, alias)
    except TypeError:  # a list where a tuple belongs: unhashable, so not cached
        return replace(props, topic_alias=alias)


@functools.lru_cache(maxsize=256)
def _with_alias_cached(props: Properties, alias: int | None) -> Properties:
    return replace(props, topic_alias=alias)  # 8 us for 27 frozen fields: worth a cache
