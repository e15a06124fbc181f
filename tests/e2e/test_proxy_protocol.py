"""The gate's own listeners behind a proxy that speaks the PROXY protocol
(``PROXY_PROTOCOL_FROM``), with raw sockets from 127.0.0.1 playing the proxy: the client
each header names is the one the per-address limits count, over TCP and over the gate's own
WebSocket port; a connection from the proxy without a header is closed before any MQTT."""

import socket
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

CONNECT = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01p"  # MQTT 3.1.1, client id "p"
CONNACK_OK = b"\x20\x02\x00\x00"


def header(client: str) -> bytes:
    return f"PROXY TCP4 {client} 127.0.0.1 40000 3563\r\n".encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    settings = {
        "PROXY_PROTOCOL_FROM": ["127.0.0.1"],
        "MAX_CONNECTIONS_PER_ADDRESS": 1,
        "CONNECT_RATE_PER_ADDRESS": 0,
    }
    proc = ServerProcess(tmp_path_factory.mktemp("proxy"), mqant=settings).start()
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()


def mqtt_over_tcp(port: int, first: bytes) -> tuple[socket.socket, bytes]:
    """Send ``first`` then CONNECT; the socket and what came back (b"" once closed)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(first + CONNECT)
    try:
        return sock, sock.recv(4)
    except ConnectionResetError:
        return sock, b""


def test_tcp_clients_are_counted_by_the_address_the_proxy_names(server):
    held, answer = mqtt_over_tcp(server.tcp_port, header("192.0.2.10"))
    assert answer == CONNACK_OK
    refused, answer = mqtt_over_tcp(server.tcp_port, header("192.0.2.10"))
    assert answer == b""  # the client's second: MAX_CONNECTIONS_PER_ADDRESS is 1
    other, answer = mqtt_over_tcp(server.tcp_port, header("192.0.2.11"))
    assert answer == CONNACK_OK  # through the same proxy address, another client
    headerless, answer = mqtt_over_tcp(server.tcp_port, b"")
    assert answer == b""  # the proxy's own bytes are never read as MQTT
    for sock in (held, refused, other, headerless):
        sock.close()


def test_the_gates_websocket_port_reads_the_header_too(server):
    sock = socket.create_connection(("127.0.0.1", server.ws_port), timeout=10)
    sock.sendall(header("192.0.2.20"))
    with ws_connect(
        f"ws://127.0.0.1:{server.ws_port}/mqtt", sock=sock, subprotocols=[Subprotocol("mqtt")]
    ) as websocket:
        websocket.send(CONNECT)
        assert websocket.recv(timeout=10) == CONNACK_OK


def test_a_client_that_left_is_let_in_again(server):
    """The slot counted against the address a header named is given back with the
    connection: that client's next connection (MAX_CONNECTIONS_PER_ADDRESS is 1) is let in,
    and so is the proxy's, whose own address was never counted."""
    first, answer = mqtt_over_tcp(server.tcp_port, header("192.0.2.30"))
    assert answer == CONNACK_OK
    first.close()
    deadline = time.monotonic() + 10
    while True:  # until the gate has seen the first one go
        again, answer = mqtt_over_tcp(server.tcp_port, header("192.0.2.30"))
        again.close()
        if answer == CONNACK_OK:
            break
        assert time.monotonic() < deadline, "the client's slot was never given back"
        time.sleep(0.1)
