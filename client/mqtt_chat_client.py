#!/usr/bin/env python3
"""A terminal chat client for the mqant gate (paho-mqtt 2, standard library otherwise).

Logs in (``Login/HD_Login``), joins a room (``Chat/HD_JoinChat``), prints what the others say
and sends each line read from stdin (``Chat/HD_Say``)::

    python client/mqtt_chat_client.py --room lobby            # asks for user name and password
    python client/mqtt_chat_client.py --tcp --port 3563 --mqtt31 --user alice --password s3cret
    printf 'hi\\n/to bob psst\\n' | python client/mqtt_chat_client.py --user alice --room lobby

A line ``/to <user> <text>`` talks to one user of the room, ``/who`` lists the room, ``/quit``
(or the end of stdin) leaves. The password comes from ``--password``, ``$MQANT_PASSWORD``, the
terminal, or — when stdin is not a terminal — the first line of stdin (after the user name when
that is read too). A dropped connection is reconnected with backoff and the client logs in and
joins again. Exit status: 0 after leaving, 1 when login or joining fails or the server cannot
be reached.
"""

import argparse
import contextlib
import getpass
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

DEFAULT_PORTS = {"websockets": 8000, "tcp": 3563}
REQUEST_TIMEOUT = 15.0
CONNECT_TIMEOUT = 15.0

Envelope = dict[str, Any]


class RequestError(Exception):
    """The server answered with an Error, or did not answer in time."""


