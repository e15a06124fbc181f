"""Persistent MQTT sessions, and pushes at QoS 1.

A client that connects with MQTT 3.1.1's clean session 0, or MQTT 5's Session Expiry
Interval above 0, keeps its session when its connection ends, for that interval (capped by
``SESSION_EXPIRY_MAX``; 3.1.1 gets the cap): the session stays in its groups (its rooms), its
user and settings stay, and the pushes meant for it at QoS 1 are kept in its queue
(mqant.queues: this process's memory, or Redis once ``REDIS_URL`` is set) until a connection
with the same client id takes it back and acknowledges them. Meanwhile the modules see the
session as connected; they hear of its end when it expires.

Which pushes go at QoS 1: those on a topic the client subscribed to at QoS 1 or 2, and, for a
persistent session, those on a topic of ``RELIABLE_PUSHES`` (``Chat/OnChat``...). The rest go
at QoS 0, as mqant sends everything, and a session away misses them. Every push at QoS 1 is
written to the session's queue first, sent within the client's receive maximum, and removed
when its PUBACK comes: a gate that dies with the connection loses none when Redis holds the
queue. A session whose connection asks for nothing of this (mqant's clients: clean session,
no SUBSCRIBE) costs nothing here: its pushes take the connection's own path.
"""

import asyncio
import collections
import contextlib
import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from gate import conf
from gate.auth import connect_user
from gate.host import SessionHost
from gate.inorder import InOrder
from gate.mqtt import PublishTooLarge, ServerProtocol, reasons
from gate.mqtt.packets import SERVER_UNAVAILABLE, Connect
from mqant import conf as mqant_conf
from mqant import metrics, owners, queues, runtime
from mqant.errors import ServiceUnavailable
from mqant.ops import HandOver, Packet

logger = logging.getLogger(__name__)

# The push that tells a client whose session was resumed how many of its pushes its queue's
# bounds dropped while it was away: {"dropped": N}.
DROPPED_TOPIC = "Gate/OnDropped"

# Pushes of one session waiting for its store (a Redis that hangs holds each write up to its
# timeout): past it a push is dropped and counted, not kept in memory.
MAX_WAITING = 1000
# Pushes of one session sent and not yet acknowledged, at most, whatever the client's receive
# maximum (65535 for 3.1.1): what a client that never acknowledges holds in memory here.
MAX_IN_FLIGHT = 64
# Seconds before a session's sends are tried again after its store failed to answer.
RETRY_PUMP = 1.0

PARKED = metrics.PERSISTENT_SESSIONS.child("away")
LIVE = metrics.PERSISTENT_SESSIONS.child("connected")


class Connection(Protocol):
    """What a session's pushes need of its connection (gate.connection.MQTTConnection)."""

    protocol: ServerProtocol
    host: SessionHost
    pushes: "Pushes | None"

    @property
    def closed(self) -> bool: ...

    async def publish(self, topic: str, payload: bytes) -> None:
        """Write a PUBLISH at QoS 0."""
        ...

    async def flush(self) -> None:
        """Write what the protocol queued."""
        ...

    async def close(self, reason_code: int = ..., reason: str = "") -> None: ...

    def adopt(self, host: SessionHost) -> None:
        """Carry ``host`` instead of the connection's own fresh session."""
        ...

    def hand_over(self) -> None:
        """Another connection takes the session: this one's end does not end it."""
        ...


class Refused(Exception):
    """A CONNECT whose persistent session cannot be given: ``code`` is its CONNACK's (MQTT 5
    reason code; the protocol maps it for 3.1.1), the message its reason string."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Wanted:
    """What a CONNECT asks of its session: ``expiry`` seconds it outlives the connection (0:
    it ends with it), and whether to start ``clean`` (else resume one under the client id)."""

    expiry: float
    clean: bool


def wanted(protocol: ServerProtocol) -> Wanted:
    """What the accepted CONNECT on ``protocol`` asks, within SESSION_EXPIRY_MAX."""
    connect = protocol.connect
    assert connect is not None
    cap = float(conf.get("SESSION_EXPIRY_MAX"))
    if protocol.protocol_level == 5:
        asked = connect.properties.session_expiry_interval or 0
        expiry = cap if asked == 0xFFFFFFFF else min(float(asked), cap)
        return Wanted(expiry, connect.clean_session)
    if connect.clean_session:
        return Wanted(0.0, True)
    return Wanted(cap, False)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` (MQTT's ``+`` and ``#`` wildcards)."""
    if topic_filter == topic:
        return True
    levels = topic.split("/")
    for index, part in enumerate(topic_filter.split("/")):
        if part == "#":
            return True
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(levels) == len(topic_filter.split("/"))


