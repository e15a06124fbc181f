"""Mosquitto, a real MQTT 5.0 broker, set up to stand where our server stands in the MQTT 5.0
interop tests, so that their clients' code (paho, mosquitto_rr, MQTT.js) is proven on a server
that is not ours: a broker process of the test's own (``Mosquitto``), MQTT over WebSocket
relayed to it (``WebSocketBridge``), and a client of it that answers calls as mqant does
(``Responder``)."""

import asyncio
import json
import secrets
import subprocess
import threading
from pathlib import Path
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from tests.conftest import require_service
from tests.e2e.mqtt5 import V5Client
from tests.e2e.server import free_port, wait_for_port

MOSQUITTO = "/usr/sbin/mosquitto"
# Our server's HelloWorld module: its handlers as the responder plays them.
HANDLERS = {"HD_Say": lambda body: f"you say : {body['say']}"}


class WebSocketBridge:
    """``ws://127.0.0.1:<port>/mqtt`` (subprotocol "mqtt", as our server asks), each
    connection relayed byte for byte to the broker at 127.0.0.1:``tcp_port``. Mosquitto's own
    WebSocket listener binds every interface whatever its configuration says; the tests listen
    on the loopback only. Serves from an event loop in a thread of its own."""

    def __init__(self, tcp_port: int) -> None:
        self.tcp_port = tcp_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: Server = asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)
        self.port = int(next(iter(self.server.sockets)).getsockname()[1])

    async def _serve(self) -> Server:
        return await serve(
            self._relay, "127.0.0.1", 0,
            subprotocols=[Subprotocol("mqtt")], process_request=_mqtt_path_only,
        )  # fmt: skip

    async def _relay(self, ws: ServerConnection) -> None:
        if ws.subprotocol != "mqtt":
            await ws.close(1002, f"Expected the subprotocol mqtt, got {ws.subprotocol}")
            return
        reader, writer = await asyncio.open_connection("127.0.0.1", self.tcp_port)

        async def up() -> None:
            async for frame in ws:
                writer.write(frame if isinstance(frame, bytes) else frame.encode())
                await writer.drain()

        async def down() -> None:
            while data := await reader.read(65536):
                await ws.send(data)

        pumps = [asyncio.create_task(up()), asyncio.create_task(down())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            writer.close()
            await ws.close()

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _mqtt_path_only(ws: ServerConnection, request: Request) -> Response | None:
    """The WebSocket at /mqtt; /healthz answers 200, as our server's does (the browser tests
    load their page from there); any other path is not found."""
    if request.path == "/healthz":
        return ws.respond(200, "ok\n")
    if request.path != "/mqtt":
        return ws.respond(404, f"Expected the path /mqtt, got {request.path}\n")
    return None


class Mosquitto:
    """A Mosquitto broker of the test's own: MQTT over TCP on 127.0.0.1:``tcp_port``, over
    WebSocket at ws://127.0.0.1:``port``/mqtt (the names of tests.e2e.server.ServerProcess).
    It refuses retained messages, as our server does (CONNACK Retain Available 0), and a
    PUBLISH with the retain flag is its way to send a DISCONNECT with a reason code (0x9A)."""

    def __init__(self, workdir: Path) -> None:
        self.tcp_port = free_port()
        self.config = workdir / "mosquitto.conf"
        self.log_path = workdir / f"mosquitto-{self.tcp_port}.log"
        self.config.write_text(
            f"listener {self.tcp_port} 127.0.0.1\n"
            "allow_anonymous true\npersistence false\nretain_available false\n"
            "log_dest stdout\nlog_type all\n"
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.bridge: WebSocketBridge | None = None
        self.port = 0

    def start(self) -> "Mosquitto":
        if not Path(MOSQUITTO).exists():
            require_service("Mosquitto", f"no {MOSQUITTO}: apt-get install mosquitto")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.tcp_port, self.process, timeout=10)
            self.bridge = WebSocketBridge(self.tcp_port)
        except BaseException:
            self.stop()
            raise
        self.port = self.bridge.port
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; the bridge after it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None


class Responder:
    """A client of the broker at 127.0.0.1:``port`` that answers ``HelloWorld/<handler>``
    calls the way our server will: to the Response Topic with the Correlation Data (or, with a
    msgid segment, on the call's own topic), mqant's envelope as JSON, Content Type
    "application/json", Payload Format Indicator 1. The callers must subscribe to the reply
    topic (a broker forwards; our server pushes without a subscription)."""

    def __init__(self, port: int) -> None:
        self.v5 = V5Client(port, client_id=f"responder-{secrets.token_hex(4)}")
        self.v5.client.on_message = self._answer
        for topic in ("HelloWorld/+", "HelloWorld/+/+"):  # no_local: not its own replies
            self.v5.subscribe(topic, no_local=True)

    def _answer(self, client: Any, _userdata: Any, message: Any) -> None:
        request = message.properties
        handler, msgid = [*message.topic.split("/"), ""][1:3]
        topic = message.topic if msgid else getattr(request, "ResponseTopic", None)
        if topic is None:
            return  # mqant's fire-and-forget: no msgid, no Response Topic
        reply = Properties(PacketTypes.PUBLISH)
        reply.ContentType = "application/json"
        reply.PayloadFormatIndicator = 1
        if hasattr(request, "CorrelationData"):
            reply.CorrelationData = request.CorrelationData
        client.publish(topic, json.dumps(envelope(handler, message.payload)), 1, False, reply)

    def close(self) -> None:
        self.v5.close()


def envelope(handler: str, payload: bytes) -> dict[str, Any]:
    """mqant's reply to ``handler`` called with ``payload``."""
    trace = secrets.token_hex(16)
    if handler not in HANDLERS:
        return {"Trace": trace, "Error": f"Remote function({handler}) not found", "Result": None}
    try:
        return {"Trace": trace, "Error": "", "Result": HANDLERS[handler](json.loads(payload))}
    except (ValueError, TypeError, KeyError):  # HD_Say's check of its payload
        return {"Trace": trace, "Error": "say cannot be nil", "Result": None}
