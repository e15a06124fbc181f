"""Hitball's world, one frame at a time: bounces, speed, shots, the arrow, coins."""

import math
import random

import pytest

from hitball.world import (
    BALL_RADIUS,
    COINS,
    EAT_DISTANCE,
    MAX_POWER,
    MAX_SPEED,
    WORLD_SIZE,
    Ball,
    World,
)

LOW, HIGH = BALL_RADIUS, WORLD_SIZE - BALL_RADIUS


def world_with(x: float, y: float, x_speed: float = 0.0, y_speed: float = 0.0) -> World:
    world = World(random.Random(7))
    ball = world.add_ball("a")
    ball.x, ball.y, ball.x_speed, ball.y_speed = x, y, x_speed, y_speed
    return world


def test_new_balls_and_coins_are_a_radius_away_from_every_wall() -> None:
    world = World(random.Random(1))
    for i in range(500):
        ball = world.add_ball(str(i))
        assert LOW <= ball.x < HIGH
        assert LOW <= ball.y < HIGH
    points = {(b.x, b.y) for b in world.balls.values()}
    assert len(points) == 500  # random, not one spot
    for _ in range(COINS):
        coin = world.add_coin_if_short()
        assert coin is not None
        assert LOW <= coin.x < HIGH
        assert LOW <= coin.y < HIGH


def test_a_ball_moves_by_its_speed_then_keeps_99_percent_of_it() -> None:
    world = world_with(100, 200, 10, -4)
    world.step()
    ball = world.balls["a"]
    assert (ball.x, ball.y) == (110, 196)
    assert (ball.x_speed, ball.y_speed) == pytest.approx((9.9, -3.96))
    world.step()
    assert (ball.x, ball.y) == pytest.approx((119.9, 192.04))


@pytest.mark.parametrize(
    ("start", "speed", "after", "speed_after"),
    [
        ((10, 600), (-5, 0), (25, 600), (4.95, 0)),  # left wall
        ((1270, 600), (5, 0), (1255, 600), (-4.95, 0)),  # right wall
        ((600, 3), (0, -8), (600, 28), (0, 7.92)),  # top
        ((600, 1280), (0, 2), (600, 1258), (0, -1.98)),  # bottom
        ((0, 1280), (-1, 1), (21, 1259), (0.99, -0.99)),  # a corner: both at once
    ],
)
def test_a_ball_past_a_wall_is_put_against_it_and_sent_back(start, speed, after, speed_after):
    world = world_with(*start, *speed)
    world.step()
    ball = world.balls["a"]
    assert (ball.x, ball.y) == pytest.approx(after)
    assert (ball.x_speed, ball.y_speed) == pytest.approx(speed_after)


def test_a_ball_placed_past_a_wall_already_moving_away_keeps_its_way() -> None:
    world = world_with(5, 600, 3, 0)  # inside the wall's margin, moving into the field
    world.step()
    ball = world.balls["a"]
    assert (ball.x, ball.x_speed) == pytest.approx((23, 2.97))


def test_the_arrow_turns_3_degrees_a_frame_and_stays_within_a_turn() -> None:
    world = world_with(600, 600)
    ball = world.balls["a"]
    world.step()
    assert ball.angle == 3
    for _ in range(400):
        world.step()
        assert -360 < ball.angle < 360
    assert ball.angle == pytest.approx(401 * 3 - 360 * 3)
    world.fire(ball, 600, 600, 0, 0)  # a shot turns the arrow the other way
    before = ball.angle
    world.step()
    assert ball.angle == pytest.approx(before - 3)
    for _ in range(1000):
        world.step()
        assert -360 < ball.angle < 360


def test_a_shot_puts_the_ball_where_it_was_seen_and_adds_speed_along_the_angle() -> None:
    world = world_with(600, 600, 1, 1)
    ball = world.balls["a"]
    world.fire(ball, 300, 400, 0, 200)
    assert (ball.x, ball.y) == (300, 400)
    assert (ball.x_speed, ball.y_speed) == pytest.approx((11, 1))  # added, not replaced
    assert (ball.power, ball.rotate_direction) == (200, -1)
    world.fire(ball, 300, 400, 90, 100)
    assert (ball.x_speed, ball.y_speed) == pytest.approx((11, 6))
    assert ball.rotate_direction == 1
    world.fire(ball, 300, 400, -135 - 720, 50)  # any number of turns
    diagonal = 2.5 / math.sqrt(2)
    assert (ball.x_speed, ball.y_speed) == pytest.approx((11 - diagonal, 6 - diagonal))
    assert ball.angle == 0  # the ball's own arrow is not the shot's


