from collections.abc import Iterator

import pytest
from django.core.cache import cache
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
