"""Hitball against the default run: paho robots over TCP, over WebSocket on the ASGI server's
port and on the gate's own (subprotocol ``mqttv3.1``, as Paho's JavaScript client asks for
MQTT 3.1), playing as mqantserver's page does: MQTT 3.1, the client id "111" for everyone,
no SUBSCRIBE, QoS 1, msgids counting from 1, fire and eat without a msgid."""

import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.clients import ChatClient, mqant_place
from tests.e2e.deployment import two_gates
from tests.e2e.server import ServerProcess
from tests.e2e.test_scale_out import until_ok

pytestmark = pytest.mark.e2e

PASSWORD = "sturdy-pass-5521"
QUEUE_FULL = "The table is busy: its queue is full"
NOT_JOINED = "Join first: Hitball/HD_Join"
FIRE_INVALID = "Angle , Power X ,Y cannot be nil"
MOVE_INVALID = "war , wid ,x ,y cannot be nil"
EAT_INVALID = "Id cannot be nil"
PLAYER_FIELDS = {
    "Rid", "X", "Y", "Wid", "XSpeed", "YSpeed", "RotateDirection", "BallRadius", "Angle",
    "Power", "RotateSpeed", "MinPower", "MaxPower",
}  # fmt: skip
PLACES = ["tcp", "/mqtt", "ws:/mqtt"]  # TCP; WebSocket on daphne's port; on the gate's own
_users = itertools.count()


@pytest.fixture
def robots(server: ServerProcess) -> Iterator[Callable[..., ChatClient]]:
    """Opens robots as mqantserver's page connects: ``where`` is "tcp", a WebSocket path on
    the ASGI server's port, or "ws:" and a path on the gate's own WebSocket port."""
    opened: list[ChatClient] = []

    def robot(where: str = "tcp", **habits: Any) -> ChatClient:
        transport, path, port = mqant_place(server, where)
        headers = {"Sec-Websocket-Protocol": "mqttv3.1"} if transport == "websockets" else None
        client = ChatClient(
            port, transport=transport, path=path, mqtt31=True, client_id="111",
            headers=headers, **habits,
        )  # fmt: skip
        opened.append(client)
        return client

    yield robot
    for client in opened:
        client.close()


def join(robot: ChatClient) -> dict[str, Any]:
    """HD_Join as the page sends it; the reply's Result (the OnEnter object)."""
    reply = robot.request("Hitball/HD_Join", {"Rid": "001"})
    assert reply["Error"] == "", reply
    result: dict[str, Any] = reply["Result"]
    return result


def ok(robot: ChatClient, handler: str, body: Any) -> None:
    reply = robot.request(f"Hitball/{handler}", body)
    assert reply["Error"] == "", reply
    assert reply["Result"] == "success", reply


def error(robot: ChatClient, handler: str, body: Any) -> str:
    reply = robot.request(f"Hitball/{handler}", body)
    assert reply["Result"] in ("", None), reply
    text: str = reply["Error"]
    return text


