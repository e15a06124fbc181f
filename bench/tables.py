"""Game tables: T Hitball tables of P players, each player moving at a steady rate.

    .venv/bin/python -m bench.tables                           # 100 tables of 8 players, TCP
    .venv/bin/python -m bench.tables --transport tcp ws ws-listener --seconds 20
    .venv/bin/python -m bench.tables --sweep                   # T = 10 ... 200: the 2 ms limit
    .venv/bin/python -m bench.tables --tables 100 --profile    # where the server's time goes

Each run starts a fresh product server (daphne, the one-process default) whose Hitball
tables seat P players (``MODULE_SETTINGS["Hitball"] = {"Table": {"capacity": P}}``), opens
T x P connections, and has each send ``Hitball/HD_Join/1`` once, one at a time, so that the
players fill T tables of P in turn. The tables they sit at are read from the pushes: every
``Hitball/OnMove`` lists the players of its table, so T distinct lists of P players each
prove the seating. Then every player sends ``Hitball/HD_Move`` at ``--rate`` moves a second
(each from its own offset in the period, so that they do not all fire at once), without a
msgid: mqant's requestNR, as the page sends its moves, so that no reply crosses the wire and
what the players receive is what the tables push (one HD_Move with a msgid per player before
the window checks that the moves are accepted).

The measured window is bracketed by two scrapes of the server's ``/metrics`` (the server
starts with ``MQANT_METRICS_TOKEN``): the tick lateness histogram's buckets (p50 and p99 as
"≤ bucket bound", and the exact share of frames within 2 ms, the aim at 22 ms frames), the
latest frame (``mqant_table_tick_lateness_max_seconds``, the last 10 s, read every 5 s),
skipped frames, the pushes the tables sent and the pushes dropped. The pushes the players
received are counted over the same window moved on by a drain margin (``--drain``), so that
every push sent in the window has that long to arrive: lost = sent - received. Server CPU
(from /proc) is given per player-frame (T x P x window / 22 ms) and as a share of a core,
beside the load tool's own: both share this machine.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench import profile
from bench.mqttc import ConnectionClosed, MQTTClient
from bench.scenarios import (
    Caller,
    Endpoint,
    check_bounds,
    open_caller,
    open_many,
    own_cpu_seconds,
    record,
)
from bench.servers import Server, start_server
from gate.mqtt import encode_publish

TRANSPORTS = ("tcp", "ws", "ws-listener")
FRAME = 0.022  # the Hitball table's tick
ONMOVE_EVERY = 4  # a table pushes OnMove every 4th frame
ONMOVE = "Hitball/OnMove"
MOVE = "Hitball/HD_Move"
MAX_TABLES = 1000
MAX_PLAYERS = 64
MAX_RATE = 50.0  # moves a second per player
AIM = 0.002  # a frame within 2 ms of its schedule
SWEEP = (10, 25, 50, 100, 150, 200)
MAX_SWEEP = 12
JOIN_TIMEOUT = 10.0
SEATING_TIMEOUT = 10.0
SLOT = 0.005  # the move loop's granularity: the players due in each 5 ms are sent together
PAYLOADS = 8  # moves a player cycles through
MAX_SCRAPE_BYTES = 4 * 2**20
# The pushes the tables send (mqant_table_pushes_total counts them); not the join replies.
TABLE_TOPICS = (
    "Hitball/OnMove", "Hitball/OnJoin", "Hitball/OnEnter", "Hitball/OnAddCoins",
    "Hitball/OnEatCoins",
)  # fmt: skip


# The server's figures


def metrics_token() -> str:
    """A fresh bearer token for the benchmark server's /metrics (the product asks for at least
    24 characters)."""
    return secrets.token_urlsafe(32)


def start(tables: int, players: int, token: str, workdir: Path | None = None) -> Server:
    """The product (daphne, one process) with room for ``tables`` Hitball tables of
    ``players`` seats, and /metrics on.

    MQANT_SETTINGS replaces MODULE_SETTINGS as a whole: this run uses the Hitball module only.
    """
    hitball = {"MaxTables": max(tables, 100), "Table": {"capacity": players}}
    settings = {"MODULE_SETTINGS": {"Hitball": hitball}}
    env = {"MQANT_METRICS_TOKEN": token}
    return start_server("mqant", "daphne", mqant_settings=settings, env=env, workdir=workdir)


Series = dict[tuple[str, str], float]  # (sample name, its le or reason label) → summed value


async def scrape(port: int, token: str, timeout: float = 10.0) -> Series:
    """GET /metrics with the token from the server's HTTP port: the samples, summed over
    every label but a histogram's ``le`` and a drop's ``reason``."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode()
            )
            data = await reader.read(MAX_SCRAPE_BYTES)
            while len(data) < MAX_SCRAPE_BYTES and (more := await reader.read(65536)):
                data += more
        finally:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RuntimeError(f"/metrics answered {status.decode(errors='replace')!r}")
    series: Series = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            key = (sample.name, sample.labels.get("le") or sample.labels.get("reason") or "")
            series[key] = series.get(key, 0.0) + sample.value
    return series


