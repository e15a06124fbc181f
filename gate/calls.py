"""A connection's calls: admitted against the message rate and the in-flight limit, then run
concurrently (mqant's way) or one after another (``ORDERED_CALLS``), each in a task."""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from gate import conf
from gate.limits import TokenBucket
from mqant import routing

Run = Callable[[str, bytes], Awaitable[None]]

# The answer to a call the server will not run, or not finish, because it is stopping.
SHUTTING_DOWN = "the server is shutting down"


class Calls:
    """The calls of one connection. ``run(topic, payload)`` makes a call; ``refuse(topic,
    error)`` answers one that is not admitted; ``close(reason)`` ends a client that keeps
    sending past its rate. Once ``draining``, new calls are refused with SHUTTING_DOWN."""

    def __init__(
        self,
        run: Run,
        refuse: Callable[[str, str], None],
        close: Callable[[str], None],
    ) -> None:
        self._run, self._refuse, self._close = run, refuse, close
        self.max_in_flight = int(conf.get("MAX_CALLS_IN_FLIGHT"))
        self.bucket = TokenBucket(float(conf.get("MESSAGE_RATE")), int(conf.get("MESSAGE_BURST")))
        self._refused_in_a_row = 0
        self._ordered: deque[tuple[str, bytes]] | None = (
            deque() if conf.get("ORDERED_CALLS") else None
        )
        self._running_in_order = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._topics: dict[asyncio.Future[None], str] = {}  # unordered calls, for give_up
        self._topic_in_order = ""
        self.draining = False

    def start(self, topic: str, payload: bytes) -> None:
        """Admit a client's PUBLISH and start its call, or refuse it."""
        if not self.bucket.admit():
            self._refused_in_a_row += 1
            past = self._refused_in_a_row - self.bucket.burst
            if past <= 1:
                self._refuse(topic, routing.RATE_EXCEEDED)
            if past == 1:  # once: what it sends while it is being closed is dropped
                self._close("it kept sending past its message rate")
            return
        self._refused_in_a_row = 0
        if self.draining:
            self._refuse(topic, SHUTTING_DOWN)
            return
        if self._ordered is None:
            in_flight = len(self._tasks)
        else:  # queued, and the one running (the worker may not have taken the first yet)
            in_flight = len(self._ordered) + self._running_in_order
        if in_flight >= self.max_in_flight:
            self._refuse(topic, routing.WORK_QUEUE_FULL)
            return
        if self._ordered is not None:
            self._ordered.append((topic, payload))
            if not self._tasks:
                self._track(self._run_in_order())
            return
        self._topics[self._track(self._run(topic, payload))] = topic

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def idle(self) -> None:
        """Return once no call runs or waits (while ``draining``, none starts)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def give_up(self, error: str) -> None:
        """Cancel the calls that run or wait, answering each with ``error``."""
        topics = list(self._topics.values())
        if self._running_in_order:
            topics.append(self._topic_in_order)
        topics.extend(topic for topic, _ in self._ordered or ())
        if self._ordered is not None:
            self._ordered.clear()
        self.cancel()
        for topic in topics:
            self._refuse(topic, error)

    def _track(self, coro: Awaitable[None]) -> "asyncio.Task[None]":
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        self._topics.pop(task, None)

    async def _run_in_order(self) -> None:
        """With ORDERED_CALLS: one task runs the connection's calls one after another."""
        assert self._ordered is not None
        while self._ordered:
            topic, payload = self._ordered.popleft()
            self._running_in_order, self._topic_in_order = True, topic
            try:
                await self._run(topic, payload)
            finally:
                self._running_in_order = False
