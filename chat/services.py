"""Chat rooms: who is in which room, and what was said there lately."""

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mqant import Session


@dataclass
class Room:
    name: str
    history_size: int
    members: dict[str, Session] = field(default_factory=dict)  # user id → their session
    history: deque[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.history = deque(maxlen=self.history_size)

    def others(self, user_id: str) -> list[Session]:
        return [s for uid, s in self.members.items() if uid != user_id]


class Rooms:
    """The rooms of one Chat node. A user is in a room through one session at a time: joining
    again from another connection moves the membership there."""

    def __init__(self, *, history_size: int = 50) -> None:
        self.history_size = history_size
        self._rooms: dict[str, Room] = {}

    def get(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def join(self, name: str, session: Session) -> tuple[Room, Session | None]:
        """Add the session's user to room ``name`` (created on first join); returns the room and
        the session the user was in the room with before, if it was another one."""
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = Room(name, self.history_size)
        previous = room.members.get(session.user_id)
        room.members[session.user_id] = session
        if previous is not None and previous.session_id == session.session_id:
            previous = None
        return room, previous

    def leave(self, name: str, user_id: str) -> Room | None:
        """Remove the user from the room; the room, or None if they were not in it. An empty
        room is forgotten, its history with it."""
        room = self._rooms.get(name)
        if room is None or room.members.pop(user_id, None) is None:
            return None
        if not room.members:
            del self._rooms[name]
        return room

    def rooms_of_session(self, session_id: str) -> list[tuple[str, str]]:
        """The (room name, user id) memberships held through session ``session_id``."""
        return [
            (room.name, user_id)
            for room in self._rooms.values()
            for user_id, member in room.members.items()
            if member.session_id == session_id
        ]

    @staticmethod
    def record(room: Room, *, sender: str, content: str) -> None:
        room.history.append({"from": sender, "msg": content, "time": time.time()})
