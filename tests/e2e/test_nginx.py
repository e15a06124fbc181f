"""The deployment as deploy/ ships it, on loopback ports: two gates and a module process
started with the exact ExecStart lines of the systemd units and the environment file's
production settings, behind Debian's nginx running the shipped configuration. Clients chat
through wss (nginx's https, /mqtt), mqtts (nginx's stream TLS) and plain MQTT (the stream
proxy's 1883) from addresses of their own, and the gates see each client's address: through
X-Forwarded-For on daphne's port, through the PROXY protocol on the shared TCP port."""

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import require_service
from tests.e2e.clients import ChatClient
from tests.e2e.server import NO_ACCOUNT_BUDGETS, free_port, wait_for_port
from tests.e2e.test_tls_and_limits import self_signed
from tests.e2e.units import DEPLOY, ROOT, read_env_file, render, start_unit

pytestmark = pytest.mark.e2e

# What the example environment must say for the deployment deploy/ describes.
PRODUCTION = {
    "MQANT_REUSE_PORT": "1",
    "MQANT_PROXY_PROTOCOL_FROM": "127.0.0.1",
    "DJANGO_NUM_PROXIES": "1",
    "DJANGO_HTTPS": "1",
    "DJANGO_DEBUG": "0",
}
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


def nginx_binary() -> str:
    """Debian's nginx with its stream module; skips without them (fails in CI)."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else ""
    )
    if not binary:
        require_service("nginx", "no nginx binary (apt-get install nginx-light)")
    if not STREAM_MODULE.exists():
        require_service("nginx's stream module", f"no {STREAM_MODULE} (libnginx-mod-stream)")
    return binary


@dataclass
class Site:
    """The running deployment: its ports, its certificate, its processes."""

    workdir: Path
    cert: Path
    env: dict[str, str]
    ports: dict[str, int]
    database: str
    processes: dict[str, "subprocess.Popen[bytes]"] = field(default_factory=dict)
    clients: list[ChatClient] = field(default_factory=list)

    def client(self, kind: str, source: str, **options: object) -> ChatClient:
        """A chat client through nginx: "wss" (https, /mqtt), "mqtts" or "mqtt" (stream)."""
        if kind == "wss":
            client = ChatClient(
                self.ports["https"], transport="websockets", source=source,
                tls_ca=str(self.cert), **options,  # type: ignore[arg-type]
            )  # fmt: skip
        else:
            tls = str(self.cert) if kind == "mqtts" else ""
            client = ChatClient(self.ports[kind], transport="tcp", source=source, tls_ca=tls)
        self.clients.append(client)
        return client

    def get(self, path: str) -> tuple[int, bytes]:
        """GET https://127.0.0.1:<https>/path through nginx."""
        context = ssl.create_default_context(cafile=str(self.cert))
        url = f"https://127.0.0.1:{self.ports['https']}{path}"
        try:
            with urllib.request.urlopen(url, context=context, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()


def environment(
    workdir: Path, redis_env: dict[str, str], database: str, tcp: int, health: int
) -> dict[str, str]:
    """deploy/env.example as systemd reads it, with this machine's services and ports in
    place of the example's; its production settings (HTTPS, one proxy, REUSE_PORT, the PROXY
    protocol from 127.0.0.1) as they are."""
    env = read_env_file(DEPLOY / "env.example")
    conf = workdir / "server.json"
    shutil.copy(DEPLOY / "server.json", conf)
    mqant = json.loads(env["MQANT_SETTINGS"])
    mqant.update(NO_ACCOUNT_BUDGETS, TCP_ADDR=f"127.0.0.1:{tcp}", MAX_CONNECTIONS_PER_ADDRESS=1)
    env.update(
        DJANGO_SECRET_KEY=os.environ["DJANGO_SECRET_KEY"],
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://127.0.0.1",
        DATABASE_URL=database,
        MQANT_CONFIG=str(conf),
        MQANT_SETTINGS=json.dumps(mqant),
        MQANT_MODULES_HEALTH=f"127.0.0.1:{health}",
        **redis_env,
    )
    shipped = {name: env[name] for name in PRODUCTION}
    assert shipped == PRODUCTION, shipped
    return {"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1", **env}


def nginx_conf(site: Site, gates: list[int], key: Path) -> Path:
    """The shipped site and stream files on loopback ports, under a main nginx.conf of the
    test's own (Debian's /etc/nginx/nginx.conf in production)."""
    conf = site.workdir / "nginx"
    conf.mkdir()
    p = site.ports
    tls = {"/etc/ssl/mqant/fullchain.pem": str(site.cert), "/etc/ssl/mqant/privkey.pem": str(key)}
    render("mqant-proxy.conf", {}, conf)
    render("mqant-stream-proxy.conf", {}, conf)
    render(
        "mqant.conf",
        {
            "listen 80;": f"listen 127.0.0.1:{p['http']};",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{p['https']} ssl http2;",
            "server 127.0.0.1:8001;": f"server 127.0.0.1:{gates[0]};",
            "server 127.0.0.1:8002;": f"server 127.0.0.1:{gates[1]};",
            "/etc/nginx/mqant-proxy.conf": str(conf / "mqant-proxy.conf"),
            **tls,
        },
        conf,
    )
    render(
        "mqant-stream.conf",
        {
            "listen 8883 ssl;": f"listen 127.0.0.1:{p['mqtts']} ssl;",
            "listen 1883;": f"listen 127.0.0.1:{p['mqtt']};",
            "server 127.0.0.1:3563;": f"server 127.0.0.1:{p['tcp']};",
            "/etc/nginx/mqant-stream-proxy.conf": str(conf / "mqant-stream-proxy.conf"),
            **tls,
        },
        conf,
    )
    temp = "\n".join(
        f"  {kind}_temp_path {conf}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = conf / "nginx.conf"
    main.write_text(
        f"load_module {STREAM_MODULE};\n"
        + ("user root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes 1;\npid {conf}/nginx.pid;\nerror_log stderr warn;\n"
        + "events { worker_connections 512; }\n"
        + f"http {{\n  access_log {conf}/access.log;\n{temp}\n  include {conf}/mqant.conf;\n}}\n"
        + f"include {conf}/mqant-stream.conf;\n"
    )
    return main


@pytest.fixture
def site(tmp_path, redis_space, postgres_url) -> Iterator[Site]:
    nginx = nginx_binary()
    cert, key = self_signed(tmp_path)
    names = ("gate1", "gate2", "tcp", "health", "http", "https", "mqtts", "mqtt")
    ports = {name: free_port() for name in names}
    env = environment(
        tmp_path, redis_space.env("pubsub"), postgres_url, ports["tcp"], ports["health"]
    )
    running = Site(tmp_path, cert, env, ports, postgres_url)
    subprocess.run(  # as deploy/README.md says, with the same environment
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    procs = running.processes
    try:
        for name in ("gate1", "gate2"):
            port = str(ports[name])
            procs[name] = start_unit("mqant-gate@.service", port, env, tmp_path / f"{name}.log")
        procs["modules"] = start_unit(
            "mqant-modules@.service", "modules1", env, tmp_path / "modules.log"
        )
        for name in ("gate1", "gate2"):
            wait_for_port(ports[name], procs[name])
        wait_for_port(ports["tcp"], procs["gate2"])
        wait_for_port(ports["health"], procs["modules"])
        conf = nginx_conf(running, [ports["gate1"], ports["gate2"]], key)
        with (tmp_path / "nginx.log").open("wb") as log:
            procs["nginx"] = subprocess.Popen(
                [nginx, "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        for name in ("https", "mqtts", "mqtt"):
            wait_for_port(ports[name], procs["nginx"])
        yield running
    finally:
        for client in running.clients:
            client.close()
        # In the units' stop order: the gates drain before the module processes stop.
        for group in (["nginx"], ["gate1", "gate2"], ["modules"]):
            stop([procs[name] for name in group if name in procs])
    for name in ("gate1", "gate2", "modules"):
        output = (tmp_path / f"{name}.log").read_text(errors="replace")
        assert "Traceback" not in output, output
    # nginx took the shipped configuration without a warning (a refused client's reset is
    # an [error] line, expected).
    output = (tmp_path / "nginx.log").read_text(errors="replace")
    assert not any(level in output for level in ("[warn]", "[crit]", "[alert]", "[emerg]")), output


def stop(processes: list["subprocess.Popen[bytes]"]) -> None:
    """SIGTERM, then SIGKILL past 15 s."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def chats(alice: ChatClient, bob: ChatClient, carol: ChatClient) -> None:
    """Three clients log in, join one room and each hears what another says."""
    clients = {"alice": alice, "bob": bob, "carol": carol}
    for name, client in clients.items():
        reply = client.request("Login/HD_Login", {"userName": name, "passWord": "pw-n9x-" + name})
        assert reply["Result"] == f"login success {name}", reply
        assert client.request("Chat/HD_JoinChat", {"roomName": "front"})["Error"] == ""
    for name, client in clients.items():
        said = client.request("Chat/HD_Say", {"roomName": "front", "content": f"hi from {name}"})
        assert said["Error"] == "", said
        for other in clients.values():
            heard = other.wait_json("Chat/OnChat")
            assert heard == {
                "roomName": "front",
                "from": name,
                "target": "*",
                "msg": f"hi from {name}",
            }


def addresses_seen(database: str, within: float = 10) -> dict[str, tuple[str, str]]:
    """Per logged-in user, the client address and network its gate recorded (the admin's live
    connections), once alice, bob and carol are there."""
    deadline = time.monotonic() + within
    with psycopg.connect(database, autocommit=True) as db:
        while True:
            rows = db.execute(
                "SELECT user_id, ip, network FROM sessions_store_liveconnection WHERE user_id <> ''"
            ).fetchall()
            seen = {user: (ip, network) for user, ip, network in rows}
            if {"alice", "bob", "carol"} <= seen.keys() or time.monotonic() > deadline:
                return seen
            time.sleep(0.2)


def connects(site: Site, kind: str, source: str, keep: list[mqtt.Client]) -> bool:
    """Whether a client from ``source`` gets CONNACK 0 through nginx ("wss" or "mqtt");
    the connected ones are kept open in ``keep``."""
    result: list[int] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, transport="websockets" if kind == "wss" else "tcp"
    )
    client.on_connect = lambda _c, _u, _f, code, _p: result.append(code.value)
    if kind == "wss":
        client.ws_set_options(path="/mqtt")
        client.tls_set(ca_certs=str(site.cert))
    client.reconnect_delay_set(60, 60)  # one try
    try:
        client.connect(
            "127.0.0.1", site.ports["https" if kind == "wss" else kind], bind_address=source
        )
    except OSError:
        return False
    client.loop_start()
    deadline = time.monotonic() + 5
    while not result and time.monotonic() < deadline and client.is_connected() is not None:
        time.sleep(0.05)
    keep.append(client)
    return result == [0]


def test_chat_through_nginx_as_deployed(site):
    # A client-chosen X-Forwarded-For is replaced by nginx: the gate sees the real address.
    alice = site.client("wss", "127.0.0.2", headers={"X-Forwarded-For": "198.51.100.66"})
    bob = site.client("mqtts", "127.0.0.3")
    carol = site.client("mqtt", "127.0.0.4")
    chats(alice, bob, carol)
    seen = addresses_seen(site.database)
    assert seen["alice"] == ("127.0.0.2", "websocket"), seen
    assert seen["bob"] == ("127.0.0.3", "tcp"), seen  # PROXY protocol, behind TLS at nginx
    assert seen["carol"] == ("127.0.0.4", "tcp"), seen

    assert site.get("/readyz") == (200, b'{"ready": true}\n')
    assert site.get("/healthz")[0] == 200
    assert site.get("/metrics")[0] == 404  # never from outside
    # The chat page and its assets through nginx: with DJANGO_HTTPS, only X-Forwarded-Proto
    # keeps Django from redirecting to https forever.
    status, page = site.get("/mqant/index.html")
    assert status == 200
    assert b"chat.js" in page
    assert site.get("/static/mqant/chat.js")[0] == 200
    plain = http.client.HTTPConnection("127.0.0.1", site.ports["http"], timeout=10)
    plain.request("GET", "/mqant/index.html")
    redirect = plain.getresponse()
    assert redirect.status == 301
    assert redirect.getheader("Location", "").startswith("https://")
    plain.close()
    health = f"http://127.0.0.1:{site.ports['health']}/readyz"
    with urllib.request.urlopen(health, timeout=5) as response:
        assert response.status == 200


def test_per_address_limits_count_the_client_behind_nginx(site):
    """MAX_CONNECTIONS_PER_ADDRESS=1 on each of the two gates: one address holds two
    connections at most, whichever gate each lands on; another address still connects. Were
    every client nginx's 127.0.0.1, the second address would be refused too. Through
    daphne's port (wss: X-Forwarded-For) and the shared TCP port (the PROXY protocol)."""
    for kind, (first, second) in {
        "wss": ("127.0.0.5", "127.0.0.6"),
        "mqtt": ("127.0.0.7", "127.0.0.8"),
    }.items():
        keep: list[mqtt.Client] = []
        try:
            admitted = [connects(site, kind, first, keep) for _ in range(3)]
            assert 1 <= sum(admitted) <= 2, (kind, admitted)
            assert connects(site, kind, second, keep), kind
        finally:
            for client in keep:
                client.loop_stop()
                client.disconnect()
