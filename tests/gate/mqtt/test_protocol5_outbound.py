"""ServerProtocol's own PUBLISHes to a 5.0 client (and to a 3.1.1 one): QoS 1 in flight
until the PUBACK, the send quota, resends, topic aliases, and the client's maximum packet size."""

import pytest

from gate.mqtt import (
    Disconnect,
    LocalProtocolError,
    Properties,
    PubAck,
    Publish,
    PublishAcknowledged,
    PublishTooLarge,
    State,
    Subscribe,
    Subscribed,
    encode,
    reasons,
)
from tests.gate.mqtt.test_protocol5 import (
    alias,
    connect5,
    connected,
    connected_4,
    replies,
    send,
)

# QoS 1 PUBLISHes from the server


def test_qos_1_publishes_in_flight_until_their_puback():
    server = connected(connect5(receive_maximum=3))
    assert server.send_quota == 3
    assert server.send_publish("t/1", b"a", qos=1) == 1
    assert server.send_publish("t/2", b"b", qos=1, properties=Properties(content_type="x")) == 2
    assert server.send_quota == 1
    assert server.in_flight() == [
        (1, "t/1", b"a", 1, Properties()),
        (2, "t/2", b"b", 1, Properties(content_type="x")),
    ]
    assert replies(server) == [
        Publish("t/1", b"a", qos=1, packet_id=1),
        Publish("t/2", b"b", qos=1, packet_id=2, properties=Properties(content_type="x")),
    ]
    assert send(server, PubAck(2, reasons.NO_MATCHING_SUBSCRIBERS)) == [
        PublishAcknowledged(2, reasons.NO_MATCHING_SUBSCRIBERS)
    ]
    assert server.in_flight() == [(1, "t/1", b"a", 1, Properties())]
    assert server.send_quota == 2


def test_the_send_quota_is_the_clients_receive_maximum():
    server = connected(connect5(receive_maximum=1))
    server.send_publish("t", b"", qos=1)
    with pytest.raises(LocalProtocolError, match="Expected a send quota left, got 1 QoS 1"):
        server.send_publish("t", b"", qos=1)
    server.send_publish("t", b"")  # QoS 0 takes no quota
    send(server, PubAck(1))
    assert server.send_publish("t", b"", qos=1) == 2


def test_an_unknown_puback_is_counted_and_ignored():
    server = connected()
    assert send(server, PubAck(7)) == []
    assert server.unknown_acks == 1
    assert server.state is State.CONNECTED


def test_pubacks_of_the_servers_publishes_are_not_the_clients_control_packets():
    """A client that acknowledges many QoS 1 pushes sends as many PUBACKs as the server sent
    PUBLISHes: its control-packet rate must not count them (a chat room at QoS 1 would get
    its members closed); a PUBACK for nothing in flight counts."""
    server = connected_4()
    before = server.control_packets_received
    for _ in range(50):
        packet_id = server.send_publish("t", b"x", qos=1)
        assert packet_id is not None
        server.receive_data(encode(PubAck(packet_id)))
    assert server.control_packets_received == before
    server.receive_data(encode(PubAck(999)))
    assert server.control_packets_received == before + 1


def test_packet_ids_skip_those_in_flight():
    server = connected()
    server.resend(1, "t", b"", 1)
    server.resend(2, "t", b"", 1)
    assert server.send_publish("t", b"", qos=1) == 3
    send(server, PubAck(1))
    assert server.send_publish("t", b"", qos=1) == 4  # on from the last, not the lowest free


def test_qos_1_at_level_4():
    server = connected_4()
    assert server.send_publish("t", b"x", qos=1) == 1
    assert server.data_to_send() == encode(Publish("t", b"x", qos=1, packet_id=1))
    assert server.send_quota == 65534
    server.receive_data(encode(PubAck(1)))
    assert server.in_flight() == []
    with pytest.raises(LocalProtocolError, match="Expected no properties in PUBLISH at level 4"):
        server.send_publish("t", b"x", properties=Properties(content_type="x"))


def test_resend_sets_dup_and_counts_in_flight():
    server = connected(connect5(topic_alias_maximum=1))
    server.resend(42, "t/1", b"a", 1, Properties(user_properties=(("k", "v"),)))
    assert replies(server) == [
        Publish(
            "t/1",
            b"a",
            qos=1,
            dup=True,
            packet_id=42,
            properties=alias(1, user_properties=(("k", "v"),)),
        )
    ]
    assert server.in_flight() == [(42, "t/1", b"a", 1, Properties(user_properties=(("k", "v"),)))]
    with pytest.raises(LocalProtocolError, match="Expected a packet id not in flight, got 42"):
        server.resend(42, "t/1", b"a", 1)
    assert send(server, PubAck(42)) == [PublishAcknowledged(42)]


