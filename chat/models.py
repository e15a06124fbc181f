"""Chat rooms and what was said in them."""

from django.db import models
from django.utils import timezone

# What a room or a message prints as in the admin: names stored before they were bounded may
# be tens of kilobytes long.
SHOWN_CHARACTERS = 60


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 1] + "…"


class Room(models.Model):
    """A room something was said in, or that was joined. ``active_at`` is when it was last
    joined or spoken in (refreshed at most once a minute): the sweep deletes the rooms left
    empty and unused for a while."""

    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    active_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return _shown(self.name)


class Message(models.Model):
    """A message said to everyone in a room (messages to one user are not kept)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    sender = models.CharField(max_length=150, db_index=True)
    content = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created_at", "-id")
        # A room's history, newest first, without sorting the room's messages.
        indexes = [models.Index(fields=["room", "created_at"], name="chat_message_room_time")]

    def __str__(self) -> str:
        return f"{_shown(self.sender)}: {self.content[:40]}"
