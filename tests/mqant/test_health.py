"""/healthz and /readyz as MqantApplication answers them, in this process: before the inner
application (which never sees them), not ready before the start, while a dependency is down
and while stopping; a failed start is tried again by the probe."""

import asyncio
import json
from typing import Any

import pytest

from mqant import dependencies, health, runtime
from mqant.asgi import MqantApplication


class Inner:
    """The project's application: counts what reaches it."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def is_alive(answer):
    """A /healthz answer of a live process: 200, alive, a loop lag under the limit."""
    status, body = answer
    return status == 200 and body["alive"] is True and 0 <= body["loop_lag_seconds"] < 5


async def get(application: MqantApplication, path: str) -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "method": "GET", "headers": []}
    await application(scope, receive, send)  # type: ignore[arg-type]  # plain dicts, as a server sends
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], json.loads(body) if body else None


@pytest.fixture
async def application():
    inner = Inner()
    app = MqantApplication(inner)
    yield app, inner
    await app.shutdown()
    dependencies.REDIS.forget()


async def test_ready_once_started_and_the_inner_application_never_sees_the_probes(application):
    app, inner = application
    assert is_alive(await get(app, "/healthz"))
    await app.startup()
    assert await get(app, "/readyz") == (200, {"ready": True})
    assert inner.calls == 0
    assert (await get(app, "/other"))[0] == 204  # everything else goes on to the project
    assert inner.calls == 1


async def test_not_ready_before_the_start_which_the_probe_starts(application):
    app, _ = application
    status, body = await get(app, "/readyz")
    assert (status, body["reasons"]) == (503, ["not started"])
    for _ in range(100):  # the probe started it in the background
        if runtime.current() is not None and (await get(app, "/readyz"))[0] == 200:
            break
        await asyncio.sleep(0.02)
    assert await get(app, "/readyz") == (200, {"ready": True})


async def test_not_ready_while_a_dependency_is_down_then_ready_again(application):
    app, _ = application
    await app.startup()
    dependencies.REDIS.failed(ConnectionError("refused"))
    status, body = await get(app, "/readyz")
    assert status == 503
    assert body["reasons"][0].startswith("Redis unavailable for ")
    assert is_alive(await get(app, "/healthz"))
    dependencies.REDIS.succeeded()
    assert await get(app, "/readyz") == (200, {"ready": True})


async def test_not_ready_while_stopping(application):
    app, _ = application
    await app.startup()
    await app.shutdown()
    status, body = await get(app, "/readyz")
    assert status == 503
    assert "stopping" in body["reasons"]


async def test_the_paths_go_to_the_project_when_turned_off(application, settings):
    settings.MQANT = {**settings.MQANT, "HEALTH_ENDPOINTS": False}
    app, inner = application
    await app.startup()
    assert (await get(app, "/readyz"))[0] == 204
    assert inner.calls == 1


# The port of a process without HTTP (runmodules --health)


@pytest.fixture
async def health_port():
    reasons: list[str] = []
    server = health.HealthServer(lambda: list(reasons))
    port = await server.start("127.0.0.1", 0)
    yield port, reasons
    server.close()


async def exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_the_health_port_answers_probes(health_port):
    port, reasons = health_port
    ready = await exchange(port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert ready.startswith(b"HTTP/1.1 200 OK\r\n")
    assert ready.endswith(b'{"ready": true}\n')
    reasons.append("stopping")
    assert (await exchange(port, b"GET /readyz HTTP/1.0\r\n\r\n")).startswith(b"HTTP/1.1 503 ")
    assert (await exchange(port, b"GET /healthz?x=1 HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
    assert (await exchange(port, b"GET /admin HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404 ")
    assert (await exchange(port, b"POST /readyz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405 ")


async def test_the_health_port_bounds_what_a_client_sends(health_port, monkeypatch):
    port, _ = health_port
    # Past MAX_REQUEST_BYTES without the end of the request: closed, unanswered.
    assert await exchange(port, b"GET /readyz HTTP/1.1\r\nX: " + b"a" * 20000) == b""
    # Slower than REQUEST_SECONDS: closed, unanswered.
    monkeypatch.setattr(health, "REQUEST_SECONDS", 0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /readyz HTTP/1.1\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    # Past MAX_PROBES_PER_ADDRESS from one address, and past MAX_PROBES in all, at once: the
    # others are closed at once.
    monkeypatch.setattr(health, "REQUEST_SECONDS", 5.0)
    await assert_refused_while_held(port, health.MAX_PROBES_PER_ADDRESS)
    monkeypatch.setattr(health, "MAX_PROBES_PER_ADDRESS", 100)
    await assert_refused_while_held(port, health.MAX_PROBES)
    assert (await exchange(port, b"GET /readyz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200 ")


async def assert_refused_while_held(port: int, held: int) -> None:
    """With ``held`` probes open and silent, one more is closed before it is answered."""
    probes = [await asyncio.open_connection("127.0.0.1", port) for _ in range(held)]
    await asyncio.sleep(0.1)
    try:
        assert await exchange(port, b"GET /readyz HTTP/1.1\r\n\r\n") == b""
    except ConnectionResetError:
        pass  # aborted before it read the request
    finally:
        for _, writer in probes:
            writer.close()
    await asyncio.sleep(0.1)
