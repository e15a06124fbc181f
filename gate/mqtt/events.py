"""The events :class:`~gate.mqtt.protocol.ServerProtocol` hands the application: what the
client's packets ask of it or tell it, and the CONNECT the protocol refused on its own."""

from dataclasses import dataclass

from gate.mqtt.packets import Connect


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
