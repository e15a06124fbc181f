"""Scaled out as DESIGN.md says: two daphne gates and one ``runmodules`` process over Redis
and PostgreSQL. A paho client on each gate chats in one room; the module process is killed
(the clients get mqant's errors at once, the gates stay up), started again, and chatting
resumes without restarting the gates."""

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.server import ServerProcess
from tests.runmodules import ModulesProcess

pytestmark = pytest.mark.e2e

DEPLOYMENT = {
    "Module": {
        "Gate": [
            {"Id": "Gate001", "ProcessID": "gate1"},
            {"Id": "Gate002", "ProcessID": "gate2"},
        ],
        "Login": [{"Id": "Login001", "ProcessID": "modules1"}],
        "Chat": [{"Id": "Chat001", "ProcessID": "modules1"}],
        "HelloWorld": [{"Id": "HelloWorld001", "ProcessID": "modules1"}],
    }
}
RPC_TIMEOUT = 2.0  # the gates' call timeout, so that a dead module process shows quickly
GONE = {"deadline exceeded", "Service(type:Chat) not found"}


class Deployment:
    def __init__(self, gates: list[ServerProcess], modules: ModulesProcess) -> None:
        self.gates, self.modules = gates, modules
        self.clients: list[ChatClient] = []

    def client(self, gate: int, transport: str) -> ChatClient:
        server = self.gates[gate]
        port = server.port if transport == "websockets" else server.tcp_port
        client = ChatClient(port, transport=transport)
        self.clients.append(client)
        return client


@pytest.fixture(params=["pubsub", "core"])
def deployment(request, tmp_path, redis_space, postgres_url) -> Iterator[Deployment]:
    conf = tmp_path / "server.json"
    conf.write_text(json.dumps(DEPLOYMENT))
    env = {
        **redis_space.env(request.param),
        "DATABASE_URL": postgres_url,
        "MQANT_CONFIG": str(conf),
    }
    gates: list[ServerProcess] = []
    modules = ModulesProcess(tmp_path, {**os.environ, **env}, "modules1")
    running = Deployment(gates, modules)
    try:
        for name in ("gate1", "gate2"):
            workdir = tmp_path / name
            workdir.mkdir()
            extra = {**env, "MQANT_PROCESS_ID": name}
            gates.append(ServerProcess(workdir, extra, mqant={"RPC_TIMEOUT": RPC_TIMEOUT}).start())
        modules.start()
        yield running
    finally:
        for client in running.clients:
            client.close()
        modules.stop()
        for gate in gates:
            gate.stop()
    for gate in gates:
        assert "Traceback" not in gate.output(), gate.output()


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
        assert reply["Error"] in {"deadline exceeded", f"Service(type:{module_type}) not found"}
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
        assert reply["Error"] in GONE, reply
        assert time.monotonic() - asked < RPC_TIMEOUT + 1
        if reply["Error"] == "Service(type:Chat) not found":
            break
        assert time.monotonic() - started < 10, "the dead module process was never forgotten"
    assert all(gate.alive() for gate in deployment.gates)

    deployment.modules.start()  # the gates are not restarted
    until_ok(alice, "HelloWorld/HD_Say", {"say": "back"})
    chat_across_gates(alice, bob, "lobby-again")  # the sessions stayed bound on their gates
