"""The stored history a join returns: newest kept, oldest first, bounded in count and in bytes
of the JSON sent, names included, whatever is stored."""

import pytest

from chat import services
from chat.limits import ChatLimits
from chat.models import Message, Room
from chat.rooms import json_size

NO_QUOTAS = ChatLimits(user_message_limit=0, user_bytes_per_day=0, room_max_messages=0)


def store(room: str, sender: str, content: str, count: int = 1) -> None:
    """Messages as they may have been stored before anything was bounded."""
    stored, _ = Room.objects.get_or_create(name=room)
    Message.objects.bulk_create(
        Message(room=stored, sender=sender, content=content) for _ in range(count)
    )


@pytest.mark.django_db
def test_history_is_bounded_by_count_and_bytes():
    for n in range(6):
        services.message_create(room_name="h", sender=f"u{n}", content="x" * 10, limits=NO_QUOTAS)
    services.message_create(room_name="other", sender="z", content="elsewhere", limits=NO_QUOTAS)
    history = services.room_history(room_name="h", limit=4, max_bytes=10_000)
    assert [h["from"] for h in history] == ["u2", "u3", "u4", "u5"]
    assert history[0]["time"] <= history[-1]["time"]
    # Entries differ in size (a time's digits): the bound is the last two's own JSON.
    bound = json_size(history[-2:])
    trimmed = services.room_history(room_name="h", limit=50, max_bytes=bound)
    assert [h["from"] for h in trimmed] == ["u4", "u5"]
    assert json_size(trimmed) <= bound
    one_short = services.room_history(room_name="h", limit=50, max_bytes=bound - 1)
    assert [h["from"] for h in one_short] == ["u5"]
    assert services.room_history(room_name="empty", limit=50, max_bytes=1000) == []


@pytest.mark.django_db
def test_names_count_in_the_bound_and_an_absurd_name_cannot_pass_it():
    store("r", "m" * 60_000, "short", count=60)  # a 60,000-character name, stored long ago
    store("r", "ann", "recent")
    history = services.room_history(room_name="r", limit=50, max_bytes=64 * 1024)
    assert [(h["from"][:3], h["msg"]) for h in history] == [("mmm", "short"), ("ann", "recent")]
    assert json_size(history) <= 64 * 1024
    history = services.room_history(room_name="r", limit=50, max_bytes=32 * 1024)
    assert [(h["from"], h["msg"]) for h in history] == [("ann", "recent")]


@pytest.mark.django_db
def test_bytes_are_those_of_the_json_sent_not_characters():
    # A control character is 1 character, 6 bytes of JSON ("\u0001"); an emoji 4 bytes.
    store("c", "ann", "\x01" * 4000, count=10)
    store("c", "bob", "😀" * 4000, count=10)
    history = services.room_history(room_name="c", limit=50, max_bytes=64 * 1024)
    assert json_size(history) <= 64 * 1024
    assert [h["from"] for h in history] == ["bob"] * 4  # 16 KB each
    history = services.room_history(room_name="c", limit=50, max_bytes=200 * 1024)
    # 10 x 16 KB of emoji and 24 KB of controls fit in 200 KiB; 24 KB more do not.
    assert [h["from"] for h in history] == ["ann"] + ["bob"] * 10
    assert json_size(history) <= 200 * 1024
