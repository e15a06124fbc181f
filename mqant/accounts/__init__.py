"""One account policy for every way in: the REST login and register, ``Login/HD_Login``,
credentials at CONNECT and the admin's login form all go through ``login`` or ``register``.

- **Bounds**: a user name is at most 150 characters (Django's field, enforced here since
  SQLite enforces no ``max_length``) and passes the user model's validator; a password is at
  most 4096 characters (a hash costs time in proportion).
- **Per-address budgets** (``budgets``): logins attempted, accounts created; counted in the
  cache, shared by every process over Redis.
- **Lockout** (``lockout``): failures per user name and per address, counted atomically
  before the password is checked.
- **Hashing** (``hashing``): on a bounded pool of its own, so logins queue among themselves
  and never hold up other database work.
- **Uniform answers**: a wrong password and an unknown user name get one text after a hash
  of the same cost; with auto-registration, a new name whose password the validators refuse
  gets that text too, so no answer tells whether a name is taken.

Both functions are coroutines; sync code (a Django view, an authentication backend) calls
``login_sync``/``register_sync``, which do their database work in the calling thread.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from mqant import metrics
from mqant.accounts import budgets, hashing, lockout, passwords
from mqant.accounts.budgets import Throttled
from mqant.accounts.errors import InvalidName, Refused, WrongCredentials
from mqant.accounts.hashing import Busy
from mqant.accounts.lockout import LockedOut
from mqant.db import db as mqant_db
from mqant.db import guarded

if TYPE_CHECKING:  # the configured user model, as django-stubs resolves AUTH_USER_MODEL
    from django.contrib.auth.models import User

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MAX_USERNAME_LENGTH",
    "Busy",
    "InvalidName",
    "LockedOut",
    "Refused",
    "Throttled",
    "WrongCredentials",
    "login",
    "login_sync",
    "register",
    "register_sync",
]

MAX_USERNAME_LENGTH = 150
MAX_PASSWORD_LENGTH = 4096

WRONG_CREDENTIALS = "Wrong user name or password"
# With auto-registration the same text covers a new name whose password is refused.
WRONG_OR_WEAK = (
    "Wrong user name or password (a new user name is registered only with a password "
    "of at least 8 characters that is neither common nor all digits)"
)
USERNAME_TAKEN = "A user with that user name already exists."

Db = Callable[..., Callable[..., Awaitable[Any]]]


@dataclass(frozen=True)
class _Attempt:
    """A login attempt, counted: the user it names (None: none), or a name to register."""

    user: "User | None"
    reservation: lockout.Reservation
    creates: bool  # an unknown name, a valid password: register it
    wrong_text: str


async def login(
    *, username: str, password: str, ip: str, auto_register: bool = False, _db: Db | None = None
) -> "User":
    """The active user with these credentials; with ``auto_register``, an unknown user name
    is registered with this password (when the validators accept it).

    Raises InvalidName, Throttled, LockedOut, Busy or WrongCredentials (all Refused)."""
    db = _db or mqant_db
    attempt: _Attempt = await db(_begin)(username, password, ip, auto_register)
    own_check = passwords.checks_model_passwords()
    user: User | None
    try:
        if own_check and attempt.creates:
            user = await db(_create)(username, await hashing.aencode(password, address=ip))
        elif own_check:
            encoded = attempt.user.password if attempt.user is not None else None
            matches = await hashing.averify(password, encoded, address=ip)
            user = attempt.user if matches and attempt.user and attempt.user.is_active else None
        else:  # the project's own backends (LDAP, e-mail logins...) check the password
            # ORM work on the hash pool: under the database's rules, as mqant.db's is.
            check = guarded(hashing.arun)
            user = await check(passwords.authenticate, username, password, address=ip)
            if user is None and attempt.creates:
                user = await db(_create)(username, await hashing.aencode(password, address=ip))
    except BaseException:
        await db(lockout.cancelled)(attempt.reservation)
        raise
    if attempt.creates and user is None:  # a concurrent first login registered the name
        await db(lockout.cancelled)(attempt.reservation)
        return await login(username=username, password=password, ip=ip, _db=_db)
    if user is None:
        metrics.LOGIN_FAILURES.child().add()
        await db(lockout.failed)(attempt.reservation)
        raise WrongCredentials(attempt.wrong_text)
    await db(lockout.succeeded)(attempt.reservation)
    if not attempt.creates and own_check and hashing.outdated(user.password):
        # As Django's own login does: a hash made with weaker settings is made again.
        user.password = await hashing.aencode(password, address=ip)
        await db(_store_password)(user)
    return user


async def register(*, username: str, password: str, ip: str, _db: Db | None = None) -> "User":
    """A new active user, after the address's budget, the user name's validator and
    uniqueness, and ``AUTH_PASSWORD_VALIDATORS``.

    Raises Throttled, Busy, or ValidationError with messages per field (``username``,
    ``password``)."""
    db = _db or mqant_db
    username = await db(_validate_new)(username, password, ip)
    encoded = await hashing.aencode(password, address=ip)
    created: User | None = await db(_create)(username, encoded)
    if created is None:  # registered concurrently since the check
        raise ValidationError({"username": [USERNAME_TAKEN]})
    return created


def login_sync(**kwargs: Any) -> "User":
    """``login`` for sync callers; the database work runs in the calling thread."""
    return async_to_sync(login)(**kwargs, _db=sync_to_async)


def register_sync(**kwargs: Any) -> "User":
    """``register`` for sync callers; the database work runs in the calling thread."""
    return async_to_sync(register)(**kwargs, _db=sync_to_async)


# The steps that touch the database and the cache (in the caller's database thread).


def _begin(username: str, password: str, ip: str, auto_register: bool) -> _Attempt:
    _check_sizes(username, password)
    budgets.take("login", ip)
    user = _find(username)
    creates = False
    wrong = WRONG_OR_WEAK if auto_register else WRONG_CREDENTIALS
    if user is None and auto_register:
        _check_name(username)
        budgets.take("register", ip)
        creates = not _password_errors(username, password)
    reservation = lockout.reserve(username=username, ip=ip)
    return _Attempt(user, reservation, creates, wrong)


def _validate_new(username: str, password: str, ip: str) -> str:
    budgets.take("register", ip)
    User = get_user_model()
    username = User.normalize_username(username)
    errors: dict[str, list[str]] = {}
    try:
        _check_sizes(username, password)
        _check_name(username)
    except Refused as err:
        errors["username"] = [str(err)]
    if "username" not in errors and _find(username) is not None:
        errors["username"] = [USERNAME_TAKEN]
    if problems := _password_errors(username, password):
        errors["password"] = problems
    if errors:
        raise ValidationError(errors)
    return username


def _create(username: str, encoded: str) -> "User | None":
    """A new user with this password hash; None when the name was taken meanwhile."""
    User = get_user_model()
    user = User(**{User.USERNAME_FIELD: username})
    user.password = encoded
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        return None
    return user


def _store_password(user: "User") -> None:
    user.save(update_fields=["password"])


def _find(username: str) -> "User | None":
    User = get_user_model()
    return User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()


def _check_sizes(username: str, password: str) -> None:
    if len(username) > MAX_USERNAME_LENGTH:
        raise InvalidName(f"The user name is longer than {MAX_USERNAME_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Refused(f"The password is longer than {MAX_PASSWORD_LENGTH} characters")


def _check_name(username: str) -> None:
    """Whether an account may have this name; no secret, so the answer says why."""
    try:
        get_user_model().username_validator(username)
    except ValidationError as err:
        raise InvalidName(f"Invalid user name: {' '.join(err.messages)}") from err


def _password_errors(username: str, password: str) -> list[str]:
    User = get_user_model()
    try:
        password_validation.validate_password(password, User(**{User.USERNAME_FIELD: username}))
    except ValidationError as err:
        return list(err.messages)
    return []
