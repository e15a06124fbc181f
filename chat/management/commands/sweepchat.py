"""``manage.py sweepchat``: delete expired chat messages and unused empty rooms; for a
scheduler (cron), beside the sweep each Chat module runs by itself."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chat.limits import deployment_limits
from chat.sweep import SweepResult, sweep_pass


class Command(BaseCommand):
    help = (
        "Delete the chat messages older than Chat's MessageMaxAge and the rooms left empty and "
        "unused for EmptyRoomMaxAge, SweepBatch rows at a time, until none is due."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-passes",
            type=int,
            default=1000,
            help="stop after this many passes even if more is due (default 1000)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limits = deployment_limits()
        total = SweepResult()
        for _ in range(max(1, options["max_passes"])):
            done = sweep_pass(limits=limits)
            total += done
            if not done.full(limits.sweep_batch):
                break
        self.stdout.write(
            f"deleted {total.messages} expired message(s) and {total.rooms} unused room(s)"
        )
