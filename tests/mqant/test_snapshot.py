"""mqant.snapshot: one process's figures summed from a Prometheus registry, and another
process's answer kept to the known figures."""

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mqant.snapshot import MAX_BUCKETS, MAX_GATES, clean, snapshot

BASE = ["process", "gate"]


def registry_with_traffic() -> CollectorRegistry:
    registry = CollectorRegistry()
    connections = Gauge("mqant_connections", "", [*BASE, "transport"], registry=registry)
    connections.labels("gate1", "Gate@a", "websocket").set(3)
    connections.labels("gate1", "Gate@a", "tcp").set(2)
    outcomes = [*BASE, "module", "handler", "outcome"]
    calls = Counter("mqant_calls_total", "", outcomes, registry=registry)
    calls.labels("gate1", "Gate@a", "Chat", "HD_Say", "ok").inc(7)
    calls.labels("gate1", "Gate@a", "Chat", "HD_Say", "remote").inc(2)
    calls.labels("gate1", "Gate@a", "HelloWorld", "HD_Say", "deadline_exceeded").inc(1)
    seconds = Histogram(
        "mqant_call_seconds", "", [*BASE, "module", "handler"], buckets=(0.01, 0.1, 1.0),
        registry=registry,
    )  # fmt: skip
    seconds.labels("gate1", "Gate@a", "Chat", "HD_Say").observe(0.005)
    seconds.labels("gate1", "Gate@a", "Chat", "HD_Say").observe(0.05)
    seconds.labels("gate1", "Gate@a", "HelloWorld", "HD_Say").observe(5.0)
    rpc = Counter("mqant_rpc_calls_total", "", [*BASE, "target", "outcome"], registry=registry)
    rpc.labels("gate1", "Gate@a", "Chat", "ok").inc(4)
    rpc.labels("gate1", "Gate@a", "Chat", "service_not_found").inc(1)
    Histogram("mqant_rpc_seconds", "", [*BASE, "target"], registry=registry).labels(
        "gate1", "Gate@a", "Chat"
    ).observe(0.2)
    Counter("mqant_fanout_deliveries_total", "", BASE, registry=registry).labels(
        "gate1", "Gate@a"
    ).inc(40)
    refused = Counter(
        "mqant_connections_refused_total", "", [*BASE, "transport", "reason"], registry=registry
    )
    refused.labels("gate1", "Gate@a", "tcp", "max_connections").inc(3)
    refused.labels("gate1", "Gate@a", "websocket", "rate").inc(1)
    dropped = Counter("mqant_pushes_dropped_total", "", [*BASE, "reason"], registry=registry)
    dropped.labels("gate1", "Gate@a", "slow").inc(5)
    errors = Counter("mqant_layer_errors_total", "", [*BASE, "kind"], registry=registry)
    errors.labels("gate1", "Gate@a", "send").inc(2)
    Gauge("mqant_storage_queue_depth", "", BASE, registry=registry).labels("gate1", "Gate@a").set(9)
    lag = Gauge("mqant_event_loop_lag_seconds", "", BASE, registry=registry)
    lag.labels("gate1", "Gate@a").set(0.004)
    return registry


def test_a_snapshot_sums_each_figure_over_its_labels():
    figures = snapshot("gate1", registry_with_traffic())
    assert figures["process"] == "gate1"
    assert figures["connections"] == {"Gate@a": {"websocket": 3.0, "tcp": 2.0}}
    assert (figures["calls"], figures["call_errors"]) == (10.0, 3.0)
    assert (figures["rpc_calls"], figures["rpc_errors"]) == (5.0, 1.0)
    assert figures["fanout"] == 40.0
    assert figures["refused"] == 4.0
    assert figures["pushes_dropped"] == 5.0
    assert figures["layer_errors"] == 2.0
    assert figures["storage_queue"] == 9.0
    assert figures["loop_lag"] == 0.004
    assert figures["call_seconds"]["count"] == 3.0
    assert math.isclose(figures["call_seconds"]["sum"], 5.055)
    # cumulative, summed over the two handlers, +Inf last
    buckets = [[0.01, 1.0], [0.1, 2.0], [1.0, 2.0], ["+Inf", 3.0]]
    assert figures["call_seconds"]["buckets"] == buckets
    assert figures["rpc_seconds"]["count"] == 1.0
    assert figures["opened"] == 0.0  # a metric missing from the registry reads as zero


def test_a_registry_without_the_metrics_gives_zeros():
    figures = snapshot("modules1", CollectorRegistry())
    assert figures["connections"] == {}
    assert figures["calls"] == figures["fanout"] == figures["loop_lag"] == 0.0
    assert figures["call_seconds"] == {"count": 0.0, "sum": 0.0, "buckets": []}


def test_connections_without_a_gate_label_count_for_the_process_and_gates_are_bounded():
    registry = CollectorRegistry()
    gauge = Gauge("mqant_connections", "", [*BASE, "transport"], registry=registry)
    gauge.labels("modules1", "", "tcp").set(1)
    for n in range(MAX_GATES + 5):
        gauge.labels("gate1", f"Gate@{n:03}", "tcp").set(1)
    connections = snapshot("gate1", registry)["connections"]
    assert len(connections) == MAX_GATES
    assert connections.get("modules1", {"tcp": 1.0}) == {"tcp": 1.0}


def test_another_process_answer_keeps_only_the_known_figures_within_bounds():
    answer = snapshot("gate1", registry_with_traffic())
    answer["secret"] = "s3cr3t"
    answer["calls"] = "many"
    answer["fanout"] = math.inf
    answer["connections"] = {f"g{n}": {"tcp": n, "x" * 500: 1} for n in range(100)}
    answer["call_seconds"]["buckets"] = [[n, n] for n in range(1000)]
    figures = clean(answer)
    assert figures is not None
    assert "secret" not in figures
    assert figures["calls"] == 0.0
    assert figures["fanout"] == 0.0
    assert figures["call_errors"] == 3.0
    assert len(figures["connections"]) == MAX_GATES
    assert all(len(name) <= 64 for t in figures["connections"].values() for name in t)
    assert len(figures["call_seconds"]["buckets"]) == MAX_BUCKETS
    assert clean(answer) == clean(figures)  # a clean snapshot is kept as it is
    assert clean(["not", "a", "snapshot"]) is None
    assert clean({"calls": 1}) is None
