"""XaXb against the real server, played by mqant's robot (tests/e2e/robots.py): a round over
TCP, over the ASGI server's WebSocket and over the gate's own; a finished table's id refused;
hostile requests answered with clear errors while the games go on; and scaled out, the
tables in a ``runmodules`` process, played from two gates and reached by their node."""

import signal
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.deployment import Deployment, two_gates
from tests.e2e.robots import XaXbRobot
from tests.e2e.server import ServerProcess
from tests.e2e.test_scale_out import login, until_ok

pytestmark = pytest.mark.e2e

START_COINS, STAKE, PRIZE = 100_000, 500, 800
BAD_ROOM = "BigRoomId must be the string HD_GetUsableTable answered"
BAD_ID = "The bigroomId data structure is incorrect"
BAD_TARGET = "Target must be an integer from 0 to 9"
PLACES = {"tcp": "tcp", "asgi-ws": "/mqtt", "own-ws": "/"}


def robot(server: ServerProcess, place: str, **kw: Any) -> XaXbRobot:
    """A robot on the server's TCP listener, the ASGI server's WebSocket (``/mqtt``) or the
    gate's own WebSocket listener (at ``/``, as mqant's robot connects)."""
    where = PLACES[place]
    port = {"tcp": server.tcp_port, "/mqtt": server.port, "/": server.ws_port}[where]
    return XaXbRobot(port, where, **kw)


def check_round(a: XaXbRobot, b: XaXbRobot, timeout: float = 15) -> dict[str, Any]:
    """Both robots saw one round to its end: the same settlement, both stakes in it, the
    closest guess paid; returns the settlement."""
    settled: dict[str, Any] = a.wait_push("XaXb/Settlement", timeout=timeout)
    assert b.wait_push("XaXb/Settlement", timeout=timeout) == settled
    assert settled["Result"] in range(10)
    seats = settled["Seats"]
    assert [seat["SeatIndex"] for seat in seats] == [0, 1]
    assert all(seat["Stake"] and seat["SitDown"] for seat in seats)
    weights = [abs(seat["Target"] - settled["Result"]) for seat in seats]
    assert [seat["Weight"] for seat in seats] == weights
    winner = 0 if weights[0] <= weights[1] else 1  # a tie goes to the lower seat
    paid = [START_COINS - STAKE + (PRIZE if i == winner else 0) for i in (0, 1)]
    assert [seat["Coin"] for seat in seats] == paid
    for bot in (a, b):  # each staked once, answered "success"
        assert [reply["Error"] for reply in bot.replies(bot.stake_topics[:1])] == [""]
    return settled


@pytest.mark.parametrize("place", list(PLACES))
def test_two_robots_play_a_round_and_the_finished_table_is_refused(
    server: ServerProcess, place: str
) -> None:
    a, b = robot(server, place), robot(server, place)
    late = ChatClient(server.tcp_port, mqtt31=True, client_id="1", qos=0, transport="tcp")
    try:
        table = a.run_worker()
        assert b.run_worker() == table  # the second robot is handed the same table
        assert a.pushes("XaXb/OnEnter")[0][1] == {"Rid": "", "SeatIndex": 0, "State": 1}
        assert b.pushes("XaXb/OnEnter")[0][1] == {"Rid": "", "SeatIndex": 1, "State": 1}
        topics = a.topics()  # the push to the joiner came before the reply
        assert topics.index("XaXb/OnEnter") < topics.index("XaXb/HD_Enter/2")
        assert a.wait_push("XaXb/OnEnter", 3)["SeatIndex"] == 1  # b's seat, to a
        resumed = a.wait_push("XaXb/OnResume")
        assert [seat["Coin"] for seat in resumed] == [START_COINS] * 2
        check_round(a, b)
        idle, betting = a.pushes("XaXb/Idle")[0][0], a.pushes("XaXb/Betting")[0][0]
        opening = a.pushes("XaXb/Opening")[0][0]
        settlement = a.pushes("XaXb/Settlement")[0][0]
        assert 0.55 < betting - idle < 1.0
        assert opening - betting < 2.1 + 0.4  # at most 2.1 s, less once both staked
        assert 0.55 < settlement - opening < 1.0

        b.close()  # a guest leaving ends the game: the other is told, then disconnects
        assert a.wait_push("XaXb/OnStop")[1]["Coin"] == 0  # b's seat, empty
        assert a.topics()[-2:] == ["XaXb/OnPause", "XaXb/OnStop"]
        a.wait_until(lambda: a.disconnects > 0, what="the robot disconnects on OnStop")
        entered = late.request("XaXb/HD_Enter", {"BigRoomId": table})
        assert entered["Error"] == "The table has finished"
        assert entered["Result"] is None
    finally:
        for client in (a, b, late):
            client.close()


