"""WebSocket routes of the gate: after the project's own routes, MQTT on every path (as
mqant's gate: its clients connect to ``/``, ``/mqant`` or ``/mqtt``), or only on the paths of
``MQANT["WS_PATHS"]``, a handshake on any other path being refused with HTTP 403."""

from collections.abc import Sequence
from typing import Any

from channels.routing import URLRouter
from django.urls import path, re_path

from gate import conf
from gate.consumers import MQTTConsumer


async def refuse_handshake(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Refuse a WebSocket handshake: a close before the accept, which daphne and uvicorn answer
    with HTTP 403. Without this route, Channels' router raises for a path no route takes, and
    daphne logs a traceback and answers 500 for every such request."""
    if (await receive())["type"] == "websocket.connect":
        await send({"type": "websocket.close"})


def gate_urlpatterns() -> list[Any]:
    """The gate's routes, as ``WS_PATHS`` says."""
    consumer = MQTTConsumer.as_asgi()
    paths = conf.get("WS_PATHS")
    if paths is None:
        return [re_path(r"", consumer)]
    return [
        *[path(p.removeprefix("/"), consumer) for p in paths],
        # Last: every path the routes above do not take. (django-stubs types routes as views.)
        re_path(r"", refuse_handshake),  # type: ignore[arg-type]
    ]


def websocket_application(project_urlpatterns: Sequence[Any] = ()) -> Any:
    """The gate's WebSocket application: the project's own routes (tried first), then the
    routes above, behind a check Channels' router lacks. A client can name a root path
    (daphne's ``Daphne-Root-Path`` header); one the path does not start with made the router
    raise, a traceback and a 500 per handshake."""
    router = URLRouter([*project_urlpatterns, *gate_urlpatterns()])

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        root = scope.get("root_path") or ""
        if root and not str(scope.get("path", "")).startswith(root):
            await refuse_handshake(scope, receive, send)
            return
        await router(scope, receive, send)

    return application
