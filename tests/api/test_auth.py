"""The account endpoints under /api/auth/: register, login, logout, me, with token and session
authentication, CSRF for browsers, throttling and the lockout."""

import itertools
import time

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from mqant import accounts
from mqant import conf as mqant_conf

pytestmark = pytest.mark.django_db

REGISTER = "/api/auth/register/"
LOGIN = "/api/auth/login/"
LOGOUT = "/api/auth/logout/"
ME = "/api/auth/me/"
PASSWORD = "correct-horse-42"

_names = itertools.count()


@pytest.fixture
def name() -> str:
    return f"user{next(_names)}"


def make_user(username: str, password: str = PASSWORD, **extra):
    return get_user_model().objects.create_user(username=username, password=password, **extra)


def rate(budget: str) -> int:
    """How many attempts an address's budget allows before refusing (mqant.accounts)."""
    setting = {"login": "LOGIN_RATE_PER_ADDRESS", "register": "REGISTER_RATE_PER_ADDRESS"}
    return int(mqant_conf.get(setting[budget])[0])


def token_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


# Register


def test_register_creates_the_user_returns_a_token_and_logs_the_session_in(api, name):
    response = api.post(REGISTER, {"username": name, "password": PASSWORD}, format="json")
    assert response.status_code == 201, response.data
    user = get_user_model().objects.get(username=name)
    assert response.data == {
        "token": Token.objects.get(user=user).key,
        "user": {"id": user.pk, "username": name, "is_staff": False},
    }
    assert user.check_password(PASSWORD)
    assert api.get(ME).data["username"] == name  # the session
    assert token_client(response.data["token"]).get(ME).data["username"] == name


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1", "This password is too short. It must contain at least 8 characters."),
        ("password", "This password is too common."),
        ("8675309123", "This password is entirely numeric."),
        ("{name}-x", "The password is too similar to the username."),
    ],
)
def test_register_applies_django_password_validators(api, name, password, message):
    response = api.post(
        REGISTER, {"username": name, "password": password.format(name=name)}, format="json"
    )
    assert response.status_code == 400
    assert message in response.data["password"]
    assert not get_user_model().objects.filter(username=name).exists()


def test_register_refuses_a_taken_or_invalid_user_name(api, name):
    make_user(name)
    taken = api.post(REGISTER, {"username": name, "password": PASSWORD}, format="json")
    assert taken.status_code == 400
    assert taken.data["username"] == ["A user with that user name already exists."]
    invalid = api.post(REGISTER, {"username": "no spaces!", "password": PASSWORD}, format="json")
    assert invalid.status_code == 400
    assert "username" in invalid.data
    missing = api.post(REGISTER, {"username": name}, format="json")
    assert missing.status_code == 400
    assert missing.data["password"] == ["This field is required."]


def test_register_is_throttled_per_address(api):
    allowed = rate("register")
    for n in range(allowed):
        body = {"username": f"throttled{n}", "password": PASSWORD}
        assert api.post(REGISTER, body, format="json").status_code == 201
    refused = api.post(REGISTER, {"username": "one-more", "password": PASSWORD}, format="json")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    other = APIClient(REMOTE_ADDR="192.0.2.7")
    assert other.post(REGISTER, {"username": "elsewhere", "password": PASSWORD}).status_code == 201


# Login


