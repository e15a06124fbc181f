"""The stored history a join returns: newest kept, oldest first, bounded in count and size."""

import pytest

from chat import services


@pytest.mark.django_db
def test_history_is_bounded_by_count_and_characters():
    for n in range(6):
        services.message_create(room_name="h", sender=f"u{n}", content="x" * 10)
    services.message_create(room_name="other", sender="z", content="elsewhere")
    history = services.room_history(room_name="h", limit=4, max_chars=1000)
    assert [h["from"] for h in history] == ["u2", "u3", "u4", "u5"]
    assert history[0]["time"] <= history[-1]["time"]
    trimmed = services.room_history(room_name="h", limit=50, max_chars=25)
    assert [h["from"] for h in trimmed] == ["u4", "u5"]
    assert services.room_history(room_name="empty", limit=50, max_chars=25) == []
