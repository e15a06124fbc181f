"""The codec at MQTT 5.0 refuses what the specification forbids: in what it decodes, with the
reason code a server would put in its DISCONNECT, and in what it is asked to encode."""

import pytest

from gate.mqtt import (
    ConnAck,
    Connect,
    Decoder,
    Disconnect,
    LocalProtocolError,
    PacketTooLarge,
    PingReq,
    ProtocolError,
    PubAck,
    Publish,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    encode,
    encode_publish,
)
from gate.mqtt._encode import varint
from gate.mqtt.packets import Auth
from gate.mqtt.properties import Properties

MALFORMED = 0x81
PROTOCOL = 0x82
TOPIC_ALIAS_INVALID = 0x94

P = Properties


def pub(**properties: object) -> Publish:
    return Publish("t", b"", properties=P(**properties))  # type: ignore[arg-type]


def con(**properties: object) -> Connect:
    return Connect("MQTT", 5, "c", True, 0, properties=P(**properties))  # type: ignore[arg-type]


def packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


def publish(properties: bytes, topic: bytes = b"t") -> bytes:
    """A QoS 0 PUBLISH of ``topic`` whose properties are ``properties`` (length added)."""
    return packet(
        0x30, len(topic).to_bytes(2, "big") + topic + varint(len(properties)) + properties
    )


def connect(properties: bytes, flags: int = 0x02, payload: bytes = b"\x00\x01c") -> bytes:
    """A level 5 CONNECT with ``properties`` (length added) before ``payload``."""
    head = b"\x00\x04MQTT\x05" + bytes((flags,)) + b"\x00\x3c"
    return packet(0x10, head + varint(len(properties)) + properties + payload)


def expect(data: bytes, message: str, reason_code: int, level: int = 5) -> None:
    decoder = Decoder(protocol_level=level)
    decoder.receive_data(data)
    with pytest.raises(ProtocolError, match=message) as info:
        list(decoder)
    assert info.value.reason_code == reason_code


def decode5(data: bytes) -> list[object]:
    decoder = Decoder(protocol_level=5)
    decoder.receive_data(data)
    return list(decoder)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (publish(b"\x01\x00\x01\x01"), "payload_format_indicator once in PUBLISH, got it twice"),
        (publish(b"\x23\x00\x01\x23\x00\x02"), "topic_alias once in PUBLISH"),
        (connect(b"\x11\x00\x00\x00\x01\x11\x00\x00\x00\x02"), "session_expiry_interval once"),
        (
            packet(0x82, b"\x00\x01\x04\x0b\x01\x0b\x02\x00\x01a\x00"),
            "subscription_identifiers once in SUBSCRIBE",
        ),
        (packet(0xE0, b"\x00\x08\x1f\x00\x01a\x1f\x00\x01b"), "reason_string once in DISCONNECT"),
        (
            connect(b"", 0x06, b"\x00\x01c\x0a\x18\x00\x00\x00\x01\x18\x00\x00\x00\x02"),
            "will_delay_interval once in CONNECT will properties",
        ),
    ],
)
def test_a_duplicated_property(data, message):
    expect(data, message, PROTOCOL)


