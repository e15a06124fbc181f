"""CONNECT credentials while the database is down: the client is told to come back later
(CONNACK 3), never that its password is wrong, and the connection is not torn down by an
exception."""

import pytest
from django.db import OperationalError

from gate import auth
from gate.mqtt.packets import SERVER_UNAVAILABLE
from mqant import accounts
from mqant.dependencies import DATABASE

# Channels closes stale connections around each call: database access must be allowed.
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _forget_the_outage():
    yield
    DATABASE.forget()


@pytest.mark.parametrize("password", [b"a-password-of-a-user", b"t" * 40])  # a password, a token
async def test_a_database_down_at_connect_is_server_unavailable(monkeypatch, password):
    def refused(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(auth, "_token_user", refused)
    monkeypatch.setattr(accounts, "_begin", refused)
    assert await auth.connect_user("ann", password, "10.0.0.1") == SERVER_UNAVAILABLE
