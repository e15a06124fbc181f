"""Expiry of stored chat data: messages older than MessageMaxAge, and rooms with no message
and nobody in them that nobody joined or spoke in for EmptyRoomMaxAge.

A pass deletes at most SweepBatch rows of each kind, oldest first, so that no pass holds the
database for long however much is due; ``manage.py sweepchat`` runs passes until nothing is
due, the Chat module one pass every SweepInterval seconds. The rooms' message cap
(RoomMaxMessages) is kept as messages are stored, not here.
"""

import datetime
import logging
from collections.abc import Collection
from dataclasses import dataclass

from django.db import IntegrityError
from django.utils import timezone

from chat.limits import ChatLimits
from chat.models import Message, Room

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    """Rows one pass (or several) deleted."""

    messages: int = 0
    rooms: int = 0

    def __add__(self, other: "SweepResult") -> "SweepResult":
        return SweepResult(self.messages + other.messages, self.rooms + other.rooms)

    def full(self, batch: int) -> bool:
        """Whether a pass deleted a whole batch of some kind: more may be due."""
        return self.messages >= batch or self.rooms >= batch


def sweep_pass(
    *,
    limits: ChatLimits,
    live_rooms: Collection[str] = (),
    now: datetime.datetime | None = None,
) -> SweepResult:
    """Delete one batch of expired messages and one of unused empty rooms (rooms named in
    ``live_rooms``, those someone is in, are kept)."""
    now = now or timezone.now()
    return SweepResult(
        messages=_expired_messages(limits, now),
        rooms=_unused_rooms(limits, live_rooms, now),
    )


def _expired_messages(limits: ChatLimits, now: datetime.datetime) -> int:
    if not limits.message_max_age:
        return 0
    cutoff = now - datetime.timedelta(seconds=limits.message_max_age)
    expired = Message.objects.filter(created_at__lt=cutoff).order_by("created_at")
    ids = list(expired.values_list("id", flat=True)[: limits.sweep_batch])
    deleted, _ = Message.objects.filter(id__in=ids).delete()
    return deleted


def _unused_rooms(limits: ChatLimits, live_rooms: Collection[str], now: datetime.datetime) -> int:
    if not limits.empty_room_max_age:
        return 0
    cutoff = now - datetime.timedelta(seconds=limits.empty_room_max_age)
    unused = Room.objects.filter(active_at__lt=cutoff, messages__isnull=True).order_by("active_at")
    candidates = unused.values_list("id", "name")[: limits.sweep_batch]
    ids = [room_id for room_id, name in candidates if name not in live_rooms]
    try:
        # Checked again as they are deleted: a message may have come since.
        _, deleted = Room.objects.filter(id__in=ids, messages__isnull=True).delete()
    except IntegrityError as err:  # a message came during the delete: the next pass retries
        logger.info("Chat sweep: rooms kept for the next pass: %s", err)
        return 0
    return deleted.get(Room._meta.label, 0)
