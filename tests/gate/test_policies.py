"""The gate's CONNECT_AUTH and WS_PATHS settings: checked at start, and applied to the
WebSocket routes and to CONNECT's credentials."""

import pytest
from channels.testing import WebsocketCommunicator
from django.core.exceptions import ImproperlyConfigured

from gate import conf, routing
from gate.mqtt.codec import Decoder, encode
from gate.mqtt.packets import ConnAck, Connect


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONNECT_AUTH", "sometimes"),
        ("CONNECT_AUTH", None),
        ("WS_PATHS", "/mqtt"),  # a string, not a list of paths
        ("WS_PATHS", ["mqtt"]),
        ("WS_PATHS", [None]),
    ],
)
def test_a_setting_no_connection_could_use_stops_the_start(settings, name, value):
    settings.MQANT = {**settings.MQANT, name: value}
    with pytest.raises(ImproperlyConfigured, match=name):
        conf.check()


@pytest.mark.parametrize("policy", ["ignore", "optional", "required"])
def test_the_policies_pass_the_check(settings, policy):
    settings.MQANT = {**settings.MQANT, "CONNECT_AUTH": policy, "WS_PATHS": ["/mqtt", "/a/b"]}
    conf.check()


def test_the_default_is_mqants_way():
    assert conf.DEFAULTS["CONNECT_AUTH"] == "ignore"
    assert conf.DEFAULTS["WS_PATHS"] is None


async def handshake(path: str) -> bool:
    ws = WebsocketCommunicator(routing.websocket_application(), path, subprotocols=["mqtt"])
    connected, _ = await ws.connect()
    await ws.disconnect()
    return bool(connected)


@pytest.mark.parametrize("path", ["/", "/mqant", "/mqtt", "/deep/path"])
async def test_every_path_carries_mqtt_by_default(mqant_started, path):
    assert await handshake(path)


async def test_only_the_listed_paths_carry_mqtt(settings, mqant_started):
    settings.MQANT = {**settings.MQANT, "WS_PATHS": ["/mqtt", "/mqant"]}
    assert await handshake("/mqtt")
    assert await handshake("/mqant")
    assert not await handshake("/")
    assert not await handshake("/mqtt/more")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("policy", "code"), [("ignore", 0), ("optional", 4), ("required", 4)])
async def test_wrong_credentials_are_read_only_when_the_policy_says(
    settings, mqant_started, policy, code
):
    settings.MQANT = {**settings.MQANT, "CONNECT_AUTH": policy}
    ws = WebsocketCommunicator(routing.websocket_application(), "/mqtt", subprotocols=["mqtt"])
    connected, _ = await ws.connect()
    assert connected
    connect = Connect("MQIsdp", 3, "111", True, 30, username="admin", password=b"password")
    await ws.send_to(bytes_data=encode(connect))
    decoder = Decoder()
    decoder.receive_data(await ws.receive_from(timeout=10))
    assert decoder.next_packet() == ConnAck(code)
    await ws.disconnect()
