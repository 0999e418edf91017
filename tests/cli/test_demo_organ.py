"""`ioplan demo --organ lung|kidney|bone` (issue 21): plan, verify and report per organ.

Each demo runs the organ phantom at 3 mm (17-42 s each alone on this 2-core machine), so
these tests are few and marked slow; their wall-clock guard (240 s) catches hangs; the
speed is measured in bench/demo.py --organs. The lung demo's pleural crossings are
recounted here by an independent ray march over the written label map.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from ioplan.anatomy import Label, load_case
from ioplan.cli import main

# inside the visceral pleura: lung, fissure, bronchus, pulmonary vessel, and the tumour
_INSIDE = [int(Label.LUNG), int(Label.FISSURE), int(Label.BRONCHUS),
           int(Label.PULMONARY_VESSEL), int(Label.TUMOR)]  # fmt: skip


#: Wall-clock guard per demo (s): catches a hang or a runaway search, not a speed figure
#: (the issue's 60 s is measured by ``python bench/demo.py --organs lung kidney bone``,
#: bench/results/demo_organs.json; a loaded CI machine took 94 s for the kidney once).
_LIMIT_S = 240.0


def _demo(capsys, tmp_path, organ: str, spacing_mm: float = 3.0) -> tuple[dict, float, str]:
    out = tmp_path / organ
    t0 = time.perf_counter()
    code = main(["demo", "--organ", organ, "--out", str(out), "--spacing-mm", f"{spacing_mm:g}",
                 "--quiet"])  # fmt: skip
    dt = time.perf_counter() - t0
    stdout, err = capsys.readouterr()
    assert code == 0, err
    return json.loads((out / "plan" / "plan.json").read_text()), dt, stdout


def _march_entries(lab: np.ndarray, grid, entry, tip, step_mm: float = 0.2) -> int:
    """Entries into the lung along entry -> tip, sampled every 0.2 mm (nearest voxel)."""
    a, b = np.asarray(entry, float), np.asarray(tip, float)
    n = int(np.linalg.norm(b - a) / step_mm) + 1
    pts = a[None, :] + np.linspace(0.0, 1.0, n)[:, None] * (b - a)[None, :]
    idx = np.clip(np.rint(grid.lps_to_index(pts)).astype(int), 0, np.asarray(grid.shape) - 1)
    inside = np.isin(lab[tuple(idx.T)], _INSIDE)
    return int(np.count_nonzero(inside[1:] & ~inside[:-1]) + int(inside[0]))


@pytest.mark.slow
def test_lung_demo_one_pleural_crossing_per_needle_recounted(capsys, tmp_path):
    doc, dt, stdout = _demo(capsys, tmp_path, "lung")
    assert dt < _LIMIT_S
    assert doc["organ"] == "lung" and doc["verified_by_simulation"]
    assert doc["pleural_crossings"] == 1
    assert 0.0 < doc["pneumothorax_risk"]["probability"] < 1.0
    assert "Huo" in doc["pneumothorax_risk"]["source"]
    assert doc["selection"] and "error" not in doc["selection"]
    assert "pleural crossing" in stdout
    case = load_case(tmp_path / "lung")
    lab = np.asarray(case.labels.array)
    total = 0.0
    for a in doc["applicators"]:
        n = _march_entries(lab, case.labels.grid, a["entry_mm"], a["tip_mm"])
        # the planner samples every half voxel, the march every 0.2 mm: a path grazing a
        # lung edge could differ, the demo's do not
        assert n == a["trajectory"]["pleural_crossings"] == 1
        assert a["trajectory"]["fissure_crossings"] == 0
        total += a["trajectory"]["lung_path_mm"]
    assert doc["lung_path_mm"] == pytest.approx(total, abs=0.2)


@pytest.mark.slow
@pytest.mark.parametrize("organ", ["kidney", "bone"])
def test_kidney_and_bone_demos_plan_verify_and_report(capsys, tmp_path, organ):
    # 4 mm: what is checked here is the path (plan, verify, report, the organ's limits and
    # their recount), not a figure that needs a finer grid; 12 s and 7 s against 32 s and 5 s
    doc, dt, stdout = _demo(capsys, tmp_path, organ, spacing_mm=4.0)
    assert dt < _LIMIT_S
    assert doc["organ"] == organ and doc["verified_by_simulation"]
    assert (tmp_path / organ / "plan" / "report.html").is_file()
    limits = doc["organ_rules"].get("temperature_limits", {})
    if organ == "kidney":
        assert doc["modality"] == "cryo"
        assert doc["organ_rules"]["cryo"]["freeze_cycles"] == 2
        assert "kidney cryo" in stdout
        # the kidney's cryo rule, as reported: ok exactly when the ice edge lies >= 5 mm beyond
        # the tumour and both isotherms hold it (on 4 mm voxels the edge is measured in 4 mm
        # steps; the rule met is tested on 3 mm voxels in tests/planning/test_organ_rules.py)
        cryo = doc["organ_rules"]["cryo"]
        assert cryo["ok"] == (cryo["ice_margin_mm"] >= 5.0
                              and cryo["tumour_within_20c_percent"] >= 100.0
                              and cryo["tumour_within_40c_percent"] >= 100.0)  # fmt: skip
        if "collecting system" in limits:
            cs = limits["collecting system"]
            assert cs["limit_exceeded"] == (cs["min_temperature_c"] <= -20.0
                                            or cs["max_temperature_c"] >= 45.0)  # fmt: skip
    else:
        assert doc["modality"] == "mwa"
        cord = limits["spinal cord"]
        assert cord["max_limit_c"] == 45.0 and cord["min_limit_c"] == 10.0
        assert cord["limit_exceeded"] == (cord["max_temperature_c"] >= 45.0)


def test_demo_refuses_an_unknown_organ(capsys, tmp_path):
    code = main(["demo", "--organ", "brain", "--out", str(tmp_path / "d"), "--quiet"])
    _, err = capsys.readouterr()
    assert code == 2 and "brain" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "pyradiomics"


@pytest.mark.skipif(
    not (REAL / "lung1_image.nrrd").is_file(),
    reason=f"real chest CT not present ({REAL}); see shared/data/real/README.md",
)
def test_real_chest_ct_plans_a_lung_mwa_with_one_pleural_crossing_and_no_bone(capsys, tmp_path):
    """The pyradiomics chest CT (its hand-labelled tumour near the hilum, lungs and bone
    from the image): organ inferred as lung, one MWA path crossing the pleura once, no
    bone on it; both recounted by a ray march over the planning grid's labels."""
    code = main(["import-case", "--image", str(REAL / "lung1_image.nrrd"), "--labels",
                 str(REAL / "lung1_label.nrrd"), "--label", "tumor=1", "--auto-labels",
                 "--name", "lung1", "--out", str(tmp_path / "chest")])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 0, err
    code = main(["plan", str(tmp_path / "chest"), "--out", str(tmp_path / "plan"),
                 "--spacing-mm", "3", "--json", "--quiet"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["organ"] == "lung" and doc["modality"] == "mwa"
    assert doc["pleural_crossings"] == 1
    # the planner resampled the 0.57 x 0.57 x 5 mm case to 3 mm cubes: march on that grid
    from ioplan.imaging import resample_to_spacing

    case = load_case(tmp_path / "chest")
    labels = resample_to_spacing(case.labels, (3.0,) * 3, interpolation="nearest")
    lab = np.asarray(labels.array)
    for a in doc["applicators"]:
        assert _march_entries(lab, labels.grid, a["entry_mm"], a["tip_mm"]) == 1
        pts = np.linspace(a["entry_mm"], a["tip_mm"], 2000)
        idx = np.clip(np.rint(labels.grid.lps_to_index(pts)).astype(int), 0,
                      np.asarray(labels.grid.shape) - 1)  # fmt: skip
        on_path = set(np.unique(lab[tuple(idx.T)]).tolist())
        assert int(Label.RIB) not in on_path and int(Label.VERTEBRA) not in on_path
