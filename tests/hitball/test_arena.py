"""The Hitball module and its arenas through the table framework, on a clock the test moves:
joins and their pushes, the frame's cadence, moves, shots, coins, seats, bad input."""

import asyncio
import json
import re
from collections.abc import Coroutine
from typing import Any

import pytest

from hitball.modules import (
    EAT_INVALID,
    FIRE_INVALID,
    HITBALL_ROOM,
    MOVE_INVALID,
    NOT_JOINED,
    RID_TAKEN,
    Arena,
    Hitball,
)
from hitball.world import WORLD_SIZE
from mqant import NO_CONNECTION, HandlerError, RemoteError, Session, owners
from mqant.ops import Set
from mqant.tables import QUEUE_FULL, ManualClock, Room, TableError
from tests.mqant.test_tables import Owner, Sessions

TICK = 0.03125  # a binary fraction: the frames fall exactly on the clock's steps
NODE = "Hitball@0123456789abcdef"


class Connection(Owner):
    """A connection of this process whose session takes settings (``session.set``)."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    async def apply_session_op(self, op: Any) -> Any:
        assert isinstance(op, Set), op
        self.session.settings[op.key] = op.value
        return self.session.state()

    def pushes(self, topic: str) -> list[Any]:
        """The bodies pushed on ``topic`` so far, decoded."""
        return [json.loads(body) for write in self.writes for t, body in write if t == topic]


def connect(made: Sessions, user: str = "") -> tuple[Session, Connection]:
    """A new connection for ``user`` ("" for a guest)."""
    n = len(made)
    session = Session(
        session_id=f"s{n}", user_id=user, channel=f"gate.proc#{n}", ip="127.0.0.1",
        network="tcp", server_id="gate",
    )  # fmt: skip
    connection = Connection(session)
    owners.attach(session.channel, connection)
    made[f"{user}:{n}"] = (session, connection)
    return session, connection


def hitball(**table: Any) -> tuple[Hitball, ManualClock]:
    """The module on a clock of the test's, its arenas with ``table`` settings."""
    module = Hitball()
    module.node_id = NODE
    clock = ManualClock()
    settings = {"tick_interval": TICK, "tick_phase": 0.0, **table}  # frames on the clock's steps
    module.room = Room(module, Arena, clock=clock, settings=settings)
    return module, clock


async def run(clock: ManualClock, call: Coroutine[Any, Any, Any]) -> Any:
    """The call's result, the clock moved a frame at a time until it has one."""
    task = asyncio.ensure_future(call)
    for _ in range(10):
        await clock.advance(TICK)
        if task.done():
            break
    return await task


async def frames(clock: ManualClock, n: int) -> None:
    await clock.advance(TICK * n, step=TICK)


def arena_of(module: Hitball, session: Session) -> Arena:
    return module.room.table_for(session.get(HITBALL_ROOM))


async def test_a_join_answers_the_state_and_tells_the_others(sessions: Sessions) -> None:
    module, clock = hitball()
    guest, guest_out = connect(sessions)
    ann, ann_out = connect(sessions, "ann")
    first = await run(clock, module.join(guest, {"Rid": "001"}))
    rid = first["Rid"]
    assert re.fullmatch(r"[0-9A-Za-z]{8}", rid)
    assert list(first["Player"]) == [rid]
    assert first["Player"][rid]["Rid"] == rid
    assert guest_out.pushes("Hitball/OnJoin") == [first["Player"][rid]]
    assert guest_out.pushes("Hitball/OnEnter") == [first]
    assert guest.user_id == ""  # a guest's session is not bound to its made-up id
    await frames(clock, 3)

    second = await run(clock, module.join(ann, b"anything"))
    assert second["Rid"] == "ann"
    assert set(second["Player"]) == {rid, "ann"}
    assert len(second["Coins"]) >= 3  # one a frame since the arena began
    assert all(str(c["Id"]) == key for key, c in second["Coins"].items())
    assert ann_out.pushes("Hitball/OnEnter") == [second]
    assert guest_out.pushes("Hitball/OnJoin")[-1] == second["Player"]["ann"]
    assert guest.get(HITBALL_ROOM) == ann.get(HITBALL_ROOM) == arena_of(module, ann).big_room_id

    again = await run(clock, module.join(guest, {}))  # the same session: its state again
    assert again["Rid"] == rid
    assert set(again["Player"]) == {rid, "ann"}
    assert len(ann_out.pushes("Hitball/OnJoin")) == 1  # ann's own, nobody new
    assert len(module.room) == 1
    await module.room.stop()


