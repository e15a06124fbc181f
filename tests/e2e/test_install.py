"""The framework as a Django team installs it (docs/project.md): the wheel built from this
repository, installed into a fresh virtual environment that cannot see the repository's
source, a project from ``django-admin startproject`` with a custom user model, the page's
edits pasted in as they are written, a module from ``startmodule`` with the page's handler,
then daphne and paho-mqtt clients that log in with a user of that project and call it."""

import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.e2e.clients import ChatClient
from tests.e2e.server import ROOT, free_port, wait_for_port

pytestmark = pytest.mark.e2e

GUIDE = ROOT / "docs" / "project.md"
README = ROOT / "README.md"
PASSWORD = "a-long-Password-4417"


def guide_block(needle: str) -> str:
    """The guide's fenced Python block that contains ``needle``, as a user would copy it; the
    README's "Use it in your project" shows the same block, letter for letter."""
    found: list[str] = []
    for page in (GUIDE, README):
        blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL)
        found += [block for block in blocks if needle in block]
    assert len(found) == 2, f"{len(found)} Python blocks with {needle!r} in the guide and README"
    assert found[0] == found[1], f"the guide and the README differ on {needle!r}"
    return found[0]


def run(*args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return str(done.stdout)


@dataclass
class Installed:
    wheel: Path
    sdist: Path
    venv: Path
    project: Path
    env: dict[str, str]
    port: int
    tcp_port: int
    ws_port: int  # the gate's own WebSocket listener
    log: Path


def clean_env(home: Path) -> dict[str, str]:
    """The environment of a shell in the new project: no path into this repository."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "MQANT_SETTINGS"}
        and not k.startswith(("MQANT_", "DJANGO_", "REDIS_", "DATABASE_", "SQLITE_"))
    }
    env["PATH"] = f"{home / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("install")
    dist = work / "dist"
    # The sdist, then the wheel built from it: what the sdist lacks, the wheel lacks.
    run(sys.executable, "-m", "build", "--outdir", dist, ROOT, cwd=work, env=dict(os.environ))
    (wheel,) = dist.glob("mqant_django-*.whl")
    (sdist,) = dist.glob("mqant_django-*.tar.gz")

    venv = work / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=work, env=dict(os.environ))
    env = clean_env(venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--prefer-binary", wheel, cwd=work, env=env)

    project = work / "site"
    project.mkdir()
    run(venv / "bin" / "django-admin", "startproject", "mysite", project, cwd=work, env=env)
    manage = (python, project / "manage.py")

    # A custom user model, as a project that started right has.
    run(*manage, "startapp", "accounts", cwd=project, env=env)
    (project / "accounts" / "models.py").write_text(
        textwrap.dedent(
            """
            from django.contrib.auth.models import AbstractUser
            from django.db import models


            class User(AbstractUser):
                nickname = models.CharField(max_length=40, blank=True)
            """
        )
    )
    tcp_port, ws_port = free_port(), free_port()
    settings = project / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text()
        + "\n# The guide's edit, as written:\n"
        + guide_block("project.INSTALLED_APPS")
        + textwrap.dedent(
            f"""
            # This project's own.
            INSTALLED_APPS += ["accounts"]
            AUTH_USER_MODEL = "accounts.User"
            MQANT["TCP_ADDR"] = "127.0.0.1:{tcp_port}"
            MQANT["WS_ADDR"] = "127.0.0.1:{ws_port}"
            """
        )
    )
    # The module: startmodule's app, then the guide's handler in it.
    run(*manage, "startmodule", "scores", cwd=project, env=env)
    (project / "scores" / "modules.py").write_text(guide_block("class Scores(Module)"))
    settings.write_text(settings.read_text() + 'INSTALLED_APPS += ["scores"]\n')

    (project / "mysite" / "asgi.py").write_text(guide_block("mqant_application("))

    run(*manage, "makemigrations", "accounts", cwd=project, env=env)
    run(*manage, "migrate", "--noinput", cwd=project, env=env)
    run(
        *manage, "shell", "-c",
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_user('ann', password='{PASSWORD}', nickname='A')",
        cwd=project, env=env,
    )  # fmt: skip

    port = free_port()
    log = work / "daphne.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [venv / "bin" / "daphne", "-b", "127.0.0.1", "-p", str(port),
             "mysite.asgi:application"],
            cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port(port, server)
        wait_for_port(tcp_port, server)
        wait_for_port(ws_port, server)
        yield Installed(wheel, sdist, venv, project, env, port, tcp_port, ws_port, log)
    finally:
        server.terminate()
        server.wait(timeout=30)
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output
    shutil.rmtree(venv, ignore_errors=True)


def test_the_distribution_holds_the_framework_and_not_the_demo(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    packages = {name.split("/", 1)[0] for name in names if "/" in name}
    assert packages == {"mqant", "gate", "sessions_store", installed_dist_info(names)}
    for shipped in [
        "mqant/static/mqant/mqant.js",
        "mqant/static/mqant/vendor/mqtt.min.js",
        "mqant/static/mqant/vendor/LICENSE.md",
        "mqant/templates/admin/mqant/message_form.html",
        "mqant/templates/admin/mqant/dashboard.html",
        "mqant/static/mqant/dashboard.js",
        "mqant/static/mqant/dashboard.css",
        "mqant/management/module_template/modules.py-tpl",
        "sessions_store/migrations/0001_initial.py",
        "gate/mqtt/codec.py",
        "mqant/py.typed",
    ]:
        assert shipped in names, shipped
    metadata = zipfile.ZipFile(installed.wheel).read(f"{installed_dist_info(names)}/METADATA")
    text = metadata.decode()
    assert "License-Expression: MIT" in text
    assert "Requires-Dist: channels" in text
    assert "# mqant-django: use it in your project" in text  # the long description


def installed_dist_info(names: list[str]) -> str:
    (info,) = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    return info


def test_the_project_imports_the_installed_framework_only(installed: Installed) -> None:
    script = "import gate, mqant, sessions_store; print(mqant.__file__, gate.__file__)"
    out = run(installed.venv / "bin" / "python", "-c", script, cwd=installed.project,
              env=installed.env)  # fmt: skip
    site = str(installed.venv / "lib")
    assert all(path.startswith(site) for path in out.split()), out
    manage = (installed.venv / "bin" / "python", installed.project / "manage.py")
    found = run(*manage, "findstatic", "mqant/mqant.js", cwd=installed.project, env=installed.env)
    assert site in found
    commands = run(*manage, "help", "--commands", cwd=installed.project, env=installed.env)
    assert {"runmodules", "startmodule", "sweepsessions"} <= set(commands.split())
    run(*manage, "sweepsessions", cwd=installed.project, env=installed.env)


@pytest.mark.parametrize("where", ["websockets", "tcp", "ws-listener"])
def test_a_user_of_the_project_logs_in_at_connect_and_calls_the_module(
    installed: Installed, where: str
) -> None:
    port = {
        "websockets": installed.port,
        "tcp": installed.tcp_port,
        "ws-listener": installed.ws_port,
    }
    transport = "tcp" if where == "tcp" else "websockets"
    client = ChatClient(port[where], transport=transport, credentials=("ann", PASSWORD))
    try:
        reply = client.request("Scores/HD_Add", {"points": 3})
        assert reply["Error"] == ""
        assert reply["Result"] == {"user": "ann", "points": 3}
        bad = client.request("Scores/HD_Add", {"points": "three"})
        assert bad["Error"].startswith("msg.points:")
    finally:
        client.close()


def test_a_guest_is_refused_by_the_login_required_handler(installed: Installed) -> None:
    client = ChatClient(installed.port)
    try:
        assert client.request("Scores/HD_Add", {"points": 3})["Error"] != ""
    finally:
        client.close()


def test_a_wrong_password_is_refused_at_connect(installed: Installed) -> None:
    codes: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, transport="tcp")
    client.username_pw_set("ann", "not the password")
    client.on_connect = lambda _c, _u, _f, reason, _p: codes.append(reason.getName())
    client.connect("127.0.0.1", installed.tcp_port)
    try:
        for _ in range(100):
            client.loop(timeout=0.1)
            if codes:
                break
    finally:
        client.disconnect()
    assert codes == ["Bad user name or password"]  # CONNACK return code 4


def test_startmodule_wrote_an_app_with_its_test(installed: Installed) -> None:
    app = installed.project / "scores"
    assert (app / "tests" / "test_scores.py").is_file()
    assert (
        'module_type = "Scores"' in (app / "apps.py").read_text() + (app / "modules.py").read_text()
    )
