"""Chat rooms: who is in which room (this node's memory), and what was said there (the
database)."""

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from chat import models
from mqant import RPCError, Session, call, groups, nodes

logger = logging.getLogger(__name__)

MEMBERS_TIMEOUT = 2.0  # seconds a Chat node has to say who is in a room


def room_group(room_name: str) -> str:
    """The mqant group of room ``room_name``'s connections."""
    return f"chat.room.{room_name}"


async def room_members(room_name: str) -> list[str]:
    """Who is in room ``room_name`` now, over every Chat node (``members``, an RPC-only
    handler); a node that does not answer in time is left out."""
    chat_nodes = await nodes("Chat")
    answers = await asyncio.gather(
        *(call(node.node_id, "members", room_name, timeout=MEMBERS_TIMEOUT) for node in chat_nodes),
        return_exceptions=True,
    )
    members: set[str] = set()
    for node, answer in zip(chat_nodes, answers, strict=True):
        if isinstance(answer, RPCError):
            logger.warning("%s did not list the members of %r: %s", node.node_id, room_name, answer)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            members.update(answer)
    return sorted(members)


async def system_message(
    *, room_name: str, text: str, topic: str = "Chat/OnChat"
) -> dict[str, str]:
    """Send ``text`` from "system" to every member of the room, on every gate; returns the
    event sent."""
    event = {"roomName": room_name, "from": "system", "target": "*", "msg": text}
    await groups.send(room_group(room_name), topic, event)
    return event


def room_ensure(*, room_name: str) -> None:
    """Store room ``room_name`` if it is not stored yet (a room exists once joined)."""
    models.Room.objects.get_or_create(name=room_name)


def message_create(*, room_name: str, sender: str, content: str) -> None:
    """Store a message said to everyone in room ``room_name``."""
    room, _ = models.Room.objects.get_or_create(name=room_name)
    models.Message.objects.create(room=room, sender=sender, content=content)


def room_history(*, room_name: str, limit: int, max_chars: int) -> list[dict[str, Any]]:
    """The last ``limit`` messages of the room, oldest first, as plain data; older messages
    are left out once their contents pass ``max_chars`` in all, so that the reply stays a
    packet any client takes."""
    rows = models.Message.objects.filter(room__name=room_name).values_list(
        "sender", "content", "created_at"
    )[:limit]
    history: list[dict[str, Any]] = []
    budget = max_chars
    for sender, content, created in rows:  # newest first
        budget -= len(content)
        if budget < 0:
            break
        history.append({"from": sender, "msg": content, "time": created.timestamp()})
    history.reverse()
    return history


@dataclass
class Room:
    name: str
    members: dict[str, Session] = field(default_factory=dict)  # user id → their session

    def others(self, user_id: str) -> list[Session]:
        return [s for uid, s in self.members.items() if uid != user_id]


class Rooms:
    """The rooms of one Chat node. A user is in a room through one session at a time: joining
    again from another connection moves the membership there."""

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}

    def get(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def join(self, name: str, session: Session) -> tuple[Room, Session | None]:
        """Add the session's user to room ``name`` (created on first join); returns the room and
        the session the user was in the room with before, if it was another one."""
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = Room(name)
        previous = room.members.get(session.user_id)
        room.members[session.user_id] = session
        if previous is not None and previous.session_id == session.session_id:
            previous = None
        return room, previous

    def leave(self, name: str, user_id: str) -> tuple[Room, Session] | None:
        """Remove the user from the room; the room and the session the user was in it with,
        or None if they were not in it. An empty room is forgotten (its history stays in the
        database)."""
        room = self._rooms.get(name)
        member = None if room is None else room.members.pop(user_id, None)
        if room is None or member is None:
            return None
        if not room.members:
            del self._rooms[name]
        return room, member

    def members_of(self, name: str) -> list[str]:
        room = self._rooms.get(name)
        return list(room.members) if room else []

    def rooms_of_session(self, session_id: str) -> list[tuple[str, str]]:
        """The (room name, user id) memberships held through session ``session_id``."""
        return [
            (room.name, user_id)
            for room in self._rooms.values()
            for user_id, member in room.members.items()
            if member.session_id == session_id
        ]
