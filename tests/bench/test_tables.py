"""The game-tables scenario (bench.tables) runs end to end with tiny counts against a real
server: 2 tables of 2 players seated as asked, each window's figures read from the server's
/metrics and from what the players received. Not a speed test: no figure is held to the
2 ms aim here (docs/benchmarks.md says how to measure it)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.tables import FRAME, Series, lateness

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_tiny_tables_run_seats_and_measures(tmp_path):
    out = tmp_path / "tables.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.tables", "--tables", "2", "--players", "2",
            "--seconds", "1", "--warmup", "1", "--transport", "tcp", "ws", "--json", str(out),
        ],
        cwd=ROOT, check=False, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "command: " in done.stdout
    records = json.loads(out.read_text())
    assert [r["transport"] for r in records] == ["tcp", "ws"]
    for r in records:
        # Seated as asked: the Hitball tables took the capacity of 2 (16 by default would
        # have put all four players at one table).
        assert r["tables_seen"] == 2
        assert r["table_sizes"] == [2, 2]
        # Lateness from the histogram: every frame of the window in some bucket.
        assert r["frames_run"] > 0
        assert r["late_buckets"]["1000"] <= r["frames_run"]
        assert math.isfinite(r["late_p50_ms"])
        assert r["late_p50_ms"] <= r["late_p99_ms"]
        assert 0 <= r["within_2ms"] <= 1
        assert r["late_max_ms"] > 0
        # Two tables, a frame each 22 ms (skipped frames aside, on a busy machine).
        frames = (r["frames_run"] + r["frames_skipped"]) / 2
        assert frames >= 0.5 * r["seconds"] / FRAME
        assert r["moves"] > 0
        assert r["queue_full"] == 0
        # The players heard the tables: OnMove to each of 4 players every 4th frame.
        assert r["deliveries"] > 0
        assert r["by_topic"]["Hitball/OnMove"] > 0
        assert 0.5 <= r["onmove_received"] / r["onmove_expected"] <= 1.5
        assert r["table_pushes"] > 0
        low, high = r["lost_range"]
        assert low <= r["lost"] <= high
        assert low <= 0  # nothing lost for sure
        assert r["cpu_s"] > 0
        assert r["cpu_per_player_frame_us"] > 0
        assert r["client_cpu_s"] > 0


def test_lateness_percentiles_are_bucket_bounds():
    # 100 frames: 60 within 0.5 ms, 39 more within 2 ms, one at 30 ms.
    buckets = {"0.00025": 10, "0.0005": 60, "0.001": 80, "0.002": 99, "0.05": 100, "+Inf": 100}
    window: Series = {
        ("mqant_table_tick_lateness_seconds_bucket", le): n for le, n in buckets.items()
    }
    window[("mqant_table_tick_lateness_seconds_count", "")] = 100
    window[("mqant_table_tick_lateness_seconds_sum", "")] = 0.1
    late = lateness(window)
    assert late["late_p50_ms"] == 0.5
    assert late["late_p99_ms"] == 2
    assert late["within_2ms"] == 0.99
    assert late["late_mean_ms"] == pytest.approx(1.0)
    window[("mqant_table_tick_lateness_seconds_count", "")] = 200.0  # half past every bound
    assert lateness(window)["late_p99_ms"] == math.inf
