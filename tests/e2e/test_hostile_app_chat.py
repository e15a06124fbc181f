"""Hostile users of the Chat module and of the rooms API, against a real daphne process with
production defaults: each attack of our issue (items 2, 3 and 9) is refused or bounded, and a
bystander who connects afterwards still logs in, joins, reads the history and talks in time,
while the server's memory stays bounded."""

import datetime
import http.client
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password

from tests.e2e.attack import Bystander, attacker_address, hostile_server, unharmed
from tests.e2e.clients import ChatClient
from tests.e2e.server import ROOT, ServerProcess

pytestmark = pytest.mark.e2e

PASSWORD = "attacker-pass-5521"
HISTORY_BYTES = 64 * 1024  # Chat's HistoryBytes default
USER_BYTES_PER_DAY = 2 * 1024 * 1024  # Chat's UserBytesPerDay default


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Thousands of refusals, and not a log line each.
    yield from hostile_server(tmp_path_factory.mktemp("hostile-chat"), max_log_lines=400)


def database(server: ServerProcess) -> sqlite3.Connection:
    """The server's own SQLite database (write-ahead log: readers and writers coexist)."""
    return sqlite3.connect(server.env["SQLITE_PATH"], timeout=30)


def sql_time(ago: datetime.timedelta = datetime.timedelta(0)) -> str:
    """A time as Django stores it in SQLite (UTC)."""
    moment = datetime.datetime.now(datetime.UTC) - ago
    return moment.replace(tzinfo=None).isoformat(" ")


def store_rooms(db: sqlite3.Connection, names: list[str]) -> int:
    """Rooms as the server's schema has them (with ``active_at`` when it has one, now); the
    id of the last one."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(chat_room)")}
    times = ["created_at", *(["active_at"] if "active_at" in columns else [])]
    now = sql_time()
    db.executemany(
        f"INSERT INTO chat_room (name, {', '.join(times)}) VALUES (?{', ?' * len(times)})",
        [(name, *[now] * len(times)) for name in names],
    )
    last = db.execute("SELECT id FROM chat_room WHERE name = ?", (names[-1],)).fetchone()
    return int(last[0])


def store_room(db: sqlite3.Connection, name: str) -> int:
    return store_rooms(db, [name])


def store_messages(
    db: sqlite3.Connection, room_id: int, sender: str, content: str, count: int, age: float = 0
) -> None:
    when = sql_time(datetime.timedelta(seconds=age))
    db.executemany(
        "INSERT INTO chat_message (room_id, sender, content, created_at) VALUES (?, ?, ?, ?)",
        [(room_id, sender, content, when)] * count,
    )


def logged_in(server: ServerProcess, name: str, transport: str = "websockets") -> ChatClient:
    port = server.port if transport == "websockets" else server.tcp_port
    client = ChatClient(port, transport=transport, source=attacker_address())
    reply = client.request("Login/HD_Login", {"userName": name, "passWord": PASSWORD})
    assert reply["Result"] == f"login success {name}", reply
    return client


def bystander_fine(server: ServerProcess, room: str = "lobby") -> list[dict[str, object]]:
    """A fresh WebSocket client logs in, joins ``room`` and talks in time; the server is
    alive and its memory bounded. Returns the history the join gave."""
    return unharmed(server, Bystander(server, room=room)).history


def test_a_long_stored_name_cannot_make_a_room_unjoinable(server):
    """Item 2: a 60,000-character name said ~60 messages in a room; the join reply was ~3 MB,
    past daphne's 1 MiB frame, and every WebSocket client that joined was closed."""
    # The longest name allowed says 60 messages whose JSON is as large as it gets: a control
    # character is 6 bytes of JSON ("\u0001").
    speaker = logged_in(server, "s" * 150)
    try:
        assert speaker.request("Chat/HD_JoinChat", {"roomName": "long-names"})["Error"] == ""
        body = {"roomName": "long-names", "content": "\x01" * 4000, "target": "*"}
        for _ in range(60):
            assert speaker.request("Chat/HD_Say", body)["Error"] == ""
    finally:
        speaker.close()

    # Then a user whose name was stored before names were bounded says 60 short messages
    # there: only the contents were bounded, so the join's reply grew to 3.6 MB.
    long_name = "m" * 60_000
    with database(server) as db:
        db.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, "
            "email, is_staff, is_active, date_joined) VALUES (?, 0, ?, '', '', '', 0, 1, ?)",
            (make_password(PASSWORD), long_name, sql_time()),
        )
        room_id = db.execute("SELECT id FROM chat_room WHERE name = 'long-names'").fetchone()[0]
        store_messages(db, room_id, long_name, "hi", 60)
    db.close()
    # That user may log in today (or not: logins bound names now), but joins no room.
    attacker = ChatClient(server.tcp_port, transport="tcp", source=attacker_address())
    try:
        login = {"userName": long_name, "passWord": PASSWORD}
        if attacker.request("Login/HD_Login", login)["Error"] == "":
            joined = attacker.request("Chat/HD_JoinChat", {"roomName": "long-names"})
            assert joined["Error"] == "Your user name is longer than 150 characters", joined
    finally:
        attacker.close()

    # A WebSocket client joins: it is not closed, and the reply is small.
    reader = logged_in(server, "reader-2")
    try:
        reader.client.publish("Chat/HD_JoinChat/77", json.dumps({"roomName": "long-names"}), qos=1)
        raw = reader.wait_for("Chat/HD_JoinChat/77", timeout=10)
        result = json.loads(raw)["Result"]
        history = json.dumps(result["history"], ensure_ascii=False, separators=(",", ":"))
        assert len(history.encode()) <= HISTORY_BYTES
        assert len(raw) < 140 * 1024, len(raw)
        assert [h["from"] for h in result["history"]] == [long_name]  # the newest fits, alone
        assert reader.request("HelloWorld/HD_Say", {"say": "still open"})["Error"] == ""
        assert reader.disconnects == 0
    finally:
        reader.close()
    assert bystander_fine(server, room="long-names")


