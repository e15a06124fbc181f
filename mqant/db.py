"""The Django ORM from async code, as ``channels.db.database_sync_to_async`` runs it, but
answering ``database unavailable`` (ServiceUnavailable) for a database that refuses, or that
is known to be down, instead of an OperationalError or a wait.

While the process's probe (mqant.dependencies.DatabaseProbe) says the database is down, a
call fails at once; and when it sees an outage begin, the calls already waiting for a query
that hangs fail then, instead of at their caller's deadline. The query itself goes on in its
thread (a driver blocked in a socket read cannot be cut short) and its result is dropped.
Modules run their ORM work through ``mqant.db``; sync handlers run through it.
"""

import asyncio
import functools
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError

from mqant.dependencies import DATABASE

P = ParamSpec("P")
R = TypeVar("R")

# Per event loop, the futures that stand for the calls waiting on the database.
_waiting: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[asyncio.Future[None]]]" = (
    weakref.WeakKeyDictionary()
)


def db(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``fn`` (sync, using the ORM) as a coroutine function run in Channels' database thread;
    raises ServiceUnavailable ``database unavailable`` while the database is known down."""
    run = guarded(database_sync_to_async(fn))
    functools.update_wrapper(run, fn)
    return run


def guarded(run_in_thread: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """``run_in_thread``, a coroutine function whose ORM work runs in some thread (Channels'
    database thread for ``db``; the hash pool for a password the project's backends check),
    under the database's rules: ServiceUnavailable at once while it is known down, when a
    refused or lost connection fails the work, and when an outage begins while it waits."""

    async def in_thread(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result: R = await run_in_thread(*args, **kwargs)
        except (OperationalError, InterfaceError) as err:  # refused, or the connection lost
            DATABASE.failed(err)
            raise DATABASE.error() from err
        return result

    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if DATABASE.refusing:
            raise DATABASE.error()
        if not DATABASE.probe:  # nothing would tell this call of an outage
            return await in_thread(*args, **kwargs)
        loop = asyncio.get_running_loop()
        work: asyncio.Future[R] = asyncio.ensure_future(in_thread(*args, **kwargs))
        cut: asyncio.Future[None] = loop.create_future()
        waiting = _waiting.setdefault(loop, set())
        waiting.add(cut)
        try:
            either: set[asyncio.Future[Any]] = {work, cut}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            raise
        finally:
            waiting.discard(cut)
        if work.done():
            cut.cancel()
            return work.result()
        work.add_done_callback(_drop)  # finishes when the database answers; nobody waits
        raise DATABASE.error()

    return run


def _drop(work: "asyncio.Future[Any]") -> None:
    if not work.cancelled():
        work.exception()  # seen: a late failure of an abandoned query is not an error to log


def _database_down() -> None:
    """The probe saw the database go down: the calls waiting on it fail now. May be called
    from any thread."""
    for loop, waiting in list(_waiting.items()):
        if not loop.is_closed():
            loop.call_soon_threadsafe(_cut, waiting)


def _cut(waiting: "set[asyncio.Future[None]]") -> None:
    for cut in list(waiting):
        if not cut.done():
            cut.set_result(None)


DATABASE.when_down(_database_down)
