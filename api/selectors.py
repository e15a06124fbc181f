"""Reads for the REST API: rooms with their counts, a room's history, the live connections.

Who is in a room is each Chat node's memory, so the counts come from the Chat nodes over
mqant RPC (``members``, an RPC-only handler), as the admin asks them.
"""

import asyncio
from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import Count, QuerySet

from chat.models import Message, Room
from chat.services import room_members
from sessions_store.models import LiveConnection
from sessions_store.presence import alive_connections


async def members_online(room_names: list[str]) -> dict[str, int]:
    """How many users are in each room, over every Chat node (0 with no node)."""
    members = await asyncio.gather(*(room_members(name) for name in room_names))
    return {name: len(users) for name, users in zip(room_names, members, strict=True)}


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
