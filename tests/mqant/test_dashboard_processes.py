"""The dashboard's figures across real processes over Redis: this process as gate1 and a
``runmodules`` process each answer with their own snapshot; a module process that hangs
(SIGSTOP) is named as silent, and the answer still comes within the bound."""

import asyncio
import signal
import time

import pytest

from mqant import dashboard

# The runmodules fixtures: this process as gate1 over the test's Redis, modules1 beside it.
from tests.mqant.test_runmodules import deployment, gate, layer, modules, until_found  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("layer", ["pubsub"], indirect=True)]


@pytest.mark.usefixtures("gate")
async def test_each_process_answers_for_itself_and_a_hung_one_is_named_in_time(request):
    process = request.getfixturevalue("modules")()
    await until_found("Sleeper")
    result = await dashboard.gather()
    rows = {row["process"]: row for row in result["processes"]}
    assert set(rows) == {"gate1", "modules1"}
    assert rows["modules1"]["answered"] is True, rows["modules1"]
    assert rows["modules1"]["snapshot"]["process"] == "modules1"  # its own, not ours
    assert rows["modules1"]["key"].startswith("Sleeper@")
    assert result["processes"][0]["process"] == "gate1"  # the serving process first

    process.signal(signal.SIGSTOP)  # alive for the registry a while more, but silent
    try:
        started = time.monotonic()
        result = await dashboard.gather(timeout=0.5)
        elapsed = time.monotonic() - started
    finally:
        process.signal(signal.SIGCONT)
    rows = {row["process"]: row for row in result["processes"]}
    assert rows["gate1"]["answered"] is True
    assert rows["modules1"]["answered"] is False
    assert rows["modules1"]["error"] == "deadline exceeded"
    assert elapsed < 1.5
    await asyncio.sleep(0)
    assert "Traceback" not in process.output(), process.output()
