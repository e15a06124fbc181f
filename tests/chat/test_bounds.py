"""What a client may name and say, how many rooms one is in, and how big a join's reply and
Chat's pushes may be, whatever is stored."""

import json

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message, Room
from chat.rooms import json_size
from mqant import RemoteError

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


async def refused(call, text: str) -> None:
    with pytest.raises(RemoteError) as caught:
        await call
    assert str(caught.value) == text


@sync_to_async
def rooms_stored() -> set[str]:
    return set(Room.objects.values_list("name", flat=True))


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("r" * 101, "The room name is longer than 100 characters"),
        ("r" * 64_000, "The room name is longer than 100 characters"),
        ("lobby\n", "The room name contains a control character"),
        ("a\x00b", "The room name contains a control character"),
        ("a\x85b", "The room name contains a control character"),
        ("evil\u202ereversed", "The room name contains a control character"),
        ("\ud800", "The room name is not valid Unicode text"),
    ],
)
async def test_bad_room_names_are_refused_and_not_stored(start_chat, user, name, error):
    await start_chat()
    ann = await user("ann")
    await refused(ann.join(name), error)
    assert await rooms_stored() == set()
    assert ann.connection.ops == []  # not even put in the room's group
    joined = await ann.join("r" * 100)  # the longest name, and a name in any script, are fine
    assert joined["users"] == ["ann"]
    assert (await ann.join("salle à manger 😀"))["users"] == ["ann"]


async def test_a_user_whose_stored_name_is_too_long_joins_no_room(start_chat, user):
    await start_chat()
    legacy = await user("n" * 151)
    await refused(legacy.join("lobby"), "Your user name is longer than 150 characters")
    assert (await (await user("n" * 150)).join("lobby"))["users"] == ["n" * 150]


async def test_what_is_said_is_bounded(start_chat, user):
    await start_chat()
    ann, bob = await user("ann"), await user("bob")
    await ann.join("r")
    await bob.join("r")
    await refused(ann.say("r", "x" * 4001), "The message is longer than 4000 characters")
    await refused(ann.say("r", "bad \udc00 text"), "The message is not valid Unicode text")
    await refused(ann.say("r", "hi", target="b" * 151), "The target is longer than 150 characters")
    await refused(ann.say("r", "hi", target="b" * 150), "This user haven't been in the room yet")
    assert await sync_to_async(Message.objects.count)() == 0
    assert await ann.say("r", "x" * 4000) == {"say": "say success"}
    assert await ann.say("r", "psst", target="bob") == {"say": "say success"}


async def test_a_user_is_in_at_most_max_rooms_at_once(start_chat, user):
    await start_chat(MaxRoomsPerUser=3)
    ann = await user("ann")
    ann_again = await user("ann", session_id="ann-2")  # a second connection counts too
    for room in ("a", "b"):
        await ann.join(room)
    await ann_again.join("c")
    error = "You are in 3 rooms already, the most allowed; leave one"
    await refused(ann_again.join("d"), error)
    await refused(ann.join("d"), error)
    await ann.join("a")  # one is in again: not one more
    await ann_again.join("b")  # the membership moves: still three
    await ann.leave("a")
    assert (await ann.join("d"))["users"] == ["ann"]
    assert (await (await user("bob")).join("d"))["users"] == ["bob", "ann"]  # others too


async def test_a_join_lists_a_bounded_number_of_members_and_says_how_many(start_chat, user):
    await start_chat(JoinUsers=3)
    for n in range(5):
        await (await user(f"m{n}")).join("big")
    joiner = await user("late")
    joined = await joiner.join("big")
    assert joined["users"][0] == "late"  # the joiner is always listed
    assert len(joined["users"]) == 3
    assert joined["userCount"] == 6


async def test_a_join_lists_members_within_a_byte_bound(start_chat, user):
    await start_chat(JoinUsersBytes=2000)
    for n in range(40):
        await (await user(f"{n:03}" + "é" * 147)).join("big")  # 150 characters, 297 bytes
    joined = await (await user("late")).join("big")
    assert json_size(joined["users"]) <= 2000
    assert 1 < len(joined["users"]) < 41
    assert joined["userCount"] == 41


async def test_the_join_reply_stays_small_whatever_is_stored(start_chat, user):
    """The attack of our issue: a 60,000-character name said ~60 messages; the reply was
    ~3 MB, and daphne closed every WebSocket client that joined."""
    await start_chat()

    def store_hostile_history() -> None:
        room = Room.objects.create(name="target")
        Message.objects.bulk_create(
            Message(room=room, sender="m" * 60_000, content="x" * 4000) for _ in range(60)
        )

    await sync_to_async(store_hostile_history)()
    for n in range(200):
        await (await user(f"member{n:03}" + "z" * 140)).join("target")
    joined = await (await user("bystander")).join("target")
    assert json_size(joined["history"]) <= 64 * 1024
    assert json_size(joined["users"]) <= 64 * 1024
    envelope = {"Trace": "0" * 32, "Error": "", "Result": joined}
    assert len(json.dumps(envelope, ensure_ascii=False).encode()) < 140 * 1024  # well under 1 MiB


async def test_pushes_are_bounded(start_chat, user):
    await start_chat()
    names = ["a" * 150, "b" * 150]
    ann, bob = await user(names[0]), await user(names[1])
    room = "r" * 100
    await ann.join(room)
    await bob.join(room)
    await bob.say(room, "😀" * 4000)
    await bob.say(room, "\x01" * 4000, target=names[0])
    await bob.leave(room)
    pushes = [*ann.connection.pushes, *bob.connection.pushes]  # the room's messages too
    assert {topic for topic, _ in pushes} == {"Chat/OnJoin", "Chat/OnChat", "Chat/OnLeave"}
    # Bounded by a name, a room name, a target and a message at their longest.
    assert max(len(payload) for _, payload in pushes) <= 4000 * 6 + 3 * 150 * 4 + 100 * 4 + 100
