"""What QoS 1 pushes cost: the fanout scenario (one room, one speaker, every member hears each
message) with the members' pushes at QoS 0 (mqant's), at QoS 1 for a clean session that
subscribed at QoS 1, and at QoS 1 for persistent sessions (clean session 0: every push
written to the session's queue, sent, and removed at its PUBACK).

    .venv/bin/python -m bench.qos                               # 100 and 1000 members, TCP
    .venv/bin/python -m bench.qos --members 1000 --transport tcp ws --seconds 10

Each (transport, pushes, members) runs on a fresh product server (daphne, one process,
sessions' queues in its memory), its per-address bound of persistent sessions lifted (every
member connects from 127.0.0.1). Figures: deliveries a second, their latency from the speaker's
PUBLISH to a member's receipt (p50, p99), lost and duplicated deliveries, and the server's
CPU per delivery.
"""

import argparse
import asyncio
import shlex
import sys
from typing import Any

from bench import scenarios
from bench.servers import start_server

MODES = ("qos0", "qos1", "persistent")
# Every member connects from 127.0.0.1: the per-address bound of persistent sessions would
# refuse all but 16 of them.
SETTINGS = {"PERSISTENT_SESSIONS_PER_ADDRESS": 0, "SESSION_EXPIRY_MAX": 60}


def run(transport: str, pushes: str, members: int, seconds: float) -> dict[str, Any]:
    with start_server("mqant", "daphne", mqant_settings=SETTINGS) as server:
        endpoint = server.endpoint(transport)
        return asyncio.run(scenarios.fanout(endpoint, members, seconds, pushes=pushes))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.qos", description=__doc__)
    parser.add_argument("--members", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--transport", nargs="+", default=["tcp"], choices=("tcp", "ws"))
    parser.add_argument("--pushes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    print("command:", shlex.join([".venv/bin/python", "-m", "bench.qos", *sys.argv[1:]]))
    header = (
        "| transport | members | pushes | deliveries/s | p50 / p99 ms | lost | dup "
        "| server µs per delivery |"
    )
    print(header)
    print("|---|---:|---|---:|---|---:|---:|---:|")
    for transport in args.transport:
        for members in args.members:
            for pushes in args.pushes:
                r = run(transport, pushes, members, args.seconds)
                print(
                    f"| {transport} | {members} | {pushes} | {r['rate']:,.0f} "
                    f"| {r['p50_ms']:.1f} / {r['p99_ms']:.1f} | {r['lost']} "
                    f"| {r['duplicates']} | {r['cpu_per_msg_us']:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
