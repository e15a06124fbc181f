"""Health, for a supervisor or a load balancer: ``/healthz`` (the process lives and its event
loop answers in time) and ``/readyz`` (it should be sent traffic), answered by the ASGI
application (mqant.asgi) before Django: no database query, no ALLOWED_HOSTS check (a probe
names the pod's address), no session or CSRF.

``/healthz`` says how late the event loop runs (mqant.looplag) and answers 503 past
``MQANT["HEALTH_MAX_LOOP_LAG"]`` seconds: a loop that late serves nobody well.

A process is ready when its runtime has started, it is not stopping (a draining gate is not
ready), and none of its dependencies is known down (mqant.dependencies: the database as its
probe sees it every DATABASE_PROBE seconds, Redis as the registry's heartbeat and every call
through it see it). Each answer is JSON: ``{"ready": false, "reasons": [...]}``.
"""

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from asgiref.typing import ASGISendCallable

from mqant import conf, dependencies, runtime, scrape

PATHS = ("/healthz", "/readyz")


def not_ready(*, started: bool, stopping: bool) -> list[str]:
    """Why this process should not be sent traffic; empty when it should."""
    reasons = []
    if not started or runtime.current() is None:
        reasons.append("not started")
    if stopping:
        reasons.append("stopping")
    for dependency in (dependencies.DATABASE, dependencies.REDIS):
        if dependency.down:
            reasons.append(f"{dependency.name} unavailable for {dependency.down_for():.0f} s")
    return reasons


def answers(scope: dict[str, Any]) -> bool:
    """Whether ``scope`` is a health request this process answers itself."""
    return (
        scope["type"] == "http"
        and scope.get("path") in PATHS
        and bool(conf.get("HEALTH_ENDPOINTS"))
    )


def loop_lag() -> float:
    """Seconds the running event loop is late (0 before its runtime starts)."""
    running = runtime.current()
    return 0.0 if running is None else running.lag.current()


def answer(path: str, reasons: list[str]) -> tuple[int, bytes]:
    """The status and JSON body for ``/healthz`` (200 while the loop answers in time, else
    503) or ``/readyz`` (200, or 503 with ``reasons``)."""
    body: dict[str, object]
    if path == "/healthz":
        lag = loop_lag()
        alive = lag <= float(conf.get("HEALTH_MAX_LOOP_LAG"))
        status = 200 if alive else 503
        body = {"alive": alive, "loop_lag_seconds": round(lag, 4)}
    elif reasons:
        status, body = 503, {"ready": False, "reasons": reasons}
    else:
        status, body = 200, {"ready": True}
    return status, json.dumps(body).encode() + b"\n"


async def respond(scope: dict[str, Any], send: ASGISendCallable, reasons: list[str]) -> None:
    """Answer a health request of an ASGI server (``answers(scope)``)."""
    status, text = answer(scope["path"], reasons)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(text)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers, "trailers": False}
    )
    await send({"type": "http.response.body", "body": text, "more_body": False})


# The port of a process without HTTP (runmodules --health): a request must arrive whole, in
# so many bytes and seconds, and so many are answered at once, in all and per client address;
# past those the socket closes.
MAX_REQUEST_BYTES = 8192
REQUEST_SECONDS = 5.0
MAX_PROBES = 16
MAX_PROBES_PER_ADDRESS = 4


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` (mqant.scrape; with ``METRICS_TOKEN``, only
    for a request that brings it) on a port of their own, for a process that serves no HTTP
    (``manage.py runmodules --health``): HTTP/1.x, GET only, one request per connection. An
    operator's port: never one the internet reaches."""

    def __init__(self, not_ready: Callable[[], list[str]]) -> None:
        self.not_ready = not_ready
        self.probing: Counter[str] = Counter()  # sockets being answered, by client address
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; the port (the one the system chose for 0)."""
        self.server = await asyncio.start_server(self._serve, host, port, limit=MAX_REQUEST_BYTES)
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = str((writer.get_extra_info("peername") or ("",))[0])
        if self.probing.total() >= MAX_PROBES or self.probing[address] >= MAX_PROBES_PER_ADDRESS:
            writer.transport.abort()
            return
        self.probing[address] += 1
        try:
            async with asyncio.timeout(REQUEST_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(self._response(head))
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # too slow, too long, or gone: closed without an answer
        finally:
            self.probing[address] -= 1
            if not self.probing[address]:
                del self.probing[address]
            writer.close()

    def _response(self, head: bytes) -> bytes:
        method, _, rest = head.partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0].decode("latin-1")
        kind = "application/json"
        extra: list[tuple[bytes, bytes]] = []
        if method != b"GET":
            status, text = 405, b"GET only\n"
        elif path == scrape.PATH:
            status, extra, text = scrape.answer("GET", _header(head, b"authorization"))
            kind = dict(extra).pop(b"content-type", b"text/plain").decode()
        elif path not in PATHS:
            status, text = 404, b"Not found: /healthz, /readyz or /metrics\n"
        else:
            status, text = answer(path, self.not_ready())
        reason = {
            200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            503: "Unavailable",
        }  # fmt: skip
        headers = "".join(
            f"{name.decode()}: {value.decode()}\r\n"
            for name, value in extra
            if name != b"content-type"
        )
        return (
            f"HTTP/1.1 {status} {reason[status]}\r\nContent-Type: {kind}\r\n{headers}"
            f"Content-Length: {len(text)}\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n"
        ).encode() + text


def _header(head: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (lowercase) in a request's head, if it has one."""
    for line in head.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value.strip()
    return None
