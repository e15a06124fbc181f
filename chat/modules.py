"""Chat: rooms where logged-in users talk (mqant's ``Chat`` demo module).

Rooms are channel-layer groups; a member who disconnects leaves every room at once and the
others are told with ``Chat/OnLeave``.
"""

from typing import Any

from chat.services import Room, Rooms
from mqant import HandlerError, Module, Session, groups, register_module

NOT_LOGINED = "Not Logined"


def room_group(room_name: str) -> str:
    return f"chat.room.{room_name}"


def _text(msg: dict[str, Any] | bytes, name: str) -> str | None:
    value = msg.get(name) if isinstance(msg, dict) else None
    return value if isinstance(value, str) and value else None


@register_module
class Chat(Module):
    """Settings: ``HistorySize`` (default 50) messages kept per room."""

    module_type = "Chat"

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.rooms = Rooms(history_size=int(settings.get("HistorySize", 50)))
        self.register_go("HD_JoinChat", self.join_chat)
        self.register_go("HD_Say", self.say)
        self.register_go("HD_LeaveChat", self.leave_chat)

    async def join_chat(self, session: Session, msg: dict[str, Any] | bytes) -> dict[str, Any]:
        """``{"roomName"}`` → ``{"users": [...], "history": [...]}``; the others get
        ``Chat/OnJoin``."""
        room_name = _text(msg, "roomName")
        if room_name is None:
            raise HandlerError("roomName cannot be nil")
        if session.is_guest():
            raise HandlerError(NOT_LOGINED)
        room, previous = self.rooms.join(room_name, session)
        if previous is not None:
            await groups.discard(room_group(room_name), previous)
        await groups.add(room_group(room_name), session)
        event = {"roomName": room_name, "user": session.user_id}
        for other in room.others(session.user_id):
            await other.send("Chat/OnJoin", event)
        return {"users": list(room.members), "history": list(room.history)}

    async def say(self, session: Session, msg: dict[str, Any] | bytes) -> dict[str, str]:
        """``{"roomName", "content", "target"}`` → ``{"say": "say success"}``; ``Chat/OnChat``
        to every member (target ``"*"``, the default) or to the target only."""
        room_name, content = _text(msg, "roomName"), _text(msg, "content")
        if room_name is None or content is None:
            raise HandlerError("roomName or say cannot be nil")
        if session.is_guest():
            raise HandlerError(NOT_LOGINED)
        room = self._member_room(room_name, session)
        target = _text(msg, "target") or "*"
        event = {"roomName": room_name, "from": session.user_id, "target": target, "msg": content}
        if target == "*":
            self.rooms.record(room, sender=session.user_id, content=content)
            await groups.send(room_group(room_name), "Chat/OnChat", event)
        else:
            recipient = room.members.get(target)
            if recipient is None:
                raise HandlerError("This user haven't been in the room yet")
            await recipient.send("Chat/OnChat", event)
        return {"say": "say success"}

    async def leave_chat(self, session: Session, msg: dict[str, Any] | bytes) -> dict[str, str]:
        """``{"roomName"}`` → ``{"leave": "leave success"}``; the others get ``Chat/OnLeave``."""
        room_name = _text(msg, "roomName")
        if room_name is None:
            raise HandlerError("roomName cannot be nil")
        if session.is_guest():
            raise HandlerError(NOT_LOGINED)
        self._member_room(room_name, session)
        await self._leave(room_name, session.user_id, session)
        return {"leave": "leave success"}

    async def on_session_closed(self, session: Session) -> None:
        for room_name, user_id in self.rooms.rooms_of_session(session.session_id):
            await self._leave(room_name, user_id, session)

    def _member_room(self, room_name: str, session: Session) -> Room:
        room = self.rooms.get(room_name)
        if room is None:
            raise HandlerError("No room")
        if session.user_id not in room.members:
            raise HandlerError("You haven't been in the room yet")
        return room

    async def _leave(self, room_name: str, user_id: str, session: Session) -> None:
        room = self.rooms.leave(room_name, user_id)
        if room is None:
            return
        await groups.discard(room_group(room_name), session)
        event = {"roomName": room_name, "user": user_id}
        for other in room.members.values():
            await other.send("Chat/OnLeave", event)
