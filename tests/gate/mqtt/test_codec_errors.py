"""The codec refuses malformed input and unencodable packets, saying what it expected."""

import pytest

from gate.mqtt import (
    ConnAck,
    Connect,
    Decoder,
    LocalProtocolError,
    ProtocolError,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    Unsubscribe,
    encode,
    encode_publish,
)
from gate.mqtt._encode import varint


def decode_all(data: bytes) -> list[object]:
    decoder = Decoder()
    decoder.receive_data(data)
    return list(decoder)


def expect_error(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_all(data)


@pytest.mark.parametrize("first", [0x00, 0x0F, 0xF0, 0xFF])
def test_reserved_packet_types(first):
    expect_error(bytes((first,)), "^Expected an MQTT packet type 1-14, got")


@pytest.mark.parametrize(
    ("first", "message"),
    [
        (0x11, "CONNECT header flags 0b0000, got 0b0001"),
        (0x28, "CONNACK header flags 0b0000"),
        (0x42, "PUBACK header flags"),
        (0x52, "PUBREC header flags"),
        (0x60, "PUBREL header flags 0b0010, got 0b0000"),
        (0x72, "PUBCOMP header flags"),
        (0x80, "SUBSCRIBE header flags 0b0010, got 0b0000"),
        (0x83, "SUBSCRIBE header flags 0b0010, got 0b0011"),
        (0x91, "SUBACK header flags"),
        (0xA0, "UNSUBSCRIBE header flags 0b0010"),
        (0xB2, "UNSUBACK header flags"),
        (0xC2, "PINGREQ header flags"),
        (0xD1, "PINGRESP header flags"),
        (0xE4, "DISCONNECT header flags"),
        (0x36, "Expected a PUBLISH QoS of 0-2, got 3"),
        (0x3F, "Expected a PUBLISH QoS of 0-2, got 3"),
    ],
)
def test_wrong_fixed_header_flags(first, message):
    expect_error(bytes((first,)), message)  # known from the first byte alone


def test_dup_at_qos_0_is_accepted():
    assert decode_all(b"\x38\x04\x00\x01tx") == [Publish("t", b"x", dup=True)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x40\x03\x00\x01\x00", "PUBACK remaining length of 2, got 3"),
        (b"\x70\x01\x00", "PUBCOMP remaining length of 2, got 1"),
        (b"\xc0\x01\x00", "PINGREQ remaining length of 0, got 1"),
        (b"\x20\x03\x00\x00\x00", "CONNACK remaining length of 2, got 3"),
        (b"\x20\x02\x02\x00", "Expected CONNACK flags 0 or 1, got 0x02"),
        (b"\x20\x02\x01\x05", "session present with return code 5"),
        (b"\x40\x02\x00\x00", "PUBACK packet identifier of 1-65535, got 0"),
        (b"\x32\x05\x00\x03a/b", "2-byte PUBLISH packet identifier, got 0 bytes"),
        (b"\x32\x07\x00\x03a/b\x00\x00", "PUBLISH packet identifier of 1-65535, got 0"),
        (b"\x30\x04\x00\x05ab", "Topic name of 5 bytes runs past the end"),
        (b"\x30\x01\x00", "2-byte Topic name length, got 1 bytes"),
        (b"\x30\x04\x00\x02\xc3\x28", "Topic name is not valid UTF-8"),
        (b"\x30\x05\x00\x03\xed\xa0\x80", "Topic name is not valid UTF-8"),  # a surrogate
        (b"\x30\x05\x00\x03a/+", "contains a wildcard"),
        (b"\x30\x03\x00\x01#", "contains a wildcard"),
        (b"\x30\x05\x00\x03a\x00b", "Topic name contains U\\+0000"),
        (b"\x30\x02\x00\x00", "Topic name is empty"),
        (b"\x82\x02\x00\x01", "at least one topic filter in SUBSCRIBE, got none"),
        (b"\x82\x06\x00\x01\x00\x01a\x03", "requested QoS of 0-2 in SUBSCRIBE, got 3"),
        (b"\x82\x06\x00\x01\x00\x01a\x80", "requested QoS of 0-2 in SUBSCRIBE, got 128"),
        (b"\x82\x05\x00\x01\x00\x01a", "requested QoS after 'a', got the end"),
        (b"\x82\x07\x00\x01\x00\x02a#\x00", "misplaces a wildcard"),
        (b"\x82\x08\x00\x01\x00\x03#/a\x00", "misplaces a wildcard"),
        (b"\x82\x07\x00\x01\x00\x02\xff\xfe\x00", "Topic filter is not valid UTF-8"),
        (b"\xa2\x02\x00\x01", "at least one topic filter in UNSUBSCRIBE, got none"),
        (b"\xa2\x04\x00\x01\x00\x01", "Topic filter of 1 bytes runs past the end"),
        (b"\xa2\x04\x00\x01\x00\x00", "Topic filter is empty"),
        (b"\x90\x02\x00\x01", "at least one return code in SUBACK, got none"),
        (b"\x90\x03\x00\x01\x03", "SUBACK return code 0-2 or 0x80, got 0x03"),
    ],
)
def test_malformed_bodies(data, message):
    expect_error(data, message)


def connect_bytes(flags: int, payload: bytes, name: bytes = b"MQTT", level: int = 4) -> bytes:
    body = len(name).to_bytes(2, "big") + name + bytes((level, flags)) + b"\x00\x3c" + payload
    return b"\x10" + varint(len(body)) + body


