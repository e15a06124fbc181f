"""Start and stop the servers the benchmark measures, each on free loopback ports of its own.

    with start_server("mqant", "uvicorn") as server:
        ...  # server.endpoint("ws" | "tcp" | "ws-listener"); cpu_seconds(server.pid)...

(cpu_seconds and rss_bytes live in bench.proc and are imported here for convenience.)

Targets: "mqant" (the product, under daphne or uvicorn), "textbook" (bench.reference, the
stock Channels way, under daphne or uvicorn) and "mosquitto" (Debian's broker, MQTT over TCP
only: its websockets listener ignores the bind address and will not start on its own).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.proc import cpu_seconds, rss_bytes
from bench.scenarios import Endpoint

__all__ = ["Server", "cpu_seconds", "free_port", "rss_bytes", "start_server"]

ROOT = Path(__file__).resolve().parents[1]
MOSQUITTO = "/usr/sbin/mosquitto"
TARGETS = ("mqant", "textbook", "mosquitto")
ASGI_SERVERS = ("daphne", "uvicorn")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# A developer's shell may point the product at Redis, Postgres or a deployment file: the
# benchmark measures the one-process default unless the caller passes these on purpose.
SCRUBBED_ENV = ("REDIS_URL", "DATABASE_URL", "MQANT_CONFIG", "MQANT_PROCESS_ID", "MQANT_EXTRA_APPS")

# The product's limits as the benchmark runs it (gates and module processes alike).
BENCH_MQANT: dict[str, Any] = {
    "MESSAGE_RATE": 0,  # a closed loop is the load we measure, not the rate limit
    "MAX_CONNECTIONS": 20000,
    # Every load-tool connection comes from 127.0.0.1: no per-address limits.
    "MAX_CONNECTIONS_PER_ADDRESS": 0,
    "CONNECT_RATE_PER_ADDRESS": 0,
    "MAX_SOCKETS_PER_ADDRESS": 0,
    "LOGIN_RATE_PER_ADDRESS": [0, 60],
    "REGISTER_RATE_PER_ADDRESS": [0, 60],
    "PASSWORD_HASH_QUEUE": 2000,  # the fan-out logs a thousand users in at once
    "PASSWORD_HASH_QUEUE_PER_ADDRESS": 2000,
}


@dataclass
class Server:
    """A server process started by :func:`start_server`; :meth:`stop` ends it."""

    name: str
    target: str
    asgi: str | None
    ws_port: int | None  # the ASGI server's port (None for mosquitto)
    tcp_addr: tuple[str, int] | None
    listener_addr: tuple[str, int] | None  # the gate's own WebSocket listener (mqant only)
    pid: int
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    scratch: Path = field(repr=False)  # removed on stop: the database, mosquitto.conf

    @property
    def ws_url(self) -> str | None:
        return None if self.ws_port is None else f"ws://127.0.0.1:{self.ws_port}/mqtt"

    def endpoint(self, transport: str) -> Endpoint:
        """How the load tool reaches this server over ``transport``: "ws" (the ASGI server's
        WebSocket), "tcp" or "ws-listener" (the gate's own WebSocket port)."""
        ports = {
            "ws": self.ws_port,
            "tcp": self.tcp_addr and self.tcp_addr[1],
            "ws-listener": self.listener_addr and self.listener_addr[1],
        }
        port = ports.get(transport)
        if port is None:
            raise ValueError(f"{self.name} has no {transport} endpoint")
        return Endpoint(self.target, self.asgi, transport, port, self.pid)

    def stop(self) -> None:
        """Terminate the process (kill it after 10 s) and remove its temporary files."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> "Server":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_server(
    target: str,
    asgi: str = "daphne",
    *,
    mqant_settings: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    workdir: Path | None = None,
) -> Server:
    """Start ``target`` ("mqant", "textbook" or "mosquitto") and return once it listens.

    ``asgi`` ("daphne" or "uvicorn") is ignored for mosquitto; ``mqant_settings`` is merged
    over the benchmark's MQANT_SETTINGS (mqant only); ``env`` over the scrubbed environment.
    Logs go to ``workdir`` (default: a temporary directory removed on stop). Raises
    ValueError for an unknown target or ASGI server, RuntimeError with the log's tail when
    the server exits or does not listen within 60 s.
    """
    if target not in TARGETS:
        raise ValueError(f"Expected a target in {TARGETS}, got {target!r}")
    if target != "mosquitto" and asgi not in ASGI_SERVERS:
        raise ValueError(f"Expected an ASGI server in {ASGI_SERVERS}, got {asgi!r}")
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-{target}-", dir=workdir))
    logs = workdir if workdir is not None else scratch
    inherited = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    try:
        if target == "mqant":
            return _start_mqant(asgi, mqant_settings or {}, inherited, env or {}, scratch, logs)
        if target == "textbook":
            settings = {"DJANGO_SETTINGS_MODULE": "bench.reference.settings"}
            return _start_textbook(asgi, {**inherited, **settings, **(env or {})}, scratch, logs)
        return _start_mosquitto({**inherited, **(env or {})}, scratch, logs)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _asgi_command(asgi: str, application: str, port: int) -> list[str]:
    # Both servers log three lines per WebSocket by default (daphne's access log, uvicorn's
    # INFO): with thousands of clients we would measure the logging. Warnings only.
    if asgi == "daphne":
        return [
            sys.executable, "-m", "daphne", application, "-b", "127.0.0.1", "-p", str(port),
            "-v", "0",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "uvicorn", application, "--host", "127.0.0.1",
        "--port", str(port), "--ws-max-size", "1048576", "--log-level", "warning",
    ]  # fmt: skip


def _start_mqant(
    asgi: str,
    overrides: dict[str, Any],
    inherited: dict[str, str],
    env: dict[str, str],
    scratch: Path,
    logs: Path,
) -> Server:
    port = free_port()
    mqant = {
        "TCP_ADDR": f"127.0.0.1:{free_port()}",
        "WS_ADDR": f"127.0.0.1:{free_port()}",
        **BENCH_MQANT,
        **overrides,
    }
    env = {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        # DEBUG off, as in the textbook and in production; the product defaults it on.
        "DJANGO_DEBUG": "0",
        "MQANT_LOG_LEVEL": "WARNING",
        "SQLITE_PATH": str(scratch / "db.sqlite3"),
        **env,
        "MQANT_SETTINGS": json.dumps(mqant),
    }
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT, env=env, capture_output=True, timeout=START_TIMEOUT, check=False,
    )  # fmt: skip
    if migrate.returncode != 0:
        tail = "\n".join(migrate.stderr.decode(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"manage.py migrate failed with {migrate.returncode}:\n{tail}")
    command = _asgi_command(asgi, "mqantsite.asgi:application", port)
    log_path = logs / f"mqant-{asgi}-{port}.log"
    tcp_addr = _parse_addr(str(mqant["TCP_ADDR"]))
    listener = _parse_addr(str(mqant["WS_ADDR"]))
    return _spawn(f"mqant/{asgi}", command, env, scratch, log_path, asgi, port, tcp_addr, listener)


def _start_textbook(asgi: str, env: dict[str, str], scratch: Path, logs: Path) -> Server:
    port = free_port()
    command = _asgi_command(asgi, "bench.reference.asgi:application", port)
    log_path = logs / f"textbook-{asgi}-{port}.log"
    return _spawn(f"textbook/{asgi}", command, env, scratch, log_path, asgi, port, None)


MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_connections -1
# QoS 0 messages past this per-client queue are dropped: a fan-out burst must not be.
max_queued_messages 100000
# Nagle's algorithm off, as asyncio and Twisted have it for the Python servers.
set_tcp_nodelay true
# One writer to the log (our stderr redirect), and no line per connection.
log_dest stderr
log_type error
log_type warning
connection_messages false
"""


def _start_mosquitto(env: dict[str, str], scratch: Path, logs: Path) -> Server:
    port = free_port()
    conf = scratch / "mosquitto.conf"
    conf.write_text(MOSQUITTO_CONF.format(port=port))
    # No -d: a daemon would fork, and the pid we measure must be the broker's.
    command = [MOSQUITTO, "-c", str(conf)]
    log_path = logs / f"mosquitto-{port}.log"
    return _spawn("mosquitto", command, env, scratch, log_path, None, None, ("127.0.0.1", port))


def _spawn(
    name: str,
    command: list[str],
    env: dict[str, str],
    scratch: Path,
    log_path: Path,
    asgi: str | None,
    port: int | None,
    tcp_addr: tuple[str, int] | None,
    listener_addr: tuple[str, int] | None = None,
) -> Server:
    with log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
        # A command line built here from fixed parts and our own port numbers.
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)  # noqa: S603
    server = Server(
        name=name,
        target=name.split("/")[0],
        asgi=asgi,
        ws_port=port,
        tcp_addr=tcp_addr,
        listener_addr=listener_addr,
        pid=process.pid,
        log_path=log_path,
        process=process,
        scratch=scratch,
    )
    addresses = [("127.0.0.1", port)] if port is not None else []
    addresses += [a for a in (tcp_addr, listener_addr) if a is not None]
    deadline = time.monotonic() + START_TIMEOUT
    try:
        for address in addresses:
            _wait_for_port(server, address, deadline)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_port(server: Server, address: tuple[str, int], deadline: float) -> None:
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            raise RuntimeError(f"{server.name} exited with {code}:\n{server.log_tail()}")
        try:
            with socket.create_connection(address, timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(
        f"{server.name} did not listen on {address[0]}:{address[1]} within {START_TIMEOUT} s:\n"
        f"{server.log_tail()}"
    )


def _parse_addr(addr: str) -> tuple[str, int] | None:
    """MQANT's ``"host:port"`` TCP_ADDR or WS_ADDR as (host, port); None when it is off."""
    if not addr:
        return None
    host, _, port = addr.rpartition(":")
    return (host.strip("[]") or "127.0.0.1", int(port))