def reliable(topic: str) -> bool:
    """Whether a persistent session gets pushes on ``topic`` at QoS 1 (RELIABLE_PUSHES)."""
    return _matches_any(tuple(conf.get("RELIABLE_PUSHES")), topic)


@functools.lru_cache(maxsize=1024)
def _matches_any(filters: tuple[str, ...], topic: str) -> bool:
    """Once per topic, not once per member a room's push reaches."""
    return any(topic_matches(f, topic) for f in filters)


class Pushes:
    """The pushes of one session that asked for QoS 1 (a persistent one, or one that
    subscribed at QoS 1-2): their order, their queue, and its connection while it has one.

    Everything that touches the queue runs in one task, in order: a push's write, the sends
    (at most the client's receive maximum unacknowledged), an acknowledgement's removal.
    """

    live: ClassVar[dict[str, "Pushes"]] = {}  # persistent sessions of this process, by client id

    def __init__(
        self,
        host: SessionHost,
        store: queues.SessionQueues,
        key: str,
        owner: str,
        *,
        persistent: bool,
    ) -> None:
        self.host = host
        self.store = store
        self.key = key  # the client id (persistent) or the session id (a clean session)
        self.owner = owner
        self.persistent = persistent
        self.expiry = 0.0
        self.connection: Connection | None = None
        self.subscriptions: dict[str, int] = {}  # filter -> granted QoS
        self.ip = host.session.ip
        self._in_flight: dict[int, int] = {}  # packet id -> seq
        self._sent_upto = 0  # the last seq sent on the current connection
        # The pushes an earlier connection sent and the client did not acknowledge: seq ->
        # packet id, sent again under that id with DUP (MQTT 4.4).
        self._unacked: dict[int, int] = {}
        self._work = InOrder(lambda: f"{host!r}: pushes")
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._beat_timer: asyncio.TimerHandle | None = None
        self._user = host.session.user_id  # the user the store knows the session is
        self._counted: metrics.Count | None = None  # PARKED or LIVE, for a persistent one
        self.ended = False
        host.deliver = self.deliver
        host.deliver_many = self.deliver_many
        host.on_hand_over = self._taken_elsewhere

    def __repr__(self) -> str:
        return f"<Pushes {self.key} {'connected' if self.connection else 'away'}>"

    # What a push at QoS 1 goes through

    def qos(self, topic: str) -> int:
        """The QoS ``topic``'s pushes go at: the highest subscribed that matches, 1 for a
        reliable topic of a persistent session, else 0."""
        best = 0
        for topic_filter, granted in self.subscriptions.items():
            if granted > best and topic_matches(topic_filter, topic):
                best = granted
        if best == 0 and self.persistent and reliable(topic):
            best = 1
        return min(best, 1)  # QoS 2 is granted, and sent at QoS 1

    async def deliver(self, topic: str, payload: bytes) -> None:
        """The session's push (SessionHost.deliver): at QoS 0 straight to the connection
        (none while away: missed), at QoS 1 through the queue, in order with the others."""
        if self.qos(topic) == 0:
            connection = self.connection
            if connection is None:
                metrics.PUSHES_DROPPED.child("away").add()
            elif not self._work:  # nothing ahead of it: no reordering
                await connection.publish(topic, payload)
            else:
                self._work.add(lambda: self._publish_qos0(topic, payload))
            return
        if len(self._work) >= MAX_WAITING:  # its store does not keep up (Redis hung)
            metrics.PUSHES_DROPPED.child("unqueued").add()
            return
        self._work.add(lambda: self._append(topic, payload))

    async def deliver_many(self, packets: Sequence[Packet]) -> None:
        for topic, payload in packets:
            await self.deliver(topic, payload)

    async def _publish_qos0(self, topic: str, payload: bytes) -> None:
        if self.connection is not None:
            await self.connection.publish(topic, payload)

    async def _append(self, topic: str, payload: bytes) -> None:
        if self.ended:
            return
        try:
            await self._record_user()
            seq = await self.store.append(self.key, self.owner, topic, payload, 1)
            if seq is None and await self._lost_by_the_store():
                # Redis restarted empty (or the session's key expired): the session is
                # claimed again, empty, rather than taken for taken over.
                seq = await self.store.append(self.key, self.owner, topic, payload, 1)
        except ServiceUnavailable as err:
            # The queue cannot be written: the push goes out as QoS 0 rather than not at all
            # (a session away misses it), and the outage is the store's to report.
            metrics.PUSHES_DROPPED.child("unqueued").add()
            logger.debug("%r: push on %s not queued: %s", self, topic, err)
            if self.connection is not None:
                await self.connection.publish(topic, payload)
            return
        if seq is None:  # another connection took the session over: this copy is done
            await self._taken_over()
            return
        await self._pump()

    async def _lost_by_the_store(self) -> bool:
        """Whether the store holds the session no more (nobody else owns it): if so, it is
        claimed again, fresh."""
        if not self.persistent or await self.store.owner(self.key) is not None:
            return False
        await self.store.claim(self.key, self.owner, user_id=self._user, clean=True)
        self._sent_upto = 0  # a new session's sequence starts again
        self._in_flight.clear()
        self._unacked.clear()
        return True

    async def _record_user(self) -> None:
        """The session was bound to a user (or unbound) since the store last heard: tell it,
        so that only that user's connections may take the session."""
        user = self.host.session.user_id
        if not self.persistent or user == self._user:
            return
        if self._user:  # the session left its user: what was queued for that user goes
            await self.store.discard(self.key, self.owner)
            await self.store.claim(self.key, self.owner, user_id=user, clean=True)
            self._unacked.clear()
        else:
            await self.store.bind_user(self.key, self.owner, user)
        self._user = user

    async def _pump(self) -> None:
        """Send what the queue holds past what was sent, within the client's window."""
        connection = self.connection
        if connection is None or connection.closed:
            return
        protocol = connection.protocol
        quota = min(protocol.send_quota, MAX_IN_FLIGHT - len(self._in_flight))
        if quota <= 0:
            return
        try:
            batch = await self.store.pending(self.key, self._sent_upto, quota)
        except ServiceUnavailable:
            # Tried again in a second, or at the next push or acknowledgement if sooner.
            asyncio.get_running_loop().call_later(RETRY_PUMP, self._work.add, self._pump)
            return
        if self.connection is not connection or connection.closed:
            return
        for queued in batch:
            if protocol.send_quota <= 0 or not protocol.accepted or self.connection is None:
                break
            try:
                packet_id = self._send(protocol, queued)
            except PublishTooLarge:  # over the client's Maximum Packet Size: never sent
                metrics.PUSHES_DROPPED.child("too_large").add()
                self._work.add(functools.partial(self.store.ack, self.key, queued.seq))
            else:
                self._in_flight[packet_id] = queued.seq
            self._sent_upto = queued.seq
        await connection.flush()

    def _send(self, protocol: ServerProtocol, queued: queues.Queued) -> int:
        """Write ``queued`` at QoS 1: under its earlier packet id, with DUP, when an earlier
        connection sent it."""
        packet_id = self._unacked.pop(queued.seq, None)
        if packet_id is not None and packet_id not in self._in_flight:
            protocol.resend(packet_id, queued.topic, queued.payload, 1)
            return packet_id
        sent = protocol.send_publish(queued.topic, queued.payload, qos=1)
        assert sent is not None  # QoS 1 has a packet id
        return sent

    def acknowledged(self, packet_id: int) -> None:
        """The client's PUBACK for ``packet_id``: remove its push from the queue and send
        the next."""
        seq = self._in_flight.pop(packet_id, None)
        if seq is not None:
            self._work.add(lambda: self._acked(seq))

    async def _acked(self, seq: int) -> None:
        with contextlib.suppress(ServiceUnavailable):  # if so, sent again on the next
            await self.store.ack(self.key, seq)  # connection, with DUP
        await self._pump()

    # Connections coming and going

    def connected(self, connection: Connection) -> None:
        """``connection`` carries the session now: what its queue holds is sent, from the
        oldest (those an earlier connection sent again, with DUP)."""
        self._cancel_timers()
        self._count(LIVE)
        self.connection = connection
        self._sent_upto = 0
        self._work.add(self._pump)
        if self.persistent:
            self._schedule_beat()

    def disconnected(self, expiry: float) -> bool:
        """The connection ended: a persistent session waits ``expiry`` seconds for the next
        (its pushes at QoS 1 queued meanwhile); returns whether it waits. A clean one ends."""
        self.connection = None
        self._unacked.update({seq: packet_id for packet_id, seq in self._in_flight.items()})
        self._in_flight.clear()
        if not self.persistent or expiry <= 0 or self.ended:
            return False
        self.expiry = expiry
        self._count(PARKED)
        loop = asyncio.get_running_loop()
        self._expiry_timer = loop.call_later(expiry, self._expire)
        self._schedule_beat()
        self._work.add(lambda: self._release(expiry))
        return True

    def _count(self, state: metrics.Count | None) -> None:
        """Count a persistent session as connected or away (None: neither, it ended)."""
        if not self.persistent:
            return
        if self._counted is not None:
            self._counted.value -= 1
        self._counted = state
        if state is not None:
            state.value += 1

    async def _release(self, expiry: float) -> None:
        try:
            await self._record_user()
            await self.store.release(self.key, self.owner, expiry)
        except ServiceUnavailable as err:
            logger.warning("%r: the queue's expiry was not written: %s", self, err)

    def _schedule_beat(self) -> None:
        """Every STORAGE_HEARTBEAT: while connected, the session's lease in its store is
        renewed (its expiry and two beats: should this process die, the store lets it go
        then); while away, its presence record is kept alive, as a connection's packets do."""
        every = float(mqant_conf.get("STORAGE_HEARTBEAT"))
        loop = asyncio.get_running_loop()

        def beat() -> None:
            if self.connection is not None:
                self._work.add(lambda: self._release(self.expiry + 2 * every))
            else:
                self.host.keeper.active(loop.time())
            self._beat_timer = loop.call_later(every, beat)

        if self.connection is not None:
            self._work.add(lambda: self._release(self.expiry + 2 * every))
        self._beat_timer = loop.call_later(every, beat)

    def _cancel_timers(self) -> None:
        for timer in (self._expiry_timer, self._beat_timer):
            if timer is not None:
                timer.cancel()
        self._expiry_timer = self._beat_timer = None

    def _expire(self) -> None:
        logger.info("%r: the session expired", self)
        asyncio.get_running_loop().create_task(self.end_away())

    async def end_away(self) -> None:
        """The session away ends for good (it expired, or a module or the admin closed it):
        the modules hear of its end, and its queue goes."""
        if self.ended:
            return
        await self.end(discard=True)
        await self.host.end(True)

    async def end(self, *, discard: bool) -> None:
        """The session's pushes end (its connection's end, or the session's own); ``discard``
        drops its queue. The host is its owner's to end."""
        if self.ended:
            return
        self.ended = True
        self._cancel_timers()
        self._work.cancel()
        self._count(None)
        if self.persistent and Pushes.live.get(self.key) is self:
            del Pushes.live[self.key]
            _per_address[self.ip] -= 1
            if not _per_address[self.ip]:
                del _per_address[self.ip]
        if discard:
            try:
                await self.store.discard(self.key, self.owner)
            except ServiceUnavailable as err:
                logger.warning("%r: the queue was not discarded (it expires): %s", self, err)

    async def _taken_elsewhere(self) -> None:
        """A connection of another gate process claimed the session (HandOver): its pushes
        stop here, and its connection, if any, is closed as taken over; the host ends."""
        if self.ended:
            return
        await self.end(discard=False)
        connection = self.connection
        if connection is not None:
            connection.hand_over()  # the host ends by the HandOver, not by the close
            await connection.close(reasons.SESSION_TAKEN_OVER, "Session taken over")

    async def _taken_over(self) -> None:
        """A connection of another process claimed the session: this copy leaves."""
        if self.ended:
            return
        logger.info("%r: taken over by another connection", self)
        connection = self.connection
        if connection is not None:
            await connection.close(reasons.SESSION_TAKEN_OVER, "Session taken over")
            await self.end(discard=False)  # the connection ends the host
        else:
            await self.end(discard=False)
            await self.host.end(True)


