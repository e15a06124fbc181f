"""This process's reply channel, mqant's RPC return path: every call made from this event loop
names it as ``reply_to``, and its replies are matched to the waiting callers by id.

Calls fail fast when their answer cannot come: a call waiting for a node that vanishes from the
registry without draining (its process died) fails with ``<node id> stopped`` as soon as the
registry notices; while Redis is known down (mqant.dependencies), calls through it fail with
``Redis unavailable`` at once, and so do the calls that were waiting when it went down.
"""

import asyncio
import functools
import itertools
from collections.abc import Callable
from typing import Any, cast

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from mqant.dependencies import REDIS, layer_failure, refuse_while_redis_down
from mqant.errors import DeadlineExceeded, RPCError, ServiceUnavailable, error_from_wire
from mqant.nodes import Node
from mqant.subscription import Subscription
from mqant.timeouts import deadline
from mqant.types import ReplyMessage
from mqant.wire import decode_value


class ReplyRouter:
    """This process's reply channel: matches replies to waiting callers by id.

    A reply whose caller has given up (deadline passed) finds no waiter and is dropped, so it
    can never be taken for the answer to a later call.
    """

    def __init__(self, layer: BaseChannelLayer, loop: asyncio.AbstractEventLoop) -> None:
        self.layer = layer
        self.loop = loop
        self.channel = ""
        # call id -> (the caller's future, the channel the call went to)
        self._pending: dict[str, tuple[asyncio.Future[ReplyMessage], str]] = {}
        self._ids = itertools.count()
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        # The layer's default prefix, as every channel of the process: RedisChannelLayer
        # receives all of a process's channels through one Redis key per prefix, one
        # blocking read at a time, so a second prefix waits seconds behind the first.
        self.channel = await self.layer.new_channel()
        self._subscription = Subscription(self.layer, self.channel, self._route, "mqant replies")
        await self._subscription.start()

    async def request(self, channel: str, message: dict[str, Any], timeout: float) -> Any:
        """Send ``message`` (plus ``id`` and ``reply_to``) to ``channel`` and return the reply's
        result; raise the RPCError it reports, or DeadlineExceeded after ``timeout`` seconds."""
        refuse_while_redis_down()
        call_id = str(next(self._ids))
        future: asyncio.Future[ReplyMessage] = self.loop.create_future()
        self._pending[call_id] = (future, channel)
        try:
            async with deadline(timeout):
                try:
                    await self.layer.send(
                        channel, {**message, "id": call_id, "reply_to": self.channel}
                    )
                except ChannelFull:
                    raise
                except Exception as err:
                    raise layer_failure(err) from err
                reply = await future
        except TimeoutError:
            raise DeadlineExceeded() from None
        except ChannelFull:
            # The receiver is far behind, or gone (channels-redis keeps a dead channel's
            # messages until they expire): it will not answer within the deadline.
            raise DeadlineExceeded() from None
        finally:
            self._pending.pop(call_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # failed by ``fail`` while the send itself failed: seen
        if reply["kind"]:
            raise error_from_wire(reply["kind"], reply["error"])
        return decode_value(reply["result"])

    async def stop(self) -> None:
        """Stop receiving; callers still waiting reach their deadline."""
        if self._subscription is not None:
            await self._subscription.stop()

    def fail(self, error: Callable[[], RPCError], channels: set[str] | None = None) -> None:
        """Fail the calls waiting for a reply from ``channels`` (None: every call), each with
        an ``error()`` of its own."""
        for future, channel in list(self._pending.values()):
            if (channels is None or channel in channels) and not future.done():
                future.set_exception(error())

    def _route(self, message: dict[str, Any]) -> None:
        """A reply to its caller, if it still waits."""
        if REDIS.down_since is not None:  # a reply came through: the layer works again
            REDIS.succeeded()
        pending = self._pending.get(message.get("id", ""))
        if pending is not None and not pending[0].done():
            pending[0].set_result(cast(ReplyMessage, message))

    def nodes_gone(self, nodes: list[Node]) -> None:
        """The registry's watcher: the calls waiting for nodes whose process died fail now."""
        for node in nodes:
            self.fail(functools.partial(ServiceUnavailable.for_node, node.node_id), {node.channel})

    def redis_down(self) -> None:
        """Redis went down: no reply will come through it; every waiting call fails now. May
        be called from any thread."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.fail, REDIS.error)
