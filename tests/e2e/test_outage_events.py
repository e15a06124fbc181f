"""Connection events through outages, as users see them: two daphne gates and one
``runmodules`` over Redis and PostgreSQL, PostgreSQL behind a proxy that refuses it for a
while. A user who leaves during the outage is announced gone once it is over, and leaves no
live-connection row; the users who stayed are not announced gone (the first gate back does
not take the other for dead). And a gate killed with SIGKILL: how soon its users are
announced gone, with the default heartbeat."""

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.deployment import Deployment, two_gates
from tests.faults.services import TcpProxy

pytestmark = pytest.mark.e2e

OUTAGE = 8.0  # seconds PostgreSQL refuses: longer than a gate's dead-after (4 s)
# The clients use MQTT over TCP: they stay idle past 20 s, when daphne and uvicorn ping
# WebSocket clients, and paho 2.2 answers a ping with an unmasked pong (client.py,
# _WebsocketWrapper: do_masking=0), which the server takes for a protocol error and closes.


class Outage:
    """The deployment, with PostgreSQL behind ``proxy``; ``database`` is its own URL."""

    def __init__(self, running: Deployment, database: str, proxy: TcpProxy) -> None:
        self.running, self.database, self.proxy = running, database, proxy
        self.gates = running.gates
        self.client = running.client

    def rows_of(self, user: str) -> int:
        """The user's live-connection rows, read from PostgreSQL itself (not the proxy)."""
        with psycopg.connect(self.database, connect_timeout=3) as db:
            found = db.execute(
                "SELECT count(*) FROM sessions_store_liveconnection WHERE user_id = %s", (user,)
            ).fetchone()
        return int(found[0]) if found else 0


@pytest.fixture
def deployment(tmp_path, redis_space, postgres_url) -> Iterator[Outage]:
    proxy = TcpProxy("127.0.0.1", 5432).start()
    database = postgres_url.rsplit("/", 1)[1]
    env = {
        **redis_space.env("pubsub"),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{proxy.port}/{database}",
    }
    try:
        with two_gates(tmp_path, env, {"RPC_TIMEOUT": 3.0}) as running:
            yield Outage(running, postgres_url, proxy)
    finally:
        proxy.stop()


def until_ok(client: ChatClient, topic: str, body: dict[str, str], within: float = 20) -> Any:
    deadline = time.monotonic() + within
    while True:
        reply = client.request(topic, body, timeout=8)
        if not reply["Error"]:
            return reply["Result"]
        assert time.monotonic() < deadline, f"{topic} still fails: {reply}"
        time.sleep(0.2)


def enter(client: ChatClient, name: str, room: str) -> None:
    """Log in (the account is made on first login) and join ``room``."""
    result = until_ok(client, "Login/HD_Login", {"userName": name, "passWord": "sturdy-pass-5521"})
    assert result == f"login success {name}"
    until_ok(client, "Chat/HD_JoinChat", {"roomName": room})


def first_leave(client: ChatClient, within: float) -> str:
    """The next user announced gone to ``client``."""
    return str(client.wait_json("Chat/OnLeave", timeout=within)["user"])


def leaves(client: ChatClient, within: float) -> list[str]:
    """The users announced gone to ``client`` within ``within`` s."""
    gone, deadline = [], time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            gone.append(client.wait_json("Chat/OnLeave", timeout=left)["user"])
        except AssertionError:
            break
    return gone


def test_a_user_who_leaves_while_postgresql_is_down_is_announced_once_it_is_back(deployment):
    ann, bob, cid = deployment.client(0), deployment.client(1), deployment.client(0)
    until_ok(ann, "HelloWorld/HD_Say", {"say": "hi"})  # the module process is up
    for client, name in ((ann, "ann"), (bob, "bob"), (cid, "cid")):
        enter(client, name, "lobby")
    assert deployment.rows_of("cid") == 1
    time.sleep(4)  # past Chat's second rebuild from the gates, 3 s after its start

    deployment.proxy.refuse()
    time.sleep(1.0)
    cid.close()  # gone for good while the database is down
    time.sleep(OUTAGE - 1.0)
    deployment.proxy.resume()
    back = time.monotonic()

    assert first_leave(ann, within=20) == "cid"
    print(f"\nOnLeave of the user who left in the outage: {time.monotonic() - back:.1f} s after it")
    assert first_leave(bob, within=2) == "cid"
    deadline = time.monotonic() + 10
    while deployment.rows_of("cid") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert deployment.rows_of("cid") == 0
    # The gates beat again, and the first back waited for the other: nobody else left.
    assert leaves(ann, within=6) == []
    assert leaves(bob, within=0.1) == []
    assert deployment.rows_of("ann") == 1
    assert deployment.rows_of("bob") == 1
    said = until_ok(
        bob, "Chat/HD_Say", {"roomName": "lobby", "content": "still here", "target": "*"}
    )
    assert said == {"say": "say success"}
    assert ann.wait_json("Chat/OnChat")["msg"] == "still here"
    for gate in deployment.gates:  # the outage logged once by each gate, not once a try
        assert gate.output().count("database unavailable (") == 1, gate.output()
        assert " ERROR " not in gate.output(), gate.output()


def test_a_killed_gate_s_users_are_announced_gone_within_seconds(deployment):
    ann, bob = deployment.client(0), deployment.client(1)
    until_ok(ann, "HelloWorld/HD_Say", {"say": "hi"})
    enter(ann, "ann", "lobby")
    enter(bob, "bob", "lobby")
    time.sleep(5)  # the gates have beaten long enough to reap others (dead-after, 4 s)
    deployment.gates[1].process.kill()  # no goodbye: SIGKILL
    deployment.gates[1].process.wait()
    killed = time.monotonic()
    assert first_leave(ann, within=30) == "bob"
    took = time.monotonic() - killed
    print(f"\ndeath notice: Chat/OnLeave {took:.1f} s after SIGKILL of the gate")
    assert deployment.rows_of("bob") == 0
