"""The admin of chat rooms and messages: who is in a room now, how much was said, and a
system message broadcast to a room's members."""

from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin
from django.db.models import Count, QuerySet

from chat import services
from chat.models import Message, Room
from mqant.admin_actions import message_action


def _broadcast(rooms: QuerySet[Room], topic: str, text: str) -> int:
    for room in rooms:
        async_to_sync(services.system_message)(room_name=room.name, text=text, topic=topic)
    return len(rooms)


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "members_online", "message_count", "created_at")
    search_fields = ("name",)
    actions = [message_action("Broadcast a system message", _broadcast, topic="Chat/OnChat")]

    def get_queryset(self, request: Any) -> QuerySet[Room]:
        rooms: QuerySet[Room] = super().get_queryset(request)
        return rooms.annotate(message_count=Count("messages"))

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, room: Any) -> int:
        return int(room.message_count)

    @admin.display(description="members online")
    def members_online(self, room: Room) -> str:
        return ", ".join(async_to_sync(services.room_members)(room.name)) or "-"


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("created_at", "room", "sender", "content")
    list_filter = ("room",)
    search_fields = ("content", "sender", "room__name")
    list_select_related = ("room",)
