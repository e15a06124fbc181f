"""What an accepted connection does with each packet the client sends: the replies the server
owes on its own (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, PINGRESP), queued, and
the event, if any, for the application.

A connection's handlers are picked once, at CONNECT, by protocol level and by whether the
application acknowledges messages itself (manual acks): a level 4 PUBLISH, the common case,
goes through no check it does not need.
"""

import functools
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from gate.mqtt import _wire as w
from gate.mqtt import reasons
from gate.mqtt._outgoing import Outgoing, encode_to_fit
from gate.mqtt.codec import encode
from gate.mqtt.errors import LocalProtocolError, ProtocolError
from gate.mqtt.events import (
    Disconnected,
    Event,
    MessageReceived,
    Subscribed,
    Unsubscribed,
)
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
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    packet_name,
)
from gate.mqtt.properties import NO_PROPERTIES, Properties

_PINGRESP = b"\xd0\x00"
_SHARED_REFUSED = Properties(reason_string="Shared subscriptions are not supported")


class PacketHandlers:
    """The packets of one accepted connection, after its CONNECT. Replies are appended to
    ``out``, the connection's queue; a QoS 2 message is reported once however often it is
    resent before its PUBREL.

    With ``manual_acks``, the PUBACK or PUBREC a QoS 1-2 PUBLISH is owed waits for
    :meth:`ack`, and acknowledgements leave in the order their PUBLISHes came (MQTT 5.0
    section 4.6). At level 5, more QoS 1-2 messages unacknowledged than ``receive_maximum``
    and topic aliases past ``topic_alias_maximum`` break the protocol.
    """

    __slots__ = (
        "_acked",
        "_alias_max",
        "_aliases",
        "_held",
        "_held_qos1",
        "_level",
        "_manual",
        "_no_expiry",
        "_order",
        "_out",
        "_outgoing",
        "_problems",
        "_receive_max",
        "_table",
        "_unreleased",
        "publishes",
        "replies",
    )

    def __init__(
        self,
        out: bytearray,
        outgoing: Outgoing,
        *,
        receive_maximum: int,
        topic_alias_maximum: int,
        manual_acks: bool,
    ) -> None:
        self._out = out
        self._outgoing = outgoing  # its in-flight PUBLISHes get the client's PUBACKs
        self.publishes = 0  # PUBLISH packets handled
        self.replies = 0  # packets queued in answer
        self._unreleased: set[int] = set()  # QoS 2 ids received, not yet released by PUBREL
        self._receive_max = receive_maximum
        self._alias_max = topic_alias_maximum
        self._aliases: dict[int, str] = {}  # the client's topic aliases, level 5
        self._manual = manual_acks
        self._held: dict[int, int] = {}  # manual acks: packet id -> QoS, until its ack is sent
        self._acked: dict[int, bytes] = {}  # acks given, waiting for earlier ones
        self._order: deque[int] = deque()  # the held ids, in the order their PUBLISH came
        self._held_qos1 = 0  # QoS 1 messages among the held
        self._level = 4
        self._problems = True  # the client takes reason strings and user properties
        self._no_expiry = True  # the CONNECT's session expiry interval is 0
        self._table: dict[type[Packet], _Handler] = (
            _HANDLERS_4_MANUAL if manual_acks else _HANDLERS_4
        )

    def begin(self, connect: Connect) -> None:
        """Speak the CONNECT's level; at level 5, by what its properties ask."""
        self._level = connect.protocol_level
        if self._level == 5:
            props = connect.properties
            self._problems = props.request_problem_information != 0
            self._no_expiry = not props.session_expiry_interval
            self._table = _HANDLERS_5

    def handle(self, packet: Packet) -> Event | None:
        """Queue the replies ``packet`` is owed and return its event, if any.

        Raises ProtocolError for a packet a client may not send here: a second CONNECT, or
        one only a server sends.
        """
        return self._table[type(packet)](self, packet)

    def forget(self) -> None:
        """Drop the message ids held: the connection is closed."""
        self._unreleased.clear()
        self._held.clear()
        self._acked.clear()
        self._order.clear()
        self._held_qos1 = 0

    def ack(self, packet_id: int, reason_code: int, reason_string: str | None) -> None:
        """The application's acknowledgement of the message ``packet_id`` (manual acks):
        queue it, and every one after it that waited for it.

        Raises LocalProtocolError for an id that awaits no acknowledgement, or a reason code
        a PUBACK/PUBREC cannot carry.
        """
        qos = self._held.get(packet_id)
        if qos is None or packet_id in self._acked:
            raise LocalProtocolError(
                f"Expected the packet id of a message awaiting its ack, got {packet_id}"
            )
        if reason_code not in w.PUBACK_CODES_5:
            raise LocalProtocolError(f"Expected a PUBACK/PUBREC reason code, got {reason_code}")
        self._acked[packet_id] = self._ack_bytes(packet_id, qos, reason_code, reason_string)
        self._send_acked()

    def _ack_bytes(self, packet_id: int, qos: int, code: int, reason: str | None) -> bytes:
        if qos == 2 and code >= 0x80 and self._level == 5:  # refused: no PUBREL will come
            self._unreleased.discard(packet_id)
        if self._level != 5 or (not code and (reason is None or not self._problems)):
            return (b"\x40\x02" if qos == 1 else b"\x50\x02") + packet_id.to_bytes(2, "big")
        props = NO_PROPERTIES
        if reason is not None and self._problems:
            props = Properties(reason_string=reason)
        ack = PubAck(packet_id, code, props) if qos == 1 else PubRec(packet_id, code, props)
        return encode_to_fit(ack, self._outgoing.max_packet_size) or b""

    def _send_acked(self) -> None:
        order, acked = self._order, self._acked
        while order and order[0] in acked:
            packet_id = order.popleft()
            data = acked.pop(packet_id)
            if self._held.pop(packet_id) == 1:
                self._held_qos1 -= 1
            if data:  # else too large for the client: dropped as if sent
                self.replies += 1
                self._out += data

    def _on_publish(self, publish: Publish) -> Event | None:
        """Level 3-4, acknowledged at once: today's hot path, kept free of 5.0's checks."""
        self.publishes += 1
        packet_id = publish.packet_id
        if packet_id is None:  # QoS 0: the decoder gives every QoS 1-2 PUBLISH an id
            return MessageReceived(publish.topic, publish.payload, 0, publish.retain)
        self.replies += 1
        if publish.qos == 1:
            self._out += b"\x40\x02" + packet_id.to_bytes(2, "big")
        else:
            self._out += b"\x50\x02" + packet_id.to_bytes(2, "big")
            if packet_id in self._unreleased:
                return None  # a resend before PUBREL: routed already
            self._unreleased.add(packet_id)
        return MessageReceived(
            publish.topic, publish.payload, publish.qos, publish.retain, packet_id
        )

    def _on_publish_5(self, publish: Publish) -> Event | None:
        """Level 5, and manual acks at any level (a level 3-4 PUBLISH has no properties)."""
        self.publishes += 1
        if publish.retain and self._level == 5:  # the CONNACK said retain_available 0
            raise ProtocolError(
                "Expected no retained PUBLISH (retain is not available), got one",
                reasons.RETAIN_NOT_SUPPORTED,
            )
        topic, props = publish.topic, publish.properties
        if props.topic_alias is not None:
            topic = self._resolve_alias(topic, props.topic_alias)
            props = _without_alias(props)
        if props.response_topic is not None:
            _check_response_topic(props.response_topic)
        packet_id = publish.packet_id
        if packet_id is not None and not self._receive(packet_id, publish.qos):
            return None
        return MessageReceived(
            topic, publish.payload, publish.qos, publish.retain, packet_id, props
        )

    def _receive(self, packet_id: int, qos: int) -> bool:
        """Queue or hold the PUBACK/PUBREC a QoS 1-2 PUBLISH is owed; whether it brings a new
        message (not a resend of one whose PUBREL, or whose held ack, is still to come)."""
        if qos == 2 and packet_id in self._unreleased:
            if packet_id not in self._held:  # its PUBREC went: send it again
                self.replies += 1
                self._out += b"\x50\x02" + packet_id.to_bytes(2, "big")
            return False
        if self._manual and packet_id in self._held:
            return False  # a QoS 1 resend before its ack: the ack will answer both
        if self._level == 5 and len(self._unreleased) + self._held_qos1 >= self._receive_max:
            raise ProtocolError(
                f"Expected at most {self._receive_max} QoS 1-2 PUBLISHes unacknowledged"
                " (the receive maximum), got one more",
                reasons.RECEIVE_MAXIMUM_EXCEEDED,
            )
        if qos == 2:
            self._unreleased.add(packet_id)
        if self._manual:
            self._held[packet_id] = qos
            self._order.append(packet_id)
            if qos == 1:
                self._held_qos1 += 1
        else:
            self.replies += 1
            self._out += (b"\x40\x02" if qos == 1 else b"\x50\x02") + packet_id.to_bytes(2, "big")
        return True

    def _resolve_alias(self, topic: str, alias: int) -> str:
        if not 1 <= alias <= self._alias_max:
            raise ProtocolError(
                f"Expected a topic alias of 1-{self._alias_max}, got {alias}",
                reasons.TOPIC_ALIAS_INVALID,
            )
        if topic:
            self._aliases[alias] = topic
            return topic
        known = self._aliases.get(alias)
        if known is None:
            raise ProtocolError(f"Expected a topic alias set by an earlier PUBLISH, got {alias}")
        return known

    def _on_pubrel(self, pubrel: PubRel) -> None:
        packet_id = pubrel.packet_id
        if packet_id in self._held:
            raise ProtocolError(f"Expected PUBREL after PUBREC, got one for {packet_id} before")
        self._unreleased.discard(packet_id)
        self.replies += 1
        self._out += b"\x70\x02" + packet_id.to_bytes(2, "big")

    def _on_pubrec(self, pubrec: PubRec) -> None:
        """Of a QoS 2 PUBLISH this server never sends: released at once."""
        self.replies += 1
        self._out += b"\x62\x02" + pubrec.packet_id.to_bytes(2, "big")

    def _on_puback(self, puback: PubAck) -> Event | None:
        return self._outgoing.acknowledged(puback.packet_id, puback.reason_code)

    def _on_pubcomp(self, _pubcomp: PubComp) -> None:
        """Completes a QoS 2 PUBLISH, which this server never sends."""

    def _on_subscribe(self, subscribe: Subscribe) -> Event:
        granted = tuple(qos for _, qos in subscribe.topics)
        self.replies += 1
        self._out += encode(SubAck(subscribe.packet_id, granted))
        return Subscribed(subscribe.packet_id, subscribe.topics)

    def _on_subscribe_5(self, subscribe: Subscribe) -> Event | None:
        ids = subscribe.properties.subscription_identifiers
        if ids:
            raise ProtocolError(
                f"Expected no subscription identifier (none are available), got {ids[0]}",
                reasons.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
            )
        codes = tuple(
            reasons.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED if f.startswith("$share/") else options & 3
            for f, options in subscribe.topics
        )
        granted = tuple(t for t, code in zip(subscribe.topics, codes, strict=True) if code < 0x80)
        refused = len(granted) < len(codes) and self._problems
        self._reply(
            SubAck(subscribe.packet_id, codes, _SHARED_REFUSED if refused else NO_PROPERTIES)
        )
        return Subscribed(subscribe.packet_id, granted) if granted else None

    def _on_unsubscribe(self, unsubscribe: Unsubscribe) -> Event:
        self.replies += 1
        self._out += encode(UnsubAck(unsubscribe.packet_id))
        return Unsubscribed(unsubscribe.packet_id, unsubscribe.topics)

    def _on_unsubscribe_5(self, unsubscribe: Unsubscribe) -> Event:
        codes = (reasons.SUCCESS,) * len(unsubscribe.topics)
        self._reply(UnsubAck(unsubscribe.packet_id, codes))
        return Unsubscribed(unsubscribe.packet_id, unsubscribe.topics)

    def _reply(self, packet: SubAck | UnsubAck) -> None:
        data = encode_to_fit(packet, self._outgoing.max_packet_size)
        if data is not None:  # else too large for the client: dropped as if sent
            self.replies += 1
            self._out += data

    def _on_pingreq(self, _ping: PingReq) -> None:
        self.replies += 1
        self._out += _PINGRESP

    def _on_disconnect(self, _disconnect: Disconnect) -> Event:
        return Disconnected()  # the protocol closes on it

    def _on_disconnect_5(self, disconnect: Disconnect) -> Event:
        expiry = disconnect.properties.session_expiry_interval
        if expiry and self._no_expiry:  # MQTT 5.0, 3.14.2.2.2
            raise ProtocolError(
                f"Expected no session expiry interval in DISCONNECT after CONNECT's 0, got {expiry}"
            )
        return Disconnected(disconnect.reason_code, expiry)

    def _on_auth(self, _auth: Auth) -> None:
        raise ProtocolError("Expected no AUTH (CONNECT named no authentication method), got AUTH")

    def _on_second_connect(self, _connect: Connect) -> None:
        raise ProtocolError("Expected one CONNECT per connection, got a second CONNECT")

    def _on_server_packet(self, packet: ConnAck | SubAck | UnsubAck | PingResp) -> None:
        raise ProtocolError(f"Expected a packet a client sends, got {packet_name(packet)}")


