"""Small pieces of the search loop against independent references: the pruning of
redundant candidates (checked by solving with and without it), the greedy fallback
(checked by recount), the heat-sink prior and the re-aiming toward missed points
(checked by geometry)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from ioplan.planning import CoverProblem, solve_cover
from ioplan.planning._inverse import _undominated, greedy_cover


def _random_problem(seed: int, n_place: int = 6, n_set: int = 4, n_pts: int = 60):
    """Candidates at placements with nested zones: bigger settings cover supersets, and
    several bigger ones cover exactly the same points (the case pruning removes)."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, (n_pts, 3))
    cols, place, cost = [], [], []
    for p in range(n_place):
        c = rng.uniform(-0.6, 0.6, 3)
        r = np.linalg.norm(pts - c, axis=1)
        for k in range(n_set):
            radius = min(0.5 + 0.4 * k, 1.2)  # the last settings saturate: equal columns
            cols.append(r <= radius)
            place.append(p)
            cost.append(1.0 + k + 0.1 * p)
    a = sparse.csc_matrix(np.array(cols).T)
    return a, np.array(place), np.array(cost), pts


def test_pruning_equal_columns_keeps_the_optimum():
    for seed in range(12):
        a, place, cost, _ = _random_problem(seed)
        n = a.shape[1]
        ones = np.ones(n)
        zeros = np.zeros(n, int)
        keep = _undominated(a, np.arange(n), place, cost, ones, zeros)
        assert len(keep) < n  # equal columns existed and were pruned
        # every pruned column has a kept twin at its placement, as cheap or cheaper
        for c in set(range(n)) - set(keep.tolist()):
            twins = [k for k in keep if place[k] == place[c]
                     and (a[:, [k]] != a[:, [c]]).nnz == 0]  # fmt: skip
            assert twins and min(cost[t] for t in twins) <= cost[c]
        must = np.zeros(a.shape[0], bool)
        must[: a.shape[0] // 3] = True
        full = solve_cover(CoverProblem(covers=a, must=must, cost=cost, group=place,
                                        min_other_fraction=0.9, max_selected=3))  # fmt: skip
        pruned = solve_cover(CoverProblem(covers=a[:, keep], must=must, cost=cost[keep],
                                          group=place[keep], min_other_fraction=0.9,
                                          max_selected=3))  # fmt: skip
        assert (full.feasible_goal, full.count) == (pruned.feasible_goal, pruned.count)
        assert abs(full.cost - pruned.cost) < 1e-9


def test_greedy_fallback_covers_an_easy_problem_and_keeps_one_per_group():
    # three disjoint blocks of points, one candidate per block plus a useless one
    a = sparse.csc_matrix(np.array([
        [1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0],
    ], bool))  # fmt: skip
    must = np.array([True, True, False, False, False, False])
    chosen = greedy_cover(a, must, np.array([0, 1, 2, 3]), np.zeros((0, 2), int), 3, [])
    assert set(chosen) == {0, 1, 2}  # recount: every point covered by the chosen columns
    # the same group twice is never taken; a conflict bans the other group
    chosen = greedy_cover(a, must, np.array([0, 0, 1, 2]), np.array([[0, 1]]), 3, [])
    assert 0 in chosen and 1 not in chosen and 2 not in chosen


def test_greedy_fallback_counts_array_probes_and_avoids_verified_sets():
    """Columns that place several probes count as that many against the cap; a set
    already verified is not offered again, another one is (recounted by hand)."""
    # column 0: a 3-probe array covering the tumour points and one margin point;
    # columns 1-3: single probes, one margin point each; column 4: a 2-probe array
    # covering the tumour points only
    a = sparse.csc_matrix(np.array([
        [1, 0, 0, 0, 1], [1, 0, 0, 0, 1], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0],
    ], bool))  # fmt: skip
    must = np.array([True, True, False, False, False])
    groups, none = np.arange(5), np.zeros((0, 2), int)
    size = np.array([3, 1, 1, 1, 2])
    # 4 probes at most: the array (3) and one single probe, not the array and two singles
    chosen = greedy_cover(a, must, groups, none, 4, [], size)
    assert chosen in ((0, 2), (0, 3)) and sum(size[list(chosen)]) <= 4
    # without the sizes it would take 0, 2 and 3 (5 probes)
    assert greedy_cover(a, must, groups, none, 3, []) == (0, 2, 3)
    # the array alone already verified (cap 3): the 2-probe array and a single instead
    assert greedy_cover(a, must, groups, none, 3, [[0]], size) in ((1, 4), (2, 4), (3, 4))
    # one group (one column at most): each column in turn once the others are verified,
    # and nothing once all are
    one = np.zeros(5, int)
    assert greedy_cover(a, must, one, none, 3, [[0], [4]], size) == (1,)
    assert greedy_cover(a, must, one, none, 3, [[0], [4], [1], [2], [3]], size) == ()


