"""Redis and PostgreSQL failing under a caller (this process, as a gate) and a ``runmodules``
process: calls get a clear error before their deadline where that can be known, each outage
is logged once where it starts and once where it ends, and everything works again when the
dependency is back, without a restart."""

import asyncio
import json
import logging
import os
import subprocess
import sys
import time

import pytest
from channels.layers import get_channel_layer

from mqant import (
    DeadlineExceeded,
    Module,
    ServiceUnavailable,
    Session,
    call,
    config,
    metrics,
    nodes,
    runtime,
)
from mqant.dependencies import DATABASE, REDIS
from mqant.project import redis_channel_layer
from mqant.tables import Room, Table, event
from tests.faults.services import RedisServer, TcpProxy
from tests.runmodules import ModulesProcess

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

ROOT = config.__file__.rsplit("/mqant/", 1)[0]
DEPLOYMENT = {
    "Module": {
        "Gate": [{"Id": "Gate001", "ProcessID": "gate1"}],
        "Sleeper": [{"Id": "Sleeper001", "ProcessID": "modules1"}],
    }
}
PREFIX = "outages"


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def database(postgres_url):
    """The test's PostgreSQL database, migrated, behind a proxy the test can break."""
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = TcpProxy(host, int(port)).start()
    proxied = postgres_url.replace(host_port, f"127.0.0.1:{proxy.port}")
    env = {**os.environ, "DATABASE_URL": proxied, "DJANGO_SETTINGS_MODULE": "mqantsite.settings"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    yield proxy, proxied
    proxy.stop()


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    path = tmp_path / "server.json"
    path.write_text(json.dumps(DEPLOYMENT))
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    return path


@pytest.fixture
def modules(tmp_path, redis_server, database, deployment):
    _, database_url = database
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "MQANT_REDIS_LAYER": "pubsub",
        "MQANT_REDIS_PREFIX": PREFIX,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "tests.mqant.probe_settings",
        "MQANT_CONFIG": str(deployment),
        "MQANT_SETTINGS": json.dumps({"DATABASE_PROBE": 1.0}),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("MQANT_PROCESS_ID", None)
    process = ModulesProcess(tmp_path, env, "modules1").start()
    yield process
    process.stop()


@pytest.fixture
async def gate(settings, monkeypatch, redis_server, deployment):
    """This process as gate1: no modules, nodes found in the test's own Redis."""
    monkeypatch.setenv(config.PROCESS_ID_ENV, "gate1")
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(redis_server.url, "pubsub", PREFIX)}
    registry = {"url": redis_server.url, "prefix": PREFIX}
    registry_spec = {"BACKEND": "mqant.redis.registry.RedisNodeRegistry", "CONFIG": registry}
    settings.MQANT = {**settings.MQANT, "REGISTRY": registry_spec}
    app = (await runtime.start()).app
    yield app
    await runtime.stop()
    await get_channel_layer().flush()
    assert not REDIS.probe  # the registry stopped probing it, and forgot its state
    assert not DATABASE.down  # this process never probed the database


async def until_answered(fn: str, *args, within: float = 20):
    deadline = time.monotonic() + within
    while True:
        try:
            if await nodes("Sleeper"):
                return await call("Sleeper", fn, *args, timeout=3)
        except (ServiceUnavailable, DeadlineExceeded):
            pass
        assert time.monotonic() < deadline, f"Sleeper.{fn} never answered"
        await asyncio.sleep(0.1)


