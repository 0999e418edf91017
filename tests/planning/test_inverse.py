"""The inverse planner end to end: several paths, verified coverage, the correction loop.

References are independent recounts: coverage and harm recounted from the zone and the
label map with this file's own masks, path clearances by brute-force distances to the
forbidden voxels. The optimiser itself is checked against brute force in test_setcover.py,
robust coverage against closed forms in test_robust.py, the perivascular report against
Archimedes' cap area in test_perivascular.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ioplan.anatomy import VESSEL_LABELS, Label, local_radius_mm
from ioplan.planning import PlanConfig, TrajectoryConfig, plan_ablation, tumour_mask

PROTECTED_LABELS = [
    Label.BOWEL_WALL, Label.BOWEL_CONTENT, Label.STOMACH, Label.GALLBLADDER, Label.LUNG,
    Label.HEART, Label.KIDNEY,
]  # fmt: skip


def _recount_target(case, tumour, margin_mm):
    """Tumour + margin in parenchyma without the lumen of vessels >= 3 mm (own recount)."""
    g = case.labels.grid
    lab = np.asarray(case.labels.array)
    dist = ndimage.distance_transform_edt(~tumour, sampling=g.spacing_mm)
    lumen = np.zeros(lab.shape, bool)
    for v in VESSEL_LABELS:
        m = lab == int(v)
        if m.any():
            lumen |= m & (2 * local_radius_mm(m, g.spacing_mm) >= 3.0)
    tissue = np.isin(lab, [int(Label.LIVER), int(Label.TUMOR), *map(int, VESSEL_LABELS)])
    return tumour | ((dist <= margin_mm) & tissue & ~lumen)


DEMO_SPACING_MM = 2.0


@pytest.fixture(scope="module")
def demo_plan():
    """The demo case planned as ``ioplan demo`` plans it (2 mm; about 20 s). Until session
    42 at 3 mm (8 s): since the liver's perfusion is the physiological flow, the zones are
    smaller and six antennas at 3 mm reach 99.8 % of the tumour and 98.0 % of its margin,
    short of the goal, where the demo's 2 mm plan meets it (99.1 %)."""
    from ioplan.planning import demo_case

    case, info = demo_case(spacing_mm=DEMO_SPACING_MM)
    # the time budget is wall-clock: under the suite's parallel load it stopped the search
    # after its first verification (session 57's fits: 98.9 % of the margin, then 99.0 %
    # in round 2 on the idle machine), so the test gives the search the rounds it needs
    config = PlanConfig(modality="mwa", spacing_mm=DEMO_SPACING_MM, time_budget_s=600.0)
    return case, info, plan_ablation(case, config)


def test_demo_mw_plan_covers_tumour_and_margin_without_harm(demo_plan):
    """Issue 17's demo goal: 100 % of the tumour's voxels, >= 99 % of its 5 mm margin in
    parenchyma, no lethal zone in bowel, stomach, gallbladder, lung, heart or kidney."""
    case, _, plan = demo_plan
    z = np.asarray(plan.zone.array) > 0
    tumour, _ = tumour_mask(case)
    assert plan.goal_met
    assert np.all(z[tumour])  # every tumour voxel, recounted
    target = _recount_target(case, tumour, plan.margin_mm)
    assert 100.0 * (z & target).sum() / target.sum() >= 99.0
    lab = np.asarray(case.labels.array)
    assert not np.any(z & np.isin(lab, [int(x) for x in PROTECTED_LABELS]))
    # the margin coverage reported is this recount (the same definition, own code)
    assert plan.margin_coverage_percent == pytest.approx(
        100.0 * (z & target).sum() / target.sum(), abs=0.05
    )


def test_demo_plan_uses_independent_non_parallel_paths_that_keep_the_safety_distance(demo_plan):
    """Parallel needles around one path break the safety distance on the demo (the old
    planner gave up there); the inverse planner puts each applicator on its own path."""
    case, _, plan = demo_plan
    d = plan.to_dict()
    apps = d["applicators"]
    assert len(apps) >= 2
    assert len({a["trajectory_id"] for a in apps}) == len(apps)  # each on its own path
    dirs = np.array([a["direction"] for a in apps])
    cosines = dirs @ dirs.T
    assert np.min(cosines[np.triu_indices(len(apps), 1)]) < np.cos(np.radians(5))  # not parallel
    # independent clearance: brute-force distance from points along each shaft to the
    # forbidden voxels (bone, lung, bowel, gallbladder, large vessels, ...), on a sample
    safety = TrajectoryConfig().safety_mm
    g = case.labels.grid
    lab = np.asarray(case.labels.array)
    kinds = (Label.RIB, Label.VERTEBRA, Label.LUNG, Label.BOWEL_WALL, Label.STOMACH,
             Label.GALLBLADDER, Label.HEART, Label.KIDNEY)  # fmt: skip
    forbidden = np.isin(lab, [int(k) for k in kinds])
    pts_forbidden = g.index_to_lps(np.argwhere(forbidden))
    for a in apps:
        e, t = np.asarray(a["entry_mm"]), np.asarray(a["tip_mm"])
        s = np.linspace(0.0, 1.0, 80)[:, None]
        shaft = e + s * (t - e)
        near = pts_forbidden[np.linalg.norm(pts_forbidden - t, axis=1) < 400.0]
        dmin = min(float(np.min(np.linalg.norm(near - p, axis=1))) for p in shaft)
        # EDT on voxel centres vs. points on the shaft: allow one voxel diagonal
        assert dmin >= safety - DEMO_SPACING_MM * np.sqrt(3)
        assert a["covers"]["why"] and 0 < a["covers"]["target_percent"] <= 100


