"""``mqant.timeouts.deadline`` behaves as ``asyncio.timeout``: every case runs on both."""

import asyncio
import time

import pytest

from mqant import timeouts
from mqant.timeouts import deadline


@pytest.fixture(params=[asyncio.timeout, deadline], ids=["asyncio.timeout", "deadline"])
def timeout(request):
    return request.param


async def test_an_overdue_block_raises_timeout_error_and_leaves_the_task_uncancelled(timeout):
    with pytest.raises(TimeoutError):
        async with timeout(0.01):
            await asyncio.sleep(1)
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(0)  # still runs: no cancellation left pending


async def test_a_block_done_in_time_is_not_cancelled_later(timeout):
    async with timeout(0.02):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)  # past the deadline: the timer was cancelled


async def test_a_deadline_already_past_expires_at_the_first_await(timeout):
    with pytest.raises(TimeoutError):
        async with timeout(-1):
            await asyncio.sleep(0.5)


async def test_a_cancellation_from_outside_stays_a_cancellation(timeout):
    async def guarded():
        async with timeout(5):
            await asyncio.sleep(1)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_from_outside_wins_over_an_expiry_at_the_same_time(timeout):
    async def guarded():
        async with timeout(0.01):
            await asyncio.sleep(1)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0)  # the task enters the block
    time.sleep(0.02)  # the loop is held past the deadline: both land in its next turn
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_nested_the_inner_expiry_is_the_inner_blocks(timeout):
    async with timeout(5):
        with pytest.raises(TimeoutError):
            async with timeout(0.01):
                await asyncio.sleep(1)
        await asyncio.sleep(0.01)  # the outer block goes on


async def test_a_deadline_never_fires_early_and_at_most_a_slot_late():
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with deadline(0.05):
            await asyncio.sleep(1)
    late = loop.time() - started - 0.05
    assert 0 <= late < timeouts.RESOLUTION + 0.02  # plus the loop's own lateness


async def test_deadlines_of_one_slot_share_a_timer_that_leaves_nothing_behind():
    loop = asyncio.get_running_loop()

    async def guarded():
        async with deadline(0.01):
            await asyncio.sleep(1)

    tasks = [asyncio.create_task(guarded()) for _ in range(50)]
    await asyncio.sleep(0)
    assert len(timeouts._wheel(loop).slots) <= 2  # one slot, or two across its edge
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, TimeoutError) for result in results)
    assert not timeouts._wheel(loop).slots
