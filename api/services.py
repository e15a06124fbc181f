"""Writes and calls for the REST API: accounts (registering, checking credentials with the
lockout, API tokens), staff actions on live connections and rooms, and handler calls.

The password check itself is the Login module's (``login.services.user_login``), so a user
logs in with the same rules over REST and over MQTT.
"""

import json
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token

from chat import services as chat_services
from login import lockout
from login.services import UNKNOWN_USER, LoginError, user_login
from mqant import RPCError, Session, call
from mqant.admin_actions import close_channels
from sessions_store.models import LiveConnection

if TYPE_CHECKING:  # the configured user model, as django-stubs resolves AUTH_USER_MODEL
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

USERNAME_TAKEN = "A user with that user name already exists."
# The gate's texts (gate.router), which this module may not import.
INTERNAL_ERROR = "internal error"
NOT_JSON = "The result is not JSON serializable"


def user_authenticate(*, username: str, password: str, client_ip: str) -> "User":
    """The user with these credentials. Raises ``lockout.LockedOut`` while the user name or
    the address is locked out (the password is not checked then), ``LoginError`` otherwise."""
    lockout.check(username=username, ip=client_ip)
    try:
        user = user_login(username=username, password=password, auto_register=False)
    except LoginError as err:
        if str(err) == UNKNOWN_USER:
            # Hash anyway, so an unknown user name takes as long as a wrong password.
            make_password(password)
        lockout.record_failure(username=username, ip=client_ip)
        raise
    lockout.record_success(username=username)
    return cast("User", user)  # user_login returns an instance of the configured model


def user_register(*, username: str, password: str) -> "User":
    """A new active user, after Django's checks: the user name's validator and uniqueness,
    then ``AUTH_PASSWORD_VALIDATORS``. Raises ValidationError with messages per field
    (``username``, ``password``)."""
    User = get_user_model()
    username = User.normalize_username(username)
    errors: dict[str, list[str]] = {}
    try:
        User.username_validator(username)
    except ValidationError as err:
        errors["username"] = err.messages
    if User._default_manager.filter(**{User.USERNAME_FIELD: username}).exists():
        errors.setdefault("username", []).append(USERNAME_TAKEN)
    try:
        password_validation.validate_password(password, User(**{User.USERNAME_FIELD: username}))
    except ValidationError as err:
        errors["password"] = err.messages
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            user = User._default_manager.create_user(
                **{User.USERNAME_FIELD: username, "password": password}
            )
    except IntegrityError as err:  # registered concurrently since the check above
        raise ValidationError({"username": [USERNAME_TAKEN]}) from err
    return user


def token_issue(*, user: "User") -> str:
    """The user's API token (DRF's, one per user), created on first use."""
    token, _ = Token.objects.get_or_create(user=user)
    return str(token.key)


def token_revoke(*, token: Token) -> None:
    """Delete an API token: every client holding it is logged out."""
    token.delete()


def connection_kick(*, connection: LiveConnection) -> None:
    """Close a live connection (its gate applies it; nothing happens if it is gone)."""
    close_channels([connection.channel])


def room_broadcast(*, room_name: str, text: str) -> dict[str, str]:
    """Send a system message to the members of room ``room_name`` on every gate, as
    ``Chat/OnChat``; returns the event sent."""
    return async_to_sync(chat_services.system_message)(room_name=room_name, text=text)


@dataclass(frozen=True)
class CallReply:
    """What a handler call answers: the envelope, or raw bytes the handler returned (which
    the gate, too, sends without the envelope)."""

    envelope: dict[str, Any] | None = None
    raw: bytes | None = None


def http_session(*, user_id: str, ip: str, topic: str) -> Session:
    """The session of an HTTP caller: bound to ``user_id``, with no connection (channel
    ``""``), so session operations fail at once and pushes to it go nowhere."""
    return Session(
        ip=ip,
        network="http",
        session_id=secrets.token_hex(8),
        server_id="http",
        channel="",
        user_id=user_id,
        topic=topic,
        trace_id=secrets.token_hex(16),
    )


def _envelope(trace_id: str, error: str, result: Any) -> dict[str, Any]:
    try:
        json.dumps(result)
    except (TypeError, ValueError):
        logger.error("trace %s: result of type %s is not JSON", trace_id, type(result).__name__)
        return {"Trace": trace_id, "Error": NOT_JSON, "Result": None}
    return {"Trace": trace_id, "Error": error, "Result": result}


async def handler_call(*, session: Session, module: str, handler: str, body: Any) -> CallReply:
    """Run ``module``'s ``handler`` with ``(session, body)`` under the gate's rules (CONTRACT.md,
    "Routing a PUBLISH"): only ``HD_`` handlers, ``Type`` or ``Type@node``, errors as text."""
    trace = session.trace_id
    try:
        if not handler.startswith("HD_"):
            raise RPCError(f"Method({handler}) must begin with 'HD_'")
        result = await call(module, handler, session, body)
    except RPCError as err:
        return CallReply(envelope=_envelope(trace, str(err), None))
    except Exception:
        # The channel layer failed (Redis down): the caller still gets an answer.
        logger.exception("trace %s: calling %s/%s failed", trace, module, handler)
        return CallReply(envelope=_envelope(trace, INTERNAL_ERROR, None))
    if isinstance(result, bytes):
        return CallReply(raw=result)
    return CallReply(envelope=_envelope(trace, "", result))
