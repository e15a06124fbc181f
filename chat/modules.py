"""Chat: rooms where logged-in users talk (mqant's ``Chat`` demo module).

Rooms are channel-layer groups; a member who disconnects leaves every room at once and the
others are told with ``Chat/OnLeave``.

Joining a room also tells how many users are online, which only Login knows: Chat asks every
Login node (``call("Login@<node>", "online_count")``) and adds up the answers. A user logged in
through two Login nodes at once counts twice; a node that does not answer within
ONLINE_TIMEOUT is left out, and ``online`` is null when none answers.

Rooms live in the memory of the Chat node the members joined through; their connections
stay in the rooms' groups on the gates. A Chat node that starts (a restart after a crash,
say) rebuilds its rooms from the gates' census (``on_node_started``): every member of a
room's group that no other live Chat node holds becomes a member here, without a push (nobody
joined); once more after REBUILD_AFTER seconds, when every gate knows the node, so that a
member whose connection closed before the gates could tell it is dropped (the others get
``Chat/OnLeave``). Two Chat nodes that take the same member at once keep it on the smaller
node id. A user who left while no Chat node ran is absent from the rebuilt room, and the
members are told ``Chat/OnLeave`` then: the gates keep the recent ends no Chat node heard of.

Everything a client sends is bounded (``chat.limits``): what it names and says, the rooms it
is in and creates, what it stores; and so is everything Chat sends back or pushes, whatever
is stored.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import Annotated, Any

from chat import services, sweep, validation
from chat.limits import ChatLimits, Refused
from chat.rooms import Changes, Room, Rooms
from chat.services import room_group
from mqant import (
    HandlerError,
    Module,
    NonEmpty,
    RPCError,
    Session,
    call,
    db,
    gates,
    groups,
    handler,
    nodes,
    register_module,
)

logger = logging.getLogger(__name__)

ONLINE_TIMEOUT = 1.0  # seconds a join waits for the Login nodes' counts
# Seconds between the start's rebuild and the second one: by then every gate's snapshot of
# the registry has the node (read every second), so every close since reaches it.
REBUILD_AFTER = gates.SETTLED_AFTER


@dataclass
class RoomRequest:
    roomName: Annotated[str, NonEmpty]


@dataclass
class SayRequest:
    roomName: Annotated[str, NonEmpty]
    content: Annotated[str, NonEmpty]
    target: Any = "*"  # a user in the room; "*" (or anything but a non-empty string): everyone


@register_module
class Chat(Module):
    """Rooms and their history. Settings (``MQANT["MODULE_SETTINGS"]["Chat"]`` or a Chat
    entry's ``Settings``), all numbers; a quota or an expiry of 0 is off:

    - ``HistorySize`` (50) messages, and ``HistoryBytes`` (65536) bytes of JSON, names
      included, at most in the history a join returns;
    - ``MaxMessageLength`` (4000) characters of one message;
    - ``MaxRoomNameLength`` (100, at most 200) characters of a room name, which must be text
      without control characters;
    - ``MaxUserNameLength`` (150): the longest ``target``; a user whose stored name is longer
      joins no room;
    - ``MaxRoomsPerUser`` (50) rooms one user is in at once (on this node);
    - ``RoomCreateLimit`` (20) new rooms a user may create per ``RoomCreateWindow`` (3600) s;
    - ``JoinUsers`` (1000) names, and ``JoinUsersBytes`` (65536) bytes of JSON, at most in a
      join's ``users``; ``userCount`` says how many members there are in all;
    - ``RoomMaxMessages`` (1000) messages kept per room, the oldest deleted;
    - ``UserMessageLimit`` (600) messages a user may store per ``UserMessageWindow`` (60) s,
      over all their connections, and ``UserBytesPerDay`` (2097152) bytes of them a day;
    - ``MessageMaxAge`` (2592000 s, 30 days) before a message is deleted, and
      ``EmptyRoomMaxAge`` (86400 s) before a room with no message that nobody is in, joined
      or spoke in is deleted;
    - ``SweepInterval`` (600 s) between two sweeps of those (0: none here, run
      ``manage.py sweepchat``), ``SweepBatch`` (500) rows of each kind at most per pass.
    - ``RebuildAfter`` (3 s) between the rebuilds of the rooms at start.

    The user quotas count in Django's cache (shared by every process with Redis); the
    membership bounds in this node's memory.
    """

    module_type = "Chat"

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.limits = ChatLimits.from_settings(settings)
        self.rooms = Rooms()
        self.rebuild_after = float(settings.get("RebuildAfter", REBUILD_AFTER))
        self._changes: Changes | None = None  # while a rebuild waits for the census
        # The ends unheard of by Chat that this node told the rooms of (each once).
        self._leaves_told: set[str] = set()

    async def run(self, closing: asyncio.Event) -> None:
        """Sweep expired messages and unused rooms every SweepInterval seconds, one bounded
        pass at a time, until the process stops."""
        interval = self.limits.sweep_interval
        while interval > 0:
            try:
                await asyncio.wait_for(closing.wait(), timeout=interval)
            except TimeoutError:
                await self.sweep()
            else:
                return
        await closing.wait()

    async def on_node_started(self) -> None:
        """Rebuild the rooms from the gates now, and again once every gate knows this node."""
        await gates.at_start_and_settled(
            self.rebuild, "rebuilding the rooms", self.node_id, self.rebuild_after
        )

    async def rebuild(self) -> tuple[int, int]:
        """Make this node's rooms agree with the rooms' groups on the gates; returns how many
        members were added and dropped. Members changed while the census was taken are left
        as they are; a member of a gate that did not answer stays."""
        self._changes = changes = Changes()
        held = self.rooms.memberships()
        try:
            census = await gates.live_sessions()
            wanted = services.census_members(census)
            names = sorted({name for name, _ in wanted} | {name for name, _ in held})
            elsewhere = await services.members_elsewhere(names, here=self.node_id)
        finally:
            self._changes = None
        added = dropped = 0
        for (room_name, user_id), session in wanted.items():
            key = (room_name, user_id)
            if changes.touched(key, session.session_id) or key in elsewhere:
                continue
            if not self.rooms.holds(room_name, session):
                self.rooms.join(room_name, session)
                added += 1
        for room_name, member in held:
            key, session_id = (room_name, member.user_id), member.session_id
            if changes.touched(key, session_id):
                continue
            if not self.rooms.held_through(room_name, member.user_id, session_id):
                continue
            if elsewhere.get(key, self.node_id) < self.node_id:
                self.rooms.leave(room_name, member.user_id)  # still in the room, over there
                dropped += 1
            elif key not in wanted and census.answered_for(member):
                await self._leave(room_name, member.user_id)
                dropped += 1
        await self._tell_unheard_leaves(census)
        return added, dropped

    async def _tell_unheard_leaves(self, census: gates.Census) -> None:
        """``Chat/OnLeave`` for the members who left while no Chat node ran (the gates keep
        such ends a while): to the room's members here, unless the user is back in it."""
        for closed in census.unheard_by(self.module_type):
            if closed.session.session_id in self._leaves_told:
                continue
            self._leaves_told.add(closed.session.session_id)
            user_id = closed.session.user_id
            for group in sorted(closed.groups):
                room = self.rooms.get(group.removeprefix(services.ROOM_GROUP))
                if not group.startswith(services.ROOM_GROUP) or room is None:
                    continue
                if user_id and user_id not in room.members:
                    event = {"roomName": room.name, "user": user_id}
                    await groups.send(room_group(room.name), "Chat/OnLeave", event)

    async def sweep(self) -> sweep.SweepResult | None:
        """One sweep pass, keeping the rooms someone is in here; None when it failed (it is
        tried again at the next interval)."""
        try:
            done: sweep.SweepResult = await db(sweep.sweep_pass)(
                limits=self.limits, live_rooms=self.rooms.names()
            )
        except Exception as err:  # a failed pass must not end the sweeps, nor the module
            logger.warning("The chat sweep failed; trying again later: %r", err)
            return None
        return done

    @handler("HD_JoinChat", login_required=True, invalid="roomName cannot be nil")
    async def join_chat(self, session: Session, msg: RoomRequest) -> dict[str, Any]:
        """``{"roomName"}`` → ``{"users": [...], "history": [...], "online": n,
        "userCount": n}``; the others get ``Chat/OnJoin``."""
        room_name = msg.roomName
        try:
            room, previous = await self._enter(room_name, session)
        except Refused as err:
            raise HandlerError(str(err)) from None
        if previous is not None:
            await groups.discard(room_group(room_name), previous)
        event = {"roomName": room_name, "user": session.user_id}
        await groups.send(room_group(room_name), "Chat/OnJoin", event, exclude=session)
        limits = self.limits
        return {
            "users": room.listed_users(
                first=session.user_id, limit=limits.join_users, max_bytes=limits.join_users_bytes
            ),
            "history": await db(services.room_history)(
                room_name=room_name, limit=limits.history_size, max_bytes=limits.history_bytes
            ),
            "online": await online_count(),
            "userCount": len(room.members),
        }

    async def _enter(self, room_name: str, session: Session) -> tuple[Room, Session | None]:
        """Put the session's user in the room, within the limits (Refused otherwise)."""
        validation.check_room_name(room_name, limits=self.limits)
        validation.check_member(session.user_id, limits=self.limits)
        if self._changes is not None:
            self._changes.keys.add((room_name, session.user_id))
        max_rooms = self.limits.max_rooms_per_user
        self.rooms.check_room_count(room_name, session.user_id, max_rooms)
        # The connection joins the group first: a session without one (an HTTP call) fails
        # here, before it could take the user's place in the room from a live connection.
        await groups.add(room_group(room_name), session)
        try:
            await db(services.room_enter)(
                room_name=room_name,
                user_id=session.user_id,
                live=self.rooms.get(room_name) is not None,
                limits=self.limits,
            )
            return self.rooms.join(room_name, session, max_rooms=max_rooms)
        except Refused:
            if not self.rooms.holds(room_name, session):
                await groups.discard(room_group(room_name), session)
            raise

    @handler("HD_Say", login_required=True, invalid="roomName or say cannot be nil")
    async def say(self, session: Session, msg: SayRequest) -> dict[str, str]:
        """``{"roomName", "content", "target"}`` → ``{"say": "say success"}``; ``Chat/OnChat``
        to every member (target ``"*"``, the default) or to the target only."""
        room_name, content = msg.roomName, msg.content
        if len(content) > self.limits.max_message:
            raise HandlerError(f"The message is longer than {self.limits.max_message} characters")
        target = msg.target if isinstance(msg.target, str) and msg.target else "*"
        try:
            validation.check_message(content, target, limits=self.limits)
            await self._say(room_name, content, target, session)
        except Refused as err:
            raise HandlerError(str(err)) from None
        return {"say": "say success"}

    async def _say(self, room_name: str, content: str, target: str, session: Session) -> None:
        room = self._member_room(room_name, session)
        event = {"roomName": room_name, "from": session.user_id, "target": target, "msg": content}
        if target == "*":
            await db(services.message_create)(
                room_name=room_name, sender=session.user_id, content=content, limits=self.limits
            )
            await groups.send(room_group(room_name), "Chat/OnChat", event)
            return
        recipient = room.members.get(target)
        if recipient is None:
            raise HandlerError("This user haven't been in the room yet")
        await recipient.send_nr("Chat/OnChat", event)

    @handler("HD_LeaveChat", login_required=True, invalid="roomName cannot be nil")
    async def leave_chat(self, session: Session, msg: RoomRequest) -> dict[str, str]:
        """``{"roomName"}`` → ``{"leave": "leave success"}``; the others get ``Chat/OnLeave``."""
        room_name = msg.roomName
        self._member_room(room_name, session)
        await self._leave(room_name, session.user_id)
        return {"leave": "leave success"}

    @handler
    async def members(self, room_name: str) -> list[str]:
        """RPC (no ``HD_``, not for clients): the users in room ``room_name`` on this node."""
        return self.rooms.members_of(room_name)

    @handler
    async def members_of_rooms(self, room_names: list[str]) -> dict[str, list[str]]:
        """RPC (not for clients): the users in each of the rooms on this node; rooms nobody
        is in here are left out."""
        return {name: self.rooms.members_of(name) for name in room_names if self.rooms.get(name)}

    async def on_session_closed(self, session: Session) -> None:
        if self._changes is not None:
            self._changes.sessions.add(session.session_id)
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
        if self._changes is not None:
            self._changes.keys.add((room_name, user_id))
        left = self.rooms.leave(room_name, user_id)
        if left is None:
            return
        _, member = left
        await groups.discard(room_group(room_name), member)  # the connection in the room
        event = {"roomName": room_name, "user": user_id}
        await groups.send(room_group(room_name), "Chat/OnLeave", event, exclude=member)


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
