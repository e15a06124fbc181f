"""The rules of persistent sessions that need no connection: what a CONNECT asks for (clean
session, Session Expiry Interval, the server's cap), and which pushes go at QoS 1."""

import pytest

from gate import persist
from gate.mqtt import ServerProtocol, encode
from gate.mqtt.packets import Connect
from gate.mqtt.properties import Properties


def connected(connect: Connect) -> ServerProtocol:
    protocol = ServerProtocol()
    protocol.receive_data(encode(connect, protocol_level=connect.protocol_level))
    protocol.accept()
    return protocol


@pytest.mark.parametrize(
    ("connect", "expiry", "clean"),
    [
        (Connect("MQTT", 4, "c", True, 60), 0.0, True),  # mqant's clients
        (Connect("MQIsdp", 3, "c", True, 60), 0.0, True),
        (Connect("MQTT", 4, "c", False, 60), 3600.0, False),  # 3.1.1: the cap
        (Connect("MQTT", 5, "c", True, 60), 0.0, True),
        (Connect("MQTT", 5, "c", False, 60), 0.0, False),  # resume, end with the connection
        (Connect("MQTT", 5, "c", True, 60, properties=Properties(session_expiry_interval=30)),
         30.0, True),
        (Connect("MQTT", 5, "c", False, 60, properties=Properties(session_expiry_interval=9999)),
         3600.0, False),  # capped
        (Connect("MQTT", 5, "c", False, 60,
                 properties=Properties(session_expiry_interval=0xFFFFFFFF)), 3600.0, False),
    ],
)  # fmt: skip
def test_what_a_connect_asks_within_the_cap(
    settings, connect: Connect, expiry: float, clean: bool
) -> None:
    settings.MQANT = {**getattr(settings, "MQANT", {}), "SESSION_EXPIRY_MAX": 3600}
    assert persist.wanted(connected(connect)) == persist.Wanted(expiry, clean)


def test_no_session_outlives_its_connection_with_a_cap_of_0(settings) -> None:
    settings.MQANT = {**getattr(settings, "MQANT", {}), "SESSION_EXPIRY_MAX": 0}
    asked = Properties(session_expiry_interval=60)
    assert persist.wanted(connected(Connect("MQTT", 5, "c", True, 60, properties=asked))) == (
        persist.Wanted(0.0, True)
    )
    assert persist.wanted(connected(Connect("MQTT", 4, "c", False, 60))).expiry == 0.0


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("Chat/OnChat", "Chat/OnChat", True),
        ("Chat/OnChat", "Chat/OnJoin", False),
        ("Chat/+", "Chat/OnChat", True),
        ("Chat/+", "Chat/OnChat/x", False),
        ("Chat/#", "Chat/OnChat/x", True),
        ("Chat/#", "Chat", True),  # "#" also matches the parent level
        ("#", "Hitball/OnMove", True),
        ("+/OnMove", "Hitball/OnMove", True),
        ("+", "Hitball/OnMove", False),
        ("Chat/OnChat/extra", "Chat/OnChat", False),
    ],
)
def test_topic_filters_match_as_mqtt_says(topic_filter: str, topic: str, matches: bool) -> None:
    assert persist.topic_matches(topic_filter, topic) is matches


def test_reliable_pushes_are_a_setting(settings) -> None:
    settings.MQANT = {**getattr(settings, "MQANT", {}), "RELIABLE_PUSHES": ["Game/#"]}
    assert persist.reliable("Game/OnScore")
    assert not persist.reliable("Chat/OnChat")
