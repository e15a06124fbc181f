"""The admin of chat rooms and messages: who is in a room now, how much was said, and a
system message broadcast to a room's members.

Rooms and messages are as many as users make: no list, filter or form here renders all of
them. Lists are paged without counting the whole table, the message list filters by one of
the most recently active rooms (or any room, from a room's row), and a message's room is
picked by id.
"""

from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from chat import services
from chat.models import Message, Room
from mqant.admin_actions import message_action

RECENT_ROOMS = 20  # rooms the message list's filter offers
SHOWN = 80  # characters of a message or a name shown in a list


def _broadcast(rooms: QuerySet[Room], topic: str, text: str) -> int:
    for room in rooms:
        async_to_sync(services.system_message)(room_name=room.name, text=text, topic=topic)
    return len(rooms)


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("shown_name", "members_online", "message_count", "active_at", "created_at")
    search_fields = ("name",)
    ordering = ("-active_at",)
    list_per_page = 50
    show_full_result_count = False
    actions = [message_action("Broadcast a system message", _broadcast, topic="Chat/OnChat")]

    def get_queryset(self, request: Any) -> QuerySet[Room]:
        rooms: QuerySet[Room] = super().get_queryset(request)
        return rooms.annotate(message_count=Count("messages"))

    @admin.display(description="name", ordering="name")
    def shown_name(self, room: Room) -> str:
        return Truncator(room.name).chars(SHOWN)

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, room: Any) -> int:
        return int(room.message_count)

    @admin.display(description="members online")
    def members_online(self, room: Room) -> str:
        members = async_to_sync(services.room_members)(room.name)
        return Truncator(", ".join(members)).chars(10 * SHOWN) or "-"


class RecentRoomFilter(admin.SimpleListFilter):
    """The RECENT_ROOMS most recently active rooms; any room by its id in the address (the
    parameter is the one Django's own room filter used)."""

    title = "room (most recently active)"
    parameter_name = "room__id__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        recent = Room.objects.order_by("-active_at").values_list("id", "name")[:RECENT_ROOMS]
        return [(str(room_id), Truncator(name).chars(40)) for room_id, name in recent]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(room_id=int(value))


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("created_at", "room", "shown_sender", "shown_content")
    list_filter = (RecentRoomFilter,)
    search_fields = ("content", "sender", "room__name")
    list_select_related = ("room",)
    raw_id_fields = ("room",)
    list_per_page = 50
    show_full_result_count = False

    @admin.display(description="sender", ordering="sender")
    def shown_sender(self, message: Message) -> str:
        return Truncator(message.sender).chars(SHOWN)

    @admin.display(description="content")
    def shown_content(self, message: Message) -> str:
        return Truncator(message.content).chars(SHOWN)
