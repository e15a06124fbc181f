"""ServerProtocol at MQTT 5.0: the DISCONNECT either side sends, the one a protocol error
earns before the connection closes, and anything a client may send."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.mqtt import (
    Auth,
    ConnAck,
    Connect,
    Connected,
    Disconnect,
    Disconnected,
    LocalProtocolError,
    MessageReceived,
    Packet,
    PingReq,
    Properties,
    ProtocolError,
    Publish,
    ServerProtocol,
    State,
    encode,
    reasons,
)
from tests.gate.mqtt.strategies import packets
from tests.gate.mqtt.test_protocol5 import (
    CONNECT,
    connect5,
    connected,
    reason,
    replies,
    send,
)

# DISCONNECT from the server


def test_server_disconnect_with_a_reason():
    server = connected()
    server.disconnect(reasons.SERVER_SHUTTING_DOWN, "restarting")
    assert replies(server) == [Disconnect(0x8B, reason("restarting"))]
    assert server.state is State.CLOSED
    server.disconnect(reasons.SERVER_SHUTTING_DOWN)  # closed already: nothing more
    assert server.data_to_send() == b""
    assert send(server, PingReq()) == []


def test_server_disconnect_without_a_reason_is_two_bytes():
    server = connected()
    server.disconnect()
    assert server.data_to_send() == b"\xe0\x00"


def test_server_disconnect_below_level_5_only_closes():
    server = ServerProtocol()
    server.receive_data(encode(Connect("MQTT", 4, "c", clean_session=True, keepalive=0)))
    server.accept()
    server.data_to_send()
    server.disconnect(reasons.KEEP_ALIVE_TIMEOUT, "silent")
    assert server.data_to_send() == b""
    assert server.state is State.CLOSED


def test_no_disconnect_before_the_connack():
    server = ServerProtocol()
    send(server, CONNECT)
    server.disconnect(reasons.SERVER_BUSY)  # MQTT-3.14.0-1: CONNACK first
    assert server.data_to_send() == b""
    assert server.state is State.CLOSED


@pytest.mark.parametrize(
    "code", [reasons.DISCONNECT_WITH_WILL, reasons.PACKET_IDENTIFIER_IN_USE, reasons.BANNED, 256]
)
def test_server_disconnect_needs_a_server_reason_code(code):
    server = connected()
    with pytest.raises(LocalProtocolError, match=f"Expected a DISCONNECT reason code, got {code}"):
        server.disconnect(code)
    assert server.state is State.CONNECTED


def test_a_disconnect_reason_string_too_large_for_the_client_is_dropped():
    server = connected(connect5(maximum_packet_size=30))  # the CONNACK takes 24
    server.disconnect(reasons.ADMINISTRATIVE_ACTION, "kicked by an administrator")
    assert replies(server) == [Disconnect(reasons.ADMINISTRATIVE_ACTION)]


# A protocol error: DISCONNECT with its reason code, then close


def failing(server: ServerProtocol, data: bytes, code: int) -> None:
    """Feed ``data``, which breaks the protocol: the error has ``code``, and the server
    queued a DISCONNECT with that code and the error's message before closing."""
    with pytest.raises(ProtocolError) as info:
        server.receive_data(data)
    assert info.value.reason_code == code
    assert replies(server) == [Disconnect(code, reason(str(info.value)))]
    assert server.state is State.CLOSED


def test_malformed_bytes_get_0x81():
    # PUBLISH whose topic length (5) runs past the end of its 2-byte body.
    failing(connected(), b"\x30\x02\x00\x05", reasons.MALFORMED_PACKET)


def test_a_second_connect_gets_0x82():
    failing(connected(), encode(CONNECT), reasons.PROTOCOL_ERROR)


def test_a_packet_too_large_gets_0x95():
    failing(connected(max_packet_size=100), b"\x30\xe6\x07", reasons.PACKET_TOO_LARGE)


def test_a_topic_alias_over_the_maximum_gets_0x94():
    publish = Publish("a", b"", properties=Properties(topic_alias=3))
    server = connected(topic_alias_maximum=2)
    failing(server, encode(publish, protocol_level=5), reasons.TOPIC_ALIAS_INVALID)


def test_one_publish_past_the_receive_maximum_gets_0x93():
    server = connected(receive_maximum=2)
    for packet_id in (1, 2):
        send(server, Publish("a", b"", qos=2, packet_id=packet_id))
    server.data_to_send()
    third = Publish("a", b"", qos=2, packet_id=3)
    failing(server, encode(third, protocol_level=5), reasons.RECEIVE_MAXIMUM_EXCEEDED)


def test_an_auth_packet_gets_0x82():
    server = connected()
    with pytest.raises(ProtocolError, match="Expected no AUTH") as info:
        send(server, Auth(reasons.CONTINUE_AUTHENTICATION))
    assert info.value.reason_code == reasons.PROTOCOL_ERROR
    assert replies(server) == [Disconnect(0x82, reason(str(info.value)))]


