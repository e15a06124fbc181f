"""The REST API against a real server while an MQTT client talks: a handler called with curl
runs as the token's user, and Chat's pushes reach that user's live connection."""

import json
import subprocess
from typing import Any

import pytest

from tests.e2e.clients import ChatClient

pytestmark = pytest.mark.e2e

PASSWORD = "live-pass-2024"


def curl(port: int, path: str, body: Any = None, token: str = "") -> Any:
    """POST (GET without a body) ``path`` on the loopback server; the decoded JSON reply."""
    command = ["curl", "--silent", "--show-error", "--fail", "--max-time", "15"]
    if token:
        command += ["-H", f"Authorization: Token {token}"]
    if body is not None:
        command += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    command.append(f"http://127.0.0.1:{port}{path}")
    done = subprocess.run(command, capture_output=True, check=True, timeout=20)
    return json.loads(done.stdout)


def test_a_call_over_http_speaks_in_the_users_room(server):
    registered = curl(server.port, "/api/auth/register/", {"username": "u1", "password": PASSWORD})
    token = registered["token"]
    u1 = ChatClient(server.port)
    try:
        login = u1.request("Login/HD_Login", {"userName": "u1", "passWord": PASSWORD})
        assert login["Result"] == "login success u1"
        assert u1.request("Chat/HD_JoinChat", {"roomName": "r"})["Error"] == ""

        said = curl(
            server.port, "/api/call/Chat/HD_Say", {"roomName": "r", "content": "via http"}, token
        )
        assert said["Error"] == ""
        assert said["Result"] == {"say": "say success"}
        assert u1.wait_json("Chat/OnChat") == {
            "roomName": "r", "from": "u1", "target": "*", "msg": "via http"
        }  # fmt: skip

        hello = curl(server.port, "/api/call/HelloWorld/HD_Say", {"say": "hi"}, token)
        assert (hello["Error"], hello["Result"]) == ("", "you say : hi")
        assert len(hello["Trace"]) == 32

        rooms = curl(server.port, "/api/rooms/", token=token)["results"]
        assert {"name": "r", "message_count": 1, "members_online": 1} in rooms
        history = curl(server.port, "/api/rooms/r/messages/", token=token)
        assert [(m["from"], m["msg"]) for m in history["results"]] == [("u1", "via http")]
    finally:
        u1.close()
