"""ServerProtocol driven by bytes from a client-side encoder, with no I/O."""

import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.mqtt import (
    BAD_USERNAME_OR_PASSWORD,
    ConnAck,
    Connect,
    Connected,
    ConnectionRefused,
    Decoder,
    Disconnect,
    Disconnected,
    LocalProtocolError,
    MessageReceived,
    PacketTooLarge,
    PingReq,
    PingResp,
    ProtocolError,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ServerProtocol,
    State,
    SubAck,
    Subscribe,
    Subscribed,
    UnsubAck,
    Unsubscribe,
    Unsubscribed,
    encode,
)
from tests.gate.mqtt.strategies import packets

CONNECT = Connect("MQTT", 4, "client-1", clean_session=True, keepalive=60)
CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


def send(server: ServerProtocol, *sent: object) -> list[object]:
    """Encode packets as a client would and feed them to the server in one chunk."""
    return list(server.receive_data(b"".join(encode(p) for p in sent)))  # type: ignore[arg-type]


def replies(server: ServerProtocol) -> list[object]:
    """Decode what the server queued, as the client would read it."""
    decoder = Decoder()
    decoder.receive_data(server.data_to_send())
    return list(decoder)


def connected(connect: Connect = CONNECT, **options: object) -> ServerProtocol:
    server = ServerProtocol(**options)  # type: ignore[arg-type]
    assert send(server, connect) == [Connected(connect)]
    assert server.accept() == []
    assert server.data_to_send() == CONNACK_ACCEPTED
    return server


def test_before_connect():
    server = ServerProtocol()
    assert server.state is State.AWAITING_CONNECT
    assert not server.accepted
    assert server.client_id is None
    assert server.protocol_level is None
    assert server.keepalive_timeout is None


def test_connect_then_accept():
    server = ServerProtocol()
    assert send(server, CONNECT) == [Connected(CONNECT)]
    assert server.state is State.CONNECTED
    assert not server.accepted
    assert server.data_to_send() == b""  # the application decides
    assert server.accept() == []
    assert server.data_to_send() == CONNACK_ACCEPTED
    assert server.accepted
    assert server.client_id == "client-1"
    assert server.protocol_level == 4


def test_mqtt_31_is_accepted():
    server = connected(Connect("MQIsdp", 3, "111", clean_session=True, keepalive=60))
    assert server.protocol_level == 3


def test_connect_split_at_every_byte():
    server = ServerProtocol()
    data = encode(CONNECT)
    events = [
        event
        for index in range(len(data))
        for event in server.receive_data(data[index : index + 1])
    ]
    assert events == [Connected(CONNECT)]


def test_refuse():
    server = ServerProtocol()
    send(server, CONNECT, Publish("a/b", b"x", qos=1, packet_id=1))
    server.refuse(BAD_USERNAME_OR_PASSWORD)
    assert server.data_to_send() == b"\x20\x02\x00\x04"  # the pipelined PUBLISH is dropped
    assert server.state is State.CLOSED
    assert send(server, PingReq()) == []
    assert server.data_to_send() == b""


@pytest.mark.parametrize("code", [0, 6, 0x7F, 0x8B, 0x100])
def test_refuse_needs_a_refusal_code(code):
    server = ServerProtocol()
    send(server, CONNECT)
    with pytest.raises(LocalProtocolError, match="refusal return code of 1-5"):
        server.refuse(code)


def test_accept_and_refuse_need_a_pending_connect():
    server = ServerProtocol()
    with pytest.raises(LocalProtocolError, match="got state AWAITING_CONNECT"):
        server.accept()
    send(server, CONNECT)
    server.accept()
    with pytest.raises(LocalProtocolError, match="got an accepted one"):
        server.accept()
    with pytest.raises(LocalProtocolError, match="got an accepted one"):
        server.refuse(5)