def test_repeatable_properties():
    (received,) = decode5(publish(b"\x0b\x01\x0b\x02\x26\x00\x01a\x00\x00\x26\x00\x01a\x00\x00"))
    assert isinstance(received, Publish)
    assert received.properties == P(
        subscription_identifiers=(1, 2), user_properties=(("a", ""),) * 2
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            publish(b"\x11\x00\x00\x00\x01"),
            r"PUBLISH may not carry the property session_expiry_\w+ \(0x11\)",
        ),
        (publish(b"\x05\x00"), "Expected a property identifier in PUBLISH, got 0x05"),
        (publish(b"\x80\x01\x00"), "Expected a property identifier in PUBLISH, got 0x80"),
        (
            connect(b"\x18\x00\x00\x00\x01"),
            "CONNECT may not carry the property will_delay_interval",
        ),
        (
            connect(b"", 0x06, b"\x00\x01c\x03\x23\x00\x01\x00\x01w\x00\x00"),
            "CONNECT will properties may not carry the property topic_alias",
        ),
        (
            packet(0x40, b"\x00\x01\x00\x03\x23\x00\x01"),
            "PUBACK may not carry the property topic_alias",
        ),
        (packet(0xF0, b"\x00\x05\x11\x00\x00\x00\x01"), "AUTH may not carry the property session"),
        (
            packet(0x82, b"\x00\x01\x02\x23\x00\x00\x01a\x00"),
            "SUBSCRIBE may not carry the property",
        ),
        (
            packet(0x20, b"\x00\x00\x02\x17\x01"),
            "CONNACK may not carry the property request_problem",
        ),
    ],
)
def test_a_property_the_packet_may_not_carry(data, message):
    expect(data, message, MALFORMED)


@pytest.mark.parametrize(
    ("data", "message", "reason_code"),
    [
        (publish(b"\x01\x02"), "payload_format_indicator of 0-1 in PUBLISH, got 2", PROTOCOL),
        (connect(b"\x21\x00\x00"), "receive_maximum of 1-65535 in CONNECT, got 0", PROTOCOL),
        (connect(b"\x27\x00\x00\x00\x00"), "maximum_packet_size of 1-4294967295", PROTOCOL),
        (publish(b"\x23\x00\x00"), "topic_alias of 1-65535 in PUBLISH, got 0", TOPIC_ALIAS_INVALID),
        (
            packet(0x82, b"\x00\x01\x02\x0b\x00\x00\x01a\x00"),
            "subscription_identifiers of 1-268435455 in SUBSCRIBE, got 0",
            PROTOCOL,
        ),
        (publish(b"\x0b\x00"), "subscription_identifiers of 1-268435455", PROTOCOL),
        (connect(b"\x17\x02"), "request_problem_information of 0-1 in CONNECT, got 2", PROTOCOL),
        (connect(b"\x19\x02"), "request_response_information of 0-1", PROTOCOL),
        (packet(0x20, b"\x00\x00\x02\x24\x02"), "maximum_qos of 0-1 in CONNACK, got 2", PROTOCOL),
        (packet(0x20, b"\x00\x00\x02\x25\x02"), "retain_available of 0-1", PROTOCOL),
        (packet(0x20, b"\x00\x00\x02\x2a\x05"), "shared_subscription_available of 0-1", PROTOCOL),
        (
            connect(b"", 0x06, b"\x00\x01c\x02\x01\x03\x00\x01w\x00\x00"),
            "payload_format_indicator of 0-1 in CONNECT will properties, got 3",
            PROTOCOL,
        ),
    ],
)
def test_a_property_value_out_of_range(data, message, reason_code):
    expect(data, message, reason_code)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (packet(0x30, b"\x00\x01t\x0a\x01\x00"), "Properties of 10 bytes run past the end"),
        (publish(b"\x02\x00"), "4-byte message_expiry_interval, got 1 bytes before their end"),
        (packet(0x30, b"\x00\x01t\x02\x23\x00xx"), "2-byte topic_alias, got 1 bytes"),
        (packet(0x30, b"\x00\x01t\x01\x01xx"), "1-byte payload_format_indicator, got the end"),
        (packet(0x30, b"\x00\x01t\x04\x03\x00\x05a"), "content_type of 5 bytes runs past the end"),
        (packet(0x30, b"\x00\x01t\x04\x26\x00\x01a"), "2-byte user_properties value length"),
        (packet(0x30, b"\x00\x01t"), "Property length runs past the end of the packet"),
        (packet(0x30, b"\x00\x01t\x80"), "Property length runs past the end of the packet"),
        (packet(0x30, b"\x00\x01t\x80\x80\x80\x80\x01"), "Property length exceeds 4 bytes"),
        (publish(b"\x0b\x80\x80"), "subscription_identifiers runs past the end"),
        (publish(b"\x0b\xff\xff\xff\xff\x01"), "subscription_identifiers exceeds 4 bytes"),
        (publish(b"\x1f\x00\x01\xff"), "PUBLISH may not carry the property reason_string"),
        (publish(b"\x03\x00\x01\xff"), "content_type is not valid UTF-8"),
        (publish(b"\x03\x00\x01\x00"), "content_type contains U\\+0000"),
        (packet(0x40, b"\x00\x01\x00\x00\xff"), "PUBACK has 1 bytes left over"),
        (packet(0xE0, b"\x00\x00\xff"), "DISCONNECT has 1 bytes left over"),
        (packet(0x20, b"\x00\x00"), "Property length runs past the end of the packet"),
        (packet(0x20, b"\x00"), "Expected CONNACK flags and reason code, got 1 bytes"),
        (packet(0x20, b"\x00\x00\x00\xff"), "CONNACK has 1 bytes left over"),
        (connect(b"\x11\x00\x00"), "4-byte session_expiry_interval, got 2 bytes"),
        (connect(b"", payload=b"\x00\x01c\xff"), "CONNECT has 1 bytes left over"),
        (connect(b"", 0x06, b"\x00\x01c\x05\x18\x00"), "Properties of 5 bytes run past the end"),
    ],
)
def test_truncated_or_overlong_properties_are_malformed(data, message):
    expect(data, message, MALFORMED)


