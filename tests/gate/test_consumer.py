"""The WebSocket consumer with Channels' WebsocketCommunicator: the gate's behaviour without a
server process."""

import asyncio
import json
from typing import Any

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from chat.services import room_group
from gate.consumers import MQTTConsumer
from gate.limits import ConnectionSlot
from gate.mqtt.codec import Decoder, encode
from gate.mqtt.packets import (
    ConnAck,
    Connect,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
)
from gate.mqtt.properties import Properties
from mqant import Module, groups, register_module


@register_module
class Slow(Module):
    module_type = "Slow"

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.register_go("HD_Wait", self.wait)
        self.register("HD_Echo", self.echo)

    async def wait(self, session, msg):
        await asyncio.sleep(float(msg["seconds"]))
        return "done"

    async def echo(self, session, msg):
        """What reached the handler: the message's type and the call's user properties."""
        kind = "bytes" if isinstance(msg, bytes) else type(msg).__name__
        return {"msg": kind, "user_properties": [list(p) for p in session.user_properties]}


class Client:
    """An MQTT client speaking through a WebsocketCommunicator."""

    def __init__(self, subprotocols: list[str] | None = None) -> None:
        self.ws = WebsocketCommunicator(
            MQTTConsumer.as_asgi(), "/mqtt", subprotocols=subprotocols or ["mqtt"]
        )
        self.decoder = Decoder()
        self.packets: list[Any] = []

    async def open(self, keepalive: int = 60, level: int = 4) -> None:
        connected, _ = await self.ws.connect()
        assert connected
        self.level = self.decoder.protocol_level = level
        await self.send(Connect("MQTT", level, "test-client", True, keepalive))
        connack = await self.receive()
        assert isinstance(connack, ConnAck)
        assert connack.return_code == 0

    async def send(self, packet: Any) -> None:
        await self.ws.send_to(bytes_data=encode(packet, protocol_level=getattr(self, "level", 4)))

    async def receive(self, timeout: float = 3) -> Any:
        while not self.packets:
            message = await self.ws.receive_output(timeout)
            assert message["type"] == "websocket.send", message
            self.decoder.receive_data(message["bytes"])
            self.packets.extend(iter(self.decoder.next_packet, None))
        return self.packets.pop(0)

    async def request(self, topic: str, body: Any, qos: int = 0) -> Any:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self.send(Publish(topic, payload, qos=qos, packet_id=7 if qos else None))
        reply = await self.receive()
        assert isinstance(reply, Publish)
        assert reply.topic == topic
        return json.loads(reply.payload)

    async def closed_with(self, timeout: float = 3) -> int:
        message = await self.ws.receive_output(timeout)
        assert message["type"] == "websocket.close", message
        return int(message.get("code", 1000))


@pytest.fixture
async def client(mqant_started):
    c = Client()
    await c.open()
    yield c
    await c.ws.disconnect()


@pytest.mark.parametrize("offered", [["mqttv3.1"], ["mqtt"], ["other", "mqtt"]])
async def test_echoes_the_mqtt_subprotocol_offered(mqant_started, offered):
    ws = WebsocketCommunicator(MQTTConsumer.as_asgi(), "/mqtt", subprotocols=offered)
    connected, subprotocol = await ws.connect()
    assert connected
    assert subprotocol == ("mqttv3.1" if "mqttv3.1" in offered else "mqtt")
    await ws.disconnect()


async def test_request_reply_envelope(client):
    reply = await client.request("HelloWorld/HD_Say/1", {"say": "hi"})
    assert reply["Error"] == ""
    assert reply["Result"] == "you say : hi"
    assert len(reply["Trace"]) == 32


async def test_qos1_is_answered_then_acknowledged_once_the_handler_ran(client):
    await client.send(Publish("HelloWorld/HD_Say/2", b'{"say": "q"}', qos=1, packet_id=9))
    reply = await client.receive()
    assert json.loads(reply.payload)["Result"] == "you say : q"
    assert await client.receive() == PubAck(9)