def test_resend_at_level_4():
    server = connected_4()
    server.resend(3, "t", b"x", 1)
    assert server.data_to_send() == encode(Publish("t", b"x", qos=1, dup=True, packet_id=3))


def test_in_flight_outlives_the_connection():
    server = connected()
    server.send_publish("t", b"x", qos=1)
    send(server, Disconnect())
    assert server.state is State.CLOSED
    assert server.in_flight() == [(1, "t", b"x", 1, Properties())]


@pytest.mark.parametrize("qos", [2, 3])
def test_qos_2_is_not_sent(qos):
    server = connected()
    with pytest.raises(LocalProtocolError, match=f"QoS of 0 or 1 to send, got {qos}"):
        server.send_publish("t", b"", qos=qos)
    with pytest.raises(LocalProtocolError, match=f"QoS 1, got QoS {qos}"):
        server.resend(1, "t", b"", qos)
    assert server.data_to_send() == b""


# Topic aliases to the client


def test_the_first_topics_get_aliases():
    server = connected(connect5(topic_alias_maximum=2))
    for topic in ("a", "a", "b", "c", "b", "c"):
        server.send_publish(topic, b"")
    assert replies(server) == [
        Publish("a", b"", properties=alias(1)),
        Publish("", b"", properties=alias(1)),
        Publish("b", b"", properties=alias(2)),
        Publish("c", b""),  # no alias left
        Publish("", b"", properties=alias(2)),
        Publish("c", b""),
    ]


def test_outgoing_aliases_take_the_servers_bound():
    server = connected(connect5(topic_alias_maximum=10), max_outgoing_aliases=1)
    for topic in ("a", "b", "a"):
        server.send_publish(topic, b"")
    assert replies(server) == [
        Publish("a", b"", properties=alias(1)),
        Publish("b", b""),
        Publish("", b"", properties=alias(1)),
    ]


def test_no_outgoing_aliases_for_a_client_without_them():
    server = connected()
    server.send_publish("a", b"")
    server.send_publish("a", b"")
    assert replies(server) == [Publish("a", b""), Publish("a", b"")]


def test_an_alias_keeps_the_applications_properties():
    server = connected(connect5(topic_alias_maximum=1))
    props = Properties(user_properties=(("k", "v"),))
    server.send_publish("a", b"", properties=props)
    server.send_publish("a", b"", properties=props)
    assert replies(server) == [
        Publish("a", b"", properties=alias(1, user_properties=(("k", "v"),))),
        Publish("", b"", properties=alias(1, user_properties=(("k", "v"),))),
    ]


def test_the_application_sets_no_alias():
    server = connected()
    with pytest.raises(LocalProtocolError, match="Expected no topic_alias in properties"):
        server.send_publish("a", b"", properties=alias(1))


# The client's maximum packet size


def test_a_publish_too_large_for_the_client_is_not_sent():
    server = connected(connect5(maximum_packet_size=24, topic_alias_maximum=1))  # CONNACK: 24
    with pytest.raises(PublishTooLarge, match=r"at most 24 bytes \(.*\), got 25"):
        server.send_publish("t", b"x" * 14, qos=1)  # 2 + topic 3 + id 2 + alias 1 + 3 + 14
    assert server.data_to_send() == b""
    assert server.in_flight() == []
    assert server.packets_sent == 1  # the CONNACK
    server.send_publish("t", b"x" * 15)  # QoS 0: no packet id, fits
    server.send_publish("t", b"x" * 16)  # the alias alone: fits
    assert replies(server) == [
        Publish("t", b"x" * 15, properties=alias(1)),  # the alias was not spent before
        Publish("", b"x" * 16, properties=alias(1)),
    ]


def test_publish_too_large_is_a_local_protocol_error():
    assert issubclass(PublishTooLarge, LocalProtocolError)


def test_a_reason_string_too_large_for_the_client_is_dropped_from_an_ack():
    server = connected(connect5(maximum_packet_size=30), manual_acks=True)
    send(server, Publish("a", b"", qos=1, packet_id=1))
    server.ack(1, reasons.UNSPECIFIED_ERROR, "a reason string over thirty bytes")
    assert replies(server) == [PubAck(1, reasons.UNSPECIFIED_ERROR)]


def test_a_suback_too_large_for_the_client_is_not_sent():
    server = connected(connect5(maximum_packet_size=30))
    topics = tuple((f"t/{n}", 0) for n in range(30))
    assert send(server, Subscribe(1, topics)) == [Subscribed(1, topics)]
    assert server.data_to_send() == b""  # 35 bytes: dropped, as if sent