def test_a_supported_level_5_connect_with_a_wrong_layout_is_an_error():
    # A 3.1.1 layout under level 5: the client id's length (0) is read as the property
    # length, then "\x03a" as the client id's.
    data = packet(0x10, b"\x00\x04MQTT\x05\x02\x00\x3c\x00\x03abc")
    expect(data, "Client identifier of 865 bytes runs past the end", MALFORMED, level=4)


@pytest.mark.parametrize(
    ("data", "message", "reason_code", "level"),
    [
        (b"\xf0\x00", "^Expected an MQTT packet type 1-14, got 15", MALFORMED, 4),
        (b"\xf0\x00", "^Expected an MQTT packet type 1-14, got 15", MALFORMED, 3),
        (b"\x00\x00", "^Expected an MQTT packet type 1-15, got 0", MALFORMED, 5),
        (b"\xf1\x00", "AUTH header flags 0b0000, got 0b0001", MALFORMED, 5),
        (b"\x41\x02\x00\x01", "PUBACK header flags", MALFORMED, 5),
        (b"\x36", "PUBLISH QoS of 0-2, got 3", MALFORMED, 5),
        (b"\xc0\x01\x00", "PINGREQ remaining length of 0, got 1", MALFORMED, 5),
        (b"\x40\x03\x00\x01\x10", "PUBACK remaining length of 2, got 3", MALFORMED, 4),
        (b"\xe0\x01\x04", "DISCONNECT remaining length of 0, got 1", MALFORMED, 4),
        (b"\x30\x80\x80\x80\x80", "Remaining length exceeds 4 bytes", MALFORMED, 5),
        (b"\x40\x02\x00\x00", "PUBACK packet identifier of 1-65535, got 0", PROTOCOL, 5),
        (b"\x40\x02\x00\x00", "PUBACK packet identifier of 1-65535, got 0", PROTOCOL, 4),
        (b"\x32\x07\x00\x03a/b\x00\x00", "PUBLISH packet identifier of 1-65535", PROTOCOL, 4),
        (b"\x30\x04\x00\x02\xc3\x28", "Topic name is not valid UTF-8", MALFORMED, 4),
        (b"\x30\x05\x00\x03a/+", "contains a wildcard", MALFORMED, 4),
        (b"\x30\x02\x00\x00", "Topic name is empty", PROTOCOL, 4),
        (b"\x82\x02\x00\x01", "at least one topic filter in SUBSCRIBE", PROTOCOL, 4),
        (b"\x82\x06\x00\x01\x00\x01a\x03", "requested QoS of 0-2 in SUBSCRIBE", MALFORMED, 4),
        (b"\x82\x07\x00\x01\x00\x02a#\x00", "misplaces a wildcard", MALFORMED, 4),
        (b"\x20\x02\x02\x00", "CONNACK flags 0 or 1, got 0x02", MALFORMED, 4),
        (b"\x20\x02\x01\x05", "session present with return code 5", PROTOCOL, 4),
        (b"\x11\x00", "CONNECT header flags", MALFORMED, 4),
    ],
)
def test_reason_codes_of_errors(data, message, reason_code, level):
    expect(data, message, reason_code, level)


