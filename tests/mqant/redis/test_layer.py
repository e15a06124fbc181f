"""mqant's pub/sub channel layer against a real Redis: the same wire as channels-redis's own
layer (each hears the other, groups included), subscriptions as Redis counts them, recovery
when Redis drops either connection, the ``listen`` extension, and its host options."""

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from channels_redis.pubsub import RedisPubSubChannelLayer as ChannelsRedisPubSubLayer
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import ResponseError

from mqant.project import redis_channel_layer
from mqant.redis import layer as redis_layer
from mqant.redis.endpoint import Endpoint
from mqant.redis.layer import RedisPubSubChannelLayer
from mqant.types import listening


@pytest.fixture
async def layers(redis_space):
    """Open layers on the test's Redis space, mqant's or channels-redis's, as separate
    processes would; flushed after."""
    opened: list[Any] = []

    def open_layer(cls: type = RedisPubSubChannelLayer) -> Any:
        layer = cls(**redis_channel_layer(redis_space.url, "pubsub", redis_space.prefix)["CONFIG"])
        opened.append(layer)
        return layer

    yield open_layer
    for layer in opened:
        await layer.flush()


@pytest.fixture
async def redis_client(redis_space):
    client = aioredis.Redis.from_url(redis_space.url)
    yield client
    await client.aclose()


async def receive(layer: Any, channel: str) -> Any:
    async with asyncio.timeout(3):
        return await layer.receive(channel)


async def subscribers(client: aioredis.Redis, channel: str) -> int:
    [(_, count)] = await client.pubsub_numsub(channel)
    return int(count)


@pytest.mark.parametrize("direction", ["mqant to channels-redis", "channels-redis to mqant"])
async def test_the_wire_is_channels_redis_pubsub_layers(layers, direction):
    ours, theirs = layers(), layers(ChannelsRedisPubSubLayer)
    sender, receiver = (ours, theirs) if direction.startswith("mqant") else (theirs, ours)
    channel = await receiver.new_channel()
    message = {"type": "test.message", "bytes": b"\x00\xff", "list": [1, 2.5, None, "é"]}
    await sender.send(channel, message)
    assert await receive(receiver, channel) == message

    await receiver.group_add("room", channel)
    await sender.group_send("room", {"type": "test.group"})
    assert await receive(receiver, channel) == {"type": "test.group"}


async def test_messages_arrive_in_order_whatever_their_size(layers):
    layer = layers()
    channel = await layer.new_channel()
    sizes = [0, 10, 200_000, 3, 70_000, 1]  # big ones span many reads
    for n, size in enumerate(sizes):
        await layer.send(channel, {"type": "test.sized", "n": n, "data": b"x" * size})
    for n, size in enumerate(sizes):
        assert await receive(layer, channel) == {"type": "test.sized", "n": n, "data": b"x" * size}


async def test_redis_counts_one_subscription_per_channel_until_a_receive_is_cancelled(
    layers, redis_client
):
    layer = layers()
    channel = await layer.new_channel()
    assert await subscribers(redis_client, channel) == 1  # confirmed before new_channel returns
    waiting = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.05)
    waiting.cancel()  # as Channels does when a consumer ends
    await asyncio.gather(waiting, return_exceptions=True)
    for _ in range(50):
        if await subscribers(redis_client, channel) == 0:
            break
        await asyncio.sleep(0.01)
    assert await subscribers(redis_client, channel) == 0


async def kill_connections_of(client: aioredis.Redis, layer: Any, kind: str) -> None:
    """Make Redis drop this layer's publishing or subscribing connection, found by its local
    address: other clients of the server are left alone."""
    shard = layer.loop_layer().shard("")  # one Redis server: one shard
    connection = shard._publisher if kind == "publisher" else shard._subscriber
    host, port = connection.transport.get_extra_info("sockname")[:2]
    await client.client_kill_filter(_type=None, addr=f"{host}:{port}")