class ParkedLink:
    """The connection of a session away: its pushes go to its queue (SessionHost.link)."""

    def __init__(self, pushes: Pushes) -> None:
        self.pushes = pushes

    def __repr__(self) -> str:
        return repr(self.pushes)

    async def publish(self, topic: str, payload: bytes) -> None:
        await self.pushes.deliver(topic, payload)

    async def publish_many(self, packets: Sequence[Packet]) -> None:
        await self.pushes.deliver_many(packets)

    async def close(self, *_: Any) -> None:
        """Closed by a module or the admin while away: the session ends."""
        await self.pushes.end_away()


# Persistent sessions of this process by address, connected or away (Pushes.live's).
_per_address: collections.Counter[str] = collections.Counter()


def count_from(ip: str) -> int:
    """Persistent sessions of this process from address ``ip``, connected or away."""
    return _per_address[ip]


@dataclass(frozen=True, slots=True)
class Resumed:
    """A connection's persistent session: ``present`` when one existed under its client id
    (CONNACK's session present), ``host`` the live session it carries on (one of this
    process's; None: the connection's own, fresh, to bind to ``user``), ``dropped`` the
    pushes its bounds dropped while it was away."""

    pushes: Pushes
    present: bool
    host: SessionHost | None
    dropped: int
    user: str  # the user it is for ("": a guest's), whose credentials CONNECT brought