def diff(after: Series, before: Series) -> Series:
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def total(series: Series, name: str) -> float:
    """A sample's value summed over its labels (a counter's reasons)."""
    return sum(value for (sample, _), value in series.items() if sample == name)


LATENESS = "mqant_table_tick_lateness_seconds"
LATEST = "mqant_table_tick_lateness_max_seconds"  # the latest frame of the last 10 s
LATEST_EVERY = 5.0  # seconds between two readings of it in a window


def lateness(window: Series) -> dict[str, Any]:
    """The window's frames by lateness: the cumulative count at each bucket bound, p50 and
    p99 as the bound of the bucket they fall in (ms; inf past the last), and the exact share
    of frames within 2 ms."""
    bounds = sorted(
        (float(le), count)
        for (name, le), count in window.items()
        if name == f"{LATENESS}_bucket" and le != "+Inf"
    )
    frames = window.get((f"{LATENESS}_count", ""), 0.0)

    def bound_of(share: float) -> float:
        for le, count in bounds:
            if count >= share * frames:
                return le * 1000
        return math.inf

    within = next((count for le, count in bounds if math.isclose(le, AIM)), math.nan)
    return {
        "frames_run": frames,
        "late_p50_ms": bound_of(0.5) if frames else math.nan,
        "late_p99_ms": bound_of(0.99) if frames else math.nan,
        "within_2ms": within / frames if frames else math.nan,
        "late_mean_ms": window.get((f"{LATENESS}_sum", ""), 0.0) / frames * 1000
        if frames
        else math.nan,
        "late_buckets": {f"{le * 1000:g}": int(count) for le, count in bounds},
    }


# The players


class Player:
    """One connection at a table: counts every push by topic into the run's ``received``,
    and reads the players of its table from an OnMove while ``watching``."""

    __slots__ = ("caller", "index", "members", "received", "rid", "watching")

    def __init__(self, index: int, received: dict[str, int]) -> None:
        self.index = index
        self.received = received
        self.caller: Caller | None = None
        self.rid = ""
        self.members: frozenset[str] = frozenset()
        self.watching = 0  # OnMoves still to read the table's players from

    def on_push(self, topic: str, payload: bytes) -> None:
        received = self.received
        received[topic] = received.get(topic, 0) + 1
        if self.watching and topic == ONMOVE:
            with contextlib.suppress(ValueError, AttributeError):
                self.members = frozenset(json.loads(payload))
                self.watching -= 1
        elif not self.rid and topic == "Hitball/OnEnter":
            with contextlib.suppress(ValueError, AttributeError):
                self.rid = str(json.loads(payload).get("Rid") or "")

    def send(self, packet: bytes) -> None:
        assert self.caller is not None
        assert self.caller.client is not None
        self.caller.client.send(packet)

    def close(self) -> None:
        if self.caller is not None and self.caller.client is not None:
            self.caller.client.close()


def move_packets(rng: random.Random) -> list[bytes]:
    """A player's moves: PUBLISHes of ``{"war", "wid", "x", "y"}`` along a short walk in the
    1280² world, encoded once."""
    x, y = rng.uniform(100, 1180), rng.uniform(100, 1180)
    packets = []
    for _ in range(PAYLOADS):
        x, y = x + rng.uniform(-40, 40), y + rng.uniform(-40, 40)
        body = {"war": 0, "wid": 0, "x": round(x, 1), "y": round(y, 1)}
        packets.append(encode_publish(MOVE, json.dumps(body).encode()))
    return packets


