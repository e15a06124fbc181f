"""Counters in Django's default cache, shared by every process when the cache is Redis: what
per-address budgets, login lockouts and per-user quotas count with.

A count is raised before it is compared, with the cache's atomic ``incr`` (local memory,
Redis and memcached all have one), so concurrent requests cannot all slip under a limit.

When the cache fails (Redis down or hung), counting goes on in this process's memory until it
is back: every limit still holds, per process instead of for the whole deployment, and logins
go on. The outage is logged once (mqant.dependencies); while Redis is known down the shared
cache is not tried at all, so no request waits for its timeout.
"""

import contextlib
import hashlib
from typing import Any

from django.core.cache import cache as shared_cache
from django.core.cache.backends.locmem import LocMemCache

from mqant import dependencies
from mqant.dependencies import REDIS

# Counts taken while the shared cache is unreachable: bounded like any local-memory cache
# (MAX_ENTRIES, culled), expiring like the shared ones.
_local = LocMemCache("mqant-counters", {"OPTIONS": {"MAX_ENTRIES": 100_000}})


class Counts:
    """The cache operations counting needs, on the shared cache, or on this process's memory
    while the shared one fails."""

    def __getattr__(self, name: str) -> Any:
        if name not in {"add", "incr", "decr", "get", "get_many", "set", "delete"}:
            raise AttributeError(name)
        return lambda *args, **kwargs: self._run(name, *args, **kwargs)

    @staticmethod
    def _run(name: str, *args: Any, **kwargs: Any) -> Any:
        if not REDIS.refusing:
            try:
                return getattr(shared_cache, name)(*args, **kwargs)
            except ValueError:  # incr/decr of a missing key: the cache's own answer
                raise
            except Exception as err:
                if dependencies.note(err) is None:
                    raise
        return getattr(_local, name)(*args, **kwargs)


cache: Any = Counts()


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
