"""Refusing logins after repeated failures, per user name and per client address.

Failures are counted in Django's default cache: per process with the local-memory cache, shared
by every process when the cache is Redis (settings do that with ``REDIS_URL``). A user name or
an address that reaches its count within ``WINDOW`` seconds is refused for ``DURATION`` seconds,
right password or not; then counting starts again. A successful login clears the user name's
count, never the address's: an attacker cannot reset the address count by logging in to an
account of their own between guesses.

Settings, ``settings.LOGIN_LOCKOUT`` (every key optional, 0 turns a count off):
``USER_FAILURES`` (5), ``IP_FAILURES`` (20), ``WINDOW`` (900 s), ``DURATION`` (900 s).
"""

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

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


class LockedOut(Exception):
    """Logins for this user name or from this address are refused for ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


def check(*, username: str, ip: str) -> None:
    """Raise LockedOut if the user name or the address is locked out now."""
    keys = [_key("until", kind, value) for kind, value, _ in _counted(username, ip)]
    until = max(cache.get_many(keys).values(), default=0.0)
    remaining = until - time.time()
    if remaining > 0:
        raise LockedOut(math.ceil(remaining))


def record_failure(*, username: str, ip: str) -> None:
    """Count a failed login; lock out the user name or the address that reaches its count."""
    policy = Policy.from_settings()
    for kind, value, limit in _counted(username, ip, policy):
        failures = _increment(_key("failures", kind, value), policy.window)
        if failures >= limit:
            until = time.time() + policy.duration
            cache.set(_key("until", kind, value), until, policy.duration)
            cache.delete(_key("failures", kind, value))
            logger.warning(
                "Refusing logins for %s %r for %d s after %d failures",
                kind, value, policy.duration, failures,
            )  # fmt: skip


def record_success(*, username: str) -> None:
    """Forget the user name's failures (the address's stay counted)."""
    cache.delete(_key("failures", "user", username))


def _counted(username: str, ip: str, policy: Policy | None = None) -> list[tuple[str, str, int]]:
    policy = policy or Policy.from_settings()
    candidates = [("user", username, policy.user_failures), ("ip", ip, policy.ip_failures)]
    return [(kind, value, limit) for kind, value, limit in candidates if limit > 0 and value]


def _increment(key: str, window: int) -> int:
    cache.add(key, 0, window)  # the window starts at the first failure
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window)
        return 1


def _key(what: str, kind: str, value: str) -> str:
    # Hashed: user names may hold characters some cache backends refuse in keys.
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}:{what}:{kind}:{digest}"
