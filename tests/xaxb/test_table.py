"""The XaXb table's game on a clock the test moves: its phases and their timings, betting
that ends once everyone staked, the settlement's arithmetic, the stakes it refuses, the
bankrupt player, pause and resume, a leaver finishing the game, the hand-out that holds a
seat, and a reconnect that is told where the game is."""

import itertools
import json
from typing import Any

import pytest

from mqant import HandlerError, Session
from mqant.tables import (
    NOT_A_PLAYER,
    TABLE_FULL,
    ManualClock,
    Room,
    TableError,
    TableFinished,
)
from tests.mqant.test_tables import Sessions, connect
from xaxb.modules import NO_TABLE, XaXb
from xaxb.table import (
    ACTIVE,
    BAD_TARGET,
    BANKRUPT,
    INITIALIZED,
    NOT_BETTING,
    NOT_STARTED,
    PAUSED,
    PAUSED_NOW,
    STAKED_ALREADY,
    START_COINS,
    XaXbTable,
)

NODE = "XaXb@0123456789abcdef"
EMPTY_SEAT = {"Coin": 0, "Rid": "", "SeatIndex": 0, "SitDown": False, "Stake": False,
              "Target": 0, "Weight": 0}  # fmt: skip
STEP = 0.025  # the clock's step: a push is due at its phase's time, within one step


class Client:
    """A connection of this process, reading the pushes its table wrote to it."""

    def __init__(self, made: Sessions, user: str = "") -> None:
        self.session, self.owner = connect(made, user)
        self.read = 0

    def pushes(self) -> list[tuple[str, Any]]:
        """The pushes written since the previous call, decoded."""
        flat = [(topic, json.loads(p)) for write in self.owner.writes for topic, p in write]
        new, self.read = flat[self.read :], len(flat)
        return new

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.pushes()]

    def last(self, topic: str) -> Any:
        bodies = [body for t, body in self.pushes() if t == topic]
        assert bodies, f"no {topic}"
        return bodies[-1]


def xaxb_room(max_tables: int = 1000) -> tuple[Room[XaXbTable], ManualClock]:
    module = XaXb()
    module.node_id = NODE
    clock = ManualClock()
    module.room = Room(module, XaXbTable, clock=clock, max_tables=max_tables)
    return module.room, clock


async def game(made: Sessions, *users: str) -> tuple[Room[XaXbTable], ManualClock, XaXbTable,
                                                     Client, Client]:  # fmt: skip
    """A table whose two players entered and sat down: its game started (in Idle)."""
    rooms, clock = xaxb_room()
    table = rooms.create()
    a, b = (Client(made, user) for user in (users or ("", "")))
    for client in (a, b):
        assert await table.call("enter", client.session) == table.big_room_id
    for client in (a, b):
        assert await table.call("sit_down", client.session) == "success"
    assert table.state == ACTIVE
    return rooms, clock, table, a, b


async def timeline(clock: ManualClock, seconds: float, client: Client) -> list[tuple[float, str]]:
    """Move the clock on, noting when (seconds from now) each of ``client``'s pushes came."""
    start, seen = clock.now(), []
    for _ in range(round(seconds / STEP)):
        await clock.advance(STEP)
        seen += [(clock.now() - start, topic) for topic, _ in client.pushes()]
    return seen


def at(seen: list[tuple[float, str]], topic: str) -> list[float]:
    return [when for when, t in seen if t == topic]


def close_to(times: list[float], expected: list[float]) -> bool:
    return len(times) == len(expected) and all(
        -1e-9 <= t - e <= STEP + 1e-9 for t, e in zip(times, expected, strict=True)
    )


async def stake(table: XaXbTable, client: Client, target: Any) -> Any:
    return await table.call("stake", client.session, target)


