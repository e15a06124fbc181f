"""``manage.py runmodules`` in a process of its own, called over Redis from this one: calls
reach it, SIGTERM drains it within a bounded time, a killed process's nodes expire and a new
one is found without restarting the caller."""

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from channels.layers import get_channel_layer

from mqant import (
    DeadlineExceeded,
    ServiceNotFound,
    ServiceUnavailable,
    Session,
    call,
    config,
    nodes,
    runtime,
)
from mqant.registry import Node
from tests.e2e.server import free_port
from tests.runmodules import ModulesProcess

pytestmark = pytest.mark.e2e

DEPLOYMENT = {
    "Module": {
        "Gate": [{"Id": "Gate001", "ProcessID": "gate1"}],
        "Sleeper": [{"Id": "Sleeper001", "ProcessID": "modules1"}],
    }
}


def is_alive(answer):
    """A /healthz answer of a live process: 200, alive, a loop lag under the limit."""
    status, body = answer
    return status == 200 and body["alive"] is True and 0 <= body["loop_lag_seconds"] < 5


@pytest.fixture(params=["pubsub", "core"])
def layer(request):
    return request.param


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    path = tmp_path / "server.json"
    path.write_text("// the test's deployment\n" + json.dumps(DEPLOYMENT, indent=2))
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    return path