async def take(connection: Connection, want: Wanted, connect: Connect, user: str) -> Resumed:
    """Give ``connection`` the persistent session of its client id: the one of this process
    (taken from the connection that has it, if any), or the store's (a connection of another
    process that had it lets it go at its next push), or a new one; ``user`` is the one its
    credentials name ("": none read).

    Raises Refused when another user's session has the client id (and the CONNECT's
    credentials are not that user's), when the address has PERSISTENT_SESSIONS_PER_ADDRESS,
    when the store holds MAX_PERSISTENT_SESSIONS, or when it cannot be reached.
    """
    client_id = connect.client_id
    local = Pushes.live.get(client_id)
    ip = connection.host.session.ip
    most = int(conf.get("PERSISTENT_SESSIONS_PER_ADDRESS"))
    if local is None and most and count_from(ip) >= most:
        raise Refused(reasons.QUOTA_EXCEEDED, "Too many persistent sessions from your address")
    store = sessions().store
    # The owner token names the channel of the session that holds the queue: a connection
    # of another process that takes the session over tells it there (HandOver).
    owner = (local.host if local is not None else connection.host).session.channel
    claim, user = await _claim(store, client_id, owner, user, want, connect, ip)
    if claim.previous_owner and claim.previous_owner != owner:
        await owners.session_op_nr(claim.previous_owner, HandOver())
    if local is not None and not local.ended:
        old = local.connection
        if old is not None:
            old.hand_over()
            await old.close(reasons.SESSION_TAKEN_OVER, "Session taken over")
        if want.clean:
            await local.end(discard=False)  # the store's copy went with the clean claim
            await local.host.end(True)
        else:
            local.owner = owner
            local.expiry = want.expiry
            connection.adopt(local.host)
            connection.pushes = local
            return Resumed(local, True, local.host, claim.dropped, user)
    pushes = Pushes(connection.host, store, client_id, owner, persistent=True)
    pushes._user = claim.user_id
    pushes.expiry = want.expiry
    Pushes.live[client_id] = pushes
    _per_address[pushes.ip] += 1
    connection.pushes = pushes
    return Resumed(pushes, claim.present and not want.clean, None, claim.dropped, user)


