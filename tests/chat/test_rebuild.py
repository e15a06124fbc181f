"""A Chat node that starts again rebuilds its rooms from the gates' census (issue 12): the
members are still in the rooms' groups on the gates, only the node's memory was lost. Here the
gate is this process's real inbox, a gate node in the registry; its connections are fakes
that keep the group names they are given, as the gate's connections do."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from channels.layers import get_channel_layer

from chat.rooms import Rooms
from gate import process
from gate.node import GATE_ID
from mqant import Session, owners
from mqant.ops import GroupAdd, GroupDiscard
from tests.api.fakes import FakeConnection
from tests.chat.conftest import StartChat, User

pytestmark = pytest.mark.django_db(transaction=True)


class GateConnection(FakeConnection):
    def group_names(self) -> list[str]:
        names: dict[str, str] = {}
        for op in self.ops:
            if isinstance(op, GroupAdd) and op.name:
                names[op.group] = op.name
            elif isinstance(op, GroupDiscard):
                names.pop(op.group, None)
        return list(names.values())


Open = Callable[[str], Awaitable[User]]


@pytest.fixture
async def on_gate() -> AsyncIterator[Open]:
    """``await on_gate("ann")``: a user on a connection of this process's gate."""
    opened: list[GateConnection] = []

    async def open_user(user_id: str) -> User:
        gate = process.inbox()  # the runtime's, started by start_chat
        channel = await get_channel_layer().new_channel()
        session = Session(
            ip="127.0.0.1",
            network="tcp",
            session_id=f"s-{user_id}",
            server_id=GATE_ID,
            channel=channel,
            user_id=user_id,
        )
        connection = GateConnection(session)
        owners.attach(channel, connection)
        gate.register(session.session_id, connection)  # type: ignore[arg-type]
        opened.append(connection)
        return User(connection)

    yield open_user
    for connection in opened:
        process.inbox().unregister(connection.session.session_id)
        connection.close()


def events(user: User, topic: str) -> list[Any]:
    return [json.loads(payload) for payload in user.pushed(topic)]


async def test_a_restarted_node_finds_its_rooms_and_drops_who_left_meanwhile(
    start_chat: StartChat, on_gate: Open
):
    chat = await start_chat(RebuildAfter=600)
    ann, bob, cat = [await on_gate(name) for name in ("ann", "bob", "cat")]
    for user in (ann, bob, cat):
        await user.join("lobby")
    await cat.join("kitchen")
    joins = len(events(ann, "Chat/OnJoin"))

    chat.rooms = Rooms()  # the node's memory is lost, the gate's groups are not
    assert await chat.rebuild() == (4, 0)

    assert chat.rooms.members_of("lobby") == ["ann", "bob", "cat"]
    assert chat.rooms.members_of("kitchen") == ["cat"]
    assert await bob.say("lobby", "still here?") == {"say": "say success"}
    assert len(events(ann, "Chat/OnJoin")) == joins  # nobody joined: nobody is told
    assert events(ann, "Chat/OnLeave") == []

    process.inbox().unregister(
        cat.session.session_id
    )  # cat's connection closed; this node never heard
    assert await chat.rebuild() == (0, 2)
    assert chat.rooms.members_of("lobby") == ["ann", "bob"]
    assert chat.rooms.get("kitchen") is None
    assert events(ann, "Chat/OnLeave") == [{"roomName": "lobby", "user": "cat"}]
    assert events(bob, "Chat/OnLeave") == [{"roomName": "lobby", "user": "cat"}]

    assert await chat.rebuild() == (0, 0)  # agreeing already: nothing changes


async def test_a_member_who_left_the_room_is_not_put_back(start_chat: StartChat, on_gate: Open):
    chat = await start_chat(RebuildAfter=600)
    ann, bob = await on_gate("ann"), await on_gate("bob")
    await ann.join("lobby")
    await bob.join("lobby")
    await bob.leave("lobby")  # bob's connection leaves the room's group
    chat.rooms = Rooms()
    assert await chat.rebuild() == (1, 0)
    assert chat.rooms.members_of("lobby") == ["ann"]


async def test_a_member_of_a_gate_that_is_not_asked_stays(start_chat: StartChat, user):
    chat = await start_chat(RebuildAfter=600)
    elsewhere = await user("eve")  # on "gate-test", which is no gate node: never answers
    await elsewhere.join("lobby")
    assert await chat.rebuild() == (0, 0)
    assert chat.rooms.members_of("lobby") == ["eve"]


async def test_members_are_told_of_a_leave_no_chat_node_heard(start_chat: StartChat, on_gate: Open):
    """cat's connection closed while no Chat node ran: the gate kept the end, with the
    rooms' groups it was in and no Chat among the modules told."""
    chat = await start_chat(RebuildAfter=600)
    ann, bob, cat = [await on_gate(name) for name in ("ann", "bob", "cat")]
    for user in (ann, bob, cat):
        await user.join("lobby")
    names = cat.connection.group_names()  # type: ignore[attr-defined]
    process.inbox().unregister(cat.session.session_id)
    process.inbox().closes.record(cat.session, names, told=["Login"])
    process.inbox().closes.record(
        ann.session, ["chat.room.kitchen"], told=["Chat"]
    )  # heard: not told
    chat.rooms = Rooms()

    assert await chat.rebuild() == (2, 0)
    assert events(ann, "Chat/OnLeave") == [{"roomName": "lobby", "user": "cat"}]
    assert events(bob, "Chat/OnLeave") == [{"roomName": "lobby", "user": "cat"}]
    assert await chat.rebuild() == (0, 0)
    assert len(events(ann, "Chat/OnLeave")) == 1  # told once, however many rebuilds


async def test_no_leave_for_a_user_back_in_the_room(start_chat: StartChat, on_gate: Open):
    chat = await start_chat(RebuildAfter=600)
    ann, cat = await on_gate("ann"), await on_gate("cat")
    await ann.join("lobby")
    await cat.join("lobby")
    old = Session.from_state({**cat.session.state(), "session_id": "s-cat-before"})
    process.inbox().closes.record(old, ["chat.room.lobby"], told=[])  # cat left, then came back
    chat.rooms = Rooms()
    assert await chat.rebuild() == (2, 0)
    assert events(ann, "Chat/OnLeave") == []