def test_pipelined_packets_wait_for_accept():
    server = ServerProtocol()
    publish = Publish("a/b", b"x", qos=1, packet_id=7)
    assert send(server, CONNECT, publish, PingReq()) == [Connected(CONNECT)]
    assert server.data_to_send() == b""
    assert send(server) == []  # still waiting for the decision
    assert server.accept() == [MessageReceived("a/b", b"x", 1, False, packet_id=7)]
    assert replies(server) == [ConnAck(0), PubAck(7), PingResp()]


@pytest.mark.parametrize(("name", "level"), [("MQTT", 6), ("MQTT", 3), ("MQIsdp", 4), ("MQTTX", 4)])
def test_unsupported_protocol_gets_connack_1(name, level):
    server = ServerProtocol()
    [event] = send(server, Connect(name, level, "c", clean_session=True, keepalive=0))
    assert isinstance(event, ConnectionRefused)
    assert event.return_code == 1
    assert event.reason == (
        f"Expected protocol 'MQIsdp' level 3 or 'MQTT' level 4 or 5, got {name!r} level {level}"
    )
    assert server.data_to_send() == b"\x20\x02\x00\x01"
    assert server.state is State.CLOSED


def test_a_level_6_connect_gets_connack_1():
    # Protocol level 6, clean start, keepalive 60, then a layout nobody knows yet.
    server = ServerProtocol()
    [event] = server.receive_data(b"\x10\x10\x00\x04MQTT\x06\x02\x00\x3c\x00\x00\x03abc")
    assert isinstance(event, ConnectionRefused)
    assert server.data_to_send() == b"\x20\x02\x00\x01"


@pytest.mark.parametrize(
    ("connect", "options", "reason"),
    [
        (Connect("MQTT", 4, "", False, 60), {}, "with clean session off, got an empty one"),
        (Connect("MQTT", 4, "", True, 60), {"allow_empty_client_id": False}, "got an empty one"),
        (Connect("MQTT", 4, "abcde", True, 60), {"max_client_id_length": 4}, "at most 4 bytes"),
        (Connect("MQTT", 4, "éé", True, 60), {"max_client_id_length": 3}, "got 4"),
    ],
)
def test_client_id_rejected_with_connack_2(connect, options, reason):
    server = ServerProtocol(**options)
    [event] = send(server, connect)
    assert isinstance(event, ConnectionRefused)
    assert event.return_code == 2
    assert reason in event.reason
    assert server.data_to_send() == b"\x20\x02\x00\x02"
    assert server.state is State.CLOSED


def test_client_id_at_the_limit_is_accepted():
    connected(Connect("MQTT", 4, "abcd", True, 60), max_client_id_length=4)


def test_empty_client_id_gets_one_assigned():
    server = ServerProtocol()
    [event] = send(server, Connect("MQTT", 4, "", clean_session=True, keepalive=60))
    assert isinstance(event, Connected)
    assert re.fullmatch("auto-[0-9a-f]{16}", event.connect.client_id)
    assert server.client_id == event.connect.client_id
    assert event.connect.keepalive == 60
    other = ServerProtocol()
    [other_event] = send(other, Connect("MQTT", 4, "", clean_session=True, keepalive=60))
    assert isinstance(other_event, Connected)
    assert other_event.connect.client_id != event.connect.client_id


def test_publish_before_connect():
    server = ServerProtocol()
    with pytest.raises(ProtocolError) as info:
        send(server, Publish("a/b", b"x"))
    assert str(info.value) == "Expected CONNECT as the first packet, got PUBLISH"
    assert server.state is State.CLOSED
    assert send(server, CONNECT) == []


def test_second_connect():
    server = connected()
    with pytest.raises(ProtocolError, match="got a second CONNECT"):
        send(server, CONNECT)
    assert server.state is State.CLOSED
    assert not server.accepted


@pytest.mark.parametrize("packet", [ConnAck(0), SubAck(1, (0,)), UnsubAck(1), PingResp()])
def test_server_packets_from_a_client(packet):
    server = connected()
    name = type(packet).__name__.upper()
    with pytest.raises(ProtocolError, match=f"Expected a packet a client sends, got {name}"):
        send(server, packet)
    assert server.state is State.CLOSED


