"""Hostile users against the account policy, on a real server with production defaults: JSON
bombs, password guessing in parallel on every way in (MQTT, REST, HTTP calls, the admin),
logins that hog the CPU, and accounts made past the validators and budgets. After each
attack a bystander from another address still logs in, joins and says within bounds, and
the server's memory stays bounded."""

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from gate.mqtt import Publish, encode_publish
from mqant import accounts
from tests.e2e.admin_client import AdminClient, create_superuser
from tests.e2e.attack import (
    Bystander,
    attacker_address,
    hostile_server,
    http_request,
    register,
    unharmed,
)
from tests.e2e.raw import RawClient
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e

PASSWORD = "sturdy-pass-5521"
LOCKED = "Too many failed logins"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default site with production defaults (DEBUG off, every limit's default)."""
    yield from hostile_server(tmp_path_factory.mktemp("hostile-accounts"))


@pytest.fixture(scope="module")
def bystander(server: ServerProcess) -> Bystander:
    return Bystander(server, name="acct-bystander")


@pytest.fixture(autouse=True)
def still_served(server: ServerProcess, bystander: Bystander) -> Iterator[None]:
    yield
    unharmed(server, bystander)


def pipelined_logins(
    port: int, source: str, bodies: list[dict[str, str]], timeout: float = 30
) -> list[str]:
    """Send every login at once on one TCP connection; the Error (or Result) of each."""
    raw = RawClient(port, source=source)
    try:
        topics = [f"Login/HD_Login/{n}" for n in range(len(bodies))]
        raw.send(
            b"".join(
                encode_publish(t, json.dumps(b).encode())
                for t, b in zip(topics, bodies, strict=True)
            )
        )
        answers: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while len(answers) < len(topics) and time.monotonic() < deadline:
            packet = raw.next_packet(timeout=max(0.1, deadline - time.monotonic()))
            if isinstance(packet, Publish) and packet.topic in topics:
                reply = json.loads(packet.payload)
                answers[packet.topic] = reply["Error"] or reply["Result"]
        return [answers.get(t, "no answer") for t in topics]
    finally:
        raw.close()


def login_once(server: ServerProcess, source: str, body: dict[str, str]) -> str:
    """One login on a connection of its own (a login as another user ends the session)."""
    return pipelined_logins(server.tcp_port, source, [body])[0]


def test_a_json_bomb_is_a_400_never_a_settings_page(server):
    for path in ("/api/auth/login/", "/api/auth/register/"):
        reply = http_request(server.port, "POST", path, b"[" * 200_000, source=attacker_address())
        assert reply.status == 400, reply
        for leak in (b"Traceback", b"SECRET_KEY", b"DATABASES", b"settings"):
            assert leak not in reply.body


def test_parallel_guesses_over_mqtt_check_no_more_passwords_than_the_lockout_allows(server):
    register(server.port, "acct-victim1", PASSWORD, attacker_address())
    source = attacker_address()
    guesses = [{"userName": "acct-victim1", "passWord": f"guess-{n}-xyz"} for n in range(60)]
    with ThreadPoolExecutor(6) as pool:  # 6 connections, 10 guesses each, all at once
        chunks = [guesses[n::6] for n in range(6)]
        answered = pool.map(lambda c: pipelined_logins(server.tcp_port, source, c), chunks)
        answers = [answer for chunk in answered for answer in chunk]
    checked = answers.count(accounts.WRONG_OR_WEAK)
    assert 1 <= checked <= 5, answers  # LOGIN_LOCKOUT USER_FAILURES
    refusals = (LOCKED, "Too many logins from this address", "The server is busy")
    refused = [a for a in answers if a.startswith(refusals)]
    assert len(refused) == 60 - checked, answers
    # The guesses that remain (one may have met a busy server) lock the user name out, right
    # password or not, from any address.
    source = attacker_address()
    for n in range(5 - checked):
        wrong = {"userName": "acct-victim1", "passWord": f"more-{n}-xyz"}
        assert pipelined_logins(server.tcp_port, source, [wrong]) == [accounts.WRONG_OR_WEAK]
    right = {"userName": "acct-victim1", "passWord": PASSWORD}
    assert pipelined_logins(server.tcp_port, attacker_address(), [right])[0].startswith(LOCKED)


def test_parallel_guesses_over_rest_check_no_more_passwords_than_the_lockout_allows(server):
    register(server.port, "acct-victim2", PASSWORD, attacker_address())
    source, start = attacker_address(), threading.Barrier(20)

    def guess(n: int) -> int:
        start.wait()
        body = {"username": "acct-victim2", "password": f"guess-{n}-xyz"}
        return http_request(server.port, "POST", "/api/auth/login/", body, source=source).status

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(guess, range(20)))
    assert 1 <= statuses.count(400) <= 5, statuses
    # The others: locked out (429), or the address's hashes were all queued already (503).
    assert statuses.count(429) + statuses.count(503) == 20 - statuses.count(400), statuses


