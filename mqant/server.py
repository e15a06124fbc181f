"""Runs a module's handlers: one at a time for ``register``, concurrently for
``register_go``, plain functions in a worker thread."""

import asyncio
import logging
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from mqant import dependencies, metrics
from mqant.db import db
from mqant.errors import FunctionNotFound, HandlerError, RemoteError, RPCError
from mqant.module import HandlerSpec, Module
from mqant.workqueue import WorkQueue

logger = logging.getLogger(__name__)

_Job = tuple[HandlerSpec, tuple[Any, ...], "asyncio.Future[Any]"]

# True while a handler runs, and in whatever it awaits or spawns: the calls it makes are part
# of a call in flight, which a stopping process still serves.
_in_handler: ContextVar[bool] = ContextVar("mqant_in_handler", default=False)


def in_handler() -> bool:
    """Whether the running code is (called from) a module's handler."""
    return _in_handler.get()


class ModuleServer:
    """The RPC server of one module instance (a node)."""

    def __init__(self, module: Module) -> None:
        self.module = module
        self._type = module.module_type
        self._serial: WorkQueue[_Job] = WorkQueue(self._serve, lambda: f"{module!r}: a call")
        self.active = 0  # calls accepted and not finished
        # False once the process stops: only its own calls in flight still reach the node,
        # directly (see App.stop).
        self.accepting = True
        self._idle = asyncio.Event()
        self._idle.set()

    async def stop(self) -> None:
        """Cancel the ``register`` calls that run or wait: their callers are left to time out."""
        self._serial.cancel()
        await self._serial.idle()

    async def wait_idle(self) -> None:
        """Return once no call is in flight."""
        await self._idle.wait()

    async def invoke(self, fn: str, args: tuple[Any, ...]) -> Any:
        """Run handler ``fn`` with ``args`` and return its result.

        Raises FunctionNotFound, or RemoteError with the handler's error text. The caller
        enforces the deadline by cancelling; a queued ``register`` call whose caller has given
        up is skipped.
        """
        spec = self.module.handlers.get(fn)
        if spec is None:
            metrics.HANDLER_CALLS.child(self._type, metrics.UNKNOWN, metrics.NOT_FOUND).add()
            raise FunctionNotFound.for_name(fn)
        self.active += 1
        self._idle.clear()
        started, outcome = perf_counter(), metrics.CANCELLED
        try:
            if spec.concurrent:
                result = await self._run(spec, args)
            else:
                future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                self._serial.add((spec, args, future))
                result = await future
            outcome = metrics.OK
            return result
        except RPCError as err:
            outcome = metrics.outcome_of(err.kind)
            raise
        finally:
            self.active -= 1
            if not self.active:
                self._idle.set()
            # fn is a registered handler's name: the labels stay bounded.
            metrics.HANDLER_CALLS.child(self._type, fn, outcome).add()
            metrics.HANDLER_SECONDS.child(self._type, fn).observe(perf_counter() - started)

    async def _serve(self, job: _Job) -> None:
        """Run a ``register`` call, in its turn, and answer its caller."""
        spec, args, future = job
        if future.done():  # the caller gave up while the call waited in the queue
            return
        try:
            result = await self._run(spec, args)
        except RPCError as err:
            if not future.done():
                future.set_exception(err)
        else:
            if not future.done():
                future.set_result(result)

    async def _run(self, spec: HandlerSpec, args: tuple[Any, ...]) -> Any:
        token = _in_handler.set(True)
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
