"""ServerProtocol at MQTT 5.0: CONNECT, the CONNACK accepting it, and refusals; and the helpers
of the other test_protocol5_* files. Client bytes come from encode(..., protocol_level=5);
the server's are read back with a level 5 Decoder, as a 5.0 client would."""

import re
from dataclasses import replace

import pytest

from gate.mqtt import (
    ConnAck,
    Connect,
    Connected,
    ConnectionRefused,
    Decoder,
    LocalProtocolError,
    MessageReceived,
    Packet,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    Publish,
    ServerProtocol,
    State,
    encode,
    reasons,
)

CONNECT = Connect("MQTT", 5, "client-5", clean_session=True, keepalive=60)
ANNOUNCED = Properties(
    receive_maximum=20,
    maximum_packet_size=65535,
    topic_alias_maximum=16,
    retain_available=0,
    wildcard_subscription_available=1,
    subscription_identifiers_available=0,
    shared_subscription_available=0,
)


def send(server: ServerProtocol, *sent: Packet) -> list[object]:
    """Encode packets as a 5.0 client would and feed them to the server in one chunk."""
    return list(server.receive_data(b"".join(encode(p, protocol_level=5) for p in sent)))


def replies(server: ServerProtocol) -> list[Packet]:
    """Decode what the server queued, as a 5.0 client would read it."""
    decoder = Decoder(protocol_level=5)
    decoder.receive_data(server.data_to_send())
    return list(decoder)


def connect5(client_id: str = "client-5", clean: bool = True, **props: object) -> Connect:
    return Connect("MQTT", 5, client_id, clean, 60, properties=Properties(**props))  # type: ignore[arg-type]


def connected(connect: Connect = CONNECT, **options: object) -> ServerProtocol:
    """A server that accepted ``connect``, its CONNACK read and checked."""
    server = ServerProtocol(**options)  # type: ignore[arg-type]
    assert send(server, connect) == [Connected(connect)]
    assert server.accept() == []
    [connack] = replies(server)
    assert isinstance(connack, ConnAck)
    assert connack.return_code == 0
    return server


def reason(text: str) -> Properties:
    return Properties(reason_string=text)


CONNECT_4 = Connect("MQTT", 4, "client-4", clean_session=True, keepalive=60)


def connected_4(**options: object) -> ServerProtocol:
    server = ServerProtocol(**options)  # type: ignore[arg-type]
    server.receive_data(encode(CONNECT_4))
    server.accept()
    assert server.data_to_send() == b"\x20\x02\x00\x00"
    return server


def alias(n: int, **more: object) -> Properties:
    return Properties(topic_alias=n, **more)  # type: ignore[arg-type]


# CONNECT and CONNACK


def test_connack_announces_the_protocol_limits():
    server = ServerProtocol()
    send(server, CONNECT)
    assert server.accept() == []
    assert replies(server) == [ConnAck(0, properties=ANNOUNCED)]
    assert server.protocol_level == 5
    assert server.connect == CONNECT


def test_connack_announces_the_options():
    server = ServerProtocol(max_packet_size=1000, receive_maximum=3, topic_alias_maximum=0)
    send(server, CONNECT)
    server.accept()
    [connack] = replies(server)
    assert isinstance(connack, ConnAck)
    assert connack.properties.receive_maximum == 3
    assert connack.properties.maximum_packet_size == 1000
    assert connack.properties.topic_alias_maximum == 0


@pytest.mark.parametrize("level", [3, 4])
def test_connack_below_level_5_has_no_properties(level):
    server = ServerProtocol()
    name = "MQIsdp" if level == 3 else "MQTT"
    server.receive_data(encode(Connect(name, level, "c", clean_session=True, keepalive=60)))
    server.accept(properties=Properties(server_keep_alive=5, reason_string="hello"))
    assert server.data_to_send() == b"\x20\x02\x00\x00"
    assert server.keepalive_timeout == 90.0  # the client never heard of the server's 5


@pytest.mark.parametrize(
    ("level", "clean", "expected"),
    [(4, False, b"\x20\x02\x01\x00"), (4, True, b"\x20\x02\x00\x00")],
)
def test_session_present_at_level_4_only_without_clean_session(level, clean, expected):
    server = ServerProtocol()
    server.receive_data(encode(Connect("MQTT", level, "c", clean_session=clean, keepalive=0)))
    server.accept(session_present=True)
    assert server.data_to_send() == expected


