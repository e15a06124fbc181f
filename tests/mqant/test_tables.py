"""The table actor (mqant.tables): its queue, its frames on a clock the test moves, its
batched sends, players and seats, its lifecycle, its ids, and Phases."""

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import pytest
from django.test import override_settings

from mqant import Module, RemoteError, ServiceNotFound, ServiceUnavailable, Session, owners
from mqant.tables import (
    NO_SUCH_TABLE,
    QUEUE_FULL,
    TABLE_FINISHED,
    TABLE_FULL,
    ManualClock,
    Phase,
    Phases,
    Player,
    QueueFull,
    Room,
    Table,
    TableError,
    TableFinished,
    TooManyTables,
    build_big_room_id,
    event,
    parse_big_room_id,
)

T = TypeVar("T", bound=Table)
TICK = 0.03125  # a binary fraction: the frames fall exactly on the clock's steps


class Owner:
    """A connection of this process, as the gate's is to owners: it records its writes."""

    def __init__(self) -> None:
        self.writes: list[list[tuple[str, bytes]]] = []

    async def apply_session_op(self, op: Any) -> Any:
        raise AssertionError("not used")

    async def deliver(self, topic: str, payload: bytes) -> None:
        self.writes.append([(topic, payload)])

    async def deliver_many(self, packets: Sequence[tuple[str, bytes]]) -> None:
        self.writes.append(list(packets))

    def topics(self) -> list[list[str]]:
        return [[topic for topic, _ in write] for write in self.writes]


class Game(Module):
    module_type = "Game"


class Counter(Table):
    """Events append to ``log``; ``update`` counts frames; ``ping`` notifies everyone."""

    capacity = 3
    queue_size = 4
    idle_timeout = 0.0

    async def on_create(self) -> None:
        self.log: list[Any] = []
        self.updates: list[float] = []
        self.destroyed = False

    async def on_destroy(self) -> None:
        self.destroyed = True

    @event()
    async def add(self, session: Session | None, value: Any) -> Any:
        self.log.append(("start", value))
        await asyncio.sleep(0)  # another event must not run in between
        self.log.append(("end", value))
        return value * 2

    @event("Fail")
    def fail(self, session: Session | None) -> None:
        raise TableError("no")

    @event()
    async def sit(self, session: Session) -> int:
        return (await self.join(session)).seat

    @event()
    async def stand(self, session: Session) -> None:
        await self.leave(session)

    @event()
    def ping(self, session: Session | None, n: int) -> None:
        for i in range(n):
            self.notify("Game/OnPing", {"i": i})

    def update(self, dt: float) -> None:
        self.updates.append(round(dt, 6))


class Ticking(Counter):
    tick_interval = TICK
    tick_phase = 0.0  # the frames fall on the clock's steps


Sessions = dict[str, tuple[Session, Owner]]


@pytest.fixture
def sessions() -> Iterator[Sessions]:
    """Sessions whose connections are owners in this process."""
    made: dict[str, tuple[Session, Owner]] = {}
    with override_settings(MQANT={"RPC_LOCAL_SHORTCUT": True}):
        yield made
    for session, _ in made.values():
        owners.detach(session.channel)


def connect(made: dict[str, tuple[Session, Owner]], user: str) -> tuple[Session, Owner]:
    """A new connection (a new session id and channel) for ``user`` ("" for a guest)."""
    n = len(made)
    session = Session(
        session_id=f"s{n}",
        user_id=user,
        channel=f"gate.proc#{n}",
        ip="127.0.0.1",
        network="tcp",
        server_id="gate",
    )
    owner = Owner()
    owners.attach(session.channel, owner)
    made[f"{user}:{n}"] = (session, owner)
    return session, owner


def room(table_class: type[T], **kw: Any) -> tuple[Room[T], ManualClock]:
    module = Game()
    module.node_id = "Game@0123456789abcdef"
    clock = ManualClock()
    return Room(module, table_class, clock=clock, **kw), clock


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def test_events_run_in_order_one_at_a_time() -> None:
    rooms, _ = room(Counter)
    table = rooms.create()
    results = await asyncio.gather(*(table.call("add", None, i) for i in range(3)))
    assert results == [0, 2, 4]
    assert table.log == [(what, i) for i in range(3) for what in ("start", "end")]
    await rooms.stop()


