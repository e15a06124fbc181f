"""Limits that keep one client from hurting the others: connection slots (per process and per
client address), token buckets for rates, byte budgets for reads, and refusal logs that stay
bounded whatever clients do.

Per-address state is kept only while it matters: an address is remembered while it holds a
connection, or until its connect bucket would be full again; an address that comes back after
that starts afresh, exactly as a new one would.
"""

import asyncio
import ipaddress
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import ClassVar

from gate import conf
from mqant import metrics

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

# Seconds between two log lines about the same kind of refusal.
REFUSAL_LOG_INTERVAL = 60.0
# Addresses named in one summary line, and addresses counted apart between two lines.
REFUSAL_LOG_NAMED = 3
REFUSAL_LOG_TRACKED = 64
# Addresses remembered only for their connect bucket (no connection held), at most: past it
# the oldest are forgotten early, which only ever gives them a full bucket back.
MAX_IDLE_ADDRESSES = 65536


class TokenBucket:
    """``rate`` units per second sustained, ``burst`` at once; a rate of 0 admits everything.

    ``admit`` takes one unit if there is one (a call, a ping, a connection). ``spend`` counts
    units that cannot be refused (bytes already read, packets already decoded): past the
    budget that leaves a debt, and it says how long the reader should wait before reading
    again (or, for a client that may not go past it, that it went past)."""

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._last = clock()

    def admit(self) -> bool:
        """Take a token if there is one."""
        if not self.rate:
            return True
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def spend(self, n: int) -> float:
        """Count ``n`` units; the seconds until the budget is out of debt (0: read on)."""
        if not self.rate:
            return 0.0
        self._refill()
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now


def address_key(ip: str) -> str:
    """The key a client address is limited under: an IPv4 address as it is (an IPv4-mapped
    IPv6 one as IPv4), an IPv6 address as its /64, which one subscriber usually holds whole,
    so that stepping through it does not make a client many; anything else as it is."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return ip


class _Address:
    __slots__ = ("connections", "last", "tokens")

    def __init__(self, tokens: float, now: float) -> None:
        self.connections = 0
        self.tokens = tokens
        self.last = now


class AddressLimits:
    """Per client address: connections held at once, and new connections admitted by a token
    bucket. Limits come with each call (settings may change between tests); 0 turns one off.

    An address is remembered while it holds a connection; once it holds none, until its
    bucket would be full again (``burst / rate`` seconds at most), then forgotten.
    """

    def __init__(self, clock: Clock = time.monotonic, max_idle: int = MAX_IDLE_ADDRESSES) -> None:
        self._clock = clock
        self._max_idle = max_idle
        self._addresses: dict[str, _Address] = {}
        # Addresses holding no connection, oldest first, with the time they became idle.
        self._idle: OrderedDict[str, float] = OrderedDict()
        self._refill_seconds = 0.0

    def __len__(self) -> int:
        """How many addresses are remembered."""
        return len(self._addresses)

    def connections(self, key: str) -> int:
        """Connections ``key`` holds now."""
        entry = self._addresses.get(key)
        return 0 if entry is None else entry.connections

    def admit(self, key: str, *, max_connections: int, rate: float, burst: int) -> str | None:
        """Count a new connection from ``key``: None when admitted, else which limit refused it."""
        now = self._clock()
        burst = max(1, burst)
        self._refill_seconds = burst / rate if rate else 0.0
        self._forget_idle(now)
        entry = self._addresses.get(key)
        if entry is None:
            entry = self._addresses[key] = _Address(float(burst), now)
        if max_connections and entry.connections >= max_connections:
            return "MAX_CONNECTIONS_PER_ADDRESS reached"
        if rate:
            entry.tokens = min(burst, entry.tokens + (now - entry.last) * rate)
            entry.last = now
            if entry.tokens < 1:
                return "CONNECT_RATE_PER_ADDRESS exceeded"
            entry.tokens -= 1
        entry.connections += 1
        self._idle.pop(key, None)
        return None

    def release(self, key: str) -> None:
        """A connection of ``key`` has ended."""
        entry = self._addresses.get(key)
        if entry is None or entry.connections <= 0:
            return
        entry.connections -= 1
        if entry.connections == 0:
            now = self._clock()
            self._idle[key] = now
            self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        # Idle entries only ever gain tokens, so the oldest are the first full again.
        horizon = now - self._refill_seconds
        while self._idle:
            key, since = next(iter(self._idle.items()))
            if since > horizon and len(self._idle) <= self._max_idle:
                return
            del self._idle[key]
            del self._addresses[key]


class RefusalLog:
    """Log lines about refusals that stay bounded whatever clients do: per kind of refusal, one
    WARNING at once, then at most one summary every ``interval`` seconds (how many, from how
    many addresses, the busiest few), written when the interval ends."""

    def __init__(
        self,
        log: logging.Logger,
        interval: float = REFUSAL_LOG_INTERVAL,
        clock: Clock = time.monotonic,
    ) -> None:
        self._log = log
        self._interval = interval
        self._clock = clock
        self._last_line: dict[str, float] = {}
        self._held: dict[str, Counter[str]] = {}
        self._others: Counter[str] = Counter()
        self._flushes: dict[str, asyncio.TimerHandle] = {}

    def note(self, what: str, address: str) -> None:
        """Note one refusal: ``what`` is a phrase from the code (never from the client), such as
        ``"MQTT connection refused: MAX_CONNECTIONS reached"``; ``address``, the client's."""
        now = self._clock()
        last = self._last_line.get(what)
        if last is None or (now - last >= self._interval and what not in self._held):
            self._last_line[what] = now
            self._log.warning("%s, from %s", what, address or "an unknown address")
            return
        held = self._held.setdefault(what, Counter())
        if address in held or len(held) < REFUSAL_LOG_TRACKED:
            held[address] += 1
        else:
            self._others[what] += 1
        if now - last >= self._interval:  # no timer wrote the summary (no event loop)
            self.flush(what)
        else:
            self._flush_later(what, last + self._interval - now)

    def flush(self, what: str) -> None:
        """Write the summary of what was held back about ``what``, if anything was."""
        self._flushes.pop(what, None)
        held = self._held.pop(what, Counter())
        others = self._others.pop(what, 0)
        if not held and not others:
            return
        total = sum(held.values()) + others
        busiest = ", ".join(f"{a or '?'} ({n})" for a, n in held.most_common(REFUSAL_LOG_NAMED))
        addresses = f"{len(held)}{'+' if others else ''}"
        self._last_line[what] = self._clock()
        self._log.warning(
            "%s: %d more in the last %.0f s, from %s addresses; most from %s",
            what, total, self._interval, addresses, busiest or "unknown addresses",
        )  # fmt: skip

    def _flush_later(self, what: str, delay: float) -> None:
        if what in self._flushes:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test): the next refusal after the interval writes
            return
        self._flushes[what] = loop.call_later(max(0.0, delay), self.flush, what)


