"""The hash pool: bounded, and fair between the addresses that use it."""

import threading

import pytest

from mqant.accounts.hashing import Busy, HashPool


def test_addresses_are_served_in_turn():
    """One thread; address a queues three hashes, then b one: b's runs after a's first,
    not after all of a's."""
    pool = HashPool(threads=1, queue=10, per_key=5)
    gate = threading.Event()
    order: list[str] = []

    def job(name: str) -> str:
        gate.wait(5)
        order.append(name)
        return name

    futures = [
        pool.submit("a", job, "a1"),
        pool.submit("a", job, "a2"),
        pool.submit("a", job, "a3"),
    ]
    futures.append(pool.submit("b", job, "b1"))
    gate.set()
    assert [f.result(5) for f in futures] == ["a1", "a2", "a3", "b1"]
    assert order.index("b1") <= 2  # behind a1 (maybe running already) and at most a2


def test_a_full_address_queue_or_pool_refuses_at_once():
    pool = HashPool(threads=1, queue=4, per_key=2)
    gate = threading.Event()
    held = [pool.submit("a", gate.wait, 5), pool.submit("a", gate.wait, 5)]
    with pytest.raises(Busy):
        pool.submit("a", gate.wait, 5)  # a's own queue is full
    held += [pool.submit("b", gate.wait, 5), pool.submit("c", gate.wait, 5)]
    with pytest.raises(Busy):
        pool.submit("d", gate.wait, 5)  # the pool is full
    gate.set()
    assert all(f.result(5) for f in held)
    pool.submit("d", lambda: None).result(5)  # room again


def test_a_job_whose_caller_gave_up_is_skipped():
    pool = HashPool(threads=1, queue=4, per_key=4)
    gate = threading.Event()
    ran: list[str] = []
    first = pool.submit("a", gate.wait, 5)
    skipped = pool.submit("a", ran.append, "skipped")
    assert skipped.cancel()
    gate.set()
    first.result(5)
    pool.submit("a", ran.append, "next").result(5)
    assert ran == ["next"]


def test_errors_reach_the_caller():
    pool = HashPool(threads=1, queue=4, per_key=4)
    with pytest.raises(ZeroDivisionError):
        pool.submit("a", lambda: 1 / 0).result(5)
