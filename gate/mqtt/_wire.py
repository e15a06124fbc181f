"""Wire facts shared by the encoder and the decoder: names, limits, reason codes, topic rules,
and MQTT's data types (5.0 section 1.5), read and written.

Readers take the buffer and the bounds ``[i, end)`` of what they may read, return the value
and the index after it, and raise ProtocolError (MALFORMED_PACKET) on truncated or invalid
bytes. Writers return bytes and raise LocalProtocolError for an unencodable value.
"""

from gate.mqtt import reasons as r
from gate.mqtt.errors import LocalProtocolError, ProtocolError

# Control packet type numbers (the high nibble of the first byte).
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15  # MQTT 5.0 only; reserved in 3.1.1

TYPE_NAMES = (
    "reserved type 0",
    "CONNECT",
    "CONNACK",
    "PUBLISH",
    "PUBACK",
    "PUBREC",
    "PUBREL",
    "PUBCOMP",
    "SUBSCRIBE",
    "SUBACK",
    "UNSUBSCRIBE",
    "UNSUBACK",
    "PINGREQ",
    "PINGRESP",
    "DISCONNECT",
    "AUTH",
)

# Fixed-header flags every packet but PUBLISH must carry (MQTT 3.1.1 and 5.0, section 2.1.3).
REQUIRED_FLAGS = {SUBSCRIBE: 0b0010, UNSUBSCRIBE: 0b0010, PUBREL: 0b0010}

# Remaining lengths of the packets whose size never varies, in 3.1/3.1.1 and in 5.0 (where
# reason codes and properties make the acknowledgements longer).
FIXED_LENGTHS = {
    CONNACK: 2,
    PUBACK: 2,
    PUBREC: 2,
    PUBREL: 2,
    PUBCOMP: 2,
    UNSUBACK: 2,
    PINGREQ: 0,
    PINGRESP: 0,
    DISCONNECT: 0,
}
FIXED_LENGTHS_5 = {PINGREQ: 0, PINGRESP: 0}

MAX_REMAINING_LENGTH = 268_435_455  # four varint bytes of seven bits
SUBACK_CODES = frozenset({0, 1, 2, 0x80})

# The reason codes each MQTT 5.0 packet may carry (section 2.4, table 2-6).
CONNACK_CODES_5 = frozenset(
    {r.SUCCESS, r.UNSPECIFIED_ERROR, r.MALFORMED_PACKET, r.PROTOCOL_ERROR}
    | {r.IMPLEMENTATION_SPECIFIC_ERROR, r.UNSUPPORTED_PROTOCOL_VERSION}
    | {r.CLIENT_IDENTIFIER_NOT_VALID, r.BAD_USER_NAME_OR_PASSWORD, r.NOT_AUTHORIZED}
    | {r.SERVER_UNAVAILABLE, r.SERVER_BUSY, r.BANNED, r.BAD_AUTHENTICATION_METHOD}
    | {r.TOPIC_NAME_INVALID, r.PACKET_TOO_LARGE, r.QUOTA_EXCEEDED, r.PAYLOAD_FORMAT_INVALID}
    | {r.RETAIN_NOT_SUPPORTED, r.QOS_NOT_SUPPORTED, r.USE_ANOTHER_SERVER, r.SERVER_MOVED}
    | {r.CONNECTION_RATE_EXCEEDED}
)
PUBACK_CODES_5 = frozenset(
    {r.SUCCESS, r.NO_MATCHING_SUBSCRIBERS, r.UNSPECIFIED_ERROR}
    | {r.IMPLEMENTATION_SPECIFIC_ERROR, r.NOT_AUTHORIZED, r.TOPIC_NAME_INVALID}
    | {r.PACKET_IDENTIFIER_IN_USE, r.QUOTA_EXCEEDED, r.PAYLOAD_FORMAT_INVALID}
)
PUBREL_CODES_5 = frozenset({r.SUCCESS, r.PACKET_IDENTIFIER_NOT_FOUND})
SUBACK_CODES_5 = frozenset(
    {r.SUCCESS, r.GRANTED_QOS_1, r.GRANTED_QOS_2, r.UNSPECIFIED_ERROR}
    | {r.IMPLEMENTATION_SPECIFIC_ERROR, r.NOT_AUTHORIZED, r.TOPIC_FILTER_INVALID}
    | {r.PACKET_IDENTIFIER_IN_USE, r.QUOTA_EXCEEDED, r.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED}
    | {r.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED, r.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED}
)
UNSUBACK_CODES_5 = frozenset(
    {r.SUCCESS, r.NO_SUBSCRIPTION_EXISTED, r.UNSPECIFIED_ERROR}
    | {r.IMPLEMENTATION_SPECIFIC_ERROR, r.NOT_AUTHORIZED, r.TOPIC_FILTER_INVALID}
    | {r.PACKET_IDENTIFIER_IN_USE}
)
DISCONNECT_CODES_5 = frozenset(
    {r.SUCCESS, r.DISCONNECT_WITH_WILL, r.UNSPECIFIED_ERROR, r.MALFORMED_PACKET}
    | {r.PROTOCOL_ERROR, r.IMPLEMENTATION_SPECIFIC_ERROR, r.NOT_AUTHORIZED, r.SERVER_BUSY}
    | {r.SERVER_SHUTTING_DOWN, r.KEEP_ALIVE_TIMEOUT, r.SESSION_TAKEN_OVER}
    | {r.TOPIC_FILTER_INVALID, r.TOPIC_NAME_INVALID, r.RECEIVE_MAXIMUM_EXCEEDED}
    | {r.TOPIC_ALIAS_INVALID, r.PACKET_TOO_LARGE, r.MESSAGE_RATE_TOO_HIGH, r.QUOTA_EXCEEDED}
    | {r.ADMINISTRATIVE_ACTION, r.PAYLOAD_FORMAT_INVALID, r.RETAIN_NOT_SUPPORTED}
    | {r.QOS_NOT_SUPPORTED, r.USE_ANOTHER_SERVER, r.SERVER_MOVED}
    | {r.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, r.CONNECTION_RATE_EXCEEDED}
    | {r.MAXIMUM_CONNECT_TIME, r.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED}
    | {r.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED}
)
AUTH_CODES_5 = frozenset({r.SUCCESS, r.CONTINUE_AUTHENTICATION, r.RE_AUTHENTICATE})