async def test_an_events_error_reaches_its_caller_and_the_table_goes_on() -> None:
    rooms, _ = room(Counter)
    table = rooms.create()
    with pytest.raises(TableError, match=r"^no$"):
        await table.call("Fail", None)
    assert await table.call("add", None, 5) == 10
    with pytest.raises(TableError, match="no event 'nope'"):
        table.put_queue("nope", None)
    await rooms.stop()


async def test_a_full_queue_refuses_with_a_handler_error() -> None:
    rooms, clock = room(Ticking)
    table = rooms.create()
    await settle()
    for i in range(4):
        table.put_queue("add", None, i)
    with pytest.raises(QueueFull) as refused:
        table.put_queue("add", None, 99)
    assert str(refused.value) == QUEUE_FULL
    await clock.advance(TICK)
    assert [v for what, v in table.log if what == "end"] == [0, 1, 2, 3]
    table.put_queue("add", None, 4)  # room again after the frame
    await rooms.stop()


async def test_ticks_keep_their_cadence_and_events_wait_for_the_next_frame() -> None:
    rooms, clock = room(Ticking)
    table = rooms.create()
    await settle()
    assert table.frame == 1  # the first frame, at creation
    table.put_queue("add", None, 1)
    await settle()
    assert table.log == []  # queued, not run between frames
    await clock.advance(TICK * 10, step=TICK / 4)
    assert table.frame == 11
    assert table.log == [("start", 1), ("end", 1)]
    assert table.updates[1:] == [TICK] * 10
    assert max(table.lateness) < TICK / 4 + 1e-9
    await rooms.stop()


async def test_tables_made_together_tick_at_phases_of_their_own() -> None:
    class Spread(Counter):
        tick_interval = TICK

    rooms, clock = room(Spread)
    tables = [rooms.create() for _ in range(8)]
    await settle()
    starts: dict[int, float] = {}
    for _ in range(128):  # two intervals, in 128 steps: when does each table's second frame run
        await clock.advance(TICK / 64)
        for table in tables:
            if table.frame == 2:
                starts.setdefault(table.table_id, clock.now())
    assert len(starts) == 8
    assert len(set(starts.values())) > 4  # spread over the interval, not all at once
    for table in tables:
        assert max(table.lateness) <= TICK / 64 + 1e-9
    await rooms.stop()


async def test_a_stall_skips_the_lost_frames_instead_of_running_them_back_to_back() -> None:
    rooms, clock = room(Ticking)
    table = rooms.create()
    await settle()
    await clock.advance(TICK * 100)  # one jump: the loop was blocked for 100 frames
    assert table.frame == 2  # the frame due now, not the 99 before it
    assert table.skipped_frames == 99
    await clock.advance(TICK * 3, step=TICK)
    assert table.frame == 5
    await rooms.stop()


async def test_a_frames_sends_go_out_as_one_write_per_player(sessions: Sessions) -> None:
    rooms, clock = room(Ticking)
    table = rooms.create()
    ann, ann_out = connect(sessions, "ann")
    bob, bob_out = connect(sessions, "bob")
    table.put_queue("sit", ann)
    table.put_queue("sit", bob)
    await clock.advance(TICK)
    table.put_queue("ping", None, 3)
    table.put_queue("ping", None, 2)
    await clock.advance(TICK)
    assert ann_out.topics() == [["Game/OnPing"] * 5]
    assert bob_out.topics() == [["Game/OnPing"] * 5]
    assert [payload for _, payload in ann_out.writes[0]][:3] == [
        b'{"i":0}', b'{"i":1}', b'{"i":2}',
    ]  # fmt: skip
    await clock.advance(TICK)
    assert len(ann_out.writes) == 1  # nothing produced, nothing written
    await rooms.stop()


async def test_players_join_leave_and_the_capacity_holds(sessions: Sessions) -> None:
    rooms, _ = room(Counter)
    table = rooms.create()
    people = [connect(sessions, name)[0] for name in ("a", "b", "c", "d")]
    assert [await table.call("sit", s) for s in people[:3]] == [0, 1, 2]
    assert not table.usable()
    with pytest.raises(TableError, match=TABLE_FULL):
        await table.call("sit", people[3])
    await table.call("stand", people[1])
    assert await table.call("sit", people[3]) == 1  # the free seat
    assert rooms.usable_table() is not table  # full again: a new table
    await rooms.stop()


