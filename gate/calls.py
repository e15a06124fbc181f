"""A connection's calls: admitted against the message rate and the in-flight limit, then run
concurrently (mqant's way) or one after another (``ORDERED_CALLS``), each in a task.

``Calls`` decides and runs; what a refusal means for the client (an error reply, a close) is
the connection's to carry out.
"""

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from gate import conf
from gate.limits import TokenBucket
from mqant import routing
from mqant.workqueue import WorkQueue

Run = Callable[[], Coroutine[Any, Any, None]]
R = TypeVar("R")  # what names a call: the client's PUBLISH (a topic, in tests)

# The answer to a call the server will not run, or not finish, because it is stopping.
SHUTTING_DOWN = "the server is shutting down"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A call that is not run: ``error`` is its answer ("": none, the PUBLISH is dropped),
    ``close`` why the connection closes now ("": it does not)."""

    error: str = ""
    close: str = ""


class Calls(Generic[R]):
    """The calls of one connection, each named by its request (an ``R``). Once
    ``draining``, new calls are refused with SHUTTING_DOWN."""

    def __init__(self) -> None:
        self.max_in_flight = int(conf.get("MAX_CALLS_IN_FLIGHT"))
        self.bucket = TokenBucket(float(conf.get("MESSAGE_RATE")), int(conf.get("MESSAGE_BURST")))
        self._refused_in_a_row = 0
        self._cut = False  # closed for its rate
        # With ORDERED_CALLS: (request, call), one after another.
        self._ordered: WorkQueue[tuple[R, Run]] | None = (
            WorkQueue(_run_call, lambda: "a call") if conf.get("ORDERED_CALLS") else None
        )
        self._tasks: set[asyncio.Task[None]] = set()  # unordered calls
        self._requests: dict[asyncio.Future[None], R] = {}  # unordered calls, for give_up
        self.draining = False

    def start(self, request: R, run: Run) -> Refusal | None:
        """Admit a client's ``request`` and start ``run``, its call; or refuse it."""
        if self._cut:  # being closed: what it still sends is dropped, silently
            return Refusal("")
        if not self.bucket.admit():
            self._refused_in_a_row += 1
            past = self._refused_in_a_row - self.bucket.burst
            if past == 1:
                # Closed once, and logged once: a token that comes back while the close is
                # under way (the rest of a burst read later) must not start the count again.
                self._cut = True
                return Refusal(routing.RATE_EXCEEDED, "it kept sending past its message rate")
            return Refusal(routing.RATE_EXCEEDED if past <= 1 else "")
        self._refused_in_a_row = 0
        if self.draining:
            return Refusal(SHUTTING_DOWN)
        ordered = self._ordered
        in_flight = len(self._tasks) if ordered is None else len(ordered)
        if in_flight >= self.max_in_flight:
            return Refusal(routing.WORK_QUEUE_FULL)
        if ordered is not None:
            ordered.add((request, run))
            return None
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._done)
        self._requests[task] = request
        return None

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._ordered is not None:
            self._ordered.cancel()

    async def idle(self) -> None:
        """Return once no call runs or waits (while ``draining``, none starts)."""
        if self._ordered is not None:
            await self._ordered.idle()
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def give_up(self) -> list[R]:
        """Cancel the calls that run or wait; returns their requests, to be answered."""
        requests = list(self._requests.values())
        requests.extend(request for request, _ in self._ordered or ())
        self.cancel()
        return requests

    def _done(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        self._requests.pop(task, None)


async def _run_call(call: tuple[Any, Run]) -> None:
    await call[1]()
