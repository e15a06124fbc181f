"""Hitball: mqantserver's Hitball game, its page and its clients served unchanged.

Players shoot balls around a 1280 x 1280 arena and eat coins (``hitball.world``). An arena
is a table (``mqant.tables``) ticking every 22 ms: each frame runs the players' requests,
moves the world one step, sends every player ``Hitball/OnMove`` (all balls, by Rid) on every
4th frame, and adds a coin (``Hitball/OnAddCoins``) while there are fewer than eight.

Handlers (``Hitball/HD_x/<msgid>``; each may also be sent without a msgid, unanswered):

- ``HD_Join`` (any payload, ignored): a seat in an arena with room (16 players by default),
  or the seat the session already has. The reply's Result and the push ``Hitball/OnEnter``
  (to the joiner) are both ``{"Rid", "Player": {rid: player}, "Coins": {id: coin}}``:
  mqantserver's shipped page reads the reply, its later page the push. Everyone at the arena
  gets ``Hitball/OnJoin`` (the new player). A player's Rid is their user id, or a random
  8-character id for a guest (whose session stays a guest's). The arena's BigRoomId is kept
  in the session's setting ``HitballRoom``, by which the later calls reach the arena on
  whichever node holds it. A call without a connection (the REST API's) gets no seat.
- ``HD_Fire`` ``{Angle, Power, X, Y}``: the ball is put at (X, Y) and shot (``World.fire``).
- ``HD_EatCoin`` ``{Id}``: the coin goes, and everyone gets ``Hitball/OnEatCoins`` (the
  coin), if it is there and some ball is within ``EAT_DISTANCE`` of it; otherwise nothing.
- ``HD_Move`` ``{war, wid, x, y}``: the ball is put at (x, y), which everyone sees in the next
  OnMove (mqantserver only echoed it to the caller, in another shape).

These three answer ``"success"`` once the request is queued to the arena (it runs in the next
frame), ``Join first: ...`` to a session with no seat, and the arena's ``QueueFull`` error
when one session floods it. A guest leaves at once when their connection ends; a logged-in
user keeps their seat ``seat_timeout`` (10) seconds, their ball still in play, and gets it
back by joining again (a user has one seat: a second connection that joins takes it over).
Nobody is told of a leave: the ball is missing from the next OnMove, as in mqantserver. An
arena with nobody in it finishes after ``idle_timeout`` seconds without a request.

Settings: ``MaxTables`` (100) arenas per node, and ``Table``, the arenas' settings
(``{"capacity": 16, "seat_timeout": 10, "idle_timeout": 60}``, see ``mqant.tables.Table``).
"""

import contextlib
import math
import secrets
import string
from typing import Any, ClassVar

from hitball.world import World
from mqant import NO_CONNECTION, HandlerError, Session, handler, register_module
from mqant.tables import QUEUE_FULL, Room, RoomModule, Table, TableError, event, player_key

HITBALL_ROOM = "HitballRoom"  # the session's setting: its arena's BigRoomId

# Error texts (the first three are mqantserver's).
FIRE_INVALID = "Angle , Power X ,Y cannot be nil"
MOVE_INVALID = "war , wid ,x ,y cannot be nil"
EAT_INVALID = "Id cannot be nil"
NOT_JOINED = "Join first: Hitball/HD_Join"
RID_TAKEN = "Another player of this arena has that Rid"
NO_ARENA = "No arena has room for you now: try again"

GUEST_ID_ALPHABET = string.digits + string.ascii_letters
GUEST_ID_LENGTH = 8
SYNC_EVERY = 4  # frames between two OnMove
MAX_COIN_ID = 2**53  # past it an Id names no coin (and stays what every RPC carries)
JOIN_ATTEMPTS = 3  # arenas a join tries when the chosen one filled up meanwhile


