"""Log lines a client can cause, bounded: a handler filter for the process's log output.

A client must not be able to write the server's disk through its log. Code logs what clients
cause once per connection or per event worth knowing, but a thousand connections can still
cause a thousand lines a second, and a third-party library (Django's security logger, daphne)
may log a traceback per request. ``RateLimitFilter``, on the log handler, lets through at
most ``burst`` records of one kind (logger, level and message template) at once and ``rate``
a second after that; what it holds back is counted and said with the next record of that
kind that passes. Messages are cut at ``max_chars``. Records of ``quiet_tracebacks`` loggers
(requests refused for a bad Host header, an oversized body) lose their traceback: the client
caused them, there is no bug to read.

Lines an operator can search: the gate binds the session of the connection whose bytes it
handles, and of each call (``bind``), the module host knows the session of the handler it
runs (``add_source``);
``SessionFilter`` adds its ``trace_id``, ``session_id`` and ``user_id`` to every record logged
meanwhile, whichever logger wrote it. ``TextFormatter`` appends them to the line when known;
``JsonFormatter`` (``MQANT_LOG_FORMAT=json``) writes one JSON object per line.
"""

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Protocol

OVERFLOW = ("", 0, "")  # the one kind of every record past max_kinds


class RateLimitFilter(logging.Filter):
    """See the module's docstring; every bound is a constructor argument."""

    def __init__(
        self,
        rate: float = 1.0,
        burst: int = 20,
        max_kinds: int = 1000,
        max_chars: int = 4000,
        quiet_tracebacks: Iterable[str] = ("django.security",),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._clock = clock
        self.rate, self.burst = rate, burst
        self.max_kinds, self.max_chars = max_kinds, max_chars
        self.quiet = tuple(quiet_tracebacks)
        # kind -> [tokens, last refill, records held back]
        self._kinds: OrderedDict[tuple[str, int, str], list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if _dependency_failure(record):
            return False
        held = self._admit(self._kind(record))
        if held is None:
            return False
        if record.name.startswith(self.quiet):
            record.exc_info, record.exc_text = None, None
        message = _message(record)  # a call whose arguments do not fit: logged, not raised
        if len(message) > self.max_chars:
            message = f"{message[: self.max_chars]}... ({len(message)} characters)"
        if held:
            message += f" [{held} more like this held back]"
        record.msg, record.args = message, None
        return True

    @staticmethod
    def _kind(record: logging.LogRecord) -> tuple[str, int, str]:
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        return (record.name, record.levelno, template[:200])

    def _admit(self, kind: tuple[str, int, str]) -> int | None:
        """Records held back before this one (0: none), or None to hold this one back."""
        now = self._clock()
        with self._lock:
            state = self._kinds.get(kind)
            if state is None:
                if len(self._kinds) >= self.max_kinds:
                    self._evict(now)
                if len(self._kinds) >= self.max_kinds:
                    kind = OVERFLOW
                state = self._kinds.setdefault(kind, [float(self.burst), now, 0])
            self._kinds.move_to_end(kind)
            tokens, last, held = state
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1:
                state[:] = [tokens, now, held + 1]
                return None
            state[:] = [tokens - 1, now, 0]
            return int(held)

    def _evict(self, now: float) -> None:
        """Forget the least recent kinds that hold nothing back and have a full bucket."""
        for kind in list(self._kinds)[: len(self._kinds) // 2]:
            tokens, last, held = self._kinds[kind]
            if not held and tokens + (now - last) * self.rate >= self.burst:
                del self._kinds[kind]


def _dependency_failure(record: logging.LogRecord) -> bool:
    """Whether the record is a request's traceback for a dependency's failure (the database
    or Redis down): the outage is logged once by mqant.dependencies, not once per request."""
    exc = record.exc_info[1] if record.exc_info else None
    if exc is None or not record.name.startswith("django"):
        return False
    from mqant import dependencies  # imported while logging is configured: late

    return dependencies.note(exc) is not None


class SessionFields(Protocol):
    """What a log line says of a session (mqant.session.Session)."""

    trace_id: str
    session_id: str
    user_id: str


# The session the running code acts for: a connection's, a call's.
_session: ContextVar[SessionFields | None] = ContextVar("mqant_log_session", default=None)
# Functions that may know a more precise one, asked first: the running handler's
# (mqant.server, which keeps its arguments anyway, so a call pays nothing more for it).
_sources: list[Callable[[], SessionFields | None]] = []

CONTEXT_FIELDS = ("trace_id", "session_id", "user_id")
MAX_FIELD = 200  # characters of one context field (a user id is the project's to bound)
MAX_EXC = 20000  # characters of a traceback in a JSON line


def bind(session: SessionFields) -> Token[SessionFields | None]:
    """Log what follows, in this context, as ``session``'s, until ``unbind``."""
    return _session.set(session)


def unbind(token: Token[SessionFields | None]) -> None:
    _session.reset(token)


def add_source(source: Callable[[], SessionFields | None]) -> None:
    """Ask ``source`` for the session of each line before the bound one."""
    _sources.append(source)


def current_session() -> SessionFields | None:
    """The session the running code acts for, if it is known."""
    for source in _sources:
        session = source()
        if session is not None:
            return session
    return _session.get()


class SessionFilter(logging.Filter):
    """Adds ``trace_id``, ``session_id`` and ``user_id`` to each record ("" when unknown): the
    bound session's, or the current OpenTelemetry span's trace id without one. Fields a
    record already has (``extra=``) are kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        session = current_session()
        if session is not None:
            fields = (session.trace_id, session.session_id, session.user_id)
        else:
            fields = (_current_trace_id(), "", "")
        for name, value in zip(CONTEXT_FIELDS, fields, strict=True):
            if not hasattr(record, name):
                setattr(record, name, str(value)[:MAX_FIELD].translate(_CONTROLS))
        return True


# Control characters in an id (a project may bind any text as a user id) cannot start a
# line of their own in the text format.
_CONTROLS = {code: "?" for code in (*range(32), 127)}


def _current_trace_id() -> str:
    from opentelemetry import trace  # the API only: cheap, and spans may be mqant's or not

    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else ""


def _context(record: logging.LogRecord) -> dict[str, str]:
    return {name: value for name in CONTEXT_FIELDS if (value := getattr(record, name, ""))}


class TextFormatter(logging.Formatter):
    """The plain format, followed by ``[trace_id=... session_id=... user_id=...]`` when the
    record has them (SessionFilter)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = _context(record)
        if not context:
            return line
        return line + " [" + " ".join(f"{k}={v}" for k, v in context.items()) + "]"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
    the context fields that are known (SessionFilter), ``exc`` (the traceback) and
    ``stack`` when present. Always one valid line, whatever the message holds."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
            **_context(record),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = _cut(record.exc_text, MAX_EXC)
        if record.stack_info:
            entry["stack"] = _cut(self.formatStack(record.stack_info), MAX_EXC)
        line = json.dumps(entry, ensure_ascii=False, default=str)
        try:
            line.encode()
        except UnicodeEncodeError:  # lone surrogates: escaped, the stream takes them then
            line = json.dumps(entry, default=str)
        return line


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # arguments that do not fit the template: still one line
        return f"{record.msg!r} {record.args!r}"[:4000]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
