"""The README's tour, pasted as a reader would, against a real server."""

import re
import subprocess
import sys

import pytest

from tests.e2e.server import ROOT

pytestmark = pytest.mark.e2e


def tour_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("## A short tour", 1)[1]
    match = re.search(r"```python\n(.*?)```", tour, re.DOTALL)
    assert match, "the README's tour has no python block"
    return match.group(1)


def test_readme_tour_works(server):
    code = tour_snippet()
    assert "PORT = 8000" in code
    code = code.replace("PORT = 8000", f"PORT = {server.port}")
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "'Result': 'login success alice'" in out
    assert "'Result': 'you say : hello'" in out
    assert "'Result': {'users': ['alice'], 'history': [], 'online': 1, 'userCount': 1}" in out
    assert "'Result': {'say': 'say success'}" in out
    assert "push: Chat/OnChat {'roomName': 'lobby', 'from': 'alice'" in out


def test_readme_tour_pastes_into_the_python_prompt(server):
    """Line by line, as the interactive prompt reads a paste: a compound statement must be
    followed by a blank line, or the next line is a SyntaxError."""
    code = tour_snippet().replace("PORT = 8000", f"PORT = {server.port}")
    run = subprocess.run(
        [sys.executable, "-i", "-q"], input=code, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert "Error" not in run.stderr.replace("'Error'", ""), run.stderr
    assert "'Result': {'say': 'say success'}" in run.stdout
