"""A client's call to a module, as mqant's gate routes it (CONTRACT.md, "Routing a PUBLISH").

``Type[@node]/HD_handler[/msgid]``: only ``HD_`` handlers, ``Type`` any live instance or
``Type@node`` that one, the handler called through mqant RPC with ``(session, msg)``, every
failure an error text, the answer mqant's ``{"Trace", "Error", "Result"}`` envelope (or the
handler's bytes as they are). The gate (MQTT) and the REST API (``/api/call``) both call
``dispatch``: the gate serialises the envelope with ``encode``, the API returns it as a dict
(``checked``).
"""

import json
import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any, NamedTuple

from mqant import dependencies, jsontext, logs, metrics, rpc, tracing
from mqant.errors import RPCError
from mqant.session import Session

logger = logging.getLogger(__name__)

TOPIC_ERROR = (
    "Topic must be [moduleType@moduleID]/[handler]|[moduleType@moduleID]/[handler]/[msgid]"
)
JSON_ERROR = "The JSON format is incorrect"
WORK_QUEUE_FULL = "the work queue is full!"
RATE_EXCEEDED = "the message rate is exceeded"
INTERNAL_ERROR = "internal error"
NOT_JSON = "The result is not JSON serializable"


class Topic(NamedTuple):
    """A call's topic: the module (``Type`` or ``Type@node``), the handler, the msgid
    (``""``: none, the call is fire-and-forget)."""

    target: str
    handler: str
    msgid: str


def parse_topic(topic: str) -> Topic | None:
    """The parts of ``Type[@node]/handler[/msgid]``; None with fewer than 2 segments. The msgid
    is the third segment, and only when there are exactly 3."""
    parts = topic.split("/")
    if len(parts) < 2:
        return None
    return Topic(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def wants_reply(topic: str) -> bool:
    """Whether a call on ``topic`` is answered: with a msgid, or with a malformed topic."""
    parsed = parse_topic(topic)
    return parsed is None or parsed.msgid != ""


def decode_payload(payload: bytes) -> dict[str, Any] | bytes:
    """A JSON object when the payload looks like one (``{...}``), else the bytes as they are.

    Raises ValueError when it looks like an object but is not one (mqant.jsontext: lone
    surrogates and JSON bombs included).
    """
    if payload[:1] != b"{" or payload[-1:] != b"}":
        return payload
    return jsontext.loads_object(payload)


def envelope(trace_id: str, error: str, result: Any) -> dict[str, Any]:
    """The reply: ``{"Trace": ..., "Error": "" when ok, "Result": ...}``."""
    return {"Trace": trace_id, "Error": error, "Result": result}


def encode(reply: dict[str, Any]) -> bytes:
    """An envelope as the gate sends it: compact JSON in UTF-8. A result that is not JSON
    becomes the error ``NOT_JSON``."""
    try:
        return json.dumps(reply, ensure_ascii=False, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        return encode(_not_json(reply))


def checked(reply: dict[str, Any]) -> dict[str, Any]:
    """An envelope whose result JSON can carry, as the REST API returns it; else the error
    ``NOT_JSON``."""
    try:
        json.dumps(reply["Result"])
    except (TypeError, ValueError):
        return _not_json(reply)
    return reply


def _not_json(reply: dict[str, Any]) -> dict[str, Any]:
    trace_id, result = reply["Trace"], reply["Result"]
    logger.error("trace %s: result of type %s is not JSON", trace_id, type(result).__name__)
    return envelope(trace_id, NOT_JSON, None)


async def dispatch(
    session: Session,
    target: str,
    handler: str,
    payload: Any,
    decode: Callable[[Any], Any] | None = None,
) -> dict[str, Any] | bytes:
    """Call ``target``'s ``handler`` with ``(session, msg)`` and return the envelope, or the
    bytes the handler returned (which go to the client without it); every failure is an error
    in the envelope. ``msg`` is ``decode(payload)``, decoded once the node is found (a missing
    module is reported before a malformed payload; a ValueError is ``JSON_ERROR``), or the
    payload itself without ``decode``. With tracing on, the call is a span whose ids are the
    Session's (mqant.tracing). What the handler logs names the Session (mqant.server gives
    mqant.logs its arguments), and so does the failure logged here; the rest of the call's
    lines name the connection's."""
    traced = None if tracing.tracer is None else tracing.start_call(session, handler)
    trace = session.trace_id  # the span's when tracing is on: the client sees the trace id
    counts = metrics.client_call(target, handler)
    started, outcome = perf_counter(), metrics.CANCELLED
    try:
        if not handler.startswith("HD_"):
            outcome = metrics.BAD_REQUEST
            raise RPCError(f"Method({handler}) must begin with 'HD_'")
        node = await rpc.select(target)
        if traced is not None:
            traced.reached(node.module_type)
        try:
            msg = payload if decode is None else decode(payload)
        except ValueError:
            outcome = metrics.BAD_REQUEST
            raise RPCError(JSON_ERROR) from None
        result = await rpc.reach(node, handler, (session, msg), rpc.default_timeout())
        outcome = metrics.OK
    except RPCError as err:
        if traced is not None:
            traced.fail(err)
        if outcome == metrics.CANCELLED:
            outcome = metrics.outcome_of(err.kind)
        return envelope(trace, str(err), None)
    except Exception as err:
        if traced is not None:
            traced.fail(err)
        # The channel layer failed (its pool exhausted...): the client still hears, and a
        # dependency's outage is logged once, not per call.
        error = dependencies.unavailable_text(err)
        outcome = metrics.UNAVAILABLE
        if error is None:
            token = logs.bind(session)
            logger.exception("trace %s: calling %s failed", trace, session.topic)
            logs.unbind(token)
            error, outcome = INTERNAL_ERROR, metrics.ERROR
        return envelope(trace, error, None)
    except BaseException as err:  # cancelled: the connection or the server went away
        if traced is not None:
            traced.fail(err)
        raise
    finally:
        if traced is not None:
            traced.close()
        if counts.known:
            counts.done(outcome, perf_counter() - started)
        else:  # an answer may teach that the handler exists
            metrics.client_call_done(counts, target, handler, outcome, perf_counter() - started)
    return result if isinstance(result, bytes) else envelope(trace, "", result)
