"""The Presence on the database: a gate's reconciler and its reaper's guard after an outage."""

import asyncio
import datetime
from typing import Any

import pytest
from django.utils import timezone

from gate import inorder, keeper
from gate.heartbeat import Heartbeat
from gate.keeper import SessionKeeper
from mqant import events as mqant_events
from mqant.session import Session
from mqant.storage import gate_dead_after
from sessions_store.models import GateProcess, LiveConnection
from sessions_store.presence import DatabasePresence

pytestmark = pytest.mark.django_db(transaction=True)


def session(sid: str, gate: str) -> Session:
    return Session(
        ip="127.0.0.1", network="tcp", session_id=sid, server_id=gate, channel=f"c!{sid}"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ends the heartbeat reports, instead of telling modules."""
    told: list[str] = []
    monkeypatch.setattr(keeper, "tell_closed", lambda s: told.append(s.session_id))
    return told


async def stale(gate_id: str) -> None:
    old = timezone.now() - datetime.timedelta(seconds=10 * gate_dead_after())
    await GateProcess.objects.filter(gate_id=gate_id).aupdate(last_seen=old)


async def test_after_an_outage_the_first_gate_back_spares_the_others(ends):
    presence = DatabasePresence()
    for gate in ("Gate@a", "Gate@b"):
        await presence.connected(session(f"s-{gate}", gate))
        await stale(gate)  # the database was down: nobody could beat
    clock = Clock()
    gate_a = Heartbeat(presence, "Gate@a", clock)
    gate_a.reconciled_at = clock.now  # this test is about the reaper
    await gate_a.beat()
    assert await LiveConnection.objects.acount() == 2
    assert ends == []
    await presence.gate_alive("Gate@b")  # b beats again within the grace
    for _ in range(2):
        clock.now += gate_dead_after() / 2
        await gate_a.beat()
    assert await LiveConnection.objects.acount() == 2
    assert ends == []


async def test_a_gate_that_stays_silent_is_reaped_once_the_grace_is_over(ends):
    presence = DatabasePresence()
    await presence.connected(session("s-b", "Gate@b"))
    await stale("Gate@b")
    clock = Clock()
    gate_a = Heartbeat(presence, "Gate@a", clock)
    gate_a.reconciled_at = clock.now
    await gate_a.beat()
    assert ends == []
    for _ in range(2):
        clock.now += gate_dead_after() / 2
        await gate_a.beat()
    assert ends == ["s-b"]
    assert not await GateProcess.objects.filter(gate_id="Gate@b").aexists()


async def test_a_failed_beat_restarts_the_grace(ends, monkeypatch):
    presence = DatabasePresence()
    await presence.connected(session("s-b", "Gate@b"))
    await stale("Gate@b")
    clock = Clock()
    gate_a = Heartbeat(presence, "Gate@a", clock)
    gate_a.reconciled_at = clock.now
    await gate_a.beat()
    clock.now += gate_dead_after() / 2

    async def down(gate_id: str) -> None:
        from django.db import OperationalError

        raise OperationalError("connection refused")

    monkeypatch.setattr(presence, "gate_alive", down)
    await gate_a.beat()
    monkeypatch.undo()
    monkeypatch.setattr(keeper, "tell_closed", lambda s: ends.append(s.session_id))
    clock.now += gate_dead_after() / 2
    await gate_a.beat()
    assert ends == []  # a grace of its own beats in a row, from the failed one on


async def test_a_beat_that_hung_restarts_the_grace(ends):
    """The database paused: the beat did not fail, it took as long as the pause. The others'
    beats hung as long: they are not dead."""
    presence = DatabasePresence()
    await presence.connected(session("s-b", "Gate@b"))
    await stale("Gate@b")
    clock = Clock()
    gate_a = Heartbeat(presence, "Gate@a", clock)
    gate_a.reconciled_at = clock.now
    await gate_a.beat()
    clock.now += 2 * gate_dead_after()  # the next beat returns that late
    await gate_a.beat()
    await gate_a.beat()
    assert ends == []
    for _ in range(2):  # b stays silent while a beats in a row: now b is dead
        clock.now += gate_dead_after() / 2
        await gate_a.beat()
    assert ends == ["s-b"]


async def test_the_reconciler_ends_lost_records_and_restores_missing_ones(ends, monkeypatch):
    async def quiet(session: Session, told: Any = None) -> None:
        return None

    monkeypatch.setattr(mqant_events, "session_opened", quiet)
    presence = DatabasePresence()
    live = SessionKeeper(session("s-live", "Gate@a"))
    live.opened()  # recorded by its own job
    unrecorded = SessionKeeper(session("s-reaped", "Gate@a"))
    unrecorded.opened()
    await presence.connected(session("s-lost", "Gate@a"))  # its close was lost
    await presence.connected(session("s-other", "Gate@b"))
    async with asyncio.timeout(5):
        while inorder.pending("s-live") or inorder.pending("s-reaped"):
            await asyncio.sleep(0.01)
    await presence.disconnected("s-reaped")  # as a reaper that took Gate@a for dead did
    try:
        gate_a = Heartbeat(presence, "Gate@a", Clock())
        await gate_a.beat()
        async with asyncio.timeout(5):
            while inorder.pending("s-reaped"):
                await asyncio.sleep(0.01)
        rows = {s.session_id async for s in LiveConnection.objects.all()}
        assert rows == {"s-live", "s-reaped", "s-other"}
        assert ends == ["s-lost"]
        assert {s.session_id for s in await presence.sessions_of_gate("Gate@a")} == {
            "s-live",
            "s-reaped",
        }
    finally:
        keeper._open.pop("s-live", None)
        keeper._open.pop("s-reaped", None)


def test_a_steady_beat_costs_two_queries(ends: list[str]) -> None:
    """The price of a 1 s heartbeat: each gate, each second (printed; bounded so that a
    change that makes it dearer is seen)."""
    from asgiref.sync import async_to_sync
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    clock = Clock()
    gate_a = Heartbeat(DatabasePresence(), "Gate@a", clock)
    async_to_sync(gate_a.beat)()  # the row is made, the records reconciled
    clock.now += gate_dead_after()
    with CaptureQueriesContext(connection) as queries:
        async_to_sync(gate_a.beat)()
    print(f"\na steady heartbeat: {len(queries)} queries: {[q['sql'][:40] for q in queries]}")
    assert len(queries) <= 2
