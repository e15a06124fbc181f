"""OpenTelemetry tracing of client calls, off by default (README, "Tracing").

When it is on, a client's call makes one trace, whatever the processes it crosses:

- ``mqant.call <Type>/<HD_x>`` (SERVER), in the process that received the call (the gate, or
  ``/api/call``): ``mqant.routing.dispatch``. Its trace id and span id are the call Session's
  ``trace_id`` and ``span_id``, so the ``Trace`` of the reply's envelope is the trace id;
- ``mqant.rpc <Type>/<fn>`` (CLIENT), the RPC hop: ``mqant.rpc.call_node``, with the module
  type, the node, its process and whether the call stayed in this process;
- ``mqant.handler <Type>/<fn>``, the handler: ``mqant.server.ModuleServer.invoke``, SERVER in
  the process that received the call from the channel layer, INTERNAL when the caller's
  process hosts the node (the local shortcut). A ``register`` handler's span includes its
  wait in the node's queue.

The calls modules make of each other (``call``, ``call_nr``: the connection events, the
census at start) are traces of their own when no call is under way.

The context crosses processes as a W3C ``traceparent`` field of the ``mqant.call`` message, the
RPC span's: a call made by a module to another carries it too, with or without a Session, and
the Session's own span id names the client call, not the hop its handler is the child of.
Span names are made of what the process knows to exist: the handler's name only once a
handler of that name answered (a client cannot make up names), the module type once a node of
it was found, else the bare prefix.

Off, the hot path pays one test of ``tracer`` (None) per call: no span, no context, no import
of the SDK. On, the process has a TracerProvider of its own (not the global one): a batch
processor per exporter (the SDK's bounded queue: 2048 spans, dropped past that, with a
warning; ``OTEL_BSP_*`` change it) and the exporters of the standard environment
(``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_*``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``) or ``MQANT["TRACING_EXPORTER"]``.
``stop`` flushes them within a bounded time, in the drain.
"""

import logging
import os
import threading
from collections.abc import Sequence
from contextvars import ContextVar, Token
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mqant import conf
from mqant.errors import RemoteError, RPCError

if TYPE_CHECKING:  # the SDK is imported once tracing starts, never when it is off
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)

# The tracer while tracing is on, else None: the one thing the hot path reads.
tracer: Tracer | None = None
_provider: "TracerProvider | None" = None

CALL, RPC, HANDLER = "mqant.call", "mqant.rpc", "mqant.handler"
# Seconds the drain gives the exporters to send what is left, at most.
FLUSH_TIMEOUT = 5.0
# Characters of an error text kept in a span's status: texts quote what clients sent.
MAX_ERROR_TEXT = 200
EXPORTER_GROUP = "opentelemetry_traces_exporter"
_OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
_PROPAGATOR = TraceContextTextMapPropagator()

# The trace id and span id the next span takes (0: a random one), set around one start_span.
_preset: ContextVar[tuple[int, int]] = ContextVar("mqant_trace_ids", default=(0, 0))


class TracedSession(Protocol):
    """What the call span reads and writes of the call's Session."""

    trace_id: str
    span_id: str
    session_id: str
    user_id: str
    network: str


class NodeInfo(Protocol):
    """What the RPC span says of the node called (mqant.nodes.Node)."""

    @property
    def node_id(self) -> str: ...
    @property
    def module_type(self) -> str: ...
    @property
    def process_id(self) -> str: ...


