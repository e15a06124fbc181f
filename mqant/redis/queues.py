"""Persistent MQTT sessions and their queued pushes in Redis (mqant.queues), shared by every
gate process: a client finds its session on whichever gate it connects to again.

Keys, under ``prefix``:

- ``<prefix>:psession:<client id>``: a hash: ``owner``, ``user``, ``seq`` (the last seq
  given), ``bytes`` (queued), ``dropped`` (since the last claim), ``expires`` (Redis's time in
  ms when the session ends, 0 while it is owned by a connection);
- ``<prefix>:pqueue:<client id>``: a sorted set of the queued pushes scored by seq, each
  member ``<seq>:<qos>:<topic length>:<topic><payload>``;
- ``<prefix>:psessions``: a sorted set of every session's client id scored by ``expires``
  (+inf while owned), to count them against MAX_PERSISTENT_SESSIONS; a claim that starts a
  session first removes the ended ones (lazily, as their keys end by their time to live).

Each operation is one Lua script (one round trip, atomic) or one command, bounded by
``timeout``: a Redis that is down or does not answer in time makes the call raise
``ServiceUnavailable`` and marks ``mqant.dependencies.REDIS`` down (the next call that gets an
answer marks it back). A call that failed changed nothing: a script that reached a hung
Redis would run when it resumes, long after its caller gave up (a claim would then take the
session from its owner for a connection that was refused), so each carries a fence, the time
on Redis's clock after which it must not run (``FENCE`` of the timeout after it was sent).
Only a Redis that hangs between running a script and answering it leaves a change its caller
was told failed. Commands are sent once, never retried: a retry after a lost answer could
apply an append twice.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis import asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from mqant.dependencies import REDIS, refuse_while_redis_down
from mqant.queues import (
    Bounds,
    Claim,
    Queued,
    SessionBelongsToAnother,
    TooManySessions,
    check_claim,
    count_dropped,
)

# Every script begins here: Redis's clock in ms, the size a member counts against the byte
# bound (its topic and payload, without its header), and the fence: ARGV[1] is the time (on
# Redis's clock) after which the caller has given up, or soon will; a script that runs later
# (it waited in a hung Redis) changes nothing and answers LATE with Redis's time.
_PROLOGUE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function size_of(member)
  return #member - #string.match(member, '^%d+:%d+:%d+:')
end
local now = now_ms()
if now > tonumber(ARGV[1]) then
  return redis.error_reply(string.format('LATE %d', now))
end
"""

# KEYS: session, queue, index. ARGV: fence, client id, owner, user, clean ("1"), max sessions.
# Returns {1 when present, previous owner, its user, dropped}, {-1}: another user's,
# {-2}: too many sessions.
_CLAIM = (
    _PROLOGUE
    + """
local present = redis.call('EXISTS', KEYS[1]) == 1
local previous, user, dropped = '', '', 0
if present then
  local found = redis.call('HMGET', KEYS[1], 'owner', 'user', 'dropped')
  previous, user, dropped = found[1], found[2], tonumber(found[3])
  if user ~= '' and user ~= ARGV[4] then return {-1} end
  if ARGV[5] == '1' then
    redis.call('DEL', KEYS[2])
    redis.call('HSET', KEYS[1], 'bytes', 0)
  end
else
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if not redis.call('ZSCORE', KEYS[3], ARGV[2])
      and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then
    return {-2}
  end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'seq', 0, 'bytes', 0)
end
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'user', ARGV[4], 'dropped', 0, 'expires', 0)
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
redis.call('ZADD', KEYS[3], '+inf', ARGV[2])
return {present and 1 or 0, previous, user, dropped}
"""
)

# KEYS: session. ARGV: fence, owner, user. Returns 1 when bound, 0 when not the owner.
_BIND_USER = (
    _PROLOGUE
    + """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'user', ARGV[3])
return 1
"""
)

