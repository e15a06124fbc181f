"""ServerProtocol's messages from a 5.0 client (and what of it applies to 3.1.1): topic
aliases, response topics, the receive maximum, manual acknowledgements in order, SUBSCRIBE and
UNSUBSCRIBE, and request_problem_information."""

import pytest

from gate.mqtt import (
    Disconnect,
    LocalProtocolError,
    MessageReceived,
    Properties,
    ProtocolError,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ServerProtocol,
    State,
    SubAck,
    Subscribe,
    Subscribed,
    UnsubAck,
    Unsubscribe,
    Unsubscribed,
    encode,
    reasons,
)
from tests.gate.mqtt.test_protocol5 import (
    alias,
    connect5,
    connected,
    connected_4,
    reason,
    replies,
    send,
)

# Topic aliases from the client


def test_a_topic_alias_set_then_used():
    server = connected()
    assert send(server, Publish("a/b", b"1", properties=alias(1))) == [
        MessageReceived("a/b", b"1", 0, False)  # the alias is left out of the properties
    ]
    assert send(server, Publish("", b"2", properties=alias(1))) == [
        MessageReceived("a/b", b"2", 0, False)
    ]
    send(server, Publish("c", b"3", properties=alias(1)))  # the alias now names "c"
    assert send(server, Publish("", b"4", qos=1, packet_id=9, properties=alias(1))) == [
        MessageReceived("c", b"4", 1, False, 9)
    ]


def test_other_properties_stay_with_the_message():
    server = connected()
    props = alias(2, content_type="json", user_properties=(("k", "v"),), response_topic="r/1")
    [event] = send(server, Publish("a", b"", properties=props))
    assert event == MessageReceived(
        "a",
        b"",
        0,
        False,
        None,
        Properties(content_type="json", user_properties=(("k", "v"),), response_topic="r/1"),
    )


def test_an_unknown_alias_without_a_topic_is_a_protocol_error():
    server = connected()
    with pytest.raises(ProtocolError, match="topic alias set by an earlier PUBLISH, got 3") as info:
        send(server, Publish("", b"", properties=alias(3)))
    assert info.value.reason_code == reasons.PROTOCOL_ERROR
    assert replies(server) == [Disconnect(0x82, reason(str(info.value)))]


@pytest.mark.parametrize(("maximum", "sent"), [(16, 17), (0, 1)])
def test_an_alias_past_the_maximum_is_0x94(maximum, sent):
    server = connected(topic_alias_maximum=maximum)
    with pytest.raises(ProtocolError, match=f"Expected a topic alias of 1-{maximum}, got {sent}"):
        send(server, Publish("a", b"", properties=alias(sent)))
    [disconnect] = replies(server)
    assert disconnect == Disconnect(reasons.TOPIC_ALIAS_INVALID, disconnect.properties)  # type: ignore[union-attr]


def test_alias_0_is_0x94():
    server = connected()
    # PUBLISH QoS 0, topic "a", properties: topic alias (0x23) 0.
    with pytest.raises(ProtocolError) as info:
        server.receive_data(b"\x30\x07\x00\x01a\x03\x23\x00\x00")
    assert info.value.reason_code == reasons.TOPIC_ALIAS_INVALID
    [disconnect] = replies(server)
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == reasons.TOPIC_ALIAS_INVALID


def test_aliases_are_per_connection():
    first = connected()
    send(first, Publish("a", b"", properties=alias(1)))
    with pytest.raises(ProtocolError):
        send(connected(), Publish("", b"", properties=alias(1)))


# Response topic


def test_a_response_topic_with_a_wildcard_is_a_protocol_error():
    server = connected()
    props = Properties(response_topic="replies/+")
    with pytest.raises(ProtocolError, match="response topic without wildcards") as info:
        send(server, Publish("a", b"", properties=props))
    assert info.value.reason_code == reasons.PROTOCOL_ERROR
    assert replies(server) == [Disconnect(0x82, reason(str(info.value)))]


# Retain, which the CONNACK said is not available


def test_a_retained_publish_is_0x9a():
    server = connected()
    with pytest.raises(ProtocolError, match="Expected no retained PUBLISH") as info:
        send(server, Publish("a", b"", retain=True))
    assert info.value.reason_code == reasons.RETAIN_NOT_SUPPORTED
    assert replies(server) == [Disconnect(0x9A, reason(str(info.value)))]


def test_a_retained_publish_below_level_5_is_a_message():
    server = connected_4(manual_acks=True)
    events = server.receive_data(encode(Publish("a", b"", retain=True)))
    assert events == [MessageReceived("a", b"", 0, True)]


# Receive maximum


def test_the_receive_maximum_counts_qos_2_until_pubrel():
    server = connected(receive_maximum=2)
    send(server, Publish("a", b"", qos=2, packet_id=1), Publish("a", b"", qos=2, packet_id=2))
    assert send(server, Publish("a", b"", qos=2, dup=True, packet_id=2)) == []  # a resend
    send(server, PubRel(1))
    assert send(server, Publish("a", b"", qos=2, packet_id=3)) == [
        MessageReceived("a", b"", 2, False, 3)
    ]
    assert replies(server) == [PubRec(1), PubRec(2), PubRec(2), PubComp(1), PubRec(3)]


