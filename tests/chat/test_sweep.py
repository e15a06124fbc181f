"""Expiry: messages older than MessageMaxAge and rooms left empty and unused are deleted, a
bounded batch per pass, by ``manage.py sweepchat`` and by the Chat module's own ``run()``."""

import asyncio
import datetime
import io

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.utils import timezone

from chat.limits import ChatLimits
from chat.models import Message, Room
from chat.sweep import SweepResult, sweep_pass

DAY = datetime.timedelta(days=1)


def room(name: str, *, idle: datetime.timedelta = datetime.timedelta(0)) -> Room:
    made = Room.objects.create(name=name)
    Room.objects.filter(pk=made.pk).update(active_at=timezone.now() - idle)
    return made


def messages(where: Room, count: int, *, age: datetime.timedelta) -> None:
    made = Message.objects.bulk_create(
        Message(room=where, sender="u", content=f"m{n}") for n in range(count)
    )
    ids = [m.pk for m in made]
    Message.objects.filter(pk__in=ids).update(created_at=timezone.now() - age)


def names() -> set[str]:
    return set(Room.objects.values_list("name", flat=True))


@pytest.mark.django_db
def test_a_pass_deletes_expired_messages_a_batch_at_a_time():
    limits = ChatLimits(message_max_age=30 * 24 * 3600, sweep_batch=3)
    kept, old = room("kept"), room("old")
    messages(kept, 2, age=29 * DAY)
    messages(old, 5, age=31 * DAY)
    assert sweep_pass(limits=limits) == SweepResult(messages=3, rooms=0)
    assert sweep_pass(limits=limits) == SweepResult(messages=2, rooms=0)
    assert sweep_pass(limits=limits) == SweepResult()
    assert Message.objects.filter(room=kept).count() == 2
    assert not Message.objects.filter(room=old).exists()


@pytest.mark.django_db
def test_a_pass_deletes_unused_empty_rooms_but_not_live_or_busy_ones():
    limits = ChatLimits(empty_room_max_age=24 * 3600, message_max_age=0)
    room("unused", idle=2 * DAY)
    room("recent", idle=DAY / 2)
    room("live", idle=2 * DAY)  # someone has been in it for two days, silent
    messages(room("talked-in", idle=2 * DAY), 1, age=2 * DAY)
    assert sweep_pass(limits=limits, live_rooms={"live"}) == SweepResult(rooms=1)
    assert names() == {"recent", "live", "talked-in"}


@pytest.mark.django_db
def test_quotas_and_expiries_of_0_are_off():
    limits = ChatLimits(message_max_age=0, empty_room_max_age=0)
    messages(room("ancient", idle=1000 * DAY), 1, age=1000 * DAY)
    room("empty", idle=1000 * DAY)
    assert sweep_pass(limits=limits) == SweepResult()


@pytest.mark.django_db
def test_sweepchat_runs_passes_until_nothing_is_due(settings):
    settings.MQANT = {
        **settings.MQANT,
        "CONFIG": None,
        "MODULE_SETTINGS": {"Chat": {"SweepBatch": 2, "MessageMaxAge": 3600}},
    }
    messages(room("old", idle=3 * DAY), 7, age=2 * DAY)
    messages(room("new"), 1, age=DAY / 48)
    for n in range(5):
        room(f"empty{n}", idle=3 * DAY)
    out = io.StringIO()
    call_command("sweepchat", stdout=out)
    # "old" went too, in the pass after the one that deleted its last message.
    assert out.getvalue().strip() == "deleted 7 expired message(s) and 6 unused room(s)"
    assert names() == {"new"}


@pytest.mark.django_db
def test_sweepchat_stops_after_max_passes(settings):
    settings.MQANT = {**settings.MQANT, "MODULE_SETTINGS": {"Chat": {"SweepBatch": 1}}}
    messages(room("old"), 3, age=40 * DAY)
    out = io.StringIO()
    call_command("sweepchat", "--max-passes", "2", stdout=out)
    assert out.getvalue().startswith("deleted 2 expired message(s)")


@pytest.mark.django_db(transaction=True)
async def test_the_chat_module_sweeps_by_itself(start_chat, user):
    def old_history() -> None:
        messages(room("old"), 2, age=40 * DAY)  # joined lately: the room stays
        room("unused", idle=3 * DAY)
        room("here", idle=3 * DAY)

    await sync_to_async(old_history)()
    await start_chat(SweepInterval=0.05)
    ann = await user("ann")
    await ann.join("here")  # someone is in it: kept
    await sync_to_async(Room.objects.filter(name="here").update)(active_at=timezone.now() - 3 * DAY)
    for _ in range(100):
        if await sync_to_async(names)() == {"here", "old"}:
            break
        await asyncio.sleep(0.05)
    assert await sync_to_async(names)() == {"here", "old"}
    assert not await sync_to_async(Message.objects.exists)()
