"""Game tables: mqant's room/table model (``mqant-modules/room``) on asyncio.

A module hosts a ``Room`` of tables (``RoomModule`` wires one in); a ``Table`` is an actor:

- **its own bounded queue**: a handler puts an event with ``table.put_queue(name, session,
  *args)`` (``QueueFull``, a HandlerError, when the queue is full) or waits for its result
  with ``await table.call(...)``; the table's events (``@event`` methods) run one at a time
  in the table's own task, so that its state needs no lock;
- **a fixed tick**, when ``tick_interval`` is set: each frame runs the queued events, the
  timers due, then ``update(dt)``, then sends what the frame produced; without a tick, a
  frame runs as soon as an event is queued or a timer is due;
- **one write per player per frame**: ``send``/``notify`` collect the frame's pushes, and
  the frame's end sends each gate process one message with every packet of its players,
  which each connection writes at once (mqant's UnifiedSendMessageTable);
- **players bound to sessions** (``join``/``leave``), a user's seat kept ``seat_timeout``
  seconds after their connection ends so that they may come back to it (``on_reconnect``),
  a player whose connection is gone left out of the sends;
- **a lifecycle**: created on demand, ``on_create``/``on_destroy``, finished after
  ``idle_timeout`` seconds without an event (``on_idle``), at most ``Room.max_tables`` per
  node;
- **an address across processes**, mqant's BigRoomId ``BR:<node id>:<table id>:<transaction
  id>``: ``Room.put``/``Room.call`` reach the node that owns the table, over RPC when it is
  another, and a table that finished (its id reused, or not) is refused with
  ``TableFinished``.

``Phases`` is a small state machine on a table's timers for turn-based tables.
"""

import asyncio
import contextlib
import heapq
import inspect
import itertools
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from mqant import metrics, owners
from mqant.errors import HandlerError, RemoteError, ServiceNotFound, ServiceUnavailable
from mqant.module import Module
from mqant.ops import Packet
from mqant.owners import NO_CONNECTION
from mqant.rpc import call as rpc_call
from mqant.session import Session, encode_body

logger = logging.getLogger(__name__)

# Seconds a finished table waits for its last frame's pushes to other gate processes.
SEND_WAIT_AT_END = 1.0

# Errors a client reads (the handler's "Error").
QUEUE_FULL = "The table is busy: its queue is full"
TABLE_FINISHED = "The table has finished"
NO_SUCH_TABLE = "No such table"
BAD_ROOM_ID = "The bigroomId data structure is incorrect"
TABLE_FULL = "The table is full"
NOT_A_PLAYER = "You are not at this table"


class TableError(HandlerError):
    """A table refused an event; its text is the client's error."""


class QueueFull(TableError):
    def __init__(self) -> None:
        super().__init__(QUEUE_FULL)


class TableFinished(TableError):
    def __init__(self) -> None:
        super().__init__(TABLE_FINISHED)


class TooManyTables(TableError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"No table is free: this node hosts its maximum of {limit} tables")


# mqant's BigRoomId: BR:{node id}:{table id}:{transaction id}


def build_big_room_id(node_id: str, table_id: int, transaction_id: int) -> str:
    return f"BR:{node_id}:{table_id}:{transaction_id}"


def parse_big_room_id(big_room_id: Any) -> tuple[str, int, int]:
    """(node id, table id, transaction id); raises TableError for anything else."""
    if not isinstance(big_room_id, str) or len(big_room_id) > 300:
        raise TableError(BAD_ROOM_ID)
    parts = big_room_id.split(":")
    if len(parts) != 4 or parts[0] != "BR" or not parts[1]:
        raise TableError(BAD_ROOM_ID)
    try:
        table_id, transaction_id = int(parts[2]), int(parts[3])
    except ValueError:
        raise TableError(BAD_ROOM_ID) from None
    return parts[1], table_id, transaction_id


