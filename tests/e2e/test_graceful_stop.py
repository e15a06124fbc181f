"""SIGTERM to a gate with calls in flight, under daphne and under uvicorn: the calls end and are
answered, a call sent meanwhile is refused, WebSocket clients (of the server's port and of the
gate's own) get a close frame with 1001 (going away), TCP clients their replies before the
close, and the process exits within SHUTDOWN_TIMEOUT."""

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from gate.mqtt import ConnAck, Connect, Decoder, Publish, encode, encode_publish
from tests.e2e.raw import RawClient
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

SHUTDOWN_TIMEOUT = 5.0
CALL_SECONDS = 1.5
SHUTTING_DOWN = "the server is shutting down"


class WebSocketClient:
    """MQTT over a real WebSocket client library, which reports the close code it got."""

    def __init__(self, port: int) -> None:
        self.ws: ClientConnection = connect(
            f"ws://127.0.0.1:{port}/mqtt",
            subprotocols=[Subprotocol("mqtt")],
            open_timeout=5,
            legacy=True,  # held by the test, not a with block
        )
        self.decoder = Decoder()
        self.ws.send(encode(Connect("MQTT", 4, "stop-test", True, 60)))
        assert self.next_packet() == ConnAck(0)

    def send(self, data: bytes) -> None:
        self.ws.send(data)

    def next_packet(self, timeout: float = 5) -> Any:
        while (packet := self.decoder.next_packet()) is None:
            data = self.ws.recv(timeout)
            assert isinstance(data, bytes), data  # MQTT travels in binary frames
            self.decoder.receive_data(data)
        return packet

    def close_code(self, timeout: float = 5) -> int | None:
        """The code of the server's close frame (None: closed without one)."""
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                self.ws.recv(left)
        except ConnectionClosed as closed:
            return None if closed.rcvd is None else closed.rcvd.code
        raise AssertionError(f"not closed within {timeout} s")

    def close(self) -> None:
        self.ws.close()


def call(client: WebSocketClient | RawClient, topic: str, body: Any) -> None:
    client.send(encode_publish(topic, json.dumps(body).encode()))


def reply(client: WebSocketClient | RawClient, topic: str, timeout: float = 5) -> dict[str, Any]:
    while True:
        packet = client.next_packet(timeout)
        if isinstance(packet, Publish) and packet.topic == topic:
            answer: dict[str, Any] = json.loads(packet.payload)
            return answer


def wait_in_log(server: ServerProcess, text: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.output():
        assert time.monotonic() < deadline, f"{text!r} not logged within {timeout} s"
        time.sleep(0.02)


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def stopped_within(server: ServerProcess, timeout: float) -> float:
    """Seconds from SIGTERM to the process's exit (the signal is sent here)."""
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout)
    return time.monotonic() - started


def start(tmp_path: Path, asgi_server: str) -> ServerProcess:
    return ServerProcess(
        tmp_path,
        extra_env={"MQANT_EXTRA_APPS": "tests.e2e.probe"},
        mqant={"SHUTDOWN_TIMEOUT": SHUTDOWN_TIMEOUT},
        asgi_server=asgi_server,
    ).start()


@pytest.fixture(params=["daphne", "uvicorn"])
def any_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    server = start(tmp_path, request.param)
    yield server
    server.stop()


@pytest.fixture
def daphne_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start(tmp_path, "daphne")
    yield server
    server.stop()


def test_sigterm_answers_the_calls_in_flight_then_closes(any_server):
    server = any_server
    # The server's WebSocket, then the gate's own WebSocket port.
    busy_ws = [WebSocketClient(port) for port in (server.port,) * 4 + (server.ws_port,) * 2]
    busy_tcp = [RawClient(server.tcp_port) for _ in range(4)]
    late_ws, late_tcp = WebSocketClient(server.port), RawClient(server.tcp_port)
    late_listener = WebSocketClient(server.ws_port)
    busy: list[WebSocketClient | RawClient] = [*busy_ws, *busy_tcp]
    # daphne's application checker (every second) forgets ServerProcess.start's port probes:
    # while one is known, daphne's own stop fails on it (KeyError) and cancels nothing.
    time.sleep(1.5)
    for n, client in enumerate(busy):
        call(client, f"SessionProbe/HD_Sleep/{n}", {"seconds": CALL_SECONDS})
    time.sleep(0.3)  # the calls are in flight

    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    wait_in_log(server, "no new call is taken")
    if server.asgi_server == "daphne":  # uvicorn listens until the signal is handed on to it
        assert refuses_connections(server.port)
    assert refuses_connections(server.tcp_port)
    assert refuses_connections(server.ws_port)
    for client in (late_ws, late_tcp, late_listener):
        call(client, "HelloWorld/HD_Say/late", {"say": "too late"})
        assert reply(client, "HelloWorld/HD_Say/late")["Error"] == SHUTTING_DOWN

    replies = [reply(client, f"SessionProbe/HD_Sleep/{n}") for n, client in enumerate(busy)]
    assert [r["Result"] for r in replies] == ["slept"] * 10, replies
    assert [ws.close_code() for ws in (*busy_ws, late_ws, late_listener)] == [1001] * 8
    assert all(tcp.closed_within(5) for tcp in (*busy_tcp, late_tcp))
    server.process.wait(SHUTDOWN_TIMEOUT + 5)
    took = time.monotonic() - started
    print(f"{server.asgi_server}: 10 calls answered; exit {took:.2f} s after SIGTERM")
    assert took < SHUTDOWN_TIMEOUT + 1.0  # the interpreter's own exit included
    if server.asgi_server == "daphne":  # uvicorn raises the signal again once it stopped
        assert server.process.returncode == 0
    output = server.output()
    assert "Traceback" not in output, output
    assert "gave up waiting" not in output, output


def test_a_call_that_outlives_the_budget_is_answered_shutting_down(daphne_server):
    server = daphne_server
    ws, tcp = WebSocketClient(server.port), RawClient(server.tcp_port)
    listener = WebSocketClient(server.ws_port)
    time.sleep(1.5)  # as above
    for client in (ws, tcp, listener):
        call(client, "SessionProbe/HD_Sleep/long", {"seconds": 5})
    time.sleep(0.3)
    took = stopped_within(server, SHUTDOWN_TIMEOUT + 5)
    for client in (ws, tcp, listener):
        assert reply(client, "SessionProbe/HD_Sleep/long")["Error"] == SHUTTING_DOWN
    assert ws.close_code() == 1001
    assert listener.close_code() == 1001
    print(f"daphne: a 5 s call given up; exit {took:.2f} s after SIGTERM")
    assert took < SHUTDOWN_TIMEOUT + 1.0
    assert "Traceback" not in server.output(), server.output()


def test_a_second_signal_under_daphne_stops_at_once(daphne_server):
    server = daphne_server
    ws = WebSocketClient(server.port)
    call(ws, "SessionProbe/HD_Sleep/long", {"seconds": 5})
    time.sleep(0.3)
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    wait_in_log(server, "no new call is taken")
    took = stopped_within(server, SHUTDOWN_TIMEOUT)  # a second SIGTERM
    print(f"daphne: exit {took:.2f} s after a second SIGTERM")
    assert "stopping at once on a second signal" in server.output()
    assert ws.close_code(1) in (1001, 1006, None)  # no drain: whatever daphne's stop sends
