"""The server side of one MQTT 3.1, 3.1.1 or 5.0 connection, as a state machine with no I/O.

Feed received bytes to :meth:`ServerProtocol.receive_data` and act on the events it returns;
send whatever :meth:`ServerProtocol.data_to_send` hands back. Replies the protocol owes on its
own (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK, PINGRESP) are queued automatically, by the
handlers of ``_handlers``; the CONNACK that accepts a client is the application's decision
(:meth:`ServerProtocol.accept`).

The CONNECT decides the level each connection speaks. What 5.0 adds (reason codes, reason
strings, properties) is dropped on the way to a 3.1/3.1.1 client, which has no word for it.
"""

import enum
import secrets
from dataclasses import fields, replace

from gate.mqtt import _wire as w
from gate.mqtt import reasons
from gate.mqtt._handlers import PacketHandlers
from gate.mqtt._outgoing import InFlight, Outgoing, PublishTooLarge, encode_to_fit
from gate.mqtt.codec import Decoder, encode, encode_publish
from gate.mqtt.errors import LocalProtocolError, ProtocolError
from gate.mqtt.events import Connected, ConnectionRefused, Disconnected, Event
from gate.mqtt.packets import (
    IDENTIFIER_REJECTED,
    SERVER_UNAVAILABLE,
    SUPPORTED_PROTOCOLS,
    UNACCEPTABLE_PROTOCOL_VERSION,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    packet_name,
)
from gate.mqtt.properties import NO_PROPERTIES, Properties

__all__ = ["PublishTooLarge", "ServerProtocol", "State"]

_CONNACK_ACCEPTED = b"\x20\x02\x00\x00"
_CONNACK_SESSION_PRESENT = b"\x20\x02\x01\x00"

# What a 5.0 CONNACK announces that the protocol itself enforces: not the application's to set.
_ANNOUNCED = frozenset(
    {
        "receive_maximum",
        "maximum_packet_size",
        "topic_alias_maximum",
        "retain_available",
        "wildcard_subscription_available",
        "subscription_identifiers_available",
        "shared_subscription_available",
        "assigned_client_identifier",
        "authentication_method",
        "authentication_data",
    }
)
_PROPERTY_NAMES = tuple(f.name for f in fields(Properties))
# CONNACK refusals: 3.1.1's return codes and 5.0's reason codes (each mapped to the other).
_REFUSAL_CODES = frozenset(range(1, 6)) | {c for c in w.CONNACK_CODES_5 if c >= 0x80}
_SERVER_DISCONNECT_CODES = w.DISCONNECT_CODES_5 - {reasons.DISCONNECT_WITH_WILL}
_MAX_ERROR_REASON = 200  # characters of a ProtocolError's message sent as a reason string


class State(enum.Enum):
    """Where a connection stands. CONNECTED means a valid CONNECT arrived (maybe not accepted)."""

    AWAITING_CONNECT = "awaiting_connect"
    CONNECTED = "connected"
    CLOSED = "closed"


