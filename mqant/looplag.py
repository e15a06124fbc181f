"""How late the event loop runs: a task sleeps ``interval`` seconds again and again and
measures how late it wakes (``mqant_event_loop_lag_seconds``). A loop blocked by a long
synchronous step, or too busy, wakes it late; /healthz reports it (mqant.health)."""

import asyncio

from mqant import metrics

# Seconds between two measures.
INTERVAL = 0.5


class LoopLag:
    """The lag of one event loop, measured by ``run`` (the runtime's task)."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.last = 0.0  # seconds late, at the last wake
        self._due: float | None = None  # when the sleeping task should wake
        self._gauge = metrics.EVENT_LOOP_LAG.child()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.last = max(0.0, loop.time() - self._due)
            self._gauge.set(self.last)

    def current(self) -> float:
        """The lag now: the last one measured, or longer if the task is late to wake now (the
        loop is busy as this runs)."""
        if self._due is None:
            return self.last
        overdue = asyncio.get_running_loop().time() - self._due
        return max(self.last, overdue)
