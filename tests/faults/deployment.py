"""The deployment the fault suite breaks: two daphne gates and one ``runmodules`` process, over
a Redis of its own and a proxy in front of PostgreSQL, with members chatting in one room."""

import contextlib
import functools
import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.e2e.server import NO_ACCOUNT_BUDGETS, ServerProcess
from tests.faults.load import Member
from tests.faults.services import RedisServer, TcpProxy
from tests.runmodules import ModulesProcess

# The gates' call deadline. Shorter than an outage, so that a call to a hung Redis or database
# is answered ("deadline exceeded") while the outage lasts; long enough for a login (a
# password hash) on this 2-core machine while seven other processes run.
RPC_TIMEOUT = 3.0
BOUND = RPC_TIMEOUT + 2.0  # a request unanswered this long is a failure
GATE_HEARTBEAT = 2.0  # a gate silent for three beats (6 s) is dead
SHUTDOWN_TIMEOUT = 5.0
ROOM = "faults"
MODULES = ("Login", "Chat", "HelloWorld", "SessionProbe")
DEPLOYMENT = {
    "Module": {
        "Gate": [{"Id": "Gate001", "ProcessID": "gate1"}, {"Id": "Gate002", "ProcessID": "gate2"}],
        **{kind: [{"Id": f"{kind}001", "ProcessID": "modules1"}] for kind in MODULES},
    }
}
MQANT = {
    "RPC_TIMEOUT": RPC_TIMEOUT,
    "GATE_HEARTBEAT": GATE_HEARTBEAT,
    "SHUTDOWN_TIMEOUT": SHUTDOWN_TIMEOUT,
}


@dataclass(frozen=True)
class Database:
    """A database of the suite's own on the real PostgreSQL: ``name`` on ``admin_url``'s
    server."""

    admin_url: str
    name: str

    def url(self, port: int) -> str:
        return f"postgres://postgres@127.0.0.1:{port}/{self.name}"

    def live_users(self) -> list[str]:
        """The user of every live-connection row, read past the proxy."""
        direct = self.admin_url.rsplit("/", 1)[0] + f"/{self.name}"
        with psycopg.connect(direct, connect_timeout=3) as conn:
            rows = conn.execute("SELECT user_id FROM sessions_store_liveconnection").fetchall()
        return sorted(str(user) for (user,) in rows)


class Deployment:
    """Starts and restarts the processes, and keeps the members: ``members`` are the clients
    connected, logged in and in ROOM."""

    def __init__(self, workdir: Path, redis: RedisServer, proxy: TcpProxy, db: Database) -> None:
        self.workdir, self.redis, self.proxy, self.db = workdir, redis, proxy, db
        conf = workdir / "server.json"
        conf.write_text(json.dumps(DEPLOYMENT))
        self.env = {
            "REDIS_URL": redis.url,
            "MQANT_REDIS_LAYER": "pubsub",
            "MQANT_REDIS_PREFIX": "faults",
            "DATABASE_URL": db.url(proxy.port),
            "MQANT_CONFIG": str(conf),
            "MQANT_EXTRA_APPS": "tests.e2e.probe",
        }
        self.gates: list[ServerProcess] = []
        self.retired: list[ServerProcess] = []  # gates killed or stopped on purpose
        settings = json.dumps({**MQANT, **NO_ACCOUNT_BUDGETS, "TCP_ADDR": ""})
        env = {**os.environ, **self.env, "MQANT_SETTINGS": settings}
        self.modules = ModulesProcess(workdir, env, "modules1")
        self.members: list[Member] = []
        self.names = (f"user{n}" for n in itertools.count(1))
        self.starts = itertools.count(1)
        # What a fault left wrong, by kind ("room", "online", "rows"): the next checks do not
        # blame it on theirs.
        self.left_over: dict[str, set[str]] = {}

    def start_gate(self, index: int) -> ServerProcess:
        """Start gate ``index`` (0 or 1) in a directory of its own, on new ports."""
        workdir = self.workdir / f"gate{index + 1}-{next(self.starts)}"
        workdir.mkdir()
        extra = {**self.env, "MQANT_PROCESS_ID": f"gate{index + 1}"}
        gate = ServerProcess(workdir, extra, mqant=MQANT).start()
        if index < len(self.gates):
            self.retired.append(self.gates[index])
            self.gates[index] = gate
        else:
            self.gates.append(gate)
        return gate

    def join(self, gate: int, transport: str, name: str | None = None) -> Member:
        """A new member on ``gate``: connected, logged in and in ROOM."""
        server = self.gates[gate]
        port = server.port if transport == "websockets" else server.tcp_port
        member = Member(name or next(self.names), port, transport, gate)
        try:
            member.login_and_join(ROOM, BOUND)
        except BaseException:
            member.close()
            raise
        self.members.append(member)
        return member

    def ready(self, within: float = 30) -> None:
        """Wait until each gate reaches the module process (its nodes are registered)."""
        for index, gate in enumerate(self.gates):
            probe = Member("probe", gate.port, "websockets", index)
            hello = functools.partial(probe.request, "HelloWorld/HD_Say", {"say": "hi"}, BOUND)
            try:
                took = wait_until(lambda: hello().error == "", within, every=0.3)  # noqa: B023
            finally:
                probe.close()
            if took is None:
                raise AssertionError(f"gate{index + 1} does not reach the modules in {within} s")

    def top_up(self, per_gate: int = 3) -> None:
        """Members up to ``per_gate`` on each gate, WebSocket and TCP in turn."""
        for gate in range(len(self.gates)):
            on_gate = [m for m in self.members if m.gate == gate]
            for n in range(len(on_gate), per_gate):
                self.join(gate, "websockets" if n % 2 == 0 else "tcp")

    def leave(self, member: Member) -> None:
        member.close()
        self.members.remove(member)

    def processes(self) -> dict[str, bool]:
        """Whether each running process is alive, by name."""
        alive = {f"gate{i + 1}": gate.alive() for i, gate in enumerate(self.gates)}
        process = self.modules.process
        alive["modules1"] = process is not None and process.poll() is None
        return alive

    def logs(self) -> dict[str, Path]:
        logs = {f"gate{i + 1}": gate.log_path for i, gate in enumerate(self.gates)}
        logs["modules1"] = self.modules.log_path
        return logs

    def stop(self) -> None:
        for member in self.members:
            member.close()
        self.modules.stop()
        for gate in [*self.gates, *self.retired]:
            with contextlib.suppress(Exception):
                gate.stop()


def wait_until(check: Callable[[], object], within: float, every: float = 0.2) -> float | None:
    """Seconds until ``check()`` is true, or None if it is not within ``within`` s."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            return None
        time.sleep(every)
