"""Scaled out as DESIGN.md says: two daphne gates and one ``runmodules`` process over Redis
and PostgreSQL. A paho client on each gate chats in one room; the module process is killed
(the clients get mqant's errors at once, the gates stay up), started again, and chatting
resumes without restarting the gates."""

import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.deployment import Deployment, two_gates

pytestmark = pytest.mark.e2e

RPC_TIMEOUT = 2.0  # the gates' call timeout, so that a dead module process shows quickly


def gone(error: str, module_type: str = "Chat") -> bool:
    """One of the errors of a module process that died: mqant's, or ours for the calls that
    were waiting when its node expired (``Chat@<id> stopped``)."""
    stopped = re.fullmatch(rf"{module_type}@[0-9a-f]+ stopped", error)
    return error in {"deadline exceeded", f"Service(type:{module_type}) not found"} or bool(stopped)


@pytest.fixture(params=["pubsub", "core"])
def deployment(request, tmp_path, redis_space, postgres_url) -> Iterator[Deployment]:
    env = {**redis_space.env(request.param), "DATABASE_URL": postgres_url}
    with two_gates(tmp_path, env, {"RPC_TIMEOUT": RPC_TIMEOUT}) as running:
        yield running


def until_ok(
    client: ChatClient, topic: str, body: dict[str, str], within: float = 20
) -> dict[str, Any]:
    """The first reply without an Error, asking again while the modules are not there."""
    deadline = time.monotonic() + within
    while True:
        reply = client.request(topic, body, timeout=RPC_TIMEOUT + 3)
        if not reply["Error"]:
            return reply
        module_type = topic.split("/")[0]
        assert gone(reply["Error"], module_type), reply
        assert time.monotonic() < deadline, f"{topic} still fails: {reply}"
        time.sleep(0.2)


def login(client: ChatClient, name: str) -> None:
    reply = client.request("Login/HD_Login", {"userName": name, "passWord": "pw-k3y9-" + name})
    assert reply["Result"] == f"login success {name}", reply


def chat_across_gates(alice: ChatClient, bob: ChatClient, room: str) -> Any:
    joined = alice.request("Chat/HD_JoinChat", {"roomName": room})["Result"]
    assert joined["users"] == ["alice"]
    joined = bob.request("Chat/HD_JoinChat", {"roomName": room})["Result"]
    assert sorted(joined["users"]) == ["alice", "bob"]
    assert alice.wait_json("Chat/OnJoin") == {"roomName": room, "user": "bob"}
    said = bob.request("Chat/HD_Say", {"roomName": room, "content": "hi", "target": "*"})
    assert said["Error"] == ""
    expected = {"roomName": room, "from": "bob", "target": "*", "msg": "hi"}
    assert alice.wait_json("Chat/OnChat") == expected  # a room broadcast reaches both gates
    assert bob.wait_json("Chat/OnChat") == expected
    whisper = {"roomName": room, "content": "psst", "target": "alice"}
    assert bob.request("Chat/HD_Say", whisper)["Error"] == ""
    assert alice.wait_json("Chat/OnChat")["msg"] == "psst"  # a send to another gate's session
    return joined


def test_two_gates_one_module_process(deployment):
    alice = deployment.client(0, "websockets")
    bob = deployment.client(1, "tcp")
    until_ok(alice, "HelloWorld/HD_Say", {"say": "hi"})  # the module process is up
    login(alice, "alice")
    login(bob, "bob")
    joined = chat_across_gates(alice, bob, "lobby")
    assert joined["online"] == 2  # Chat asked Login, both in the module process

    deployment.modules.signal(signal.SIGKILL)
    deployment.modules.wait(10)
    started = time.monotonic()
    while True:  # every call gets one of mqant's errors quickly, never a hang
        asked = time.monotonic()
        reply = alice.request("Chat/HD_Say", {"roomName": "lobby", "content": "anyone?"})
        assert gone(reply["Error"]), reply
        assert time.monotonic() - asked < RPC_TIMEOUT + 1
        if reply["Error"] == "Service(type:Chat) not found":
            break
        assert time.monotonic() - started < 10, "the dead module process was never forgotten"
    assert all(gate.alive() for gate in deployment.gates)

    deployment.modules.start()  # the gates are not restarted
    until_ok(alice, "HelloWorld/HD_Say", {"say": "back"})
    chat_across_gates(alice, bob, "lobby-again")  # the sessions stayed bound on their gates
