"""Counters in Django's default cache, shared by every process when the cache is Redis: what
per-address budgets, login lockouts and per-user quotas count with.

A count is raised before it is compared, with the cache's atomic ``incr`` (local memory,
Redis and memcached all have one), so concurrent requests cannot all slip under a limit.
"""

import contextlib
import hashlib

from django.core.cache import cache


def key(*parts: str) -> str:
    """A cache key for ``parts``; the last one, often client text (a user name, an address),
    is hashed: some cache backends refuse characters it may hold, and its length is the
    client's."""
    *names, value = parts
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return ":".join((*names, digest))


def add(counter: str, window: float, amount: int = 1) -> int:
    """Add ``amount`` to ``counter`` and return its new value; a counter that does not exist
    starts at 0 and expires ``window`` seconds later."""
    timeout = max(1, int(window))
    cache.add(counter, 0, timeout)
    try:
        return int(cache.incr(counter, amount))
    except ValueError:  # expired between add and incr
        cache.add(counter, amount, timeout)
        return amount


def give_back(counter: str, amount: int = 1) -> None:
    """Take ``amount`` off ``counter`` (nothing when it expired meanwhile)."""
    with contextlib.suppress(ValueError):
        cache.decr(counter, amount)
