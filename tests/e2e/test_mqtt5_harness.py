"""The MQTT 5.0 interop tests' clients (paho through tests/e2e/mqtt5.py, mosquitto's tools,
MQTT.js through tests/e2e/mqttjs.py), proven on Mosquitto, a real MQTT 5.0 broker, with a
client of it answering calls as our server does (tests/e2e/mosquitto.py): when
test_mqtt5_interop.py or test_mqtt5_browser.py fails, the server is to blame, not the client's
code. Some of their tests run here as they are; the others are mirrored with what Mosquitto
does instead (a broker forwards only to subscribers; its PUBACK says 0x10 when none; it sends
DISCONNECT 0x9A for a retained PUBLISH when it keeps none; it stops without a DISCONNECT)."""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_mqtt5_interop as interop
from tests.e2e.mosquitto import Mosquitto, Responder
from tests.e2e.mqtt5 import (
    NOPE,
    NOT_FOUND,
    SAY,
    TRANSPORTS,
    Connect,
    V5Client,
    assert_reply,
    mosquitto_cli,
    reply_topic,
    v5_client,
    v5_clients,
)
from tests.e2e.mqttjs import MqttJsPage, chromium, mqtt_bundle

pytestmark = pytest.mark.e2e

NO_SUBSCRIBERS = 0x10
RETAIN_NOT_SUPPORTED = 0x9A


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A Mosquitto of the module's own, with the responder on it."""
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    responder = Responder(mosquitto.tcp_port)
    yield mosquitto
    responder.close()
    mosquitto.stop()


@pytest.fixture(params=TRANSPORTS)
def connect(request: pytest.FixtureRequest, broker: Mosquitto) -> Iterator[Connect]:
    with v5_clients(broker, request.param) as open_client:
        yield open_client


# -- paho ---------------------------------------------------------------------------------


def test_connack_properties_are_read(connect: Connect) -> None:
    """Mosquitto keeps no retained message (our server neither); it does not say whether it
    has shared subscriptions: the server test's check of that would fail here."""
    connack = connect().connack
    assert connack.code == 0
    offered = connack.properties
    assert offered["RetainAvailable"] == 0, offered
    assert offered["ReceiveMaximum"] > 0, offered
    assert "TopicAliasMaximum" in offered, offered
    assert "SharedSubscriptionAvailable" not in offered, offered


def test_replies_are_told_apart_by_their_correlation_data(connect: Connect) -> None:
    """interop's first call test, with the SUBSCRIBE a broker needs."""
    client, topic = connect(), reply_topic()
    client.subscribe(topic)
    hi, ho = b"\x00call-hi\xff", b"\x01call-ho"
    acked = client.publish(SAY, {"say": "hi"}, response_topic=topic, correlation=hi)
    client.publish(SAY, {"say": "ho"}, qos=0, response_topic=topic, correlation=ho)
    assert client.ack(acked).code == 0
    assert_reply(client.next_message(topic, ho), result="you say : ho")
    assert_reply(client.next_message(topic, hi), result="you say : hi")
    assert client.nothing_more() == []


def test_a_subscriber_of_its_response_topic_gets_the_reply_once(connect: Connect) -> None:
    interop.test_a_subscriber_of_its_response_topic_gets_the_reply_once(connect)


def test_a_msgid_topic_is_answered_there(connect: Connect) -> None:
    client = connect()
    client.subscribe(f"{SAY}/7", no_local=True)  # the reply, not its own call echoed
    client.publish(f"{SAY}/7", {"say": "hi"})
    assert_reply(client.next_message(f"{SAY}/7"), result="you say : hi")


def test_a_pubacks_reason_code_and_an_error_reply_are_read(connect: Connect) -> None:
    client, topic = connect(), reply_topic()
    puback = client.ack(client.publish("nobody/listens", {"say": "hi"}))
    assert (puback.code, puback.reason_string) == (NO_SUBSCRIBERS, None), puback
    client.subscribe(topic)
    client.publish(NOPE, {"say": "hi"}, response_topic=topic, correlation=b"nope")
    assert_reply(client.next_message(topic, b"nope"), error=NOT_FOUND)


def test_a_disconnect_with_a_reason_code_is_read(connect: Connect) -> None:
    """publish_until_disconnected gets the server's DISCONNECT: a burst of PUBLISHes, sent
    without waiting for their acks, lost it over TCP (the broker's close reset the connection)."""
    sent, end = connect().publish_until_disconnected(SAY, limit=5, retain=True)
    assert (sent, end.from_server, end.code) == (1, True, RETAIN_NOT_SUPPORTED), end


def test_enhanced_authentication_is_refused_with_connack_0x8c(connect: Connect) -> None:
    interop.test_enhanced_authentication_is_refused_with_connack_0x8c(connect)


def test_a_close_without_disconnect_is_told_apart(tmp_path: Path) -> None:
    """Mosquitto 2.0 stops without a DISCONNECT: a server that did the same would fail
    test_a_stopping_server_disconnects_its_clients_with_0x8b."""
    mosquitto = Mosquitto(tmp_path).start()
    clients: list[V5Client] = []
    try:
        clients = [v5_client(mosquitto, transport) for transport in TRANSPORTS]
        mosquitto.stop()
        for client in clients:
            assert client.disconnected().from_server is False
    finally:
        for client in clients:
            client.close()
        mosquitto.stop()


# -- mosquitto's tools ----------------------------------------------------------------------


