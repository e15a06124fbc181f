"""A chatting load for the fault suite: members logged in and in one room, each saying a
numbered message every ``PERIOD`` seconds from a thread of its own, and a record of every
request (sent, answered, error) and every push they got."""

import contextlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

PASSWORD = "sturdy-pass-5521"
PERIOD = 0.25  # seconds between two says of one member
LOST = "connection lost"  # what a request gets when its connection drops first


@dataclass
class Request:
    topic: str
    body: Any
    sent: float
    answered: float | None = None
    error: str | None = None
    result: Any = None
    done: threading.Event = field(default_factory=threading.Event)

    def latency(self, bound: float) -> float:
        """Seconds to the answer; ``bound`` for none (or a later one)."""
        return bound if self.answered is None else min(self.answered - self.sent, bound)


@dataclass(frozen=True)
class Push:
    at: float
    topic: str
    body: Any


class Member:
    """A paho client on one gate, over WebSocket or TCP. Requests may come from any thread:
    replies are matched to them by topic in paho's thread; every other PUBLISH is a push."""

    def __init__(self, name: str, port: int, transport: str, gate: int) -> None:
        self.name, self.port, self.transport, self.gate = name, port, transport, gate
        self.requests: list[Request] = []
        self.pushes: list[Push] = []
        self.disconnects: list[float] = []
        self.closed = False
        self._waiting: dict[str, Request] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._said = itertools.count(1)
        self._chatter: threading.Thread | None = None
        self._stop = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, transport=transport)  # type: ignore[arg-type]
        if transport == "websockets":
            self.client.ws_set_options(path="/mqtt")
        self.client.on_message = self._received
        self.client.on_disconnect = self._dropped
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _received(self, _client: Any, _userdata: Any, message: Any) -> None:
        now = time.monotonic()
        with self._lock:
            request = self._waiting.pop(message.topic, None)
        if request is None:
            self.pushes.append(Push(now, message.topic, json.loads(message.payload)))
            return
        envelope = json.loads(message.payload)
        request.answered, request.error = now, envelope.get("Error", "")
        request.result = envelope.get("Result")
        request.done.set()

    def _dropped(self, *_args: Any) -> None:
        now = time.monotonic()
        self.disconnects.append(now)
        with self._lock:
            cut, self._waiting = list(self._waiting.values()), {}
        for request in cut:
            request.answered, request.error = now, LOST
            request.done.set()

    def request(self, handler: str, body: Any, timeout: float) -> Request:
        """Publish ``body`` on ``handler/<msgid>`` (QoS 1) and wait up to ``timeout`` s."""
        request = Request(f"{handler}/{next(self._ids)}", body, time.monotonic())
        with self._lock:
            self._waiting[request.topic] = request
        self.requests.append(request)
        self.client.publish(request.topic, json.dumps(body).encode(), qos=1)
        request.done.wait(timeout)
        return request

    def say(self, room: str, content: str, timeout: float) -> Request:
        body = {"roomName": room, "content": content, "target": "*"}
        return self.request("Chat/HD_Say", body, timeout)

    def login_and_join(self, room: str, timeout: float) -> Any:
        """Log in (registering the name on first use) and join ``room``; the join's Result."""
        login = self.request(
            "Login/HD_Login", {"userName": self.name, "passWord": PASSWORD}, timeout
        )
        if login.error != "":
            raise AssertionError(f"{self.name} could not log in: {login.error!r}")
        joined = self.request("Chat/HD_JoinChat", {"roomName": room}, timeout)
        if joined.error != "":
            raise AssertionError(f"{self.name} could not join {room}: {joined.error!r}")
        return joined.result

    def start_chatting(self, room: str, bound: float, most: int = 2000) -> None:
        """Say ``<name>#<n>`` every PERIOD s, waiting up to ``bound`` s for each answer."""
        self._stop.clear()

        def chat() -> None:
            for _ in range(most):
                if self._stop.is_set() or self.closed:
                    return
                sent = time.monotonic()
                self.say(room, f"{self.name}#{next(self._said)}", bound)
                self._stop.wait(max(0.0, sent + PERIOD - time.monotonic()))

        self._chatter = threading.Thread(target=chat, name=f"chat {self.name}", daemon=True)
        self._chatter.start()

    def stop_chatting(self, timeout: float) -> None:
        self._stop.set()
        if self._chatter is not None:
            self._chatter.join(timeout)
            self._chatter = None

    def says(self) -> list[Request]:
        return [r for r in self.requests if r.topic.startswith("Chat/HD_Say/")]

    def pushed(self, topic: str, since: float = 0.0) -> list[Push]:
        return [p for p in list(self.pushes) if p.topic == topic and p.at >= since]

    def close(self) -> None:
        """Leave for good: DISCONNECT, as a client that quits does."""
        if not self.closed:
            self.closed = True
            self._stop.set()
            self.client.disconnect()
            self.client.loop_stop()

    def drop(self) -> None:
        """Stop the client without a word (its gate is gone): no reconnect to the old port."""
        if not self.closed:
            self.closed = True
            self._stop.set()
            self.client.loop_stop()
            with contextlib.suppress(Exception):
                self.client.disconnect()
