"""Socket-level attacks from one address against a real daphne process: the address is held to
its limits (MQTT connections, connect rate, sockets, request time, pings, read rate) and a
bystander from another address is served within bounds all along.

Each test attacks from addresses of its own (tests.e2e.attack: 127.0.0.N is another client for
the server), checks what the attacker got, then that a bystander is served, that the server's
memory stays bounded and that it lives.
"""

import base64
import contextlib
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from gate.mqtt import ConnAck, Connect, Decoder, Publish, encode, encode_publish
from tests.e2e.attack import attacker_address, unharmed
from tests.e2e.raw import RawClient, RawWebSocket
from tests.e2e.server import ROOT, ServerProcess, free_port, wait_for_port
from tests.e2e.test_tls_and_limits import self_signed

pytestmark = pytest.mark.e2e

# The production defaults the server runs with (gate/conf.py).
PER_ADDRESS = 100  # MAX_CONNECTIONS_PER_ADDRESS
CONNECT_RATE, CONNECT_BURST = 20, 100  # CONNECT_RATE_PER_ADDRESS, CONNECT_BURST_PER_ADDRESS
MAX_SOCKETS = 128  # MAX_SOCKETS_PER_ADDRESS
READ_RATE, READ_BURST = 256 * 1024, 1024 * 1024
# Short, so that the half-open handshakes' test takes seconds.
REQUEST_TIMEOUT = 2.0

TRY_AGAIN_LATER = 1013


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """daphne with the production limits, but HTTP_REQUEST_TIMEOUT of 2 s."""
    workdir = tmp_path_factory.mktemp("app-sockets")
    proc = ServerProcess(workdir, mqant={"HTTP_REQUEST_TIMEOUT": REQUEST_TIMEOUT}).start()
    yield proc
    proc.stop()
    log = proc.output()
    assert_clean_log(log)
    # Thousands of refusals in this module, a few kinds: a line each, and summaries.
    refusal_lines = log.count(" gate.limits: ")
    assert 0 < refusal_lines <= 20, log


@pytest.fixture(scope="module")
def full_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """daphne that holds 3 MQTT connections at most."""
    proc = ServerProcess(tmp_path_factory.mktemp("full"), mqant={"MAX_CONNECTIONS": 3}).start()
    yield proc
    proc.stop()
    assert_clean_log(proc.output())


def assert_clean_log(log: str) -> None:
    assert "Traceback" not in log, log
    assert not re.search(r"\b(ERROR|CRITICAL)\b", log), log


def assert_unharmed(server: ServerProcess) -> None:
    """A bystander from another address is served within bounds; memory bounded; alive."""
    unharmed(server)


# Clients

_client_ids = iter(range(10**9))


def connect_packet() -> bytes:
    return encode(Connect("MQTT", 4, f"attacker-{next(_client_ids)}", True, 60))


def tcp_attempt(server: ServerProcess, source: str) -> RawClient | None:
    """An MQTT connection over TCP from ``source``: the client once CONNACK came, or None
    when the server closed the socket instead."""
    try:
        client = RawClient(server.tcp_port, connect=False, source=source)
    except OSError:
        return None
    try:
        client.send(connect_packet())
        if client.next_packet(timeout=5) == ConnAck(0):
            return client
    except OSError:  # reset, or closed (ConnectionError)
        pass
    client.close()
    return None


def ws_attempt(
    server: ServerProcess, source: str, port: int | None = None
) -> tuple[RawClient | None, int | None]:
    """An MQTT connection over WebSocket from ``source`` (to daphne's port, or ``port``):
    (the client, None) once CONNACK came, else (None, the close frame's code, or None when
    there was none)."""
    port = server.port if port is None else port
    try:  # a handshake refused with an HTTP status raises ConnectionError
        client = RawClient(port, connect=False, transport="websocket", source=source)
    except OSError:
        return None, None
    try:
        client.send(connect_packet())
        opcode, payload = next_frame(client, timeout=5)
    except OSError:
        client.close()
        return None, None
    if opcode == 0x2 and connack(payload):
        return client, None
    client.close()
    if opcode == 0x8 and len(payload) >= 2:
        return None, struct.unpack("!H", payload[:2])[0]
    return None, None


def connack(payload: bytes) -> bool:
    decoder = Decoder()
    decoder.receive_data(payload)
    return bool(decoder.next_packet() == ConnAck(0))


