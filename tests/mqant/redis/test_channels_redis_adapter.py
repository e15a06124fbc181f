"""The channels-redis internals mqant.redis.layer relies on (mqant.redis.channels_redis_adapter),
each exercised against a real Redis, and the version they were read from."""

import asyncio
import logging
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from mqant.redis import channels_redis_adapter as adapter
from mqant.redis.layer import LoopLayer, RedisPubSubChannelLayer, Shard

REQUIREMENTS = Path(__file__).resolve().parents[3] / "requirements.txt"


def test_the_installed_channels_redis_is_the_pinned_one_the_adapter_was_written_for():
    pinned = re.search(r"^channels-redis==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    assert pinned is not None
    assert adapter.WRITTEN_FOR == pinned[1] == adapter.installed_version()


def test_another_version_is_warned_of(monkeypatch, caplog):
    monkeypatch.setattr(adapter, "WRITTEN_FOR", "0.0.1")
    with caplog.at_level(logging.WARNING, logger=adapter.__name__):
        RedisPubSubChannelLayer()
    assert "was written for 0.0.1" in caplog.text


@pytest.fixture
async def open_layer(redis_space):
    """Layers on the test's Redis space, with the ``hosts`` given; flushed after."""
    opened: list[RedisPubSubChannelLayer] = []

    def open_with(hosts: list[Any]) -> RedisPubSubChannelLayer:
        layer = RedisPubSubChannelLayer(hosts=hosts, prefix=f"{redis_space.prefix}.asgi.")
        opened.append(layer)
        return layer

    yield open_with
    for layer in opened:
        await layer.flush()


async def round_trip(layer: RedisPubSubChannelLayer) -> None:
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "test.trip"})
    async with asyncio.timeout(3):
        assert await layer.receive(channel) == {"type": "test.trip"}


async def test_decode_hosts_reads_every_form_of_hosts(open_layer, redis_space):
    parts = urllib.parse.urlsplit(redis_space.url)
    for hosts in (
        [redis_space.url],
        [(parts.hostname, parts.port)],
        [{"address": redis_space.url}],
    ):
        await round_trip(open_layer(hosts))


async def test_get_layer_gives_every_method_this_loops_layer_with_its_shards(
    open_layer, redis_space
):
    layer = open_layer([redis_space.url, redis_space.url])  # two shards (one server twice)
    loop_layer = layer.loop_layer()
    assert isinstance(loop_layer, LoopLayer)
    assert layer._get_layer() is loop_layer  # what channels-redis's __getattr__ calls
    channels = [await layer.new_channel() for _ in range(16)]
    shards = {id(loop_layer.shard(channel)): loop_layer.shard(channel) for channel in channels}
    assert len(shards) == 2
    assert all(isinstance(shard, Shard) for shard in shards.values())
    for channel in channels:  # group_add and group_send: through __getattr__
        await layer.group_add("room", channel)
    assert set(loop_layer.group_members(f"{redis_space.prefix}.asgi.__group__room")) == set(
        channels
    )
    await layer.group_send("room", {"type": "test.room"})
    async with asyncio.timeout(3):
        for channel in channels:
            assert await layer.receive(channel) == {"type": "test.room"}


async def test_subscribe_channel_gives_a_queue_and_forget_channel_drops_it(open_layer, redis_space):
    layer = open_layer([redis_space.url])
    loop_layer = layer.loop_layer()
    client = aioredis.Redis.from_url(redis_space.url)
    channel = f"{redis_space.prefix}.asgi.specific.adapter"
    queue = await loop_layer.subscribe_channel(channel)
    assert loop_layer.queue(channel) is queue
    assert await client.pubsub_numsub(channel) == [(channel.encode(), 1)]
    await client.publish(channel, layer.serialize({"type": "test.raw"}))
    async with asyncio.timeout(3):
        assert loop_layer.deserialize(await queue.get()) == {"type": "test.raw"}
    assert loop_layer.forget_channel(channel) is True
    assert loop_layer.forget_channel(channel) is False
    assert loop_layer.queue(channel) is None
    await client.aclose()


def test_wrap_close_flushes_a_loops_layer_when_the_loop_closes(redis_space):
    layer = RedisPubSubChannelLayer(hosts=[redis_space.url], prefix=f"{redis_space.prefix}.")
    loop = asyncio.new_event_loop()

    async def open_channel() -> tuple[LoopLayer, str]:
        return layer.loop_layer(), await layer.new_channel()

    loop_layer, channel = loop.run_until_complete(open_channel())
    assert loop_layer.queue(channel) is not None
    loop.close()
    assert loop_layer.queue(channel) is None  # flushed: its connections closed
    assert loop_layer.shard(channel)._subscriber is None
