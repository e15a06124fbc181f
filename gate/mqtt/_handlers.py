"""What an accepted connection does with each packet the client sends: the replies the server
owes on its own (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, PINGRESP), queued, and
the event, if any, for the application.
"""

from collections.abc import Callable
from typing import Any

from gate.mqtt.codec import encode
from gate.mqtt.errors import ProtocolError
from gate.mqtt.events import Disconnected, Event, MessageReceived, Subscribed, Unsubscribed
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
    packet_name,
)

_PINGRESP = b"\xd0\x00"


class PacketHandlers:
    """The packets of one accepted connection, after its CONNECT. Replies are appended to
    ``out``, the connection's queue; a QoS 2 message is reported once however often it is
    resent before its PUBREL."""

    __slots__ = ("_out", "_unreleased", "publishes", "replies")

    def __init__(self, out: bytearray) -> None:
        self._out = out
        self.publishes = 0  # PUBLISH packets handled
        self.replies = 0  # packets queued in answer
        self._unreleased: set[int] = set()  # QoS 2 ids received, not yet released by PUBREL

    def handle(self, packet: Packet) -> Event | None:
        """Queue the replies ``packet`` is owed and return its event, if any.

        Raises ProtocolError for a packet a client may not send here: a second CONNECT, or
        one only a server sends.
        """
        return _HANDLERS[type(packet)](self, packet)

    def forget(self) -> None:
        """Drop the QoS 2 message ids held: the connection is closed."""
        self._unreleased.clear()

    def _on_publish(self, publish: Publish) -> Event | None:
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
        return MessageReceived(publish.topic, publish.payload, publish.qos, publish.retain)

    def _on_pubrel(self, pubrel: PubRel) -> None:
        self._unreleased.discard(pubrel.packet_id)
        self.replies += 1
        self._out += b"\x70\x02" + pubrel.packet_id.to_bytes(2, "big")

    def _on_pubrec(self, pubrec: PubRec) -> None:
        self.replies += 1
        self._out += b"\x62\x02" + pubrec.packet_id.to_bytes(2, "big")

    def _on_ack(self, _ack: PubAck | PubComp) -> None:
        """Acknowledgements of server QoS 1-2 publishes, which this server never sends."""

    def _on_subscribe(self, subscribe: Subscribe) -> Event:
        granted = tuple(qos for _, qos in subscribe.topics)
        self.replies += 1
        self._out += encode(SubAck(subscribe.packet_id, granted))
        return Subscribed(subscribe.packet_id, subscribe.topics)

    def _on_unsubscribe(self, unsubscribe: Unsubscribe) -> Event:
        self.replies += 1
        self._out += encode(UnsubAck(unsubscribe.packet_id))
        return Unsubscribed(unsubscribe.packet_id, unsubscribe.topics)

    def _on_pingreq(self, _ping: PingReq) -> None:
        self.replies += 1
        self._out += _PINGRESP

    def _on_disconnect(self, _disconnect: Disconnect) -> Event:
        return Disconnected()  # the protocol closes on it

    def _on_second_connect(self, _connect: Connect) -> None:
        raise ProtocolError("Expected one CONNECT per connection, got a second CONNECT")

    def _on_server_packet(self, packet: ConnAck | SubAck | UnsubAck | PingResp) -> None:
        raise ProtocolError(f"Expected a packet a client sends, got {packet_name(packet)}")


_Handler = Callable[[PacketHandlers, Any], Event | None]
_HANDLERS: dict[type[Packet], _Handler] = {
    Publish: PacketHandlers._on_publish,
    PingReq: PacketHandlers._on_pingreq,
    PubRel: PacketHandlers._on_pubrel,
    PubAck: PacketHandlers._on_ack,
    PubRec: PacketHandlers._on_pubrec,
    PubComp: PacketHandlers._on_ack,
    Subscribe: PacketHandlers._on_subscribe,
    Unsubscribe: PacketHandlers._on_unsubscribe,
    Disconnect: PacketHandlers._on_disconnect,
    Connect: PacketHandlers._on_second_connect,
    ConnAck: PacketHandlers._on_server_packet,
    SubAck: PacketHandlers._on_server_packet,
    UnsubAck: PacketHandlers._on_server_packet,
    PingResp: PacketHandlers._on_server_packet,
}
