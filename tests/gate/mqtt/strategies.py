"""Hypothesis strategies for valid MQTT packets, shared by the codec and protocol tests."""

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
            st.tuples(texts, st.integers(0, 255)),
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
