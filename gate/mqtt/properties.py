"""MQTT 5.0 properties (section 2.2.2): one frozen dataclass holds any packet's.

A field left at its default (None, or an empty tuple) is absent on the wire. Which property a
packet may carry is in ``ALLOWED`` (by packet type number, and ``WILL`` for the will
properties of CONNECT); the codec refuses the others.
"""

from dataclasses import dataclass

from gate.mqtt import _wire as w


@dataclass(frozen=True, slots=True)
class Properties:
    """The properties of one packet (or of a CONNECT's will). Identifiers and types in
    comments; "u8" a byte, "u16"/"u32" big-endian integers, "vbi" a variable byte integer,
    "str" a UTF-8 string, "bin" binary data, "pair" a UTF-8 string pair."""

    payload_format_indicator: int | None = None  # 0x01 u8: 0 bytes, 1 UTF-8 text
    message_expiry_interval: int | None = None  # 0x02 u32, seconds
    content_type: str | None = None  # 0x03 str
    response_topic: str | None = None  # 0x08 str, a topic name (no wildcards)
    correlation_data: bytes | None = None  # 0x09 bin
    subscription_identifiers: tuple[int, ...] = ()  # 0x0B vbi 1..268435455, may repeat
    session_expiry_interval: int | None = None  # 0x11 u32, seconds; 0xFFFFFFFF never
    assigned_client_identifier: str | None = None  # 0x12 str
    server_keep_alive: int | None = None  # 0x13 u16, seconds
    authentication_method: str | None = None  # 0x15 str
    authentication_data: bytes | None = None  # 0x16 bin
    request_problem_information: int | None = None  # 0x17 u8, 0 or 1
    will_delay_interval: int | None = None  # 0x18 u32, seconds
    request_response_information: int | None = None  # 0x19 u8, 0 or 1
    response_information: str | None = None  # 0x1A str
    server_reference: str | None = None  # 0x1C str
    reason_string: str | None = None  # 0x1F str
    receive_maximum: int | None = None  # 0x21 u16, 1..65535
    topic_alias_maximum: int | None = None  # 0x22 u16
    topic_alias: int | None = None  # 0x23 u16, 1..65535
    maximum_qos: int | None = None  # 0x24 u8, 0 or 1
    retain_available: int | None = None  # 0x25 u8, 0 or 1
    user_properties: tuple[tuple[str, str], ...] = ()  # 0x26 pair, may repeat, order kept
    maximum_packet_size: int | None = None  # 0x27 u32, 1..
    wildcard_subscription_available: int | None = None  # 0x28 u8, 0 or 1
    subscription_identifiers_available: int | None = None  # 0x29 u8, 0 or 1
    shared_subscription_available: int | None = None  # 0x2A u8, 0 or 1


NO_PROPERTIES = Properties()

WILL = 0
"""``ALLOWED``'s key for the will properties of a CONNECT (no packet type is 0)."""

_MESSAGE = frozenset(
    {
        "payload_format_indicator",
        "message_expiry_interval",
        "content_type",
        "response_topic",
        "correlation_data",
        "user_properties",
    }
)
_REASON = frozenset({"reason_string", "user_properties"})
_AUTH = frozenset({"authentication_method", "authentication_data"})

# Section 2.2.2.2, table 2-4: the properties each packet (and a CONNECT's will) may carry.
ALLOWED: dict[int, frozenset[str]] = {
    w.CONNECT: _AUTH
    | {
        "session_expiry_interval",
        "request_problem_information",
        "request_response_information",
        "receive_maximum",
        "topic_alias_maximum",
        "user_properties",
        "maximum_packet_size",
    },
    w.CONNACK: _AUTH
    | _REASON
    | {
        "session_expiry_interval",
        "assigned_client_identifier",
        "server_keep_alive",
        "response_information",
        "server_reference",
        "receive_maximum",
        "topic_alias_maximum",
        "maximum_qos",
        "retain_available",
        "maximum_packet_size",
        "wildcard_subscription_available",
        "subscription_identifiers_available",
        "shared_subscription_available",
    },
    w.PUBLISH: _MESSAGE | {"subscription_identifiers", "topic_alias"},
    w.PUBACK: _REASON,
    w.PUBREC: _REASON,
    w.PUBREL: _REASON,
    w.PUBCOMP: _REASON,
    w.SUBSCRIBE: frozenset({"subscription_identifiers", "user_properties"}),
    w.SUBACK: _REASON,
    w.UNSUBSCRIBE: frozenset({"user_properties"}),
    w.UNSUBACK: _REASON,
    w.PINGREQ: frozenset(),
    w.PINGRESP: frozenset(),
    w.DISCONNECT: _REASON | {"session_expiry_interval", "server_reference"},
    w.AUTH: _AUTH | _REASON,
    WILL: _MESSAGE | {"will_delay_interval"},
}