@pytest.fixture
def modules(tmp_path, redis_space, layer, deployment):
    """Starts runmodules processes on the test's Redis space; killed after the test."""
    started: list[ModulesProcess] = []
    env = {
        **os.environ,
        **redis_space.env(layer),
        "DJANGO_SETTINGS_MODULE": "tests.mqant.probe_settings",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "MQANT_CONFIG": str(deployment),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("MQANT_PROCESS_ID", None)

    def start(*args: str) -> ModulesProcess:
        process = ModulesProcess(tmp_path, env, "modules1", *args).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
async def gate(settings, monkeypatch, redis_space, layer, deployment):
    """This process as gate1 of the deployment: no modules, nodes found in Redis."""
    monkeypatch.setenv(config.PROCESS_ID_ENV, "gate1")
    settings.CHANNEL_LAYERS = {"default": redis_space.channel_layer(layer)}
    settings.MQANT = {**settings.MQANT, "REGISTRY": redis_space.registry()}
    app = (await runtime.start()).app
    assert app.modules == []
    yield app
    await runtime.stop()
    await get_channel_layer().flush()


async def until_found(module_type: str, within: float = 20) -> Node:
    deadline = time.monotonic() + within
    while not (found := await nodes(module_type)):
        assert time.monotonic() < deadline, f"no {module_type} node within {within} s"
        await asyncio.sleep(0.1)
    return found[0]


def session() -> Session:
    return Session(ip="10.0.0.1", network="tcp", session_id="s1", server_id="Gate@1", channel="c")


async def test_calls_reach_the_module_process_and_sigterm_drains_it(gate, modules):
    process = modules()
    await until_found("Sleeper")
    returned, value, node_id = await call("Sleeper", "echo", session(), {"b": [b"\x00", 1.5]})
    assert returned.session_id == "s1"  # a Session crossed both ways
    assert value == {"b": [b"\x00", 1.5]}
    assert node_id.startswith("Sleeper@")
    assert (await nodes("Sleeper"))[0].process_id == "modules1"

    in_flight = asyncio.ensure_future(call("Sleeper", "sleep", 1.0, timeout=5))
    await asyncio.sleep(0.3)
    process.signal(signal.SIGTERM)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    with pytest.raises(ServiceNotFound, match=r"^Service\(type:Sleeper\) not found$"):
        await call("Sleeper", "sleep", 0, timeout=5)  # no new calls, answered at once
    assert time.monotonic() - started < 1
    assert await in_flight == "slept"  # the call in flight finished
    assert await asyncio.to_thread(process.wait, 10) == 0
    assert "stopped" in process.output()
    assert "Traceback" not in process.output(), process.output()


def probe(port: int, path: str) -> tuple[int, Any]:
    """GET ``path`` on a runmodules health port: (status, JSON body), (0, None) if refused."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
    except OSError:
        return 0, None


def status_of(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.parametrize("layer", ["pubsub"], indirect=True)
async def test_a_module_process_answers_health_probes_and_is_not_ready_while_draining(
    gate, modules
):
    port = free_port()
    process = modules("--health", f"127.0.0.1:{port}")
    await until_found("Sleeper")
    for _ in range(50):  # the probes answer from the start; ready once the modules run
        if await asyncio.to_thread(probe, port, "/readyz") == (200, {"ready": True}):
            break
        await asyncio.sleep(0.1)
    assert await asyncio.to_thread(probe, port, "/readyz") == (200, {"ready": True})
    assert is_alive(await asyncio.to_thread(probe, port, "/healthz"))
    assert await asyncio.to_thread(status_of, port, "/nope") == 404

    in_flight = asyncio.ensure_future(call("Sleeper", "sleep", 1.5, timeout=5))
    await asyncio.sleep(0.3)
    process.signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    status, body = await asyncio.to_thread(probe, port, "/readyz")
    assert (status, body["reasons"]) == (503, ["stopping"])  # draining: not ready
    assert is_alive(await asyncio.to_thread(probe, port, "/healthz"))
    assert await in_flight == "slept"
    assert await asyncio.to_thread(process.wait, 10) == 0
    assert await asyncio.to_thread(probe, port, "/readyz") == (0, None)  # gone with it
    assert "Traceback" not in process.output(), process.output()


@pytest.mark.parametrize("layer", ["pubsub"], indirect=True)
async def test_a_killed_process_expires_and_its_restart_is_found(gate, modules):
    process = modules()
    await until_found("Sleeper")
    process.signal(signal.SIGKILL)
    await asyncio.to_thread(process.wait, 10)
    killed = time.monotonic()
    while True:  # calls fail fast, never hang, until the registry forgets the node
        with pytest.raises((DeadlineExceeded, ServiceUnavailable, ServiceNotFound)) as err:
            await call("Sleeper", "sleep", 0, timeout=0.5)
        if err.type is ServiceNotFound:
            break
        assert time.monotonic() - killed < 6, "the dead node outlived its time to live"
    modules()
    await until_found("Sleeper")
    assert await call("Sleeper", "sleep", 0) == "slept"


@pytest.mark.parametrize("layer", ["pubsub"], indirect=True)
async def test_calls_in_flight_to_a_killed_process_fail_when_its_node_expires(gate, modules):
    """Not at their deadline: as soon as the registry sees the node gone without draining."""
    process = modules()
    node = await until_found("Sleeper")
    in_flight = asyncio.ensure_future(call("Sleeper", "sleep", 60, timeout=30))
    await asyncio.sleep(0.3)
    process.signal(signal.SIGKILL)
    killed = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=rf"^{node.node_id} stopped$"):
        await in_flight
    failed_after = time.monotonic() - killed
    print(f"a call in flight to a killed node failed {failed_after:.1f} s after the kill")
    assert failed_after < 10  # the registry's ttl (3 s) and a heartbeat, far from 30 s


@pytest.mark.parametrize("layer", ["pubsub"], indirect=True)
async def test_a_draining_process_answers_its_calls_in_flight(gate, modules):
    """Its node leaves the others' choice at once, but the calls it holds are answered."""
    process = modules()
    await until_found("Sleeper")
    in_flight = asyncio.ensure_future(call("Sleeper", "sleep", 2.5, timeout=10))
    await asyncio.sleep(0.3)
    process.signal(signal.SIGTERM)
    assert await in_flight == "slept"
    assert await asyncio.to_thread(process.wait, 10) == 0


@pytest.mark.parametrize("layer", ["pubsub"], indirect=True)
async def test_stopping_gives_up_on_calls_past_the_shutdown_timeout(gate, modules):
    process = modules("--shutdown-timeout", "1")
    await until_found("Sleeper")
    in_flight = asyncio.ensure_future(call("Sleeper", "sleep", 60, timeout=4))
    await asyncio.sleep(0.3)
    process.signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert await asyncio.to_thread(process.wait, 10) == 0
    assert time.monotonic() - signalled < 3
    assert "gave up waiting for calls in flight" in process.output()
    # The process gave up on the call and its node is gone: the caller hears it before its
    # own deadline.
    with pytest.raises(ServiceUnavailable, match=r"^Sleeper@\w+ stopped$"):
        await in_flight
