"""Password hashing on a bounded pool of threads of its own, fair between addresses.

A hash costs about 0.3 s of CPU by design (PBKDF2). Run where other work runs — Channels'
one database thread, a request's thread — a few clients logging in over and over delayed
every other handler's database work, and a bystander's login ran into its deadline. Here
hashes run on ``PASSWORD_HASH_THREADS`` threads of their own, and wait in one queue per client
address, which the threads serve in turn: a login waits behind one hash of each other busy
address, not behind all that one address has asked for. An address may have
``PASSWORD_HASH_QUEUE_PER_ADDRESS`` hashes waiting or running, and all addresses together
``PASSWORD_HASH_QUEUE``; past either an attempt is refused at once (``Busy``) instead of
growing a queue. Only the hash runs here, no database work: callers keep their transaction.
"""

import asyncio
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from django.contrib.auth.hashers import (
    check_password,
    get_hasher,
    identify_hasher,
    make_password,
)

from mqant import conf, metrics
from mqant.accounts.errors import Refused

T = TypeVar("T")

_Job = tuple[Callable[..., Any], tuple[Any, ...], "Future[Any]"]


class Busy(Refused):
    """Too many password checks wait already; the caller should try again shortly."""

    retry_after = 1

    def __init__(self) -> None:
        super().__init__("The server is busy; try again in a moment")


class HashPool:
    """Threads that run jobs from per-key queues, one key after another. ``queue`` and
    ``per_key`` bound the jobs not finished (waiting or running), in all and per key."""

    def __init__(self, threads: int, queue: int, per_key: int) -> None:
        self._threads, self._limit, self._per_key = threads, queue, per_key
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()
        self._pending: dict[str, int] = {}  # key -> jobs not finished
        self._total = 0
        self._cond = threading.Condition()
        self._started = False

    def submit(self, key: str, fn: Callable[..., Any], *args: Any) -> "Future[Any]":
        """Queue ``fn(*args)`` behind ``key``'s earlier jobs; raises Busy when that key or
        the pool has as many jobs as it may."""
        future: Future[Any] = Future()
        with self._cond:
            pending = self._pending.get(key, 0)
            if self._total >= self._limit or pending >= self._per_key:
                metrics.RATE_LIMITS.child("hash_queue").add()
                raise Busy()
            self._pending[key] = pending + 1
            self._total += 1
            self._queues.setdefault(key, deque()).append((fn, args, future))
            self._start()
            self._cond.notify()
        future.add_done_callback(lambda _: self._finished(key))
        return future

    def _finished(self, key: str) -> None:
        with self._cond:
            self._total -= 1
            left = self._pending.pop(key) - 1
            if left:
                self._pending[key] = left

    def _start(self) -> None:
        if not self._started:
            self._started = True
            for n in range(self._threads):
                threading.Thread(target=self._work, name=f"mqant-hash-{n}", daemon=True).start()

    def _next(self) -> _Job:
        with self._cond:
            while not self._queues:
                self._cond.wait()
            key, queue = self._queues.popitem(last=False)
            job = queue.popleft()
            if queue:  # the key's next job waits for the others' turns
                self._queues[key] = queue
            return job

    def _work(self) -> None:
        while True:
            fn, args, future = self._next()
            if not future.set_running_or_notify_cancel():
                continue  # the caller gave up while it waited
            try:
                result = fn(*args)
            except BaseException as err:
                future.set_exception(err)
            else:
                future.set_result(result)


_pool: HashPool | None = None
_pool_lock = threading.Lock()


def pool() -> HashPool:
    """The process's hash pool, made on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = HashPool(
                int(conf.get("PASSWORD_HASH_THREADS")),
                int(conf.get("PASSWORD_HASH_QUEUE")),
                int(conf.get("PASSWORD_HASH_QUEUE_PER_ADDRESS")),
            )
        return _pool


def _verify(password: str, encoded: str | None) -> bool:
    if encoded is None:
        make_password(password)  # as long as a real check: no user is told apart by time
        return False
    return check_password(password, encoded)


def outdated(encoded: str) -> bool:
    """Whether a hash was made by another hasher, or with other settings (fewer iterations),
    than the preferred one: the next successful login should make it again."""
    try:
        hasher = identify_hasher(encoded)
    except ValueError:
        return False
    return hasher.algorithm != get_hasher().algorithm or bool(hasher.must_update(encoded))


async def arun(fn: Callable[..., T], *args: Any, address: str) -> T:
    """``fn(*args)`` on the pool, in ``address``'s turn; raises Busy."""
    result: T = await asyncio.wrap_future(pool().submit(address, fn, *args))
    return result


async def averify(password: str, encoded: str | None, *, address: str) -> bool:
    """Whether ``password`` matches the hash ``encoded`` (None: no user; False after a hash
    of the same cost), computed in ``address``'s turn; raises Busy."""
    return await arun(_verify, password, encoded, address=address)


async def aencode(password: str, *, address: str) -> str:
    """A new hash of ``password`` (for a new account), in ``address``'s turn; raises Busy."""
    return await arun(make_password, password, address=address)
