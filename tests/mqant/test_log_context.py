"""Log lines that name their session (mqant.logs): the context filter, the JSON and text
formatters, and the session a handler's lines name, whichever logger writes them."""

import io
import json
import logging
import sys
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from mqant import Session, logs, routing
from mqant.logs import JsonFormatter, RateLimitFilter, SessionFilter, TextFormatter
from tests.mqant.traced import Traced  # noqa: F401 (registers the module the tests call)


def record(msg: object, *args: object, exc: bool = False, name: str = "gate.connection"):
    exc_info = None
    if exc:
        try:
            raise ValueError("inside\nwith a second line")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, exc_info)


def session(user_id: str = "ann") -> Session:
    live = Session(ip="10.0.0.1", network="tcp", session_id="s1", server_id="Gate@1", channel="c")
    live.user_id = user_id
    return live.for_call("Chat/HD_Say/1")


def as_json(rec: logging.LogRecord) -> Any:
    SessionFilter().filter(rec)
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    line.encode()  # writable by any UTF-8 stream
    return json.loads(line)


def test_a_bound_session_names_every_line_until_unbound():
    s = session()
    token = logs.bind(s)
    try:
        entry = as_json(record("%r: closing, %s", "conn", "protocol error"))
    finally:
        logs.unbind(token)
    assert entry["message"] == "'conn': closing, protocol error"
    assert (entry["trace_id"], entry["session_id"], entry["user_id"]) == (
        s.trace_id,
        "s1",
        "ann",
    )
    assert (entry["level"], entry["logger"]) == ("WARNING", "gate.connection")
    assert entry["time"].endswith("+00:00")
    outside = as_json(record("no session"))
    assert not {"trace_id", "session_id", "user_id"} & set(outside)


def test_without_a_session_the_current_spans_trace_id():
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        entry = as_json(record("inside a span"))
    assert entry["trace_id"] == f"{span.get_span_context().trace_id:032x}"


def test_odd_messages_are_still_one_valid_line():
    odd = [
        record('quotes " and \\ and\nnewlines\r\n and \x00 controls'),
        record("lone surrogate \ud800 and 中文"),
        record({"not": "a string"}),
        record("%s and %s", "one"),  # arguments that do not fit
        record("x" * 100_000),
    ]
    for rec in odd:
        entry = as_json(rec)
        assert entry["message"]
    assert "中文" in as_json(record("lone surrogate \ud800 and 中文"))["message"]
    assert as_json(record({"not": "a string"}))["message"] == "{'not': 'a string'}"


def test_the_rate_limit_still_cuts_and_a_traceback_is_one_field():
    rec = record("x" * 100_000, exc=True)
    assert RateLimitFilter(max_chars=4000).filter(rec)
    entry = as_json(rec)
    assert entry["message"].endswith("... (100000 characters)")
    assert len(entry["message"]) < 4100
    assert entry["exc"].startswith("Traceback")
    assert "ValueError: inside\nwith a second line" in entry["exc"]
    huge = record("boom", exc=True)
    huge.exc_text = "y" * (logs.MAX_EXC * 3)
    assert len(as_json(huge)["exc"]) < logs.MAX_EXC + 100


def test_text_lines_name_the_session_when_known():
    formatter = TextFormatter("%(levelname)s %(name)s: %(message)s")
    s = session()
    token = logs.bind(s)
    try:
        rec = record("closing")
        SessionFilter().filter(rec)
    finally:
        logs.unbind(token)
    assert formatter.format(rec) == (
        f"WARNING gate.connection: closing [trace_id={s.trace_id} session_id=s1 user_id=ann]"
    )
    plain = record("closing")
    SessionFilter().filter(plain)
    assert formatter.format(plain) == "WARNING gate.connection: closing"


@pytest.fixture
def captured():
    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            records.append(rec)

    handler = Capture()
    handler.addFilter(SessionFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield records
    root.removeHandler(handler)


async def test_a_handlers_lines_name_its_session_whichever_logger(captured, mqant_started):
    s = session("bob")
    reply: Any = await routing.dispatch(s, "Traced", "HD_Log", b"{}")
    assert reply["Result"] == "logged"
    [line] = [r for r in captured if r.name == "thirdparty.library"]
    assert (line.trace_id, line.session_id, line.user_id) == (reply["Trace"], "s1", "bob")


def test_an_id_cannot_start_a_line_of_its_own():
    token = logs.bind(session("eve\n2026-01-01 CRITICAL forged"))
    try:
        rec = record("closing")
        SessionFilter().filter(rec)
    finally:
        logs.unbind(token)
    line = TextFormatter("%(message)s").format(rec)
    assert "\n" not in line
    assert "user_id=eve?2026-01-01 CRITICAL forged]" in line


def test_a_record_whose_arguments_do_not_fit_is_one_line_through_the_shipped_handler():
    """Through the handler the settings configure (the rate limit, then the session, then the
    JSON format), a log call whose arguments do not fit its template still writes one valid
    line, and never raises into the code that logged."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RateLimitFilter())
    handler.addFilter(SessionFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("gate.test_odd_arguments")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("%s and %s", "one")
        logger.warning("%d calls", "not a number")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    messages = [json.loads(line)["message"] for line in lines]
    assert messages == ["'%s and %s' ('one',)", "'%d calls' ('not a number',)"]
