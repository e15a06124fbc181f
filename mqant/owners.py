"""How a Session reaches the live connection that owns it.

Every connection is named by its channel: ``<its gate process's channel>#<its key>``; the
process's channel takes the message and hands it to the connection with that key. A change
to a session (bind, set, close...) is a request to that channel, answered once the
connection has applied it, so the caller's next step sees it. A connection in this process
is called directly, with the same semantics; one elsewhere is reached through the channel
layer.
"""

import logging
from collections.abc import Sequence
from typing import Protocol

from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

from mqant import conf, current, metrics
from mqant.dependencies import layer_failure, refuse_while_redis_down
from mqant.errors import RemoteError, ServiceUnavailable
from mqant.ops import (
    Batch,
    Deliver,
    Fanout,
    Packet,
    SessionOp,
    SessionRequest,
    encode_batch,
    encode_deliver,
    encode_fanout,
    encode_request,
)
from mqant.types import GateBatchMessage, GateSendMessage, SessionOpMessage, SessionState

logger = logging.getLogger(__name__)

# A session built for a caller without a connection (a REST call) has the channel "".
NO_CONNECTION = "The session has no live connection"


class SessionOwner(Protocol):
    """What the gate's connections offer to the framework."""

    async def apply_session_op(self, op: SessionOp) -> SessionState:
        """Apply ``op`` to the live session and return its new state."""
        ...

    async def deliver(self, topic: str, payload: bytes) -> None:
        """Write a PUBLISH to the client."""
        ...

    async def deliver_many(self, packets: Sequence[Packet]) -> None:
        """Write several PUBLISHes to the client at once."""
        ...


_local: dict[str, SessionOwner] = {}


def attach(channel: str, owner: SessionOwner) -> None:
    """Make a connection of this process reachable by its channel name."""
    _local[channel] = owner


def detach(channel: str) -> None:
    _local.pop(channel, None)


def split(channel: str) -> tuple[str, str]:
    """(the channel-layer channel of the connection's gate process, the connection's key)."""
    process, _, key = channel.partition("#")
    return process, key


def _local_owner(channel: str) -> SessionOwner | None:
    if not conf.get("RPC_LOCAL_SHORTCUT"):
        return None
    return _local.get(channel)


async def session_op(channel: str, op: SessionOp) -> SessionState:
    """Apply ``op`` at the owning connection; raises DeadlineExceeded when it does not answer,
    RemoteError at once when the session has no connection (channel ``""``)."""
    if not channel:
        raise RemoteError(NO_CONNECTION)
    owner = _local_owner(channel)
    if owner is not None:
        return await owner.apply_session_op(op)
    process, key = split(channel)
    # The reply channel fills in the id and where to answer.
    message = encode_request(SessionRequest(key, "", "", op))
    state: SessionState = await current.get().replies.request(
        process, dict(message), float(conf.get("RPC_TIMEOUT"))
    )
    return state


async def session_op_nr(channel: str, op: SessionOp) -> None:
    """Apply ``op`` at the owning connection without waiting for it (nothing happens if the
    connection is gone, or the session never had one)."""
    if not channel:
        return
    owner = _local_owner(channel)
    if owner is not None:
        await owner.apply_session_op(op)
        return
    process, key = split(channel)
    await _send(process, encode_request(SessionRequest(key, "", "", op)))


async def deliver(channel: str, topic: str, payload: bytes) -> None:
    """Send a PUBLISH to one connection; a connection that is gone drops it, and a session
    without a connection (channel ``""``) has nowhere to send it."""
    if not channel:
        return
    owner = _local_owner(channel)
    if owner is not None:
        await owner.deliver(topic, payload)
        return
    process, key = split(channel)
    await _send(process, encode_deliver(Deliver(key, topic, payload)))


# A gate process's channel → its connections' keys, each with its packets.
Batches = dict[str, list[tuple[str, tuple[Packet, ...]]]]


async def deliver_batches(packets: dict[str, list[Packet]]) -> None:
    """Send each connection (by channel) its PUBLISHes, written at once: one channel-layer
    message to each gate process, whatever the number of its connections and packets (a
    table's frame). ``deliver_local`` then ``send_batches``."""
    await send_batches(await deliver_local(packets))


async def deliver_local(packets: dict[str, list[Packet]]) -> Batches:
    """Write the packets of this process's connections (``packets``: by channel); return
    the others, by the gate process to send them to (``send_batches``). A connection that is
    gone drops its packets."""
    by_process: Batches = {}
    for channel, sent in packets.items():
        if not channel or not sent:
            continue
        owner = _local_owner(channel)
        if owner is not None:
            await owner.deliver_many(sent)
            continue
        process, key = split(channel)
        by_process.setdefault(process, []).append((key, tuple(sent)))
    return by_process


async def send_batches(by_process: Batches) -> None:
    """One ``gate.batch`` message to each gate process. A process the channel layer cannot
    reach (Redis down: logged once per outage) drops its packets, counted as
    ``unavailable``; raises only for a layer failure that is no known dependency's."""
    for process, items in by_process.items():
        try:
            await _send(process, encode_batch(Batch(tuple(items))), batch_size(items))
        except ServiceUnavailable:
            metrics.PUSHES_DROPPED.child("unavailable").add(batch_size(items))


def batch_size(items: list[tuple[str, tuple[Packet, ...]]]) -> int:
    """The PUBLISHes of a gate process's batch."""
    return sum(len(sent) for _, sent in items)


async def _send(
    channel: str,
    message: GateSendMessage | SessionOpMessage | GateBatchMessage,
    pushes: int = 1,
) -> None:
    """Send ``message`` (``pushes`` PUBLISHes) to a gate process's channel."""
    refuse_while_redis_down()
    try:
        await get_channel_layer().send(channel, message)
    except ChannelFull:
        # Nobody reads that channel fast enough (or at all: the connection is gone).
        # Delivery is best effort, as group sends are; the sender must not fail for it.
        logger.debug("dropped %s to %s: channel full", message["type"], channel)
        metrics.PUSHES_DROPPED.child("channel_full").add(pushes)
    except Exception as err:
        raise layer_failure(err) from err


# Every connection is a member of this group, so that a broadcast reaches every gate once.
EVERYONE = "mqant.everyone"


async def fan_out(group: str, topic: str, payload: bytes, exclude: str = "") -> None:
    """A PUBLISH for every member of channel-layer group ``group`` but the connection whose
    channel is ``exclude``: one message to each gate process in the group, which hands it to
    its own members."""
    message = encode_fanout(Fanout(group, topic, payload, exclude))
    refuse_while_redis_down()
    try:
        await get_channel_layer().group_send(group, message)
    except Exception as err:
        raise layer_failure(err) from err
