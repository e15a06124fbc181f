"""The XaXb table: two seats, a game of rounds, each round a guess of a number from 0 to 9.

A round runs through four phases (``mqant.tables.Phases``), each announced to the players:

- ``Idle`` (0.6 s): ``XaXb/Idle`` ``{"Coin": 500}``; a new round, so the stakes are cleared.
  A player who has fewer coins than a stake costs is sent ``XaXb/Exit`` ``{"Info": ...}``
  and leaves the table, which finishes the game.
- ``Betting`` (2.1 s at most): ``XaXb/Betting`` ``{"Coin": 500}``. Each player may stake once
  (``stake``: 500 coins on a target from 0 to 9); once every player has staked, betting ends
  at once.
- ``Opening`` (0.6 s): ``XaXb/Opening`` ``{"Coin": 500}``.
- ``Settlement`` (0.6 s): a number from 0 to 9 is drawn; each stake's ``Weight`` is its
  distance to it; the closest wins 800 coins (a tie goes to the lower seat).
  ``XaXb/Settlement`` ``{"Result": n, "Seats": [seat maps]}``.

The table's own states are mqant's numbers: 1 Initialized (waiting for two players to sit
down), 2 Active (playing), 3 Paused. A seat map is ``{"Coin", "Rid", "SeatIndex", "SitDown",
"Stake", "Target", "Weight"}``; ``Rid`` is the player's user id, empty for a guest.

It differs from mqantserver's on purpose, where mqant's behaviour was a fault:

- the stake flag is cleared every round (mqant cleared it only at the game's start, so that
  from the second round on betting closed as soon as it opened);
- a stake is taken only while betting, once per round (mqant took any number, in any
  phase, each costing 500);
- a table is handed out (``free_for``, ``hand_out``) only while it has a seat that neither a
  player nor a recent hand-out holds: two robots that ask at once share one table, where
  mqant handed each table to four and refused two of them at the door;
- a player who comes back to their seat (a logged-in user reconnecting within
  ``seat_timeout``) is sent ``XaXb/OnSync`` ``{"State", "StateGame", "Seats"}``, where the game
  is (mqant defined it and never sent it);
- a table that finishes tells whoever is still seated (``XaXb/OnStop``, after
  ``XaXb/OnPause`` when the game was running), also when it finishes before its game began
  (idle for ``idle_timeout``, or its node stopping), so that no client waits for a game that
  will not come;
- a player is bankrupt with fewer coins than a stake costs, not at zero: coins go by 500 and
  800, so a player may be left with 300, which could never be staked again.
"""

import secrets
from collections.abc import Callable
from typing import Any

from mqant import Session
from mqant.tables import NOT_A_PLAYER, Phase, Phases, Player, Room, Table, TableError, event
from mqant.tables import player_key as key_of

# The table's states, as mqant numbers them (OnEnter's and OnSync's "State").
INITIALIZED, ACTIVE, PAUSED = 1, 2, 3

# The phases of a round (OnSync's "StateGame"; "Void" while no game runs).
IDLE, BETTING, OPENING, SETTLEMENT, VOID = "Idle", "Betting", "Opening", "Settlement", "Void"
ROUND = [
    Phase(IDLE, 0.6, BETTING),
    Phase(BETTING, 2.1, OPENING),
    Phase(OPENING, 0.6, SETTLEMENT),
    Phase(SETTLEMENT, 0.6, IDLE),
]

STAKE = 500  # coins a stake costs
PRIZE = 800  # coins the closest guess wins
START_COINS = 100_000  # each player's coins when a game starts
TARGETS = range(10)  # what a stake may guess, and what is drawn
HANDOUT_HOLD = 10.0  # seconds a hand-out holds a seat for the one it was handed to

# Errors a client reads.
NOT_BETTING = "Not betting now"
PAUSED_NOW = "The game is paused"
STAKED_ALREADY = "You have staked in this round already"
TOO_FEW_COINS = "You have too few coins to stake"
NOT_STARTED = "The game has not started"
BAD_TARGET = "Target must be an integer from 0 to 9"
SEAT_LEFT = "Your connection left the table: enter it again"
BANKRUPT = "You have too few coins left to stake, so you have left the table"


