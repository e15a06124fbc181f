"""Who checks a password: the user model's own hash, or the project's authentication backends.

When every backend in ``AUTHENTICATION_BACKENDS`` checks the user model's password as Django's
``ModelBackend`` does (ModelBackend, subclasses that do not change ``authenticate``, and
``AccountPolicyBackend``), the account policy compares the hash itself, on the hash pool.
Otherwise (an LDAP backend, a log-in by e-mail address...) it asks those backends, in the
order the project lists them, still after the budgets and the lockout and on the hash pool.
"""

from typing import TYPE_CHECKING

from django.contrib.auth import get_backends
from django.contrib.auth.backends import ModelBackend
from django.db import close_old_connections

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# The backend that routes Django's authenticate() here: never asked from here again.
POLICY_BACKEND = "mqant.accounts.backends.AccountPolicyBackend"


def _is_policy(backend: object) -> bool:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}" == POLICY_BACKEND


def _checks_model_password(backend: object) -> bool:
    if _is_policy(backend):
        return True
    return isinstance(backend, ModelBackend) and (
        type(backend).authenticate is ModelBackend.authenticate
    )


def checks_model_passwords() -> bool:
    """Whether every configured backend checks the user model's password hash."""
    return all(_checks_model_password(backend) for backend in get_backends())


def authenticate(username: str, password: str) -> "User | None":
    """The active user the project's backends (all but the policy's own) accept, or None.
    Blocking: runs on the hash pool, whose threads, like Channels' database thread, close
    their stale or broken connections before and after."""
    close_old_connections()
    try:
        for backend in get_backends():
            if _is_policy(backend):
                continue
            user = backend.authenticate(None, username=username, password=password)
            if user is not None and getattr(user, "is_active", True):
                return user
        return None
    finally:
        close_old_connections()
