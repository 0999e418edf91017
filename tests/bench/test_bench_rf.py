"""Smoke test of bench/rf.py: RF potential solves skipped during pulses, side by side.

The timings are recorded by the benchmark (bench/results/rf.md), not asserted here
(machines are noisy). What is checked: both runs are made and recorded, the skip makes
fewer potential solves, and the two zones agree (the skip changes no power: during a
pulse the output is off).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rf_benchmark_smoke(tmp_path):
    out = tmp_path / "rf.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "rf.py"), "--smoke", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["pulses"][0] == row["pulses"][1] > 0
    assert row["solves_skip"] < row["solves_every_call"]
    # the same zone: a volume is whole voxels (27 mm^3 at 3 mm), here none apart
    assert row["zone_volume_ml_skip"] == row["zone_volume_ml_every_call"]
    assert abs(row["energy_relative_difference"]) < 1e-4  # CG warm start only
    assert row["wall_s_skip"] > 0 and row["wall_s_every_call"] > 0
    # coarse multigrid operators kept until CG slows vs recomputed at every solve: the same
    # potential to CG's tolerance (relative residual 1e-5), so the same zone and energy
    assert row["zone_volume_ml_coarse_every_solve"] == row["zone_volume_ml_skip"]
    assert abs(row["amg_energy_relative_difference"]) < 1e-4
    assert row["wall_s_coarse_every_solve"] > 0 and row["amg_speedup"] > 0
    assert (tmp_path / "rf.md").read_text().startswith("# RF source benchmark")
