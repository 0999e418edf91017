"""Smoke test of bench/setcover.py: presolve on / off side by side on recorded MILPs.

The timings are recorded by the benchmark (bench/results/setcover.md), not asserted here
(machines are noisy). What is checked: the machinery records the set-cover stages of a
seeded random problem, solves each twice, and the two solves agree (a cover problem this
small has one optimum that HiGHS finds with or without presolve).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_setcover_benchmark_smoke(tmp_path):
    out = tmp_path / "setcover.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "setcover.py"), "--smoke", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    (plan,) = doc["plans"]
    assert plan["case"] == "synthetic" and plan["goal_met"] is True
    # one "min count" and one "min cost" stage, each re-solved with presolve on and off
    kinds = sorted(s["kind"] for s in doc["solves"])
    assert kinds == ["cost", "other"] and plan["milp_calls"] == 2
    for s in doc["solves"]:
        assert s["on"]["status"] == 0 and s["off"]["status"] == 0, s
        assert s["agree"] and s["infeasible_vs_found"] is None
        assert s["on"]["s"] > 0 and s["off"]["s"] > 0
    totals = {r["stage"]: r for r in doc["summary"]}
    assert totals["cost"]["solves"] == 1 and totals["other"]["solves"] == 1


def test_setcover_benchmark_refuses_an_unknown_case(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "setcover.py"), "--cases", "liver-9",
         "--out", str(tmp_path / "x.json")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "liver-9" in proc.stderr
    assert not (tmp_path / "x.json").exists()
