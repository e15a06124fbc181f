"""The load tool runs end to end with tiny counts: every server starts, every scenario
measures, and the results come out as JSON, markdown and plots. Not a speed test: no
figure is checked against a target here (docs/benchmarks.md holds the real run)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.servers import MOSQUITTO
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_quick_run_measures_every_scenario(tmp_path, redis_space):
    # redis_space: the rpc scenario's Redis layers need the local Redis.
    if not Path(MOSQUITTO).exists():
        require_service("Mosquitto", f"{MOSQUITTO} is the MQTT reference")
    out = tmp_path / "results"
    subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    records = results["records"]
    seen = {(r["scenario"], r["target"]) for r in records}
    listener = {r["scenario"] for r in records if r["transport"] == "ws-listener"}
    assert listener == {"rr", "fanout", "idle"}
    for scenario in ("rr", "fanout", "idle"):
        for target in ("mqant", "textbook", "mosquitto"):
            assert (scenario, target) in seen
    assert {r["transport"] for r in records if r["scenario"] == "rpc"} == {
        "inprocess", "memory", "core", "pubsub",
    }  # fmt: skip
    for r in records:
        if r["scenario"] in ("rr", "rpc"):
            assert r["messages"] > 0
            assert r["cpu_s"] > 0
        elif r["scenario"] == "fanout":
            assert r["deliveries"] > 0
            assert r["lost"] == 0
        else:
            assert r["alive"] == r["clients"]
    report = (out / "results.md").read_text()
    assert "### Targets" in report
    assert "| mqant/daphne ws |" in report
    assert "| mqant/daphne ws-listener |" in report  # the gate's own WebSocket port
    for name in ("rr-cpu_per_msg_us.png", "fanout-rate.png", "idle-rss_per_conn_kb.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
