"""mqant.workqueue: items run in order, one at a time, by a task that exists only while work
waits."""

import asyncio
import logging

import pytest

from mqant.workqueue import WorkQueue


class Runs:
    """Records the items run; an item in ``gates`` waits for its event."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.done: list[int] = []
        self.running = 0
        self.most = 0
        self.gates: dict[int, asyncio.Event] = {}
        self.tasks: set[asyncio.Task[object] | None] = set()

    async def __call__(self, item: int) -> None:
        self.started.append(item)
        self.tasks.add(asyncio.current_task())
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if item in self.gates:
                await self.gates[item].wait()
            await asyncio.sleep(0)
            if item < 0:
                raise ValueError(item)
            self.done.append(item)
        finally:
            self.running -= 1


def queue_of(runs: Runs, **kwargs: object) -> WorkQueue[int]:
    return WorkQueue(runs, lambda: "the test's work", **kwargs)  # type: ignore[arg-type]


async def test_items_run_in_order_one_at_a_time_in_one_task():
    runs = Runs()
    queue = queue_of(runs)
    for n in range(5):
        queue.add(n)
    await asyncio.wait_for(queue.idle(), 1)
    assert runs.done == [0, 1, 2, 3, 4]
    assert runs.most == 1
    assert len(runs.tasks) == 1


async def test_the_task_starts_on_demand_and_is_gone_once_empty():
    runs = Runs()
    queue = queue_of(runs)
    assert queue._task is None
    assert queue._items is None
    queue.add(1)
    assert queue._task is not None
    await asyncio.wait_for(queue.idle(), 1)
    assert queue._task is None
    assert queue._items is None
    queue.add(2)  # a new task for new work
    await asyncio.wait_for(queue.idle(), 1)
    assert runs.done == [1, 2]
    assert len(runs.tasks) == 2


async def test_len_and_iter_count_the_running_item_and_those_waiting():
    runs = Runs()
    runs.gates[1] = asyncio.Event()
    queue = queue_of(runs)
    for n in (1, 2, 3):
        queue.add(n)
    assert len(queue) == 3
    assert list(queue) == [1, 2, 3]
    await asyncio.sleep(0.01)
    assert runs.started == [1]
    assert len(queue) == 3
    assert list(queue) == [1, 2, 3]
    runs.gates[1].set()
    await asyncio.wait_for(queue.idle(), 1)
    assert len(queue) == 0
    assert list(queue) == []


async def test_an_error_is_logged_and_the_next_item_runs(caplog: pytest.LogCaptureFixture):
    runs = Runs()
    queue = queue_of(runs)
    with caplog.at_level(logging.ERROR):
        for n in (1, -2, 3):
            queue.add(n)
        await asyncio.wait_for(queue.idle(), 1)
    assert runs.done == [1, 3]
    assert [r.getMessage() for r in caplog.records] == ["the test's work failed"]
    assert caplog.records[0].exc_info is not None


async def test_cancel_stops_the_running_item_and_drops_those_waiting():
    runs = Runs()
    runs.gates[1] = asyncio.Event()
    dropped: list[int] = []
    keep: set[asyncio.Task[None]] = set()
    queue = queue_of(runs, dropped=dropped.append, keep=keep)
    for n in (1, 2, 3):
        queue.add(n)
    assert len(keep) == 1  # the running task is held
    await asyncio.sleep(0.01)
    queue.cancel()
    await asyncio.wait_for(queue.idle(), 1)
    assert runs.started == [1]
    assert runs.done == []
    assert dropped == [2, 3]
    assert len(queue) == 0
    assert queue._task is None
    assert not keep
    queue.add(4)  # the queue serves again
    await asyncio.wait_for(queue.idle(), 1)
    assert runs.done == [4]


async def test_cancel_before_the_task_ran_drops_everything():
    runs = Runs()
    dropped: list[int] = []
    queue = queue_of(runs, dropped=dropped.append)
    queue.add(1)
    queue.add(2)
    queue.cancel()
    await asyncio.wait_for(queue.idle(), 1)
    assert runs.started == []
    assert dropped == [1, 2]
    assert queue._task is None


async def test_idle_waits_for_items_added_while_it_waits():
    runs = Runs()
    runs.gates[1] = asyncio.Event()
    queue = queue_of(runs)
    queue.add(1)
    idle = asyncio.ensure_future(queue.idle())
    await asyncio.sleep(0.01)
    queue.add(2)
    assert not idle.done()
    runs.gates[1].set()
    await asyncio.wait_for(idle, 1)
    assert runs.done == [1, 2]


async def test_idle_returns_at_once_when_nothing_waits():
    queue = queue_of(Runs())
    await asyncio.wait_for(queue.idle(), 0.1)
