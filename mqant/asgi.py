"""An ASGI wrapper that starts and stops what this process hosts: its runtime (mqant.runtime:
the modules, and the parts the project adds, such as the gate's inbox), and the project's
startup and shutdown hooks (the gate's TCP listener, its drain).

Servers with ASGI lifespan (uvicorn) run the startup at startup and the shutdown at
shutdown. daphne has no lifespan (daphne#264): there the startup runs as soon as daphne's
reactor runs, without waiting for a first connection or request.

On SIGTERM or SIGINT, under daphne and under uvicorn, the shutdown runs first, while the
server still serves its connections, and the signal is handed on to the server once it is
done; a second signal hands it on at once. Else both servers close their connections before
any shutdown of ours: daphne cancels every application instance, uvicorn closes every
WebSocket (1012), and the calls in flight go unanswered.
"""

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from django.core.exceptions import ImproperlyConfigured

from mqant import conf, config, health, runtime, scrape, tracing
from mqant.security import refuse_insecure_start

logger = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[Any]]

# The exit status of a daphne process whose start was refused (uvicorn exits with 3).
CANNOT_START_STATUS = 3


class CannotStart(Exception):
    """Raised by a startup hook when the process must not serve at all (a port it must listen
    on is taken): the server stops, with this message. Any other failure of the start (Redis
    down...) is logged, and the start tried again with the next connection."""


