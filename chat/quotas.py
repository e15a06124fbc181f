"""Per-user quotas: new rooms created, and messages stored (in number and in bytes).

Counted in Django's default cache over fixed windows that start with the first use: per
process with the local-memory cache, shared by every process once the cache is Redis (the
settings do that with ``REDIS_URL``). A count is raised before it is compared, with the
cache's atomic ``incr``, so that concurrent requests of one user cannot all slip under it; a
refused request has used its share of the window too.
"""

from chat.limits import ChatLimits, Refused
from mqant import counters

KEY_PREFIX = "chat-quota"
DAY = 24 * 3600


def room_created(*, user_id: str, limits: ChatLimits) -> None:
    """Count a new room created by ``user_id``; Refused past RoomCreateLimit in the window."""
    limit, window = limits.room_create_limit, limits.room_create_window
    if limit and _count("rooms", user_id, window) > limit:
        raise Refused(
            f"Too many new rooms: at most {limit} in {window} s; join an existing room or "
            "try again later"
        )


def message_stored(*, user_id: str, size: int, limits: ChatLimits) -> None:
    """Count a message of ``size`` bytes about to be stored for ``user_id``; Refused past
    UserMessageLimit in its window or past UserBytesPerDay."""
    limit, window = limits.user_message_limit, limits.user_message_window
    if limit and _count("messages", user_id, window) > limit:
        raise Refused(f"Too many messages: at most {limit} in {window} s; try again later")
    per_day = limits.user_bytes_per_day
    if per_day and _count("bytes", user_id, DAY, size) > per_day:
        raise Refused(f"Too much said today: at most {per_day} bytes a day; try again later")


def _count(what: str, user_id: str, window: int, amount: int = 1) -> int:
    return counters.add(counters.key(KEY_PREFIX, what, user_id), window, amount)
