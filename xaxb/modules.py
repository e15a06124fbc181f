"""XaXb: mqantserver's number-guessing game for two, on ``mqant.tables``.

A client asks for a table, enters it, sits down; once both seats sat down the game runs by
itself in rounds, which the table pushes (``xaxb.table``: the rounds, the pushes and their
payloads, and where this game differs from mqant's on purpose). mqant's XaXb robot plays it
unchanged but for the host: its requests, their payloads and their replies are mqant's.

Handlers (payload → result):

- ``HD_GetUsableTable``: anything (the robot sends ``{"gameName": "xaxb"}``) →
  ``{"BigRoomId": "BR:<node id>:<table id>:<transaction id>"}``;
- ``HD_Enter``, ``HD_Exit``: ``{"BigRoomId": str}`` → the BigRoomId;
- ``HD_SitDown``, ``HD_StartGame``, ``HD_PauseGame``: anything → ``"success"``;
- ``HD_Stake``: ``{"Target": 0..9}`` → ``"success"``.

``HD_Enter`` keeps the table's id in the session's setting ``BigRoomId`` (leaving the table
the session was at before, if another); the four handlers after ``HD_Exit`` act on that
table, and answer ``Enter a table first`` without one. A table is reached wherever it is:
its id names its node, and a table of another node (another process) is called over RPC
(``Room.call``), so the node that answers a request need not be the table's; a client may
also name the node itself (``XaXb@<hex>/HD_Enter``, the node id the BigRoomId carries).

The errors a client may read, besides those above: the table framework's ("The table has
finished" for an id whose table is over, "No such table", "The bigroomId data structure is
incorrect", "The table is full", "You are not at this table", "The table is busy: its queue
is full"), ``There is no available table`` when this node hosts its most tables
(``MaxTables``), and the table's own (``xaxb.table``: "Not betting now"...).
"""

import contextlib
from dataclasses import dataclass
from typing import Any

from mqant import HandlerError, RPCError, Session, handler, register_module
from mqant.tables import (
    QueueFull,
    RoomModule,
    TableError,
    TooManyTables,
    parse_big_room_id,
)
from mqant.tables import (
    player_key as key_of,
)
from xaxb.table import BAD_TARGET, HANDOUT_HOLD, XaXbTable

NO_TABLE = "There is no available table"
ENTER_FIRST = "Enter a table first"
BAD_ROOM = "BigRoomId must be the string HD_GetUsableTable answered"
NO_CONNECTION = "XaXb is played over MQTT: a table needs a connection to push to"
ROOM_SETTING = "BigRoomId"  # the session setting naming the table the session entered
TOO_MANY_HELD = "Too many tables asked for from your address: enter one, or try again shortly"
HANDOUTS_PER_ADDRESS = 16  # seats held at once for one address (each for HANDOUT_HOLD s)
MAX_ADDRESSES = 10_000  # addresses remembered before the expired ones are swept


@dataclass
class RoomRequest:
    BigRoomId: str


@dataclass
class StakeRequest:
    Target: int


@register_module
class XaXb(RoomModule):
    """The XaXb tables of this node, and the handlers that reach any node's. Settings:
    ``MaxTables`` (1000) and ``Table`` (the tables' settings, as ``{"seat_timeout": 30}``)."""

    module_type = "XaXb"
    table_class = XaXbTable
    max_tables = 1000

    def __init__(self) -> None:
        super().__init__()
        self._holds: dict[str, list[float]] = {}  # address → until when each of its holds

    @handler("HD_GetUsableTable")
    async def get_usable_table(self, session: Session, msg: dict[str, Any] | bytes) -> Any:
        """A table of this node with a seat for the session, held for it a few seconds
        (``XaXbTable.hand_out``), or a new one."""
        try:
            table = self.room.usable_table(lambda table: table.free_for(session))
        except TooManyTables:
            raise HandlerError(NO_TABLE) from None
        if key_of(session) not in table.players and not self._hold_for(session):
            raise HandlerError(TOO_MANY_HELD)
        table.hand_out(session)
        return {"BigRoomId": table.big_room_id}

    def _hold_for(self, session: Session) -> bool:
        """Whether one more seat may be held for a client at ``session``'s address: at
        most HANDOUTS_PER_ADDRESS in HANDOUT_HOLD seconds, so that one client with many
        connections cannot hold every table of the node."""
        now = self.room.clock.now()
        if len(self._holds) > MAX_ADDRESSES:  # past the bound, the old entries go
            self._holds = {ip: [t for t in ts if t > now] for ip, ts in self._holds.items()}
            self._holds = {ip: ts for ip, ts in self._holds.items() if ts}
        holds = [t for t in self._holds.get(session.ip, []) if t > now]
        if len(holds) >= HANDOUTS_PER_ADDRESS:
            self._holds[session.ip] = holds
            return False
        holds.append(now + HANDOUT_HOLD)
        self._holds[session.ip] = holds
        return True

    @handler("HD_Enter", message=RoomRequest, invalid=BAD_ROOM)
    async def enter(self, session: Session, msg: RoomRequest) -> Any:
        """Enter the table ``BigRoomId`` names, after leaving the table the session was at
        (if another), and keep its id in the session."""
        if not session.channel:
            raise HandlerError(NO_CONNECTION)
        big_room_id = msg.BigRoomId
        parse_big_room_id(big_room_id)  # a malformed id is refused before anything changes
        before = session.get(ROOM_SETTING) or ""
        if before and before != big_room_id:
            # That table may be over, or its node gone: the session is not there anyway.
            with contextlib.suppress(RPCError, TableError):
                await self.room.call(before, "exit", session)
        result = await self.room.call(big_room_id, "enter", session)
        await session.set(ROOM_SETTING, big_room_id)
        return result

    @handler("HD_Exit", message=RoomRequest, invalid=BAD_ROOM)
    async def exit(self, session: Session, msg: RoomRequest) -> Any:
        """Leave the table ``BigRoomId`` names; the session forgets it."""
        big_room_id = msg.BigRoomId
        try:
            result = await self.room.call(big_room_id, "exit", session)
        except QueueFull:
            raise  # still at the table
        except TableError:
            await self._forget(session, big_room_id)  # not at that table, whatever it says
            raise
        await self._forget(session, big_room_id)
        return result

    @handler("HD_SitDown")
    async def sit_down(self, session: Session, msg: dict[str, Any] | bytes) -> Any:
        return await self._at_table(session, "sit_down")

    @handler("HD_StartGame")
    async def start_game(self, session: Session, msg: dict[str, Any] | bytes) -> Any:
        return await self._at_table(session, "start_game")

    @handler("HD_PauseGame")
    async def pause_game(self, session: Session, msg: dict[str, Any] | bytes) -> Any:
        return await self._at_table(session, "pause_game")

    @handler("HD_Stake", message=StakeRequest, invalid=BAD_TARGET)
    async def stake(self, session: Session, msg: StakeRequest) -> Any:
        if msg.Target not in range(10):
            raise HandlerError(BAD_TARGET)
        return await self._at_table(session, "stake", msg.Target)

    async def _forget(self, session: Session, big_room_id: str) -> None:
        if session.get(ROOM_SETTING) == big_room_id and session.channel:
            with contextlib.suppress(RPCError):
                await session.set(ROOM_SETTING, "")

    async def _at_table(self, session: Session, name: str, *args: Any) -> Any:
        """Event ``name`` at the table the session entered."""
        big_room_id = session.get(ROOM_SETTING) or ""
        if not big_room_id:
            raise HandlerError(ENTER_FIRST)
        return await self.room.call(big_room_id, name, session, *args)
