"""The dashboard's data scaled out: two daphne gates and a ``runmodules`` process over Redis
and PostgreSQL. Staff on either gate see the three processes, each gate's own connections
and calls; a module process that hangs (SIGSTOP) is named as silent within the bound while
the gates still answer."""

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.admin_client import AdminClient, create_superuser
from tests.e2e.deployment import Deployment, two_gates

pytestmark = pytest.mark.e2e

STAFF, PASSWORD = "scaled-boss", "scaled-boss-pass-1234"


@pytest.fixture
def deployment(tmp_path, redis_space, postgres_url) -> Iterator[Deployment]:
    env = {**redis_space.env("pubsub"), "DATABASE_URL": postgres_url}
    with two_gates(tmp_path, env, {}) as running:
        yield running


def figures(admin: AdminClient) -> dict[str, Any]:
    return dict(json.loads(admin.get("/admin/dashboard/data/")))


def rows_when(admin: AdminClient, ready: Any, within: float = 20) -> dict[str, dict[str, Any]]:
    """The processes' rows by process id, once ``ready(rows)`` holds."""
    deadline = time.monotonic() + within
    while True:
        rows = {row["process"]: row for row in figures(admin)["processes"]}
        if ready(rows):
            return rows
        assert time.monotonic() < deadline, rows
        time.sleep(0.3)


def open_connections(row: dict[str, Any]) -> float:
    return sum(sum(t.values()) for t in row["snapshot"]["connections"].values())


def test_staff_on_either_gate_see_every_process_and_a_hung_one_named(deployment):
    gate1, gate2 = deployment.gates
    create_superuser(gate1, STAFF, PASSWORD)
    for gate in (0, 1):
        client = deployment.client(gate)
        reply = client.request("HelloWorld/HD_Say", {"say": "hi"}, timeout=20)
        assert reply["Error"] == "", reply  # the module process is up, reached from this gate

    def all_three(rows: dict[str, dict[str, Any]]) -> bool:
        answered = {name for name, row in rows.items() if row["answered"]}
        return answered == {"gate1", "gate2", "modules1"}

    for gate in (gate1, gate2):  # the same picture whichever gate serves the admin
        rows = rows_when(AdminClient(gate, STAFF, PASSWORD), all_three)
        assert open_connections(rows["gate1"]) == 1
        assert open_connections(rows["gate2"]) == 1
        assert open_connections(rows["modules1"]) == 0
        assert rows["gate1"]["snapshot"]["calls"] >= 1
        assert rows["gate2"]["snapshot"]["calls"] >= 1
        assert rows["gate1"]["key"].startswith("Gate@")
        assert rows["modules1"]["snapshot"]["process"] == "modules1"

    admin = AdminClient(gate1, STAFF, PASSWORD)
    deployment.modules.signal(signal.SIGSTOP)  # listed in the registry a while more, silent
    try:
        started = time.monotonic()
        rows = {row["process"]: row for row in figures(admin)["processes"]}
        elapsed = time.monotonic() - started
    finally:
        deployment.modules.signal(signal.SIGCONT)
    assert rows["modules1"]["answered"] is False
    assert rows["modules1"]["error"] == "deadline exceeded"
    assert rows["gate1"]["answered"] is True
    assert rows["gate2"]["answered"] is True
    assert elapsed < 3  # one second's wait for the silent one, not a hang
