"""RPC calls per second and p50/p99 latency, per transport and number of concurrent callers.

    .venv/bin/python -m bench.rpc --callers 1 64 --seconds 5

C callers each call ``HelloWorld.HD_Say(session, {"say": "hi"})`` (what the gate sends for a
client's request) in a closed loop for a bounded time, over:

- ``inprocess``: the module in the caller's process, invoked directly (the default, one process);
- ``memory``: the same through the in-memory channel layer (RPC_LOCAL_SHORTCUT off);
- ``core``: the module in a ``manage.py runmodules`` process, over channels-redis's
  RedisChannelLayer, nodes found through the Redis registry;
- ``pubsub``: the same over RedisPubSubChannelLayer.

Each transport runs in a fresh process; Redis keys live under a prefix of their own, deleted
afterwards. Prints the command, then one line per transport and caller count.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("inprocess", "memory", "core", "pubsub")
REDIS_LAYERS = ("core", "pubsub")
CALLER_PID, MODULES_PID = "bench-callers", "bench-modules"


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


async def measure(callers: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    await asyncio.gather(*(one_caller(time.monotonic() + 0.5, []) for _ in range(callers)))
    started = time.monotonic()
    counts = await asyncio.gather(
        *(one_caller(started + seconds, latencies) for _ in range(callers))
    )
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "callers": callers,
        "calls": sum(counts),
        "rate": sum(counts) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000,
    }


async def worker(callers: list[int], seconds: float) -> None:
    """One transport, configured by the environment the parent set: print a JSON line per
    caller count."""
    from mqant import app as mqant_app
    from mqant import rpc

    await mqant_app.ensure_started()
    deadline = time.monotonic() + 30
    while not await rpc.nodes("HelloWorld"):
        if time.monotonic() > deadline:
            raise RuntimeError("no HelloWorld node within 30 s")
        await asyncio.sleep(0.1)
    for count in callers:
        print(json.dumps(await measure(count, seconds)), flush=True)
    await mqant_app.stop()


def environment(layer: str, redis_url: str, workdir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mqantsite.settings",
        "MQANT_LOG_LEVEL": "WARNING",
    }
    for name in ("REDIS_URL", "MQANT_CONFIG", "MQANT_PROCESS_ID", "MQANT_SETTINGS"):
        env.pop(name, None)
    env["SQLITE_PATH"] = str(workdir / "db.sqlite3")
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
    return env


def run_layer(layer: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{layer}-"))
    env = environment(layer, args.redis_url, workdir)
    modules = None
    if layer in REDIS_LAYERS:
        modules = subprocess.Popen(  # noqa: S603 - a fixed command line
            [sys.executable, "manage.py", "runmodules", "--pid", MODULES_PID],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        command = [sys.executable, "-m", "bench.rpc", "--worker", "--seconds", str(args.seconds)]
        out = subprocess.run(  # noqa: S603 - a fixed command line
            [*command, "--callers", *map(str, args.callers)],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
            timeout=60 + len(args.callers) * (args.seconds + 5),
        )  # fmt: skip
        return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    finally:
        if modules is not None:
            modules.terminate()
            modules.wait(timeout=30)
        if layer in REDIS_LAYERS:
            delete_keys(args.redis_url, env["MQANT_REDIS_PREFIX"])


def delete_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--layers", nargs="+", choices=LAYERS, default=list(LAYERS))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
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
    for layer in args.layers:
        for row in run_layer(layer, args):
            print(
                f"{layer:<9} callers={row['callers']:<3} calls/s={row['rate']:8.0f}  "
                f"p50={row['p50']:6.2f} ms  p99={row['p99']:6.2f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
