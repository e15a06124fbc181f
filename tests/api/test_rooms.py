"""GET /api/rooms/ and /api/rooms/<name>/messages/: stored rooms with their counts (members
online from the Chat nodes), 50 a page, and a room's history in cursor pages."""

import datetime

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from rest_framework.test import APIClient

from chat.models import Message, Room
from mqant import call
from tests.api.fakes import FakeConnection


def add_messages(room_name: str, count: int) -> list[Message]:
    """``count`` messages, one second apart, the last one the newest."""
    room, _ = Room.objects.get_or_create(name=room_name)
    start = timezone.now() - datetime.timedelta(hours=1)
    made = Message.objects.bulk_create(
        Message(room=room, sender=f"u{n % 3}", content=f"m{n}") for n in range(count)
    )
    for n, message in enumerate(made):  # auto_now_add ignores a value given at creation
        message.created_at = start + datetime.timedelta(seconds=n)
    Message.objects.bulk_update(made, ["created_at"])
    return made


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/rooms/", "/api/rooms/lobby/messages/"])
def test_guests_get_401(path):
    assert APIClient().get(path).status_code == 401


@pytest.mark.django_db
def test_history_is_newest_first_in_cursor_pages_of_50(make_client):
    client = make_client("reader")
    made = add_messages("lobby", 120)
    add_messages("elsewhere", 3)
    pages, url = [], "/api/rooms/lobby/messages/"
    while url:
        response = client.get(url)
        assert response.status_code == 200
        pages.append(response.data["results"])
        url = response.data["next"]
    assert [len(page) for page in pages] == [50, 50, 20]
    items = [item for page in pages for item in page]
    newest_first = made[::-1]
    assert [item["msg"] for item in items] == [m.content for m in newest_first]
    assert items[0] == {
        "from": newest_first[0].sender,
        "msg": "m119",
        "time": newest_first[0].created_at.timestamp(),
    }
    assert isinstance(items[0]["time"], float)


@pytest.mark.django_db
def test_history_of_a_room_with_nothing_said_is_empty(make_client):
    response = make_client("reader").get("/api/rooms/nobody/messages/")
    assert response.status_code == 200
    assert response.data["results"] == []
    assert response.data["next"] is None


@pytest.mark.django_db
def test_room_names_may_contain_slashes(make_client):
    add_messages("a/b", 2)
    response = make_client("reader").get("/api/rooms/a/b/messages/")
    assert [item["msg"] for item in response.data["results"]] == ["m1", "m0"]


@pytest.mark.django_db(transaction=True)
async def test_rooms_list_counts_messages_and_members_online(mqant_started, make_client):
    client = await sync_to_async(make_client)("reader")
    await sync_to_async(add_messages)("busy", 2)
    await sync_to_async(add_messages)("quiet", 1)
    await sync_to_async(Room.objects.create)(name="empty")
    connections = [await FakeConnection.open(user) for user in ("ann", "bob")]
    try:
        for connection in connections:
            await call("Chat", "HD_JoinChat", connection.session, {"roomName": "busy"})
        response = await sync_to_async(client.get)("/api/rooms/")
    finally:
        for connection in connections:
            connection.close()
    assert response.status_code == 200
    page = response.json()
    assert (page["count"], page["next"], page["previous"]) == (3, None, None)
    assert sorted(page["results"], key=lambda room: room["name"]) == [
        {"name": "busy", "message_count": 2, "members_online": 2},
        {"name": "empty", "message_count": 0, "members_online": 0},
        {"name": "quiet", "message_count": 1, "members_online": 0},
    ]


def make_rooms(count: int) -> list[Room]:
    """``count`` rooms, room0000 the most recently active."""
    now = timezone.now()
    return Room.objects.bulk_create(
        Room(name=f"room{n:04}", active_at=now - datetime.timedelta(seconds=n))
        for n in range(count)
    )


@pytest.mark.django_db
def test_rooms_come_50_a_page_most_recently_active_first(make_client, monkeypatch):
    asked: list[list[str]] = []

    async def members_online(names: list[str]) -> dict[str, int]:
        asked.append(names)
        return dict.fromkeys(names, 0)

    monkeypatch.setattr("api.selectors.members_online", members_online)
    client = make_client("reader")
    made = make_rooms(120)
    add_messages("room0001", 3)
    pages, url = [], "/api/rooms/"
    while url:
        response = client.get(url)
        assert response.status_code == 200
        assert response.data["count"] == 120
        pages.append([room["name"] for room in response.data["results"]])
        url = response.data["next"]
    assert [len(page) for page in pages] == [50, 50, 20]
    assert [name for page in pages for name in page] == [room.name for room in made]
    assert asked == pages  # the members online of each page's rooms, of no other
    first = client.get("/api/rooms/").data["results"][1]
    assert first == {"name": "room0001", "message_count": 3, "members_online": 0}


@pytest.mark.django_db(transaction=True)
async def test_rooms_named_before_names_were_bounded_are_not_listed(make_client, mqant_started):
    await Room.objects.acreate(name="x" * 64_000)
    await Room.objects.acreate(name="fine")
    client = await sync_to_async(make_client)("reader")
    response = await sync_to_async(client.get)("/api/rooms/")
    assert [room["name"] for room in response.data["results"]] == ["fine"]
