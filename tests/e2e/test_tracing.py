"""Tracing and JSON logs in real processes: one trace spans a daphne gate, Redis and a
``runmodules`` process, with the reply's ``Trace`` as its id; a gate writing JSON logs names
the trace, session and user of the client a line is about."""

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from mqant.asgi import CANNOT_START_STATUS
from tests.e2e.clients import ChatClient
from tests.e2e.server import ServerProcess
from tests.runmodules import ModulesProcess
from tests.tracing_export import read

pytestmark = pytest.mark.e2e

DEPLOYMENT = {
    "Module": {
        "Gate": [{"Id": "Gate001", "ProcessID": "gate1"}],
        "HelloWorld": [{"Id": "HelloWorld001", "ProcessID": "modules1"}],
    }
}


def exporting_to(path: Path) -> dict[str, Any]:
    """MQANT settings that trace to ``path`` (tests/tracing_export.py)."""
    exporter = {"BACKEND": "tests.tracing_export.JsonLines", "CONFIG": {"path": str(path)}}
    return {"TRACING_EXPORTER": exporter}


def answered(client: ChatClient, topic: str, body: Any, within: float = 20) -> dict[str, Any]:
    """The first reply without an error (the gate finds the module process's node once its
    registry has seen it)."""
    deadline = time.monotonic() + within
    while True:
        reply = client.request(topic, body, timeout=10)
        if not reply["Error"] or time.monotonic() > deadline:
            assert reply["Error"] == "", reply
            return reply
        time.sleep(0.2)


def test_one_trace_spans_the_gate_redis_and_the_module_process(tmp_path, redis_space):
    conf = tmp_path / "server.json"
    conf.write_text(json.dumps(DEPLOYMENT))
    gate_spans, module_spans = tmp_path / "gate.jsonl", tmp_path / "modules.jsonl"
    env = {
        **redis_space.env("pubsub"),
        "MQANT_CONFIG": str(conf),
        # No export before the processes stop: what the files hold, their drains sent.
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
    }
    gate = ServerProcess(tmp_path, {**env, "MQANT_PROCESS_ID": "gate1"}, exporting_to(gate_spans))
    modules_env = {
        **os.environ,
        **env,
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "MQANT_SETTINGS": json.dumps(exporting_to(module_spans)),
        "PYTHONUNBUFFERED": "1",
    }
    modules = ModulesProcess(tmp_path, modules_env, "modules1")
    gate.start()
    try:
        modules.start()
        client = ChatClient(gate.tcp_port, transport="tcp")
        try:
            reply = answered(client, "HelloWorld/HD_Say", {"say": "hi"})
        finally:
            client.close()
        assert reply["Result"] == "you say : hi"
        modules.signal(signal.SIGTERM)
        assert modules.wait(15) == 0
        gate_pid, modules_pid = gate.pid(), modules.process.pid if modules.process else 0
        gate.stop()
    finally:
        modules.stop()
        gate.stop()
    assert "Traceback" not in gate.output(), gate.output()
    assert "Traceback" not in modules.output(), modules.output()

    trace = reply["Trace"]
    at_gate = {s["name"]: s for s in read(gate_spans) if s["trace_id"] == trace}
    at_modules = {s["name"]: s for s in read(module_spans) if s["trace_id"] == trace}
    assert set(at_gate) == {"mqant.call HelloWorld/HD_Say", "mqant.rpc HelloWorld/HD_Say"}
    assert set(at_modules) == {"mqant.handler HelloWorld/HD_Say"}
    call = at_gate["mqant.call HelloWorld/HD_Say"]
    hop = at_gate["mqant.rpc HelloWorld/HD_Say"]
    handler = at_modules["mqant.handler HelloWorld/HD_Say"]
    # One trace, in this order: the client's call, the hop through Redis, the handler.
    assert (call["kind"], hop["kind"], handler["kind"]) == ("SERVER", "CLIENT", "SERVER")
    assert call["parent_span_id"] is None
    assert hop["parent_span_id"] == call["span_id"]
    assert handler["parent_span_id"] == hop["span_id"]
    assert handler["parent_is_remote"]
    assert hop["attributes"]["mqant.local"] is False
    assert hop["attributes"]["mqant.node_process"] == "modules1"
    # From two processes, each named.
    assert call["resource"]["service.name"] == "mqant-gate"
    assert call["resource"]["mqant.process_id"] == "gate1"
    assert call["resource"]["process.pid"] == gate_pid
    assert handler["resource"]["service.name"] == "mqant-modules"
    assert handler["resource"]["mqant.process_id"] == "modules1"
    assert handler["resource"]["process.pid"] == modules_pid != gate_pid


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_json_logs_name_the_trace_session_and_user_of_a_clients_call(tmp_path):
    server = ServerProcess(
        tmp_path, {"MQANT_LOG_FORMAT": "json", "MQANT_EXTRA_APPS": "tests.e2e.probe"}
    ).start()
    try:
        client = ChatClient(server.tcp_port, transport="tcp")
        try:
            login = {"userName": "logan", "passWord": "pw-x1-k3y9"}
            assert client.request("Login/HD_Login", login)["Error"] == ""
            me = client.request("SessionProbe/HD_Whoami", {})["Result"]
            failed = client.request("SessionProbe/HD_Set", {})  # no "key": the handler fails
        finally:
            client.close()
        assert failed["Error"] == "internal error"
        deadline = time.monotonic() + 10
        while not any("failed" in e["message"] for e in json_lines(server.output())):
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
    finally:
        server.stop()
    lines = json_lines(server.output())
    [line] = [e for e in lines if e["logger"] == "mqant.server"]
    assert line["message"].endswith("handler set failed")
    assert line["level"] == "ERROR"
    assert (line["trace_id"], line["session_id"], line["user_id"]) == (
        failed["Trace"],
        me["session_id"],
        "logan",
    )
    assert "KeyError: 'key'" in line["exc"]
    # Every line of the process's own logging is JSON: the tracebacks too.
    assert any(e["logger"] == "mqant.app" for e in lines)
    assert not [x for x in server.output().splitlines() if x.startswith("Traceback")]