async def test_onmove_every_4th_frame_and_eight_coins_one_a_frame(sessions: Sessions) -> None:
    module, clock = hitball()
    ann, ann_out = connect(sessions, "ann")
    await run(clock, module.join(ann, {}))
    table = arena_of(module, ann)
    ann_out.writes.clear()
    with_move = []
    for _ in range(16):
        written = len(ann_out.writes)
        await frames(clock, 1)
        new = ann_out.topics()[written:]
        assert len(new) <= 1  # one write per frame at most
        if new and "Hitball/OnMove" in new[0]:
            with_move.append(table.frame)
    assert len(with_move) == 4
    assert all(frame % 4 == 0 for frame in with_move)
    table = arena_of(module, ann)
    assert sorted(table.world.coins) == list(range(1, 9))
    added = ann_out.pushes("Hitball/OnAddCoins")
    assert [c["Id"] for c in added] == sorted(c["Id"] for c in added)
    assert all(sum(t == "Hitball/OnAddCoins" for t in topics) <= 1 for topics in ann_out.topics())
    assert list(ann_out.pushes("Hitball/OnMove")[-1]) == ["ann"]
    await module.room.stop()


async def test_a_move_is_seen_by_the_others_in_the_next_onmove(sessions: Sessions) -> None:
    module, clock = hitball()
    ann, _ = connect(sessions, "ann")
    bob, bob_out = connect(sessions, "bob")
    await run(clock, module.join(ann, {}))
    await run(clock, module.join(bob, {}))
    assert await module.move(ann, {"war": 1, "wid": 0, "x": 321.5, "y": 1e300}) == "success"
    bob_out.writes.clear()
    await frames(clock, 4)
    seen = bob_out.pushes("Hitball/OnMove")[-1]["ann"]
    assert (seen["X"], seen["Y"]) == (321.5, WORLD_SIZE - 20)  # clamped, then off the wall
    await module.room.stop()


async def test_a_shot_adds_speed_and_turns_the_arrow(sessions: Sessions) -> None:
    module, clock = hitball()
    ann, _ = connect(sessions, "ann")
    await run(clock, module.join(ann, {}))
    fired = await module.fire(ann, {"Angle": 90, "Power": 200, "X": 400, "Y": 500, "Rid": "001"})
    assert fired == "success"
    await frames(clock, 1)
    ball = arena_of(module, ann).world.balls["ann"]
    assert (ball.x, ball.y) == pytest.approx((400, 510))
    assert (ball.x_speed, ball.y_speed) == pytest.approx((0, 9.9), abs=1e-6)
    assert (ball.power, ball.rotate_direction) == (200, -1)
    await module.room.stop()


async def test_a_coin_is_eaten_once_and_everyone_is_told(sessions: Sessions) -> None:
    module, clock = hitball()
    ann, ann_out = connect(sessions, "ann")
    bob, bob_out = connect(sessions, "bob")
    await run(clock, module.join(ann, {}))
    await run(clock, module.join(bob, {}))
    await frames(clock, 8)
    table = arena_of(module, ann)
    coin = table.world.coins[3]
    await module.move(bob, {"war": 0, "wid": 0, "x": coin.x, "y": coin.y})
    await frames(clock, 1)
    assert await module.eat_coin(ann, {"Id": 3.9}) == "success"  # any player reports it
    assert await module.eat_coin(bob, {"Id": 3}) == "success"
    await frames(clock, 1)
    assert ann_out.pushes("Hitball/OnEatCoins") == [coin.to_json()]
    assert bob_out.pushes("Hitball/OnEatCoins") == [coin.to_json()]
    assert 3 not in table.world.coins
    assert 9 in table.world.coins
    await module.eat_coin(bob, {"Id": 3})
    await frames(clock, 1)
    assert len(bob_out.pushes("Hitball/OnEatCoins")) == 1
    await module.room.stop()


