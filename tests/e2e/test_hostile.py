"""Hostile and broken clients: each is closed (or answered) with a clear log line, the server
lives on, its memory stays bounded, and a well-behaved client keeps getting answers."""

import contextlib
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate.mqtt import Connect, encode, encode_publish
from tests.e2e.clients import ChatClient
from tests.e2e.raw import RawClient
from tests.e2e.server import ServerProcess
from tests.gate.mqtt.strategies import packets as any_packet

pytestmark = pytest.mark.e2e

RawFactory = Callable[..., RawClient]

LIMITS = {
    "CONNECT_TIMEOUT": 1,
    "MESSAGE_RATE": 200,
    "MESSAGE_BURST": 100,
    "MAX_OUTGOING_BYTES": 256 * 1024,
    "MAX_CONNECTIONS": 200,
    # Big chat messages fill a slow reader's buffers quickly.
    "MODULE_SETTINGS": {"Chat": {"MaxMessageLength": 60000, "UserBytesPerDay": 0}},
    "READ_RATE": 0,  # the slow-reader tests push megabytes through a TCP speaker
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("hostile"), mqant=LIMITS).start()
    yield proc
    peak_kib = peak_rss_kib(proc.pid())
    proc.stop()
    log = proc.output()
    assert "Traceback" not in log, log
    assert not re.search(r"\b(ERROR|CRITICAL)\b", log), log
    print(f"\nserver peak RSS during the hostile suite: {peak_kib / 1024:.1f} MiB")
    assert peak_kib < 400 * 1024, f"peak RSS {peak_kib} KiB"


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def bystander(server: ServerProcess) -> Iterator[ChatClient]:
    """A well-behaved client, logged in for the whole module."""
    client = ChatClient(server.tcp_port, transport="tcp")
    assert (
        client.request("Login/HD_Login", {"userName": "bystander", "passWord": "pw-by-k3y9"})[
            "Result"
        ]
        == "login success bystander"
    )
    yield client
    client.close()


@pytest.fixture(autouse=True)
def bystander_still_served(bystander: ChatClient, server: ServerProcess) -> Iterator[None]:
    yield
    reply = bystander.request("HelloWorld/HD_Say", {"say": "still here"}, timeout=5)
    assert reply["Result"] == "you say : still here"
    assert server.alive()


# How a raw client reaches the gate: over TCP, over daphne's WebSocket, over the gate's own
# WebSocket listener (WS_ADDR).
TRANSPORTS = ["tcp", "websocket", "ws-listener"]


def raw_client(server: ServerProcess, transport: str, **options: Any) -> RawClient:
    port = {"tcp": server.tcp_port, "websocket": server.port, "ws-listener": server.ws_port}
    wire = "tcp" if transport == "tcp" else "websocket"
    return RawClient(port[transport], transport=wire, **options)


