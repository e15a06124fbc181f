"""Runs a module's handlers: one at a time for ``register``, concurrently for
``register_go``, plain functions in a worker thread."""

import asyncio
import logging
from contextvars import ContextVar
from typing import Any

from opentelemetry.context import Context

from mqant import dependencies, logs, metrics, tracing
from mqant.db import db
from mqant.errors import FunctionNotFound, HandlerError, RemoteError, RPCError
from mqant.module import HandlerSpec, Module
from mqant.session import Session
from mqant.workqueue import WorkQueue

logger = logging.getLogger(__name__)

_Job = tuple[HandlerSpec, tuple[Any, ...], "asyncio.Future[Any]", tracing.Traced | None]

# The arguments of the handler that runs (None: none runs), in whatever it awaits or spawns:
# the calls it makes are part of a call in flight, which a stopping process still serves, and
# what it logs names its Session, the first argument when it has one (mqant.logs).
_in_handler: ContextVar[tuple[Any, ...] | None] = ContextVar("mqant_in_handler", default=None)


def in_handler() -> bool:
    """Whether the running code is (called from) a module's handler."""
    return _in_handler.get() is not None


def _handler_session() -> Session | None:
    """The Session of the handler that runs, for its log lines (read per line, not per call)."""
    args = _in_handler.get()
    return args[0] if args and isinstance(args[0], Session) else None


logs.add_source(_handler_session)


class ModuleServer:
    """The RPC server of one module instance (a node)."""

    def __init__(self, module: Module) -> None:
        self.module = module
        self._counts: dict[str, metrics.CallCounts] = {}
        self._serial: WorkQueue[_Job] = WorkQueue(self._serve, lambda: f"{module!r}: a call")
        self.active = 0  # calls accepted and not finished
        # False once the process stops: only its own calls in flight still reach the node,
        # directly (see App.stop).
        self.accepting = True
        self._idle = asyncio.Event()
        self._idle.set()

    def counts(self, fn: str) -> metrics.CallCounts:
        """The metrics of the calls of handler ``fn`` (``(unknown)`` for a name the module
        does not register: the labels stay bounded)."""
        counts = self._counts.get(fn)
        if counts is None:
            name = fn if fn in self.module.handlers else metrics.UNKNOWN
            counts = self._counts.get(name) or metrics.handler_calls(self.module.module_type, name)
            self._counts[name] = counts
        return counts

    async def stop(self) -> None:
        """Cancel the ``register`` calls that run or wait: their callers are left to time out."""
        self._serial.cancel()
        await self._serial.idle()

    async def wait_idle(self) -> None:
        """Return once no call is in flight."""
        await self._idle.wait()

    async def invoke(self, fn: str, args: tuple[Any, ...], *, caller: Context | None = None) -> Any:
        """Run handler ``fn`` with ``args`` and return its result.

        Raises FunctionNotFound, or RemoteError with the handler's error text. The caller
        enforces the deadline by cancelling; a queued ``register`` call whose caller has given
        up is skipped. With tracing on, the handler's span is the child of ``caller`` (the
        context a remote caller sent) or of the current span (mqant.tracing).
        """
        spec = self.module.handlers.get(fn)
        if spec is None:
            raise FunctionNotFound.for_name(fn)
        traced = (
            None
            if tracing.tracer is None
            else tracing.start_handler(self.module.module_type, fn, caller)
        )
        self.active += 1
        self._idle.clear()
        try:
            if spec.concurrent:
                return await self._run(spec, args, traced)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._serial.add((spec, args, future, traced))
            return await future
        except BaseException as err:
            if traced is not None:
                traced.fail(err)
            raise
        finally:
            self.active -= 1
            if not self.active:
                self._idle.set()
            if traced is not None:
                traced.close()

    async def _serve(self, job: _Job) -> None:
        """Run a ``register`` call, in its turn, and answer its caller."""
        spec, args, future, traced = job
        if future.done():  # the caller gave up while the call waited in the queue
            return
        try:
            result = await self._run(spec, args, traced)
        except RPCError as err:
            if not future.done():
                future.set_exception(err)
        else:
            if not future.done():
                future.set_result(result)

    async def _run(
        self, spec: HandlerSpec, args: tuple[Any, ...], traced: tracing.Traced | None
    ) -> Any:
        token = _in_handler.set(args)
        # The spans the handler and the code it calls start are its children, wherever it
        # runs (the serial queue's task).
        entered = None if traced is None else tracing.enter(traced)
        try:
            if spec.prepare is not None:
                args = spec.prepare(args)
            if spec.is_async:
                return await spec.fn(*args)
            return await db(spec.fn)(*args)
        except HandlerError as err:
            raise RemoteError(str(err)) from err
        except RPCError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as err:
            dependency = dependencies.note(err)
            if dependency is not None:  # the database or Redis is down: logged once
                raise dependency.error() from err
            # A handler's bug must not kill the node, nor leak internals to a client.
            logger.exception(
                "%r: handler %s failed", self.module, getattr(spec.fn, "__name__", "?")
            )
            raise RemoteError("internal error") from err
        finally:
            _in_handler.reset(token)
            if entered is not None:
                tracing.leave(entered)
