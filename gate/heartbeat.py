"""This gate process's heartbeat in the Presence, the reaper of gates that died (their
connections are ended and the modules told, once, when the heartbeat has expired), and the
reconciler of this gate's own records with its open sessions."""

import asyncio
import logging
from collections.abc import Callable

from gate import inorder, keeper
from gate.node import GATE_ID
from mqant import conf, dependencies
from mqant.runtime import Runtime
from mqant.storage import Presence, gate_dead_after, presence

logger = logging.getLogger(__name__)

# Seconds between two reconciliations of this gate's records, and the most records one fixes.
RECONCILE_EVERY = 15.0
RECONCILE_BATCH = 500


class GateHeartbeat:
    """The heartbeat as a part of the process's runtime (gate.process): it beats from the
    runtime's start to its stop, when a Presence is configured."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def start(self, runtime: Runtime) -> None:
        registry = presence()
        if registry is not None:
            self._task = runtime.spawn(Heartbeat(registry, GATE_ID).run(), "gate heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Heartbeat:
    """One gate's beats. It reaps other gates only once its own beats have succeeded for
    ``gate_dead_after()`` seconds in a row, none more than half that apart: after a database
    outage (refused, or hung) every gate's last beat is old, and the first gate back must give
    the others time to beat before it takes them for dead (their users would be announced
    gone while connected)."""

    def __init__(
        self, registry: Presence, gate_id: str, clock: Callable[[], float] | None = None
    ) -> None:
        self.registry = registry
        self.gate_id = gate_id
        self.clock = clock or asyncio.get_running_loop().time
        self.alive_since: float | None = None  # first beat of the current run of successes
        self.last_beat: float | None = None  # when the last beat succeeded
        self.reconciled_at: float | None = None
        self.failing: dependencies.Dependency | None = None
        self.broken = False  # the last beat failed for another reason (logged once)

    async def run(self) -> None:
        every = float(conf.get("GATE_HEARTBEAT"))
        while True:
            await self.beat()
            await asyncio.sleep(every)

    async def beat(self) -> None:
        """Beat once; then reap dead gates and reconcile this gate's records when due."""
        try:
            await self.registry.gate_alive(self.gate_id)
            now = self.clock()
            if self.alive_since is None or self._gap(now):
                # A beat that hung (the database paused) or a loop that stalled is a gap in
                # the run, as a failure is: the others may not have beaten meanwhile either.
                self.alive_since = now
            self.last_beat = now
            if now - self.alive_since >= gate_dead_after():
                await self.reap()
            if self.reconciled_at is None or now - self.reconciled_at >= RECONCILE_EVERY:
                self.reconciled_at = now
                await self.reconcile()
        except Exception as err:
            self.alive_since = None
            await self._failed(err)
        else:
            self.broken = False
            if self.failing is not None:
                self.failing.succeeded()
                inorder.recovered(self.failing)
                self.failing = None

    def _gap(self, now: float) -> bool:
        """Whether the beats stopped for longer than half the time a gate may be silent."""
        return self.last_beat is not None and now - self.last_beat > gate_dead_after() / 2

    async def _failed(self, err: Exception) -> None:
        dependency = dependencies.note(err)  # logged once per outage
        if dependency is None:
            if not self.broken:  # a bug: its traceback once, not once a beat
                logger.error("gate heartbeat failed; trying again every beat", exc_info=err)
            self.broken = True
            return
        self.failing = dependency
        if dependency is dependencies.DATABASE:
            await inorder.reconnect_database()

    async def reap(self) -> None:
        for session in await self.registry.reap_dead_gates():
            logger.info("session %s ended with its gate %s", session, session.server_id)
            keeper.tell_closed(session)

    async def reconcile(self) -> None:
        """Records of this gate with no open session (their end was lost) are removed and
        their end reported; open sessions with no record (a reaper took this gate for dead)
        are recorded again. Sessions with jobs queued are left to those jobs."""
        recorded = await self.registry.sessions_of_gate(self.gate_id)
        live = keeper.open_sessions()
        known = {s.session_id for s in recorded}
        missing = [k for sid, k in live.items() if sid not in known and not inorder.pending(sid)]
        for kept in missing[:RECONCILE_BATCH]:
            kept.restore()
        ended = 0
        for session in [s for s in recorded if s.session_id not in live][:RECONCILE_BATCH]:
            sid = session.session_id
            if keeper.is_open(sid) or inorder.pending(sid):
                continue
            if await self.registry.disconnected(sid):
                ended += 1
                keeper.tell_closed(session)
        if missing or ended:
            logger.warning(
                "gate %s: %d open sessions had no record (recorded again), %d records had no "
                "open session (removed, their end reported)",
                self.gate_id,
                min(len(missing), RECONCILE_BATCH),
                ended,
            )
