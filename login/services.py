"""Logging in with Django's users."""

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from login import lockout


class LoginError(Exception):
    """The credentials were refused; the text is what the client is told."""


WRONG_PASSWORD = "Wrong password"  # noqa: S105 - an error text, not a password
UNKNOWN_USER = "Unknown user"


def user_login(*, username: str, password: str, auto_register: bool) -> AbstractBaseUser:
    """The user with these credentials; an unknown user name is registered with that password
    when ``auto_register`` is set. Raises LoginError."""
    User = get_user_model()
    user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
    if user is None:
        if not auto_register:
            raise LoginError(UNKNOWN_USER)
        return _register(username=username, password=password)
    if not user.is_active or not user.check_password(password):
        raise LoginError(WRONG_PASSWORD)
    return user


def _register(*, username: str, password: str) -> AbstractBaseUser:
    User = get_user_model()
    try:
        User.username_validator(username)
    except ValidationError as err:
        raise LoginError(f"Invalid user name: {' '.join(err.messages)}") from err
    if not password:
        raise LoginError("passWord cannot be empty")
    try:
        with transaction.atomic():
            user: AbstractBaseUser = User._default_manager.create_user(
                **{User.USERNAME_FIELD: username, "password": password}
            )
    except IntegrityError:
        # Registered by a concurrent first login; check against that one.
        return user_login(username=username, password=password, auto_register=False)
    return user


class OnlineUsers:
    """The users logged in through one Login node, by the sessions they logged in with."""

    def __init__(self) -> None:
        self._users: dict[str, str] = {}  # session id → user id

    def logged_in(self, *, session_id: str, user_id: str) -> None:
        self._users[session_id] = user_id

    def session_closed(self, *, session_id: str) -> None:
        self._users.pop(session_id, None)

    def count(self) -> int:
        """Distinct users with at least one open session."""
        return len(set(self._users.values()))


def user_login_limited(
    *, username: str, password: str, auto_register: bool, ip: str
) -> AbstractBaseUser:
    """``user_login`` behind the lockout (``login.lockout``): refused while the user name or
    the address is locked out; failures are counted. Raises LoginError or LockedOut."""
    lockout.check(username=username, ip=ip)
    try:
        user = user_login(username=username, password=password, auto_register=auto_register)
    except LoginError:
        lockout.record_failure(username=username, ip=ip)
        raise
    lockout.record_success(username=username)
    return user
