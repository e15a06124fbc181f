"""Scaled out as DESIGN.md says, for end-to-end tests: two daphne gates and one ``runmodules``
process (Login, Chat, HelloWorld) over Redis and PostgreSQL."""

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.clients import ChatClient
from tests.e2e.server import ServerProcess
from tests.runmodules import ModulesProcess

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


class Deployment:
    """The running processes, and the clients a test opened (closed after it)."""

    def __init__(self, gates: list[ServerProcess], modules: ModulesProcess) -> None:
        self.gates, self.modules = gates, modules
        self.clients: list[ChatClient] = []

    def client(self, gate: int, transport: str = "tcp") -> ChatClient:
        server = self.gates[gate]
        port = server.port if transport == "websockets" else server.tcp_port
        client = ChatClient(port, transport=transport)
        self.clients.append(client)
        return client


@contextmanager
def two_gates(
    workdir: Path,
    env: Mapping[str, str],
    mqant: Mapping[str, object],
    more_modules: Mapping[str, object] | None = None,
) -> Iterator[Deployment]:
    """The deployment in ``workdir`` with ``env`` (REDIS_URL, DATABASE_URL...) and the gates'
    ``mqant`` settings, ``more_modules`` (entries of server.json's "Module") in the module
    process too; stopped after, and no gate may have logged a traceback."""
    conf = workdir / "server.json"
    conf.write_text(json.dumps({"Module": {**DEPLOYMENT["Module"], **(more_modules or {})}}))
    env = {**env, "MQANT_CONFIG": str(conf)}
    gates: list[ServerProcess] = []
    modules = ModulesProcess(workdir, {**os.environ, **env}, "modules1")
    running = Deployment(gates, modules)
    try:
        for name in ("gate1", "gate2"):
            (workdir / name).mkdir()
            extra = {**env, "MQANT_PROCESS_ID": name}
            gates.append(ServerProcess(workdir / name, extra, mqant=mqant).start())
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
