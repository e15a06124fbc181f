"""daphne's access log, bounded: it writes a line per HTTP request and WebSocket event straight
to its stream, past Python's logging, each with a path of the client's choosing. Built from
daphne's class when install() runs, so that this module imports without daphne."""

from typing import Any

from gate import conf
from gate.limits import TokenBucket

# Characters of a request (method and path, which the client chose) an access line keeps.
ACCESS_LINE_REQUEST_CHARS = 1000


def bounded_access_log(generator: type) -> type:
    """daphne's access log, bounded: ACCESS_LOG_RATE lines a second after an ACCESS_LOG_BURST,
    for the whole process; the lines held back are counted and the count written with the
    next line; a request is cut at ACCESS_LINE_REQUEST_CHARS characters."""

    class BoundedAccessLog(generator):  # type: ignore[misc]
        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            rate, burst = float(conf.get("ACCESS_LOG_RATE")), int(conf.get("ACCESS_LOG_BURST"))
            self._lines = TokenBucket(rate, burst)
            self._held = 0

        def write_entry(self, host: Any, date: Any, request: str, *args: Any, **kw: Any) -> None:
            if not self._lines.admit():
                self._held += 1
                return
            if len(request) > ACCESS_LINE_REQUEST_CHARS:
                request = request[:ACCESS_LINE_REQUEST_CHARS] + "..."
            if self._held:
                request = f"{request} [{self._held} access lines held back]"
                self._held = 0
            super().write_entry(host, date, request, *args, **kw)

    return BoundedAccessLog
