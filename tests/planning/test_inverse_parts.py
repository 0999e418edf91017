"""Small pieces of the search loop against independent references: the pruning of
redundant candidates (checked by solving with and without it), the greedy fallback
(checked by recount), the heat-sink prior and the re-aiming toward missed points
(checked by geometry)."""

from __future__ import annotations

import numpy as np
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
