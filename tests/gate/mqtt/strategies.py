"""Hypothesis strategies for valid MQTT packets (3.1/3.1.1, and 5.0), shared by the codec and
protocol tests."""

from hypothesis import strategies as st

from gate.mqtt import (
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
)
from gate.mqtt.packets import MQTT_5, Auth
from gate.mqtt.properties import Properties

_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")
_TOPIC_CHARS = st.characters(codec="utf-8", exclude_characters="\x00+#")
_LEVEL_CHARS = st.characters(codec="utf-8", exclude_characters="\x00+#/")

texts = st.text(_CHARS, max_size=12)
topic_names = st.text(_TOPIC_CHARS, min_size=1, max_size=20)
packet_ids = st.integers(1, 0xFFFF)
qos_levels = st.integers(0, 2)
payloads = st.binary(max_size=64)


@st.composite
def topic_filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.one_of(st.just("+"), st.text(_LEVEL_CHARS, max_size=5)), max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels) or "+"


@st.composite
def connects(draw: st.DrawFn) -> Connect:
    name, level = draw(
        st.one_of(
            st.sampled_from([("MQTT", 4), ("MQIsdp", 3)]),
            # Not 5.0's: its CONNECT switches a decoder to level 5 for the packets after it.
            st.tuples(texts, st.integers(0, 255)).filter(lambda protocol: protocol != MQTT_5),
        )
    )
    username = draw(st.none() | texts)
    password = draw(st.none() | payloads)
    if level == 4 and username is None and password is not None:
        username = ""  # MQTT 3.1.1 forbids a password without a user name
    will = draw(st.none() | st.tuples(topic_names, payloads, qos_levels, st.booleans()))
    will_topic, will_message, will_qos, will_retain = will or (None, None, 0, False)
    return Connect(
        protocol_name=name,
        protocol_level=level,
        client_id=draw(texts),
        clean_session=draw(st.booleans()),
        keepalive=draw(st.integers(0, 0xFFFF)),
        username=username,
        password=password,
        will_topic=will_topic,
        will_message=will_message,
        will_qos=will_qos,
        will_retain=will_retain,
    )


@st.composite
def publishes(draw: st.DrawFn) -> Publish:
    qos = draw(qos_levels)
    packet_id = draw(packet_ids) if qos else None
    return Publish(
        draw(topic_names), draw(payloads), qos, draw(st.booleans()), draw(st.booleans()), packet_id
    )


connacks = st.one_of(
    st.builds(ConnAck, st.just(0), st.booleans()),
    st.builds(ConnAck, st.integers(1, 255), st.just(False)),
)
subscribes = st.builds(
    Subscribe, packet_ids, st.lists(st.tuples(topic_filters(), qos_levels), min_size=1).map(tuple)
)
subacks = st.builds(
    SubAck, packet_ids, st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1).map(tuple)
)
unsubscribes = st.builds(Unsubscribe, packet_ids, st.lists(topic_filters(), min_size=1).map(tuple))
id_only = st.sampled_from([PubAck, PubRec, PubRel, PubComp, UnsubAck]).flatmap(
    lambda cls: st.builds(cls, packet_ids)
)
empty = st.sampled_from([PingReq(), PingResp(), Disconnect()])

packets: st.SearchStrategy[Packet] = st.one_of(
    connects(), connacks, publishes(), subscribes, subacks, unsubscribes, id_only, empty
)


# MQTT 5.0: every packet type with random properties among those it may carry, written out
# here from the specification (section 2.2.2.2 and 2.4) rather than from the codec's tables.

_flags = st.integers(0, 1)
_u16 = st.integers(0, 0xFFFF)
_u32 = st.integers(0, 0xFFFF_FFFF)
_strings = st.text(_CHARS, max_size=8)

PROPERTY_VALUES: dict[str, st.SearchStrategy[object]] = {
    "payload_format_indicator": _flags,
    "message_expiry_interval": _u32,
    "content_type": _strings,
    "response_topic": topic_names,
    "correlation_data": payloads,
    "subscription_identifiers": st.lists(st.integers(1, 268_435_455), min_size=1, max_size=3).map(
        tuple
    ),
    "session_expiry_interval": _u32,
    "assigned_client_identifier": _strings,
    "server_keep_alive": _u16,
    "authentication_method": _strings,
    "authentication_data": payloads,
    "request_problem_information": _flags,
    "will_delay_interval": _u32,
    "request_response_information": _flags,
    "response_information": _strings,
    "server_reference": _strings,
    "reason_string": _strings,
    "receive_maximum": st.integers(1, 0xFFFF),
    "topic_alias_maximum": _u16,
    "topic_alias": st.integers(1, 0xFFFF),
    "maximum_qos": _flags,
    "retain_available": _flags,
    "user_properties": st.lists(st.tuples(_strings, _strings), min_size=1, max_size=3).map(tuple),
    "maximum_packet_size": st.integers(1, 0xFFFF_FFFF),
    "wildcard_subscription_available": _flags,
    "subscription_identifiers_available": _flags,
    "shared_subscription_available": _flags,
}

