"""Socket-level attacks against the gate's own MQTT-over-WebSocket listener (WS_ADDR,
gate.wsserver) of a real daphne process, as an attacker finds it on its port: the attacks of
test_hostile_app_sockets, and what only this listener has to say itself (its handshake, its
frames, its TLS).

Each test attacks from addresses of its own (tests.e2e.attack: 127.0.0.N is another client for
the server), checks what the attacker got, then that a bystander from another address is
served within bounds, over daphne's WebSocket and over the listener itself, that the server's
memory stays bounded and that it lives.
"""

import contextlib
import math
import re
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.exceptions import InvalidMessage
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from gate.mqtt import Connect, encode, encode_publish
from tests.e2e.attack import Bystander, attacker_address, unharmed
from tests.e2e.raw import RawClient, RawWebSocket, frame
from tests.e2e.server import ServerProcess
from tests.e2e.test_hostile_app_sockets import (
    CONNECT_BURST,
    CONNECT_RATE,
    PER_ADDRESS,
    REQUEST_TIMEOUT,
    TRY_AGAIN_LATER,
    assert_clean_log,
    assert_slowed_not_closed,
    churn,
    close_all,
    connack,
    connect_packet,
    flood_with,
    handshake,
    handshake_answer,
    next_frame,
    raw_socket,
    run_for,
    still_open,
    tcp_attempt,
    ws_attempt,
)
from tests.e2e.test_tls_and_limits import self_signed

pytestmark = pytest.mark.e2e

# A socket the listener refuses is aborted in its accept callback: no answer, and at once.
# (Generous: a loaded 2-core machine; the handshake deadline is twice this.)
AT_ONCE = 1.0
# gate.wsserver's bounds.
MAX_MESSAGE_SIZE = 1024 * 1024
MAX_HANDSHAKE_BYTES = 16384
CLOSE_TIMEOUT = 1.0
# The listener's log during this module: a few lines per attack (a refusal's first line, a
# close's line per connection), never a line per packet, frame or refused socket.
MAX_LOG_LINES = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """daphne with the production limits, but a handshake deadline (HTTP_REQUEST_TIMEOUT) of
    2 s."""
    workdir = tmp_path_factory.mktemp("ws-listener")
    proc = ServerProcess(workdir, mqant={"HTTP_REQUEST_TIMEOUT": REQUEST_TIMEOUT}).start()
    yield proc
    proc.stop()
    log = proc.output()
    assert_clean_log(log)
    # Thousands of refused sockets in this module: a line for the first of a kind, summaries.
    assert 0 < log.count(" gate.limits: ") <= 20, log
    assert len(log.splitlines()) <= MAX_LOG_LINES, log[-5000:]
    # asyncio warns of what a transport's user does wrong (writes after a close...): none.
    assert " asyncio: " not in log, log


@pytest.fixture(scope="module")
def full_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """daphne that holds 3 MQTT connections at most, whatever their transport."""
    proc = ServerProcess(tmp_path_factory.mktemp("ws-full"), mqant={"MAX_CONNECTIONS": 3})
    yield proc.start()
    proc.stop()
    assert_clean_log(proc.output())


@pytest.fixture(scope="module")
def paths_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """daphne whose gate carries MQTT over WebSocket on /mqtt only (WS_PATHS)."""
    proc = ServerProcess(tmp_path_factory.mktemp("ws-paths"), mqant={"WS_PATHS": ["/mqtt"]})
    yield proc.start()
    proc.stop()
    assert_clean_log(proc.output())


def assert_unharmed(server: ServerProcess) -> None:
    """Bystanders from other addresses are served within bounds, over daphne's WebSocket and
    over the listener; memory bounded; alive."""
    unharmed(server)
    Bystander(server).check("ws-listener")


def listener_attempt(server: ServerProcess, source: str) -> RawClient | None:
    """An MQTT connection to the listener from ``source``: the client once CONNACK came, else
    None."""
    client, code = ws_attempt(server, source, server.ws_port)
    assert client is not None or code is None, f"closed with {code}, not refused at accept"
    return client


def refused_at_once(port: int, source: str) -> bool:
    """Whether a WebSocket handshake from ``source`` has its socket closed or reset without an
    answer, within AT_ONCE."""
    sock = raw_socket(port, source)
    try:
        sock.settimeout(AT_ONCE)
        sock.sendall(handshake("/mqtt", port))
        return sock.recv(4096) == b""
    except TimeoutError:
        return False
    except OSError:  # reset: aborted
        return True
    finally:
        sock.close()


