"""Per-process and per-connection limits: connection slots and the message-rate bucket."""

import time
from typing import ClassVar

from gate import conf


class ConnectionSlot:
    """One of the ``MAX_CONNECTIONS`` connections this process holds at once."""

    in_use: ClassVar[int] = 0

    def __init__(self) -> None:
        self._held = True

    @classmethod
    def take(cls) -> "ConnectionSlot | None":
        """A slot, or None when the process is full."""
        if cls.in_use >= int(conf.get("MAX_CONNECTIONS")):
            return None
        cls.in_use += 1
        return cls()

    def release(self) -> None:
        if self._held:
            self._held = False
            ConnectionSlot.in_use -= 1


class TokenBucket:
    """``rate`` events per second sustained, ``burst`` at once; a rate of 0 admits everything."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._last = time.monotonic()

    def admit(self) -> bool:
        """Take a token if there is one."""
        if not self.rate:
            return True
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
