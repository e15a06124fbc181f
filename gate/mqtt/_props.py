"""MQTT 5.0 properties on the wire (section 2.2.2): a property length, then identifier and
value pairs, each value typed by its identifier.

:func:`read_properties` and :func:`properties_bytes` check what the specification requires
of a packet's properties: only those ``properties.ALLOWED`` for the packet, none twice but
the user properties (and the subscription identifiers of a PUBLISH), values in range.
"""

import functools
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

from gate.mqtt import _wire as w
from gate.mqtt import reasons
from gate.mqtt.errors import LocalProtocolError, ProtocolError
from gate.mqtt.properties import ALLOWED, NO_PROPERTIES, WILL, Properties

# Value types (section 2.2.2.2).
U8, U16, U32, VBI, STR, BIN, PAIR = range(7)
_HIGHEST = {U8: 0xFF, U16: 0xFFFF, U32: 0xFFFF_FFFF, VBI: w.MAX_REMAINING_LENGTH}


class Spec(NamedTuple):
    """One property: its identifier, field of :class:`Properties`, type and valid range."""

    ident: int
    field: str
    kind: int
    low: int = 0
    high: int | None = None  # None: the type's largest value
    reason: int = reasons.PROTOCOL_ERROR  # the reason code of a value out of range

    @property
    def repeats(self) -> bool:
        return self.kind == PAIR or self.ident == 0x0B


SPECS = (
    Spec(0x01, "payload_format_indicator", U8, high=1),
    Spec(0x02, "message_expiry_interval", U32),
    Spec(0x03, "content_type", STR),
    Spec(0x08, "response_topic", STR),
    Spec(0x09, "correlation_data", BIN),
    Spec(0x0B, "subscription_identifiers", VBI, low=1),
    Spec(0x11, "session_expiry_interval", U32),
    Spec(0x12, "assigned_client_identifier", STR),
    Spec(0x13, "server_keep_alive", U16),
    Spec(0x15, "authentication_method", STR),
    Spec(0x16, "authentication_data", BIN),
    Spec(0x17, "request_problem_information", U8, high=1),
    Spec(0x18, "will_delay_interval", U32),
    Spec(0x19, "request_response_information", U8, high=1),
    Spec(0x1A, "response_information", STR),
    Spec(0x1C, "server_reference", STR),
    Spec(0x1F, "reason_string", STR),
    Spec(0x21, "receive_maximum", U16, low=1),
    Spec(0x22, "topic_alias_maximum", U16),
    Spec(0x23, "topic_alias", U16, low=1, reason=reasons.TOPIC_ALIAS_INVALID),
    Spec(0x24, "maximum_qos", U8, high=1),
    Spec(0x25, "retain_available", U8, high=1),
    Spec(0x26, "user_properties", PAIR),
    Spec(0x27, "maximum_packet_size", U32, low=1),
    Spec(0x28, "wildcard_subscription_available", U8, high=1),
    Spec(0x29, "subscription_identifiers_available", U8, high=1),
    Spec(0x2A, "shared_subscription_available", U8, high=1),
)
_BY_IDENT = {spec.ident: spec for spec in SPECS}
# Per packet type (and WILL): identifier -> Spec, for the properties it may carry.
_ALLOWED_SPECS = {
    ptype: {spec.ident: spec for spec in SPECS if spec.field in fields}
    for ptype, fields in ALLOWED.items()
}
_WHERE = {**dict(enumerate(w.TYPE_NAMES)), WILL: "CONNECT will properties"}
_NO_LENGTH = b"\x00"

# Sections of a few bytes repeat from packet to packet (a topic alias, a payload format, an
# expiry) and building a Properties costs more than parsing them (27 frozen fields): those of
# up to SMALL bytes are read and written once, then found in a cache of at most 1024 (errors
# are not cached: bad bytes cost a parse each time).
SMALL = 32


def _u8(buf: bytearray, i: int, end: int, what: str) -> tuple[int, int]:
    if i >= end:
        raise w.malformed(f"Expected a 1-byte {what}, got the end of the properties")
    return buf[i], i + 1


def _u16(buf: bytearray, i: int, end: int, what: str) -> tuple[int, int]:
    return w.read_u16(buf, i, end, what), i + 2


def _u32(buf: bytearray, i: int, end: int, what: str) -> tuple[int, int]:
    if i + 4 > end:
        raise w.malformed(f"Expected a 4-byte {what}, got {end - i} bytes before their end")
    return int.from_bytes(buf[i : i + 4], "big"), i + 4


def _pair(buf: bytearray, i: int, end: int, what: str) -> tuple[tuple[str, str], int]:
    name, i = w.read_str(buf, i, end, f"{what} name")
    value, i = w.read_str(buf, i, end, f"{what} value")
    return (name, value), i


_READERS: dict[int, Callable[[bytearray, int, int, str], tuple[Any, int]]] = {
    U8: _u8,
    U16: _u16,
    U32: _u32,
    VBI: w.read_vbi,
    STR: w.read_str,
    BIN: w.read_bytes,
    PAIR: _pair,
}