# KEYS: session, queue. ARGV: fence, owner, topic, payload, qos, max messages, max bytes.
# Returns nil when not the owner, else {seq, dropped for messages, dropped for bytes}.
_APPEND = (
    _PROLOGUE
    + """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return nil end
local topic, payload = ARGV[3], ARGV[4]
local max_messages, max_bytes = tonumber(ARGV[6]), tonumber(ARGV[7])
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local size = #topic + #payload
if size > max_bytes then
  redis.call('HINCRBY', KEYS[1], 'dropped', 1)
  return {seq, 0, 1}
end
local member = string.format('%d:%d:%d:', seq, tonumber(ARGV[5]), #topic) .. topic .. payload
redis.call('ZADD', KEYS[2], seq, member)
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes')) + size
local count = redis.call('ZCARD', KEYS[2])
local for_messages, for_bytes = 0, 0
while count > max_messages do
  bytes = bytes - size_of(redis.call('ZPOPMIN', KEYS[2])[1])
  count, for_messages = count - 1, for_messages + 1
end
while bytes > max_bytes do
  bytes = bytes - size_of(redis.call('ZPOPMIN', KEYS[2])[1])
  for_bytes = for_bytes + 1
end
redis.call('HSET', KEYS[1], 'bytes', bytes)
if for_messages + for_bytes > 0 then
  redis.call('HINCRBY', KEYS[1], 'dropped', for_messages + for_bytes)
end
local expires = redis.call('HGET', KEYS[1], 'expires')
if expires ~= '0' then redis.call('PEXPIREAT', KEYS[2], expires) end
return {seq, for_messages, for_bytes}
"""
)

# KEYS: session, queue. ARGV: fence, seq.
_ACK = (
    _PROLOGUE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local found = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[2], ARGV[2])
if #found == 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], ARGV[2], ARGV[2])
redis.call('HINCRBY', KEYS[1], 'bytes', -size_of(found[1]))
return 1
"""
)

# KEYS: session, queue, index. ARGV: fence, client id, owner, expiry in ms (0: discard now).
_RELEASE = (
    _PROLOGUE
    + """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[3] then return 0 end
local expiry = tonumber(ARGV[4])
if expiry <= 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
  return 1
