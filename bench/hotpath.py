"""The gate's hot path alone, in this process: CPU per ``HelloWorld/HD_Say`` round trip through
one MQTTConnection (a transport that writes nowhere), no socket, no other process.

    .venv/bin/python -m bench.hotpath --calls 20000 --runs 5

With no system calls to dilute it, this is where a change of the per-packet or per-call work
(the metrics' counting, say) shows most; compare two checkouts by running the same command
in each, alternately. The rr scenario (``python -m bench --scenarios rr``) is the real figure.
"""

import argparse
import asyncio
import json
import os
import time


class NullTransport:
    """A Transport (gate.outbox) that writes nowhere and tells when it was written to."""

    may_block = False

    def __init__(self) -> None:
        self.written = asyncio.Event()

    async def write(self, data: bytes) -> None:
        self.written.set()

    def pending_bytes(self) -> int:
        return 0

    async def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def round_trips(calls: int) -> float:
    """Microseconds of CPU per round trip, over ``calls`` after a warm-up."""
    from gate import process
    from gate.connection import MQTTConnection
    from gate.mqtt.codec import encode
    from gate.mqtt.packets import Connect, Publish
    from mqant import runtime

    await runtime.start(process.parts())
    transport = NullTransport()
    connection = MQTTConnection(transport, ip="127.0.0.1", network="tcp", inbox=process.inbox())
    await connection.data_received(encode(Connect("MQTT", 4, "bench", True, 60)))
    request = encode(Publish("HelloWorld/HD_Say/1", b'{"say": "hi"}', qos=0))

    async def trips(n: int) -> None:
        for _ in range(n):
            transport.written.clear()
            await connection.data_received(request)
            await transport.written.wait()

    await trips(500)
    started = time.process_time()
    await trips(calls)
    cpu = time.process_time() - started
    await connection.connection_lost()
    await runtime.stop(1.0)
    return cpu / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    # Nothing but the call: no storage, presence or database probe, no message rate.
    quiet = {"STORAGE_HANDLER": None, "PRESENCE": None, "DATABASE_PROBE": 0, "MESSAGE_RATE": 0}
    os.environ["MQANT_SETTINGS"] = json.dumps(quiet)
    os.environ.setdefault("MQANT_LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    figures = sorted(asyncio.run(round_trips(args.calls)) for _ in range(args.runs))
    print(
        f"CPU per round trip, {args.runs} runs of {args.calls}: min {figures[0]:.2f} µs, "
        f"median {figures[len(figures) // 2]:.2f} µs"
    )


if __name__ == "__main__":
    main()
