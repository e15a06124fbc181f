"""Named groups of sessions (chat rooms, game tables) on the channel layer's groups.

Any name may be used: it is hashed into a valid channel-layer group name.
"""

import hashlib
from typing import Any

from channels.layers import get_channel_layer

from mqant.session import Session, encode_body
from mqant.types import GateSendMessage


def group_name(name: str) -> str:
    """The channel-layer group that stands for the group ``name``."""
    return "mqant.group." + hashlib.blake2b(name.encode(), digest_size=16).hexdigest()


async def add(name: str, session: Session) -> None:
    """Make ``session``'s connection a member of group ``name``."""
    await get_channel_layer().group_add(group_name(name), session.channel)


async def discard(name: str, session: Session) -> None:
    """Remove ``session``'s connection from group ``name``."""
    await get_channel_layer().group_discard(group_name(name), session.channel)


async def send(name: str, topic: str, body: bytes | str | dict[str, Any] | list[Any]) -> None:
    """Send a PUBLISH on ``topic`` to every member of group ``name``."""
    message: GateSendMessage = {"type": "gate.send", "topic": topic, "payload": encode_body(body)}
    await get_channel_layer().group_send(group_name(name), message)
