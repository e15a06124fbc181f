"""The application-level hostile suite's tools: attackers on loopback addresses of their own,
a bystander whose login, join and say are timed after each attack, and the server's memory.

Linux routes all of 127.0.0.0/8 to the loopback interface, so a client that binds its socket
to 127.0.0.N before connecting to 127.0.0.1 is, for the server, a client at another address:
per-address limits can be attacked from one address while the bystander comes from another.
"""

import http.client
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.clients import ChatClient
from tests.e2e.server import ServerProcess

# What a bystander must still get while (or just after) another client attacks, in seconds.
LOGIN_BOUND = 3.0
HELLO_BOUND = 1.0
JOIN_BOUND = 1.0
SAY_BOUND = 1.0
# The server process's resident memory must stay under this, in MiB.
RSS_BOUND_MIB = 300

_attackers = itertools.count(2)
# What every bystander round and memory check of this run measured, for the run's summary.
ROUNDS: list["Timings"] = []
RSS_SEEN_MIB: list[float] = []
_bystanders = itertools.count(1)


def attacker_address() -> str:
    """A loopback address no other test of this run uses: 127.0.0.2, 127.0.0.3, ..."""
    n = next(_attackers)
    return f"127.0.{n // 250}.{n % 250 + 2}"


def rss_mib(pid: int, field_name: str = "VmRSS") -> float:
    """The process's resident memory now (``VmHWM``: its peak), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field_name} for {pid}")


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    *,
    source: str = "",
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> Response:
    """One HTTP request to the server from loopback address ``source``; a dict body is sent
    as JSON."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0) if source else None
    )
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    try:
        conn.request(method, path, body=body, headers=sent)
        reply = conn.getresponse()
        return Response(reply.status, dict(reply.getheaders()), reply.read())
    finally:
        conn.close()


def register(port: int, username: str, password: str, source: str) -> str:
    """A new account through the REST register; returns its API token."""
    done = http_request(
        port, "POST", "/api/auth/register/", {"username": username, "password": password},
        source=source,
    )  # fmt: skip
    assert done.status == 201, done
    return str(done.json()["token"])


@dataclass
class Timings:
    """One bystander round: seconds per step."""

    login: float = 0.0
    hello: float = 0.0
    join: float = 0.0
    say: float = 0.0
    history: list[dict[str, object]] = field(default_factory=list)

    def within_bounds(self) -> bool:
        return (
            self.login <= LOGIN_BOUND
            and self.hello <= HELLO_BOUND
            and self.join <= JOIN_BOUND
            and self.say <= SAY_BOUND
        )


class Bystander:
    """A well-behaved user. Each ``check`` opens a fresh connection (from an address of the
    200.x range, its own each time, so that no per-address budget the attacks use is shared),
    logs in, says hello, joins a room, says something there, and times each step."""

    def __init__(self, server: ServerProcess, name: str = "bystander", room: str = "lobby") -> None:
        self.server = server
        self.name = name
        self.password = "quiet-harbor-3318"  # unlike any bystander name
        self.room = room
        self.rounds: list[Timings] = []

    def check(self, transport: str = "websockets") -> Timings:
        """One round over ``transport``: "websockets" (daphne's or uvicorn's port), "tcp", or
        "ws-listener" (the gate's own WebSocket port); raises AssertionError when a step fails
        or passes its bound."""
        ports = {
            "websockets": self.server.port,
            "tcp": self.server.tcp_port,
            "ws-listener": self.server.ws_port,
        }
        port, wire = ports[transport], "tcp" if transport == "tcp" else "websockets"
        n = next(_bystanders)
        client = ChatClient(port, transport=wire, source=f"127.200.{n // 250}.{n % 250 + 1}")
        try:
            timings = Timings()
            login = self._timed(
                client, "Login/HD_Login", {"userName": self.name, "passWord": self.password}
            )
            timings.login, reply = login
            assert reply["Result"] == f"login success {self.name}", reply
            timings.hello, reply = self._timed(client, "HelloWorld/HD_Say", {"say": "hi"})
            assert reply["Result"] == "you say : hi", reply
            timings.join, reply = self._timed(client, "Chat/HD_JoinChat", {"roomName": self.room})
            assert reply["Error"] == "", reply
            timings.history = reply["Result"]["history"]
            body = {"roomName": self.room, "content": f"still here {n}", "target": "*"}
            timings.say, reply = self._timed(client, "Chat/HD_Say", body)
            assert reply["Result"] == {"say": "say success"}, reply
        finally:
            client.close()
        self.rounds.append(timings)
        ROUNDS.append(timings)
        assert timings.within_bounds(), f"the bystander was slowed down: {timings}"
        return timings

    @staticmethod
    def _timed(
        client: ChatClient, topic: str, body: dict[str, str]
    ) -> tuple[float, dict[str, Any]]:
        start = time.monotonic()
        reply = client.request(topic, body, timeout=10)
        return time.monotonic() - start, reply


def unharmed(server: ServerProcess, bystander: Bystander | None = None) -> Timings:
    """After an attack: a bystander is served within bounds, the server lives and its memory
    stays under RSS_BOUND_MIB. Returns the bystander's timings."""
    timings = (bystander or Bystander(server)).check()
    assert server.alive()
    RSS_SEEN_MIB.append(rss_mib(server.pid(), "VmHWM"))
    assert RSS_SEEN_MIB[-1] < RSS_BOUND_MIB
    return timings


def summary() -> list[str]:
    """The worst of what the bystanders measured in this run, and the servers' peak memory."""
    if not ROUNDS:
        return []
    worst = {
        step: max(getattr(t, step) for t in ROUNDS) for step in ("login", "hello", "join", "say")
    }
    steps = ", ".join(f"{step} {seconds * 1000:.0f} ms" for step, seconds in worst.items())
    lines = [f"bystander after attacks: {len(ROUNDS)} rounds; worst {steps}"]
    if RSS_SEEN_MIB:
        lines.append(
            f"attacked servers' peak RSS: {max(RSS_SEEN_MIB):.0f} MiB (bound {RSS_BOUND_MIB})"
        )
    return lines


def hostile_server(
    workdir: Path, max_log_lines: int | None = None, **options: Any
) -> Iterator[ServerProcess]:
    """A server for a hostile suite, with every production default (the per-address account
    budgets included), for a module's fixture to yield from; stopped afterwards, its log
    must hold no traceback (and at most ``max_log_lines`` lines)."""
    proc = ServerProcess(workdir, account_budgets=True, **options).start()
    yield proc
    proc.stop()
    log = proc.output()
    assert "Traceback" not in log, log[-5000:]
    if max_log_lines is not None:
        assert len(log.splitlines()) <= max_log_lines, log[-5000:]