def _points(points_mm, vessel_distance_mm):
    from ioplan.planning._candidates import TargetPoints

    n = len(points_mm)
    empty = np.zeros((1, 1, 1), bool)
    return TargetPoints(tumour=empty, target=empty, lumen=empty,
                        points_mm=np.asarray(points_mm, float), must=np.ones(n, bool),
                        vessel_distance_mm=np.asarray(vessel_distance_mm, float),
                        point_volume_ml=0.008)  # fmt: skip


def test_heat_sink_prior_applies_within_its_distance_only():
    from ioplan.planning._candidates import heat_sink_prior, planner_settings

    hs = planner_settings()["heat_sink"]
    d = np.array([0.0, hs["within_mm"] - 0.1, hs["within_mm"] + 0.1, np.inf])
    tp = _points(np.zeros((4, 3)), d)
    assert heat_sink_prior(tp).tolist() == [hs["extra_depth_mm"]] * 2 + [0.0, 0.0]


def test_reaiming_goes_the_given_fraction_toward_the_missed_cluster():
    from ioplan.planning._candidates import toward

    # a target spread around the origin; the missed points form one cluster at x = 10
    rng = np.random.default_rng(0)
    body = rng.normal(0.0, 3.0, (200, 3))
    body -= body.mean(axis=0)
    missed = np.array([[10.0, 0.0, 0.0]]) + rng.normal(0.0, 0.2, (10, 3))
    pts = np.vstack([body, missed])
    tp = _points(pts, np.full(len(pts), np.inf))
    hard = np.r_[np.zeros(200, bool), np.ones(10, bool)]
    aims = toward(tp, hard, fractions=(0.5, 0.8))
    centre, cluster = pts.mean(axis=0), missed.mean(axis=0)
    expected = [centre + f * (cluster - centre) for f in (0.5, 0.8)]
    assert np.allclose(aims, expected, atol=1e-9)  # 10 points: one cluster (k = 1)


def _vessel_case(vessel_offset_xy_mm):
    """A 1 mm block of liver with one 6 mm hepatic vein running along z, offset in (x, y)
    from the block's centre line (None: no vein)."""
    from ioplan.anatomy import Case, Label
    from ioplan.imaging import Grid, Volume

    g = Grid((90, 41, 41), (1.0, 1.0, 1.0), origin_mm=(-20.0, -20.0, -60.0))
    lab = np.full(g.shape, int(Label.LIVER), np.uint8)
    if vessel_offset_xy_mm is not None:
        x = np.arange(41) - 20.0
        vx, vy = vessel_offset_xy_mm
        tube = (x[None, :] - vx) ** 2 + (x[:, None] - vy) ** 2 <= 3.0**2  # (y, x)
        lab[:, tube] = int(Label.HEPATIC_VEIN)
    vol = Volume(lab, g)
    return Case(image=Volume(np.zeros(g.shape, np.float32), g), labels=vol, organ="liver")


def test_array_roll_keeps_the_period_spacing_and_axis():
    """A turned array is the default one turned about the axis: same centre, same sides,
    first probe's offset turned by the roll (recounted by dot products)."""
    from ioplan.physics import Placement, array_placements

    c = Placement((1.0, 2.0, 3.0), (0.3, -0.2, -0.93))
    d = np.asarray(c.direction)
    for n, roll in ((2, 37.0), (3, 50.0), (4, 10.0), (6, 25.0)):
        base = np.array([p.tip_mm for p in array_placements(c, n, 15.0)])
        turned = np.array([p.tip_mm for p in array_placements(c, n, 15.0, roll)])
        assert np.allclose(turned.mean(axis=0), base.mean(axis=0), atol=1e-9)
        side = lambda t: sorted(np.linalg.norm(t[:, None] - t[None], axis=-1).ravel())  # noqa: E731
        assert np.allclose(side(turned), side(base), atol=1e-9)
        k = 1 if n >= 5 else 0  # 5-8: probe 0 is on the axis
        u, v = base[k] - c.tip_mm, turned[k] - c.tip_mm
        assert abs(u @ d) < 1e-9 and abs(v @ d) < 1e-9  # offsets across the axis
        cos = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
        sin = np.cross(u, v) @ d / (np.linalg.norm(u) * np.linalg.norm(v))
        assert np.degrees(np.arctan2(sin, cos)) == pytest.approx(roll, abs=1e-6)


