"""/healthz and /readyz on a real gate process, as a supervisor or a load balancer probes them:
by any Host (a pod's address), with no session; /readyz turns not ready while Redis or the
database is down and ready again, with no restart, once it is back."""

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import POSTGRES_URL, require_service
from tests.e2e.server import ServerProcess
from tests.faults.deployment import Database
from tests.faults.services import RedisServer, TcpProxy

pytestmark = pytest.mark.e2e


def is_alive(answer):
    """A /healthz answer of a live process: 200, alive, a loop lag under the limit."""
    status, body = answer
    return status == 200 and body["alive"] is True and 0 <= body["loop_lag_seconds"] < 5


def probe(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def until(check: Callable[[], bool], within: float) -> float:
    """Seconds until ``check()`` holds, polled every 0.2 s; fails past ``within``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < within, f"not within {within} s"
        time.sleep(0.2)
    return time.monotonic() - start


def test_a_default_gate_is_alive_and_ready_for_any_host(tmp_path):
    server = ServerProcess(tmp_path).start()
    try:
        assert is_alive(probe(server.port, "/healthz"))
        assert probe(server.port, "/readyz") == (200, {"ready": True})
        # A probe names the pod's address, which ALLOWED_HOSTS does not list.
        assert probe(server.port, "/readyz", host="10.11.12.13:8000") == (200, {"ready": True})
    finally:
        server.stop()
    assert "Traceback" not in server.output()


@pytest.fixture
def deployed(tmp_path, postgres_url) -> Iterator[tuple[ServerProcess, RedisServer, TcpProxy]]:
    """A gate on its own Redis, and on PostgreSQL behind a proxy the test can make refuse."""
    redis = RedisServer(tmp_path)
    try:
        redis.start()
    except RuntimeError as err:
        require_service("Redis", str(err))
    proxy = TcpProxy("127.0.0.1", int(POSTGRES_URL.rsplit(":", 1)[1].split("/")[0])).start()
    database = Database(POSTGRES_URL, postgres_url.rsplit("/", 1)[1])
    env = {
        "REDIS_URL": redis.url,
        "MQANT_REDIS_LAYER": "pubsub",
        "DATABASE_URL": database.url(proxy.port),
    }
    server = ServerProcess(tmp_path, env, mqant={"DATABASE_PROBE": 0.5})
    try:
        server.start()
        yield server, redis, proxy
    finally:
        server.stop()
        proxy.stop()
        redis.stop()


def test_readyz_follows_redis_and_the_database_down_and_back(deployed):
    server, redis, proxy = deployed

    def ready() -> bool:
        return probe(server.port, "/readyz")[0] == 200

    def not_ready_for(what: str) -> bool:
        status, body = probe(server.port, "/readyz")
        return status == 503 and any(what in reason for reason in body["reasons"])

    until(ready, 10)
    redis.kill()
    until(lambda: not_ready_for("Redis unavailable"), 10)
    assert is_alive(probe(server.port, "/healthz"))  # alive all the same
    redis.start()
    until(ready, 15)

    proxy.refuse()
    until(lambda: not_ready_for("database unavailable"), 10)
    assert probe(server.port, "/healthz")[0] == 200
    proxy.resume()
    until(ready, 15)
    assert "Traceback" not in server.output()
