"""Tracing in one process (mqant.tracing): the spans of a client's call through the local
shortcut and through the channel layer, their names and links, the Session's ids as the
trace's; the exporters the environment names; off by default and then without spans."""

import asyncio
import threading
import time
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from mqant import Session, call_nr, routing, tracing
from tests.mqant.traced import Traced  # noqa: F401 (registers the module the tests call)

OTEL_VARIABLES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield
    tracing.stop(0.5)  # whatever a test started


@pytest.fixture
def spans() -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    assert tracing.start("test", "development", processors=[SimpleSpanProcessor(memory)])
    return memory


def client_session(user_id: str = "ann") -> Session:
    live = Session(
        ip="127.0.0.1", network="tcp", session_id="s1", server_id="Gate@1", channel="c#1"
    )
    live.user_id = user_id
    return live.for_call("Traced/HD_x/1")


async def dispatch(session: Session, target: str, handler: str, body: bytes) -> Any:
    return await routing.dispatch(session, target, handler, body, routing.decode_payload)


def by_name(memory: InMemorySpanExporter, trace_id: str) -> dict[str, Any]:
    """The spans of trace ``trace_id`` by name (the modules' own calls at start have theirs)."""
    of_trace = [s for s in memory.get_finished_spans() if f"{s.context.trace_id:032x}" == trace_id]
    found: dict[str, ReadableSpan] = {span.name: span for span in of_trace}
    assert len(found) == len(of_trace), of_trace
    return found


async def test_a_call_through_the_local_shortcut_is_one_trace_with_the_sessions_ids(
    spans, mqant_started
):
    session = client_session()
    trace_id, span_id = session.trace_id, session.span_id
    reply = await dispatch(session, "HelloWorld", "HD_Say", b'{"say": "hi"}')
    assert reply == {"Trace": trace_id, "Error": "", "Result": "you say : hi"}
    found = by_name(spans, trace_id)
    assert set(found) == {
        "mqant.call HelloWorld/HD_Say",
        "mqant.rpc HelloWorld/HD_Say",
        "mqant.handler HelloWorld/HD_Say",
    }
    gate = found["mqant.call HelloWorld/HD_Say"]
    hop = found["mqant.rpc HelloWorld/HD_Say"]
    handler = found["mqant.handler HelloWorld/HD_Say"]
    assert {f"{s.context.trace_id:032x}" for s in (gate, hop, handler)} == {trace_id}
    assert f"{gate.context.span_id:016x}" == span_id  # the Session's span id is the call's
    assert gate.parent is None
    assert hop.parent.span_id == gate.context.span_id
    assert handler.parent.span_id == hop.context.span_id
    assert (gate.kind, hop.kind, handler.kind) == (
        SpanKind.SERVER,
        SpanKind.CLIENT,
        SpanKind.INTERNAL,  # the local shortcut: no hop between processes
    )
    assert hop.attributes["mqant.local"] is True
    assert hop.attributes["mqant.node"].startswith("HelloWorld@")
    assert gate.attributes["enduser.id"] == "ann"
    assert gate.attributes["mqant.session_id"] == "s1"
    assert all(s.status.status_code is StatusCode.UNSET for s in (gate, hop, handler))


async def test_through_the_channel_layer_the_handler_is_the_child_of_the_hop(
    spans, mqant_started, settings
):
    settings.MQANT = {**settings.MQANT, "RPC_LOCAL_SHORTCUT": False}
    session = client_session()
    reply = await dispatch(session, "HelloWorld", "HD_Say", b'{"say": "hi"}')
    assert reply["Result"] == "you say : hi"
    found = by_name(spans, reply["Trace"])
    hop, handler = found["mqant.rpc HelloWorld/HD_Say"], found["mqant.handler HelloWorld/HD_Say"]
    assert hop.attributes["mqant.local"] is False
    assert handler.kind is SpanKind.SERVER  # its parent came in the message's traceparent
    assert handler.parent.span_id == hop.context.span_id
    assert handler.parent.is_remote
    assert handler.context.trace_id == int(reply["Trace"], 16)


async def test_a_serial_handler_runs_in_its_span_and_its_calls_are_its_children(
    spans, mqant_started
):
    session = client_session()
    reply = await dispatch(session, "Traced", "HD_Relay", b'{"say": "hi"}')
    assert reply["Result"] == "you say : hi"
    found = by_name(spans, reply["Trace"])
    relay = found["mqant.handler Traced/HD_Relay"]  # ran in the serial queue's task
    inner_hop = found["mqant.rpc HelloWorld/HD_Say"]
    assert inner_hop.parent.span_id == relay.context.span_id
    assert found["mqant.handler HelloWorld/HD_Say"].parent.span_id == inner_hop.context.span_id
    assert len({s.context.trace_id for s in found.values()}) == 1


async def test_names_say_only_what_exists(spans, mqant_started):
    cases = [
        ("Nowhere", "HD_Say", "Service(type:Nowhere) not found", {"mqant.call"}),
        ("HelloWorld", "Say", "Method(Say) must begin with 'HD_'", {"mqant.call"}),
        (
            "HelloWorld",
            "HD_" + "x" * 5000,  # made up by the client: in no name
            "Remote function(HD_" + "x" * 5000 + ") not found",
            {"mqant.call HelloWorld", "mqant.rpc HelloWorld"},
        ),
    ]
    for target, handler, error, names in cases:
        spans.clear()
        reply = await dispatch(client_session(), target, handler, b"{}")
        assert reply["Error"] == error
        found = by_name(spans, reply["Trace"])
        assert set(found) == names
        for span in found.values():
            assert span.status.status_code is StatusCode.ERROR
            assert len(span.status.description or "") <= tracing.MAX_ERROR_TEXT


