"""Reads for the REST API: rooms with their counts, a room's history, the live connections.

Who is in a room is each Chat node's memory, so the counts come from the Chat nodes over
mqant RPC (``members``, an RPC-only handler), as the admin asks them.
"""

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import Count, QuerySet

from chat.models import Message, Room
from mqant import RPCError, call, nodes
from sessions_store.models import LiveConnection
from sessions_store.presence import alive_connections

logger = logging.getLogger(__name__)

MEMBERS_TIMEOUT = 2.0  # seconds a Chat node has to say who is in its rooms


async def _node_members(node_id: str, room_name: str) -> list[str]:
    try:
        members: list[str] = await call(node_id, "members", room_name, timeout=MEMBERS_TIMEOUT)
    except RPCError as err:
        logger.warning("%s did not list the members of %r: %s", node_id, room_name, err)
        return []  # a node that does not answer is left out
    return members


async def members_online(room_names: list[str]) -> dict[str, int]:
    """How many distinct users are in each room, over every Chat node (0 with no node)."""
    chat_nodes = await nodes("Chat")
    asks = [(name, node.node_id) for name in room_names for node in chat_nodes]
    answers = await asyncio.gather(*(_node_members(node_id, name) for name, node_id in asks))
    users: dict[str, set[str]] = {name: set() for name in room_names}
    for (name, _), members in zip(asks, answers, strict=True):
        users[name].update(members)
    return {name: len(members) for name, members in users.items()}


def rooms() -> list[dict[str, Any]]:
    """Every stored room (one is stored once something is said in it), by name:
    ``{"name", "message_count", "members_online"}``; rooms nobody is in count 0."""
    rows = Room.objects.annotate(message_count=Count("messages")).order_by("name")
    listed = list(rows.values_list("name", "message_count"))
    online = async_to_sync(members_online)([name for name, _ in listed])
    return [
        {"name": name, "message_count": count, "members_online": online[name]}
        for name, count in listed
    ]


def room_messages(room_name: str) -> QuerySet[Message]:
    """The messages said to everyone in room ``room_name``. Lazy on purpose: the view's
    cursor pagination slices it (and it is read in the request's thread)."""
    return Message.objects.filter(room__name=room_name)


def live_connections() -> list[LiveConnection]:
    """The connections of the gates that are alive, newest first."""
    return list(alive_connections().order_by("-connected_at", "session_id"))


def live_connection(session_id: str) -> LiveConnection | None:
    """The connection ``session_id`` if its gate is alive."""
    return alive_connections().filter(session_id=session_id).first()
