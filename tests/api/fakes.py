"""A stand-in for a gate's connection, so that modules can be driven without the gate."""

import asyncio
from collections.abc import Sequence
from typing import Any

from channels.layers import get_channel_layer

from mqant import Session, owners
from mqant.ops import GroupAdd, SessionOp
from mqant.types import SessionState


class FakeConnection:
    """A live connection of user ``user_id``: it applies session operations (joining channel
    layer groups for real, so group sends reach it) and records what it is sent."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.ops: list[SessionOp] = []
        self._pushes: list[tuple[str, bytes]] = []

    @classmethod
    async def open(cls, user_id: str) -> "FakeConnection":
        channel = await get_channel_layer().new_channel()
        session = Session(
            ip="127.0.0.1",
            network="websocket",
            session_id=f"fake{user_id}",
            server_id="gate-test",
            channel=channel,
            user_id=user_id,
        )
        connection = cls(session)
        owners.attach(channel, connection)
        return connection

    def close(self) -> None:
        owners.detach(self.session.channel)

    async def apply_session_op(self, op: SessionOp) -> SessionState:
        self.ops.append(op)
        if isinstance(op, GroupAdd):
            await get_channel_layer().group_add(op.group, self.session.channel)
        return self.session.state()

    async def deliver(self, topic: str, payload: bytes) -> None:
        self._pushes.append((topic, payload))

    async def deliver_many(self, packets: Sequence[tuple[str, bytes]]) -> None:
        self._pushes.extend(packets)

    @property
    def pushes(self) -> list[tuple[str, bytes]]:
        """What the connection was sent: directly, and, as its gate would hand them over,
        the group messages waiting on its channel of the in-memory layer, but those that
        exclude it."""
        queue = getattr(get_channel_layer(), "channels", {}).get(self.session.channel)
        while queue is not None and not queue.empty():
            _, message = queue.get_nowait()
            skipped = message.get("exclude") == self.session.channel
            if message.get("type") == "gate.fanout" and not skipped:
                self._pushes.append((message["topic"], message["payload"]))
        return self._pushes

    async def fanout(self, timeout: float = 3) -> dict[str, Any]:
        """The next group message sent to this connection (a ``gate.fanout`` event)."""
        async with asyncio.timeout(timeout):
            while True:  # one that excludes this connection is skipped, as its gate would
                message: dict[str, Any] = await get_channel_layer().receive(self.session.channel)
                if message.get("exclude") != self.session.channel:
                    return message