def next_move(
    robot: ChatClient, fits: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> dict[str, Any]:
    """The first OnMove from now on (older ones are skipped) that ``fits``."""
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while (left := deadline - time.monotonic()) > 0:
        seen = robot.wait_json("Hitball/OnMove", left)
        if fits(seen):
            return seen
    raise AssertionError(f"no fitting OnMove within {timeout} s; the last: {seen}")


def forget_moves(robot: ChatClient) -> None:
    """Drop the OnMoves received so far: the next ones are sent from now on."""
    while not robot.messages.empty():
        robot.pending.append(robot.messages.get_nowait())
    robot.pending = [(t, body) for t, body in robot.pending if t != "Hitball/OnMove"]


@pytest.mark.parametrize("where", PLACES, ids=["tcp", "asgi-ws", "gate-ws"])
def test_two_robots_see_each_other_move_shoot_and_eat(robots, where):
    ann, bob = robots(where), robots(where)
    ann_in = join(ann)
    ann_rid = ann_in["Rid"]
    assert set(ann_in["Player"][ann_rid]) == PLAYER_FIELDS
    bob_in = join(bob)
    bob_rid = bob_in["Rid"]
    assert ann_rid != bob_rid
    assert {ann_rid, bob_rid} <= set(bob_in["Player"])  # the same arena
    assert bob.wait_json("Hitball/OnEnter") == bob_in  # the later page's way in
    joined = ann.wait_json("Hitball/OnJoin")
    while joined["Rid"] != bob_rid:  # ann's own first
        joined = ann.wait_json("Hitball/OnJoin")
    assert joined == bob_in["Player"][bob_rid]
    next_move(bob, lambda move: ann_rid in move and bob_rid in move)

    ok(ann, "HD_Move", {"war": 1, "wid": 0, "x": 345.5, "y": 678.25})
    seen = next_move(bob, lambda move: move.get(ann_rid, {}).get("X") == 345.5)
    assert seen[ann_rid]["Y"] == 678.25

    ok(bob, "HD_Fire", {"Rid": "001", "Angle": 0, "Power": 200, "X": 600, "Y": 600})
    shot = next_move(ann, lambda move: move.get(bob_rid, {}).get("XSpeed", 0) > 0)[bob_rid]
    assert 0 < shot["XSpeed"] <= 10
    assert abs(shot["YSpeed"]) < 1e-9
    assert shot["Power"] == 200
    assert shot["RotateDirection"] == -1

    coins = dict(ann_in["Coins"]) or {"new": ann.wait_json("Hitball/OnAddCoins")}
    coin = next(iter(coins.values()))
    ok(ann, "HD_Move", {"war": 1, "wid": 0, "x": coin["X"], "y": coin["Y"]})
    ok(ann, "HD_EatCoin", {"Id": coin["Id"]})
    assert ann.wait_json("Hitball/OnEatCoins") == coin
    assert bob.wait_json("Hitball/OnEatCoins") == coin
    ok(bob, "HD_EatCoin", {"Id": coin["Id"]})  # eaten already: nothing happens
    assert bob.nothing_on("Hitball/OnEatCoins", within=0.5)
    assert ann.nothing_on("Hitball/OnEatCoins", within=0.1)


@pytest.mark.parametrize("where", ["ws:/mqtt", "/mqtt", "tcp"], ids=["gate-ws", "asgi-ws", "tcp"])
def test_robots_that_behave_exactly_as_mqants_page(robots, where):
    """Two pages at once: the join answered with the state, on the msgid 1 of both (one
    client id), then shots and an eat without msgids, all at QoS 1, and no SUBSCRIBE."""
    pages = [robots(where), robots(where)]
    states = []
    for page in pages:
        page.client.publish("Hitball/HD_Join/1", b'{"Rid":"001"}', qos=1)
        reply = json.loads(page.wait_for("Hitball/HD_Join/1"))
        assert reply["Error"] == "", reply
        state = reply["Result"]
        assert set(state) == {"Rid", "Player", "Coins"}
        assert state["Rid"] in state["Player"]  # its own hero, for the camera
        assert all(set(p) == PLAYER_FIELDS for p in state["Player"].values())
        assert all(set(c) == {"Id", "X", "Y", "Wid", "Type"} for c in state["Coins"].values())
        states.append(state)
    first, second = (state["Rid"] for state in states)
    assert first != second
    assert first in states[1]["Player"]  # the same arena
    fire = {"Rid": "001", "Angle": 90, "Power": 50, "X": 640.0, "Y": 300.0}
    pages[0].client.publish("Hitball/HD_Fire", json.dumps(fire), qos=1)
    shot = next_move(pages[1], lambda move: move.get(first, {}).get("YSpeed", 0) > 0)[first]
    assert shot["Power"] == 50
    assert shot["X"] == pytest.approx(640.0, abs=1e-6)
    for page in pages:
        assert page.nothing_on("Hitball/HD_Fire", within=0.2)  # no msgid: no reply


def test_a_disconnected_guest_disappears_from_the_next_onmoves(robots):
    stay, leave = robots("tcp"), robots("ws:/mqtt")
    stay_rid = join(stay)["Rid"]
    leave_rid = join(leave)["Rid"]
    next_move(stay, lambda move: leave_rid in move)
    leave.close()
    next_move(stay, lambda move: leave_rid not in move and stay_rid in move)
    for _ in range(5):  # nor in the ones after
        assert leave_rid not in stay.wait_json("Hitball/OnMove")


def test_a_users_rid_is_their_name_and_their_seat_waits_for_them(robots):
    name = f"hitball{next(_users)}"
    watcher = robots("tcp")
    watcher_rid = join(watcher)["Rid"]
    user = robots("/mqtt")
    login = user.request("Login/HD_Login", {"userName": name, "passWord": PASSWORD})
    assert login["Error"] == "", login
    assert join(user)["Rid"] == name
    ok(user, "HD_Move", {"war": 0, "wid": 0, "x": 500, "y": 600})
    next_move(watcher, lambda move: move.get(name, {}).get("X") == 500)
    user.close()
    time.sleep(1.0)
    forget_moves(watcher)
    next_move(watcher, lambda move: name in move)  # the seat is kept (10 s)
    back = robots("ws:/mqtt")
    login = back.request("Login/HD_Login", {"userName": name, "passWord": PASSWORD})
    assert login["Error"] == "", login
    state = join(back)
    assert state["Rid"] == name
    assert (state["Player"][name]["X"], state["Player"][name]["Y"]) == (500, 600)
    assert watcher_rid in state["Player"]


def test_hostile_requests_get_clear_errors_and_the_others_play_on(robots, server):
    bystander, hostile = robots("tcp"), robots("ws:/mqtt")
    bystander_rid = join(bystander)["Rid"]
    fire = {"Angle": 0, "Power": 1, "X": 1, "Y": 1}
    move = {"war": 1, "wid": 1, "x": 1, "y": 1}
    for handler, body in [("HD_Fire", fire), ("HD_Move", move), ("HD_EatCoin", {"Id": 1})]:
        assert error(hostile, handler, body) == NOT_JOINED  # before any join
    hostile_rid = join(hostile)["Rid"]
    refused: dict[str, list[Any]] = {
        FIRE_INVALID: [
            {"Angle": 0, "Power": 1, "X": 1},
            {**fire, "Angle": True},
            {**fire, "Power": "NaN"},
            {**fire, "X": None},
            {**fire, "Y": [1]},
            b'{"Angle": NaN, "Power": 1, "X": 1, "Y": 1}',
            b'{"Angle": 0, "Power": 1e999, "X": 1, "Y": 1}',
            b'{"Angle": 0, "Power": 1, "X": 1' + b"0" * 400 + b', "Y": 1}',
            b"fire!",
            b"",
        ],
        MOVE_INVALID: [
            {"wid": 1, "x": 1, "y": 1},
            {**move, "war": None},
            {**move, "x": "12"},
            {**move, "y": {"y": 1}},
            b"[1, 2]",
        ],
        EAT_INVALID: [{}, {"Id": "1"}, {"Id": False}, {"Id": None}, b'{"Id": -Infinity}'],
    }
    handlers = {FIRE_INVALID: "HD_Fire", MOVE_INVALID: "HD_Move", EAT_INVALID: "HD_EatCoin"}
    for text, bodies in refused.items():
        for bad in bodies:
            assert error(hostile, handlers[text], bad) == text, bad
    # Numbers far out of the field are clamped, Ids of no coin ignored.
    ok(hostile, "HD_Fire", {"Angle": 1e308, "Power": 1e308, "X": -1e308, "Y": 1e308})
    ok(hostile, "HD_Move", {"war": [], "wid": {}, "x": 1e300, "y": -5})
    for coin_id in (10**30, -1, 0, 2.5e15):
        ok(hostile, "HD_EatCoin", {"Id": coin_id})
    # A flood of shots: past its share of the arena's queue (or of the gate's calls in
    # flight), refused; nothing else.
    flood = [f"Hitball/HD_Fire/{next(hostile.msgids)}" for _ in range(60)]
    for topic in flood:
        hostile.client.publish(topic, json.dumps(fire).encode(), qos=0)
    answers = {json.loads(hostile.wait_for(topic))["Error"] for topic in flood}
    assert "" in answers, answers
    assert answers <= {"", QUEUE_FULL, "the work queue is full!"}, answers
    ok(bystander, "HD_Move", {"war": 1, "wid": 1, "x": 700, "y": 700})
    seen = next_move(bystander, lambda move: move.get(bystander_rid, {}).get("X") == 700)
    assert seen[bystander_rid]["Y"] == 700
    assert 0 <= seen[hostile_rid]["X"] <= 1280  # its ball stayed in the field
    assert 0 <= seen[hostile_rid]["Y"] <= 1280
    assert hostile.disconnects == 0
    assert server.alive()
    assert "Traceback" not in server.output()


def test_two_gates_play_in_one_arena_of_the_module_process(tmp_path, redis_space, postgres_url):
    """Scaled out: the arena lives in the ``runmodules`` process; the joins set the session
    on each gate, and the arena's pushes reach both gates over Redis."""
    env = {**redis_space.env("core"), "DATABASE_URL": postgres_url}
    hitball = {"Hitball": [{"Id": "Hitball001", "ProcessID": "modules1"}]}
    with two_gates(tmp_path, env, {}, hitball) as deployment:
        ann, bob = deployment.client(0, "websockets"), deployment.client(1, "tcp")
        ann_rid = until_ok(ann, "Hitball/HD_Join", {"Rid": "001"})["Result"]["Rid"]
        bob_in = join(bob)
        bob_rid = bob_in["Rid"]
        assert ann_rid in bob_in["Player"]
        joined = ann.wait_json("Hitball/OnJoin")
        while joined["Rid"] != bob_rid:
            joined = ann.wait_json("Hitball/OnJoin")
        ok(bob, "HD_Move", {"war": 0, "wid": 0, "x": 222, "y": 333})  # the arena found again
        seen = next_move(ann, lambda move: move.get(bob_rid, {}).get("X") == 222)
        assert seen[bob_rid]["Y"] == 333
        bob.close()
        next_move(ann, lambda move: bob_rid not in move and ann_rid in move)
    output = deployment.modules.output()
    assert "Traceback" not in output, output
