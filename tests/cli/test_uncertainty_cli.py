"""``ioplan uncertainty``: against the planner's own zone, the JSON contract, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from ioplan.imaging import read_nifti

#: keys issue 23 names for uncertainty.json (a contract)
CONTRACT = ("coverage_probability", "samples", "scheduler", "workers", "seed", "runtime_s")


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> tuple[Path, Path]:
    """A 15 mm tumour planned with one microwave antenna at 4 mm (about 10 s)."""
    from ioplan.cli import main

    base = tmp_path_factory.mktemp("uncertainty-cli")
    case, plan = base / "case", base / "plan"
    assert main(["phantom", "--out", str(case), "--tumor-diameter-mm", "15",
                 "--spacing-mm", "4", "--seed", "1"]) == 0  # fmt: skip
    assert main(["plan", str(case), "--out", str(plan), "--spacing-mm", "4", "--margin-mm", "3",
                 "--time-budget-s", "20", "--robust-samples", "10", "--quiet"]) == 0  # fmt: skip
    return case, plan


def test_without_error_every_sample_is_the_planners_zone(capsys, planned, tmp_path):
    """Zero error: the map is the planner's verified zone, voxel for voxel (its own code)."""
    case, plan = planned
    out = tmp_path / "u0"
    code, stdout, err = run_cli(
        capsys, "uncertainty", plan, "--case", case, "--samples", 2, "--workers", 1,
        "--placement-error-mm", 0, "--angle-error-deg", 0, "--perfusion-cv", 0,
        "--property-cv", 0, "--out", out, "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(stdout)
    zone = read_nifti(plan / "zone.nii.gz")
    prob = read_nifti(out / "coverage_probability.nii.gz")
    assert prob.grid == zone.grid
    assert np.array_equal(np.asarray(prob.array) > 0.5, np.asarray(zone.array) > 0)
    assert set(np.unique(np.asarray(prob.array))) <= {0.0, 1.0}
    assert (out / "figures" / "coverage_probability.png").stat().st_size > 10_000
    nominal = json.loads((plan / "plan.json").read_text())["margin_coverage_percent"]
    assert doc["per_sample_coverage"] == pytest.approx([nominal / 100] * 2, abs=1e-6)


def test_without_error_the_demo_by_its_veins_is_the_plans_coverage(capsys, tmp_path):
    """The demo's tumour touches two hepatic veins: the margin shell through their lumen
    and outside the liver counted as target, so a sample without any error covered 95.3 %
    where the plan's verification said 99.03 %. Now the target is the planner's."""
    demo = tmp_path / "demo"
    code, _, err = run_cli(capsys, "demo", "--out", demo, "--spacing-mm", 4, "--quiet", "--json")
    assert code == 0, err
    code, stdout, err = run_cli(
        capsys, "uncertainty", demo / "plan", "--case", demo, "--samples", 1, "--workers", 1,
        "--placement-error-mm", 0, "--angle-error-deg", 0, "--perfusion-cv", 0,
        "--property-cv", 0, "--out", tmp_path / "u", "--json",
    )  # fmt: skip
    assert code == 0, err
    nominal = json.loads((demo / "plan" / "plan.json").read_text())["margin_coverage_percent"]
    # plan.json rounds the percentage to 3 decimals
    assert json.loads(stdout)["per_sample_coverage"] == pytest.approx([nominal / 100], abs=1e-5)


def test_a_plan_on_another_patients_case_is_refused(capsys, planned, tmp_path):
    """The plan's needles were dropped into another anatomy (mean coverage 0 %, exit 0)."""
    _, plan = planned
    other = tmp_path / "other"
    assert run_cli(capsys, "phantom", "--out", other, "--tumor-diameter-mm", "30",
                   "--spacing-mm", "4", "--seed", "3")[0] == 0  # fmt: skip
    code, _, err = run_cli(capsys, "uncertainty", plan, "--case", other, "--samples", 2,
                           "--workers", 1, "--out", tmp_path / "u")  # fmt: skip
    assert_one_line_error(code, err, "not the one", "plan.json was made for")
    assert not (tmp_path / "u").exists()


def test_json_contract_and_files(capsys, planned, tmp_path):
    case, plan = planned
    out = tmp_path / "u1"
    code, stdout, err = run_cli(capsys, "uncertainty", plan, "--case", case, "--samples", 6,
                                "--workers", 2, "--seed", 3, "--out", out, "--json")  # fmt: skip
    assert code == 0, err
    doc = json.loads(stdout)
    assert json.loads((out / "uncertainty.json").read_text()) == doc
    for k in CONTRACT:
        assert k in doc
    assert (doc["samples"], doc["seed"], doc["scheduler"], doc["workers"]) == (6, 3, "local", 2)
    k = sum(doc["per_sample_complete"])
    assert doc["coverage_probability"] == pytest.approx(k / 6)  # an independent recount
    lo, hi = doc["coverage_probability_interval_95"]
    assert 0 <= lo <= doc["coverage_probability"] <= hi <= 1
    assert len(doc["per_sample_coverage"]) == 6
    assert set(doc["sensitivity"]["first_order"]) >= {"perfusion_factor", "property_factor"}
    # 6 samples rank no factor (the indices were printed as dominant with a sum of 2.6)
    assert doc["sensitivity"]["reliable"] is False and "at least 100" in doc["sensitivity"]["note"]
    assert doc["mean_coverage_percent"] == pytest.approx(100 * doc["mean_coverage"], abs=1e-3)
    prob = np.asarray(read_nifti(out / "coverage_probability.nii.gz").array)
    assert prob.min() >= 0 and prob.max() <= 1
    # every value is a count of samples over 6
    assert np.allclose(prob * 6, np.round(prob * 6), atol=1e-5)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--samples", "0"], "--samples"),
        (["--placement-error-mm", "-1"], "--placement-error-mm"),
        (["--perfusion-cv", "5"], "--perfusion-cv"),
        (["--scheduler", "not an address"], "--scheduler"),
        (["--spacing-mm", "1"], "--spacing-mm"),
    ],
)
def test_bad_input_is_one_line_before_any_work(capsys, planned, tmp_path, args, fragment):
    case, plan = planned
    out = tmp_path / "u"
    code, _, err = run_cli(capsys, "uncertainty", plan, "--case", case, "--out", out, *args)
    assert_one_line_error(code, err, fragment)
    assert not out.exists()