async def test_a_coin_far_from_every_ball_or_by_an_outsider_is_not_eaten(
    sessions: Sessions,
) -> None:
    module, clock = hitball()
    ann, ann_out = connect(sessions, "ann")
    await run(clock, module.join(ann, {}))
    await frames(clock, 8)
    table = arena_of(module, ann)
    coin = table.world.coins[1]
    far_x = 0 if coin.x > WORLD_SIZE / 2 else WORLD_SIZE
    far_y = 0 if coin.y > WORLD_SIZE / 2 else WORLD_SIZE
    await module.move(ann, {"war": 0, "wid": 0, "x": far_x, "y": far_y})
    await frames(clock, 1)
    await module.eat_coin(ann, {"Id": 1})
    outsider, _ = connect(sessions, "eve")
    outsider.settings[HITBALL_ROOM] = table.big_room_id  # a seat it never took
    await module.eat_coin(outsider, {"Id": 1})
    await module.move(ann, {"war": 0, "wid": 0, "x": coin.x, "y": coin.y})
    await frames(clock, 1)
    assert 1 in table.world.coins
    assert ann_out.pushes("Hitball/OnEatCoins") == []
    await module.room.stop()


@pytest.mark.parametrize(
    ("call", "payload", "error"),
    [
        ("fire", {"Angle": 1, "Power": 1, "X": 1}, FIRE_INVALID),
        ("fire", {"Angle": True, "Power": 1, "X": 1, "Y": 1}, FIRE_INVALID),
        ("fire", {"Angle": "NaN", "Power": 1, "X": 1, "Y": 1}, FIRE_INVALID),
        ("fire", {"Angle": float("nan"), "Power": 1, "X": 1, "Y": 1}, FIRE_INVALID),
        ("fire", {"Angle": 1, "Power": float("inf"), "X": 1, "Y": 1}, FIRE_INVALID),
        ("fire", {"Angle": 1, "Power": 1, "X": 10**400, "Y": 1}, FIRE_INVALID),
        ("fire", {"Angle": 1, "Power": 1, "X": None, "Y": 1}, FIRE_INVALID),
        ("fire", {"Angle": [1], "Power": 1, "X": 1, "Y": 1}, FIRE_INVALID),
        ("fire", b"raw bytes", FIRE_INVALID),
        ("move", {"war": 1, "wid": 1, "x": 1}, MOVE_INVALID),
        ("move", {"wid": 1, "x": 1, "y": 1}, MOVE_INVALID),
        ("move", {"war": None, "wid": 1, "x": 1, "y": 1}, MOVE_INVALID),
        ("move", {"war": 1, "wid": 1, "x": "1", "y": 1}, MOVE_INVALID),
        ("move", {"war": 1, "wid": 1, "x": 1, "y": False}, MOVE_INVALID),
        ("move", b"", MOVE_INVALID),
        ("eat_coin", {}, EAT_INVALID),
        ("eat_coin", {"Id": "3"}, EAT_INVALID),
        ("eat_coin", {"Id": True}, EAT_INVALID),
        ("eat_coin", {"Id": float("-inf")}, EAT_INVALID),
        ("eat_coin", {"Id": {"3": 3}}, EAT_INVALID),
        ("eat_coin", b"3", EAT_INVALID),
    ],
)
async def test_bad_requests_get_mqants_errors(sessions: Sessions, call, payload, error) -> None:
    module, clock = hitball()
    ann, _ = connect(sessions, "ann")
    await run(clock, module.join(ann, {}))
    with pytest.raises(HandlerError) as refused:
        await getattr(module, call)(ann, payload)
    assert str(refused.value) == error
    await module.room.stop()


