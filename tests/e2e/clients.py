"""A paho-mqtt client that talks to the gate the way mqant's clients do."""

import itertools
import json
import queue
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class ChatClient:
    """paho-mqtt over WebSocket (or TCP); every PUBLISH the server sends lands in a queue."""

    def __init__(
        self,
        port: int,
        *,
        mqtt31: bool = False,
        transport: str = "websockets",
        source: str = "",
        keepalive: int = 30,
        credentials: tuple[str, str] | None = None,
        path: str = "/mqtt",
        client_id: str = "",
        qos: int = 1,
        msgids: Iterator[int] | None = None,
        tls_ca: str = "",
        headers: dict[str, str] | None = None,
        clean_session: bool = True,
        mqtt5: bool = False,
        session_expiry: int | None = None,
    ) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.pending: list[tuple[str, bytes]] = []
        self.msgids = msgids if msgids is not None else itertools.count(1)
        self.qos = qos  # of requests: mqant's web client sends QoS 1, its robots QoS 0
        self.closed = False
        protocol = mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv31 if mqtt31 else mqtt.MQTTv311
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            transport=transport,  # type: ignore[arg-type]
            clean_session=None if mqtt5 else clean_session,
        )
        if transport == "websockets":
            self.client.ws_set_options(path=path, headers=headers)
        if tls_ca:  # TLS (mqtts, wss), the server's certificate signed by this CA file
            self.client.tls_set(ca_certs=tls_ca)
        self.qos_of: dict[str, int] = {}  # the QoS of the last PUBLISH on each topic
        self.client.on_message = self._received
        self.disconnects = 0  # the server closing on it (paho then reconnects by itself)
        self.disconnect_reasons: list[Any] = []  # the reason codes (MQTT 5: the server's)
        self.client.on_disconnect = self._count_disconnect
        self.connacks: queue.Queue[tuple[bool, Any, Any]] = queue.Queue()  # present, code, props
        self.client.on_connect = lambda _c, _u, flags, code, props: self.connacks.put(
            (flags.session_present, code, props)
        )
        if credentials is not None:  # a user name and its password, sent in CONNECT
            self.client.username_pw_set(*credentials)
        # source: a loopback address such as 127.0.0.7, the client's address for the server.
        connect_properties = None
        if mqtt5 and session_expiry is not None:
            connect_properties = Properties(PacketTypes.CONNECT)
            connect_properties.SessionExpiryInterval = session_expiry
        self.client.connect(
            "127.0.0.1",
            port,
            keepalive=keepalive,
            bind_address=source,
            clean_start=clean_session if mqtt5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=connect_properties,
        )
        self.client.loop_start()

    def _received(self, _client: Any, _userdata: Any, message: Any) -> None:
        self.qos_of[message.topic] = message.qos
        self.messages.put((message.topic, bytes(message.payload)))

    def _count_disconnect(
        self, _client: Any, _userdata: Any, _flags: Any, code: Any, *_: Any
    ) -> None:
        self.disconnects += 1
        self.disconnect_reasons.append(code)

    def connack(self, timeout: float = 10) -> tuple[bool, Any, Any]:
        """(session present, reason code, properties) of the next CONNACK."""
        return self.connacks.get(timeout=timeout)

    def drop(self) -> None:
        """Vanish as a phone losing its network does: no DISCONNECT, the socket just closes
        (and paho does not reconnect)."""
        self.closed = True
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.client.disconnect()
            self.client.loop_stop()

    def request(self, module_handler: str, body: Any, timeout: float = 10) -> dict[str, Any]:
        """Publish ``body`` on ``module_handler/<msgid>`` (QoS 1, as mqant's web client does)
        and return the envelope replied on that exact topic."""
        topic = f"{module_handler}/{next(self.msgids)}"
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.client.publish(topic, payload, qos=self.qos)
        reply: dict[str, Any] = json.loads(self.wait_for(topic, timeout))
        return reply

    def wait_for(self, topic: str, timeout: float = 10) -> bytes:
        """The payload of the next PUBLISH on ``topic``; others are kept for later."""
        for i, (t, payload) in enumerate(self.pending):
            if t == topic:
                del self.pending[i]
                return payload
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                t, payload = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if t == topic:
                return payload
            self.pending.append((t, payload))
        raise AssertionError(f"no PUBLISH on {topic!r} within {timeout} s; got {self.pending}")

    def wait_json(self, topic: str, timeout: float = 10) -> Any:
        return json.loads(self.wait_for(topic, timeout))

    def nothing_on(self, topic: str, within: float = 0.5) -> bool:
        try:
            self.wait_for(topic, within)
        except AssertionError:
            return True
        return False


def mqant_place(server: Any, where: str) -> tuple[str, str, int]:
    """(paho's transport, the path, the port) of a client placed as mqant's are: ``where``
    is "tcp", a WebSocket path on the ASGI server's port, or "ws:" and a path on the gate's
    own WebSocket port (``server``: a tests.e2e.server.ServerProcess)."""
    if where == "tcp":
        return "tcp", "/", server.tcp_port
    if where.startswith("ws:"):
        return "websockets", where.removeprefix("ws:"), server.ws_port
    return "websockets", where, server.port
