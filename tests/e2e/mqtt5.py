"""paho-mqtt 2 speaking MQTT 5.0 as a user's program does, for the end-to-end tests: what the
server sends that such a program sees (CONNACK, PUBLISH, PUBACK, SUBACK, DISCONNECT) lands in
a queue with its properties, and every wait is bounded."""

import json
import queue
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.conftest import require_service

TIMEOUT = 10.0  # seconds: any one packet the tests wait for
ENDED = -1  # in place of a PUBACK's packet id: the connection ended
TRANSPORTS = ("tcp", "websockets")
# mqant's HelloWorld module, called as MQTT 5.0 clients call it.
SAY = "HelloWorld/HD_Say"
NOPE = "HelloWorld/HD_Nope"
NOT_FOUND = "Remote function(HD_Nope) not found"


class Ports(Protocol):
    """Where a server listens (tests.e2e.server.ServerProcess):
    MQTT over TCP at ``tcp_port``, over WebSocket at ws://127.0.0.1:``port``/mqtt."""

    tcp_port: int
    port: int


def properties_of(properties: Properties | None) -> dict[str, Any]:
    """The properties a packet carried, by paho's names ("CorrelationData", "ReasonString")."""
    if properties is None:
        return {}
    names = (name.replace(" ", "") for name in properties.names)  # "Reason String"
    return {name: getattr(properties, name) for name in names if hasattr(properties, name)}


@dataclass(frozen=True)
class Reply:
    """A reason code and the properties of the packet that carried it (CONNACK, PUBACK,
    DISCONNECT). ``from_server``: for a DISCONNECT, False when the connection only closed."""

    code: int
    properties: dict[str, Any]
    from_server: bool = True

    @property
    def reason_string(self) -> str | None:
        value = self.properties.get("ReasonString")
        return None if value is None else str(value)


@dataclass(frozen=True)
class Message:
    """A PUBLISH the server sent."""

    topic: str
    payload: bytes
    properties: dict[str, Any]

    def json(self) -> Any:
        return json.loads(self.payload)

    @property
    def correlation(self) -> bytes | None:
        value = self.properties.get("CorrelationData")
        return None if value is None else bytes(value)


T = TypeVar("T")


def _get(source: "queue.Queue[T]", timeout: float, what: str) -> T:
    try:
        return source.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"Expected {what} within {timeout} s, got nothing") from None


