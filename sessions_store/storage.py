"""The default StorageHandler: a bound user's session settings in the database."""

import datetime

from django.utils import timezone

from mqant.session import Session
from sessions_store.models import StoredSession


class DatabaseStorage:
    """Stores settings per user for ``ttl`` seconds after the last activity."""

    def __init__(self, ttl: float = 7 * 24 * 3600) -> None:
        self.ttl = datetime.timedelta(seconds=ttl)

    async def storage(self, session: Session) -> None:
        if session.user_id:
            await StoredSession.objects.aupdate_or_create(
                user_id=session.user_id,
                defaults={"settings": dict(session.settings), "expires_at": self._expiry()},
            )

    async def delete(self, session: Session) -> None:
        if session.user_id:
            await StoredSession.objects.filter(user_id=session.user_id).adelete()

    async def query(self, user_id: str) -> dict[str, str]:
        row = await StoredSession.objects.filter(
            user_id=user_id, expires_at__gt=timezone.now()
        ).afirst()
        return {str(k): str(v) for k, v in row.settings.items()} if row else {}

    async def heartbeat(self, session: Session) -> None:
        if session.user_id:
            await StoredSession.objects.filter(user_id=session.user_id).aupdate(
                expires_at=self._expiry()
            )

    def _expiry(self) -> datetime.datetime:
        return timezone.now() + self.ttl


def sweep_expired() -> int:
    """Delete the stored sessions that expired; returns how many."""
    deleted, _ = StoredSession.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
