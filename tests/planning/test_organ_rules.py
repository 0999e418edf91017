"""The planner's rules per organ (issue 21) on small synthetic label volumes.

Lung: pleural crossings of every candidate path against an analytic ray-sphere count;
fissure crossings refused; the pneumothorax figure against the published odds ratios.
Kidney: a cryo plan keeps the collecting system above its cold limit and puts the ice
edge >= 5 mm beyond the tumour (measured here on the plan's Tmin). Bone: an MW plan keeps
the spinal cord under 45 degC. The liver's plans are covered by the existing tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from ioplan.anatomy import Case, Label
from ioplan.imaging import Grid, Volume
from ioplan.planning import PlanConfig, TrajectoryConfig, candidate_trajectories, plan_ablation
from ioplan.planning._organ_rules import pneumothorax_risk

SP = 2.0


def _grid(half_mm: float = 80.0, sp: float = SP) -> tuple[Grid, np.ndarray]:
    n = int(2 * half_mm / sp) + 1
    g = Grid((n, n, n), (sp, sp, sp), (-half_mm, -half_mm, -half_mm))
    z, y, x = g.axis_coordinates_mm()
    pts = np.stack(np.meshgrid(x, y, z, indexing="ij"), -1).transpose(2, 1, 0, 3)  # (z,y,x,3)
    return g, pts


def _ball(pts: np.ndarray, c, r: float) -> np.ndarray:
    return np.linalg.norm(pts - np.asarray(c, float), axis=-1) <= r


def _case(g: Grid, lab: np.ndarray, centre, diameter_mm: float, histology: str, organ: str,
          hu: dict[int, float] | None = None) -> Case:  # fmt: skip
    img = np.where(lab == int(Label.BACKGROUND), -1000.0, 40.0).astype(np.float32)  # air outside
    for k, v in (hu or {}).items():
        img[lab == k] = v
    tumors = ({"centre_mm": list(centre), "diameter_mm": diameter_mm, "histology": histology},)
    return Case(Volume(img, g), Volume(lab, g), tumors=tumors, organ=organ)


# ------------------------------------------------------------------------------------------
# lung

LUNG_A, LUNG_B, R_LUNG = (-30.0, 0.0, 0.0), (30.0, 0.0, 0.0), 25.0


def _two_lungs(fissure_y: float | None = None) -> Case:
    """Two lung balls (r 25 mm, centres 60 mm apart) in a fat ball, a tumour in the left."""
    g, pts = _grid()
    lab = np.where(_ball(pts, (0, 0, 0), 78.0), int(Label.FAT), 0).astype(np.uint8)
    lab[_ball(pts, LUNG_A, R_LUNG) | _ball(pts, LUNG_B, R_LUNG)] = int(Label.LUNG)
    if fissure_y is not None:  # an interlobar fissure: a plane through the left lung
        lab[(np.abs(pts[..., 1] - fissure_y) <= 0.5 * SP) & _ball(pts, LUNG_A, R_LUNG)] = int(
            Label.FISSURE
        )
    lab[_ball(pts, LUNG_A, 6.0)] = int(Label.TUMOR)
    hu = {int(Label.LUNG): -850.0, int(Label.FAT): -100.0, 0: -1000.0}
    return _case(g, lab, LUNG_A, 12.0, "metastasis", "lung", hu)


def _ray_sphere(o: np.ndarray, u: np.ndarray, length: float, c, r: float):
    """Distance of the sphere's centre from the ray and whether the segment meets it."""
    rel = np.asarray(c, float) - o
    s = float(np.clip(rel @ u, 0.0, length))
    d_line = float(np.linalg.norm(rel - (rel @ u) * u))
    return d_line, bool(np.linalg.norm(rel - s * u) <= r)


