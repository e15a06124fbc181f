from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def _fast_hashing_and_empty_cache(settings) -> Iterator[None]:
    """A fast password hasher (the default one takes ~0.3 s per check), and throttle and
    lockout counts that start at zero."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api() -> APIClient:
    """An API client: no cookies of its own, so no CSRF token needed for login."""
    return APIClient()


@pytest.fixture
def browser() -> APIClient:
    """A client that behaves like the chat page: Django's CSRF checks on, cookies kept."""
    return APIClient(enforce_csrf_checks=True)


@pytest.fixture
def make_client():
    """``make_client(username, staff=False)``: a user and an API client holding their token."""

    def make(username: str, *, staff: bool = False) -> APIClient:
        user = get_user_model().objects.create_user(
            username=username, password="correct-horse-42", is_staff=staff
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        return client

    return make
