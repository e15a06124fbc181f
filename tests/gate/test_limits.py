"""The per-address and per-connection bookkeeping of gate.limits, on a clock the tests move."""

import asyncio
import logging

import pytest

from gate.limits import (
    AddressLimits,
    ConnectionSlot,
    RefusalLog,
    TokenBucket,
    address_key,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# Buckets and budgets


def test_token_bucket_admits_a_burst_then_the_rate(clock):
    bucket = TokenBucket(2.0, 3, clock=clock)
    assert [bucket.admit() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.5)
    assert bucket.admit()
    assert not bucket.admit()


def test_byte_budget_asks_to_wait_out_its_debt(clock):
    budget = TokenBucket(1000, 4000, clock=clock)
    assert budget.spend(4000) == 0.0
    assert budget.spend(500) == pytest.approx(0.5)  # 500 bytes of debt at 1000 B/s
    clock.advance(0.5)
    assert budget.spend(0) == 0.0
    clock.advance(100)
    assert budget.spend(4000) == 0.0, "refilled to the burst, no more"
    assert budget.spend(1) > 0


def test_a_byte_budget_of_rate_zero_never_waits(clock):
    assert TokenBucket(0, 1, clock=clock).spend(10**9) == 0.0


# Addresses


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("127.0.0.5", "127.0.0.5"),
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("not an address", "not an address"),
    ],
)
def test_address_key(ip, key):
    assert address_key(ip) == key


def admit(limits: AddressLimits, key: str, **overrides: float) -> str | None:
    settings = {"max_connections": 3, "rate": 1.0, "burst": 5, **overrides}
    return limits.admit(
        key,
        max_connections=int(settings["max_connections"]),
        rate=float(settings["rate"]),
        burst=int(settings["burst"]),
    )


def test_connections_per_address_are_capped_and_released(clock):
    limits = AddressLimits(clock=clock)
    assert [admit(limits, "a") for _ in range(4)] == [None, None, None, (
        "MAX_CONNECTIONS_PER_ADDRESS reached"
    )]  # fmt: skip
    assert admit(limits, "b") is None, "another address has its own count"
    limits.release("a")
    assert admit(limits, "a") is None
    assert limits.connections("a") == 3


def test_new_connections_per_address_follow_a_token_bucket(clock):
    limits = AddressLimits(clock=clock)
    for _ in range(5):
        assert admit(limits, "a", max_connections=0) is None
        limits.release("a")
    assert admit(limits, "a", max_connections=0) == "CONNECT_RATE_PER_ADDRESS exceeded"
    clock.advance(1.0)
    assert admit(limits, "a", max_connections=0) is None


def test_a_refused_connection_costs_no_token(clock):
    limits = AddressLimits(clock=clock)
    for _ in range(3):
        admit(limits, "a")
    for _ in range(100):
        assert admit(limits, "a") == "MAX_CONNECTIONS_PER_ADDRESS reached"
    limits.release("a")
    assert admit(limits, "a") is None, "two tokens were left, refusals took none"


def test_an_address_is_forgotten_once_idle_and_its_bucket_full(clock):
    limits = AddressLimits(clock=clock)
    admit(limits, "a")
    limits.release("a")
    assert len(limits) == 1, "its bucket is not full yet"
    clock.advance(5.0)  # burst / rate
    admit(limits, "b")
    assert len(limits) == 1
    assert limits.connections("a") == 0


def test_an_address_holding_a_connection_is_never_forgotten(clock):
    limits = AddressLimits(clock=clock)
    admit(limits, "a")
    clock.advance(3600)
    admit(limits, "b")
    assert limits.connections("a") == 1
    assert len(limits) == 2


def test_memory_stays_bounded_under_churn_from_many_addresses(clock):
    """Each address connects and leaves at once, 1000 new ones a second for a minute: only
    those of the last burst / rate seconds are remembered."""
    limits = AddressLimits(clock=clock)
    for n in range(60_000):
        key = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        assert admit(limits, key) is None
        limits.release(key)
        clock.advance(0.001)
    assert len(limits) <= 5 * 1000 + 1


def test_idle_addresses_are_capped_even_before_their_buckets_refill(clock):
    limits = AddressLimits(clock=clock, max_idle=100)
    for n in range(1000):
        admit(limits, f"a{n}", rate=0.001)
        limits.release(f"a{n}")
    assert len(limits) <= 101