async def test_entering_and_sitting_down_start_the_game(sessions: Sessions) -> None:
    rooms, _ = xaxb_room()
    table = rooms.create()
    a, b = Client(sessions), Client(sessions)
    await table.call("enter", a.session)
    empty_a = {"Coin": START_COINS, "Rid": "", "SeatIndex": 0, "SitDown": False,
               "Stake": False, "Target": 0, "Weight": 0}  # fmt: skip
    assert a.pushes() == [
        ("XaXb/OnEnter", {"Rid": "", "SeatIndex": 0, "State": INITIALIZED}),  # to the joiner
        ("XaXb/OnEnter", empty_a),  # the new seat, to everyone
    ]
    await table.call("enter", b.session)
    assert a.pushes() == [("XaXb/OnEnter", {**empty_a, "SeatIndex": 1})]
    assert b.topics() == ["XaXb/OnEnter", "XaXb/OnEnter"]
    await table.call("sit_down", a.session)
    assert table.state == INITIALIZED  # one sat down: no game yet
    await table.call("sit_down", b.session)
    assert table.state == ACTIVE
    seats = [{**empty_a, "SitDown": True, "SeatIndex": i} for i in (0, 1)]
    assert a.pushes() == [("XaXb/OnResume", seats), ("XaXb/Idle", {"Coin": 500})]
    assert b.topics() == ["XaXb/OnResume", "XaXb/Idle"]
    with pytest.raises(TableError, match=TABLE_FULL):
        await table.call("enter", Client(sessions).session)
    await rooms.stop()


async def test_a_round_runs_its_phases_on_time(sessions: Sessions) -> None:
    rooms, clock, table, a, _ = await game(sessions)
    a.pushes()
    table.draw = lambda: 4
    seen = await timeline(clock, 4.2, a)  # nobody stakes: betting lasts its 2.1 s
    assert [t for _, t in seen] == ["XaXb/Betting", "XaXb/Opening", "XaXb/Settlement", "XaXb/Idle"]
    # Each phase starts in the step its time came (at most one step late), counted from
    # when the one before was due to end: a late step does not push the next ones back.
    assert close_to([when for when, _ in seen], list(itertools.accumulate([0.6, 2.1, 0.6, 0.6])))
    await rooms.stop()


async def test_betting_ends_once_every_player_staked(sessions: Sessions) -> None:
    rooms, clock, table, a, b = await game(sessions)
    await clock.advance(0.6 + STEP, step=STEP)
    assert table.phases.current == "Betting"
    await clock.advance(0.3, step=STEP)
    assert await stake(table, a, 3) == "success"
    assert table.phases.current == "Betting"  # one of two
    a.pushes()
    assert await stake(table, b, 7) == "success"
    assert table.phases.current == "Opening"  # at once, not at the end of the 2.1 s
    assert a.topics() == ["XaXb/Opening"]
    seen = await timeline(clock, 0.7, a)
    assert close_to(at(seen, "XaXb/Settlement"), [0.6])
    await rooms.stop()


@pytest.mark.parametrize(
    ("targets", "draw", "coins", "weights"),
    [
        ((2, 6), 6, [99_500, 100_300], [4, 0]),  # the closer guess wins 800
        ((3, 7), 5, [100_300, 99_500], [2, 2]),  # a tie: the lower seat wins
        ((9, 9), 0, [100_300, 99_500], [9, 9]),  # the same guess: the lower seat
        ((None, 1), 9, [START_COINS, 100_300], [0, 8]),  # one staked: it wins, however far
        ((None, None), 5, [START_COINS, START_COINS], [0, 0]),  # nobody staked: no winner
    ],
    ids=["closer", "tie", "same", "one-stake", "no-stake"],
)
async def test_the_settlement(
    sessions: Sessions,
    targets: tuple[int | None, int | None],
    draw: int,
    coins: list[int],
    weights: list[int],
) -> None:
    rooms, clock, table, a, b = await game(sessions)
    table.draw = lambda: draw
    await clock.advance(0.6 + STEP, step=STEP)
    for client, target in zip((a, b), targets, strict=True):
        if target is not None:
            await stake(table, client, target)
    await clock.advance(2.1 + 0.6 + 0.2, step=STEP)
    settled = a.last("XaXb/Settlement")
    assert settled == b.last("XaXb/Settlement")
    assert settled["Result"] == draw
    assert [seat["SeatIndex"] for seat in settled["Seats"]] == [0, 1]
    assert [seat["Coin"] for seat in settled["Seats"]] == coins
    assert [seat["Weight"] for seat in settled["Seats"]] == weights
    assert [seat["Stake"] for seat in settled["Seats"]] == [t is not None for t in targets]
    assert [seat["Target"] for seat in settled["Seats"]] == [t or 0 for t in targets]
    await rooms.stop()


