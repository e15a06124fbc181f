"""Credentials at CONNECT: an MQTT user name with its Django password, or with a REST API
token as the password, binds the session when the connection opens.

Guesses count against the same lockout as ``Login/HD_Login`` and the REST login
(login.lockout): per user name and per client address, so CONNECT is no way around it. A
locked-out user name or address is refused like wrong credentials (CONNACK 4).
"""

import logging

from channels.db import database_sync_to_async
from django.contrib.auth import authenticate, get_user_model
from rest_framework.authtoken.models import Token

from login import lockout

logger = logging.getLogger(__name__)


def _check(username: str, password: str, ip: str) -> str | None:
    try:
        lockout.check(username=username, ip=ip)
    except lockout.LockedOut as err:
        logger.info("CONNECT as %r from %s refused: %s", username, ip, err)
        return None
    user = _authenticate(username, password)
    if user is None:
        lockout.record_failure(username=username, ip=ip)
    else:
        lockout.record_success(username=username)
    return user


def _authenticate(username: str, password: str) -> str | None:
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


async def connect_user(username: str, password: bytes | None, ip: str) -> str | None:
    """The user these CONNECT credentials name, or None when they are wrong (or the user
    name or the address ``ip`` is locked out)."""
    if not password:
        return None
    text = password.decode("utf-8", "replace")
    user: str | None = await database_sync_to_async(_check)(username, text, ip)
    return user
