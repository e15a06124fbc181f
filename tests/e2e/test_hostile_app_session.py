"""Hostile users against the session and the gate's per-connection budgets, on a real server
with production defaults: reading someone else's messages after a logout, filling the log,
and burning CPU with packets that are not calls. After each attack a bystander from another
address still logs in, joins and says within bounds, and the server's memory stays bounded."""

import http.client
import re
import time
from collections.abc import Iterator

import pytest

from gate.mqtt import Connect, PingReq, Subscribe, encode, encode_publish
from tests.e2e.attack import Bystander, attacker_address, hostile_server, unharmed
from tests.e2e.clients import ChatClient
from tests.e2e.raw import RawClient
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

PASSWORD = "sturdy-pass-5521"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default site with production defaults (DEBUG off, every limit's default)."""
    yield from hostile_server(tmp_path_factory.mktemp("hostile-session"))


@pytest.fixture(scope="module")
def bystander(server: ServerProcess) -> Bystander:
    return Bystander(server, name="sess-bystander")


@pytest.fixture(autouse=True)
def still_served(server: ServerProcess, bystander: Bystander) -> Iterator[None]:
    yield
    unharmed(server, bystander)


def log_lines(server: ServerProcess) -> list[str]:
    return server.output().splitlines()


def user(server: ServerProcess, name: str, transport: str = "tcp") -> ChatClient:
    port = server.tcp_port if transport == "tcp" else server.port
    client = ChatClient(port, transport=transport, source=attacker_address())
    login(client, name)
    return client


def login(client: ChatClient, name: str) -> None:
    reply = client.request("Login/HD_Login", {"userName": name, "passWord": PASSWORD})
    assert reply["Result"] == f"login success {name}", reply


def say(client: ChatClient, room: str, content: str, target: str = "*") -> None:
    body = {"roomName": room, "content": content, "target": target}
    assert client.request("Chat/HD_Say", body)["Error"] == ""


@pytest.mark.parametrize("how", ["logout", "login as another"])
def test_the_next_user_of_a_connection_reads_nothing_of_the_last(server, how):
    """alice is in a room; her connection logs out (or logs in as mallory straight away);
    what the room says next, and what bob sends alice alone, reaches neither that
    connection nor mallory. bob hears that alice left."""
    n = int(time.monotonic() * 1000) % 100000
    alice, bob, room = f"sess-alice{n}", f"sess-bob{n}", f"sess-room{n}"
    shared, other = user(server, alice), user(server, bob)
    try:
        for client in (shared, other):
            assert client.request("Chat/HD_JoinChat", {"roomName": room})["Error"] == ""
        if how == "logout":
            assert shared.request("Login/HD_Logout", {})["Result"] == f"logout success {alice}"
        login(shared, f"sess-mallory{n}")
        assert other.wait_json("Chat/OnLeave") == {"roomName": room, "user": alice}
        say(other, room, "for the room")
        assert (
            other.request("Chat/HD_Say", {"roomName": room, "content": "psst", "target": alice})[
                "Error"
            ]
            == "This user haven't been in the room yet"
        )
        assert shared.nothing_on("Chat/OnChat", within=1.0)
        # mallory cannot say in the room alice was in, nor was she put there.
        reply = shared.request("Chat/HD_Say", {"roomName": room, "content": "hi", "target": "*"})
        assert reply["Error"] == "You haven't been in the room yet"
    finally:
        shared.close()
        other.close()


def test_lone_surrogates_are_refused_with_one_answer_and_no_traceback(server):
    client = user(server, "sess-surrogate")
    before = len(log_lines(server))
    try:
        room = {"roomName": "sess-lobby"}
        assert client.request("Chat/HD_JoinChat", room)["Error"] == ""
        payload = b'{"roomName": "sess-lobby", "content": "\\ud800", "target": "*"}'
        for _ in range(150):  # within the message rate
            reply = client.request("Chat/HD_Say", payload)
            assert reply["Error"] == "The JSON format is incorrect"
    finally:
        client.close()
    time.sleep(0.5)
    added = log_lines(server)[before:]
    assert not [line for line in added if "Traceback" in line or "ERROR" in line], added
    assert len(added) < 20, added


def test_a_client_past_its_message_rate_is_closed_with_one_log_line(server):
    raw = RawClient(server.tcp_port, source=attacker_address())
    before = len(log_lines(server))
    try:
        burst = b"".join(
            encode_publish(f"HelloWorld/HD_Say/{n}", b'{"say": 1}') for n in range(2000)
        )
        raw.send(burst)
        assert raw.closed_within(5)
    finally:
        raw.close()
    time.sleep(0.5)
    added = "\n".join(log_lines(server)[before:])
    assert len(re.findall("kept sending past its message rate", added)) == 1, added


def test_a_subscribe_of_thousands_of_filters_is_refused(server):
    """16,000 one-letter filters: a 64 KB SUBSCRIBE, within MAX_PACKET_SIZE, that cost the
    server decoding and a SUBACK of 16,000 codes, and could be sent again and again."""
    raw = RawClient(server.tcp_port, source=attacker_address())
    try:
        packet = encode(Subscribe(1, (("a", 0),) * 16000))
        assert len(packet) < 65535
        raw.send(packet)
        assert raw.closed_within(3)
    finally:
        raw.close()


@pytest.mark.parametrize("transport", ["tcp", "websocket", "ws-listener"])
def test_a_pingreq_flood_is_closed(server, transport):
    """Over TCP, daphne's WebSocket, and the gate's own WebSocket port (ws-listener)."""
    port = {"tcp": server.tcp_port, "websocket": server.port, "ws-listener": server.ws_port}
    wire = "tcp" if transport == "tcp" else "websocket"
    source = attacker_address()
    raw = RawClient(port[transport], source=source, transport=wire)
    try:
        pings = encode(PingReq()) * 2000
        deadline = time.monotonic() + 5
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                raw.send(pings)
            except OSError:
                closed = True
                break
            closed = raw.closed_within(0.05)
        assert closed
        # For its packets, not for anything its transport refused.
        assert f"{source}>: closing, it sent control packets past their rate" in server.output()
    finally:
        raw.close()


def test_a_keepalive_of_a_day_is_capped(tmp_path):
    """MAX_KEEPALIVE: a client that asks for 65535 s (18 hours) and stays silent is closed
    after 1.5 x the cap (here 2 s), not after a day."""
    proc = ServerProcess(tmp_path, mqant={"MAX_KEEPALIVE": 2}).start()
    try:
        raw = RawClient(proc.tcp_port, connect=False, source=attacker_address())
        raw.send(encode(Connect("MQTT", 4, "sleepy", True, 65535)))
        raw.next_packet()  # CONNACK
        started = time.monotonic()
        assert raw.closed_within(10)
        assert 2.5 <= time.monotonic() - started <= 6
    finally:
        proc.stop()


def test_a_flood_of_requests_makes_a_bounded_access_log(server):
    """daphne writes an access line per request: 1,500 requests (a few seconds of one
    keep-alive connection) write at most ACCESS_LOG_BURST (500) lines and ACCESS_LOG_RATE
    (50) a second."""
    before = len(log_lines(server))
    conn = http.client.HTTPConnection(
        "127.0.0.1", server.port, source_address=(attacker_address(), 0)
    )
    started = time.monotonic()
    try:
        for n in range(1500):
            conn.request("GET", f"/no-such-page/{n}")
            assert conn.getresponse().read() is not None
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    time.sleep(0.5)
    added = log_lines(server)[before:]
    assert len(added) <= 500 + 50 * (elapsed + 1) + 5, (len(added), elapsed)
    assert len(added) < 1500
