"""This process's Prometheus metrics, in ``prometheus_client.REGISTRY``.

The hot path (every packet, every call) counts into plain Python numbers of children bound
once — an attribute increment, about a tenth of a prometheus_client child's ``inc()``, which
takes a lock; a connection's bytes and packets are counted on the connection itself and summed
at a scrape (``on_collect``) — and a collector turns them into metric families only when
someone scrapes (``/metrics``: mqant.scrape). Every series carries the labels ``process`` (the
process's ProcessID) and ``gate`` (its gate's id, ``""`` in a module process), added at
collection: ``identify`` sets them.

Children are counted on the event loop's thread (the increments are not atomic otherwise);
the few counted from other threads are ``locked``.

Labels are bounded: none takes a string a client chose. A call's ``module`` and ``handler``
name a registered module type and one of its handlers (``know_handlers``), or are counted as
``(unknown)``; reasons, outcomes and limits come from the fixed sets below.
"""

import bisect
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import REGISTRY, Collector

logger = logging.getLogger(__name__)

UNKNOWN = "(unknown)"

# A call's outcomes (mqant_calls_total, mqant_handler_calls_total, mqant_rpc_calls_total).
OK = "ok"
ERROR = "error"  # the handler answered an error
NOT_FOUND = "not_found"  # no such module type, node or handler
TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"  # Redis, the database or the node known down
BAD_REQUEST = "bad_request"  # a malformed topic, a handler without HD_, a payload not JSON
REFUSED = "refused"  # too many calls in flight, the server stopping
RATE_LIMITED = "rate_limited"
CANCELLED = "cancelled"  # the caller gave up, or the process stopped
OUTCOMES = (OK, ERROR, NOT_FOUND, TIMEOUT, UNAVAILABLE, BAD_REQUEST, REFUSED, RATE_LIMITED)

# mqant.errors' kinds (RPCError.kind) as outcomes.
_KIND_OUTCOMES = {
    "service_not_found": NOT_FOUND,
    "function_not_found": NOT_FOUND,
    "deadline_exceeded": TIMEOUT,
    "service_unavailable": UNAVAILABLE,
    "remote": ERROR,
    "error": ERROR,
}

# Seconds: from half a millisecond (a call in one process) to the default RPC deadline.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# (module, handler) pairs learned from answers, past those known from the code (a handler a
# module registers in on_init, in another process): at most this many.
MAX_LEARNED_HANDLERS = 1000


def outcome_of(kind: str) -> str:
    """The outcome of a call that failed with an RPCError of ``kind``."""
    return _KIND_OUTCOMES.get(kind, ERROR)


class Count:
    """A counter's or a gauge's value, for one set of labels."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0

    def add(self, n: float = 1) -> None:
        self.value += n

    def set(self, value: float) -> None:
        self.value = value


class LockedCount(Count):
    """A Count that threads other than the event loop's change."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def add(self, n: float = 1) -> None:
        with self._lock:
            self.value += n