async def test_numbers_out_of_bounds_are_clamped_or_name_no_coin(sessions: Sessions) -> None:
    module, clock = hitball()
    ann, _ = connect(sessions, "ann")
    await run(clock, module.join(ann, {}))
    await frames(clock, 8)
    huge = {"Angle": -1e308, "Power": 1e308, "X": -1e308, "Y": 10**300}
    assert await module.fire(ann, huge) == "success"
    for coin_id in (10**30, -5, 0, 2**53 + 1):
        assert await module.eat_coin(ann, {"Id": coin_id}) == "success"
    await frames(clock, 1)
    table = arena_of(module, ann)
    ball = table.world.balls["ann"]
    assert ball.power == 200
    assert 0 <= ball.x <= WORLD_SIZE
    assert 0 <= ball.y <= WORLD_SIZE
    assert len(table.world.coins) == 8
    await module.room.stop()


async def test_calls_before_a_join_or_after_the_arena_finished_ask_for_a_join(
    sessions: Sessions,
) -> None:
    module, clock = hitball(idle_timeout=1.0)
    ann, _ = connect(sessions, "ann")
    fine = [
        ("fire", {"Angle": 1, "Power": 1, "X": 1, "Y": 1}),
        ("move", {"war": 1, "wid": 1, "x": 1, "y": 1}),
        ("eat_coin", {"Id": 1}),
    ]
    for call, payload in fine:
        with pytest.raises(HandlerError, match=f"^{NOT_JOINED}$"):
            await getattr(module, call)(ann, payload)
    await run(clock, module.join(ann, {}))
    old = arena_of(module, ann)
    await module.room.session_closed(ann)  # leaves, then the empty arena finishes
    await clock.advance(10.0, step=TICK)
    assert not old.finished  # ann's seat is kept ten seconds
    await clock.advance(1.5, step=TICK)
    assert old.finished
    for call, payload in fine:
        with pytest.raises(HandlerError, match=f"^{NOT_JOINED}$"):
            await getattr(module, call)(ann, payload)
    again, _ = connect(sessions, "ann")  # a new connection, with the user's settings
    again.settings[HITBALL_ROOM] = old.big_room_id
    back = await run(clock, module.join(again, {}))  # its stale arena: a new one
    assert back["Rid"] == "ann"
    assert again.get(HITBALL_ROOM) != old.big_room_id
    assert not arena_of(module, again).finished
    await module.room.stop()


async def test_an_arena_with_players_never_finishes(sessions: Sessions) -> None:
    module, clock = hitball(idle_timeout=0.5)
    ann, _ = connect(sessions, "ann")
    await run(clock, module.join(ann, {}))
    table = arena_of(module, ann)
    await clock.advance(3.0, step=TICK)
    assert not table.finished
    await module.room.stop()


async def test_a_full_arena_sends_the_next_player_to_another(sessions: Sessions) -> None:
    module, clock = hitball(capacity=2)
    people = [connect(sessions, name)[0] for name in ("a", "b", "c")]
    for session in people:
        await run(clock, module.join(session, {}))
    first, second, third = (session.get(HITBALL_ROOM) for session in people)
    assert first == second != third
    assert len(module.room) == 2
    await module.room.stop()


async def test_a_user_named_as_a_guests_rid_plays_in_another_arena(sessions: Sessions) -> None:
    module, clock = hitball()
    guest, _ = connect(sessions)
    rid = (await run(clock, module.join(guest, {})))["Rid"]
    table = arena_of(module, guest)
    namesake, _ = connect(sessions, rid)
    with pytest.raises(TableError, match=RID_TAKEN):
        await run(clock, table.call("join", namesake))
    joined = await run(clock, module.join(namesake, {}))
    assert joined["Rid"] == rid
    assert list(joined["Player"]) == [rid]
    assert namesake.get(HITBALL_ROOM) != table.big_room_id
    await module.room.stop()


