"""Smoke test of bench/uncertainty.py: it runs, and 1 and 2 workers give the same numbers.

Rates are recorded by the benchmark, not asserted here (the machine is shared and noisy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_uncertainty_benchmark_smoke(tmp_path):
    out = tmp_path / "uncertainty.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "uncertainty.py"), "--smoke", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert [r["workers"] for r in doc["rows"]] == [1, 2]
    for r in doc["rows"]:
        assert r["samples"] == 4 and r["runtime_s"] > 0 and r["mean_sample_runtime_s"] > 0
        # samples/min is samples over the measured wall time: an independent recount
        assert (
            abs(r["samples_per_minute"] - 60 * 4 / r["runtime_s"]) < 0.02 * r["samples_per_minute"]
        )
        assert r["same_numbers_as_first"] is True
        assert 0.0 <= r["coverage_probability"] <= 1.0
    assert doc["rows"][0]["speedup"] == 1.0
    assert "written" in proc.stdout
