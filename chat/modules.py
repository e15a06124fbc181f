"""Chat: rooms where logged-in users talk (mqant's ``Chat`` demo module).

Rooms are channel-layer groups; a member who disconnects leaves every room at once and the
others are told with ``Chat/OnLeave``.

Joining a room also tells how many users are online, which only Login knows: Chat asks every
Login node (``call("Login@<node>", "online_count")``) and adds up the answers. A user logged in
through two Login nodes at once counts twice; a node that does not answer within
ONLINE_TIMEOUT is left out, and ``online`` is null when none answers.
"""

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async

from chat import services
from chat.services import Room, Rooms, room_group
from mqant import HandlerError, Module, RPCError, Session, call, groups, nodes, register_module

logger = logging.getLogger(__name__)

NOT_LOGINED = "Not Logined"
ONLINE_TIMEOUT = 1.0  # seconds a join waits for the Login nodes' counts


def _text(msg: dict[str, Any] | bytes, name: str) -> str | None:
    value = msg.get(name) if isinstance(msg, dict) else None
    return value if isinstance(value, str) and value else None


@register_module
class Chat(Module):
    """Settings: ``HistorySize`` (default 50) and ``HistoryChars`` (16000) bound the history a
    join returns; ``MaxMessageLength`` (4000) bounds what one says."""

    module_type = "Chat"

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.rooms = Rooms()
        self.history_size = int(settings.get("HistorySize", 50))
        self.history_chars = int(settings.get("HistoryChars", 16000))
        self.max_message = int(settings.get("MaxMessageLength", 4000))
        self.register_go("HD_JoinChat", self.join_chat)
        self.register_go("HD_Say", self.say)
        self.register_go("HD_LeaveChat", self.leave_chat)
        self.register_go("members", self.members)

    async def join_chat(self, session: Session, msg: dict[str, Any] | bytes) -> dict[str, Any]:
        """``{"roomName"}`` → ``{"users": [...], "history": [...], "online": n}``; the others
        get ``Chat/OnJoin``."""
        room_name = _text(msg, "roomName")
        if room_name is None:
            raise HandlerError("roomName cannot be nil")
        if session.is_guest():
            raise HandlerError(NOT_LOGINED)
        # The connection joins the group first: a session without one (an HTTP call) fails
        # here, before it could take the user's place in the room from a live connection.
        await groups.add(room_group(room_name), session)
        await database_sync_to_async(services.room_ensure)(room_name=room_name)
        room, previous = self.rooms.join(room_name, session)
        if previous is not None:
            await groups.discard(room_group(room_name), previous)
        event = {"roomName": room_name, "user": session.user_id}
        for other in room.others(session.user_id):
            await other.send_nr("Chat/OnJoin", event)
        return {
            "users": list(room.members),
            "history": await database_sync_to_async(services.room_history)(
                room_name=room_name, limit=self.history_size, max_chars=self.history_chars
            ),
            "online": await online_count(),
        }

    async def say(self, session: Session, msg: dict[str, Any] | bytes) -> dict[str, str]:
        """``{"roomName", "content", "target"}`` → ``{"say": "say success"}``; ``Chat/OnChat``
        to every member (target ``"*"``, the default) or to the target only."""
        room_name, content = _text(msg, "roomName"), _text(msg, "content")
        if room_name is None or content is None:
            raise HandlerError("roomName or say cannot be nil")
        if session.is_guest():
            raise HandlerError(NOT_LOGINED)
        if len(content) > self.max_message:
            raise HandlerError(f"The message is longer than {self.max_message} characters")
        room = self._member_room(room_name, session)
        target = _text(msg, "target") or "*"
        event = {"roomName": room_name, "from": session.user_id, "target": target, "msg": content}
        if target == "*":
            await database_sync_to_async(services.message_create)(
                room_name=room_name, sender=session.user_id, content=content
            )
            await groups.send(room_group(room_name), "Chat/OnChat", event)
        else:
            recipient = room.members.get(target)
            if recipient is None:
                raise HandlerError("This user haven't been in the room yet")
            await recipient.send_nr("Chat/OnChat", event)
        return {"say": "say success"}

    async def leave_chat(self, session: Session, msg: dict[str, Any] | bytes) -> dict[str, str]:
        """``{"roomName"}`` → ``{"leave": "leave success"}``; the others get ``Chat/OnLeave``."""
        room_name = _text(msg, "roomName")
        if room_name is None:
            raise HandlerError("roomName cannot be nil")
        if session.is_guest():
            raise HandlerError(NOT_LOGINED)
        self._member_room(room_name, session)
        await self._leave(room_name, session.user_id)
        return {"leave": "leave success"}

    async def members(self, room_name: str) -> list[str]:
        """RPC (no ``HD_``, not for clients): the users in room ``room_name`` on this node."""
        return self.rooms.members_of(room_name)

    async def on_session_closed(self, session: Session) -> None:
        for room_name, user_id in self.rooms.rooms_of_session(session.session_id):
            await self._leave(room_name, user_id)

    def _member_room(self, room_name: str, session: Session) -> Room:
        room = self.rooms.get(room_name)
        if room is None:
            raise HandlerError("No room")
        if session.user_id not in room.members:
            raise HandlerError("You haven't been in the room yet")
        return room

    async def _leave(self, room_name: str, user_id: str) -> None:
        left = self.rooms.leave(room_name, user_id)
        if left is None:
            return
        room, member = left
        await groups.discard(room_group(room_name), member)  # the connection in the room
        event = {"roomName": room_name, "user": user_id}
        for other in room.members.values():
            await other.send_nr("Chat/OnLeave", event)


async def online_count() -> int | None:
    """Users logged in, summed over every Login node; None when no node answers."""
    logins = await nodes("Login")
    answers = await asyncio.gather(
        *(call(node.node_id, "online_count", timeout=ONLINE_TIMEOUT) for node in logins),
        return_exceptions=True,
    )
    counts = []
    for node, answer in zip(logins, answers, strict=True):
        if isinstance(answer, int):
            counts.append(answer)
        elif isinstance(answer, RPCError):
            logger.warning("%s did not count the users online: %s", node.node_id, answer)
        else:
            raise answer
    return sum(counts) if counts else None