def test_a_login_over_http_tells_no_right_password_from_a_wrong_one(server):
    source = attacker_address()
    token = register(server.port, "acct-http", PASSWORD, source)
    auth = {"Authorization": f"Token {token}"}
    answers = [
        http_request(
            server.port, "POST", "/api/call/Login/HD_Login",
            {"userName": "acct-http", "passWord": password}, source=source, headers=auth,
        ).json()["Error"]
        for password in (PASSWORD, "wrong-pass-123")
    ]  # fmt: skip
    assert answers == ["The session has no live connection"] * 2


def test_the_admin_login_is_locked_out_like_every_other_way_in(server):
    create_superuser(server, "acct-admin", "admin-pass-8841")
    for _ in range(5):
        with pytest.raises(AssertionError, match="admin login failed"):
            AdminClient(server, "acct-admin", "not-the-password")
    with pytest.raises(AssertionError, match="admin login failed"):
        AdminClient(server, "acct-admin", "admin-pass-8841")  # the right one, locked out
    reply = http_request(
        server.port, "POST", "/api/auth/login/",
        {"username": "acct-admin", "password": "admin-pass-8841"}, source=attacker_address(),
    )  # fmt: skip
    assert reply.status == 429  # one count for every way in


def test_auto_register_goes_through_the_validators_and_the_budget(server):
    source = attacker_address()
    register(server.port, "acct-existing", PASSWORD, attacker_address())
    weak, wrong = pipelined_logins(
        server.tcp_port,
        source,
        [
            {"userName": "acct-newname", "passWord": "1"},
            {"userName": "acct-existing", "passWord": "not-it-4451"},
        ],
    )
    assert weak == wrong == accounts.WRONG_OR_WEAK  # no answer says whether a name is taken
    # REGISTER_RATE_PER_ADDRESS: 10 an hour, for the REST register and HD_Login alike.
    source = attacker_address()
    made = [
        login_once(server, source, {"userName": f"acct-more{n}", "passWord": PASSWORD})
        for n in range(11)
    ]
    assert made[:10] == [f"login success acct-more{n}" for n in range(10)], made
    assert sum(a.startswith("Too many new accounts from this address") for a in made) == 1, made
    rest = http_request(
        server.port, "POST", "/api/auth/register/", {"username": "acct-rest", "password": PASSWORD},
        source=source,
    )  # fmt: skip
    assert rest.status == 429


def test_logins_in_flight_from_other_addresses_do_not_slow_a_bystander(server, bystander):
    """Three addresses keep 20 logins in flight each (each one hashes a password, about
    0.3 s of CPU): the bystander's own login, its join and its say stay within bounds."""
    names = [f"acct-hog{n}" for n in range(3)]
    for name in names:
        register(server.port, name, PASSWORD, attacker_address())
    stop = time.monotonic() + 8
    answers: list[str] = []

    def hog(name: str) -> None:
        source, body = attacker_address(), {"userName": name, "passWord": PASSWORD}
        while time.monotonic() < stop:
            try:
                answers.extend(pipelined_logins(server.tcp_port, source, [body] * 20))
            except (AssertionError, ConnectionError):  # refused at CONNECT: past its budget
                time.sleep(0.2)

    with ThreadPoolExecutor(3) as pool:
        attacks = [pool.submit(hog, name) for name in names]
        time.sleep(1)
        for _ in range(3):
            bystander.check()
        for attack in attacks:
            attack.result()
    assert any(a.startswith("login success") for a in answers)
    assert any(a.startswith(("The server is busy", "Too many logins")) for a in answers)
