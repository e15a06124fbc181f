"""The load scenarios: request/reply (rr), one room's fan-out (fanout), idle connections (idle).

Each drives one server through an :class:`Endpoint` and returns one record (a dict, see
``record``): the load's figures as the clients saw them, and the server's CPU seconds and
memory read from /proc, so that runs compare across machines as ratios. Every run is
bounded in time and in connections.
"""

import asyncio
import json
import re
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.mqttc import MQTTClient
from bench.proc import cpu_seconds, rss_bytes

MAX_CLIENTS = 20_000
MAX_SECONDS = 120.0
SETUP_CONCURRENCY = 50  # handshakes at once: daphne listens with Twisted's backlog of 50
STALL_SECONDS = 5.0  # a fan-out message not delivered to everyone by then is counted lost
SEQ = re.compile(rb"seq=(\d+);")

# Every benchmark user's password (new users are registered with it: it must pass the
# password validators).
BENCH_PASSWORD = "bench-pass-8812"  # noqa: S105 - a loopback benchmark


@dataclass(frozen=True)
class Endpoint:
    """A server to load, and how to reach it."""

    target: str  # "mqant", "textbook" or "mosquitto"
    asgi: str | None  # "daphne", "uvicorn", None for mosquitto
    transport: str  # "ws" (the ASGI server's), "tcp" or "ws-listener" (the gate's own port)
    port: int
    pid: int
    host: str = "127.0.0.1"
    # The server's other processes whose CPU counts too (more gates, module processes, Redis).
    also: tuple[int, ...] = ()

    def server_cpu(self) -> float:
        """CPU seconds the server's processes have used so far."""
        return sum(cpu_seconds(pid) for pid in (self.pid, *self.also))

    @property
    def label(self) -> str:
        server = f"{self.target}/{self.asgi}" if self.asgi else self.target
        return f"{server} {self.transport}"

    async def open(
        self, on_publish: Callable[[str, bytes], None] | None = None, **connect: Any
    ) -> MQTTClient:
        """A client connected to the endpoint; ``connect``: MQTTClient.open's options."""
        return await MQTTClient.open(
            self.host,
            self.port,
            websocket=self.transport != "tcp",
            on_publish=on_publish,
            **connect,
        )


def record(endpoint: Endpoint, scenario: str, clients: int, **figures: Any) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "target": endpoint.target,
        "asgi": endpoint.asgi,
        "transport": endpoint.transport,
        "label": endpoint.label,
        "clients": clients,
        **figures,
    }


def percentiles(latencies: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    if not latencies:
        return float("nan"), float("nan")
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def check_bounds(clients: int, seconds: float) -> None:
    if not 0 < clients <= MAX_CLIENTS or not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"bounded runs only: 0 < clients <= {MAX_CLIENTS}, seconds <= 120")


async def open_many(
    count: int, opener: Callable[[int], Awaitable[MQTTClient]], progress: Callable[[], None]
) -> list[MQTTClient]:
    """``count`` clients, SETUP_CONCURRENCY at a time, in index order."""
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(index: int) -> MQTTClient:
        async with gate:
            client = await opener(index)
            progress()
            return client

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().close()
        raise


class Caller:
    """Request/reply over one client: a PUBLISH, then the next PUBLISH on the same topic."""

    def __init__(self) -> None:
        self.client: MQTTClient | None = None
        self.topic = ""
        self.reply: asyncio.Future[bytes] | None = None
        self.on_other: Callable[[str, bytes], None] | None = None

    def on_publish(self, topic: str, payload: bytes) -> None:
        if topic == self.topic and self.reply is not None and not self.reply.done():
            self.reply.set_result(payload)
        elif self.on_other is not None:
            self.on_other(topic, payload)

    async def call(self, topic: str, payload: bytes, timeout: float = 10.0) -> bytes:
        assert self.client is not None
        self.topic = topic
        self.reply = asyncio.get_running_loop().create_future()
        self.client.publish(topic, payload)
        async with asyncio.timeout(timeout):
            return await self.reply

    async def call_json(self, topic: str, body: dict[str, Any]) -> Any:
        """A call to a module of the product: its reply envelope's Result, or raise."""
        reply = json.loads(await self.call(topic, json.dumps(body).encode()))
        if reply.get("Error"):
            raise RuntimeError(f"{topic}: {reply['Error']}")
        return reply.get("Result")


async def open_caller(endpoint: Endpoint, **connect: Any) -> Caller:
    caller = Caller()
    caller.client = await endpoint.open(caller.on_publish, **connect)
    return caller


