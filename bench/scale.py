"""Gate processes on one machine: one against two (and more), sharing the MQTT-over-TCP port.

    .venv/bin/python -m bench.scale                    # the run docs/benchmarks.md shows
    .venv/bin/python -m bench.scale --quick            # tiny counts: checks the tool works

The deployment deploy/ ships, on loopback: G daphne gates listening on one TCP port with
``REUSE_PORT`` (the kernel spreads the clients over them), one ``runmodules`` process with
Login, Chat and HelloWorld, Redis carrying every call, reply and broadcast between them, and
PostgreSQL. For G = 1, then 2 (``--gates``), fresh processes run the request/reply scenario
(HelloWorld, a closed loop per client) and the fan-out (one room, one speaker, every member
hears each message) of bench.scenarios through the shared port.

CPU is the gates', the module process's and redis-server's together, read from /proc over
the measured window (the load tool's own is apart): on a machine with as many cores as there
are processes, the rate scales while that CPU per message stays flat. The scaling factor is
the rate with G gates over the rate with one.
"""

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.proc import cpu_seconds, established, listening
from bench.rpc import delete_keys, redis_pid
from bench.servers import BENCH_MQANT, SCRUBBED_ENV, Server, free_port, start_server

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
MODULES_PID = "modules1"
MAX_GATES = 8


@dataclass(frozen=True)
class Plan:
    gates: tuple[int, ...] = (1, 2)
    rr_clients: tuple[int, ...] = (16, 64, 256)
    rr_seconds: float = 10.0
    fanout_members: tuple[int, ...] = (100, 1000)
    fanout_seconds: float = 10.0


QUICK = Plan((1, 2), (4,), 1.0, (5,), 1.0)


@contextmanager
def database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one run, dropped after."""
    import psycopg

    name = f"bench_scale_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin_url.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def environment(redis_url: str, database_url: str, workdir: Path) -> dict[str, str]:
    """What every process of the deployment shares: Redis under a prefix of its own, the
    database, the deployment file (the modules in MODULES_PID), the shared port's setting."""
    conf = workdir / "server.json"
    modules = ("Login", "Chat", "HelloWorld")
    conf.write_text(
        json.dumps({"Module": {m: [{"Id": f"{m}001", "ProcessID": MODULES_PID}] for m in modules}})
    )
    return {
        "REDIS_URL": redis_url,
        "MQANT_REDIS_PREFIX": f"bench{secrets.token_hex(4)}",
        "DATABASE_URL": database_url,
        "MQANT_CONFIG": str(conf),
        "MQANT_REUSE_PORT": "1",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
    }


