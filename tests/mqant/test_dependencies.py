"""The state of Redis and the database as a process sees it: one WARNING when an outage
starts, one when it ends, the failures between counted; callers refuse at once only while
something probes the dependency; request tracebacks of an outage are not logged one by one."""

import logging

import pytest
from django.db import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from mqant import ServiceUnavailable
from mqant.dependencies import DATABASE, REDIS, Dependency, describe, of_error
from mqant.logs import RateLimitFilter


@pytest.fixture
def dependency():
    return Dependency("Thing")


def test_an_outage_is_logged_once_at_its_start_and_once_at_its_end(dependency, caplog):
    caplog.set_level(logging.WARNING, logger="mqant.dependencies")
    for _ in range(100):
        dependency.failed(TimeoutError())
    assert dependency.down
    dependency.succeeded()
    dependency.succeeded()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("Thing unavailable (TimeoutError); calls that need it")
    assert lines[1].startswith("Thing is back after ")
    assert lines[1].endswith("(100 operations failed meanwhile)")
    assert not dependency.down


def test_watchers_hear_of_each_outage_once(dependency):
    heard = []
    dependency.when_down(lambda: heard.append(1))
    dependency.failed(OSError("x"))
    dependency.failed(OSError("x"))
    dependency.succeeded()
    dependency.failed(OSError("x"))
    assert heard == [1, 1]


def test_callers_refuse_at_once_only_while_a_probe_watches(dependency):
    dependency.failed(OSError("x"))
    assert not dependency.refusing  # nothing would ever mark it back
    dependency.probe = True
    assert dependency.refusing
    error = dependency.error()
    assert isinstance(error, ServiceUnavailable)
    assert str(error) == "Thing unavailable"
    dependency.forget()
    assert not dependency.down
    assert not dependency.probe


def test_errors_are_told_apart():
    assert of_error(OperationalError("gone")) is DATABASE
    assert of_error(RedisConnectionError("refused")) is REDIS
    assert of_error(ResponseError("OOM command not allowed")) is None  # a command's error
    assert of_error(ValueError("a bug")) is None
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(OSError("refused")) == "OSError: refused"


def test_request_tracebacks_of_an_outage_are_dropped_by_the_log_filter():
    log_filter = RateLimitFilter()

    def record(name: str, exc: BaseException) -> logging.LogRecord:
        return logging.LogRecord(
            name, logging.ERROR, __file__, 1, "Internal Server Error: /x", None,
            (type(exc), exc, None),
        )  # fmt: skip

    try:
        assert not log_filter.filter(record("django.request", OperationalError("down")))
        assert log_filter.filter(record("django.request", ValueError("a bug")))
        assert log_filter.filter(record("myapp", OperationalError("down")))  # not a request's
    finally:
        DATABASE.forget()
