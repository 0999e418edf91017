"""Smoke test of bench/web_load.py: a few viewers of a small case, figures that add up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from web.browser_support import needs_browser

ROOT = Path(__file__).resolve().parents[2]


def test_web_load_benchmark_smoke(tmp_path, small_case):
    from ioplan.anatomy import save_case

    save_case(small_case, tmp_path / "cases" / "small")
    out = tmp_path / "web_load.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "web_load.py"), "--viewers", "3", "--rounds", "2",
         "--cases", str(tmp_path / "cases"), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    doc = json.loads(out.read_text())
    assert out.with_suffix(".md").read_text().startswith("# Web load benchmark")
    assert doc["errors"] == [] and doc["case"] == "small"
    lat = doc["latency"]
    # no plan: the case list, the case, the CT and the labels, each 3 viewers x 2 rounds
    assert {k: v["n"] for k, v in lat.items()} == {
        "cases": 6, "case": 6, "image": 6, "labels": 6, "all json": 12, "all volume": 12,
    }  # fmt: skip
    for s in lat.values():
        assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["max_ms"]
    assert doc["requests"] == 24
    assert doc["bytes"]["image"] > doc["bytes"]["case"] > 0


def _needs_browser(test):
    """The browser tests' skip marks (Chromium, its driver, the built live page)."""
    for mark in needs_browser("live.js"):
        test = mark(test)
    return test


@_needs_browser
def test_web_live_benchmark_smoke(tmp_path):
    """bench/web_live.py at one rate, 10 frames: every frame drawn or superseded, figures
    that add up, and the goal column recounted from the p95s it reports."""
    out = tmp_path / "web_live.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "web_live.py"), "--frames", "10",
         "--baseline", "2", "--intervals", "0.1", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    doc = json.loads(out.read_text())
    assert out.with_suffix(".md").read_text().startswith("# Live monitoring benchmark")
    (rate,) = doc["rates"]
    assert rate["frames"] == 10 and 1 <= rate["drawn"] <= 10
    for key in ("arrival_to_display", "server_to_display"):
        s = rate[key]
        assert s["n"] == 10 and 0 < s["p50_ms"] <= s["p95_ms"] <= s["max_ms"]
    p95 = max(rate["arrival_to_display"]["p95_ms"], rate["server_to_display"]["p95_ms"])
    assert rate["within_goal"] == (p95 < doc["latency_goal_ms"] == 200.0)
