"""ORM work from async code while the database is down: answered ``database unavailable``
at once while it is known down, and the calls waiting on a query that hangs are answered when
the outage is seen, not at their deadline."""

import asyncio
import threading

import pytest
from django.db import OperationalError

from mqant import ServiceUnavailable, db
from mqant.dependencies import DATABASE

# Channels closes stale connections around each call: database access must be allowed.
pytestmark = pytest.mark.django_db


@pytest.fixture
def probed():
    DATABASE.probe = True
    yield
    DATABASE.forget()


async def test_a_call_waiting_on_a_hung_query_is_answered_when_the_outage_is_seen(probed):
    release = threading.Event()

    def hung_query() -> str:
        release.wait(10)
        return "late"

    waiting = asyncio.ensure_future(db(hung_query)())
    try:
        await asyncio.sleep(0.1)
        assert not waiting.done()
        DATABASE.failed(TimeoutError("no answer within 2 s"))  # what the probe says
        with pytest.raises(ServiceUnavailable, match=r"^database unavailable$"):
            await asyncio.wait_for(waiting, 2)
        with pytest.raises(ServiceUnavailable):  # and at once while it is down
            await db(lambda: "never run")()
    finally:
        release.set()
    DATABASE.succeeded()
    assert await db(lambda: "fine")() == "fine"


async def test_a_refusing_database_is_a_service_unavailable():
    def refused() -> None:
        raise OperationalError("connection refused")

    try:
        with pytest.raises(ServiceUnavailable, match=r"^database unavailable$"):
            await db(refused)()
        assert DATABASE.down
        assert not DATABASE.refusing  # nothing probes it here: the next call tries again
        assert await db(lambda: 1)() == 1
    finally:
        DATABASE.forget()
