"""What a PUBACK promises: the server acknowledges a QoS 1 call once its handler has finished
(ACK_AFTER_HANDLER), so a process killed with ``kill -9`` loses no call it acknowledged. A
client sends 50 ``Chat/HD_Say`` at QoS 1 without a msgid (no reply to wait for, as mqant's
requestNR), the server is killed as soon as 10 PUBACKs have come back, and once it is started
again on the same database every message acknowledged is in the room's history."""

import signal
import threading
import time

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

SAID = 50
KILL_AFTER = 10


def test_a_call_acknowledged_survives_a_kill_9(tmp_path):
    server = ServerProcess(tmp_path).start()
    try:
        alice = ChatClient(server.tcp_port, transport="tcp")
        login = {"userName": "alice", "passWord": "pw-k3y9-alice"}
        assert alice.request("Login/HD_Login", login)["Error"] == ""
        assert alice.request("Chat/HD_JoinChat", {"roomName": "durable"})["Error"] == ""
        acked: set[int] = set()  # paho's mids of the PUBACKs received
        sent: dict[int, str] = {}  # paho's mid -> what it said
        enough = threading.Event()

        def on_publish(_client, _userdata, mid, _code, _properties) -> None:
            acked.add(mid)  # paho's network thread: no lock of ours (paho holds its own)
            if len(acked) >= KILL_AFTER:
                enough.set()

        time.sleep(0.3)  # the PUBACKs of the two requests, which follow their replies
        alice.client.on_publish = on_publish
        for i in range(SAID):
            body = f'{{"roomName": "durable", "content": "m{i}", "target": "*"}}'
            sent[alice.client.publish("Chat/HD_Say", body, qos=1).mid] = f"m{i}"
        assert enough.wait(10), f"only {len(acked)} PUBACKs"
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        promised = {sent[mid] for mid in set(acked) if mid in sent}
        alice.drop()
    finally:
        server.stop()
    assert len(promised) >= KILL_AFTER
    server.start()  # the same database, new process
    try:
        bob = ChatClient(server.tcp_port, transport="tcp")
        login = {"userName": "bob", "passWord": "pw-k3y9-bob"}
        assert bob.request("Login/HD_Login", login)["Error"] == ""
        joined = bob.request("Chat/HD_JoinChat", {"roomName": "durable"})
        kept = {entry["msg"] for entry in joined["Result"]["history"]}
        assert promised <= kept, f"acknowledged but lost: {sorted(promised - kept)}"
        bob.close()
    finally:
        server.stop()
