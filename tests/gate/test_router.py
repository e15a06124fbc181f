"""Where a call's reply goes, with which properties, how its payload is read and how its
acknowledgement ends: mqant's rules, and MQTT 5's Response Topic, Correlation Data, Payload
Format Indicator and Content Type over them (gate.router)."""

import pytest

from gate import router
from gate.mqtt import reasons
from gate.mqtt.properties import NO_PROPERTIES, Properties
from mqant import routing

parse = routing.parse_topic


def test_the_reply_goes_to_the_topic_with_a_msgid_as_mqant_does() -> None:
    assert (
        router.reply_to("HelloWorld/HD_Say/7", parse("HelloWorld/HD_Say/7"), NO_PROPERTIES)
        == "HelloWorld/HD_Say/7"
    )
    assert router.reply_to("HelloWorld/HD_Say", parse("HelloWorld/HD_Say"), NO_PROPERTIES) is None
    assert (
        router.reply_to("Nope", parse("Nope"), NO_PROPERTIES) == "Nope"
    )  # malformed: answered anyway


def test_a_response_topic_takes_the_reply_with_or_without_a_msgid() -> None:
    asked = Properties(response_topic="me/replies")
    assert router.reply_to("HelloWorld/HD_Say", parse("HelloWorld/HD_Say"), asked) == "me/replies"
    assert (
        router.reply_to("HelloWorld/HD_Say/7", parse("HelloWorld/HD_Say/7"), asked) == "me/replies"
    )


def test_a_reply_echoes_the_correlation_data_and_says_json() -> None:
    properties = router.reply_properties(Properties(correlation_data=b"\x00id"))
    assert properties == Properties(
        payload_format_indicator=1, content_type="application/json", correlation_data=b"\x00id"
    )
    raw = router.reply_properties(Properties(correlation_data=b"c"), json=False)
    assert raw == Properties(correlation_data=b"c")
    assert router.reply_properties(NO_PROPERTIES, json=False) is None


@pytest.mark.parametrize(
    ("properties", "payload", "msg"),
    [
        (NO_PROPERTIES, b'{"say":"hi"}', {"say": "hi"}),  # mqant's rule
        (NO_PROPERTIES, b"hi", b"hi"),
        (Properties(content_type="application/json"), b'{"say":"hi"}', {"say": "hi"}),
        (Properties(content_type="application/json; charset=utf-8"), b' {"a":1} ', {"a": 1}),
        (Properties(content_type="application/vnd.game+json"), b'{"a":1}', {"a": 1}),
        (Properties(content_type="application/octet-stream"), b'{"a":1}', b'{"a":1}'),
        (
            Properties(content_type="text/plain", payload_format_indicator=1),
            b"h\xc3\xa9",
            b"h\xc3\xa9",
        ),
        (Properties(payload_format_indicator=1), b'{"a":1}', {"a": 1}),
        (Properties(payload_format_indicator=1), b"text", b"text"),
    ],
)
def test_the_payload_is_read_as_the_request_says(
    properties: Properties, payload: bytes, msg: object
) -> None:
    assert router.payload_decoder(properties)(payload) == msg


@pytest.mark.parametrize(
    ("properties", "payload"),
    [
        (Properties(content_type="application/json"), b"[1, 2]"),  # not an object
        (Properties(content_type="application/json"), b"hi"),
        (Properties(payload_format_indicator=1), b"\xff\xfe"),  # not UTF-8
        (Properties(content_type="text/plain", payload_format_indicator=1), b"\xc3"),
        (NO_PROPERTIES, b"{oops}"),
    ],
)
def test_a_payload_that_is_not_what_it_says_is_refused(
    properties: Properties, payload: bytes
) -> None:
    with pytest.raises(ValueError, match=r"\S"):  # jsontext's or UTF-8's message
        router.payload_decoder(properties)(payload)


def test_mqants_rule_is_the_same_function_without_properties() -> None:
    assert router.payload_decoder(NO_PROPERTIES) is routing.decode_payload


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("", reasons.SUCCESS),
        (routing.TOPIC_ERROR, reasons.TOPIC_NAME_INVALID),
        (routing.JSON_ERROR, reasons.PAYLOAD_FORMAT_INVALID),
        ("Remote function(HD_x) not found", reasons.IMPLEMENTATION_SPECIFIC_ERROR),
        ("No room", reasons.IMPLEMENTATION_SPECIFIC_ERROR),
    ],
)
def test_an_acknowledgement_says_how_the_call_ended(error: str, code: int) -> None:
    assert router.error_reason(error) == code