def test_packet_too_large_carries_its_reason_code():
    decoder = Decoder(max_packet_size=10, protocol_level=5)
    decoder.receive_data(b"\x30\x20")
    with pytest.raises(PacketTooLarge) as info:
        decoder.next_packet()
    assert info.value.reason_code == 0x95


def test_protocol_error_defaults_to_protocol_error():
    assert ProtocolError("x").reason_code == 0x82
    assert ProtocolError("x", 0x99).reason_code == 0x99
    assert str(ProtocolError("Expected A, got B", 0x81)) == "Expected A, got B"


@pytest.mark.parametrize(
    ("data", "message", "reason_code"),
    [
        (
            packet(0x82, b"\x00\x01\x00\x00\x01a\x40"),
            "options with bits 6-7 clear, got 0x40",
            MALFORMED,
        ),
        (
            packet(0x82, b"\x00\x01\x00\x00\x01a\x80"),
            "options with bits 6-7 clear, got 0x80",
            MALFORMED,
        ),
        (
            packet(0x82, b"\x00\x01\x00\x00\x01a\x03"),
            "maximum QoS of 0-2 in SUBSCRIBE, got 3",
            PROTOCOL,
        ),
        (
            packet(0x82, b"\x00\x01\x00\x00\x01a\x30"),
            "retain handling of 0-2 in SUBSCRIBE",
            PROTOCOL,
        ),
        (packet(0x82, b"\x00\x01\x00\x00\x01a"), "requested QoS after 'a', got the end", MALFORMED),
        (
            packet(0x82, b"\x00\x01\x00"),
            "at least one topic filter in SUBSCRIBE, got none",
            PROTOCOL,
        ),
        (packet(0xA2, b"\x00\x01\x00"), "at least one topic filter in UNSUBSCRIBE", PROTOCOL),
        (packet(0xA2, b"\x00\x01\x00\x00\x02a+"), "misplaces a wildcard", MALFORMED),
        (
            publish(b"", b""),
            "Expected a topic name or a topic_alias in PUBLISH, got neither",
            PROTOCOL,
        ),
        (publish(b"\x23\x00\x01", b"a/#"), "contains a wildcard", MALFORMED),
    ],
)
def test_malformed_level_5_bodies(data, message, reason_code):
    expect(data, message, reason_code)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (packet(0x40, b"\x00\x01\x05"), "reason code PUBACK may carry, got 0x05"),
        (packet(0x50, b"\x00\x01\x92"), "reason code PUBREC may carry, got 0x92"),
        (packet(0x62, b"\x00\x01\x10"), "reason code PUBREL may carry, got 0x10"),
        (packet(0x70, b"\x00\x01\x80"), "reason code PUBCOMP may carry, got 0x80"),
        (packet(0xE0, b"\x05"), "reason code DISCONNECT may carry, got 0x05"),
        (packet(0xF0, b"\x01"), "reason code AUTH may carry, got 0x01"),
        (packet(0x90, b"\x00\x01\x00\x03"), "reason code SUBACK may carry, got 0x03"),
        (packet(0xB0, b"\x00\x01\x00\x01"), "reason code UNSUBACK may carry, got 0x01"),
        (packet(0x20, b"\x00\x01\x00"), "reason code CONNACK may carry, got 0x01"),
        (packet(0x20, b"\x01\x87\x00"), "session present with return code 135"),
        (packet(0x90, b"\x00\x01\x00"), "at least one reason code in SUBACK, got none"),
        (packet(0xB0, b"\x00\x01\x00"), "at least one reason code in UNSUBACK, got none"),
    ],
)
def test_reason_codes_a_packet_may_not_carry(data, message):
    expect(data, message, PROTOCOL)