def test_pleural_crossings_match_an_analytic_ray_sphere_count():
    case = _two_lungs()
    cfg = TrajectoryConfig(n_directions=300, max_ct_angle_deg=90.0, organ="lung", safety_mm=0.0)
    trajs = candidate_trajectories(case, LUNG_A, cfg)
    checked = twice = 0
    for t in trajs:
        u = -np.asarray(t.direction)  # target -> entry
        o = np.asarray(t.target_mm)
        d_line, meets_b = _ray_sphere(o, u, t.length_mm, LUNG_B, R_LUNG)
        # rays grazing the right lung (within two voxels of tangent) are ambiguous on a
        # 2 mm voxel grid: left out of the comparison
        if abs(d_line - R_LUNG) < 2 * SP * np.sqrt(3):
            continue
        # the path starts inside the left lung (one entry) and crosses the right lung
        # whole when the segment meets it (a second entry)
        expected = 1 + int(meets_b)
        assert t.pleural_crossings == expected, (t.direction, d_line)
        assert t.accepted == (expected <= 1), t.reasons
        if expected == 2:
            twice += 1
            assert any("crosses the pleura 2 times" in r for r in t.reasons)
        checked += 1
    # both kinds of path are there in numbers (the right lung subtends ~25 deg: ~5 %)
    assert checked > 250 and twice >= 5


def test_lung_path_length_is_the_aerated_lung_before_the_tumour():
    case = _two_lungs()
    cfg = TrajectoryConfig(n_directions=100, max_ct_angle_deg=90.0, organ="lung", safety_mm=0.0)
    n = 0
    for t in candidate_trajectories(case, LUNG_A, cfg)[:20]:
        if t.pleural_crossings != 1:
            continue
        n += 1
        # analytic: from the left lung's surface (25 mm) to the tumour's (6 mm) along the
        # radius; one voxel of tolerance at each end (nearest-voxel sampling)
        assert abs(t.lung_path_mm - (R_LUNG - 6.0)) <= 2 * SP
        assert t.emphysema_fraction == 0.0  # -850 HU: no sample below -950
    assert n >= 15


def test_a_path_across_a_fissure_is_refused():
    case = _two_lungs(fissure_y=10.0)
    cfg = TrajectoryConfig(n_directions=300, max_ct_angle_deg=90.0, organ="lung", safety_mm=0.0)
    trajs = candidate_trajectories(case, LUNG_A, cfg)
    n_cross = 0
    for t in trajs:
        u = -np.asarray(t.direction)
        o = np.asarray(t.target_mm)
        if abs(u[1]) < 1e-6:
            continue
        s = (10.0 - o[1]) / u[1]  # where the ray meets the fissure plane
        hit = o + s * u
        r_hit = float(np.linalg.norm(hit - np.asarray(LUNG_A)))
        if not 0 < s <= t.length_mm or abs(r_hit - R_LUNG) < 2 * SP:
            if 0 < s <= t.length_mm:
                continue  # meets the plane at the lung's edge: ambiguous on the grid
            crosses = False
        else:
            crosses = r_hit < R_LUNG
        if abs(s * u[1]) < 2 * SP and s > 0:
            continue  # nearly parallel to the plane: ambiguous
        n_cross += crosses
        assert (t.fissure_crossings > 0) == crosses, (t.direction, s, r_hit)
        if crosses:
            assert not t.accepted and "crosses an interlobar fissure" in t.reasons
    assert n_cross > 20


def test_pneumothorax_risk_multiplies_the_published_odds_ratios():
    # Huo et al., Br J Radiol 2020;93:20190866: pooled incidence 25.9 %, depth >= 3 cm
    # OR 2.38, emphysema OR 3.33, > 1 pleural puncture OR 2.43, fissure crossed OR 3.75
    odds = 0.259 / (1 - 0.259) * 2.38 * 3.33 * 2.43 * 3.75
    r = pneumothorax_risk(45.0, 2, 1, 0.2)
    assert r["probability"] == pytest.approx(odds / (1 + odds), abs=1e-3)
    assert len(r["factors"]) == 4 and r["emphysema"] is True
    assert pneumothorax_risk(10.0, 1, 0, 0.01)["probability"] == pytest.approx(0.259, abs=1e-3)


# ------------------------------------------------------------------------------------------
# kidney and bone (full plans: a few seconds to tens of seconds each)

TUMOUR_K, CS_K = (-26.0, 0.0, 0.0), (-8.0, 0.0, 0.0)


def _kidney() -> Case:
    """A kidney ball (r 32 mm) in fat; a 7 mm tumour near its left edge, the collecting
    system (r 4 mm) 10.5 mm inside the tumour's surface, bowel 9.5 mm beyond it in the fat.

    A small tumour: one cryoprobe's -40 degC zone in perfused kidney is ~14 mm wide in the
    engine, so that the plan needs one probe and the test stays short.
    """
    g, pts = _grid(70.0)
    lab = np.where(_ball(pts, (0, 0, 0), 68.0), int(Label.FAT), 0).astype(np.uint8)
    lab[_ball(pts, (0, 0, 0), 32.0)] = int(Label.KIDNEY)
    lab[_ball(pts, CS_K, 4.0)] = int(Label.COLLECTING_SYSTEM)
    lab[_ball(pts, (-49.0, 0.0, 0.0), 10.0)] = int(Label.BOWEL_WALL)
    lab[_ball(pts, TUMOUR_K, 3.5)] = int(Label.TUMOR)
    return _case(g, lab, TUMOUR_K, 7.0, "rcc", "kidney")