# Time, replaceable in tests


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Where a table reads the time and sets its wake-ups (the event loop's, by default)."""

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    """The running event loop's monotonic clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_at(when, callback)


class _ManualCall:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None

    def run(self) -> None:
        if self.callback is not None:
            self.callback()


class ManualClock:
    """A clock that moves only when told (``advance``): tests of cadence and timeouts."""

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self._calls: list[tuple[float, int, _ManualCall]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        handle = _ManualCall(callback)
        heapq.heappush(self._calls, (when, next(self._order), handle))
        return handle

    async def advance(self, seconds: float, step: float | None = None) -> None:
        """Move the time on by ``seconds`` (by ``step`` at a time), running what comes due
        and letting the woken tasks run."""
        end = self.time + seconds
        step = step or seconds
        while True:
            self.time = min(end, self.time + step)
            while self._calls and self._calls[0][0] <= self.time:
                _, _, handle = heapq.heappop(self._calls)
                handle.run()
            for _ in range(20):  # the woken tasks run, and those they wake
                await asyncio.sleep(0)
            if self.time >= end:
                return


# Events


_EVENT = "__mqant_table_event__"
_DISCONNECTED = "mqant.disconnected"  # the table's own event: a player's connection ended
F = TypeVar("F", bound=Callable[..., Any])


def event(name: str | None = None) -> Callable[[F], F]:
    """Declare a Table method as the event ``name`` (by default the method's name); it runs
    in the table's task, one event at a time, with the arguments given to ``put_queue``."""

    def mark(fn: F) -> F:
        setattr(fn, _EVENT, name or fn.__name__)
        return fn

    return mark


@dataclass(slots=True)
class _Queued:
    name: str
    session: Session | None
    args: tuple[Any, ...]
    result: "asyncio.Future[Any] | None" = None


@dataclass(slots=True)
class Timer:
    """A callback a table runs in its own task at ``when`` (``Table.after``)."""

    when: float
    fn: Callable[[], Any]
    cancelled: bool = False
    order: int = 0

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: "Timer") -> bool:
        return (self.when, self.order) < (other.when, other.order)


# Players


@dataclass(eq=False)
class Player:
    """A seat at a table, bound to a session: its key is the user's id, or the session's id
    for a guest (who cannot come back: a new connection is a new guest)."""

    key: str
    session: Session
    seat: int
    connected: bool = True
    left_at: float = 0.0  # when the connection ended (while the seat is kept)
    data: dict[str, Any] = field(default_factory=dict)  # the game's own

    @property
    def user_id(self) -> str:
        return self.session.user_id


def player_key(session: Session) -> str:
    return session.user_id or "guest:" + session.session_id


# Tables


class Table:
    """One table: subclass it, declare its ``@event`` methods, set the class settings below
    (or pass them through the Room's ``settings``), and override the hooks.

    Class settings: ``tick_interval`` (seconds, None: no tick), ``capacity`` (players, 0:
    no bound), ``queue_size`` (events waiting), ``queue_per_session`` (events of one
    session waiting), ``idle_timeout`` (seconds without an event
    before ``on_idle``, which finishes the table; 0: never), ``seat_timeout`` (seconds a
    user's seat is kept after their connection ends; 0: they leave at once).
    """

    tick_interval: ClassVar[float | None] = None
    capacity: ClassVar[int] = 0
    queue_size: ClassVar[int] = 256
    # Events of one session waiting at once: a flood from one client fills its own share,
    # not the queue the other players need.
    queue_per_session: ClassVar[int] = 16
    idle_timeout: ClassVar[float] = 300.0
    seat_timeout: ClassVar[float] = 0.0
    # The most frames run back to back to catch up after a stall; past it, the schedule
    # moves on (the frames are skipped, and counted).
    max_catch_up: ClassVar[int] = 5
    # Seconds between the first frame (at creation) and the second's schedule, past the
    # interval; None: drawn in [0, interval) from the transaction id, so that tables made
    # together do not tick together.
    tick_phase: ClassVar[float | None] = None

    _events: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                name = getattr(value, _EVENT, None)
                if name is None:
                    continue
                if hasattr(Table, attr):  # an event named join would hide Table.join
                    raise TypeError(f"{cls.__qualname__}.{attr}: an event hides Table.{attr}")
                found[name] = attr
        cls._events = found

    def __init__(self, room: "Room[Any]", table_id: int, transaction_id: int) -> None:
        self.room = room
        self.module = room.module
        self.table_id = table_id
        self.transaction_id = transaction_id
        self.big_room_id = build_big_room_id(room.node_id, table_id, transaction_id)
        self.clock = room.clock
        self.players: dict[str, Player] = {}
        self.finished = False
        self.frame = 0
        self.lateness: deque[float] = deque(maxlen=64)  # the recent frames' lateness
        self.skipped_frames = 0
        self._queue: deque[_Queued] = deque()
        self._queued_by: dict[str, int] = {}  # session id → its events waiting
        self._away: set[str] = set()  # the keys of the players whose seat is kept
        self._handlers: dict[str, Callable[..., Any]] = {
            name: getattr(self, attr) for name, attr in self._events.items()
        }
        self._handlers[_DISCONNECTED] = self._disconnected
        self._timers: list[Timer] = []
        self._timer_order = itertools.count()
        self._outgoing: dict[str, list[Packet]] = {}  # channel → the frame's packets
        self._sending: asyncio.Task[None] | None = None  # the last frame's remote packets
        self._wake = asyncio.Event()
        self._wakeup: TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.last_event = self.clock.now()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.big_room_id}>"

    # Hooks

    async def on_create(self) -> None:
        """Once, in the table's task, before its first frame: after ``Room.create`` has
        returned the table, so what a caller reads at once belongs in ``__init__``."""

    async def on_destroy(self) -> None:
        """Once, in the table's task, after its last frame (``finish``)."""

    def update(self, dt: float) -> Any:
        """Each frame of a ticking table, after its events and timers; ``dt`` is the time
        since the previous frame. May be a coroutine function."""

    async def on_idle(self) -> None:
        """``idle_timeout`` seconds went by without a queued event (timers and pushes do
        not count): finish, by default. A table its own timers drive overrides it."""
        self.finish()

    async def on_join(self, player: Player) -> None:
        """A player sat down (``join``)."""

    async def on_leave(self, player: Player) -> None:
        """A player left (``leave``, or their seat's time ran out)."""

    async def on_disconnect(self, player: Player) -> None:
        """A player's connection ended; their seat is kept ``seat_timeout`` seconds."""

    async def on_reconnect(self, player: Player) -> None:
        """A player came back to their kept seat (``join`` from a new connection)."""

    def usable(self) -> bool:
        """Whether ``Room.usable_table`` may pick this table for a new player."""
        return not self.finished and (not self.capacity or len(self.players) < self.capacity)

    # Events in

    def register(self, name: str, fn: Callable[..., Any]) -> None:
        """Make ``fn(session, *args)`` the event ``name`` of this table."""
        self._handlers[name] = fn

    def put_queue(self, name: str, session: Session | None, *args: Any) -> None:
        """Queue event ``name``, run in a frame to come with ``(session, *args)``; raises
        QueueFull, TableFinished, or TableError for an event the table does not have."""
        self._put(_Queued(name, session, args))

    async def call(self, name: str, session: Session | None, *args: Any) -> Any:
        """Queue event ``name`` and return its result once a frame has run it (its
        exception is raised here)."""
        result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(_Queued(name, session, args, result))
        return await result

    def _put(self, queued: _Queued, *, bounded: bool = True) -> None:
        if self.finished:
            raise TableFinished()
        if queued.name not in self._handlers:
            raise TableError(f"The table has no event {queued.name[:100]!r}")
        if bounded and len(self._queue) >= self.queue_size:
            metrics.TABLE_QUEUE_FULL.child().add()
            raise QueueFull()
        if queued.session is not None:
            session_id = queued.session.session_id
            waiting = self._queued_by.get(session_id, 0)
            if bounded and waiting >= self.queue_per_session:
                metrics.TABLE_QUEUE_FULL.child().add()
                raise QueueFull()
            self._queued_by[session_id] = waiting + 1
        self._queue.append(queued)
        self.last_event = self.clock.now()
        if self.tick_interval is None:
            self._wake.set()

    # Timers

    def after(self, seconds: float, fn: Callable[[], Any], *, since: float | None = None) -> Timer:
        """Run ``fn()`` (a function or a coroutine function) in the table's task in
        ``seconds`` from now (or from the clock time ``since``); ``cancel()`` the Timer
        returned to call it off."""
        start = self.clock.now() if since is None else since
        timer = Timer(start + seconds, fn, order=next(self._timer_order))
        heapq.heappush(self._timers, timer)
        if self.tick_interval is None:
            self._wake.set()  # the loop sets its wake-up again
        return timer

    # Players

    def player_of(self, session: Session) -> Player | None:
        return self.players.get(player_key(session))

    async def join(self, session: Session) -> Player:
        """Seat ``session``'s user (call it from an event); their kept seat when they had
        one (``on_reconnect``), a new one otherwise (``on_join``). Raises TableError when
        the table is full, or when the session has no live connection (a REST call, or a
        connection whose end this node heard of already: nothing would free its seat)."""
        if not session.channel or self.room.has_closed(session):
            raise TableError(NO_CONNECTION)
        key = player_key(session)
        player = self.players.get(key)
        if player is not None:
            was_connected = player.connected
            player.session, player.connected, player.left_at = session, True, 0.0
            self._away.discard(key)
            self.room._seat(player.session.session_id, self)
            if not was_connected:
                await self.on_reconnect(player)
            return player
        if self.capacity and len(self.players) >= self.capacity:
            raise TableError(TABLE_FULL)
        taken = {p.seat for p in self.players.values()}
        seat = next(i for i in itertools.count() if i not in taken)
        player = self.players[key] = Player(key, session, seat)
        self.room._seat(session.session_id, self)
        await self.on_join(player)
        return player

    async def leave(self, session: Session) -> Player | None:
        """Take ``session``'s user from the table (call it from an event)."""
        key = player_key(session)
        player = self.players.pop(key, None)
        self._away.discard(key)
        if player is None:
            return None
        self.room._unseat(player.session.session_id, self)
        await self.on_leave(player)
        return player

    async def _disconnected(self, session: Session) -> None:
        player = self.players.get(player_key(session))
        if player is None or player.session.session_id != session.session_id:
            return  # already back through another connection
        if not session.user_id or self.seat_timeout <= 0:
            await self.leave(session)
            return
        player.connected, player.left_at = False, self.clock.now()
        self._away.add(player.key)
        self.room._unseat(session.session_id, self)
        await self.on_disconnect(player)

    async def _expire_seats(self, now: float) -> None:
        for key in list(self._away):
            player = self.players.get(key)
            if player is None or player.connected:
                self._away.discard(key)
            elif now - player.left_at >= self.seat_timeout:
                self._away.discard(key)
                del self.players[key]
                await self.on_leave(player)

    # Sends: collected in the frame, written at its end

    def send(self, to: Player | Session, topic: str, body: Any) -> None:
        """Push ``topic`` to one player at the end of this frame."""
        session = to.session if isinstance(to, Player) else to
        if isinstance(to, Player) and not to.connected:
            return
        self._outgoing.setdefault(session.channel, []).append((topic, encode_body(body)))

    def notify(self, topic: str, body: Any, *, exclude: Player | Session | None = None) -> None:
        """Push ``topic`` to every connected player at the end of this frame (the body is
        encoded once)."""
        payload = encode_body(body)
        skip_channel = None
        if exclude is not None:
            skip_channel = (exclude.session if isinstance(exclude, Player) else exclude).channel
        outgoing = self._outgoing
        for player in self.players.values():
            channel = player.session.channel
            if player.connected and channel != skip_channel:
                outgoing.setdefault(channel, []).append((topic, payload))

    async def flush(self) -> None:
        """Send what the frame produced now (the frame's end does it)."""
        if not self._outgoing:
            return
        outgoing, self._outgoing = self._outgoing, {}
        sent = sum(len(packets) for packets in outgoing.values())
        metrics.TABLE_PUSHES.child().add(sent)
        remote = await owners.deliver_local(outgoing)
        if not remote:
            return
        # Other gate processes' packets go in a task of their own, one frame's at a time:
        # a slow or hung channel layer drops frames (counted), it does not stop the tick.
        if self._sending is not None and not self._sending.done():
            lost = sum(owners.batch_size(items) for items in remote.values())
            metrics.PUSHES_DROPPED.child("unavailable").add(lost)
            return
        self._sending = asyncio.get_running_loop().create_task(self._send_remote(remote))

    async def _send_remote(self, remote: owners.Batches) -> None:
        try:
            await owners.send_batches(remote)  # Redis down: counted there, logged once
        except Exception as err:  # a layer failure that is no known dependency's
            lost = sum(owners.batch_size(items) for items in remote.values())
            metrics.PUSHES_DROPPED.child("unavailable").add(lost)
            logger.warning("%r: a frame's pushes were lost: %s", self, err)

    # The table's life

    def finish(self) -> None:
        """End the table after this frame: no more events; ``on_destroy`` runs, and the
        table's id may serve a new table (with another transaction id)."""
        if not self.finished:
            self.finished = True
            self._wake.set()

    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=repr(self))

    async def _stop(self) -> None:
        """Finish and wait for the table's task (the node stops)."""
        self.finish()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        metrics.TABLES_OPEN.child().add()
        try:
            await self.on_create()
            if self.tick_interval is None:
                await self._run_on_events()
            else:
                await self._run_ticking(self.tick_interval)
        except Exception:
            logger.exception("%r: stopped by an error", self)
        finally:
            self.finished = True
            self._fail_waiting()
            self.room._finished(self)
            metrics.TABLES_OPEN.child().add(-1)
            with contextlib.suppress(Exception):
                await self.flush()
            if self._sending is not None:  # the last frames' pushes, for a bounded time
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(self._sending), SEND_WAIT_AT_END)
            try:
                await self.on_destroy()
            except Exception:
                logger.exception("%r: on_destroy failed", self)

    async def _run_ticking(self, interval: float) -> None:
        clock = self.clock
        scheduled = previous = clock.now()
        # Tables made together would tick together, each frame late by the others' before
        # it: past its first frame, each ticks at a phase of its own.
        phase = self.tick_phase
        if phase is None:
            phase = interval * (self.transaction_id % 997) / 997
        lateness = metrics.TABLE_TICK_LATENESS.child()
        while not self.finished:
            await self._sleep_until(scheduled)
            if self.finished:
                return
            now = clock.now()
            late = now - scheduled
            self.lateness.append(late)
            lateness.observe(late)
            _latest.note(now, late)
            if late > interval * self.max_catch_up:  # a stall: do not run the lost frames
                skipped = int(late / interval)
                self.skipped_frames += skipped
                metrics.TABLE_FRAMES_SKIPPED.child().add(skipped)
                scheduled += skipped * interval
            await self._frame(now)
            if self.finished:
                return
            result = self.update(now - previous)
            if inspect.isawaitable(result):
                await result
            previous = now
            await self.flush()
            scheduled += interval + phase
            phase = 0.0

    async def _run_on_events(self) -> None:
        while not self.finished:
            deadline = self._next_deadline()
            await self._sleep_until(deadline, woken=True)
            if self.finished:
                return
            await self._frame(self.clock.now())
            await self.flush()

    def _next_deadline(self) -> float:
        deadlines = [self.last_event + self.idle_timeout] if self.idle_timeout > 0 else []
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        if self._timers:
            deadlines.append(self._timers[0].when)
        if self.seat_timeout > 0 and self._away:
            deadlines.append(self.clock.now() + min(1.0, self.seat_timeout))
        return min(deadlines, default=self.clock.now() + 3600.0)

    async def _sleep_until(self, when: float, woken: bool = False) -> None:
        """Wait until ``when`` on the clock (or, with ``woken``, until an event is queued)."""
        if woken and (self._queue or self.finished):
            return
        if when <= self.clock.now() and not woken:
            await asyncio.sleep(0)  # a late frame still lets the others run
            return
        self._wake.clear()
        self._wakeup = self.clock.call_at(when, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            self._wakeup.cancel()
            self._wakeup = None

    async def _frame(self, now: float) -> None:
        """One frame: the events queued when it began, then the timers due."""
        self.frame += 1
        for _ in range(len(self._queue)):
            queued = self._queue.popleft()
            await self._run_event(queued)
            if self.finished:
                return
        while self._timers and self._timers[0].when <= now:
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                await self._run_callback(timer.fn)
            if self.finished:
                return
        if self._away:  # a frame looks at the kept seats only while there are some
            await self._expire_seats(now)
        if self.idle_timeout > 0 and now - self.last_event >= self.idle_timeout:
            self.last_event = now  # told once per idle period
            await self.on_idle()

    async def _run_event(self, queued: _Queued) -> None:
        if queued.session is not None:
            session_id = queued.session.session_id
            waiting = self._queued_by.pop(session_id, 1) - 1
            if waiting > 0:
                self._queued_by[session_id] = waiting
        fn = self._handlers[queued.name]
        try:
            result = fn(queued.session, *queued.args)
            if inspect.isawaitable(result):
                result = await result
        except Exception as err:
            if queued.result is not None and not queued.result.done():
                queued.result.set_exception(err)
            elif not isinstance(err, HandlerError):
                logger.exception("%r: event %s failed", self, queued.name)
            return
        if queued.result is not None and not queued.result.done():
            queued.result.set_result(result)

    async def _run_callback(self, fn: Callable[[], Any]) -> None:
        try:
            result = fn()
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("%r: a timer failed", self)

    def _fail_waiting(self) -> None:
        while self._queue:
            queued = self._queue.popleft()
            if queued.result is not None and not queued.result.done():
                queued.result.set_exception(TableFinished())


class _Latest:
    """The latest frame of the last WINDOW seconds, by second of the loop's clock
    (mqant_table_tick_lateness_max_seconds): whoever scrapes, and however often."""

    WINDOW = 10

    def __init__(self) -> None:
        self.second = 0
        self.late = 0.0
        self.seconds: deque[tuple[int, float]] = deque(maxlen=self.WINDOW)

    def note(self, now: float, late: float) -> None:
        second = int(now)
        if second != self.second:
            self.seconds.append((self.second, self.late))
            self.second, self.late = second, 0.0
        if late > self.late:
            self.late = late

    def gather(self) -> None:
        since = int(time.monotonic()) - self.WINDOW
        recent = [late for second, late in self.seconds if second > since]
        if self.second > since:
            recent.append(self.late)
        metrics.TABLE_TICK_LATENESS_MAX.child().set(max(recent, default=0.0))


_latest = _Latest()
metrics.on_collect(_latest.gather)


# Turn-based tables


@dataclass(frozen=True)
class Phase:
    """A state of ``Phases``: how long it lasts (None: until told) and which comes next."""

    name: str
    seconds: float | None = None
    next: str | None = None


class Phases:
    """A state machine on a table's timers: ``go(name)`` enters a phase and calls
    ``on_enter(name)``; a phase with ``seconds`` moves on to its ``next`` by itself.
    ``pause()`` stops the clock of the current phase, ``resume()`` restarts it with the time
    it had left."""

    def __init__(self, table: Table, phases: list[Phase], on_enter: Callable[[str], Any]) -> None:
        self.table = table
        self.phases = {phase.name: phase for phase in phases}
        self.on_enter = on_enter
        self.current: str | None = None
        self.ends_at: float | None = None
        self.paused_left: float | None = None
        self._timer: Timer | None = None

    @property
    def paused(self) -> bool:
        return self.paused_left is not None

    def remaining(self) -> float | None:
        """Seconds left in the current phase (None when it lasts until told)."""
        if self.paused_left is not None:
            return self.paused_left
        if self.ends_at is None:
            return None
        return max(0.0, self.ends_at - self.table.clock.now())

    async def go(self, name: str, *, since: float | None = None) -> None:
        """Enter phase ``name`` (as of the clock time ``since``, by default now)."""
        phase = self.phases[name]
        self._cancel()
        self.current, self.paused_left = name, None
        self.ends_at = None
        if phase.seconds is not None and phase.next is not None:
            self._arm(phase.seconds, phase.next, since)
        result = self.on_enter(name)
        if inspect.isawaitable(result):
            await result

    def pause(self) -> None:
        if self.paused_left is None:
            self.paused_left = self.remaining() or 0.0
            self._cancel()

    def resume(self) -> None:
        left, self.paused_left = self.paused_left, None
        phase = self.phases.get(self.current or "")
        if left is not None and phase is not None and phase.next is not None:
            self._arm(left, phase.next)

    def stop(self) -> None:
        self._cancel()
        self.current = self.ends_at = self.paused_left = None

    def _arm(self, seconds: float, next_phase: str, since: float | None = None) -> None:
        start = self.table.clock.now() if since is None else since
        ends_at = self.ends_at = start + seconds
        # The next phase counts from when this one was due to end, not from when its timer
        # ran: a late timer does not push every later phase back.
        self._timer = self.table.after(
            seconds, lambda: self.go(next_phase, since=ends_at), since=start
        )

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


# The room: a node's tables

# The connections' ends a room remembers, to refuse a join that arrives after its
# connection's end (a session id is never used again).
MAX_CLOSED_REMEMBERED = 10_000

# The internal handler a node answers for tables it owns, called by other nodes of the
# module (no "HD_": no client reaches it).
TABLE_EVENT = "mqant.table_event"


TableT = TypeVar("TableT", bound=Table)


class Room(Generic[TableT]):
    """A node's tables of one class: created on demand (``create``, ``usable_table``), found
    by id (``get``, ``table_for``), at most ``max_tables``; and the way to a table anywhere
    (``put``, ``call``: on its own node, over RPC for another)."""

    def __init__(
        self,
        module: Module,
        table_class: type[TableT],
        *,
        max_tables: int = 1000,
        clock: Clock | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.module = module
        self.table_class = table_class
        self.max_tables = max_tables
        self.clock: Clock = clock or LoopClock()
        self.settings = dict(settings or {})
        self.tables: dict[int, TableT] = {}
        self._seats: dict[str, set[Table]] = {}  # session id → its tables here
        self._last_transaction: dict[int, int] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()  # the latest ends, oldest first

    @property
    def node_id(self) -> str:
        return self.module.node_id or self.module.module_type

    def __iter__(self) -> Iterator[TableT]:
        return iter(list(self.tables.values()))

    def __len__(self) -> int:
        return len(self.tables)

    def create(self) -> TableT:
        """A new table under the smallest free id (a finished table's id is reused, with a
        new transaction id); raises TooManyTables at ``max_tables``."""
        if len(self.tables) >= self.max_tables:
            raise TooManyTables(self.max_tables)
        table_id = next(i for i in itertools.count(1) if i not in self.tables)
        transaction_id = 1 + secrets.randbelow(2**31 - 1)
        while transaction_id == self._last_transaction.get(table_id):
            transaction_id = 1 + secrets.randbelow(2**31 - 1)
        self._last_transaction[table_id] = transaction_id
        table = self.table_class(self, table_id, transaction_id)
        for key, value in self.settings.items():
            setattr(table, key, value)
        self.tables[table_id] = table
        table._start()
        return table

    def usable_table(self, usable: Callable[[TableT], bool] | None = None) -> TableT:
        """The first table ``usable`` (by default the table's own ``usable()``) accepts, or
        a new one."""
        accept = usable or (lambda table: table.usable())
        for table in self.tables.values():
            if not table.finished and accept(table):
                return table
        return self.create()

    def get(self, table_id: int) -> TableT | None:
        table = self.tables.get(table_id)
        return None if table is None or table.finished else table

    def table_for(self, big_room_id: Any) -> TableT:
        """This node's table of ``big_room_id``; raises TableError when the id is malformed
        or names another node or no table, TableFinished when that table has finished."""
        node_id, table_id, transaction_id = parse_big_room_id(big_room_id)
        if node_id != self.node_id:
            raise TableError(NO_SUCH_TABLE)
        table = self.tables.get(table_id)
        if table is None or table.transaction_id != transaction_id:
            if table_id in self._last_transaction:
                raise TableFinished()
            raise TableError(NO_SUCH_TABLE)
        if table.finished:
            raise TableFinished()
        return table

    async def put(self, big_room_id: Any, name: str, session: Session | None, *args: Any) -> None:
        """``put_queue`` on the table of ``big_room_id``, on whichever node owns it."""
        await self._reach(big_room_id, name, session, args, wait=False)

    async def call(self, big_room_id: Any, name: str, session: Session | None, *args: Any) -> Any:
        """``call`` on the table of ``big_room_id``, on whichever node owns it."""
        return await self._reach(big_room_id, name, session, args, wait=True)

    async def _reach(
        self, big_room_id: Any, name: str, session: Session | None, args: tuple[Any, ...],
        *, wait: bool,
    ) -> Any:  # fmt: skip
        node_id, _, _ = parse_big_room_id(big_room_id)
        if node_id == self.node_id:
            return await self.serve(big_room_id, name, session, list(args), wait)
        module_type = self.module.module_type
        if not node_id.startswith(module_type + "@"):
            raise TableError(NO_SUCH_TABLE)
        try:
            return await rpc_call(
                node_id, TABLE_EVENT, big_room_id, name, session, list(args), wait
            )
        except ServiceNotFound:  # the node is gone, and its tables with it
            raise TableError(NO_SUCH_TABLE) from None
        except ServiceUnavailable as err:
            if str(err) == str(ServiceUnavailable.for_node(node_id)):  # its process died
                raise TableError(NO_SUCH_TABLE) from None
            raise
        except RemoteError as err:  # the owner's TableError, as it said it
            raise TableError(str(err)) from None

    async def serve(
        self, big_room_id: Any, name: Any, session: Session | None, args: Any, wait: Any
    ) -> Any:
        """A table's event here (``Room.put``/``call``, from this node or another)."""
        if not isinstance(name, str) or not isinstance(args, list):
            raise TableError("A table event is a name and a list of arguments")
        table = self.table_for(big_room_id)
        if wait:
            return await table.call(name, session, *args)
        table.put_queue(name, session, *args)
        return None

    async def session_closed(self, session: Session) -> None:
        """A connection ended: its players are disconnected (kept for ``seat_timeout``), and
        a join of the session still on its way is refused (``has_closed``)."""
        self._closed[session.session_id] = None
        if len(self._closed) > MAX_CLOSED_REMEMBERED:
            self._closed.popitem(last=False)
        for table in list(self._seats.pop(session.session_id, ())):
            # Past the queue's bound: a connection's end is never lost to a busy table.
            with contextlib.suppress(TableError):
                table._put(_Queued(_DISCONNECTED, session, ()), bounded=False)

    def has_closed(self, session: Session) -> bool:
        """Whether this node heard that ``session``'s connection ended (of the last
        MAX_CLOSED_REMEMBERED ends)."""
        return session.session_id in self._closed

    async def stop(self) -> None:
        """Finish every table and wait for them (the node stops)."""
        await asyncio.gather(*(table._stop() for table in list(self.tables.values())))

    def _seat(self, session_id: str, table: Table) -> None:
        self._seats.setdefault(session_id, set()).add(table)

    def _unseat(self, session_id: str, table: Table) -> None:
        tables = self._seats.get(session_id)
        if tables is not None:
            tables.discard(table)
            if not tables:
                del self._seats[session_id]

    def _finished(self, table: Table) -> None:
        if self.tables.get(table.table_id) is table:
            del self.tables[table.table_id]
        for player in table.players.values():
            self._unseat(player.session.session_id, table)


class RoomModule(Module):
    """A module that hosts a Room of ``table_class`` tables in ``self.room``: it answers the
    other nodes' calls for its tables (``Room.put``/``call``), tells its tables when a
    player's connection ends, and finishes them at stop. Its settings may hold ``MaxTables``
    (``max_tables``, 1000) and ``Table``, a dict of the tables' class settings
    (``{"seat_timeout": 30}``)."""

    table_class: ClassVar[type[Table]] = Table
    max_tables: ClassVar[int] = 1000

    room: Room[Any]

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        table_settings = settings.get("Table") or {}
        for key, value in table_settings.items():
            problem = _setting_problem(key, value)
            if problem:
                raise ValueError(f"{self.module_type}: table setting {key!r} {problem}")
        self.room = Room(
            self,
            self.table_class,
            max_tables=int(settings.get("MaxTables", self.max_tables)),
            settings=table_settings,
        )
        self.register_go(TABLE_EVENT, self.room.serve)

    async def on_session_closed(self, session: Session) -> None:
        await self.room.session_closed(session)

    async def on_destroy(self) -> None:
        await self.room.stop()
        await super().on_destroy()


# The table class settings a module's settings may give, and whether None is one's value.
_TABLE_SETTINGS = {
    "tick_interval": True, "tick_phase": True, "capacity": False, "queue_size": False,
    "queue_per_session": False, "idle_timeout": False, "seat_timeout": False,
    "max_catch_up": False,
}  # fmt: skip
_COUNTS = ("capacity", "queue_size", "queue_per_session", "max_catch_up")


def _setting_problem(key: str, value: Any) -> str:
    """What is wrong with a table setting from a module's settings ("" when nothing)."""
    if key not in _TABLE_SETTINGS:
        return f"is unknown (known: {', '.join(_TABLE_SETTINGS)})"
    if value is None:
        return "" if _TABLE_SETTINGS[key] else "may not be null"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, not {value!r}"
    if key in _COUNTS and not isinstance(value, int):
        return f"must be a whole number, not {value!r}"
    if value < 0 or (key == "tick_interval" and value == 0):
        return f"must be {'positive' if key == 'tick_interval' else 'at least 0'}, not {value!r}"
    return ""
