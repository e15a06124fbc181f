"""A quick request/reply loop against the gate: C clients, each calling
``HelloWorld/HD_Say/{n}`` over MQTT-over-WebSocket in a closed loop for a bounded time.

    .venv/bin/python -m bench.quick_rr --clients 1 16 --seconds 10

Starts its own daphne on a free loopback port unless ``--port`` names a running server.
Prints messages per second and p50/p99 latency per client count.
"""

import argparse
import asyncio
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

from gate.mqtt import ConnAck, Connect, Decoder, Publish, encode, encode_publish


async def one_client(url: str, stop_at: float, latencies: list[float]) -> int:
    decoder = Decoder()
    async with connect(url, subprotocols=["mqtt"], compression=None) as ws:  # type: ignore[list-item]
        await ws.send(encode(Connect("MQTT", 4, "", True, 60)))
        decoder.receive_data(await ws.recv())  # type: ignore[arg-type]
        if decoder.next_packet() != ConnAck(0):
            raise RuntimeError("CONNECT refused")
        done = 0
        while time.monotonic() < stop_at:
            topic = f"HelloWorld/HD_Say/{done}"
            started = time.perf_counter()
            await ws.send(encode_publish(topic, b'{"say": "hi"}'))
            while True:
                decoder.receive_data(await ws.recv())  # type: ignore[arg-type]
                packet = decoder.next_packet()
                if isinstance(packet, Publish) and packet.topic == topic:
                    if b"you say : hi" not in packet.payload:
                        raise RuntimeError(f"unexpected reply {packet.payload!r}")
                    break
            latencies.append(time.perf_counter() - started)
            done += 1
        return done


async def run(url: str, clients: int, seconds: float) -> tuple[float, float, float]:
    latencies: list[float] = []
    started = time.monotonic()
    stop_at = started + seconds
    counts = await asyncio.gather(*(one_client(url, stop_at, latencies) for _ in range(clients)))
    elapsed = time.monotonic() - started
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return sum(counts) / elapsed, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--port", type=int, help="a running server's port (default: start one)")
    args = parser.parse_args()
    if not 0 < args.seconds <= 120 or not all(0 < c <= 256 for c in args.clients):
        parser.error("bounded runs only: 0 < seconds <= 120, 0 < clients <= 256")

    server = None
    port = args.port
    if port is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.e2e.server import ServerProcess

        # No per-connection message rate: a closed loop is the load we want to measure.
        unlimited = {"MESSAGE_RATE": 0}
        server = ServerProcess(
            Path(tempfile.mkdtemp()), {"MQANT_LOG_LEVEL": "WARNING"}, mqant=unlimited
        ).start()
        port = server.port
    url = f"ws://127.0.0.1:{port}/mqtt"
    print("command:", shlex.join([sys.executable, "-m", "bench.quick_rr", *sys.argv[1:]]))
    try:
        for clients in args.clients:
            rate, p50, p99 = asyncio.run(run(url, clients, args.seconds))
            print(f"clients={clients:<3} msgs/s={rate:8.0f}  p50={p50:6.2f} ms  p99={p99:6.2f} ms")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
