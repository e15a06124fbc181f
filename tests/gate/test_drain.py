"""The gate's graceful stop (gate/drain.py) in one process, through the WebSocket consumer:
calls in flight answered, new calls refused, close code 1001, the modules told of each end."""

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from gate import drain
from gate.calls import SHUTTING_DOWN, Calls
from gate.connection import MQTTConnection
from gate.consumers import MQTTConsumer
from gate.mqtt.codec import Decoder, encode
from gate.mqtt.packets import ConnAck, Connect, Publish
from mqant import Module, Session, register_module

closed_sessions: list[str] = []


@register_module
class Napper(Module):
    module_type = "DrainNap"

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.register_go("HD_Nap", self.nap)

    async def nap(self, session: Session, msg: dict[str, Any]) -> str:
        await asyncio.sleep(float(msg["seconds"]))
        return "napped"

    async def on_session_closed(self, session: Session) -> None:
        closed_sessions.append(session.session_id)


class Client:
    def __init__(self) -> None:
        self.ws = WebsocketCommunicator(MQTTConsumer.as_asgi(), "/mqtt", subprotocols=["mqtt"])
        self.decoder = Decoder()
        self.packets: list[Any] = []

    async def open(self) -> Any:
        assert (await self.ws.connect())[0]
        await self.ws.send_to(bytes_data=encode(Connect("MQTT", 4, "drain", True, 60)))
        return await self.receive()

    async def call(self, topic: str, body: Any) -> None:
        await self.ws.send_to(bytes_data=encode(Publish(topic, json.dumps(body).encode())))

    async def receive(self, timeout: float = 3) -> Any:
        while not self.packets:
            message = await self.ws.receive_output(timeout)
            if message["type"] == "websocket.close":
                return message
            self.decoder.receive_data(message["bytes"])
            self.packets.extend(iter(self.decoder.next_packet, None))
        return self.packets.pop(0)

    async def replies(self, count: int) -> dict[str, Any]:
        found: dict[str, Any] = {}
        while len(found) < count:
            packet = await self.receive()
            assert isinstance(packet, Publish), packet
            found[packet.topic] = json.loads(packet.payload)
        return found


@pytest.fixture(autouse=True)
def _running_again() -> Iterator[None]:
    yield
    MQTTConnection.stopping = False


@pytest.fixture
def budget(settings: Any) -> Any:
    def set_to(seconds: float) -> None:
        settings.MQANT = {**settings.MQANT, "SHUTDOWN_TIMEOUT": seconds}

    return set_to


async def test_calls_in_flight_are_answered_then_the_websocket_closes_going_away(
    mqant_started, budget
):
    budget(5)
    client = Client()
    before = set(MQTTConnection.live)  # earlier tests' connections may be left
    assert await client.open() == ConnAck(0)
    (connection,) = MQTTConnection.live - before
    session_id = connection.session.session_id
    for n in range(3):
        await client.call(f"DrainNap/HD_Nap/{n}", {"seconds": 0.3})
    await asyncio.sleep(0.05)
    stopping = asyncio.create_task(drain.stop())
    await asyncio.sleep(0.05)
    await client.call("HelloWorld/HD_Say/late", {"say": "late"})

    replies = await client.replies(4)
    assert replies.pop("HelloWorld/HD_Say/late")["Error"] == SHUTTING_DOWN
    assert [r["Result"] for r in replies.values()] == ["napped"] * 3
    assert await client.receive() == {"type": "websocket.close", "code": 1001}
    await client.ws.disconnect()  # the client answers the close
    await asyncio.wait_for(stopping, 5)
    assert not MQTTConnection.live
    for _ in range(100):  # the module's handler runs in a task of its own
        if session_id in closed_sessions:
            break
        await asyncio.sleep(0.01)
    assert session_id in closed_sessions  # the modules heard of the end


async def test_a_call_past_the_budget_is_answered_shutting_down(mqant_started, budget):
    budget(1)  # the calls get half of it
    client = Client()
    await client.open()
    await client.call("DrainNap/HD_Nap/long", {"seconds": 3})
    await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    stopping = asyncio.create_task(drain.stop())
    reply = (await client.replies(1))["DrainNap/HD_Nap/long"]
    assert reply["Error"] == SHUTTING_DOWN
    assert await client.receive() == {"type": "websocket.close", "code": 1001}
    await asyncio.wait_for(stopping, 2)  # no disconnect: the drain drops the connection itself
    assert asyncio.get_running_loop().time() - started < 1
    assert not MQTTConnection.live


