"""RPC calls per second, p50/p99 latency and CPU per call, per transport and number of
concurrent callers.

    .venv/bin/python -m bench.rpc --callers 1 64 --seconds 5

C callers each call ``HelloWorld.HD_Say(session, {"say": "hi"})`` (what the gate sends for a
client's request) in a closed loop for a bounded time, over:

- ``inprocess``: the module in the caller's process, invoked directly (the default, one process);
- ``memory``: the same through the in-memory channel layer (RPC_LOCAL_SHORTCUT off);
- ``core``: the module in a ``manage.py runmodules`` process, over channels-redis's
  RedisChannelLayer, nodes found through the Redis registry;
- ``pubsub``: the same over the pub/sub layer (mqant.redis.layer);
- ``channels-pubsub`` (only when named): the same over channels-redis's own
  RedisPubSubChannelLayer, to compare.

Each transport runs in a fresh process; Redis keys live under a prefix of their own, deleted
afterwards. CPU is read from /proc (utime + stime) at both ends of the measured window: the
caller's process plus the module's (``cpu_s``, one process for ``inprocess`` and ``memory``),
and redis-server's apart (``cpu_redis_s``). CPU seconds per call are much less sensitive than
calls/s to other work on the machine.

``run()`` returns the records; the command line prints the command and a table of them.
"""

import argparse
import asyncio
import json
import os
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.proc import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("inprocess", "memory", "core", "pubsub")
REDIS_LAYERS = ("core", "pubsub", "channels-pubsub")
KNOWN_LAYERS = (*LAYERS, "channels-pubsub")
CALLER_PID, MODULES_PID = "bench-callers", "bench-modules"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The worker reads the CPU of these processes too (their pids, "" when there is none).
MODULE_PID_ENV, REDIS_PID_ENV = "BENCH_MODULE_PID", "BENCH_REDIS_PID"
WARMUP_SECONDS = 0.5


class CpuWindow:
    """The CPU seconds the caller's, the module's and Redis's processes spend from ``start``
    to ``stop``."""

    def __init__(self, module_pid: str, redis_pid: str) -> None:
        self.pids = {"caller": "self", "module": module_pid, "redis": redis_pid}
        self.start_s: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self.start_s = self._read()

    def stop(self) -> None:
        now = self._read()
        self.used = {name: now[name] - self.start_s[name] for name in now}

    def _read(self) -> dict[str, float]:
        return {name: _cpu_seconds(pid) for name, pid in self.pids.items()}


def _cpu_seconds(pid: str) -> float:
    """0 for a process that is not there (or none, "")."""
    try:
        return cpu_seconds(pid) if pid else 0.0
    except OSError:
        return 0.0


async def one_caller(stop_at: float, latencies: list[float]) -> int:
    from mqant import Session, call

    session = Session(ip="127.0.0.1", network="tcp", session_id="b", server_id="g", channel="c")
    done = 0
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        if await call("HelloWorld", "HD_Say", session, {"say": "hi"}) != "you say : hi":
            raise RuntimeError("unexpected reply")
        latencies.append(time.perf_counter() - started)
        done += 1
    return done


async def measure(callers: int, seconds: float, cpu: CpuWindow) -> dict[str, Any]:
    """Warm up, then ``callers`` closed loops for ``seconds``: the raw figures of one run."""
    latencies: list[float] = []
    warmup_end = time.monotonic() + WARMUP_SECONDS
    await asyncio.gather(*(one_caller(warmup_end, []) for _ in range(callers)))
    cpu.start()
    started = time.monotonic()
    counts = await asyncio.gather(
        *(one_caller(started + seconds, latencies) for _ in range(callers))
    )
    elapsed = time.monotonic() - started
    cpu.stop()
    latencies.sort()
    return {
        "clients": callers,
        "seconds": elapsed,
        "messages": sum(counts),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000,
        "cpu_s": cpu.used["caller"] + cpu.used["module"],
        "cpu_redis_s": cpu.used["redis"],
    }


async def worker(callers: list[int], seconds: float) -> None:
    """One transport, configured by the environment the parent set: print a JSON line per
    caller count."""
    from mqant import rpc, runtime

    await runtime.start()
    deadline = time.monotonic() + 30
    while not await rpc.nodes("HelloWorld"):
        if time.monotonic() > deadline:
            raise RuntimeError("no HelloWorld node within 30 s")
        await asyncio.sleep(0.1)
    cpu = CpuWindow(os.environ.get(MODULE_PID_ENV, ""), os.environ.get(REDIS_PID_ENV, ""))
    for count in callers:
        print(json.dumps(await measure(count, seconds, cpu)), flush=True)
    await runtime.stop()