@pytest.mark.parametrize(
    ("flags", "payload", "message"),
    [
        (0x03, b"\x00\x01c", "CONNECT has its reserved flag set"),
        (0x1A, b"\x00\x01c\x00\x01t\x00\x00", "Expected a will QoS of 0-2 in CONNECT, got 3"),
        (0x0A, b"\x00\x01c", "will QoS or will retain without the will flag"),
        (0x22, b"\x00\x01c", "will QoS or will retain without the will flag"),
        (0x42, b"\x00\x01c\x00\x02pw", "password flag without the username flag"),
        (0x02, b"\x00\x01c\x00", "CONNECT has 1 bytes left over"),
        (0x02, b"\x00\x02c", "Client identifier of 2 bytes runs past the end"),
        (0x02, b"\x00\x01\xff", "Client identifier is not valid UTF-8"),
        (0x02, b"\x00\x01\x00", "Client identifier contains U\\+0000"),
        (0x82, b"\x00\x01c\x00\x01\xff", "User name is not valid UTF-8"),
        (0x06, b"\x00\x01c\x00\x01t", "2-byte Will message length, got 0 bytes"),
        (0xC2, b"\x00\x01c\x00\x01u", "2-byte Password length, got 0 bytes"),
    ],
)
def test_malformed_connect(flags, payload, message):
    expect_error(connect_bytes(flags, payload), message)


def test_connect_truncated_after_the_protocol_name():
    expect_error(b"\x10\x08\x00\x04MQTT\x04\x02", "Expected 4 more CONNECT header bytes, got 2")


def test_mqtt_31_may_send_a_password_without_a_user_name():
    data = connect_bytes(0x42, b"\x00\x01c\x00\x02pw", name=b"MQIsdp", level=3)
    assert decode_all(data) == [Connect("MQIsdp", 3, "c", True, 60, password=b"pw")]


def test_unknown_protocol_with_a_readable_layout():
    data = connect_bytes(0x82, b"\x00\x01c\x00\x01u", name=b"MQTX", level=9)
    assert decode_all(data) == [Connect("MQTX", 9, "c", True, 60, username="u")]


def test_unknown_protocol_with_an_unreadable_layout_keeps_its_header():
    # A CONNECT of a level to come, laid out like 5.0's: a property length (0) precedes the
    # client id, which the 3.1.1 layout cannot read.
    data = connect_bytes(0x02, b"\x00\x00\x03abc", level=6)
    assert decode_all(data) == [Connect("MQTT", 6, "", True, 60)]


def test_supported_protocol_with_an_unreadable_layout_is_an_error():
    expect_error(connect_bytes(0x02, b"\x00\x00\x03abc", level=4), "4 bytes left over")


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (Publish("t", b"", qos=1), "PUBLISH packet_id of 1-65535, got None"),
        (Publish("t", b"", qos=2, packet_id=0), "PUBLISH packet_id of 1-65535, got 0"),
        (Publish("t", b"", packet_id=5), "Expected no packet_id at QoS 0, got 5"),
        (Publish("t", b"", qos=3, packet_id=5), "PUBLISH qos of 0-2, got 3"),
        (Publish("a/#", b""), "contains a wildcard"),
        (Publish("", b""), "Topic name is empty"),
        (Publish("a\x00", b""), "Topic name contains U\\+0000"),
        (Publish("t" * 70_000, b""), "Topic name length of 0-65535, got 70000"),
        (Publish("\ud800", b""), "Topic name is not encodable as UTF-8"),
        (PubAck(70_000), "PUBACK packet_id of 1-65535, got 70000"),
        (ConnAck(1, session_present=True), "session_present with a non-zero return_code"),
        (ConnAck(256), "return_code of 0-255, got 256"),
        (Subscribe(1, ()), "at least one topic in SUBSCRIBE"),
        (Subscribe(1, (("a", 3),)), "requested QoS of 0-2, got 3"),
        (Subscribe(1, (("a+", 0),)), "misplaces a wildcard"),
        (SubAck(1, ()), "at least one return code in SUBACK"),
        (SubAck(1, (3,)), "SUBACK return code 0-2 or 0x80, got 3"),
        (Unsubscribe(1, ()), "at least one topic in UNSUBSCRIBE"),
        (Unsubscribe(1, ("",)), "Topic filter is empty"),
        (Unsubscribe(1, ("a\x00",)), "Topic filter contains U\\+0000"),
        (Connect("MQTT", 4, "c", True, 0, password=b"p"), "password without a username"),
        (Connect("MQTT", 4, "c", True, 70_000), "keepalive of 0-65535, got 70000"),
        (Connect("MQTT", 256, "c", True, 0), "protocol_level of 0-255, got 256"),
        (Connect("MQTT", 4, "c\x00", True, 0), "Client identifier contains U\\+0000"),
        (Connect("MQTT", 4, "c", True, 0, will_topic="w"), "will_message with the will_topic"),
        (Connect("MQTT", 4, "c", True, 0, will_qos=1), "will fields without a will_topic"),
        (Connect("MQTT", 4, "c", True, 0, will_retain=True), "will fields without a will_topic"),
        (
            Connect("MQTT", 4, "c", True, 0, will_topic="w", will_message=b"", will_qos=3),
            "will_qos of 0-2, got 3",
        ),
        ("not a packet", "Expected an MQTT packet, got str"),
    ],
)
def test_local_errors(packet, message):
    with pytest.raises(LocalProtocolError, match=message):
        encode(packet)


def test_mqtt_31_encodes_a_password_without_a_user_name():
    packet = Connect("MQIsdp", 3, "c", True, 0, password=b"p")
    assert decode_all(encode(packet)) == [packet]


def test_encode_publish_matches_encode():
    assert encode_publish("a/b", b"hi", 1, packet_id=10) == encode(
        Publish("a/b", b"hi", qos=1, packet_id=10)
    )


def test_remaining_length_over_the_maximum():
    with pytest.raises(LocalProtocolError, match="Remaining length 268435456 exceeds 268435455"):
        varint(268_435_456)
