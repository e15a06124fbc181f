"""The default Presence: the live connections of every gate process, in the database."""

import datetime
from collections.abc import Iterable

from django.db.models import QuerySet
from django.utils import timezone

from mqant.session import Session
from mqant.storage import gate_dead_after
from sessions_store.models import GateProcess, LiveConnection


def _dead_after() -> datetime.timedelta:
    return datetime.timedelta(seconds=gate_dead_after())


def alive_connections() -> QuerySet[LiveConnection]:
    """The connections of gates whose heartbeat is fresh."""
    return LiveConnection.objects.filter(gate__last_seen__gt=timezone.now() - _dead_after())


def _session(row: LiveConnection) -> Session:
    return Session(
        ip=row.ip,
        network=row.network,
        session_id=row.session_id,
        server_id=row.gate_id,
        channel=row.channel,
        user_id=row.user_id,
        settings=row.settings,
    )


class DatabasePresence:
    """Live connections as rows; a gate's rows die with its heartbeat."""

    async def gate_alive(self, gate_id: str) -> None:
        # One UPDATE a beat; the row is created on the first beat (or after a reaper took it).
        now = timezone.now()
        if not await GateProcess.objects.filter(gate_id=gate_id).aupdate(last_seen=now):
            await GateProcess.objects.aupdate_or_create(
                gate_id=gate_id, defaults={"last_seen": now}
            )

    async def connected(self, session: Session) -> None:
        now = timezone.now()
        await GateProcess.objects.aget_or_create(
            gate_id=session.server_id, defaults={"last_seen": now}
        )
        await LiveConnection.objects.aupdate_or_create(
            session_id=session.session_id,
            defaults={
                "user_id": session.user_id,
                "ip": session.ip,
                "network": session.network,
                "gate_id": session.server_id,
                "channel": session.channel,
                "settings": dict(session.settings),
                "last_seen": now,
            },
        )

    async def disconnected(self, session_id: str) -> bool:
        deleted, _ = await LiveConnection.objects.filter(session_id=session_id).adelete()
        return deleted > 0

    async def seen(self, session_ids: Iterable[str]) -> None:
        ids = list(session_ids)
        if ids:
            await LiveConnection.objects.filter(session_id__in=ids).aupdate(
                last_seen=timezone.now()
            )

    async def sessions_of_user(self, user_id: str) -> list[Session]:
        return [_session(row) async for row in alive_connections().filter(user_id=user_id)]

    async def channels_of(self, session_ids: Iterable[str]) -> dict[str, str]:
        rows = alive_connections().filter(session_id__in=list(session_ids))
        return {row.session_id: row.channel async for row in rows}

    async def sessions_of_gate(self, gate_id: str) -> list[Session]:
        return [_session(row) async for row in LiveConnection.objects.filter(gate_id=gate_id)]

    async def reap_dead_gates(self) -> list[Session]:
        # One query a beat while every gate lives (this runs every GATE_HEARTBEAT on each).
        cutoff = timezone.now() - _dead_after()
        stale = GateProcess.objects.filter(last_seen__lte=cutoff)
        dead = [gate_id async for gate_id in stale.values_list("gate_id", flat=True)]
        if not dead:
            return []
        reaped = []
        async for row in LiveConnection.objects.filter(gate_id__in=dead):
            if await self.disconnected(row.session_id):  # whoever deletes it reports it
                reaped.append(_session(row))
        await stale.filter(gate_id__in=dead, connections=None).adelete()
        return reaped
