"""The gate's graceful stop (SIGTERM under daphne, lifespan shutdown under uvicorn): it takes
no new socket, connection or call, lets the calls in flight end, then closes every connection
properly — a WebSocket with 1001 "going away", TCP after its last replies — and lets the
modules hear of each session's end, within ``MQANT["SHUTDOWN_TIMEOUT"]``.

A call that arrives meanwhile is answered ``calls.SHUTTING_DOWN`` ("the server is shutting
down"), and so is one still running when its time is up; a CONNECT is refused with CONNACK 3,
"server unavailable". The modules this process hosts stop after it (mqant/app.py).
"""

import asyncio
import logging
from collections.abc import Awaitable, Iterable

from gate import daphne_guard, keeper, listeners, persist
from gate.connection import MQTTConnection, end_all
from mqant import conf

logger = logging.getLogger(__name__)

# Of SHUTDOWN_TIMEOUT, the share (at most these seconds) kept for each step after the calls in
# flight: closing the connections and the writes that follow, then the modules' own stop.
STEP_SHARE = 0.25
STEP_SECONDS = 2.0


class Budget:
    """The deadlines of a stop that takes at most ``seconds``."""

    def __init__(self, seconds: float, now: float) -> None:
        step = min(seconds * STEP_SHARE, STEP_SECONDS)
        self.end = now + seconds
        self.gate = self.end - step  # connections closed, their writes done
        self.calls = self.gate - step  # calls in flight ended or given up


async def stop() -> None:
    """Drain the gate of this process; returns by the budget's gate deadline."""
    loop = asyncio.get_running_loop()
    budget = Budget(float(conf.get("SHUTDOWN_TIMEOUT")), loop.time())
    await stop_accepting()
    connections = list(MQTTConnection.live)
    for connection in connections:
        connection.drain()
    logger.info("stopping: no new call is taken; connections open: %d", len(connections))
    await _wait((c.calls.idle() for c in connections), budget.calls, "the calls in flight")
    await close_all(budget.gate)


async def stop_accepting() -> None:
    """No new socket (daphne's ports, the gate's own listeners) and no new MQTT connection."""
    MQTTConnection.stopping = True
    daphne_guard.stop_listening()
    await listeners.stop()


async def close_all(deadline: float) -> None:
    """End every connection (gives up the calls still running), wait for the ends until
    halfway to ``deadline`` (STEP_SECONDS at most), drop those left, then let the storage and
    presence writes run."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    halfway = min((now + deadline) / 2, now + STEP_SECONDS)
    ending = [asyncio.ensure_future(c.end()) for c in list(MQTTConnection.live)]
    await _wait(ending, halfway, "the connections to close")
    await _until_gone(halfway)
    await end_all()  # those whose transport did not report the close in time
    await persist.end_all()  # the persistent sessions left waiting for their connections
    await keeper.drain(max(deadline - loop.time(), 0.0))


async def _until_gone(deadline: float, poll: float = 0.02) -> None:
    """Wait until no connection is live (a closed WebSocket reports it once the client
    answered the close), for at most until ``deadline``."""
    loop = asyncio.get_running_loop()
    # ASYNC110: a connection reports its end only by leaving ``live`` (connection_lost).
    while MQTTConnection.live and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(min(poll, max(deadline - loop.time(), 0.0)))


async def _wait(waits: Iterable[Awaitable[None]], deadline: float, what: str) -> None:
    tasks = {asyncio.ensure_future(w) for w in waits}
    if not tasks:
        return
    timeout = max(deadline - asyncio.get_running_loop().time(), 0.0)
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    if pending:
        logger.warning("stopping: gave up waiting for %s", what)
    for task in pending:
        task.cancel()
