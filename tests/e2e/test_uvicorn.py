"""The same application under uvicorn: lifespan starts the modules and the gate's listeners,
and every transport chats (uvicorn's WebSocket, TCP, the gate's own WebSocket port)."""

import re
import socket
import ssl
from collections.abc import Iterator

import pytest

from gate.mqtt import Connect, encode
from tests.e2e.clients import ChatClient
from tests.e2e.raw import RawClient, RawWebSocket
from tests.e2e.server import ServerProcess
from tests.e2e.test_tls_and_limits import self_signed

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def uvicorn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("uvicorn")
    limits = {
        "MAX_OUTGOING_BYTES": 256 * 1024,
        "MODULE_SETTINGS": {"Chat": {"MaxMessageLength": 60000, "UserBytesPerDay": 0}},
        "READ_RATE": 0,  # the slow-reader tests push megabytes through a TCP speaker
    }
    proc = ServerProcess(workdir, asgi_server="uvicorn", mqant=limits).start()
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()


def test_chat_under_uvicorn_over_every_transport(uvicorn_server):
    ws = ChatClient(uvicorn_server.port)
    tcp = ChatClient(uvicorn_server.tcp_port, transport="tcp", mqtt31=True)
    # The gate's own WebSocket port, as mqant's clients use it: MQTT 3.1, no path.
    listener = ChatClient(uvicorn_server.ws_port, mqtt31=True, path="/")
    clients = ((ws, "uv-ws"), (tcp, "uv-tcp"), (listener, "uv-gws"))
    try:
        for client, name in clients:
            login = client.request(
                "Login/HD_Login", {"userName": name, "passWord": "pw-k3y9-" + name}
            )
            assert login["Result"] == f"login success {name}", login
            assert client.request("Chat/HD_JoinChat", {"roomName": "uv"})["Error"] == ""
        for speaker, said in ((tcp, "over tcp"), (listener, "over the listener")):
            speaker.request("Chat/HD_Say", {"roomName": "uv", "content": said})
            heard = [client.wait_json("Chat/OnChat")["msg"] for client, _ in clients]
            assert heard == [said] * 3  # the room, the speaker included
    finally:
        for client, _ in clients:
            client.close()


@pytest.mark.parametrize("port", ["port", "ws_port"])
def test_a_websocket_client_that_stops_reading_is_closed(uvicorn_server, port):
    """uvicorn's send waits for the client: the connection queues, and closes past the limit,
    while the speaker keeps being answered. The gate's own listener (ws_port) counts what its
    socket holds unread, and closes past the same limit."""
    n = port  # the users' names, apart per run
    log_start = len(uvicorn_server.output())

    def closed_for_it() -> bool:  # the sleeper: the speaker is over TCP
        closing = r"websocket 127\.0\.0\.1>: closing, \d+ bytes wait for it to read"
        return re.search(closing, uvicorn_server.output()[log_start:]) is not None

    speaker = ChatClient(uvicorn_server.tcp_port, transport="tcp")
    sleeper = RawClient(getattr(uvicorn_server, port), rcvbuf=4096, transport="websocket")
    try:
        speaker.request("Login/HD_Login", {"userName": f"uv-speaker-{n}", "passWord": "pw-1-k3y9"})
        sleeper.request(
            "Login/HD_Login/1", {"userName": f"uv-sleeper-{n}", "passWord": "pw-2-k3y9"}
        )
        room = {"roomName": f"uv-slow-{n}"}
        sleeper.request("Chat/HD_JoinChat/2", room)
        speaker.request("Chat/HD_JoinChat", room)
        for _ in range(150):  # up to 9 MB: the kernel's socket buffers take the first megabytes
            speaker.request("Chat/HD_Say", {**room, "content": "x" * 60000})
            if closed_for_it():
                break
        assert closed_for_it()
        assert sleeper.closed_within(10)
        assert speaker.request("HelloWorld/HD_Say", {"say": "ok"})["Result"] == "you say : ok"
    finally:
        speaker.close()
        sleeper.close()


def test_the_gate_listeners_speak_tls_under_uvicorn_and_stop_cleanly(tmp_path):
    """mqtts and wss on the gate's own ports under uvicorn's loop (the socket runs its TLS
    handshake itself, gate.sockets); SIGTERM right after drains with no error."""
    cert, key = self_signed(tmp_path)
    server = ServerProcess(
        tmp_path, asgi_server="uvicorn", mqant={"TLS_CERT": str(cert), "TLS_KEY": str(key)}
    ).start()
    context = ssl.create_default_context(cafile=str(cert))
    connect = encode(Connect("MQTT", 4, "tls", True, 60))
    try:
        tcp = context.wrap_socket(
            socket.create_connection(("127.0.0.1", server.tcp_port)), server_hostname="127.0.0.1"
        )
        tcp.settimeout(5)
        tcp.sendall(connect)
        assert tcp.recv(4) == b" \x02\x00\x00"  # CONNACK 0
        raw = context.wrap_socket(
            socket.create_connection(("127.0.0.1", server.ws_port)), server_hostname="127.0.0.1"
        )
        wss = RawWebSocket(raw, server.ws_port)
        wss.send(connect)
        assert wss.recv(5) == b" \x02\x00\x00"
    finally:
        server.stop()
    log = server.output()
    assert "Traceback" not in log, log
    assert "ERROR" not in log, log