async def test_the_subscriber_comes_back_subscribed_after_redis_drops_it(
    layers, redis_client, monkeypatch
):
    monkeypatch.setattr(redis_layer, "RESUBSCRIBE_DELAY", 0.05)
    layer, sender = layers(), layers()
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    await kill_connections_of(redis_client, layer, "subscriber")
    for _ in range(100):  # back once Redis counts the subscription again
        if await subscribers(redis_client, channel) == 1:
            break
        await asyncio.sleep(0.02)
    await sender.send(channel, {"type": "test.after"})
    await sender.group_send("room", {"type": "test.group.after"})
    assert await receive(layer, channel) == {"type": "test.after"}
    assert await receive(layer, channel) == {"type": "test.group.after"}


async def test_the_publisher_connects_again_after_redis_drops_it(layers, redis_client):
    layer, receiver = layers(), layers()
    channel = await receiver.new_channel()
    await layer.send(channel, {"type": "test.before"})
    assert await receive(receiver, channel) == {"type": "test.before"}
    await kill_connections_of(redis_client, layer, "publisher")
    await asyncio.sleep(0.05)  # the loss is seen
    await layer.send(channel, {"type": "test.after"})
    assert await receive(receiver, channel) == {"type": "test.after"}


async def test_a_listener_gets_every_message_in_order_and_unlisten_unsubscribes(
    layers, redis_client
):
    layer, sender = layers(), layers()
    assert listening(layer) == layer  # (not `is`: mypy would narrow `layer` to the result)
    assert listening(sender.loop_layer()) is None
    channel = await layer.new_channel()
    await sender.send(channel, {"type": "test.queued"})  # before listening: not lost
    await asyncio.sleep(0.05)
    heard: list[dict[str, Any]] = []
    await layer.listen(channel, heard.append)
    for n in range(5):
        await sender.send(channel, {"type": "test.heard", "n": n})
    for _ in range(100):
        if len(heard) == 6:
            break
        await asyncio.sleep(0.01)
    assert heard == [{"type": "test.queued"}] + [{"type": "test.heard", "n": n} for n in range(5)]
    await layer.unlisten(channel)
    for _ in range(50):
        if await subscribers(redis_client, channel) == 0:
            break
        await asyncio.sleep(0.01)
    assert await subscribers(redis_client, channel) == 0


async def test_a_failing_listener_does_not_stop_the_others(layers, caplog):
    layer, sender = layers(), layers()
    broken, working = await layer.new_channel(), await layer.new_channel()
    heard: list[dict[str, Any]] = []

    def fail(message: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    await layer.listen(broken, fail)
    await layer.listen(working, heard.append)
    await sender.send(broken, {"type": "test.x"})
    await sender.send(working, {"type": "test.y"})
    for _ in range(100):
        if heard:
            break
        await asyncio.sleep(0.01)
    assert heard == [{"type": "test.y"}]
    assert "listener bug" in caplog.text


def test_host_options_come_from_channels_redis_configuration():
    endpoint = Endpoint.from_host(
        {
            "address": "rediss://user:p%40ss@cache.example:6380/3?ssl_cert_reqs=none",
            "socket_connect_timeout": 2.0,
            "socket_keepalive": True,
            "socket_keepalive_options": {4: 10},
            "socket_timeout": None,
            "max_connections": 1000,
        }
    )
    assert (endpoint.host, endpoint.port, endpoint.username, endpoint.password) == (
        "cache.example",
        6380,
        "user",
        "p@ss",
    )
    assert (endpoint.tls, endpoint.cert_reqs, endpoint.connect_timeout) == (True, "none", 2.0)
    assert Endpoint.from_host({"address": "unix:///run/redis.sock"}).path == "/run/redis.sock"
    assert Endpoint.from_host({"host": "h", "port": 1}).port == 1
    with pytest.raises(ImproperlyConfigured, match="sentinels"):
        Endpoint.from_host({"master_name": "m", "sentinels": [("h", 26379)]})
    with pytest.raises(ImproperlyConfigured, match="redis://"):
        Endpoint.from_host({"address": "http://example"})


async def test_a_password_is_sent_to_redis(redis_space):
    url = redis_space.url.replace("redis://", "redis://:not-the-password@", 1)
    layer = RedisPubSubChannelLayer(hosts=[url])
    with pytest.raises(ResponseError):  # this Redis has no password: it says so
        await layer.new_channel()
    await layer.flush()
