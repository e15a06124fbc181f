"""The 5.0 codec against a real MQTT 5.0 broker (Mosquitto, 127.0.0.1:1883 or
$TEST_MQTT_BROKER): what it encodes the broker accepts, and what the broker sends it decodes,
properties included. Blocking sockets with timeouts: the codec has no I/O of its own."""

import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from gate.mqtt import (
    ConnAck,
    Connect,
    Decoder,
    Disconnect,
    Packet,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    encode,
)
from gate.mqtt.properties import Properties
from tests.conftest import require_service

BROKER = os.environ.get("TEST_MQTT_BROKER", "127.0.0.1:1883")


class Client:
    """One level 5 connection: packets out through encode, in through a Decoder."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = Decoder(max_packet_size=1 << 20, protocol_level=5)
        self.received: list[Packet] = []

    def send(self, *packets: Packet) -> None:
        self.sock.sendall(b"".join(encode(packet, protocol_level=5) for packet in packets))

    def expect(self, count: int, seconds: float = 5.0) -> list[Packet]:
        """The next ``count`` packets, failing after ``seconds``."""
        deadline = time.monotonic() + seconds
        while len(self.received) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"Expected {count} packets, got {self.received}")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                pytest.fail(f"Expected {count} packets, got the end after {self.received}")
            self.decoder.receive_data(data)
            self.received.extend(self.decoder)
        packets, self.received = self.received[:count], self.received[count:]
        return packets


@pytest.fixture
def client() -> Iterator[Client]:
    host, port = BROKER.rsplit(":", 1)
    try:
        sock = socket.create_connection((host, int(port)), timeout=2)
    except OSError as err:
        require_service("an MQTT 5.0 broker", f"{BROKER}: {err}")
    with sock:
        yield Client(sock)


def connect(client: Client, **properties: object) -> ConnAck:
    client_id = "codec5-" + secrets.token_hex(4)
    props = Properties(**properties)  # type: ignore[arg-type]
    client.send(Connect("MQTT", 5, client_id, True, 30, properties=props))
    (connack,) = client.expect(1)
    assert isinstance(connack, ConnAck)
    assert connack.return_code == 0
    return connack


def test_the_broker_accepts_a_5_0_session_and_its_properties_come_back(client):
    connack = connect(
        client, receive_maximum=10, topic_alias_maximum=0, user_properties=(("who", "codec"),)
    )
    assert connack.properties.topic_alias_maximum  # the broker's aliases, as Mosquitto grants
    topic = "codec5/" + secrets.token_hex(4)
    options = 0x09  # QoS 1, Retain As Published
    sub_props = Properties(subscription_identifiers=(7,))
    client.send(Subscribe(1, ((topic, options),), sub_props))
    assert client.expect(1) == [SubAck(1, (1,))]

    message = Properties(
        payload_format_indicator=1,
        message_expiry_interval=60,
        content_type="text/plain",
        response_topic=topic + "/reply",
        correlation_data=b"\x00\x01",
        user_properties=(("a", "1"), ("a", "2")),
    )
    aliased = Properties(topic_alias=1, user_properties=(("n", "2"),))
    client.send(
        Publish(topic, b"one", 1, packet_id=2, properties=replace(message, topic_alias=1)),
        Publish("", b"two", 1, packet_id=3, properties=aliased),  # the alias stands for the topic
    )
    packets = client.expect(4)
    acks = [p for p in packets if isinstance(p, PubAck)]
    deliveries = [p for p in packets if isinstance(p, Publish)]
    assert sorted(ack.packet_id for ack in acks) == [2, 3]
    assert all(ack.reason_code == 0 for ack in acks)
    assert [(p.topic, p.payload) for p in deliveries] == [(topic, b"one"), (topic, b"two")]
    first, second = deliveries
    assert first.properties.subscription_identifiers == (7,)
    assert first.properties.content_type == "text/plain"
    assert first.properties.user_properties == (("a", "1"), ("a", "2"))
    assert first.properties.correlation_data == b"\x00\x01"
    assert first.properties.response_topic == topic + "/reply"
    assert first.properties.payload_format_indicator == 1
    assert 0 < (first.properties.message_expiry_interval or 0) <= 60
    assert second.properties.user_properties == (("n", "2"),)
    assert second.properties.topic_alias is None  # we allowed the broker no aliases
    for delivery in deliveries:
        client.send(PubAck(delivery.packet_id or 0))

    client.send(Unsubscribe(4, (topic, topic + "/none")))
    assert client.expect(1) == [UnsubAck(4, (0x00, 0x11))]  # success, no subscription existed
    client.send(Disconnect(0, Properties(reason_string="done")))
    client.sock.settimeout(5)
    assert client.sock.recv(1) == b""  # the broker closes after our DISCONNECT


def test_the_broker_refuses_topic_alias_0_with_a_disconnect_we_decode(client):
    connect(client)
    # encode refuses topic alias 0, so the bytes are written by hand: "t", QoS 0, property
    # length 3, Topic Alias (0x23) 0.
    client.sock.sendall(b"\x30\x07\x00\x01t\x03\x23\x00\x00")
    (disconnect,) = client.expect(1)
    assert isinstance(disconnect, Disconnect)
    # Mosquitto says Malformed Packet; the specification's Topic Alias invalid (which our
    # decoder gives) or Protocol Error would do too.
    assert disconnect.reason_code in (0x81, 0x82, 0x94)
