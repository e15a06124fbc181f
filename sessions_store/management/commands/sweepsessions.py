"""``manage.py sweepsessions``: delete expired stored sessions; for a scheduler (cron)."""

from typing import Any

from django.core.management.base import BaseCommand

from sessions_store.storage import sweep_expired


class Command(BaseCommand):
    help = "Delete the stored sessions whose expiry has passed."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = sweep_expired()
        self.stdout.write(f"deleted {deleted} expired stored session(s)")
