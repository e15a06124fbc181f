"""A module process that dies and starts again finds its rooms and its users online again on
its own (issue 12): two daphne gates and one ``runmodules`` (Login, Chat, HelloWorld) over
Redis and PostgreSQL; three users in a room across both gates; the module process is killed
(-9) and started again, and no client rejoins, reconnects or logs in again."""

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.deployment import Deployment, two_gates

pytestmark = pytest.mark.e2e

RPC_TIMEOUT = 2.0  # the gates' call timeout, so that a dead module process shows quickly
# What a say may answer while the module process starts again (and before its rooms are back),
# besides "Chat@<id> stopped" when it went to the dead node.
NOT_YET = {"deadline exceeded", "Service(type:Chat) not found", "No room"}
ROOM = "lobby"
REBUILD_AFTER = 3.0  # Chat's RebuildAfter: the second rebuild runs this long after the start


@pytest.fixture(params=["pubsub", "core"])
def deployment(request, tmp_path, redis_space, postgres_url) -> Iterator[Deployment]:
    env = {**redis_space.env(request.param), "DATABASE_URL": postgres_url}
    with two_gates(tmp_path, env, {"RPC_TIMEOUT": RPC_TIMEOUT}) as running:
        yield running


def until_up(client: ChatClient, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while client.request("HelloWorld/HD_Say", {"say": "up?"}, timeout=RPC_TIMEOUT + 3)["Error"]:
        assert time.monotonic() < deadline, "the module process never came up"
        time.sleep(0.2)


def login(client: ChatClient, name: str, within: float = 10) -> None:
    """Log in, asking again while the killed process's Login node is still listed (its
    registry entry lives for a few seconds: the call answers "Login@<id> stopped")."""
    deadline = time.monotonic() + within
    while True:
        body = {"userName": name, "passWord": "pw-k3y9-" + name}
        reply = client.request("Login/HD_Login", body, timeout=RPC_TIMEOUT + 3)
        if not reply["Error"] or time.monotonic() > deadline:
            break
        assert reply["Error"] == "deadline exceeded" or reply["Error"].endswith(" stopped")
        time.sleep(0.2)
    assert reply["Result"] == f"login success {name}", reply


def say(client: ChatClient, content: str) -> dict[str, Any]:
    body = {"roomName": ROOM, "content": content, "target": "*"}
    return client.request("Chat/HD_Say", body, timeout=RPC_TIMEOUT + 3)


def heard(client: ChatClient, sender: str, content: str, within: float = 10) -> None:
    """``content`` from ``sender`` reaches ``client`` (other messages are passed over)."""
    deadline = time.monotonic() + within
    while True:
        event = client.wait_json("Chat/OnChat", timeout=max(deadline - time.monotonic(), 0.1))
        if event["msg"] == content:
            assert event["from"] == sender
            return


def said(client: ChatClient, content: str, within: float = 10) -> dict[str, Any]:
    """A say, asked again while it reaches the killed process's Chat node, which the gates
    list until its registry entry expires (a few seconds): "Chat@<id> stopped"."""
    deadline = time.monotonic() + within
    while True:
        reply = say(client, content)
        gone = reply["Error"] == "deadline exceeded" or reply["Error"].endswith(" stopped")
        if not gone or time.monotonic() > deadline:
            return reply
        time.sleep(0.1)


def everyone_hears_everyone(users: dict[str, ChatClient], tag: str) -> None:
    for name, client in users.items():
        content = f"{tag} from {name}"
        assert said(client, content)["Error"] == "", (name, tag)
        for other in users.values():
            heard(other, name, content)


def test_rooms_and_the_online_count_come_back_with_the_module_process(deployment):
    users = {
        "alice": deployment.client(0, "websockets"),
        "bob": deployment.client(1, "tcp"),
        "carol": deployment.client(0, "tcp"),
    }
    until_up(users["alice"])
    for name, client in users.items():
        login(client, name)
        reply = client.request("Chat/HD_JoinChat", {"roomName": ROOM})
        assert reply["Error"] == "", reply
    everyone_hears_everyone(users, "before")

    deployment.modules.signal(signal.SIGKILL)
    deployment.modules.wait(10)
    deployment.modules.start()  # at once, as a supervisor would; no client does anything
    started = time.monotonic()
    for name, client in users.items():  # each says until it is heard: no rejoin, no login
        while True:
            reply = say(client, f"{name}: are the rooms back?")
            if not reply["Error"]:
                break
            # NOT_YET, or "Chat@<id> stopped" while the killed node is still listed (its
            # registry entry outlives it by up to 3 s)
            assert reply["Error"] in NOT_YET or reply["Error"].endswith(" stopped"), reply
            assert time.monotonic() - started < 60, "the rooms never came back"
            time.sleep(0.1)
        if name == "alice":
            print(f"\nrooms back {time.monotonic() - started:.2f} s after the process started")
    print(f"every user heard {time.monotonic() - started:.2f} s after the process started")

    everyone_hears_everyone(users, "after")
    dave = deployment.client(1, "websockets")
    login(dave, "dave")
    joined = dave.request("Chat/HD_JoinChat", {"roomName": ROOM})["Result"]
    assert sorted(joined["users"]) == ["alice", "bob", "carol", "dave"]
    assert joined["userCount"] == 4
    assert joined["online"] == 4  # Login counted the three again, and dave

    # The second rebuild, once every gate knows the new node, drops nobody who is there.
    time.sleep(max(REBUILD_AFTER + 1 - (time.monotonic() - started), 0))
    everyone_hears_everyone({**users, "dave": dave}, "later")
    leave = users["bob"].request("Chat/HD_LeaveChat", {"roomName": ROOM})
    assert leave["Error"] == ""
    assert users["alice"].wait_json("Chat/OnLeave") == {"roomName": ROOM, "user": "bob"}
    joined = users["bob"].request("Chat/HD_JoinChat", {"roomName": ROOM})["Result"]
    assert joined["userCount"] == 4
    assert joined["online"] == 4