def test_a_gate_whose_exporter_is_not_installed_refuses_to_start(tmp_path):
    server = ServerProcess(tmp_path, {"OTEL_TRACES_EXPORTER": "zipkin"})
    status, output = server.run_to_exit(60)
    assert status == CANNOT_START_STATUS, output
    assert "cannot start: Cannot trace: OTEL_TRACES_EXPORTER names 'zipkin'" in output, output
    assert "Traceback" not in output, output


def test_a_module_process_whose_exporter_is_not_installed_refuses_to_start(tmp_path):
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    modules = ModulesProcess(tmp_path, {**env, "SQLITE_PATH": str(tmp_path / "db")}, "development")
    modules.start()
    try:
        assert modules.wait(60) != 0
    finally:
        modules.stop()
    assert "opentelemetry-exporter-otlp-proto-grpc" in modules.output(), modules.output()


CONNECT = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01p"  # MQTT 3.1.1, client id "p"
BROKEN = b"\x00\x00"  # packet type 0 is reserved: a protocol error once connected


def test_json_logs_name_the_session_of_a_connection_on_every_transport(tmp_path):
    """A line about a connection, not a call (its protocol error), names its session, whether
    the connection came over TCP, the gate's own WebSocket port or the ASGI server's."""
    server = ServerProcess(tmp_path, {"MQANT_LOG_FORMAT": "json"}).start()
    try:
        with socket.create_connection(("127.0.0.1", server.tcp_port), timeout=5) as raw:
            raw.sendall(CONNECT)
            assert raw.recv(4)[:1] == b"\x20"  # CONNACK
            raw.sendall(BROKEN)
            assert raw.recv(16) == b""  # closed
        for port in (server.ws_port, server.port):
            with ws_connect(
                f"ws://127.0.0.1:{port}/mqtt", subprotocols=[Subprotocol("mqtt")]
            ) as ws:
                ws.send(CONNECT)
                connack = ws.recv(timeout=5)
                assert isinstance(connack, bytes)
                assert connack[:1] == b"\x20"
                ws.send(BROKEN)
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=5)
        deadline = time.monotonic() + 10
        while len(broken := protocol_errors(server.output())) < 3:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
    finally:
        server.stop()
    networks = sorted(line["message"].split()[2] for line in broken)
    assert networks == ["tcp", "websocket", "websocket"], broken
    for line in broken:  # the connection's own session: the one its repr names
        assert line["session_id"], line
        assert line["message"].split()[1] == line["session_id"], line


def protocol_errors(output: str) -> list[dict[str, Any]]:
    return [e for e in json_lines(output) if "closing, protocol error" in e["message"]]
