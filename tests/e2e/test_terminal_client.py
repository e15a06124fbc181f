"""The terminal client (client/mqtt_chat_client.py) as a user runs it: a subprocess whose stdin
is a pipe, chatting with a paho-mqtt client through a real daphne, over WebSocket and TCP."""

import itertools
import os
import queue
import subprocess
import sys
import threading
import time

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.server import ROOT, ServerProcess, free_port

pytestmark = pytest.mark.e2e

CLIENT = ROOT / "client" / "mqtt_chat_client.py"
_names = itertools.count()


class Terminal:
    """The client as a subprocess; its stdout lines land in a queue as they are printed."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CLIENT), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1, env={**os.environ, **(env or {})},
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        streams = ((self.process.stdout, self.lines), (self.process.stderr, self.errors))
        self.readers = [
            threading.Thread(target=self._read, args=(stream, into), daemon=True)
            for stream, into in streams
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, into: queue.Queue[str]) -> None:
        for line in stream:
            into.put(line.rstrip("\n"))

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, text: str, timeout: float = 10) -> str:
        """The first new line containing ``text``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {timeout} s; saw {self.seen}")

    def finish(self, timeout: float = 15) -> tuple[int, str]:
        """Close stdin (end of input) and wait; the exit status and stderr."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        finally:
            for reader in self.readers:
                reader.join(timeout=5)
        return code, "\n".join(self.errors.queue)


@pytest.fixture
def terminals():
    opened: list[Terminal] = []

    def open_terminal(*args: str, **kwargs) -> Terminal:
        terminal = Terminal(*args, **kwargs)
        opened.append(terminal)
        return terminal

    yield open_terminal
    for terminal in opened:
        if terminal.process.poll() is None:
            terminal.process.kill()
            terminal.process.wait(timeout=10)


def paho_user(port: int, transport: str, name: str, room: str) -> ChatClient:
    client = ChatClient(port, transport=transport)
    assert (
        client.request("Login/HD_Login", {"userName": name, "passWord": "pw-k3y9-pass"})["Error"]
        == ""
    )
    assert client.request("Chat/HD_JoinChat", {"roomName": room})["Error"] == ""
    return client


@pytest.mark.parametrize(
    ("transport", "options"),
    [("websockets", ["--ws"]), ("tcp", ["--tcp", "--mqtt31"])],
)
def test_terminal_client_chats_with_a_paho_client(server, terminals, transport, options):
    n = next(_names)
    room, alice, bob = f"term-room{n}", f"term-alice{n}", f"term-bob{n}"
    port = server.port if transport == "websockets" else server.tcp_port
    paho = paho_user(port, transport, bob, room)
    try:
        paho.request("Chat/HD_Say", {"roomName": room, "content": "before you came", "target": "*"})
        terminal = terminals(
            *options, "--port", str(port), "--room", room, "--user", alice,
            env={"MQANT_PASSWORD": "alice-pw-k3y9"},
        )  # fmt: skip
        terminal.expect(f"{bob}: before you came")  # the room's history
        joined = terminal.expect(f"* joined {room} as {alice}")
        assert bob in joined
        assert paho.wait_json("Chat/OnJoin") == {"roomName": room, "user": alice}

        paho.request("Chat/HD_Say", {"roomName": room, "content": "hello alice", "target": "*"})
        terminal.expect(f"{bob}: hello alice")

        terminal.type("hi bob, via a pipe")
        said = paho.wait_json("Chat/OnChat")
        while said["from"] != alice:  # bob's own line comes back first
            said = paho.wait_json("Chat/OnChat")
        assert said == {"roomName": room, "from": alice, "target": "*", "msg": "hi bob, via a pipe"}

        terminal.type(f"/to {bob} just for you")
        assert paho.wait_json("Chat/OnChat")["target"] == bob
        paho.request("Chat/HD_Say", {"roomName": room, "content": "psst", "target": alice})
        terminal.expect(f"{bob} (to you): psst")

        terminal.type("/who")
        assert bob in terminal.expect(f"* in {room}:")
        code, err = terminal.finish()
        assert code == 0, err
        assert paho.wait_json("Chat/OnLeave") == {"roomName": room, "user": alice}
    finally:
        paho.close()


def test_credentials_from_piped_stdin_and_a_wrong_password(server, terminals):
    n = next(_names)
    name = f"term-carol{n}"
    first = terminals("--port", str(server.port), "--room", f"r{n}")
    first.type(name)  # not a terminal: user name and password are the first lines
    first.type("carol-pw-k3y9")
    first.expect(f"* joined r{n} as {name}")
    assert first.finish()[0] == 0

    wrong = terminals("--port", str(server.port), "--user", name, "--password", "not-it")
    code, err = wrong.finish()
    assert code == 1
    assert "error: Wrong user name or password" in err


def test_unreachable_server_exits_with_an_error(terminals):
    port = str(free_port())
    code, err = terminals("--tcp", "--port", port, "--user", "x", "--password", "y").finish()
    assert code == 1
    assert "cannot reach" in err


def test_terminal_client_reconnects_logs_in_and_rejoins(tmp_path, terminals):
    server = ServerProcess(tmp_path).start()
    try:
        room = "comeback"
        terminal = terminals(
            "--port",
            str(server.port),
            "--room",
            room,
            "--user",
            "dave",
            "--password",
            "pw-k3y9-dave",
        )
        terminal.expect(f"* joined {room} as dave")
        server.stop()
        server.start()  # the same ports and database
        terminal.expect("* reconnected", timeout=30)
        terminal.expect(f"* joined {room} as dave")
        paho = paho_user(server.port, "websockets", "erin", room)
        try:
            terminal.expect("* erin joined")
            terminal.type("still here")
            assert paho.wait_json("Chat/OnChat")["msg"] == "still here"
        finally:
            paho.close()
        assert terminal.finish()[0] == 0
    finally:
        server.stop()
    assert "Traceback" not in server.output(), server.output()
