"""MQTT 3.1, 3.1.1 and 5.0 control packets as frozen dataclasses.

The packets hold decoded values only; the wire layout lives in :mod:`gate.mqtt.codec`.
Each class name, upper-cased, is the packet's name in the specification (``PubRel`` is PUBREL).
The 5.0 fields (``properties``, ``reason_code``, ``reason_codes``) come last, with defaults
that mean "absent": a 3.1.1 packet leaves them so, and the codec refuses to write a 3.1.1
packet that sets them.
"""

from dataclasses import dataclass

from gate.mqtt.properties import NO_PROPERTIES, Properties

# The (protocol name, protocol level) pairs this package speaks.
MQTT_3_1 = ("MQIsdp", 3)
MQTT_3_1_1 = ("MQTT", 4)
MQTT_5 = ("MQTT", 5)
SUPPORTED_PROTOCOLS = frozenset({MQTT_3_1, MQTT_3_1_1, MQTT_5})

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
    properties: Properties = NO_PROPERTIES
    will_properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class ConnAck:
    """CONNACK: the server's answer to CONNECT. ``return_code`` is the 5.0 reason code at
    level 5 (0 accepts, 0x80 and up refuse)."""

    return_code: int
    session_present: bool = False
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Publish:
    """PUBLISH, in either direction. ``packet_id`` is required iff ``qos`` > 0."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PubAck:
    """PUBACK: acknowledges a QoS 1 PUBLISH."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PubRec:
    """PUBREC: first answer to a QoS 2 PUBLISH."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PubRel:
    """PUBREL: the sender releases a QoS 2 packet id."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PubComp:
    """PUBCOMP: completes the QoS 2 exchange."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE: (topic filter, options) pairs, at least one. The options are the requested
    QoS at levels 3-4; at level 5 the whole subscription options byte: QoS in bits 0-1, No
    Local bit 2, Retain As Published bit 3, Retain Handling bits 4-5."""

    packet_id: int
    topics: tuple[tuple[str, int], ...]
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class SubAck:
    """SUBACK: one return code (granted QoS 0-2, or 0x80; at level 5 any SUBACK reason
    code) per requested filter."""

    packet_id: int
    return_codes: tuple[int, ...]
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE: topic filters to drop, at least one."""

    packet_id: int
    topics: tuple[str, ...]
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class UnsubAck:
    """UNSUBACK: acknowledges an UNSUBSCRIBE; at level 5 with a reason code per filter."""

    packet_id: int
    reason_codes: tuple[int, ...] = ()
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class PingReq:
    """PINGREQ: the client's keepalive."""


@dataclass(frozen=True, slots=True)
class PingResp:
    """PINGRESP: the server's answer to PINGREQ."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT: the client closes cleanly (its will is discarded); at level 5 either side
    may send it, with a reason."""

    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH (level 5 only, packet type 15): a step of enhanced authentication."""

    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


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
    | Auth
)


def packet_name(packet: Packet) -> str:
    """The packet's name as the specification spells it, e.g. ``PUBLISH``, for messages."""
    return type(packet).__name__.upper()