def exchange(port: int, data: bytes, within: float) -> tuple[bytes, float]:
    """Send ``data`` on a new socket from an attacker's address: what the server answered, and
    the seconds until it closed (or reset) the socket; infinity if it was still open
    ``within`` seconds after."""
    sock = raw_socket(port, attacker_address())
    received = b""
    started = time.monotonic()
    try:
        with contextlib.suppress(OSError):  # closed while we were still sending
            sock.sendall(data)
        while (left := started + within - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                return received, time.monotonic() - started
            if not chunk:
                return received, time.monotonic() - started
            received += chunk
        return received, math.inf
    finally:
        sock.close()


def close_code(client: RawClient, timeout: float = 5) -> int | None:
    """The code of the close frame the server sends next (None: closed without one)."""
    opcode, payload = next_frame(client, timeout)
    while opcode != 0x8:
        opcode, payload = next_frame(client, timeout)
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


def logged_for(server: ServerProcess, address: str, text: str) -> int:
    """Lines of the log about the client at ``address`` that say ``text``."""
    pattern = re.compile(rf"{re.escape(address)}>: .*{re.escape(text)}")
    return sum(1 for line in server.output().splitlines() if pattern.search(line))


# (a) MQTT connections per address


def test_one_address_gets_max_connections_per_address_shared_with_tcp_and_daphne(server):
    source = attacker_address()
    held: list[RawClient] = []
    try:
        served = [listener_attempt(server, source) for _ in range(PER_ADDRESS)]
        held += [c for c in served if c is not None]
        assert all(served), "the first 100 are served"
        assert all(refused_at_once(server.ws_port, source) for _ in range(50))
        # One count for the address, whatever the transport.
        assert tcp_attempt(server, source) is None
        assert ws_attempt(server, source) == (None, TRY_AGAIN_LATER)  # daphne's WebSocket

        # 10 of its listener connections go: 4 over TCP, 3 over daphne's WebSocket and 3 more
        # over the listener take their places, and the 11th is refused.
        close_all(held[:10])
        time.sleep(0.6)  # their ends are seen; 10 connect tokens come back (20/s)
        elsewhere = [tcp_attempt(server, source) for _ in range(4)]
        elsewhere += [ws_attempt(server, source)[0] for _ in range(3)]
        elsewhere += [listener_attempt(server, source) for _ in range(3)]
        held += [c for c in elsewhere if c is not None]
        assert all(elsewhere)
        assert refused_at_once(server.ws_port, source)
        assert_unharmed(server)
    finally:
        close_all(held)


# (b) Connection churn


def test_connection_churn_on_the_listener_is_held_to_the_connect_budget(server):
    source = attacker_address()

    churn_listener = churn(lambda: ws_attempt(server, source, server.ws_port)[0])
    churn_tcp = churn(lambda: tcp_attempt(server, source))

    start = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        attacks = [pool.submit(run_for, 3.0, churn) for churn in (churn_listener, churn_tcp)]
        time.sleep(0.5)
        assert_unharmed(server)  # during the churn
        listener, tcp = (attack.result(timeout=20) for attack in attacks)
    elapsed = time.monotonic() - start
    served = sum(1 for r in [*listener, *tcp] if r)
    assert any(listener), "the listener served some"
    assert len(listener) > sum(1 for r in listener if r), "and refused past the budget"
    # One budget for the address, both transports.
    assert served <= CONNECT_BURST + CONNECT_RATE * elapsed + 5, (served, elapsed)
    assert_unharmed(server)


# (c) Half-open handshakes and slow loris


def assert_capped_then_closed(sockets: list[socket.socket], start: float, deadline: float) -> None:
    """Of ``sockets``, opened from one address since ``start`` and left waiting for a
    handshake, the first PER_ADDRESS are held and the others closed at once; all are closed
    ``deadline`` seconds after they opened."""
    sent = time.monotonic()
    time.sleep(0.3)
    held = [still_open(sock) for sock in sockets]
    assert sum(held) <= PER_ADDRESS, sum(held)
    if sent - start < deadline / 2:  # else the first may have timed out already
        assert all(held[:PER_ADDRESS]), "the first 100 wait for their handshake"
        assert not any(held[PER_ADDRESS:]), "the others are closed at once"
    while time.monotonic() < sent + deadline + 3 and any(map(still_open, sockets)):
        time.sleep(0.1)
    assert not any(map(still_open, sockets)), "closed at the deadline"


def test_half_open_handshakes_are_capped_per_address_then_timed_out(server):
    """A socket takes its connection slot at accept: one address holds 100 half-open
    handshakes at most, and each is closed at the handshake deadline, its slot given back."""
    source = attacker_address()
    half = handshake("/mqtt", server.ws_port)[:40]
    sockets: list[socket.socket] = []
    try:
        start = time.monotonic()
        for _ in range(PER_ADDRESS + 50):
            sock = raw_socket(server.ws_port, source)
            sockets.append(sock)
            with contextlib.suppress(OSError):  # reset already: one of those refused
                sock.sendall(half)
        assert_capped_then_closed(sockets, start, REQUEST_TIMEOUT)
    finally:
        for sock in sockets:
            sock.close()
    time.sleep(0.5)  # connect tokens come back
    client = listener_attempt(server, source)
    assert client is not None, "the deadline gave the address's slots back"
    client.close()
    assert_unharmed(server)


def test_a_slow_loris_is_closed_at_the_handshake_deadline(server):
    """A handshake trickled a byte every 0.5 s is closed at the deadline; a client whose
    handshake is done and is quiet past it is not: the deadline is the handshake's."""
    quiet = listener_attempt(server, attacker_address())
    assert quiet is not None
    loris = raw_socket(server.ws_port, attacker_address())
    request = handshake("/mqtt", server.ws_port)
    start = time.monotonic()
    try:
        for byte in request[:20]:  # 10 s of trickling at most
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
        assert REQUEST_TIMEOUT - 0.1 <= closed_after < REQUEST_TIMEOUT + 1.5, closed_after
        assert still_open(quiet.sock)
    finally:
        loris.close()
        quiet.close()
    assert_unharmed(server)


# (d) A full process


def test_a_full_process_refuses_a_listener_socket_at_once(full_server):
    server = full_server
    held = [
        tcp_attempt(server, attacker_address()),
        ws_attempt(server, attacker_address())[0],
        listener_attempt(server, attacker_address()),
    ]
    try:
        assert all(held), "3 connections, one per transport"
        started = time.monotonic()
        assert refused_at_once(server.ws_port, attacker_address())
        assert listener_attempt(server, attacker_address()) is None
        assert time.monotonic() - started < 2 * AT_ONCE
        assert "MQTT connection refused: MAX_CONNECTIONS reached" in server.output()
    finally:
        close_all([c for c in held if c is not None])
    time.sleep(0.5)
    assert_unharmed(server)


# (e) WebSocket ping floods


def test_ping_floods_are_closed(server):
    source = attacker_address()
    flooders = [listener_attempt(server, source) for _ in range(3)]
    assert all(flooders)
    flood_with(server, [c for c in flooders if c is not None], frame(b"", 0x9) * 2000)
    time.sleep(CLOSE_TIMEOUT + 0.5)  # whatever their sockets still had to say is said
    assert logged_for(server, source, "it sent pings past WS_PING_RATE") == 3, "once each"
    # Nothing is written to their sockets once they are closed (asyncio warns of each write).
    assert "socket.send() raised exception" not in server.output()
    assert_unharmed(server)


def test_pings_past_the_burst_get_a_1008_close_frame(server):
    source = attacker_address()
    client = listener_attempt(server, source)
    assert client is not None
    try:
        client.sock.sendall(frame(b"p", 0x9) * 40)  # the burst is 10
        assert close_code(client) == 1008
        assert client.closed_within(CLOSE_TIMEOUT + 2)
    finally:
        client.close()
    assert logged_for(server, source, "it sent pings past WS_PING_RATE") == 1
    assert_unharmed(server)


# (f) WS_PATHS


def test_every_path_carries_mqtt_by_default(server):
    # mqant's gate takes any path: its robots connect with none, its docs name /mqant.
    for path in ("/", "/mqant", "/mqtt", "/x?y=1"):
        answer = handshake_answer(server, path, server.ws_port)
        assert answer.startswith(b"HTTP/1.1 101 "), (path, answer)


def test_a_handshake_on_a_path_not_listed_gets_403(paths_server):
    server = paths_server
    for path in ("/", "/nope", "/mqtt/more", "/mqttx?x=1"):
        answer = handshake_answer(server, path, server.ws_port)
        assert answer.startswith(b"HTTP/1.1 403 "), (path, answer)
    for path in ("/mqtt", "/mqtt?x=1"):
        answer = handshake_answer(server, path, server.ws_port)
        assert answer.startswith(b"HTTP/1.1 101 "), (path, answer)
    assert_unharmed(server)


# (g) What is not a WebSocket handshake


def test_plain_http_gets_426_and_a_closed_socket(server):
    answer, closed = exchange(server.ws_port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 5)
    assert answer.startswith(b"HTTP/1.1 426 "), answer
    assert len(answer) < 1024, answer
    assert closed < AT_ONCE, closed
    assert_unharmed(server)


def test_bytes_that_are_not_http_get_a_closed_socket(server):
    # A line that is no request line (a port scanner, an SSH client): closed at once.
    answer, closed = exchange(server.ws_port, b"SSH-2.0-OpenSSH_9.6\r\n", 5)
    assert answer == b""
    assert closed < AT_ONCE, closed
    # An MQTT CONNECT in the clear (a TCP client at the wrong port) has no line end: it waits
    # for its line until the handshake deadline.
    answer, closed = exchange(server.ws_port, connect_packet(), REQUEST_TIMEOUT + 3)
    assert answer == b""
    assert REQUEST_TIMEOUT - 0.1 <= closed < REQUEST_TIMEOUT + 1.5, closed
    assert_unharmed(server)


def test_a_handshake_over_16_kib_gets_431(server):
    request = handshake("/mqtt", server.ws_port)
    padding = b"".join(b"X-Padding-%d: %s\r\n" % (n, b"a" * 3500) for n in range(5))
    big = request[:-2] + padding + b"\r\n"
    assert MAX_HANDSHAKE_BYTES < len(big) < MAX_HANDSHAKE_BYTES + 2048
    answer, closed = exchange(server.ws_port, big, 5)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert closed < AT_ONCE, closed
    assert_unharmed(server)


# (h) Frames the listener refuses


def test_frames_refused_get_their_close_codes(server):
    """A text frame: 4003. A message over MAX_MESSAGE_SIZE (1 MiB), in one frame or
    fragments, closed as its header arrives: 1009. An unmasked client frame: 1002."""
    big_header = b"\x82\xff" + struct.pack("!Q", 2 * MAX_MESSAGE_SIZE) + b"mask"
    half_publish = encode_publish("HelloWorld/HD_Say/1", b"x" * 60000)[:1000]
    continued = b"\x00\xff" + struct.pack("!Q", MAX_MESSAGE_SIZE) + b"mask"
    attacks = [
        ("a text frame", frame(b'{"say": "hi"}', 0x1), 4003, "a text frame"),
        ("a frame over 1 MiB", big_header, 1009, "closing (1009)"),
        ("fragments over 1 MiB", frame(half_publish, fin=False) + continued, 1009, "(1009)"),
        ("an unmasked frame", frame(encode(Connect("MQTT", 4, "x", True, 60)), masked=False),
         1002, "closing (1002)"),
    ]  # fmt: skip
    for what, data, code, logged in attacks:
        source = attacker_address()
        client = listener_attempt(server, source)
        assert client is not None
        try:
            client.sock.sendall(data)
            assert close_code(client) == code, what
            assert client.closed_within(CLOSE_TIMEOUT + 2), what
        finally:
            client.close()
        assert logged_for(server, source, logged) == 1, what
    assert_unharmed(server)


# (i) The read budget


def test_a_client_past_read_rate_is_slowed_not_closed(server):
    client = listener_attempt(server, attacker_address())
    assert client is not None
    assert_slowed_not_closed(server, client, frame)


# (j) wss: the listener over TLS

CONNECT_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ssl.SSLContext]]:
    """daphne whose gate listeners speak TLS (TLS_CERT, TLS_KEY), with deadlines of 2 s for
    the TLS handshake (CONNECT_TIMEOUT) and the WebSocket one; and a client context that
    trusts its certificate."""
    workdir = tmp_path_factory.mktemp("wss")
    cert, key = self_signed(workdir)
    settings = {
        "TLS_CERT": str(cert),
        "TLS_KEY": str(key),
        "CONNECT_TIMEOUT": CONNECT_TIMEOUT,
        "HTTP_REQUEST_TIMEOUT": REQUEST_TIMEOUT,
    }
    proc = ServerProcess(workdir, mqant=settings).start()
    yield proc, ssl.create_default_context(cafile=str(cert))
    proc.stop()
    assert_clean_log(proc.output())


