"""The deployment files stay true: the example environment names every variable the
settings read, and systemd accepts the units as they are instantiated."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mqantsite import settings
from tests.e2e.units import DEPLOY, INSTALL, ROOT, UNITS, exec_start, read_env_file

ENV_EXAMPLE = (DEPLOY / "env.example").read_text()


def documented_variables() -> list[str]:
    """The environment variables mqantsite/settings.py's docstring lists."""
    return re.findall(r"^    ([A-Z][A-Z0-9_]+)\s", settings.__doc__ or "", re.MULTILINE)


def test_the_settings_document_their_variables():
    assert {"DJANGO_SECRET_KEY", "MQANT_REUSE_PORT", "MQANT_PROXY_PROTOCOL_FROM"} <= set(
        documented_variables()
    )


@pytest.mark.parametrize("name", documented_variables())
def test_the_example_environment_names_every_variable(name):
    assert re.search(rf"^#?{name}=", ENV_EXAMPLE, re.MULTILINE), f"deploy/env.example lacks {name}"


def test_the_example_environment_parses_and_its_json_is_json():
    env = read_env_file(DEPLOY / "env.example")
    assert json.loads(env["MQANT_SETTINGS"])["WS_ADDR"] == ""
    assert env["MQANT_CONFIG"] == "/etc/mqant/server.json"


def test_the_units_run_this_checkouts_commands():
    env = {"MQANT_MODULES_HEALTH": "127.0.0.1:9101"}
    gate = exec_start("mqant-gate@.service", "8001", env)
    assert gate[:2] == ["/usr/bin/env", "MQANT_PROCESS_ID=gate8001"]
    assert Path(gate[2]).name == "daphne"
    assert Path(gate[2]).exists()
    assert gate[3:] == [
        "--proxy-headers", "-b", "127.0.0.1", "-p", "8001", "mqantsite.asgi:application",
    ]  # fmt: skip
    modules = exec_start("mqant-modules@.service", "modules1", env)
    assert modules[1:] == [
        "manage.py", "runmodules", "--pid", "modules1", "--health", "127.0.0.1:9101",
    ]  # fmt: skip
    assert (ROOT / "manage.py").exists()


def test_systemd_accepts_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze unavailable (Debian's systemd package)")
    # Instances of the templates, with the install directory this checkout (which exists).
    for unit in UNITS.iterdir():
        text = unit.read_text().replace(INSTALL, str(ROOT))
        (tmp_path / unit.name.replace("@.", "@8001.")).write_text(text)
    units = sorted(str(path) for path in tmp_path.iterdir())
    done = subprocess.run(
        [analyze, "verify", "--man=no", *units], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # no unknown key, no warning
