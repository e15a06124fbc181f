"""Safe defaults: no serving with a public key and DEBUG off; credentials masked wherever an
error report could show a setting."""

import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from django.views.debug import technical_500_response

from mqant.security import CredentialMaskingFilter, mask_credentials, refuse_insecure_start

SECRET = "hunter2-pw"


def test_url_credentials_are_masked():
    assert mask_credentials(f"postgres://app:{SECRET}@db:5432/mqant") == (
        "postgres://********@db:5432/mqant"
    )
    assert mask_credentials(f"redis://:{SECRET}@cache:6379/0") == "redis://********@cache:6379/0"
    assert mask_credentials("redis://cache:6379/0") == "redis://cache:6379/0"


@pytest.fixture
def settings_with_credentials(settings):
    settings.DATABASE_URL = f"postgres://app:{SECRET}@db/mqant"
    settings.REDIS_URL = f"redis://:{SECRET}@cache:6379/0"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"redis://:{SECRET}@cache:6379/0",
        }
    }
    settings.MQANT = {**settings.MQANT, "REGISTRY": {"CONFIG": {"url": settings.REDIS_URL}}}
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"hosts": [{"address": settings.REDIS_URL}]},
        }
    }
    return settings


def test_safe_settings_hold_no_url_password(settings_with_credentials):
    shown = repr(CredentialMaskingFilter().get_safe_settings())
    assert SECRET not in shown
    assert "redis://********@cache:6379/0" in shown


def test_the_debug_page_shows_no_url_password(settings_with_credentials):
    settings_with_credentials.DEBUG = True
    request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Token {SECRET}")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        page = technical_500_response(request, *sys.exc_info()).content.decode()
    assert "boom" in page  # it is the debug page
    assert SECRET not in page


def test_no_serving_with_debug_off_and_a_public_key(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = "django-insecure-development-key-change-me-in-production"
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        refuse_insecure_start()
    settings.SECRET_KEY = "short"
    with pytest.raises(ImproperlyConfigured):
        refuse_insecure_start()
    settings.SECRET_KEY = "k3" * 30  # 60 characters, but two distinct
    with pytest.raises(ImproperlyConfigured):
        refuse_insecure_start()
    settings.SECRET_KEY = "a-real-key-9f2c1e0b7d4a3f5e6c8b9a0d1e2f3a4b5c6d7e8f9a0b1c2d3"
    refuse_insecure_start()
    settings.DEBUG = True
    settings.SECRET_KEY = "django-insecure-development-key-change-me-in-production"
    refuse_insecure_start()  # development
