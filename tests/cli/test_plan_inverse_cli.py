"""``ioplan plan`` with the inverse planner: plan.json keys, the report, the new options.

One real plan runs on the 4 mm phantom (module-scoped, about 10-20 s) and one more with
``--max-applicators 1``; the bad option values are refused before any simulation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli
from ioplan.anatomy import save_case


@pytest.fixture(scope="module")
def case_dir(small_case, tmp_path_factory) -> Path:
    return save_case(small_case, tmp_path_factory.mktemp("plan-inverse") / "case")


def _plan(case_dir: Path, out: Path, *extra) -> tuple[dict, Path]:
    from ioplan.cli import main

    code = main([str(a) for a in ("plan", case_dir, "--out", out, "--spacing-mm", "4",
                                  "--quiet", *extra)])  # fmt: skip
    assert code == 0
    return json.loads((out / "plan.json").read_text()), out / "report.html"


@pytest.fixture(scope="module")
def planned(case_dir, tmp_path_factory) -> tuple[dict, Path]:
    return _plan(case_dir, tmp_path_factory.mktemp("plan-inverse-out") / "plan")


def test_plan_json_has_the_inverse_planner_keys(planned):
    doc, _ = planned
    assert doc["candidates_considered"] > 0
    assert isinstance(doc["candidates"], dict) and doc["candidates"]
    runs = doc["verification_runs"]
    assert runs
    chosen = [r for r in runs if r.get("chosen")]
    final = chosen[-1] if chosen else runs[-1]
    assert final["goal_met"] == doc["goal_met"]
    assert isinstance(doc["perivascular"], dict) and "perivascular" in doc["perivascular"]
    rc = doc["robust_coverage"]
    assert rc is None or 0.0 <= rc <= 1.0
    assert doc["delivery"] in ("sequential", "simultaneous")
    assert doc["applicators"]
    for a in doc["applicators"]:
        assert "trajectory_id" in a
        assert isinstance(a["covers"], dict) and a["covers"]["why"]


def test_report_shows_every_applicator_and_the_verification_runs(planned):
    doc, report = planned
    html = report.read_text()
    for heading in ("Verification runs", "Applicators", "How the plan was found",
                    "Next to large vessels", "Robustness to placement error"):  # fmt: skip
        assert heading in html, heading
    section = html.split("<h2>Applicators</h2>", 1)[1].split("<h2>", 1)[0]
    rows = re.findall(r"<tr>\s*<td>", section)
    assert len(rows) == len(doc["applicators"])
    for a in doc["applicators"]:
        assert a["covers"]["why"].split(" (")[0] in html


def test_max_applicators_one(case_dir, tmp_path, capsys):
    code, out, err = run_cli(capsys, "plan", case_dir, "--out", tmp_path / "p1",
                             "--spacing-mm", "4", "--max-applicators", "1")  # fmt: skip
    assert code == 0, err
    doc = json.loads((tmp_path / "p1" / "plan.json").read_text())
    assert len(doc["applicators"]) <= 1
    out = " ".join(out.split())  # the console wraps long lines
    assert "tumour + margin" in out
    a = doc["applicators"][0]
    assert f"path {a['trajectory_id']}" in out and a["covers"]["why"] in out
    if doc["robust_coverage"] is not None:
        assert "robust coverage" in out and "placement error" in out


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--max-applicators", "0", "--max-applicators"),
        ("--max-applicators", "9", "--max-applicators"),
        ("--delivery", "both", "--delivery"),
        ("--placement-error-mm", "-1", "--placement-error-mm"),
        ("--angle-error-deg", "31", "--angle-error-deg"),
        ("--robust-samples", "5", "--robust-samples"),
    ],
)
def test_bad_values_are_one_line_errors(case_dir, tmp_path, capsys, option, value, fragment):
    out = tmp_path / "bad"
    code, _, err = run_cli(capsys, "plan", case_dir, "--out", out, "--spacing-mm", "4",
                           option, value)  # fmt: skip
    assert_one_line_error(code, err, fragment)
    assert not out.exists()
