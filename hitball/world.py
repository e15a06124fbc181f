"""Hitball's world: balls that players shoot around a square field, and coins to eat.

Plain Python, knowing nothing of mqant or of time: one ``step()`` is one frame, as in
mqantserver's Hitball, whose numbers these are (a 1280 x 1280 field, balls of radius 20,
speeds multiplied by 0.99 each frame, an arrow turning 3° a frame, eight coins). The client
page simulates the same world between the server's snapshots, so the numbers are its too.

Each frame, per ball and in this order: it bounces off the walls (its position clamped to
the field, its speed turned away from the wall), moves by its speed, loses 1 % of it, and
its arrow turns. A shot (``fire``) puts the ball where the shooter saw it and adds
``power / 20`` to its speed in the arrow's direction; the arrow then turns the other way.

Three bounds mqantserver did not have, so that no client can push the world out of shape:
positions a client sends are clamped to the field, power to [0, MAX_POWER], and a ball's
speed to MAX_SPEED pixels a frame (at 50 shots of full power a second, speed would
otherwise grow to thousands of pixels a frame); the angle is kept within (-360, 360).
"""

import math
import random
from dataclasses import dataclass
from typing import Any

WORLD_SIZE = 1280.0
BALL_RADIUS = 20.0
FRICTION = 0.99  # speed kept per frame
ROTATE_SPEED = 3.0  # degrees the arrow turns per frame
DEG_TO_RAD = 0.0174532925  # the clients' constant, so that their arithmetic matches
MIN_POWER = 50.0
MAX_POWER = 200.0
POWER_TO_SPEED = 1 / 20  # pixels per frame a unit of power adds
MAX_SPEED = 60.0  # pixels per frame: a ball never goes faster
COINS = 8  # coins kept on the field, one added per frame while there are fewer
# How near (centre to centre, in pixels) some ball must be for a coin to be eaten: the
# clients report what they see, a few frames behind the server, so this is generous; it
# only stops a client from eating coins where no ball is.
EAT_DISTANCE = 300.0


def clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


@dataclass(slots=True)
class Ball:
    """A player's ball: ``rid`` names it on the wire."""

    rid: str
    x: float
    y: float
    x_speed: float = 0.0
    y_speed: float = 0.0
    rotate_direction: int = 1
    angle: float = 0.0
    power: float = 0.0
    wid: int = 0

    def to_json(self) -> dict[str, Any]:
        """The player object of mqantserver's protocol (the fields its page reads, and the
        world's constants it carried along)."""
        return {
            "Rid": self.rid,
            "X": self.x,
            "Y": self.y,
            "Wid": self.wid,
            "XSpeed": self.x_speed,
            "YSpeed": self.y_speed,
            "RotateDirection": self.rotate_direction,
            "BallRadius": BALL_RADIUS,
            "Angle": self.angle,
            "Power": self.power,
            "RotateSpeed": ROTATE_SPEED,
            "MinPower": MIN_POWER,
            "MaxPower": MAX_POWER,
        }


@dataclass(slots=True)
class Coin:
    id: int
    x: float
    y: float
    wid: int = 0
    type: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"Id": self.id, "X": self.x, "Y": self.y, "Wid": self.wid, "Type": self.type}


