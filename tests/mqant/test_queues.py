"""The store of persistent sessions' queued pushes (mqant.queues), in memory and in Redis: the
same behaviour from both, and from Redis what only a shared store does (two gate processes,
a Redis that hangs or refuses)."""

import asyncio
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from mqant import ServiceUnavailable, dependencies, metrics, project, queues
from mqant.queues import (
    MemorySessionQueues,
    Queued,
    SessionBelongsToAnother,
    TooManySessions,
)
from mqant.redis.queues import RedisSessionQueues
from tests.conftest import require_service
from tests.e2e.server import free_port
from tests.faults.services import RedisServer


@pytest.fixture(params=["memory", "redis"])
async def stores(request):
    """Makes stores of one kind; a Redis one on the test's own key prefix (several of them
    share it, as gate processes do). Closed after the test."""
    opened = []
    space = request.getfixturevalue("redis_space") if request.param == "redis" else None

    def make(**options):
        store: queues.SessionQueues  # mypy checks that both implement it
        if space is None:
            store = MemorySessionQueues(**options)
        else:
            store = RedisSessionQueues(url=space.url, prefix=space.prefix, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
def store(stores):
    return stores()


async def claim(store, client_id="c1", owner="gate-a", *, user_id="", clean=False):
    return await store.claim(client_id, owner, user_id=user_id, clean=clean)


async def topics(store, client_id="c1", after=0, limit=100):
    return [entry.topic for entry in await store.pending(client_id, after, limit)]


async def wait_until_gone(store, client_id, within):
    started = time.monotonic()
    while await store.owner(client_id) is not None:
        assert time.monotonic() - started < within, f"{client_id} still stored after {within} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def dropped(bound):
    return metrics.SESSION_PUSHES_DROPPED.child(bound).value


async def test_pushes_come_back_in_order_with_increasing_seqs(store):
    first = await claim(store)
    assert first == queues.Claim(present=False, previous_owner="", user_id="", dropped=0)
    seqs = [await store.append("c1", "gate-a", f"t/{n}", bytes([n]), 1) for n in range(5)]
    assert seqs == sorted(set(seqs))
    assert await store.pending("c1", 0, 100) == [
        Queued(seq=seq, topic=f"t/{n}", payload=bytes([n]), qos=1) for n, seq in enumerate(seqs)
    ]
    assert await topics(store, after=seqs[1], limit=2) == ["t/2", "t/3"]
    assert await store.pending("c1", seqs[-1], 100) == []
    assert await store.pending("c1", 0, 0) == []
    assert await store.pending("unknown", 0, 10) == []


async def test_topics_and_payloads_come_back_byte_for_byte(store):
    await claim(store)
    payload = bytes(range(256)) + b"1:2:3:"
    seq = await store.append("c1", "gate-a", "é/:1:/x", payload, 2)
    assert await store.pending("c1", 0, 1) == [Queued(seq, "é/:1:/x", payload, 2)]


async def test_ack_removes_exactly_one(store):
    await claim(store)
    seqs = [await store.append("c1", "gate-a", topic, b"x", 1) for topic in "abc"]
    await store.ack("c1", seqs[1])
    assert await topics(store) == ["a", "c"]
    await store.ack("c1", seqs[1])  # again: nothing more
    await store.ack("c1", seqs[-1] + 10)
    await store.ack("unknown", seqs[0])
    assert await topics(store) == ["a", "c"]


async def test_the_bound_on_messages_drops_the_oldest_and_counts_them(stores):
    store = stores(max_messages=3)
    await claim(store)
    before = dropped("messages")
    for topic in "abcde":
        assert await store.append("c1", "gate-a", topic, b"x", 1) is not None
    assert await topics(store) == ["c", "d", "e"]
    assert dropped("messages") - before == 2
    assert (await claim(store, owner="gate-b")).dropped == 2
    assert (await claim(store, owner="gate-c")).dropped == 0  # reset by the claim before


async def test_the_bound_on_bytes_drops_the_oldest_and_counts_them(stores):
    store = stores(max_bytes=100)
    await claim(store)
    before = dropped("bytes")
    for topic in "abc":  # 40 bytes each: the third passes the bound
        await store.append("c1", "gate-a", topic, bytes(39), 1)
    assert await topics(store) == ["b", "c"]
    assert dropped("bytes") - before == 1
    # An acknowledged push no longer counts: 80 - 40 + 40 bytes fit.
    await store.ack("c1", (await store.pending("c1", 0, 1))[0].seq)
    await store.append("c1", "gate-a", "d", bytes(39), 1)
    assert await topics(store) == ["c", "d"]
    assert dropped("bytes") - before == 1
    # Larger than the bound alone: dropped itself, the others kept.
    seq = await store.append("c1", "gate-a", "big", bytes(98), 1)
    assert seq is not None
    assert await topics(store) == ["c", "d"]
    assert dropped("bytes") - before == 2
    assert (await store.append("c1", "gate-a", "e", b"", 1)) > seq  # its seq is not reused
    assert (await claim(store, owner="gate-b")).dropped == 2


async def test_a_claim_by_another_owner_takes_the_session_over(store):
    await claim(store, owner="gate-a")
    await store.append("c1", "gate-a", "a", b"x", 1)
    taken = await claim(store, owner="gate-b")
    assert (taken.present, taken.previous_owner) == (True, "gate-a")
    assert await store.owner("c1") == "gate-b"
    # The former owner is told at its next call, and changes nothing.
    assert await store.append("c1", "gate-a", "late", b"x", 1) is None
    assert await store.bind_user("c1", "gate-a", "someone") is False
    await store.release("c1", "gate-a", 0)
    await store.discard("c1", "gate-a")
    assert await store.owner("c1") == "gate-b"
    assert await store.append("c1", "gate-b", "b", b"x", 1) is not None
    assert await topics(store) == ["a", "b"]


async def test_a_clean_claim_starts_afresh_and_keeps_counting_seqs(stores):
    store = stores(max_messages=1)
    await claim(store)
    await store.append("c1", "gate-a", "a", b"x", 1)
    last = await store.append("c1", "gate-a", "b", b"x", 1)  # drops "a"
    fresh = await claim(store, owner="gate-b", clean=True)
    assert (fresh.present, fresh.previous_owner, fresh.dropped) == (True, "gate-a", 1)
    assert await store.pending("c1", 0, 10) == []
    seq = await store.append("c1", "gate-b", "c", b"x", 1)
    assert seq > last  # a late ack of the old seqs cannot remove it
    await store.ack("c1", last)
    assert await topics(store) == ["c"]
    assert (await claim(store, owner="gate-c")).dropped == 0


async def test_a_released_session_ends_after_its_expiry(store):
    await claim(store)
    await store.append("c1", "gate-a", "a", b"x", 1)
    await store.release("c1", "gate-a", 0.3)
    assert await store.owner("c1") == "gate-a"  # kept meanwhile
    assert await store.append("c1", "gate-a", "b", b"x", 1) is not None  # queued while away
    waited = await wait_until_gone(store, "c1", within=2)
    assert waited > 0.15
    assert await store.pending("c1", 0, 10) == []
    assert await store.append("c1", "gate-a", "c", b"x", 1) is None
    assert (await claim(store, owner="gate-b")).present is False


async def test_a_claim_cancels_the_expiry_and_release_0_discards_at_once(store):
    await claim(store)
    await store.append("c1", "gate-a", "a", b"x", 1)
    await store.release("c1", "gate-a", 0.2)
    back = await claim(store, owner="gate-b")
    assert back.present
    await asyncio.sleep(0.4)
    assert await store.owner("c1") == "gate-b"
    assert await topics(store) == ["a"]
    await store.append("c1", "gate-b", "b", b"x", 1)  # the queue is not expiring either
    await asyncio.sleep(0.1)
    assert await topics(store) == ["a", "b"]
    await store.release("c1", "gate-b", 0)
    assert await store.owner("c1") is None
    assert await store.pending("c1", 0, 10) == []
    await claim(store, "c2", "gate-b")
    await store.discard("c2", "gate-b")
    assert await store.owner("c2") is None


async def test_a_users_session_is_refused_to_another_user(store):
    await claim(store, user_id="alice")
    await store.release("c1", "gate-a", 30)
    for other in ("bob", ""):  # another user, or a guest
        with pytest.raises(SessionBelongsToAnother, match=r"^The session of client id 'c1'"):
            await claim(store, owner="gate-b", user_id=other)
        with pytest.raises(SessionBelongsToAnother):
            await claim(store, owner="gate-b", user_id=other, clean=True)
    assert await store.owner("c1") == "gate-a"  # unchanged by the refusals
    back = await claim(store, owner="gate-b", user_id="alice")
    assert (back.present, back.user_id, back.previous_owner) == (True, "alice", "gate-a")


async def test_a_guests_session_may_be_claimed_by_anyone_until_it_is_bound(store):
    await claim(store, user_id="")
    taken = await claim(store, owner="gate-b", user_id="bob")
    assert (taken.present, taken.user_id) == (True, "")
    with pytest.raises(SessionBelongsToAnother):  # bob's now
        await claim(store, owner="gate-c", user_id="")
    await claim(store, "c2", "gate-a", user_id="")
    assert await store.bind_user("c2", "gate-a", "carol") is True  # a login
    with pytest.raises(SessionBelongsToAnother):
        await claim(store, "c2", "gate-b", user_id="dave")
    assert (await claim(store, "c2", "gate-b", user_id="carol")).user_id == "carol"


async def test_an_expired_session_of_another_user_may_be_claimed(store):
    await claim(store, user_id="alice")
    await store.release("c1", "gate-a", 0.2)
    await wait_until_gone(store, "c1", within=2)
    fresh = await claim(store, owner="gate-b", user_id="bob")
    assert (fresh.present, fresh.user_id) == (False, "")


async def test_sessions_are_bounded_in_all_and_counted_as_they_end(stores):
    store = stores(max_sessions=2)
    await claim(store, "a")
    await claim(store, "b")
    with pytest.raises(TooManySessions, match=r"^Expected at most 2 persistent sessions"):
        await claim(store, "c")
    assert await store.owner("c") is None
    await claim(store, "a", "gate-b")  # taking one over is no new session
    await store.discard("b", "gate-a")
    await claim(store, "c")
    await store.release("c", "gate-a", 0.2)
    with pytest.raises(TooManySessions):
        await claim(store, "d")
    await wait_until_gone(store, "c", within=2)
    await claim(store, "d")


def test_bounds_come_from_the_settings_and_must_be_positive(settings):
    settings.MQANT = {**settings.MQANT, "SESSION_QUEUE_MAX_MESSAGES": 7}
    assert MemorySessionQueues().bounds == queues.Bounds(7, 1024 * 1024, 10000)
    assert MemorySessionQueues(max_bytes=5).bounds.max_bytes == 5
    settings.MQANT = {**settings.MQANT, "MAX_PERSISTENT_SESSIONS": 0}
    with pytest.raises(ImproperlyConfigured, match="Expected MAX_PERSISTENT_SESSIONS a posit"):
        MemorySessionQueues()
    with pytest.raises(ImproperlyConfigured, match="got True"):
        MemorySessionQueues(max_sessions=2, max_messages=True)


async def test_an_empty_client_id_or_owner_cannot_claim(store):
    with pytest.raises(ValueError, match="Expected a client id, got ''"):
        await claim(store, "")
    with pytest.raises(ValueError, match="Expected an owner token, got ''"):
        await claim(store, "c1", "")


def test_settings_choose_redis_with_a_redis_url(settings):
    assert project.session_queues("") == {
        "BACKEND": "mqant.queues.MemorySessionQueues",
        "CONFIG": {},
    }
    entry = project.session_queues("redis://127.0.0.1:6379/2", prefix="shop")
    assert entry["CONFIG"] == {"url": "redis://127.0.0.1:6379/2", "prefix": "shop"}
    with pytest.raises(ValueError, match="The Redis prefix must use"):
        project.session_queues("redis://127.0.0.1:6379/2", prefix="a b")
    settings.MQANT = {**settings.MQANT, "SESSION_QUEUES": entry}
    found = queues.from_settings()
    assert isinstance(found, RedisSessionQueues)
    assert (found.url, found.prefix, found.timeout) == (*entry["CONFIG"].values(), 2.0)
    settings.MQANT = {**settings.MQANT, "SESSION_QUEUES": project.session_queues(None)}
    assert isinstance(queues.from_settings(), MemorySessionQueues)


async def test_two_gate_processes_share_one_session_through_redis(redis_space):
    here = RedisSessionQueues(url=redis_space.url, prefix=redis_space.prefix)
    there = RedisSessionQueues(url=redis_space.url, prefix=redis_space.prefix)
    try:
        await claim(here, user_id="alice")
        await here.append("c1", "gate-a", "a", b"x", 1)
        await here.release("c1", "gate-a", 60)
        taken = await claim(there, owner="gate-b", user_id="alice")
        assert (taken.present, taken.previous_owner, taken.user_id) == (True, "gate-a", "alice")
        assert await here.append("c1", "gate-a", "late", b"x", 1) is None
        assert await topics(there) == ["a"]
        await there.ack("c1", (await there.pending("c1", 0, 1))[0].seq)
        assert await topics(here) == []
    finally:
        await here.close()
        await there.close()


async def test_a_refusing_redis_is_unavailable_at_once():
    store = RedisSessionQueues(url=f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=r"^Redis unavailable$"):
        await claim(store)
    assert time.monotonic() - started < 1
    assert dependencies.REDIS.down
    await store.close()


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path)
    try:
        server.start()
    except RuntimeError as err:
        require_service("redis-server", str(err))
    yield server
    server.stop()