# Encoding refuses the same.


@pytest.mark.parametrize(
    ("packet_", "message"),
    [
        (PubAck(1, 0x10), "Expected no reason_code in PUBACK at level 4"),
        (PubAck(1, 0, P(reason_string="x")), "Expected no properties in PUBACK at level 4"),
        (PubRel(1, 0x92, P(reason_string="x")), "no reason_code or properties in PUBREL"),
        (UnsubAck(1, (0,)), "Expected no reason_codes in UNSUBACK"),
        (Disconnect(0x04), "Expected no reason_code in DISCONNECT"),
        (ConnAck(0, False, P(receive_maximum=1)), "Expected no properties in CONNACK"),
        (Subscribe(1, (("a", 0),), P(subscription_identifiers=(1,))), "no properties in SUBSCRIBE"),
        (Unsubscribe(1, ("a",), P(user_properties=(("a", "b"),))), "no properties in UNSUBSCRIBE"),
        (SubAck(1, (0,), P(reason_string="x")), "no properties in SUBACK"),
        (pub(content_type="c"), "no properties in PUBLISH at level 4"),
        (Auth(), "Expected protocol level 5 for AUTH, got 4"),
        (SubAck(1, (0x9E,)), "SUBACK return code 0-2 or 0x80, got 158"),
        (Publish("", b"", properties=P(topic_alias=1)), "Topic name is empty"),
        (
            Connect("MQTT", 4, "c", True, 0, properties=P(session_expiry_interval=1)),
            "Expected no properties in a level 4 CONNECT",
        ),
        (
            Connect(
                "MQTT", 4, "c", True, 0, None, None, "w", b"", 0, False, P(), P(content_type="c")
            ),
            "Expected no will_properties in a level 4 CONNECT",
        ),
    ],
)
def test_level_4_refuses_5_0_fields(packet_, message):
    with pytest.raises(LocalProtocolError, match=message):
        encode(packet_)


def test_level_3_refuses_5_0_fields_and_auth():
    with pytest.raises(LocalProtocolError, match="Expected no reason_code in PUBACK at level 3"):
        encode(PubAck(1, 0x10), protocol_level=3)
    with pytest.raises(LocalProtocolError, match="Expected protocol level 5 for AUTH, got 3"):
        encode(Auth(), protocol_level=3)


@pytest.mark.parametrize("level", [0, 2, 6, -1])
def test_encode_refuses_unknown_levels(level):
    with pytest.raises(LocalProtocolError, match=f"protocol level of 3, 4 or 5, got {level}"):
        encode(PingReq(), protocol_level=level)
    with pytest.raises(LocalProtocolError, match=f"protocol level of 3, 4 or 5, got {level}"):
        encode_publish("t", b"", protocol_level=level)


def test_encode_publish_refuses_properties_below_level_5():
    with pytest.raises(LocalProtocolError, match="no properties in PUBLISH at level 3"):
        encode_publish("t", b"", properties=P(topic_alias=1), protocol_level=3)
    assert encode_publish("t", b"", properties=P(), protocol_level=4) == b"\x30\x03\x00\x01t"


