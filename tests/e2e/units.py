"""The shipped deployment files (deploy/) as a test runs them: the systemd units' ExecStart
lines with their instance and environment filled in, the environment file as systemd reads
it, and nginx's configuration rendered onto loopback ports."""

import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
# Where the units expect the code and its virtual environment (deploy/README.md).
INSTALL = "/opt/mqant"


def read_env_file(path: Path) -> dict[str, str]:
    """``VAR=value`` lines as systemd's EnvironmentFile= reads them: comments and blank lines
    skipped, a value in single quotes taken as it is, one in double quotes with its
    backslash escapes."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        name, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
            raise ValueError(f"{path}: not VAR=value: {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        env[name.strip()] = value
    return env


def unit_setting(unit: str, key: str) -> list[str]:
    """The values of ``key=`` in the [Service] section of deploy/systemd/``unit``."""
    prefix = f"{key}="
    return [
        line[len(prefix) :]
        for line in (UNITS / unit).read_text().splitlines()
        if line.startswith(prefix)
    ]


def exec_start(unit: str, instance: str, env: Mapping[str, str]) -> list[str]:
    """The unit's ExecStart as systemd would run it for ``instance`` (``%i``) with ``env``
    (``${VAR}``), the install directory being this checkout and its virtual environment."""
    (line,) = unit_setting(unit, "ExecStart")
    line = line.replace("%i", instance)
    line = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m[1], ""), line)
    venv_bin = str(Path(sys.executable).parent)
    return [
        arg.replace(f"{INSTALL}/.venv/bin", venv_bin).replace(INSTALL, str(ROOT))
        for arg in shlex.split(line)
    ]


def start_unit(
    unit: str, instance: str, env: Mapping[str, str], log: Path
) -> "subprocess.Popen[bytes]":
    """Start the unit's ExecStart in its WorkingDirectory (this checkout) with ``env``."""
    (workdir,) = unit_setting(unit, "WorkingDirectory")
    assert workdir == INSTALL, workdir
    with log.open("wb") as out:
        return subprocess.Popen(
            exec_start(unit, instance, env),
            cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def render(name: str, replacements: Mapping[str, str], into: Path) -> Path:
    """deploy/nginx/``name`` with each of ``replacements`` made (each must be found: a
    shipped file that changed shape fails here, not silently), written into ``into``."""
    text = (DEPLOY / "nginx" / name).read_text()
    for old, new in replacements.items():
        if old not in text:
            raise AssertionError(f"deploy/nginx/{name} no longer has {old!r}")
        text = text.replace(old, new)
    path = into / name
    path.write_text(text)
    return path
