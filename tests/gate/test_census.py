"""The gate process as a node: clients connected over WebSocket, the census a module gets of
their sessions and named groups (mqant.gates), and a client that calls the gate itself."""

import logging

import pytest
from channels.layers import get_channel_layer

from gate.connection import MQTTConnection
from gate.node import GATE_ID
from mqant import FunctionNotFound, call, gates, groups, runtime
from mqant.registry import Node
from tests.gate.test_consumer import Client


@pytest.fixture
async def clients(mqant_started):
    opened = [Client(), Client()]
    for client in opened:
        await client.open()
    yield opened
    for client in opened:
        await client.ws.disconnect()


async def test_the_census_lists_each_live_session_with_its_named_groups(mqant_started):
    before = set(MQTTConnection.live)  # other tests' connections may linger
    opened = [Client(), Client()]
    for client in opened:
        await client.open()
    first, second = sorted(MQTTConnection.live - before, key=lambda c: c.session.session_id)
    await groups.add("chat.room.lobby", first.session)
    await groups.add("chat.room.x", first.session)
    await groups.add("chat.room.lobby", second.session)
    await groups.discard("chat.room.x", first.session)

    census = await gates.live_sessions(page_size=1)  # a page per session

    assert census.gates == {GATE_ID}
    assert census.missing == frozenset()
    listed = {live.session.session_id: live for live in census.sessions}
    ours = [first.session.session_id, second.session.session_id]
    assert set(ours) <= set(listed)
    assert listed[first.session.session_id].groups == {"chat.room.lobby"}  # not "everyone"
    assert listed[second.session.session_id].session.channel == second.session.channel
    assert [live.session.session_id for live in census.in_group("chat.room.lobby")] == ours
    assert census.answered_for(first.session)
    for client in opened:
        await client.ws.disconnect()
    census = await gates.live_sessions()
    assert not {live.session.session_id for live in census.sessions} & set(ours)


async def test_the_gate_is_a_node_and_answers_no_client_handler(clients):
    app = runtime.get().app
    assert app is not None
    assert [node.node_id for node in app.registry.nodes("Gate")] == [GATE_ID]
    assert all(
        node.module_type != "Gate" for node in app.registry.listening("mqant.session_closed")
    )
    reply = await clients[0].request("Gate/HD_Anything/1", {})
    assert reply["Error"] == "Remote function(HD_Anything) not found"
    reply = await clients[0].request("Gate/live_sessions/2", {})  # no "HD_": not for clients
    assert reply["Error"] == "Method(live_sessions) must begin with 'HD_'"
    with pytest.raises(FunctionNotFound):
        await call(GATE_ID, "members", timeout=1)


async def test_a_gate_that_does_not_answer_is_left_out_with_one_warning(clients, caplog):
    app = runtime.get().app
    assert app is not None
    silent = await get_channel_layer().new_channel()  # nobody reads it
    await app.registry.register(Node("Gate@silent", "Gate", silent))
    with caplog.at_level(logging.WARNING, logger="mqant.gates"):
        census = await gates.live_sessions(timeout=0.2)
    assert census.gates == {GATE_ID}
    assert census.missing == {"Gate@silent"}
    assert len(census.sessions) >= 2
    warnings = [r for r in caplog.records if r.name == "mqant.gates"]
    assert len(warnings) == 1
    assert "Gate@silent" in warnings[0].getMessage()
