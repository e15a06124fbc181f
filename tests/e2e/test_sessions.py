"""The Session a module receives, acting on the live connection; stored sessions that come
back after a restart; expiry, heartbeat and logout; the single-session policy; connection
events. Real daphne processes and paho clients, with the SessionProbe test module loaded."""

import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.mqtt import Connect, encode
from tests.e2e.clients import ChatClient
from tests.e2e.server import ROOT, ServerProcess

pytestmark = pytest.mark.e2e

PROBE = {"MQANT_EXTRA_APPS": "tests.e2e.probe"}


def start(workdir: Path, **mqant: object) -> ServerProcess:
    return ServerProcess(workdir, extra_env=PROBE, mqant=mqant).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start(tmp_path_factory.mktemp("sessions"))
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Callable[..., ChatClient]]:
    opened: list[ChatClient] = []

    def open_client(user: str | None = None, port: int | None = None) -> ChatClient:
        c = ChatClient(port or server.port)
        opened.append(c)
        if user:
            login(c, user)
        return c

    yield open_client
    for c in opened:
        c.close()


def login(c: ChatClient, user: str) -> None:
    reply = c.request("Login/HD_Login", {"userName": user, "passWord": "pw-k3y9-" + user})
    assert reply["Result"] == f"login success {user}", reply


def result(c: ChatClient, handler: str, body: object = None) -> Any:
    reply = c.request(f"SessionProbe/{handler}", body if body is not None else {})
    assert reply["Error"] == "", reply
    return reply["Result"]