def test_with_no_rate_an_idle_address_is_forgotten_at_once(clock):
    limits = AddressLimits(clock=clock)
    admit(limits, "a", rate=0)
    limits.release("a")
    assert len(limits) == 0


# The refusal log


def test_refusals_make_a_bounded_number_of_log_lines(clock, caplog):
    log = RefusalLog(logging.getLogger("test.refusals"), interval=60, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.refusals"):
        for _minute in range(3):
            for n in range(10_000):
                log.note("MQTT connection refused: test", f"10.0.{n % 200}.{n // 200}")
                clock.advance(0.001)
            clock.advance(60)
        log.note("MQTT connection refused: test", "10.9.9.9")  # writes what the last held
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) <= 5, lines
    assert lines[0] == "MQTT connection refused: test, from 10.0.0.0"
    assert "more in the last 60 s" in lines[1]
    assert "most from" in lines[1]


async def test_a_held_back_summary_is_written_when_its_interval_ends(caplog):
    log = RefusalLog(logging.getLogger("test.refusals"), interval=0.05)
    with caplog.at_level(logging.WARNING, logger="test.refusals"):
        for _ in range(5):
            log.note("socket refused: test", "10.0.0.1")
        assert len(caplog.records) == 1
        await asyncio.sleep(0.15)
    assert len(caplog.records) == 2
    assert caplog.records[1].getMessage().startswith("socket refused: test: 4 more in the last")


# Connection slots, with the settings


def test_slots_per_address_with_the_settings(settings):
    settings.MQANT = {
        **settings.MQANT,
        "MAX_CONNECTIONS_PER_ADDRESS": 2,
        "CONNECT_RATE_PER_ADDRESS": 0,
    }
    first, second = ConnectionSlot.take("192.0.2.7"), ConnectionSlot.take("192.0.2.7")
    assert first is not None
    assert second is not None
    try:
        assert ConnectionSlot.take("192.0.2.7") is None
        other = ConnectionSlot.take("192.0.2.8")
        assert other is not None
        other.release()
        unknown = [ConnectionSlot.take("") for _ in range(3)]  # no address, no per-address limit
        assert all(unknown)
        for slot in unknown:
            slot.release()  # type: ignore[union-attr]
        first.release()
        first.release()  # once only
        third = ConnectionSlot.take("192.0.2.7")
        assert third is not None
        third.release()
    finally:
        second.release()
    assert ConnectionSlot.addresses.connections("192.0.2.7") == 0


def test_a_full_process_charges_no_address_budget(settings):
    settings.MQANT = {**settings.MQANT, "MAX_CONNECTIONS": ConnectionSlot.in_use}
    assert all(ConnectionSlot.take("192.0.2.9") is None for _ in range(10))
    settings.MQANT = {
        **settings.MQANT,
        "MAX_CONNECTIONS": ConnectionSlot.in_use + 10,
        "CONNECT_RATE_PER_ADDRESS": 0.001,
        "CONNECT_BURST_PER_ADDRESS": 3,
    }
    slots = [ConnectionSlot.take("192.0.2.9") for _ in range(4)]
    try:
        assert [slot is not None for slot in slots] == [True, True, True, False]
    finally:
        for slot in slots:
            if slot is not None:
                slot.release()


async def test_a_connection_past_its_message_rate_is_closed_once_though_tokens_come_back():
    """A burst read in two parts: tokens refill between the reads; the connection being
    closed for its rate is not closed (and logged) a second time, and its calls are dropped."""
    from gate.calls import Calls
    from mqant import routing

    clock = FakeClock()
    calls: Calls[str] = Calls()
    calls.bucket = TokenBucket(10, 2, clock)
    ran: list[str] = []

    async def run() -> None:
        ran.append("call")

    refusals = [calls.start("M/HD_A/1", run) for _ in range(6)]
    assert [r is None for r in refusals] == [True, True, False, False, False, False]
    assert [(r.error, r.close) for r in refusals[2:] if r] == [
        (routing.RATE_EXCEEDED, ""),
        (routing.RATE_EXCEEDED, ""),
        (routing.RATE_EXCEEDED, "it kept sending past its message rate"),
        ("", ""),
    ]
    clock.advance(1.0)  # ten tokens back
    later = [calls.start("M/HD_A/1", run) for _ in range(20)]
    assert all(r is not None and (r.error, r.close) == ("", "") for r in later)
    await calls.idle()
    assert ran == ["call", "call"]  # the two calls within the burst, and no other
