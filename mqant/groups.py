"""Named groups of sessions (chat rooms, game tables).

A group is a channel-layer group whose members are gate processes, not connections: each
gate process that holds members receives a group's message once and hands it to its own
member connections. A room of a thousand members on two gates costs two messages through
the layer, not a thousand. Any name may be used: it is hashed into a valid group name.
"""

import hashlib
from typing import Any

from mqant import owners
from mqant.ops import GroupAdd, GroupDiscard
from mqant.session import Session, encode_body


def group_name(name: str) -> str:
    """The channel-layer group that stands for the group ``name``."""
    return "mqant.group." + hashlib.blake2b(name.encode(), digest_size=16).hexdigest()


async def add(name: str, session: Session) -> None:
    """Make ``session``'s connection a member of group ``name``; returns once it is one. The
    connection keeps the name, so that the gates' census (mqant.gates) tells it.

    Raises DeadlineExceeded when the connection does not answer (it is gone).
    """
    await owners.session_op(session.channel, GroupAdd(group_name(name), name))


async def discard(name: str, session: Session) -> None:
    """Remove ``session``'s connection from group ``name``, without waiting. A connection
    that ends leaves its groups by itself."""
    await owners.session_op_nr(session.channel, GroupDiscard(group_name(name)))


async def send(
    name: str,
    topic: str,
    body: bytes | str | dict[str, Any] | list[Any],
    *,
    exclude: Session | None = None,
) -> None:
    """Send a PUBLISH on ``topic`` to every member of group ``name`` but ``exclude``'s
    connection, once to each gate process that has members."""
    exclude_channel = exclude.channel if exclude else ""
    await owners.fan_out(group_name(name), topic, encode_body(body), exclude_channel)


# Every connection is a member of this group, so that a broadcast reaches every gate once.
EVERYONE = owners.EVERYONE


async def send_to_everyone(topic: str, body: bytes | str | dict[str, Any] | list[Any]) -> None:
    """Send a PUBLISH on ``topic`` to every client connection of every gate."""
    await owners.fan_out(EVERYONE, topic, encode_body(body))
