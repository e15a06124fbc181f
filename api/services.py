"""Writes and calls for the REST API: accounts (through mqant's account policy, so a user
registers and logs in with the same rules, budgets and lockout over REST and over MQTT), API
tokens, staff actions on live connections and rooms, and handler calls.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from rest_framework.authtoken.models import Token

from chat import services as chat_services
from mqant import Session, accounts, routing
from mqant.admin_actions import close_channels
from sessions_store.models import LiveConnection

if TYPE_CHECKING:  # the configured user model, as django-stubs resolves AUTH_USER_MODEL
    from django.contrib.auth.models import User


def user_authenticate(*, username: str, password: str, client_ip: str) -> "User":
    """The user with these credentials. Raises ``mqant.accounts.Refused`` (LockedOut,
    Throttled, Busy, WrongCredentials...)."""
    return accounts.login_sync(username=username, password=password, ip=client_ip)


def user_register(*, username: str, password: str, client_ip: str) -> "User":
    """A new active user, after the address's budget, the user name's validator and
    uniqueness, then ``AUTH_PASSWORD_VALIDATORS``. Raises ValidationError with messages per
    field (``username``, ``password``), or ``mqant.accounts.Refused`` (Throttled, Busy)."""
    return accounts.register_sync(username=username, password=password, ip=client_ip)


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


async def handler_call(*, user_id: str, ip: str, module: str, handler: str, body: Any) -> CallReply:
    """Run ``module``'s ``handler`` with ``(session, body)`` under the gate's rules (CONTRACT.md,
    "Routing a PUBLISH"), the session that of an HTTP caller bound to ``user_id``: it has no
    connection, so session operations fail at once and pushes to it go nowhere."""
    session = Session.for_http(user_id=user_id, ip=ip, topic=f"{module}/{handler}")
    reply = await routing.dispatch(session, module, handler, body)
    if isinstance(reply, bytes):
        return CallReply(raw=reply)
    return CallReply(envelope=routing.checked(reply))