class ServerProtocol:
    """One client connection seen from the server, at the level its CONNECT asks (3, 4, 5).

    Bytes go in through :meth:`receive_data`, events come out; replies accumulate for
    :meth:`data_to_send`. After the Connected event, packets the client pipelined behind its
    CONNECT are held until :meth:`accept` (which returns their events) or :meth:`refuse`
    (which drops them, as MQTT 3.1.1 section 3.1.4 requires). The application owns the
    clock: it closes the connection after :attr:`keepalive_timeout` seconds of silence, and
    limits its rate with :attr:`packets_received` and :attr:`control_packets_received`.
    ``max_topics_per_subscribe`` bounds the filters of a SUBSCRIBE or UNSUBSCRIBE (more is a
    ProtocolError).

    The keyword options: ``receive_maximum`` QoS 1-2 PUBLISHes a 5.0 client may have
    unacknowledged at the server (one more is a ProtocolError), ``topic_alias_maximum``
    aliases it may use towards the server, ``manual_acks`` leaves PUBACK and PUBREC to
    :meth:`ack`, and ``max_outgoing_aliases`` bounds the aliases the server gives its own
    PUBLISHes' topics (fewer if the client takes fewer).
    """

    __slots__ = (
        "_accepted",
        "_alias_max",
        "_assigned_id",
        "_client_id_limit",
        "_connect",
        "_decoder",
        "_empty_id_ok",
        "_expiry",
        "_handlers",
        "_keepalive",
        "_level5",
        "_max_aliases_out",
        "_max_packet_size",
        "_out",
        "_outgoing",
        "_packets",
        "_receive_max",
        "_sent",
        "_state",
    )

    def __init__(
        self,
        max_packet_size: int = 65535,
        allow_empty_client_id: bool = True,
        max_client_id_length: int = 65535,
        max_topics_per_subscribe: int | None = None,
        *,
        receive_maximum: int = 20,
        topic_alias_maximum: int = 16,
        manual_acks: bool = False,
        max_outgoing_aliases: int = 16,
    ) -> None:
        _check_range("receive_maximum", receive_maximum, 1)
        _check_range("topic_alias_maximum", topic_alias_maximum, 0)
        _check_range("max_outgoing_aliases", max_outgoing_aliases, 0)
        self._decoder = Decoder(max_packet_size, max_topics_per_subscribe)
        self._max_packet_size = max_packet_size
        self._packets = 0
        self._sent = 0  # packets queued by the application's calls (CONNACK, PUBLISH)
        self._out = bytearray()
        self._outgoing = Outgoing(self._out)
        self._handlers = PacketHandlers(  # the packets after an accepted CONNECT
            self._out,
            self._outgoing,
            receive_maximum=receive_maximum,
            topic_alias_maximum=topic_alias_maximum,
            manual_acks=manual_acks,
        )
        self._receive_max = receive_maximum
        self._alias_max = topic_alias_maximum
        self._max_aliases_out = max_outgoing_aliases
        self._state = State.AWAITING_CONNECT
        self._accepted = False  # CONNECTED and accepted: packets flow
        self._connect: Connect | None = None
        self._level5 = False
        self._assigned_id = False  # the client id is the server's, not the CONNECT's
        self._expiry: int | None = None
        self._keepalive = 0
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
    def connect(self) -> Connect | None:
        """The CONNECT (with the client id assigned, if any), None before it."""
        return self._connect

    @property
    def client_id(self) -> str | None:
        """The client id from CONNECT (or the one assigned), None before CONNECT."""
        return None if self._connect is None else self._connect.client_id

    @property
    def protocol_level(self) -> int | None:
        """3 for MQTT 3.1, 4 for 3.1.1, 5 for 5.0 (as the CONNECT said), None before CONNECT."""
        return None if self._connect is None else self._connect.protocol_level

    @property
    def session_expiry_interval(self) -> int | None:
        """Seconds the session outlives the connection: at level 5 the CONNECT's property (0
        if absent), then the CONNACK's or the DISCONNECT's if they set one; at levels 3-4, 0
        with clean session and None without, meaning until the server's own limit. None also
        before CONNECT."""
        return self._expiry

    @property
    def client_receive_maximum(self) -> int:
        """QoS 1 PUBLISHes the client takes unacknowledged: its 5.0 property, else 65535."""
        return self._outgoing.receive_maximum

    @property
    def client_maximum_packet_size(self) -> int | None:
        """The largest packet the client takes (5.0 property), None if it set no limit."""
        return self._outgoing.max_packet_size

    @property
    def problem_information(self) -> bool:
        """False when the 5.0 client set request_problem_information 0: reason strings and
        user properties then stay out of packets other than PUBLISH, CONNACK, DISCONNECT."""
        connect = self._connect
        return connect is None or connect.properties.request_problem_information != 0

    @property
    def send_quota(self) -> int:
        """QoS 1 PUBLISHes :meth:`send_publish` may send now: the client's receive maximum
        minus those in flight."""
        return self._outgoing.send_quota

    @property
    def unknown_acks(self) -> int:
        """PUBACKs the client sent for no PUBLISH in flight (ignored)."""
        return self._outgoing.unknown_acks

    @property
    def packets_received(self) -> int:
        """Packets decoded so far, of every type: what a rate limit counts."""
        return self._packets

    @property
    def packets_sent(self) -> int:
        """Packets queued for the client so far, of every type."""
        return self._sent + self._handlers.replies

    @property
    def control_packets_received(self) -> int:
        """Packets decoded so far other than PUBLISH and the PUBACKs of the server's own
        QoS 1 PUBLISHes (as many as it sent: the server's pace, not the client's)."""
        return self._packets - self._handlers.publishes - self._outgoing.acks

    @property
    def keepalive_timeout(self) -> float | None:
        """Seconds of silence after which to close: 1.5 x keepalive (the CONNACK's server
        keep alive at level 5, if the application set one); None if keepalive is 0."""
        return 1.5 * self._keepalive if self._keepalive else None

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed received bytes; return the events they completed (none after CLOSED).

        While a CONNECT awaits accept() or refuse(), the bytes are only buffered.

        Raises ProtocolError (and moves to CLOSED) when the client broke the protocol: a
        first packet other than CONNECT, a second CONNECT, a server-only packet, or malformed
        bytes; PacketTooLarge for a packet over the limit. At level 5, once accepted, a
        DISCONNECT with the error's reason code is queued first: send data_to_send() before
        closing. Events decoded earlier in the same call are lost with the error; automatic
        replies for them stay queued.
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

    def accept(
        self, session_present: bool = False, properties: Properties | None = None
    ) -> list[Event]:
        """Accept the CONNECT: queue CONNACK 0 and return events for pipelined packets.

        ``session_present`` is honoured only without clean session (clean start). At level 5
        the CONNACK announces the protocol's limits (receive maximum, maximum packet size,
        topic alias maximum), what the server lacks (retain, shared subscriptions,
        subscription identifiers) and the assigned client identifier; ``properties`` (e.g.
        server_keep_alive, session_expiry_interval, reason_string) are added to them. Levels
        3-4 have no CONNACK properties: they are ignored there.

        Raises LocalProtocolError unless a CONNECT awaits an answer, or when ``properties``
        set one of the protocol's announcements; ProtocolError if the pipelined packets break
        the protocol.
        """
        connect = self._pending_connect("accept()")
        present = session_present and not connect.clean_session
        if self._level5:
            self._queue(ConnAck(0, present, self._connack_properties(connect, properties)))
        else:
            self._out += _CONNACK_SESSION_PRESENT if present else _CONNACK_ACCEPTED
            self._sent += 1
        self._accepted = True
        return self._drain()

    def refuse(self, return_code: int, reason_string: str | None = None) -> None:
        """Refuse the CONNECT with a CONNACK that says why, and move to CLOSED.

        ``return_code`` is a 3.1.1 return code (1-5: sent as the matching 5.0 reason code at
        level 5) or a 5.0 CONNACK reason code of 0x80 and up (sent as the matching 3.1.1
        code at levels 3-4, else 3 server unavailable). ``reason_string`` goes with it at
        level 5 only.

        Raises LocalProtocolError for another code, or unless a CONNECT awaits an answer.
        """
        if return_code not in _REFUSAL_CODES:
            raise LocalProtocolError(
                "Expected a refusal return code of 1-5 or a CONNACK reason code of 0x80 and up,"
                f" got {return_code}"
            )
        self._pending_connect("refuse()")
        self._send_refusal(return_code, reason_string)
        self._close()

    def disconnect(
        self, reason_code: int = reasons.SUCCESS, reason_string: str | None = None
    ) -> None:
        """Close the connection on the server's side: at level 5, once accepted, queue a
        DISCONNECT with ``reason_code`` (and ``reason_string``) first; levels 3-4 have no
        such packet, the transport's close says it all. Moves to CLOSED; nothing happens on
        a connection CLOSED already.

        Raises LocalProtocolError for a reason code a server's DISCONNECT cannot carry.
        """
        if reason_code not in _SERVER_DISCONNECT_CODES:
            raise LocalProtocolError(f"Expected a DISCONNECT reason code, got {reason_code}")
        if self._state is State.CLOSED:
            return
        if self._accepted and self._level5:
            self._queue_disconnect(reason_code, reason_string)
        self._close()

    def send_publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        properties: Properties | None = None,
        retain: bool = False,
    ) -> int | None:
        """Queue a PUBLISH to the client; return its packet id at QoS 1, None at QoS 0.

        A QoS 1 PUBLISH stays in flight (:meth:`in_flight`) until the client's PUBACK, which
        comes back as a PublishAcknowledged event; no more than :attr:`send_quota` may be.
        At level 5 the topic gets an alias (the first ``max_outgoing_aliases`` topics, as
        many as the client takes), sent in full the first time only.

        Raises LocalProtocolError before accept(), after close, for an invalid topic name,
        properties at levels 3-4, a QoS other than 0-1 (QoS 2 is not sent), or no send quota
        left; PublishTooLarge (a LocalProtocolError) when the PUBLISH would exceed the
        client's maximum packet size: nothing is sent then.
        """
        if not self._accepted:
            raise LocalProtocolError(
                f"Expected an accepted connection to publish on, got state {self._state.name}"
            )
        if qos or self._level5 or properties is not None:
            packet_id = self._outgoing.publish(topic, payload, qos, properties, retain)
        else:  # the hot path of pushes: a QoS 0 PUBLISH of level 3-4
            self._out += encode_publish(topic, payload, 0, retain)
            packet_id = None
        self._sent += 1
        return packet_id

    def resend(
        self,
        packet_id: int,
        topic: str,
        payload: bytes,
        qos: int,
        properties: Properties = NO_PROPERTIES,
    ) -> None:
        """Queue again, DUP set, a QoS 1 PUBLISH the client did not acknowledge on an earlier
        connection of its session (as :meth:`in_flight` listed it there), and count it in
        flight. Properties go as given: reduce a message expiry interval by the time waited.

        Raises LocalProtocolError as :meth:`send_publish`, and for a packet id in flight.
        """
        if not self._accepted:
            raise LocalProtocolError(
                f"Expected an accepted connection to resend on, got state {self._state.name}"
            )
        self._outgoing.resend(packet_id, topic, payload, qos, properties)
        self._sent += 1

    def in_flight(self) -> list[InFlight]:
        """The QoS 1 PUBLISHes sent and not acknowledged, in the order sent, as (packet_id,
        topic, payload, qos, properties); still there after close, for the session to keep."""
        return self._outgoing.in_flight()

    def ack(self, packet_id: int, reason_code: int = 0, reason_string: str | None = None) -> None:
        """With ``manual_acks``: acknowledge the message ``packet_id`` of a MessageReceived
        (PUBACK at QoS 1, PUBREC at QoS 2) once its handling finished. Acknowledgements are
        sent in the order the messages came: one for a later message waits for the earlier
        ones. ``reason_code`` (a PUBACK/PUBREC one: 0x10 no matching subscribers, 0x80 and up
        a failure) and ``reason_string`` are dropped below level 5. Does nothing once the
        connection is CLOSED: the acknowledgement has nobody to go to.

        Raises LocalProtocolError for an id that awaits no acknowledgement, or a reason code
        a PUBACK cannot carry.
        """
        if self._state is not State.CLOSED:
            self._handlers.ack(packet_id, reason_code, reason_string)

    def _pending_connect(self, call: str) -> Connect:
        connect = self._connect
        if self._state is not State.CONNECTED or self._accepted or connect is None:
            what = "an accepted one" if self._accepted else f"state {self._state.name}"
            raise LocalProtocolError(f"{call} expects a CONNECT awaiting an answer, got {what}")
        return connect

    def _close(self) -> None:
        self._state = State.CLOSED
        self._accepted = False
        self._handlers.forget()

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
                event = self._handlers.handle(packet)
                if event is not None:
                    events.append(event)
                    if isinstance(event, Disconnected):
                        self._on_disconnected(event)
        except ProtocolError as err:
            if self._accepted and self._level5:  # MQTT 5.0, 4.13.1: say why before closing
                reason = str(err)[:_MAX_ERROR_REASON].replace("\x00", "?")
                self._queue_disconnect(err.reason_code, reason)
            self._close()
            raise
        return events

    def _on_disconnected(self, event: Disconnected) -> None:
        if event.session_expiry_interval is not None:
            self._expiry = event.session_expiry_interval
        self._close()

    def _on_first_packet(self, packet: Packet) -> Event:
        if not isinstance(packet, Connect):
            raise ProtocolError(f"Expected CONNECT as the first packet, got {packet_name(packet)}")
        self._state = State.CONNECTED
        self._connect = packet
        if (packet.protocol_name, packet.protocol_level) not in SUPPORTED_PROTOCOLS:
            got = f"{packet.protocol_name!r} level {packet.protocol_level}"
            reason = f"Expected protocol 'MQIsdp' level 3 or 'MQTT' level 4 or 5, got {got}"
            return self._refuse_now(UNACCEPTABLE_PROTOCOL_VERSION, reason)
        self._begin(packet)
        if packet.properties.authentication_method is not None:
            method = packet.properties.authentication_method
            reason = f"Expected no authentication method (none is supported), got {method!r}"
            return self._refuse_now(reasons.BAD_AUTHENTICATION_METHOD, reason)
        problem = self._client_id_problem(packet)
        if problem is not None:
            return self._refuse_now(IDENTIFIER_REJECTED, problem)
        if not packet.client_id:
            self._connect = replace(packet, client_id="auto-" + secrets.token_hex(8))
            self._assigned_id = True
        return Connected(self._connect)

    def _begin(self, connect: Connect) -> None:
        """Adopt the level and the wishes of a CONNECT of a supported protocol."""
        self._level5 = connect.protocol_level == 5
        self._keepalive = connect.keepalive
        if self._level5:
            self._expiry = connect.properties.session_expiry_interval or 0
        else:
            self._expiry = 0 if connect.clean_session else None
        self._handlers.begin(connect)
        self._outgoing.begin(connect, self._max_aliases_out)

    def _client_id_problem(self, connect: Connect) -> str | None:
        size = len(connect.client_id.encode())
        if size > self._client_id_limit:
            return f"Expected a client id of at most {self._client_id_limit} bytes, got {size}"
        if size == 0 and not connect.clean_session and not self._level5:
            return "Expected a client id with clean session off, got an empty one"
        if size == 0 and not self._empty_id_ok:
            return "Expected a client id, got an empty one"
        return None

    def _refuse_now(self, return_code: int, reason: str) -> Event:
        code = self._send_refusal(return_code, reason)
        self._close()
        return ConnectionRefused(code, reason)

    def _send_refusal(self, return_code: int, reason: str | None) -> int:
        """Queue the CONNACK refusing the CONNECT; return the code it carries."""
        if self._level5:
            code = reasons.V5_OF_V3_CONNACK.get(return_code, return_code)
            props = NO_PROPERTIES if reason is None else Properties(reason_string=reason)
            self._queue(ConnAck(code, properties=props))
        else:
            code = return_code
            if return_code > 5:
                code = reasons.V3_OF_V5_CONNACK.get(return_code, SERVER_UNAVAILABLE)
            self._out += encode(ConnAck(code))
            self._sent += 1
        return code

    def _connack_properties(self, connect: Connect, extra: Properties | None) -> Properties:
        """What a 5.0 CONNACK accepting ``connect`` announces, with the application's
        ``extra`` properties."""
        announced = Properties(
            receive_maximum=self._receive_max,
            maximum_packet_size=self._max_packet_size,
            topic_alias_maximum=self._alias_max,
            retain_available=0,
            wildcard_subscription_available=1,
            subscription_identifiers_available=0,
            shared_subscription_available=0,
            assigned_client_identifier=connect.client_id if self._assigned_id else None,
        )
        if extra is None:
            return announced
        added = {
            name: value
            for name in _PROPERTY_NAMES
            if (value := getattr(extra, name)) != getattr(NO_PROPERTIES, name)
        }
        taken = sorted(_ANNOUNCED.intersection(added))
        if taken:
            raise LocalProtocolError(
                f"Expected CONNACK properties the protocol does not set itself, got {taken}"
            )
        if extra.session_expiry_interval is not None:
            self._expiry = extra.session_expiry_interval
        if extra.server_keep_alive is not None:
            self._keepalive = extra.server_keep_alive
        return replace(announced, **added)

    def _queue_disconnect(self, reason_code: int, reason_string: str | None) -> None:
        props = NO_PROPERTIES if reason_string is None else Properties(reason_string=reason_string)
        self._queue(Disconnect(reason_code, props))

    def _queue(self, packet: ConnAck | Disconnect) -> None:
        """Queue a level 5 packet the server sends on its own, within the client's maximum
        packet size (its reason string dropped if need be, or the whole packet)."""
        data = encode_to_fit(packet, self._outgoing.max_packet_size)
        if data is not None:
            self._out += data
            self._sent += 1


def _check_range(name: str, value: int, low: int) -> None:
    if not low <= value <= 0xFFFF:
        raise LocalProtocolError(f"Expected {name} of {low}-65535, got {value}")
