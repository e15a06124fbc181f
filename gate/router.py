"""Routing a client's PUBLISH, exactly as mqant's gate does (CONTRACT.md, "Routing a PUBLISH").

``Type[@node]/HD_handler[/msgid]``: the handler is called through mqant RPC with
``(session, msg)``; with a msgid the reply is a PUBLISH on the request topic carrying the
``{"Trace", "Error", "Result"}`` envelope (or the handler's bytes as they are).
"""

import json
import logging
from typing import Any

from mqant import RPCError, Session, dependencies, jsontext, rpc

logger = logging.getLogger(__name__)

TOPIC_ERROR = (
    "Topic must be [moduleType@moduleID]/[handler]|[moduleType@moduleID]/[handler]/[msgid]"
)
JSON_ERROR = "The JSON format is incorrect"
WORK_QUEUE_FULL = "the work queue is full!"
RATE_EXCEEDED = "the message rate is exceeded"
INTERNAL_ERROR = "internal error"


def envelope(trace_id: str, error: str, result: Any) -> bytes:
    """The reply payload: ``{"Trace": ..., "Error": "" when ok, "Result": ...}``."""
    try:
        body = {"Trace": trace_id, "Error": error, "Result": result}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        logger.error("trace %s: result of type %s is not JSON", trace_id, type(result).__name__)
        return envelope(trace_id, "The result is not JSON serializable", None)


def wants_reply(topic: str) -> bool:
    """Whether a PUBLISH on ``topic`` is answered: with a msgid, or with a malformed topic."""
    parts = topic.split("/")
    return len(parts) < 2 or (len(parts) == 3 and parts[2] != "")


def decode_payload(payload: bytes) -> dict[str, Any] | bytes:
    """A JSON object when the payload looks like one (``{...}``), else the bytes as they are.

    Raises ValueError when it looks like an object but is not one (mqant.jsontext: lone
    surrogates and JSON bombs included).
    """
    if payload[:1] != b"{" or payload[-1:] != b"}":
        return payload
    return jsontext.loads_object(payload)


async def route(session: Session, topic: str, payload: bytes) -> bytes | None:
    """Call the handler ``topic`` names and return the reply payload (None: no reply)."""
    parts = topic.split("/")
    if len(parts) < 2:
        return envelope(session.trace_id, TOPIC_ERROR, None)
    target, handler = parts[0], parts[1]
    has_msgid = len(parts) == 3 and parts[2] != ""
    try:
        if not handler.startswith("HD_"):
            raise RPCError(f"Method({handler}) must begin with 'HD_'")
        node = await rpc.select(target)
        try:
            msg = decode_payload(payload)
        except ValueError:
            raise RPCError(JSON_ERROR) from None
        result = await rpc.call_node(node, handler, (session, msg), timeout=rpc.default_timeout())
    except RPCError as err:
        return envelope(session.trace_id, str(err), None) if has_msgid else None
    except Exception as err:
        # The channel layer failed (its pool exhausted...): the client still hears, and a
        # dependency's outage is logged once, not per call.
        error = dependencies.unavailable_text(err)
        if error is None:
            logger.exception("trace %s: calling %s failed", session.trace_id, topic)
            error = INTERNAL_ERROR
        return envelope(session.trace_id, error, None) if has_msgid else None
    if not has_msgid:
        return None
    if isinstance(result, bytes):
        return result
    return envelope(session.trace_id, "", result)
