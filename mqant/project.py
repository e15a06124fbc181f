"""What a Django project's settings use to run mqant: the channel layer, the cache, the node
registry and the database, each from a URL or from nothing, with the options this framework
needs. docs/project.md shows them in a project's ``settings.py``::

    from mqant import project

    REDIS_URL = os.environ.get("REDIS_URL", "")
    CHANNEL_LAYERS = project.channel_layers(REDIS_URL)  # in memory when REDIS_URL is ""
    CACHES = project.caches(REDIS_URL)  # Django's in-memory cache when ""
    DATABASES = {"default": project.database(os.environ.get("DATABASE_URL"), BASE_DIR / "db")}
    MQANT = {
        "REGISTRY": project.registry(REDIS_URL),  # this process's nodes only when ""
        "SESSION_QUEUES": project.session_queues(REDIS_URL),  # in memory when ""
    }

Every function returns plain dicts: a project may read and change them.
"""

import re
import socket
from pathlib import Path
from typing import Any

__all__ = [
    "INSTALLED_APPS",
    "REDIS_LAYERS",
    "caches",
    "channel_layers",
    "database",
    "redis_channel_layer",
    "registry",
    "session_queues",
    "sqlite_database",
]

# The framework's apps, in the order they go in INSTALLED_APPS (after Django's own).
INSTALLED_APPS = ["mqant", "gate", "sessions_store"]

# No client-side socket timeout. redis-py 8 defaults to 5 s, and the core layer's receive
# is a BZPOPMIN that blocks up to 5 s when idle: every idle consumer then died of a
# TimeoutError (channels_redis#422). Any timeout also makes redis-py write through
# asyncio.wait_for, which on Python 3.11 loses a cancellation that lands as the write
# completes (fixed in 3.12): a cancelled receive, as Channels cancels one whenever a client
# disconnects, then never ends. A dead Redis is noticed by TCP keepalive instead.
REDIS_SOCKET_TIMEOUT = None
# Probe after 10 s of silence, every 5 s, drop the connection after 3 unanswered probes
# (where the platform names these options).
REDIS_KEEPALIVE = {
    getattr(socket, name): value
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
}
# Connections a process may open to Redis at once. redis-py 8 caps a pool at 100 and then
# fails at once (MaxConnectionsError): the core layer holds one per send in progress, so a
# burst of 100 concurrent calls from one process failed.
REDIS_MAX_CONNECTIONS = 1000
REDIS_LAYERS = {
    # channels-redis's pub/sub layer over leaner connections, same wire (mqant/redis/layer.py)
    "pubsub": "mqant.redis.layer.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
    # channels-redis's own, for hosts the one above does not support (sentinels)
    "channels-pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
# Many connections share one process: a busy channel holds this many messages before sends
# to it fail (channels' and channels-redis's default is 100).
CHANNEL_CAPACITY = 1000


def _check_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_\-.]+", prefix):
        raise ValueError(f"The Redis prefix must use letters, digits, '_-.', got {prefix!r}")
    return prefix


def redis_channel_layer(url: str, kind: str = "pubsub", prefix: str = "mqant") -> dict[str, Any]:
    """The CHANNEL_LAYERS entry for channels-redis at ``url``: ``kind`` names the layer
    (REDIS_LAYERS), ``prefix`` starts its keys and channel names."""
    if kind not in REDIS_LAYERS:
        raise ValueError(f"The Redis layer must be one of {sorted(REDIS_LAYERS)}, got {kind!r}")
    host = {
        "address": url,
        "socket_timeout": REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": 5.0,
        "socket_keepalive": True,
        "socket_keepalive_options": REDIS_KEEPALIVE,
        "max_connections": REDIS_MAX_CONNECTIONS,
    }
    config: dict[str, Any] = {"hosts": [host], "prefix": f"{_check_prefix(prefix)}.asgi."}
    if kind == "core":
        config["capacity"] = CHANNEL_CAPACITY
    return {"BACKEND": REDIS_LAYERS[kind], "CONFIG": config}


def channel_layers(
    redis_url: str | None = None, kind: str = "pubsub", prefix: str = "mqant"
) -> dict[str, Any]:
    """CHANNEL_LAYERS: over Redis at ``redis_url`` (every process of a deployment on one
    layer), or in this process's memory when it is empty (one process)."""
    if redis_url:
        return {"default": redis_channel_layer(redis_url, kind, prefix)}
    return {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": CHANNEL_CAPACITY},
        }
    }


def caches(redis_url: str | None = None, prefix: str = "mqant") -> dict[str, Any]:
    """CACHES: Redis at ``redis_url``, so that the login budgets, lockouts and throttles are
    counted once for every process; Django's in-memory cache when it is empty."""
    if not redis_url:
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": _check_prefix(prefix),
            # A hung Redis costs a count 2 s at most; then mqant.counters counts in memory.
            "OPTIONS": {"socket_timeout": 2.0, "socket_connect_timeout": 2.0},
        }
    }


def registry(redis_url: str | None = None, prefix: str = "mqant") -> dict[str, Any]:
    """MQANT["REGISTRY"]: the live module nodes of every process, registered in Redis at
    ``redis_url`` with a heartbeat; this process's own nodes only when it is empty."""
    if not redis_url:
        return {"BACKEND": "mqant.registry.NodeRegistry", "CONFIG": {}}
    return {
        "BACKEND": "mqant.redis.registry.RedisNodeRegistry",
        "CONFIG": {"url": redis_url, "prefix": _check_prefix(prefix)},
    }


def session_queues(redis_url: str | None = None, prefix: str = "mqant") -> dict[str, Any]:
    """MQANT["SESSION_QUEUES"]: persistent MQTT sessions and their queued pushes kept in Redis
    at ``redis_url``, so that a client finds its session on any gate process; in this
    process's memory when it is empty."""
    if not redis_url:
        return {"BACKEND": "mqant.queues.MemorySessionQueues", "CONFIG": {}}
    return {
        "BACKEND": "mqant.redis.queues.RedisSessionQueues",
        "CONFIG": {"url": redis_url, "prefix": _check_prefix(prefix)},
    }


def sqlite_database(path: str | Path) -> dict[str, Any]:
    """A DATABASES entry for SQLite at ``path``, set for a server whose handlers write from
    worker threads while the gate reads."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            # Wait for the lock instead of failing at once with "database is locked".
            "timeout": 20,
            # Write-ahead log: readers do not wait for writers, and a commit appends to the
            # log without an fsync of its own (the log is synced at checkpoints), which made
            # every chat message cost a disk flush. A power cut may lose the last commits;
            # the database stays consistent.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            # Take the write lock at BEGIN: a read upgraded to a write can fail at once.
            "transaction_mode": "IMMEDIATE",
        },
        # Keep a worker thread's connection instead of opening one for every call.
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


def database(url: str | None, sqlite_path: str | Path) -> dict[str, Any]:
    """A DATABASES entry: the database at ``url`` (postgres://user:password@host:5432/name,
    any URL dj-database-url reads), or SQLite at ``sqlite_path`` when it is empty. Handlers
    run in worker threads that keep their connection a while, checked before reuse."""
    if not url:
        return sqlite_database(sqlite_path)
    import dj_database_url

    return dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
