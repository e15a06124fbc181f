"""The admin of stored sessions, gate processes and live connections."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from mqant.admin_actions import close_channels, message_action, send_to_channels
from sessions_store.models import GateProcess, LiveConnection, StoredSession
from sessions_store.presence import alive_connections


@admin.register(StoredSession)
class StoredSessionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("user_id", "settings", "updated_at", "expires_at", "expired")
    search_fields = ("user_id",)
    ordering = ("-updated_at",)

    @admin.display(boolean=True)
    def expired(self, row: StoredSession) -> bool:
        return row.expires_at <= timezone.now()


@admin.register(GateProcess)
class GateProcessAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("gate_id", "started_at", "last_seen")
    readonly_fields = ("gate_id", "started_at", "last_seen")


def _send(rows: QuerySet[LiveConnection], topic: str, text: str) -> int:
    return send_to_channels((row.channel for row in rows), topic, text)


@admin.register(LiveConnection)
class LiveConnectionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("session_id", "user_id", "ip", "network", "gate", "connected_at", "last_seen")
    list_filter = ("gate", "network")
    search_fields = ("user_id", "session_id", "ip")
    readonly_fields = [f.name for f in LiveConnection._meta.fields]
    actions = ["kick", message_action("Send a message", _send)]

    @admin.action(description="Kick (close the connection)")
    def kick(self, request: HttpRequest, queryset: QuerySet[LiveConnection]) -> None:
        count = close_channels(row.channel for row in queryset)
        self.message_user(request, f"Closing {count} connection(s).", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[LiveConnection]:
        # Connections of gates whose heartbeat expired are ghosts until a reaper removes them.
        return alive_connections()
