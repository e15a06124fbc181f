"""Production defaults, as an operator meets them: DEBUG is off unless asked for, a server
will not start on the public development key, and ``check --deploy`` is clean under the
environment the README's "Deploying" section documents."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The README's "Deploying" environment (TLS in front, one proxy).
DEPLOYED = {
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
    "DJANGO_HTTPS": "1",
    "DJANGO_NUM_PROXIES": "1",
}


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MQANT_"))}
    env["DJANGO_SETTINGS_MODULE"] = "mqantsite.settings"
    return {**env, **extra}


def run(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_debug_is_off_unless_asked_for():
    script = "from django.conf import settings; print(settings.DEBUG)"
    off = run(["manage.py", "shell", "-v", "0", "-c", script], environment())
    assert off.stdout.split() == ["False"], off.stdout + off.stderr
    on = run(["manage.py", "shell", "-v", "0", "-c", script], environment(DJANGO_DEBUG="1"))
    assert on.stdout.split() == ["True"]


@pytest.mark.parametrize(
    "command",
    [["-m", "daphne", "-p", "0", "mqantsite.asgi:application"], ["manage.py", "runmodules"]],
)
def test_a_server_refuses_to_start_on_the_public_key(command, tmp_path):
    env = environment(SQLITE_PATH=str(tmp_path / "db.sqlite3"))
    done = run(command, env, timeout=60)
    assert done.returncode != 0
    assert "Refusing to start: set DJANGO_SECRET_KEY" in done.stdout + done.stderr


def test_check_deploy_is_clean_under_the_documented_environment():
    key = secrets.token_urlsafe(50)
    done = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        environment(DJANGO_SECRET_KEY=key, **DEPLOYED),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
    # It checks something: without HTTPS settings it warns.
    bare = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], environment())
    assert bare.returncode != 0
    assert "security.W009" in bare.stdout + bare.stderr  # the public key
