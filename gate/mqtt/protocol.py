"""The server side of one MQTT 3.1/3.1.1 connection, as a state machine with no I/O.

Feed received bytes to :meth:`ServerProtocol.receive_data` and act on the events it returns;
send whatever :meth:`ServerProtocol.data_to_send` hands back. Replies the protocol owes on its
own (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK, PINGRESP) are queued automatically, by the
handlers of ``_handlers``; the CONNACK that accepts a client is the application's decision
(:meth:`ServerProtocol.accept`).
"""

import enum
import secrets
from dataclasses import replace

from gate.mqtt._handlers import PacketHandlers
from gate.mqtt.codec import Decoder, encode, encode_publish
from gate.mqtt.errors import LocalProtocolError, ProtocolError
from gate.mqtt.events import Connected, ConnectionRefused, Disconnected, Event
from gate.mqtt.packets import (
    IDENTIFIER_REJECTED,
    SUPPORTED_PROTOCOLS,
    UNACCEPTABLE_PROTOCOL_VERSION,
    ConnAck,
    Connect,
    Packet,
    packet_name,
)

_CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


class State(enum.Enum):
    """Where a connection stands. CONNECTED means a valid CONNECT arrived (maybe not accepted)."""

    AWAITING_CONNECT = "awaiting_connect"
    CONNECTED = "connected"
    CLOSED = "closed"


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
        "_handlers",
        "_out",
        "_packets",
        "_sent",
        "_state",
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
        self._sent = 0  # packets queued by the application's calls (CONNACK, PUBLISH)
        self._out = bytearray()
        self._handlers = PacketHandlers(self._out)  # the packets after an accepted CONNECT
        self._state = State.AWAITING_CONNECT
        self._accepted = False  # CONNECTED and accepted: packets flow
        self._connect: Connect | None = None
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
    def packets_sent(self) -> int:
        """Packets queued for the client so far, of every type."""
        return self._sent + self._handlers.replies

    @property
    def control_packets_received(self) -> int:
        """Packets decoded so far other than PUBLISH."""
        return self._packets - self._handlers.publishes

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
        self._sent += 1
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
        self._sent += 1
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
        self._sent += 1

    def _expect_pending_connect(self, call: str) -> None:
        if self._state is not State.CONNECTED or self._accepted:
            what = "an accepted one" if self._accepted else f"state {self._state.name}"
            raise LocalProtocolError(f"{call} expects a CONNECT awaiting an answer, got {what}")

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
                        self._close()
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
        self._sent += 1
        self._close()
        return ConnectionRefused(return_code, reason)
