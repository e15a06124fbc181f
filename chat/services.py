"""Chat rooms: who is in them over every Chat node, and what was said there (the database),
within the limits of ``chat.limits``."""

import asyncio
import datetime
import logging
from typing import Any

from django.db import transaction
from django.db.models.functions import Length
from django.utils import timezone

from chat import models, quotas
from chat.limits import ChatLimits
from chat.rooms import json_size
from mqant import RPCError, Session, call, gates, groups, nodes
from mqant.registry import Node

logger = logging.getLogger(__name__)

MEMBERS_TIMEOUT = 2.0  # seconds a Chat node has to say who is in a room
# A room's active_at is rewritten at most this often: a join or a message is a read, not a
# write, most of the time.
ACTIVE_REFRESH = datetime.timedelta(minutes=1)
# Bytes a history entry takes at least besides its two texts: {"from":"","msg":"","time":0}
ENTRY_OVERHEAD = 29


ROOM_GROUP = "chat.room."
NAMES_PER_CALL = 1000  # room names per members_of_rooms call of a rebuild


def room_group(room_name: str) -> str:
    """The mqant group of room ``room_name``'s connections."""
    return ROOM_GROUP + room_name


def census_members(census: gates.Census) -> dict[tuple[str, str], Session]:
    """(room name, user id) → the session the user is in the room with, as the gates' census
    tells it by the rooms' groups (a user with two sessions in one room: either)."""
    members: dict[tuple[str, str], Session] = {}
    for live in census.sessions:
        user_id = live.session.user_id
        if not user_id:
            continue
        for group in live.groups:
            if group.startswith(ROOM_GROUP):
                members.setdefault((group.removeprefix(ROOM_GROUP), user_id), live.session)
    return members


def peers(found: list[Node], here: str) -> list[Node]:
    """The nodes of ``found`` other than ``here`` and other than those of ``here``'s own
    process: one with its process id is a node of the process it replaced, which died (a
    deployment runs each process id once), and will never answer."""
    process = next((node.process_id for node in found if node.node_id == here), "")
    return [
        node
        for node in found
        if node.node_id != here and not (process and node.process_id == process)
    ]


async def members_elsewhere(room_names: list[str], *, here: str) -> dict[tuple[str, str], str]:
    """(room name, user id) → the Chat node other than ``here`` that holds the membership
    (the smallest node id when several do), over the rooms named; a node that does not
    answer in time is left out."""
    held: dict[tuple[str, str], str] = {}
    others = peers(await nodes("Chat"), here)
    for node in others:
        for start in range(0, len(room_names), NAMES_PER_CALL):
            names = room_names[start : start + NAMES_PER_CALL]
            try:
                answer = await call(
                    node.node_id, "members_of_rooms", names, timeout=MEMBERS_TIMEOUT
                )
            except RPCError as err:
                logger.warning("%s did not list the members of rooms: %s", node.node_id, err)
                break
            for name, users in answer.items():
                for user_id in users:
                    key = (name, user_id)
                    held[key] = min(held.get(key, node.node_id), node.node_id)
    return held


async def room_members(room_name: str) -> list[str]:
    """Who is in room ``room_name`` now, over every Chat node; a node that does not answer in
    time is left out."""
    return (await rooms_members([room_name]))[room_name]


async def rooms_members(room_names: list[str]) -> dict[str, list[str]]:
    """Who is in each of the rooms now, over every Chat node: one call per node
    (``members_of_rooms``, an RPC-only handler), so a page of rooms costs a call, and a log
    line at most, per node. A node that does not answer in time is left out."""
    chat_nodes = await nodes("Chat")
    answers = await asyncio.gather(
        *(
            call(node.node_id, "members_of_rooms", room_names, timeout=MEMBERS_TIMEOUT)
            for node in chat_nodes
        ),
        return_exceptions=True,
    )
    members: dict[str, set[str]] = {name: set() for name in room_names}
    for node, answer in zip(chat_nodes, answers, strict=True):
        if isinstance(answer, RPCError):
            logger.warning("%s did not list the members of rooms: %s", node.node_id, answer)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            for name, users in answer.items():
                members.get(name, set()).update(users)
    return {name: sorted(users) for name, users in members.items()}