def warnings_of(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def test_a_hung_redis_is_answered_at_once_and_recovered(gate, modules, redis_server, caplog):
    caplog.set_level(logging.WARNING)
    await until_answered("sleep", 0)
    in_flight = asyncio.ensure_future(call("Sleeper", "sleep", 0.5, timeout=30))
    await asyncio.sleep(0.1)
    redis_server.pause()
    paused = time.monotonic()
    try:
        with pytest.raises(ServiceUnavailable, match=r"^Redis unavailable$"):
            await in_flight
        failed_after = time.monotonic() - paused
        asked = time.monotonic()
        with pytest.raises(ServiceUnavailable, match=r"^Redis unavailable$"):
            await call("Sleeper", "sleep", 0, timeout=30)
        refused_in = time.monotonic() - asked
        await asyncio.sleep(2)
    finally:
        redis_server.resume()
    resumed = time.monotonic()
    assert await until_answered("sleep", 0) == "slept"
    recovered = time.monotonic() - resumed
    print(
        f"Redis paused: the call in flight failed after {failed_after:.1f} s (its timeout 30 s),"
        f" a new call was refused in {refused_in * 1000:.0f} ms; back {recovered:.1f} s after"
        " the resume"
    )
    assert failed_after < 10  # the registry's probe: a heartbeat and its command timeout
    assert refused_in < 1
    assert len(warnings_of(caplog, "Redis unavailable (")) == 1
    assert len(warnings_of(caplog, "Redis is back after")) == 1


async def test_a_refused_database_is_a_clear_error_logged_once(gate, modules, database):
    proxy, _ = database
    assert await until_answered("count_users") == 0
    proxy.refuse()
    try:
        errors = set()
        for _ in range(20):
            try:
                await call("Sleeper", "count_users", timeout=5)
            except ServiceUnavailable as err:
                errors.add(str(err))
            await asyncio.sleep(0.1)
        assert errors == {"database unavailable"}
    finally:
        proxy.resume()
    assert await until_answered("count_users") == 0
    await asyncio.sleep(1.5)  # the module process's probe sees it back
    output = modules.output()
    assert output.count("WARNING mqant.dependencies: database unavailable (") == 1, output
    assert output.count("database is back after") == 1, output
    assert "Traceback" not in output, output


async def test_a_hung_database_is_answered_before_the_deadline_and_logged_once(
    gate, modules, database
):
    proxy, _ = database
    assert await until_answered("count_users") == 0
    proxy.pause()
    paused = time.monotonic()
    try:
        with pytest.raises(ServiceUnavailable, match=r"^database unavailable$"):
            await call("Sleeper", "count_users", timeout=30)
        failed_after = time.monotonic() - paused
        asked = time.monotonic()
        with pytest.raises(ServiceUnavailable, match=r"^database unavailable$"):
            await call("Sleeper", "count_users", timeout=30)
        refused_in = time.monotonic() - asked
    finally:
        proxy.resume()
    assert await until_answered("count_users") == 0
    print(
        f"database paused: the query in flight was answered after {failed_after:.1f} s (its"
        f" timeout 30 s), a new one refused in {refused_in * 1000:.0f} ms"
    )
    assert failed_after < 10  # the module process's probe: 1 s between checks, 1 s each
    assert refused_in < 1
    await asyncio.sleep(1.5)
    output = modules.output()
    assert output.count("database unavailable (TimeoutError: no answer within") == 1, output
    assert output.count("database is back after") == 1, output


HUNG = 8.0  # seconds Redis hangs under a ticking table


class Frames(Table):
    """A table that pushes its frame number to its players every frame."""

    tick_interval = 0.02
    tick_phase = 0.0
    idle_timeout = 0.0

    @event()
    async def sit(self, session: Session) -> None:
        await self.join(session)

    def update(self, dt: float) -> None:
        self.notify("Game/OnFrame", {"frame": self.frame})


class Game(Module):
    module_type = "Game"


@pytest.mark.parametrize("kind", ["pubsub", "core"])
async def test_a_tables_tick_goes_on_while_redis_hangs_and_reaches_the_gates_after(
    gate, redis_server, caplog, settings, kind
):
    """A player on another gate process: while Redis hangs, the table's frames for it are
    dropped and counted, not waited for, and its tick goes on; once Redis is back they
    reach that gate again, without a restart."""
    caplog.set_level(logging.WARNING)
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(redis_server.url, kind, PREFIX)}
    layer = get_channel_layer()
    other_gate = await layer.new_channel()
    frames: list[int] = []

    async def receive() -> None:
        while True:
            try:
                message = await layer.receive(other_gate)
            except Exception:  # Redis hung or back: the layer reconnects
                await asyncio.sleep(0.1)
                continue
            for _, packets in message["items"]:
                frames.extend(json.loads(payload)["frame"] for _, payload in packets)

    receiving = asyncio.ensure_future(receive())
    module = Game()
    module.node_id = "Game@0000000000000001"
    room = Room(module, Frames)
    table = room.create()
    player = Session(
        ip="127.0.0.1", network="tcp", session_id="s-far", server_id="gate2",
        channel=f"{other_gate}#far",
    )  # fmt: skip
    dropped = metrics.PUSHES_DROPPED.child("unavailable")
    try:
        await table.call("sit", player)
        await until(lambda: len(frames) >= 5, "frames reach the other gate")
        before = dropped.value
        redis_server.pause()
        try:
            frame = table.frame
            await asyncio.sleep(HUNG)  # past the registry's probe: Redis known down
            ticked = table.frame - frame
        finally:
            redis_server.resume()
        resumed = table.frame
        await until(lambda: bool(frames) and frames[-1] > resumed, "frames reach it again", 20)
    finally:
        receiving.cancel()
        await room.stop()
    lost = dropped.value - before
    print(f"{kind} layer, Redis hung {HUNG:.0f} s: the table ran {ticked} frames of its "
          f"{HUNG / 0.02:.0f}, dropped {lost:.0f} pushes for the other gate")  # fmt: skip
    assert ticked >= 0.8 * HUNG / 0.02  # one frame's send hanging would have held the tick
    assert lost > 0
    assert not warnings_of(caplog, "a frame's pushes were lost")


async def until(condition, what: str, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)
