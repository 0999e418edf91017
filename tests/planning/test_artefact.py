"""MR needle artefact (issue 22): its width by material, field, sequence and angle to B0,
and the trajectory planner's preference for paths near-parallel to B0 under MR guidance.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ioplan.anatomy import Case, Label
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume
from ioplan.planning import (
    TrajectoryConfig,
    angle_to_b0_deg,
    artefact_hides_target,
    candidate_trajectories,
    needle_artefact_table,
    needle_artefact_width_mm,
)

# Published anchor, restated here (not read from the code): shaft artefact 6.7 mm
# perpendicular to B0 at 1.5 T of an MR-conditional MW applicator (Eur Radiol Exp 2019,
# DOI 10.1186/s41747-019-0115-4); assumed 14 G (2.1 mm) titanium class.
ANCHOR_W, ANCHOR_D = 6.7, 2.1
# Schenck JF, Med Phys 1996;23:815, Table 1 (SI ppm): water, titanium
CHI_WATER, CHI_TI = -9.05, 182.0


def _w(**kw):
    base = {
        "material": "titanium",
        "field_t": 1.5,
        "sequence": "GRE",
        "angle_to_b0_deg": 90.0,
        "diameter_mm": 2.1,
    }
    base.update(kw)
    return needle_artefact_width_mm(**base)


def test_anchor_reproduces_the_published_width():
    assert _w() == pytest.approx(ANCHOR_W, abs=1e-9)


def test_parallel_to_b0_leaves_only_the_shaft():
    for m in ("titanium", "nitinol", "inconel", "stainless_steel"):
        for f in (1.5, 3.0):
            assert _w(material=m, field_t=f, angle_to_b0_deg=0.0, diameter_mm=1.5) == 1.5


def test_width_is_monotone_in_angle_and_field():
    angles = np.linspace(0.0, 90.0, 19)
    for f in (0.5, 1.5, 3.0):
        w = [_w(field_t=f, angle_to_b0_deg=a) for a in angles]
        assert all(b >= a for a, b in itertools.pairwise(w))
        assert w[-1] > w[0]
    for a in (20.0, 45.0, 90.0):
        w = [_w(field_t=f, angle_to_b0_deg=a) for f in (0.5, 1.0, 1.5, 3.0, 7.0)]
        assert all(b >= c for c, b in itertools.pairwise(w)) and w[-1] > w[0]
        if a >= 45.0:  # above the shaft's own width at every field: strictly growing
            assert all(b > c for c, b in itertools.pairwise(w))
    # supplementary angles give the same void (the needle's sense does not matter)
    assert _w(angle_to_b0_deg=120.0) == pytest.approx(_w(angle_to_b0_deg=60.0))


def test_sin_angle_and_sqrt_field_dependence():
    """Outside the floor the void scales with sin(angle) and sqrt(B0) (a cylinder's field:
    dBz ~ dchi B0 sin^2 (a/r)^2, so the void radius ~ a sqrt(dchi B0) sin)."""
    w90 = _w(field_t=3.0)
    for a in (30.0, 45.0, 60.0):
        assert _w(field_t=3.0, angle_to_b0_deg=a) / w90 == pytest.approx(
            math.sin(math.radians(a)), rel=1e-12
        )
    assert _w(field_t=3.0) / _w(field_t=1.5) == pytest.approx(math.sqrt(2.0), rel=1e-12)


def test_material_and_sequence_order():
    # susceptibility order (Schenck 1996; Inconel 625 data sheet): Ti < NiTi < Inconel < SS
    w = [_w(material=m) for m in ("titanium", "nitinol", "inconel", "stainless_steel")]
    assert w == sorted(w) and len(set(w)) == 4
    # nitinol over titanium: sqrt of the susceptibility-difference ratio, recounted
    ratio = math.sqrt((245.0 - CHI_WATER) / (CHI_TI - CHI_WATER))
    assert w[1] / w[0] == pytest.approx(ratio, rel=1e-12)
    # spin echoes refocus the dephasing: TSE < bSSFP < GRE
    assert _w(sequence="TSE") < _w(sequence="bSSFP") < _w(sequence="GRE")


def test_bad_artefact_inputs_are_refused():
    with pytest.raises(InputError, match="material"):
        _w(material="copper")
    with pytest.raises(InputError, match="sequence"):
        _w(sequence="EPI")
    with pytest.raises(InputError, match="field_t"):
        _w(field_t=0.0)
    with pytest.raises(InputError, match="angle_to_b0_deg"):
        _w(angle_to_b0_deg=200.0)


def test_angle_to_b0_and_table():
    assert angle_to_b0_deg((0, 0, 1)) == pytest.approx(0.0)
    assert angle_to_b0_deg((0, 0, -3)) == pytest.approx(0.0)
    assert angle_to_b0_deg((1, 0, 0)) == pytest.approx(90.0)
    assert angle_to_b0_deg((1, 0, 1)) == pytest.approx(45.0)
    rows = needle_artefact_table(material="titanium", diameter_mm=2.1, fields_t=(1.5,))
    assert {(r["sequence"], r["angle_to_b0_deg"]) for r in rows} >= {("GRE", 90.0)}
    gre90 = next(r for r in rows if r["sequence"] == "GRE" and r["angle_to_b0_deg"] == 90.0)
    assert gre90["width_mm"] == pytest.approx(ANCHOR_W, abs=0.05)
    assert artefact_hides_target(5.0, 8.0) and not artefact_hides_target(3.0, 8.0)


# -- the planner under MR guidance --------------------------------------------------------


def _ball_case(tumour_radius_mm: float) -> Case:
    """A liver ball (radius 50 mm, 2 mm voxels) with a tumour at the centre."""
    g = Grid((61, 61, 61), (2.0, 2.0, 2.0), (-60.0, -60.0, -60.0))
    z, y, x = g.axis_coordinates_mm()
    r = np.sqrt(z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2)
    lab = np.where(r <= 50.0, int(Label.LIVER), int(Label.BACKGROUND)).astype(np.uint8)
    lab[r <= tumour_radius_mm] = int(Label.TUMOR)
    # air (-1000 HU) around the body: the case has no skin label, and entries are checked
    # against the image beyond them
    img = np.where(lab == int(Label.BACKGROUND), -1000.0, 60.0).astype(np.float32)
    tumors = (
        {"centre_mm": [0.0, 0.0, 0.0], "diameter_mm": 2 * tumour_radius_mm, "histology": "hcc"},
    )
    return Case(Volume(img, g), Volume(lab, g), tumors=tumors)


def _independent(t, case):
    """Angle to B0 (LPS z) from the path's end points, and the width by the formula."""
    d = np.subtract(t.target_mm, t.entry_mm)
    theta = math.degrees(math.acos(min(1.0, abs(d[2]) / np.linalg.norm(d))))
    # K from the published anchor; titanium 1.5 T GRE, the config's 2.4 mm needle
    w = 2.4 * max(1.0, ANCHOR_W / ANCHOR_D * abs(math.sin(math.radians(theta))))
    n = int(np.count_nonzero(np.asarray(case.labels.array) == int(Label.TUMOR)))
    diameter = (6.0 * n * 8.0 / math.pi) ** (1 / 3)  # equivalent sphere, 8 mm^3 voxels
    return theta, w, diameter


