"""MQTT 5.0 with third-party clients, written as their users write them, against a real server
process: paho-mqtt 2 over TCP and over WebSocket (/mqtt, subprotocol "mqtt"), and mosquitto's
command-line clients over TCP.

A call is a PUBLISH on ``HelloWorld/HD_Say`` with a Response Topic and Correlation Data; the
reply comes on the response topic with the same data, mqant's envelope as JSON (Content Type
"application/json", Payload Format Indicator 1), whether the client subscribed to the topic or
not. A failed call is also told in its PUBACK (0x83 and the error as the reason string); the
server says why it ends a connection (DISCONNECT 0x96 for the message rate, 0x8B when it stops)
and refuses enhanced authentication (CONNACK 0x8C).

The clients' code is proven against Mosquitto in test_mqtt5_harness.py."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.mqtt5 import (
    NOPE,
    NOT_FOUND,
    SAY,
    TRANSPORTS,
    Connect,
    Ports,
    V5Client,
    assert_reply,
    auth_method,
    mosquitto_cli,
    reply_topic,
    v5_client,
    v5_clients,
)
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

# 5 calls a second, in bursts of 5, on each connection: the rate test goes past it; the other
# tests send fewer calls on one connection.
RATE = {"MESSAGE_RATE": 5, "MESSAGE_BURST": 5}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("mqtt5"), mqant=RATE).start()
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()


@pytest.fixture(params=TRANSPORTS)
def connect(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[Connect]:
    """Opens paho MQTT 5.0 clients to ``server``; each test runs over TCP and WebSocket."""
    with v5_clients(server, request.param) as open_client:
        yield open_client


def test_connack_tells_what_the_server_offers(connect: Connect) -> None:
    connack = connect().connack
    assert connack.code == 0, connack
    offered = connack.properties
    assert offered.get("ReceiveMaximum", 0) > 0, offered
    assert offered.get("MaximumPacketSize", 0) > 0, offered
    assert "TopicAliasMaximum" in offered, offered
    assert offered.get("RetainAvailable") == 0, offered
    assert offered.get("SharedSubscriptionAvailable") == 0, offered
    assert offered.get("SubscriptionIdentifierAvailable") == 0, offered


def test_calls_are_answered_on_their_response_topic_with_their_correlation_data(
    connect: Connect,
) -> None:
    """No SUBSCRIBE: the server pushes the replies. Two calls in flight (QoS 1 and QoS 0) share
    one response topic; the Correlation Data tells their replies apart."""
    client, topic = connect(), reply_topic()
    hi, ho = b"\x00call-hi\xff", b"\x01call-ho"
    acked = client.publish(SAY, {"say": "hi"}, response_topic=topic, correlation=hi)
    client.publish(SAY, {"say": "ho"}, qos=0, response_topic=topic, correlation=ho)
    assert client.ack(acked).code == 0
    assert_reply(client.next_message(topic, ho), result="you say : ho")
    assert_reply(client.next_message(topic, hi), result="you say : hi")
    assert client.nothing_more() == []  # one reply for each call


def test_a_subscriber_of_its_response_topic_gets_the_reply_once(connect: Connect) -> None:
    client, topic = connect(), reply_topic()
    assert all(code < 0x80 for code in client.subscribe(topic))
    reply = client.request(SAY, {"say": "hi"}, response_topic=topic, correlation=b"c-1")
    assert_reply(reply, result="you say : hi")
    assert client.nothing_more() == []


def test_a_call_with_a_msgid_is_answered_on_its_own_topic(connect: Connect) -> None:
    client = connect()
    client.publish(f"{SAY}/7", {"say": "hi"})
    envelope = client.next_message(f"{SAY}/7").json()
    assert (envelope["Error"], envelope["Result"]) == ("", "you say : hi")


def test_a_failed_call_is_told_in_its_puback_and_in_its_reply(connect: Connect) -> None:
    """The server acks a QoS 1 call once its handler has finished: the PUBACK carries the
    outcome, 0x83 (implementation specific error) with the error as its reason string."""
    client, topic = connect(), reply_topic()
    acked = client.publish(NOPE, {"say": "hi"}, response_topic=topic, correlation=b"nope")
    puback = client.ack(acked)
    assert (puback.code, puback.reason_string) == (0x83, NOT_FOUND), puback
    assert_reply(client.next_message(topic, b"nope"), error=NOT_FOUND)


def test_past_its_message_rate_a_client_is_disconnected_with_0x96(connect: Connect) -> None:
    client = connect()
    sent, end = client.publish_until_disconnected(SAY, limit=50)
    assert end.from_server, end
    assert end.code == 0x96, end  # Message rate too high
    assert end.reason_string, end
    assert sent > RATE["MESSAGE_BURST"], sent  # the burst itself is allowed


def test_enhanced_authentication_is_refused_with_connack_0x8c(connect: Connect) -> None:
    client = connect(connect_properties=auth_method("SCRAM-SHA-256"))
    assert client.connack.code == 0x8C, client.connack  # Bad authentication method


def test_a_stopping_server_disconnects_its_clients_with_0x8b(tmp_path: Path) -> None:
    """SIGTERM to a server of its own, with a client on each transport."""
    server = ServerProcess(tmp_path).start()
    clients: list[V5Client] = []
    try:
        clients = [v5_client(server, transport) for transport in TRANSPORTS]
        assert [c.connack.code for c in clients] == [0, 0]
        server.stop()
        for client in clients:
            end = client.disconnected()
            assert (end.from_server, end.code) == (True, 0x8B), end  # Server shutting down
    finally:
        for client in clients:
            client.close()
        server.stop()
    assert "Traceback" not in server.output(), server.output()


def test_mosquitto_rr_prints_the_reply(server: Ports) -> None:
    """mosquitto_rr subscribes to the response topic, then calls."""
    run = mosquitto_cli(
        "mosquitto_rr", server.tcp_port,
        "-t", SAY, "-e", reply_topic(), "-m", '{"say":"hi"}', "-W", "5",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    envelope = json.loads(run.stdout)
    assert (envelope["Error"], envelope["Result"]) == ("", "you say : hi"), envelope


def test_mosquitto_rr_sees_the_replys_properties(server: Ports) -> None:
    run = mosquitto_cli(
        "mosquitto_rr", server.tcp_port,
        "-t", SAY, "-e", reply_topic(), "-m", '{"say":"hi"}', "-W", "5",
        "-D", "publish", "correlation-data", "rr-7", "-F", "%C|%F|%D|%p",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    content_type, format_indicator, correlation, payload = run.stdout.strip().split("|", 3)
    assert (content_type, format_indicator, correlation) == ("application/json", "1", "rr-7")
    assert json.loads(payload)["Result"] == "you say : hi"


def test_mosquitto_pub_sees_a_failed_call_in_its_puback(server: ServerProcess) -> None:
    run = mosquitto_cli(
        "mosquitto_pub", server.tcp_port, "-d", "-q", "1",
        "-t", NOPE, "-m", '{"say":"hi"}', "-D", "publish", "response-topic", reply_topic(),
    )  # fmt: skip
    assert "received PUBACK (Mid: 1, RC:131)" in run.stdout, run.stdout + run.stderr
