"""mqant's XaXb robot (mqantserver's ``robot/xaba``) in paho-mqtt, for end-to-end tests.

As the Go robot does: MQTT 3.1, the client id "1" on every connection, no SUBSCRIBE,
requests at QoS 0 on ``<topic>/<n>`` with a counter per connection from 1; ``run_worker``
asks for a table, enters it and sits down; then the pushes drive it: each ``XaXb/Betting``
stakes a random target 100 to 999 ms later, and ``XaXb/OnStop`` or ``XaXb/Exit`` disconnects.
Every PUBLISH it receives is noted in ``log`` with the time it came.
"""

import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from tests.e2e.clients import ChatClient


class XaXbRobot(ChatClient):
    """One robot; ``where`` is "tcp", or a WebSocket path ("/", "/mqtt") on ``port``."""

    def __init__(self, port: int, where: str = "tcp", *, stakes: bool = True) -> None:
        self.log: list[tuple[float, str, Any]] = []  # (monotonic time, topic, JSON payload)
        self.stake_topics: list[str] = []
        self.stakes = stakes
        self._lock = threading.Lock()
        transport, path = ("tcp", "/") if where == "tcp" else ("websockets", where)
        super().__init__(
            port, mqtt31=True, transport=transport, path=path, client_id="1", qos=0
        )  # fmt: skip
        self.client.on_message = self._on_message

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic, payload = message.topic, bytes(message.payload)
        try:
            body = json.loads(payload)
        except ValueError:
            body = payload
        with self._lock:
            self.log.append((time.monotonic(), topic, body))
        self.messages.put((topic, payload))
        if topic == "XaXb/Betting" and self.stakes:
            later = threading.Timer(random.uniform(0.1, 0.999), self._stake)
            later.daemon = True
            later.start()
        elif topic in ("XaXb/OnStop", "XaXb/Exit"):
            self.client.disconnect()

    def _stake(self) -> None:
        topic = f"XaXb/HD_Stake/{next(self.msgids)}"
        with self._lock:
            self.stake_topics.append(topic)
        self.client.publish(topic, json.dumps({"Target": random.randrange(10)}), qos=0)

    def run_worker(self) -> str:
        """mqant's RunWorker: get a table, enter it, sit down; the table's id."""
        got = self.request("XaXb/HD_GetUsableTable", {"gameName": "xaxb"})
        assert got["Error"] == "", got
        big_room_id: str = got["Result"]["BigRoomId"]
        entered = self.request("XaXb/HD_Enter", {"BigRoomId": big_room_id})
        assert entered == {"Trace": entered["Trace"], "Error": "", "Result": big_room_id}
        sat = self.request("XaXb/HD_SitDown", {"BigRoomId": big_room_id})
        assert sat["Error"] == "", sat
        assert sat["Result"] == "success"
        return big_room_id

    def pushes(self, topic: str) -> list[tuple[float, Any]]:
        """The (time, body) of each PUBLISH on ``topic`` so far."""
        with self._lock:
            return [(when, body) for when, t, body in self.log if t == topic]

    def topics(self) -> list[str]:
        with self._lock:
            return [t for _, t, _ in self.log]

    def wait_until(self, done: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
        """Poll ``done`` until it holds, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}; got {self.topics()}")
            time.sleep(0.02)

    def wait_push(self, topic: str, count: int = 1, timeout: float = 10) -> Any:
        """The body of the ``count``-th PUBLISH on ``topic``, once it came."""
        self.wait_until(lambda: len(self.pushes(topic)) >= count, timeout, f"{count} {topic}")
        return self.pushes(topic)[count - 1][1]

    def replies(self, topics: list[str]) -> list[Any]:
        """The replies that came on ``topics`` (a stake's), in order."""
        with self._lock:
            found = {t: body for _, t, body in self.log if t in topics}
        return [found.get(t) for t in topics]
