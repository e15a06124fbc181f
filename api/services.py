"""Accounts for the REST API: registering, checking credentials (with the lockout), API tokens.

The password check itself is the Login module's (``login.services.user_login``), so a user
logs in with the same rules over REST and over MQTT.
"""

from typing import TYPE_CHECKING, cast

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token

from login import lockout
from login.services import UNKNOWN_USER, LoginError, user_login

if TYPE_CHECKING:  # the configured user model, as django-stubs resolves AUTH_USER_MODEL
    from django.contrib.auth.models import User

USERNAME_TAKEN = "A user with that user name already exists."


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
