"""The log filter that bounds what clients can make the process log."""

import logging

import pytest

from mqant.logs import RateLimitFilter


def record(msg: str, *args: object, name: str = "gate.connection", exc: bool = False):
    exc_info = None
    if exc:
        try:
            raise ValueError("inside")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, exc_info)


@pytest.fixture
def clock():
    return [1000.0]


def limiter(clock: list[float], **options: object) -> RateLimitFilter:
    return RateLimitFilter(clock=lambda: clock[0], **options)  # type: ignore[arg-type]


def test_one_kind_passes_a_burst_then_its_rate_and_says_what_it_held(clock):
    f = limiter(clock, rate=1.0, burst=20)
    passed = [f.filter(record("%r: closing, %s", n, "protocol error")) for n in range(100)]
    assert passed.count(True) == 20
    other = record("another kind %s", 1)
    assert f.filter(other)  # other kinds are counted apart
    clock[0] += 1.0
    late = record("%r: closing, %s", 100, "protocol error")
    assert f.filter(late)
    assert late.getMessage().endswith("[80 more like this held back]")


def test_long_messages_are_cut(clock):
    f = limiter(clock, max_chars=100)
    r = record("routing %r failed", "x" * 70000)
    full = r.getMessage()
    assert f.filter(r)
    assert len(r.getMessage()) < 150
    assert r.getMessage().endswith(f"({len(full)} characters)")


def test_kinds_are_bounded_even_when_messages_carry_client_text(clock):
    f = limiter(clock, burst=1, max_kinds=50)
    passed = sum(f.filter(record(f"client said {n}")) for n in range(10000))
    assert len(f._kinds) <= 50 + 1  # and one kind for all the others
    assert passed < 200


def test_security_records_lose_their_traceback(clock):
    f = limiter(clock)
    bad_host = record("Invalid HTTP_HOST header", name="django.security.DisallowedHost", exc=True)
    assert f.filter(bad_host)
    assert bad_host.exc_info is None
    ours = record("handler failed", name="mqant.server", exc=True)
    assert f.filter(ours)
    assert ours.exc_info is not None