def tls_still_open(sock: ssl.SSLSocket) -> bool:
    """still_open for a socket whose TLS handshake is done."""
    sock.setblocking(False)
    try:
        return sock.recv(4096) != b""
    except ssl.SSLWantReadError:  # nothing to read: open
        return True
    except OSError:
        return False


def wss_socket(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    sock = raw_socket(port, attacker_address())
    sock.settimeout(5)
    return context.wrap_socket(sock, server_hostname="127.0.0.1")


def test_mqtt_over_wss_works(tls_server):
    server, context = tls_server
    # A WebSocket client library, as a user's would be.
    with ws_connect(
        f"wss://127.0.0.1:{server.ws_port}/mqtt",
        ssl=context,
        subprotocols=[Subprotocol("mqtt")],
        open_timeout=5,
    ) as ws:
        ws.send(connect_packet())
        answer = ws.recv(5)
        assert isinstance(answer, bytes), answer  # MQTT travels in binary frames
        assert connack(answer)
        ws.send(encode_publish("HelloWorld/HD_Say/1", b'{"say": "encrypted"}'))
        reply = ws.recv(5)
        assert isinstance(reply, bytes), reply
        assert b"you say : encrypted" in reply
    # And by hand, from another address.
    wss = RawWebSocket(wss_socket(server.ws_port, context), server.ws_port)
    wss.send(connect_packet())
    assert connack(wss.recv(5))
    wss.sock.close()
    unharmed(server)


def test_plain_websocket_is_refused_by_the_tls_listener(tls_server):
    server, _ = tls_server
    answer, closed = exchange(server.ws_port, handshake("/mqtt", server.ws_port), 5)
    assert b"HTTP/1.1 101" not in answer
    assert closed < AT_ONCE, closed
    # "did not receive a valid HTTP response", as a user's client says it.
    with (
        pytest.raises(InvalidMessage),
        ws_connect(f"ws://127.0.0.1:{server.ws_port}/mqtt", open_timeout=5),
    ):
        pass
    unharmed(server)


def test_a_tls_handshake_never_finished_is_closed_at_connect_timeout(tls_server):
    server, context = tls_server
    opened: dict[str, float] = {}  # when each socket's deadline started
    # Nothing sent after the TCP handshake, or half a ClientHello: CONNECT_TIMEOUT.
    silent = raw_socket(server.ws_port, attacker_address())
    opened["silent"] = time.monotonic()
    half = raw_socket(server.ws_port, attacker_address())
    opened["half"] = time.monotonic()
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 20)
    # TLS done, the WebSocket handshake half sent: the handshake deadline.
    tls_half = wss_socket(server.ws_port, context)
    opened["tls_half"] = time.monotonic()
    tls_half.sendall(handshake("/mqtt", server.ws_port)[:40])
    checks = (
        ("silent", lambda: still_open(silent), CONNECT_TIMEOUT),
        ("half", lambda: still_open(half), CONNECT_TIMEOUT),
        ("tls_half", lambda: tls_still_open(tls_half), REQUEST_TIMEOUT),
    )
    try:
        closed_after: dict[str, float] = {}
        while len(closed_after) < 3 and time.monotonic() < opened["tls_half"] + 5:
            for name, is_open, _ in checks:
                if name not in closed_after and not is_open():
                    closed_after[name] = time.monotonic() - opened[name]
            time.sleep(0.05)
        assert set(closed_after) == {"silent", "half", "tls_half"}, closed_after
        for name, _, deadline in checks:
            assert deadline - 0.1 <= closed_after[name] < deadline + 1.5, closed_after
    finally:
        for sock in (silent, half, tls_half):
            sock.close()
    unharmed(server)


