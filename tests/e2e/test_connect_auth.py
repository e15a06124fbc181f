"""Credentials at CONNECT (CONNECT_AUTH). By default they are ignored, as mqant does: its
clients send fixed ones (admin/password) and must connect, and must never lock an account
of that name out. With "optional" a Django password or a REST token binds the session at
once and wrong ones get CONNACK 4; with "required" anonymous clients are refused (5)."""

import json
import urllib.request
from collections.abc import Iterator

import pytest

from gate.mqtt import ConnAck, Connect, encode
from tests.e2e.raw import RawClient
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("auth"), mqant={"CONNECT_AUTH": "optional"})
    yield proc.start()
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default run's policy, with its per-address account budgets."""
    proc = ServerProcess(tmp_path_factory.mktemp("mqant-way"), account_budgets=True)
    yield proc.start()
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()


def test_by_default_mqants_fixed_credentials_connect_and_lock_nobody_out(default_server):
    """mqant's Python chat client: MQTT 3.1 (MQIsdp), user admin, password "password", the
    same client id on every connection, reconnecting again and again; then Login/HD_Login."""
    register(default_server, "admin", "the-real-admin-pass")
    for _ in range(12):  # past the lockout's 5 failures per user name, had they counted
        raw = RawClient(default_server.tcp_port, connect=False)
        raw.send(encode(Connect("MQIsdp", 3, "111", True, 30, username="admin",
                                password=b"password")))  # fmt: skip
        assert raw.next_packet() == ConnAck(0)
        # A guest: the credentials were not read, so nothing is bound.
        joined = raw.request("Chat/HD_JoinChat/1", {"roomName": "r"})
        assert joined["Error"] == "Not Logined"
        raw.close()
    login = RawClient(default_server.tcp_port).request(
        "Login/HD_Login/1", {"userName": "admin", "passWord": "the-real-admin-pass"}
    )
    assert login["Error"] == "", login


def connect(server: ServerProcess, user: str | None, password: str | None) -> RawClient:
    raw = RawClient(server.tcp_port, connect=False)
    secret = password.encode() if password is not None else None
    raw.send(encode(Connect("MQTT", 4, "", True, 60, username=user, password=secret)))
    return raw


def rest_token(server: ServerProcess, user: str, password: str) -> str:
    body = json.dumps({"username": user, "password": password}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/api/auth/login/",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        token: str = json.loads(response.read())["token"]
    return token


def register(server: ServerProcess, user: str, password: str) -> None:
    first = RawClient(server.tcp_port)
    reply = first.request("Login/HD_Login/1", {"userName": user, "passWord": password})
    assert reply["Error"] == "", reply
    first.close()


def test_password_binds_at_connect(server):
    register(server, "conn-pw", "good-pass-987")
    raw = connect(server, "conn-pw", "good-pass-987")
    assert raw.next_packet() == ConnAck(0)
    joined = raw.request("Chat/HD_JoinChat/1", {"roomName": "auth"})  # no HD_Login needed
    assert joined["Result"]["users"] == ["conn-pw"]


def test_wrong_password_gets_connack_4(server):
    register(server, "conn-bad", "good-pass-987")
    raw = connect(server, "conn-bad", "wrong")
    assert raw.next_packet() == ConnAck(4)
    assert raw.closed_within(3)
    assert connect(server, "nobody-here", "x").next_packet() == ConnAck(4)


def test_rest_token_as_password(server):
    register(server, "conn-token", "good-pass-987")
    token = rest_token(server, "conn-token", "good-pass-987")
    raw = connect(server, "conn-token", token)
    assert raw.next_packet() == ConnAck(0)
    assert raw.request("Chat/HD_JoinChat/1", {"roomName": "t"})["Error"] == ""
    assert connect(server, "conn-pw", token).next_packet() == ConnAck(4)  # not their token


def test_anonymous_still_works_when_credentials_are_optional(server):
    raw = connect(server, None, None)
    assert raw.next_packet() == ConnAck(0)
    assert raw.request("Chat/HD_JoinChat/1", {"roomName": "r"})["Error"] == "Not Logined"


def test_required_auth_refuses_anonymous(tmp_path):
    proc = ServerProcess(tmp_path, mqant={"CONNECT_AUTH": "required"}).start()
    try:
        assert connect(proc, None, None).next_packet() == ConnAck(5)
        register_refused = RawClient(proc.tcp_port, connect=False)
        register_refused.send(encode(Connect("MQIsdp", 3, "x", True, 60)))
        assert register_refused.next_packet() == ConnAck(5)
    finally:
        proc.stop()


def test_guesses_at_connect_lock_the_user_out(server):
    # The same lockout as Login/HD_Login and the REST login: 5 failures per user name.
    register(server, "conn-guessed", "good-pass-987")
    for n in range(5):
        assert connect(server, "conn-guessed", f"guess-{n}").next_packet() == ConnAck(4)
    assert connect(server, "conn-guessed", "good-pass-987").next_packet() == ConnAck(4)
    reply = RawClient(server.tcp_port).request(
        "Login/HD_Login/1", {"userName": "conn-guessed", "passWord": "good-pass-987"}
    )
    assert "Too many failed logins" in reply["Error"]
    # Other users are not locked out.
    register(server, "conn-unguessed", "good-pass-987")
    assert connect(server, "conn-unguessed", "good-pass-987").next_packet() == ConnAck(0)
