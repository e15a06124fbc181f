"""The gate process's side of mqant.groups: which of its connections belong to which group,
and one channel on which it receives each group message once."""

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from channels.layers import get_channel_layer

if TYPE_CHECKING:
    from gate.connection import MQTTConnection

logger = logging.getLogger(__name__)


class Fanout:
    """Group membership of this process's connections (one per event loop)."""

    def __init__(self) -> None:
        self.layer: Any = get_channel_layer()
        self.channel = ""
        self.members: dict[str, set[MQTTConnection]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def add(self, group: str, connection: "MQTTConnection") -> None:
        await self._started()
        members = self.members.setdefault(group, set())
        first = not members
        members.add(connection)
        if first:
            await self.layer.group_add(group, self.channel)

    async def discard(self, group: str, connection: "MQTTConnection") -> None:
        members = self.members.get(group)
        if members is None:
            return
        members.discard(connection)
        if not members:
            del self.members[group]
            await self.layer.group_discard(group, self.channel)

    async def _started(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._receive_loop(), name="gate fanout")
        await self._ready.wait()

    async def _receive_loop(self) -> None:
        # The layer's default prefix, as every channel of the process: RedisChannelLayer
        # reads all of a process's channels of one prefix through one blocking read, so a
        # prefix of its own would wait behind the others.
        self.channel = await self.layer.new_channel()
        self._ready.set()
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("receiving group messages failed; receiving again in 1 s")
                await asyncio.sleep(1)
                continue
            members = self.members.get(message.get("group", ""))
            if message.get("type") != "gate.fanout" or not members:
                continue
            for connection in list(members):
                try:
                    await connection.deliver(message["topic"], message["payload"])
                except Exception:
                    logger.exception("%r: group delivery failed", connection)


_fanouts: dict[asyncio.AbstractEventLoop, Fanout] = {}


def fanout() -> Fanout:
    """This event loop's Fanout."""
    loop = asyncio.get_running_loop()
    current = _fanouts.get(loop)
    if current is None:
        for old in [other for other in _fanouts if other.is_closed()]:
            del _fanouts[old]
        current = _fanouts[loop] = Fanout()
    return current