async def test_a_seat_is_kept_for_a_reconnect_within_the_seat_timeout(sessions: Sessions) -> None:
    class Seats(Counter):
        seat_timeout = 10.0

        async def on_create(self) -> None:
            await super().on_create()
            self.told: list[str] = []

        async def on_disconnect(self, player: Player) -> None:
            self.told.append("disconnect " + player.key)

        async def on_reconnect(self, player: Player) -> None:
            self.told.append("reconnect " + player.key)

        async def on_leave(self, player: Player) -> None:
            self.told.append("leave " + player.key)

    rooms, clock = room(Seats)
    table = rooms.create()
    ann, ann_out = connect(sessions, "ann")
    bob, bob_out = connect(sessions, "bob")
    assert await table.call("sit", ann) == 0
    await table.call("sit", bob)
    await rooms.session_closed(ann)
    await settle()
    assert table.told == ["disconnect ann"]
    table.put_queue("ping", None, 1)
    await settle()
    assert ann_out.writes == []  # ann is left out
    assert len(bob_out.writes) == 1  # bob goes on
    await clock.advance(9.0)
    ann2, ann2_out = connect(sessions, "ann")
    assert await table.call("sit", ann2) == 0  # the same seat, on the new connection
    assert table.told == ["disconnect ann", "reconnect ann"]
    table.put_queue("ping", None, 1)
    await settle()
    assert len(ann2_out.writes) == 1

    await rooms.session_closed(bob)
    await clock.advance(5.0, step=0.5)
    assert "bob" in table.players
    await clock.advance(6.0, step=0.5)
    assert "bob" not in table.players  # past the seat timeout: gone
    assert table.told[-1] == "leave bob"
    bob2, _ = connect(sessions, "bob")
    assert await table.call("sit", bob2) == 1  # a new seat (the first free one)
    await rooms.stop()


async def test_a_guest_leaves_at_once_and_an_old_connections_end_is_ignored(
    sessions: Sessions,
) -> None:
    class Seats(Counter):
        seat_timeout = 10.0

    rooms, _ = room(Seats)
    table = rooms.create()
    guest, _ = connect(sessions, "")
    ann, _ = connect(sessions, "ann")
    await table.call("sit", guest)
    await table.call("sit", ann)
    ann2, _ = connect(sessions, "ann")
    await table.call("sit", ann2)  # a second connection takes the seat over
    await rooms.session_closed(guest)
    await rooms.session_closed(ann)  # the old one ends: nothing changes
    await settle()
    assert list(table.players) == ["ann"]
    assert table.players["ann"].connected
    assert table.players["ann"].session is ann2
    await rooms.stop()


async def test_an_idle_table_finishes_and_its_id_is_refused_as_stale() -> None:
    class Idle(Counter):
        idle_timeout = 30.0

    rooms, clock = room(Idle)
    table = rooms.create()
    old_id = table.big_room_id
    await clock.advance(20.0)
    table.put_queue("add", None, 1)  # an event: the idle time starts again
    await clock.advance(20.0)
    assert not table.finished
    await clock.advance(11.0)
    assert table.finished
    assert table.destroyed
    assert len(rooms) == 0
    with pytest.raises(TableFinished) as stale:
        rooms.table_for(old_id)
    assert str(stale.value) == TABLE_FINISHED
    with pytest.raises(TableFinished):
        table.put_queue("add", None, 1)
    reused = rooms.create()
    assert reused.table_id == table.table_id
    assert reused.transaction_id != table.transaction_id
    assert rooms.table_for(reused.big_room_id) is reused
    with pytest.raises(TableFinished):
        await rooms.call(old_id, "add", None, 1)  # the reused id's old transaction
    await rooms.stop()


async def test_the_events_waiting_when_a_table_finishes_are_refused() -> None:
    rooms, _ = room(Ticking)
    table = rooms.create()
    await settle()
    waiting = asyncio.ensure_future(table.call("add", None, 1))
    await settle()
    await table._stop()
    with pytest.raises(TableFinished):
        await waiting


