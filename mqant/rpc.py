"""RPC between modules, mqant's ``Call``/``CallNR``: pick a live node of a module type, send it
``{fn, args, reply_to, id, deadline}`` and wait for its reply.

A node in this process is invoked directly with the same semantics (deadline, ordering,
errors); others are reached on their channel through the channel layer.

This process's reply channel is one per event loop, subscribed through mqant.subscription:
every later call depends on it, so a layer error is logged and it receives again.

Calls fail fast when their answer cannot come: a call waiting for a node that vanishes from the
registry without draining (its process died) fails with ``<node id> stopped`` as soon as the
registry notices; while Redis is known down (mqant.dependencies), calls through it fail with
``Redis unavailable`` at once, and so do the calls that were waiting when it went down; a
channel-layer error is answered the same way, without a traceback per call.
"""

import asyncio
import functools
import itertools
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any, cast

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer, get_channel_layer

from mqant import app as mqant_app
from mqant import conf, dependencies
from mqant.dependencies import REDIS
from mqant.errors import (
    DeadlineExceeded,
    RPCError,
    ServiceNotFound,
    ServiceUnavailable,
    error_from_wire,
)
from mqant.registry import Node
from mqant.subscription import Subscription
from mqant.timeouts import deadline
from mqant.types import CallMessage, ReplyMessage
from mqant.wire import decode_value, encode_args

logger = logging.getLogger(__name__)


def layer_failure(err: Exception) -> Exception:
    """The error a caller gets for a channel-layer exception: ``ServiceUnavailable`` when it
    is a dependency's (which is marked down, logged once per outage), else the exception."""
    dependency = dependencies.note(err)
    return err if dependency is None else dependency.error()


def refuse_while_redis_down() -> None:
    """Raise ``Redis unavailable`` at once while Redis is known down (and probed)."""
    if REDIS.refusing:
        raise REDIS.error()


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


_routers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReplyRouter]" = (
    weakref.WeakKeyDictionary()
)


_starting: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]]" = (
    weakref.WeakKeyDictionary()
)


def _started_router() -> ReplyRouter | None:
    """This event loop's reply router if it has started: what every call but the first finds,
    without a coroutine of its own."""
    router = _routers.get(asyncio.get_running_loop())
    return router if router is not None and router.channel else None


async def _router() -> ReplyRouter:
    """This event loop's reply router, started on first use."""
    loop = asyncio.get_running_loop()
    router = _routers.get(loop)
    if router is None:
        router = _routers[loop] = ReplyRouter(get_channel_layer(), loop)
        _starting[loop] = loop.create_task(router.start())
    if not router.channel:
        await asyncio.shield(_starting[loop])
    return router


async def stop_router() -> None:
    """Stop this event loop's reply router, if it runs (when the app stops)."""
    loop = asyncio.get_running_loop()
    router = _routers.pop(loop, None)
    starting = _starting.pop(loop, None)
    if starting is not None:
        await asyncio.gather(starting, return_exceptions=True)
    if router is not None:
        await router.stop()


def nodes_gone(nodes: list[Node]) -> None:
    """The registry's watcher: the calls waiting for nodes whose process died fail now."""
    router = _started_router()
    if router is None:
        return
    for node in nodes:
        router.fail(functools.partial(ServiceUnavailable.for_node, node.node_id), {node.channel})


def _redis_down() -> None:
    """Redis went down: no reply will come through it; every waiting call fails now. May be
    called from any thread."""
    for loop, router in list(_routers.items()):
        if not loop.is_closed():
            loop.call_soon_threadsafe(router.fail, REDIS.error)


REDIS.when_down(_redis_down)


async def request(channel: str, message: dict[str, Any], *, timeout: float) -> Any:
    """Request/reply over the channel layer with any channel that answers a ReplyMessage."""
    router = _started_router() or await _router()
    return await router.request(channel, message, timeout)


