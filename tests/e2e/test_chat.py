"""What a user does: two real MQTT clients (one MQTT 3.1, one 3.1.1) log in and chat through a
real daphne process, and every error reaches them with mqant's exact text."""

import itertools
import socket

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from mqant import accounts
from tests.e2e.clients import ChatClient

pytestmark = pytest.mark.e2e

_names = itertools.count()

PASSWORD = "sturdy-pass-5521"  # every user's: it passes the password validators


def login(client: ChatClient, name: str) -> None:
    reply = client.request("Login/HD_Login", {"userName": name, "passWord": PASSWORD})
    assert reply == {"Trace": reply["Trace"], "Error": "", "Result": f"login success {name}"}


@pytest.fixture
def users():
    n = next(_names)
    return f"alice{n}", f"bob{n}"


def test_two_clients_log_in_and_chat(connect, users):
    alice_name, bob_name = users
    alice = connect(mqtt31=True)
    bob = connect()
    login(alice, alice_name)
    login(bob, bob_name)
    room = f"room-{alice_name}"
    assert alice.request("Chat/HD_JoinChat", {"roomName": room})["Result"]["users"] == [alice_name]
    joined = bob.request("Chat/HD_JoinChat", {"roomName": room})["Result"]
    assert sorted(joined["users"]) == sorted([alice_name, bob_name])
    assert alice.wait_json("Chat/OnJoin") == {"roomName": room, "user": bob_name}

    said = bob.request("Chat/HD_Say", {"roomName": room, "content": "hi", "target": "*"})
    assert said["Result"] == {"say": "say success"}
    expected = {"roomName": room, "from": bob_name, "target": "*", "msg": "hi"}
    assert alice.wait_json("Chat/OnChat") == expected
    assert bob.wait_json("Chat/OnChat") == expected

    whisper = {"roomName": room, "content": "psst", "target": bob_name}
    assert alice.request("Chat/HD_Say", whisper)["Error"] == ""
    assert bob.wait_json("Chat/OnChat")["msg"] == "psst"
    assert alice.nothing_on("Chat/OnChat")

    # A late joiner reads the room's recent history.
    carol = connect()
    login(carol, f"carol-{alice_name}")
    history = carol.request("Chat/HD_JoinChat", {"roomName": room})["Result"]["history"]
    assert [(h["from"], h["msg"]) for h in history] == [(bob_name, "hi")]
    carol.request("Chat/HD_LeaveChat", {"roomName": room})
    assert alice.wait_json("Chat/OnLeave")["user"] == f"carol-{alice_name}"
    carol.close()

    bob.close()
    assert alice.wait_json("Chat/OnLeave", timeout=5) == {"roomName": room, "user": bob_name}


ERRORS = [
    ("Nope/HD_Say", {"say": "x"}, "Service(type:Nope) not found"),
    ("HelloWorld/Say", {"say": "x"}, "Method(Say) must begin with 'HD_'"),
    ("HelloWorld/HD_Nope", {"say": "x"}, "Remote function(HD_Nope) not found"),
    ("HelloWorld/HD_Say", b"{not json}", "The JSON format is incorrect"),
    ("Chat/HD_Say", {"roomName": "r", "content": "hi", "target": "*"}, "Not Logined"),
    ("Chat/HD_JoinChat", {"roomName": "r"}, "Not Logined"),
]


@pytest.mark.parametrize(("topic", "body", "error"), ERRORS)
def test_error_strings(connect, topic, body, error):
    reply = connect().request(topic, body)
    assert reply["Error"] == error
    assert reply["Result"] is None


def test_topic_without_handler_is_answered_on_that_topic(server):
    guest = ChatClient(server.port)
    try:
        guest.client.publish("HelloWorld", b"{}", qos=1)
        reply = guest.wait_json("HelloWorld")
        assert reply["Error"] == (
            "Topic must be [moduleType@moduleID]/[handler]|[moduleType@moduleID]/[handler]/[msgid]"
        )
    finally:
        guest.close()


def test_wrong_password(connect, users):
    name, _ = users
    first = connect()
    login(first, name)
    reply = first.request("Login/HD_Login", {"userName": name, "passWord": "not-it"})
    assert reply["Error"] == accounts.WRONG_OR_WEAK
    assert first.request("Login/HD_Login", {"userName": name})["Error"] == (
        "userName or passWord cannot be nil"
    )


def test_broken_clients_do_not_disturb_others(server, users):
    name, _ = users
    good = ChatClient(server.port)
    try:
        login(good, name)
        url = f"ws://127.0.0.1:{server.port}/mqtt"

        # Garbage bytes: closed.
        with ws_connect(url, subprotocols=["mqtt"]) as ws:  # type: ignore[list-item]
            ws.send(b"\xff\x00\xff\x00 garbage")
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)

        # A text frame: closed with 4003 (unsupported data).
        with ws_connect(url, subprotocols=["mqtt"]) as ws:  # type: ignore[list-item]
            ws.send("hello")
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4003

        # Half a CONNECT, then the socket goes away.
        with ws_connect(url, subprotocols=["mqtt"]) as ws:  # type: ignore[list-item]
            ws.send(b"\x10\x20\x00\x04MQ")
        raw = socket.create_connection(("127.0.0.1", server.port))
        raw.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n")  # an HTTP request cut short
        raw.close()

        assert good.request("HelloWorld/HD_Say", {"say": "still here"})["Result"] == (
            "you say : still here"
        )
        assert server.alive()
    finally:
        good.close()


def test_login_over_mqtt_is_locked_out_after_repeated_failures(connect, users):
    name, _ = users
    client = connect()
    login(client, name)
    errors = [
        client.request("Login/HD_Login", {"userName": name, "passWord": "wrong"})["Error"]
        for _ in range(6)
    ]
    assert errors[:5] == [accounts.WRONG_OR_WEAK] * 5
    assert errors[5].startswith("Too many failed logins; try again in ")
    # Locked out: even the right password is refused for now.
    reply = client.request("Login/HD_Login", {"userName": name, "passWord": PASSWORD})
    assert reply["Error"].startswith("Too many failed logins")
