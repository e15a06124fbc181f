"""Chat asks Login who is online (module-to-module RPC): HD_JoinChat's ``online`` is the sum
of every Login node's count of users logged in through it."""

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from channels.layers import get_channel_layer

from mqant import Session, call, owners, runtime
from mqant import events as mqant_events
from mqant.ops import Bind, SessionOp
from mqant.types import SessionState


class FakeConnection:
    """A live connection as the gate would hold it: applies session changes, keeps pushes."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pushed: list[tuple[str, Any]] = []

    async def apply_session_op(self, op: SessionOp) -> SessionState:
        if isinstance(op, Bind):
            self.session.user_id = op.user_id
        return self.session.state()

    async def deliver(self, topic: str, payload: bytes) -> None:
        self.pushed.append((topic, json.loads(payload)))

    async def deliver_many(self, packets: Sequence[tuple[str, bytes]]) -> None:
        for topic, payload in packets:
            await self.deliver(topic, payload)


@pytest.fixture
def connect():
    """Opens fake connections, reachable through mqant.owners; detached after the test."""
    channels: list[str] = []

    async def open_connection(session_id: str) -> Session:
        channel = await get_channel_layer().new_channel()
        session = Session(
            ip="127.0.0.1", network="tcp", session_id=session_id, server_id="G", channel=channel
        )
        owners.attach(channel, FakeConnection(session))
        channels.append(channel)
        return session

    yield open_connection
    for channel in channels:
        owners.detach(channel)


def copy(session: Session) -> Session:
    """What a handler receives: a copy of the live session."""
    return Session.from_state(session.state())


@pytest.fixture
async def app(settings, request):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    modules = getattr(request, "param", None)
    settings.MQANT = {**settings.MQANT, "CONFIG": None, "MODULES": modules}
    started = (await runtime.start()).app
    yield started
    await runtime.stop()
    await get_channel_layer().flush()


# Valid for Django's password validators, which an auto-registration applies.
PASSWORD = "online-pass-5521"


async def login(session: Session, name: str) -> None:
    reply = await call(
        "Login", "HD_Login", copy(session), {"userName": name, "passWord": "pw-k3y9-pass"}
    )
    assert reply == f"login success {name}"


@pytest.mark.django_db(transaction=True)
async def test_join_tells_how_many_users_are_online(app, connect):
    alice, bob, bob_again = await connect("s-alice"), await connect("s-bob"), await connect("s-b2")
    await login(alice, "alice")
    await login(bob, "bob")
    await login(bob_again, "bob")  # one user, two connections
    joined = await call("Chat", "HD_JoinChat", copy(alice), {"roomName": "lobby"})
    assert joined["users"] == ["alice"]
    assert joined["online"] == 2

    await mqant_events.session_closed(copy(bob))  # the gate reports bob's first connection gone
    await mqant_events.session_closed(copy(bob_again))
    for _ in range(100):
        if await call("Login", "online_count") == 1:
            break
        await asyncio.sleep(0.01)
    joined = await call("Chat", "HD_JoinChat", copy(alice), {"roomName": "other"})
    assert joined["online"] == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("app", [["Chat"]], indirect=True)
async def test_online_is_null_when_no_login_node_answers(app, connect):
    alice = await connect("s-alice")
    await owners.session_op(alice.channel, Bind("alice"))
    alice.user_id = "alice"
    joined = await call("Chat", "HD_JoinChat", copy(alice), {"roomName": "lobby"})
    assert joined == {"users": ["alice"], "userCount": 1, "history": [], "online": None}