def read_properties(buf: bytearray, i: int, end: int, ptype: int) -> tuple[Properties, int]:
    """The properties at ``i`` of a packet of type ``ptype`` (or WILL), and the index after.

    Raises ProtocolError: MALFORMED_PACKET for a truncated or overlong property, or one the
    packet may not carry; the value's own reason code (PROTOCOL_ERROR, TOPIC_ALIAS_INVALID)
    for a duplicate or a value out of range.
    """
    length, i = w.read_vbi(buf, i, end, "Property length")
    if not length:
        return NO_PROPERTIES, i
    stop = i + length
    if stop > end:
        raise w.malformed(f"Properties of {length} bytes run past the end of the packet")
    if length <= SMALL:
        return _parse_small(bytes(buf[i:stop]), ptype), stop
    return _parse(buf, i, stop, ptype), stop


@functools.lru_cache(maxsize=1024)
def _parse_small(raw: bytes, ptype: int) -> Properties:
    return _parse(bytearray(raw), 0, len(raw), ptype)


def _parse(buf: bytearray, i: int, stop: int, ptype: int) -> Properties:
    allowed = _ALLOWED_SPECS[ptype]
    values: dict[str, Any] = {}
    while i < stop:
        ident, i = w.read_vbi(buf, i, stop, "Property identifier")
        spec = allowed.get(ident)
        if spec is None:
            raise w.malformed(_not_allowed(ident, ptype))
        value, i = _READERS[spec.kind](buf, i, stop, spec.field)
        _check_read(spec, value, ptype)
        if spec.field not in values:
            values[spec.field] = [value] if spec.repeats else value
        elif spec.kind == PAIR or (spec.repeats and ptype == w.PUBLISH):
            values[spec.field].append(value)
        else:
            where = _WHERE[ptype]
            raise ProtocolError(f"Expected {spec.field} once in {where}, got it twice")
    fields: dict[str, Any] = {
        field: tuple(value) if isinstance(value, list) else value for field, value in values.items()
    }
    return Properties(**fields)


def _not_allowed(ident: int, ptype: int) -> str:
    spec = _BY_IDENT.get(ident)
    if spec is None:
        return f"Expected a property identifier in {_WHERE[ptype]}, got {ident:#04x}"
    return f"{_WHERE[ptype]} may not carry the property {spec.field} ({ident:#04x})"


def _check_read(spec: Spec, value: object, ptype: int) -> None:
    if not isinstance(value, int):
        return
    high = _HIGHEST[spec.kind] if spec.high is None else spec.high
    if not spec.low <= value <= high:
        where = _WHERE[ptype]
        message = f"Expected a {spec.field} of {spec.low}-{high} in {where}, got {value}"
        raise ProtocolError(message, spec.reason)


def _write_int(spec: Spec, value: int) -> bytes:
    high = _HIGHEST[spec.kind] if spec.high is None else spec.high
    if not spec.low <= value <= high:
        raise LocalProtocolError(f"Expected a {spec.field} of {spec.low}-{high}, got {value}")
    if spec.kind == VBI:
        return w.varint(value)
    return value.to_bytes({U8: 1, U16: 2, U32: 4}[spec.kind], "big")


def _write(spec: Spec, value: Any) -> bytes:
    head = bytes((spec.ident,))  # every identifier is under 0x80: a one-byte integer
    if spec.kind == STR:
        return head + w.string(value, spec.field)
    if spec.kind == BIN:
        return head + w.binary(value, spec.field)
    if spec.kind == PAIR:
        name, text = value
        return head + w.string(name, f"{spec.field} name") + w.string(text, f"{spec.field} value")
    return head + _write_int(spec, value)


def properties_bytes(props: Properties, ptype: int) -> bytes:
    """The property length and properties of a packet of type ``ptype`` (or WILL).

    Raises LocalProtocolError for a property the packet may not carry, a value out of range,
    or several subscription identifiers outside PUBLISH.
    """
    if props is NO_PROPERTIES:
        return _NO_LENGTH
    key = (props, ptype)
    try:
        return _written[key]
    except KeyError:
        pass
    except TypeError:  # a list where a tuple belongs: unhashable, written all the same
        return _write_all(props, ptype)
    data = _write_all(props, ptype)
    if len(data) <= SMALL:  # the same few bytes again and again: a topic alias, say
        if len(_written) >= 1024:
            _written.clear()
        _written[key] = data
    return data


_written: dict[tuple[Properties, int], bytes] = {}
_all_values = operator.attrgetter(*(spec.field for spec in SPECS))


def _write_all(props: Properties, ptype: int) -> bytes:
    allowed = ALLOWED[ptype]
    parts = []
    for spec, value in zip(SPECS, _all_values(props), strict=True):
        if value is None or value == ():
            continue
        if spec.field not in allowed:
            raise LocalProtocolError(f"{_WHERE[ptype]} may not carry the property {spec.field}")
        if not spec.repeats:
            parts.append(_write(spec, value))
            continue
        if spec.kind == VBI and len(value) > 1 and ptype != w.PUBLISH:
            raise LocalProtocolError(
                f"Expected one subscription identifier in {_WHERE[ptype]}, got {len(value)}"
            )
        parts += (_write(spec, item) for item in value)
    body = b"".join(parts)
    return w.varint(len(body)) + body
