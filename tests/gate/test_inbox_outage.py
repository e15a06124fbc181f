"""A gate's group memberships outlive a Redis that restarts empty: with the core layer they
live in Redis, and the gate adds itself to its groups again as soon as Redis is back."""

import asyncio
import contextlib

import pytest
from channels.layers import get_channel_layer

from gate.inbox import Inbox
from mqant import ServiceUnavailable, groups, runtime
from mqant.dependencies import REDIS
from mqant.project import redis_channel_layer
from tests.faults.services import RedisServer

pytestmark = pytest.mark.e2e


class Member:
    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []

    async def deliver(self, topic: str, payload: bytes) -> None:
        self.received.append((topic, payload))


async def until(condition, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline
        await asyncio.sleep(0.02)


async def test_groups_are_renewed_when_redis_is_back_empty(settings, tmp_path):
    redis = RedisServer(tmp_path).start()
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(redis.url, "core", "renew")}
    inbox = (await runtime.start([Inbox()])).part(Inbox)
    member = Member()
    try:
        await inbox.add(groups.group_name("room"), member)  # type: ignore[arg-type]
        await groups.send("room", "Chat/OnChat", b"before")
        await until(lambda: len(member.received) == 1)

        redis.kill()
        redis.start()  # empty: the group's members are forgotten
        REDIS.failed(ConnectionError("Redis restarted"))
        for _ in range(2):  # the first may meet the layer's connection to the old server
            with contextlib.suppress(ServiceUnavailable):
                await groups.send("room", "Chat/OnChat", b"lost")
        await asyncio.sleep(0.3)
        assert len(member.received) == 1  # nobody in the group any more

        REDIS.succeeded()  # what the registry's heartbeat says when it reaches Redis again
        await asyncio.sleep(0.3)
        await groups.send("room", "Chat/OnChat", b"after")
        await until(lambda: member.received[-1] == ("Chat/OnChat", b"after"))
    finally:
        await runtime.stop()
        await get_channel_layer().flush()
        REDIS.forget()
        redis.stop()
