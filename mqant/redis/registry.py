"""Live nodes shared between processes through Redis, as mqant shares them through consul.

Each node is a key ``<prefix>:node:<node id>`` holding its description, set with a time to live
(``ttl``) and written again every ``heartbeat`` seconds; the set ``<prefix>:nodes`` indexes
them. A process that stops deletes its keys; one that dies stops writing them and Redis
expires them ``ttl`` seconds later, so its nodes leave every other process's view.

A process that stops drains: its nodes' records say ``draining`` until it has answered its
calls in flight, so that other processes stop choosing them without giving up on those calls.
A node that vanishes without draining (its process died) is reported to the registry's
watchers, which fail the calls still waiting for it (mqant.rpc) instead of waiting for their
deadline.

The heartbeat is also this process's probe of Redis (mqant.dependencies.REDIS): a command that
fails or takes longer than ``timeout`` marks Redis down, the next one that succeeds marks it
back.

Each process keeps a snapshot of the live nodes, read again at every heartbeat and whenever a
caller asks for a type or a node the snapshot lacks (``lookup``), so that calls cost no Redis
round trip while a node that has just started is found at once.
"""

import asyncio
import json
import logging
import time
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from redis import asyncio as aioredis

from mqant.dependencies import RECHECK, REDIS
from mqant.errors import ServiceNotFound
from mqant.registry import Node, NodeRegistry, Selector, random_selector

logger = logging.getLogger(__name__)

MAX_MISSES_REMEMBERED = 1024