@pytest.fixture(params=TRANSPORTS)
def open_raw(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[RawFactory]:
    """Opens raw clients over one transport; each test runs over each."""
    transport = request.param
    opened: list[RawClient] = []

    def open_client(*, connect: bool = True, rcvbuf: int | None = None) -> RawClient:
        client = raw_client(server, transport, connect=connect, rcvbuf=rcvbuf)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


_log_start: dict[int, int] = {}


@pytest.fixture(autouse=True)
def mark_log(server: ServerProcess) -> None:
    """What a test finds in the log is what was logged during that test."""
    _log_start[id(server)] = len(server.output())


def logged(server: ServerProcess, text: str) -> bool:
    return text in server.output()[_log_start.get(id(server), 0) :]


def test_garbage(server, open_raw):
    raw = open_raw(connect=False)
    raw.send(b"\xff" * 64)
    assert raw.closed_within(2)
    assert logged(server, "protocol error: Expected an MQTT packet type 1-14, got 15")


def test_publish_before_connect(server, open_raw):
    raw = open_raw(connect=False)
    raw.send(encode_publish("HelloWorld/HD_Say/1", b"{}"))
    assert raw.closed_within(2)
    assert logged(server, "Expected CONNECT as the first packet, got PUBLISH")


def test_truncated_connect_is_closed_at_the_connect_deadline(server, open_raw):
    raw = open_raw(connect=False)
    raw.send(encode(Connect("MQTT", 4, "half", True, 60))[:7])
    assert not raw.closed_within(0.5)
    assert raw.closed_within(2)
    assert logged(server, "no CONNECT within the deadline")


def test_truncated_packet_is_closed_by_keepalive(server, open_raw):
    raw = open_raw(connect=False)
    raw.send(encode(Connect("MQTT", 4, "ka", True, 1)))
    raw.next_packet()
    raw.send(encode_publish("HelloWorld/HD_Say/1", b'{"say": "x"}')[:10])
    assert raw.closed_within(3)
    assert logged(server, "silent for")


def test_remaining_length_of_256_mb(server, open_raw):
    raw = open_raw()
    raw.send(b"\x30\xff\xff\xff\x7f")  # a PUBLISH header announcing 268,435,455 bytes
    assert raw.closed_within(2)
    assert logged(server, "exceeds the limit of 65535")


def test_packet_over_the_size_limit(server, open_raw):
    raw = open_raw()
    raw.send(encode_publish("HelloWorld/HD_Say/1", b"x" * 70000))
    assert raw.closed_within(2)


def test_ten_thousand_topic_segments(server, open_raw):
    raw = open_raw()
    topic = "HelloWorld/HD_Say/" + "/".join(["s"] * 10000)
    raw.send(encode_publish(topic, b'{"say": "deep"}'))  # no msgid: routed, not answered
    assert raw.request("HelloWorld/HD_Say/1", {"say": "after"})["Result"] == "you say : after"
    raw.close()


def test_invalid_utf8_topic(server, open_raw):
    raw = open_raw()
    raw.send(b"\x30\x06\x00\x02\xc3\x28hi")  # topic "\xc3\x28": not UTF-8
    assert raw.closed_within(2)
    assert logged(server, "UTF-8")


def test_json_bomb(server, open_raw):
    raw = open_raw()
    bomb = b'{"a":' + b"[" * 32000 + b"]" * 32000 + b"}"
    reply = raw.request("HelloWorld/HD_Say/1", bomb)
    assert reply["Error"] == "The JSON format is incorrect"
    raw.close()


def test_flood_is_refused_then_closed(server, open_raw):
    raw = open_raw()
    burst = b"".join(encode_publish(f"HelloWorld/HD_Say/{n}", b'{"say": 1}') for n in range(2000))
    with contextlib.suppress(ConnectionError):  # closed while we were still sending
        raw.send(burst)
    assert raw.closed_within(5)
    assert logged(server, "it kept sending past its message rate")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_client_that_stops_reading_is_closed(server, transport):
    speaker = ChatClient(server.tcp_port, transport="tcp")
    sleeper = raw_client(server, transport, rcvbuf=4096)
    network = "tcp" if transport == "tcp" else "websocket"
    try:
        assert (
            speaker.request("Login/HD_Login", {"userName": "speaker", "passWord": "pw-sp-k3y9"})[
                "Error"
            ]
            == ""
        )
        assert (
            sleeper.request("Login/HD_Login/1", {"userName": "sleeper", "passWord": "pw-sl-k3y9"})[
                "Error"
            ]
            == ""
        )
        assert sleeper.request("Chat/HD_JoinChat/2", {"roomName": "slow"})["Error"] == ""
        assert speaker.request("Chat/HD_JoinChat", {"roomName": "slow"})["Error"] == ""
        big = "x" * 60000
        for _ in range(100):  # 6 MB towards a client that reads nothing
            said = speaker.request("Chat/HD_Say", {"roomName": "slow", "content": big}, timeout=5)
            assert said["Error"] in ("", "You haven't been in the room yet", "No room")
            if slow_reader_closed(server, network):
                break
        assert slow_reader_closed(server, network)
        assert sleeper.closed_within(10)
        # The sleeper left the room when it was closed; the speaker is still served.
        assert speaker.request("HelloWorld/HD_Say", {"say": "ok"})["Result"] == "you say : ok"
    finally:
        speaker.close()
        sleeper.close()


def slow_reader_closed(server: ServerProcess, network: str) -> bool:
    line = rf"{network} 127\.0\.0\.1>: closing, \d+ bytes wait for it to read"
    return re.search(line, server.output()[_log_start.get(id(server), 0) :]) is not None


def test_sockets_that_vanish_mid_packet(server):
    for cut in (1, 5, 20):
        sock = socket.create_connection(("127.0.0.1", server.tcp_port))
        sock.sendall(encode(Connect("MQTT", 4, "gone", True, 60))[:cut])
        sock.close()
    raw = RawClient(server.tcp_port)
    raw.send(encode_publish("HelloWorld/HD_Say/1", b'{"say": "x"}')[:12])
    raw.close()


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    """Valid packets after a valid CONNECT, then bytes flipped, cut or inserted."""
    packets = draw(st.lists(any_packet, min_size=1, max_size=5))
    stream = bytearray(b"".join(encode(p) for p in packets))
    for _ in range(draw(st.integers(0, 4))):
        if not stream:
            break
        at = draw(st.integers(0, len(stream) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            stream[at] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del stream[at:]
        else:
            stream[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(stream)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(connect=st.booleans(), stream=mutated_streams() | st.binary(max_size=200))
def test_random_and_mutated_packets(server, connect, stream):
    raw = RawClient(server.tcp_port, connect=connect)
    try:
        raw.send(stream)
        raw.closed_within(0.2)  # closed, answered or waiting: any is fine, a crash is not
    except ConnectionError:
        pass
    finally:
        raw.close()