def _ct_score(t):
    """ioplan's CT ranking, restated: length, liver before, clearance, angle, unimaged."""
    return (
        -t.length_mm
        - 2.0 * max(0.0, 10.0 - t.liver_before_tumour_mm)
        + 2.0 * min(t.clearance_mm, 20.0)
        - 0.5 * t.angle_deg
        - 2.0 * t.unimaged_mm
    )


def test_mr_paths_prefer_small_angle_to_b0_when_the_artefact_hides_a_small_target():
    case = _ball_case(4.0)  # ~8 mm tumour: a void wider than 4 mm hides it
    mr = candidate_trajectories(
        case, (0.0, 0.0, 0.0), TrajectoryConfig(modality="MR", n_directions=200)
    )
    ct = candidate_trajectories(
        case, (0.0, 0.0, 0.0), TrajectoryConfig(n_directions=200, max_ct_angle_deg=90.0)
    )
    acc = [t for t in mr if t.accepted]
    assert len(acc) > 50
    for t in acc:
        theta, w, diameter = _independent(t, case)
        assert t.angle_to_b0_deg == pytest.approx(theta, abs=1e-6)
        assert t.artefact_width_mm == pytest.approx(w, rel=1e-9)
        # the MR score is the CT ranking with the axial-plane angle replaced by the
        # artefact's excess over half the target (recounted here)
        want = _ct_score(t) + 0.5 * t.angle_deg - 2.0 * max(0.0, w - 0.5 * diameter)
        assert t.score == pytest.approx(want, abs=1e-6)
        assert t.to_dict()["artefact_width_mm"] == pytest.approx(w, abs=0.01)
    # the best MR path runs near B0 (its void does not hide the target); CT's best does not
    theta_mr, w_mr, diameter = _independent(acc[0], case)
    assert w_mr <= 0.5 * diameter + 1e-9 and theta_mr < 35.0
    ct_best = next(t for t in ct if t.accepted)
    assert _independent(ct_best, case)[0] > 45.0
    # on average the accepted MR ranking puts small angles to B0 first
    thetas = [_independent(t, case)[0] for t in acc]
    k = len(thetas) // 4
    assert np.mean(thetas[:k]) < np.mean(thetas[-k:]) - 20.0


def test_mr_paths_ignore_the_artefact_when_the_target_is_large():
    case = _ball_case(16.0)  # ~32 mm tumour: the widest void (7.7 mm) hides nothing
    mr = candidate_trajectories(
        case, (0.0, 0.0, 0.0), TrajectoryConfig(modality="MR", n_directions=120)
    )
    for t in mr:
        if t.accepted:
            assert t.score == pytest.approx(_ct_score(t) + 0.5 * t.angle_deg, abs=1e-6)


def test_ct_paths_unchanged():
    case = _ball_case(4.0)
    ct = candidate_trajectories(
        case, (0.0, 0.0, 0.0), TrajectoryConfig(n_directions=120, max_ct_angle_deg=90.0)
    )
    for t in ct:
        assert t.angle_to_b0_deg == 0.0 and t.artefact_width_mm == 0.0
        d = t.to_dict()
        assert "artefact_width_mm" not in d and "angle_to_b0_deg" not in d
        assert t.score == pytest.approx(_ct_score(t), abs=1e-9)
    scores = [t.score for t in ct if t.accepted]
    assert scores == sorted(scores, reverse=True)


def test_bad_mr_settings_are_refused():
    with pytest.raises(InputError, match="needle_material"):
        TrajectoryConfig(modality="MR", needle_material="copper")
    with pytest.raises(InputError, match="mr_sequence"):
        TrajectoryConfig(modality="MR", mr_sequence="EPI")
    with pytest.raises(InputError, match="field_t"):
        TrajectoryConfig(modality="MR", field_t=20.0)
