"""The load tool: every scenario against the product and its references, in one run.

    .venv/bin/python -m bench                      # the full run docs/benchmarks.md shows
    .venv/bin/python -m bench --quick --out /tmp/b  # tiny counts: checks the tool works

Starts each server itself on free loopback ports (the product under daphne and uvicorn,
the textbook Channels consumer under both, Debian's Mosquitto), runs the scenarios, and
writes ``results.json``, ``results.md`` and PNG plots to ``--out``; with ``--update-docs``
the results also replace the generated part of docs/benchmarks.md.
"""

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench import report, scenarios
from bench.servers import Server, start_server

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# (target, asgi server, transports measured through it)
SERVERS: dict[str, list[tuple[str, str | None, tuple[str, ...]]]] = {
    "rr": [
        ("mqant", "daphne", ("ws", "tcp", "ws-listener")),
        ("mqant", "uvicorn", ("ws",)),
        ("textbook", "daphne", ("ws",)),
        ("textbook", "uvicorn", ("ws",)),
        ("mosquitto", None, ("tcp",)),
    ],
    "fanout": [
        ("mqant", "daphne", ("ws", "tcp", "ws-listener")),
        ("mqant", "uvicorn", ("ws",)),
        ("textbook", "daphne", ("ws",)),
        ("textbook", "uvicorn", ("ws",)),
        ("mosquitto", None, ("tcp",)),
    ],
    "idle": [
        ("mqant", "daphne", ("ws",)),
        ("mqant", "daphne", ("tcp",)),
        ("mqant", "daphne", ("ws-listener",)),
        ("mqant", "uvicorn", ("ws",)),
        ("textbook", "daphne", ("ws",)),
        ("textbook", "uvicorn", ("ws",)),
        ("mosquitto", None, ("tcp",)),
    ],
}


@dataclass(frozen=True)
class Plan:
    rr_clients: tuple[int, ...] = (1, 16, 64)
    rr_seconds: float = 10.0
    fanout_members: tuple[int, ...] = (10, 100, 1000)
    fanout_seconds: float = 10.0
    idle_connections: tuple[int, ...] = (10_000,)
    rpc_callers: tuple[int, ...] = (1, 64)
    rpc_seconds: float = 5.0


QUICK = Plan((1, 4), 1.0, (5,), 1.0, (50,), (1, 4), 1.0)


class Servers:
    """Starts the servers a run measures: a fresh one for each use, or, for a quick run (which
    checks the tool, not the figures), one per target and ASGI server, kept until the end."""

    def __init__(self, *, reuse: bool) -> None:
        self.reuse = reuse
        self.kept: dict[tuple[str, str | None], Server] = {}

    @contextmanager
    def served(self, target: str, asgi: str | None) -> Iterator[Server]:
        if self.reuse:
            key = (target, asgi)
            if key not in self.kept:
                self.kept[key] = start_server(target, asgi or "daphne")
            yield self.kept[key]
            return
        server = start_server(target, asgi or "daphne")
        try:
            yield server
        finally:
            server.stop()

    def close(self) -> None:
        """Stop the servers kept."""
        while self.kept:
            self.kept.popitem()[1].stop()


def run_scenario(
    name: str,
    plan: Plan,
    servers: Servers,
    bar: Callable[[str], None],
    tick: Callable[[], None],
) -> list[dict[str, Any]]:
    records = []
    served = servers.served
    for target, asgi, transports in SERVERS[name]:
        if name == "idle":
            # A fresh server for each transport (but in a quick run): RSS grows from its start.
            with served(target, asgi) as server:
                for endpoint in map(server.endpoint, transports):
                    for count in plan.idle_connections:
                        bar(f"idle {endpoint.label} {count}")
                        records.append(asyncio.run(scenarios.idle(endpoint, count)))
                        tick()
            continue
        with served(target, asgi) as server:
            for endpoint in map(server.endpoint, transports):
                if name == "rr":
                    for clients in plan.rr_clients:
                        bar(f"rr {endpoint.label} {clients}")
                        run = scenarios.rr(endpoint, clients, plan.rr_seconds)
                        records.append(asyncio.run(run))
                        tick()
                else:
                    for members in plan.fanout_members:
                        bar(f"fanout {endpoint.label} {members}")
                        run = scenarios.fanout(endpoint, members, plan.fanout_seconds)
                        records.append(asyncio.run(run))
                        tick()
    return records


def run_rpc(plan: Plan) -> list[dict[str, Any]]:
    from bench import rpc

    records = rpc.run(rpc.LAYERS, plan.rpc_callers, plan.rpc_seconds)
    for r in records:
        redis = r.get("cpu_redis_s") or 0.0
        r["redis_per_msg_us"] = redis / r["messages"] * 1e6 if redis and r["messages"] else None
    return records


def steps(names: list[str], plan: Plan) -> int:
    per_target = {
        "rr": len(plan.rr_clients),
        "fanout": len(plan.fanout_members),
        "idle": len(plan.idle_connections),
    }
    total = 0
    for name in names:
        if name == "rpc":
            total += 1
            continue
        for _, _, transports in SERVERS[name]:
            total += len(transports) * per_target[name]
    return total


def metadata() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "command": shlex.join(["python", "-m", "bench", *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} × {model}, Linux {platform.release()}",
        "commit": commit or "unknown",
        "python": f"Python {platform.python_version()}",
    }


def update_docs(section: str) -> None:
    text = DOCS.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOCS.write_text(text[:start] + "\n" + section + "\n" + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenarios", nargs="+", choices=("rr", "fanout", "idle", "rpc"),
        default=["rr", "fanout", "idle", "rpc"],
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny counts, about a minute")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    parser.add_argument("--update-docs", action="store_true", help="rewrite docs/benchmarks.md")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan()
    args.out.mkdir(parents=True, exist_ok=True)
    meta = metadata()
    print("command:", meta["command"], flush=True)

    records: list[dict[str, Any]] = []
    servers = Servers(reuse=args.quick)
    with (
        tqdm(total=steps(args.scenarios, plan), unit="run", dynamic_ncols=True) as progress,
        contextlib.closing(servers),
    ):
        for name in args.scenarios:
            if name == "rpc":
                progress.set_description("rpc")
                records += run_rpc(plan)
                progress.update()
            else:
                records += run_scenario(
                    name, plan, servers, progress.set_description, lambda: progress.update()
                )
    plots = [] if args.no_plots else report.plot(records, args.out)
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    text = report.markdown(records, meta, plots)
    (args.out / "results.md").write_text(text)
    if args.update_docs:
        relative = os.path.relpath(args.out.resolve(), DOCS.parent)
        update_docs(report.markdown(records, meta, [f"{relative}/{p}" for p in plots]))
    print(text)


if __name__ == "__main__":
    main()