async def _claim(
    store: queues.SessionQueues,
    client_id: str,
    owner: str,
    user: str,
    want: Wanted,
    connect: Connect,
    ip: str,
) -> tuple[queues.Claim, str]:
    """Claim the stored session for ``user``, and return the claim and the user it is for.
    When the session is another user's and the CONNECT credentials were not read
    (CONNECT_AUTH "ignore"), they are read now: a user's session goes on only with that
    user's credentials."""
    try:
        try:
            return await store.claim(client_id, owner, user_id=user, clean=want.clean), user
        except queues.SessionBelongsToAnother:
            if user or not connect.username:
                raise
            named = await connect_user(connect.username, connect.password, ip)
            if named == SERVER_UNAVAILABLE:  # the database cannot check them now
                raise Refused(
                    reasons.SERVER_UNAVAILABLE, "Credentials cannot be checked now"
                ) from None
            if not isinstance(named, str):
                raise
            return await store.claim(client_id, owner, user_id=named, clean=want.clean), named
    except queues.SessionBelongsToAnother:
        raise Refused(
            reasons.NOT_AUTHORIZED, "The session of this client id is another user's"
        ) from None
    except queues.TooManySessions:
        raise Refused(reasons.QUOTA_EXCEEDED, "Too many persistent sessions") from None
    except ServiceUnavailable as err:
        raise Refused(reasons.SERVER_UNAVAILABLE, f"Sessions are unavailable: {err}") from None


