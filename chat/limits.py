"""The Chat module's limits: every bound on what a user may send, store and be sent.

They are the module's settings (``MQANT["MODULE_SETTINGS"]["Chat"]``, or the ``Settings`` of a
``Chat`` entry of server.conf), read once by ``Chat.on_init``; ``deployment_limits()`` reads
the same settings for code outside the module (``manage.py sweepchat``). The Chat class's
docstring and the README list each setting.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from mqant import config

MODULE_TYPE = "Chat"
# Room.name's max_length: the bound the database was told of (SQLite never enforced it).
ROOM_NAME_MAX = 200


class Refused(Exception):
    """A request the limits refuse; ``str()`` is the error text the client reads."""


@dataclass(frozen=True)
class ChatLimits:
    """The bounds, with their defaults. A quota or an expiry of 0 is off."""

    history_size: int = 50  # HistorySize: messages in a join's history
    history_bytes: int = 64 * 1024  # HistoryBytes: bytes of that history's JSON
    max_message: int = 4000  # MaxMessageLength: characters of one message
    max_room_name: int = 100  # MaxRoomNameLength: characters of a room name
    max_user_name: int = 150  # MaxUserNameLength: characters of a target, or of a member
    max_rooms_per_user: int = 50  # MaxRoomsPerUser: rooms a user is in at once
    room_create_limit: int = 20  # RoomCreateLimit: new rooms a user may create...
    room_create_window: int = 3600  # RoomCreateWindow: ...per this many seconds
    join_users: int = 1000  # JoinUsers: names listed in a join's users
    join_users_bytes: int = 64 * 1024  # JoinUsersBytes: bytes of that list's JSON
    room_max_messages: int = 1000  # RoomMaxMessages: messages kept per room
    user_message_limit: int = 600  # UserMessageLimit: messages a user may store...
    user_message_window: int = 60  # UserMessageWindow: ...per this many seconds
    user_bytes_per_day: int = 2 * 1024 * 1024  # UserBytesPerDay: bytes a user may store a day
    message_max_age: int = 30 * 24 * 3600  # MessageMaxAge: seconds a message is kept
    empty_room_max_age: int = 24 * 3600  # EmptyRoomMaxAge: seconds an unused room is kept
    sweep_interval: float = 600.0  # SweepInterval: seconds between the module's sweeps
    sweep_batch: int = 500  # SweepBatch: rows of each kind one sweep pass deletes at most

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "ChatLimits":
        """The limits the module settings ``settings`` give, defaults for missing keys.

        Raises ImproperlyConfigured for a value that is not a number in its range.
        """
        values = {
            field.name: _number(key, settings[key], field.type)
            for key, field in zip(SETTING_NAMES, fields(cls), strict=True)
            if key in settings
        }
        limits = cls(**values)
        limits._check()
        return limits

    def _check(self) -> None:
        for key, field in zip(SETTING_NAMES, fields(self), strict=True):
            value = getattr(self, field.name)
            if value < 0 or (field.name in POSITIVE and value == 0):
                expected = "above 0" if field.name in POSITIVE else "0 or more"
                raise ImproperlyConfigured(f"Chat's {key} must be {expected}, got {value}")
        if self.max_room_name > ROOM_NAME_MAX:
            raise ImproperlyConfigured(
                f"Chat's MaxRoomNameLength must be at most {ROOM_NAME_MAX} (the column's size), "
                f"got {self.max_room_name}"
            )


# The setting names, in the order of ChatLimits' fields.
SETTING_NAMES = (
    "HistorySize",
    "HistoryBytes",
    "MaxMessageLength",
    "MaxRoomNameLength",
    "MaxUserNameLength",
    "MaxRoomsPerUser",
    "RoomCreateLimit",
    "RoomCreateWindow",
    "JoinUsers",
    "JoinUsersBytes",
    "RoomMaxMessages",
    "UserMessageLimit",
    "UserMessageWindow",
    "UserBytesPerDay",
    "MessageMaxAge",
    "EmptyRoomMaxAge",
    "SweepInterval",
    "SweepBatch",
)
# The bounds that cannot be turned off: sizes of what is sent, windows, the sweep's batch.
POSITIVE = frozenset(
    {
        "history_bytes",
        "max_message",
        "max_room_name",
        "max_user_name",
        "room_create_window",
        "join_users",
        "join_users_bytes",
        "user_message_window",
        "sweep_batch",
    }
)


def _number(key: str, value: Any, kind: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ImproperlyConfigured(f"Chat's {key} must be a number, got {value!r}")
    try:
        return float(value) if kind in (float, "float") else int(value)
    except ValueError as err:
        raise ImproperlyConfigured(f"Chat's {key} must be a number, got {value!r}") from err


def deployment_limits() -> ChatLimits:
    """The limits of this process's Chat entry in the deployment, else of its first Chat
    entry, else the defaults: what a command run beside the modules should apply."""
    deployment = config.load()
    entry = deployment.entry(MODULE_TYPE, config.process_id())
    entries = deployment.modules.get(MODULE_TYPE, [])
    if entry is None and entries:
        entry = entries[0]
    return ChatLimits.from_settings(entry.settings if entry else {})