def test_mosquitto_rr_prints_the_reply(broker: Mosquitto) -> None:
    interop.test_mosquitto_rr_prints_the_reply(broker)


def test_mosquitto_rr_sees_the_replys_properties(broker: Mosquitto) -> None:
    interop.test_mosquitto_rr_sees_the_replys_properties(broker)


def test_mosquitto_pub_reads_its_pubacks_reason_code(broker: Mosquitto) -> None:
    run = mosquitto_cli(
        "mosquitto_pub", broker.tcp_port, "-d", "-q", "1",
        "-t", "nobody/listens", "-m", '{"say":"hi"}', "-D", "publish", "response-topic", "r/1",
    )  # fmt: skip
    assert "received PUBACK (Mid: 1, RC:16)" in run.stdout, run.stdout + run.stderr


def test_mosquitto_pub_sets_the_properties_of_a_call(broker: Mosquitto) -> None:
    """``mosquitto_pub -D publish response-topic R -D publish correlation-data C``, as the
    responder sees it: its reply to R, read by mosquitto_sub, carries C."""
    topic = reply_topic()
    sub = mosquitto_sub_once(broker.tcp_port, topic, "%C|%D|%p")
    try:
        pub = mosquitto_cli(
            "mosquitto_pub", broker.tcp_port, "-t", SAY, "-m", '{"say":"hi"}',
            "-D", "publish", "response-topic", topic, "-D", "publish", "correlation-data", "c-9",
        )  # fmt: skip
        assert pub.returncode == 0, pub.stdout + pub.stderr
        out, _ = sub.communicate(timeout=15)
    finally:
        sub.kill()
        sub.wait()
    lines = [line for line in out.splitlines() if not line.startswith(("Client ", "Subscribed"))]
    assert len(lines) == 1, out
    content_type, correlation, payload = lines[0].split("|", 2)
    assert (content_type, correlation) == ("application/json", "c-9"), out
    assert json.loads(payload)["Result"] == "you say : hi"


def mosquitto_sub_once(port: int, topic: str, output: str) -> "subprocess.Popen[str]":
    """mosquitto_sub (MQTT 5.0, debug lines on) on ``topic`` for one message, printed with
    the format ``output``, 5 s at most; returns once its SUBACK came (its output line-buffered
    by stdbuf: into a pipe, it would come at its exit)."""
    sub = subprocess.Popen(
        ["stdbuf", "-oL", "mosquitto_sub", "-V", "5", "-h", "127.0.0.1", "-p", str(port), "-d",
         "-t", topic, "-C", "1", "-W", "5", "-F", output],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert sub.stdout is not None
    for line in sub.stdout:  # ends within -W's 5 s
        if "received SUBACK" in line:
            return sub
    sub.wait()
    raise AssertionError(f"Expected mosquitto_sub's SUBACK, got exit {sub.returncode}")


# -- MQTT.js in Chromium --------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def bundle() -> str:
    return mqtt_bundle()


@pytest.fixture
def page(browser: Any, bundle: str, broker: Mosquitto) -> Iterator[MqttJsPage]:
    page = MqttJsPage(browser, bundle, broker.port)
    assert page.connect(f"ws://127.0.0.1:{broker.port}/mqtt")["reasonCode"] == 0
    yield page
    page.close()
    assert page.errors == []


def test_mqttjs_gets_the_reply_with_its_correlation_data(page: MqttJsPage) -> None:
    outcome, reply = page.request(
        SAY, {"say": "hi"}, response_topic=reply_topic(), correlation="00ff0a", subscribe=True
    )
    assert (outcome["error"], outcome["puback"]["reasonCode"]) == (None, 0), outcome
    assert json.loads(reply["payload"])["Result"] == "you say : hi"
    properties = reply["properties"]
    assert properties["correlationData"] == "00ff0a", properties
    assert properties["contentType"] == "application/json", properties
    assert properties["payloadFormatIndicator"] is True, properties


def test_mqttjs_pubacks_reason_code_and_an_error_reply_are_read(page: MqttJsPage) -> None:
    outcome = page.call("publish", "nobody/listens", "{}", {"qos": 1})
    assert outcome["error"] is None, outcome  # MQTT.js takes 0x10 for a success
    assert outcome["puback"]["reasonCode"] == NO_SUBSCRIBERS, outcome
    _, reply = page.request(
        NOPE, {"say": "hi"}, response_topic=reply_topic(), correlation="0b0e", subscribe=True
    )
    assert json.loads(reply["payload"])["Error"] == NOT_FOUND


def test_mqttjs_reads_the_servers_disconnect(page: MqttJsPage) -> None:
    outcome = page.call("publish", SAY, "{}", {"qos": 1, "retain": True})
    assert outcome == {"error": "closed", "puback": None}, outcome
    disconnects = page.state("disconnects")
    assert [d["reasonCode"] for d in disconnects] == [RETAIN_NOT_SUPPORTED], disconnects


def test_mqttjs_tells_a_close_without_disconnect_apart(
    browser: Any, bundle: str, tmp_path: Path
) -> None:
    """A server that stopped as Mosquitto 2.0 does would fail the browser's shutdown test."""
    mosquitto = Mosquitto(tmp_path).start()
    page = MqttJsPage(browser, bundle, mosquitto.port)
    try:
        assert page.connect(f"ws://127.0.0.1:{mosquitto.port}/mqtt")["reasonCode"] == 0
        mosquitto.stop()
        page.wait_for("mqttTest.closes > 0")
        assert page.state("disconnects") == []
    finally:
        page.close()
        mosquitto.stop()