async def test_tables_per_node_are_bounded() -> None:
    rooms, _ = room(Counter, max_tables=2)
    rooms.create()
    rooms.create()
    with pytest.raises(TooManyTables, match="maximum of 2 tables"):
        rooms.create()
    await rooms.stop()


def test_big_room_ids() -> None:
    text = build_big_room_id("XaXb@00ff", 3, 1234)
    assert text == "BR:XaXb@00ff:3:1234"
    assert parse_big_room_id(text) == ("XaXb@00ff", 3, 1234)
    for bad in ("", "BR:a:1", "XX:a:1:2", "BR::1:2", "BR:a:b:2", 5, None, "BR:a:1:2" + "0" * 400):
        with pytest.raises(TableError, match="bigroomId"):
            parse_big_room_id(bad)


async def test_ids_of_other_nodes_and_unknown_tables_are_refused() -> None:
    rooms, _ = room(Counter)
    with pytest.raises(TableError, match=NO_SUCH_TABLE):
        rooms.table_for("BR:Game@0123456789abcdef:7:1")
    with pytest.raises(TableError, match=NO_SUCH_TABLE):
        rooms.table_for("BR:Game@ffff:1:1")
    with pytest.raises(TableError, match=NO_SUCH_TABLE):
        await rooms.put("BR:Other@ffff:1:1", "add", None, 1)  # not this module's node


async def test_phases_move_on_by_themselves_pause_and_resume() -> None:
    class Turns(Counter):
        async def on_create(self) -> None:
            await super().on_create()
            self.entered: list[tuple[str, float]] = []
            self.phases = Phases(
                self,
                [Phase("Idle"), Phase("Betting", 5, "Opening"), Phase("Opening", 2, "Betting")],
                lambda name: self.entered.append((name, self.clock.now())),
            )

        @event()
        async def start(self, session: None) -> None:
            await self.phases.go("Betting")

        @event()
        def pause(self, session: None) -> None:
            self.phases.pause()

        @event()
        def resume(self, session: None) -> None:
            self.phases.resume()

    rooms, clock = room(Turns)
    table = rooms.create()
    t0 = clock.now()
    await table.call("start", None)
    await clock.advance(5.0, step=0.5)
    await clock.advance(1.0, step=0.5)
    assert [name for name, _ in table.entered] == ["Betting", "Opening"]
    await table.call("pause", None)
    assert table.phases.remaining() == pytest.approx(1.0)
    await clock.advance(10.0, step=1.0)
    assert table.phases.current == "Opening"  # paused: the clock of the phase stood still
    await table.call("resume", None)
    await clock.advance(1.0, step=0.5)
    assert [name for name, _ in table.entered] == ["Betting", "Opening", "Betting"]
    assert table.entered[2][1] == pytest.approx(t0 + 17.0)
    await rooms.stop()


async def test_one_sessions_flood_fills_its_own_share_not_the_whole_queue(
    sessions: Sessions,
) -> None:
    class Shared(Ticking):
        queue_size = 8
        queue_per_session = 3

    rooms, clock = room(Shared)
    table = rooms.create()
    await settle()
    flood, _ = connect(sessions, "flood")
    calm, _ = connect(sessions, "calm")
    for i in range(3):
        table.put_queue("add", flood, i)
    with pytest.raises(QueueFull):
        table.put_queue("add", flood, 3)
    table.put_queue("add", calm, 10)  # the others still get in
    await clock.advance(TICK)
    assert [v for what, v in table.log if what == "end"] == [0, 1, 2, 10]
    table.put_queue("add", flood, 4)  # its share is free again after the frame
    await rooms.stop()


def test_an_event_may_not_hide_the_tables_own_methods() -> None:
    with pytest.raises(TypeError, match=r"hides Table\.join"):

        class Clash(Table):
            @event()
            async def join(self, session: Session) -> Player:
                raise AssertionError


