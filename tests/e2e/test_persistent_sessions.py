"""Persistent sessions, as a phone that loses its network uses them: a client that connected
with clean session 0 (MQTT 3.1.1) or a Session Expiry Interval (MQTT 5) vanishes while in a
room, messages are said, and it comes back with the same client id: every Chat/OnChat it
missed arrives once, in order, at QoS 1 -- on the same gate, and on the other gate of a
deployment over Redis, even once the gate that held it was killed (kill -9)."""

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.deployment import Deployment, two_gates
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e


def password(name: str) -> str:
    return "pw-k3y9-" + name


def user(port: int, name: str, **options: Any) -> ChatClient:
    """``name`` logged in (its CONNECT bringing its credentials, which resuming needs)."""
    client = ChatClient(port, transport="tcp", credentials=(name, password(name)), **options)
    reply = client.request("Login/HD_Login", {"userName": name, "passWord": password(name)})
    assert reply["Result"] == f"login success {name}", reply
    return client


def phone(port: int, **options: Any) -> ChatClient:
    """alice's phone: client id "alice-phone", a persistent session, alice's credentials."""
    options = {"client_id": "alice-phone", "clean_session": False, **options}
    return ChatClient(port, transport="tcp", credentials=("alice", password("alice")), **options)


def join(client: ChatClient, room: str = "lobby") -> None:
    assert client.request("Chat/HD_JoinChat", {"roomName": room})["Error"] == ""


def say(client: ChatClient, *texts: str, room: str = "lobby") -> None:
    for text in texts:
        body = {"roomName": room, "content": text, "target": "*"}
        assert client.request("Chat/HD_Say", body)["Error"] == ""


def chats(client: ChatClient, count: int) -> list[str]:
    return [client.wait_json("Chat/OnChat")["msg"] for _ in range(count)]


@pytest.fixture(scope="module")
def small_queues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose sessions queue 3 pushes at most and expire after 2 s at most, and where
    one address holds 4 persistent sessions at most."""
    server = ServerProcess(
        tmp_path_factory.mktemp("small-queues"),
        mqant={
            "SESSION_QUEUE_MAX_MESSAGES": 3,
            "SESSION_EXPIRY_MAX": 2,
            "PERSISTENT_SESSIONS_PER_ADDRESS": 4,
        },
    ).start()
    yield server
    server.stop()
    assert "Traceback" not in server.output(), server.output()


def test_a_phone_back_within_the_expiry_gets_what_it_missed_once_in_order(server):
    alice = phone(server.tcp_port)
    assert alice.connack()[0] is False  # nothing to resume the first time
    reply = alice.request("Login/HD_Login", {"userName": "alice", "passWord": password("alice")})
    assert reply["Error"] == ""
    join(alice)
    bob = user(server.tcp_port, "bob")
    join(bob)
    assert alice.wait_json("Chat/OnJoin")["user"] == "bob"
    alice.drop()
    said = [f"while away {i}" for i in range(5)]
    say(bob, *said)
    back = phone(server.tcp_port)
    try:
        assert back.connack()[0] is True  # session present
        assert chats(back, 5) == said
        assert back.nothing_on("Chat/OnChat", within=0.5)  # once each
        # Still in the room, still alice, without logging in again:
        say(bob, "live again")
        assert chats(back, 1) == ["live again"]
        say(back, "hello from the phone")
        heard = [bob.wait_json("Chat/OnChat") for _ in range(len(said) + 2)]  # his own too
        assert heard[-1] == {
            "roomName": "lobby",
            "from": "alice",
            "target": "*",
            "msg": "hello from the phone",
        }
    finally:
        back.close()
        bob.close()


def test_another_user_cannot_take_the_session_of_a_client_id(server):
    mallory_creds = ("mallory", password("mallory"))
    alice = phone(server.tcp_port, client_id="alice-tablet")
    alice.connack()
    alice.request("Login/HD_Login", {"userName": "alice", "passWord": password("alice")})
    alice.drop()
    time.sleep(0.3)  # the gate has seen the socket close
    as_guest = ChatClient(
        server.tcp_port, transport="tcp", client_id="alice-tablet", clean_session=False
    )
    present, code, _ = as_guest.connack()
    assert not present
    assert str(code) == "Not authorized"  # 3.1.1's CONNACK 5, as paho names it
    as_mallory = ChatClient(
        server.tcp_port, transport="tcp", client_id="alice-tablet", clean_session=False,
        credentials=mallory_creds,
    )  # fmt: skip
    assert str(as_mallory.connack()[1]) == "Not authorized"
    for client in (as_guest, as_mallory):
        client.close()


def test_mqants_shared_client_id_with_clean_sessions_works_as_before(server):
    """mqant's page connects every browser as "111" with clean session: no takeover."""
    one = ChatClient(server.tcp_port, transport="tcp", client_id="111")
    two = ChatClient(server.tcp_port, transport="tcp", client_id="111")
    try:
        for client in (one, two):
            reply = client.request("HelloWorld/HD_Say", {"say": "hi"})
            assert reply["Result"] == "you say : hi"
        assert one.disconnects == two.disconnects == 0
    finally:
        one.close()
        two.close()