end
local at = string.format('%d', now + expiry)
redis.call('HSET', KEYS[1], 'expires', at)
redis.call('PEXPIREAT', KEYS[1], at)
redis.call('PEXPIREAT', KEYS[2], at)
redis.call('ZADD', KEYS[3], at, ARGV[2])
return 1
"""
)

# A script must run within this part of the timeout, leaving the rest for its answer to come.
FENCE = 0.75
# Seconds between two readings of Redis's clock against this process's (it is read again at
# once when a script finds it moved).
CLOCK_CHECK = 60.0


class LateScript(Exception):
    """A script reached Redis too late to be run: Redis is hung or very slow."""


class RedisSessionQueues:
    """Sessions in the Redis at ``url``, under the key ``prefix`` (a deployment's, as its
    registry's). ``timeout``: seconds a command may take before Redis is taken for down
    (hung). Bounds are the settings', unless given. Connects at the first call."""

    def __init__(
        self,
        *,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "mqant",
        timeout: float = 2.0,
        max_messages: int | None = None,
        max_bytes: int | None = None,
        max_sessions: int | None = None,
    ) -> None:
        self.url, self.prefix, self.timeout = url, prefix, timeout
        self.bounds = Bounds.from_settings(max_messages, max_bytes, max_sessions)
        self.index_key = f"{prefix}:psessions"
        self._redis: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        # Redis's clock (ms since the epoch) minus this process's monotonic one (ms), and when
        # it was read; the fences of scripts are set on Redis's clock.
        self._offset: float | None = None
        self._clock_read = 0.0

    def session_key(self, client_id: str) -> str:
        return f"{self.prefix}:psession:{client_id}"

    def queue_key(self, client_id: str) -> str:
        return f"{self.prefix}:pqueue:{client_id}"

    async def claim(self, client_id: str, owner: str, *, user_id: str, clean: bool) -> Claim:
        check_claim(client_id, owner)
        keys = self._keys(client_id, self.index_key)
        args = (client_id, owner, user_id, "1" if clean else "0", self.bounds.max_sessions)
        found = await self._script(_CLAIM, keys, args)
        if found[0] == -1:
            raise SessionBelongsToAnother.for_client(client_id)
        if found[0] == -2:
            raise TooManySessions.for_client(client_id, self.bounds.max_sessions)
        present, previous, user, dropped = found
        return Claim(
            present=bool(present),
            previous_owner=previous.decode(),
            user_id=user.decode(),
            dropped=int(dropped),
        )

    async def bind_user(self, client_id: str, owner: str, user_id: str) -> bool:
        keys = [self.session_key(client_id)]
        return bool(await self._script(_BIND_USER, keys, (owner, user_id)))

    async def append(
        self, client_id: str, owner: str, topic: str, payload: bytes, qos: int
    ) -> int | None:
        bounds = self.bounds
        args = (owner, topic, payload, qos, bounds.max_messages, bounds.max_bytes)
        found = await self._script(_APPEND, self._keys(client_id), args)
        if found is None:
            return None
        seq, for_messages, for_bytes = found
        count_dropped(for_messages, for_bytes)
        return int(seq)

    async def pending(self, client_id: str, after_seq: int, limit: int) -> list[Queued]:
        if limit < 1:
            return []
        key = self.queue_key(client_id)
        members: list[bytes] = await self._run(
            lambda redis: redis.zrangebyscore(key, f"({after_seq}", "+inf", start=0, num=limit)
        )
        return [_decode(member) for member in members]

    async def ack(self, client_id: str, seq: int) -> None:
        await self._script(_ACK, self._keys(client_id), (seq,))

    async def release(self, client_id: str, owner: str, expiry: float) -> None:
        keys = self._keys(client_id, self.index_key)
        # At least 1 ms when positive: 0 would discard at once.
        ms = max(1, round(expiry * 1000)) if expiry > 0 else 0
        await self._script(_RELEASE, keys, (client_id, owner, ms))

    async def discard(self, client_id: str, owner: str) -> None:
        await self._script(_RELEASE, self._keys(client_id, self.index_key), (client_id, owner, 0))

    async def owner(self, client_id: str) -> str | None:
        key = self.session_key(client_id)
        found: bytes | None = await self._run(lambda redis: redis.hget(key, "owner"))
        return None if found is None else found.decode()

    async def close(self) -> None:
        if self._redis is not None:
            redis, self._redis = self._redis, None
            self._scripts.clear()
            await redis.aclose()

    def _keys(self, client_id: str, *more: str) -> list[str]:
        return [self.session_key(client_id), self.queue_key(client_id), *more]

    async def _script(self, source: str, keys: list[str], args: tuple[Any, ...]) -> Any:
        """Run a script (by its digest, loaded again if Redis lost it) within the timeout,
        fenced: if it reaches Redis too late to answer in time, it changes nothing."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._client().register_script(source)

        async def fenced(redis: aioredis.Redis) -> Any:
            started = time.monotonic()
            if self._offset is None or started - self._clock_read > CLOCK_CHECK:
                self._read_clock(await redis.time())
            fence = round((started + self.timeout * FENCE) * 1000 + (self._offset or 0))
            try:
                return await script(keys, (fence, *args))
            except ResponseError as err:
                text = str(err)
                if not text.startswith("LATE "):
                    raise
                self._read_clock(divmod(int(text.removeprefix("LATE ")) * 1000, 1_000_000))
                raise LateScript(f"a command waited over {self.timeout * FENCE:g} s") from err

        return await self._run(fenced)

    def _read_clock(self, redis_time: tuple[int, int]) -> None:
        """Redis's clock against this process's, from its time (seconds, microseconds) just
        read: the fence is then early by the answer's transit, never late."""
        seconds, microseconds = redis_time
        now = time.monotonic()
        self._offset = seconds * 1000 + microseconds / 1000 - now * 1000
        self._clock_read = now

    async def _run(self, call: "Callable[[aioredis.Redis], Awaitable[Any]]") -> Any:
        """``call``'s answer within ``timeout``; ServiceUnavailable when Redis is known down,
        refuses or does not answer in time."""
        refuse_while_redis_down()
        redis = self._client()
        try:
            async with asyncio.timeout(self.timeout):
                found = await call(redis)
        except TimeoutError as err:  # hung: say how long it was given
            REDIS.failed(TimeoutError(f"no answer within {self.timeout:g} s"))
            raise REDIS.error() from err
        except (RedisConnectionError, RedisTimeoutError, LateScript) as err:
            REDIS.failed(err)
            raise REDIS.error() from err
        REDIS.succeeded()
        return found

    def _client(self) -> "aioredis.Redis":
        # Bounded by asyncio.timeout, not redis-py's socket_timeout (see RedisNodeRegistry).
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(
                self.url,
                socket_timeout=None,
                socket_connect_timeout=self.timeout,
                socket_keepalive=True,
                retry=Retry(NoBackoff(), 0),
            )
        return self._redis


def _decode(member: bytes) -> Queued:
    """The push a queue's member holds: ``<seq>:<qos>:<topic length>:<topic><payload>``."""
    seq, qos, length, rest = member.split(b":", 3)
    size = int(length)
    return Queued(seq=int(seq), topic=rest[:size].decode(), payload=rest[size:], qos=int(qos))
