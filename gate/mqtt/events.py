"""The events :class:`~gate.mqtt.protocol.ServerProtocol` hands the application: what the
client's packets ask of it or tell it, and the CONNECT the protocol refused on its own.

The fields MQTT 5.0 added come last, with defaults that are what a 3.1/3.1.1 client's
packets mean, so that an event of a level 3-4 connection reads as it always did.
"""

from dataclasses import dataclass

from gate.mqtt.packets import Connect
from gate.mqtt.properties import NO_PROPERTIES, Properties


@dataclass(frozen=True, slots=True)
class Connected:
    """A valid CONNECT arrived; answer it with accept() or refuse().

    An empty client id has already been replaced by a generated one (at level 5 the CONNACK
    will carry it as the assigned client identifier).
    """

    connect: Connect


@dataclass(slots=True)  # not frozen: see the docstring
class MessageReceived:
    """A PUBLISH to route; a QoS 2 message is reported once however often it is resent.

    ``packet_id`` is the PUBLISH's (None at QoS 0): with manual acks, what to pass to
    ``ack()``. At level 5 ``topic`` is resolved from the topic alias, and ``properties`` are
    the PUBLISH's without its ``topic_alias`` (an alias means nothing past the connection).

    One is built for every PUBLISH a client sends, and a frozen dataclass sets each field
    through ``object.__setattr__``: with six fields that cost 0.9 us a message, this plain
    one 0.25 us. Treat it as read-only all the same.
    """

    topic: str
    payload: bytes
    qos: int
    retain: bool
    packet_id: int | None = None
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Subscribed:
    """A SUBSCRIBE; the SUBACK is already queued. ``topics`` are the (filter, options) pairs
    granted: the options are the requested QoS at levels 3-4 and the whole subscription
    options byte at level 5, where a refused filter (a shared ``$share/`` one) is left out.
    """

    packet_id: int
    topics: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """An UNSUBSCRIBE; the UNSUBACK is already queued."""

    packet_id: int
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The client sent DISCONNECT; the connection is CLOSED.

    At level 5 ``reason_code`` says why (0x04 asks for the will to be published, 0 discards
    it, as every 3.1.1 DISCONNECT does) and ``session_expiry_interval`` is the one the
    DISCONNECT sets for the session from now on, or None when it leaves it as it was.
    """

    reason_code: int = 0
    session_expiry_interval: int | None = None


@dataclass(frozen=True, slots=True)
class ConnectionRefused:
    """The protocol refused the CONNECT itself; its CONNACK is queued, then close.

    ``return_code`` is the one the CONNACK carries: a 3.1.1 return code (1, 2), or at level 5
    a reason code (0x85 client identifier not valid, 0x8C bad authentication method).
    """

    return_code: int
    reason: str


@dataclass(frozen=True, slots=True)
class PublishAcknowledged:
    """The client's PUBACK for a QoS 1 PUBLISH of ``send_publish()`` or ``resend()``: its
    packet id is free again, and ``reason_code`` (level 5; 0 below) says how it went."""

    packet_id: int
    reason_code: int = 0


Event = (
    Connected
    | MessageReceived
    | Subscribed
    | Unsubscribed
    | Disconnected
    | ConnectionRefused
    | PublishAcknowledged
)
