"""Work of one connection that must run in order, off its read loop, in a task that exists
only while work waits: an idle connection holds no queue and no task."""

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[Any]]


class InOrder:
    """Jobs run one after another; a failing job is logged as ``name``'s and the next runs.
    ``keep``, when given, holds the running task (work that must outlive its connection)."""

    __slots__ = ("_jobs", "_keep", "_name", "_task")

    def __init__(self, name: Callable[[], str], keep: set["asyncio.Task[None]"] | None = None):
        self._name = name
        self._keep = keep
        self._jobs: deque[tuple[Job, asyncio.Future[None]]] | None = None
        self._task: asyncio.Task[None] | None = None

    def add(self, job: Job) -> "asyncio.Future[None]":
        """Queue ``job`` behind the others; the future is done when it has run."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._jobs is None:
            self._jobs = deque()
        self._jobs.append((job, done))
        if self._task is None:
            self._task = asyncio.create_task(self._run())
            if self._keep is not None:
                self._keep.add(self._task)
                self._task.add_done_callback(self._keep.discard)
        return done

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        try:
            while self._jobs:
                job, done = self._jobs.popleft()
                try:
                    await job()
                except Exception:
                    logger.exception("%s failed", self._name())
                if not done.done():
                    done.set_result(None)
        finally:
            self._task = None
            self._jobs = None