def record(layer: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A worker's figures as the load tool's record."""
    messages, cpu_s = raw["messages"], raw["cpu_s"]
    return {
        "scenario": "rpc",
        "target": "mqant",
        "transport": layer,
        **raw,
        "rate": messages / raw["seconds"],
        "calls_per_cpu_s": messages / cpu_s if cpu_s else 0.0,
        "cpu_per_msg_us": cpu_s / messages * 1e6 if messages else 0.0,
    }


def environment(layer: str, redis_url: str, workdir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mqantsite.settings",
        "MQANT_LOG_LEVEL": "WARNING",
    }
    for name in ("REDIS_URL", "MQANT_CONFIG", "MQANT_PROCESS_ID", "MQANT_SETTINGS"):
        env.pop(name, None)
    env["SQLITE_PATH"] = str(workdir / "db.sqlite3")
    env.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))  # a serving process needs one
    env[MODULE_PID_ENV] = env[REDIS_PID_ENV] = ""
    if layer == "memory":
        env["MQANT_SETTINGS"] = json.dumps({"RPC_LOCAL_SHORTCUT": False})
    if layer in REDIS_LAYERS:
        conf = workdir / "server.json"
        modules = {"HelloWorld": [{"Id": "HelloWorld001", "ProcessID": MODULES_PID}]}
        conf.write_text(json.dumps({"Module": modules}))
        env.update(
            REDIS_URL=redis_url,
            MQANT_REDIS_LAYER=layer,
            MQANT_REDIS_PREFIX=f"bench{secrets.token_hex(4)}",
            MQANT_CONFIG=str(conf),
            MQANT_PROCESS_ID=CALLER_PID,
        )
        env[REDIS_PID_ENV] = redis_pid(redis_url)
    return env


def redis_pid(url: str) -> str:
    """redis-server's pid, if it runs on this machine (else "": its CPU is not counted)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        pid = str(client.info("server")["process_id"])
    finally:
        client.close()
    try:
        is_redis = Path(f"/proc/{pid}/comm").read_text().strip() == "redis-server"
    except OSError:  # another machine's, or another container's
        is_redis = False
    return pid if is_redis else ""


def run_layer(
    layer: str, callers: Sequence[int], seconds: float, redis_url: str
) -> list[dict[str, Any]]:
    """One transport in fresh processes: a record per caller count."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{layer}-"))
    env = environment(layer, redis_url, workdir)
    modules = None
    if layer in REDIS_LAYERS:
        modules = subprocess.Popen(  # noqa: S603 - a fixed command line
            [sys.executable, "manage.py", "runmodules", "--pid", MODULES_PID],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        env[MODULE_PID_ENV] = str(modules.pid)
    try:
        command = [sys.executable, "-m", "bench.rpc", "--worker", "--seconds", str(seconds)]
        out = subprocess.run(  # noqa: S603 - a fixed command line
            [*command, "--callers", *map(str, callers)],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
            timeout=60 + len(callers) * (seconds + 5),
        )  # fmt: skip
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        return [record(layer, json.loads(line)) for line in lines]
    finally:
        if modules is not None:
            modules.terminate()
            modules.wait(timeout=30)
        if layer in REDIS_LAYERS:
            delete_keys(redis_url, env["MQANT_REDIS_PREFIX"])


def run(
    layers: Sequence[str],
    callers: Sequence[int],
    seconds: float,
    redis_url: str = DEFAULT_REDIS_URL,
) -> list[dict[str, Any]]:
    """Measure each of ``layers`` (LAYERS) with each number of ``callers`` for ``seconds``:
    one record per (layer, callers), with the keys ``record`` gives."""
    unknown = set(layers) - set(KNOWN_LAYERS)
    if unknown:
        raise ValueError(f"unknown layers {sorted(unknown)}, expected some of {KNOWN_LAYERS}")
    return [row for layer in layers for row in run_layer(layer, callers, seconds, redis_url)]


def delete_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def table_line(row: dict[str, Any]) -> str:
    redis_us = row["cpu_redis_s"] / row["messages"] * 1e6 if row["messages"] else 0.0
    return (
        f"{row['transport']:<15} {row['clients']:>7} {row['rate']:>8.0f} "
        f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['cpu_per_msg_us']:>10.1f} "
        f"{row['calls_per_cpu_s']:>11.0f} {redis_us:>12.1f}"
    )


TABLE_HEADER = (
    f"{'transport':<15} {'callers':>7} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
    f"{'CPU µs/call':>10} {'calls/CPU-s':>11} {'Redis µs/call':>12}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--layers", nargs="+", choices=KNOWN_LAYERS, default=list(LAYERS))
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--json", action="store_true", help="print the records as JSON lines")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 0 < args.seconds <= 60 or not all(0 < c <= 256 for c in args.callers):
        parser.error("bounded runs only: 0 < seconds <= 60, 0 < callers <= 256")
    if args.worker:
        import django

        django.setup()
        asyncio.run(worker(args.callers, args.seconds))
        return
    print("command:", shlex.join([sys.executable, "-m", "bench.rpc", *sys.argv[1:]]))
    if not args.json:
        print(TABLE_HEADER, flush=True)
    for layer in args.layers:
        for row in run_layer(layer, args.callers, args.seconds, args.redis_url):
            print(json.dumps(row) if args.json else table_line(row), flush=True)


if __name__ == "__main__":
    main()
