"""The same application under uvicorn: lifespan starts the modules and the TCP listener, and
both transports chat."""

from collections.abc import Iterator

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.raw import RawClient
from tests.e2e.server import ServerProcess

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


def test_chat_under_uvicorn_over_both_transports(uvicorn_server):
    ws = ChatClient(uvicorn_server.port)
    tcp = ChatClient(uvicorn_server.tcp_port, transport="tcp", mqtt31=True)
    try:
        for client, name in ((ws, "uv-ws"), (tcp, "uv-tcp")):
            login = client.request(
                "Login/HD_Login", {"userName": name, "passWord": "pw-k3y9-" + name}
            )
            assert login["Result"] == f"login success {name}"
            assert client.request("Chat/HD_JoinChat", {"roomName": "uv"})["Error"] == ""
        tcp.request("Chat/HD_Say", {"roomName": "uv", "content": "over tcp"})
        assert ws.wait_json("Chat/OnChat")["msg"] == "over tcp"
    finally:
        ws.close()
        tcp.close()


def test_a_websocket_client_that_stops_reading_is_closed(uvicorn_server):
    """uvicorn's send waits for the client: the connection queues, and closes past the limit,
    while the speaker keeps being answered."""
    speaker = ChatClient(uvicorn_server.tcp_port, transport="tcp")
    sleeper = RawClient(uvicorn_server.port, rcvbuf=4096, transport="websocket")
    try:
        speaker.request("Login/HD_Login", {"userName": "uv-speaker", "passWord": "pw-1-k3y9"})
        sleeper.request("Login/HD_Login/1", {"userName": "uv-sleeper", "passWord": "pw-2-k3y9"})
        sleeper.request("Chat/HD_JoinChat/2", {"roomName": "uv-slow"})
        speaker.request("Chat/HD_JoinChat", {"roomName": "uv-slow"})
        for _ in range(150):  # up to 9 MB: the kernel's socket buffers take the first megabytes
            speaker.request("Chat/HD_Say", {"roomName": "uv-slow", "content": "x" * 60000})
            if "bytes wait for it to read" in uvicorn_server.output():
                break
        assert "websocket 127.0.0.1>: closing, " in uvicorn_server.output()
        assert sleeper.closed_within(10)
        assert speaker.request("HelloWorld/HD_Say", {"say": "ok"})["Result"] == "you say : ok"
    finally:
        speaker.close()
        sleeper.close()
