"""The app: a process runs the modules its deployment entry names, and stopping drains (no new
calls, the calls in flight finish, run() returns, on_destroy in reverse order, all bounded)."""

import asyncio
import dataclasses
import time
from typing import Any

import pytest
import redis
from channels.layers import get_channel_layer

from mqant import Module, ServiceNotFound, call, register_module, rpc, runtime

EVENTS: list[str] = []


class Recorder(Module):
    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.register_go("echo", self.echo)
        self.register_go("slow", self.slow)
        self.register_go("relay", self.relay)

    async def run(self, closing: asyncio.Event) -> None:
        await closing.wait()
        EVENTS.append(f"{self.module_type} run returned")

    async def on_destroy(self) -> None:
        EVENTS.append(f"{self.module_type} destroyed")

    async def echo(self, value: Any) -> Any:
        return value

    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slow done"

    async def relay(self, seconds: float, target: str) -> Any:
        """A call in flight that calls another module later."""
        await asyncio.sleep(seconds)
        return await call(target, "echo", "relayed")


@register_module
class First(Recorder):
    module_type = "First"


@register_module
class Second(Recorder):
    module_type = "Second"


DEPLOYMENT = {
    "Module": {
        "Gate": [{"Id": "Gate001", "ProcessID": "development"}],
        "First": [
            {"Id": "First001", "ProcessID": "development", "Settings": {"Rooms": 3}},
            {"Id": "First002", "ProcessID": "elsewhere"},
        ],
        "Second": [{"Id": "Second001", "ProcessID": "development"}],
        "Unregistered": [{"Id": "U001", "ProcessID": "development"}],
    }
}


@pytest.fixture
async def app(settings, request):
    shortcut = getattr(request, "param", True)
    settings.MQANT = {**settings.MQANT, "CONFIG": DEPLOYMENT, "RPC_LOCAL_SHORTCUT": shortcut}
    EVENTS.clear()
    started = (await runtime.start()).app
    yield started
    await runtime.stop()
    await get_channel_layer().flush()


async def test_a_process_runs_its_entries_in_order(app, caplog):
    assert [(m.module_type, m.settings) for m, _ in app.modules] == [
        ("First", {"Rooms": 3}),
        ("Second", {}),
    ]
    warnings = [r.getMessage() for r in caplog.get_records("setup") if r.levelname == "WARNING"]
    assert warnings == [
        "development runs module type Unregistered (Id U001), but no module of that type is "
        "registered: skipped"
    ]


@pytest.mark.parametrize("app", [True, False], indirect=True, ids=["in-process", "layer"])
async def test_stop_drains_calls_in_flight_then_destroys_in_reverse(app):
    slow = asyncio.ensure_future(call("First", "slow", 0.3))
    relay = asyncio.ensure_future(call("First", "relay", 0.3, "Second"))
    await asyncio.sleep(0.1)
    stopping = asyncio.ensure_future(runtime.stop())
    await asyncio.sleep(0.05)
    with pytest.raises(ServiceNotFound, match=r"^Service\(type:Second\) not found$"):
        await call("Second", "echo", "new")  # no new calls from outside
    assert EVENTS == []
    assert await slow == "slow done"
    assert await relay == "relayed"  # its call to Second, made while draining, was served
    await stopping
    assert EVENTS == [
        "First run returned",
        "Second run returned",
        "Second destroyed",
        "First destroyed",
    ]  # fmt: skip


@pytest.mark.parametrize("app", [False], indirect=True, ids=["layer"])
async def test_a_draining_node_answers_late_callers_at_once(app):
    # The node as another process's registry lists it: reached through the channel layer.
    node = dataclasses.replace(await rpc.select("Second"), server=None)
    slow = asyncio.ensure_future(call("Second", "slow", 0.3))
    await asyncio.sleep(0.05)
    stopping = asyncio.ensure_future(runtime.stop())
    await asyncio.sleep(0.05)
    started = time.monotonic()
    # That process has not refreshed its registry since this one started stopping.
    with pytest.raises(ServiceNotFound, match=r"^Service\(type:Second\) not found$"):
        await rpc.call_node(node, "echo", ("late",), timeout=5)
    assert time.monotonic() - started < 1
    assert await slow == "slow done"
    await stopping


async def test_stopping_is_bounded(app):
    slow = asyncio.ensure_future(call("First", "slow", 30))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await runtime.stop(timeout=0.3)
    assert time.monotonic() - started < 1
    assert EVENTS[-2:] == ["Second destroyed", "First destroyed"]
    slow.cancel()


async def test_a_failed_start_is_tried_again(settings, redis_space):
    # A Redis that refuses connections: the registry cannot start.
    settings.MQANT = {
        **settings.MQANT,
        "CONFIG": DEPLOYMENT,
        "REGISTRY": {**redis_space.registry(), "CONFIG": {"url": "redis://127.0.0.1:1/0"}},
    }
    with pytest.raises(redis.ConnectionError):
        await runtime.start()
    with pytest.raises(redis.ConnectionError):
        await runtime.start()  # tried again, not the first failure replayed
    settings.MQANT = {**settings.MQANT, "REGISTRY": redis_space.registry()}
    app = (await runtime.start()).app
    try:
        assert [m.module_type for m, _ in app.modules] == ["First", "Second"]
    finally:
        await runtime.stop()
