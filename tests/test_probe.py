"""Smoke test of the careless-user probe (validation/probe.py; the full run is a command)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parents[1] / "validation" / "probe.py"


@pytest.fixture(scope="module")
def probe():
    spec = importlib.util.spec_from_file_location("ioplan_probe", PROBE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ioplan_probe"] = mod
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("ioplan_probe", None)


def test_probe_judges_and_passes_a_few_commands(probe):
    results = probe.run("usage", log=lambda _m: None)
    assert len(results) == 3 and all(r.passed for r in results), results


def test_probe_catches_a_traceback_and_a_leak(probe, tmp_path):
    """The judge itself: a crash, a wrong exit code and a leaked name are each reported."""
    env = {"PATH": "", "PYTHONPATH": ""} | dict(__import__("os").environ)
    bad = probe.Probe("crash", ("--version",), "error")  # exits 0: wrong for an error probe
    r = probe.run_probe(bad, tmp_path, env)
    assert not r.passed and "exit code 0" in r.problem
    leak = tmp_path / "out.txt"
    leak.write_text(f"patient {probe.PHI[0]}")
    assert probe._scan_for_phi([leak]) is not None
