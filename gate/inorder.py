"""Work of one connection that must run in order, off its read loop, in a task that exists
only while work waits: an idle connection holds no queue and no task.

``InOrder`` runs each job once (a failure is logged, the next runs): the events a connection
is sent. ``UntilDone`` tries each job until it succeeds, through outages of Redis or the
database: what a connection tells the outside world (gate.keeper), which must not be lost.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from time import perf_counter
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from mqant import dependencies, metrics
from mqant.errors import DeadlineExceeded, ServiceUnavailable
from mqant.workqueue import WorkQueue

logger = logging.getLogger(__name__)

# The workers of UntilDone, which outlive their connections: kept referenced.
workers: set["asyncio.Task[None]"] = set()
# The jobs of every UntilDone, waiting or running, and how long each took once it succeeded.
_depth = metrics.STORAGE_QUEUE_DEPTH.child()
_write_seconds = metrics.STORAGE_WRITE_SECONDS.child()

Job = Callable[[], Awaitable[Any]]

# A failing job is tried again after 0.2 s, then twice as long each time, up to 5 s.
FIRST_RETRY = 0.2
LAST_RETRY = 5.0
# A job that fails for another reason than a dependency (a bug) is logged with its traceback
# once, tried this many times more, then dropped with an ERROR: retrying a bug for ever would
# hold the session's later jobs (its close) behind it.
BUG_RETRIES = 3


class InOrder(WorkQueue[Job]):
    """Jobs run one after another; a failing job is logged as ``name``'s and the next runs."""

    __slots__ = ()

    def __init__(self, name: Callable[[], str]) -> None:
        super().__init__(_call, name)


async def _call(job: Job) -> None:
    await job()


class _Entry:
    """A queued job; ``key`` names what it supersedes, ``version`` counts replacements.
    ``attempted`` is done when the job (as last replaced) has been tried; ``trying`` is the
    one of the try in flight."""

    __slots__ = ("attempted", "job", "key", "session_id", "trying", "version")

    def __init__(self, job: Job, session_id: str, key: Hashable | None) -> None:
        self.job = job
        self.session_id = session_id
        self.key = key
        self.version = 0
        self.attempted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.trying: asyncio.Future[None] | None = None


class UntilDone:
    """Jobs that run one after another, each tried until it succeeds (see BUG_RETRIES), in a
    task that exists only while work waits: an idle connection holds no queue and no task.
    The task outlives its connection (its last job reports the close): ``workers`` holds it."""

    __slots__ = ("_entries", "_index", "_name")

    def __init__(self, name: Callable[[], str]) -> None:
        self._name = name
        self._entries = WorkQueue(self._try, name, keep=workers, dropped=self._done)
        self._index: dict[Hashable, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, job: Job, session_id: str, key: Hashable | None = None) -> "asyncio.Future[None]":
        """Queue ``job`` behind the others, or in place of the waiting (or failing) job of the
        same ``key``. The future is done once the job has been tried (succeeded or not): a
        caller that waits for it does not wait for an outage to end."""
        entry = self._index.get(key) if key is not None else None
        if entry is not None:
            entry.job = job
            entry.version += 1
            if entry.attempted.done() or entry.attempted is entry.trying:
                entry.attempted = asyncio.get_running_loop().create_future()
            return entry.attempted
        entry = _Entry(job, session_id, key)
        _pending[session_id] = _pending.get(session_id, 0) + 1
        _depth.value += 1
        if key is not None:
            self._index[key] = entry
        self._entries.add(entry)
        return entry.attempted

    def seal(self, key: Hashable) -> None:
        """Jobs of ``key`` queued from now on run after those queued so far (a delete after
        the writes it must follow)."""
        self._index.pop(key, None)

    async def _try(self, entry: _Entry) -> None:
        try:
            await self._until_done(entry)
        finally:
            self._done(entry)

    def _done(self, entry: _Entry) -> None:
        """``entry`` has been tried for good, or given up (the loop stops)."""
        if entry.key is not None and self._index.get(entry.key) is entry:
            del self._index[entry.key]
        _depth.value -= 1
        _forget_pending(entry.session_id)
        _settle(entry.attempted)

    async def _until_done(self, entry: _Entry) -> None:
        delay, bugs = FIRST_RETRY, 0
        failed: set[dependencies.Dependency] = set()
        while True:
            version = entry.version
            entry.trying = attempt = entry.attempted
            started = perf_counter()
            try:
                await entry.job()
                _write_seconds.observe(perf_counter() - started)
            except Exception as err:
                dependency = await _outage_of(err)
                if dependency is not None:
                    failed.add(dependency)
                elif not isinstance(err, ServiceUnavailable | DeadlineExceeded):  # a bug
                    # ("<node> stopped", or a node that did not answer in time, are not)
                    bugs += 1
                    if bugs == 1:
                        logger.exception("%s failed; trying again", self._name())
                    elif bugs > BUG_RETRIES:
                        logger.error("%s failed %d times; dropped", self._name(), bugs)
                        return
                _settle(attempt)
                await _pause(delay, dependency)
                delay = min(2 * delay, LAST_RETRY)
                continue
            finally:
                entry.trying = None
            _settle(attempt)
            for dependency in failed:
                dependency.succeeded()
                recovered(dependency)
            failed.clear()
            if entry.version == version:  # else a newer job took its place meanwhile: run it
                return


