"""A module app as a user starts one: ``startmodule`` writes it, the server finds it from
INSTALLED_APPS alone, and a paho client calls its typed handler with a bad payload, then a
good one, over WebSocket and TCP."""

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.server import ROOT, ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    apps = tmp_path_factory.mktemp("apps")
    (apps / "scores").mkdir()
    subprocess.run(
        [sys.executable, "manage.py", "startmodule", "scores", str(apps / "scores")],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    extra = {"MQANT_EXTRA_APPS": "scores", "PYTHONPATH": os.pathsep.join([str(apps), str(ROOT)])}
    proc = ServerProcess(tmp_path_factory.mktemp("server"), extra_env=extra).start()
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()


@pytest.mark.parametrize("transport", ["websockets", "tcp"])
def test_a_typed_handler_refuses_a_bad_payload_and_answers_a_good_one(
    server: ServerProcess, transport: str
) -> None:
    port = server.port if transport == "websockets" else server.tcp_port
    client = ChatClient(port, transport=transport)
    try:
        bad = client.request("Scores/HD_Hello", {"name": 5})
        assert bad["Error"] == "msg.name: a string is required, got a number"
        assert not bad["Result"]
        assert client.request("Scores/HD_Hello", b"not json")["Error"] == (
            "msg: an object is required, got bytes"
        )
        good = client.request("Scores/HD_Hello", {"name": "ann", "unknown": "ignored"})
        assert good["Error"] == ""
        assert good["Result"] == "hello ann"
    finally:
        client.close()