def clean_pushes(connection: Connection) -> Pushes:
    """The QoS 1 pushes of a clean session that subscribed at QoS 1-2: kept in this
    process's memory, for the connection's life."""
    store = sessions().local
    key = connection.host.session.session_id
    pushes = Pushes(connection.host, store, key, "local", persistent=False)
    pushes._work.add(lambda: store.claim(key, "local", user_id="", clean=True))  # first
    pushes.connected(connection)
    return pushes


def dropped_notice(dropped: int) -> bytes:
    """The payload of DROPPED_TOPIC."""
    return json.dumps({"dropped": dropped}).encode()


class Sessions:
    """The session stores of a gate process's runtime (a part of it: gate.process): the
    persistent sessions' (MQANT["SESSION_QUEUES"]), and one in memory for clean sessions'
    QoS 1 pushes."""

    def __init__(self) -> None:
        self.store: queues.SessionQueues = queues.from_settings()
        self.local: queues.SessionQueues = queues.MemorySessionQueues(
            max_sessions=int(conf.get("MAX_CONNECTIONS"))
        )

    async def start(self, _runtime: runtime.Runtime) -> None:
        pass

    async def stop(self) -> None:
        await end_all()
        await self.store.close()
        await self.local.close()


async def end_all() -> None:
    """The process stops (gate.drain, once its connections are closed): each persistent
    session ends here, and the modules hear of it as of a connection's end; its queue stays in
    the store, for its expiry, for a connection to another process (or to this one, started
    again), which gets it with session present 1."""
    cap = float(conf.get("SESSION_EXPIRY_MAX"))
    for pushes in list(Pushes.live.values()):
        await pushes.end(discard=False)
        try:
            await pushes.store.release(pushes.key, pushes.owner, pushes.expiry or cap)
        except ServiceUnavailable as err:
            logger.warning("%r: the queue's expiry was not written: %s", pushes, err)
        if pushes.connection is None and not pushes.host.lost:
            await pushes.host.end(True)


def sessions() -> Sessions:
    """The session stores of the running event loop's runtime."""
    return runtime.get().part(Sessions)