def next_frame(client: RawClient, timeout: float) -> tuple[int, bytes]:
    """The next data or close frame from the server, as (opcode, payload); (0x8, b"") when
    the socket closed without a close frame. Pings and pongs are skipped."""
    ws = client.ws
    assert ws is not None
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        frame = ws._frame()
        if frame is not None:
            if frame[0] in (0x9, 0xA):
                continue
            return frame
        ws.sock.settimeout(left)
        chunk = ws.sock.recv(65536)
        if not chunk:
            return 0x8, b""
        ws.buffer += chunk
    raise TimeoutError(f"no frame within {timeout} s")


def close_all(clients: list[RawClient]) -> None:
    for client in clients:
        client.close()


def still_open(sock: socket.socket) -> bool:
    """Whether the server has neither closed nor reset ``sock`` (what it sent is dropped)."""
    sock.setblocking(False)
    try:
        for _ in range(1000):
            if not sock.recv(65536):
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    return True


def raw_socket(port: int, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def handshake(path: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
    ).encode()


def run_for(seconds: float, attack: Callable[[], object], limit: int = 20000) -> list[object]:
    """``attack()`` again and again for ``seconds`` (``limit`` times at most); the results."""
    results: list[object] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(results) < limit:
        results.append(attack())
    return results


# (a) MQTT connections per address


def test_one_address_gets_max_connections_per_address_over_tcp_and_websocket(server):
    tcp_source, ws_source = attacker_address(), attacker_address()
    held: list[RawClient] = []
    try:
        over_tcp = [tcp_attempt(server, tcp_source) for _ in range(150)]
        held += [c for c in over_tcp if c is not None]
        assert all(over_tcp[:PER_ADDRESS]), "the first 100 are served"
        assert not any(over_tcp[PER_ADDRESS:]), "the others are closed at once"

        over_ws = [ws_attempt(server, ws_source) for _ in range(150)]
        held += [c for c, _ in over_ws if c is not None]
        assert all(c is not None for c, _ in over_ws[:PER_ADDRESS])
        assert [code for _, code in over_ws[PER_ADDRESS:]] == [TRY_AGAIN_LATER] * 50

        # One count for both transports: 10 TCP connections go, 10 WebSocket ones take their
        # places, and the 11th is refused.
        close_all([c for c in over_tcp[:10] if c is not None])
        time.sleep(0.5)
        swapped = [ws_attempt(server, tcp_source) for _ in range(11)]
        held += [c for c, _ in swapped if c is not None]
        assert all(c is not None for c, _ in swapped[:10])
        assert swapped[10] == (None, TRY_AGAIN_LATER)
        assert_unharmed(server)
    finally:
        close_all(held)


# (b) Connection churn


def churn(attempt: Callable[[], RawClient | None]) -> Callable[[], bool]:
    """One churn step: ``attempt()`` a connection, close it if served; whether it was."""

    def step() -> bool:
        client = attempt()
        if client is not None:
            client.close()
        return client is not None

    return step


def test_connection_churn_from_one_address_is_held_to_its_budget(server):
    source = attacker_address()

    churn_tcp = churn(lambda: tcp_attempt(server, source))
    churn_ws = churn(lambda: ws_attempt(server, source)[0])

    start = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        attacks = [pool.submit(run_for, 3.0, churn) for churn in (churn_tcp, churn_ws)]
        time.sleep(0.5)
        assert_unharmed(server)  # during the churn
        results = [r for attack in attacks for r in attack.result(timeout=20)]
    elapsed = time.monotonic() - start
    served = sum(1 for r in results if r)
    assert len(results) > served, "refused past the budget"
    assert served <= CONNECT_BURST + CONNECT_RATE * elapsed + 5, (served, len(results), elapsed)
    assert_unharmed(server)


# (c) Half-open handshakes and slow-loris


def held_once_caught_up(sockets: list[socket.socket], within: float = 0.5) -> int:
    """How many of ``sockets`` the server holds open, given ``within`` seconds to close
    those past its cap: sockets it has not read yet (a collection of its garbage, a busy
    loop) still look open from here."""
    deadline = time.monotonic() + within
    while (held := sum(map(still_open, sockets))) > MAX_SOCKETS and time.monotonic() < deadline:
        time.sleep(0.01)
    return held


def test_half_open_handshakes_are_capped_per_address_then_timed_out(server):
    source = attacker_address()
    half = handshake("/mqtt", server.port)[:40]
    sockets: list[socket.socket] = []
    held_counts: list[int] = []
    try:
        start = time.monotonic()
        for n in range(300):
            if n % 25 == 0:  # daphne's accept queue holds 50: past it, a SYN waits 1 s
                time.sleep(0.01)
                held_counts.append(held_once_caught_up(sockets))
            sock = raw_socket(server.port, source)
            sockets.append(sock)
            with contextlib.suppress(OSError):  # reset already: one of those refused
                sock.sendall(half)
        sent = time.monotonic()
        time.sleep(0.3)
        held_counts.append(sum(map(still_open, sockets)))
        assert max(held_counts) <= MAX_SOCKETS, held_counts
        if sent - start < REQUEST_TIMEOUT / 2:  # else the first may have timed out already
            assert held_counts[-1] >= MAX_SOCKETS - 28, held_counts
        # Every request must arrive whole within HTTP_REQUEST_TIMEOUT of its first byte.
        while time.monotonic() < sent + REQUEST_TIMEOUT + 3 and any(map(still_open, sockets)):
            time.sleep(0.1)
        assert not any(map(still_open, sockets))
    finally:
        for sock in sockets:
            sock.close()
    assert_unharmed(server)


def test_a_slow_loris_is_closed_at_the_request_timeout(server):
    """A request trickled a byte at a time is closed; a keep-alive socket that has had its
    answer and is quiet is not: HTTP_REQUEST_TIMEOUT times requests, not the quiet between."""
    keep_alive = raw_socket(server.port, attacker_address())
    keep_alive.sendall(b"GET /api/auth/me/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    keep_alive.settimeout(5)
    assert keep_alive.recv(12).startswith(b"HTTP/1.1 "), "answered"
    loris = raw_socket(server.port, attacker_address())
    request = handshake("/mqtt", server.port)
    start = time.monotonic()
    try:
        for byte in request[:20]:  # a byte every 0.5 s: 10 s of trickling at most
            try:
                loris.sendall(bytes([byte]))
            except OSError:
                break
            if not still_open(loris):
                break
            loris.setblocking(True)
            time.sleep(0.5)
        closed_after = time.monotonic() - start
        assert not still_open(loris)
        assert closed_after < REQUEST_TIMEOUT + 1.5, closed_after
        assert still_open(keep_alive)
    finally:
        loris.close()
        keep_alive.close()
    assert_unharmed(server)


# (d) A full process


def test_a_full_process_refuses_websocket_with_1013_and_tcp_at_once(full_server):
    held = [tcp_attempt(full_server, attacker_address()) for _ in range(3)]
    try:
        assert all(held)
        assert ws_attempt(full_server, attacker_address()) == (None, TRY_AGAIN_LATER)
        assert tcp_attempt(full_server, attacker_address()) is None
    finally:
        close_all([c for c in held if c is not None])
    time.sleep(0.5)
    assert_unharmed(full_server)


# (e) WebSocket ping floods


def test_websocket_ping_floods_are_closed(server):
    source = attacker_address()
    flooders = []
    for _ in range(3):
        client, code = ws_attempt(server, source)
        assert client is not None, code
        flooders.append(client)
    mask = os.urandom(4)
    flood_with(server, flooders, (struct.pack("!BB", 0x89, 0x80) + mask) * 2000)
    assert_unharmed(server)


def flood_with(server: ServerProcess, flooders: list[RawClient], pings: bytes) -> None:
    """Each of ``flooders`` sends ``pings`` again and again from a thread of its own: the
    server keeps serving a bystander meanwhile, and closes every flooder within 5 s."""
    stop = threading.Event()

    def flood(client: RawClient) -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                client.sock.sendall(pings)

    threads = [threading.Thread(target=flood, args=(c,), daemon=True) for c in flooders]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        assert_unharmed(server)  # while they flood (or have been closed)
        for client in flooders:
            assert client.closed_within(5), "a flooder is still connected"
    finally:
        stop.set()
        close_all(flooders)
        for thread in threads:
            thread.join(timeout=5)


# (f) Unknown paths


@pytest.fixture(scope="module")
def paths_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """daphne that carries MQTT on /mqtt only (WS_PATHS)."""
    proc = ServerProcess(tmp_path_factory.mktemp("paths"), mqant={"WS_PATHS": ["/mqtt"]})
    yield proc.start()
    proc.stop()
    assert_clean_log(proc.output())


def handshake_answer(server: ServerProcess, path: str, port: int | None = None) -> bytes:
    """What a WebSocket handshake on ``path`` gets from daphne's port (or ``port``)."""
    port = server.port if port is None else port
    sock = raw_socket(port, attacker_address())
    try:
        sock.sendall(handshake(path, port))
        sock.settimeout(5)
        return sock.recv(4096)
    finally:
        sock.close()


def test_every_websocket_path_carries_mqtt_by_default(server):
    # mqant's gate takes any path: its robots connect with none, its docs name /mqant.
    for path in ("/", "/mqant", "/mqtt", "/any/where?x=1"):
        assert handshake_answer(server, path).startswith(b"HTTP/1.1 101 "), path


def test_a_websocket_handshake_on_a_path_not_listed_is_refused_cleanly(paths_server):
    server = paths_server
    log_start = len(server.output())
    for path in ("/", "/nope", "/mqtt/more", "/mqttx?x=1"):
        assert handshake_answer(server, path).startswith(b"HTTP/1.1 403 "), path
    assert handshake_answer(server, "/mqtt").startswith(b"HTTP/1.1 101 ")
    time.sleep(1.5)  # daphne reports an application's exception within a second
    log = server.output()[log_start:]
    assert "Traceback" not in log, log
    assert "ERROR" not in log, log
    assert_unharmed(server)


# (g) The TCP read budget


def test_a_tcp_client_past_read_rate_is_slowed_not_closed(server):
    client = tcp_attempt(server, attacker_address())
    assert client is not None
    assert_slowed_not_closed(server, client)


def assert_slowed_not_closed(
    server: ServerProcess, client: RawClient, wire: Callable[[bytes], bytes] = bytes
) -> None:
    """32 messages of 60 KB sent at once (as ``wire`` frames each packet) are all answered,
    but no sooner than READ_RATE allows after READ_BURST, and the client is not closed."""
    body = b'{"say": "' + b"x" * 60000 + b'"}'
    packets = [encode_publish(f"HelloWorld/HD_Say/{n}", body) for n in range(32)]
    stream = b"".join(wire(packet) for packet in packets)
    wait_at_least = (len(stream) - READ_BURST) / READ_RATE  # 3.3 s
    sender = threading.Thread(target=client.sock.sendall, args=(stream,), daemon=True)
    replies: set[str] = set()
    try:
        start = time.monotonic()
        client.sock.settimeout(20)
        sender.start()
        while len(replies) < len(packets) and time.monotonic() - start < 20:
            packet = client.next_packet(timeout=20)
            if isinstance(packet, Publish):
                replies.add(packet.topic)
        elapsed = time.monotonic() - start
        assert len(replies) == len(packets), "every message answered"
        assert elapsed >= 0.8 * wait_at_least, f"not slowed: {elapsed:.2f} s"
        assert not client.closed_within(0.2)
    finally:
        client.close()
        sender.join(timeout=5)
    assert_unharmed(server)


# The guard over TLS (wss)


def test_over_tls_websockets_work_and_half_open_handshakes_are_timed_out(tmp_path):
    """daphne's TLS is a ProtocolWrapper too: the guard sits between it and HTTP, and
    autobahn still gets Twisted's TLS transport (it reads the TLS channel id from it)."""
    cert, key = self_signed(tmp_path)
    config = ServerProcess(tmp_path, mqant={"HTTP_REQUEST_TIMEOUT": REQUEST_TIMEOUT})
    migrate = [sys.executable, "manage.py", "migrate", "--noinput"]
    subprocess.run(migrate, cwd=ROOT, env=config.env, check=True, capture_output=True)
    port = free_port()
    endpoint = f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    log_path = tmp_path / "wss.log"
    with log_path.open("wb") as log:
        daphne = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-e", endpoint, "mqantsite.asgi:application"],
            cwd=ROOT, env=config.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    context = ssl.create_default_context(cafile=str(cert))
    try:
        wait_for_port(port, daphne)
        sock = raw_socket(port, attacker_address())
        wss = RawWebSocket(context.wrap_socket(sock, server_hostname="127.0.0.1"), port)
        wss.send(connect_packet())
        assert connack(wss.recv(5)), "MQTT over wss"
        half = context.wrap_socket(
            raw_socket(port, attacker_address()), server_hostname="127.0.0.1"
        )
        half.sendall(handshake("/mqtt", port)[:40])
        half.settimeout(REQUEST_TIMEOUT + 3)
        start = time.monotonic()
        with contextlib.suppress(OSError):
            assert half.recv(10) == b""
        assert time.monotonic() - start < REQUEST_TIMEOUT + 1.5
        wss.sock.close()
        half.close()
    finally:
        daphne.terminate()
        daphne.wait(timeout=10)
    assert_clean_log(log_path.read_text(errors="replace"))
