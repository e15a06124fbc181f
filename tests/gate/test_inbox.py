"""The gate process's inbox on the in-memory layer: events reach the connection their
address names, in order, and the process keeps its group memberships alive."""

import asyncio
from typing import Any

import pytest
from channels.layers import get_channel_layer

from gate import inbox as inbox_module
from gate.inbox import Inbox
from gate.inorder import InOrder
from mqant import Session, owners, runtime
from mqant.ops import Deliver, encode_deliver


class Recorder:
    """Stands in for a connection's SessionHost: records the events posted to it; one whose
    payload is in ``waits`` takes that long."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.queue = InOrder(lambda: "recorder")
        self.got = asyncio.Event()
        self.waits: dict[bytes, float] = {}

    def post(self, event: Deliver) -> None:
        self.queue.add(lambda: self.handle(event))

    async def handle(self, event: Deliver) -> None:
        if event.payload in self.waits:
            await asyncio.sleep(self.waits[event.payload])
        self.events.append(event)
        self.got.set()


async def started_inbox() -> Inbox:
    return (await runtime.start([Inbox()])).part(Inbox)


async def stop() -> None:
    await runtime.stop()


async def test_an_event_reaches_the_connection_its_address_names():
    box = await started_inbox()
    try:
        first, second = Recorder(), Recorder()
        box.register("a", first)  # type: ignore[arg-type]
        box.register("b", second)  # type: ignore[arg-type]
        process, key = owners.split(box.address("b"))
        assert (process, key) == (box.channel, "b")
        layer = get_channel_layer()
        await layer.send(process, encode_deliver(Deliver("gone", "t", b"0")))  # dropped
        await layer.send(process, encode_deliver(Deliver(key, "t", b"1")))
        async with asyncio.timeout(3):
            await second.got.wait()
        assert second.events == [Deliver(key, "t", b"1")]
        assert first.events == []
    finally:
        await stop()


async def test_a_connections_events_run_in_order_while_one_waits():
    recorder = Recorder()
    recorder.waits = {b"1": 0.05, b"3": 0.01}
    for n in (b"1", b"2", b"3"):
        recorder.post(Deliver("a", "t", n))
    async with asyncio.timeout(3):
        while len(recorder.events) < 3:
            await asyncio.sleep(0.01)
    assert [e.payload for e in recorder.events] == [b"1", b"2", b"3"]
    assert recorder.queue._task is None  # no task is left once the events are handled


async def test_group_memberships_are_renewed(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(inbox_module, "GROUP_RENEW_SECONDS", 0.05)
    box = await started_inbox()
    try:
        member = Recorder()
        await box.add("mqant.group.renewed", member)  # type: ignore[arg-type]
        layer = get_channel_layer()
        joined = layer.groups["mqant.group.renewed"][box.channel]
        await asyncio.sleep(0.2)
        assert layer.groups["mqant.group.renewed"][box.channel] > joined
        await box.discard("mqant.group.renewed", member)  # type: ignore[arg-type]
        assert "mqant.group.renewed" not in layer.groups
    finally:
        await stop()


class Writer:
    """Stands in for a connection: records each write of several PUBLISHes."""

    def __init__(self, key: str) -> None:
        self.writes: list[list[tuple[str, bytes]]] = []
        self.session = Session(
            ip="127.0.0.1", network="tcp", session_id=key, server_id="g", channel=key
        )

    def group_names(self) -> list[str]:
        return []

    async def deliver_many(self, packets: Any) -> None:
        self.writes.append(list(packets))


async def test_a_batch_is_one_message_per_gate_and_one_write_per_connection(
    settings: Any, monkeypatch: pytest.MonkeyPatch
):
    settings.MQANT = {**settings.MQANT, "RPC_LOCAL_SHORTCUT": False}  # as from elsewhere
    box = await started_inbox()
    try:
        a, b = Writer("a"), Writer("b")
        box.register("a", a)  # type: ignore[arg-type]
        box.register("b", b)  # type: ignore[arg-type]
        layer = get_channel_layer()
        sent: list[dict[str, Any]] = []
        real_send = layer.send

        async def counted(channel: str, message: dict[str, Any]) -> None:
            sent.append(message)
            await real_send(channel, message)

        monkeypatch.setattr(layer, "send", counted)
        await owners.deliver_batches(
            {
                box.address("a"): [("G/OnMove", b"1"), ("G/OnAdd", b"2")],
                box.address("b"): [("G/OnMove", b"1")],
                box.address("gone"): [("G/OnMove", b"1")],  # dropped at the gate
                "": [("G/OnMove", b"1")],  # no connection: nowhere to send
            }
        )
        async with asyncio.timeout(3):
            while not (a.writes and b.writes):
                await asyncio.sleep(0.01)
        assert [m["type"] for m in sent if m["type"].startswith("gate.")] == ["gate.batch"]
        assert a.writes == [[("G/OnMove", b"1"), ("G/OnAdd", b"2")]]
        assert b.writes == [[("G/OnMove", b"1")]]
    finally:
        await stop()


def test_a_malformed_batch_is_no_event():
    from mqant.ops import Batch, decode_event, encode_batch

    batch = Batch((("k", (("t", b"p"),)),))
    assert decode_event(dict(encode_batch(batch))) == batch
    for items in ([["k", [["t", "text"]]]], [[1, [["t", b"p"]]]], [["k"]], "x", None):
        assert decode_event({"type": "gate.batch", "items": items}) is None