@pytest.mark.parametrize(("clean", "present"), [(False, True), (True, False)])
def test_session_present_at_level_5_only_without_clean_start(clean, present):
    server = ServerProtocol()
    send(server, connect5(clean=clean))
    server.accept(session_present=True)
    [connack] = replies(server)
    assert isinstance(connack, ConnAck)
    assert connack.session_present is present


@pytest.mark.parametrize("clean", [True, False])
def test_an_empty_client_id_is_assigned_and_announced(clean):
    server = ServerProtocol()
    [event] = send(server, connect5("", clean=clean))  # 5.0 allows it without clean start
    assert isinstance(event, Connected)
    assigned = event.connect.client_id
    assert re.fullmatch("auto-[0-9a-f]{16}", assigned)
    server.accept()
    [connack] = replies(server)
    assert isinstance(connack, ConnAck)
    assert connack.properties.assigned_client_identifier == assigned


def test_a_client_id_of_the_client_is_not_announced():
    server = ServerProtocol()
    send(server, CONNECT)
    server.accept()
    [connack] = replies(server)
    assert isinstance(connack, ConnAck)
    assert connack.properties.assigned_client_identifier is None


def test_the_application_adds_connack_properties():
    server = ServerProtocol()
    send(server, connect5(session_expiry_interval=3600))
    added = {
        "server_keep_alive": 20,
        "session_expiry_interval": 600,
        "reason_string": "welcome",
        "user_properties": (("node", "gate-1"),),
    }
    server.accept(properties=Properties(**added))  # type: ignore[arg-type]
    [connack] = replies(server)
    assert isinstance(connack, ConnAck)
    assert connack.properties == replace(ANNOUNCED, **added)  # type: ignore[arg-type]
    assert server.keepalive_timeout == 30.0  # the server's keep alive rules now
    assert server.session_expiry_interval == 600  # and its session expiry


@pytest.mark.parametrize(
    "props",
    [
        Properties(receive_maximum=5),
        Properties(maximum_packet_size=10),
        Properties(topic_alias_maximum=1),
        Properties(shared_subscription_available=1),
        Properties(assigned_client_identifier="x"),
    ],
)
def test_the_protocols_announcements_are_its_own(props):
    server = ServerProtocol()
    send(server, CONNECT)
    with pytest.raises(LocalProtocolError, match="properties the protocol does not set itself"):
        server.accept(properties=props)
    assert server.data_to_send() == b""
    assert not server.accepted


def test_what_the_connect_says_at_level_5():
    server = ServerProtocol()
    connect = connect5(
        session_expiry_interval=120,
        receive_maximum=7,
        maximum_packet_size=500,
        request_problem_information=0,
    )
    send(server, connect)
    assert server.session_expiry_interval == 120
    assert server.client_receive_maximum == 7
    assert server.client_maximum_packet_size == 500
    assert not server.problem_information


def test_what_a_bare_5_connect_means():
    server = ServerProtocol()
    send(server, CONNECT)
    assert server.session_expiry_interval == 0
    assert server.client_receive_maximum == 65535
    assert server.client_maximum_packet_size is None
    assert server.problem_information


@pytest.mark.parametrize(("clean", "expiry"), [(True, 0), (False, None)])
def test_what_a_3_1_1_connect_means(clean, expiry):
    server = ServerProtocol()
    assert server.session_expiry_interval is None
    server.receive_data(encode(Connect("MQTT", 4, "c", clean_session=clean, keepalive=0)))
    assert server.session_expiry_interval == expiry
    assert server.client_receive_maximum == 65535
    assert server.client_maximum_packet_size is None
    assert server.problem_information


def test_packets_behind_a_5_connect_are_read_at_level_5():
    server = ServerProtocol()
    publish = Publish("a/b", b"x", qos=1, packet_id=4, properties=Properties(content_type="t"))
    assert send(server, CONNECT, publish, PingReq()) == [Connected(CONNECT)]
    assert server.accept() == [
        MessageReceived("a/b", b"x", 1, False, 4, Properties(content_type="t"))
    ]
    assert replies(server) == [ConnAck(0, properties=ANNOUNCED), PubAck(4), PingResp()]


