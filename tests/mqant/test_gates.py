"""The gate's side of the census (mqant.gates.census_page): bounded pages that, followed
from one to the next, list every session once."""

from dataclasses import dataclass, field

import pytest

from mqant import RemoteError, Session, gates
from mqant.gates import PAGE_SIZE, census_page


@dataclass
class Member:
    session: Session
    names: list[str] = field(default_factory=list)

    def group_names(self) -> list[str]:
        return self.names


def members(count: int) -> dict[str, Member]:
    found = {}
    for n in range(count):
        session_id = f"{n * 7919 % 100003:08x}"  # not in insertion order
        session = Session(
            ip="127.0.0.1", network="tcp", session_id=session_id, server_id="Gate@1", channel="c"
        )
        found[session_id] = Member(session, ["room.b", "room.a"] if n % 2 else [])
    return found


def test_pages_follow_one_another_and_list_every_session_once():
    connections = members(2500)
    seen: list[str] = []
    after, pages = "", 0
    while pages < 10:
        page = census_page(connections, (after, 1000))
        pages += 1
        seen += [state["session_id"] for state, _ in page["sessions"]]
        assert len(page["sessions"]) <= 1000
        after = page["next"]
        if not after:
            break
    assert pages == 3
    assert seen == sorted(connections)
    state, names = census_page(connections, ("", 2))["sessions"][1]
    assert names == sorted(connections[state["session_id"]].names)


def test_a_page_is_never_larger_than_the_gates_bound():
    page = census_page(members(PAGE_SIZE + 5), ("", 10 * PAGE_SIZE))
    assert len(page["sessions"]) == PAGE_SIZE
    assert page["next"]
    assert census_page(members(3), ("", 0))["sessions"][0]  # at least one
    assert census_page({}, ("", 5)) == {"sessions": [], "next": ""}


@pytest.mark.parametrize("args", [(), ("",), (5, 5), ("", "5"), ("", True), ("", 5, 1)])
def test_arguments_of_another_shape_are_refused(args):
    with pytest.raises(RemoteError, match="live_sessions takes"):
        census_page(members(1), args)


def test_the_closed_log_pages_bounds_and_forgets():
    now = [1000.0]
    log = gates.ClosedLog(limit=3, keep_for=60, clock=lambda: now[0])
    session = Session(ip="1", network="tcp", session_id="s", server_id="g", channel="c")
    log.record(session, [], told=["Chat"])
    assert len(log) == 0  # in no named group: nothing any module could miss
    for told in (["Chat"], ["Login"], [], ["Chat", "Login"]):
        log.record(session, ["chat.room.a"], told)
    assert len(log) == 3  # the oldest dropped past the limit
    first = log.page((0, 2))
    assert [entry[4] for entry in first["closed"]] == [["Login"], []]
    rest = log.page((first["next"], 2))
    assert [entry[4] for entry in rest["closed"]] == [["Chat", "Login"]]
    assert rest["next"] == 0
    now[0] += 61
    assert log.page((0, 10)) == {"closed": [], "next": 0}  # expired
    with pytest.raises(RemoteError):
        log.page(("0", 10))
