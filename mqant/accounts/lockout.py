"""Refusing logins after repeated failures, per user name and per client address.

Counts live in Django's default cache: per process with the local-memory cache, shared by
every process when the cache is Redis (settings do that with ``REDIS_URL``). A user name or an
address that reaches its count within ``WINDOW`` seconds is refused for ``DURATION`` seconds,
right password or not; then counting starts again.

An attempt is counted *before* its password is checked (``reserve``), with the cache's atomic
``incr``: the count is failures plus attempts in flight, and an attempt that would pass the
limit is refused without a check. Sixty guesses sent at once therefore get at most
``USER_FAILURES`` passwords checked, where a check-then-count sequence let most of them through.
A success gives its address count back and clears the user name's count; an attacker cannot
reset the address count by logging in to an account of their own between guesses.

Settings, ``settings.LOGIN_LOCKOUT`` (every key optional, 0 turns a count off):
``USER_FAILURES`` (5), ``IP_FAILURES`` (20), ``WINDOW`` (900 s), ``DURATION`` (900 s).
"""

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from mqant import counters, metrics
from mqant.accounts.errors import Refused
from mqant.counters import cache

logger = logging.getLogger(__name__)

KEY_PREFIX = "login-lockout"


@dataclass(frozen=True)
class Policy:
    """How many failures lock out, counted over how long, for how long."""

    user_failures: int = 5
    ip_failures: int = 20
    window: int = 900
    duration: int = 900

    @classmethod
    def from_settings(cls) -> "Policy":
        """The policy in ``settings.LOGIN_LOCKOUT``, the defaults for missing keys."""
        conf: dict[str, Any] = getattr(settings, "LOGIN_LOCKOUT", {})
        default = cls()
        return cls(
            user_failures=int(conf.get("USER_FAILURES", default.user_failures)),
            ip_failures=int(conf.get("IP_FAILURES", default.ip_failures)),
            window=int(conf.get("WINDOW", default.window)),
            duration=int(conf.get("DURATION", default.duration)),
        )


class LockedOut(Refused):
    """Logins for this user name or from this address are refused for ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Counted:
    """One count an attempt takes part in: ``kind`` "user" or "ip"."""

    kind: str
    value: str
    limit: int

    def key(self, what: str) -> str:
        return counters.key(KEY_PREFIX, what, self.kind, self.value)


@dataclass(frozen=True)
class Reservation:
    """An attempt counted in advance; settle it with ``succeeded`` or ``failed``."""

    policy: Policy
    counts: tuple[Counted, ...]


def reserve(*, username: str, ip: str) -> Reservation:
    """Count an attempt for the user name and the address before its password is checked.

    Raises LockedOut while either is locked out, or when this attempt would pass a limit
    (then nothing stays counted for it)."""
    policy = Policy.from_settings()
    counts = _counted(username, ip, policy)
    until = max(cache.get_many([c.key("until") for c in counts]).values(), default=0.0)
    remaining = until - time.time()
    if remaining > 0:
        metrics.RATE_LIMITS.child("lockout").add()
        raise LockedOut(math.ceil(remaining))
    taken: list[Counted] = []
    for count in counts:
        taken.append(count)
        if counters.add(count.key("attempts"), policy.window) > count.limit:
            for undo in taken:
                counters.give_back(undo.key("attempts"))
            # The attempts in flight that filled the count decide the lockout when they fail.
            metrics.RATE_LIMITS.child("lockout").add()
            raise LockedOut(policy.duration)
    return Reservation(policy, tuple(counts))


def failed(reservation: Reservation) -> None:
    """The attempt failed: it stays counted; a count that reached its limit locks out."""
    policy = reservation.policy
    for count in reservation.counts:
        key = count.key("attempts")
        failures = int(cache.get(key) or 0)
        if failures >= count.limit:
            cache.set(count.key("until"), time.time() + policy.duration, policy.duration)
            cache.delete(key)
            metrics.LOCKOUTS.child().add()
            logger.warning(
                "Refusing logins for %s %r for %d s after %d failures",
                count.kind, count.value[:150], policy.duration, failures,
            )  # fmt: skip


def succeeded(reservation: Reservation) -> None:
    """The attempt succeeded: forget the user name's failures, give the address its count
    back (the address's failures stay counted)."""
    for count in reservation.counts:
        if count.kind == "user":
            cache.delete(count.key("attempts"))
        else:
            counters.give_back(count.key("attempts"))


def _counted(username: str, ip: str, policy: Policy) -> list[Counted]:
    candidates = [
        Counted("user", username, policy.user_failures),
        Counted("ip", ip, policy.ip_failures),
    ]
    return [c for c in candidates if c.limit > 0 and c.value]


def cancelled(reservation: Reservation) -> None:
    """The attempt ended before its password was checked (the server was busy, the client
    left): it counts for nothing."""
    for count in reservation.counts:
        counters.give_back(count.key("attempts"))
