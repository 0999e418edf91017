"""A limited scan range: a 28 mm slab of slices through the liver still plans (issue 16).

The simulation domain around the applicator needs voxels beyond the slab; the edge
slices are continued outward (``np.pad(mode="edge")`` on the case's lattice) and the
plan warns that the zone reaches past the scanned range.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from conftest import run_cli
from ioplan.anatomy import Case, save_case
from ioplan.imaging import Grid, Volume, resample
from ioplan.physics._domain import edge_extended, past_scan_mm
from ioplan.planning import PlanConfig, plan_ablation

#: Slices kept either side of the tumour's centre slice: 7 slices of 4 mm = 28 mm, less than
#: the 30 mm tumour (its ends and its 5 mm margin lie past the slab: the continued edge
#: slices stand in for them). Was 9 slices (36 mm) until session 42, when the liver's
#: physiological perfusion made one antenna's zone (about 36 mm wide) fit inside them.
HALF_SLICES = 3


def _slab(case: Case, half: int = HALF_SLICES) -> Case:
    """``case`` cut to ``2 * half + 1`` slices (array axis 0) centred on its tumour."""
    g = case.labels.grid
    k = round(float(g.lps_to_index(case.tumors[0]["centre_mm"])[0]))
    sl = slice(k - half, k + half + 1)

    def cut(v: Volume) -> Volume:
        origin = tuple(float(x) for x in v.grid.index_to_lps((sl.start, 0, 0)))
        grid = Grid((sl.stop - sl.start, *v.grid.shape[1:]), v.grid.spacing_mm, origin,
                    v.grid.direction)  # fmt: skip
        return Volume(np.ascontiguousarray(v.array[sl]), grid)

    extra = None if case.extra_labels is None else cut(case.extra_labels)
    return replace(case, image=cut(case.image), labels=cut(case.labels), extra_labels=extra)


def test_edge_extension_is_np_pad_edge_on_the_case_lattice():
    """Beyond the volume, each target voxel takes the nearest edge plane's value."""
    g = Grid((3, 4, 5), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    arr = np.arange(60, dtype=np.uint8).reshape(g.shape)
    vol = Volume(arr, g)
    target = Grid((9, 4, 5), (2.0, 2.0, 2.0), (0.0, 0.0, -6.0))  # 3 slices below, 3 above
    got = resample(edge_extended(vol, target), target, interpolation="nearest")
    assert np.array_equal(got.array, np.pad(arr, ((3, 3), (0, 0), (0, 0)), mode="edge"))
    assert past_scan_mm(g, target) == {"inferior": 5.0, "superior": 5.0}  # to voxel edges
    inside = Grid((2, 2, 2), (2.0, 2.0, 2.0), (2.0, 2.0, 2.0))
    assert edge_extended(vol, inside) is vol and past_scan_mm(g, inside) == {}


def test_a_slab_through_the_liver_plans_with_a_warning(small_case, tmp_path, capsys):
    # one antenna: one placement to carry over to the slab below
    cfg = PlanConfig(modality="mwa", spacing_mm=4, max_applicators=1)
    full = plan_ablation(small_case, cfg)
    slab_case = _slab(small_case)
    assert slab_case.labels.grid.shape[0] * 4.0 == 28.0
    slab = plan_ablation(slab_case, cfg)
    assert slab.verified_by_simulation and slab.zone is not None
    notes = " ".join(slab.notes)
    assert "past the scanned range" in notes and "assumed, not imaged" in notes
    # the 30 mm tumour plus its margin (40 mm) overfills the 28 mm slab: the zone pokes
    # out of the slab's cut ends, and only there (the slab keeps the full field of view)
    assert slab.extends_past_scan_mm
    assert set(slab.extends_past_scan_mm) <= {"inferior", "superior"}
    # bound: the zone (about 38 mm across the slab's 28 mm) reaches past one end by at most
    # the difference, 10 mm, when it sits against the other, plus one 4 mm voxel (measured
    # to voxel edges)
    assert all(0 < v < 14 for v in slab.extends_past_scan_mm.values())
    d = json.loads(json.dumps(slab.to_dict()))
    assert d["extends_past_scan_mm"] == slab.extends_past_scan_mm
    assert d["simulation"]["extends_past_scan_mm"]  # the domain, continued beyond the slab
    assert d["zone_volume_ml"] == round(slab.zone_volume_ml, 3)  # existing keys as before
    # The full case: nothing past its scan, no note, the same keys otherwise.
    assert full.extends_past_scan_mm == {} and full.zone_past_scan_ml == 0.0
    assert not any("scanned range" in n for n in full.notes)
    assert set(full.to_dict()) == set(d)
    # The planner may pick another path on the slab (its tip search runs on the simulated
    # zone, which the continued edge slices change); the continuation itself is checked
    # on one placement: the full plan's applicator simulated on both cases.
    assert slab.coverage_percent >= full.coverage_percent - 1.0
    a = full.applicators[0]
    vol = {}
    for name, c in (("full", small_case), ("slab", slab_case)):
        save_case(c, tmp_path / name)
        code, out, err = run_cli(
            capsys, "simulate", "--case", tmp_path / name, "--applicator", a["id"],
            "--power-w", a["power_w"], "--duration-s", a["duration_s"],
            "--tip-mm", ",".join(f"{v:g}" for v in a["tip_mm"]),
            "--direction", ",".join(f"{v:g}" for v in a["direction"]),
            "--spacing-mm", 4, "--json", "--quiet",
        )  # fmt: skip
        assert code == 0, err
        vol[name] = json.loads(out)
    assert vol["slab"]["settings"]["zone_past_scan_ml"] > 0
    # Measured (4 mm, seed 3, the full plan's 100 W 420 s): zone 34.62 mL on the full
    # case, 34.88 mL on the slab's continued domain (+0.8 %). The continued edge slices are
    # liver like the slices they stand for, so the zone matches the full case's to within
    # what the real anatomy beyond the slab (a vessel, the tumour's tip) changes. 3 % is
    # ~16 of the zone's ~540 voxels of 64 mm3; fat beyond the image (the old behaviour:
    # less perfused, it heats further) gave +4.3 % on the plan's zone and failed it.
    assert vol["slab"]["zone"]["volume_ml"] == pytest.approx(
        vol["full"]["zone"]["volume_ml"], rel=0.03
    )

    # `ioplan simulate --case` on the slab: the same warning among its result's warnings.
    tip = ",".join(f"{v:g}" for v in slab.applicators[0]["tip_mm"])
    direction = ",".join(f"{v:g}" for v in slab.applicators[0]["direction"])
    code, out, err = run_cli(
        capsys, "simulate", "--case", tmp_path / "slab", "--applicator",
        slab.applicators[0]["id"], "--power-w", 60, "--duration-s", 300, "--tip-mm", tip,
        "--direction", direction, "--spacing-mm", 4, "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    res = json.loads(out)
    assert any("past the scanned range" in w for w in res["warnings"]), res["warnings"]
    assert res["settings"]["extends_past_scan_mm"]
