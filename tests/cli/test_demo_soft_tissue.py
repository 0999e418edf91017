"""`ioplan demo --organ soft_tissue` (issue 21): a thigh metastasis by the sciatic nerve, cryo.

One demo at 3 mm (the planner verifies cryo on 3 mm voxels at any case spacing). What is
recounted independently from the files it writes:

- the sciatic nerve's extreme temperatures, from ``plan/tmin.nii.gz`` and
  ``plan/tmax.nii.gz`` on the ``PERIPHERAL_NERVE`` voxels of ``labels.nii.gz``: they are
  plan.json's, and they stay inside the cited 10-45 degC (Sag & Husain 2022);
- every needle path, by a ray march every 0.2 mm from the skin entry to the tip over the
  label map: no nerve, no artery or vein, no bone on the way;
- the skin's coldest point, from the same maps, against its 0 degC limit.

The wall-clock guard (240 s) catches a hang; the demo's speed at the default 2 mm is
measured in the report (README).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from ioplan.anatomy import Label, PhantomConfig, TumorSpec, load_case
from ioplan.cli import main
from ioplan.errors import InputError
from ioplan.imaging import read_nifti

_LIMIT_S = 240.0
_FORBIDDEN = [int(Label.PERIPHERAL_NERVE), int(Label.FEMORAL_ARTERY), int(Label.FEMORAL_VEIN),
              int(Label.LONG_BONE)]  # fmt: skip


def _organ_accepted() -> bool:
    try:
        PhantomConfig(organ="soft_tissue", tumors=(TumorSpec(25.0),))
    except InputError as exc:
        if "no soft-tissue phantom" in str(exc):
            return False
        raise
    return True


def _march(lab: np.ndarray, grid, entry, tip, step_mm: float = 0.2) -> np.ndarray:
    """Labels along entry -> tip every ``step_mm`` (nearest voxel)."""
    a, b = np.asarray(entry, float), np.asarray(tip, float)
    n = int(np.linalg.norm(b - a) / step_mm) + 1
    pts = a[None, :] + np.linspace(0.0, 1.0, n)[:, None] * (b - a)[None, :]
    idx = np.rint(grid.lps_to_index(pts)).astype(int)
    inside = np.all((idx >= 0) & (idx < np.asarray(grid.shape)), axis=1)
    return lab[tuple(idx[inside].T)]


@pytest.mark.slow
@pytest.mark.skipif(
    not _organ_accepted(),
    reason="PhantomConfig (anatomy/_phantom.py) still refuses organ soft_tissue",
)
def test_soft_tissue_demo_keeps_the_nerve_in_its_limits_and_the_paths_clear(capsys, tmp_path):
    out = tmp_path / "soft"
    t0 = time.perf_counter()
    code = main(["demo", "--organ", "soft_tissue", "--out", str(out), "--spacing-mm", "3",
                 "--quiet"])  # fmt: skip
    dt = time.perf_counter() - t0
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert dt < _LIMIT_S
    doc = json.loads((out / "plan" / "plan.json").read_text())
    assert doc["organ"] == "soft_tissue" and doc["modality"] == "cryo"
    assert doc["verified_by_simulation"] and doc["applicators"]
    assert doc["selection"]["organ"] == "soft_tissue" and doc["selection"]["modality"] == "cryo"
    assert "soft tissue cryo" in stdout and "peripheral nerve" in stdout

    case = load_case(out)
    lab = np.asarray(case.labels.array)
    tmin = read_nifti(out / "plan" / "tmin.nii.gz")
    tmax = read_nifti(out / "plan" / "tmax.nii.gz")
    assert tmin.grid.shape == case.labels.grid.shape
    nerve = lab == int(Label.PERIPHERAL_NERVE)
    lo, hi = float(np.asarray(tmin.array)[nerve].min()), float(np.asarray(tmax.array)[nerve].max())
    rec = doc["organ_rules"]["temperature_limits"]["peripheral nerve"]
    # the maps are written as float32, plan.json rounds to 0.01 degC
    assert rec["min_temperature_c"] == pytest.approx(lo, abs=0.01)
    assert rec["max_temperature_c"] == pytest.approx(hi, abs=0.01)
    assert (rec["min_limit_c"], rec["max_limit_c"]) == (10.0, 45.0)
    assert 10.0 < lo and hi < 45.0 and rec["limit_exceeded"] is False

    skin = lab == int(Label.SKIN)
    skin_rec = doc["organ_rules"]["temperature_limits"]["skin"]
    assert skin_rec["min_temperature_c"] == pytest.approx(
        float(np.asarray(tmin.array)[skin].min()), abs=0.01
    )
    assert skin_rec["limit_exceeded"] == (skin_rec["min_temperature_c"] <= 0.0)

    for a in doc["applicators"]:
        seen = _march(lab, case.labels.grid, a["entry_mm"], a["tip_mm"])
        assert seen.size > 0 and not np.isin(seen, _FORBIDDEN).any(), a["id"]
        assert int(Label.TUMOR) in seen  # it does reach the tumour
    vessels = doc["organ_rules"]["major_vessels"]
    assert vessels["crossed_by_path"] is False and vessels["artery_to_tumour_mm"] > 0.0