def test_demo_plan_records_candidates_runs_perivascular_and_robustness(demo_plan):
    _, _, plan = demo_plan
    d = plan.to_dict()
    assert d["candidates_considered"] == plan.candidates_considered > 10
    runs = d["verification_runs"]
    assert runs and all(r["runtime_s"] >= 0 for r in runs)
    chosen = [r for r in runs if r.get("chosen")]
    assert len(chosen) == 1 and chosen[0]["goal_met"]
    # the figures in plan.json are the chosen verified run's, not a prediction
    assert d["margin_coverage_percent"] == pytest.approx(chosen[0]["margin_coverage_percent"],
                                                         abs=0.01)  # fmt: skip
    # the demo tumour lies next to a 5-6 mm hepatic vein branch (gap 2 mm by construction)
    peri = d["perivascular"]
    assert peri["perivascular"] and peri["surface_area_mm2"] > 0
    assert peri["minimal_distance_mm"] <= 2.0 + DEMO_SPACING_MM  # the 2 mm gap, within a voxel
    assert any(v["vessel"] == "hepatic_vein" for v in peri["vessels"])
    assert 0.0 <= d["robust_coverage"] <= 1.0
    lo, hi = d["robustness"]["ci95"]
    assert lo <= d["robust_coverage"] <= hi
    assert d["robustness"]["placement_error_mm"] == 2.0
    assert d["robustness"]["angle_error_deg"] == 3.0
    # the old contract keys are still there
    for key in ("applicators", "coverage_percent", "margin_coverage_percent", "covered",
                "simulation", "surrogate", "rejected_trajectories", "goal_met"):  # fmt: skip
        assert key in d


def _misplaced_search(**search_kw):
    """The search from candidates whose real tips sit 16 mm deeper than predicted."""
    import sys
    from dataclasses import replace
    from pathlib import Path

    from ioplan.planning._candidates import make_candidates, target_points
    from ioplan.planning._inverse import search
    from ioplan.planning._metrics import tumour_mask as tmask
    from ioplan.planning._plan import _candidate_rows
    from ioplan.planning._robust import PlacementError
    from ioplan.planning._trajectories import forbidden_groups

    sys.path.insert(0, str(Path(__file__).parent))
    from test_planning import _toy_case

    case = _toy_case(spacing=4.0, rib=True, tumour_radius_mm=8.0)
    cfg = PlanConfig(spacing_mm=4.0)
    app = cfg.applicator()
    tumour, _ = tmask(case)
    tp = target_points(case, tumour, 5.0, 4.0)
    rows = _candidate_rows(app, 4.0, 2)
    dmaps = forbidden_groups(case, cfg.trajectories)
    cs, _ = make_candidates(case, app, tp, rows, k_max=2, protect_mm=3.0,
                            trajectories=cfg.trajectories, distance_maps=dmaps)  # fmt: skip
    # misplace: every tip 16 mm further along its path than the prediction assumes (more
    # than the largest zone's reach past the 13 mm target radius on the far side)
    shift = np.array([16.0 * cs.direction(c) for c in range(cs.n)])
    bad = replace(cs, tip_mm=cs.tip_mm + shift)

    def more(aims):
        return make_candidates(case, app, tp, rows, k_max=2, protect_mm=3.0,
                               trajectories=cfg.trajectories, distance_maps=dmaps,
                               aims=aims)[0]  # fmt: skip

    res = search(case, app, bad, tp, delivery="sequential", max_selected=2, spacing_mm=4.0,
                 margin_mm=5.0, protect_mm=3.0, error=PlacementError(samples=20),
                 say=lambda m: None, progress=None, more=more, **search_kw)  # fmt: skip
    return res, tumour, tp


def test_the_loop_repairs_a_deliberately_misplaced_start():
    """Candidates whose real tips sit 16 mm deeper than the prediction assumes: the first
    verified zone misses the target's near side; the loop raises the required depth where
    it missed, adds candidates aimed at the missed points, and ends with a verified set
    that meets the goal. Every figure judged comes from a simulation."""
    res, tumour, tp = _misplaced_search(time_budget_s=600.0)
    runs = res.runs
    assert not runs[0]["goal_met"]  # the misplaced start misses
    assert len(runs) >= 2 and res.best.ok  # and the loop repairs it
    z = res.best.zone
    assert np.all(z[tumour])
    assert 100.0 * (z & tp.target).sum() / tp.target.sum() >= 99.0


