"""The scaling run (bench.scale) works end to end with tiny counts: one gate, then two on
one shared port over Redis, each scenario measured, the scaling factor computed. Not a
speed test: docs/benchmarks.md holds the real run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_quick_scaling_run(tmp_path, redis_space, postgres_url):
    # The fixtures: Redis and PostgreSQL must be up (a failure in CI, else a skip).
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.scale", "--quick", "--json", str(out),
            "--redis-url", redis_space.url, "--postgres-url", postgres_url,
        ],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert "command: " in done.stdout
    records = json.loads(out.read_text())
    assert {(r["scenario"], r["gates"]) for r in records} == {
        ("rr", 1), ("rr", 2), ("fanout", 1), ("fanout", 2),
    }  # fmt: skip
    for r in records:
        assert r["messages"] > 0
        assert r["cpu_s"] > 0
        assert r["scaling"] > 0
        assert len(r["spread"]) == r["gates"]
        assert sum(r["spread"]) == r["clients"], r["spread"]  # every client on some gate
        if r["scenario"] == "fanout":
            assert r["lost"] == 0
    assert all(r["scaling"] == 1.0 for r in records if r["gates"] == 1)
