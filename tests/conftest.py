"""Fixtures shared by the whole suite."""

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from gate import process
from mqant import dependencies, runtime
from mqant.app import App
from mqant.project import redis_channel_layer, registry

# The servers and module processes the suite starts serve with DEBUG off, as in production,
# so they need a secret key (mqant.security refuses the public development key).
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def require_service(name: str, reason: str) -> None:
    """Skip a test whose service is missing, except in CI, where that is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required in CI: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


@pytest.fixture
async def mqant_started() -> AsyncIterator[App]:
    """The runtime of a gate process (its modules, its inbox and heartbeat), started in the
    test's event loop and stopped after it; yields its app."""
    app = (await runtime.start(process.parts())).app
    yield app
    await stop_runtime()


async def stop_runtime() -> None:
    """Stop the test's runtime, wait for the ORM work its tasks left in Channels' database
    thread (a query still running there holds its table of the shared in-memory SQLite, and
    the test's database flush would find it locked), and empty the channel layer."""
    await runtime.stop()
    await sync_to_async(lambda: None)()  # thread-sensitive: after what that thread runs
    await get_channel_layer().flush()


@dataclass(frozen=True)
class RedisSpace:
    """A Redis at ``url`` and a key prefix of one test's own: channel layers and node
    registries configured here share nothing with other tests or deployments."""

    url: str
    prefix: str

    def channel_layer(self, kind: str) -> dict[str, Any]:
        """A CHANNEL_LAYERS entry: kind "core" (RedisChannelLayer) or "pubsub"."""
        return redis_channel_layer(self.url, kind, self.prefix)

    def registry(self, **config: Any) -> dict[str, Any]:
        """An MQANT["REGISTRY"] entry for RedisNodeRegistry, as projects make one."""
        entry = registry(self.url, self.prefix)
        return {**entry, "CONFIG": {**entry["CONFIG"], **config}}

    def env(self, kind: str) -> dict[str, str]:
        """The environment that puts a server or runmodules process in this space."""
        return {"REDIS_URL": self.url, "MQANT_REDIS_LAYER": kind, "MQANT_REDIS_PREFIX": self.prefix}


@pytest.fixture
def redis_space() -> Iterator[RedisSpace]:
    """A RedisSpace on the local Redis (``TEST_REDIS_URL``); its keys are deleted after the
    test. Skips when Redis is down (fails in CI)."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as err:
        client.close()
        require_service("Redis", f"{REDIS_URL}: {err}")
    space = RedisSpace(REDIS_URL, f"test{secrets.token_hex(6)}")
    yield space
    keys = list(client.scan_iter(match=f"{space.prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database on the local server (``TEST_POSTGRES_URL``),
    dropped after the test. Skips when PostgreSQL is down (fails in CI)."""
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        require_service("PostgreSQL", f"{POSTGRES_URL}: {err}")
    name = f"mqant_test_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(autouse=True)
def _dependencies_up() -> Iterator[None]:
    """Each test starts with Redis and the database taken for up, whatever the last one
    broke (mqant.dependencies keeps their state per process)."""
    for dependency in (dependencies.REDIS, dependencies.DATABASE):
        dependency.forget()
    yield
    for dependency in (dependencies.REDIS, dependencies.DATABASE):
        dependency.forget()


@pytest.fixture(autouse=True)
def _no_database_side_effects(request: pytest.FixtureRequest, settings: Any) -> None:
    """In-process tests run without a database unless they ask for one: the StorageHandler
    and the Presence (both on the ORM) are on only for tests marked django_db."""
    settings.SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]  # as the suite's servers have
    # No thread of the process's own on the test database (tests of the probe turn it on).
    settings.MQANT = {**settings.MQANT, "DATABASE_PROBE": 0}
    if request.node.get_closest_marker("django_db") is None:
        settings.MQANT = {**settings.MQANT, "STORAGE_HANDLER": None, "PRESENCE": None}
