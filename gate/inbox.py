"""The gate process's one channel: events addressed to its connections, and group messages.

Each gate process (each event loop) reads one channel-layer channel. A connection is named
``<that channel>#<its key>`` (mqant.owners splits the name), so a session change or a push
from another process reaches it through the process's channel, and no connection holds a
channel, a queue or a receiving task of its own: an idle connection costs only its socket
and its session. Groups work the same way: a group's members are gate processes, each told
once, and each hands the message to its own member connections.

The channel is also the process's gate node (gate.node): modules call it for the census of
its live sessions (mqant.gates), and the dashboard for the process's figures
(mqant.dashboard), and nothing else. The inbox is a part of the process's
runtime (mqant.runtime, gate.process): started with it, before any connection.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, cast

from channels.layers import get_channel_layer

from gate.node import GATE_ID, gate_node
from mqant import (
    FunctionNotFound,
    RemoteError,
    RPCError,
    config,
    dependencies,
    gates,
    metrics,
    owners,
)
from mqant.app import App
from mqant.dependencies import REDIS
from mqant.ops import (
    Batch,
    Deliver,
    Fanout,
    GroupAdd,
    GroupDiscard,
    Packet,
    SessionRequest,
    decode_event,
)
from mqant.owners import NO_CONNECTION
from mqant.runtime import Runtime
from mqant.session import Session
from mqant.snapshot import SNAPSHOT, snapshot
from mqant.subscription import receive_forever
from mqant.types import CallMessage
from mqant.wire import decode_args, empty_reply

logger = logging.getLogger(__name__)

# Channel-layer group memberships expire (a day, by default, in both the in-memory and the
# Redis layers): the process renews its own well before that.
GROUP_RENEW_SECONDS = 3600.0


class Member(Protocol):
    """What the inbox needs of a connection (gate.host's SessionHost)."""

    session: Session

    def post(self, event: Any) -> None:
        """Handle ``event`` (mqant.ops) after the events posted before it."""
        ...

    async def deliver(self, topic: str, payload: bytes) -> None:
        """Write a PUBLISH to the client."""
        ...

    async def deliver_many(self, packets: Sequence[Packet]) -> None:
        """Write several PUBLISHes to the client at once."""
        ...

    def group_names(self) -> Iterable[str]:
        """The names of the named groups the connection is in (from the inbox)."""
        ...


class Inbox:
    """This process's channel, its connections by key, and the one record of which of them
    is in which group."""

    def __init__(self) -> None:
        self.layer: Any = get_channel_layer()
        self.channel = ""
        self.connections: dict[str, Member] = {}
        self.members: dict[str, set[Member]] = {}  # group → its connections here
        self._groups: dict[Member, set[str]] = {}  # connection → its groups
        self._names: dict[str, str] = {}  # group → its name (the census's), when named
        self._tasks: list[asyncio.Task[None]] = []
        self._redis_back = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._answers: set[asyncio.Task[None]] = set()
        self.closes = gates.ClosedLog()  # recent ends in named groups, for the census
        self._deliveries = metrics.FANOUT_DELIVERIES.child()

    async def start(self, runtime: Runtime) -> None:
        """Receive on a channel of this process's own, renew its groups, and register the
        process's gate node (the registry deregisters it when the app stops)."""
        # The layer's default prefix, as every channel of the process: RedisChannelLayer
        # reads all of a process's channels of one prefix through one blocking read, so a
        # prefix of its own would wait behind the others.
        self.channel = await self.layer.new_channel()
        self._redis_back = asyncio.Event()
        REDIS.when_up(self._tell_redis_back)
        self._tasks = [
            runtime.spawn(self._receive_loop(), "gate inbox"),
            runtime.spawn(self._renew_groups(), "gate group renewal"),
        ]
        metrics.identify(gate=GATE_ID)
        await self._register(runtime.app)

    async def stop(self) -> None:
        """Stop receiving (the connections are ended already: gate.drain)."""
        REDIS.unwatch(self._tell_redis_back)
        for task in (*self._tasks, *self._answers):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._answers, return_exceptions=True)

    async def _register(self, app: App) -> None:
        """Register the gate node; the registry deregisters it when the app stops. A failed
        write is logged: RedisNodeRegistry writes its own nodes again at each heartbeat."""
        try:
            await app.registry.register(gate_node(self.channel, app.process_id))
        except Exception as err:
            logger.warning("registering the gate node failed; the registry retries: %s", err)

    def address(self, key: str) -> str:
        """The channel name of this process's connection ``key``."""
        return f"{self.channel}#{key}"

    def register(self, key: str, connection: Member) -> None:
        self.connections[key] = connection

    def unregister(self, key: str) -> None:
        self.connections.pop(key, None)

    async def add(self, group: str, connection: Member, name: str = "") -> None:
        """Make ``connection`` a member of ``group`` (named ``name`` for the census); the
        process joins the channel-layer group with its first member."""
        if name:
            self._names[group] = name
        self._groups.setdefault(connection, set()).add(group)
        members = self.members.setdefault(group, set())
        first = not members
        members.add(connection)
        if first:
            await self.layer.group_add(group, self.channel)

    async def discard(self, group: str, connection: Member) -> None:
        """Remove ``connection`` from ``group``; the process leaves it with its last member."""
        joined = self._groups.get(connection)
        if joined is not None:
            joined.discard(group)
            if not joined:
                del self._groups[connection]
        members = self.members.get(group)
        if members is None:
            return
        members.discard(connection)
        if not members:
            del self.members[group]
            self._names.pop(group, None)
            await self.layer.group_discard(group, self.channel)

    async def discard_all(self, connection: Member, keep: frozenset[str] = frozenset()) -> None:
        """Remove ``connection`` from every group but those in ``keep``."""
        for group in self._groups.get(connection, set()) - keep:
            await self.discard(group, connection)

    def group_names(self, connection: Member) -> list[str]:
        """The names of the named groups ``connection`` is in (the gates' census)."""
        names = self._names
        return [names[group] for group in self._groups.get(connection, ()) if group in names]

    async def _receive_loop(self) -> None:
        # Received one at a time, in order: a room's messages reach its members as sent.
        async for message in receive_forever(self.layer, self.channel, "gate inbox"):
            if message.get("type") == "mqant.call":
                self._answer_soon(cast(CallMessage, message))
                continue
            event = decode_event(message)
            if event is None:
                logger.warning("gate inbox: ignoring unexpected message %r", message.get("type"))
            elif isinstance(event, Fanout):
                await self._fan_out(event)
            elif isinstance(event, Batch):
                await self._deliver_batch(event)
            else:
                await self._dispatch(event)

    async def _dispatch(self, event: Any) -> None:
        """An event addressed to one connection: a group's join or leave applied here, in
        the order the inbox receives it (as its group's messages), any other handed over."""
        connection = self.connections.get(event.to)
        request = event if isinstance(event, SessionRequest) else None
        if connection is None:
            if request is not None and request.reply_to:
                await self._answer(request, error=NO_CONNECTION)
            elif isinstance(event, Deliver):
                metrics.PUSHES_DROPPED.child("no_connection").add()
            return  # it is gone: pushes to it are dropped
        if request is None or not isinstance(request.op, GroupAdd | GroupDiscard):
            connection.post(event)
            return
        if isinstance(request.op, GroupAdd):
            await self.add(request.op.group, connection, request.op.name)
        else:
            await self.discard(request.op.group, connection)
        if request.reply_to:
            await self._answer(request, result=connection.session.state())

    async def _answer(self, request: SessionRequest, result: Any = None, error: str = "") -> None:
        """Answer a session operation applied here; one for a connection that is gone (or
        a session id that ended, at a logout) is answered at once, not at its deadline."""
        reply = empty_reply(request.id)
        reply["result"] = result
        if error:
            reply["error"], reply["kind"] = error, RemoteError.kind
        try:
            await self.layer.send(request.reply_to, reply)
        except Exception as err:  # the caller reaches its deadline instead
            logger.warning("answering a session operation failed: %s", err)

    def _answer_soon(self, message: CallMessage) -> None:
        """A call to the gate node, answered in a task of its own: the census of a large
        gate must not hold up the events behind it."""
        task = asyncio.create_task(self._answer_call(message), name="gate node call")
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _answer_call(self, message: CallMessage) -> None:
        if message["deadline"] <= time.time() or not message["reply_to"]:
            return  # the caller has given up, or wants no answer
        reply = empty_reply(message["id"])
        try:
            reply["result"] = self.serve(message["fn"], decode_args(message["args"]))
        except RPCError as err:
            reply["error"], reply["kind"] = str(err), err.kind
        try:
            await self.layer.send(message["reply_to"], reply)
        except Exception as err:  # the caller reaches its deadline instead
            logger.warning("answering %s to %s failed: %s", message["fn"], message["id"], err)

    def serve(self, fn: str, args: tuple[Any, ...]) -> Any:
        """The gate node's functions: ``live_sessions(after, limit)``, a page of the census
        (mqant.gates.census_page), and ``closed_sessions(after, limit)``, a page of the recent
        ends (mqant.gates.ClosedLog), and the process's figures for the admin's dashboard
        (mqant.snapshot). Raises FunctionNotFound for any other."""
        if fn == gates.LIVE_SESSIONS:
            return gates.census_page(self.connections, args)
        if fn == gates.CLOSED_SESSIONS:
            return self.closes.page(args)
        if fn == SNAPSHOT:
            return snapshot(config.process_id())
        raise FunctionNotFound.for_name(fn)

    async def _fan_out(self, event: Fanout) -> None:
        """A group's message to each of its members here, but the one it excludes."""
        skip = None
        if event.exclude:
            process, key = owners.split(event.exclude)
            skip = self.connections.get(key) if process == self.channel else None
        group = self.members.get(event.group, set())
        self._deliveries.add(len(group) - (skip is not None and skip in group))
        for connection in list(group):
            if connection is skip:
                continue
            try:
                await connection.deliver(event.topic, event.payload)
            except Exception:
                logger.exception("%r: group delivery failed", connection)

    async def _deliver_batch(self, event: Batch) -> None:
        """Each connection's PUBLISHes of a batch (a table's frame), written at once."""
        for key, packets in event.items:
            connection = self.connections.get(key)
            if connection is None:
                metrics.PUSHES_DROPPED.child("no_connection").add(len(packets))
                continue
            try:
                await connection.deliver_many(packets)
            except Exception:
                logger.exception("%r: batch delivery failed", connection)

    def _tell_redis_back(self) -> None:
        """REDIS's watcher (called from any thread)."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._redis_back.set)

    async def _renew_groups(self) -> None:
        """Add this process to its groups again every GROUP_RENEW_SECONDS, and as soon as
        Redis is back from an outage: a Redis restarted empty forgot them (the core layer
        keeps groups in Redis), and a room's messages would no longer reach this gate."""
        back = self._redis_back
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(back.wait(), GROUP_RENEW_SECONDS)
            back.clear()
            for group in list(self.members):
                try:
                    await self.layer.group_add(group, self.channel)
                except Exception as err:
                    if dependencies.note(err) is None:
                        logger.exception("renewing group %s failed", group)
                    else:  # logged once per outage; renewed again when it is back
                        break