class V5Client:
    """An MQTT 5.0 paho client of 127.0.0.1:``port`` over ``transport`` ("tcp" or "websockets",
    at ``path``), connected once the constructor returns (``connack`` holds the answer, which may
    be a refusal). It never reconnects: a test sees each DISCONNECT once."""

    def __init__(
        self,
        port: int,
        *,
        transport: str = "tcp",
        path: str = "/mqtt",
        client_id: str = "",
        connect_properties: Properties | None = None,
    ) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self.pending: list[Message] = []  # PUBLISHes received while waiting for another
        self._connacks: queue.Queue[Reply | None] = queue.Queue()  # None: closed before
        self._acks: queue.Queue[tuple[int, Reply]] = queue.Queue()
        self._acked: dict[int, Reply] = {}
        self._subacks: queue.Queue[tuple[int, list[int]]] = queue.Queue()
        self.disconnects: queue.Queue[Reply] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            transport=transport,  # type: ignore[arg-type]
            reconnect_on_failure=False,
        )
        if transport == "websockets":
            self.client.ws_set_options(path=path)  # paho offers the subprotocol "mqtt"
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.connect("127.0.0.1", port, keepalive=30, properties=connect_properties)
        self.client.loop_start()
        connack = _get(self._connacks, TIMEOUT, "a CONNACK")
        if connack is None:
            end = self.disconnects.get_nowait()
            raise AssertionError(f"Expected a CONNACK, got the connection's end: {end}")
        self.connack = connack

    def _on_connect(self, _c: Any, _u: Any, _f: Any, code: Any, properties: Any) -> None:
        self._connacks.put(Reply(code.value, properties_of(properties)))

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        properties = properties_of(getattr(message, "properties", None))
        self.messages.put(Message(message.topic, bytes(message.payload), properties))

    def _on_publish(self, _c: Any, _u: Any, mid: int, code: Any, properties: Any) -> None:
        self._acks.put((mid, Reply(code.value, properties_of(properties))))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        self._subacks.put((mid, [code.value for code in codes]))

    def _on_disconnect(self, _c: Any, _u: Any, flags: Any, code: Any, properties: Any) -> None:
        from_server = bool(flags.is_disconnect_packet_from_server)
        reply = Reply(code.value, properties_of(properties), from_server)
        self.disconnects.put(reply)
        self._acks.put((ENDED, reply))  # ends a wait for a PUBACK
        self._connacks.put(None)  # and one for the CONNACK

    def publish(
        self,
        topic: str,
        body: Any,
        *,
        qos: int = 1,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        retain: bool = False,
    ) -> int:
        """Send a PUBLISH (``body`` as JSON unless bytes), with a Response Topic and
        Correlation Data when given; its packet id (paho's mid, for ``ack``)."""
        properties = Properties(PacketTypes.PUBLISH)
        if response_topic is not None:
            properties.ResponseTopic = response_topic
        if correlation is not None:
            properties.CorrelationData = correlation
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        info = self.client.publish(topic, payload, qos, retain, properties)
        return int(info.mid)

    def ack(self, mid: int, timeout: float = TIMEOUT) -> Reply:
        """The PUBACK of the PUBLISH ``mid`` (at QoS 0: paho's own "sent", code 0)."""
        reply = self._ack_or_end(mid, timeout)
        if reply is None:
            raise AssertionError(f"Expected the PUBACK of message {mid}, got the connection's end")
        return reply

    def _ack_or_end(self, mid: int, timeout: float) -> Reply | None:
        """The PUBACK of ``mid``, or None once the connection has ended without it."""
        deadline = time.monotonic() + timeout
        while mid not in self._acked:
            left = max(deadline - time.monotonic(), 0)
            got, reply = _get(self._acks, left, f"the PUBACK of message {mid}")
            if got == ENDED:
                self._acks.put((got, reply))  # for the next wait too
                return None
            self._acked[got] = reply
        return self._acked.pop(mid)

    def subscribe(self, topic: str, *, no_local: bool = False) -> list[int]:
        """SUBSCRIBE at QoS 1 and wait for the SUBACK: its reason codes."""
        options = SubscribeOptions(qos=1, noLocal=no_local)
        _, mid = self.client.subscribe(topic, options=options)
        got, codes = _get(self._subacks, TIMEOUT, f"the SUBACK of {topic!r}")
        if got != mid:
            raise AssertionError(f"Expected the SUBACK of message {mid}, got {got}")
        return codes

    def next_message(
        self, topic: str, correlation: bytes | None = None, timeout: float = TIMEOUT
    ) -> Message:
        """The next PUBLISH on ``topic`` (with that Correlation Data, when given); the others
        are kept for later calls."""

        def wanted(m: Message) -> bool:
            return m.topic == topic and (correlation is None or m.correlation == correlation)

        for i, message in enumerate(self.pending):
            if wanted(message):
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if wanted(message):
                return message
            self.pending.append(message)
        raise AssertionError(
            f"Expected a PUBLISH on {topic!r} (correlation {correlation!r}) within {timeout} s, "
            f"got {self.pending}"
        )

    def nothing_more(self, within: float = 0.3) -> list[Message]:
        """The PUBLISHes that arrive within ``within`` seconds, with those kept pending."""
        time.sleep(within)
        while not self.messages.empty():
            self.pending.append(self.messages.get_nowait())
        return list(self.pending)

    def request(
        self, topic: str, body: Any, *, response_topic: str, correlation: bytes, qos: int = 1
    ) -> Message:
        """MQTT 5.0's request/response: PUBLISH with a Response Topic and Correlation Data,
        the reply is the PUBLISH on the response topic that carries the same data."""
        self.publish(topic, body, qos=qos, response_topic=response_topic, correlation=correlation)
        return self.next_message(response_topic, correlation)

    def publish_until_disconnected(
        self, topic: str, *, limit: int, retain: bool = False
    ) -> tuple[int, Reply]:
        """PUBLISH at QoS 1 on ``topic``, each after the last one's PUBACK, until the server
        ends the connection (``limit`` PUBLISHes at most): how many were sent, and the end.
        One at a time, as a program that waits for its acks does: a server that closes its
        socket with a client's bytes still unread resets the connection, and the client may
        never read the DISCONNECT the server sent before."""
        for sent in range(1, limit + 1):
            if self._ack_or_end(self.publish(topic, {"say": f"n{sent}"}, retain=retain), TIMEOUT):
                continue
            return sent, self.disconnected()
        raise AssertionError(f"Expected a DISCONNECT within {limit} PUBLISHes, got none")

    def disconnected(self, timeout: float = TIMEOUT) -> Reply:
        """The end of the connection: the server's DISCONNECT (``from_server``) or a close."""
        return _get(self.disconnects, timeout, "the connection's end")

    def close(self) -> None:
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()


def auth_method(name: str) -> Properties:
    """CONNECT properties that ask for MQTT 5.0's enhanced authentication by ``name``."""
    properties = Properties(PacketTypes.CONNECT)
    properties.AuthenticationMethod = name
    return properties


def mosquitto_cli(tool: str, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    """Run mosquitto's ``tool`` (mosquitto_rr, mosquitto_pub, mosquitto_sub) with MQTT 5.0
    against 127.0.0.1:``port``; skips without mosquitto-clients (fails in CI)."""
    path = shutil.which(tool)
    if path is None:
        require_service(tool, "apt-get install mosquitto-clients")
    return subprocess.run(
        [path or tool, "-V", "5", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip


def v5_client(server: Ports, transport: str, **options: Any) -> V5Client:
    """A V5Client of ``server`` over ``transport`` ("tcp" or "websockets")."""
    port = server.tcp_port if transport == "tcp" else server.port
    return V5Client(port, transport=transport, **options)


Connect = Callable[..., V5Client]


@contextmanager
def v5_clients(server: Ports, transport: str) -> Iterator[Connect]:
    """A function that opens V5Clients of ``server`` over ``transport`` (its keyword
    arguments: V5Client's); they are all closed at the end."""
    clients: list[V5Client] = []

    def open_client(**options: Any) -> V5Client:
        clients.append(v5_client(server, transport, **options))
        return clients[-1]

    try:
        yield open_client
    finally:
        for client in clients:
            client.close()


def reply_topic() -> str:
    """A response topic of a call's own."""
    return f"replies/{secrets.token_hex(4)}"


def assert_reply(message: Message, *, result: object = None, error: str = "") -> None:
    """``message`` is mqant's envelope (``result`` or ``error``), marked as JSON text."""
    envelope = message.json()
    assert re.fullmatch(r"[0-9a-f]+", envelope["Trace"]), envelope
    assert envelope["Error"] == error, envelope
    if not error:
        assert envelope["Result"] == result, envelope
    assert message.properties.get("ContentType") == "application/json", message
    assert message.properties.get("PayloadFormatIndicator") == 1, message