class Deployment:
    """G gates on one shared TCP port and one module process, started afresh; stopped on
    close."""

    def __init__(self, gates: int, env: dict[str, str], workdir: Path) -> None:
        if not 0 < gates <= MAX_GATES:
            raise ValueError(f"Expected 1 to {MAX_GATES} gates, got {gates}")
        self.port = free_port()
        self.env = env
        self.workdir = workdir
        self.gates: list[Server] = []
        self.modules: subprocess.Popen[bytes] | None = None
        self.count = gates

    def start(self) -> "Deployment":
        settings = {"TCP_ADDR": f"127.0.0.1:{self.port}", "WS_ADDR": ""}
        try:
            for index in range(1, self.count + 1):
                env = {**self.env, "MQANT_PROCESS_ID": f"gate{index}"}
                self.gates.append(
                    start_server("mqant", mqant_settings=settings, env=env, workdir=self.workdir)
                )
            self.modules = self._start_modules(settings)
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self, within: float = 60.0) -> None:
        """Wait until every gate listens on the shared port (the first one's listening says
        nothing of the others')."""
        deadline = time.monotonic() + within
        for gate in self.gates:
            while not listening(gate.pid, self.port):
                if gate.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{gate.name} does not listen on {self.port}:\n{gate.log_tail()}"
                    )
                time.sleep(0.1)

    def _start_modules(self, settings: dict[str, Any]) -> "subprocess.Popen[bytes]":
        inherited = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env = {
            **inherited,
            **self.env,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DJANGO_DEBUG": "0",
            "MQANT_LOG_LEVEL": "WARNING",
            "MQANT_SETTINGS": json.dumps({**BENCH_MQANT, **settings}),
        }
        with (self.workdir / "runmodules.log").open("ab") as log:
            return subprocess.Popen(  # noqa: S603 - a fixed command line
                [sys.executable, "manage.py", "runmodules", "--pid", MODULES_PID],
                cwd=ROOT, env=env, stdout=log, stderr=log,
            )  # fmt: skip

    def endpoint(self, redis: str) -> scenarios.Endpoint:
        """The shared port, with every process's CPU counted (Redis's too, when local)."""
        assert self.modules is not None
        also = [gate.pid for gate in self.gates[1:]] + [self.modules.pid]
        if redis:
            also.append(int(redis))
        first = self.gates[0]
        return scenarios.Endpoint("mqant", "daphne", "tcp", self.port, first.pid, also=tuple(also))

    async def ready(self, within: float = 30.0) -> None:
        """Wait until a call through each gate (on its own WebSocket port) reaches the module
        process: each gate must have seen its node in the registry."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        for gate in self.gates:
            while True:
                caller = await scenarios.open_caller(gate.endpoint("ws"))
                try:
                    await caller.call_json("HelloWorld/HD_Say/1", {"say": "hi"})
                    break
                except (RuntimeError, TimeoutError):
                    if loop.time() > deadline:
                        raise
                    await asyncio.sleep(0.2)
                finally:
                    assert caller.client is not None
                    caller.client.close()

    def stop(self) -> None:
        if self.modules is not None and self.modules.poll() is None:
            self.modules.terminate()
            try:
                self.modules.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.modules.kill()
                self.modules.wait()
        for gate in self.gates:
            gate.stop()


def measure(plan: Plan, redis_url: str, postgres_url: str) -> list[dict[str, Any]]:
    """One record per (gates, scenario, size)."""
    records: list[dict[str, Any]] = []
    redis = redis_pid(redis_url)
    with ExitStack() as stack:
        db = stack.enter_context(database(postgres_url))
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scale-")))
        for gates in plan.gates:
            env = environment(redis_url, db, workdir)
            deployment = Deployment(gates, env, workdir).start()
            try:
                endpoint = deployment.endpoint(redis)
                asyncio.run(deployment.ready())
                runs = [
                    partial(scenarios.rr, endpoint, n, plan.rr_seconds) for n in plan.rr_clients
                ]
                runs += [
                    partial(scenarios.fanout, endpoint, n, plan.fanout_seconds)
                    for n in plan.fanout_members
                ]
                for run in runs:
                    before = role_cpu(deployment, redis)
                    record, spread = asyncio.run(with_spread(run(), deployment))
                    split = split_of(before, role_cpu(deployment, redis))
                    records.append({**record, "gates": gates, "spread": spread, "split": split})
                    print(line(records[-1]), flush=True)
            finally:
                deployment.stop()
                delete_keys(redis_url, env["MQANT_REDIS_PREFIX"])
    add_scaling(records)
    return records


async def with_spread(
    run: Coroutine[Any, Any, dict[str, Any]], deployment: Deployment, every: float = 0.5
) -> tuple[dict[str, Any], list[int]]:
    """The scenario's record, and how its clients were spread over the gates: the
    connections each gate served when the most were open (a sample every ``every`` s)."""
    pids = [gate.pid for gate in deployment.gates]
    best: list[int] = [0] * len(pids)

    async def sample() -> None:
        nonlocal best
        while True:
            counts = [established(pid, deployment.port) for pid in pids]
            if sum(counts) > sum(best):
                best = counts
            await asyncio.sleep(every)

    sampler = asyncio.create_task(sample())
    try:
        return await run, best
    finally:
        sampler.cancel()


def role_cpu(deployment: Deployment, redis: str | None) -> dict[str, float]:
    """CPU seconds used so far by the gates together, the module process and redis-server."""
    return {
        "gates": sum(cpu_seconds(gate.pid) for gate in deployment.gates),
        "modules": cpu_seconds(deployment.modules.pid) if deployment.modules else 0.0,
        "redis": cpu_seconds(redis) if redis else 0.0,
    }


def split_of(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Each role's share (%) of the server CPU a whole run used (its warm-up and connects too:
    the measured window's total is the record's ``cpu_s``)."""
    used = {role: after[role] - before[role] for role in after}
    total = sum(used.values()) or 1.0
    return {role: round(100 * seconds / total, 1) for role, seconds in used.items()}


def add_scaling(records: list[dict[str, Any]]) -> None:
    """Each record's rate over the one-gate record of the same scenario and size."""
    one = {(r["scenario"], r["clients"]): r["rate"] for r in records if r["gates"] == 1}
    for r in records:
        base = one.get((r["scenario"], r["clients"]))
        r["scaling"] = r["rate"] / base if base else None


HEADER = (
    f"{'scenario':<8} {'clients':>7} {'gates':>5} {'msgs/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
    f"{'server CPU s':>12} {'CPU µs/msg':>10} {'load CPU s':>10} {'scaling':>7} "
    f"{'gates/modules/redis %':>22}  per gate"
)


def line(r: dict[str, Any]) -> str:
    scaling = r.get("scaling")
    return (
        f"{r['scenario']:<8} {r['clients']:>7} {r['gates']:>5} {r['rate']:>9.0f} "
        f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['cpu_s']:>12.2f} "
        f"{r['cpu_per_msg_us']:>10.1f} {r['client_cpu_s']:>10.2f} "
        f"{'' if scaling is None else f'{scaling:.2f}':>7} "
        f"{'/'.join(f'{v:.0f}' for v in r.get('split', {}).values()):>22}  "
        + "/".join(map(str, r.get("spread", [])))
    )


def table(records: Sequence[dict[str, Any]]) -> str:
    return "\n".join([HEADER, *(line(r) for r in records)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gates", type=int, nargs="+", default=None)
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks the tool")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument(
        "--postgres-url", default=DEFAULT_POSTGRES_URL,
        help="a server where the run may create (and drop) a database of its own",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the records to this file")
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan()
    if args.gates:
        if not all(0 < g <= MAX_GATES for g in args.gates):
            parser.error(f"--gates: 1 to {MAX_GATES} each")
        plan = dataclasses.replace(plan, gates=tuple(args.gates))
    print("command:", shlex.join([sys.executable, "-m", "bench.scale", *sys.argv[1:]]))
    print(f"machine: {os.cpu_count()} cores", flush=True)
    print(HEADER, flush=True)
    records = measure(plan, args.redis_url, args.postgres_url)
    print("\n" + table(records))
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
