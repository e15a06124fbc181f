"""A real server process on a free loopback port, for end-to-end tests."""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} within {timeout} s")


# Most tests log in many users from 127.0.0.1: per-address budgets for logins and new
# accounts would refuse them. The hostile suites, which attack those budgets, keep them.
NO_ACCOUNT_BUDGETS = {"LOGIN_RATE_PER_ADDRESS": [0, 60], "REGISTER_RATE_PER_ADDRESS": [0, 60]}


class ServerProcess:
    """``daphne mqantsite.asgi:application`` (or uvicorn) on 127.0.0.1, with its own SQLite
    database and its own ports for the gate's listeners (MQTT over TCP, over WebSocket).
    Production defaults (DEBUG off), but for the per-address account budgets unless
    ``account_budgets``."""

    def __init__(
        self,
        workdir: Path,
        extra_env: dict[str, str] | None = None,
        mqant: Mapping[str, object] | None = None,
        asgi_server: str = "daphne",
        account_budgets: bool = False,
        server_args: tuple[str, ...] = (),
    ) -> None:
        self.asgi_server = asgi_server
        self.server_args = server_args
        self.port = free_port()
        self.tcp_port = free_port()
        self.ws_port = free_port()  # the gate's own WebSocket listener
        self.log_path = workdir / f"daphne-{self.port}.log"
        mqant_settings = {
            "TCP_ADDR": f"127.0.0.1:{self.tcp_port}",
            "WS_ADDR": f"127.0.0.1:{self.ws_port}",
            **({} if account_budgets else NO_ACCOUNT_BUDGETS),
            **(mqant or {}),
        }
        for attr, setting in (("tcp_port", "TCP_ADDR"), ("ws_port", "WS_ADDR")):
            port = str(mqant_settings[setting]).rpartition(":")[2]
            if port.isdigit():  # a port of the caller's (one gates share): waited for at start
                setattr(self, attr, int(port))
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "mqantsite.settings",
            "SQLITE_PATH": str(workdir / "db.sqlite3"),
            "PYTHONUNBUFFERED": "1",
            "MQANT_SETTINGS": json.dumps(mqant_settings),
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The server's command line."""
        command = [sys.executable, "-m", self.asgi_server, "mqantsite.asgi:application"]
        if self.asgi_server == "daphne":
            command += ["-b", "127.0.0.1", "-p", str(self.port)]
        else:
            command += ["--host", "127.0.0.1", "--port", str(self.port), "--ws-max-size", "1048576"]
        return command + list(self.server_args)

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT, env=self.env, check=True, capture_output=True,
        )  # fmt: skip

    def start(self) -> "ServerProcess":
        self.migrate()
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for_port(self.port, self.process)
            # The gate's own listeners, listening before any request came (when they are on).
            mqant_settings = json.loads(self.env["MQANT_SETTINGS"])
            for port, setting in ((self.tcp_port, "TCP_ADDR"), (self.ws_port, "WS_ADDR")):
                if mqant_settings.get(setting):
                    wait_for_port(port, self.process)
        except BaseException:
            self.stop()  # a server that did not start is not left running
            raise
        return self

    def run_to_exit(self, timeout: float) -> tuple[int, str]:
        """Run a server that must not start: its exit status and its output, once it has
        exited; raises subprocess.TimeoutExpired (after killing it) if it runs past
        ``timeout`` seconds."""
        self.migrate()
        done = subprocess.run(
            self.command(),
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=timeout,
        )  # fmt: skip
        return done.returncode, done.stdout.decode(errors="replace")

    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
