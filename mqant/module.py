"""The Module base class: mqant's module, with its ``@handler`` methods (or handlers given to
``register``/``register_go``)."""

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from mqant import handlers

if TYPE_CHECKING:
    from mqant.session import Session

Handler = Callable[..., Any]

# The handlers the gate calls, through RPC, on every node whose module overrides
# Module.on_session_opened / on_session_closed. Without "HD_" they are unreachable from
# clients.
SESSION_OPENED = "mqant.session_opened"
SESSION_CLOSED = "mqant.session_closed"
EVENT_HOOKS = {SESSION_OPENED: "on_session_opened", SESSION_CLOSED: "on_session_closed"}


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """A registered handler: the function, whether calls run concurrently, whether it is
    async, and what runs before it on each call (``@handler``'s check and guard)."""

    fn: Handler
    concurrent: bool
    is_async: bool
    prepare: "handlers.Prepare | None" = None


class Module:
    """Base class of a business module.

    Subclasses set ``module_type`` (the name clients use in topics, e.g. ``"Chat"``) and
    declare their handlers with ``@handler`` (``mqant.handlers``), which the Module collects
    when it is constructed::

        @dataclass
        class Say:
            say: str

        @register_module
        class HelloWorld(Module):
            module_type = "HelloWorld"

            @handler("HD_Say")
            async def say(self, session: Session, msg: Say) -> str:
                return f"you say : {msg.say}"

    ``register``/``register_go`` in ``on_init`` register a handler too. A handler receives
    the positional arguments of the call; a client's call brings ``(session, msg)``, msg
    being a dict for a JSON object payload and bytes otherwise, or the message type its
    ``msg`` declares. It returns the result (JSON-serialisable, or bytes sent as they are)
    or raises ``HandlerError("text")`` to answer with an error. Async handlers run on the
    event loop; plain ones run in a worker thread, where the Django ORM may be used.
    """

    module_type: ClassVar[str] = ""
    version: ClassVar[str] = "1.0.0"

    def __init__(self) -> None:
        self.settings: dict[str, Any] = {}
        self.node_id = ""
        self.handlers: dict[str, HandlerSpec] = {}
        for name, fn, ordered, prepare in handlers.routes(self):
            self._add(name, fn, concurrent=not ordered, prepare=prepare)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.node_id or self.module_type}>"

    async def on_init(self, settings: dict[str, Any]) -> None:
        """Called once when the process starts hosting the module, with its settings; the
        place for ``register``/``register_go``."""
        self.settings = settings

    async def run(self, closing: asyncio.Event) -> None:
        """The module's own long-running work, in a task of its own; return once ``closing``
        is set. The default does nothing."""
        await closing.wait()

    async def on_node_started(self) -> None:
        """Called once the node is registered and reachable, in a task of its own, while
        handlers may already run: rebuild here what the module keeps in memory about live
        sessions, which a restart lost (``mqant.gates.live_sessions`` asks the gates who is
        there). An exception is logged and the node goes on; the task is cancelled when the
        process stops. The default does nothing."""

    async def on_destroy(self) -> None:
        """Called once when the process stops, after ``run`` has returned, in reverse order of
        start."""

    async def on_session_opened(self, session: "Session") -> None:
        """Called when a client connection is established (after CONNECT), on every node of a
        module that overrides it; before ``on_session_closed`` for the same session."""

    async def on_session_closed(self, session: "Session") -> None:
        """Called once when a client connection ends, on every node of a module that
        overrides it; also when its gate process died, once its heartbeat has expired."""

    def register(self, name: str, fn: Handler) -> None:
        """Register ``fn`` under ``name``; its calls run one at a time, in arrival order."""
        self._add(name, fn, concurrent=False)

    def register_go(self, name: str, fn: Handler) -> None:
        """Register ``fn`` under ``name``; each call runs on its own, concurrently."""
        self._add(name, fn, concurrent=True)

    def register_event_handlers(self) -> frozenset[str]:
        """Register the connection-event hooks this module overrides (one at a time, in
        order, so a session's close never overtakes its open) and return their names."""
        events = set()
        for event, hook in EVENT_HOOKS.items():
            if getattr(type(self), hook) is not getattr(Module, hook):
                self.register(event, getattr(self, hook))
                events.add(event)
        return frozenset(events)

    def _add(
        self, name: str, fn: Handler, *, concurrent: bool, prepare: "handlers.Prepare | None" = None
    ) -> None:
        if name in self.handlers:
            raise ValueError(f"{self!r} registers handler {name!r} twice")
        is_async = inspect.iscoroutinefunction(fn)
        self.handlers[name] = HandlerSpec(fn, concurrent, is_async, prepare)