def test_array_is_turned_off_a_vein_that_the_default_pattern_crosses():
    """A 2-probe array (15 mm apart) along -z whose default pattern puts one probe in a
    6 mm vein: the chosen turn keeps both probes >= the 5 mm safety distance from the
    vein's wall, recounted from the geometry (probe line to vein axis, minus 3 mm);
    without a vein the default pattern stays."""
    from ioplan.planning import TrajectoryConfig
    from ioplan.planning._candidates import array_tips, best_roll_deg
    from ioplan.planning._trajectories import Trajectory, forbidden_groups

    cfg = TrajectoryConfig(organ="liver")
    d = np.array([0.0, 0.0, -1.0])
    tip = np.array([0.0, 0.0, -50.0])
    t = Trajectory(entry_mm=(0.0, 0.0, 20.0), target_mm=tuple(tip), length_mm=70.0,
                   accepted=True)  # fmt: skip
    assert np.allclose(t.direction, d)
    default = array_tips(tip, d, 2)
    # the vein on the first probe's default line
    case = _vessel_case((float(default[0][0]), float(default[0][1])))
    dmaps = forbidden_groups(case, cfg)
    assert "large vessel" in dmaps

    def wall_mm(tips):  # independent: distance of each probe line (along z) to the vein
        return min(float(np.hypot(p[0] - default[0][0], p[1] - default[0][1])) - 3.0
                   for p in tips)  # fmt: skip

    assert wall_mm(default) < 0  # the default pattern crosses the vein
    roll = best_roll_deg(case, t, tip, 2, cfg, dmaps)
    assert 0.0 < roll < 180.0
    # 2-probe pattern: half side 7.5 mm; turned by r, the probe nearest the vein lies
    # 2 x 7.5 x sin(r / 2) from it. Best of 15-degree steps: 90 degrees, 10.6 - 3 mm.
    assert wall_mm(array_tips(tip, d, 2, roll)) >= cfg.safety_mm
    assert wall_mm(array_tips(tip, d, 2, roll)) == pytest.approx(15.0 * np.sin(np.pi / 4) - 3.0,
                                                                  abs=1e-6)  # fmt: skip
    plain = _vessel_case(None)
    assert best_roll_deg(plain, t, tip, 2, cfg, forbidden_groups(plain, cfg)) == 0.0


class _TwoPaths:
    """Two single applicators (0, 1) and a 2-probe array (2): what run_keys reads."""

    def probe_tips(self, c):
        tip = np.array([10.0 * c, 0.0, 0.0])
        return [tip] if c < 2 else [tip, tip + np.array([15.0, 0.0, 0.0])]

    def direction(self, c):
        return np.array([0.0, 0.0, -1.0]) if c != 1 else np.array([0.0, 1.0, 0.0])

    def setting_of(self, c):
        return (60.0, 300.0, 30.0, 25.0, 10.0, 2 if c == 2 else 1)


def test_next_verification_costs_only_the_runs_not_yet_simulated():
    """Sequential sets reuse the runs of their applicators: a set sharing one of two with an
    earlier one costs one run (plus the time spent outside simulations); run together, a
    set is one run whatever it shares. Recounted by hand from the cache's wall times."""
    from types import SimpleNamespace

    from ioplan.planning._inverse import next_verification_s, run_keys

    cs = _TwoPaths()
    k0, k1 = run_keys(cs, (0,), "sequential")[0], run_keys(cs, (1,), "sequential")[0]
    assert run_keys(cs, (0, 1), "sequential") == [k0, k1]
    assert len(run_keys(cs, (0, 1), "simultaneous")) == 1
    assert run_keys(cs, (0, 2), "simultaneous") != run_keys(cs, (0, 1), "simultaneous")
    cache = {k0: {"wall_s": 12.0}, "other": {"wall_s": 8.0}}  # mean 10 s a run
    done = [SimpleNamespace(runtime_s=21.0, simulated_s=20.0),
            SimpleNamespace(runtime_s=13.0, simulated_s=10.0)]  # outside: 1 and 3 s  # fmt: skip
    assert next_verification_s(cache, done, cs, (0, 1), "sequential") == pytest.approx(10 + 2)
    assert next_verification_s(cache, done, cs, (0,), "sequential") == pytest.approx(2)
    assert next_verification_s(cache, done, cs, (0, 1), "simultaneous") == pytest.approx(12)
    assert next_verification_s(cache, done) == pytest.approx(12)  # no selection yet: one run
    assert next_verification_s({}, []) == 0.0
