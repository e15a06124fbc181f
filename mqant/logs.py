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
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

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
        message = record.getMessage()
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