refusals = RefusalLog(logger)
"""The process's refusal log (connection slots, and daphne's sockets in gate.daphne_guard)."""


# AddressLimits' refusals as metrics' reasons.
_REASONS = {
    "MAX_CONNECTIONS_PER_ADDRESS reached": "per_address",
    "CONNECT_RATE_PER_ADDRESS exceeded": "connect_rate",
}


class ConnectionSlot:
    """One of the ``MAX_CONNECTIONS`` MQTT connections this process holds at once, and one of
    the ``MAX_CONNECTIONS_PER_ADDRESS`` of its client's address."""

    in_use: ClassVar[int] = 0
    addresses: ClassVar[AddressLimits] = AddressLimits()

    def __init__(self, key: str) -> None:
        self._key = key
        self._held = True

    @classmethod
    def take(cls, address: str = "", transport: str = "tcp") -> "ConnectionSlot | None":
        """A slot for a client at ``address`` (its IP; "" when unknown, which no per-address
        limit applies to), or None when the process or the address has no room or the address
        connects too fast. Refusals are logged, a bounded number of lines, and counted under
        ``transport`` (metrics.TRANSPORTS)."""
        if cls.in_use >= int(conf.get("MAX_CONNECTIONS")):
            refusals.note("MQTT connection refused: MAX_CONNECTIONS reached", address)
            metrics.transport(transport).refused("max_connections")
            return None
        key = address_key(address) if address else ""
        if key and not cls._admit_address(key, transport):
            return None
        cls.in_use += 1
        return cls(key)

    @classmethod
    def _admit_address(cls, key: str, transport: str) -> bool:
        """Count a new connection from address ``key``; False, the refusal logged and
        counted under ``transport``, when it has no room or connects too fast."""
        refusal = cls.addresses.admit(
            key,
            max_connections=int(conf.get("MAX_CONNECTIONS_PER_ADDRESS")),
            rate=float(conf.get("CONNECT_RATE_PER_ADDRESS")),
            burst=int(conf.get("CONNECT_BURST_PER_ADDRESS")),
        )
        if refusal is None:
            return True
        refusals.note(f"MQTT connection refused: {refusal}", key)
        metrics.transport(transport).refused(_REASONS.get(refusal, "per_address"))
        return False

    def rekey(self, address: str, transport: str = "tcp") -> bool:
        """Count this slot, taken for an address no per-address limit applies to (a trusted
        proxy's), against ``address`` from now on: the client's, as the proxy says. False
        (the refusal logged) when that address has no room or connects too fast; the slot
        is still held then, for the caller to release."""
        if self._key or not self._held:
            raise RuntimeError("Only a held slot taken without an address can be rekeyed")
        key = address_key(address) if address else ""
        if key and not ConnectionSlot._admit_address(key, transport):
            return False
        self._key = key
        return True

    def release(self) -> None:
        """Give the slot back; once only, however often it is called."""
        if self._held:
            self._held = False
            ConnectionSlot.in_use -= 1
            if self._key:
                ConnectionSlot.addresses.release(self._key)
