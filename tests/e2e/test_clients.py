"""Third-party clients against the gate: mosquitto's command-line clients over TCP, and the
habits of mqant's own clients (one client id for everyone, QoS 1, constant msgids, no
SUBSCRIBE)."""

import json
import queue
import shutil
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import require_service

pytestmark = pytest.mark.e2e


def mosquitto(tool: str, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which(tool)
    if path is None:
        require_service(tool, "apt-get install mosquitto-clients")
    return subprocess.run(
        [path or tool, "-h", "127.0.0.1", "-p", str(port), "-d", *args],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("version", ["mqttv31", "mqttv311"])
def test_mosquitto_pub(server, version):
    run = mosquitto(
        "mosquitto_pub", server.tcp_port, "-V", version, "-q", "1", "-i", "pub-" + version,
        "-t", "HelloWorld/HD_Say/1", "-m", '{"say": "from mosquitto"}',
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "received CONNACK (0)" in run.stdout
    assert "received PUBACK" in run.stdout


def test_mosquitto_sub_gets_its_suback(server):
    run = mosquitto("mosquitto_sub", server.tcp_port, "-t", "Chat/#", "-t", "a/b", "-W", "1")
    assert "received CONNACK (0)" in run.stdout, run.stdout + run.stderr
    assert "received SUBACK" in run.stdout
    assert "Subscribed (mid: 1): 0, 0" in run.stdout
    assert run.returncode == 27, run.stdout + run.stderr  # 27: the -W timeout, no error


def mqant_python_client(port: int) -> tuple[mqtt.Client, "queue.Queue[tuple[str, bytes]]"]:
    """What mqant's Python client does: MQTT 3.1 over TCP, client id "111", never subscribes."""
    inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="111", protocol=mqtt.MQTTv31)
    client.on_message = lambda _c, _u, m: inbox.put((m.topic, bytes(m.payload)))
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    return client, inbox


def test_mqant_clients_share_client_id_and_msgids(server):
    clients = [mqant_python_client(server.tcp_port) for _ in range(3)]
    try:
        for n, (client, _) in enumerate(clients):
            for _ in range(2):  # the same msgid again and again
                client.publish("HelloWorld/HD_Say/1", json.dumps({"say": f"c{n}"}), qos=1)
        for n, (_, inbox) in enumerate(clients):
            replies = [inbox.get(timeout=10) for _ in range(2)]
            for topic, payload in replies:
                assert topic == "HelloWorld/HD_Say/1"
                assert json.loads(payload)["Result"] == f"you say : c{n}"
    finally:
        for client, _ in clients:
            client.disconnect()
            client.loop_stop()


def test_an_idle_paho_websocket_client_outlives_the_servers_pings(tmp_path):
    """paho answers daphne's WebSocket pings with unmasked pongs: the connection must stay."""
    from tests.e2e.server import ServerProcess

    server = ServerProcess(tmp_path, server_args=("--ping-interval", "1")).start()
    drops: list[object] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, transport="websockets")
    client.ws_set_options(path="/mqtt")
    client.on_disconnect = lambda *args: drops.append(args)
    try:
        client.connect("127.0.0.1", server.port, keepalive=60)
        client.loop_start()
        deadline = time.monotonic() + 5  # about five pings, each answered
        while time.monotonic() < deadline and not drops:
            time.sleep(0.1)
        assert drops == []
        assert server.output().count("WSCONNECT /mqtt") == 1
    finally:
        client.loop_stop()
        client.disconnect()
        server.stop()
