"""Profile the server while one scenario loads it: py-spy samples the server process and
prints the functions that hold the CPU, by own time and by time inside them.

    .venv/bin/python -m bench.profile rr mqant daphne ws --clients 16 --seconds 10

py-spy reads another process's stacks, so the server needs no change; it needs the right to
ptrace the server (root here, or kernel.yama.ptrace_scope 0).
"""

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import scenarios
from bench.servers import start_server

SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def summarise(collapsed: Path, top: int) -> str:
    """The top functions of py-spy's collapsed stacks: own samples and inclusive samples."""
    own: collections.Counter[str] = collections.Counter()
    inside: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        frames = [_short(frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inside[frame] += count
    lines = [f"{total} samples", "", "own %   function"]
    lines += [f"{100 * n / total:5.1f}   {f}" for f, n in own.most_common(top)]
    lines += ["", "total % function (time inside it)"]
    lines += [f"{100 * n / total:5.1f}   {f}" for f, n in inside.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    # "function (path/to/file.py:12)" -> "function (file.py)": lines would split one function.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"


def spy(
    pid: int, seconds: float, output: Path, *, native: bool = False
) -> "subprocess.Popen[bytes]":
    """Start py-spy sampling process ``pid`` for ``seconds`` (whole, at least one) into
    ``output`` (collapsed stacks, for ``summarise``); wait for the Popen returned."""
    command = [
        SPY, "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
        "--duration", str(max(1, int(seconds))), "--output", str(output), "--nonblocking",
    ]  # fmt: skip
    if native:
        command.append("--native")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=("rr", "fanout", "idle"))
    parser.add_argument("target", choices=("mqant", "textbook", "mosquitto"))
    parser.add_argument("asgi", choices=("daphne", "uvicorn"))
    parser.add_argument("transport", choices=("ws", "tcp"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--native", action="store_true", help="C frames too (slower)")
    args = parser.parse_args()
    server = start_server(args.target, args.asgi)
    try:
        endpoint = server.endpoint(args.transport)
        collapsed = Path(tempfile.mkdtemp()) / "profile.txt"
        spying = spy(server.pid, args.seconds, collapsed, native=args.native)
        if args.scenario == "rr":
            load = scenarios.rr(endpoint, args.clients, args.seconds + 1, warmup=0.5)
        elif args.scenario == "fanout":
            load = scenarios.fanout(endpoint, args.clients, args.seconds + 1)
        else:
            load = scenarios.idle(endpoint, args.clients)
        result = asyncio.run(load)
        spying.wait(timeout=60)
    finally:
        server.stop()
    print(f"command: python -m bench.profile {' '.join(sys.argv[1:])}")
    print({k: v for k, v in result.items() if k in ("label", "clients", "rate", "cpu_per_msg_us")})
    print(summarise(collapsed, args.top))


if __name__ == "__main__":
    main()
