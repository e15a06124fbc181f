"""RPC between modules, mqant's ``Call``/``CallNR``: pick a live node of a module type, send it
``{fn, args, reply_to, id, deadline}`` and wait for its reply.

A node in this process is invoked directly with the same semantics (deadline, ordering,
errors); others are reached on their channel through the channel layer, and answer on the
runtime's reply channel (mqant.replies), which also makes calls fail fast when their answer
cannot come.
"""

import logging
import time
from time import perf_counter
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

from mqant import conf, current, metrics
from mqant.dependencies import layer_failure, refuse_while_redis_down
from mqant.errors import DeadlineExceeded, RPCError, ServiceNotFound
from mqant.nodes import Node
from mqant.timeouts import deadline
from mqant.types import CallMessage
from mqant.wire import encode_args

logger = logging.getLogger(__name__)


async def request(channel: str, message: dict[str, Any], *, timeout: float) -> Any:
    """Request/reply over the channel layer with any channel that answers a ReplyMessage."""
    return await current.get().replies.request(channel, message, timeout)


async def select(module_type: str) -> Node:
    """The node a call to ``module_type`` (``Type`` or ``Type@node``) goes to; raises
    ServiceNotFound."""
    app = current.get().app
    return app.select_now(module_type) or await app.select(module_type)


def _select_now(module_type: str) -> Node | None:
    """``select`` when the running app's snapshot of live nodes has the answer, without a
    coroutine: what nearly every call finds. None sends the caller to ``select``."""
    return current.get().app.select_now(module_type)


async def nodes(module_type: str) -> list[Node]:
    """The live nodes of ``module_type``, in this process and others (mqant's
    ``GetServersByType``); call one with ``call(node.node_id, ...)``."""
    try:
        await select(module_type)
    except ServiceNotFound:
        return []
    return current.get().app.registry.nodes(module_type)


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
    started, outcome = perf_counter(), metrics.CANCELLED
    try:
        result = await _call_node(node, fn, args, timeout)
        outcome = metrics.OK
        return result
    except RPCError as err:
        outcome = metrics.outcome_of(err.kind)
        raise
    except Exception:
        outcome = metrics.UNAVAILABLE  # the channel layer's failure
        raise
    finally:
        target = metrics.rpc_target(node.module_type)
        metrics.RPC_CALLS.child(target, outcome).add()
        metrics.RPC_SECONDS.child(target).observe(perf_counter() - started)


async def _call_node(node: Node, fn: str, args: tuple[Any, ...], timeout: float) -> Any:
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
    return await current.get().replies.request(node.channel, message, timeout)


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
        current.get().spawn(_call_quietly(node, fn, args, timeout), f"call_nr {fn}")
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


async def _call_quietly(node: Node, fn: str, args: tuple[Any, ...], timeout: float) -> None:
    try:
        await call_node(node, fn, args, timeout=timeout)
    except RPCError as err:
        logger.debug("call_nr %s.%s: %s", node.node_id, fn, err)
