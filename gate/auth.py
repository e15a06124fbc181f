"""Credentials at CONNECT: an MQTT user name with its Django password, or with a REST API
token as the password, binds the session when the connection opens."""

from channels.db import database_sync_to_async
from django.contrib.auth import authenticate, get_user_model
from rest_framework.authtoken.models import Token


def _check(username: str, password: str) -> str | None:
    user = authenticate(username=username, password=password)
    if user is not None and user.is_active:
        return str(user.get_username())
    field = get_user_model().USERNAME_FIELD
    token = (
        Token.objects.select_related("user")
        .filter(key=password, **{f"user__{field}": username})
        .first()
    )
    if token is not None and token.user.is_active:
        return str(token.user.get_username())
    return None


async def connect_user(username: str, password: bytes | None) -> str | None:
    """The user these CONNECT credentials name, or None when they are wrong."""
    if not password:
        return None
    text = password.decode("utf-8", "replace")
    user: str | None = await database_sync_to_async(_check)(username, text)
    return user
