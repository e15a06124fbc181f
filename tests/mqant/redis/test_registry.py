"""The Redis node registry: what one process registers, another sees; a stopped process's nodes
leave at once, a dead one's when their time to live runs out."""

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from django.core.exceptions import ImproperlyConfigured

from mqant import ServiceNotFound
from mqant.redis.registry import RedisNodeRegistry
from mqant.registry import Node


@pytest.fixture
async def registries(redis_space):
    """Open registries on the test's Redis space, as separate processes would; closed after."""
    opened: list[RedisNodeRegistry] = []

    async def open_registry(**options) -> RedisNodeRegistry:
        registry = RedisNodeRegistry(url=redis_space.url, prefix=redis_space.prefix, **options)
        await registry.start()
        opened.append(registry)
        return registry

    yield open_registry
    for registry in opened:
        await registry.close()


def node(node_id: str, **fields) -> Node:
    return Node(node_id, node_id.partition("@")[0], f"channel-of-{node_id}", **fields)


async def test_a_node_registered_by_one_process_is_found_by_another(registries):
    here, there = await registries(), await registries(heartbeat=30, ttl=60)
    await here.register(node("Chat@01", events=frozenset({"e"}), process_id="modules1"))
    # `there` refreshes when it misses the type, without waiting for its heartbeat.
    found = await there.lookup("Chat")
    assert found == node("Chat@01", events=frozenset({"e"}), process_id="modules1")
    assert found.server is None  # remote: reached through the channel layer
    assert await there.lookup("Chat@01") == found
    assert there.listening("e") == [found]
    assert [n.node_id for n in there.nodes("Chat")] == ["Chat@01"]


async def test_a_deregistered_node_is_gone_for_others(registries):
    here, there = await registries(), await registries(heartbeat=30, ttl=60)
    await here.register(node("Chat@01"))
    await here.register(node("Chat@02"))
    assert len({(await there.lookup("Chat")).node_id for _ in range(50)}) == 2
    await here.deregister("Chat@01")
    await there.refresh()
    assert [n.node_id for n in there.nodes("Chat")] == ["Chat@02"]
    with pytest.raises(ServiceNotFound, match=r"^Service\(type:Chat@01\) not found$"):
        await there.lookup("Chat@01")


async def test_a_dead_processs_nodes_expire_after_their_ttl(registries, redis_space):
    dying = await registries(heartbeat=0.1, ttl=0.5)
    observer = await registries(heartbeat=0.1, ttl=0.5)
    await dying.register(node("Chat@01"))
    assert (await observer.lookup("Chat")).node_id == "Chat@01"
    dying._task.cancel()  # the process dies: no heartbeat, no deregistration
    started = time.monotonic()
    while observer.nodes("Chat"):
        assert time.monotonic() - started < 2, "the dead node never expired"
        await asyncio.sleep(0.05)
    assert time.monotonic() - started > 0.2
    client = aioredis.Redis.from_url(redis_space.url)
    assert await client.smembers(f"{redis_space.prefix}:nodes") == set()  # index pruned
    await client.aclose()


async def test_heartbeat_keeps_a_live_node_past_its_ttl(registries):
    here = await registries(heartbeat=0.1, ttl=0.3)
    there = await registries(heartbeat=0.1, ttl=0.3)
    await here.register(node("Chat@01"))
    await asyncio.sleep(1.0)
    assert [n.node_id for n in there.nodes("Chat")] == ["Chat@01"]


async def test_own_nodes_are_served_locally(registries):
    here = await registries()
    local = node("Chat@01")
    await here.register(local)
    await here.refresh()  # its own record in Redis does not replace the local node
    assert here.select("Chat") is local
    assert here.own() == [local]


async def test_close_removes_this_process_nodes(registries):
    here, there = await registries(), await registries(heartbeat=30, ttl=60)
    await here.register(node("Chat@01"))
    await here.close()
    with pytest.raises(ServiceNotFound):
        await there.lookup("Chat")


async def test_misses_do_not_hammer_redis(registries, monkeypatch):
    here = await registries(heartbeat=30, ttl=60)
    reads = 0
    refresh = here.refresh

    async def counting_refresh() -> None:
        nonlocal reads
        reads += 1
        await refresh()

    monkeypatch.setattr(here, "refresh", counting_refresh)
    for _ in range(3):
        results = await asyncio.gather(
            *(here.lookup("Nope") for _ in range(100)), return_exceptions=True
        )
        assert all(isinstance(r, ServiceNotFound) for r in results)
    assert reads == 1  # then no more than one read per tenth of a heartbeat for "Nope"
    with pytest.raises(ServiceNotFound):
        await here.lookup("Other")
    assert reads == 2  # another target is read at once


def test_heartbeat_must_be_shorter_than_ttl():
    with pytest.raises(ImproperlyConfigured, match="shorter than ttl"):
        RedisNodeRegistry(heartbeat=3, ttl=3)