async def test_the_draw_is_a_number_from_0_to_9(sessions: Sessions) -> None:
    rooms, _ = xaxb_room()
    table = rooms.create()
    draws = {table.draw() for _ in range(500)}
    assert draws == set(range(10))
    await rooms.stop()


async def test_stakes_are_taken_only_while_betting_once_a_round(sessions: Sessions) -> None:
    rooms, _ = xaxb_room()
    table = rooms.create()
    early = Client(sessions)
    await table.call("enter", early.session)
    with pytest.raises(TableError, match=NOT_BETTING):  # no game yet
        await stake(table, early, 1)
    await rooms.stop()

    rooms, clock, table, a, b = await game(sessions)
    with pytest.raises(TableError, match=NOT_BETTING):  # Idle
        await stake(table, a, 1)
    stranger = Client(sessions)
    with pytest.raises(TableError, match=NOT_A_PLAYER):
        await stake(table, stranger, 1)
    await clock.advance(0.6 + STEP, step=STEP)
    for bad in (-1, 10, 1.5, True, "3", None, 10**30):
        with pytest.raises(TableError, match=BAD_TARGET):
            await stake(table, a, bad)
    await stake(table, a, 5)
    with pytest.raises(TableError, match=STAKED_ALREADY):
        await stake(table, a, 6)
    assert table.player_of(a.session).data["Coin"] == START_COINS - 500  # type: ignore[union-attr]
    await clock.advance(2.1, step=STEP)
    assert table.phases.current == "Opening"
    with pytest.raises(TableError, match=NOT_BETTING):
        await stake(table, b, 1)

    # The next round: the stakes were cleared, so betting waits for them again.
    await clock.advance(0.6 + 0.6 + 0.6 + 0.1, step=STEP)
    assert table.phases.current == "Betting"
    await clock.advance(1.0, step=STEP)
    assert table.phases.current == "Betting"  # mqant's flag stayed set, closing it at once
    await stake(table, a, 2)
    await stake(table, b, 8)
    assert table.phases.current == "Opening"
    await rooms.stop()


async def test_a_bankrupt_player_is_sent_exit_and_the_game_ends(sessions: Sessions) -> None:
    rooms, clock, table, a, b = await game(sessions)
    await clock.advance(0.6 + STEP, step=STEP)
    table.draw = lambda: 0
    await stake(table, a, 9)  # a loses
    await stake(table, b, 0)
    table.player_of(a.session).data["Coin"] = 499  # type: ignore[union-attr]  # too few for the next stake
    a.pushes()
    b.pushes()
    await clock.advance(0.6 + 0.6 + STEP, step=STEP)  # Opening, Settlement, then Idle
    mine = a.pushes()
    assert [t for t, _ in mine][-2:] == ["XaXb/Idle", "XaXb/Exit"]
    assert mine[-1][1] == {"Info": BANKRUPT}
    after = b.pushes()
    assert [t for t, _ in after] == ["XaXb/Settlement", "XaXb/Idle", "XaXb/OnPause", "XaXb/OnStop"]
    stop = after[-1][1]
    assert [seat["Rid"] for seat in stop] == ["", ""]
    assert stop[0] == EMPTY_SEAT  # the seat left empty
    assert stop[1]["Coin"] == 100_300
    assert stop[1]["SitDown"]
    assert table.finished
    with pytest.raises(TableFinished):
        rooms.table_for(table.big_room_id)


async def test_pause_stops_the_phase_clock_and_start_resumes_it(sessions: Sessions) -> None:
    rooms, clock, table, a, b = await game(sessions)
    await clock.advance(0.6 + 1.0, step=STEP)  # about 1.0 s into betting
    a.pushes()
    assert await table.call("pause_game", b.session) == "success"
    left = table.phases.remaining()
    assert left is not None
    assert 1.1 <= left <= 1.1 + STEP + 1e-9
    assert table.state == PAUSED
    assert [t for t, _ in a.pushes()] == ["XaXb/OnPause"]
    with pytest.raises(TableError, match=PAUSED_NOW):
        await stake(table, a, 1)
    await clock.advance(10.0, step=0.5)
    assert a.pushes() == []  # nothing moves while paused
    assert table.phases.current == "Betting"
    assert await table.call("pause_game", a.session) == "success"  # paused already: no change
    assert await table.call("start_game", a.session) == "success"
    assert table.state == ACTIVE
    resumed = a.pushes()
    assert [t for t, _ in resumed] == ["XaXb/OnResume"]
    assert len(resumed[0][1]) == 2
    seen = await timeline(clock, 1.5, a)
    assert close_to(at(seen, "XaXb/Opening"), [left])  # the time betting had left
    await rooms.stop()


