"""MQTT.js (the version pinned in tests/e2e/js/) with MQTT 5.0 in headless Chromium, against a
real server at ws://127.0.0.1:<port>/mqtt: a call with a Response Topic and Correlation Data
gets its reply with the same data, a failed call shows in its PUBACK (reason code and reason
string, as MQTT.js hands them to the publish callback), and a stopping server says so in a
DISCONNECT (MQTT.js's "disconnect" event).

The page's code is proven against Mosquitto in test_mqtt5_harness.py."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.mqtt5 import NOPE, NOT_FOUND, SAY, reply_topic
from tests.e2e.mqttjs import MqttJsPage, chromium, mqtt_bundle
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def bundle() -> str:
    return mqtt_bundle()


@pytest.fixture
def page(browser: Any, bundle: str, server: ServerProcess) -> Iterator[MqttJsPage]:
    """A page of the server's origin with MQTT.js, connected with MQTT 5.0."""
    page = MqttJsPage(browser, bundle, server.port)
    connack = page.connect(f"ws://127.0.0.1:{server.port}/mqtt")
    assert connack["reasonCode"] == 0, connack
    yield page
    page.close()
    assert page.errors == []


def test_mqttjs_gets_the_reply_with_its_correlation_data(page: MqttJsPage) -> None:
    outcome, reply = page.request(
        SAY, {"say": "hi"}, response_topic=reply_topic(), correlation="00ff0a", subscribe=False
    )
    assert outcome["error"] is None, outcome
    assert outcome["puback"]["reasonCode"] == 0, outcome
    envelope = json.loads(reply["payload"])
    assert (envelope["Error"], envelope["Result"]) == ("", "you say : hi"), envelope
    properties = reply["properties"]
    assert properties["correlationData"] == "00ff0a", properties
    assert properties["contentType"] == "application/json", properties
    assert properties["payloadFormatIndicator"] is True, properties  # MQTT.js's reading of 1


def test_mqttjs_sees_a_failed_call_in_its_puback(page: MqttJsPage) -> None:
    outcome, reply = page.request(
        NOPE, {"say": "hi"}, response_topic=reply_topic(), correlation="0b0e", subscribe=False
    )
    assert outcome["error"] == "Publish error: Implementation specific error", outcome
    assert outcome["puback"]["reasonCode"] == 0x83, outcome
    assert outcome["puback"]["properties"].get("reasonString") == NOT_FOUND, outcome
    assert json.loads(reply["payload"])["Error"] == NOT_FOUND


def test_mqttjs_hears_why_the_server_closes_when_it_stops(
    browser: Any, bundle: str, tmp_path: Path
) -> None:
    """SIGTERM to a server of its own: MQTT.js emits "disconnect" with 0x8B, then "close"."""
    server = ServerProcess(tmp_path).start()
    page = MqttJsPage(browser, bundle, server.port)
    try:
        assert page.connect(f"ws://127.0.0.1:{server.port}/mqtt")["reasonCode"] == 0
        server.stop()
        page.wait_for("mqttTest.closes > 0")
        disconnects = page.state("disconnects")
        assert [d["reasonCode"] for d in disconnects] == [0x8B], disconnects
        assert page.errors == []
    finally:
        page.close()
        server.stop()
    assert "Traceback" not in server.output(), server.output()
