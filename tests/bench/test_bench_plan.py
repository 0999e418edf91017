"""Smoke test of bench/plan.py: the planner benchmark runs and writes sane rows.

The timing goals are recorded by the benchmark, not asserted here (machines are noisy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ROW_KEYS = {
    "case", "modality", "tumour_diameter_mm", "runtime_s", "goal_met", "applicators",
    "tumour_voxels_covered_percent", "margin_coverage_percent", "minimal_margin_mm",
    "robust_coverage", "verification_runs", "candidates_considered", "harmed",
    "time_goal_s", "within_time_goal",
}  # fmt: skip


def test_plan_benchmark_smoke(tmp_path):
    out = tmp_path / "plan.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "plan.py"), "--smoke", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["machine"]["cpu_count"] >= 1
    assert doc["goals_s"] == {"demo-mwa": 60.0, "demo-rfa": 60.0, "demo-cryo": 60.0, "t45": 300.0}
    (row,) = doc["plans"]
    assert ROW_KEYS <= set(row)
    assert row["case"] == "smoke" and row["modality"] == "mwa"
    assert row["runtime_s"] > 0
    assert row["applicators"] >= 1 and row["verification_runs"] >= 1
    assert row["candidates_considered"] >= row["applicators"]
    assert 0.0 <= row["tumour_voxels_covered_percent"] <= 100.0
    assert 0.0 <= row["margin_coverage_percent"] <= 100.0
    assert row["robust_coverage"] is None or 0.0 <= row["robust_coverage"] <= 1.0
    assert isinstance(row["goal_met"], bool) and isinstance(row["harmed"], list)
    assert 3.0 < row["tumour_diameter_mm"] < 120.0
    # the table is printed, one line for the row
    assert "smoke" in proc.stdout and "written" in proc.stdout
