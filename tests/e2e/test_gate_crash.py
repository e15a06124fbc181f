"""A gate process that dies leaves no ghost: once its heartbeat has expired, another gate
ends its connections, and the modules hear of each end once, after its start."""

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.server import ServerProcess
from tests.runmodules import ModulesProcess

pytestmark = pytest.mark.e2e

MODULES = {"Id": "{}001", "ProcessID": "modules1"}
DEPLOYMENT = {
    "Module": {
        "Gate": [{"Id": "Gate001", "ProcessID": "gate1"}, {"Id": "Gate002", "ProcessID": "gate2"}],
        **{
            kind: [{**MODULES, "Id": f"{kind}001"}]
            for kind in ("SessionProbe", "Login", "Chat", "HelloWorld")
        },
    }
}
HEARTBEAT = 1.0  # seconds: a gate silent for three is dead


@pytest.fixture
def deployment(tmp_path, redis_space, postgres_url) -> Iterator[list[Any]]:
    conf = tmp_path / "server.json"
    conf.write_text(json.dumps(DEPLOYMENT))
    env = {
        **redis_space.env("pubsub"),
        "DATABASE_URL": postgres_url,
        "MQANT_CONFIG": str(conf),
        "MQANT_EXTRA_APPS": "tests.e2e.probe",
    }
    settings = {"MQANT_SETTINGS": json.dumps({"GATE_HEARTBEAT": HEARTBEAT, "TCP_ADDR": ""})}
    modules = ModulesProcess(tmp_path, {**os.environ, **env, **settings}, "modules1")
    gates: list[ServerProcess] = []
    try:
        for name in ("gate1", "gate2"):
            (tmp_path / name).mkdir()
            extra = {**env, "MQANT_PROCESS_ID": name}
            gates.append(ServerProcess(tmp_path / name, extra, mqant={"GATE_HEARTBEAT": HEARTBEAT}))
            gates[-1].start()
        modules.start()
        yield [gates, modules]
    finally:
        modules.stop()
        for gate in gates:
            gate.stop()


def probe(client: ChatClient, handler: str, within: float = 20) -> Any:
    deadline = time.monotonic() + within
    while True:
        reply = client.request(f"SessionProbe/{handler}", {}, timeout=15)
        if not reply["Error"] or time.monotonic() > deadline:
            assert reply["Error"] == "", reply
            return reply["Result"]
        time.sleep(0.2)


def events_of(observer: ChatClient, session_id: str) -> list[str]:
    return [kind for kind, sid in probe(observer, "HD_Events") if sid == session_id]


def test_a_killed_gate_ends_its_sessions_once(deployment):
    (gate1, gate2), _ = deployment
    observer = ChatClient(gate2.port)
    victim = ChatClient(gate1.tcp_port, transport="tcp")
    try:
        probe(observer, "HD_Whoami")  # the module process is up and known to the gates
        probe(victim, "HD_Whoami")
        victim.close()  # a connection that began after that
        victim = ChatClient(gate1.tcp_port, transport="tcp")
        session_id = probe(victim, "HD_Whoami")["session_id"]
        deadline = time.monotonic() + 5
        while events_of(observer, session_id) != ["opened"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert events_of(observer, session_id) == ["opened"]
        gate1.process.kill()  # no goodbye: SIGKILL
        gate1.process.wait()
        killed = time.monotonic()
        while events_of(observer, session_id) != ["opened", "closed"]:
            assert time.monotonic() - killed < 20, events_of(observer, session_id)
            time.sleep(0.5)
        time.sleep(4 * HEARTBEAT)  # more reaping rounds: still once
        assert events_of(observer, session_id) == ["opened", "closed"]
    finally:
        victim.close()
        observer.close()