def _brute_ice_margin_mm(tumour, frozen, g: Grid, keep) -> float:
    """Smallest distance (mm) from a tumour voxel centre to an unfrozen one, less half a
    voxel: brute force over voxel pairs (no distance transform)."""
    a = g.index_to_lps(np.argwhere(tumour))
    b = g.index_to_lps(np.argwhere(~frozen & keep))
    d = np.sqrt(((a[:, None, :] - b[None, ::1, :]) ** 2).sum(-1)).min()
    return max(0.0, float(d) - 0.5 * SP)


@pytest.mark.parametrize(("ice_radius_mm", "ok"), [(16.0, True), (11.0, False)])
def test_cryo_checks_measure_the_ice_edge_of_an_analytic_field(ice_radius_mm, ok):
    """Tmin rising linearly with the distance r from the tumour's centre (8 mm ball):
    0 degC at ``ice_radius_mm``, so the ice edge lies ice_radius - 8 mm beyond the
    tumour, within a voxel (the edge is placed half a voxel inside the first unfrozen
    voxel centre)."""
    from ioplan.planning import cryo_checks

    g, pts = _grid(40.0)
    r = np.linalg.norm(pts, axis=-1)
    tumour = r <= 8.0
    tmin = (-150.0 + 150.0 * r / ice_radius_mm).astype(np.float32)  # 0 degC at the edge
    res = cryo_checks(tumour, tmin, g)
    assert res["ice_margin_mm"] == pytest.approx(ice_radius_mm - 8.0, abs=SP)
    assert res["ok"] is ok
    # -20 and -40 degC at r = 0.87 and 0.73 ice radii: 13.9 / 11.7 mm (ok) or 9.5 / 8.1 mm
    # (not ok): the 8 mm tumour lies inside both either way
    assert res["tumour_within_20c_percent"] == 100.0
    assert res["tumour_within_40c_percent"] == 100.0
    assert res["freeze_cycles"] == 2


@pytest.mark.slow
def test_kidney_cryo_plan_spares_the_collecting_system_and_reports_its_ice_margin():
    case = _kidney()
    # the default search budget (45 s): the search then ends by its round limit, not by the
    # clock (a 10 s budget stopped after 2 or 3 rounds depending on the machine's load);
    # 13 s here on one core
    cfg = PlanConfig(modality="cryo", spacing_mm=SP, robust_samples=10,
                     trajectories=TrajectoryConfig(n_directions=150))  # fmt: skip
    plan = plan_ablation(case, cfg)
    assert plan.organ == "kidney"
    lab = np.asarray(case.labels.array)
    tmin = np.asarray(plan.tmin.array)
    zone = np.asarray(plan.zone.array) > 0
    tumour = lab == int(Label.TUMOR)
    cs = lab == int(Label.COLLECTING_SYSTEM)
    # collecting system above its cold limit: -20 degC (planner.toml, Brashears 2005)
    assert tmin[cs].min() > -20.0
    rec = plan.to_dict()["organ_rules"]
    assert rec["temperature_limits"]["collecting system"]["min_limit_c"] == -20.0
    assert rec["cryo"]["freeze_cycles"] == 2
    # the ice edge measured here by brute force: frozen = Tmin <= 0 or in the lethal zone;
    # the probes' own voxels outside the zone (no tissue temperature) left out
    keep = np.ones_like(zone)
    g_pts = case.labels.grid.index_to_lps(np.argwhere(keep)).reshape(*keep.shape, 3)
    for a in plan.applicators:
        rel = g_pts - np.asarray(a["tip_mm"])
        d = np.asarray(a["direction"])
        along = rel @ d
        radial = np.linalg.norm(rel - along[..., None] * d, axis=-1)
        r_shaft = max(1.2, 0.71 * 3.0) + 3.0  # cryo verified on 3 mm voxels
        keep &= ~((along <= r_shaft) & (radial <= r_shaft) & ~zone)
    margin = _brute_ice_margin_mm(tumour, (tmin <= 0.0) | zone, case.labels.grid, keep)
    # same definition, different arithmetic: within rounding of the record (2 decimals)
    assert rec["cryo"]["ice_margin_mm"] == pytest.approx(margin, abs=0.01)
    # the kidney's rule (Georgiades & Rodriguez 2014): the ice edge >= 5 mm beyond the tumour,
    # the tumour inside the -20 and -40 degC isotherms (recounted here from Tmin and the zone)
    assert margin >= 5.0
    assert np.all((tmin[tumour] <= -20.0) | zone[tumour])
    assert np.all(zone[tumour])
    assert rec["cryo"]["ok"] is True
    assert not any(s.startswith("cryo: the ice edge") for s in plan.suggestions)
    # bowel within 10 mm of the tumour (9.5 mm): hydrodissection suggested
    assert any(s.startswith("hydrodissection") for s in plan.suggestions)


