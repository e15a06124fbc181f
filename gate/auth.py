"""Credentials at CONNECT: an MQTT user name with its Django password, or (in a project with
``rest_framework.authtoken`` installed) with its REST API token as the password, binds the
session when the connection opens. The user is the project's AUTH_USER_MODEL.

A password goes through the account policy (mqant.accounts) like every other way in: the
per-address login budget, the lockout per user name and per address, the hash pool. A
refusal is CONNACK 4 (bad user name or password) when the credentials are to blame, 3
(server unavailable) when the address spent its budget, the server is busy or its database
is down.
"""

from django.apps import apps
from django.contrib.auth import get_user_model

from gate.mqtt.packets import BAD_USERNAME_OR_PASSWORD, SERVER_UNAVAILABLE
from mqant import ServiceUnavailable, accounts, db


def _token_user(username: str, key: str) -> str | None:
    """The user name whose REST token ``key`` is, if it is ``username``'s and active."""
    if not apps.is_installed("rest_framework.authtoken"):
        return None
    from rest_framework.authtoken.models import Token  # in a project with DRF's tokens only

    field = get_user_model().USERNAME_FIELD
    token = Token.objects.select_related("user").filter(key=key, **{f"user__{field}": username})
    found = token.first()
    if found is not None and found.user.is_active:
        return str(found.user.get_username())
    return None


async def connect_user(username: str, password: bytes | None, ip: str) -> str | int:
    """The user these CONNECT credentials name, or the CONNACK code that refuses them."""
    if not password:
        return BAD_USERNAME_OR_PASSWORD
    text = password.decode("utf-8", "replace")
    try:
        if len(text) == 40:  # DRF's token length: a lookup by key, no hash to compute
            user: str | None = await db(_token_user)(username, text)
            if user is not None:
                return user
        found = await accounts.login(username=username, password=text, ip=ip)
    except (accounts.Throttled, accounts.Busy, ServiceUnavailable):
        return SERVER_UNAVAILABLE  # try again later, as for a database that is down
    except accounts.Refused:
        return BAD_USERNAME_OR_PASSWORD
    return str(found.get_username())
