"""Routing a client's PUBLISH (mqant.routing): the gate answers only a topic with a msgid (or
a malformed one), with the envelope as JSON bytes or the handler's bytes as they are."""

from typing import Any

from mqant import Session, routing


def envelope(trace_id: str, error: str, result: Any) -> bytes:
    """The reply payload: ``{"Trace": ..., "Error": "" when ok, "Result": ...}``."""
    return routing.encode(routing.envelope(trace_id, error, result))


async def route(session: Session, topic: str, payload: bytes) -> bytes | None:
    """Call the handler ``topic`` names and return the reply payload (None: no reply)."""
    parsed = routing.parse_topic(topic)
    if parsed is None:
        return envelope(session.trace_id, routing.TOPIC_ERROR, None)
    reply = await routing.dispatch(
        session, parsed.target, parsed.handler, lambda: routing.decode_payload(payload)
    )
    if not parsed.msgid:
        return None
    return reply if isinstance(reply, bytes) else routing.encode(reply)