class XaXbTable(Table):
    """One XaXb table (see the module's docstring). Event driven: no tick; the phases run on
    the table's timers. Its events are ``enter``, ``exit``, ``sit_down``, ``start_game``,
    ``pause_game`` and ``stake``, each from a player's session."""

    capacity = 2
    idle_timeout = 60.0
    seat_timeout = 60.0  # a logged-in player's seat waits for them, as mqant's net-break

    def __init__(self, room: Room[Any], table_id: int, transaction_id: int) -> None:
        super().__init__(room, table_id, transaction_id)
        # Set here, not in on_create: the hand-out reads them as soon as the table is made.
        self.state = INITIALIZED
        self.handouts: dict[str, float] = {}  # session id → until when its seat is held
        self.phases = Phases(self, ROUND, self._entered)
        self.draw: Callable[[], int] = lambda: secrets.randbelow(len(TARGETS))

    # Hand-outs: HD_GetUsableTable's choice, made outside the table's task (synchronously,
    # without an await: nothing else runs in between).

    def free_for(self, session: Session) -> bool:
        """Whether the table may be handed to ``session``: a game not begun, and a seat
        free of players and of the seats held for the other recent hand-outs (or the
        session's own seat already)."""
        if self.finished or self.state != INITIALIZED:
            return False
        if key_of(session) in self.players:
            return True
        return len(self.players) + self._held(but=session.session_id) < self.capacity

    def hand_out(self, session: Session) -> None:
        """Hold a seat for ``session`` for HANDOUT_HOLD seconds; a table nobody entered
        once its holds ran out finishes then (``_unclaimed``), so that asking for tables
        without entering them leaves none behind."""
        if key_of(session) in self.players:
            return
        now = self.clock.now()
        self.handouts = {sid: until for sid, until in self.handouts.items() if until > now}
        self.handouts[session.session_id] = now + HANDOUT_HOLD
        self.after(HANDOUT_HOLD, self._unclaimed)

    def _unclaimed(self) -> None:
        now = self.clock.now()
        held = any(until > now for until in self.handouts.values())
        if not self.players and not held and self.state == INITIALIZED:
            self.finish()

    def _held(self, but: str) -> int:
        now = self.clock.now()
        seated = {player.session.session_id for player in self.players.values()}
        return sum(
            1
            for sid, until in self.handouts.items()
            if until > now and sid != but and sid not in seated
        )

    # Events

    @event("enter")
    async def enter(self, session: Session) -> str:
        """Seat the session (its kept seat when it had one): the joiner is sent
        ``XaXb/OnEnter`` ``{"Rid", "SeatIndex", "State"}``; a new player's seat map goes to
        everyone as ``XaXb/OnEnter``, and a player who was here already is sent
        ``XaXb/OnSync``. Sent before the reply, as mqant does."""
        self.handouts.pop(session.session_id, None)
        known = key_of(session) in self.players
        player = await self.join(session)
        self.send(player, "XaXb/OnEnter", {"Rid": player.user_id, "SeatIndex": player.seat,
                                           "State": self.state})  # fmt: skip
        if known:
            self.send(player, "XaXb/OnSync", self.sync())
        else:
            self.notify("XaXb/OnEnter", self.seat_map(player))
        await self.flush()
        return self.big_room_id

    @event("exit")
    async def exit(self, session: Session) -> str:
        """Leave the table; during a game, that finishes it (``on_leave``)."""
        if await self.leave(session) is None:
            raise TableError(NOT_A_PLAYER)
        return self.big_room_id

    @event("sit_down")
    async def sit_down(self, session: Session) -> str:
        """Sit down; the game starts once both players sat down."""
        self._seated(session).data["SitDown"] = True
        await self._start_when_ready()
        return "success"

    @event("start_game")
    async def start_game(self, session: Session) -> str:
        """Resume a paused game (``XaXb/OnResume``). Before the game, sit down: the game
        starts when both players did (mqant started a game with one player, which then
        finished at once for its empty seat)."""
        player = self._seated(session)
        if self.state == INITIALIZED:
            player.data["SitDown"] = True
            await self._start_when_ready()
        elif self.state == PAUSED:
            self.state = ACTIVE
            self.phases.resume()
            self.notify("XaXb/OnResume", self.all_seats())
        return "success"

    @event("pause_game")
    def pause_game(self, session: Session) -> str:
        """Pause a running game: its phase's clock stops (``XaXb/OnPause``)."""
        self._seated(session)
        if self.state == INITIALIZED:
            raise TableError(NOT_STARTED)
        if self.state == ACTIVE:
            self.state = PAUSED
            self.phases.pause()
            self.notify("XaXb/OnPause", self.all_seats())
        return "success"

    @event("stake")
    async def stake(self, session: Session, target: Any) -> str:
        """Stake STAKE coins on ``target`` (0 to 9), once per round, while betting; betting
        ends once every player has staked."""
        if type(target) is not int or target not in TARGETS:
            raise TableError(BAD_TARGET)
        player = self._seated(session)
        if self.state == PAUSED:
            raise TableError(PAUSED_NOW)
        if self.state != ACTIVE or self.phases.current != BETTING:
            raise TableError(NOT_BETTING)
        data = player.data
        if data["Stake"]:
            raise TableError(STAKED_ALREADY)
        if data["Coin"] < STAKE:
            raise TableError(TOO_FEW_COINS)
        data.update(Coin=data["Coin"] - STAKE, Stake=True, Target=target, SitDown=True)
        if all(p.data["Stake"] for p in self.players.values()):
            await self.phases.go(OPENING)
        return "success"

    # Hooks

    async def on_join(self, player: Player) -> None:
        player.data.update(Coin=START_COINS, SitDown=False, Stake=False, Target=0, Weight=0)

    async def on_leave(self, player: Player) -> None:
        """A player left (exit, bankrupt, their seat's time ran out, a guest's connection
        ended): a game in progress cannot go on, so the table finishes."""
        if self.state in (ACTIVE, PAUSED):
            self.finish()

    async def on_idle(self) -> None:
        """``idle_timeout`` seconds without a request: a running game goes on (its players
        may just be watching), a paused one or one that never began finishes."""
        if self.state != ACTIVE:
            self.finish()

    async def on_destroy(self) -> None:
        """The table finished: whoever is still seated is told, ``XaXb/OnPause`` when the
        game was running, then ``XaXb/OnStop``."""
        self.phases.stop()
        if not self.players:
            return
        seats = self.all_seats()
        if self.state == ACTIVE:
            self.notify("XaXb/OnPause", seats)
        self.notify("XaXb/OnStop", seats)
        await self.flush()

    # The game

    async def _start_when_ready(self) -> None:
        players = self.players.values()
        ready = len(players) == self.capacity and all(p.data["SitDown"] for p in players)
        if self.state != INITIALIZED or not ready:
            return
        self.state = ACTIVE
        for player in players:
            player.data.update(Coin=START_COINS, Stake=False, Target=0, Weight=0)
        self.notify("XaXb/OnResume", self.all_seats())
        await self.phases.go(IDLE)

    async def _entered(self, phase: str) -> None:
        if phase == IDLE:
            await self._new_round()
        elif phase == SETTLEMENT:
            self._settle()
        else:
            self.notify(f"XaXb/{phase}", {"Coin": STAKE})

    async def _new_round(self) -> None:
        for player in self.players.values():
            player.data.update(Stake=False, Target=0, Weight=0)
        self.notify("XaXb/Idle", {"Coin": STAKE})
        for player in list(self.players.values()):
            if player.data["Coin"] < STAKE:
                self.send(player, "XaXb/Exit", {"Info": BANKRUPT})
                await self.leave(player.session)

    def _settle(self) -> None:
        result = self.draw()
        staked = sorted((p for p in self.players.values() if p.data["Stake"]), key=_seat)
        for player in staked:
            player.data["Weight"] = abs(player.data["Target"] - result)
        if staked:
            winner = min(staked, key=lambda p: (p.data["Weight"], p.seat))
            winner.data["Coin"] += PRIZE
        self.notify("XaXb/Settlement", {"Result": result, "Seats": self.taken_seats()})

    def _seated(self, session: Session) -> Player:
        player = self.player_of(session)
        if player is None:
            raise TableError(NOT_A_PLAYER)
        if player.session.session_id != session.session_id:
            raise TableError(SEAT_LEFT)  # the seat is the user's, on another connection
        return player

    # What the pushes carry

    def seat_map(self, player: Player) -> dict[str, Any]:
        data = player.data
        return {
            "Coin": data["Coin"],
            "Rid": player.user_id,
            "SeatIndex": player.seat,
            "SitDown": data["SitDown"],
            "Stake": data["Stake"],
            "Target": data["Target"],
            "Weight": data["Weight"],
        }

    def taken_seats(self) -> list[dict[str, Any]]:
        """The players' seat maps, by seat."""
        return [self.seat_map(p) for p in sorted(self.players.values(), key=_seat)]

    def all_seats(self) -> list[dict[str, Any]]:
        """Every seat's map, an empty seat's with no coins and ``Rid`` empty (mqant's
        OnResume, OnPause, OnStop)."""
        by_seat = {p.seat: p for p in self.players.values()}
        return [
            self.seat_map(by_seat[seat]) if seat in by_seat else _empty_seat(seat)
            for seat in range(self.capacity)
        ]

    def sync(self) -> dict[str, Any]:
        """Where the game is: ``XaXb/OnSync``."""
        return {
            "State": self.state,
            "StateGame": self.phases.current or VOID,
            "Seats": self.taken_seats(),
        }


def _seat(player: Player) -> int:
    return player.seat


def _empty_seat(seat: int) -> dict[str, Any]:
    return {"Coin": 0, "Rid": "", "SeatIndex": seat, "SitDown": False, "Stake": False,
            "Target": 0, "Weight": 0}  # fmt: skip
