"""``GET /metrics``: this process's metrics (mqant.metrics) in Prometheus's text format.

On a gate's HTTP port the ASGI application answers it before Django (mqant.asgi), only once
``MQANT["METRICS_TOKEN"]`` is set, and only to a request that brings it (``Authorization:
Bearer <token>``): without a token the path is the project's (Django answers 404), so that no
deployment shows its figures to the internet by default. ``runmodules --health`` answers it on
its operator port (mqant.health), with the token when one is set.

The answer's size follows the number of series, which mqant.metrics keeps bounded.
"""

import hmac
from typing import Any

from asgiref.typing import ASGISendCallable
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from mqant import conf

PATH = "/metrics"


def token() -> str:
    """The token a scrape must bring; "" when none is set."""
    return str(conf.get("METRICS_TOKEN") or "")


def answers(scope: dict[str, Any]) -> bool:
    """Whether ``scope`` is a scrape the ASGI application answers itself."""
    return scope["type"] == "http" and scope.get("path") == PATH and bool(token())


def authorized(authorization: bytes | None) -> bool:
    """Whether an ``Authorization`` header's value brings the token (any when none is set)."""
    expected = token()
    if not expected:
        return True
    scheme, _, given = (authorization or b"").partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), expected.encode())


def answer(
    method: str, authorization: bytes | None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The status, headers and body answering a request for PATH."""
    if method not in ("GET", "HEAD"):
        return 405, [(b"allow", b"GET, HEAD")], b"GET only\n"
    if not authorized(authorization):
        return 401, [(b"www-authenticate", b'Bearer realm="metrics"')], b"Unauthorized\n"
    body = generate_latest(REGISTRY)
    return 200, [(b"content-type", CONTENT_TYPE_LATEST.encode())], body


async def respond(scope: dict[str, Any], send: ASGISendCallable) -> None:
    """Answer a scrape of an ASGI server (``answers(scope)``)."""
    authorization = dict(scope.get("headers") or ()).get(b"authorization")
    status, headers, body = answer(scope.get("method", "GET"), authorization)
    if status != 200:
        headers.append((b"content-type", b"text/plain"))
    headers += [(b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    if scope.get("method") == "HEAD":
        body = b""
    await send(
        {"type": "http.response.start", "status": status, "headers": headers, "trailers": False}
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