@pytest.mark.parametrize(
    ("packet_", "message"),
    [
        (
            pub(session_expiry_interval=1),
            "PUBLISH may not carry the property session_expiry_interval",
        ),
        (pub(payload_format_indicator=2), "payload_format_indicator of 0-1, got 2"),
        (pub(topic_alias=0), "topic_alias of 1-65535, got 0"),
        (pub(topic_alias=65536), "topic_alias of 1-65535, got 65536"),
        (pub(message_expiry_interval=-1), "message_expiry_interval of 0-4294967295"),
        (pub(message_expiry_interval=1 << 32), "message_expiry_interval of 0-4294967295"),
        (pub(subscription_identifiers=(0,)), "subscription_identifiers of 1-268435455, got 0"),
        (pub(subscription_identifiers=(1 << 28,)), "of 1-268435455, got 268435456"),
        (pub(content_type="a\x00"), "content_type contains U\\+0000"),
        (
            Publish("t", b"", properties=P(user_properties=(("k" * 70_000, ""),))),
            "user_properties name length of 0-65535",
        ),
        (pub(correlation_data=bytes(70_000)), "correlation_data length of 0-65535"),
        (Publish("", b""), "Topic name is empty"),
        (Publish("a/#", b"", properties=P(topic_alias=1)), "contains a wildcard"),
        (con(will_delay_interval=1), "CONNECT may not carry the property will_delay_interval"),
        (con(receive_maximum=0), "receive_maximum of 1-65535, got 0"),
        (con(maximum_packet_size=0), "maximum_packet_size of 1-4294967295, got 0"),
        (con(request_problem_information=2), "request_problem_information of 0-1, got 2"),
        (
            Connect(
                "MQTT", 5, "c", True, 0, None, None, None, None, 0, False, P(), P(content_type="c")
            ),
            "CONNECT sets will_properties without a will_topic",
        ),
        (
            Connect("MQTT", 5, "c", True, 0, None, None, "w", b"", 0, False, P(), P(topic_alias=1)),
            "CONNECT will properties may not carry the property topic_alias",
        ),
        (ConnAck(0, False, P(maximum_qos=2)), "maximum_qos of 0-1, got 2"),
        (ConnAck(0, False, P(topic_alias=1)), "CONNACK may not carry the property topic_alias"),
        (ConnAck(1), "Expected a reason code CONNACK may carry, got 0x01"),
        (ConnAck(0x87, session_present=True), "session_present with a non-zero return_code"),
        (PubAck(1, 0x05), "reason code PUBACK may carry, got 0x05"),
        (PubAck(1, 0x100), "reason code PUBACK may carry, got 0x100"),
        (PubAck(1, 0, P(topic_alias=1)), "PUBACK may not carry the property topic_alias"),
        (PubRel(1, 0x10), "reason code PUBREL may carry, got 0x10"),
        (PubAck(0), "PUBACK packet_id of 1-65535, got 0"),
        (Subscribe(1, (("a", 0x40),)), "subscription options of 0-0x3f, got 0x40"),
        (Subscribe(1, (("a", 0x100),)), "subscription options of 0-0x3f, got 0x100"),
        (Subscribe(1, (("a", 0x03),)), "maximum QoS of 0-2 in the options, got 3"),
        (Subscribe(1, (("a", 0x30),)), "retain handling of 0-2 in the options, got 3"),
        (Subscribe(1, ()), "at least one topic in SUBSCRIBE"),
        (
            Subscribe(1, (("a", 0),), P(subscription_identifiers=(1, 2))),
            "one subscription identifier in SUBSCRIBE, got 2",
        ),
        (
            Subscribe(1, (("a", 0),), P(reason_string="x")),
            "SUBSCRIBE may not carry the property reason_string",
        ),
        (SubAck(1, ()), "at least one reason code in SUBACK, got none"),
        (SubAck(1, (3,)), "reason code SUBACK may carry, got 0x03"),
        (Unsubscribe(1, ()), "at least one topic in UNSUBSCRIBE"),
        (UnsubAck(1), "at least one reason code in UNSUBACK, got none"),
        (UnsubAck(1, (0x01,)), "reason code UNSUBACK may carry, got 0x01"),
        (Disconnect(0x05), "reason code DISCONNECT may carry, got 0x05"),
        (Disconnect(0, P(topic_alias=1)), "DISCONNECT may not carry the property topic_alias"),
        (Auth(0x01), "reason code AUTH may carry, got 0x01"),
        (Auth(0, P(session_expiry_interval=1)), "AUTH may not carry the property session_expiry"),
    ],
)
def test_level_5_refusals(packet_, message):
    with pytest.raises(LocalProtocolError, match=message):
        encode(packet_, protocol_level=5)