async def test_a_failing_handler_is_named_and_marked(spans, mqant_started):
    reply = await dispatch(client_session(), "Traced", "HD_Fail", b"{}")
    assert reply["Error"] == "internal error"
    found = by_name(spans, reply["Trace"])
    assert set(found) == {
        "mqant.call Traced/HD_Fail",
        "mqant.rpc Traced/HD_Fail",
        "mqant.handler Traced/HD_Fail",
    }
    for span in found.values():
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "remote"


async def test_off_by_default_no_span_is_made_and_calls_work(mqant_started):
    assert not tracing.wanted()
    assert not tracing.start("test", "development")
    assert tracing.tracer is None
    session = client_session()
    trace_id = session.trace_id
    # With tracing off, making a span raises: a call that made one would fail here.
    reply = await dispatch(session, "Traced", "HD_Relay", b'{"say": "hi"}')
    assert reply == {"Trace": trace_id, "Error": "", "Result": "you say : hi"}
    with pytest.raises(RuntimeError, match="tracing is off"):
        tracing.start_call(session, "HD_x")


def test_what_turns_it_on(settings, monkeypatch):
    assert not tracing.wanted()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing.wanted()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    assert tracing.wanted()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.wanted()
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    settings.MQANT = {**settings.MQANT, "TRACING": False}
    assert not tracing.wanted()
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    settings.MQANT = {**settings.MQANT, "TRACING": True}
    assert tracing.wanted()
    settings.MQANT = {**settings.MQANT, "TRACING": None, "TRACING_EXPORTER": "x.Y"}
    assert tracing.wanted()


def test_exporters_from_the_environment(monkeypatch):
    assert [type(e) for e in tracing.exporters()] == [OTLPSpanExporter]  # the default: otlp
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console, otlp")
    assert [type(e) for e in tracing.exporters()] == [ConsoleSpanExporter, OTLPSpanExporter]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.exporters() == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ImproperlyConfigured, match="opentelemetry-exporter-otlp-proto-grpc"):
        tracing.exporters()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ImproperlyConfigured, match="got 'http/json'"):
        tracing.exporters()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ImproperlyConfigured, match="'zipkin', which no installed package"):
        tracing.exporters()


def provider() -> Any:
    return tracing._provider


class Recording(SpanExporter):
    def __init__(self, label: str = "", delay: float = 0.0) -> None:
        self.label, self.delay = label, delay
        self.spans: list[ReadableSpan] = []

    def export(self, spans):
        time.sleep(self.delay)
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def test_an_exporter_named_in_settings_and_the_resource(settings, monkeypatch):
    path = f"{__name__}.Recording"
    settings.MQANT = {**settings.MQANT, "TRACING_EXPORTER": {"BACKEND": path, "CONFIG": {}}}
    [exporter] = tracing.exporters()
    assert isinstance(exporter, Recording)
    wrongs: list[Any] = ["tests.no.Exporter", {"CONFIG": {}}, {"BACKEND": path, "CONFIG": {"x": 1}}]
    for wrong in wrongs:
        settings.MQANT = {**settings.MQANT, "TRACING_EXPORTER": wrong}
        with pytest.raises(ImproperlyConfigured, match=r"must name a SpanExporter class"):
            tracing.start("mqant-modules", "modules1")
        assert tracing.tracer is None
    settings.MQANT = {**settings.MQANT, "TRACING_EXPORTER": path}
    assert tracing.start("mqant-modules", "modules1")
    resource: Any = provider().resource.attributes
    assert resource["service.name"] == "mqant-modules"
    assert resource["mqant.process_id"] == "modules1"
    assert resource["process.pid"] > 0
    tracing.stop()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "chat-gate-eu")
    assert tracing.start("mqant-gate", "gate1")
    assert provider().resource.attributes["service.name"] == "chat-gate-eu"


def test_stop_sends_what_waits_and_gives_up_on_a_hung_exporter():
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    sent = Recording()
    tracing.start("test", "development", processors=[BatchSpanProcessor(sent)])
    tracing.start_call(client_session(), "HD_x").close()
    tracing.stop()
    assert [s.name for s in sent.spans] == ["mqant.call"]  # flushed, not left to the timer

    hung = Recording(delay=30)
    tracing.start("test", "development", processors=[BatchSpanProcessor(hung)])
    tracing.start_call(client_session(), "HD_x").close()
    started = time.monotonic()
    tracing.stop(0.5)
    assert time.monotonic() - started < 5  # bounded, though the export never ends
    assert tracing.tracer is None
    assert any(t.name == "mqant-tracing-stop" for t in threading.enumerate())


async def test_a_call_without_reply_carries_the_trace_too(spans, mqant_started, settings):
    settings.MQANT = {**settings.MQANT, "RPC_LOCAL_SHORTCUT": False}
    session = client_session()
    outer = tracing.start_call(session, "HD_x")
    try:
        await call_nr("HelloWorld", "HD_Say", session, {"say": "hi"})
    finally:
        outer.close()
    for _ in range(100):
        if "mqant.handler HelloWorld/HD_Say" in by_name(spans, session.trace_id):
            break
        await asyncio.sleep(0.01)
    handler = by_name(spans, session.trace_id)["mqant.handler HelloWorld/HD_Say"]
    assert handler.kind is SpanKind.SERVER
    assert handler.parent.span_id == outer.span.get_span_context().span_id
    assert f"{handler.context.trace_id:032x}" == session.trace_id
