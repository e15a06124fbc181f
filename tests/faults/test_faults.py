"""The product survives its own parts failing: while six members chat across two gates,
Redis, PostgreSQL, the module process and a gate fail one after the other, on one shared
deployment, in this order. Each test heals what the last one left, breaks one part, and
checks what must hold afterwards without any client action (tests/faults/scenario.py).
``pytest -m faults -p no:randomly -s`` runs them alone and prints each fault's figures."""

import signal
import threading
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gate.mqtt import ConnAck, Connect, Decoder, Publish, encode, encode_publish
from tests.faults import scenario
from tests.faults.deployment import BOUND, ROOM, SHUTDOWN_TIMEOUT, Deployment, wait_until
from tests.faults.figures import OUTCOMES, Outcome
from tests.faults.load import Member

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.timeout(150)]


def test_redis_killed_and_restarted_empty(deployment: Deployment) -> None:
    redis = deployment.redis
    outcome = scenario.outage(deployment, "redis killed", redis.kill, redis.start)
    assert not outcome.problems, outcome.problems


def test_redis_paused(deployment: Deployment) -> None:
    redis = deployment.redis
    outcome = scenario.outage(deployment, "redis paused", redis.pause, redis.resume)
    assert not outcome.problems, outcome.problems


def test_postgres_refused(deployment: Deployment) -> None:
    proxy = deployment.proxy
    outcome = scenario.outage(deployment, "postgres refused", proxy.refuse, proxy.resume)
    assert not outcome.problems, outcome.problems


def test_postgres_paused(deployment: Deployment) -> None:
    proxy = deployment.proxy
    outcome = scenario.outage(deployment, "postgres paused", proxy.pause, proxy.resume)
    assert not outcome.problems, outcome.problems


def test_module_process_killed_and_restarted(deployment: Deployment) -> None:
    modules = deployment.modules
    outcome = scenario.outage(deployment, "modules killed", modules.stop, modules.start)
    assert not outcome.problems, outcome.problems


def test_gate_killed(deployment: Deployment) -> None:
    """kill -9 gate1: its members reconnect to gate2 but one, who is gone; the others hear
    of that one's death (the death notice) and of the others' return."""
    outcome = Outcome("gate killed")
    OUTCOMES.append(outcome)
    gate = deployment.gates[0]
    assert gate.process is not None

    def kill() -> None:
        assert gate.process is not None
        gate.process.kill()
        gate.process.wait()

    gate_lost(deployment, outcome, 0, kill, "death notice")
    deployment.start_gate(0)  # two gates again for what follows
    assert not outcome.problems, outcome.problems


def test_gate_sigterm(deployment: Deployment) -> None:
    """SIGTERM to gate2 while a call is in flight there: it answers the call, closes its
    WebSockets with 1001 (going away) and exits within SHUTDOWN_TIMEOUT; its members
    reconnect to gate1 but one, and the others hear of them at once."""
    outcome = Outcome("gate SIGTERM")
    OUTCOMES.append(outcome)
    gate = deployment.gates[1]
    sleeper = InFlight(gate.port)
    exited: list[float] = []

    def stop() -> None:
        assert gate.process is not None
        sleeper.start()
        sleeper.started.wait(5)
        time.sleep(0.5)  # the call is in flight in the module process
        stopping = time.monotonic()
        gate.process.send_signal(signal.SIGTERM)
        exit_wait = threading.Thread(
            target=lambda: exited.append(wait_exit(gate.process, stopping)), daemon=True
        )
        exit_wait.start()
        sleeper.stopping = stopping

    gate_lost(deployment, outcome, 1, stop, "leave notice")
    wait_until(lambda: bool(exited), SHUTDOWN_TIMEOUT + 6)
    sleeper.join(SHUTDOWN_TIMEOUT + 6)
    took = exited[0] if exited else None
    outcome.extra["in-flight call"] = sleeper.describe()
    outcome.extra["exit after SIGTERM"] = "did not exit" if took is None else f"{took:.2f} s"
    outcome.check(sleeper.answered is not None, "the call in flight at SIGTERM was not answered")
    outcome.check(sleeper.close_code == 1001, f"WebSocket closed with {sleeper.close_code}")
    outcome.check(took is not None and took <= SHUTDOWN_TIMEOUT, f"exit took {took} s")
    deployment.start_gate(1)
    assert not outcome.problems, outcome.problems


