"""A room's pushes cost one channel-layer message per gate process, whatever its size: the
members here are connections of this process's real inbox, which fans the message out."""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from channels.layers import get_channel_layer

from gate import process
from gate.inbox import Inbox
from gate.node import GATE_ID
from mqant import Session, call, owners
from mqant.ops import GroupAdd, GroupDiscard, SessionOp
from mqant.types import SessionState
from tests.chat.conftest import StartChat

pytestmark = pytest.mark.django_db(transaction=True)

MEMBERS = 20


class Member:
    """A connection of the gate's inbox: its groups are the inbox's record."""

    def __init__(self, gate: Inbox, session: Session) -> None:
        self.gate = gate
        self.session = session
        self.pushes: list[tuple[str, Any]] = []

    def post(self, event: Any) -> None:
        raise AssertionError(f"no event is addressed to a member here, got {event!r}")

    async def apply_session_op(self, op: SessionOp) -> SessionState:
        if isinstance(op, GroupAdd):
            await self.gate.add(op.group, self, op.name)
        elif isinstance(op, GroupDiscard):
            await self.gate.discard(op.group, self)
        return self.session.state()

    async def deliver(self, topic: str, payload: bytes) -> None:
        self.pushes.append((topic, json.loads(payload)))

    async def deliver_many(self, packets: Sequence[tuple[str, bytes]]) -> None:
        for topic, payload in packets:
            await self.deliver(topic, payload)

    def group_names(self) -> list[str]:
        return self.gate.group_names(self)

    def got(self, topic: str) -> list[Any]:
        return [event for t, event in self.pushes if t == topic]


class CountingLayer:
    """Wraps the in-memory layer's ``send``, counting the pushes that reach a channel (its
    ``group_send`` sends through it, once to each channel in the group)."""

    def __init__(self, layer: Any) -> None:
        self._send = layer.send
        self.sent = 0

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        if message.get("type") in ("gate.send", "gate.fanout"):
            self.sent += 1
        await self._send(channel, message)


@pytest.fixture
async def members() -> AsyncIterator[Callable[[str], Awaitable[Member]]]:
    opened: list[Member] = []

    async def open_member(user_id: str) -> Member:
        gate = process.inbox()  # the runtime's, started by start_chat
        key = f"s-{user_id}"
        session = Session(
            ip="127.0.0.1",
            network="tcp",
            session_id=key,
            server_id=GATE_ID,
            channel=gate.address(key),
            user_id=user_id,
        )
        member = Member(gate, session)
        owners.attach(session.channel, member)
        gate.register(key, member)
        opened.append(member)
        return member

    yield open_member
    gate = process.inbox()
    for member in opened:
        await gate.discard_all(member)
        gate.unregister(member.session.session_id)
        owners.detach(member.session.channel)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(3):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_join_and_a_leave_cost_one_message_each_for_the_room(
    start_chat: StartChat,
    members: Callable[[str], Awaitable[Member]],
    monkeypatch: Any,
    settings: Any,
):
    # Through the layer, as between processes: a session operation too (the inbox applies
    # a group's join or leave itself).
    settings.MQANT = {**settings.MQANT, "RPC_LOCAL_SHORTCUT": False}
    await start_chat()
    room = [await members(f"u{n}") for n in range(MEMBERS)]
    for member in room:
        await call("Chat", "HD_JoinChat", member.session, {"roomName": "big"})
    layer = CountingLayer(get_channel_layer())
    monkeypatch.setattr(get_channel_layer(), "send", layer.send)
    newcomer = await members("new")

    await call("Chat", "HD_JoinChat", newcomer.session, {"roomName": "big"})

    assert layer.sent == 1
    joined = {"roomName": "big", "user": "new"}
    await until(lambda: all(joined in member.got("Chat/OnJoin") for member in room))
    await call("Chat", "HD_LeaveChat", newcomer.session, {"roomName": "big"})
    assert layer.sent == 2
    left = {"roomName": "big", "user": "new"}
    await until(lambda: all(left in member.got("Chat/OnLeave") for member in room))
    await asyncio.sleep(0.05)
    assert newcomer.got("Chat/OnJoin") == []  # not told of its own join, nor its leave
    assert newcomer.got("Chat/OnLeave") == []