def test_a_long_error_message_is_cut_in_the_reason_string():
    server = connected()
    long_topic = "t/" + "x" * 1000  # quoted in the error's message
    with pytest.raises(ProtocolError) as info:
        send(server, Publish("a", b"", properties=Properties(response_topic=long_topic + "/#")))
    [disconnect] = replies(server)
    assert isinstance(disconnect, Disconnect)
    assert disconnect.properties.reason_string == str(info.value)[:200]


def test_a_protocol_error_below_level_5_queues_nothing():
    server = ServerProtocol()
    server.receive_data(encode(Connect("MQTT", 4, "c", clean_session=True, keepalive=0)))
    server.accept()
    server.data_to_send()
    with pytest.raises(ProtocolError):
        server.receive_data(b"\x30\x02\x00\x05")
    assert server.data_to_send() == b""


def test_a_protocol_error_in_packets_behind_connect_follows_the_connack():
    server = ServerProtocol()
    send(server, CONNECT)
    server.receive_data(encode(CONNECT, protocol_level=5))
    with pytest.raises(ProtocolError, match="second CONNECT"):
        server.accept()
    [connack, disconnect] = replies(server)
    assert isinstance(connack, ConnAck)
    assert disconnect == Disconnect(
        0x82, reason("Expected one CONNECT per connection, got a second CONNECT")
    )


# DISCONNECT from the client


def test_client_disconnect_with_reason_and_session_expiry():
    server = connected(connect5(session_expiry_interval=300))
    sent = Disconnect(reasons.DISCONNECT_WITH_WILL, Properties(session_expiry_interval=10))
    assert send(server, sent) == [Disconnected(reasons.DISCONNECT_WITH_WILL, 10)]
    assert server.session_expiry_interval == 10
    assert server.state is State.CLOSED
    assert server.data_to_send() == b""


def test_client_disconnect_leaving_the_session_expiry():
    server = connected(connect5(session_expiry_interval=300))
    assert send(server, Disconnect()) == [Disconnected(0, None)]
    assert server.session_expiry_interval == 300


def test_client_disconnect_may_set_zero_after_zero():
    server = connected()
    sent = Disconnect(properties=Properties(session_expiry_interval=0))
    assert send(server, sent) == [Disconnected(0, 0)]


def test_client_disconnect_setting_an_expiry_after_connects_zero_is_a_protocol_error():
    server = connected()  # no session expiry interval: 0
    sent = Disconnect(properties=Properties(session_expiry_interval=60))
    failing(server, encode(sent, protocol_level=5), reasons.PROTOCOL_ERROR)


# Anything a client sends


def drive(server: ServerProtocol, chunks: list[bytes], manual: bool) -> None:
    """Feed chunks as a server application would, accepting the CONNECT and (``manual``)
    acknowledging every message; a protocol error must leave a DISCONNECT with its reason
    code and message last."""
    error = None
    try:
        for chunk in chunks:
            events = server.receive_data(chunk)
            for event in events:
                if isinstance(event, Connected):
                    events += server.accept()
                elif isinstance(event, MessageReceived) and event.packet_id and manual:
                    server.ack(event.packet_id)
            replies(server)
    except ProtocolError as err:
        error = err
    if error is not None:
        [*_, last] = replies(server)
        assert last == Disconnect(error.reason_code, reason(str(error)[:200]))


@given(st.lists(st.binary(max_size=40), max_size=5), st.booleans())
@settings(max_examples=300)
def test_random_bytes_after_a_5_connect_raise_only_protocol_errors(chunks, manual):
    drive(ServerProtocol(manual_acks=manual), [encode(CONNECT), *chunks], manual)


def _at_level_5(packet: Packet) -> bytes:
    try:
        return encode(packet, protocol_level=5)
    except LocalProtocolError:  # a 3.1.1 packet 5.0 has no layout for (UNSUBACK of no code)
        return b""


_aliased = st.builds(
    Publish,
    st.sampled_from(["", "a/b"]),
    st.binary(max_size=8),
    st.integers(0, 2),
    packet_id=st.integers(1, 4),
    properties=st.builds(Properties, topic_alias=st.integers(1, 20)),
).map(lambda p: p if p.qos else replace(p, packet_id=None))


@given(st.lists(st.one_of(packets, _aliased), max_size=8), st.booleans())
@settings(max_examples=300)
def test_any_packet_sequence_at_level_5_raises_only_protocol_errors(sent, manual):
    server = ServerProtocol(manual_acks=manual, receive_maximum=3, topic_alias_maximum=8)
    drive(server, [encode(CONNECT), *(_at_level_5(packet) for packet in sent)], manual)