@functools.lru_cache(maxsize=256)
def _without_alias(props: Properties) -> Properties:
    """The properties of a PUBLISH but its topic alias, which names nothing past it. Cached:
    replace() on 27 frozen fields costs 8 us, and the decoder hands out one Properties for the
    same few bytes (an alias alone, mostly)."""
    return replace(props, topic_alias=None)


def _check_response_topic(topic: str) -> None:
    if "+" in topic or "#" in topic:
        raise ProtocolError(f"Expected a response topic without wildcards, got {topic!r}")


_Handler = Callable[[PacketHandlers, Any], Event | None]
_HANDLERS_4: dict[type[Packet], _Handler] = {
    Publish: PacketHandlers._on_publish,
    PingReq: PacketHandlers._on_pingreq,
    PubRel: PacketHandlers._on_pubrel,
    PubAck: PacketHandlers._on_puback,
    PubRec: PacketHandlers._on_pubrec,
    PubComp: PacketHandlers._on_pubcomp,
    Subscribe: PacketHandlers._on_subscribe,
    Unsubscribe: PacketHandlers._on_unsubscribe,
    Disconnect: PacketHandlers._on_disconnect,
    Connect: PacketHandlers._on_second_connect,
    ConnAck: PacketHandlers._on_server_packet,
    SubAck: PacketHandlers._on_server_packet,
    UnsubAck: PacketHandlers._on_server_packet,
    PingResp: PacketHandlers._on_server_packet,
    Auth: PacketHandlers._on_auth,  # the decoder reads no AUTH below level 5
}
_HANDLERS_4_MANUAL: dict[type[Packet], _Handler] = {
    **_HANDLERS_4,
    Publish: PacketHandlers._on_publish_5,
}
_HANDLERS_5: dict[type[Packet], _Handler] = {
    **_HANDLERS_4,
    Publish: PacketHandlers._on_publish_5,
    Subscribe: PacketHandlers._on_subscribe_5,
    Unsubscribe: PacketHandlers._on_unsubscribe_5,
    Disconnect: PacketHandlers._on_disconnect_5,
}