async def test_qos1_is_acknowledged_at_once_as_mqant_does_when_asked(settings, mqant_started):
    settings.MQANT = {**settings.MQANT, "ACK_AFTER_HANDLER": False}
    c = Client()
    await c.open()
    await c.send(Publish("HelloWorld/HD_Say/2", b'{"say": "q"}', qos=1, packet_id=9))
    assert await c.receive() == PubAck(9)
    assert json.loads((await c.receive()).payload)["Result"] == "you say : q"


async def test_subscribe_always_answered_and_ping(client):
    await client.send(Subscribe(3, (("a/b", 0), ("c/#", 2))))
    assert await client.receive() == SubAck(3, (0, 2))
    await client.send(PingReq())
    assert await client.receive() == PingResp()


async def test_text_frame_closes(client):
    await client.ws.send_to(text_data="hello")
    assert await client.closed_with() == 4003


async def test_garbage_closes(client):
    await client.ws.send_to(bytes_data=b"\xff\xff\xff\xff\xff")
    assert await client.closed_with() == 1000


async def test_publish_before_connect_closes(mqant_started):
    c = Client()
    assert (await c.ws.connect())[0]
    await c.send(Publish("HelloWorld/HD_Say/1", b"{}"))
    assert await c.closed_with() == 1000


async def test_connect_deadline(settings, mqant_started):
    settings.MQANT = {**settings.MQANT, "CONNECT_TIMEOUT": 0.2}
    c = Client()
    assert (await c.ws.connect())[0]
    assert await c.closed_with(timeout=2) == 1000


async def test_keepalive_closes_a_silent_client(mqant_started):
    c = Client()
    await c.open(keepalive=1)
    assert await c.closed_with(timeout=3) == 1000


async def test_work_queue_full(settings, mqant_started):
    settings.MQANT = {**settings.MQANT, "MAX_CALLS_IN_FLIGHT": 2}
    c = Client()
    await c.open()
    for n in range(2):
        await c.send(Publish(f"Slow/HD_Wait/{n}", b'{"seconds": 0.3}'))
    assert (await c.request("Slow/HD_Wait/2", {"seconds": 0}))["Error"] == (
        "the work queue is full!"
    )
    replies = sorted([(await c.receive()).topic for _ in range(2)])
    assert replies == ["Slow/HD_Wait/0", "Slow/HD_Wait/1"]
    # Once the calls are done, the connection takes calls again.
    assert (await c.request("Slow/HD_Wait/3", {"seconds": 0}))["Result"] == "done"


@pytest.mark.parametrize("shortcut", [True, False], ids=["in-process", "channel-layer"])
@pytest.mark.django_db(transaction=True)
async def test_login_binds_the_session_and_chat_sees_it(settings, mqant_started, shortcut):
    settings.MQANT = {**settings.MQANT, "RPC_LOCAL_SHORTCUT": shortcut}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    c = Client()
    await c.open()
    assert (await c.request("Chat/HD_JoinChat/1", {"roomName": "r"}))["Error"] == "Not Logined"
    login = await c.request("Login/HD_Login/2", {"userName": "ann", "passWord": "pw-123456-k3y9"})
    assert login["Result"] == "login success ann"
    joined = await c.request("Chat/HD_JoinChat/3", {"roomName": "r"})
    assert joined["Result"]["users"] == ["ann"]
    await c.send(Publish("Chat/HD_Say/4", b'{"roomName": "r", "content": "hey"}'))
    got = {}
    for _ in range(2):
        packet = await c.receive()
        got[packet.topic] = json.loads(packet.payload)
    assert got["Chat/OnChat"] == {"roomName": "r", "from": "ann", "target": "*", "msg": "hey"}
    assert got["Chat/HD_Say/4"]["Result"] == {"say": "say success"}
    await c.ws.disconnect()


