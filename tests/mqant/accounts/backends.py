"""A project's own authentication backend, for the tests: a log-in by e-mail address."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class EmailLogin(ModelBackend):
    """The user whose e-mail address is ``username``, when the password is theirs."""

    def authenticate(self, request: Any, username: str | None = None,
                     password: str | None = None, **kwargs: Any) -> Any:  # fmt: skip
        if not username or password is None:
            return None
        user = get_user_model()._default_manager.filter(email=username).first()
        if user is not None and user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None


class DatabaseDown(ModelBackend):
    """A backend whose query finds the database refusing."""

    def authenticate(self, request: Any, username: str | None = None,
                     password: str | None = None, **kwargs: Any) -> Any:  # fmt: skip
        from django.db import OperationalError

        raise OperationalError("connection refused")