# Returns the description of every live node and drops the expired ones from the index,
# atomically, in one round trip.
_LIVE_NODES = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local value = redis.call('GET', ARGV[1] .. id)
  if value then
    table.insert(out, value)
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return out
"""


class RedisNodeRegistry(NodeRegistry):
    """Nodes of every process that shares the Redis at ``url`` and the key ``prefix``.

    ``ttl``: seconds after which a node whose process stopped writing it is gone;
    ``heartbeat``: seconds between writes (and between reads of the others' nodes);
    ``timeout``: seconds a Redis command may take (every command here is quick): past it,
    Redis is taken for down (hung).
    """

    def __init__(
        self,
        selector: Selector = random_selector,
        *,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "mqant",
        ttl: float = 3.0,
        heartbeat: float = 1.0,
        timeout: float = 2.0,
    ) -> None:
        super().__init__(selector)
        if not 0 < heartbeat < ttl:
            raise ImproperlyConfigured(
                f"RedisNodeRegistry: heartbeat ({heartbeat} s) must be positive and shorter "
                f"than ttl ({ttl} s)"
            )
        self.url = url
        self.prefix = prefix
        self.ttl = ttl
        self.heartbeat = heartbeat
        self.timeout = timeout
        self._redis: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._missed: dict[str, float] = {}  # target -> when a lookup last missed it
        self._leaving: dict[str, Node] = {}  # own nodes that drain: written as draining

    @property
    def index_key(self) -> str:
        return f"{self.prefix}:nodes"

    def node_key(self, node_id: str) -> str:
        return f"{self.prefix}:node:{node_id}"

    async def start(self) -> None:
        """Connect, read the live nodes, and start the heartbeat. Raises redis's errors when
        Redis cannot be reached."""
        # Commands are bounded with asyncio.timeout rather than redis-py's socket_timeout,
        # which writes through asyncio.wait_for: on Python 3.11 that loses a cancellation
        # landing as the write completes, and closing would wait for the heartbeat forever.
        self._redis = aioredis.Redis.from_url(
            self.url,
            socket_timeout=None,
            socket_connect_timeout=self.timeout,
            socket_keepalive=True,
        )
        await self.refresh()
        REDIS.probe = True
        self._task = asyncio.create_task(self._beat(), name="mqant registry heartbeat")

    async def close(self) -> None:
        """Stop the heartbeat, remove this process's nodes from Redis, disconnect."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            REDIS.forget()  # nothing probes it any more
        try:
            node_ids = [*self._own, *self._leaving]
            self._leaving.clear()
            for node_id in node_ids:
                await super().deregister(node_id)
            if node_ids:
                async with asyncio.timeout(self.timeout), self._client().pipeline() as pipe:
                    pipe.delete(*(self.node_key(node_id) for node_id in node_ids))
                    pipe.srem(self.index_key, *node_ids)
                    await pipe.execute()
        finally:
            if self._redis is not None:
                await self._redis.aclose()
                self._redis = None

    async def register(self, node: Node) -> None:
        await super().register(node)
        await self._write(node)

    async def deregister(self, node_id: str) -> None:
        """Stop offering the node: its record says it drains until ``close`` deletes it."""
        node = self._own.get(node_id)
        await super().deregister(node_id)
        if node is not None:
            self._leaving[node_id] = node
            await self._write(node, draining=True)

    async def lookup(self, target: str) -> Node:
        try:
            return self.select(target)
        except ServiceNotFound:
            try:
                await self._refresh_for(target)
            except Exception as err:  # Redis unreachable: the snapshot is all there is
                REDIS.failed(err)
        return self.select(target)

    async def refresh(self) -> None:
        """Read the nodes of the other processes from Redis."""
        async with asyncio.timeout(self.timeout):
            records = await self._client().eval(
                _LIVE_NODES, 1, self.index_key, f"{self.prefix}:node:"
            )
        live: dict[str, Node] = {}
        draining: dict[str, Node] = {}
        for record in records:
            decoded = _decode(record)
            if decoded is None:
                continue
            node, leaving = decoded
            if node.node_id not in self._own and node.node_id not in self._leaving:
                (draining if leaving else live)[node.node_id] = node
        self._others_changed(live, draining)

    async def _refresh_for(self, target: str) -> None:
        """Read Redis again for a missing ``target``: at once the first time, so that a node
        that has just started is found, then at most every tenth of a heartbeat, so that a
        client asking again and again for a type nobody runs does not turn every call into
        a Redis round trip. Callers missing at the same time share one read."""
        now = time.monotonic()
        if now - self._missed.get(target, float("-inf")) < self.heartbeat / 10:
            return
        if len(self._missed) >= MAX_MISSES_REMEMBERED:
            self._missed.clear()
        self._missed[target] = now
        if self._refreshing is None:
            self._refreshing = asyncio.create_task(self.refresh())
            self._refreshing.add_done_callback(self._refreshed)
        await asyncio.shield(self._refreshing)

    def _refreshed(self, task: "asyncio.Task[None]") -> None:
        self._refreshing = None

    async def _beat(self) -> None:
        while True:
            # Quicker while Redis is down: calls are refused until a beat sees it back.
            await asyncio.sleep(self.heartbeat if not REDIS.down else min(self.heartbeat, RECHECK))
            try:
                for node in list(self._own.values()):
                    await self._write(node)
                for node in list(self._leaving.values()):
                    await self._write(node, draining=True)
                await self.refresh()
            except TimeoutError:  # hung: say how long it was given
                REDIS.failed(TimeoutError(f"no answer within {self.timeout:g} s"))
            except Exception as err:  # Redis restarting: keep the last snapshot, try again
                REDIS.failed(err)
            else:
                REDIS.succeeded()

    async def _write(self, node: Node, *, draining: bool = False) -> None:
        record = json.dumps(
            {
                "node_id": node.node_id,
                "module_type": node.module_type,
                "channel": node.channel,
                "events": sorted(node.events),
                "process_id": node.process_id,
                "draining": draining,
            }
        )
        async with asyncio.timeout(self.timeout), self._client().pipeline() as pipe:
            pipe.set(self.node_key(node.node_id), record, px=int(self.ttl * 1000))
            pipe.sadd(self.index_key, node.node_id)
            await pipe.execute()

    def _client(self) -> "aioredis.Redis":
        if self._redis is None:
            raise RuntimeError("RedisNodeRegistry used before start() or after close()")
        return self._redis


def _decode(record: Any) -> tuple[Node, bool] | None:
    """The node a record describes, and whether it drains."""
    try:
        data = json.loads(record)
        node = Node(
            node_id=data["node_id"],
            module_type=data["module_type"],
            channel=data["channel"],
            events=frozenset(data.get("events", ())),
            process_id=data.get("process_id", ""),
        )
        return node, bool(data.get("draining", False))
    except (ValueError, KeyError, TypeError):
        logger.warning("ignoring a malformed node record: %r", record)
        return None