def test_a_queue_past_its_bound_keeps_the_newest_and_says_how_many_it_dropped(small_queues):
    port = small_queues.tcp_port
    alice = phone(port, mqtt5=True, session_expiry=60)
    alice.connack()
    alice.request("Login/HD_Login", {"userName": "alice", "passWord": password("alice")})
    join(alice)
    bob = user(port, "bob")
    join(bob)
    alice.drop()
    say(bob, "one", "two", "three", "four", "five")
    back = phone(port, mqtt5=True, session_expiry=60)
    try:
        present, code, properties = back.connack()
        assert present
        assert code == 0
        assert ("dropped", "2") in properties.UserProperty
        assert json.loads(back.wait_for("Gate/OnDropped")) == {"dropped": 2}
        assert chats(back, 3) == ["three", "four", "five"]
        assert back.nothing_on("Chat/OnChat", within=0.3)
        # The server capped the session's expiry at its 2 s, and said so:
        assert properties.SessionExpiryInterval == 2
    finally:
        back.close()
        bob.close()


def test_a_session_that_expired_is_gone(small_queues):
    port = small_queues.tcp_port
    alice = phone(port, mqtt5=True, session_expiry=1, client_id="alice-watch")
    alice.connack()
    alice.request("Login/HD_Login", {"userName": "alice", "passWord": password("alice")})
    join(alice, "garden")
    bob = user(port, "bob")
    join(bob, "garden")
    alice.drop()
    say(bob, "lost", room="garden")
    time.sleep(1.8)  # past the 1 s expiry
    assert bob.wait_json("Chat/OnLeave", timeout=5) == {"roomName": "garden", "user": "alice"}
    back = phone(port, mqtt5=True, session_expiry=1, client_id="alice-watch")
    try:
        assert back.connack()[0] is False
        assert back.nothing_on("Chat/OnChat", within=0.5)
    finally:
        back.close()
        bob.close()


@pytest.fixture
def deployment(tmp_path, redis_space, postgres_url) -> Iterator[Deployment]:
    env = {**redis_space.env("pubsub"), "DATABASE_URL": postgres_url}
    with two_gates(tmp_path, env, {"RPC_TIMEOUT": 3.0}) as running:
        yield running


def until_modules(client: ChatClient, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while client.request("HelloWorld/HD_Say", {"say": "hi"})["Error"]:
        assert time.monotonic() < deadline, "the module process did not come up"
        time.sleep(0.2)


def test_on_the_other_gate_and_after_a_kill_9_of_the_first(deployment):
    """Over Redis the queue outlives the gate that held the session: alice drops off gate 1,
    bob says three messages there, gate 1 is killed, and alice's phone gets all three on
    gate 2. Then, on gate 2, it drops and comes back again."""
    gate1, gate2 = deployment.gates
    alice = phone(gate1.tcp_port)
    alice.connack()
    until_modules(alice)
    alice.request("Login/HD_Login", {"userName": "alice", "passWord": password("alice")})
    join(alice)
    bob = user(gate1.tcp_port, "bob")
    join(bob)
    alice.drop()
    say(bob, "a", "b", "c")
    bob.close()
    assert gate1.process is not None
    gate1.process.send_signal(signal.SIGKILL)
    gate1.process.wait(timeout=10)
    back = phone(gate2.tcp_port)
    try:
        assert back.connack()[0] is True
        assert chats(back, 3) == ["a", "b", "c"]
        assert back.nothing_on("Chat/OnChat", within=0.5)
    finally:
        back.drop()
    again = phone(gate2.tcp_port)
    try:
        assert again.connack()[0] is True
        assert again.nothing_on("Chat/OnChat", within=0.3)  # all acknowledged: none again
    finally:
        again.close()


def test_a_second_connection_takes_the_session_and_the_first_hears_why(server):
    first = ChatClient(
        server.tcp_port, transport="tcp", client_id="taken", clean_session=False, mqtt5=True,
        session_expiry=30,
    )  # fmt: skip
    first.connack()
    second = ChatClient(
        server.tcp_port, transport="tcp", client_id="taken", clean_session=False, mqtt5=True,
        session_expiry=30,
    )  # fmt: skip
    try:
        assert second.connack()[0] is True  # the session goes on here
        deadline = time.monotonic() + 5
        while not first.disconnect_reasons and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [str(code) for code in first.disconnect_reasons] == ["Session taken over"]
    finally:
        first.drop()
        second.close()


def test_an_address_holds_a_bounded_number_of_persistent_sessions(small_queues):
    port = small_queues.tcp_port
    kept = [
        ChatClient(port, transport="tcp", client_id=f"many-{i}", clean_session=False)
        for i in range(4)
    ]
    for client in kept:
        assert str(client.connack()[1]) == "Success"
    refused = ChatClient(
        port, transport="tcp", client_id="many-4", mqtt5=True, clean_session=False,
        session_expiry=10,
    )  # fmt: skip
    code, properties = refused.connack()[1:]
    assert str(code) == "Quota exceeded"
    assert properties.ReasonString == "Too many persistent sessions from your address"
    clean = ChatClient(port, transport="tcp", client_id="many-5")  # a clean one is no session
    assert str(clean.connack()[1]) == "Success"
    for client in (*kept, refused, clean):
        client.close()


def test_a_clean_session_subscribed_at_qos_1_gets_its_pushes_at_qos_1(server):
    carol = user(server.tcp_port, "carol", qos=1)
    join(carol, "qos-room")
    carol.client.subscribe("Chat/OnChat", qos=1)
    time.sleep(0.2)  # the SUBACK
    say(carol, "at least once", room="qos-room")
    assert chats(carol, 1) == ["at least once"]
    assert carol.qos_of["Chat/OnChat"] == 1
    assert carol.qos_of["Chat/HD_Say/3"] == 0  # the reply, as ever
    carol.close()