def test_room_names_and_new_rooms_are_bounded(server):
    """Item 3: rooms of any name (64 KB names were stored), as many as one cared to create."""
    with database(server) as db:
        store_room(db, "existing-room")
    db.close()
    maker = logged_in(server, "room-maker", transport="tcp")
    try:
        huge = maker.request("Chat/HD_JoinChat", {"roomName": "r" * 64_000})
        assert huge["Error"] == "The room name is longer than 100 characters", huge["Error"][:200]
        control = maker.request("Chat/HD_JoinChat", {"roomName": "bell\x07"})
        assert control["Error"] == "The room name contains a control character"
        errors = [
            maker.request("Chat/HD_JoinChat", {"roomName": f"made-{n}"})["Error"] for n in range(25)
        ]
        assert errors[:20] == [""] * 20
        assert set(errors[20:]) == {
            "Too many new rooms: at most 20 in 3600 s; join an existing room or try again later"
        }
        # An existing room is still joined.
        assert maker.request("Chat/HD_JoinChat", {"roomName": "existing-room"})["Error"] == ""
    finally:
        maker.close()
    db = database(server)
    made = db.execute("SELECT COUNT(*) FROM chat_room WHERE name LIKE 'made-%'").fetchone()[0]
    longest = db.execute("SELECT MAX(LENGTH(name)) FROM chat_room").fetchone()[0]
    db.close()
    assert made == 20
    assert longest <= 100
    bystander_fine(server)


