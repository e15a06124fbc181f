"""Health, for a supervisor or a load balancer: ``/healthz`` (the process lives and its event
loop answers) and ``/readyz`` (it should be sent traffic), answered by the ASGI application
(mqant.asgi) before Django: no database query, no ALLOWED_HOSTS check (a probe names the
pod's address), no session or CSRF.

A process is ready when its runtime has started, it is not stopping (a draining gate is not
ready), and none of its dependencies is known down (mqant.dependencies: the database as its
probe sees it every DATABASE_PROBE seconds, Redis as the registry's heartbeat and every call
through it see it). Each answer is JSON: ``{"ready": false, "reasons": [...]}``.
"""

import json
from typing import Any

from asgiref.typing import ASGISendCallable

from mqant import conf, dependencies, runtime

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


async def respond(scope: dict[str, Any], send: ASGISendCallable, reasons: list[str]) -> None:
    """Answer ``/healthz`` (200 while the loop answers at all) or ``/readyz`` (200, or 503
    with ``reasons``)."""
    body: dict[str, object]
    if scope["path"] == "/healthz":
        status, body = 200, {"alive": True}
    elif reasons:
        status, body = 503, {"ready": False, "reasons": reasons}
    else:
        status, body = 200, {"ready": True}
    text = json.dumps(body).encode() + b"\n"
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(text)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers, "trailers": False}
    )
    await send({"type": "http.response.body", "body": text, "more_body": False})