async def test_pausing_before_the_game_is_refused(sessions: Sessions) -> None:
    rooms, _ = xaxb_room()
    table = rooms.create()
    a = Client(sessions)
    await table.call("enter", a.session)
    with pytest.raises(TableError, match=NOT_STARTED):
        await table.call("pause_game", a.session)
    assert await table.call("start_game", a.session) == "success"  # sits down: one player
    assert table.state == INITIALIZED
    await rooms.stop()


@pytest.mark.parametrize("how", ["exit", "disconnect", "exit-paused"])
async def test_a_player_leaving_finishes_the_game(sessions: Sessions, how: str) -> None:
    rooms, clock, table, a, b = await game(sessions)
    await clock.advance(1.0, step=STEP)
    if how == "exit-paused":
        await table.call("pause_game", a.session)
    a.pushes()
    b.pushes()
    if how == "disconnect":  # a guest's seat is not kept
        await rooms.session_closed(a.session)
        await clock.advance(STEP)
    else:
        assert await table.call("exit", a.session) == table.big_room_id
    told = b.pushes()
    expected = ["XaXb/OnStop"] if how == "exit-paused" else ["XaXb/OnPause", "XaXb/OnStop"]
    assert [t for t, _ in told] == expected
    assert told[-1][1][0] == EMPTY_SEAT  # a's seat
    assert told[-1][1][1]["Coin"] == START_COINS
    assert a.pushes() == []  # the leaver is not told
    assert table.finished
    with pytest.raises(TableFinished):
        await rooms.call(table.big_room_id, "enter", Client(sessions).session)
    with pytest.raises(TableFinished):
        await table.call("exit", b.session)


async def test_leaving_before_the_game_keeps_the_table_for_another(sessions: Sessions) -> None:
    rooms, _ = xaxb_room()
    table = rooms.create()
    a, b, c = Client(sessions), Client(sessions), Client(sessions)
    await table.call("enter", a.session)
    await table.call("enter", b.session)
    await table.call("exit", b.session)
    with pytest.raises(TableError, match=NOT_A_PLAYER):
        await table.call("exit", b.session)
    assert not table.finished
    await table.call("enter", c.session)
    assert table.players["guest:" + c.session.session_id].seat == 1
    await rooms.stop()


async def test_an_idle_table_finishes_unless_its_game_runs(sessions: Sessions) -> None:
    rooms, clock = xaxb_room()
    waiting = rooms.create()
    alone = Client(sessions)
    await waiting.call("enter", alone.session)
    alone.pushes()
    rooms2, clock2, playing, a, _ = await game(sessions)
    await clock.advance(61.0, step=1.0)
    assert waiting.finished  # nobody came: the player waiting is told
    assert [t for t, _ in alone.pushes()] == ["XaXb/OnStop"]
    await clock2.advance(61.0, step=0.5)
    assert not playing.finished  # its rounds go on without requests, as mqant's
    assert "XaXb/Settlement" in a.topics()
    await rooms2.stop()
    assert "XaXb/OnStop" in a.topics()  # its node stopped: the players are told


async def test_a_hand_out_holds_a_seat_so_two_askers_share_a_table(sessions: Sessions) -> None:
    rooms, clock = xaxb_room(max_tables=2)
    module = rooms.module
    assert isinstance(module, XaXb)

    async def ask(session: Session) -> str:
        result = await module.get_usable_table(session, {"gameName": "xaxb"})
        assert isinstance(result["BigRoomId"], str)
        return result["BigRoomId"]

    s1, s2, s3, s4 = (Client(sessions).session for _ in range(4))
    first = await ask(s1)
    assert await ask(s2) == first  # one seat held for s1, one free
    assert await ask(s1) == first  # s1 again: its own hold, not another
    second = await ask(s3)
    assert second != first  # both seats of the first held
    assert await ask(s4) == second
    with pytest.raises(HandlerError, match=NO_TABLE):
        await ask(Client(sessions).session)  # two tables, every seat held
    table = rooms.table_for(first)
    await table.call("enter", s1)
    late = Client(sessions).session
    with pytest.raises(HandlerError, match=NO_TABLE):
        await ask(late)  # s1 sits, s2's hold still counts
    await clock.advance(10.0 + STEP)
    assert await ask(late) == first  # s2's hold ran out
    await table.call("enter", late)
    await table.call("sit_down", s1)
    await table.call("sit_down", late)
    assert not table.free_for(Client(sessions).session)  # a game runs
    await rooms.stop()