async def system_message(
    *, room_name: str, text: str, topic: str = "Chat/OnChat"
) -> dict[str, str]:
    """Send ``text`` from "system" to every member of the room, on every gate; returns the
    event sent."""
    event = {"roomName": room_name, "from": "system", "target": "*", "msg": text}
    await groups.send(room_group(room_name), topic, event)
    return event


def room_enter(*, room_name: str, user_id: str, live: bool, limits: ChatLimits) -> None:
    """Record that ``user_id`` joins room ``room_name``: a name not stored yet is a new room,
    counted against the user's RoomCreateLimit (Refused past it) unless the room is ``live``
    (someone is in it on this node: the sweep deleted its row, the room itself is not new)."""
    now = timezone.now()
    room = models.Room.objects.filter(name=room_name).only("pk", "active_at").first()
    if room is not None:
        _refresh(room, now)
        return
    if not live:
        quotas.room_created(user_id=user_id, limits=limits)
    models.Room.objects.get_or_create(name=room_name, defaults={"active_at": now})


def message_create(*, room_name: str, sender: str, content: str, limits: ChatLimits) -> None:
    """Store a message said to everyone in room ``room_name``: Refused past the sender's
    quotas; the room keeps its newest RoomMaxMessages messages."""
    size = len(content.encode("utf-8", "surrogatepass"))
    quotas.message_stored(user_id=sender, size=size, limits=limits)
    now = timezone.now()
    with transaction.atomic():
        room, created = models.Room.objects.get_or_create(
            name=room_name, defaults={"active_at": now}
        )
        if not created:
            _refresh(room, now)
        models.Message.objects.create(room=room, sender=sender, content=content)
        if limits.room_max_messages:
            _trim(room.pk, keep=limits.room_max_messages)


def _refresh(room: models.Room, now: datetime.datetime) -> None:
    if room.active_at < now - ACTIVE_REFRESH:
        models.Room.objects.filter(pk=room.pk).update(active_at=now)


def _trim(room_id: int, *, keep: int) -> None:
    """Delete the room's messages older than its newest ``keep`` (oldest: the lowest id, the
    order they were stored in)."""
    newest = models.Message.objects.filter(room_id=room_id).order_by("-id")
    boundary = list(newest.values_list("id", flat=True)[keep : keep + 1])
    if boundary:
        models.Message.objects.filter(room_id=room_id, id__lte=boundary[0]).delete()


def room_history(*, room_name: str, limit: int, max_bytes: int) -> list[dict[str, Any]]:
    """The last ``limit`` messages of the room, oldest first, as plain data, at most
    ``max_bytes`` bytes of JSON in all (names included): older messages are left out once the
    newer ones fill it, so that the join reply stays a packet any client takes.

    A message is read only once its length says it may fit, so that messages stored before
    names were bounded (tens of kilobytes each) cost neither the reply nor memory.
    """
    room = models.Room.objects.filter(name=room_name).only("pk").first()
    if room is None or limit <= 0:
        return []
    newest = models.Message.objects.filter(room_id=room.pk).order_by("-created_at", "-id")
    sized = newest.annotate(chars=Length("sender") + Length("content"))
    ids = _fitting(sized.values_list("id", "chars")[:limit], max_bytes)
    rows = newest.filter(id__in=ids).values_list("sender", "content", "created_at")
    history = [{"from": s, "msg": c, "time": t.timestamp()} for s, c, t in rows]
    history = _within(history, max_bytes)
    history.reverse()
    return history


def _fitting(sized: Any, max_bytes: int) -> list[int]:
    """The ids, newest first, until their characters (a byte each at least) pass the bound."""
    ids, used = [], 2
    for message_id, chars in sized:
        used += chars + ENTRY_OVERHEAD
        if used > max_bytes:
            break
        ids.append(message_id)
    return ids


def _within(history: list[dict[str, Any]], max_bytes: int) -> list[dict[str, Any]]:
    """The newest entries (history is newest first) whose JSON list fits in ``max_bytes``."""
    used = 2  # the brackets
    for count, entry in enumerate(history):
        used += json_size(entry) + (1 if count else 0)
        if used > max_bytes:
            return history[:count]
    return history
