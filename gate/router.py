"""The gate's side of routing a client's PUBLISH (mqant.routing): it answers only a topic with a
msgid (or a malformed one), with the envelope as JSON bytes or the handler's bytes as they
are."""

from typing import Any

from mqant import routing


def envelope(trace_id: str, error: str, result: Any) -> bytes:
    """The reply payload: ``{"Trace": ..., "Error": "" when ok, "Result": ...}``."""
    return routing.encode(routing.envelope(trace_id, error, result))


def reply(topic: routing.Topic, answer: dict[str, Any] | bytes) -> bytes | None:
    """The payload answering a call on ``topic`` (None: no reply, the topic has no msgid)."""
    if not topic.msgid:
        return None
    return answer if isinstance(answer, bytes) else routing.encode(answer)