_REASON = ("reason_string", "user_properties")
_AUTH = ("authentication_method", "authentication_data")
_MESSAGE = (
    "payload_format_indicator",
    "message_expiry_interval",
    "content_type",
    "response_topic",
    "correlation_data",
    "user_properties",
)
CONNECT_PROPERTIES = (
    *_AUTH,
    "session_expiry_interval",
    "request_problem_information",
    "request_response_information",
    "receive_maximum",
    "topic_alias_maximum",
    "user_properties",
    "maximum_packet_size",
)
CONNACK_PROPERTIES = (
    *_AUTH,
    *_REASON,
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
)
WILL_PROPERTIES = (*_MESSAGE, "will_delay_interval")
PUBLISH_PROPERTIES = (*_MESSAGE, "subscription_identifiers", "topic_alias")
DISCONNECT_PROPERTIES = (*_REASON, "session_expiry_interval", "server_reference")
AUTH_PROPERTIES = (*_AUTH, *_REASON)

CONNACK_CODES = (
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95,
    0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
)  # fmt: skip
PUBACK_CODES = (0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
PUBREL_CODES = (0x00, 0x92)
SUBACK_CODES = (0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
UNSUBACK_CODES = (0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
DISCONNECT_CODES = (
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
    0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
)  # fmt: skip
AUTH_CODES = (0x00, 0x18, 0x19)


@st.composite
def properties(draw: st.DrawFn, fields: tuple[str, ...], one_identifier: bool = True) -> Properties:
    """Properties setting a random subset of ``fields``; at most one subscription identifier
    when ``one_identifier`` (only a PUBLISH may carry several)."""
    chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=5)) if fields else []
    values = {field: draw(PROPERTY_VALUES[field]) for field in chosen}
    if one_identifier and "subscription_identifiers" in values:
        values["subscription_identifiers"] = values["subscription_identifiers"][:1]  # type: ignore[index]
    return Properties(**values)  # type: ignore[arg-type]


@st.composite
def connects5(draw: st.DrawFn) -> Connect:
    will = draw(st.none() | st.tuples(topic_names, payloads, qos_levels, st.booleans()))
    will_topic, will_message, will_qos, will_retain = will or (None, None, 0, False)
    return Connect(
        protocol_name="MQTT",
        protocol_level=5,
        client_id=draw(texts),
        clean_session=draw(st.booleans()),
        keepalive=draw(st.integers(0, 0xFFFF)),
        username=draw(st.none() | texts),
        password=draw(st.none() | payloads),  # 5.0 allows a password without a user name
        will_topic=will_topic,
        will_message=will_message,
        will_qos=will_qos,
        will_retain=will_retain,
        properties=draw(properties(CONNECT_PROPERTIES)),
        will_properties=draw(properties(WILL_PROPERTIES)) if will else Properties(),
    )


@st.composite
def publishes5(draw: st.DrawFn) -> Publish:
    qos = draw(qos_levels)
    packet_id = draw(packet_ids) if qos else None
    props = draw(properties(PUBLISH_PROPERTIES, one_identifier=False))
    topic = draw(topic_names)
    if props.topic_alias is not None and draw(st.booleans()):
        topic = ""  # the topic alias stands for the topic
    return Publish(
        topic, draw(payloads), qos, draw(st.booleans()), draw(st.booleans()), packet_id, props
    )


@st.composite
def subscription_options(draw: st.DrawFn) -> int:
    qos, no_local, as_published, handling = draw(
        st.tuples(qos_levels, st.booleans(), st.booleans(), st.integers(0, 2))
    )
    return qos | no_local << 2 | as_published << 3 | handling << 4


def _acks(cls: type, codes: tuple[int, ...]) -> st.SearchStrategy[Packet]:
    return st.builds(cls, packet_ids, st.sampled_from(codes), properties(_REASON))


connacks5 = st.one_of(
    st.builds(ConnAck, st.just(0), st.booleans(), properties(CONNACK_PROPERTIES)),
    st.builds(ConnAck, st.sampled_from(CONNACK_CODES[1:]), st.just(False), properties(_REASON)),
)
acks5 = st.one_of(
    _acks(PubAck, PUBACK_CODES),
    _acks(PubRec, PUBACK_CODES),
    _acks(PubRel, PUBREL_CODES),
    _acks(PubComp, PUBREL_CODES),
)
subscribes5 = st.builds(
    Subscribe,
    packet_ids,
    st.lists(st.tuples(topic_filters(), subscription_options()), min_size=1, max_size=4).map(tuple),
    properties(("subscription_identifiers", "user_properties")),
)
subacks5 = st.builds(
    SubAck,
    packet_ids,
    st.lists(st.sampled_from(SUBACK_CODES), min_size=1, max_size=4).map(tuple),
    properties(_REASON),
)
unsubscribes5 = st.builds(
    Unsubscribe,
    packet_ids,
    st.lists(topic_filters(), min_size=1, max_size=4).map(tuple),
    properties(("user_properties",)),
)
unsubacks5 = st.builds(
    UnsubAck,
    packet_ids,
    st.lists(st.sampled_from(UNSUBACK_CODES), min_size=1, max_size=4).map(tuple),
    properties(_REASON),
)
disconnects5 = st.builds(
    Disconnect, st.sampled_from(DISCONNECT_CODES), properties(DISCONNECT_PROPERTIES)
)
auths5 = st.builds(Auth, st.sampled_from(AUTH_CODES), properties(AUTH_PROPERTIES))

packets5: st.SearchStrategy[Packet] = st.one_of(
    connects5(),
    connacks5,
    publishes5(),
    acks5,
    subscribes5,
    subacks5,
    unsubscribes5,
    unsubacks5,
    st.sampled_from([PingReq(), PingResp()]),
    disconnects5,
    auths5,
)