async def test_a_guest_leaves_at_once_a_user_keeps_the_seat_ten_seconds(
    sessions: Sessions,
) -> None:
    module, clock = hitball()
    guest, _ = connect(sessions)
    bob, _ = connect(sessions, "bob")
    ann, ann_out = connect(sessions, "ann")
    guest_rid = (await run(clock, module.join(guest, {})))["Rid"]
    for session in (bob, ann):
        await run(clock, module.join(session, {}))
    table = arena_of(module, ann)
    await module.room.session_closed(guest)
    await module.room.session_closed(bob)
    ann_out.writes.clear()
    await frames(clock, 4)
    assert set(ann_out.pushes("Hitball/OnMove")[-1]) == {"bob", "ann"}  # the guest is gone
    await module.move(ann, {"war": 0, "wid": 0, "x": 100, "y": 100})
    await clock.advance(8.0, step=TICK)
    assert "bob" in table.world.balls
    bob2, bob2_out = connect(sessions, "bob")  # a new connection, its settings not kept
    back = await run(clock, module.join(bob2, {}))
    assert back["Rid"] == "bob"
    assert bob2.get(HITBALL_ROOM) == table.big_room_id
    assert bob2_out.pushes("Hitball/OnEnter") == [back]
    await module.room.session_closed(bob2)
    await clock.advance(10.5, step=TICK)
    assert set(table.world.balls) == {"ann"}
    assert set(ann_out.pushes("Hitball/OnMove")[-1]) == {"ann"}
    assert guest_rid not in table.world.balls
    await module.room.stop()


async def test_one_sessions_flood_is_refused_and_the_others_go_on(sessions: Sessions) -> None:
    module, clock = hitball()
    ann, _ = connect(sessions, "ann")
    bob, _ = connect(sessions, "bob")
    await run(clock, module.join(ann, {}))
    await run(clock, module.join(bob, {}))
    shot = {"Angle": 0, "Power": 1, "X": 600, "Y": 600}
    answers = []
    for _ in range(Arena.queue_per_session + 5):
        try:
            answers.append(await module.fire(ann, shot))
        except HandlerError as err:
            answers.append(str(err))
    assert answers.count("success") == Arena.queue_per_session
    assert answers[-1] == QUEUE_FULL
    assert await module.move(bob, {"war": 0, "wid": 0, "x": 5, "y": 5}) == "success"
    await frames(clock, 1)
    assert await module.fire(ann, shot) == "success"  # its share is free again
    await module.room.stop()


async def test_a_rest_caller_gets_no_seat(sessions: Sessions) -> None:
    module, clock = hitball()
    caller = Session.for_http(user_id="ann", ip="127.0.0.1", topic="Hitball/HD_Join")
    with pytest.raises(HandlerError, match=f"^{NO_CONNECTION}$"):
        await run(clock, module.join(caller, {}))
    assert len(module.room) == 0
    await module.room.stop()


@pytest.mark.parametrize("user", ["", "ann"])
async def test_a_connection_that_ended_during_its_join_leaves_no_seat(
    sessions: Sessions, user: str
) -> None:
    class Gone(Connection):
        async def apply_session_op(self, op: Any) -> Any:
            raise RemoteError(NO_CONNECTION)

    module, clock = hitball()
    bob, bob_out = connect(sessions, "bob")
    await run(clock, module.join(bob, {}))
    late, _ = connect(sessions, user)
    owners.attach(late.channel, Gone(late))  # its end came before the seat existed
    with pytest.raises(RemoteError):
        await run(clock, module.join(late, {}))
    await frames(clock, 4)
    table = arena_of(module, bob)
    assert list(table.players) == ["bob"]
    assert list(table.world.balls) == ["bob"]
    assert list(bob_out.pushes("Hitball/OnMove")[-1]) == ["bob"]
    await module.room.stop()


async def test_the_arena_settings_and_their_overrides() -> None:
    assert (Arena.tick_interval, Arena.capacity, Arena.seat_timeout) == (0.022, 16, 10.0)
    module = Hitball()
    await module.on_init({"Table": {"capacity": 4}, "MaxTables": 7})
    assert module.room.table_class is Arena
    assert module.room.settings == {"capacity": 4}
    assert module.room.max_tables == 7
