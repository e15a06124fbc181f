"""The runtime of the running event loop, as the framework's own calls see it.

``mqant.runtime`` starts and stops runtimes and keeps them here, one per event loop. The
calls that need one (RPC, session operations, connection events) ask ``get()`` for what they
use — the app's choice of nodes, the reply channel, the tasks — described by the protocols
below. This module imports nothing of the framework's but ``mqant.nodes``, so any module may
ask it without importing the app, which imports the modules, which import the Session.
"""

import asyncio
import weakref
from collections.abc import Coroutine
from typing import Any, Protocol

from mqant.nodes import Node


class NoRuntime(RuntimeError):
    """mqant is used in an event loop where no runtime runs."""


class Nodes(Protocol):
    """The registry of live nodes (mqant.registry)."""

    def nodes(self, module_type: str | None = None) -> list[Node]: ...

    def listening(self, event: str) -> list[Node]: ...


class Hosting(Protocol):
    """The app (mqant.app): this process's modules, and the choice of a node for a call."""

    @property
    def registry(self) -> Nodes: ...

    def select_now(self, target: str) -> Node | None: ...

    async def select(self, target: str) -> Node: ...


class Replies(Protocol):
    """The reply channel (mqant.replies)."""

    async def request(self, channel: str, message: dict[str, Any], timeout: float) -> Any: ...


class Running(Protocol):
    """What the framework's calls use of a runtime (mqant.runtime.Runtime)."""

    @property
    def app(self) -> Hosting: ...

    @property
    def replies(self) -> Replies: ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> "asyncio.Task[Any]": ...


_runtimes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Running]" = (
    weakref.WeakKeyDictionary()
)


# The last loop asked for and its runtime: a process runs one loop, and every call asks.
_last: tuple[asyncio.AbstractEventLoop, Running] | None = None


def current() -> Running | None:
    """The runtime of the running event loop, if one was started there."""
    return _runtimes.get(asyncio.get_running_loop())


def get() -> Running:
    """The runtime of the running event loop; raises NoRuntime when none was started there."""
    global _last
    loop = asyncio.get_running_loop()
    last = _last
    if last is not None and last[0] is loop:
        return last[1]
    runtime = _runtimes.get(loop)
    if runtime is None:
        raise NoRuntime(
            "no mqant runtime runs in this event loop: serve the project's ASGI application "
            "(mqant.asgi.MqantApplication), run `manage.py runmodules`, or "
            "`await mqant.runtime.start()` first"
        )
    _last = (loop, runtime)
    return runtime


def put(runtime: Running) -> None:
    """Make ``runtime`` the running loop's (mqant.runtime.start)."""
    _runtimes[asyncio.get_running_loop()] = runtime


def remove(runtime: Running) -> None:
    """Forget ``runtime``, if it is still the running loop's (mqant.runtime.stop)."""
    global _last
    loop = asyncio.get_running_loop()
    if _runtimes.get(loop) is runtime:
        del _runtimes[loop]
    _last = None
