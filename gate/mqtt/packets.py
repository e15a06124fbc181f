"""MQTT 3.1 and 3.1.1 control packets as frozen dataclasses.

The packets hold decoded values only; the wire layout lives in :mod:`gate.mqtt.codec`.
Each class name, upper-cased, is the packet's name in the specification (``PubRel`` is PUBREL).
"""

from dataclasses import dataclass

# The (protocol name, protocol level) pairs this package speaks.
MQTT_3_1 = ("MQIsdp", 3)
MQTT_3_1_1 = ("MQTT", 4)
SUPPORTED_PROTOCOLS = frozenset({MQTT_3_1, MQTT_3_1_1})

# CONNACK return codes (MQTT 3.1.1, section 3.2.2.3; the same values in 3.1).
ACCEPTED = 0
UNACCEPTABLE_PROTOCOL_VERSION = 1
IDENTIFIER_REJECTED = 2
SERVER_UNAVAILABLE = 3
BAD_USERNAME_OR_PASSWORD = 4
NOT_AUTHORIZED = 5

# The SUBACK return code for a refused subscription.
SUBSCRIPTION_FAILURE = 0x80


@dataclass(frozen=True, slots=True)
class Connect:
    """CONNECT: the client's first packet. ``will_topic`` set means a will is present."""

    protocol_name: str
    protocol_level: int
    client_id: str
    clean_session: bool
    keepalive: int
    username: str | None = None
    password: bytes | None = None
    will_topic: str | None = None
    will_message: bytes | None = None
    will_qos: int = 0
    will_retain: bool = False


@dataclass(frozen=True, slots=True)
class ConnAck:
    """CONNACK: the server's answer to CONNECT."""

    return_code: int
    session_present: bool = False


@dataclass(frozen=True, slots=True)
class Publish:
    """PUBLISH, in either direction. ``packet_id`` is required iff ``qos`` > 0."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None


@dataclass(frozen=True, slots=True)
class PubAck:
    """PUBACK: acknowledges a QoS 1 PUBLISH."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class PubRec:
    """PUBREC: first answer to a QoS 2 PUBLISH."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class PubRel:
    """PUBREL: the sender releases a QoS 2 packet id."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class PubComp:
    """PUBCOMP: completes the QoS 2 exchange."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE: (topic filter, requested QoS) pairs, at least one."""

    packet_id: int
    topics: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class SubAck:
    """SUBACK: one return code (granted QoS 0-2, or 0x80) per requested filter."""

    packet_id: int
    return_codes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE: topic filters to drop, at least one."""

    packet_id: int
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnsubAck:
    """UNSUBACK: acknowledges an UNSUBSCRIBE."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class PingReq:
    """PINGREQ: the client's keepalive."""


@dataclass(frozen=True, slots=True)
class PingResp:
    """PINGRESP: the server's answer to PINGREQ."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT: the client closes cleanly (its will is discarded)."""


Packet = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
)


def packet_name(packet: Packet) -> str:
    """The packet's name as the specification spells it, e.g. ``PUBLISH``, for messages."""
    return type(packet).__name__.upper()
