"""``deadline(delay)``: ``asyncio.timeout(delay)`` for the paths every RPC call takes.

Same semantics: at the deadline the task is cancelled, and leaving the block turns that
cancellation into TimeoutError, unless the task was also cancelled from elsewhere (then the
CancelledError goes on). Two differences, both for CPU per call (``bench/rpc.py``; a call
over Redis takes two deadlines, the caller's and the node's):

- no state machine: on Python 3.11 ``asyncio.timeout`` costs about 4 µs per use;
- deadlines are grouped by the millisecond they fall in, one timer per millisecond: entering
  a block is a set insertion, not a timer handle of its own (a Python object pushed on the
  loop's heap with Python-level comparisons). A deadline fires up to 1 ms late.
"""

import asyncio
import math
import weakref
from types import TracebackType

RESOLUTION = 0.001  # seconds: deadlines in the same slot of this length share a timer


class _Wheel:
    """One event loop's deadlines, by slot: slot n ends at n * RESOLUTION, when its timer
    expires those still in it. A slot stays until its timer has fired."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.slots: dict[int, set[deadline]] = {}

    def add(self, member: "deadline", delay: float) -> int:
        slot = math.ceil((self.loop.time() + delay) / RESOLUTION)
        members = self.slots.get(slot)
        if members is None:
            members = self.slots[slot] = set()
            self.loop.call_at(slot * RESOLUTION, self._expire, slot)
        members.add(member)
        return slot

    def remove(self, member: "deadline", slot: int) -> None:
        members = self.slots.get(slot)
        if members is not None:
            members.discard(member)

    def _expire(self, slot: int) -> None:
        for member in self.slots.pop(slot, ()):
            member.expire()


_wheels: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Wheel]" = (
    weakref.WeakKeyDictionary()
)


def _wheel(loop: asyncio.AbstractEventLoop) -> _Wheel:
    wheel = _wheels.get(loop)
    if wheel is None:
        wheel = _wheels[loop] = _Wheel(loop)
    return wheel


class deadline:  # a lower-case name, as asyncio.timeout it stands for
    """``async with deadline(seconds):`` cancel the block after ``seconds``; TimeoutError."""

    __slots__ = ("_cancelling", "_delay", "_expired", "_slot", "_task", "_wheel")

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._expired = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("deadline() must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        # The task's loop, not get_running_loop(): on 3.11 that is a getpid() system call.
        self._wheel = _wheel(task.get_loop())
        self._slot = self._wheel.add(self, self._delay)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._wheel.remove(self, self._slot)
        if not self._expired:
            return
        # Ours was one cancellation of the task; another one still pending is not ours.
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    def expire(self) -> None:
        """The deadline has passed: cancel the task (its wheel calls this)."""
        self._expired = True
        self._task.cancel()
