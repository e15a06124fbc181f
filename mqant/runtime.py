"""The runtime: everything one process runs in its event loop, started once and stopped once.

A server process (daphne, uvicorn), a ``runmodules`` process or a test starts one runtime per
event loop — the ASGI startup does it (mqant.asgi), ``runmodules`` does it, the test suite's
``mqant_started`` fixture does it — and every per-process thing is reached through it:

- ``app``: the modules this process hosts and the registry of live nodes (mqant.app);
- ``replies``: the channel on which the answers to this process's calls arrive (mqant.replies);
- its parts: what the project adds, such as the gate's inbox and heartbeat (gate.process),
  started after the app and stopped before it, in reverse order;
- its tasks: background work started with ``spawn``, cancelled when it stops.

Nothing starts on first use: a call made where no runtime runs fails with ``NoRuntime``.
"""

import asyncio
import gc
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, TypeVar, cast

from channels.layers import get_channel_layer

from mqant import conf, metrics
from mqant import current as _current
from mqant.app import App
from mqant.current import NoRuntime
from mqant.dependencies import REDIS
from mqant.looplag import LoopLag
from mqant.replies import ReplyRouter

__all__ = ["NoRuntime", "Part", "Runtime", "current", "freeze_start", "get", "start", "stop"]

logger = logging.getLogger(__name__)


class Part(Protocol):
    """Something the project runs beside the modules, for the runtime's whole life."""

    async def start(self, runtime: "Runtime") -> None:
        """Start; raising stops the runtime's start (the parts started before are stopped)."""

    async def stop(self) -> None:
        """Stop, for good."""


P = TypeVar("P")


class Runtime:
    """The app, the reply channel, the parts and the tasks of one event loop."""

    def __init__(self, parts: Sequence[Part] = ()) -> None:
        self.loop = asyncio.get_running_loop()
        self.app = App(self.loop)
        self.replies = ReplyRouter(get_channel_layer(), self.loop)
        self.parts = list(parts)
        self._started: list[Part] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.lag = LoopLag()

    def __repr__(self) -> str:
        return f"<Runtime {self.app.process_id} parts={[type(p).__name__ for p in self.parts]}>"

    async def start(self) -> None:
        """The reply channel, then the modules, then the parts; a failure stops what started."""
        metrics.identify(process=self.app.process_id)
        self.spawn(self.lag.run(), "event loop lag")
        self.app.registry.watch_gone(self.replies.nodes_gone)
        REDIS.when_down(self.replies.redis_down)
        try:
            await self.replies.start()
            await self.app.start()
            for part in self.parts:
                await part.start(self)
                self._started.append(part)
        except BaseException:
            await self.stop(timeout=0.0)
            raise

    async def stop(self, timeout: float | None = None) -> None:
        """The parts (in reverse order), then the modules (which drain), then the reply channel
        and the tasks, within ``timeout`` seconds (default ``MQANT["SHUTDOWN_TIMEOUT"]``)."""
        budget = float(conf.get("SHUTDOWN_TIMEOUT")) if timeout is None else timeout
        deadline = self.loop.time() + budget
        for part in reversed(self._started):
            try:
                await part.stop()
            except Exception:  # the next parts and the modules must still stop
                logger.exception("stopping %r failed", part)
        self._started.clear()
        await self.app.stop(max(deadline - self.loop.time(), 0.0))
        await self.replies.stop()
        REDIS.unwatch(self.replies.redis_down)
        self.app.registry.unwatch_gone(self.replies.nodes_gone)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def part(self, kind: type[P]) -> P:
        """The part of type ``kind``; raises LookupError when the runtime has none."""
        for part in self.parts:
            if isinstance(part, kind):
                return part
        raise LookupError(f"{self!r} has no {kind.__name__}")

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> "asyncio.Task[Any]":
        """Run ``coro`` in a task the runtime keeps, and cancels when it stops."""
        task = self.loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def current() -> Runtime | None:
    """The runtime of the running event loop, if one was started there."""
    return cast(Runtime | None, _current.current())


def get() -> Runtime:
    """The runtime of the running event loop; raises NoRuntime when none was started there."""
    return cast(Runtime, _current.get())


async def start(parts: Sequence[Part] = ()) -> Runtime:
    """Start this event loop's runtime with ``parts``; raises RuntimeError if one runs."""
    running = _current.current()
    if running is not None:
        raise RuntimeError(f"{running!r} already runs in this event loop")
    runtime = Runtime(parts)
    _current.put(runtime)
    try:
        await runtime.start()
    except BaseException:
        _current.remove(runtime)
        raise
    return runtime


def freeze_start() -> None:
    """A server process's start is over: move what it made (Django, the modules, the
    runtime) out of the garbage collector's sight (``MQANT["GC_FREEZE"]``), so that a full
    collection walks only what came since. The garbage is collected first: frozen, it would
    stay, with whatever it holds (an open cursor, a lock). ``stop`` gives it all back."""
    if conf.get("GC_FREEZE"):
        gc.collect()
        gc.freeze()


async def stop(timeout: float | None = None) -> None:
    """Stop this event loop's runtime, if one runs. It stays ``current()`` while it drains:
    the calls its handlers make in the meantime still find it."""
    runtime = current()
    if runtime is None:
        return
    try:
        await runtime.stop(timeout)
    finally:
        _current.remove(runtime)
        gc.unfreeze()  # what was frozen at start may be collected again