class Timings:
    """A histogram's buckets (not cumulative: the collector sums them) and sum, for one set of
    labels."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: over every bound (+Inf)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds


Child = Count | Timings


class Family:
    """One metric: its name, help text, kind (``counter``, ``gauge``, ``histogram``), label
    names, and a child per set of label values, made once by ``child``."""

    def __init__(
        self,
        name: str,
        doc: str,
        kind: str,
        labelnames: Sequence[str] = (),
        *,
        locked: bool = False,
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self.name, self.doc, self.kind = name, doc, kind
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(buckets)
        self.locked = locked
        self.children: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()
        if not labelnames:
            self.child()  # a metric without labels shows 0 from the start

    def child(self, *values: str) -> Any:
        """The child of these label values (bounded by the caller: never a client's string)."""
        found = self.children.get(values)
        if found is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            with self._lock:
                found = self.children.get(values)
                if found is None:
                    found = self.children[values] = self._new()
        return found

    def _new(self) -> Child:
        if self.kind == "histogram":
            return Timings(self.buckets)
        return LockedCount() if self.locked else Count()

    def collect(self, identity: tuple[str, str]) -> Metric:
        labels = ["process", "gate", *self.labelnames]
        family: Any
        if self.kind == "counter":
            family = CounterMetricFamily(self.name, self.doc, labels=labels)
        elif self.kind == "gauge":
            family = GaugeMetricFamily(self.name, self.doc, labels=labels)
        else:
            family = HistogramMetricFamily(self.name, self.doc, labels=labels)
        for values, child in list(self.children.items()):
            if isinstance(child, Timings):
                family.add_metric([*identity, *values], self._buckets(child), child.sum)
            else:
                family.add_metric([*identity, *values], child.value)
        return family  # type: ignore[no-any-return]

    def _buckets(self, timings: Timings) -> list[tuple[str, float]]:
        total = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip((*self.buckets, float("inf")), timings.counts, strict=True):
            total += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return buckets


class _Metrics(Collector):
    """Every Family of this module, collected for prometheus_client."""

    def __init__(self) -> None:
        self.families: list[Family] = []
        self.process = ""
        self.gate = ""
        self.gatherers: list[Callable[[], None]] = []

    def add(self, family: Family) -> Family:
        self.families.append(family)
        return family

    def collect(self) -> Iterator[Metric]:
        for gather in list(self.gatherers):
            try:
                gather()
            except Exception:  # the other figures are still worth a scrape
                logger.exception("gathering metrics with %r failed", gather)
        identity = (self.process, self.gate)
        for family in self.families:
            yield family.collect(identity)

    def describe(self) -> Iterator[Metric]:
        # Names only (registering must not collect): the registry maps them to this collector.
        for family in self.families:
            yield _EmptyFamily(family.name, family.kind)


class _EmptyFamily(Metric):
    def __init__(self, name: str, kind: str) -> None:
        super().__init__(name.removesuffix("_total"), "", kind)


_metrics = _Metrics()


def identify(*, process: str | None = None, gate: str | None = None) -> None:
    """Set the ``process`` and ``gate`` labels every series carries (None: unchanged)."""
    if process is not None:
        _metrics.process = process
    if gate is not None:
        _metrics.gate = gate


def on_collect(gather: Callable[[], None]) -> None:
    """Call ``gather`` before each collection: it brings figures the hot path keeps elsewhere
    (a connection's bytes) into their children."""
    if gather not in _metrics.gatherers:
        _metrics.gatherers.append(gather)


def identity() -> tuple[str, str]:
    """The (process, gate) labels."""
    return _metrics.process, _metrics.gate


def _counter(name: str, doc: str, labels: Sequence[str] = (), **kw: Any) -> Family:
    return _metrics.add(Family(name, doc, "counter", labels, **kw))


def _gauge(name: str, doc: str, labels: Sequence[str] = (), **kw: Any) -> Family:
    return _metrics.add(Family(name, doc, "gauge", labels, **kw))


def _histogram(name: str, doc: str, labels: Sequence[str] = (), **kw: Any) -> Family:
    return _metrics.add(Family(name, doc, "histogram", labels, **kw))


# Connections, by transport: "tcp" (TCP_ADDR), "websocket" (the ASGI server's WebSocket),
# "ws-listener" (the gate's own WebSocket port, WS_ADDR).
TRANSPORTS = ("tcp", "websocket", "ws-listener")
CONNECTIONS = _gauge("mqant_connections", "MQTT connections open", ["transport"])
CONNECTIONS_OPENED = _counter(
    "mqant_connections_opened_total", "MQTT connections accepted", ["transport"]
)
# Why a connection was refused: a connection slot (gate.limits), or its CONNECT.
REFUSAL_REASONS = (
    "max_connections", "per_address", "connect_rate", "auth", "protocol", "stopping", "timeout",
)  # fmt: skip
CONNECTIONS_REFUSED = _counter(
    "mqant_connections_refused_total",
    "connections refused or closed before CONNECT was accepted",
    ["transport", "reason"],
)
PACKETS_RECEIVED = _counter("mqant_packets_received_total", "MQTT packets decoded", ["transport"])
PACKETS_SENT = _counter("mqant_packets_sent_total", "MQTT packets sent", ["transport"])
BYTES_RECEIVED = _counter("mqant_bytes_received_total", "MQTT bytes received", ["transport"])
BYTES_SENT = _counter("mqant_bytes_sent_total", "MQTT bytes sent", ["transport"])

CALLS = _counter(
    "mqant_calls_total",
    "clients' calls routed by this process (MQTT PUBLISH, /api/call), by outcome",
    ["module", "handler", "outcome"],
)
CALL_SECONDS = _histogram(
    "mqant_call_seconds", "clients' calls, from routing to the answer", ["module", "handler"]
)
# Each call is timed once where it is counted: a client's call where it is routed (above),
# an RPC call by its caller (below), a call that came through the channel layer also by the
# module that served it (here).
HANDLER_CALLS = _counter(
    "mqant_handler_calls_total",
    "calls the modules of this process served for other processes (through the channel layer)",
    ["module", "handler", "outcome"],
)
HANDLER_SECONDS = _histogram(
    "mqant_handler_seconds", "calls served for other processes, queueing included",
    ["module", "handler"],
)  # fmt: skip
RPC_CALLS = _counter(
    "mqant_rpc_calls_total",
    "RPC calls this process made (mqant.call...; not clients' calls), by module type",
    ["target", "outcome"],
)
RPC_SECONDS = _histogram("mqant_rpc_seconds", "RPC calls this process made", ["target"])

FANOUT_DELIVERIES = _counter(
    "mqant_fanout_deliveries_total", "group messages handed to member connections"
)
# "no_connection": its connection is gone; "closed": it is closing; "channel_full": the
# channel layer's channel of its gate is full; "too_large": over the MQTT 5 client's Maximum
# Packet Size; "away": a QoS 0 push to a persistent session away; "unqueued": a QoS 1 push
# its session's queue could not take (sent at QoS 0 instead).
PUSHES_DROPPED = _counter("mqant_pushes_dropped_total", "pushes not delivered", ["reason"])
PERSISTENT_SESSIONS = _gauge(
    "mqant_persistent_sessions",
    "persistent MQTT sessions of this process, with a connection or away",
    ["state"],
)
# Pushes queued for persistent MQTT sessions (mqant.queues) dropped, oldest first, for a
# session's bound: "messages" (SESSION_QUEUE_MAX_MESSAGES) or "bytes" (SESSION_QUEUE_MAX_BYTES).
SESSION_PUSHES_DROPPED = _counter(
    "mqant_session_pushes_dropped_total",
    "pushes dropped from persistent sessions' queues for their bounds",
    ["bound"],
)
SLOW_CONSUMERS = _counter(
    "mqant_slow_consumers_total", "connections cut for MAX_OUTGOING_BYTES unread"
)
# "message_rate", "control_rate", "calls_in_flight", "login_budget", "register_budget",
# "lockout", "hash_queue".
RATE_LIMITS = _counter(
    "mqant_rate_limited_total", "calls, packets and logins refused for a limit", ["limit"],
    locked=True,
)  # fmt: skip
LOGIN_FAILURES = _counter("mqant_login_failures_total", "logins with a wrong password", locked=True)
LOCKOUTS = _counter(
    "mqant_lockouts_total", "lockouts begun (a user name or an address)", locked=True
)

STORAGE_QUEUE_DEPTH = _gauge(
    "mqant_storage_queue_depth", "writes of the sessions' keepers waiting or running"
)
STORAGE_WRITE_SECONDS = _histogram(
    "mqant_storage_write_seconds", "one write of a session's keeper (storage, presence, events)"
)
# "redis", "database", "channel_layer" (a layer's failure that is no known dependency's).
LAYER_ERRORS = _counter(
    "mqant_layer_errors_total", "failures of Redis, the database or the channel layer", ["kind"],
    locked=True,
)  # fmt: skip
# Game tables (mqant.tables).
TABLES_OPEN = _gauge("mqant_tables_open", "game tables running in this process")
# Seconds: how late a ticking table's frame began against its schedule (2 ms: the aim).
TICK_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.022, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
TABLE_TICK_LATENESS = _histogram(
    "mqant_table_tick_lateness_seconds", "how late ticking tables' frames began",
    buckets=TICK_BUCKETS,
)  # fmt: skip
TABLE_TICK_LATENESS_MAX = _gauge(
    "mqant_table_tick_lateness_max_seconds",
    "the latest frame of a ticking table in the last 10 seconds",
)
TABLE_FRAMES_SKIPPED = _counter(
    "mqant_table_frames_skipped_total", "frames ticking tables skipped after a stall"
)
TABLE_PUSHES = _counter("mqant_table_pushes_total", "pushes tables sent at their frames' end")
TABLE_QUEUE_FULL = _counter(
    "mqant_table_queue_full_total", "events refused because a table's queue was full"
)
EVENT_LOOP_LAG = _gauge("mqant_event_loop_lag_seconds", "how late the event loop last woke a timer")


# The handlers that exist, by module type: the only values of the call labels.
_handlers: dict[str, set[str]] = {}
_learned = 0


def know_handlers(module_type: str, names: Iterable[str]) -> None:
    """Record handlers that exist (a module type's declared or registered ones)."""
    _handlers.setdefault(module_type, set()).update(names)


def learn_handler(module_type: str, handler: str) -> bool:
    """Record a handler that answered (so exists), up to MAX_LEARNED_HANDLERS; whether it is
    known now."""
    global _learned
    known = _handlers.get(module_type)
    if known is not None and handler in known:
        return True
    if _learned >= MAX_LEARNED_HANDLERS:
        return False
    _learned += 1
    know_handlers(module_type, (handler,))
    return True


def is_known(module_type: str, handler: str) -> bool:
    known = _handlers.get(module_type)
    return known is not None and handler in known


def module_of(target: str) -> str:
    """The module type of a call's target (``Type`` or ``Type@node``)."""
    return target.partition("@")[0]


def call_labels(target: str, handler: str) -> tuple[str, str]:
    """(module, handler) as labels: a handler that exists, else ``(unknown)`` twice."""
    module = module_of(target)
    if is_known(module, handler):
        return module, handler
    return UNKNOWN, UNKNOWN


class CallCounts:
    """The children of one callee (a module type's handler, or a module type): one count per
    outcome, and the timings. ``done`` is what a call costs: one method call."""

    __slots__ = ("_counts", "_labels", "known", "ok", "timings")

    def __init__(self, counts: Family, timings: Family, labels: tuple[str, ...]) -> None:
        self._counts, self._labels = counts, labels
        self.known = labels[0] != UNKNOWN
        self.ok: Count = counts.child(*labels, OK)
        self.timings: Timings = timings.child(*labels)

    def done(self, outcome: str, seconds: float) -> None:
        """Count a call that ended with ``outcome`` after ``seconds``."""
        if outcome == OK:
            self.ok.value += 1
        else:
            self._counts.child(*self._labels, outcome).add()
        timings = self.timings
        timings.counts[bisect.bisect_left(timings.bounds, seconds)] += 1
        timings.sum += seconds


# Clients' calls by (target, handler) as they came (a target with no "@node"), for known
# handlers only: at most one entry per handler that exists.
_client_calls: dict[tuple[str, str], CallCounts] = {}


def client_call(target: str, handler: str) -> CallCounts:
    """The counts of a client's call to ``target``'s ``handler`` (strings the client chose,
    bounded here: an unknown pair is counted as ``(unknown)``)."""
    counts = _client_calls.get((target, handler))
    if counts is not None:
        return counts
    module = module_of(target)
    if not is_known(module, handler):
        module = handler = UNKNOWN
    counts = _client_calls.get((module, handler))
    if counts is None:
        counts = _client_calls[(module, handler)] = CallCounts(
            CALLS, CALL_SECONDS, (module, handler)
        )
    return counts


def client_call_done(
    counts: CallCounts, target: str, handler: str, outcome: str, seconds: float
) -> None:
    """Count a client's call (``counts``: its ``client_call``) that ended with ``outcome``;
    one answered ``ok`` teaches that its handler exists (a handler registered in on_init of a
    module in another process)."""
    if not counts.known and outcome == OK and learn_handler(module_of(target), handler):
        counts = client_call(target, handler)
    counts.done(outcome, seconds)


def count_call(target: str, handler: str, outcome: str, seconds: float = 0.0) -> None:
    """``client_call_done`` in one step."""
    client_call_done(client_call(target, handler), target, handler, outcome, seconds)


def handler_calls(module_type: str, handler: str) -> CallCounts:
    """The counts of a handler this process runs (a registered one: the labels stay bounded)."""
    return CallCounts(HANDLER_CALLS, HANDLER_SECONDS, (module_type, handler))


_rpc_calls: dict[str, CallCounts] = {}


def rpc_calls(module_type: str) -> CallCounts:
    """The counts of RPC calls to ``module_type`` (one that exists, else ``(unknown)``)."""
    counts = _rpc_calls.get(module_type)
    if counts is None:
        target = module_type if module_type in _handlers else UNKNOWN
        counts = _rpc_calls.get(target)
        if counts is None:
            counts = _rpc_calls[target] = CallCounts(RPC_CALLS, RPC_SECONDS, (target,))
    return counts


class TransportCounts:
    """The children of one transport's connection metrics, bound once."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "connections",
        "opened",
        "packets_received",
        "packets_sent",
        "transport",
    )

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.connections: Count = CONNECTIONS.child(transport)
        self.opened: Count = CONNECTIONS_OPENED.child(transport)
        self.packets_received: Count = PACKETS_RECEIVED.child(transport)
        self.packets_sent: Count = PACKETS_SENT.child(transport)
        self.bytes_received: Count = BYTES_RECEIVED.child(transport)
        self.bytes_sent: Count = BYTES_SENT.child(transport)

    def refused(self, reason: str) -> None:
        """Count a connection refused for ``reason`` (one of REFUSAL_REASONS)."""
        CONNECTIONS_REFUSED.child(self.transport, reason).add()


_transports: dict[str, TransportCounts] = {}


def transport(name: str) -> TransportCounts:
    """The counts of transport ``name`` (one of TRANSPORTS: the code's, never a client's)."""
    counts = _transports.get(name)
    if counts is None:
        counts = _transports[name] = TransportCounts(name)
    return counts


REGISTRY.register(_metrics)