def gate_lost(dep: Deployment, outcome: Outcome, index: int, lose: Any, notice: str) -> None:
    """Chat, lose gate ``index`` with ``lose()``; its members but the first come back
    through the other gate (log in, rejoin). Checks as scenario.outage does."""
    scenario.heal(dep, outcome)
    marks = scenario.log_lines(dep.workdir)
    chatted = time.monotonic()
    for member in dep.members:
        member.start_chatting(ROOM, BOUND)
    time.sleep(scenario.BASELINE)
    victims = [m for m in dep.members if m.gate == index]
    present = [m for m in dep.members if m.gate != index]
    lose()
    lost = time.monotonic()
    closed = wait_until(lambda: all(m.disconnects for m in victims), 10, every=0.05)
    outcome.extra["its connections closed"] = "no" if closed is None else f"after {closed:.2f} s"
    for victim in victims:
        victim.drop()
        dep.members.remove(victim)
    gone, returning = victims[0], victims[1:]
    other = 1 - index
    back = [m for v in returning if (m := rejoin(dep, outcome, other, v)) is not None]
    for member in back:
        member.start_chatting(ROOM, BOUND)
    chatting = [*present, *back]
    wait_until(lambda: scenario.recovered(chatting, lost) is not None, scenario.RECOVERY_WAIT)
    outcome.recovery = scenario.recovered(chatting, lost)
    outcome.check(outcome.recovery is not None, "no recovery")
    heard = wait_until(
        lambda: all(gone.name in scenario.leaves(m, lost) for m in present), 20, every=0.05
    )
    outcome.extra[notice] = (
        "none within 20 s" if heard is None else f"{notice_delay(present, gone.name, lost):.2f} s"
    )
    joins = {m.name: [p.body.get("user") for p in m.pushed("Chat/OnJoin", lost)] for m in present}
    outcome.check(
        all(
            sorted(set(j) & {v.name for v in returning}) == sorted(v.name for v in returning)
            for j in joins.values()
        ),
        f"Chat/OnJoin for the returning members: {joins}",
    )
    time.sleep(1.0)
    for member in chatting:
        member.stop_chatting(BOUND + 1)
    time.sleep(scenario.SETTLE)
    scenario.measure_requests(outcome, present, lost - scenario.BASELINE)
    scenario.measure_requests(outcome, back, lost)
    cut = sum(1 for v in victims for r in v.requests if r.error == "connection lost")
    outcome.extra["requests cut by the lost gate"] = str(cut)
    outcome.check(
        outcome.past_bound == 0, f"{outcome.past_bound} requests unanswered past {BOUND} s"
    )
    names = [v.name for v in returning]
    scenario.finish(
        outcome, dep, present, [], [gone.name], lost, lost, marks, chatted,
        may_leave=names, killed=[f"gate{index + 1}"],
    )  # fmt: skip


def rejoin(dep: Deployment, outcome: Outcome, gate: int, member: Member) -> Member | None:
    try:
        return dep.join(gate, member.transport, name=member.name)
    except AssertionError as err:
        outcome.problems.append(f"{member.name} could not come back: {err}")
        return None


def notice_delay(present: list[Member], user: str, since: float) -> float:
    """Seconds from ``since`` to the last present member's OnLeave for ``user``."""
    return (
        max(
            min(p.at for p in m.pushed("Chat/OnLeave", since) if p.body.get("user") == user)
            for m in present
        )
        - since
    )


def wait_exit(process: Any, since: float) -> float:
    process.wait(SHUTDOWN_TIMEOUT + 5)
    return float(time.monotonic() - since)


class InFlight(threading.Thread):
    """A WebSocket client with a call in flight (SessionProbe/HD_Sleep, 2 s) when its gate is
    told to stop: was the call answered, with what close code did the socket end."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.started = threading.Event()
        self.stopping: float | None = None
        self.answered: float | None = None
        self.reply: Any = None
        self.close_code: int | None = None

    def run(self) -> None:
        decoder = Decoder()
        with connect(f"ws://127.0.0.1:{self.port}/mqtt", subprotocols=["mqtt"]) as ws:  # type: ignore[list-item]
            ws.send(encode(Connect("MQTT", 4, "in-flight", True, 60)))
            decoder.receive_data(ws.recv(5))  # type: ignore[arg-type]
            assert decoder.next_packet() == ConnAck(0)
            topic = "SessionProbe/HD_Sleep/1"
            ws.send(encode_publish(topic, b'{"seconds": 2}', qos=1, packet_id=1))
            self.started.set()
            try:
                while True:
                    decoder.receive_data(ws.recv(SHUTDOWN_TIMEOUT + 5))  # type: ignore[arg-type]
                    for packet in decoder.packets():
                        if isinstance(packet, Publish) and packet.topic == topic:
                            self.answered, self.reply = time.monotonic(), packet.payload
            except ConnectionClosed as closed:
                self.close_code = closed.rcvd.code if closed.rcvd is not None else None
            except TimeoutError:
                pass

    def describe(self) -> str:
        if self.answered is None or self.stopping is None:
            return f"not answered; WebSocket close code {self.close_code}"
        return (
            f"answered {self.answered - self.stopping:.2f} s after SIGTERM ({self.reply!r}); "
            f"WebSocket close code {self.close_code}"
        )