def test_a_spent_clock_does_not_cut_the_rounds_a_plan_short_of_its_goal_gets():
    """A budget already spent (0 s, as on a machine loaded enough) stops the search after
    its first verification, which misses; with ``min_rounds`` (the default budget's, 3 in
    planner.toml) the loop still repairs it, as with an ample budget above."""
    from ioplan.planning._candidates import planner_settings

    res, _, _ = _misplaced_search(time_budget_s=0.0)
    assert len(res.runs) == 1 and not res.best.ok and res.optimiser["stopped"]
    assert int(planner_settings()["verification"]["min_rounds"]) >= 2
    res, _, _ = _misplaced_search(time_budget_s=0.0, min_rounds=3)
    assert not res.runs[0]["goal_met"]
    assert 2 <= len(res.runs) and res.best.ok


def test_array_probes_on_paths_without_a_conflict_keep_the_shaft_separation():
    """Cryo candidates are parallel arrays (15 mm apart around their path). Any two
    candidates whose shaft groups ``shaft_conflicts`` lets run together keep the minimum
    separation between every probe's shaft, recounted by ``segment_distance_mm`` over a
    random sample of candidate pairs; two groups on one path always conflict. Before the
    fix only the paths' centre lines were compared, and a 4 mm cryo plan put two arrays'
    probes 4.6 mm apart."""
    import sys
    from pathlib import Path

    from ioplan.planning._candidates import (
        array_tips,
        make_candidates,
        segment_distance_mm,
        shaft_conflicts,
        shaft_groups,
        target_points,
    )
    from ioplan.planning._metrics import tumour_mask as tmask
    from ioplan.planning._plan import _candidate_rows
    from ioplan.planning._trajectories import forbidden_groups

    sys.path.insert(0, str(Path(__file__).parent))
    from test_planning import _toy_case

    case = _toy_case(spacing=4.0, rib=False, tumour_radius_mm=12.0)
    cfg = PlanConfig(modality="cryo", spacing_mm=4.0)
    app = cfg.applicator()
    tumour, _ = tmask(case)
    tp = target_points(case, tumour, 5.0, 4.0)
    rows = _candidate_rows(app, 4.0, 4)
    cs, _ = make_candidates(case, app, tp, rows, k_max=5, protect_mm=3.0,
                            trajectories=cfg.trajectories,
                            distance_maps=forbidden_groups(case, cfg.trajectories))  # fmt: skip
    assert any(cs.probes(c) > 1 for c in range(cs.n))  # arrays are among the candidates
    min_mm = 10.0  # planner.toml: min_shaft_separation_mm for cryo
    conflicts = {tuple(p) for p in shaft_conflicts(cs, min_mm).tolist()}
    group = shaft_groups(cs)
    for a in range(0, cs.n, 7):  # groups on one path: always in conflict
        for b in range(a + 1, cs.n, 5):
            if cs.trajectory_id(a) == cs.trajectory_id(b) and group[a] != group[b]:
                assert (min(group[a], group[b]), max(group[a], group[b])) in conflicts

    def shafts(c):
        d = cs.direction(c)
        length = float(np.linalg.norm(cs.tip_mm[c] - np.asarray(cs.trajectory(c).entry_mm)))
        tips = array_tips(cs.tip_mm[c], d, cs.probes(c), float(cs.roll_deg[c]))
        return [(p - d * length, p) for p in tips]

    rng = np.random.default_rng(0)
    checked = 0
    for a, b in rng.integers(0, cs.n, size=(20000, 2)):
        ga, gb = int(group[a]), int(group[b])
        if cs.trajectory_id(a) == cs.trajectory_id(b) or (min(ga, gb), max(ga, gb)) in conflicts:
            continue
        if cs.probes(a) == 1 and cs.probes(b) == 1:
            continue  # single probes: the centre lines, checked as before
        gap = min(segment_distance_mm(*sa, *sb) for sa in shafts(a) for sb in shafts(b))
        # sampled distances are never below the exact ones the conflict search uses
        assert gap >= min_mm - 1e-9, (a, b, gap)
        checked += 1
    assert checked >= 30, checked


def test_exact_segment_distances_match_dense_sampling():
    """The closed form against 801 x 801 samples of each pair (spacing <= 0.1 mm here):
    never above the sampled minimum, and below it by at most the sampling's own error."""
    from ioplan.planning._candidates import segment_distances_mm

    rng = np.random.default_rng(3)
    t = np.linspace(0.0, 1.0, 801)[:, None]
    for _ in range(40):
        p0, p1 = rng.normal(size=3) * 20, rng.normal(size=3) * 20
        q0, q1 = rng.normal(size=(3, 3)) * 20, rng.normal(size=(3, 3)) * 20
        q1[0] = q0[0] + 0.5 * (p1 - p0)  # a parallel pair
        exact = segment_distances_mm(p0, p1, q0, q1)
        for i in range(3):
            a = p0 + t * (p1 - p0)
            b = q0[i] + t * (q1[i] - q0[i])
            dense = float(np.min(np.linalg.norm(a[:, None] - b[None], axis=-1)))
            step = max(np.linalg.norm(p1 - p0), np.linalg.norm(q1[i] - q0[i])) / 800
            assert exact[i] <= dense + 1e-9
            assert exact[i] >= dense - step  # half a step on each segment