# rr: closed-loop request/reply


def rr_request(endpoint: Endpoint, index: int, n: int) -> tuple[str, bytes]:
    """The request of client ``index``'s ``n``th call: mqant's HelloWorld, or an echo."""
    if endpoint.target == "mosquitto":
        return f"rr/{index}/{n}", b'{"say": "hi"}'
    return f"HelloWorld/HD_Say/{n}", b'{"say": "hi"}'


def rr_reply_ok(endpoint: Endpoint, reply: bytes) -> bool:
    if endpoint.target == "mqant":
        return b"you say : hi" in reply
    return reply == b'{"say": "hi"}'


async def rr(
    endpoint: Endpoint,
    clients: int,
    seconds: float,
    warmup: float = 1.0,
    progress: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """``clients`` clients each call in a closed loop; measured after ``warmup`` seconds."""
    check_bounds(clients, seconds)
    callers = [await open_caller(endpoint) for _ in range(clients)]
    if endpoint.target == "mosquitto":
        for index, caller in enumerate(callers):
            assert caller.client is not None
            await caller.client.subscribe(f"rr/{index}/#")
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup
    end = start + seconds
    latencies: list[float] = []
    counts = [0] * clients

    async def loop_calls(index: int, caller: Caller) -> None:
        n = 0
        while (now := loop.time()) < end:
            topic, payload = rr_request(endpoint, index, n)
            sent = time.perf_counter()
            reply = await caller.call(topic, payload)
            if not rr_reply_ok(endpoint, reply):
                raise RuntimeError(f"unexpected reply {reply[:200]!r}")
            if now >= start:
                latencies.append(time.perf_counter() - sent)
                counts[index] += 1
            n += 1

    async def window() -> tuple[float, float]:
        await asyncio.sleep(start - loop.time())
        before, own_before = endpoint.server_cpu(), own_cpu_seconds()
        await asyncio.sleep(end - loop.time())
        return endpoint.server_cpu() - before, own_cpu_seconds() - own_before

    try:
        measured = asyncio.create_task(window())
        await asyncio.gather(*(loop_calls(i, c) for i, c in enumerate(callers)))
        cpu, own_cpu = await measured
    finally:
        for caller in callers:
            assert caller.client is not None
            caller.client.close()
    messages = sum(counts)
    p50, p99 = percentiles(latencies)
    progress()
    return record(
        endpoint,
        "rr",
        clients,
        seconds=seconds,
        messages=messages,
        rate=messages / seconds,
        p50_ms=p50,
        p99_ms=p99,
        cpu_s=cpu,
        cpu_per_msg_us=cpu / messages * 1e6 if messages else float("nan"),
        client_cpu_s=own_cpu,
    )


# fanout: one room, one speaker, every member hears each message


class Room:
    """What the members of one room received, message by message."""

    def __init__(self, members: int) -> None:
        self.members = members
        self.sent_at: list[float] = []
        self.received: list[int] = []
        self.latencies: list[float] = []
        self.duplicates = 0
        self.last_delivery = 0.0
        self.complete = asyncio.Event()
        self.in_flight = 0

    def deliver(self, payload: bytes) -> None:
        match = SEQ.search(payload)
        if match is None:
            return
        seq = int(match.group(1))
        now = time.perf_counter()
        self.received[seq] += 1
        self.latencies.append(now - self.sent_at[seq])
        self.last_delivery = now
        if self.received[seq] == self.members:
            self.in_flight -= 1
            self.complete.set()
        elif self.received[seq] > self.members:
            self.duplicates += 1

    async def settle(self, below: int, seconds: float) -> bool:
        """Wait until fewer than ``below`` messages are on their way; False when they are
        not within ``seconds`` (the rest is counted lost)."""
        deadline = time.perf_counter() + seconds
        while self.in_flight >= below:
            self.complete.clear()
            try:
                async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                    await self.complete.wait()
            except TimeoutError:
                return False
        return True

    def sending(self) -> int:
        seq = len(self.sent_at)
        self.sent_at.append(time.perf_counter())
        self.received.append(0)
        self.in_flight += 1
        return seq


async def fanout(
    endpoint: Endpoint,
    members: int,
    seconds: float,
    window: int = 8,
    progress: Callable[[], None] = lambda: None,
    pushes: str = "qos0",
) -> dict[str, Any]:
    """``members`` clients in one room; the first speaks, with at most ``window`` messages
    not yet delivered to every member, for ``seconds``; then the room drains.

    ``pushes`` (the product only): "qos0", mqant's pushes; "qos1", each member subscribes to
    Chat/OnChat at QoS 1 (a clean session: the gate tracks each push until its PUBACK);
    "persistent", each member connects with clean session 0 (Chat/OnChat is one of
    RELIABLE_PUSHES: each push written to the session's queue, sent, and removed at PUBACK)."""
    check_bounds(members, seconds)
    room = Room(members)
    name = f"bench{time.monotonic_ns()}"
    product = endpoint.target == "mqant"

    def on_publish(topic: str, payload: bytes) -> None:
        if topic == "Chat/OnChat" or topic.startswith("room/"):
            room.deliver(payload)

    async def join(index: int) -> MQTTClient:
        connect: dict[str, Any] = {}
        if product and pushes == "persistent":
            connect = {"client_id": f"{name}c{index}", "clean_session": False}
        caller = await open_caller(endpoint, **connect)
        caller.on_other = on_publish
        assert caller.client is not None
        if product:
            user = f"{name}u{index}"
            login = {"userName": user, "passWord": BENCH_PASSWORD}
            await caller.call_json("Login/HD_Login/1", login)
            await caller.call_json("Chat/HD_JoinChat/2", {"roomName": name})
            if pushes == "qos1":
                await caller.client.subscribe("Chat/OnChat", qos=1)
        else:
            await caller.client.subscribe(f"room/{name}")
        clients.append(caller)
        return caller.client

    clients: list[Caller] = []
    opened = await open_many(members, join, progress)
    speaker = clients[0]
    try:
        cpu_before, own_before = endpoint.server_cpu(), own_cpu_seconds()
        started = time.perf_counter()
        end = started + seconds
        assert speaker.client is not None
        while time.perf_counter() < end and await room.settle(window, STALL_SECONDS):
            seq = room.sending()
            content = f"seq={seq};"
            if product:
                body = {"roomName": name, "content": content}
                speaker.client.publish(f"Chat/HD_Say/{seq}", json.dumps(body).encode())
            else:
                speaker.client.publish(f"room/{name}", content.encode())
            await asyncio.sleep(0)
        await room.settle(1, STALL_SECONDS)  # the room drains
        cpu = endpoint.server_cpu() - cpu_before
        own_cpu = own_cpu_seconds() - own_before
    finally:
        for client in opened:
            client.close()
    sent = len(room.sent_at)
    delivered = sum(min(count, members) for count in room.received)
    elapsed = max(room.last_delivery - started, 1e-9)
    p50, p99 = percentiles(room.latencies)
    return record(
        endpoint,
        "fanout",
        members,
        pushes=pushes,
        seconds=elapsed,
        messages=sent,
        deliveries=delivered,
        rate=delivered / elapsed,
        lost=sent * members - delivered,
        duplicates=room.duplicates,
        p50_ms=p50,
        p99_ms=p99,
        cpu_s=cpu,
        cpu_per_msg_us=cpu / delivered * 1e6 if delivered else float("nan"),
        client_cpu_s=own_cpu,
    )


# idle: many connections that only keep alive


async def idle(
    endpoint: Endpoint,
    connections: int,
    hold: float = 3.0,
    progress: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Open ``connections`` clients (keepalive 60 s), hold them, ping each once."""
    check_bounds(connections, hold)
    warm = await open_many(min(200, connections), lambda _: endpoint.open(), lambda: None)
    for client in warm:
        client.close()
    await asyncio.sleep(1.0)
    rss_before = rss_bytes(endpoint.pid)
    cpu_before = endpoint.server_cpu()
    started = time.perf_counter()
    opened = await open_many(connections, lambda _: endpoint.open(), progress)
    connect_seconds = time.perf_counter() - started
    connect_cpu = endpoint.server_cpu() - cpu_before
    try:
        await asyncio.sleep(hold)
        pongs = await asyncio.gather(
            *(asyncio.wait_for(c.ping(), 30) for c in opened), return_exceptions=True
        )
        alive = sum(1 for pong in pongs if pong is None)
        rss_after = rss_bytes(endpoint.pid)
    finally:
        for client in opened:
            client.close()
    return record(
        endpoint,
        "idle",
        connections,
        alive=alive,
        connect_seconds=connect_seconds,
        connect_rate=connections / connect_seconds,
        connect_cpu_ms=connect_cpu / connections * 1e3,
        rss_before_mb=rss_before / 2**20,
        rss_after_mb=rss_after / 2**20,
        rss_per_conn_kb=(rss_after - rss_before) / connections / 1024,
    )