async def _outage_of(err: Exception) -> dependencies.Dependency | None:
    """The dependency whose outage ``err`` shows, if any, counted (once per outage logged)."""
    dependency = dependencies.note(err)
    if dependency is None:
        return _unavailable(err)  # whoever raised "Redis unavailable" counted it
    if dependency is dependencies.DATABASE:
        await reconnect_database()
    return dependency


def _unavailable(err: Exception) -> dependencies.Dependency | None:
    """The dependency a ``ServiceUnavailable`` names, if it names one."""
    if isinstance(err, ServiceUnavailable):
        for dependency in (dependencies.REDIS, dependencies.DATABASE):
            if str(err) == str(dependency.error()):
                return dependency
    return None


async def _pause(delay: float, dependency: dependencies.Dependency | None) -> None:
    """Wait ``delay`` s before the next try, or less when ``dependency`` is seen back."""
    if dependency is None:
        await asyncio.sleep(delay)
        return
    back = asyncio.get_running_loop().create_future()
    waiting = _waiting.setdefault(dependency.name, set())
    waiting.add(back)
    try:
        async with asyncio.timeout(delay):
            await back
    except TimeoutError:
        pass
    finally:
        waiting.discard(back)


def recovered(dependency: dependencies.Dependency) -> None:
    """``dependency`` answered again (a heartbeat, a job): the jobs waiting to try it again
    try now, instead of at the end of their backoff (up to LAST_RETRY s)."""
    for back in _waiting.pop(dependency.name, set()):
        if not back.done() and not back.get_loop().is_closed():
            back.set_result(None)


def _settle(attempt: "asyncio.Future[None]") -> None:
    if not attempt.done():
        attempt.set_result(None)


async def reconnect_database() -> None:
    """Drop the broken connection of the ORM's thread: Django checks a connection's health
    only between requests, and a gate's jobs run outside any."""
    try:
        await sync_to_async(close_old_connections)()
    except Exception as err:  # the next try reports the outage
        logger.debug("closing the database connection failed: %s", dependencies.describe(err))


# The backoffs waiting for a dependency to come back, by its name.
_waiting: dict[str, set["asyncio.Future[None]"]] = {}
# Session ids with jobs queued, and how many.
_pending: dict[str, int] = {}


def _forget_pending(session_id: str) -> None:
    left = _pending.get(session_id, 0) - 1
    if left > 0:
        _pending[session_id] = left
    else:
        _pending.pop(session_id, None)


def pending(session_id: str) -> bool:
    """Whether jobs of ``session_id`` wait (or are being tried)."""
    return session_id in _pending