class Arena(Table):
    """One Hitball arena: a World, its players' balls by Rid (``player.data["rid"]``)."""

    tick_interval = 0.022
    capacity = 16
    seat_timeout = 10.0
    idle_timeout = 60.0

    world: World

    async def on_create(self) -> None:
        self.world = World()

    def rid_taken(self, rid: str, key: str) -> bool:
        """Whether a player other than ``key`` has the Rid ``rid`` here."""
        return any(p.data.get("rid") == rid and p.key != key for p in self.players.values())

    def _new_guest_rid(self) -> str:
        while True:
            rid = "".join(secrets.choice(GUEST_ID_ALPHABET) for _ in range(GUEST_ID_LENGTH))
            if rid not in self.world.balls:
                return rid

    @event("join")
    async def enter(self, session: Session) -> dict[str, Any]:
        """Seat the session (or find its seat) and return the state it starts from."""
        player = self.players.get(player_key(session))
        if player is None:
            rid = session.user_id or self._new_guest_rid()
            if rid in self.world.balls:  # a guest drew a user's name, or the reverse
                raise TableError(RID_TAKEN)
            player = await self.join(session)  # TableError when the arena is full
            player.data["rid"] = rid
            ball = self.world.add_ball(rid)
            self.notify("Hitball/OnJoin", ball.to_json())
        else:
            await self.join(session)  # the same connection again, or the user's new one
        state = {
            "Rid": player.data["rid"],
            "Player": self.world.players_json(),
            "Coins": self.world.coins_json(),
        }
        self.send(player, "Hitball/OnEnter", state)
        return state

    @event("gone")
    async def gone(self, session: Session) -> None:
        """The session's connection ended while it joined (before its end could find its
        seat): it leaves, unless another connection of the user has the seat since."""
        player = self.players.get(player_key(session))
        if player is not None and player.session.session_id == session.session_id:
            await self.leave(session)

    def _ball_of(self, session: Session | None) -> Any:
        player = self.player_of(session) if session is not None else None
        return None if player is None else self.world.balls.get(player.data.get("rid", ""))

    @event("fire")
    def fire(self, session: Session, x: float, y: float, angle: float, power: float) -> None:
        ball = self._ball_of(session)
        if ball is not None:
            self.world.fire(ball, float(x), float(y), float(angle), float(power))

    @event("move")
    def move(self, session: Session, x: float, y: float) -> None:
        ball = self._ball_of(session)
        if ball is not None:
            self.world.place(ball, float(x), float(y))

    @event("eat")
    def eat(self, session: Session, coin_id: int) -> None:
        if self._ball_of(session) is None:
            return  # only a player of this arena eats its coins
        coin = self.world.eat(int(coin_id))
        if coin is not None:
            self.notify("Hitball/OnEatCoins", coin.to_json())

    async def on_leave(self, player: Any) -> None:
        self.world.remove_ball(player.data.get("rid", ""))

    async def on_idle(self) -> None:
        """An arena finishes only when nobody is in it."""
        if not self.players:
            self.finish()

    def update(self, dt: float) -> None:
        """One frame of the world (whatever ``dt``: the game counts frames, as its clients
        do), every player's ball to everyone each SYNC_EVERY frames, a coin when short."""
        world = self.world
        world.step()
        if self.players and self.frame % SYNC_EVERY == 0:
            self.notify("Hitball/OnMove", world.players_json())
        coin = world.add_coin_if_short()
        if coin is not None and self.players:
            self.notify("Hitball/OnAddCoins", coin.to_json())


def number(msg: dict[str, Any], key: str) -> float | None:
    """``msg[key]`` as a finite float, or None when it is missing or not such a number
    (a bool is no number; an integer too large for a float is none either)."""
    value = msg.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        result = float(value)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


