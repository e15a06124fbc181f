"""This gate process's heartbeat in the Presence, and the reaper of gates that died: their
connections are ended and the modules told, once, when the heartbeat has expired."""

import asyncio
import logging

from gate.node import GATE_ID
from mqant import conf
from mqant import events as mqant_events
from mqant.storage import presence

logger = logging.getLogger(__name__)

_tasks: dict[asyncio.AbstractEventLoop, "asyncio.Task[None]"] = {}


def start_heartbeat() -> None:
    """Start the heartbeat in the running loop, once (a no-op without a Presence)."""
    loop = asyncio.get_running_loop()
    task = _tasks.get(loop)
    if (task is None or task.done()) and presence() is not None:
        for old in [other for other in _tasks if other.is_closed()]:
            del _tasks[old]
        _tasks[loop] = loop.create_task(_beat(), name="gate heartbeat")


async def _beat() -> None:
    registry = presence()
    assert registry is not None
    every = float(conf.get("GATE_HEARTBEAT"))
    while True:
        try:
            await registry.gate_alive(GATE_ID)
            for session in await registry.reap_dead_gates():
                logger.info("session %s ended with its gate %s", session, session.server_id)
                await mqant_events.session_closed(session)
        except Exception:
            logger.exception("gate heartbeat failed; trying again in %.0f s", every)
        await asyncio.sleep(every)