def test_malformed_bytes_close():
    server = connected()
    with pytest.raises(ProtocolError, match="PUBLISH QoS of 0-2"):
        server.receive_data(b"\x36")
    assert server.state is State.CLOSED
    assert server.receive_data(b"\xc0\x00") == []


def test_packet_too_large():
    server = connected(max_packet_size=100)
    with pytest.raises(PacketTooLarge, match="Packet of 1001 bytes exceeds the limit of 100"):
        server.receive_data(b"\x30\xe6\x07")  # remaining length 998


def test_publish_qos_0():
    server = connected()
    assert send(server, Publish("a/b", b"x", retain=True)) == [
        MessageReceived("a/b", b"x", 0, True)
    ]
    assert server.data_to_send() == b""


def test_publish_qos_1_is_acknowledged():
    server = connected()
    assert send(server, Publish("a/b", b"x", qos=1, packet_id=10)) == [
        MessageReceived("a/b", b"x", 1, False, packet_id=10)
    ]
    assert server.data_to_send() == b"\x40\x02\x00\x0a"


def test_publish_qos_2_is_routed_once():
    server = connected()
    first = Publish("a/b", b"x", qos=2, packet_id=3)
    assert send(server, first) == [MessageReceived("a/b", b"x", 2, False, packet_id=3)]
    assert server.data_to_send() == b"\x50\x02\x00\x03"
    resend = Publish("a/b", b"x", qos=2, dup=True, packet_id=3)
    assert send(server, resend) == []
    assert server.data_to_send() == b"\x50\x02\x00\x03"
    assert send(server, PubRel(3)) == []
    assert server.data_to_send() == b"\x70\x02\x00\x03"
    assert send(server, first) == [MessageReceived("a/b", b"x", 2, False, 3)]  # a new message


def test_pubrel_for_an_unknown_id_is_completed():
    server = connected()
    assert send(server, PubRel(9)) == []
    assert replies(server) == [PubComp(9)]


def test_acknowledgements_from_the_client():
    server = connected()
    assert send(server, PubAck(1), PubRec(2), PubComp(3)) == []
    assert replies(server) == [PubRel(2)]


def test_subscribe_gets_one_code_per_filter():
    server = connected()
    topics = (("a/b", 0), ("c/+", 1), ("d/#", 2))
    assert send(server, Subscribe(5, topics)) == [Subscribed(5, topics)]
    assert server.data_to_send() == b"\x90\x05\x00\x05\x00\x01\x02"


def test_unsubscribe():
    server = connected()
    assert send(server, Unsubscribe(6, ("a/b", "c/+"))) == [Unsubscribed(6, ("a/b", "c/+"))]
    assert server.data_to_send() == b"\xb0\x02\x00\x06"


def test_pingreq():
    server = connected()
    assert send(server, PingReq(), PingReq()) == []
    assert server.data_to_send() == b"\xd0\x00\xd0\x00"


def test_disconnect():
    server = connected()
    events = send(server, Publish("a", b"1"), Disconnect(), Publish("a", b"2"))
    assert events == [MessageReceived("a", b"1", 0, False), Disconnected()]
    assert server.state is State.CLOSED
    assert send(server, PingReq()) == []
    assert server.data_to_send() == b""
    with pytest.raises(LocalProtocolError, match="got state CLOSED"):
        server.send_publish("a", b"x")


def test_send_publish():
    server = connected()
    server.send_publish("Chat/OnChat", b"{}")
    assert replies(server) == [Publish("Chat/OnChat", b"{}")]
    with pytest.raises(LocalProtocolError, match="contains a wildcard"):
        server.send_publish("Chat/#", b"")


def test_send_publish_needs_an_accepted_connection():
    server = ServerProtocol()
    with pytest.raises(LocalProtocolError, match="got state AWAITING_CONNECT"):
        server.send_publish("a", b"x")
    send(server, CONNECT)
    with pytest.raises(LocalProtocolError, match="got state CONNECTED"):
        server.send_publish("a", b"x")


