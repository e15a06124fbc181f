"""The gate's side of routing a client's PUBLISH (mqant.routing): where the reply goes (the
topic itself when it has a msgid or is malformed, mqant's way; an MQTT 5 Response Topic
before that), with which properties, how the payload is read, and which reason code a
QoS 1-2 acknowledgement carries."""

from collections.abc import Callable
from typing import Any

from gate.mqtt import reasons
from gate.mqtt.properties import Properties
from mqant import jsontext, routing

JSON_CONTENT = "application/json"


def envelope(trace_id: str, error: str, result: Any) -> bytes:
    """The reply payload: ``{"Trace": ..., "Error": "" when ok, "Result": ...}``."""
    return routing.encode(routing.envelope(trace_id, error, result))


def reply_to(topic: str, parsed: routing.Topic | None, request: Properties) -> str | None:
    """The topic a call's reply goes to: the request's Response Topic (MQTT 5), else the
    request's own topic when it has a msgid or is malformed (``parsed`` None: mqant's way);
    None: no reply."""
    if request.response_topic is not None:
        return request.response_topic
    return topic if parsed is None or parsed.msgid else None


def reply_properties(request: Properties, json: bool = True) -> Properties | None:
    """The properties of a reply to an MQTT 5 request: its Correlation Data echoed, and an
    envelope marked as JSON text (a handler's raw bytes are marked as nothing)."""
    correlation = request.correlation_data
    if not json:
        return None if correlation is None else Properties(correlation_data=correlation)
    return Properties(
        payload_format_indicator=1, content_type=JSON_CONTENT, correlation_data=correlation
    )


def payload_decoder(request: Properties) -> Callable[[bytes], dict[str, Any] | bytes]:
    """How a handler's ``msg`` is read from the payload. mqant's rule (a payload ``{...}`` is
    a JSON object, anything else bytes) unless an MQTT 5 request says what it carries: Content
    Type ``application/json`` always parses (an object, else "The JSON format is incorrect");
    another Content Type is bytes as they are; Payload Format Indicator 1 requires UTF-8."""
    content_type = request.content_type
    utf8 = request.payload_format_indicator == 1
    if content_type is None and not utf8:
        return routing.decode_payload
    as_json = content_type is None or _is_json(content_type)

    def decode(payload: bytes) -> dict[str, Any] | bytes:
        if utf8:
            try:
                payload.decode()
            except UnicodeDecodeError:
                raise ValueError("the payload is not UTF-8 text") from None
        if not as_json:
            return payload
        if content_type is None:
            return routing.decode_payload(payload)
        return jsontext.loads_object(payload)

    return decode


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == JSON_CONTENT or kind.endswith("+json")


def error_reason(error: str) -> int:
    """The reason code acknowledging a QoS 1-2 call that ended with ``error`` ("": none)."""
    if not error:
        return reasons.SUCCESS
    if error == routing.TOPIC_ERROR:
        return reasons.TOPIC_NAME_INVALID
    if error == routing.JSON_ERROR:
        return reasons.PAYLOAD_FORMAT_INVALID
    if error in (routing.WORK_QUEUE_FULL, routing.RATE_EXCEEDED):
        return reasons.QUOTA_EXCEEDED
    return reasons.IMPLEMENTATION_SPECIFIC_ERROR