def _vertebra() -> Case:
    """A vertebral body (ball r 20 mm) with a 12 mm tumour, the spinal cord (a 10 mm
    cylinder along z) 18 mm behind the tumour's surface, muscle around."""
    g, pts = _grid(60.0)
    lab = np.where(_ball(pts, (0, 0, 0), 58.0), int(Label.MUSCLE), 0).astype(np.uint8)
    lab[_ball(pts, (0, 0, 0), 20.0)] = int(Label.VERTEBRA)
    cord = np.hypot(pts[..., 0], pts[..., 1] - 30.0) <= 5.0
    lab[np.hypot(pts[..., 0], pts[..., 1] - 30.0) <= 8.0] = int(Label.SPINAL_CANAL)
    lab[cord] = int(Label.SPINAL_CORD)
    lab[_ball(pts, (0, -6.0, 0), 6.0)] = int(Label.TUMOR)
    return _case(g, lab, (0, -6.0, 0), 12.0, "metastasis", "bone")


@pytest.mark.slow
def test_bone_plan_keeps_the_cord_under_45_degc():
    case = _vertebra()
    cfg = PlanConfig(modality="mwa", spacing_mm=SP, robust_samples=10,
                     trajectories=TrajectoryConfig(n_directions=150))  # fmt: skip
    plan = plan_ablation(case, cfg)
    assert plan.organ == "bone"
    lab = np.asarray(case.labels.array)
    tmax = np.asarray(plan.tmax.array)
    # Nakatsuka et al., CVIR 2009;32:70-75: 45 degC in the spinal canal
    assert tmax[lab == int(Label.SPINAL_CORD)].max() < 45.0
    # the path enters the host vertebra (traversable for its own tumour), not the canal
    for a in plan.applicators:
        assert a["trajectory"]["accepted"]
    limits = plan.to_dict()["organ_rules"]["temperature_limits"]
    assert limits["spinal cord"]["max_limit_c"] == 45.0
    assert not limits["spinal cord"]["limit_exceeded"]


@pytest.mark.parametrize(("tmax_c", "tmin_c", "warned"), [(43.0, 37.0, True), (40.0, 37.0, False),
                                                         (37.0, 12.0, True)])  # fmt: skip
def test_thermal_protection_is_suggested_near_the_cords_limits(tmax_c, tmin_c, warned):
    """Within 3 degC of a limit (45 degC heat, 10 degC cold; planner.toml warn_within_c)."""
    from ioplan.planning._organ_rules import organ_findings

    g, _ = _grid(10.0)
    empty = np.zeros(g.shape, bool)
    risk = [{"structure": "spinal cord", "closest_distance_mm": 8.0, "max_temperature_c": tmax_c,
             "min_temperature_c": tmin_c, "lethal_damage": False,
             "within_protect_distance": False, "max_limit_c": 45.0, "min_limit_c": 10.0,
             "limit_exceeded": False}]  # fmt: skip
    rec, suggestions, _ = organ_findings(
        "bone", labels=empty.astype(np.uint8), grid=g, tumour=empty, zone=empty,
        tmax=np.full(g.shape, 37.0), tmin=np.full(g.shape, 37.0), modality="mwa",
        trajectories=[], at_risk=risk,
    )  # fmt: skip
    assert any("thermal protection at the spinal cord" in s for s in suggestions) == warned
    assert rec["temperature_limits"]["spinal cord"]["max_limit_c"] == 45.0
