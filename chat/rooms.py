"""Who is in which room: one Chat node's memory, indexed by room, by user and by session."""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chat.limits import Refused
from mqant import Session


def json_size(value: Any) -> int:
    """Bytes ``value`` takes in a reply or a push: compact JSON in UTF-8, as the gate sends."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


@dataclass
class Room:
    name: str
    members: dict[str, Session] = field(default_factory=dict)  # user id → their session

    def others(self, user_id: str) -> list[Session]:
        return [s for uid, s in self.members.items() if uid != user_id]

    def listed_users(self, *, first: str, limit: int, max_bytes: int) -> list[str]:
        """The members a join reply lists: ``first`` (the joiner), then the others in the
        order they joined, at most ``limit`` names and ``max_bytes`` bytes of JSON."""
        return bounded_list([first], (u for u in self.members if u != first), limit, max_bytes)


def bounded_list(head: list[Any], rest: Iterable[Any], limit: int, max_bytes: int) -> list[Any]:
    """``head`` (always kept), then items of ``rest`` while the list has at most ``limit``
    items and its JSON at most ``max_bytes`` bytes."""
    listed = list(head)
    used = json_size(listed)
    for item in rest:
        used += json_size(item) + 1  # its comma
        if len(listed) >= limit or used > max_bytes:
            break
        listed.append(item)
    return listed


class Rooms:
    """The rooms of one Chat node. A user is in a room through one session at a time: joining
    again from another connection moves the membership there.

    Beside the rooms, two indexes: the rooms of each user (to bound how many one is in) and
    the memberships of each session (so that a connection's close costs what it holds, not a
    scan of every room).
    """

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}
        self._of_user: dict[str, set[str]] = {}
        self._of_session: dict[str, set[tuple[str, str]]] = {}

    def get(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def names(self) -> frozenset[str]:
        """The rooms someone is in on this node."""
        return frozenset(self._rooms)

    def holds(self, name: str, session: Session) -> bool:
        """Whether ``session`` is the one its user is in room ``name`` through."""
        room = self._rooms.get(name)
        member = None if room is None else room.members.get(session.user_id)
        return member is not None and member.session_id == session.session_id

    def check_room_count(self, name: str, user_id: str, max_rooms: int) -> None:
        """Refused when joining room ``name`` would put the user in more than ``max_rooms``
        rooms (0: no bound); joining a room one is in again is always allowed."""
        rooms = self._of_user.get(user_id, set())
        if max_rooms and name not in rooms and len(rooms) >= max_rooms:
            raise Refused(f"You are in {max_rooms} rooms already, the most allowed; leave one")

    def join(
        self, name: str, session: Session, *, max_rooms: int = 0
    ) -> tuple[Room, Session | None]:
        """Add the session's user to room ``name`` (created on first join); returns the room and
        the session the user was in the room with before, if it was another one. Refused past
        ``max_rooms`` rooms for the user."""
        user_id = session.user_id
        self.check_room_count(name, user_id, max_rooms)
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = Room(name)
        previous = room.members.get(user_id)
        room.members[user_id] = session
        self._of_user.setdefault(user_id, set()).add(name)
        if previous is not None:
            self._unindex_session(previous.session_id, name, user_id)
        self._of_session.setdefault(session.session_id, set()).add((name, user_id))
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
        rooms = self._of_user.get(user_id, set())
        rooms.discard(name)
        if not rooms:
            self._of_user.pop(user_id, None)
        self._unindex_session(member.session_id, name, user_id)
        return room, member

    def memberships(self) -> list[tuple[str, Session]]:
        """Every (room name, member's session) on this node."""
        return [(name, s) for name, room in self._rooms.items() for s in room.members.values()]

    def held_through(self, name: str, user_id: str, session_id: str) -> bool:
        """Whether ``user_id`` is in room ``name`` through session ``session_id``."""
        room = self._rooms.get(name)
        member = None if room is None else room.members.get(user_id)
        return member is not None and member.session_id == session_id

    def members_of(self, name: str) -> list[str]:
        room = self._rooms.get(name)
        return list(room.members) if room else []

    def rooms_of_session(self, session_id: str) -> list[tuple[str, str]]:
        """The (room name, user id) memberships held through session ``session_id``."""
        return sorted(self._of_session.get(session_id, ()))

    def _unindex_session(self, session_id: str, name: str, user_id: str) -> None:
        held = self._of_session.get(session_id)
        if held is not None:
            held.discard((name, user_id))
            if not held:
                del self._of_session[session_id]


@dataclass
class Changes:
    """What changed while a rebuild waited for the gates' census: the memberships (room,
    user) joined or left and the sessions closed since it asked. The rebuild leaves those
    alone: what a handler did after the census was taken is newer than the census."""

    keys: set[tuple[str, str]] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)

    def touched(self, key: tuple[str, str], session_id: str) -> bool:
        return key in self.keys or session_id in self.sessions