@pytest.mark.parametrize("listener", ["ws", "tcp"])
def test_tls_handshakes_never_finished_are_capped_per_address(tls_server, listener):
    """A socket holds its address's connection slot from its accept, before its TLS
    handshake: one address cannot hold more than 100 sockets by never finishing TLS (each
    for CONNECT_TIMEOUT), and the deadline gives the slots back. The same on the gate's
    other listener, MQTT over TCP with TLS."""
    server, context = tls_server
    port = server.ws_port if listener == "ws" else server.tcp_port
    source = attacker_address()
    sockets: list[socket.socket] = []
    try:
        start = time.monotonic()
        for _ in range(PER_ADDRESS + 50):
            sockets.append(raw_socket(port, source))
        assert_capped_then_closed(sockets, start, CONNECT_TIMEOUT)
    finally:
        for sock in sockets:
            sock.close()
    time.sleep(0.5)  # connect tokens come back
    sock = context.wrap_socket(raw_socket(port, source), server_hostname="127.0.0.1")
    sock.settimeout(5)
    if listener == "ws":
        wss = RawWebSocket(sock, port)
        wss.send(connect_packet())
        assert connack(wss.recv(5)), "the address connects again"
    else:
        sock.sendall(connect_packet())
        assert connack(sock.recv(4)), "the address connects again"
    sock.close()
    unharmed(server)
