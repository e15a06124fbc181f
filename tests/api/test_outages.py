"""The REST API when a dependency is down: the cache (Redis) down degrades counting to this
process's memory and logins go on; a failing database is a 503 with a short JSON body and a
Retry-After, never a 500 or a traceback."""

import socket

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from mqant import counters
from mqant.dependencies import REDIS
from tests.api.test_auth import LOGIN, PASSWORD, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def dead_redis_cache(settings):
    """The default cache on a Redis port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    working = settings.CACHES
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
        }
    }
    yield
    REDIS.forget()
    settings.CACHES = working  # before the cache is cleared after the test


def test_a_login_works_while_the_cache_is_down(dead_redis_cache, caplog):
    make_user("carol")
    api = APIClient()
    response = api.post(LOGIN, {"username": "carol", "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    assert REDIS.down
    outage_lines = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(outage_lines) == 1


def test_the_lockout_still_holds_while_the_cache_is_down(dead_redis_cache):
    make_user("dave")
    api = APIClient()
    codes = [
        api.post(
            LOGIN, {"username": "dave", "password": "wrong-pass-11"}, format="json"
        ).status_code
        for _ in range(7)
    ]
    assert codes[:5] == [400] * 5
    assert codes[5:] == [429, 429]  # counted in this process's memory


def test_counters_skip_a_redis_known_down(dead_redis_cache):
    REDIS.probe = True
    REDIS.failed(ConnectionError("down"))
    assert counters.add("k", 60) == 1  # no connection attempted: the local count
    assert counters.add("k", 60) == 2


def test_a_database_failure_is_a_503_with_json(monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("connection to server failed")

    monkeypatch.setattr("api.views.services.user_authenticate", broken)
    client = APIClient()
    response = client.post(LOGIN, {"username": "x", "password": PASSWORD}, format="json")
    assert response.status_code == 503
    assert response.json() == {"detail": "database unavailable; try again in a moment."}
    assert response["Retry-After"] == "5"


def test_a_page_whose_database_fails_is_a_503_not_a_500(client, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("connection to server failed")

    monkeypatch.setattr("django.contrib.sessions.backends.db.SessionStore.load", broken)
    client.raise_request_exception = False
    client.cookies["sessionid"] = "x" * 32
    response = client.get("/admin/")
    assert response.status_code == 503
    assert response.content == b"database unavailable; try again in a moment.\n"
    assert "Traceback" not in response.content.decode()