class MqantClient:
    """mqant's client API on paho-mqtt: ``request`` (a msgid, the reply on that exact topic),
    ``request_nr`` (no reply), ``on`` (pushes by exact topic); QoS 1, no SUBSCRIBE."""

    def __init__(self, *, transport: str, mqtt31: bool, on_reconnect: Callable[[], None]) -> None:
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            protocol=mqtt.MQTTv31 if mqtt31 else mqtt.MQTTv311,
            transport="websockets" if transport == "websockets" else "tcp",
        )
        if transport == "websockets":
            self._client.ws_set_options(path="/mqtt")
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_message = self._message
        self._msgids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[threading.Event, list[bytes]]] = {}
        self._listeners: dict[str, Callable[[Any], None]] = {}
        self._connected_once = threading.Event()
        self._connects = 0
        self._on_reconnect = on_reconnect
        self.connect_error: str | None = None

    def connect(self, host: str, port: int) -> None:
        """Connect and wait for the CONNACK; raises ConnectionError."""
        try:
            self._client.connect(host, port, keepalive=30)
        except OSError as err:
            raise ConnectionError(f"cannot reach {host}:{port}: {err}") from err
        self._client.loop_start()
        if not self._connected_once.wait(CONNECT_TIMEOUT) or self.connect_error:
            self.close()
            raise ConnectionError(self.connect_error or "no CONNACK from the server")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def request(self, module_handler: str, body: dict[str, Any]) -> Any:
        """Publish on ``module_handler/<msgid>`` and return the reply's Result; raises
        RequestError with the reply's Error."""
        topic = f"{module_handler}/{next(self._msgids)}"
        done, box = threading.Event(), list[bytes]()
        with self._lock:
            self._waiting[topic] = (done, box)
        self._client.publish(topic, json.dumps(body), qos=1)
        if not done.wait(REQUEST_TIMEOUT):
            with self._lock:
                self._waiting.pop(topic, None)
            raise RequestError(f"no reply to {module_handler} within {REQUEST_TIMEOUT:g} s")
        reply: Envelope = json.loads(box[0])
        if reply.get("Error"):
            raise RequestError(str(reply["Error"]))
        return reply.get("Result")

    def request_nr(self, module_handler: str, body: dict[str, Any]) -> None:
        """Publish without a msgid: the server replies nothing, errors included."""
        self._client.publish(module_handler, json.dumps(body), qos=1)

    def on(self, topic: str, callback: Callable[[Any], None]) -> None:
        """Call ``callback(body)`` for every push on exactly ``topic``."""
        self._listeners[topic] = callback

    # paho callbacks, on paho's network thread: never wait for a reply here.

    def _connected(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.connect_error = f"connection refused: {reason}"
        else:
            self._connects += 1
            if self._connects > 1:
                threading.Thread(target=self._on_reconnect, daemon=True).start()
        self._connected_once.set()

    def _disconnected(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for done, box in waiting.values():  # their replies will never come
            box.append(json.dumps({"Error": "connection lost", "Result": None}).encode())
            done.set()

    def _message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            waiting = self._waiting.pop(message.topic, None)
        if waiting is not None:
            done, box = waiting
            box.append(bytes(message.payload))
            done.set()
            return
        listener = self._listeners.get(message.topic)
        if listener is not None:
            try:
                listener(json.loads(message.payload))
            except ValueError:
                listener(bytes(message.payload))


Handler = Callable[[dict[str, Any]], None]
Push = tuple[Handler, dict[str, Any]]


class Chat:
    """One user in one room: prints the room's events and sends what the user types."""

    KEEP = 200  # broadcasts remembered, to tell the new from the seen in a rejoin's history

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.user, self.password, self.room = args.user, args.password, args.room
        self.out = out
        self.members: set[str] = set()
        self.seen: list[tuple[str, str]] = []  # (from, msg) of the room's broadcasts
        self._lock = threading.Lock()
        self._joining: list[Push] | None = None  # pushes held while a join is under way
        self.client = MqantClient(
            transport=args.transport, mqtt31=args.mqtt31, on_reconnect=self.rejoin
        )
        for topic, handler in (
            ("Chat/OnChat", self.on_chat),
            ("Chat/OnJoin", self.on_join),
            ("Chat/OnLeave", self.on_leave),
        ):
            self.client.on(topic, self._held_during_join(handler))

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self, host: str, port: int) -> None:
        """Connect, log in and join; raises ConnectionError or RequestError."""
        self.client.connect(host, port)
        self.log_in_and_join()

    def log_in_and_join(self) -> None:
        """HD_Login then HD_JoinChat. The join's members and history are a snapshot a push
        may overtake: pushes wait until the reply is shown, then apply on top of it."""
        self.client.request("Login/HD_Login", {"userName": self.user, "passWord": self.password})
        with self._lock:
            self._joining = []
        try:
            result = self.client.request("Chat/HD_JoinChat", {"roomName": self.room}) or {}
        finally:
            with self._lock:
                held, self._joining = self._joining or [], None
        self.members = set(result.get("users") or [])
        history = [h for h in result.get("history") or [] if isinstance(h, dict)]
        for entry in unseen(self.seen, history):
            self._remember(entry)
            self.say(f"[{clock(entry.get('time'))}] {entry.get('from')}: {entry.get('msg')}")
        self.say(f"* joined {self.room} as {self.user}: {', '.join(sorted(self.members))}")
        broadcasts = [event for handler, event in held if self._is_broadcast(handler, event)]
        skip = already_in(history, broadcasts)
        for handler, event in held:
            if skip and self._is_broadcast(handler, event):
                skip -= 1
            else:
                handler(event)

    def rejoin(self) -> None:
        self.say("* reconnected")
        try:
            self.log_in_and_join()
        except RequestError as err:
            print(f"error: rejoining {self.room}: {err}", file=sys.stderr, flush=True)

    def _held_during_join(self, handler: Handler) -> Callable[[Any], None]:
        def receive(event: Any) -> None:
            if not isinstance(event, dict) or event.get("roomName") != self.room:
                return
            with self._lock:
                if self._joining is not None:
                    self._joining.append((handler, event))
                    return
            handler(event)

        return receive

    def _is_broadcast(self, handler: Handler, event: dict[str, Any]) -> bool:
        return handler == self.on_chat and event.get("target", "*") == "*"

    def _remember(self, event: dict[str, Any]) -> None:
        self.seen.append((str(event.get("from")), str(event.get("msg"))))
        del self.seen[: -self.KEEP]

    def on_chat(self, event: dict[str, Any]) -> None:
        sender, target = event.get("from"), event.get("target", "*")
        if target == "*":
            self._remember(event)
            if sender == self.user:
                return  # our own line, already on the screen
        private = "" if target == "*" else " (to you)"
        self.say(f"{sender}{private}: {event.get('msg')}")

    def on_join(self, event: dict[str, Any]) -> None:
        self.members.add(str(event.get("user")))
        self.say(f"* {event.get('user')} joined")

    def on_leave(self, event: dict[str, Any]) -> None:
        self.members.discard(str(event.get("user")))
        self.say(f"* {event.get('user')} left")

    def handle(self, line: str) -> bool:
        """Act on one input line; False to stop."""
        text = line.strip()
        if not text:
            return True
        if text == "/quit":
            return False
        if text == "/who":
            self.say(f"* in {self.room}: {', '.join(sorted(self.members))}")
            return True
        target = "*"
        if text.startswith("/to "):
            _, target, text = [*text.split(maxsplit=2), "", ""][:3]
            if not target or not text:
                self.say("* usage: /to <user> <text>")
                return True
        try:
            self.client.request(
                "Chat/HD_Say", {"roomName": self.room, "content": text, "target": target}
            )
        except RequestError as err:
            print(f"error: not sent: {err}", file=sys.stderr, flush=True)
        return True

    def leave(self) -> None:
        with contextlib.suppress(RequestError):  # closing leaves every room anyway
            self.client.request("Chat/HD_LeaveChat", {"roomName": self.room})
        self.client.close()


def _said(entry: dict[str, Any]) -> tuple[str, str]:
    return str(entry.get("from")), str(entry.get("msg"))


def unseen(seen: list[tuple[str, str]], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries of a join's history not shown yet: after the longest start of the history
    that ends the way ``seen`` (the broadcasts shown, oldest first) ends."""
    for end in range(len(history), 0, -1):
        overlap = min(end, len(seen))
        if overlap and [_said(h) for h in history[end - overlap : end]] == seen[-overlap:]:
            return history[end:]
    return history


def already_in(history: list[dict[str, Any]], broadcasts: list[dict[str, Any]]) -> int:
    """How many of the broadcasts pushed during a join the join's history already ends with."""
    for k in range(min(len(history), len(broadcasts)), 0, -1):
        if [_said(h) for h in history[-k:]] == [_said(b) for b in broadcasts[:k]]:
            return k
    return 0


def clock(value: Any) -> str:
    return time.strftime("%H:%M", time.localtime(value)) if isinstance(value, int | float) else ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Chat in an mqant room from the terminal.")
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument(
        "--ws", dest="transport", action="store_const", const="websockets",
        help="MQTT over WebSocket at ws://HOST:PORT/mqtt (the default)",
    )  # fmt: skip
    transport.add_argument(
        "--tcp", dest="transport", action="store_const", const="tcp", help="MQTT over TCP"
    )
    parser.set_defaults(transport="websockets")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="default 8000 (--ws) or 3563 (--tcp)")
    parser.add_argument("--room", default="lobby")
    parser.add_argument("--mqtt31", action="store_true", help="MQTT 3.1 (MQIsdp), as mqant's")
    parser.add_argument("--user", help="user name (asked when missing)")
    parser.add_argument("--password", help="password (else $MQANT_PASSWORD, or asked)")
    args = parser.parse_args(argv)
    args.port = args.port or DEFAULT_PORTS[args.transport]
    return args


def ask_credentials(args: argparse.Namespace, stdin: TextIO) -> None:
    interactive = stdin.isatty()
    if not args.user:
        args.user = input("User name: ").strip() if interactive else stdin.readline().strip()
    if args.password is None:
        args.password = os.environ.get("MQANT_PASSWORD")
    if args.password is None:
        args.password = getpass.getpass() if interactive else stdin.readline().rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ask_credentials(args, sys.stdin)
    if not args.user or not args.password:
        print("error: a user name and a password are needed", file=sys.stderr)
        return 1
    chat = Chat(args, sys.stdout)
    try:
        chat.start(args.host, args.port)
    except (ConnectionError, RequestError) as err:
        print(f"error: {err}", file=sys.stderr)
        chat.client.close()
        return 1
    try:
        for line in sys.stdin:
            if not chat.handle(line):
                break
    except KeyboardInterrupt:
        pass
    chat.leave()
    return 0


if __name__ == "__main__":
    sys.exit(main())