async def test_packets_pipelined_behind_connect_in_one_frame(mqant_started):
    c = Client(["mqttv3.1"])
    assert (await c.ws.connect())[0]
    frame = encode(Connect("MQIsdp", 3, "111", True, 60)) + encode(
        Publish("HelloWorld/HD_Say/1", b'{"say": "pipelined"}', qos=1, packet_id=1)
    )
    await c.ws.send_to(bytes_data=frame)
    assert await c.receive() == ConnAck(0)
    assert json.loads((await c.receive()).payload)["Result"] == "you say : pipelined"
    assert await c.receive() == PubAck(1)


async def test_broken_packet_behind_connect_closes(mqant_started):
    c = Client()
    assert (await c.ws.connect())[0]
    await c.ws.send_to(bytes_data=encode(Connect("MQTT", 4, "x", True, 60)) + b"\x00\x00")
    assert await c.receive() == ConnAck(0)  # the CONNECT was accepted before what follows
    assert await c.closed_with() == 1000


async def test_packet_split_across_frames(client):
    data = encode(Publish("HelloWorld/HD_Say/5", b'{"say": "split"}'))
    for i in range(len(data)):
        await client.ws.send_to(bytes_data=data[i : i + 1])
    assert json.loads((await client.receive()).payload)["Result"] == "you say : split"


async def test_unsupported_protocol_gets_connack_1(mqant_started):
    c = Client()
    assert (await c.ws.connect())[0]
    await c.send(Connect("MQTT", 6, "v6", True, 60))
    assert await c.receive() == ConnAck(1)
    assert await c.closed_with() == 1000


@pytest.mark.parametrize("ordered", [False, True])
async def test_ordered_calls_option(settings, mqant_started, ordered):
    settings.MQANT = {**settings.MQANT, "ORDERED_CALLS": ordered}
    c = Client()
    await c.open()
    await c.send(Publish("Slow/HD_Wait/slow", b'{"seconds": 0.3}'))
    await c.send(Publish("Slow/HD_Wait/fast", b'{"seconds": 0}'))
    first, second = (await c.receive()).topic, (await c.receive()).topic
    expected = ["Slow/HD_Wait/slow", "Slow/HD_Wait/fast"]
    assert [first, second] == (expected if ordered else expected[::-1])


async def test_ordered_calls_still_bound_calls_in_flight(settings, mqant_started):
    settings.MQANT = {**settings.MQANT, "ORDERED_CALLS": True, "MAX_CALLS_IN_FLIGHT": 2}
    c = Client()
    await c.open()
    for n in range(2):
        await c.send(Publish(f"Slow/HD_Wait/{n}", b'{"seconds": 0.2}'))
    assert (await c.request("Slow/HD_Wait/2", {"seconds": 0}))["Error"] == (
        "the work queue is full!"
    )


async def test_message_rate_refuses_then_closes(settings, mqant_started):
    settings.MQANT = {**settings.MQANT, "MESSAGE_RATE": 1, "MESSAGE_BURST": 3}
    c = Client()
    await c.open()
    for n in range(3):
        assert (await c.request(f"HelloWorld/HD_Say/{n}", {"say": n}))["Error"] == ""
    # The bucket is empty: refused, with a reply, until a burst's worth of refusals.
    for n in range(3, 6):
        reply = await c.request(f"HelloWorld/HD_Say/{n}", {"say": n})
        assert reply["Error"] == "the message rate is exceeded"
    await c.send(Publish("HelloWorld/HD_Say/6", b'{"say": 6}'))
    assert (await c.receive()).topic == "HelloWorld/HD_Say/6"  # the last refusal
    assert await c.closed_with() == 1000