def test_the_receive_maximum_does_not_count_qos_1_acked_at_once():
    server = connected(receive_maximum=1)
    for packet_id in range(1, 6):
        send(server, Publish("a", b"", qos=1, packet_id=packet_id))
    assert replies(server) == [PubAck(n) for n in range(1, 6)]


def test_the_receive_maximum_counts_qos_1_awaiting_a_manual_ack():
    server = connected(receive_maximum=2, manual_acks=True)
    send(server, Publish("a", b"", qos=1, packet_id=1), Publish("a", b"", qos=1, packet_id=2))
    with pytest.raises(ProtocolError, match="at most 2 QoS 1-2 PUBLISHes") as info:
        send(server, Publish("a", b"", qos=1, packet_id=3))
    assert info.value.reason_code == reasons.RECEIVE_MAXIMUM_EXCEEDED


def test_the_receive_maximum_frees_a_slot_once_the_ack_is_sent():
    server = connected(receive_maximum=2, manual_acks=True)
    send(server, Publish("a", b"", qos=1, packet_id=1), Publish("a", b"", qos=1, packet_id=2))
    server.ack(2)  # waits for 1: still counted
    with pytest.raises(ProtocolError):
        send(server, Publish("a", b"", qos=1, packet_id=3))

    server = connected(receive_maximum=2, manual_acks=True)
    send(server, Publish("a", b"", qos=1, packet_id=1), Publish("a", b"", qos=1, packet_id=2))
    server.ack(1)
    assert len(send(server, Publish("a", b"", qos=1, packet_id=3))) == 1


def test_no_receive_maximum_below_level_5():
    server = connected_4(receive_maximum=1)
    for packet_id in range(1, 4):
        server.receive_data(encode(Publish("a", b"", qos=2, packet_id=packet_id)))
    assert server.state is State.CONNECTED


# Manual acknowledgements


def test_manual_acks_leave_in_the_order_the_messages_came():
    server = connected(manual_acks=True)
    events = send(
        server,
        Publish("a", b"1", qos=1, packet_id=1),
        Publish("a", b"2", qos=2, packet_id=2),
        Publish("a", b"3", qos=1, packet_id=3),
        Publish("a", b"4"),
    )
    assert [e.packet_id for e in events] == [1, 2, 3, None]  # type: ignore[attr-defined]
    assert server.data_to_send() == b""
    server.ack(3)
    server.ack(2)
    assert server.data_to_send() == b""  # 1 is not acknowledged yet
    server.ack(1)
    assert replies(server) == [PubAck(1), PubRec(2), PubAck(3)]
    assert send(server, PubRel(2)) == []
    assert replies(server) == [PubComp(2)]


def test_manual_acks_at_level_4():
    server = connected_4(manual_acks=True)
    server.receive_data(encode(Publish("a", b"", qos=1, packet_id=5)))
    server.receive_data(encode(Publish("a", b"", qos=2, packet_id=6)))
    assert server.data_to_send() == b""
    server.ack(5, reasons.NO_MATCHING_SUBSCRIBERS, "dropped at level 4")
    server.ack(6, reasons.UNSPECIFIED_ERROR)
    assert server.data_to_send() == b"\x40\x02\x00\x05\x50\x02\x00\x06"


def test_a_manual_ack_with_a_reason_at_level_5():
    server = connected(manual_acks=True)
    send(server, Publish("a", b"", qos=1, packet_id=1), Publish("a", b"", qos=2, packet_id=2))
    server.ack(1, reasons.NO_MATCHING_SUBSCRIBERS, "nobody listens")
    server.ack(2, reasons.QUOTA_EXCEEDED)
    assert replies(server) == [
        PubAck(1, reasons.NO_MATCHING_SUBSCRIBERS, reason("nobody listens")),
        PubRec(2, reasons.QUOTA_EXCEEDED),
    ]


def test_a_qos_2_message_refused_frees_its_id():
    server = connected(manual_acks=True)
    send(server, Publish("a", b"", qos=2, packet_id=2))
    server.ack(2, reasons.NOT_AUTHORIZED)
    server.data_to_send()
    assert send(server, Publish("a", b"again", qos=2, packet_id=2)) == [
        MessageReceived("a", b"again", 2, False, 2)  # a new message, the old exchange over
    ]


def test_a_qos_2_resend_before_its_ack_is_reported_and_answered_once():
    server = connected(manual_acks=True)
    publish = Publish("a", b"", qos=2, packet_id=4)
    assert len(send(server, publish)) == 1
    assert send(server, Publish("a", b"", qos=2, dup=True, packet_id=4)) == []
    assert server.data_to_send() == b""
    server.ack(4)
    assert replies(server) == [PubRec(4)]
    assert send(server, Publish("a", b"", qos=2, dup=True, packet_id=4)) == []
    assert replies(server) == [PubRec(4)]  # after its PUBREC, answered again


