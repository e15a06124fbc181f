"""The account policy (mqant.accounts) as every way in uses it: lockout counted before the
password is checked, per-address budgets, validated auto-registration, uniform answers."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.cache import cache
from django.test import RequestFactory

from mqant import accounts

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-42"


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def fast_hash(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(name: str, password: str = PASSWORD):
    return get_user_model().objects.create_user(username=name, password=password)


def outcome(**kwargs) -> str:
    try:
        accounts.login_sync(**kwargs)
    except accounts.Refused as err:
        return type(err).__name__
    return "ok"


def test_parallel_guesses_get_no_more_checks_than_the_lockout_allows(settings):
    """20 wrong guesses at once, each in a thread of its own as concurrent HTTP requests
    are, with the real (slow) hasher: a count taken after the check let nearly all of them
    be checked; counted before, at most USER_FAILURES are."""
    settings.LOGIN_LOCKOUT = {"USER_FAILURES": 5, "IP_FAILURES": 100}
    make_user("victim")
    start = threading.Barrier(20)

    def guess(n: int) -> str:
        start.wait()
        return outcome(username="victim", password=f"guess-{n}", ip=f"198.51.100.{n}")

    with ThreadPoolExecutor(20) as threads:
        outcomes = list(threads.map(guess, range(20)))
    assert 1 <= outcomes.count("WrongCredentials") <= 5, outcomes
    assert outcomes.count("LockedOut") == 20 - outcomes.count("WrongCredentials")
    # Locked out now: the right password too.
    assert outcome(username="victim", password=PASSWORD, ip="203.0.113.1") == "LockedOut"


def test_a_success_gives_its_address_count_back(fast_hash, settings):
    settings.LOGIN_LOCKOUT = {"USER_FAILURES": 100, "IP_FAILURES": 3}
    make_user("regular")
    for _ in range(10):  # successes never add up to a lockout of the address
        assert outcome(username="regular", password=PASSWORD, ip="192.0.2.50") == "ok"
    for n in range(3):
        assert outcome(username=f"nobody{n}", password="x", ip="192.0.2.50") == "WrongCredentials"
    assert outcome(username="regular", password=PASSWORD, ip="192.0.2.50") == "LockedOut"


def test_logins_per_address_are_budgeted_right_passwords_included(fast_hash, settings):
    settings.MQANT = {**settings.MQANT, "LOGIN_RATE_PER_ADDRESS": [4, 60]}
    make_user("busy")
    results = [outcome(username="busy", password=PASSWORD, ip="192.0.2.60") for _ in range(5)]
    assert results == ["ok"] * 4 + ["Throttled"]
    with pytest.raises(accounts.Throttled) as refused:
        accounts.login_sync(username="busy", password=PASSWORD, ip="192.0.2.60")
    assert refused.value.retry_after is not None
    assert 0 < refused.value.retry_after <= 60
    assert outcome(username="busy", password=PASSWORD, ip="192.0.2.61") == "ok"


def test_auto_register_validates_and_answers_like_a_wrong_password(fast_hash):
    make_user("taken")
    weak = outcome(username="newcomer", password="1", ip="192.0.2.70", auto_register=True)
    wrong = outcome(username="taken", password="wrong-pass-1", ip="192.0.2.70", auto_register=True)
    assert weak == wrong == "WrongCredentials"
    with pytest.raises(accounts.WrongCredentials) as err1:
        accounts.login_sync(
            username="newcomer", password="123456", ip="192.0.2.70", auto_register=True
        )
    with pytest.raises(accounts.WrongCredentials) as err2:
        accounts.login_sync(
            username="taken", password="nope-nope-1", ip="192.0.2.70", auto_register=True
        )
    assert str(err1.value) == str(err2.value) == accounts.WRONG_OR_WEAK
    assert not get_user_model().objects.filter(username="newcomer").exists()
    user = accounts.login_sync(
        username="newcomer", password="a-decent-pass-9", ip="192.0.2.70", auto_register=True
    )
    assert user.check_password("a-decent-pass-9")


def test_auto_register_shares_the_register_budget(fast_hash, settings):
    settings.MQANT = {**settings.MQANT, "REGISTER_RATE_PER_ADDRESS": [3, 3600]}
    for n in range(3):
        accounts.login_sync(
            username=f"fresh{n}", password="a-decent-pass-9", ip="192.0.2.80", auto_register=True
        )
    with pytest.raises(accounts.Throttled, match="Too many new accounts"):
        accounts.login_sync(
            username="fresh3", password="a-decent-pass-9", ip="192.0.2.80", auto_register=True
        )
    with pytest.raises(accounts.Throttled):  # the REST register: the same budget
        accounts.register_sync(username="fresh4", password="a-decent-pass-9", ip="192.0.2.80")
    # Existing users still log in from that address.
    assert outcome(username="fresh0", password="a-decent-pass-9", ip="192.0.2.80") == "ok"


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("x" * 151, "The user name is longer than 150 characters"),
        ("bad name!", "Invalid user name"),
    ],
)
def test_user_names_are_bounded_in_code(fast_hash, username, message):
    with pytest.raises(accounts.InvalidName, match=message):
        accounts.login_sync(
            username=username, password="a-decent-pass-9", ip="", auto_register=True
        )
    assert not get_user_model().objects.exists()


def test_a_huge_password_is_refused_before_any_hash(fast_hash):
    make_user("hashy")
    with pytest.raises(accounts.Refused, match="longer than 4096"):
        accounts.login_sync(username="hashy", password="p" * 5000, ip="")


def test_the_admin_login_form_goes_through_the_lockout(fast_hash, settings):
    settings.LOGIN_LOCKOUT = {"USER_FAILURES": 3, "IP_FAILURES": 100}
    make_user("staffer")
    request = RequestFactory().post("/admin/login/", REMOTE_ADDR="192.0.2.90")
    for _ in range(3):
        assert authenticate(request, username="staffer", password="wrong") is None
    assert authenticate(request, username="staffer", password=PASSWORD) is None  # locked
    other = RequestFactory().post("/admin/login/", REMOTE_ADDR="192.0.2.91")
    settings.LOGIN_LOCKOUT = {"USER_FAILURES": 0, "IP_FAILURES": 0}
    assert authenticate(other, username="staffer", password=PASSWORD) is not None


def test_a_refusal_before_the_check_counts_for_nothing(fast_hash, settings):
    settings.LOGIN_LOCKOUT = {"USER_FAILURES": 2, "IP_FAILURES": 100}
    settings.MQANT = {**settings.MQANT, "LOGIN_RATE_PER_ADDRESS": [1, 60]}
    make_user("patient")
    assert outcome(username="patient", password="wrong", ip="192.0.2.95") == "WrongCredentials"
    for _ in range(5):  # throttled: never reached the lockout's count
        assert outcome(username="patient", password="wrong", ip="192.0.2.95") == "Throttled"
    assert outcome(username="patient", password=PASSWORD, ip="192.0.2.96") == "ok"


def test_unknown_users_take_as_long_as_wrong_passwords(settings):
    """The real hasher: an unknown name costs a hash too."""
    make_user("timed")

    def seconds(username: str) -> float:
        started = time.perf_counter()
        assert outcome(username=username, password="wrong-pass-1", ip="") == "WrongCredentials"
        return time.perf_counter() - started

    known, unknown = seconds("timed"), seconds("untimed")
    assert unknown > known / 3, (known, unknown)


def test_a_hash_made_with_weaker_settings_is_made_again_at_login(settings):
    """As Django's own login does (check_password's setter)."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    make_user("upgraded")
    assert get_user_model().objects.get(username="upgraded").password.startswith("md5$")
    settings.PASSWORD_HASHERS = settings.PASSWORD_HASHERS[::-1]  # PBKDF2 preferred now
    accounts.login_sync(username="upgraded", password=PASSWORD, ip="")
    stored = get_user_model().objects.get(username="upgraded").password
    assert stored.startswith("pbkdf2_sha256$")
    assert accounts.login_sync(username="upgraded", password=PASSWORD, ip="").pk