class MqantApplication:
    """Wraps the project's ASGI application; everything but lifespan passes through."""

    def __init__(
        self,
        inner: Any,
        *,
        parts: Callable[[], Sequence[runtime.Part]] = list,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        service_name: str = "mqant",
    ) -> None:
        refuse_insecure_start()  # before daphne or uvicorn listens
        self.inner = inner
        self.service_name = service_name  # the default service.name of its spans
        self.parts = parts  # makes the parts of the runtime (mqant.runtime)
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self._started: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        self._stopping: asyncio.Future[None] | None = None
        _when_daphne_runs(self._start_soon)

    async def __call__(
        self, scope: dict[str, Any], receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if health.answers(scope):
            await health.respond(scope, send, self._not_ready())
            return
        if scrape.answers(scope):
            await scrape.respond(scope, send)
            return
        await self.startup()
        await self.inner(scope, receive, send)

    def _not_ready(self) -> list[str]:
        """Why this process is not ready (mqant.health); a start that failed is tried again
        in the background, as the next connection would."""
        task = self._started.get(asyncio.get_running_loop())
        started = task is not None and task.done() and not _failed(task)
        if not started and self._stopping is None and (task is None or task.done()):
            retry = asyncio.ensure_future(self.startup())
            retry.add_done_callback(_log_failure)
        return health.not_ready(started=started, stopping=self._stopping is not None)

    async def startup(self) -> None:
        """Start the runtime (the modules, the parts), then run the startup hooks; once per
        event loop."""
        loop = asyncio.get_running_loop()
        task = self._started.get(loop)
        if task is None or (task.done() and _failed(task)):
            # First use, or the last start failed (Redis down...): try again.
            task = self._started[loop] = loop.create_task(self._run_startup())
        if not task.done():
            await asyncio.shield(task)

    async def shutdown(self) -> None:
        """Run the shutdown hooks, then stop the runtime, within SHUTDOWN_TIMEOUT; once,
        however many ask (a signal, then daphne's reactor)."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._run_shutdown())
        try:
            await asyncio.shield(self._stopping)
        except asyncio.CancelledError:
            if not self._stopping.cancelled():
                raise  # the caller was cancelled, not the stop
            # else: stopped at once on a second signal

    async def _run_shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(conf.get("SHUTDOWN_TIMEOUT"))
        for hook in self.on_shutdown:
            try:
                await hook()
            except Exception:  # the next hooks and the modules must still stop
                logger.exception("stopping: %r failed", hook)
        await runtime.stop(max(deadline - loop.time(), 0.0))
        self._started.pop(loop, None)
        if tracing.tracer is not None:  # the drain's spans included: a short budget of its own
            await asyncio.to_thread(tracing.stop, max(deadline - loop.time(), 1.0))

    async def _run_startup(self) -> None:
        try:
            tracing.start(self.service_name, config.process_id())
        except ImproperlyConfigured as err:
            raise CannotStart(f"Cannot trace: {err}") from err
        if runtime.current() is None:  # else it started, and a hook failed: try the hooks again
            await runtime.start(self.parts())
        for hook in self.on_startup:
            await hook()
        runtime.freeze_start()

    def _start_soon(self) -> None:
        loop = asyncio.get_event_loop()  # the reactor's, not running yet
        task = loop.create_task(self.startup())
        task.add_done_callback(_daphne_started)
        _before_daphne_stops(self.shutdown)
        _take_signals(loop, self._stop_on_signal, _daphnes)

    def _stop_on_signal(self, hand_on: Callable[[], None]) -> None:
        """SIGTERM or SIGINT: shut down, then ``hand_on`` the signal to the server; on a
        second signal, give up the shutdown (which then hands it on)."""
        if self._stopping is None:
            logger.info("stopping: draining (a second signal stops at once)")
            stopping = asyncio.ensure_future(self.shutdown())
            stopping.add_done_callback(lambda _: hand_on())
        elif not self._stopping.done():
            logger.warning("stopping at once on a second signal")
            self._stopping.cancel()
        else:
            hand_on()

    async def _lifespan(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except CannotStart as err:
                    logger.critical("cannot start: %s", err)
                    await self.shutdown()  # what did start (the runtime) stops
                    await send({"type": "lifespan.startup.failed", "message": str(err)})
                    return
                except Exception as err:
                    await send({"type": "lifespan.startup.failed", "message": str(err)})
                    raise
                await send({"type": "lifespan.startup.complete"})
                _take_signals(asyncio.get_running_loop(), self._stop_on_signal, _uvicorns)
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


def _failed(task: "asyncio.Future[None]") -> bool:
    """Whether a done start raised (a cancelled one did not)."""
    return not task.cancelled() and task.exception() is not None


def _log_failure(task: "asyncio.Future[None]") -> None:
    if _failed(task):
        logger.error("startup failed", exc_info=task.exception())


def _daphne_started(task: "asyncio.Task[None]") -> None:
    """Log a failed start; stop daphne, with CANNOT_START_STATUS, if it must not serve."""
    err = None if task.cancelled() else task.exception()
    if isinstance(err, CannotStart):
        logger.critical("cannot start: %s", err)
        _exit_after_daphne(CANNOT_START_STATUS)
    else:
        _log_failure(task)


def _exit_after_daphne(status: int) -> None:
    """Stop daphne's reactor (its shutdown runs), then exit with ``status``: daphne's command
    line always exits with 0."""
    from twisted.internet import reactor

    def leave() -> None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    reactor.addSystemEventTrigger("after", "shutdown", leave)  # type: ignore[arg-type]  # as below
    _stop_reactor(reactor)


def _before_daphne_stops(shutdown: Hook) -> None:
    """Run ``shutdown`` when daphne's reactor stops (SIGTERM, SIGINT), and let the reactor
    wait for it."""
    from twisted.internet import defer, reactor

    def run() -> Any:
        return defer.Deferred.fromFuture(asyncio.ensure_future(shutdown()))

    reactor.addSystemEventTrigger("before", "shutdown", run)  # type: ignore[arg-type]  # twisted types reactor as its interface, wrongly here


HandOn = Callable[[], None]


def _take_signals(
    loop: asyncio.AbstractEventLoop,
    on_signal: Callable[[HandOn], None],
    servers: Callable[[int, Any], HandOn | None],
) -> None:
    """SIGTERM and SIGINT call ``on_signal(hand_on)`` in ``loop`` where the server handles
    them: ``servers(signum, handler)`` is what the server's handler would do (None: not
    the server's, left alone, as when daphne runs without signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        hand_on = servers(signum, signal.getsignal(signum))
        if hand_on is not None:
            signal.signal(signum, functools.partial(_deliver, loop, on_signal, hand_on))


def _deliver(
    loop: asyncio.AbstractEventLoop,
    on_signal: Callable[[HandOn], None],
    hand_on: HandOn,
    signum: int,
    frame: object,
) -> None:
    # In a context of its own: a signal handler runs in whatever context the code it
    # interrupted had, such as a task's awaiting a thread-sensitive sync_to_async; the stop
    # would inherit asgiref's "in the single thread" mark, and every database write of the
    # drain would fail with "Single thread executor already being used, would deadlock".
    loop.call_soon_threadsafe(on_signal, hand_on, context=contextvars.Context())


def _daphnes(signum: int, handler: Any) -> HandOn | None:
    """Twisted's reactor handles SIGTERM and SIGINT by stopping (daphne then cancels every
    application instance, before any "before shutdown" trigger could drain them)."""
    from twisted.internet import reactor

    if handler not in (reactor.sigTerm, reactor.sigInt):
        return None
    return functools.partial(_stop_reactor, reactor)


def _uvicorns(signum: int, handler: Any) -> HandOn | None:
    """uvicorn's Server.handle_exit (uvicorn then closes its WebSockets with 1012)."""
    owner = getattr(handler, "__self__", None)
    if not type(owner).__module__.startswith("uvicorn."):
        return None
    return functools.partial(handler, signum, None)


def _stop_reactor(reactor: Any) -> None:
    from twisted.internet.error import ReactorNotRunning

    with contextlib.suppress(ReactorNotRunning):  # stopping already
        reactor.stop()


def _when_daphne_runs(callback: Callable[[], None]) -> None:
    """Call ``callback`` once daphne's reactor runs; nothing under any other server.

    daphne installs Twisted's asyncio reactor before it imports the application, and its
    reactor's loop is the one the application runs in.
    """
    if "daphne.server" not in sys.modules:
        return
    from twisted.internet import reactor

    reactor.callWhenRunning(callback)
