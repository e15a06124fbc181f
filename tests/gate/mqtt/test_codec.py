"""The codec against golden bytes from the MQTT 3.1.1 specification, and by property."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.mqtt import (
    ConnAck,
    Connect,
    Decoder,
    Disconnect,
    Packet,
    PacketTooLarge,
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
    encode,
)
from gate.mqtt._encode import varint
from tests.gate.mqtt.strategies import packets


def decode_all(data: bytes, max_packet_size: int = 65535) -> list[object]:
    decoder = Decoder(max_packet_size)
    decoder.receive_data(data)
    return list(decoder)


CONNECT_311 = Connect("MQTT", 4, "abc", clean_session=True, keepalive=60)
CONNECT_311_BYTES = b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03abc"
CONNECT_31 = Connect("MQIsdp", 3, "111", clean_session=True, keepalive=60)
CONNECT_31_BYTES = b"\x10\x11\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x03111"
# Flags 0xCE as in the specification's example: user name, password, will QoS 1, will, clean.
CONNECT_FULL = Connect(
    "MQTT", 4, "cid", True, 10, username="user", password=b"pw",
    will_topic="w/t", will_message=b"bye", will_qos=1,
)  # fmt: skip
CONNECT_FULL_BYTES = (
    b"\x10\x23\x00\x04MQTT\x04\xce\x00\x0a\x00\x03cid\x00\x03w/t\x00\x03bye\x00\x04user\x00\x02pw"
)

GOLDEN = [
    (CONNECT_311, CONNECT_311_BYTES),
    (CONNECT_31, CONNECT_31_BYTES),
    (CONNECT_FULL, CONNECT_FULL_BYTES),
    (ConnAck(0), b"\x20\x02\x00\x00"),
    (ConnAck(0, session_present=True), b"\x20\x02\x01\x00"),
    (ConnAck(1), b"\x20\x02\x00\x01"),
    (Publish("a/b", b"hi"), b"\x30\x07\x00\x03a/bhi"),
    (Publish("a/b", b"hi", qos=1, packet_id=10), b"\x32\x09\x00\x03a/b\x00\x0ahi"),
    (
        Publish("a/b", b"", qos=2, retain=True, dup=True, packet_id=1),
        b"\x3d\x07\x00\x03a/b\x00\x01",
    ),
    (PubAck(10), b"\x40\x02\x00\x0a"),
    (PubRec(10), b"\x50\x02\x00\x0a"),
    (PubRel(10), b"\x62\x02\x00\x0a"),
    (PubComp(10), b"\x70\x02\x00\x0a"),
    (Subscribe(10, (("a/b", 1), ("c/d", 2))), b"\x82\x0e\x00\x0a\x00\x03a/b\x01\x00\x03c/d\x02"),
    (SubAck(10, (0, 1, 2, 0x80)), b"\x90\x06\x00\x0a\x00\x01\x02\x80"),
    (Unsubscribe(11, ("a/b", "c/d")), b"\xa2\x0c\x00\x0b\x00\x03a/b\x00\x03c/d"),
    (UnsubAck(11), b"\xb0\x02\x00\x0b"),
    (PingReq(), b"\xc0\x00"),
    (PingResp(), b"\xd0\x00"),
    (Disconnect(), b"\xe0\x00"),
]


@pytest.mark.parametrize(("packet", "data"), GOLDEN)
def test_golden_encode(packet, data):
    assert encode(packet) == data


@pytest.mark.parametrize(("packet", "data"), GOLDEN)
def test_golden_decode(packet, data):
    assert decode_all(data) == [packet]


# MQTT 3.1.1, table 2.4: the boundaries of one to four remaining-length bytes.
REMAINING_LENGTHS = [
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (2097151, b"\xff\xff\x7f"),
    (2097152, b"\x80\x80\x80\x01"),
    (268435455, b"\xff\xff\xff\x7f"),
]


@pytest.mark.parametrize(("length", "data"), REMAINING_LENGTHS)
def test_remaining_length_encoding(length, data):
    assert varint(length) == data


@pytest.mark.parametrize(("length", "data"), REMAINING_LENGTHS)
def test_remaining_length_decoding(length, data):
    # The size error reports fixed header + remaining length, which is the decoded value.
    decoder = Decoder(max_packet_size=0)
    decoder.receive_data(b"\xc0" if length == 0 else b"\x30")
    decoder.receive_data(data)
    with pytest.raises(PacketTooLarge, match=f"Packet of {1 + len(data) + length} bytes"):
        decoder.next_packet()


@pytest.mark.parametrize("length", [128, 16383, 16384, 2097152])
def test_publish_frames_its_remaining_length(length):
    data = encode(Publish("t", bytes(length - 3)))
    assert data[1 : 1 + len(varint(length))] == varint(length)
    assert decode_all(data, max_packet_size=len(data)) == [Publish("t", bytes(length - 3))]


def test_remaining_length_over_four_bytes():
    decoder = Decoder()
    decoder.receive_data(b"\x30\x80\x80\x80")
    assert decoder.next_packet() is None
    decoder.receive_data(b"\x80")
    with pytest.raises(ProtocolError, match="Remaining length exceeds 4 bytes"):
        decoder.next_packet()


def test_too_large_from_the_fixed_header_alone():
    decoder = Decoder()
    decoder.receive_data(b"\x30\xff\xff\xff\x7f")  # a 256 MB PUBLISH, no body sent
    with pytest.raises(PacketTooLarge, match=r"^Packet of 268435460 bytes exceeds the limit"):
        decoder.next_packet()


def test_too_large_message():
    decoder = Decoder()
    decoder.receive_data(b"\x30\xdc\xa7\x12")
    with pytest.raises(PacketTooLarge) as info:
        decoder.next_packet()
    assert str(info.value) == "Packet of 300000 bytes exceeds the limit of 65535"
    assert isinstance(info.value, ProtocolError)


def test_limit_counts_the_fixed_header():
    data = encode(Publish("t", bytes(100)))
    assert decode_all(data, max_packet_size=len(data)) == [Publish("t", bytes(100))]
    with pytest.raises(PacketTooLarge):
        decode_all(data, max_packet_size=len(data) - 1)


def test_split_at_every_byte():
    stream = b"".join(data for _, data in GOLDEN)
    decoder = Decoder()
    decoded: list[Packet] = []
    for index in range(len(stream)):
        decoder.receive_data(stream[index : index + 1])
        decoded.extend(decoder.packets())
    assert decoded == [packet for packet, _ in GOLDEN]


def test_many_packets_in_one_chunk():
    one = encode(Publish("a/b", b"x")) + b"\xc0\x00"
    decoder = Decoder()
    decoder.receive_data(one * 50_000)
    assert sum(1 for _ in decoder) == 100_000
    assert decoder.next_packet() is None


def test_next_packet_waits_for_the_body():
    decoder = Decoder()
    decoder.receive_data(b"\x32\x09\x00\x03a/b")
    assert decoder.next_packet() is None
    decoder.receive_data(b"\x00\x0ahi\xc0")
    assert decoder.next_packet() == Publish("a/b", b"hi", qos=1, packet_id=10)
    assert decoder.next_packet() is None
    decoder.receive_data(b"\x00")
    assert decoder.next_packet() == PingReq()


@given(packets)
@settings(max_examples=300)
def test_round_trip(packet):
    assert decode_all(encode(packet)) == [packet]


@given(st.lists(packets, max_size=8), st.data())
@settings(max_examples=150)
def test_stream_split_anywhere(sent, data):
    stream = b"".join(encode(packet) for packet in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = Decoder()
    received: list[Packet] = []
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoder.receive_data(stream[start:stop])
        received.extend(decoder)
    assert received == sent


@given(st.binary(max_size=200))
@settings(max_examples=400)
def test_random_bytes_raise_only_protocol_errors(data):
    with contextlib.suppress(ProtocolError):
        decode_all(data)


VALID_FIRST_BYTES = [0x10, 0x20, 0x30, 0x33, 0x3D, 0x40, 0x50, 0x62, 0x70, 0x82, 0x90, 0xA2, 0xB0]


@given(st.sampled_from(VALID_FIRST_BYTES), st.binary(max_size=100))
@settings(max_examples=400)
def test_random_bodies_raise_only_protocol_errors(first, body):
    with contextlib.suppress(ProtocolError):
        decode_all(bytes((first,)) + varint(len(body)) + body)


@given(packets, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1))
@settings(max_examples=400)
def test_corrupted_packets_raise_only_protocol_errors(packet, edits):
    data = bytearray(encode(packet))
    for position, value in edits:
        data[position % len(data)] = value
    with contextlib.suppress(ProtocolError):
        decode_all(bytes(data))
