"""The codec at MQTT 5.0: the specification's examples, hand-computed bytes for every packet
type, the decoder following its CONNECT's level, and round trips by property."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.mqtt import (
    ConnAck,
    Connect,
    Decoder,
    Disconnect,
    LocalProtocolError,
    Packet,
    PingReq,
    PingResp,
    ProtocolError,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    _props,
    encode,
    encode_publish,
)
from gate.mqtt import _wire as w
from gate.mqtt._encode import varint
from gate.mqtt.packets import Auth
from gate.mqtt.properties import NO_PROPERTIES, Properties
from tests.gate.mqtt.strategies import packets5
from tests.gate.mqtt.test_codec import GOLDEN


def decode5(data: bytes) -> list[Packet]:
    decoder = Decoder(protocol_level=5)
    decoder.receive_data(data)
    return list(decoder)


# MQTT 5.0 section 3.1.2.11, figure 3-6: the CONNECT variable header example. Protocol name
# "MQTT", version 5, flags 0xCE (user name, password, will QoS 1, will, clean start), keep
# alive 10, then properties of length 5: Session Expiry Interval (17) of 10.
SPEC_CONNECT_VARIABLE_HEADER = bytes(
    [0, 4, 0x4D, 0x51, 0x54, 0x54, 5, 0xCE, 0, 10, 5, 17, 0, 0, 0, 10]
)
SPEC_CONNECT = Connect(
    "MQTT", 5, "cid", True, 10, username="user", password=b"pw",
    will_topic="w/t", will_message=b"bye", will_qos=1,
    properties=Properties(session_expiry_interval=10),
)  # fmt: skip
SPEC_CONNECT_BYTES = (
    b"\x10\x2a"  # CONNECT, remaining length 42
    + SPEC_CONNECT_VARIABLE_HEADER
    + b"\x00\x03cid"  # client identifier
    + b"\x00"  # will properties: none
    + b"\x00\x03w/t\x00\x03bye"  # will topic, will payload
    + b"\x00\x04user\x00\x02pw"
)


def test_the_specification_connect_variable_header():
    data = encode(SPEC_CONNECT, protocol_level=5)
    assert data == SPEC_CONNECT_BYTES
    assert data[2:18] == SPEC_CONNECT_VARIABLE_HEADER
    assert decode5(data) == [SPEC_CONNECT]


# MQTT 5.0 section 1.5.5, table 1-1: the boundaries of one to four variable byte integer bytes.
VARIABLE_BYTE_INTEGERS = [
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16_383, b"\xff\x7f"),
    (16_384, b"\x80\x80\x01"),
    (2_097_151, b"\xff\xff\x7f"),
    (2_097_152, b"\x80\x80\x80\x01"),
    (268_435_455, b"\xff\xff\xff\x7f"),
]


@pytest.mark.parametrize(("value", "data"), VARIABLE_BYTE_INTEGERS)
def test_variable_byte_integers(value, data):
    assert varint(value) == data
    assert w.read_vbi(bytearray(data + b"rest"), 0, len(data) + 4, "x") == (value, len(data))


@pytest.mark.parametrize(("value", "data"), VARIABLE_BYTE_INTEGERS[1:])
def test_a_subscription_identifier_is_a_variable_byte_integer(value, data):
    packet = Subscribe(1, (("a", 0),), Properties(subscription_identifiers=(value,)))
    properties = bytes((1 + len(data),)) + b"\x0b" + data  # length, identifier 0x0B, value
    body = b"\x00\x01" + properties + b"\x00\x01a\x00"
    assert encode(packet, 5) == b"\x82" + varint(len(body)) + body
    assert decode5(b"\x82" + varint(len(body)) + body) == [packet]


def test_a_variable_byte_integer_of_five_bytes_is_malformed():
    with pytest.raises(ProtocolError, match="exceeds 4 bytes") as info:
        w.read_vbi(bytearray(b"\x80\x80\x80\x80\x01"), 0, 5, "Property length")
    assert info.value.reason_code == 0x81


# MQTT 5.0 section 1.5.4, figure 1-1: "A" then U+2A6D4 as a UTF-8 encoded string.
SPEC_STRING = "A\U0002a6d4"
SPEC_STRING_BYTES = b"\x00\x05\x41\xf0\xaa\x9b\x94"


def test_the_specification_utf8_string():
    assert w.string(SPEC_STRING, "x") == SPEC_STRING_BYTES
    assert w.read_str(bytearray(SPEC_STRING_BYTES), 0, 7, "x") == (SPEC_STRING, 7)
    # As a PUBLISH topic: the string, no properties (0), the payload.
    data = b"\x30\x0a" + SPEC_STRING_BYTES + b"\x00hi"
    assert encode(Publish(SPEC_STRING, b"hi"), 5) == data
    assert decode5(data) == [Publish(SPEC_STRING, b"hi")]


P = Properties
WILL5 = P(will_delay_interval=5)

# Every packet type at level 5, with the bytes written out by hand.
GOLDEN5 = [
    # CONNECT: name, level 5, flags 0x02 (clean start), keep alive 60, no properties, "abc".
    (Connect("MQTT", 5, "abc", True, 60), b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x03abc"),
    # A password without a user name (flags 0x40), allowed since 5.0.
    (
        Connect("MQTT", 5, "c", False, 0, password=b"p"),
        b"\x10\x11\x00\x04MQTT\x05\x40\x00\x00\x00\x00\x01c\x00\x01p",
    ),
    # A will (flags 0x06) whose properties (Will Delay Interval 0x18 of 5) precede its topic.
    (
        Connect("MQTT", 5, "c", True, 0, None, None, "w", b"m", 0, False, NO_PROPERTIES, WILL5),
        b"\x10\x1a\x00\x04MQTT\x05\x06\x00\x00\x00\x00\x01c"
        b"\x05\x18\x00\x00\x00\x05\x00\x01w\x00\x01m",
    ),
    (SPEC_CONNECT, SPEC_CONNECT_BYTES),
    # CONNACK: session present, success, Receive Maximum (0x21) 20, Topic Alias Maximum
    # (0x22) 16.
    (
        ConnAck(0, True, P(receive_maximum=20, topic_alias_maximum=16)),
        b"\x20\x09\x01\x00\x06\x21\x00\x14\x22\x00\x10",
    ),
    # CONNACK refusing with 0x87 Not authorized: no flags, the code, no properties.
    (ConnAck(0x87), b"\x20\x03\x00\x87\x00"),
    # PUBLISH QoS 0: topic "a/b", property length 0, payload "hi".
    (Publish("a/b", b"hi"), b"\x30\x08\x00\x03a/b\x00hi"),
    # PUBLISH QoS 1, id 10: Payload Format Indicator (0x01) 1 and Topic Alias (0x23) 3.
    (
        Publish("a/b", b"hi", 1, False, False, 10, P(payload_format_indicator=1, topic_alias=3)),
        b"\x32\x0f\x00\x03a/b\x00\x0a\x05\x01\x01\x23\x00\x03hi",
    ),
    # PUBLISH retained, QoS 2, DUP, with several subscription identifiers (0x0B): 1 and 200.
    (
        Publish("t", b"", 2, True, True, 7, P(subscription_identifiers=(1, 200))),
        b"\x3d\x0b\x00\x01t\x00\x07\x05\x0b\x01\x0b\xc8\x01",
    ),
    # PUBLISH with an empty topic name: the Topic Alias 3 stands for it.
    (Publish("", b"hi", properties=P(topic_alias=3)), b"\x30\x08\x00\x00\x03\x23\x00\x03hi"),
    # PUBACK success without properties: the 3.1.1 bytes (remaining length 2).
    (PubAck(10), b"\x40\x02\x00\x0a"),
    # PUBACK 0x10 No matching subscribers, without properties: remaining length 3.
    (PubAck(10, 0x10), b"\x40\x03\x00\x0a\x10"),
    # PUBREC 0x80 with a Reason String (0x1F) "no".
    (PubRec(10, 0x80, P(reason_string="no")), b"\x50\x09\x00\x0a\x80\x05\x1f\x00\x02no"),
    (PubRel(10), b"\x62\x02\x00\x0a"),
    # PUBREL 0x92 Packet Identifier not found.
    (PubRel(10, 0x92), b"\x62\x03\x00\x0a\x92"),
    # PUBCOMP success with a User Property (0x26) ("k", "v"): the reason code must be written.
    (
        PubComp(10, 0, P(user_properties=(("k", "v"),))),
        b"\x70\x0b\x00\x0a\x00\x07\x26\x00\x01k\x00\x01v",
    ),
    # SUBSCRIBE with Subscription Identifier 5; options 0x01 (QoS 1) and 0x2E (QoS 2, No
    # Local, Retain As Published, Retain Handling 2).
    (
        Subscribe(10, (("a/b", 0x01), ("c/d", 0x2E)), P(subscription_identifiers=(5,))),
        b"\x82\x11\x00\x0a\x02\x0b\x05\x00\x03a/b\x01\x00\x03c/d\x2e",
    ),
    # SUBACK: no properties, granted QoS 0-2, 0x80, 0x9E Shared Subscriptions not supported.
    (SubAck(10, (0, 1, 2, 0x80, 0x9E)), b"\x90\x08\x00\x0a\x00\x00\x01\x02\x80\x9e"),
    (Unsubscribe(11, ("a/b", "c/d")), b"\xa2\x0d\x00\x0b\x00\x00\x03a/b\x00\x03c/d"),
    # UNSUBACK: no properties, then 0x00 Success and 0x11 No subscription existed.
    (UnsubAck(11, (0, 0x11)), b"\xb0\x05\x00\x0b\x00\x00\x11"),
    (PingReq(), b"\xc0\x00"),
    (PingResp(), b"\xd0\x00"),
    # DISCONNECT: normal disconnection (remaining length 0), then 0x04 with will, then a
    # Session Expiry Interval (0x11) 0xFFFFFFFF after reason code 0.
    (Disconnect(), b"\xe0\x00"),
    (Disconnect(0x04), b"\xe0\x01\x04"),
    (
        Disconnect(0, P(session_expiry_interval=0xFFFF_FFFF)),
        b"\xe0\x07\x00\x05\x11\xff\xff\xff\xff",
    ),
    # AUTH: success (remaining length 0), then 0x18 Continue authentication with an
    # Authentication Method (0x15) "SCRAM" and Authentication Data (0x16) 01 02.
    (Auth(), b"\xf0\x00"),
    (
        Auth(0x18, P(authentication_method="SCRAM", authentication_data=b"\x01\x02")),
        b"\xf0\x0f\x18\x0d\x15\x00\x05SCRAM\x16\x00\x02\x01\x02",
    ),
]


@pytest.mark.parametrize(("packet", "data"), GOLDEN5)
def test_golden5_encode(packet, data):
    assert encode(packet, protocol_level=5) == data


@pytest.mark.parametrize(("packet", "data"), GOLDEN5)
def test_golden5_decode(packet, data):
    assert decode5(data) == [packet]


@pytest.mark.parametrize(
    ("data", "packet"),
    [
        # The long forms a peer may send: success and no properties written out.
        (b"\x40\x03\x00\x0a\x00", PubAck(10)),
        (b"\x40\x04\x00\x0a\x00\x00", PubAck(10)),
        (b"\x62\x04\x00\x0a\x92\x00", PubRel(10, 0x92)),
        (b"\xe0\x01\x00", Disconnect()),
        (b"\xe0\x02\x00\x00", Disconnect()),
        (b"\xe0\x02\x8e\x00", Disconnect(0x8E)),
        (b"\xf0\x02\x19\x00", Auth(0x19)),
    ],
)
def test_longer_forms_decode_to_the_same_packets(data, packet):
    assert decode5(data) == [packet]
    assert len(encode(packet, 5)) < len(data)  # and the encoder writes the shortest form


def test_empty_properties_are_the_shared_instance():
    (publish,) = decode5(b"\x30\x08\x00\x03a/b\x00hi")
    assert isinstance(publish, Publish)
    assert publish.properties is NO_PROPERTIES


def test_properties_made_anew_but_empty_are_left_out():
    assert encode(PubAck(1, 0, Properties()), 5) == b"\x40\x02\x00\x01"
    assert encode(Disconnect(0, Properties()), 5) == b"\xe0\x00"


def test_user_properties_keep_their_order_and_repeats():
    pairs = (("b", "1"), ("a", "2"), ("b", "1"))
    packet = Publish("t", b"", properties=Properties(user_properties=pairs))
    assert decode5(encode(packet, 5)) == [packet]


def test_properties_are_written_in_identifier_order():
    props = Properties(topic_alias=1, payload_format_indicator=0, content_type="c")
    data = encode_publish("t", b"", properties=props, protocol_level=5)
    # property length 9: 0x01 0, 0x03 "c", 0x23 1
    assert data == b"\x30\x0d\x00\x01t\x09\x01\x00\x03\x00\x01c\x23\x00\x01"


def test_small_property_sections_are_parsed_once():
    data = encode_publish("", b"x", properties=Properties(topic_alias=9), protocol_level=5)
    first, second = decode5(data + data)
    assert isinstance(first, Publish)
    assert isinstance(second, Publish)
    assert first.properties == Properties(topic_alias=9)
    assert second.properties is first.properties


def test_a_bad_small_section_fails_every_time():
    data = b"\x30\x06\x00\x01t\x02\x01\x02"  # payload_format_indicator 2
    for _ in range(2):
        with pytest.raises(ProtocolError, match="payload_format_indicator of 0-1"):
            decode5(data)


def test_the_written_properties_are_kept_for_small_sections_only_and_bounded():
    _props._written.clear()
    for alias in range(1, 1100):
        encode_publish("", b"", properties=Properties(topic_alias=alias), protocol_level=5)
    assert 0 < len(_props._written) <= 1024
    _props._written.clear()
    encode(PubAck(1, 0, Properties(reason_string="x" * 100)), 5)
    assert not _props._written


def test_unhashable_values_are_written_all_the_same():
    listed = Properties(user_properties=[("a", "b")])  # type: ignore[arg-type]
    tupled = Properties(user_properties=(("a", "b"),))
    assert encode(PubAck(1, 0, listed), 5) == encode(PubAck(1, 0, tupled), 5)


@pytest.mark.parametrize(("packet", "data"), GOLDEN)
def test_levels_3_and_4_keep_their_bytes(packet, data):
    assert encode(packet, protocol_level=4) == data
    if not isinstance(packet, Connect):
        assert encode(packet, protocol_level=3) == data
        decoder = Decoder(protocol_level=3)
        decoder.receive_data(data)
        assert list(decoder) == [packet]


@pytest.mark.parametrize(
    "packet",
    [Publish("a/b", b"x"), Publish("a/b", b"x", 1, True, True, 3, P(content_type="c"))],
)
def test_encode_publish_matches_encode(packet):
    fields = (packet.topic, packet.payload, packet.qos, packet.retain, packet.dup)
    data = encode_publish(*fields, packet.packet_id, packet.properties, protocol_level=5)
    assert data == encode(packet, protocol_level=5)


def test_encode_publish_with_properties_and_an_alias():
    data = encode_publish("", b"hi", properties=Properties(topic_alias=3), protocol_level=5)
    assert data == b"\x30\x08\x00\x00\x03\x23\x00\x03hi"


def test_a_long_publish_frames_its_remaining_length_at_level_5():
    packet = Publish("t", bytes(200), properties=Properties(content_type="x"))
    data = encode(packet, 5)
    assert data[1:3] == varint(3 + 5 + 200)
    assert decode5(data) == [packet]


# The decoder follows the CONNECT's level.


def test_a_connect_switches_the_decoder_to_its_level_for_the_packets_behind_it():
    decoder = Decoder()
    publish = Publish("a/b", b"hi", 1, packet_id=10, properties=Properties(topic_alias=3))
    connect = Connect("MQTT", 5, "c", True, 60)
    decoder.receive_data(encode(connect) + encode(publish, 5) + b"\x40\x03\x00\x0a\x10")
    assert decoder.protocol_level == 4
    assert decoder.next_packet() == connect
    assert decoder.protocol_level == 5
    assert list(decoder) == [publish, PubAck(10, 0x10)]


def test_a_split_stream_switches_levels_at_the_connect():
    connect = Connect("MQTT", 5, "c", True, 60, properties=Properties(receive_maximum=5))
    stream = encode(connect) + encode(Disconnect(0x04), 5)
    decoder = Decoder()
    received: list[Packet] = []
    for index in range(len(stream)):
        decoder.receive_data(stream[index : index + 1])
        received.extend(decoder)
    assert received == [connect, Disconnect(0x04)]


@pytest.mark.parametrize(
    ("connect", "start", "level"),
    [
        (Connect("MQTT", 4, "c", True, 0), 5, 4),
        (Connect("MQIsdp", 3, "c", True, 0), 5, 3),
        (Connect("MQTT", 5, "c", True, 0), 3, 5),
        (Connect("MQTT", 7, "c", True, 0), 4, 4),  # unsupported: the level stays
        (Connect("MQIsdp", 5, "c", True, 0), 4, 4),  # a name and level that do not match
    ],
)
def test_the_decoder_takes_only_supported_levels(connect, start, level):
    decoder = Decoder(protocol_level=start)
    decoder.receive_data(encode(connect))
    assert list(decoder) == [connect]
    assert decoder.protocol_level == level


def test_the_level_is_settable_and_checked():
    decoder = Decoder()
    decoder.receive_data(b"\x40\x03\x00\x01\x10")
    with pytest.raises(ProtocolError, match="PUBACK remaining length of 2, got 3"):
        decoder.next_packet()
    decoder = Decoder()
    decoder.protocol_level = 5
    decoder.receive_data(b"\x40\x03\x00\x01\x10")
    assert decoder.next_packet() == PubAck(1, 0x10)
    with pytest.raises(LocalProtocolError, match="protocol_level of 3, 4 or 5, got 6"):
        decoder.protocol_level = 6
    with pytest.raises(LocalProtocolError, match="protocol_level of 3, 4 or 5, got 2"):
        Decoder(protocol_level=2)


def test_the_topic_limit_holds_at_level_5():
    decoder = Decoder(max_topics=2, protocol_level=5)
    decoder.receive_data(encode(Subscribe(1, (("a", 0), ("b", 0), ("c", 0))), 5))
    with pytest.raises(ProtocolError, match="at most 2 topic filters in SUBSCRIBE") as info:
        decoder.next_packet()
    assert info.value.reason_code == 0x97
    decoder = Decoder(max_topics=2, protocol_level=5)
    decoder.receive_data(encode(Unsubscribe(1, ("a", "b")), 5))
    assert decoder.next_packet() == Unsubscribe(1, ("a", "b"))


# By property.


@given(packets5)
@settings(max_examples=400)
def test_round_trip5(packet):
    assert decode5(encode(packet, protocol_level=5)) == [packet]


@given(st.lists(packets5, max_size=8), st.data())
@settings(max_examples=150)
def test_stream5_split_anywhere(sent, data):
    stream = b"".join(encode(packet, 5) for packet in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = Decoder(protocol_level=5)
    received: list[Packet] = []
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoder.receive_data(stream[start:stop])
        received.extend(decoder)
    assert received == sent


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_random_bytes_raise_only_protocol_errors5(data):
    with contextlib.suppress(ProtocolError):
        decode5(data)


FIRST_BYTES5 = [
    0x10,
    0x20,
    0x30,
    0x35,
    0x3B,
    0x40,
    0x50,
    0x62,
    0x70,
    0x82,
    0x90,
    0xA2,
    0xB0,
    0xE0,
    0xF0,
]


@given(st.sampled_from(FIRST_BYTES5), st.binary(max_size=100))
@settings(max_examples=400)
def test_random_bodies_raise_only_protocol_errors5(first, body):
    with contextlib.suppress(ProtocolError):
        decode5(bytes((first,)) + varint(len(body)) + body)


@given(packets5, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1))
@settings(max_examples=400)
def test_corrupted_packets_raise_only_protocol_errors5(packet, edits):
    data = bytearray(encode(packet, 5))
    for position, value in edits:
        data[position % len(data)] = value
    with contextlib.suppress(ProtocolError):
        decode5(bytes(data))