def test_login_returns_the_users_token_and_logs_the_session_in(api, name):
    user = make_user(name)
    response = api.post(LOGIN, {"username": name, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.data
    assert response.data == {
        "token": Token.objects.get(user=user).key,
        "user": {"id": user.pk, "username": name, "is_staff": False},
    }
    assert settings.SESSION_COOKIE_NAME in response.cookies
    assert api.get(ME).data["username"] == name
    again = APIClient().post(LOGIN, {"username": name, "password": PASSWORD}, format="json")
    assert again.data["token"] == response.data["token"]  # DRF's token: one per user


def test_login_works_for_a_user_registered_over_mqtt(api, name):
    # HD_Login's path
    accounts.login_sync(username=name, password="mqtt-pass-4417", ip="", auto_register=True)
    response = api.post(LOGIN, {"username": name, "password": "mqtt-pass-4417"}, format="json")
    assert response.status_code == 200


def test_wrong_password_and_unknown_user_get_the_same_answer(api, name):
    make_user(name)
    wrong = api.post(LOGIN, {"username": name, "password": "nope-nope"}, format="json")
    unknown = api.post(LOGIN, {"username": name + "x", "password": "nope-nope"}, format="json")
    assert wrong.status_code == unknown.status_code == 400
    assert (
        wrong.data == unknown.data == {"detail": "Unable to log in with the credentials provided."}
    )
    assert not get_user_model().objects.filter(username=name + "x").exists()  # no auto-register
    assert api.get(ME).status_code == 401


def test_inactive_user_cannot_log_in(api, name):
    make_user(name, is_active=False)
    response = api.post(LOGIN, {"username": name, "password": PASSWORD}, format="json")
    assert response.status_code == 400


def test_login_is_throttled_per_address(api, name):
    make_user(name)
    body = {"username": name, "password": PASSWORD}
    for _ in range(rate("login")):
        assert api.post(LOGIN, body, format="json").status_code == 200
    refused = api.post(LOGIN, body, format="json")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert APIClient(REMOTE_ADDR="192.0.2.8").post(LOGIN, body, format="json").status_code == 200


# Lockout


def fail(client: APIClient, username: str, times: int) -> None:
    for _ in range(times):
        body = {"username": username, "password": "wrong-password"}
        assert client.post(LOGIN, body, format="json").status_code == 400


def test_lockout_per_user_name_refuses_even_the_right_password(settings, name):
    settings.LOGIN_LOCKOUT = {"USER_FAILURES": 3, "IP_FAILURES": 100, "DURATION": 1}
    make_user(name)
    make_user(name + "-other")
    fail(APIClient(REMOTE_ADDR="192.0.2.1"), name, 2)
    fail(APIClient(REMOTE_ADDR="192.0.2.2"), name, 1)  # counted per name, whatever the address
    body = {"username": name, "password": PASSWORD}
    locked = APIClient(REMOTE_ADDR="192.0.2.3").post(LOGIN, body, format="json")
    assert locked.status_code == 429
    assert locked.data["detail"].startswith("Too many failed logins")
    assert locked["Retry-After"] == "1"  # DURATION, rounded up
    other = {"username": name + "-other", "password": PASSWORD}
    assert APIClient(REMOTE_ADDR="192.0.2.1").post(LOGIN, other).status_code == 200
    time.sleep(1.1)
    assert APIClient().post(LOGIN, body, format="json").status_code == 200


def test_lockout_per_address_across_user_names(settings, name):
    settings.LOGIN_LOCKOUT = {"USER_FAILURES": 100, "IP_FAILURES": 4}
    make_user(name)
    attacker = APIClient(REMOTE_ADDR="198.51.100.9")
    for n in range(4):
        fail(attacker, f"{name}-guess{n}", 1)
    body = {"username": name, "password": PASSWORD}
    assert attacker.post(LOGIN, body, format="json").status_code == 429
    assert APIClient(REMOTE_ADDR="198.51.100.10").post(LOGIN, body).status_code == 200


def test_a_forged_x_forwarded_for_does_not_change_the_address(settings, name):
    settings.LOGIN_LOCKOUT = {"USER_FAILURES": 100, "IP_FAILURES": 3}
    make_user(name)
    for n in range(3):
        forged = APIClient(REMOTE_ADDR="198.51.100.20", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
        fail(forged, f"{name}-guess{n}", 1)
    again = APIClient(REMOTE_ADDR="198.51.100.20", HTTP_X_FORWARDED_FOR="10.0.0.99")
    assert again.post(LOGIN, {"username": name, "password": PASSWORD}).status_code == 429


def test_a_success_clears_the_user_names_count_not_the_addresss(settings, name):
    settings.LOGIN_LOCKOUT = {"USER_FAILURES": 3, "IP_FAILURES": 5}
    make_user(name)
    client = APIClient(REMOTE_ADDR="203.0.113.5")
    body = {"username": name, "password": PASSWORD}
    fail(client, name, 2)
    assert client.post(LOGIN, body, format="json").status_code == 200
    fail(client, name, 2)  # 2 again for the name (cleared), 4 for the address
    assert client.post(LOGIN, body, format="json").status_code == 200
    fail(client, name + "-x", 1)  # the address's 5th
    assert client.post(LOGIN, body, format="json").status_code == 429


def test_lockout_off_when_counts_are_zero(settings, name):
    settings.LOGIN_LOCKOUT = {"USER_FAILURES": 0, "IP_FAILURES": 0}
    make_user(name)
    fail(APIClient(), name, 8)
    assert APIClient().post(LOGIN, {"username": name, "password": PASSWORD}).status_code == 200


# CSRF: browsers need the token, API clients do not


def page_csrf_token(client: APIClient) -> str:
    response = client.get("/mqant/index.html")
    assert response.status_code == 200
    return response.cookies[settings.CSRF_COOKIE_NAME].value


def test_browser_login_and_register_need_the_csrf_token(browser, name):
    make_user(name)
    body = {"username": name, "password": PASSWORD}
    token = page_csrf_token(browser)  # the page's visit leaves the csrftoken cookie
    refused = browser.post(LOGIN, body, format="json")
    assert refused.status_code == 403
    assert refused.data["detail"].startswith("CSRF Failed")
    registered = browser.post(REGISTER, {"username": name + "-new", "password": PASSWORD})
    assert registered.status_code == 403
    ok = browser.post(LOGIN, body, format="json", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200


def test_cross_site_form_login_is_refused(name):
    make_user(name)
    client = APIClient(enforce_csrf_checks=True)  # a first visit: no cookies at all
    body = {"username": name, "password": PASSWORD}
    response = client.post(LOGIN, body, HTTP_ORIGIN="https://evil.example")
    assert response.status_code == 403
    assert APIClient(enforce_csrf_checks=True).get(ME).status_code == 401


def test_api_clients_log_in_without_csrf(name):
    make_user(name)
    client = APIClient(enforce_csrf_checks=True)
    response = client.post(LOGIN, {"username": name, "password": PASSWORD}, format="json")
    assert response.status_code == 200


def test_session_logout_needs_the_csrf_token(browser, name):
    make_user(name)
    page_csrf_token(browser)
    body = {"username": name, "password": PASSWORD}
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    assert browser.post(LOGIN, body, format="json", HTTP_X_CSRFTOKEN=token).status_code == 200
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value  # rotated by the login
    assert browser.post(LOGOUT).status_code == 403
    assert browser.get(ME).status_code == 200
    assert browser.post(LOGOUT, HTTP_X_CSRFTOKEN=token).status_code == 204
    assert browser.get(ME).status_code == 401


# Logout and me


def test_token_logout_deletes_the_token(name):
    user = make_user(name)
    token = APIClient().post(LOGIN, {"username": name, "password": PASSWORD}).data["token"]
    client = token_client(token)
    assert client.get(ME).status_code == 200
    assert client.post(LOGOUT).status_code == 204
    assert not Token.objects.filter(user=user).exists()
    assert client.get(ME).status_code == 401


def test_logout_and_me_need_authentication(api):
    for response in (api.post(LOGOUT), api.get(ME), token_client("not-a-token").get(ME)):
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Token"


def test_me_describes_the_user(name):
    user = make_user(name, is_staff=True)
    token = APIClient().post(LOGIN, {"username": name, "password": PASSWORD}).data["token"]
    assert token_client(token).get(ME).data == {"id": user.pk, "username": name, "is_staff": True}