def test_the_latest_frame_is_kept_for_ten_seconds_whoever_scrapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mqant import metrics, tables

    latest = tables._Latest()
    now = [5000.0]
    monkeypatch.setattr("mqant.tables.time.monotonic", lambda: now[0])
    gauge = metrics.TABLE_TICK_LATENESS_MAX.child()
    latest.note(5000.2, 0.004)
    latest.note(5001.5, 0.001)
    latest.gather()
    assert gauge.value == 0.004
    latest.gather()  # a second scrape reads the same
    assert gauge.value == 0.004
    now[0] = 5010.5
    latest.note(5010.5, 0.002)
    latest.gather()
    assert gauge.value == 0.002  # the 4 ms frame is more than 10 s old
    now[0] = 5030.0
    latest.gather()
    assert gauge.value == 0.0


async def test_a_join_after_its_connections_end_or_without_one_is_refused(
    sessions: Sessions,
) -> None:
    rooms, _ = room(Counter)
    table = rooms.create()
    ann, _ = connect(sessions, "ann")
    await rooms.session_closed(ann)  # heard of before the join's event ran
    with pytest.raises(TableError, match="no live connection"):
        await table.call("sit", ann)
    rest = Session(ip="", network="http", session_id="r", server_id="", channel="", user_id="x")
    with pytest.raises(TableError, match="no live connection"):
        await table.call("sit", rest)
    assert table.players == {}
    await rooms.stop()


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"capacity": "16"}, "must be a number"),
        ({"capacity": 1.5}, "whole number"),
        ({"seat_timeout": -1}, "at least 0"),
        ({"tick_interval": 0}, "positive"),
        ({"idle_timeout": None}, "may not be null"),
        ({"capacity": True}, "must be a number"),
        ({"colour": 3}, "is unknown"),
    ],
)
async def test_a_room_modules_table_settings_are_checked_at_start(
    table: dict[str, Any], problem: str
) -> None:
    from mqant.tables import RoomModule

    class Games(RoomModule):
        module_type = "Games"
        table_class = Counter

    with pytest.raises(ValueError, match=problem):
        await Games().on_init({"Table": table})
    module = Games()
    await module.on_init({"Table": {"capacity": 4, "tick_interval": None, "seat_timeout": 2.5}})
    made = module.room.create()
    assert (made.capacity, made.tick_interval, made.seat_timeout) == (4, None, 2.5)
    await module.room.stop()


async def test_phases_do_not_drift_when_their_timers_run_late() -> None:
    class Turns(Counter):
        async def on_create(self) -> None:
            await super().on_create()
            self.entered: list[tuple[str, float]] = []
            self.phases = Phases(
                self,
                [Phase("A", 1.0, "B"), Phase("B", 1.0, "A")],
                lambda name: self.entered.append((name, self.clock.now())),
            )

        @event()
        async def start(self, session: None) -> None:
            await self.phases.go("A")

    rooms, clock = room(Turns)
    table = rooms.create()
    t0 = clock.now()
    await table.call("start", None)
    for _ in range(4):
        await clock.advance(1.3)  # each timer runs 0.3 s late, or more
    # Due at 1, 2, 3, 4 and 5 s, whatever the timers' lateness (counted from when each
    # timer ran, the fifth phase would begin at 5.2 s and end at 6.5 s).
    assert [name for name, _ in table.entered] == ["A", "B", "A", "B", "A", "B"]
    assert table.phases.remaining() == pytest.approx(t0 + 6.0 - clock.now())
    await rooms.stop()


@pytest.mark.parametrize(
    ("failure", "seen"),
    [
        (ServiceNotFound("Service(type:Game@ffff) not found"), NO_SUCH_TABLE),
        (ServiceUnavailable.for_node("Game@ffff"), NO_SUCH_TABLE),  # its process died
        (ServiceUnavailable("Redis unavailable"), "Redis unavailable"),  # it may come back
        (RemoteError(TABLE_FINISHED), TABLE_FINISHED),  # the owner's refusal, as it said it
    ],
)
async def test_a_table_on_another_node_answers_as_its_node_can(
    monkeypatch: pytest.MonkeyPatch, failure: Exception, seen: str
) -> None:
    async def rpc(*args: Any, **kw: Any) -> Any:
        raise failure

    monkeypatch.setattr("mqant.tables.rpc_call", rpc)
    rooms, _ = room(Counter)
    with pytest.raises(Exception, match=seen) as refused:
        await rooms.call("BR:Game@ffff:1:1", "add", None, 1)
    assert isinstance(refused.value, TableError) == (seen != "Redis unavailable")
