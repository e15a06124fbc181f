"""The session keeper through outages: every job tried until it succeeds, in order per
session, superseded ones coalesced, each end told once."""

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import pytest
from django.db import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from gate import inorder, keeper
from gate.keeper import SessionKeeper
from mqant import dependencies
from mqant import events as mqant_events
from mqant.session import Session


class FlakyPresence:
    """Stands in for a project's Presence: the first ``failures`` calls fail as a database
    that is down does; every call is recorded."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[tuple[str, Any]] = []
        self.rows: dict[str, Session] = {}

    def _maybe_fail(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise OperationalError("connection refused")

    async def connected(self, session: Session) -> None:
        self._maybe_fail()
        self.calls.append(("connected", dict(session.settings)))
        self.rows[session.session_id] = session

    async def disconnected(self, session_id: str) -> bool:
        self._maybe_fail()
        self.calls.append(("disconnected", session_id))
        return self.rows.pop(session_id, None) is not None

    async def seen(self, session_ids: Iterable[str]) -> None:
        self._maybe_fail()
        self.calls.append(("seen", list(session_ids)))


class Events:
    """The modules' connection events; the first ``failures`` sends fail as Redis down."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.told: list[tuple[str, str]] = []

    def tell(self, kind: str) -> Any:
        async def send(session: Session, told: set[str] | None = None) -> None:
            if self.failures > 0:
                self.failures -= 1
                raise RedisConnectionError("Connection refused")
            self.told.append((kind, session.session_id))

        return send


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inorder, "FIRST_RETRY", 0.01)
    monkeypatch.setattr(inorder, "LAST_RETRY", 0.02)
    for dependency in (dependencies.DATABASE, dependencies.REDIS):
        dependency.down_since, dependency.failures = None, 0


def keeper_of(presence: FlakyPresence, events: Events, monkeypatch: Any) -> SessionKeeper:
    monkeypatch.setattr(mqant_events, "session_opened", events.tell("opened"))
    monkeypatch.setattr(mqant_events, "session_closed", events.tell("closed"))
    session = Session(
        ip="127.0.0.1", network="tcp", session_id="s1", server_id="Gate@x", channel="c!s1"
    )
    kept = SessionKeeper(session)
    kept.presence, kept.storage = presence, None  # type: ignore[assignment]
    return kept


async def settled(kept: SessionKeeper, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while inorder.pending(kept.session.session_id):
            await asyncio.sleep(0.01)


async def test_a_close_during_an_outage_is_told_once_it_is_back(monkeypatch, caplog):
    presence, events = FlakyPresence(), Events()
    kept = keeper_of(presence, events, monkeypatch)
    kept.opened()
    await settled(kept)
    presence.failures, events.failures = 4, 3  # the database, then Redis, are down
    with caplog.at_level(logging.WARNING):
        kept.closed()
        await settled(kept)
    assert events.told == [("opened", "s1"), ("closed", "s1")]
    assert presence.calls == [("connected", {}), ("disconnected", "s1")]
    assert presence.rows == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4, warnings  # each outage: its start and its end, no traceback
    assert not any(r.exc_info for r in caplog.records)


async def test_changes_during_an_outage_hold_one_job_and_the_newest_wins(monkeypatch):
    presence, events = FlakyPresence(failures=10_000), Events()
    kept = keeper_of(presence, events, monkeypatch)
    kept.opened()
    for n in range(200):
        kept.session.settings["n"] = str(n)
        kept.changed()
        kept.active(1e9 + n * 1e6)  # a presence heartbeat each time
    assert len(kept._work) <= 3  # the record, the opened event, one heartbeat
    presence.failures = 0
    kept.closed()
    await settled(kept)
    kinds = [kind for kind, _ in presence.calls]
    assert kinds == ["connected", "seen", "disconnected"]
    assert presence.calls[0] == ("connected", {"n": "199"})
    assert events.told == [("opened", "s1"), ("closed", "s1")]


async def test_a_bind_waits_for_the_first_try_only(monkeypatch):
    presence, events = FlakyPresence(failures=10_000), Events()
    kept = keeper_of(presence, events, monkeypatch)
    future = kept.changed()
    assert future is not None
    async with asyncio.timeout(2):
        await future  # tried, failed: the caller goes on; the job goes on being tried
    assert inorder.pending("s1")
    presence.failures = 0
    await settled(kept)
    assert presence.calls == [("connected", {})]


async def test_a_bug_is_logged_once_and_the_job_dropped_after_its_retries(monkeypatch, caplog):
    presence, events = FlakyPresence(), Events()
    kept = keeper_of(presence, events, monkeypatch)
    tries = []

    async def broken() -> None:
        tries.append(1)
        raise ValueError("a bug")

    kept._work.add(broken, "s1")
    kept.closed()
    with caplog.at_level(logging.INFO):
        await settled(kept)
    assert len(tries) == inorder.BUG_RETRIES + 1
    assert sum(1 for r in caplog.records if r.exc_info) == 1
    assert any(r.levelno == logging.ERROR and "dropped" in r.getMessage() for r in caplog.records)
    assert presence.calls == [("disconnected", "s1")]  # the jobs behind it still run


async def test_a_logout_deletes_after_the_writes_before_it_and_before_those_after(monkeypatch):
    done: list[tuple[str, str]] = []

    class Storage:
        failures = 3

        async def storage(self, session: Session) -> None:
            if Storage.failures:
                Storage.failures -= 1
                raise OperationalError("down")
            done.append(("storage", session.settings.get("v", "")))

        async def delete(self, session: Session) -> None:
            done.append(("delete", ""))

    presence, events = FlakyPresence(), Events()
    kept = keeper_of(presence, events, monkeypatch)
    kept.storage = Storage()  # type: ignore[assignment]
    kept.session.user_id = "ann"
    kept.session.settings["v"] = "1"
    kept.changed()
    await kept.forget()
    kept.session.settings["v"] = "2"
    kept.changed()
    await settled(kept)
    assert done == [("storage", "1"), ("delete", ""), ("storage", "2")]


async def test_a_dependency_seen_back_ends_the_backoff(monkeypatch):
    monkeypatch.setattr(inorder, "FIRST_RETRY", 30.0)  # a backoff the test would not outlive
    presence, events = FlakyPresence(failures=1), Events()
    kept = keeper_of(presence, events, monkeypatch)
    kept.opened()
    async with asyncio.timeout(2):
        while not dependencies.DATABASE.down:
            await asyncio.sleep(0.01)
    inorder.recovered(dependencies.DATABASE)  # as the gate's heartbeat does once it beats again
    await settled(kept, within=2)
    assert presence.calls == [("connected", {})]
    assert events.told == [("opened", "s1")]


async def test_a_logout_behind_writes_waiting_for_an_outage_returns_after_a_bound(monkeypatch):
    monkeypatch.setattr(keeper, "WRITE_WAIT", 0.1)

    class Down:
        async def storage(self, session: Session) -> None:
            raise OperationalError("down")

        async def delete(self, session: Session) -> None:
            raise OperationalError("down")

    presence, events = FlakyPresence(), Events()
    kept = keeper_of(presence, events, monkeypatch)
    kept.storage = Down()  # type: ignore[assignment]
    kept.session.user_id = "ann"
    kept.changed()
    async with asyncio.timeout(2):
        await kept.forget()  # the connection's events go on meanwhile
    assert inorder.pending("s1")  # the writes are still tried
    task = kept._work._entries._task
    assert task is not None
    task.cancel()  # as a stopping loop does: the rest is given up
    await asyncio.gather(task, return_exceptions=True)
    assert not inorder.pending("s1")
