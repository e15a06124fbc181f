"""Reads for the REST API: rooms with their counts (a page at a time), a room's history, the
live connections.

Who is in a room is each Chat node's memory, so the counts come from the Chat nodes over
mqant RPC (``members_of_rooms``, an RPC-only handler), for one page of rooms at a time.
"""

from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import Count, QuerySet
from django.db.models.functions import Length

from chat.limits import ROOM_NAME_MAX
from chat.models import Message, Room
from chat.services import rooms_members
from sessions_store.models import LiveConnection
from sessions_store.presence import alive_connections


async def members_online(room_names: list[str]) -> dict[str, int]:
    """How many users are in each room, over every Chat node (0 with no node)."""
    members = await rooms_members(room_names)
    return {name: len(members[name]) for name in room_names}


def room_list() -> QuerySet[Room]:
    """The stored rooms, most recently active first, for a paginator to slice (lazy on
    purpose: it is read in the request's thread). Rooms whose names pass the column's size,
    stored before names were bounded, are left out: nobody can join them any more."""
    listed = Room.objects.annotate(name_length=Length("name"))
    return listed.filter(name_length__lte=ROOM_NAME_MAX).order_by("-active_at", "name")


def rooms_described(page: Iterable[Room]) -> list[dict[str, Any]]:
    """``{"name", "message_count", "members_online"}`` of each room of ``page``: the counts
    of those rooms only, members online asked of every Chat node; nobody in it counts 0."""
    rooms = list(page)
    counted = Message.objects.filter(room__in=rooms).values("room").annotate(n=Count("id"))
    counts = {row["room"]: row["n"] for row in counted.order_by()}
    online = async_to_sync(members_online)([room.name for room in rooms])
    return [
        {"name": r.name, "message_count": counts.get(r.pk, 0), "members_online": online[r.name]}
        for r in rooms
    ]


def room_messages(room_name: str) -> QuerySet[Message]:
    """The messages said to everyone in room ``room_name``. Lazy on purpose: the view's
    cursor pagination slices it (and it is read in the request's thread)."""
    return Message.objects.filter(room__name=room_name)


def live_connections() -> QuerySet[LiveConnection]:
    """The connections of the gates that are alive. Lazy on purpose: the view's cursor
    pagination orders and slices it (and it is read in the request's thread)."""
    return alive_connections()


def live_connection(session_id: str) -> LiveConnection | None:
    """The connection ``session_id`` if its gate is alive."""
    return alive_connections().filter(session_id=session_id).first()
