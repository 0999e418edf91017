"""Soft tissue (issue 21): selection and the planner's rules (nerve, skin, vessels, cryo).

The rules are checked on hand-built label maps whose distances are known by construction
(a slab of skin, a ball of ice, a line of nerve), and the selection on the thigh phantom
(the sciatic nerve 20 mm from the tumour, the skin about 30 mm from it) and on a case
whose tumour is larger than 6 cm. The whole plan (verification, the nerve kept within its
limits, the path clear of nerve, artery and bone) is tested through ``ioplan demo --organ
soft_tissue`` in tests/cli/test_demo_soft_tissue.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy import ndimage

from ioplan.anatomy import Case, Label, TumorSpec
from ioplan.anatomy._phantom_soft import NERVE_GAP_MM, generate_soft_tissue
from ioplan.imaging import Grid
from ioplan.planning import protected_structures, select_treatment, temperature_limits
from ioplan.planning._organ_rules import default_margin_mm, soft_tissue_checks
from ioplan.planning._select_organs import select_organ


@dataclass(frozen=True)
class _Cfg:
    spacing_mm: tuple[float, float, float]
    tumors: tuple[TumorSpec, ...]
    site: str = "thigh"
    side: str = "right"
    seed: int = 0
    noise_hu: float = 0.0
    organ: str = "soft_tissue"


@pytest.fixture(scope="module")
def thigh_case():
    t = TumorSpec(25.0, irregularity=0.0, histology="other_metastasis")
    ph = generate_soft_tissue(_Cfg((2.0,) * 3, (t,)))
    return Case.from_phantom(ph, name="thigh")


# --- limits, protected structures, margins ------------------------------------------------


def test_the_nerve_and_skin_limits_are_the_cited_ones():
    lim = temperature_limits()
    nerve = lim["peripheral nerve"]
    # Sag & Husain, Semin Intervent Radiol 2022;39:157: juxtaneural 10-45 degC
    assert (nerve["min_c"], nerve["max_c"]) == (10.0, 45.0) and "Sag" in nerve["source"]
    assert lim["skin"]["min_c"] == 0.0  # no frozen skin
    # the cord and roots keep their own (planner.toml [limits]), not overwritten
    assert lim["spinal cord"]["min_c"] == 10.0 and "Nakatsuka" in lim["spinal cord"]["source"]
    prot = protected_structures("soft_tissue")
    assert prot["peripheral nerve"] == (Label.PERIPHERAL_NERVE,)
    assert prot["skin"] == (Label.SKIN,)
    assert "peripheral nerve" not in protected_structures("liver")


def test_margin_by_histology_and_cryo():
    assert default_margin_mm("soft_tissue", "sarcoma", "mwa") == 10.0
    assert default_margin_mm("soft_tissue", "metastasis", "mwa") == 5.0
    assert default_margin_mm("soft_tissue", "unknown", "mwa") == 5.0
    # cryo: the lethal zone covers the tumour; the 5 mm is the ice edge's (checked on Tmin)
    assert default_margin_mm("soft_tissue", "sarcoma", "cryo") == 0.0


# --- the rules on hand-built maps ---------------------------------------------------------


def _slab_case(spacing=1.0):
    """A 60 mm cube: skin at y >= 50 mm, an artery line at x = 10, z = 30."""
    n = int(60 / spacing)
    grid = Grid((n, n, n), (spacing,) * 3, (0.0, 0.0, 0.0))
    z, y, x = np.meshgrid(*grid.axis_coordinates_mm(), indexing="ij")
    lab = np.full(grid.shape, int(Label.MUSCLE), np.uint8)
    lab[y >= 50.0] = int(Label.SKIN)
    lab[(np.abs(x - 10.0) <= 0.5) & (np.abs(z - 30.0) <= 0.5) & (y < 50.0)] = int(Label.AORTA)
    return grid, lab, (x, y, z)


def test_skin_rule_measures_the_ice_to_skin_distance():
    grid, lab, (x, y, z) = _slab_case()
    r = np.sqrt((x - 30.0) ** 2 + (y - 30.0) ** 2 + (z - 30.0) ** 2)
    tumour = r <= 6.0
    zone = r <= 8.0
    for ice_r, expect in ((14.0, 50.0 - 30.0 - 14.0), (18.0, 50.0 - 30.0 - 18.0)):
        tmin = np.where(r <= ice_r, -10.0, 20.0)
        rec, sug = soft_tissue_checks(lab, grid, tumour, zone, tmin, "cryo")
        # voxel centres on a 1 mm lattice: the nearest frozen centre to the skin's first
        # centre (y = 50) is the ball's pole, at y = 30 + ice_r exactly
        assert rec["skin"]["ice_to_skin_mm"] == pytest.approx(expect, abs=0.01)
        assert rec["skin"]["ok"] == (expect >= 5.0)
        assert any("skin protection" in s for s in sug)  # the tumour is 14 mm under the skin
        # the artery line runs 20 mm from the centre: 14 mm from the tumour surface
        assert rec["major_vessels"]["artery_to_tumour_mm"] == pytest.approx(14.0, abs=1.0)
        assert rec["major_vessels"]["heat_sink"] is False
        assert rec["cryo"]["ice_margin_required_mm"] == 5.0
        # the ice edge lies ice_r - 6 mm beyond the tumour, less half a voxel
        assert rec["cryo"]["ice_margin_mm"] == pytest.approx(ice_r - 6.0 - 0.5, abs=1.0)


def test_a_vessel_within_5_mm_is_a_heat_sink():
    grid, lab, (x, y, z) = _slab_case()
    r = np.sqrt((x - 16.0) ** 2 + (y - 30.0) ** 2 + (z - 30.0) ** 2)
    tumour = r <= 3.5  # its surface 2.5 mm from the artery line at x = 10
    rec, sug = soft_tissue_checks(lab, grid, tumour, r <= 5.0, np.full(grid.shape, 37.0), "mwa")
    assert rec["major_vessels"]["heat_sink"] is True
    assert "zone_to_skin_mm" in rec["skin"] and "cryo" not in rec
    assert any("heat sink" in s for s in sug)


# --- selection ----------------------------------------------------------------------------


def test_selection_on_the_thigh_prefers_cryo_near_the_nerve(thigh_case):
    sel = select_treatment(thigh_case, "soft_tissue", histology="metastasis")
    m = sel.measurements
    assert sel.organ == "soft_tissue" and sel.modality == "cryo"
    # the nerve at the phantom's gap: centre-to-centre distance, so between gap and gap + 2
    # voxels (2 mm), recounted by a distance transform of the label map
    lab = np.asarray(thigh_case.labels.array)
    sp = thigh_case.labels.grid.spacing_mm
    d = ndimage.distance_transform_edt(lab != int(Label.PERIPHERAL_NERVE), sampling=sp)
    assert m["nerve_mm"] == pytest.approx(float(d[lab == int(Label.TUMOR)].min()), abs=0.05)
    assert NERVE_GAP_MM <= m["nerve_mm"] <= NERVE_GAP_MM + 4.0
    reasons = " ".join(r["reason"] for r in sel.reasons)
    assert "cryoablation preferred" in reasons and "10 and 45 degC" in reasons
    assert any("Sag AA" in r["source"] for r in sel.reasons)
    assert "cryo preferred" in sel.recommendation
    # 2.5 cm and no size rule crossed: no verdict either way (case series, no guideline)
    assert sel.ablation_within_guidelines is None and sel.outside_guidelines == ()
    # the skin finding exactly when the tumour lies < 25 mm under the skin (recounted)
    ds = ndimage.distance_transform_edt(lab != int(Label.SKIN), sampling=sp)
    assert m["skin_mm"] == pytest.approx(float(ds[lab == int(Label.TUMOR)].min()), abs=0.05)
    assert ("skin protection" in reasons) == (m["skin_mm"] < 25.0)


def test_a_tumour_larger_than_6_cm_is_named_outside(thigh_case):
    lab = np.asarray(thigh_case.labels.array)
    comps, _ = ndimage.label(lab == int(Label.TUMOR))
    sp = thigh_case.labels.grid.spacing_mm
    rec, mod, reasons, _meas, within, outside = select_organ(
        "soft_tissue", lab, comps, [65.0], sp, "sarcoma", None, "CT"
    )
    assert within is False and outside == [outside[0]] and "larger than 6 cm" in outside[0]
    assert any("Parvinian" in r["source"] for r in reasons)
    assert "sarcoma centre" in rec and mod == "cryo"
    rec, _, _, _, within, outside = select_organ(
        "soft_tissue", lab, comps, [60.0], sp, "metastasis", None, "CT"
    )
    assert within is None and outside == []  # 6 cm itself is not larger than 6 cm


def test_soft_tissue_is_planned_when_given_not_when_inferred(thigh_case):
    from dataclasses import replace

    from ioplan.anatomy import infer_organ
    from ioplan.errors import InputError
    from ioplan.planning import planning_organ
    from ioplan.planning._metrics import HOST_SHARE

    bare = replace(thigh_case, organ=None)
    lab = np.asarray(bare.labels.array)
    assert infer_organ(lab, bare.labels.grid.spacing_mm) == "soft_tissue"
    # inferred: only "no organ label touches it"; the liver's checks then refuse it
    assert planning_organ(bare) == "liver"
    if "soft_tissue" in HOST_SHARE:
        assert planning_organ(bare, "soft_tissue") == "soft_tissue"
        assert planning_organ(replace(bare, organ="soft_tissue")) == "soft_tissue"
    else:  # until the tumour check knows the organ: a one-line refusal, not a KeyError
        with pytest.raises(InputError, match="not enabled yet"):
            planning_organ(bare, "soft_tissue")
