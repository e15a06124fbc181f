"""The fault suite's own bookkeeping, without any server: how errors are sorted, how a
request's wait is counted, and the table printed at the end."""

import pytest

from tests.faults import figures
from tests.faults.load import Request


def test_error_kinds_group_the_texts_clients_get() -> None:
    assert figures.error_kind("Service(type:Chat) not found") == "not found"
    assert figures.error_kind("Redis unavailable") == "Redis unavailable"
    assert figures.error_kind("Gate@0afb9c89365d2943 stopped") == "node stopped"
    assert figures.error_kind("deadline exceeded") == "deadline exceeded"
    assert figures.error_kind("x" * 80) == "x" * 37 + "..."


def test_a_request_never_answered_waited_the_whole_bound() -> None:
    assert Request("Chat/HD_Say/1", {}, sent=10.0).latency(5.0) == 5.0
    assert Request("Chat/HD_Say/2", {}, sent=10.0, answered=11.5).latency(5.0) == 1.5
    assert Request("Chat/HD_Say/3", {}, sent=10.0, answered=19.0).latency(5.0) == 5.0


def test_the_summary_names_each_fault_and_what_it_broke(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = figures.Outcome("redis paused", recovery=0.64, longest=2.74, requests=127)
    outcome.errors["Redis unavailable"] = 97
    outcome.log_lines = {"gate1": 4}
    outcome.check(False, "user1: Chat/OnLeave got [], expected ['user5']")
    outcome.check(True, "never shown")
    monkeypatch.setattr(figures, "OUTCOMES", [outcome])
    lines = figures.summary()
    assert figures.COMMAND in lines[1]
    row = next(line for line in lines if line.startswith("redis paused"))
    assert row.split()[2:4] == ["0.64", "2.74"]
    assert "Redis unavailable: 97" in row
    assert "gate1 4" in row
    assert [line.strip() for line in lines if "FAILED" in line] == [
        "FAILED: user1: Chat/OnLeave got [], expected ['user5']"
    ]


def test_no_table_without_a_fault_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(figures, "OUTCOMES", [])
    assert figures.summary() == []