async def select(module_type: str) -> Node:
    """The node a call to ``module_type`` (``Type`` or ``Type@node``) goes to; raises
    ServiceNotFound."""
    app = mqant_app.current() or await mqant_app.ensure_started()
    return app.select_now(module_type) or await app.select(module_type)


def _select_now(module_type: str) -> Node | None:
    """``select`` when the running app's snapshot of live nodes has the answer, without a
    coroutine: what nearly every call finds. None sends the caller to ``select``."""
    app = mqant_app.current()
    return app.select_now(module_type) if app is not None else None


async def nodes(module_type: str) -> list[Node]:
    """The live nodes of ``module_type``, in this process and others (mqant's
    ``GetServersByType``); call one with ``call(node.node_id, ...)``."""
    try:
        node = await select(module_type)
    except ServiceNotFound:
        return []
    app = mqant_app.current()
    return app.registry.nodes(module_type) if app is not None else [node]


def default_timeout() -> float:
    """``MQANT["RPC_TIMEOUT"]``: seconds a call waits by default."""
    return float(conf.get("RPC_TIMEOUT"))


def _timeout(timeout: float | None) -> float:
    return default_timeout() if timeout is None else timeout


async def call(module_type: str, fn: str, *args: Any, timeout: float | None = None) -> Any:
    """Call handler ``fn`` of a node of ``module_type`` (``Type`` or ``Type@node``) and return
    its result.

    Raises ServiceNotFound, FunctionNotFound, DeadlineExceeded (after ``timeout`` seconds,
    default ``MQANT["RPC_TIMEOUT"]``) or RemoteError with the handler's error text.
    """
    node = _select_now(module_type) or await select(module_type)
    return await call_node(node, fn, args, timeout=_timeout(timeout))


async def call_node(node: Node, fn: str, args: tuple[Any, ...], *, timeout: float) -> Any:
    """``call`` on a node already selected. A node of this process is invoked directly
    (``RPC_LOCAL_SHORTCUT``), and always while the process stops: then only the calls in
    flight reach it, and the channel layer would turn them away."""
    if node.server is not None and (conf.get("RPC_LOCAL_SHORTCUT") or not node.server.accepting):
        try:
            async with deadline(timeout):
                return await node.server.invoke(fn, args)
        except TimeoutError:
            raise DeadlineExceeded() from None
    message = {
        "type": "mqant.call",
        "fn": fn,
        "args": encode_args(args),
        "deadline": time.time() + timeout,
    }
    router = _started_router() or await _router()
    return await router.request(node.channel, message, timeout)


async def call_nr(module_type: str, fn: str, *args: Any) -> None:
    """Call without waiting for, or receiving, a reply (mqant's ``CallNR``).

    Raises ServiceNotFound when no node hosts the type; what happens afterwards is not reported.
    """
    node = _select_now(module_type) or await select(module_type)
    await call_node_nr(node, fn, args)


async def call_node_nr(node: Node, fn: str, args: tuple[Any, ...]) -> None:
    """``call_nr`` on a node already selected."""
    timeout = _timeout(None)
    if node.server is not None and conf.get("RPC_LOCAL_SHORTCUT"):
        task = asyncio.create_task(_call_quietly(node, fn, args, timeout))
        _background.add(task)
        task.add_done_callback(_background.discard)
        return
    refuse_while_redis_down()
    message: CallMessage = {
        "type": "mqant.call",
        "id": "",
        "fn": fn,
        "args": encode_args(args),
        "reply_to": "",
        "deadline": time.time() + timeout,
    }
    try:
        await get_channel_layer().send(node.channel, message)
    except ChannelFull:
        logger.warning("call_nr %s.%s dropped: the node's channel is full", node.node_id, fn)
    except Exception as err:
        raise layer_failure(err) from err


_background: set[asyncio.Task[None]] = set()


async def _call_quietly(node: Node, fn: str, args: tuple[Any, ...], timeout: float) -> None:
    try:
        await call_node(node, fn, args, timeout=timeout)
    except RPCError as err:
        logger.debug("call_nr %s.%s: %s", node.node_id, fn, err)
