"""What the guard reads: its settings (gate/conf.py), and the reactor's clock, typed."""

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gate import conf


class Timer(typing.Protocol):
    """What Twisted's ``callLater`` returns (zope interfaces do not type-check as classes)."""

    def active(self) -> bool: ...
    def cancel(self) -> None: ...


class Clock(typing.Protocol):
    """The reactor's time: twisted.internet.task.Clock in tests."""

    def seconds(self) -> float: ...
    def callLater(self, delay: float, f: Callable[..., object], /, *args: Any) -> Timer: ...


@dataclass(frozen=True)
class SocketLimits:
    """The guard's settings; 0 turns a limit off."""

    max_per_address: int = 128
    request_timeout: float = 20.0
    read_rate: float = 256 * 1024
    read_burst: int = 1024 * 1024
    ping_rate: float = 2.0
    ping_burst: int = 10

    @classmethod
    def from_settings(cls) -> "SocketLimits":
        return cls(
            max_per_address=int(conf.get("MAX_SOCKETS_PER_ADDRESS")),
            request_timeout=float(conf.get("HTTP_REQUEST_TIMEOUT")),
            read_rate=float(conf.get("READ_RATE")),
            read_burst=int(conf.get("READ_BURST")),
            ping_rate=float(conf.get("WS_PING_RATE")),
            ping_burst=int(conf.get("WS_PING_BURST")),
        )