def http_request(
    server: ServerProcess, source: str, method: str, path: str, body: Any = None, token: str = ""
) -> tuple[int, Any]:
    """One HTTP request from loopback address ``source``; the status and the decoded JSON."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=15, source_address=(source, 0)
    )
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    try:
        connection.request(method, path, json.dumps(body) if body else None, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_the_rooms_list_is_one_page(server):
    """Item 3: GET /api/rooms/ listed every room and asked every Chat node for the members of
    each: six of them at once took the server from 260 MB to 2.66 GB."""
    with database(server) as db:
        store_rooms(db, [f"filler-{n:05}-" + "f" * 80 for n in range(5000)])
    db.close()
    source = attacker_address()
    status, registered = http_request(
        server, source, "POST", "/api/auth/register/",
        {"username": "lister", "password": PASSWORD},
    )  # fmt: skip
    assert status == 201, registered
    token = registered["token"]

    def list_rooms(_: int) -> tuple[int, Any]:
        return http_request(server, source, "GET", "/api/rooms/", token=token)

    with ThreadPoolExecutor(6) as pool:
        pages = list(pool.map(list_rooms, range(6)))
    for status, page in pages:
        assert status == 200
        assert len(page["results"]) == 50
        assert page["count"] >= 5000
        assert page["next"] is not None
        assert set(page["results"][0]) == {"name", "message_count", "members_online"}
    status, second = http_request(server, source, "GET", "/api/rooms/?page=2", token=token)
    assert (status, len(second["results"])) == (200, 50)
    bystander_fine(server)


def test_one_user_cannot_fill_the_database(server):
    """Item 9: one user on 4 connections, each within the per-connection message rate, wrote
    61 MB of history in 10 s."""
    source = attacker_address()
    clients = []
    for _ in range(4):
        client = ChatClient(server.port, source=source)
        clients.append(client)
        login = {"userName": "flooder", "passWord": PASSWORD}
        assert client.request("Login/HD_Login", login)["Error"] == ""
        assert client.request("Chat/HD_JoinChat", {"roomName": "flood"})["Error"] == ""
    body = {"roomName": "flood", "content": "😀" * 4000, "target": "*"}  # 16,000 bytes
    errors: list[str] = []
    lock = threading.Lock()

    def flood(client: ChatClient, n: int) -> None:
        """Says in batches of 8 in flight (under the 20 calls a connection may have), at most
        80 a second (under its message rate), until 40 were refused or for 10 s."""
        deadline = time.monotonic() + 10
        for batch in range(100):
            with lock:
                enough = sum(map(bool, errors)) >= 40
            if enough or time.monotonic() > deadline:
                break
            started = time.monotonic()
            topics = [f"Chat/HD_Say/{n}-{batch}-{k}" for k in range(8)]
            for topic in topics:
                client.client.publish(topic, json.dumps(body), qos=1)
            replies = [json.loads(client.wait_for(topic, timeout=15)) for topic in topics]
            with lock:
                errors.extend(reply["Error"] for reply in replies)
            time.sleep(max(0.0, 8 / 80 - (time.monotonic() - started)))

    try:
        threads = [threading.Thread(target=flood, args=(c, n)) for n, c in enumerate(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        for client in clients:
            client.close()
    refusals = [e for e in errors if e]
    assert len(refusals) >= 40, f"{len(refusals)} of {len(errors)} refused"
    assert set(refusals) <= {
        f"Too much said today: at most {USER_BYTES_PER_DAY} bytes a day; try again later",
        "Too many messages: at most 600 in 60 s; try again later",
    }, set(refusals)
    db = database(server)
    count, size = db.execute(
        "SELECT COUNT(*), SUM(LENGTH(CAST(content AS BLOB))) FROM chat_message "
        "WHERE sender = 'flooder'"
    ).fetchone()
    db.close()
    assert count == len(errors) - len(refusals)
    assert size <= USER_BYTES_PER_DAY
    history = bystander_fine(server, room="flood")
    assert len(json.dumps(history, ensure_ascii=False).encode()) <= HISTORY_BYTES


def test_sweepchat_deletes_expired_history(server):
    """Item 9: nothing ever expired. Messages older than 30 days go; the sweep runs against
    the live server's database."""
    with database(server) as db:
        old_room = store_room(db, "sweep-old")
        kept_room = store_room(db, "sweep-kept")
        store_messages(db, old_room, "u", "old", 1200, age=31 * 24 * 3600)
        store_messages(db, kept_room, "u", "old", 700, age=31 * 24 * 3600)
        store_messages(db, kept_room, "u", "recent", 3, age=3600)
    db.close()
    done = subprocess.run(
        [sys.executable, "manage.py", "sweepchat"],
        cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    deleted = re.match(r"deleted (\d+) expired message\(s\)", done.stdout)
    assert deleted, done.stdout
    assert int(deleted.group(1)) >= 1900, done.stdout
    db = database(server)
    left = db.execute(
        "SELECT r.name, COUNT(m.id) FROM chat_room r LEFT JOIN chat_message m ON m.room_id = r.id "
        "WHERE r.name LIKE 'sweep-%' GROUP BY r.name"
    ).fetchall()
    db.close()
    assert dict(left) == {"sweep-old": 0, "sweep-kept": 3}
    history = bystander_fine(server, room="sweep-kept")
    assert [h["msg"] for h in history][:3] == ["recent"] * 3
