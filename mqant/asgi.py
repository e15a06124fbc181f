"""An ASGI wrapper that starts and stops what this process hosts: the modules, and whatever
the project adds (the gate's TCP listener).

Servers with ASGI lifespan (uvicorn) run the startup at startup and the shutdown at
shutdown. daphne has no lifespan (daphne#264): there the startup runs as soon as daphne's
reactor runs, without waiting for a first connection or request.
"""

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable

from mqant import app as mqant_app
from mqant import conf
from mqant.security import refuse_insecure_start

logger = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[Any]]


class MqantApplication:
    """Wraps the project's ASGI application; everything but lifespan passes through."""

    def __init__(
        self, inner: Any, *, on_startup: Sequence[Hook] = (), on_shutdown: Sequence[Hook] = ()
    ) -> None:
        refuse_insecure_start()  # before daphne or uvicorn listens
        self.inner = inner
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self._started: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        _when_daphne_runs(self._start_soon)

    async def __call__(
        self, scope: dict[str, Any], receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.startup()
        await self.inner(scope, receive, send)

    async def startup(self) -> None:
        """Start the modules, then run the startup hooks; once per event loop."""
        loop = asyncio.get_running_loop()
        task = self._started.get(loop)
        if task is None or (task.done() and not task.cancelled() and task.exception()):
            # First use, or the last start failed (Redis down...): try again.
            task = self._started[loop] = loop.create_task(self._run_startup())
        if not task.done():
            await asyncio.shield(task)

    async def shutdown(self) -> None:
        """Run the shutdown hooks, then stop the modules."""
        for hook in self.on_shutdown:
            await hook()
        await mqant_app.stop()
        self._started.pop(asyncio.get_running_loop(), None)

    async def _run_startup(self) -> None:
        await mqant_app.ensure_started()
        for hook in self.on_startup:
            await hook()

    def _start_soon(self) -> None:
        task = asyncio.get_event_loop().create_task(self.startup())
        task.add_done_callback(_log_failure)
        _before_daphne_stops(self.shutdown)

    async def _lifespan(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as err:
                    await send({"type": "lifespan.startup.failed", "message": str(err)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


class BodyLimit:
    """An HTTP application whose requests carry at most ``MQANT["MAX_HTTP_BODY"]`` bytes.

    Django's ASGI handler reads a whole body before the view runs, into a temporary file once
    it passes FILE_UPLOAD_MAX_MEMORY_SIZE, with no limit: an endless body would fill the
    disk. A declared Content-Length over the limit is answered 413 at once; a body that
    streams past it (chunked) ends as if the client had left.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(
        self, scope: dict[str, Any], receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        limit = int(conf.get("MAX_HTTP_BODY"))
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > limit:
            await _refuse_body(send, limit)
            return
        received = 0

        async def bounded() -> Any:
            nonlocal received
            message: Any = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                return {"type": "http.disconnect"}
            return message

        await self.inner(scope, bounded, send)


async def _refuse_body(send: ASGISendCallable, limit: int) -> None:
    text = f"Request body larger than {limit} bytes\n".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(text)).encode())]
    await send(
        {"type": "http.response.start", "status": 413, "headers": headers, "trailers": False}
    )
    await send({"type": "http.response.body", "body": text, "more_body": False})


def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("startup failed", exc_info=task.exception())


def _before_daphne_stops(shutdown: Hook) -> None:
    """Run ``shutdown`` when daphne's reactor stops (SIGTERM, SIGINT), and let the reactor
    wait for it."""
    from twisted.internet import defer, reactor

    def run() -> Any:
        return defer.Deferred.fromFuture(asyncio.ensure_future(shutdown()))

    reactor.addSystemEventTrigger("before", "shutdown", run)  # type: ignore[arg-type]  # twisted types reactor as its interface, wrongly here


def _when_daphne_runs(callback: Callable[[], None]) -> None:
    """Call ``callback`` once daphne's reactor runs; nothing under any other server.

    daphne installs Twisted's asyncio reactor before it imports the application, and its
    reactor's loop is the one the application runs in.
    """
    if "daphne.server" not in sys.modules:
        return
    from twisted.internet import reactor

    reactor.callWhenRunning(callback)