def topic_name_problem(topic: str) -> str | None:
    """Why ``topic`` cannot name a PUBLISH topic, or None when it can."""
    if not topic:
        return "Topic name is empty"
    if "+" in topic or "#" in topic:
        return f"Topic name {topic!r} contains a wildcard"
    if "\x00" in topic:
        return "Topic name contains U+0000"
    return None


def topic_filter_problem(topic_filter: str) -> str | None:
    """Why ``topic_filter`` is not a valid SUBSCRIBE/UNSUBSCRIBE filter, or None."""
    if not topic_filter:
        return "Topic filter is empty"
    if "\x00" in topic_filter:
        return "Topic filter contains U+0000"
    if "+" not in topic_filter and "#" not in topic_filter:
        return None
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        misplaced_hash = "#" in level and (level != "#" or index != last)
        if misplaced_hash or ("+" in level and level != "+"):
            return f"Topic filter {topic_filter!r} misplaces a wildcard"
    return None


def malformed(message: str) -> ProtocolError:
    """A ProtocolError for bytes that cannot be parsed (reason code MALFORMED_PACKET)."""
    return ProtocolError(message, r.MALFORMED_PACKET)


def read_u16(buf: bytearray, i: int, end: int, what: str) -> int:
    """A two-byte big-endian integer at ``i``."""
    if i + 2 > end:
        raise malformed(f"Expected a 2-byte {what}, got {end - i} bytes before the packet end")
    return (buf[i] << 8) | buf[i + 1]


def read_bytes(buf: bytearray, i: int, end: int, what: str) -> tuple[bytes, int]:
    """Binary data: a two-byte length, then that many bytes."""
    size = read_u16(buf, i, end, f"{what} length")
    stop = i + 2 + size
    if stop > end:
        raise malformed(f"{what} of {size} bytes runs past the end of the packet")
    return bytes(buf[i + 2 : stop]), stop


def read_str(buf: bytearray, i: int, end: int, what: str) -> tuple[str, int]:
    """A UTF-8 string: valid UTF-8 without U+0000 (a Malformed Packet otherwise)."""
    raw, stop = read_bytes(buf, i, end, what)
    try:
        text = raw.decode()
    except UnicodeDecodeError as err:
        raise malformed(f"{what} is not valid UTF-8: {err.reason}") from err
    if "\x00" in text:
        raise malformed(f"{what} contains U+0000")
    return text, stop


def read_vbi(buf: bytearray, i: int, end: int, what: str) -> tuple[int, int]:
    """A variable byte integer (5.0 section 1.5.5): one to four bytes of seven bits."""
    value = shift = 0
    while i < end:
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value, i
        shift += 7
        if shift == 28:
            raise malformed(f"{what} exceeds 4 bytes")
    raise malformed(f"{what} runs past the end of the packet")


def varint(n: int) -> bytes:
    """The remaining length ``n`` as MQTT's variable-length integer (1-4 bytes)."""
    if n < 0x80:
        return bytes((n,))
    if n > MAX_REMAINING_LENGTH:
        raise LocalProtocolError(f"Remaining length {n} exceeds {MAX_REMAINING_LENGTH}")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def u16(value: int, what: str) -> bytes:
    """A two-byte big-endian integer."""
    if not 0 <= value <= 0xFFFF:
        raise LocalProtocolError(f"Expected a {what} of 0-65535, got {value}")
    return value.to_bytes(2, "big")


def binary(data: bytes, what: str) -> bytes:
    """Binary data: its two-byte length, then the bytes."""
    return u16(len(data), f"{what} length") + data


def string(text: str, what: str) -> bytes:
    """A UTF-8 string field: no U+0000, at most 65535 bytes."""
    if "\x00" in text:
        raise LocalProtocolError(f"{what} contains U+0000")
    try:
        return binary(text.encode(), what)
    except UnicodeEncodeError as err:
        raise LocalProtocolError(f"{what} is not encodable as UTF-8: {err.reason}") from err
