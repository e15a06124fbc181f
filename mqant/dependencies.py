"""What this process depends on (Redis, the database), and whether each is up.

Whoever sees a dependency fail calls ``failed``; whoever sees it answer calls ``succeeded``.
An outage is logged twice, whatever the number of requests it fails: one WARNING when it
starts (which dependency, why) and one when it ends (how long it lasted, how many operations
failed meanwhile). Callers that can tell a client at once (``down``) answer
``ServiceUnavailable`` instead of waiting for their deadline.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mqant import metrics
from mqant.errors import ServiceUnavailable

logger = logging.getLogger(__name__)


def describe(err: BaseException) -> str:
    """An error as a log line can say it: its text, or its class when the text is empty (a
    timeout's)."""
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class Dependency:
    """One dependency's state, as this process last saw it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._errors = metrics.LAYER_ERRORS.child(name.lower())
        self.down_since: float | None = None
        self.failures = 0  # in the current outage
        # Whether something in this process checks the dependency regularly (and so marks it
        # back): only then do callers refuse at once while it is down, instead of trying.
        self.probe = False
        self._watchers: list[Callable[[], None]] = []
        self._up_watchers: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"<Dependency {self.name} {'down' if self.down else 'up'}>"

    @property
    def down(self) -> bool:
        return self.down_since is not None

    @property
    def refusing(self) -> bool:
        """Whether callers should answer ``error()`` at once instead of trying."""
        return self.probe and self.down_since is not None

    def when_down(self, watcher: Callable[[], None]) -> None:
        """Call ``watcher`` each time an outage begins (to fail what waits on it)."""
        if watcher not in self._watchers:
            self._watchers.append(watcher)

    def when_up(self, watcher: Callable[[], None]) -> None:
        """Call ``watcher`` each time an outage ends (to put back what it lost). Called from
        whichever thread saw it back: a watcher hands on to its own loop."""
        if watcher not in self._up_watchers:
            self._up_watchers.append(watcher)

    def unwatch(self, watcher: Callable[[], None]) -> None:
        """Stop telling ``watcher`` (of outages and of returns)."""
        for watchers in (self._watchers, self._up_watchers):
            if watcher in watchers:
                watchers.remove(watcher)

    def down_for(self) -> float:
        """Seconds since the outage began (0 when up)."""
        return 0.0 if self.down_since is None else time.monotonic() - self.down_since

    def failed(self, err: BaseException) -> None:
        """An operation on the dependency failed: the first failure of an outage is logged."""
        self.failures += 1
        self._errors.add()
        if self.down_since is None:
            self.down_since = time.monotonic()
            logger.warning(
                "%s unavailable (%s); calls that need it are answered %r until it is back",
                self.name,
                describe(err),
                str(self.error()),
            )
            self._tell(self._watchers, "outage")

    def succeeded(self) -> None:
        """An operation on the dependency succeeded: an outage, if any, is over."""
        if self.down_since is None:
            return
        lasted = time.monotonic() - self.down_since
        failures, self.down_since, self.failures = self.failures, None, 0
        logger.warning(
            "%s is back after %.1f s of outage (%d operations failed meanwhile)",
            self.name,
            lasted,
            failures,
        )
        self._tell(self._up_watchers, "return")

    def _tell(self, watchers: list[Callable[[], None]], what: str) -> None:
        for watcher in list(watchers):
            try:
                watcher()
            except Exception:
                logger.exception("a watcher of %s's %s failed", self.name, what)

    def forget(self) -> None:
        """No longer probed (the probe stopped): callers try it again, as before any outage."""
        self.probe = False
        self.down_since, self.failures = None, 0

    def error(self) -> ServiceUnavailable:
        """The error a call that needs the dependency gets while it is down."""
        return ServiceUnavailable.for_dependency(self.name)


# Seconds between two checks of a dependency that is down: calls are refused at once until a
# check sees it back, so a check every few seconds would hold them off that long after.
RECHECK = 0.25

REDIS = Dependency("Redis")
DATABASE = Dependency("database")


def note(err: BaseException) -> Dependency | None:
    """The dependency ``err`` says failed, marked down (logged once per outage); None when
    it is no dependency's error."""
    dependency = of_error(err)
    if dependency is not None:
        dependency.failed(err)
    return dependency


def unavailable_text(exc: BaseException | None) -> str | None:
    """``"<dependency> unavailable"`` when ``exc`` says a dependency failed (or is the
    ServiceUnavailable of one), noted as ``note`` does; else None."""
    if isinstance(exc, ServiceUnavailable):
        return str(exc)
    dependency = note(exc) if exc is not None else None
    return None if dependency is None else str(dependency.error())


def of_error(err: BaseException) -> Dependency | None:
    """The dependency an exception says failed, if it is one of a dependency's errors."""
    from django.db import DatabaseError, InterfaceError, OperationalError

    if isinstance(err, OperationalError | InterfaceError):
        return DATABASE
    if isinstance(err, DatabaseError) and "connection" in str(err).lower():
        return DATABASE
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is a dependency of channels-redis
        return None
    # Redis unreachable or not answering; a command it refuses (a full memory, a wrong type)
    # is an error of that command, not an outage.
    if isinstance(err, RedisConnectionError | RedisTimeoutError):
        return REDIS
    return None


class DatabaseProbe:
    """Checks the database every ``every`` seconds (every RECHECK while it is down) with
    ``SELECT 1`` from a thread of its own (a hung database holds that thread, not the event
    loop nor the handlers' one): a check that fails or takes longer than ``timeout`` marks the
    database down (one WARNING), the next that succeeds marks it back. A process whose
    handlers hang on a hung database thus says which dependency hangs and since when."""

    def __init__(self, every: float, timeout: float) -> None:
        self.every, self.timeout = every, timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mqant-db-probe")
        self._task: asyncio.Task[None] | None = None
        self._check: asyncio.Future[None] | None = None

    def start(self) -> None:
        DATABASE.probe = True
        self._task = asyncio.get_running_loop().create_task(self._run(), name="database probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            DATABASE.forget()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._check is None or self._check.done():  # else the last one still hangs
                self._check = loop.run_in_executor(self._executor, _select_one)
            try:
                async with asyncio.timeout(self.timeout):
                    await asyncio.shield(self._check)
            except TimeoutError:
                DATABASE.failed(TimeoutError(f"no answer within {self.timeout:g} s"))
            except Exception as err:
                if of_error(err) is DATABASE:
                    DATABASE.failed(err)
                else:  # not the database's failure (a test without database access)
                    logger.debug("database probe: %s", describe(err))
            else:
                DATABASE.succeeded()
            await asyncio.sleep(self.every if not DATABASE.down else min(self.every, RECHECK))


def _select_one() -> None:
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        connection.close()  # the next check connects again
        raise


def layer_failure(err: Exception) -> Exception:
    """The error a caller gets for a channel-layer exception: ``ServiceUnavailable`` when it
    is a dependency's (which is marked down, logged once per outage), else the exception."""
    dependency = note(err)
    if dependency is None:
        metrics.LAYER_ERRORS.child("channel_layer").add()
    return err if dependency is None else dependency.error()


def refuse_while_redis_down() -> None:
    """Raise ``Redis unavailable`` at once while Redis is known down (and probed)."""
    if REDIS.refusing:
        raise REDIS.error()
