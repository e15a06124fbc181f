"""mqant.metrics: labels a client cannot grow, the text Prometheus reads, the event loop's lag,
/healthz past HEALTH_MAX_LOOP_LAG and /metrics behind its token (mqant.scrape)."""

import asyncio
import json
import time
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mqant import Session, health, metrics, routing, runtime, scrape
from mqant.looplag import LoopLag


def series(name: str) -> set[tuple[tuple[str, str], ...]]:
    """The label sets of every sample of ``name`` in the registry's text."""
    text = generate_latest(REGISTRY).decode()
    return {
        tuple(sorted(s.labels.items()))
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_client_chosen_handler_names_create_no_series():
    metrics.know_handlers("Known", ["HD_Real"])
    before = series("mqant_calls_total")
    for n in range(500):
        metrics.count_call(f"Known@node{n}", f"HD_Garbage{n}", metrics.NOT_FOUND, 0.001)
        metrics.count_call(f"Mod{n}", "HD_Real", metrics.TIMEOUT, 0.001)
        metrics.count_call("Known", f"HD_Garbage{n}", metrics.ERROR, 0.001)
    grown = series("mqant_calls_total") - before
    modules = {dict(labels)["module"] for labels in grown}
    assert modules <= {metrics.UNKNOWN}
    assert len(grown) <= 3  # one per outcome, whatever the names
    assert "HD_Garbage" not in generate_latest(REGISTRY).decode()


def test_a_known_handler_is_counted_under_its_own_labels():
    metrics.know_handlers("Known", ["HD_Real"])
    process, gate = metrics.identity()
    labels = {"process": process, "gate": gate, "module": "Known", "handler": "HD_Real"}
    calls = count("mqant_calls_total", **labels, outcome="ok")
    timed = count("mqant_call_seconds_count", **labels)
    metrics.count_call("Known@abc", "HD_Real", metrics.OK, 0.003)
    assert count("mqant_calls_total", **labels, outcome="ok") == calls + 1
    assert count("mqant_call_seconds_count", **labels) == timed + 1
    under = count("mqant_call_seconds_bucket", **labels, le="0.005")
    assert under >= 1  # 3 ms falls under the 5 ms bucket
    assert count("mqant_call_seconds_bucket", **labels, le="0.0025") < under


def test_only_an_answer_teaches_a_handler_and_only_so_many(monkeypatch):
    monkeypatch.setattr(metrics, "_learned", metrics.MAX_LEARNED_HANDLERS - 1)
    monkeypatch.setattr(metrics, "_handlers", {})
    metrics.count_call("Remote", "HD_FromOnInit", metrics.OK)  # it answered: it exists
    assert metrics.call_labels("Remote", "HD_FromOnInit") == ("Remote", "HD_FromOnInit")
    metrics.count_call("Remote", "HD_Other", metrics.OK)  # past the bound: not learned
    assert metrics.call_labels("Remote", "HD_Other") == (metrics.UNKNOWN, metrics.UNKNOWN)
    metrics.count_call("Remote", "HD_Failed", metrics.NOT_FOUND)
    assert not metrics.is_known("Remote", "HD_Failed")


def test_every_series_carries_process_and_gate(monkeypatch):
    monkeypatch.setattr(metrics._metrics, "process", "p1")
    monkeypatch.setattr(metrics._metrics, "gate", "Gate@x")
    metrics.transport("tcp").bytes_received.add(10)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest().decode())}
    for name in ("mqant_bytes_received", "mqant_event_loop_lag_seconds", "mqant_lockouts"):
        for sample in families[name].samples:
            assert sample.labels["process"] == "p1"
            assert sample.labels["gate"] == "Gate@x"


async def test_dispatch_counts_a_call_by_its_outcome(mqant_started):
    session = Session.for_http(user_id="", ip="127.0.0.1", topic="HelloWorld/HD_Say")
    labels = {"module": "HelloWorld", "handler": "HD_Say"}
    ok = count("mqant_calls_total", **metrics_labels(), **labels, outcome="ok")
    handled = count("mqant_handler_calls_total", **metrics_labels(), **labels, outcome="ok")
    rpc = count("mqant_rpc_calls_total", **metrics_labels(), target="HelloWorld", outcome="ok")
    reply = await routing.dispatch(session, "HelloWorld", "HD_Say", {"say": "hi"})
    assert isinstance(reply, dict)
    assert reply["Error"] == ""
    assert count("mqant_calls_total", **metrics_labels(), **labels, outcome="ok") == ok + 1
    after = count("mqant_handler_calls_total", **metrics_labels(), **labels, outcome="ok")
    assert after == handled + 1
    rpc_after = count(
        "mqant_rpc_calls_total", **metrics_labels(), target="HelloWorld", outcome="ok"
    )
    assert rpc_after == rpc + 1
    bad = count("mqant_calls_total", **metrics_labels(), **labels, outcome="bad_request")
    await routing.dispatch(session, "HelloWorld", "HD_Say", b"{nope}", routing.decode_payload)
    assert count("mqant_calls_total", **metrics_labels(), **labels, outcome="bad_request") == (
        bad + 1
    )


def metrics_labels() -> dict[str, str]:
    process, gate = metrics.identity()
    return {"process": process, "gate": gate}


async def test_the_lag_of_a_blocked_loop_is_measured():
    lag = LoopLag(interval=0.05)
    task = asyncio.create_task(lag.run())
    try:
        await asyncio.sleep(0.12)
        time.sleep(0.4)  # blocking the loop is the point
        assert lag.current() >= 0.3  # overdue now, before the task could wake
        await asyncio.sleep(0.01)
        assert lag.last >= 0.3
        assert count("mqant_event_loop_lag_seconds", **metrics_labels()) == lag.last
    finally:
        task.cancel()


async def test_healthz_fails_past_the_lag_it_may_have(mqant_started, settings):
    running = runtime.get()
    running.lag.last = 0.5
    settings.MQANT = {**settings.MQANT, "HEALTH_MAX_LOOP_LAG": 1.0}
    status, text = health.answer("/healthz", [])
    assert (status, json.loads(text)["alive"]) == (200, True)
    settings.MQANT = {**settings.MQANT, "HEALTH_MAX_LOOP_LAG": 0.2}
    status, text = health.answer("/healthz", [])
    assert status == 503
    assert json.loads(text) == {"alive": False, "loop_lag_seconds": 0.5}


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), (b"Bearer wrong", 401), (b"Basic c2VjcmV0", 401), (b"Bearer s3cret-token", 200)],
)
def test_metrics_ask_for_the_token(settings, authorization, status):
    settings.MQANT = {**settings.MQANT, "METRICS_TOKEN": "s3cret-token"}
    answered, _, body = scrape.answer("GET", authorization)
    assert answered == status
    if status == 200:
        assert b"mqant_calls_total" in body
    else:
        assert b"mqant" not in body


def test_without_a_token_the_asgi_application_leaves_metrics_to_the_project(settings):
    scope: dict[str, Any] = {"type": "http", "path": "/metrics", "headers": []}
    settings.MQANT = {**settings.MQANT, "METRICS_TOKEN": ""}
    assert not scrape.answers(scope)
    settings.MQANT = {**settings.MQANT, "METRICS_TOKEN": "t0ken-of-some-length"}
    assert scrape.answers(scope)
