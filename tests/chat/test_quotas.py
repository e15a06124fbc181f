"""Per-user and per-room quotas: new rooms a user creates, messages a user stores (in number
and in bytes, over all their connections), messages a room keeps."""

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache

from chat import quotas
from chat.limits import ChatLimits, Refused
from chat.models import Message, Room
from mqant import RemoteError, counters
from mqant.ops import GroupAdd, GroupDiscard

pytestmark = pytest.mark.django_db(transaction=True)


async def refused(call, text: str) -> None:
    with pytest.raises(RemoteError) as caught:
        await call
    assert str(caught.value) == text


def stored(**filters) -> list[str]:
    return list(Message.objects.filter(**filters).order_by("id").values_list("content", flat=True))


def room_names() -> set[str]:
    return set(Room.objects.values_list("name", flat=True))


ROOMS_ERROR = "Too many new rooms: at most 2 in 3600 s; join an existing room or try again later"


async def test_a_user_creates_at_most_room_create_limit_new_rooms(start_chat, user):
    await start_chat(RoomCreateLimit=2)
    ann, bob = await user("ann"), await user("bob")
    await ann.join("a1")
    await ann.join("a2")
    await refused(ann.join("a3"), ROOMS_ERROR)
    assert await sync_to_async(room_names)() == {"a1", "a2"}
    joined = ann.connection.ops[-2]
    assert isinstance(joined, GroupAdd)
    assert ann.connection.ops[-1] == GroupDiscard(joined.group)
    await bob.join("b1")  # another user has a quota of their own
    await ann.join("b1")  # rooms that exist are joined freely
    await ann.leave("a1")
    await ann.join("a1")  # and so are rooms one made
    await refused(ann.join("a3"), ROOMS_ERROR)


async def test_a_rejoin_of_a_live_room_whose_row_was_swept_is_not_a_new_room(start_chat, user):
    await start_chat(RoomCreateLimit=1)
    ann, bob = await user("ann"), await user("bob")
    await ann.join("mine")
    await sync_to_async(Room.objects.all().delete)()  # sweepchat ran while ann was in it
    await bob.join("mine")
    await ann.join("mine")


async def test_messages_past_the_users_rate_are_refused_and_not_stored(start_chat, user):
    await start_chat(UserMessageLimit=3, UserMessageWindow=60)
    ann, ann_again, bob = await user("ann"), await user("ann", "ann-2"), await user("bob")
    for u in (ann, bob, ann_again):
        await u.join("r")
    await ann.say("r", "1")
    await ann_again.say("r", "2")  # every connection of the user counts
    await ann.say("r", "3")
    await refused(ann_again.say("r", "4"), "Too many messages: at most 3 in 60 s; try again later")
    await refused(ann.say("r", "5"), "Too many messages: at most 3 in 60 s; try again later")
    await bob.say("r", "bob's")
    assert await sync_to_async(stored)() == ["1", "2", "3", "bob's"]
    assert await ann.say("r", "whisper", target="bob") == {"say": "say success"}  # not stored


async def test_bytes_past_the_users_daily_quota_are_refused(start_chat, user):
    await start_chat(UserBytesPerDay=10)
    ann = await user("ann")
    await ann.join("r")
    await ann.say("r", "é" * 4)  # 8 bytes
    error = "Too much said today: at most 10 bytes a day; try again later"
    await refused(ann.say("r", "abc"), error)
    assert await sync_to_async(stored)() == ["é" * 4]


async def test_a_room_keeps_its_newest_messages(start_chat, user):
    await start_chat(RoomMaxMessages=5)
    ann = await user("ann")
    await ann.join("r")
    await ann.join("other")
    for n in range(8):
        await ann.say("r", str(n))
    await ann.say("other", "kept")
    assert await sync_to_async(stored)(room__name="r") == ["3", "4", "5", "6", "7"]
    assert await sync_to_async(stored)(room__name="other") == ["kept"]


def test_quota_counts_are_shared_through_the_cache_and_expire():
    """The counts live in Django's cache (Redis when several processes run): a count made
    elsewhere refuses here, and a window that ended starts again."""
    limits = ChatLimits(user_message_limit=2, user_message_window=60)
    quotas.message_stored(user_id="ann", size=1, limits=limits)
    key = counters.key(quotas.KEY_PREFIX, "messages", "ann")
    assert cache.get(key) == 1
    cache.incr(key)  # another process's message
    with pytest.raises(Refused):
        quotas.message_stored(user_id="ann", size=1, limits=limits)
    cache.delete(key)  # the window ended
    quotas.message_stored(user_id="ann", size=1, limits=limits)
    off = ChatLimits(user_message_limit=0, user_bytes_per_day=0, room_create_limit=0)
    for _ in range(100):
        quotas.message_stored(user_id="bob", size=10**6, limits=off)
        quotas.room_created(user_id="bob", limits=off)
