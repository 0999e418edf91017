"""``ioplan plan``: cheap refusals first, tumour index, goal status, whole-folder outputs.

One real plan runs here (the 4 mm phantom ``small_case``); every other test replaces the
planner by a stub returning a hand-made :class:`~ioplan.planning.Plan`, so that what is
tested is the command's checks and its writing, in well under a second each.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from conftest import assert_one_line_error, run_cli
from ioplan.anatomy import Case, Label, load_case, save_case
from ioplan.imaging import Volume
from ioplan.planning import (
    COMPLETION_RECORD,
    GOAL_MARGIN_COVERAGE_PERCENT,
    MARGIN_RANGE_MM,
    PROTECT_RANGE_MM,
    SAFETY_RANGE_MM,
    SPACING_RANGE_MM,
    Plan,
    plan_memory_bytes,
)

#: The refusals must come before any simulation, "in well under a second"; the bound is
#: 1.5 s because other test processes share this 2-core machine (a simulation takes > 5 s).
CHEAP_S = 1.5


@pytest.fixture(scope="module")
def case_dir(small_case, tmp_path_factory) -> Path:
    return save_case(small_case, tmp_path_factory.mktemp("plan-cli") / "case")


def _fake_plan(case: Case, *, covered: bool = True) -> Plan:
    """A hand-made plan on ``case``: the zone is the tumour grown by 2 voxels."""
    g = case.labels.grid
    tum = np.asarray(case.labels.array) == int(Label.TUMOR)
    zone = ndimage.binary_dilation(tum, iterations=2)
    centre = g.index_to_lps(np.argwhere(tum).mean(axis=0))
    tip = [round(float(v), 2) for v in centre]
    entry = [round(float(v), 2) for v in centre + np.array([0.0, -80.0, 0.0])]
    app = {"id": "covidien-emprint", "tip_mm": tip, "entry_mm": entry, "power_w": 60.0,
           "duration_s": 300.0, "protocol": None, "insertion_depth_mm": 80.0}  # fmt: skip
    tmax = np.where(zone, 80.0, 37.0).astype(np.float32)
    return Plan(
        modality="mwa", applicators=(app,), margin_mm=5.0, coverage_percent=100.0,
        margin_coverage_percent=99.5 if covered else 90.0, minimal_margin_mm=4.0,
        ablated_liver_ml=10.0, zone_volume_ml=20.0, at_risk=(), covered=covered,
        target_mm=tuple(float(v) for v in centre), tumour_diameter_mm=30.0, histology="hcc",
        verified_by_simulation=True, simulation={"spacing_mm": 4.0, "tried": []}, surrogate={},
        rejected_trajectories=(), accepted_trajectories=1, suggestions=(), runtime_s=0.1, seed=0,
        software_version="test", zone=Volume(zone.astype(np.uint8), g),
        tmax=Volume(tmax, g), tmin=Volume(np.full(g.shape, 37.0, np.float32), g),
    )  # fmt: skip


@pytest.fixture(scope="module")
def fake_plan(small_case) -> Plan:
    return _fake_plan(small_case)


def _no_planning(*_a, **_k):
    raise AssertionError("the planner started: a cheap check came too late")


def _timed(capsys, *args):
    t0 = time.perf_counter()
    code, out, err = run_cli(capsys, *args)
    return code, out, err, time.perf_counter() - t0


# -- task 3: which tumour -------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--tumor", "--tumour"])
@pytest.mark.parametrize("index", ["-1", "1", "7"])
def test_tumour_index_out_of_range_is_refused_naming_the_count(
    capsys, case_dir, tmp_path, monkeypatch, flag, index
):
    """The case holds 1 tumour (one [[tumors]] record): -1 used to plan the last one."""
    monkeypatch.setattr("ioplan.planning.plan_ablation", _no_planning)
    code, _, err, dt = _timed(capsys, "plan", case_dir, "--out", tmp_path / "o", flag, index)
    assert_one_line_error(code, err, "--tumor", index)
    if index != "-1":
        assert_one_line_error(code, err, "the case has 1 tumour")
    assert dt < CHEAP_S and not (tmp_path / "o").exists()


def test_tumour_alias_is_hidden_from_the_help(capsys):
    code, out, _ = run_cli(capsys, "plan", "--help")
    assert code == 0 and "--tumor " in out and "--tumour" not in out


# -- task 5: cheap refusals before any simulation --------------------------------------


def _case_variant(small_case, folder: Path, labels: np.ndarray, tumors=None) -> Path:
    variant = replace(
        small_case,
        labels=Volume(labels.astype(np.uint8), small_case.labels.grid),
        tumors=small_case.tumors if tumors is None else tumors,
    )
    return save_case(variant, folder)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--modality", "rfa", "--applicator", "covidien-emprint"], ["covidien-emprint", "rfa"]),
        (["--spacing-mm", "0.25"], ["--spacing-mm", "1-4 mm", "0.25"]),
        (["--margin-mm", "100"], ["--margin-mm", "0-20 mm", "100"]),
        (["--protect-mm", "-1"], ["--protect-mm", "0-30 mm"]),
        (["--safety-mm", "nan"], ["--safety-mm", "nan"]),
        (["--guidance", "US"], ["--guidance", "US"]),
    ],
)
def test_bad_options_fail_at_once(capsys, case_dir, tmp_path, monkeypatch, args, fragments):
    monkeypatch.setattr("ioplan.planning.plan_ablation", _no_planning)
    code, _, err, dt = _timed(capsys, "plan", case_dir, "--out", tmp_path / "o", *args)
    assert_one_line_error(code, err, *fragments)
    assert dt < CHEAP_S and not (tmp_path / "o").exists()


def test_tumour_outside_the_liver_fails_before_planning(capsys, small_case, tmp_path, monkeypatch):
    lab = np.asarray(small_case.labels.array).copy()
    lab[lab == int(Label.LIVER)] = int(Label.MUSCLE)
    folder = _case_variant(small_case, tmp_path / "case", lab)
    monkeypatch.setattr("ioplan.planning.plan_ablation", _no_planning)
    code, _, err, dt = _timed(capsys, "plan", folder, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "does not lie in the liver")
    assert dt < CHEAP_S


def test_unwritable_out_fails_before_loading_the_case(capsys, case_dir, tmp_path, monkeypatch):
    """A file where a folder of --out should be (permissions do not stop root)."""
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr("ioplan.planning.plan_ablation", _no_planning)
    code, _, err, dt = _timed(capsys, "plan", case_dir, "--out", tmp_path / "afile" / "plan")
    assert_one_line_error(code, err, "afile")
    assert dt < CHEAP_S


def test_a_grid_too_large_for_memory_is_refused(capsys, case_dir, tmp_path, monkeypatch):
    """With 200 MiB available, 1 mm voxels need more (engine domain 171**3 voxels at
    200 B each, about 1 GB, by hand); 4 mm voxels fit (44**3 voxels, 17 MB, plus the
    45 x 65 x 85 case grid at 160 B/voxel, 40 MB)."""
    monkeypatch.setattr("ioplan.resources.available_memory_bytes", lambda: 200 * 2**20)
    monkeypatch.setattr("ioplan.planning.plan_ablation", _no_planning)
    code, _, err, dt = _timed(capsys, "plan", case_dir, "--out", tmp_path / "o", "--spacing-mm", 1)
    assert_one_line_error(code, err, "memory", "--spacing-mm")
    assert dt < CHEAP_S
    g = load_case(case_dir).labels.grid
    assert plan_memory_bytes(g, 1.0) == pytest.approx(45 * 65 * 85 * 160 + 171**3 * 200)
    assert plan_memory_bytes(g, 4.0) < 0.8 * 200 * 2**20


# -- corrupt cases ---------------------------------------------------------------------


def test_corrupt_cases_are_one_line_errors(capsys, small_case, tmp_path, monkeypatch):
    monkeypatch.setattr("ioplan.planning.plan_ablation", _no_planning)
    no_toml = save_case(small_case, tmp_path / "no_toml")
    (no_toml / "case.toml").unlink()
    bad_labels = save_case(small_case, tmp_path / "bad_labels")
    (bad_labels / "labels.nii.gz").write_bytes(b"\x1f\x8b not really gzip" * 10)
    lab = np.asarray(small_case.labels.array).copy()
    lab[lab == int(Label.TUMOR)] = int(Label.LIVER)
    no_tumour = _case_variant(small_case, tmp_path / "no_tumour", lab, tumors=())
    for folder, fragment in ((no_toml, "case.toml"), (bad_labels, "labels.nii.gz"),
                             (no_tumour, "no tumour")):  # fmt: skip
        code, _, err = run_cli(capsys, "plan", folder, "--out", tmp_path / f"o_{folder.name}")
        assert_one_line_error(code, err, fragment)
        assert not (tmp_path / f"o_{folder.name}").exists()


# -- task 4: goal status; task 2: whole-folder outputs (one real plan) -----------------


def _older_plan(folder: Path) -> set[str]:
    """An older plan folder (no completion record): plan.json, report, DICOM, figures."""
    (folder / "dicom" / "ct").mkdir(parents=True)
    (folder / "figures").mkdir()
    (folder / "plan.json").write_text(json.dumps({"schema_version": 1, "covered": True}))
    (folder / "report.html").write_text("<html>OLD-PLAN-REPORT</html>")
    (folder / "dicom" / "ct" / "old-0001.dcm").write_bytes(b"old")
    (folder / "figures" / "old.png").write_bytes(b"old")
    (folder / "tmin.nii.gz").write_bytes(b"old")
    return {"dicom/ct/old-0001.dcm", "figures/old.png"}


@pytest.mark.slow
def test_real_plan_overwrites_an_older_plan_whole_and_reports_its_goal(capsys, case_dir, tmp_path):
    out = tmp_path / "plan"
    old_only = _older_plan(out)
    code, stdout, err = run_cli(
        capsys, "plan", case_dir, "--out", out, "--spacing-mm", 4, "--margin-mm", 0, "--json",
        "--quiet", "--strict", "--overwrite",
    )  # fmt: skip
    doc = json.loads(stdout)
    # documented: --strict exits 3 exactly when the plan misses its goal
    assert code == (0 if doc["goal_met"] else 3), err
    safe = not any(r["lethal_damage"] or r["within_protect_distance"] for r in doc["at_risk"])
    assert doc["goal_met"] == (
        doc["margin_coverage_percent"] >= GOAL_MARGIN_COVERAGE_PERCENT and safe
    )
    assert doc["goal_met"] == doc["covered"]
    on_disk = json.loads((out / "plan.json").read_text())
    assert on_disk["goal_met"] == doc["goal_met"] and on_disk["schema_version"] == 1
    # the older plan's files are gone; the new one is complete
    for rel in old_only:
        assert not (out / rel).exists(), rel
    assert "OLD-PLAN-REPORT" not in (out / "report.html").read_text()
    record = json.loads((out / COMPLETION_RECORD).read_text())
    assert record["command"] == "plan" and "plan.json" in record["entries"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*record["entries"], COMPLETION_RECORD])
    assert [p.name for p in tmp_path.iterdir()] == ["plan"]  # no temporary folder left
    # the minimal margin is the one ioplan margin measures on the same masks
    from ioplan.assessment import measure_margin
    from ioplan.imaging import read_nifti

    case = load_case(case_dir)
    tum = Volume((np.asarray(case.labels.array) == int(Label.TUMOR)).astype(np.uint8),
                 case.labels.grid)  # fmt: skip
    mam = measure_margin(tum, read_nifti(out / "zone.nii.gz"), margin_mm=0.0).minimal_margin_mm
    # plan.json rounds to 0.001 mm
    assert doc["minimal_margin_mm"] == pytest.approx(mam, abs=1e-3)


@pytest.mark.parametrize("strict", [False, True])
def test_a_plan_that_misses_its_goal_exits_3_only_with_strict(
    capsys, small_case, case_dir, tmp_path, monkeypatch, strict
):
    missed = _fake_plan(small_case, covered=False)
    monkeypatch.setattr("ioplan.planning.plan_ablation", lambda *_a, **_k: missed)
    if not strict:  # the files are tested once, with --strict
        monkeypatch.setattr("ioplan.planning.write_plan", lambda *_a, **_k: tmp_path / "r.html")
    args = ["plan", case_dir, "--out", tmp_path / "o", "--json", "--quiet"]
    code, stdout, err = run_cli(capsys, *args, *(["--strict"] if strict else []))
    assert code == (3 if strict else 0), err
    assert json.loads(stdout)["goal_met"] is False
    if strict:  # written although the goal is missed
        assert json.loads((tmp_path / "o" / "plan.json").read_text())["goal_met"] is False


def test_overwrite_refuses_a_folder_that_holds_other_things(
    capsys, case_dir, tmp_path, monkeypatch
):
    out = tmp_path / "mine"
    _older_plan(out)
    (out / "notes.txt").write_text("mine")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    monkeypatch.setattr("ioplan.planning.plan_ablation", _no_planning)
    code, _, err = run_cli(capsys, "plan", case_dir, "--out", out, "--overwrite")
    assert_one_line_error(code, err, "notes.txt", "--overwrite")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


@pytest.mark.parametrize("older", [False, True])
def test_an_interrupted_write_leaves_out_as_it_was(
    capsys, case_dir, tmp_path, monkeypatch, fake_plan, older
):
    """An interruption while the figures are drawn (after the label maps and DICOM)."""
    out = tmp_path / "plan"
    if older:
        _older_plan(out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def interrupt(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr("ioplan.planning.plan_ablation", lambda *_a, **_k: fake_plan)
    monkeypatch.setattr("ioplan.planning._outputs._picture_3d", interrupt)
    code, _, err = run_cli(capsys, "plan", case_dir, "--out", out, "--quiet", "--overwrite")
    assert code == 130, err  # the CLI's code for an interruption
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and out.exists() == older
    assert [p.name for p in tmp_path.iterdir()] == (["plan"] if older else [])


# -- task 6: property-based test over the numeric options ------------------------------


def _in(v: float, lo_hi: tuple[float, float]) -> bool:
    return bool(np.isfinite(v)) and lo_hi[0] <= v <= lo_hi[1]


_num = st.one_of(st.floats(-1e3, 1e3), st.sampled_from([float("nan"), float("inf"), 0.0]))


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spacing=_num, margin=_num, protect=_num, safety=_num, tumour=st.integers(-5, 5))
def test_numeric_options_give_a_plan_or_one_line_error(
    capsys, case_dir, tmp_path, fake_plan, spacing, margin, protect, safety, tumour
):
    """Exit 0 (or 3, the documented goal code) with the options reaching the planner
    unchanged, or one line ``error:`` with exit 2 naming an offending option."""
    seen = {}

    def stub(case, cfg, **_k):
        seen["cfg"] = cfg
        return fake_plan

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("ioplan.planning.plan_ablation", stub)
        mp.setattr("ioplan.planning.write_plan", lambda *_a, **_k: tmp_path / "report.html")
        code, out, err = run_cli(
            capsys, "plan", case_dir, "--out", tmp_path / "never", "--json", "--strict",
            "--spacing-mm", spacing, "--margin-mm", margin, "--protect-mm", protect,
            "--safety-mm", safety, "--tumor", tumour,
        )  # fmt: skip
    bad = {
        "--spacing-mm": not _in(spacing, SPACING_RANGE_MM),
        "--margin-mm": not _in(margin, MARGIN_RANGE_MM),
        "--protect-mm": not _in(protect, PROTECT_RANGE_MM),
        "--safety-mm": not _in(safety, SAFETY_RANGE_MM),
        "--tumor": tumour != 0,  # the case has one tumour
    }
    if any(bad.values()):
        assert_one_line_error(code, err)
        assert any(flag in err for flag, b in bad.items() if b), err
        assert "cfg" not in seen
    else:
        assert code in (0, 3), err
        assert json.loads(out)["goal_met"] is True and code == 0
        cfg = seen["cfg"]
        assert (cfg.spacing_mm, cfg.margin_mm, cfg.protect_mm) == (spacing, margin, protect)
        assert cfg.trajectories.safety_mm == safety and cfg.tumour_index == tumour


def test_plan_json_of_a_zoneless_plan_is_valid_json(small_case):
    """A zone with no voxel has no margin (-inf): plan.json says null, not -Infinity."""
    doc = replace(_fake_plan(small_case), minimal_margin_mm=-float("inf")).to_dict()
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text)["minimal_margin_mm"] is None


def test_demo_refuses_bad_spacing_and_memory_at_once(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("ioplan.planning.demo_case", _no_planning)
    code, _, err, dt = _timed(capsys, "demo", "--out", tmp_path / "d", "--spacing-mm", 0.5)
    assert_one_line_error(code, err, "--spacing-mm", "1-4 mm", "0.5")
    assert dt < CHEAP_S
    monkeypatch.setattr("ioplan.resources.available_memory_bytes", lambda: 100 * 2**20)
    code, _, err, dt = _timed(capsys, "demo", "--out", tmp_path / "d", "--spacing-mm", 1)
    assert_one_line_error(code, err, "memory", "--spacing-mm")
    assert dt < CHEAP_S and not (tmp_path / "d").exists()


def test_help_states_ranges_and_the_exit_status(capsys):
    for cmd in ("plan", "demo"):
        code, out, err = run_cli(capsys, cmd, "--help")
        text = " ".join(out.replace("│", " ").split())  # the help is wrapped in a box
        assert code == 0 and not err.strip()
        assert "1-4 mm" in text and "--strict" in text and "Exit status" in text, cmd
    code, out, _ = run_cli(capsys, "plan", "--help")
    text = " ".join(out.replace("│", " ").split())
    for rng in ("0-20 mm", "0-30 mm"):
        assert rng in text


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--applicator", "covidien-emprint"], "not MR Conditional"),
        (["--applicator", "cryo-2.4mm", "--modality", "cryo"], "refused for MR guidance"),
        (["--applicator", "mr-mw-1.5t", "--field-t", "3"], "only at 1.5 T"),
    ],
)
def test_mr_guidance_refuses_a_device_not_labelled_for_it(capsys, tmp_path, args, fragment):
    """Issue 22: a device that is not MR Conditional at the field is refused for MR guidance
    with the reason, before any work (the case is not even read: it does not exist here)."""
    out = tmp_path / "p"
    code, _, err = run_cli(capsys, "plan", tmp_path / "no-case", "--guidance", "MR", *args,
                           "--out", out, "-q")  # fmt: skip
    assert_one_line_error(code, err, fragment)
    assert not out.exists()


def test_field_strength_without_mr_guidance_is_refused(capsys, tmp_path):
    """`plan --guidance CT --field-t 3` was accepted and the field ignored."""
    out = tmp_path / "p"
    code, _, err = run_cli(capsys, "plan", tmp_path / "no-case", "--field-t", "3", "--out", out)
    assert_one_line_error(code, err, "--field-t is for MR guidance")
    assert not out.exists()