@pytest.mark.parametrize(
    "option", ["receive_maximum", "topic_alias_maximum", "max_outgoing_aliases"]
)
def test_options_out_of_range(option):
    with pytest.raises(LocalProtocolError, match=f"Expected {option} of"):
        ServerProtocol(**{option: 65536})  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="Expected receive_maximum of 1-65535, got 0"):
        ServerProtocol(receive_maximum=0)


# Refusals


@pytest.mark.parametrize(
    ("code", "sent"),
    [
        (1, reasons.UNSUPPORTED_PROTOCOL_VERSION),
        (2, reasons.CLIENT_IDENTIFIER_NOT_VALID),
        (3, reasons.SERVER_UNAVAILABLE),
        (4, reasons.BAD_USER_NAME_OR_PASSWORD),
        (5, reasons.NOT_AUTHORIZED),
        (reasons.BANNED, reasons.BANNED),
        (reasons.SERVER_BUSY, reasons.SERVER_BUSY),
        (reasons.UNSPECIFIED_ERROR, reasons.UNSPECIFIED_ERROR),
    ],
)
def test_refusals_at_level_5_carry_a_reason_code_and_string(code, sent):
    server = ServerProtocol()
    send(server, CONNECT, PingReq())
    server.refuse(code, "go away")
    assert replies(server) == [ConnAck(sent, properties=reason("go away"))]  # no PINGRESP
    assert server.state is State.CLOSED


def test_a_refusal_at_level_5_without_a_reason_string():
    server = ServerProtocol()
    send(server, CONNECT)
    server.refuse(reasons.NOT_AUTHORIZED)
    assert server.data_to_send() == b"\x20\x03\x00\x87\x00"
    assert server.packets_sent == 1


@pytest.mark.parametrize(
    ("code", "sent"),
    [
        (reasons.BAD_USER_NAME_OR_PASSWORD, 4),
        (reasons.NOT_AUTHORIZED, 5),
        (reasons.UNSUPPORTED_PROTOCOL_VERSION, 1),
        (reasons.BANNED, 3),  # no 3.1.1 word for it: server unavailable
        (reasons.QUOTA_EXCEEDED, 3),
    ],
)
def test_5_refusals_at_level_4_are_3_1_1_codes(code, sent):
    server = ServerProtocol()
    server.receive_data(encode(Connect("MQTT", 4, "c", clean_session=True, keepalive=0)))
    server.refuse(code, "dropped at level 4")
    assert server.data_to_send() == bytes((0x20, 2, 0, sent))


@pytest.mark.parametrize(
    "code",
    [
        0,
        6,
        reasons.SERVER_SHUTTING_DOWN,
        reasons.NO_MATCHING_SUBSCRIBERS,
        0x7F,
        reasons.SESSION_TAKEN_OVER,
    ],
)
def test_refuse_needs_a_connack_refusal_code(code):
    server = ServerProtocol()
    send(server, CONNECT)
    with pytest.raises(LocalProtocolError, match="CONNACK reason code of 0x80 and up"):
        server.refuse(code)


def test_a_rejected_client_id_at_level_5_is_0x85():
    server = ServerProtocol(allow_empty_client_id=False)
    [event] = send(server, connect5(""))
    expected = "Expected a client id, got an empty one"
    assert event == ConnectionRefused(reasons.CLIENT_IDENTIFIER_NOT_VALID, expected)
    assert replies(server) == [ConnAck(0x85, properties=reason(expected))]
    assert server.state is State.CLOSED


def test_an_authentication_method_is_refused_with_0x8c():
    server = ServerProtocol()
    [event] = send(server, connect5(authentication_method="SCRAM-SHA-1"))
    expected = "Expected no authentication method (none is supported), got 'SCRAM-SHA-1'"
    assert event == ConnectionRefused(reasons.BAD_AUTHENTICATION_METHOD, expected)
    assert replies(server) == [ConnAck(0x8C, properties=reason(expected))]
    assert server.state is State.CLOSED


def test_a_refusal_reason_fits_the_clients_maximum_packet_size():
    server = ServerProtocol()
    send(server, connect5(maximum_packet_size=6))
    server.refuse(5, "a reason string too long for the client")
    assert replies(server) == [ConnAck(reasons.NOT_AUTHORIZED)]
