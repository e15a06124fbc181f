"""``manage.py startmodule``: the app it writes is found by mqant and its test passes; names
an app, a module or a module type holds are refused."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parents[2]


def test_the_written_app_is_discovered_and_its_test_passes(tmp_path: Path) -> None:
    (tmp_path / "scores").mkdir()
    out = StringIO()
    call_command("startmodule", "scores", str(tmp_path / "scores"), stdout=out)
    assert 'Add to INSTALLED_APPS:    "scores",' in out.getvalue()
    assert '"Scores": [{"Id": "Scores001", "ProcessID": "development"}]' in out.getvalue()
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.py"))
    assert written == [
        "scores/__init__.py",
        "scores/apps.py",
        "scores/modules.py",
        "scores/tests/__init__.py",
        "scores/tests/test_scores.py",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "MQANT_EXTRA_APPS": "scores",  # the line the command asks for, in INSTALLED_APPS
    }
    command = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml")]
    command += ["--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-q", "scores/tests"]
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        ("2fast", "'2fast' is not a valid app name"),
        ("chat", "'chat' conflicts with the name of an existing Python module"),
        ("admin", "'admin' is the label of an installed app already"),
        ("hello_world", "Module type 'HelloWorld' exists already (helloworld.modules)"),
    ],
)
def test_a_name_taken_or_not_an_identifier_is_refused(
    tmp_path: Path, name: str, refusal: str
) -> None:
    with pytest.raises(CommandError) as refused:
        call_command("startmodule", name, str(tmp_path))
    assert refusal in str(refused.value)
    assert list(tmp_path.iterdir()) == []
