"""One process's figures for the admin's live dashboard, summed from its Prometheus registry.

Every process (gate or module process) keeps its own counters; the admin is served by one
gate. So each process answers ``SNAPSHOT`` on its nodes' channels (mqant.app, the gate's
inbox) with ``snapshot()``: a small dict of totals, whatever the number of label sets
behind them, that mqant.dashboard gathers from every live process. Counters stay totals
here; the dashboard's page turns successive totals into rates.

Only the metric names are known here (mqant.metrics defines the metrics): a metric that is
missing, in a process of an older version or without metrics, reads as zero.
"""

import math
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric

# The RPC a process answers with its snapshot: without "HD_", no client reaches it, and a
# dot no handler's name can hold.
SNAPSHOT = "mqant.snapshot"

OK = "ok"  # the outcome of a call that succeeded; any other is an error
MAX_GATES = 16  # gates one snapshot names connections for (one per process, in practice)
MAX_BUCKETS = 32  # histogram bounds one snapshot carries at most
MAX_LABEL = 64  # characters of a gate's or a transport's name

# snapshot key -> counter family (prometheus_client drops "_total" from a family's name)
COUNTERS = {
    "opened": "mqant_connections_opened",
    "refused": "mqant_connections_refused",
    "packets_in": "mqant_packets_received",
    "packets_out": "mqant_packets_sent",
    "bytes_in": "mqant_bytes_received",
    "bytes_out": "mqant_bytes_sent",
    "fanout": "mqant_fanout_deliveries",
    "pushes_dropped": "mqant_pushes_dropped",
    "slow_consumers": "mqant_slow_consumers",
    "rate_limited": "mqant_rate_limited",
    "login_failures": "mqant_login_failures",
    "lockouts": "mqant_lockouts",
    "layer_errors": "mqant_layer_errors",
}
HISTOGRAMS = {"call_seconds": "mqant_call_seconds", "rpc_seconds": "mqant_rpc_seconds"}


def snapshot(process_id: str, registry: CollectorRegistry = REGISTRY) -> dict[str, Any]:
    """This process's figures: connections per gate and transport, counter totals (calls
    and their errors, RPCs and theirs, fan-out deliveries, refusals, drops...), the call
    and RPC latency histograms summed over their labels, the storage queue and the event
    loop's lag. Its size is bounded whatever the registry holds."""
    families = {family.name: family for family in registry.collect()}
    figures: dict[str, Any] = {"process": process_id[:MAX_LABEL], "at": time.time()}
    figures["connections"] = _connections(families.get("mqant_connections"))
    for key, name in COUNTERS.items():
        figures[key] = _total(_samples(families.get(name), "_total"))
    figures["calls"], figures["call_errors"] = _outcomes(families.get("mqant_calls"))
    figures["rpc_calls"], figures["rpc_errors"] = _outcomes(families.get("mqant_rpc_calls"))
    for key, name in HISTOGRAMS.items():
        figures[key] = _histogram(families.get(name))
    figures["storage_queue"] = _total(_samples(families.get("mqant_storage_queue_depth"), ""))
    lag = [value for _, value in _samples(families.get("mqant_event_loop_lag_seconds"), "")]
    figures["loop_lag"] = max(lag, default=0.0)
    return figures


Sample = tuple[dict[str, str], float]


def _samples(family: Metric | None, suffix: str) -> list[Sample]:
    """The (labels, value) of ``family``'s samples named ``<family><suffix>``."""
    if family is None:
        return []
    name = family.name + suffix
    return [(s.labels, s.value) for s in family.samples if s.name == name and _finite(s.value)]


def _finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def _total(samples: Iterable[Sample]) -> float:
    return float(sum(value for _, value in samples))


def _outcomes(family: Metric | None) -> tuple[float, float]:
    """Calls in all, and those whose outcome is not ``ok``."""
    samples = _samples(family, "_total")
    errors = [(labels, value) for labels, value in samples if labels.get("outcome") != OK]
    return _total(samples), _total(errors)


def _connections(family: Metric | None) -> dict[str, dict[str, float]]:
    """Open connections: gate -> transport -> count (a process's gate, else its name)."""
    gates: dict[str, dict[str, float]] = {}
    for labels, value in _samples(family, ""):
        gate = (labels.get("gate") or labels.get("process") or "")[:MAX_LABEL]
        if gate not in gates and len(gates) >= MAX_GATES:
            continue
        transports = gates.setdefault(gate, {})
        transport = labels.get("transport", "")[:MAX_LABEL]
        transports[transport] = transports.get(transport, 0.0) + value
    return gates


def _histogram(family: Metric | None) -> dict[str, Any]:
    """A histogram summed over its labels: ``count``, ``sum`` and ``buckets``, the
    cumulative count at each upper bound (``"+Inf"`` last), in increasing order."""
    buckets: dict[float, float] = {}
    if family is not None:
        for sample in family.samples:
            if sample.name == family.name + "_bucket" and "le" in sample.labels:
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    bounds = sorted(buckets)
    if len(bounds) > MAX_BUCKETS:  # keep the largest bound (+Inf): it counts them all
        bounds = [*bounds[: MAX_BUCKETS - 1], bounds[-1]]
    return {
        "count": _total(_samples(family, "_count")),
        "sum": _total(_samples(family, "_sum")),
        "buckets": [[_bound(bound), buckets[bound]] for bound in bounds],
    }


def _bound(bound: float) -> float | str:
    """An upper bound as JSON can carry it."""
    return "+Inf" if math.isinf(bound) else bound


def clean(answer: Any) -> dict[str, Any] | None:
    """Another process's snapshot, keeping only the known figures, of their known types and
    sizes (a process of another version may answer more, or otherwise); None when it is not
    a snapshot at all."""
    if not isinstance(answer, dict) or not isinstance(answer.get("process"), str):
        return None
    figures: dict[str, Any] = {"process": answer["process"][:MAX_LABEL]}
    for key in ("at", *COUNTERS, "calls", "call_errors", "rpc_calls", "rpc_errors"):
        figures[key] = _number(answer.get(key))
    figures["storage_queue"] = _number(answer.get("storage_queue"))
    figures["loop_lag"] = _number(answer.get("loop_lag"))
    figures["connections"] = _clean_connections(answer.get("connections"))
    for key in HISTOGRAMS:
        figures[key] = _clean_histogram(answer.get(key))
    return figures


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        return 0.0
    return float(value)


def _clean_connections(value: Any) -> dict[str, dict[str, float]]:
    if not isinstance(value, dict):
        return {}
    gates: dict[str, dict[str, float]] = {}
    for gate, transports in list(value.items())[:MAX_GATES]:
        if isinstance(gate, str) and isinstance(transports, dict):
            gates[gate[:MAX_LABEL]] = {
                str(name)[:MAX_LABEL]: _number(count)
                for name, count in list(transports.items())[:MAX_GATES]
            }
    return gates


def _clean_histogram(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        value = {}
    buckets = value.get("buckets")
    pairs = buckets[:MAX_BUCKETS] if isinstance(buckets, list) else []
    return {
        "count": _number(value.get("count")),
        "sum": _number(value.get("sum")),
        "buckets": [
            [pair[0] if pair[0] == "+Inf" else _number(pair[0]), _number(pair[1])]
            for pair in pairs
            if isinstance(pair, list | tuple) and len(pair) == 2
        ],
    }