async def test_max_connections(settings, mqant_started):
    # Communicators of earlier tests that the server closed never report their disconnect.
    settings.MQANT = {**settings.MQANT, "MAX_CONNECTIONS": ConnectionSlot.in_use + 1}
    first = Client()
    await first.open()
    second = WebsocketCommunicator(MQTTConsumer.as_asgi(), "/mqtt", subprotocols=["mqtt"])
    # Accepted, then closed with 1013 (try again later): a close before the accept would be
    # an HTTP 403 (forbidden).
    assert await second.connect() == (True, "mqtt")
    assert await second.receive_output() == {"type": "websocket.close", "code": 1013}
    await first.ws.disconnect()
    third = Client()
    await third.open()
    await third.ws.disconnect()


async def test_json_bomb_is_a_json_error(client):
    bomb = b'{"a":' + b"[" * 30000 + b"]" * 30000 + b"}"
    assert (await client.request("HelloWorld/HD_Say/1", bomb))["Error"] == (
        "The JSON format is incorrect"
    )
    digits = b'{"say":' + b"9" * 60000 + b"}"
    assert (await client.request("HelloWorld/HD_Say/2", digits))["Error"] == (
        "The JSON format is incorrect"
    )


@pytest.mark.django_db(transaction=True)
async def test_a_group_costs_one_layer_member_per_gate_process(settings, mqant_started):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    clients = [Client() for _ in range(3)]
    for n, c in enumerate(clients):
        await c.open()
        login = {"userName": f"member{n}", "passWord": "pw-123456-k3y9"}
        assert (await c.request("Login/HD_Login/1", login))["Error"] == ""
        assert (await c.request("Chat/HD_JoinChat/2", {"roomName": "fan"}))["Error"] == ""
    layer = get_channel_layer()
    members = layer.groups[groups.group_name(room_group("fan"))]
    assert len(members) == 1  # this process's fan-out channel, not three connections
    await clients[0].send(Publish("Chat/HD_Say/3", b'{"roomName": "fan", "content": "all"}'))
    for c in clients:
        topics = set()
        while "Chat/OnChat" not in topics:
            topics.add((await c.receive()).topic)
    # A member that leaves stops receiving; the group stays while members remain.
    await clients[2].ws.disconnect()
    await asyncio.sleep(0.1)
    assert len(layer.groups[groups.group_name(room_group("fan"))]) == 1
    for c in clients[:2]:
        await c.ws.disconnect()
    await asyncio.sleep(0.1)
    assert groups.group_name(room_group("fan")) not in layer.groups


async def test_mqtt5_user_properties_reach_the_handler_and_the_reply_its_response_topic(
    mqant_started,
):
    c = Client()
    await c.open(level=5)
    asked = Properties(
        response_topic="me/replies",
        correlation_data=b"\x01id",
        user_properties=(("a", "1"), ("b", "two"), ("a", "3")),
    )
    await c.send(Publish("Slow/HD_Echo", b'{"x": 1}', qos=1, packet_id=3, properties=asked))
    reply = await c.receive()
    assert isinstance(reply, Publish)
    assert reply.topic == "me/replies"
    assert reply.properties.correlation_data == b"\x01id"
    assert reply.properties.content_type == "application/json"
    assert reply.properties.payload_format_indicator == 1
    result = json.loads(reply.payload)["Result"]
    assert result == {"msg": "dict", "user_properties": [["a", "1"], ["b", "two"], ["a", "3"]]}
    assert await c.receive() == PubAck(3)
    await c.ws.disconnect()


@pytest.mark.parametrize(
    ("content_type", "payload", "kind"),
    [
        ("application/octet-stream", b'{"x": 1}', "bytes"),  # mqant would parse it
        ("application/json", b' {"x": 1} ', "dict"),  # mqant would not
        (None, b'{"x": 1}', "dict"),
    ],
)
async def test_mqtt5_content_type_says_how_the_payload_is_read(
    mqant_started, content_type, payload, kind
):
    c = Client()
    await c.open(level=5)
    asked = Properties(content_type=content_type, response_topic="r")
    await c.send(Publish("Slow/HD_Echo", payload, properties=asked))
    reply = await c.receive()
    assert json.loads(reply.payload)["Result"]["msg"] == kind
    await c.ws.disconnect()