def wanted() -> bool:
    """Whether tracing is on: ``MQANT["TRACING"]`` when it is True or False; when it is None
    (the default), when ``MQANT["TRACING_EXPORTER"]`` names an exporter or
    ``OTEL_TRACES_EXPORTER`` names one that is not ``none``. ``OTEL_SDK_DISABLED=true`` turns
    it off whatever the rest says."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    setting = conf.get("TRACING")
    if setting is not None:
        return bool(setting)
    if conf.get("TRACING_EXPORTER"):
        return True
    return os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() not in ("", "none")


def start(
    service_name: str, process_id: str, *, processors: Sequence["SpanProcessor"] | None = None
) -> bool:
    """Start tracing in this process if it is wanted (and not started yet); returns whether
    it runs. ``service_name`` is the default ``service.name`` (``OTEL_SERVICE_NAME`` wins);
    ``processors``, when given, replace the exporters of the settings and the environment.

    Raises ImproperlyConfigured for an exporter that is not installed or a protocol this
    project does not ship."""
    global tracer, _provider
    if tracer is not None:
        return True
    if processors is None and not wanted():
        return False
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if processors is None:
        processors = [BatchSpanProcessor(exporter) for exporter in exporters()]
    # No exit hook: the SDK's would wait up to 30 s per processor for a hung collector.
    provider = TracerProvider(
        resource=_resource(service_name, process_id),
        id_generator=_session_ids(),
        shutdown_on_exit=False,
    )
    for processor in processors:
        provider.add_span_processor(processor)
    _provider, tracer = provider, provider.get_tracer("mqant")
    logger.info("tracing on: %d span processor(s)", len(processors))
    return True


def stop(timeout: float = FLUSH_TIMEOUT) -> None:
    """Stop tracing: the spans waiting are exported, within ``timeout`` seconds (at most
    FLUSH_TIMEOUT); what a hung exporter still holds then is dropped."""
    global tracer, _provider
    provider, tracer, _provider = _provider, None, None
    if provider is None:
        return
    # The SDK's shutdown takes no timeout and its flush ignores its own: a thread of its
    # own, waited for that long.
    done = threading.Thread(target=provider.shutdown, name="mqant-tracing-stop", daemon=True)
    done.start()
    timeout = max(min(timeout, FLUSH_TIMEOUT), 0.1)
    done.join(timeout)
    if done.is_alive():
        logger.warning("tracing: the exporters did not finish within %.1f s", timeout)


def exporters() -> list["SpanExporter"]:
    """The exporters ``MQANT["TRACING_EXPORTER"]`` names (a SpanExporter class as a dotted
    path, or ``{"BACKEND": path, "CONFIG": {...}}``), else those of ``OTEL_TRACES_EXPORTER``
    (comma-separated, default ``otlp``; ``none``: no exporter, the spans are only made)."""
    named = conf.get("TRACING_EXPORTER")
    if named:
        return [_named_exporter(named)]
    names = os.environ.get("OTEL_TRACES_EXPORTER", "").strip() or "otlp"
    found = []
    for name in (part.strip().lower() for part in names.split(",")):
        if name and name != "none":
            found.append(_exporter_class(_entry_name(name))())
    return found


def _named_exporter(named: str | dict[str, Any]) -> "SpanExporter":
    try:
        backend, config = (named, {}) if isinstance(named, str) else (named["BACKEND"], named)
        exporter: SpanExporter = import_string(backend)(**config.get("CONFIG", {}))
    except (ImportError, KeyError, TypeError) as err:
        raise ImproperlyConfigured(
            f"MQANT['TRACING_EXPORTER'] must name a SpanExporter class, as a dotted path or "
            f"{{'BACKEND': path, 'CONFIG': {{...}}}}, got {named!r}: {err}"
        ) from err
    return exporter


def _entry_name(name: str) -> str:
    """The entry point of exporter ``name``: ``otlp`` is the one of its protocol
    (``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` or ``OTEL_EXPORTER_OTLP_PROTOCOL``, by default
    ``http/protobuf`` as the specification says; the SDK alone would pick gRPC)."""
    if name != "otlp":
        return name
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in _OTLP_BY_PROTOCOL:
        raise ImproperlyConfigured(
            f"Expected OTLP protocol http/protobuf or grpc, got {protocol!r}"
        )
    return _OTLP_BY_PROTOCOL[protocol]


def _exporter_class(name: str) -> type["SpanExporter"]:
    found = entry_points(group=EXPORTER_GROUP, name=name)
    if not found:
        known = ", ".join(sorted(e.name for e in entry_points(group=EXPORTER_GROUP)))
        hint = " (pip install opentelemetry-exporter-otlp-proto-grpc)" if "grpc" in name else ""
        raise ImproperlyConfigured(
            f"OTEL_TRACES_EXPORTER names {name!r}, which no installed package provides{hint}; "
            f"installed: otlp, none, {known}"
        )
    exporter_class: type[SpanExporter] = next(iter(found)).load()
    return exporter_class


def _resource(service_name: str, process_id: str) -> Any:
    """The process's resource: the environment's (``OTEL_RESOURCE_ATTRIBUTES``,
    ``OTEL_SERVICE_NAME``) over mqant's defaults, the process id and ProcessID always."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create({"process.pid": os.getpid(), "mqant.process_id": process_id})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    return resource


def _session_ids() -> Any:
    """An IdGenerator whose next ids may be preset (``_preset``): the call span takes the
    Session's, which the client sees as the reply's ``Trace``."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class SessionIds(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            return _preset.get()[0] or super().generate_trace_id()

        def generate_span_id(self) -> int:
            return _preset.get()[1] or super().generate_span_id()

    return SessionIds()


def _tracer() -> Tracer:
    if tracer is None:
        raise RuntimeError("tracing is off: check mqant.tracing.tracer first")
    return tracer


def _hex_id(text: str, digits: int) -> int:
    """``text`` as an id of ``digits`` hex digits, or 0 (a random one) when it is not one."""
    if len(text) != digits:
        return 0
    try:
        return int(text, 16)
    except ValueError:
        return 0


class Traced:
    """One of mqant's spans, current while it runs (unless ``attach`` is False), named once
    what it reached is known, ended by ``close``."""

    __slots__ = ("error", "fn", "prefix", "span", "target", "token")

    def __init__(self, span: Span, prefix: str, fn: str, target: str, attach: bool) -> None:
        self.span, self.prefix, self.fn, self.target = span, prefix, fn, target
        self.error: BaseException | None = None
        self.token: Token[Any] | None = (
            otel_context.attach(trace.set_span_in_context(span)) if attach else None
        )

    def reached(self, module_type: str) -> None:
        """The call found a node of ``module_type``."""
        self.target = module_type
        self.span.set_attribute("rpc.service", module_type)

    def fail(self, error: BaseException) -> None:
        """The call ended with ``error`` (answered, not raised)."""
        self.error = error

    def close(self, error: BaseException | None = None) -> None:
        """Name the span, mark its failure, make it no longer current, end it."""
        error = error or self.error
        span, name = self.span, self.prefix
        if self.target:
            name = f"{name} {self.target}"
            if error is None or isinstance(error, RemoteError):  # a handler of that name ran
                name = f"{name}/{self.fn}"
                span.set_attribute("rpc.method", self.fn)
        span.update_name(name)
        if error is not None:
            _mark(span, error)
        if self.token is not None:
            otel_context.detach(self.token)
        span.end()


def _mark(span: Span, error: BaseException) -> None:
    kind = error.kind if isinstance(error, RPCError) else type(error).__name__
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, str(error)[:MAX_ERROR_TEXT]))


def start_call(session: TracedSession, handler: str) -> Traced:
    """The span of a client's call to ``handler``, with the Session's ids (a random one for
    any that is not an id); the Session then holds the span's (another trace's when the call
    came inside one: an instrumented HTTP request)."""
    token = _preset.set((_hex_id(session.trace_id, 32), _hex_id(session.span_id, 16)))
    try:
        span = _tracer().start_span(
            CALL, kind=SpanKind.SERVER, attributes=_session_attributes(session)
        )
    finally:
        _preset.reset(token)
    ids = span.get_span_context()
    session.trace_id, session.span_id = f"{ids.trace_id:032x}", f"{ids.span_id:016x}"
    return Traced(span, CALL, handler, "", attach=True)


def _session_attributes(session: TracedSession) -> dict[str, str]:
    attributes = {
        "rpc.system": "mqant",
        "mqant.session_id": session.session_id,
        "mqant.network": session.network,
    }
    if session.user_id:
        attributes["enduser.id"] = session.user_id[:MAX_ERROR_TEXT]
    return attributes


def start_rpc(node: NodeInfo, fn: str, local: bool) -> Traced:
    """The span of an RPC hop to ``node``; current, so that the handler's span (local) or
    the message's ``traceparent`` (remote) is its child."""
    attributes: dict[str, str | bool] = {
        "rpc.system": "mqant",
        "rpc.service": node.module_type,
        "mqant.node": node.node_id,
        "mqant.node_process": node.process_id,
        "mqant.local": local,
    }
    span = _tracer().start_span(RPC, kind=SpanKind.CLIENT, attributes=attributes)
    return Traced(span, RPC, fn, node.module_type, attach=True)


def start_handler(module_type: str, fn: str, caller: otel_context.Context | None) -> Traced:
    """The span of handler ``fn`` (registered: the name is real): SERVER as the child of a
    remote ``caller``'s context, else INTERNAL as the child of the current span. Not made
    current here: the handler may run in another task (mqant.server enters it there)."""
    kind = SpanKind.INTERNAL if caller is None else SpanKind.SERVER
    attributes = {"rpc.system": "mqant", "rpc.service": module_type, "rpc.method": fn}
    span = _tracer().start_span(
        f"{HANDLER} {module_type}/{fn}", context=caller, kind=kind, attributes=attributes
    )
    return Traced(span, HANDLER, fn, module_type, attach=False)


def enter(traced: Traced) -> Token[Any]:
    """Make ``traced``'s span current in the running task, until ``leave``."""
    return otel_context.attach(trace.set_span_in_context(traced.span))


def leave(token: Token[Any]) -> None:
    otel_context.detach(token)


def inject(message: dict[str, Any]) -> None:
    """Add the current span's ``traceparent`` to a channel-layer message."""
    _PROPAGATOR.inject(message)


def extract(message: Any) -> otel_context.Context | None:
    """The caller's context from a message's ``traceparent``, if it has a valid one."""
    traceparent = message.get("traceparent")
    if not isinstance(traceparent, str):
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent[:128]})
    return context if trace.get_current_span(context).get_span_context().is_valid else None
