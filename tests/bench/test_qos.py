"""The QoS 1 benchmark runs end to end with tiny counts: persistent sessions in one room get
every message at QoS 1, none lost, none twice. Not a speed test (docs/benchmarks.md holds
the real run)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_a_tiny_qos_1_fanout_loses_nothing():
    command = [sys.executable, "-m", "bench.qos", "--members", "5", "--seconds", "1"]
    done = subprocess.run(
        [*command, "--pushes", "persistent"],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=100,
    )  # fmt: skip
    rows = [line for line in done.stdout.splitlines() if line.startswith("| tcp |")]
    assert len(rows) == 1, done.stdout
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    transport, members, pushes, rate, _latency, lost, dup, _cpu = cells
    assert (transport, members, pushes) == ("tcp", "5", "persistent")
    assert float(rate.replace(",", "")) > 0
    assert (lost, dup) == ("0", "0")
    assert done.stdout.startswith("command: .venv/bin/python -m bench.qos")