async def test_two_first_logins_of_one_new_name_both_succeed(fast_hash):
    """Both find the name free, both hash, one registers it: the other checks its password
    against that account instead of failing on the database's uniqueness."""
    import asyncio

    attempts = [
        accounts.login(username="twin-new", password="a-decent-pass-9", ip="", auto_register=True)
        for _ in range(2)
    ]
    first, second = await asyncio.gather(*attempts)
    assert first.pk == second.pk


EMAIL_LOGIN = "tests.mqant.accounts.backends.EmailLogin"


@pytest.mark.parametrize(
    "backends",
    [[EMAIL_LOGIN], ["mqant.accounts.backends.AccountPolicyBackend", EMAIL_LOGIN]],
)
def test_the_projects_own_backend_checks_the_password_behind_the_lockout(
    settings, fast_hash, backends
):
    settings.AUTHENTICATION_BACKENDS = backends
    settings.LOGIN_LOCKOUT = {"USER_FAILURES": 3, "IP_FAILURES": 100}
    user = make_user("ann")
    user.email = "ann@example.com"
    user.save()
    found = accounts.login_sync(username="ann@example.com", password=PASSWORD, ip="10.0.0.1")
    assert found.pk == user.pk
    # The user model's own check would take the user name; this project's backend does not.
    assert outcome(username="ann", password=PASSWORD, ip="10.0.0.1") == "WrongCredentials"
    for _ in range(3):
        assert outcome(username="ann@example.com", password="wrong", ip="10.0.0.1") == (
            "WrongCredentials"
        )
    # Three failures for this name: the lockout holds even the right password back.
    assert outcome(username="ann@example.com", password=PASSWORD, ip="10.0.0.1") == "LockedOut"


def test_django_authenticate_reaches_the_projects_backend_through_the_policy(settings, fast_hash):
    settings.AUTHENTICATION_BACKENDS = ["mqant.accounts.backends.AccountPolicyBackend", EMAIL_LOGIN]
    user = make_user("bob")
    user.email = "bob@example.com"
    user.save()
    request = RequestFactory().post("/admin/login/", REMOTE_ADDR="10.0.0.2")
    assert authenticate(request, username="bob@example.com", password=PASSWORD) == user


def test_a_database_that_refuses_the_projects_backend_is_service_unavailable(settings, fast_hash):
    """The backend's ORM work runs on the hash pool, under the same rules as mqant.db's: an
    outage is ``database unavailable``, the attempt is not counted as a failure."""
    from mqant import ServiceUnavailable
    from mqant.dependencies import DATABASE

    settings.AUTHENTICATION_BACKENDS = ["tests.mqant.accounts.backends.DatabaseDown"]
    settings.LOGIN_LOCKOUT = {"USER_FAILURES": 1, "IP_FAILURES": 100}
    user = make_user("carol")
    user.email = "carol@example.com"
    user.save()
    try:
        with pytest.raises(ServiceUnavailable, match=r"^database unavailable$"):
            accounts.login_sync(username="carol@example.com", password=PASSWORD, ip="10.0.0.3")
        assert DATABASE.down
    finally:
        DATABASE.forget()
    settings.AUTHENTICATION_BACKENDS = [EMAIL_LOGIN]
    # Not counted (one failure would lock the name out): with the database back, it succeeds.
    assert accounts.login_sync(username="carol@example.com", password=PASSWORD, ip="10.0.0.3")