def test_a_qos_1_resend_before_its_ack_is_reported_once():
    server = connected(manual_acks=True)
    assert len(send(server, Publish("a", b"", qos=1, packet_id=4))) == 1
    assert send(server, Publish("a", b"", qos=1, dup=True, packet_id=4)) == []
    server.ack(4)
    assert replies(server) == [PubAck(4)]
    assert len(send(server, Publish("a", b"", qos=1, packet_id=4))) == 1  # a new one


def test_pubrel_before_pubrec_is_a_protocol_error():
    server = connected(manual_acks=True)
    send(server, Publish("a", b"", qos=2, packet_id=4))
    with pytest.raises(ProtocolError, match="Expected PUBREL after PUBREC"):
        send(server, PubRel(4))


def test_ack_needs_a_message_awaiting_its_ack():
    server = connected(manual_acks=True)
    with pytest.raises(LocalProtocolError, match="awaiting its ack, got 1"):
        server.ack(1)
    send(server, Publish("a", b"", qos=1, packet_id=1), Publish("a", b"", qos=1, packet_id=2))
    server.ack(2)
    with pytest.raises(LocalProtocolError, match="awaiting its ack, got 2"):
        server.ack(2)  # given already, waiting for 1
    with pytest.raises(LocalProtocolError, match="Expected a PUBACK/PUBREC reason code"):
        server.ack(1, reasons.SERVER_SHUTTING_DOWN)


def test_ack_without_manual_acks():
    server = connected()
    send(server, Publish("a", b"", qos=1, packet_id=1))
    with pytest.raises(LocalProtocolError, match="awaiting its ack, got 1"):
        server.ack(1)


def test_ack_after_close_does_nothing():
    server = connected(manual_acks=True)
    send(server, Publish("a", b"", qos=1, packet_id=1), Disconnect())
    server.ack(1)
    assert server.data_to_send() == b""


# SUBSCRIBE and UNSUBSCRIBE


def test_subscribe_grants_the_qos_of_each_options_byte():
    server = connected()
    # QoS 1 with No Local, Retain As Published and Retain Handling 2; QoS 2; QoS 0.
    topics = (("a/+", 0b101101), ("b/#", 2), ("c", 0))
    assert send(server, Subscribe(3, topics)) == [Subscribed(3, topics)]
    assert replies(server) == [SubAck(3, (1, 2, 0))]


def test_a_shared_subscription_is_refused_with_0x9e():
    server = connected()
    topics = (("$share/g/a", 1), ("b", 1))
    assert send(server, Subscribe(3, topics)) == [Subscribed(3, (("b", 1),))]
    refused = reason("Shared subscriptions are not supported")
    assert replies(server) == [SubAck(3, (reasons.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, 1), refused)]


def test_only_shared_subscriptions_is_no_event():
    server = connected()
    assert send(server, Subscribe(3, (("$share/g/a", 0),))) == []
    [suback] = replies(server)
    assert suback.return_codes == (0x9E,)  # type: ignore[union-attr]


def test_share_below_level_5_is_a_plain_topic():
    server = connected_4()
    server.receive_data(encode(Subscribe(3, (("$share/g/a", 1),))))
    assert server.data_to_send() == b"\x90\x03\x00\x03\x01"


def test_a_subscription_identifier_is_0xa1():
    server = connected()
    props = Properties(subscription_identifiers=(5,))
    with pytest.raises(ProtocolError, match="no subscription identifier") as info:
        send(server, Subscribe(3, (("a", 0),), props))
    assert info.value.reason_code == reasons.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED
    [disconnect] = replies(server)
    assert disconnect.reason_code == 0xA1  # type: ignore[union-attr]


def test_unsuback_has_a_reason_code_per_filter():
    server = connected()
    assert send(server, Unsubscribe(4, ("a", "b/+"))) == [Unsubscribed(4, ("a", "b/+"))]
    assert replies(server) == [UnsubAck(4, (0, 0))]


# request_problem_information 0


def test_no_problem_information_leaves_reason_strings_out_of_acks():
    server = connected(connect5(request_problem_information=0), manual_acks=True)
    send(server, Subscribe(3, (("$share/g/a", 1),)), Publish("a", b"", qos=1, packet_id=1))
    server.ack(1, reasons.UNSPECIFIED_ERROR, "not for this client")
    assert replies(server) == [SubAck(3, (0x9E,)), PubAck(1, reasons.UNSPECIFIED_ERROR)]


def test_no_problem_information_keeps_them_in_connack_and_disconnect():
    server = ServerProtocol()
    send(server, connect5(request_problem_information=0))
    server.accept(properties=reason("hello"))
    server.disconnect(reasons.SERVER_SHUTTING_DOWN, "bye")
    [connack, disconnect] = replies(server)
    assert connack.properties.reason_string == "hello"  # type: ignore[union-attr]
    assert disconnect == Disconnect(reasons.SERVER_SHUTTING_DOWN, reason("bye"))