async def test_a_user_back_within_the_seat_timeout_is_told_where_the_game_is(
    sessions: Sessions,
) -> None:
    rooms, clock, table, ann, bob = await game(sessions, "ann", "bob")
    await rooms.session_closed(ann.session)
    await clock.advance(0.6 + 0.5, step=STEP)
    assert not table.finished  # ann's seat is kept; the game goes on
    assert "XaXb/Betting" in bob.topics()
    back = Client(sessions, "ann")
    with pytest.raises(TableError, match="enter it again"):
        await table.call("sit_down", back.session)  # the seat waits on its old connection
    assert await table.call("enter", back.session) == table.big_room_id
    assert back.pushes() == [
        ("XaXb/OnEnter", {"Rid": "ann", "SeatIndex": 0, "State": ACTIVE}),
        ("XaXb/OnSync", {"State": ACTIVE, "StateGame": "Betting", "Seats": [
            {"Coin": START_COINS, "Rid": "ann", "SeatIndex": 0, "SitDown": True,
             "Stake": False, "Target": 0, "Weight": 0},
            {"Coin": START_COINS, "Rid": "bob", "SeatIndex": 1, "SitDown": True,
             "Stake": False, "Target": 0, "Weight": 0},
        ]}),
    ]  # fmt: skip
    assert ann.pushes()[-1][0] == "XaXb/Idle"  # the old connection got nothing since
    assert await stake(table, back, 4) == "success"

    await rooms.session_closed(bob.session)
    await clock.advance(59.0, step=0.5)
    assert not table.finished
    await clock.advance(2.5, step=0.5)
    assert table.finished  # bob's seat ran out: the game cannot go on
    assert [t for t, _ in back.pushes()][-2:] == ["XaXb/OnPause", "XaXb/OnStop"]


async def test_a_table_nobody_entered_finishes_when_its_holds_run_out(sessions: Sessions) -> None:
    rooms, clock = xaxb_room()
    module = rooms.module
    assert isinstance(module, XaXb)
    asker = Client(sessions).session
    first = (await module.get_usable_table(asker, {}))["BigRoomId"]
    table = rooms.table_for(first)
    await clock.advance(5.0, step=STEP)
    again = Client(sessions).session
    assert (await module.get_usable_table(again, {}))["BigRoomId"] == first  # holds it on
    await clock.advance(5.0 + STEP, step=STEP)
    assert not table.finished  # the second hold still runs
    await clock.advance(5.0, step=STEP)
    assert table.finished
    assert len(rooms) == 0
    entered = (await module.get_usable_table(asker, {}))["BigRoomId"]
    await rooms.table_for(entered).call("enter", asker)
    await clock.advance(20.0, step=0.5)
    assert not rooms.table_for(entered).finished  # entered: it waits for a partner
    await rooms.stop()


async def test_one_address_holds_a_bounded_number_of_seats(sessions: Sessions) -> None:
    from xaxb.modules import HANDOUTS_PER_ADDRESS, TOO_MANY_HELD

    rooms, clock = xaxb_room()
    module = rooms.module
    assert isinstance(module, XaXb)
    asked = [Client(sessions).session for _ in range(HANDOUTS_PER_ADDRESS + 1)]
    for session in asked[:-1]:
        await module.get_usable_table(session, {})
    assert len(rooms) == HANDOUTS_PER_ADDRESS // 2
    with pytest.raises(HandlerError, match=TOO_MANY_HELD):
        await module.get_usable_table(asked[-1], {})
    other = Client(sessions).session
    other.ip = "10.0.0.9"
    await module.get_usable_table(other, {})  # another address is served
    await clock.advance(10.0 + STEP)
    await module.get_usable_table(asked[-1], {})  # the holds ran out: served again
    await rooms.stop()
