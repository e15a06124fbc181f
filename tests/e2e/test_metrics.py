"""/metrics of real processes after a scripted chat: a gate (daphne) with its token, and a
``runmodules`` process over Redis on its health port. The figures are the ones the chat must
produce, exactly, and a client's garbage never becomes a label."""

import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.clients import ChatClient
from tests.e2e.server import ServerProcess, free_port, wait_for_port
from tests.runmodules import ModulesProcess

pytestmark = pytest.mark.e2e

TOKEN = "metrics-token-for-the-test-5b1e9c"  # the test's own
PASSWORD = "sturdy-pass-5521"


def scrape(port: int, token: str | None = TOKEN) -> tuple[int, str]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape: (name, its labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return float(sum(v for (n, ls), v in found.items() if n == name and wanted <= ls))


def label_values(found: Samples, name: str, label: str) -> set[str]:
    return {dict(ls).get(label, "") for (n, ls), _ in found.items() if n == name}


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("metrics")
    proc = ServerProcess(
        workdir,
        extra_env={"MQANT_METRICS_TOKEN": TOKEN},
        mqant={"MESSAGE_RATE": 1, "MESSAGE_BURST": 20},  # the refused call below
    ).start()
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()


def login(client: ChatClient, name: str) -> None:
    reply = client.request("Login/HD_Login", {"userName": name, "passWord": PASSWORD})
    assert reply["Error"] == "", reply


def test_a_scripted_chat_shows_in_the_gates_metrics(gate):
    assert scrape(gate.port, None)[0] == 401
    assert scrape(gate.port, "not-the-token")[0] == 401
    _, before = scrape(gate.port)
    first = samples(before)
    alice = ChatClient(gate.port, transport="websockets")
    bob = ChatClient(gate.tcp_port, transport="tcp")
    try:
        login(alice, "alice")
        login(bob, "bob")
        assert alice.request("Chat/HD_JoinChat", {"roomName": "metrics"})["Error"] == ""
        assert bob.request("Chat/HD_JoinChat", {"roomName": "metrics"})["Error"] == ""
        said = bob.request("Chat/HD_Say", {"roomName": "metrics", "content": "hi", "target": "*"})
        assert said["Error"] == ""
        alice.wait_json("Chat/OnChat")
        bob.wait_json("Chat/OnChat")
        bogus = alice.request("Chat/HD_NoSuchHandler_7f3a", {})
        assert bogus["Error"] == "Remote function(HD_NoSuchHandler_7f3a) not found"
        bob.request("Nope9c2/HD_Say", {})  # no such module type
        # Past its burst of 20 calls (at 1 a second), a call is refused.
        replies = [alice.request("HelloWorld/HD_Say", {"say": "x"}) for _ in range(25)]
        assert replies[-1]["Error"] == "the message rate is exceeded"
        refused = sum(r["Error"] == "the message rate is exceeded" for r in replies)
        with socket.create_connection(("127.0.0.1", gate.tcp_port), timeout=5) as raw:
            raw.sendall(b"\xc0\x00")  # a PINGREQ before any CONNECT: refused
            assert raw.recv(16) == b""  # closed by the server
        _, after = scrape(gate.port)
    finally:
        alice.close()
        bob.close()
    found = samples(after)

    def delta(name: str, **labels: str) -> float:
        return value(found, name, **labels) - value(first, name, **labels)

    assert delta("mqant_connections_opened_total", transport="websocket") == 1
    assert delta("mqant_connections_opened_total", transport="tcp") == 2
    assert delta("mqant_connections_refused_total", transport="tcp", reason="protocol") == 1
    assert value(found, "mqant_connections", transport="tcp") >= 1  # bob is still connected
    ok = {"outcome": "ok"}
    assert delta("mqant_calls_total", module="Login", handler="HD_Login", **ok) == 2
    assert delta("mqant_calls_total", module="Chat", handler="HD_JoinChat", **ok) == 2
    assert delta("mqant_calls_total", module="Chat", handler="HD_Say", **ok) == 1
    assert delta("mqant_call_seconds_count", module="Chat", handler="HD_Say") == 1
    assert delta("mqant_calls_total", module="HelloWorld", handler="HD_Say", **ok) == 25 - refused
    assert refused >= 1
    assert delta("mqant_calls_total", outcome="rate_limited") == refused
    assert delta("mqant_rate_limited_total", limit="message_rate") == refused
    # The bogus handler and module type: counted, never a label of their own.
    assert delta("mqant_calls_total", module="(unknown)", outcome="not_found") == 2
    assert "HD_NoSuchHandler_7f3a" not in after
    assert "Nope9c2" not in after
    # bob's join told alice (1), his HD_Say reached both (2).
    assert delta("mqant_fanout_deliveries_total") == 3
    # Received: alice's CONNECT and 28 calls; bob's CONNECT and 4 calls, and the raw PINGREQ.
    assert delta("mqant_packets_received_total", transport="websocket") == 29
    assert delta("mqant_packets_received_total", transport="tcp") == 6
    # Sent: a CONNACK, a PUBACK and an answer per call (QoS 1), and the pushes: alice heard
    # bob's join and his words, bob his words.
    assert delta("mqant_packets_sent_total", transport="websocket") == 1 + 2 * 28 + 2
    assert delta("mqant_packets_sent_total", transport="tcp") == 1 + 2 * 4 + 1
    assert delta("mqant_bytes_sent_total", transport="websocket") > 0
    # Every series says which process and which gate.
    assert label_values(found, "mqant_calls_total", "process") == {"development"}
    assert next(iter(label_values(found, "mqant_calls_total", "gate"))).startswith("Gate@")
    # Chat asked Login who is online at each join: RPC calls of this process.
    assert delta("mqant_rpc_calls_total", target="Login", outcome="ok") == 2
    # Once every client left, no connection is open.
    deadline = time.monotonic() + 10
    while value(samples(scrape(gate.port)[1]), "mqant_connections") != 0:
        assert time.monotonic() < deadline, "mqant_connections never went back to 0"
        time.sleep(0.1)


def test_without_a_token_metrics_are_the_projects_or_on_an_operators_port(tmp_path):
    metrics_port = free_port()
    server = ServerProcess(tmp_path, mqant={"METRICS_ADDR": f"127.0.0.1:{metrics_port}"}).start()
    try:
        assert server.process is not None
        wait_for_port(metrics_port, server.process)
        assert scrape(server.port)[0] == 404  # Django's answer: not served on the HTTP port
        status, text = scrape(metrics_port, None)
        assert status == 200
        found = samples(text)
        (gate,) = label_values(found, "mqant_event_loop_lag_seconds", "gate")
        assert gate.startswith("Gate@")
        assert value(found, "mqant_fanout_deliveries_total") == 0
    finally:
        server.stop()


DEPLOYMENT = {
    "Module": {
        "Gate": [{"Id": "Gate001", "ProcessID": "gate1"}],
        "HelloWorld": [{"Id": "HelloWorld001", "ProcessID": "modules1"}],
    }
}


def test_a_module_process_counts_the_calls_it_serves(tmp_path, redis_space):
    conf = tmp_path / "server.json"
    conf.write_text(json.dumps(DEPLOYMENT))
    env = {**redis_space.env("pubsub"), "MQANT_CONFIG": str(conf)}
    gate = ServerProcess(tmp_path, {**env, "MQANT_PROCESS_ID": "gate1"}).start()
    health = free_port()
    modules_env = {**os.environ, **env, "SQLITE_PATH": str(tmp_path / "modules.sqlite3")}
    modules = ModulesProcess(tmp_path, modules_env, "modules1", "--health", f"127.0.0.1:{health}")
    client = None
    try:
        modules.start()
        assert modules.process is not None
        wait_for_port(health, modules.process)
        client = ChatClient(gate.tcp_port, transport="tcp")
        for _ in range(100):  # until the gate sees the module process's node
            reply = client.request("HelloWorld/HD_Say", {"say": "hi"})
            if reply["Error"] == "":
                break
            time.sleep(0.1)
        assert reply["Result"] == "you say : hi"
        assert client.request("HelloWorld/HD_Nope", {})["Error"].startswith("Remote function")
        status, text = scrape(health, None)  # an operator's port: no token set
        assert status == 200
        found = samples(text)
        labels = {"module": "HelloWorld", "handler": "HD_Say", "outcome": "ok"}
        assert value(found, "mqant_handler_calls_total", **labels) == 1
        assert value(found, "mqant_handler_seconds_count", handler="HD_Say") == 1
        assert value(found, "mqant_handler_calls_total", handler="(unknown)") == 1
        assert "HD_Nope" not in text
        assert label_values(found, "mqant_handler_calls_total", "process") == {"modules1"}
        assert label_values(found, "mqant_handler_calls_total", "gate") == {""}
        assert value(found, "mqant_event_loop_lag_seconds") < 5
    finally:
        if client is not None:
            client.close()
        modules.stop()
        gate.stop()
