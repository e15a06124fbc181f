"""A channel's messages, handed on as they arrive, whatever the channel layer.

A layer that can (mqant.types.ListeningLayer: mqant.redis.layer) hands each message to a
callback as it reads it. With another, a task receives in a loop; a layer error (Redis
restarting) is logged and the task receives again, since the channel is still needed.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from mqant import dependencies
from mqant.types import ListeningLayer, listening

logger = logging.getLogger(__name__)

RECEIVE_RETRY_DELAY = 0.5


async def receive_forever(layer: Any, channel: str, name: str) -> AsyncIterator[dict[str, Any]]:
    """Every message on ``channel``, one after another, for a reader that must finish with
    one before it takes the next; a failed receive is retried after RECEIVE_RETRY_DELAY."""
    while True:
        try:
            message: dict[str, Any] = await layer.receive(channel)
        except Exception as err:
            if dependencies.note(err) is None:  # else logged once per outage
                logger.exception("%s: receive failed; receiving again", name)
            await asyncio.sleep(RECEIVE_RETRY_DELAY)
            continue
        yield message


class Subscription:
    """``on_message`` gets each message on ``channel`` from ``start()`` to ``stop()``."""

    def __init__(
        self,
        layer: Any,
        channel: str,
        on_message: Callable[[dict[str, Any]], None],
        name: str,
    ) -> None:
        self.layer, self.channel, self.name = layer, channel, name
        self.on_message = on_message
        self._listening: ListeningLayer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._listening = listening(self.layer)
        if self._listening is not None:  # straight from the connection
            await self._listening.listen(self.channel, self.on_message)
        else:
            self._task = asyncio.create_task(self._receive(), name=self.name)

    async def stop(self) -> None:
        if self._listening is not None:
            await self._listening.unlisten(self.channel)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _receive(self) -> None:
        async for message in receive_forever(self.layer, self.channel, self.name):
            self.on_message(message)