class World:
    """The balls (by rid) and coins (by id) of one arena. ``rng`` places new balls and
    coins (a seeded one in tests)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()  # noqa: S311 (places on a field, no secret)
        self.balls: dict[str, Ball] = {}
        self.coins: dict[int, Coin] = {}
        self.last_coin_id = 0  # coin ids count up from 1 and are never reused

    def spawn_point(self) -> tuple[float, float]:
        """A random point at least a ball's radius from every wall."""
        span = WORLD_SIZE - 2 * BALL_RADIUS
        return (
            self.rng.random() * span + BALL_RADIUS,
            self.rng.random() * span + BALL_RADIUS,
        )

    # Balls

    def add_ball(self, rid: str) -> Ball:
        x, y = self.spawn_point()
        ball = self.balls[rid] = Ball(rid, x, y)
        return ball

    def remove_ball(self, rid: str) -> Ball | None:
        return self.balls.pop(rid, None)

    def fire(self, ball: Ball, x: float, y: float, angle: float, power: float) -> None:
        """A shot: the ball is put at (x, y), where its player saw it, and gains speed in
        the direction ``angle`` (degrees) in proportion to ``power``; its arrow turns the
        other way from now on. The ball's own angle is not the shot's (as in mqantserver)."""
        self.place(ball, x, y)
        power = clamp(power, 0.0, MAX_POWER)
        radians = math.fmod(angle, 360.0) * DEG_TO_RAD
        ball.x_speed += math.cos(radians) * power * POWER_TO_SPEED
        ball.y_speed += math.sin(radians) * power * POWER_TO_SPEED
        speed = math.hypot(ball.x_speed, ball.y_speed)
        if speed > MAX_SPEED:
            ball.x_speed *= MAX_SPEED / speed
            ball.y_speed *= MAX_SPEED / speed
        ball.power = power
        ball.rotate_direction = -ball.rotate_direction

    def place(self, ball: Ball, x: float, y: float) -> None:
        """Put the ball at (x, y), clamped to the field."""
        ball.x = clamp(x, 0.0, WORLD_SIZE)
        ball.y = clamp(y, 0.0, WORLD_SIZE)

    def step(self) -> None:
        """One frame of every ball: bounce, move, slow down, turn the arrow."""
        low, high = BALL_RADIUS, WORLD_SIZE - BALL_RADIUS
        for ball in self.balls.values():
            # A ball past a wall is put back against it and sent away from it (mqantserver
            # flips the speed's sign, which sends a ball placed there moving outwards back
            # into the wall; turning it away is the same for a ball that hit the wall).
            if ball.x < low:
                ball.x, ball.x_speed = low, abs(ball.x_speed)
            elif ball.x > high:
                ball.x, ball.x_speed = high, -abs(ball.x_speed)
            if ball.y < low:
                ball.y, ball.y_speed = low, abs(ball.y_speed)
            elif ball.y > high:
                ball.y, ball.y_speed = high, -abs(ball.y_speed)
            ball.x += ball.x_speed
            ball.y += ball.y_speed
            ball.x_speed *= FRICTION
            ball.y_speed *= FRICTION
            ball.angle = math.fmod(ball.angle + ROTATE_SPEED * ball.rotate_direction, 360.0)

    # Coins

    def add_coin_if_short(self) -> Coin | None:
        """A new coin when there are fewer than COINS (one per call at most)."""
        if len(self.coins) >= COINS:
            return None
        self.last_coin_id += 1
        x, y = self.spawn_point()
        coin = self.coins[self.last_coin_id] = Coin(self.last_coin_id, x, y)
        return coin

    def eat(self, coin_id: int) -> Coin | None:
        """Remove and return coin ``coin_id`` if it is there and some ball is within
        EAT_DISTANCE of it; None otherwise (already eaten, never was, or nobody near)."""
        coin = self.coins.get(coin_id)
        if coin is None:
            return None
        reach = EAT_DISTANCE * EAT_DISTANCE
        if not any((b.x - coin.x) ** 2 + (b.y - coin.y) ** 2 <= reach for b in self.balls.values()):
            return None
        return self.coins.pop(coin_id)

    # Snapshots

    def players_json(self) -> dict[str, dict[str, Any]]:
        """Every ball's player object, by rid (the body of OnMove)."""
        return {rid: ball.to_json() for rid, ball in self.balls.items()}

    def coins_json(self) -> dict[str, dict[str, Any]]:
        """Every coin, by id as text, in ascending order."""
        return {str(coin_id): coin.to_json() for coin_id, coin in sorted(self.coins.items())}
