"""The server side of one MQTT 3.1/3.1.1 connection, as a state machine with no I/O.

Feed received bytes to :meth:`ServerProtocol.receive_data` and act on the events it returns;
send whatever :meth:`ServerProtocol.data_to_send` hands back. Replies the protocol owes on its
own (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK, PINGRESP) are queued automatically; the
CONNACK that accepts a client is the application's decision (:meth:`ServerProtocol.accept`).
"""

import enum
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from gate.mqtt.codec import Decoder, encode, encode_publish
from gate.mqtt.errors import LocalProtocolError, ProtocolError
from gate.mqtt.packets import (
    IDENTIFIER_REJECTED,
    SUPPORTED_PROTOCOLS,
    UNACCEPTABLE_PROTOCOL_VERSION,
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

_CONNACK_ACCEPTED = b"\x20\x02\x00\x00"
_PINGRESP = b"\xd0\x00"


class State(enum.Enum):
    """Where a connection stands. CONNECTED means a valid CONNECT arrived (maybe not accepted)."""

    AWAITING_CONNECT = "awaiting_connect"
    CONNECTED = "connected"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Connected:
    """A valid CONNECT arrived; answer it with accept() or refuse().

    An empty client id (clean session) has already been replaced by a generated one.
    """

    connect: Connect


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A PUBLISH to route; a QoS 2 message is reported once however often it is resent."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class Subscribed:
    """A SUBSCRIBE; the SUBACK (granting each requested QoS) is already queued."""

    packet_id: int
    topics: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """An UNSUBSCRIBE; the UNSUBACK is already queued."""

    packet_id: int
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The client sent DISCONNECT; the connection is CLOSED and its will is discarded."""


@dataclass(frozen=True, slots=True)
class ConnectionRefused:
    """The protocol refused the CONNECT itself; CONNACK ``return_code`` is queued, then close."""

    return_code: int
    reason: str


Event = Connected | MessageReceived | Subscribed | Unsubscribed | Disconnected | ConnectionRefused


class ServerProtocol:
    """One client connection seen from the server.

    Bytes go in through :meth:`receive_data`, events come out; replies accumulate for
    :meth:`data_to_send`. After the Connected event, packets the client pipelined behind its
    CONNECT are held until :meth:`accept` (which returns their events) or :meth:`refuse`
    (which drops them, as MQTT 3.1.1 section 3.1.4 requires). The application owns the
    clock: it closes the connection after :attr:`keepalive_timeout` seconds of silence, and
    limits its rate with :attr:`packets_received` and :attr:`control_packets_received`.
    ``max_topics_per_subscribe`` bounds the filters of a SUBSCRIBE or UNSUBSCRIBE (more is a
    ProtocolError).
    """

    __slots__ = (
        "_accepted",
        "_client_id_limit",
        "_connect",
        "_decoder",
        "_empty_id_ok",
        "_out",
        "_packets",
        "_publishes",
        "_state",
        "_unreleased",
    )

    def __init__(
        self,
        max_packet_size: int = 65535,
        allow_empty_client_id: bool = True,
        max_client_id_length: int = 65535,
        max_topics_per_subscribe: int | None = None,
    ) -> None:
        self._decoder = Decoder(max_packet_size, max_topics_per_subscribe)
        self._packets = 0
        self._publishes = 0
        self._out = bytearray()
        self._state = State.AWAITING_CONNECT
        self._accepted = False  # CONNECTED and accepted: packets flow
        self._connect: Connect | None = None
        self._unreleased: set[int] = set()  # QoS 2 ids received, not yet released by PUBREL
        self._empty_id_ok = allow_empty_client_id
        self._client_id_limit = max_client_id_length

    @property
    def state(self) -> State:
        """The connection's :class:`State`."""
        return self._state

    @property
    def accepted(self) -> bool:
        """True once accept() was called, until the connection closes."""
        return self._accepted

    @property
    def client_id(self) -> str | None:
        """The client id from CONNECT (or the one assigned), None before CONNECT."""
        return None if self._connect is None else self._connect.client_id

    @property
    def protocol_level(self) -> int | None:
        """3 for MQTT 3.1, 4 for 3.1.1 (as the CONNECT said), None before CONNECT."""
        return None if self._connect is None else self._connect.protocol_level

    @property
    def packets_received(self) -> int:
        """Packets decoded so far, of every type: what a rate limit counts."""
        return self._packets

    @property
    def control_packets_received(self) -> int:
        """Packets decoded so far other than PUBLISH."""
        return self._packets - self._publishes

    @property
    def keepalive_timeout(self) -> float | None:
        """Seconds of silence after which to close: 1.5 x keepalive; None if keepalive is 0."""
        if self._connect is None or not self._connect.keepalive:
            return None
        return 1.5 * self._connect.keepalive

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed received bytes; return the events they completed (none after CLOSED).

        While a CONNECT awaits accept() or refuse(), the bytes are only buffered.

        Raises ProtocolError (and moves to CLOSED) when the client broke the protocol: a
        first packet other than CONNECT, a second CONNECT, a server-only packet, or malformed
        bytes; PacketTooLarge for a packet over the limit. Events decoded earlier in the same
        call are lost with the error; automatic replies for them stay queued.
        """
        if self._state is State.CLOSED:
            return []
        self._decoder.receive_data(data)
        return self._drain()

    def data_to_send(self) -> bytes:
        """Return the bytes queued for the client and clear the queue."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def accept(self) -> list[Event]:
        """Accept the CONNECT: queue CONNACK 0 and return events for pipelined packets.

        Raises LocalProtocolError unless a CONNECT awaits an answer, and ProtocolError if the
        pipelined packets break the protocol.
        """
        self._expect_pending_connect("accept()")
        self._out += _CONNACK_ACCEPTED
        self._accepted = True
        return self._drain()

    def refuse(self, return_code: int) -> None:
        """Refuse the CONNECT with CONNACK ``return_code`` (1-5) and move to CLOSED.

        Raises LocalProtocolError for another code, or unless a CONNECT awaits an answer.
        """
        if not 1 <= return_code <= 5:
            raise LocalProtocolError(f"Expected a refusal return code of 1-5, got {return_code}")
        self._expect_pending_connect("refuse()")
        self._out += encode(ConnAck(return_code))
        self._close()

    def send_publish(self, topic: str, payload: bytes) -> None:
        """Queue a QoS 0 PUBLISH to the client.

        Raises LocalProtocolError before accept(), after close, or for an invalid topic name.
        """
        if not self._accepted:
            raise LocalProtocolError(
                f"Expected an accepted connection to publish on, got state {self._state.name}"
            )
        self._out += encode_publish(topic, payload)

    def _expect_pending_connect(self, call: str) -> None:
        if self._state is not State.CONNECTED or self._accepted:
            what = "an accepted one" if self._accepted else f"state {self._state.name}"
            raise LocalProtocolError(f"{call} expects a CONNECT awaiting an answer, got {what}")

    def _close(self) -> None:
        self._state = State.CLOSED
        self._accepted = False
        self._unreleased.clear()

    def _drain(self) -> list[Event]:
        events: list[Event] = []
        next_packet = self._decoder.next_packet
        try:
            if self._state is State.AWAITING_CONNECT:
                packet = next_packet()
                if packet is None:
                    return events
                self._packets += 1
                events.append(self._on_first_packet(packet))
            while self._accepted and (packet := next_packet()) is not None:
                self._packets += 1
                event = _HANDLERS[type(packet)](self, packet)
                if event is not None:
                    events.append(event)
        except ProtocolError:
            self._close()
            raise
        return events

    def _on_first_packet(self, packet: Packet) -> Event:
        if not isinstance(packet, Connect):
            raise ProtocolError(f"Expected CONNECT as the first packet, got {packet_name(packet)}")
        self._state = State.CONNECTED
        self._connect = packet
        if (packet.protocol_name, packet.protocol_level) not in SUPPORTED_PROTOCOLS:
            got = f"{packet.protocol_name!r} level {packet.protocol_level}"
            reason = f"Expected protocol 'MQIsdp' level 3 or 'MQTT' level 4, got {got}"
            return self._refuse_now(UNACCEPTABLE_PROTOCOL_VERSION, reason)
        problem = self._client_id_problem(packet)
        if problem is not None:
            return self._refuse_now(IDENTIFIER_REJECTED, problem)
        if not packet.client_id:
            self._connect = replace(packet, client_id="auto-" + secrets.token_hex(8))
        return Connected(self._connect)

    def _on_second_connect(self, _connect: Connect) -> None:
        raise ProtocolError("Expected one CONNECT per connection, got a second CONNECT")

    def _client_id_problem(self, connect: Connect) -> str | None:
        size = len(connect.client_id.encode())
        if size > self._client_id_limit:
            return f"Expected a client id of at most {self._client_id_limit} bytes, got {size}"
        if size == 0 and not connect.clean_session:
            return "Expected a client id with clean session off, got an empty one"
        if size == 0 and not self._empty_id_ok:
            return "Expected a client id, got an empty one"
        return None

    def _refuse_now(self, return_code: int, reason: str) -> Event:
        self._out += encode(ConnAck(return_code))
        self._close()
        return ConnectionRefused(return_code, reason)

    def _on_publish(self, publish: Publish) -> Event | None:
        self._publishes += 1
        packet_id = publish.packet_id
        if packet_id is None:  # QoS 0: the decoder gives every QoS 1-2 PUBLISH an id
            return MessageReceived(publish.topic, publish.payload, 0, publish.retain)
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
        self._out += b"\x70\x02" + pubrel.packet_id.to_bytes(2, "big")

    def _on_pubrec(self, pubrec: PubRec) -> None:
        self._out += b"\x62\x02" + pubrec.packet_id.to_bytes(2, "big")

    def _on_ack(self, _ack: PubAck | PubComp) -> None:
        """Acknowledgements of server QoS 1-2 publishes, which this server never sends."""

    def _on_subscribe(self, subscribe: Subscribe) -> Event:
        granted = tuple(qos for _, qos in subscribe.topics)
        self._out += encode(SubAck(subscribe.packet_id, granted))
        return Subscribed(subscribe.packet_id, subscribe.topics)

    def _on_unsubscribe(self, unsubscribe: Unsubscribe) -> Event:
        self._out += encode(UnsubAck(unsubscribe.packet_id))
        return Unsubscribed(unsubscribe.packet_id, unsubscribe.topics)

    def _on_pingreq(self, _ping: PingReq) -> None:
        self._out += _PINGRESP

    def _on_disconnect(self, _disconnect: Disconnect) -> Event:
        self._close()
        return Disconnected()

    def _on_server_packet(self, packet: ConnAck | SubAck | UnsubAck | PingResp) -> None:
        raise ProtocolError(f"Expected a packet a client sends, got {packet_name(packet)}")


_Handler = Callable[[ServerProtocol, Any], Event | None]
_HANDLERS: dict[type[Packet], _Handler] = {
    Publish: ServerProtocol._on_publish,
    PingReq: ServerProtocol._on_pingreq,
    PubRel: ServerProtocol._on_pubrel,
    PubAck: ServerProtocol._on_ack,
    PubRec: ServerProtocol._on_pubrec,
    PubComp: ServerProtocol._on_ack,
    Subscribe: ServerProtocol._on_subscribe,
    Unsubscribe: ServerProtocol._on_unsubscribe,
    Disconnect: ServerProtocol._on_disconnect,
    Connect: ServerProtocol._on_second_connect,
    ConnAck: ServerProtocol._on_server_packet,
    SubAck: ServerProtocol._on_server_packet,
    UnsubAck: ServerProtocol._on_server_packet,
    PingResp: ServerProtocol._on_server_packet,
}