async def seat(players: list[Player]) -> None:
    """Join every player, one at a time (each table fills before the next is made), and check
    one move with a msgid each: raises RuntimeError when a join or a move is refused."""
    for player in players:
        assert player.caller is not None
        result = await asyncio.wait_for(
            player.caller.call_json("Hitball/HD_Join/1", {"Rid": "001"}), JOIN_TIMEOUT
        )
        if isinstance(result, dict) and isinstance(result.get("Rid"), str):
            player.rid = result["Rid"]
    for player in players:
        assert player.caller is not None
        body = {"war": 0, "wid": 0, "x": 640.0, "y": 640.0}
        await asyncio.wait_for(player.caller.call_json(f"{MOVE}/2", body), JOIN_TIMEOUT)


async def tables_seen(players: list[Player], within: float = SEATING_TIMEOUT) -> list[int]:
    """The sizes of the tables the players sit at, read from their next two OnMoves (the
    second lists every player that joined before it); raises RuntimeError when a player gets
    none within ``within`` s, or when an OnMove does not list the player it reached."""
    for player in players:
        player.watching = 2
    deadline = time.monotonic() + within
    while any(player.watching for player in players):
        if time.monotonic() > deadline:
            waiting = sum(1 for player in players if player.watching)
            raise RuntimeError(f"{waiting} players got no OnMove within {within} s")
        await asyncio.sleep(0.05)
    groups: dict[frozenset[str], int] = {}
    for player in players:
        if player.rid and player.rid not in player.members:
            raise RuntimeError(f"an OnMove to player {player.rid!r} does not list them")
        groups[player.members] = groups.get(player.members, 0) + 1
    for members, count in groups.items():
        if len(members) != count:  # a table's list names players that are not its own
            raise RuntimeError(f"{count} players see a table of {len(members)}")
    return sorted(groups.values(), reverse=True)