@register_module
class Hitball(RoomModule):
    """mqantserver's Hitball module (see the module's docstring)."""

    module_type = "Hitball"
    table_class = Arena
    max_tables: ClassVar[int] = 100

    room: Room[Arena]

    @handler("HD_Join")
    async def join(self, session: Session, msg: dict[str, Any] | bytes) -> dict[str, Any]:
        """Seat the caller; the reply is the OnEnter object."""
        if not session.channel:  # a REST call: no connection to play on, or to leave with
            raise HandlerError(NO_CONNECTION)
        big_room_id = session.get(HITBALL_ROOM)
        if big_room_id:
            try:
                state: dict[str, Any] = await self.room.call(big_room_id, "join", session)
            except TableError as err:
                if str(err) == QUEUE_FULL:
                    raise
                # The arena finished, is gone with its node, or has no room: another one.
            else:
                return await self._seated(session, big_room_id, state)
        tried: set[Arena] = set()
        for _ in range(JOIN_ATTEMPTS):
            table = self._arena_for(session, tried)
            try:
                state = await table.call("join", session)
            except TableError as err:
                if str(err) == QUEUE_FULL:
                    raise
                tried.add(table)  # filled up meanwhile, or finished: the next one
                continue
            return await self._seated(session, table.big_room_id, state)
        raise HandlerError(NO_ARENA)

    async def _seated(
        self, session: Session, big_room_id: str, state: dict[str, Any]
    ) -> dict[str, Any]:
        """Keep the arena in the session's settings. That also tells whether the connection
        still lives: one that ended while the join was on its way (its end told to the
        arena before it had a seat) leaves the arena now, instead of holding a seat that
        nothing would ever free."""
        try:
            await session.set(HITBALL_ROOM, big_room_id)
        except Exception:
            with contextlib.suppress(Exception):
                await self.room.put(big_room_id, "gone", session)
            raise
        return state

    def _arena_for(self, session: Session, tried: set[Arena]) -> Arena:
        """The arena of this node where the user's seat is kept, else one with room for
        them (a new one if none has)."""
        key = player_key(session)
        if session.user_id:
            for table in self.room:
                if key in table.players and not table.finished and table not in tried:
                    return table
        rid = session.user_id
        return self.room.usable_table(
            lambda table: (
                table not in tried
                and table.usable()
                and not (rid and table.rid_taken(rid, key))
            )
        )  # fmt: skip

    async def _queue(self, session: Session, name: str, *args: Any) -> str:
        """Queue event ``name`` to the caller's arena; "success" once queued."""
        big_room_id = session.get(HITBALL_ROOM)
        if not big_room_id:
            raise HandlerError(NOT_JOINED)
        try:
            await self.room.put(big_room_id, name, session, *args)
        except TableError as err:
            if str(err) == QUEUE_FULL:
                raise
            raise HandlerError(NOT_JOINED) from None  # the arena finished or is gone
        return "success"

    @handler("HD_Fire")
    async def fire(self, session: Session, msg: dict[str, Any] | bytes) -> str:
        """``{"Angle", "Power", "X", "Y"}``, numbers: shoot the caller's ball."""
        if not isinstance(msg, dict):
            raise HandlerError(FIRE_INVALID)
        angle, power, x, y = (number(msg, key) for key in ("Angle", "Power", "X", "Y"))
        if angle is None or power is None or x is None or y is None:
            raise HandlerError(FIRE_INVALID)
        return await self._queue(session, "fire", x, y, angle, power)

    @handler("HD_Move")
    async def move(self, session: Session, msg: dict[str, Any] | bytes) -> str:
        """``{"war", "wid", "x", "y"}``, all there, x and y numbers: put the ball at (x, y)."""
        if not isinstance(msg, dict) or msg.get("war") is None or msg.get("wid") is None:
            raise HandlerError(MOVE_INVALID)
        x, y = number(msg, "x"), number(msg, "y")
        if x is None or y is None:
            raise HandlerError(MOVE_INVALID)
        return await self._queue(session, "move", x, y)

    @handler("HD_EatCoin")
    async def eat_coin(self, session: Session, msg: dict[str, Any] | bytes) -> str:
        """``{"Id"}``, a number (truncated to an integer): eat that coin."""
        coin = number(msg, "Id") if isinstance(msg, dict) else None
        if coin is None:
            raise HandlerError(EAT_INVALID)
        coin_id = math.trunc(coin)
        if not 0 < coin_id <= MAX_COIN_ID:
            coin_id = 0  # no coin has it: the arena ignores it, as any eaten coin's
        return await self._queue(session, "eat", coin_id)
