"""Django's authentication backend behind the account policy, for the admin's login form and
any view that calls ``django.contrib.auth.authenticate(request, ...)``: the same budgets,
lockout and hash pool as every other way in."""

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from mqant.accounts import Refused, login_sync

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def request_ip(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR``, or behind ``settings.NUM_PROXIES`` proxies the
    address the outermost of them saw (the same rule as the REST API's throttles)."""
    remote = str(request.META.get("REMOTE_ADDR", ""))
    proxies = int(getattr(settings, "NUM_PROXIES", 0))
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    if proxies <= 0 or not forwarded:
        return remote
    addresses = [a.strip() for a in forwarded.split(",")]
    return addresses[-min(proxies, len(addresses))]


class AccountPolicyBackend(ModelBackend):
    """ModelBackend whose password check goes through ``mqant.accounts.login_sync``. A call
    without a request (tests' ``Client.login``, management code) is ModelBackend's own."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> "User | None":
        if request is None:
            return super().authenticate(request, username, password, **kwargs)
        if username is None or password is None:
            return None
        try:
            user = login_sync(username=username, password=password, ip=request_ip(request))
        except Refused:
            return None  # the admin's form answers every refusal with one text
        return user if self.user_can_authenticate(user) else None
