"""A FIFO of work run one item at a time, in a task that exists only while work waits: an idle
queue holds no task and no buffer, so a connection or a module with nothing to do costs
nothing.

The queue holds items (a job, or a job with what its owner needs to know of it, such as a
topic) and runs each through the function it was made with. That function carries its owner's
error policy (answer a caller, retry); what escapes it is logged and the next item runs.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class WorkQueue(Generic[T]):
    """Items run by ``run`` one after another, in the order they were added.

    ``name`` names the work in the log of a failure. ``keep``, when given, holds the running
    task (work that must outlive its owner). ``dropped`` is told of each item left waiting when
    the task is cancelled (the one running is its ``run``'s to clean up).
    """

    __slots__ = ("_dropped", "_items", "_keep", "_name", "_run", "_task")

    def __init__(
        self,
        run: Callable[[T], Awaitable[object]],
        name: Callable[[], str],
        *,
        keep: set["asyncio.Task[None]"] | None = None,
        dropped: Callable[[T], object] | None = None,
    ) -> None:
        self._run = run
        self._name = name
        self._keep = keep
        self._dropped = dropped
        self._items: deque[T] | None = None  # the one running first, while the task runs
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """The items waiting and the one running."""
        return len(self._items) if self._items else 0

    def __iter__(self) -> Iterator[T]:
        """The item running, then those waiting, in order."""
        return iter(self._items or ())

    def add(self, item: T) -> None:
        """Queue ``item`` behind the others; start the task if none runs."""
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        if self._task is None:
            self._task = task = asyncio.create_task(self._work(self._items))
            task.add_done_callback(self._ended)
            if self._keep is not None:
                self._keep.add(task)
                task.add_done_callback(self._keep.discard)

    def cancel(self) -> None:
        """Cancel the item running; those waiting are dropped."""
        if self._task is not None:
            self._task.cancel()

    async def idle(self) -> None:
        """Return once no item runs or waits."""
        while self._task is not None:
            await asyncio.wait((self._task,))

    async def _work(self, items: deque[T]) -> None:
        while items:
            try:
                await self._run(items[0])
            except Exception:
                logger.exception("%s failed", self._name())
            finally:
                items.popleft()
        self._task = self._items = None

    def _ended(self, task: "asyncio.Task[None]") -> None:
        """The task is done; if it did not end by running out of items, drop what is left."""
        if self._task is not task:
            return
        left, self._task, self._items = self._items or (), None, None
        if self._dropped is not None:
            for item in left:
                self._dropped(item)