def test_what_a_client_sends_is_clamped() -> None:
    world = world_with(600, 600)
    ball = world.balls["a"]
    world.fire(ball, -50, 1e308, 0, 1e308)
    assert (ball.x, ball.y, ball.power) == (0, WORLD_SIZE, MAX_POWER)
    assert ball.x_speed == pytest.approx(MAX_POWER / 20)
    world.fire(ball, 10, 10, 180, -5)
    assert ball.power == 0
    world.place(ball, 5000, -1)
    assert (ball.x, ball.y) == (WORLD_SIZE, 0)
    world.fire(ball, 600, 600, 1.7e308, 200)  # a huge angle still gives a direction
    assert math.isfinite(ball.x_speed)
    assert math.isfinite(ball.y_speed)


def test_shots_in_a_row_never_push_a_ball_past_the_speed_limit() -> None:
    world = world_with(600, 600)
    ball = world.balls["a"]
    for _ in range(30):
        world.fire(ball, 600, 600, 30, MAX_POWER)
        assert math.hypot(ball.x_speed, ball.y_speed) <= MAX_SPEED + 1e-9
    assert math.hypot(ball.x_speed, ball.y_speed) == pytest.approx(MAX_SPEED)
    assert math.atan2(ball.y_speed, ball.x_speed) == pytest.approx(math.radians(30), abs=1e-6)


def test_coins_are_topped_up_one_at_a_time_with_ids_never_reused() -> None:
    world = World(random.Random(3))
    added = [world.add_coin_if_short() for _ in range(COINS + 3)]
    assert [c.id for c in added if c is not None] == list(range(1, COINS + 1))
    assert added[COINS:] == [None] * 3
    coin = world.coins[5]
    world.add_ball("a").x, world.balls["a"].y = coin.x, coin.y
    assert world.eat(5) is coin
    assert world.eat(5) is None  # eaten already
    assert world.eat(99) is None  # never was
    fresh = world.add_coin_if_short()
    assert fresh is not None
    assert fresh.id == COINS + 1
    assert world.add_coin_if_short() is None
    assert list(world.coins_json()) == [str(i) for i in (1, 2, 3, 4, 6, 7, 8, 9)]


def test_a_coin_is_eaten_only_with_some_ball_near_it() -> None:
    world = World(random.Random(4))
    coin = world.add_coin_if_short()
    assert coin is not None
    assert world.eat(coin.id) is None  # no ball at all
    far = world.add_ball("far")
    far.x, far.y = coin.x + EAT_DISTANCE + 1, coin.y
    if far.x > WORLD_SIZE:
        far.x = coin.x - EAT_DISTANCE - 1
    assert world.eat(coin.id) is None
    near = world.add_ball("near")
    near.x, near.y = coin.x + EAT_DISTANCE * 0.6, coin.y + EAT_DISTANCE * 0.6  # ~0.85 away
    assert world.eat(coin.id) is coin
    assert coin.id not in world.coins


def test_the_json_shapes_of_a_player_and_a_coin() -> None:
    ball = Ball("r1", 1.5, 2.5, 3.0, -4.0, -1, 33.0, 50.0)
    assert ball.to_json() == {
        "Rid": "r1", "X": 1.5, "Y": 2.5, "Wid": 0, "XSpeed": 3.0, "YSpeed": -4.0,
        "RotateDirection": -1, "BallRadius": 20.0, "Angle": 33.0, "Power": 50.0,
        "RotateSpeed": 3.0, "MinPower": 50.0, "MaxPower": 200.0,
    }  # fmt: skip
    world = World(random.Random(5))
    coin = world.add_coin_if_short()
    assert coin is not None
    assert coin.to_json() == {"Id": 1, "X": coin.x, "Y": coin.y, "Wid": 0, "Type": 0}
    world.balls["r1"] = ball
    assert world.players_json() == {"r1": ball.to_json()}