def test_session_fields(client):
    c = client("fields")
    me = result(c, "HD_Whoami")
    assert isinstance(me, dict)
    assert me["user_id"] == "fields"
    assert me["network"] == "websocket"
    assert me["ip"] == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{16}", me["session_id"])
    assert me["server_id"].startswith("Gate@")
    assert re.fullmatch(r"SessionProbe/HD_Whoami/\d+", me["topic"])
    assert re.fullmatch(r"[0-9a-f]{32}", me["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", me["span_id"])


def test_settings_operations_reach_the_live_session(client):
    c = client("settings")
    assert result(c, "HD_Set", {"key": "color", "value": "red"}) == {"color": "red"}
    assert result(c, "HD_Get", {"key": "color"}) == "red"  # the next call's copy has it
    result(c, "HD_SetBatch", {"settings": {"a": "1", "b": "2"}})
    assert result(c, "HD_Load", {"key": "b"}) == ["2", True]
    assert result(c, "HD_Load", {"key": "nope"}) == ["", False]
    result(c, "HD_SetPush", {"key": "c", "value": "3"})
    result(c, "HD_Remove", {"key": "a"})
    assert result(c, "HD_Update") == {"color": "red", "b": "2", "c": "3"}
    result(c, "HD_Push", {"settings": {"only": "this"}})
    assert result(c, "HD_Update") == {"only": "this"}
    assert result(c, "HD_Clone") is True


def test_guest_unbind_and_close(client):
    c = client()
    assert result(c, "HD_IsGuest") is True
    login(c, "guesty")
    assert result(c, "HD_IsGuest") is False
    assert result(c, "HD_Unbind") == ""
    assert result(c, "HD_IsGuest") is True
    assert c.request("Chat/HD_JoinChat", {"roomName": "r"})["Error"] == "Not Logined"
    c.client.publish("SessionProbe/HD_Close/99", b"{}", qos=1)  # no reply: the close wins
    deadline = time.monotonic() + 5
    while not c.disconnects and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.disconnects == 1


def test_send_send_batch_broadcast_and_is_connect(client):
    ann, bob = client("ann"), client("bob")
    assert result(ann, "HD_Send", {"topic": "Push/One", "body": {"n": 1}}) == "sent"
    assert ann.wait_json("Push/One") == {"n": 1}
    result(ann, "HD_SendNR", {"topic": "Push/Two", "body": "text"})
    assert ann.wait_for("Push/Two") == b"text"
    bob_id = result(bob, "HD_Whoami")["session_id"]
    batch = {"sessions": [bob_id, "0000000000000000"], "topic": "Push/Batch", "body": "b"}
    assert result(ann, "HD_SendBatch", batch) == 1
    assert bob.wait_for("Push/Batch") == b"b"
    result(ann, "HD_Broadcast", {"topic": "Push/All", "body": "all"})
    assert ann.wait_for("Push/All") == b"all"
    assert bob.wait_for("Push/All") == b"all"
    assert result(ann, "HD_IsConnect", {"user": "bob"}) is True
    bob.close()
    deadline = time.monotonic() + 5
    while result(ann, "HD_IsConnect", {"user": "bob"}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert result(ann, "HD_IsConnect", {"user": "bob"}) is False


def events_of(observer: ChatClient, session_id: str) -> list[str]:
    return [kind for kind, sid in result(observer, "HD_Events") if sid == session_id]


def wait_events(observer: ChatClient, session_id: str, expected: list[str]) -> None:
    deadline = time.monotonic() + 5
    while events_of(observer, session_id) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert events_of(observer, session_id) == expected


def test_connection_events_clean_close(client):
    observer, watched = client(), client()
    sid = result(watched, "HD_Whoami")["session_id"]
    wait_events(observer, sid, ["opened"])
    watched.close()
    wait_events(observer, sid, ["opened", "closed"])


def test_connection_events_dropped_socket(server, client):
    observer = client()
    sock = socket.create_connection(("127.0.0.1", server.tcp_port))
    sock.sendall(encode(Connect("MQTT", 4, "dropped", True, 60)))
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    before = {sid for _, sid in result(observer, "HD_Events")}
    sock.close()  # no DISCONNECT
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = result(observer, "HD_Events")
        closed = [sid for kind, sid in events if kind == "closed"]
        if closed and set(closed) & before:
            break
        time.sleep(0.1)
    opened = {sid for kind, sid in result(observer, "HD_Events") if kind == "opened"}
    dropped = [sid for sid in before if sid in opened]
    assert any(events_of(observer, sid) == ["opened", "closed"] for sid in dropped)


def test_logout_forgets_the_stored_session(client):
    c = client("leaver")
    result(c, "HD_Set", {"key": "k", "value": "v"})
    assert c.request("Login/HD_Logout", {})["Result"] == "logout success leaver"
    assert result(c, "HD_IsGuest") is True
    c.close()
    again = client("leaver")
    assert result(again, "HD_Get", {"key": "k"}) is None


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> dict[str, str]:
    """Extra environment for a server on SQLite (the default) or on a fresh PostgreSQL."""
    if request.param == "sqlite":
        return {}
    return {"DATABASE_URL": request.getfixturevalue("postgres_url")}


def test_settings_come_back_after_a_full_restart(tmp_path, database):
    def start(workdir: Path) -> ServerProcess:
        return ServerProcess(workdir, extra_env={**PROBE, **database}).start()

    first = start(tmp_path)
    try:
        c = ChatClient(first.port)
        login(c, "phoenix")
        result(c, "HD_Set", {"key": "level", "value": "7"})
        c.close()
    finally:
        first.stop()
    second = start(tmp_path)  # the same database, a new process
    try:
        c = ChatClient(second.port)
        assert result(c, "HD_Get", {"key": "level"}) is None  # a guest has nothing
        login(c, "phoenix")
        assert result(c, "HD_Get", {"key": "level"}) == "7"
        assert result(c, "HD_Update") == {"level": "7"}
        c.close()
    finally:
        second.stop()


@pytest.mark.parametrize("policy", ["keep", "kick", "refuse"])
def test_single_session_policy(tmp_path, policy):
    proc = start(tmp_path, SINGLE_SESSION=policy)
    first, second = ChatClient(proc.port), ChatClient(proc.tcp_port, transport="tcp")
    try:
        login(first, "twin")
        reply = second.request("Login/HD_Login", {"userName": "twin", "passWord": "pw-k3y9-twin"})
        if policy == "refuse":
            assert reply["Error"] == "The user is already connected"
            assert result(second, "HD_IsGuest") is True
            assert result(first, "HD_IsGuest") is False
            return
        assert reply["Result"] == "login success twin"
        deadline = time.monotonic() + 5
        while not first.disconnects and time.monotonic() < deadline and policy == "kick":
            time.sleep(0.05)
        assert first.disconnects == (1 if policy == "kick" else 0)
        assert result(second, "HD_IsGuest") is False
    finally:
        first.close()
        second.close()
        proc.stop()


def test_expiry_heartbeat_and_sweep(tmp_path):
    storage = {"BACKEND": "sessions_store.storage.DatabaseStorage", "CONFIG": {"ttl": 2}}
    proc = start(tmp_path, STORAGE_HANDLER=storage, STORAGE_HEARTBEAT=0.5)
    try:
        c = ChatClient(proc.port)
        login(c, "ephemeral")
        result(c, "HD_Set", {"key": "k", "value": "v"})
        for _ in range(6):  # 3 s of activity: the heartbeat keeps the 2 s lifetime going
            time.sleep(0.5)
            result(c, "HD_Whoami")
        c.close()
        again = ChatClient(proc.port)
        login(again, "ephemeral")
        assert result(again, "HD_Get", {"key": "k"}) == "v"
        again.close()
        time.sleep(2.5)  # silent past the lifetime: expired
        late = ChatClient(proc.port)
        login(late, "ephemeral")
        assert result(late, "HD_Get", {"key": "k"}) is None
        late.close()
    finally:
        proc.stop()
    swept = subprocess.run(
        [sys.executable, "manage.py", "sweepsessions"],
        cwd=ROOT, env=proc.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert re.fullmatch(r"deleted \d+ expired stored session\(s\)\n", swept.stdout)


def test_a_stopping_server_leaves_no_live_connection_behind(tmp_path):
    proc = start(tmp_path)
    clients = [ChatClient(proc.port), ChatClient(proc.tcp_port, transport="tcp")]
    try:
        login(clients[0], "stayer")
        database = sqlite3.connect(tmp_path / "db.sqlite3")
        count = "select count(*) from sessions_store_liveconnection"
        deadline = time.monotonic() + 5
        while database.execute(count).fetchone()[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert database.execute(count).fetchone()[0] == 2
    finally:
        proc.stop()  # SIGTERM, while the clients are still connected
        for c in clients:
            c.close()
    assert database.execute(count).fetchone()[0] == 0
    assert "Traceback" not in proc.output(), proc.output()
