"""A Chat node's memory of who is in which room, and its indexes by user and by session: a
connection's close costs what that connection holds, not a scan of every room."""

from typing import Any

import pytest

from chat.limits import Refused
from chat.rooms import Rooms
from mqant import Session


def session(user_id: str, session_id: str) -> Session:
    return Session(
        ip="127.0.0.1", network="tcp", session_id=session_id, server_id="G", channel="c",
        user_id=user_id,
    )  # fmt: skip


class NoScan(dict[str, Any]):
    """The rooms, refusing to be walked through."""

    def _scan(self, *_args: Any) -> Any:
        raise AssertionError("every room was scanned")

    values = items = keys = __iter__ = _scan


def test_the_memberships_of_a_session_follow_joins_moves_and_leaves():
    rooms = Rooms()
    ann1, ann2, bob = session("ann", "a1"), session("ann", "a2"), session("bob", "b1")
    for name in ("r1", "r2", "r3"):
        rooms.join(name, ann1)
    rooms.join("r1", bob)
    _, previous = rooms.join("r2", ann2)  # ann's membership of r2 moves to her second connection
    assert previous is ann1
    rooms.leave("r3", "ann")
    assert rooms.rooms_of_session("a1") == [("r1", "ann")]
    assert rooms.rooms_of_session("a2") == [("r2", "ann")]
    assert rooms.rooms_of_session("b1") == [("r1", "bob")]
    assert rooms.rooms_of_session("nobody") == []
    for name, user in rooms.rooms_of_session("a1") + rooms.rooms_of_session("a2"):
        rooms.leave(name, user)
    assert rooms.names() == {"r1"}
    assert rooms.rooms_of_session("a1") == rooms.rooms_of_session("a2") == []
    assert rooms.members_of("r1") == ["bob"]


def test_a_close_reads_only_what_the_session_holds():
    rooms = Rooms()
    for n in range(2000):
        rooms.join(f"room{n}", session(f"u{n}", f"s{n}"))
    rooms.join("room7", session("ann", "a1"))
    rooms._rooms = NoScan(rooms._rooms)
    assert rooms.rooms_of_session("a1") == [("room7", "ann")]
    assert rooms.leave("room7", "ann") is not None


def test_the_rooms_a_user_is_in_are_counted_over_their_sessions():
    rooms = Rooms()
    rooms.join("a", session("ann", "a1"), max_rooms=2)
    rooms.join("b", session("ann", "a2"), max_rooms=2)
    rooms.join("b", session("ann", "a1"), max_rooms=2)  # again: not one more
    with pytest.raises(Refused, match=r"^You are in 2 rooms already"):
        rooms.join("c", session("ann", "a1"), max_rooms=2)
    assert rooms.get("c") is None
    rooms.leave("a", "ann")
    rooms.join("c", session("ann", "a1"), max_rooms=2)
    rooms.join("d", session("bob", "b1"), max_rooms=2)
