"""RPC semantics, in-process, through the in-memory channel layer and through both
channels-redis layers (nodes registered in Redis): results, each error, deadlines, ``register``
ordering versus ``register_go`` concurrency, ``Type@node`` targeting."""

import asyncio
import threading
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model

from mqant import (
    DeadlineExceeded,
    FunctionNotFound,
    HandlerError,
    Module,
    RemoteError,
    ServiceNotFound,
    Session,
    call,
    call_nr,
    register_module,
    runtime,
)


@register_module
class Probe(Module):
    module_type = "Probe"

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.log: list[tuple[str, int]] = []
        self.seen: list[Any] = []
        self.register("serial", self.step)
        self.register_go("concurrent", self.step)
        self.register_go("echo", self.echo)
        self.register_go("refuse", self.refuse)
        self.register_go("crash", self.crash)
        self.register_go("record", self.record)
        self.register("thread", self.thread)
        self.register_go("whoami", self.whoami)

    async def step(self, n: int, delay: float) -> int:
        self.log.append(("start", n))
        await asyncio.sleep(delay)
        self.log.append(("end", n))
        return n

    async def echo(self, *args: Any) -> list[Any]:
        return list(args)

    async def refuse(self) -> None:
        raise HandlerError("No room")

    async def crash(self) -> None:
        raise KeyError("secret internals")

    async def record(self, value: Any) -> None:
        self.seen.append(value)

    def thread(self) -> dict[str, Any]:
        return {
            "main": threading.current_thread() is threading.main_thread(),
            "users": get_user_model().objects.count(),
        }

    async def whoami(self) -> str:
        return self.node_id


TRANSPORTS = ["in-process", "channel-layer", "redis-core", "redis-pubsub"]


@pytest.fixture(params=TRANSPORTS)
async def app(request, settings):
    """Every test runs four times: calls made directly, and forced through the in-memory
    layer, RedisChannelLayer and RedisPubSubChannelLayer (the last two with the nodes found
    in a Redis registry)."""
    mqant = {**settings.MQANT, "RPC_LOCAL_SHORTCUT": request.param == "in-process"}
    if request.param.startswith("redis-"):
        space = request.getfixturevalue("redis_space")
        settings.CHANNEL_LAYERS = {"default": space.channel_layer(request.param[len("redis-") :])}
        mqant["REGISTRY"] = space.registry()
    settings.MQANT = mqant
    started = (await runtime.start()).app
    yield started
    await runtime.stop()
    await get_channel_layer().flush()


async def staggered(*calls) -> list[Any]:
    """Run the calls concurrently, each started 10 ms after the previous one, so that they
    arrive in this order whatever carries them."""
    tasks = []
    for pending in calls:
        tasks.append(asyncio.ensure_future(pending))
        await asyncio.sleep(0.01)
    return list(await asyncio.gather(*tasks))


def probe(app) -> Probe:
    module = next(m for m, _ in app.modules if isinstance(m, Probe))
    return module


async def test_result_and_arguments(app):
    session = Session(ip="127.0.0.1", network="tcp", session_id="s1", server_id="g", channel="c")
    args = [None, True, 3, 2.5, "text", b"\x00\xff", [1, "a"], {"k": {"n": 1}}]
    result = await call("Probe", "echo", *args, session)
    assert result[:-1] == args
    assert isinstance(result[-1], Session)
    assert result[-1].session_id == "s1"


async def test_service_not_found(app):
    with pytest.raises(ServiceNotFound, match=r"^Service\(type:Nope\) not found$"):
        await call("Nope", "echo")
    with pytest.raises(ServiceNotFound, match=r"^Service\(type:Probe@0000\) not found$"):
        await call("Probe@0000", "echo")


async def test_function_not_found(app):
    with pytest.raises(FunctionNotFound, match=r"^Remote function\(nothing\) not found$"):
        await call("Probe", "nothing")


async def test_handler_error_text(app):
    with pytest.raises(RemoteError, match=r"^No room$"):
        await call("Probe", "refuse")


async def test_unexpected_exception_hides_internals(app, caplog):
    with pytest.raises(RemoteError, match=r"^internal error$"):
        await call("Probe", "crash")
    assert "secret internals" in caplog.text  # logged for the operator, not sent


async def test_deadline_and_late_reply_dropped(app):
    with pytest.raises(DeadlineExceeded, match=r"^deadline exceeded$"):
        await call("Probe", "concurrent", 1, 0.3, timeout=0.05)
    # The slow call finishes later; its reply must not be taken for this call's.
    assert await call("Probe", "concurrent", 2, 0.4, timeout=2) == 2


async def test_register_runs_calls_one_at_a_time_in_order(app):
    results = await staggered(*(call("Probe", "serial", n, 0.1 - n * 0.03) for n in range(3)))
    assert results == [0, 1, 2]
    assert probe(app).log == [
        ("start", 0), ("end", 0), ("start", 1), ("end", 1), ("start", 2), ("end", 2)
    ]  # fmt: skip


async def test_register_go_runs_calls_concurrently(app):
    # Started 10 ms apart, lasting 100, 70 and 40 ms: they end in the reverse order.
    await staggered(*(call("Probe", "concurrent", n, 0.1 - n * 0.03) for n in range(3)))
    log = probe(app).log
    assert log[:3] == [("start", 0), ("start", 1), ("start", 2)]
    assert log[3:] == [("end", 2), ("end", 1), ("end", 0)]


async def test_type_at_node_targets_that_node(app):
    node = app.registry.select("Probe")
    assert node.node_id.startswith("Probe@")
    assert await call(node.node_id, "whoami") == node.node_id


async def test_call_nr_runs_without_reply(app):
    await call_nr("Probe", "record", "fire")
    for _ in range(100):
        if probe(app).seen:
            break
        await asyncio.sleep(0.01)
    assert probe(app).seen == ["fire"]


@pytest.mark.django_db(transaction=True)
async def test_plain_handler_runs_in_a_thread_with_the_orm(app):
    await asyncio.to_thread(get_user_model().objects.create_user, "someone", password="x")
    assert await call("Probe", "thread") == {"main": False, "users": 1}