class Movers:
    """Every player's moves at ``rate`` a second: player i at its own offset in the period,
    the players due in each SLOT sent together, until ``stop`` (bounded in time and count)."""

    def __init__(self, players: list[Player], rate: float, seed: int = 0) -> None:
        rng = random.Random(seed)  # noqa: S311 - offsets and walks, not secrets
        self.players = players
        self.period = 1.0 / rate
        slots = max(1, round(self.period / SLOT))
        self.slot = self.period / slots
        self.slots: list[list[tuple[Player, list[bytes]]]] = [[] for _ in range(slots)]
        for player in players:
            self.slots[rng.randrange(slots)].append((player, move_packets(rng)))
        self.sent = 0
        self.refused = 0  # moves to a connection the server closed
        self.stopping = False

    async def run(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        steps = math.ceil(seconds / self.slot)
        slots = self.slots
        for step in range(steps):
            if self.stopping:
                return
            delay = start + step * self.slot - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            turn = step // len(slots)
            for player, packets in slots[step % len(slots)]:
                try:
                    player.send(packets[turn % PAYLOADS])
                    self.sent += 1
                except ConnectionClosed:
                    self.refused += 1


# One run


Counts = dict[str, int]  # pushes received so far, by topic


@dataclass
class Window:
    """What a measured window saw: the server's series at its start and end; the pushes the
    players had received as each scrape was sent (``asked``) and a drain margin after its
    answer (``drained``); CPU; the window's length."""

    before: Series = field(default_factory=dict)
    after: Series = field(default_factory=dict)
    asked_before: Counts = field(default_factory=dict)
    drained_before: Counts = field(default_factory=dict)
    asked_after: Counts = field(default_factory=dict)
    drained_after: Counts = field(default_factory=dict)
    seconds: float = 0.0
    cpu: float = 0.0
    own_cpu: float = 0.0
    moves: int = 0
    latest: float = math.nan  # seconds: the latest frame read in the window

    def note_latest(self, series: Series) -> None:
        value = series.get((LATEST, ""), math.nan)
        if not math.isnan(value) and not (value <= self.latest):
            self.latest = value


async def run(
    server: Server,
    token: str,
    transport: str,
    tables: int,
    players: int,
    rate: float = 10.0,
    seconds: float = 20.0,
    *,
    warmup: float = 2.0,
    drain: float = 0.5,
    on_window: Callable[[float], None] = lambda seconds: None,
    progress: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """T x P players on ``server`` over ``transport``: seated, checked, moving at ``rate``
    for ``warmup`` + ``seconds`` (+ the drain margin); one record of the window's figures.
    ``on_window(seconds)`` is called as the window opens (a profiler's start)."""
    validate(tables, players, rate, seconds)
    check_bounds(tables * players, seconds)
    endpoint = server.endpoint(transport)
    assert server.ws_port is not None
    received: dict[str, int] = {}
    seats = [Player(i, received) for i in range(tables * players)]

    async def connect(index: int) -> MQTTClient:
        player = seats[index]
        player.caller = caller = await open_caller(endpoint)
        caller.on_other = player.on_push
        assert caller.client is not None
        return caller.client

    try:
        await open_many(len(seats), connect, progress)
        await seat(seats)
        for player in seats:  # no more replies: each push straight to its counter
            assert player.caller is not None
            assert player.caller.client is not None
            player.caller.client.on_publish = player.on_push
        sizes = await tables_seen(seats)
        if sizes != [players] * tables:
            raise RuntimeError(f"Expected {tables} tables of {players}, the players sit at {sizes}")
        movers = Movers(seats, rate)
        # Bounded in time: the window's scrapes and drain margins fit in the spare seconds;
        # stopped as soon as the window is read.
        moving = asyncio.create_task(movers.run(warmup + seconds + 2 * drain + 20.0))
        window = Window()
        try:
            await asyncio.sleep(warmup)
            loop = asyncio.get_running_loop()
            window.asked_before = dict(received)
            window.before = await scrape(server.ws_port, token)
            opened = loop.time()
            cpu, own, moves = endpoint.server_cpu(), own_cpu_seconds(), movers.sent
            on_window(seconds)
            await asyncio.sleep(drain)
            window.drained_before = dict(received)
            # The latest frame: the server's gauge holds the last 10 s, so it is read every
            # LATEST_EVERY seconds through the window (the first reading reaches back before
            # the window by up to 10 - LATEST_EVERY seconds).
            while (left := opened + seconds - loop.time()) > LATEST_EVERY:
                await asyncio.sleep(LATEST_EVERY)
                window.note_latest(await scrape(server.ws_port, token))
            await asyncio.sleep(max(left, 0.0))
            window.asked_after = dict(received)
            window.after = await scrape(server.ws_port, token)
            window.note_latest(window.after)
            window.seconds = loop.time() - opened
            window.cpu = endpoint.server_cpu() - cpu
            window.own_cpu = own_cpu_seconds() - own
            window.moves = movers.sent - moves
            await asyncio.sleep(drain)
            window.drained_after = dict(received)
        finally:
            movers.stopping = True
            await moving
    finally:
        for player in seats:
            player.close()
    return figures(endpoint, tables, players, rate, sizes, window, movers.refused, drain)


def validate(tables: int, players: int, rate: float, seconds: float) -> None:
    if not 0 < tables <= MAX_TABLES:
        raise ValueError(f"Expected 1 to {MAX_TABLES} tables, got {tables}")
    if not 0 < players <= MAX_PLAYERS:
        raise ValueError(f"Expected 1 to {MAX_PLAYERS} players a table, got {players}")
    if not 0 < rate <= MAX_RATE:
        raise ValueError(f"Expected 0 < rate <= {MAX_RATE} moves a second, got {rate}")
    if seconds <= 0:
        raise ValueError(f"Expected a window of some seconds, got {seconds}")


def between(before: Counts, after: Counts) -> Counts:
    """The pushes received between two counts, by topic."""
    got = {topic: count - before.get(topic, 0) for topic, count in sorted(after.items())}
    return {topic: count for topic, count in got.items() if count}


def from_tables(got: Counts) -> int:
    return sum(count for topic, count in got.items() if topic in TABLE_TOPICS)


def figures(
    endpoint: Endpoint,
    tables: int,
    players: int,
    rate: float,
    sizes: list[int],
    window: Window,
    refused: int,
    drain: float,
) -> dict[str, Any]:
    seconds = window.seconds
    server = diff(window.after, window.before)
    got = between(window.drained_before, window.drained_after)
    deliveries = sum(got.values())
    table_pushes = int(total(server, "mqant_table_pushes_total"))
    # The server counted its pushes at some moment between each scrape's request and its
    # answer; a push reaches its player within the drain margin. So the pushes received of
    # those the window sent are at least the ones received from the start's answer (plus
    # the margin) to the end's request, at most those from the start's request to the end's
    # answer plus the margin; the estimate counts from each answer plus the margin.
    fewest = from_tables(between(window.drained_before, window.asked_after))
    most = from_tables(between(window.asked_before, window.drained_after))
    dropped = {
        reason: int(value)
        for (name, reason), value in server.items()
        if name == "mqant_pushes_dropped_total" and value
    }
    frames = seconds / FRAME
    seated = tables * players
    late = lateness(server)
    return record(
        endpoint,
        "tables",
        seated,
        tables=tables,
        players=players,
        move_rate=rate,
        seconds=seconds,
        drain_s=drain,
        tables_seen=len(sizes),
        table_sizes=sizes,
        frames_expected=frames,
        frames_per_table=late["frames_run"] / tables,
        **late,
        late_max_ms=window.latest * 1000,
        frames_skipped=int(total(server, "mqant_table_frames_skipped_total")),
        moves=window.moves,
        moves_refused=refused,
        queue_full=int(total(server, "mqant_table_queue_full_total")),
        deliveries=deliveries,
        rate=deliveries / seconds,
        by_topic={topic: count / seconds for topic, count in got.items()},
        onmove_expected=seated * frames / ONMOVE_EVERY,
        onmove_received=got.get(ONMOVE, 0),
        table_pushes=table_pushes,
        lost=table_pushes - from_tables(got),
        lost_range=[table_pushes - most, table_pushes - fewest],
        dropped=dropped,
        slow_consumers=int(total(server, "mqant_slow_consumers_total")),
        cpu_s=window.cpu,
        cpu_share=window.cpu / seconds,
        cpu_per_player_frame_us=window.cpu / (seated * frames) * 1e6,
        # The same over the frames the tables did run (fewer, when they fell behind).
        cpu_per_player_frame_run_us=window.cpu / (players * late["frames_run"]) * 1e6
        if late["frames_run"]
        else math.nan,
        client_cpu_s=window.own_cpu,
        client_share=window.own_cpu / seconds,
    )


# Printing


HEADER = (
    f"{'transport':<11} {'T':>4} {'P':>3} {'frames/s':>8} {'p50 ≤ms':>7} {'p99 ≤ms':>7} "
    f"{'max ms':>7} {'≤2 ms %':>7} {'skipped':>7} {'pushes/s':>8} {'OnMove got/exp':>15} "
    f"{'lost (range)':>17} {'dropped':>7} {'µs/player-frame':>15} {'server %':>8} {'load %':>6}"
)


def line(r: dict[str, Any]) -> str:
    onmove = f"{r['onmove_received'] / max(r['onmove_expected'], 1e-9):.0%}"
    low, high = r["lost_range"]
    lost = f"{r['lost']} ({low}..{high})"
    return (
        f"{r['transport']:<11} {r['tables']:>4} {r['players']:>3} "
        f"{r['frames_per_table'] / r['seconds']:>8.1f} {r['late_p50_ms']:>7g} "
        f"{r['late_p99_ms']:>7g} {r['late_max_ms']:>7.1f} {100 * r['within_2ms']:>7.1f} "
        f"{r['frames_skipped']:>7} {r['rate']:>8.0f} {onmove:>15} {lost:>17} "
        f"{sum(r['dropped'].values()):>7} {r['cpu_per_player_frame_us']:>15.2f} "
        f"{100 * r['cpu_share']:>8.0f} {100 * r['client_share']:>6.0f}"
    )


def verdict(records: Sequence[dict[str, Any]]) -> str:
    """Where p99 lateness passes the 2 ms aim, in one transport's sweep (by size)."""
    ordered = sorted(records, key=lambda r: r["tables"])
    players = ordered[0]["players"] if ordered else 0
    first = next((r["tables"] for r in ordered if r["late_p99_ms"] > AIM * 1000), None)
    if first is None:
        return f"p99 lateness within 2 ms up to {ordered[-1]['tables'] if ordered else 0} tables"
    below = [r["tables"] for r in ordered if r["tables"] < first]
    before = f"within 2 ms up to {below[-1]} tables of {players}, " if below else ""
    return f"p99 lateness {before}past 2 ms from {first} tables of {players}"


# The command


class Spies:
    """py-spy on the server over a window, when ``top`` asks for its top functions."""

    def __init__(self, pid: int, top: int) -> None:
        self.pid, self.top = pid, top
        self.spying: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, seconds: float) -> None:
        if self.top:
            out = Path(tempfile.mkdtemp(prefix="bench-tables-")) / "profile.txt"
            self.spying.append((profile.spy(self.pid, seconds, out), out))

    def report(self, seconds: float) -> None:
        for spying, out in self.spying:
            spying.wait(timeout=seconds + 60)
            print(profile.summarise(out, self.top), flush=True)


@contextmanager
def served(tables: int, players: int) -> Iterator[tuple[Server, str]]:
    token = metrics_token()
    server = start(tables, players, token)
    try:
        yield server, token
    finally:
        server.stop()


def measure(
    sizes: Sequence[int],
    players: int,
    rate: float,
    seconds: float,
    transports: Sequence[str],
    *,
    until_saturated: bool = False,
    profile_top: int = 0,
    warmup: float = 2.0,
    drain: float = 0.5,
) -> list[dict[str, Any]]:
    """One record per transport and number of tables, each on a fresh server (a run's tables
    would tick on, empty, through the next), each row printed as it comes. With
    ``until_saturated`` (a sweep), a transport stops at the first size whose median frame is
    past the 2 ms aim: the server no longer keeps up, and each larger size only loads the
    machine more (a p99 past it alone may be a neighbour's doing, and does not stop it)."""
    records: list[dict[str, Any]] = []
    for transport in transports:
        for tables in sizes:
            with served(tables, players) as (server, token):
                spies = Spies(server.pid, profile_top)
                load = run(
                    server, token, transport, tables, players, rate, seconds,
                    warmup=warmup, drain=drain, on_window=spies.start,
                )  # fmt: skip
                records.append(asyncio.run(load))
                print(line(records[-1]), flush=True)
                spies.report(seconds)
            if until_saturated and records[-1]["late_p50_ms"] > AIM * 1000:
                break
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=100)
    parser.add_argument("--players", type=int, default=8, help="per table (its capacity)")
    parser.add_argument("--rate", type=float, default=10.0, help="moves a second per player")
    parser.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds moving before")
    parser.add_argument(
        "--drain", type=float, default=0.5, help="seconds a push may take to arrive"
    )  # fmt: skip
    parser.add_argument("--transport", nargs="+", choices=TRANSPORTS, default=["tcp"])
    parser.add_argument(
        "--sweep", type=int, nargs="*", metavar="T",
        help=f"tables in turn (default {' '.join(map(str, SWEEP))}), a fresh server each; "
        "stops at the first whose median frame is past 2 ms",
    )  # fmt: skip
    parser.add_argument(
        "--profile", type=int, nargs="?", const=25, default=0, metavar="TOP",
        help="sample the server with py-spy over each window; print the TOP functions",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the records to this file")
    args = parser.parse_args()
    sizes = (args.sweep or list(SWEEP)) if args.sweep is not None else [args.tables]
    if len(sizes) > MAX_SWEEP:
        parser.error(f"--sweep: at most {MAX_SWEEP} sizes")
    try:
        for tables in sizes:
            validate(tables, args.players, args.rate, args.seconds)
            check_bounds(tables * args.players, args.seconds)
    except ValueError as err:
        parser.error(str(err))
    print("command:", shlex.join([sys.executable, "-m", "bench.tables", *sys.argv[1:]]))
    print(f"machine: {os.cpu_count()} cores; frames every {FRAME * 1000:g} ms", flush=True)
    print(HEADER, flush=True)
    records = measure(
        sizes, args.players, args.rate, args.seconds, args.transport,
        until_saturated=args.sweep is not None,
        profile_top=args.profile, warmup=args.warmup, drain=args.drain,
    )  # fmt: skip
    if args.sweep is not None:
        print("\n" + HEADER)
        print("\n".join(line(r) for r in records))
        for transport in args.transport:
            print(f"{transport}: {verdict([r for r in records if r['transport'] == transport])}")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