@pytest.mark.parametrize(
    ("keepalive", "timeout"), [(0, None), (1, 1.5), (60, 90.0), (65535, 98302.5)]
)
def test_keepalive_timeout(keepalive, timeout):
    server = ServerProtocol()
    assert server.keepalive_timeout is None
    send(server, Connect("MQTT", 4, "c", clean_session=True, keepalive=keepalive))
    assert server.keepalive_timeout == timeout


def drive(server: ServerProtocol, chunks: list[bytes]) -> None:
    """Feed chunks as a server application would, accepting every CONNECT."""
    with contextlib.suppress(ProtocolError):
        for chunk in chunks:
            for event in server.receive_data(chunk):
                if isinstance(event, Connected):
                    server.accept()
            server.data_to_send()


@given(st.lists(st.binary(max_size=40), max_size=5))
@settings(max_examples=200)
def test_random_bytes_raise_only_protocol_errors(chunks):
    drive(ServerProtocol(), [encode(CONNECT), *chunks])
    drive(ServerProtocol(), chunks)


@given(st.lists(packets, max_size=6))
@settings(max_examples=200)
def test_any_packet_sequence_raises_only_protocol_errors(sent):
    drive(ServerProtocol(), [encode(CONNECT), *(encode(packet) for packet in sent)])


def test_packets_received_counts_every_packet_type():
    server = connected()
    send(server, PingReq(), Publish("a/HD_b", b"{}"), Subscribe(1, (("t", 0),)), PubRel(7))
    assert server.packets_received == 5  # CONNECT included
    assert server.control_packets_received == 4


@pytest.mark.parametrize(
    "packet",
    [
        Subscribe(1, tuple((f"t/{n}", 0) for n in range(5))),
        Unsubscribe(1, ("a", "b", "c", "d", "e")),
    ],
)
def test_more_topic_filters_than_allowed_is_a_protocol_error(packet):
    server = connected(max_topics_per_subscribe=4)
    name = type(packet).__name__.upper()
    with pytest.raises(ProtocolError, match=f"Expected at most 4 topic filters in {name}"):
        send(server, packet)
    assert server.state is State.CLOSED


def test_a_subscribe_of_16000_filters_is_refused_past_the_limit():
    """A valid SUBSCRIBE of 16,000 filters (64 KB): decoded whole without a limit, refused
    by a decoder that takes 4, which stops reading at the fifth filter."""
    body = b"\x00\x01" + b"\x00\x01t\x00" * 16000
    packet = bytes([0x82, *_varint(len(body))]) + body
    limited = Decoder(max_packet_size=1 << 20, max_topics=4)
    limited.receive_data(packet)
    with pytest.raises(ProtocolError, match="at most 4 topic filters"):
        limited.next_packet()
    unlimited = Decoder(max_packet_size=1 << 20)
    unlimited.receive_data(packet)
    subscribe = unlimited.next_packet()
    assert isinstance(subscribe, Subscribe)
    assert len(subscribe.topics) == 16000


def _varint(n: int) -> list[int]:
    out = []
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return out


def test_packets_sent_counts_every_packet_queued():
    server = connected()
    assert server.packets_sent == 1  # the CONNACK
    send(
        server,
        Publish("a/b", b"x", qos=1, packet_id=1),
        Publish("a/b", b"x", qos=2, packet_id=2),
        PubRel(2),
        PingReq(),
        Subscribe(3, (("t", 0),)),
        Unsubscribe(4, ("t",)),
        Publish("a/b", b"x"),  # QoS 0: nothing owed
    )
    server.send_publish("Chat/OnChat", b"{}")
    assert len(replies(server)) == 7
    assert server.packets_sent == 1 + 7
    assert server.packets_received == 1 + 7


def test_a_refusal_is_a_packet_sent():
    server = ServerProtocol()
    send(server, CONNECT)
    server.refuse(BAD_USERNAME_OR_PASSWORD)
    assert server.packets_sent == 1