async def test_a_hung_redis_is_unavailable_within_the_timeout_and_loses_nothing(own_redis):
    store = RedisSessionQueues(url=own_redis.url, timeout=0.5)
    try:
        await claim(store)
        await store.append("c1", "gate-a", "a", b"x", 1)
        await store.append("c1", "gate-a", "b", b"x", 1)
        own_redis.pause()
        try:
            for call in (
                store.append("c1", "gate-a", "hung", b"x", 1),
                store.pending("c1", 0, 10),
                store.ack("c1", 1),
            ):
                started = time.monotonic()
                with pytest.raises(ServiceUnavailable, match=r"^Redis unavailable$"):
                    await call
                assert time.monotonic() - started < 0.9
            assert dependencies.REDIS.down
        finally:
            own_redis.resume()
        # The append reached Redis before it hung, and finds its fence past when it resumes.
        assert await topics(store) == ["a", "b"]
        assert not dependencies.REDIS.down
        assert await store.owner("c1") == "gate-a"
        assert await store.append("c1", "gate-a", "c", b"x", 1) == 3
    finally:
        await store.close()


async def test_a_script_that_reaches_redis_past_its_fence_changes_nothing(redis_space):
    store = RedisSessionQueues(url=redis_space.url, prefix=redis_space.prefix)
    try:
        await claim(store)
        assert store._offset is not None
        store._offset -= 10_000  # as if Redis's clock stepped 10 s ahead
        with pytest.raises(ServiceUnavailable, match=r"^Redis unavailable$"):
            await store.append("c1", "gate-a", "late", b"x", 1)
        assert await topics(store) == []
        # The refusal told Redis's time: the next call is fenced right.
        assert await store.append("c1", "gate-a", "a", b"x", 1) == 1
        assert await topics(store) == ["a"]
    finally:
        await store.close()
