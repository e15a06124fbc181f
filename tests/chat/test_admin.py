"""The chat admin renders bounded pages however many rooms and messages there are."""

import re

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client

from chat.admin import RECENT_ROOMS
from chat.models import Message, Room

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_() -> Client:
    staff = get_user_model().objects.create_superuser("boss", password="boss-pass-1234")
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def many_rooms() -> list[Room]:
    rooms = Room.objects.bulk_create(Room(name=f"room{n:04}" + "x" * 150) for n in range(300))
    Message.objects.bulk_create(Message(room=r, sender="u", content="hi") for r in rooms)
    return rooms


def test_the_message_list_offers_a_bounded_room_filter(admin_client_, many_rooms):
    page = admin_client_.get("/admin/chat/message/").content.decode()
    offered = set(re.findall(r"room__id__exact=(\d+)", page))
    assert 0 < len(offered) <= RECENT_ROOMS
    assert len(page) < 200_000
    chosen = many_rooms[0].pk  # not among the recent ones: still filtered by its id
    filtered = admin_client_.get(f"/admin/chat/message/?room__id__exact={chosen}")
    assert filtered.status_code == 200
    assert "1 message" in filtered.content.decode()


def test_a_messages_form_picks_its_room_by_id(admin_client_, many_rooms):
    message = Message.objects.first()
    assert message is not None
    form = admin_client_.get(f"/admin/chat/message/{message.pk}/change/").content.decode()
    assert re.search(r'<input type="text" name="room" [^>]*vForeignKeyRawIdAdminField', form)
    assert '<select name="room"' not in form
    assert len(form) < 100_000


@pytest.mark.django_db(transaction=True)
async def test_the_room_list_is_paged(admin_client_, many_rooms, mqant_started):
    # The page asks the Chat nodes who is online: from the server's event loop, as daphne runs it.
    page = (await sync_to_async(admin_client_.get)("/admin/chat/room/")).content.decode()
    assert page.count('name="_selected_action"') == 50
