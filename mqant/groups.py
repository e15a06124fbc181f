"""Named groups of sessions (chat rooms, game tables).

A group is a channel-layer group whose members are gate processes, not connections: each
gate process that holds members receives a group's message once and hands it to its own
member connections. A room of a thousand members on two gates costs two messages through
the layer, not a thousand. Any name may be used: it is hashed into a valid group name.
"""

import hashlib
from typing import Any

from channels.layers import get_channel_layer

from mqant import owners, rpc
from mqant.session import Session, encode_body
from mqant.types import GateFanoutMessage, SessionOp


def group_name(name: str) -> str:
    """The channel-layer group that stands for the group ``name``."""
    return "mqant.group." + hashlib.blake2b(name.encode(), digest_size=16).hexdigest()


async def add(name: str, session: Session) -> None:
    """Make ``session``'s connection a member of group ``name``; returns once it is one. The
    connection keeps the name, so that the gates' census (mqant.gates) tells it.

    Raises DeadlineExceeded when the connection does not answer (it is gone).
    """
    op: SessionOp = {"op": "group_add", "group": group_name(name), "name": name}
    await owners.session_op(session.channel, op)


async def discard(name: str, session: Session) -> None:
    """Remove ``session``'s connection from group ``name``, without waiting. A connection
    that ends leaves its groups by itself."""
    await owners.session_op_nr(session.channel, {"op": "group_discard", "group": group_name(name)})


async def send(name: str, topic: str, body: bytes | str | dict[str, Any] | list[Any]) -> None:
    """Send a PUBLISH on ``topic`` to every member of group ``name``."""
    await _fan_out(group_name(name), topic, body)


# Every connection is a member of this group, so that a broadcast reaches every gate once.
EVERYONE = "mqant.everyone"


async def send_to_everyone(topic: str, body: bytes | str | dict[str, Any] | list[Any]) -> None:
    """Send a PUBLISH on ``topic`` to every client connection of every gate."""
    await _fan_out(EVERYONE, topic, body)


async def _fan_out(group: str, topic: str, body: bytes | str | dict[str, Any] | list[Any]) -> None:
    """One message to each gate process in channel-layer group ``group``."""
    message: GateFanoutMessage = {
        "type": "gate.fanout",
        "group": group,
        "topic": topic,
        "payload": encode_body(body),
    }
    rpc.refuse_while_redis_down()
    try:
        await get_channel_layer().group_send(group, message)
    except Exception as err:
        raise rpc.layer_failure(err) from err