def test_refuses_a_plan_folder_without_plan_and_a_foreign_output(capsys, planned, tmp_path):
    case, plan = planned
    code, _, err = run_cli(capsys, "uncertainty", tmp_path, "--case", case, "--out", tmp_path / "u")
    assert_one_line_error(code, err, "plan.json")
    # a plan.json that does not name its case (older plans): --case is needed
    import json
    import shutil

    old = tmp_path / "old-plan"
    shutil.copytree(plan, old)
    doc = json.loads((old / "plan.json").read_text())
    doc.pop("case_path", None)
    (old / "plan.json").write_text(json.dumps(doc))
    code, _, err = run_cli(capsys, "uncertainty", old, "--out", tmp_path / "u")
    assert_one_line_error(code, err, "--case")
    # one whose case has gone: the folder named, nothing simulated
    doc["case_path"] = str(tmp_path / "gone")
    (old / "plan.json").write_text(json.dumps(doc))
    code, _, err = run_cli(capsys, "uncertainty", old, "--out", tmp_path / "u")
    assert_one_line_error(code, err, "gone")
    assert not (tmp_path / "u").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    code, _, err = run_cli(capsys, "uncertainty", plan, "--case", case, "--out", other,
                           "--overwrite")  # fmt: skip
    assert code == 2, err
    assert (other / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d.update(applicators="x"), "must be a list of objects"),
        (lambda d: d.update(applicators=["x"]), "must be a list of objects"),
        (lambda d: d["applicators"][0].update(power_w=-50), "power_w must be in (0, 300]"),
        (lambda d: d["applicators"][0].update(duration_s=1e9), "duration_s must be in (0, 3600]"),
        (lambda d: d["applicators"][0].update(power_w="60"), "power_w must be in (0, 300]"),
    ],
)
def test_a_damaged_plan_json_is_one_line_before_any_sample(capsys, planned, tmp_path, mutate,
                                                           fragment):  # fmt: skip
    """A plan.json edited by hand: refused while reading it, not by the first sample on a
    worker (whose error came with a remote traceback) nor as an internal error."""
    import shutil

    case, plan = planned
    bad = tmp_path / "bad-plan"
    shutil.copytree(plan, bad)
    doc = json.loads((bad / "plan.json").read_text())
    mutate(doc)
    (bad / "plan.json").write_text(json.dumps(doc))
    code, _, err = run_cli(capsys, "uncertainty", bad, "--case", case, "--out", tmp_path / "u",
                           "--samples", 2, "--workers", 1)  # fmt: skip
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "u").exists()
