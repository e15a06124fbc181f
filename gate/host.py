"""The live session of one connection: the operations modules apply to it (mqant.ops), its
identity changes, its groups (kept by the inbox) and what the SessionKeeper records of it.
"""

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from channels.layers import get_channel_layer

from gate.inbox import Inbox
from gate.inorder import InOrder
from gate.keeper import SessionKeeper
from mqant import RPCError, Session, groups, owners
from mqant.ops import (
    Bind,
    Close,
    CloseConnection,
    Deliver,
    Get,
    GroupAdd,
    GroupDiscard,
    HandOver,
    Logout,
    Packet,
    Push,
    Remove,
    Send,
    SessionOp,
    SessionRequest,
    Set,
    SetBatch,
    Unbind,
)
from mqant.session import new_session_id
from mqant.types import SessionState
from mqant.wire import empty_reply

logger = logging.getLogger(__name__)

# What the inbox hands a connection (it fans a group's messages out itself).
GateEvent = Deliver | SessionRequest | CloseConnection


class Link(Protocol):
    """What the session needs of its connection."""

    async def publish(self, topic: str, payload: bytes) -> None:
        """Write a PUBLISH to the client (dropped once the connection closes)."""
        ...

    async def publish_many(self, packets: Sequence[Packet]) -> None:
        """Write several PUBLISHes to the client at once (dropped once it closes)."""
        ...

    async def close(self) -> None:
        """Close the connection."""
        ...


class SessionHost:
    """The session of one connection, reachable by its channel once ``attach``-ed."""

    def __init__(self, session: Session, inbox: Inbox, link: Link) -> None:
        self.session = session
        self.inbox = inbox
        self.link = link
        # A PUBLISH to the client: the connection's own method, with no hop through the
        # host (a room's message is delivered once per member).
        self.deliver: Callable[[str, bytes], Coroutine[Any, Any, None]] = link.publish
        self.deliver_many: Callable[[Sequence[Packet]], Coroutine[Any, Any, None]]
        self.deliver_many = link.publish_many
        self.keeper = SessionKeeper(session, inbox.closes)
        self.lost = False
        self._events: InOrder | None = None
        # Called when another gate process takes the session (HandOver): gate.persist's.
        self.on_hand_over: Callable[[], Coroutine[Any, Any, None]] | None = None

    @classmethod
    def fresh(
        cls, inbox: Inbox, link: Link, *, ip: str, network: str, server_id: str
    ) -> "SessionHost":
        """The guest session of a new connection, under a new session id."""
        session = Session.for_connection(
            ip=ip, network=network, server_id=server_id, channel_of=inbox.address
        )
        return cls(session, inbox, link)

    def __repr__(self) -> str:
        return repr(self.link)

    def attach(self) -> None:
        """Make the session reachable by its channel (and key in the inbox)."""
        owners.attach(self.session.channel, self)
        self.inbox.register(self.session.session_id, self)

    def detach(self) -> None:
        owners.detach(self.session.channel)
        self.inbox.unregister(self.session.session_id)

    async def end(self, accepted: bool) -> None:
        """The connection is gone: unreachable, out of its groups, and the modules told
        (when it had been accepted)."""
        self.lost = True
        self.detach()
        if self._events is not None:
            self._events.cancel()
        names = frozenset(self.group_names())
        await self.inbox.discard_all(self)
        if accepted:
            self.keeper.closed(names)

    def group_names(self) -> list[str]:
        """The names of the named groups the connection is in (mqant.gates' census)."""
        return self.inbox.group_names(self)

    # Events from other processes, through the inbox

    def post(self, event: GateEvent) -> None:
        """An event from another process: handled after those before it."""
        if self._events is None:
            self._events = InOrder(lambda: f"{self!r}: an event")
        self._events.add(lambda: self.handle(event))

    async def handle(self, event: GateEvent) -> None:
        match event:
            case Deliver(_, topic, payload):
                await self.deliver(topic, payload)
            case SessionRequest(_, call_id, reply_to, op):
                reply = empty_reply(call_id)
                try:
                    reply["result"] = await self.apply_session_op(op)
                except RPCError as err:
                    reply["error"], reply["kind"] = str(err), err.kind
                if reply_to:
                    await get_channel_layer().send(reply_to, reply)
            case CloseConnection():
                await self.link.close()

    # Session operations (mqant.owners.SessionOwner)

    async def apply_session_op(self, op: SessionOp) -> SessionState:
        """Apply a module's change to the live session and return the session's state.

        Raises RemoteError when the single-session policy refuses a bind.
        """
        match op:
            case Bind(user_id):
                await self.bind(user_id)
            case Unbind():
                await self.unbind()
            case Logout():
                await self.logout()
            case Set(key, value):
                self.session.settings[key] = value
                self.keeper.changed()
            case SetBatch(settings):
                self.session.settings = {**self.session.settings, **settings}
                self.keeper.changed()
            case Push(settings):
                self.session.settings = dict(settings)
                self.keeper.changed()
            case Remove(key):
                self.session.settings.pop(key, None)
                self.keeper.changed()
            case Get():
                pass
            case Send(topic, payload):
                await self.deliver(topic, payload)
            case Close():
                await self.link.close()
            case GroupAdd(group, name):
                if not self.lost:
                    await self.inbox.add(group, self, name)
            case GroupDiscard(group):
                await self.inbox.discard(group, self)
            case HandOver():
                return await self.hand_over()
        return self.session.state()

    async def hand_over(self) -> SessionState:
        """A connection of another gate process took the session's client id (its queue
        goes on there): the session ends here, its connection, if any, told why."""
        state = self.session.state()
        if self.on_hand_over is not None:
            await self.on_hand_over()
        if not self.lost:
            await self.end(True)
        return state

    async def bind(self, user_id: str) -> None:
        """Bind to ``user_id``, with its stored settings (live keys win); a session bound to
        another user ends first."""
        if self.session.user_id not in ("", user_id):
            await self.end_identity()
        await self.keeper.before_bind(user_id)
        stored = await self.keeper.stored_settings(user_id)
        session = self.session
        session.user_id = user_id
        session.settings = {**stored, **session.settings}
        recorded = self.keeper.changed()
        if recorded is not None:
            await recorded

    async def unbind(self) -> None:
        if self.session.user_id:
            await self.end_identity()
        self.keeper.changed()

    async def logout(self) -> None:
        await self.keeper.forget()
        await self.unbind()

    async def end_identity(self) -> None:
        """The session's user leaves this connection (logout, unbind, a login as someone
        else), as on a disconnect: the connection leaves every group but everyone's, the
        modules hear of the session's end, and the connection goes on as a guest under a new
        session id with no settings. Nothing addressed to the old session (a room's
        messages, a private message, a module's stale copy of it) reaches the next user."""
        names = frozenset(self.group_names())
        await self.inbox.discard_all(self, keep=frozenset({groups.EVERYONE}))
        self.keeper.closed(names)
        self.detach()
        session = self.session
        session.session_id = new_session_id()
        session.channel = self.inbox.address(session.session_id)
        session.user_id, session.settings = "", {}
        self.attach()
        self.keeper.opened()