def test_robots_that_ask_at_once_pair_up_two_to_a_table(server: ServerProcess) -> None:
    """mqant handed each table to four robots and turned two away; here a hand-out holds its
    seat, so robots that start together sit two to a table and all play."""
    robots = [robot(server, place) for place in PLACES for _ in range(2)]
    try:
        with ThreadPoolExecutor(len(robots)) as pool:
            tables = list(pool.map(lambda bot: bot.run_worker(), robots))
        assert sorted(Counter(tables).values()) == [2] * (len(robots) // 2)
        for bot in robots:
            settled = bot.wait_push("XaXb/Settlement", timeout=15)
            assert [seat["Stake"] for seat in settled["Seats"]] == [True, True]
    finally:
        for bot in robots:
            bot.close()


def test_a_user_who_reconnects_gets_the_seat_back_and_where_the_game_is(
    server: ServerProcess,
) -> None:
    name = "xaxb-ann"
    ann, bob = robot(server, "tcp"), robot(server, "own-ws")
    back = robot(server, "asgi-ws")
    try:
        login(ann, name)
        table = ann.run_worker()
        assert bob.run_worker() == table
        ann.wait_push("XaXb/Idle")
        ann.close()  # ann's seat is kept for her: the game goes on
        bob.wait_push("XaXb/Settlement", timeout=15)
        assert "XaXb/OnStop" not in bob.topics()

        login(back, name)
        assert back.request("XaXb/HD_Enter", {"BigRoomId": table})["Result"] == table
        assert back.wait_push("XaXb/OnEnter") == {"Rid": name, "SeatIndex": 0, "State": 2}
        sync = back.wait_push("XaXb/OnSync")
        assert sync["State"] == 2
        assert sync["StateGame"] in ("Idle", "Betting", "Opening", "Settlement")
        assert [seat["Rid"] for seat in sync["Seats"]] == [name, ""]
        assert sync["Seats"][0]["Coin"] == START_COINS  # no stake while away
        back.wait_until(
            lambda: any(
                all(seat["Stake"] for seat in settled["Seats"])
                for _, settled in back.pushes("XaXb/Settlement")
            ),
            timeout=15,
            what="a round where both staked",
        )
    finally:
        for client in (ann, bob, back):
            client.close()


def test_hostile_requests_get_clear_errors_and_the_games_go_on(server: ServerProcess) -> None:
    a, b = robot(server, "tcp"), robot(server, "own-ws")
    bad = ChatClient(server.tcp_port, mqtt31=True, client_id="1", qos=0, transport="tcp")
    try:
        assert bad.request("XaXb/HD_SitDown", {})["Error"] == "Enter a table first"
        assert bad.request("XaXb/HD_Stake", {"Target": 3})["Error"] == "Enter a table first"
        assert bad.request("XaXb/HD_PauseGame", b"")["Error"] == "Enter a table first"
        for payload in ({}, {"BigRoomId": 5}, {"BigRoomId": None}, b"not json", b"",
                        {"BigRoomId": ["BR:XaXb@00:1:1"]}):  # fmt: skip
            for handler in ("HD_Enter", "HD_Exit"):
                reply = bad.request(f"XaXb/{handler}", payload)
                assert reply["Error"] == BAD_ROOM, (handler, payload, reply)
        for text, error in [
            ("", BAD_ID),
            ("BR:x", BAD_ID),
            ("BR:XaXb@00:one:1", BAD_ID),
            ("BR:XaXb@" + "f" * 3000 + ":1:1", BAD_ID),
            ("BR:XaXb@00000000deadbeef:1:1", "No such table"),  # no such node
            ("BR:Chat@00000000deadbeef:1:1", "No such table"),  # not XaXb's
        ]:
            reply = bad.request("XaXb/HD_Enter", {"BigRoomId": text})
            assert reply["Error"] == error, (text, reply)
        for target in ("3", 10, -1, 1.5, True, None, 10**30, [1], {"n": 1}):
            reply = bad.request("XaXb/HD_Stake", {"Target": target})
            assert reply["Error"] == BAD_TARGET, (target, reply)
        assert bad.request("XaXb/HD_Stake", {})["Error"] == BAD_TARGET

        table = a.run_worker()
        assert b.run_worker() == table
        node = table.split(":")[1]
        assert bad.request("XaXb/HD_Enter", {"BigRoomId": table})["Error"] == "The table is full"
        direct = bad.request(f"{node}/HD_Enter", {"BigRoomId": table})
        assert direct["Error"] == "The table is full"
        exit_ = bad.request("XaXb/HD_Exit", {"BigRoomId": table})
        assert exit_["Error"] == "You are not at this table"
        missing = table.rsplit(":", 2)[0] + ":999:1"
        assert bad.request("XaXb/HD_Enter", {"BigRoomId": missing})["Error"] == "No such table"

        alone = bad.request("XaXb/HD_GetUsableTable", b"\xff\x00")["Result"]["BigRoomId"]
        assert alone != table  # a table whose game runs is not handed out
        assert bad.request("XaXb/HD_Enter", {"BigRoomId": alone})["Result"] == alone
        assert bad.request("XaXb/HD_Stake", {"Target": 3})["Error"] == "Not betting now"
        paused = bad.request("XaXb/HD_PauseGame", {})
        assert paused["Error"] == "The game has not started"
        # Entering another table leaves this one first, even when the other is full.
        assert bad.request("XaXb/HD_Enter", {"BigRoomId": table})["Error"] == "The table is full"
        assert bad.request("XaXb/HD_SitDown", {})["Error"] == "You are not at this table"
        assert bad.request("XaXb/HD_Enter", {"BigRoomId": alone})["Result"] == alone
        assert bad.request("XaXb/HD_Exit", {"BigRoomId": alone})["Result"] == alone
        assert bad.request("XaXb/HD_SitDown", {})["Error"] == "Enter a table first"  # forgot it

        check_round(a, b)  # the robots played on
        assert a.disconnects == b.disconnects == bad.disconnects == 0
    finally:
        for client in (a, b, bad):
            client.close()


# XaXb in the module process only: the gates do not run it.
XAXB = {"XaXb": [{"Id": "XaXb001", "ProcessID": "modules1"}]}


@pytest.fixture
def scaled(tmp_path, redis_space, postgres_url) -> Iterator[Deployment]:
    """Two gates and a ``runmodules`` process, the only one that runs XaXb."""
    env = {**redis_space.env("pubsub"), "DATABASE_URL": postgres_url}
    with two_gates(tmp_path, env, {"RPC_TIMEOUT": 5.0}, XAXB) as running:
        yield running
    log = running.modules.output()
    assert "Traceback" not in log, log


def test_tables_in_a_module_process_played_from_two_gates(scaled: Deployment) -> None:
    gate1, gate2 = scaled.gates
    a = XaXbRobot(gate1.port, "/mqtt")
    b = XaXbRobot(gate2.tcp_port, "tcp")
    other = ChatClient(gate2.tcp_port, mqtt31=True, client_id="1", qos=0, transport="tcp")
    scaled.clients += [a, b, other]
    until_ok(a, "XaXb/HD_GetUsableTable", {"gameName": "xaxb"})  # the module process is up
    table = a.run_worker()
    node = table.split(":")[1]
    assert node.startswith("XaXb@")

    # b as mqant's robot, but for its HD_Enter, which names the table's node.
    got = b.request("XaXb/HD_GetUsableTable", {"gameName": "xaxb"})
    assert got["Result"] == {"BigRoomId": table}
    entered = b.request(f"{node}/HD_Enter", {"BigRoomId": table})
    assert entered["Error"] == ""
    assert entered["Result"] == table
    assert b.request("XaXb/HD_SitDown", {"BigRoomId": table})["Result"] == "success"
    check_round(a, b)
    full = other.request(f"{node}/HD_Enter", {"BigRoomId": table})
    assert full["Error"] == "The table is full"

    scaled.modules.signal(signal.SIGTERM)  # its tables finish, their players are told
    assert scaled.modules.wait(30) == 0
    for bot in (a, b):
        bot.wait_push("XaXb/OnStop")

    scaled.modules.start()  # a new node: the old one and its tables are gone
    until_ok(other, "XaXb/HD_GetUsableTable", {"gameName": "xaxb"})
    gone = other.request("XaXb/HD_Enter", {"BigRoomId": table})
    assert gone["Error"] == "No such table"
