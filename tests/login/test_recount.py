"""A Login node that starts again counts the users online from the gates' census (issue 12),
and does not count a session another Login node counts."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import get_channel_layer

from gate import process
from gate.node import GATE_ID
from login.modules import Login
from login.services import peers
from mqant import Session, runtime
from mqant.registry import Node
from tests.api.fakes import FakeConnection


class GateConnection(FakeConnection):
    def group_names(self) -> list[str]:
        return []


@pytest.fixture
async def login(settings: Any) -> AsyncIterator[Login]:
    settings.MQANT = {**settings.MQANT, "CONFIG": None, "MODULES": ["Login"]}
    app = (await runtime.start(process.parts())).app
    yield next(module for module, _ in app.modules if isinstance(module, Login))
    await runtime.stop()
    await get_channel_layer().flush()


async def test_the_count_comes_back_from_the_gates_bound_sessions(login: Login):
    login.recount_after = 600.0
    gate = process.inbox()
    for session_id, user_id in [("s1", "ann"), ("s2", "ann"), ("s3", "bob"), ("s4", "")]:
        session = Session(
            ip="127.0.0.1",
            network="tcp",
            session_id=session_id,
            server_id=GATE_ID,
            channel=f"{gate.channel}#{session_id}",
            user_id=user_id,
        )
        gate.register(session_id, GateConnection(session))  # type: ignore[arg-type]
    try:
        assert await login.recount() == (3, 0)  # the guest is nobody
        assert await login.online_count() == 2  # ann twice is one user
        gate.unregister("s3")  # bob's connection closed before this node was known
        assert await login.recount() == (0, 1)
        assert await login.online_count() == 1
        assert await login.recount() == (0, 0)
    finally:
        for session_id in ("s1", "s2", "s3", "s4"):
            gate.unregister(session_id)


def test_a_node_of_the_process_this_one_replaced_is_no_peer():
    here = Node("Login@new", "Login", "c1", process_id="modules1")
    dead = Node("Login@old", "Login", "c2", process_id="modules1")  # before the restart
    other = Node("Login@other", "Login", "c3", process_id="modules2")
    assert peers([here, dead, other], "Login@new") == [other]