async def test_a_connect_while_stopping_is_refused_server_unavailable(mqant_started, budget):
    budget(1)
    await drain.stop()
    client = Client()
    assert await client.open() == ConnAck(3)
    assert await client.receive() == {"type": "websocket.close", "code": 1001}
    await client.ws.disconnect()


def test_budget_keeps_time_for_closing_and_for_the_modules():
    long = drain.Budget(60, now=100)
    assert (long.calls, long.gate, long.end) == (156, 158, 160)
    short = drain.Budget(1, now=0)
    assert (short.calls, short.gate, short.end) == (0.5, 0.75, 1)


class Recorder:
    def __init__(self) -> None:
        self.refused: list[tuple[str, str]] = []
        self.gate = asyncio.Event()

    async def run(self) -> None:
        await self.gate.wait()

    def start(self, calls: Calls[str], topic: str) -> None:
        refusal = calls.start(topic, self.run)
        if refusal is not None:
            self.refused.append((topic, refusal.error))


@pytest.mark.parametrize("ordered", [False, True])
async def test_calls_drain_then_give_up(settings, ordered):
    settings.MQANT = {**settings.MQANT, "ORDERED_CALLS": ordered}
    recorder = Recorder()
    calls: Calls[str] = Calls()
    recorder.start(calls, "M/HD_A/1")
    recorder.start(calls, "M/HD_B/2")
    await asyncio.sleep(0)
    calls.draining = True
    recorder.start(calls, "M/HD_C/3")
    assert recorder.refused == [("M/HD_C/3", SHUTTING_DOWN)]
    idle = asyncio.ensure_future(calls.idle())
    await asyncio.sleep(0.01)
    assert not idle.done()  # two calls still run (or wait their turn)
    given_up = calls.give_up()
    await asyncio.wait_for(idle, 1)
    assert sorted(given_up) == ["M/HD_A/1", "M/HD_B/2"]


async def test_idle_returns_once_the_calls_end():
    recorder = Recorder()
    calls: Calls[str] = Calls()
    recorder.start(calls, "M/HD_A/1")
    idle = asyncio.ensure_future(calls.idle())
    await asyncio.sleep(0.01)
    assert not idle.done()
    recorder.gate.set()
    await asyncio.wait_for(idle, 1)
    assert recorder.refused == []


async def test_a_signal_shuts_down_first_then_hands_the_signal_on():
    from mqant.asgi import MqantApplication

    stopped = asyncio.Event()

    async def hook() -> None:
        await stopped.wait()

    application = MqantApplication(None, on_shutdown=[hook])
    handed_on: list[str] = []
    application._stop_on_signal(lambda: handed_on.append("first"))
    await asyncio.sleep(0.01)
    assert handed_on == []  # the shutdown runs first
    stopped.set()
    for _ in range(100):
        if handed_on:
            break
        await asyncio.sleep(0.01)
    assert handed_on == ["first"]
    application._stop_on_signal(lambda: handed_on.append("after"))  # stopped: at once
    assert handed_on == ["first", "after"]


async def test_a_second_signal_gives_up_the_shutdown():
    from mqant.asgi import MqantApplication

    async def hook() -> None:
        await asyncio.sleep(10)

    application = MqantApplication(None, on_shutdown=[hook])
    handed_on: list[str] = []
    application._stop_on_signal(lambda: handed_on.append("first"))
    await asyncio.sleep(0.01)
    application._stop_on_signal(lambda: handed_on.append("second"))
    for _ in range(100):
        if handed_on:
            break
        await asyncio.sleep(0.01)
    assert handed_on == ["first"]  # handed on once, by the given-up shutdown
    await application.shutdown()  # returns at once: the server's own trigger


async def test_a_signal_is_handled_in_a_context_of_its_own():
    """A signal interrupts whatever runs, a task's code inside a thread-sensitive
    sync_to_async included: the stop it starts must not inherit that context, or every
    database write of the drain fails ("Single thread executor already being used")."""
    import signal as signals

    from asgiref.sync import SyncToAsync

    from mqant import asgi

    seen: list[bool] = []
    token = SyncToAsync.deadlock_context.set(True)  # as inside sync_to_async
    try:
        asgi._deliver(
            asyncio.get_running_loop(),
            lambda _hand_on: seen.append(SyncToAsync.deadlock_context.get(False)),
            lambda: None,
            signals.SIGTERM,
            None,
        )
    finally:
        SyncToAsync.deadlock_context.reset(token)
    await asyncio.sleep(0.01)
    assert seen == [False]
