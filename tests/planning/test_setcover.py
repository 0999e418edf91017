"""solve_cover against an exhaustive enumerator, hand-built cases and a timed large case."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
import scipy.sparse as sp

from ioplan.errors import InputError
from ioplan.planning._setcover import CoverProblem, CoverSolution, solve_cover

# --------------------------------------------------------------------------------------
# Independent reference: enumerate every admissible subset, rank them lexicographically.
# --------------------------------------------------------------------------------------


def _admissible(sel, p: CoverProblem, forbid) -> bool:
    groups = [int(p.group[c]) for c in sel]
    if len(sel) > p.max_selected or len(set(groups)) < len(groups):
        return False
    bad = {frozenset((int(a), int(b))) for a, b in np.asarray(p.conflicts).reshape(-1, 2)}
    if any(frozenset(pair) in bad for pair in combinations(set(groups), 2)):
        return False
    if p.same_setting and len({int(p.setting[c]) for c in sel}) > 1:
        return False
    return not any(set(f) <= set(sel) for f in forbid)


def _key(sel, p: CoverProblem, dense: np.ndarray):
    """(feasible_goal, ranking tuple): smaller ranking is better."""
    must = np.asarray(p.must, bool)
    weight = np.ones(len(must)) if p.point_weight is None else np.asarray(p.point_weight)
    cov = dense[:, list(sel)].any(axis=1) if sel else np.zeros(len(must), bool)
    n_other = int((~must).sum())
    required = math.ceil(round(p.min_other_fraction * n_other, 9))
    feasible = bool(cov[must].all() and cov[~must].sum() >= required)
    cost = float(np.asarray(p.cost)[list(sel)].sum())
    if feasible:
        return feasible, (0, len(sel), cost)
    # integer weights in the tests: these sums are exact
    return feasible, (1, -weight[cov & must].sum(), -weight[cov & ~must].sum(), len(sel), cost)


def _brute(p: CoverProblem, forbid=()):
    dense = np.asarray(sp.csr_array(p.covers).toarray(), bool)
    best = None
    for k in range(p.max_selected + 1):
        for sel in combinations(range(dense.shape[1]), k):
            if _admissible(sel, p, forbid):
                key = _key(sel, p, dense)
                if best is None or key[1] < best[0][1]:
                    best = (key, sel)
    return best


def _same_rank(a, b) -> bool:
    return a[0] == b[0] and a[1][:-1] == b[1][:-1] and abs(a[1][-1] - b[1][-1]) <= 1e-6


def _random_problem(seed: int) -> CoverProblem:
    rng = np.random.default_rng(seed)
    n_c = int(rng.integers(6, 11))
    n_p = int(rng.integers(20, 41))
    dense = rng.random((n_p, n_c)) < rng.uniform(0.12, 0.4)
    if seed % 5 == 0:
        dense[:, rng.integers(n_c)] = False  # a candidate that covers nothing
    must = np.zeros(n_p, bool)
    must[: int(rng.integers(0, n_p // 2))] = True
    if seed % 7 == 0:
        dense[0] = False  # a point nobody covers (a must point when any exist)
    n_groups = int(rng.integers(n_c // 2, n_c + 1))
    group = rng.integers(0, n_groups, n_c)
    pairs = [(a, b) for a, b in combinations(range(n_groups), 2)]
    # seeds 20-39: dense conflicts (most pairs), as converging cryo arrays give, where the
    # model holds them as cliques
    k = int(rng.integers(0, 4)) if seed < 20 else int(rng.integers(len(pairs) // 2, len(pairs) + 1))
    picks = rng.choice(len(pairs), size=min(len(pairs), k), replace=False)
    conflicts = np.array([pairs[i] for i in picks], dtype=np.int64).reshape(-1, 2)
    same = bool(rng.random() < 0.3)
    return CoverProblem(
        covers=sp.csr_array(dense.astype(np.int8)),
        must=must,
        min_other_fraction=float(rng.choice([0.0, 0.5, 0.8, 0.9, 1.0])),
        cost=rng.uniform(0.1, 10.0, n_c),
        group=group,
        conflicts=conflicts,
        setting=rng.integers(0, 3, n_c) if same or rng.random() < 0.5 else None,
        same_setting=same,
        max_selected=int(rng.integers(1, 5)),
        point_weight=rng.integers(1, 6, n_p).astype(float) if rng.random() < 0.4 else None,
    )


def _check_reported(sol: CoverSolution, p: CoverProblem) -> None:
    """The reported numbers are those of the selection itself."""
    dense = np.asarray(sp.csr_array(p.covers).toarray(), bool)
    must = np.asarray(p.must, bool)
    sel = list(sol.selected)
    cov = dense[:, sel].any(axis=1) if sel else np.zeros(len(must), bool)
    assert sol.count == len(sel)
    assert sol.cost == pytest.approx(float(np.asarray(p.cost)[sel].sum()), abs=1e-9)
    assert sol.must_covered_fraction == (cov[must].mean() if must.any() else 1.0)
    assert sol.other_covered_fraction == (cov[~must].mean() if (~must).any() else 1.0)
    assert sol.feasible_goal == _key(tuple(sel), p, dense)[0]


@pytest.mark.parametrize("seed", range(40))
def test_matches_brute_force(seed):
    p = _random_problem(seed)
    forbid = []
    if seed % 3 == 0:  # exclude the optimum (and its supersets): the next best is asked for
        first = _brute(p)[1]
        if first:
            forbid.append(first)
    (want_key, _), sol = _brute(p, forbid), solve_cover(p, forbid=forbid)
    dense = np.asarray(sp.csr_array(p.covers).toarray(), bool)
    assert sol.optimal
    assert _admissible(sol.selected, p, forbid)
    got_key = _key(sol.selected, p, dense)
    assert _same_rank(got_key, want_key), (got_key, want_key)
    _check_reported(sol, p)


@pytest.mark.parametrize("seed", range(0, 40, 3))
def test_compression_changes_nothing(seed):
    p = _random_problem(seed)
    # many duplicate rows: every point repeated 1-4 times
    reps = np.random.default_rng(seed).integers(1, 5, p.covers.shape[0])
    rows = np.repeat(np.arange(p.covers.shape[0]), reps)
    weight = None if p.point_weight is None else np.asarray(p.point_weight)[rows]
    dup = CoverProblem(
        covers=sp.csr_array(p.covers)[rows],
        must=np.asarray(p.must)[rows],
        min_other_fraction=p.min_other_fraction,
        cost=p.cost,
        group=p.group,
        conflicts=p.conflicts,
        setting=p.setting,
        same_setting=p.same_setting,
        max_selected=p.max_selected,
        point_weight=weight,
    )
    a = solve_cover(dup, compress=True)
    b = solve_cover(dup, compress=False)
    fields = ("feasible_goal", "must_covered_fraction", "other_covered_fraction", "count")
    assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
    assert a.cost == pytest.approx(b.cost, abs=1e-6)
    want_key = _brute(dup)[0]
    dense = np.asarray(dup.covers.toarray(), bool)
    assert _same_rank(_key(a.selected, dup, dense), want_key)


# --------------------------------------------------------------------------------------
# Hand-built cases
# --------------------------------------------------------------------------------------


def _problem(columns, n_points, must, cost, group=None, **kw) -> CoverProblem:
    """Build a problem from each candidate's list of covered points."""
    dense = np.zeros((n_points, len(columns)), bool)
    for c, pts in enumerate(columns):
        dense[list(pts), c] = True
    m = np.zeros(n_points, bool)
    m[list(must)] = True
    return CoverProblem(
        covers=sp.csr_array(dense),
        must=m,
        cost=np.asarray(cost, float),
        group=np.arange(len(columns)) if group is None else np.asarray(group),
        **kw,
    )


# 10 points, all must: halves A = 0-4, B = 5-9
_HALVES = [range(0, 5), range(5, 10), range(0, 4), range(3, 7), range(6, 10), range(0, 10, 2)]


@pytest.mark.parametrize("seed", range(12))
def test_conflict_cliques_hold_every_pair_and_only_pairs(seed):
    """Each clique's groups conflict pairwise (so one row sum <= 1 forbids nothing the
    pairs allow), and every conflicting pair shares a clique (so nothing they forbid is
    allowed); a complete graph is one clique. Recounted from the pair list."""
    from ioplan.planning._setcover import conflict_cliques

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 30))
    allp = [(a, b) for a, b in combinations(range(n), 2)]
    k = int(rng.integers(1, len(allp) + 1))
    pairs = np.array([allp[i] for i in rng.choice(len(allp), k, replace=False)])
    held = {frozenset(map(int, pr)) for pr in pairs}
    cliques = conflict_cliques(pairs, n)
    covered = set()
    for c in cliques:
        inside = {frozenset((int(a), int(b))) for a, b in combinations(c, 2)}
        assert len(c) >= 2 and inside <= held
        covered |= inside
    assert covered == held
    full = np.array(allp)
    assert len(conflict_cliques(full, n)) == 1


def test_two_candidates_beat_three_even_when_dearer():
    # 0+1 covers everything with 2; 2+3+4 also does with 3 but cheaper: count comes first
    p = _problem(_HALVES[:5], 10, range(10), [5.0, 5.0, 0.1, 0.1, 0.1], min_other_fraction=1.0)
    sol = solve_cover(p)
    assert sol.selected == (0, 1)
    assert sol.feasible_goal and sol.count == 2 and sol.cost == pytest.approx(10.0)
    assert sol.stages == ("min count", "min cost") and sol.optimal


def test_cheapest_of_equal_counts():
    cols = [range(0, 5), range(5, 10), range(0, 6), range(4, 10)]
    sol = solve_cover(_problem(cols, 10, range(10), [1.0, 1.0, 0.8, 0.9]))
    assert sol.selected == (2, 3) and sol.cost == pytest.approx(1.7)


def test_group_forces_another_pair():
    cols = [range(0, 5), range(5, 10), range(0, 6), range(4, 10)]
    # 2 and 3 on one trajectory: at most one of them
    sol = solve_cover(_problem(cols, 10, range(10), [1.0, 1.0, 0.8, 0.9], group=[0, 1, 2, 2]))
    assert sol.selected in {(0, 3), (1, 2)}
    assert sol.selected == (1, 2) and sol.cost == pytest.approx(1.8)


def test_conflict_forces_a_third_option():
    cols = [range(0, 5), range(5, 10), range(0, 6), range(4, 10)]
    conflicts = np.array([[2, 3], [1, 2]])  # groups 2-3 and 1-2 too close
    sol = solve_cover(_problem(cols, 10, range(10), [1.0, 1.0, 0.8, 0.9], conflicts=conflicts))
    assert sol.selected == (0, 3) and sol.cost == pytest.approx(1.9)


def test_conflict_that_forces_three():
    cols = [range(0, 5), range(5, 10), range(0, 3), range(3, 7), range(7, 10)]
    p = _problem(cols, 10, range(10), [1, 1, 1, 1, 1], conflicts=np.array([[0, 1]]))
    sol = solve_cover(p)
    assert sol.count == 3 and sol.feasible_goal
    assert sol.selected in {(0, 3, 4), (1, 2, 3), (2, 3, 4)}


def test_same_setting_forbids_mixing():
    cols = [range(0, 5), range(5, 10), range(0, 5), range(5, 10)]
    kw = {"setting": np.array([0, 1, 1, 0]), "min_other_fraction": 1.0}
    cost = [0.1, 0.1, 1.0, 2.0]
    mixed = solve_cover(_problem(cols, 10, range(10), cost, **kw))
    assert mixed.selected == (0, 1)
    one = solve_cover(_problem(cols, 10, range(10), cost, same_setting=True, **kw))
    assert one.selected == (1, 2) and one.cost == pytest.approx(1.1)  # setting 1; 0+3 is 2.1


def test_forbid_gives_second_best():
    cols = [range(0, 5), range(5, 10), range(0, 6), range(4, 10)]
    p = _problem(cols, 10, range(10), [1.0, 1.0, 0.8, 0.9])
    best = solve_cover(p)
    second = solve_cover(p, forbid=[best.selected])
    third = solve_cover(p, forbid=[best.selected, second.selected])
    assert best.selected == (2, 3)
    assert second.selected == (1, 2) and second.cost == pytest.approx(1.8)
    assert third.selected == (0, 3) and third.cost == pytest.approx(1.9)
    # forbidding a single candidate excludes every selection that contains it
    assert 2 not in solve_cover(p, forbid=[[2]]).selected


def test_uncoverable_must_point_gives_max_coverage():
    # point 10 is a must point no candidate covers; 11-13 are other points
    cols = [[0, 1, 2, 3, 4, 11], [5, 6, 7, 8, 9, 12], [0, 1, 2, 3, 4, 5, 6], [7, 8, 9]]
    p = _problem(cols, 14, range(11), [1.0, 1.0, 0.1, 0.1], max_selected=2)
    sol = solve_cover(p)
    assert not sol.feasible_goal
    assert sol.stages == ("max coverage", "min count", "min cost")
    assert "no candidate" in sol.status
    # 0+1 and 2+3 both cover 10 of 11 must points; 0+1 also covers 2 of 3 others, which
    # outranks the lower cost of 2+3
    assert sol.selected == (0, 1)
    assert sol.must_covered_fraction == pytest.approx(10 / 11)
    assert sol.other_covered_fraction == pytest.approx(2 / 3)


def test_infeasible_goal_from_the_solver_then_max_coverage():
    # every point coverable, but not with max_selected = 1
    cols = [range(0, 6), range(4, 10), range(0, 3)]
    p = _problem(cols, 10, range(10), [1.0, 2.0, 0.1], max_selected=1)
    sol = solve_cover(p)
    assert not sol.feasible_goal
    assert sol.stages == ("min count", "max coverage", "min count", "min cost")
    assert sol.selected in {(0,), (1,)} and sol.selected == (0,)  # 6 each; 0 cheaper


def test_min_other_fraction_at_the_boundary():
    # 1 must point (0) and 100 other points (1..100); candidate 0 covers all but 2 others,
    # candidate 1 all but 1; candidate 2 the two missing ones
    n = 101
    c0 = [v for v in range(n) if v not in (99, 100)]
    c1 = [v for v in range(n) if v != 100]
    cols = [c0, c1, [99, 100]]
    p = _problem(cols, n, [0], [1.0, 5.0, 0.5], min_other_fraction=0.99)
    sol = solve_cover(p)
    assert sol.selected == (1,) and sol.other_covered_fraction == pytest.approx(0.99)
    p = _problem(cols, n, [0], [1.0, 5.0, 0.5], min_other_fraction=0.995)
    sol = solve_cover(p)  # 99.5 rounds up to 100: one candidate is no longer enough
    assert sol.selected == (0, 2) and sol.other_covered_fraction == 1.0


def test_point_weights_steer_max_coverage():
    # must point 0 uncoverable; otherwise one candidate covering 1-3 or one covering 4
    cols = [[1, 2, 3], [4]]
    base = _problem(cols, 5, [0], [1.0, 1.0], max_selected=1)
    assert solve_cover(base).selected == (0,)
    w = np.array([1.0, 1.0, 1.0, 1.0, 10.0])
    heavy = _problem(cols, 5, [0], [1.0, 1.0], max_selected=1, point_weight=w)
    assert solve_cover(heavy).selected == (1,)


def test_useless_and_no_points_edge_cases():
    # only must points and no other: other fraction reported as 1
    sol = solve_cover(_problem([range(3), []], 3, range(3), [1.0, 0.0]))
    assert sol.selected == (0,) and sol.other_covered_fraction == 1.0
    # no candidates
    p = CoverProblem(
        covers=sp.csr_array((4, 0)), must=np.array([1, 0, 0, 0], bool), cost=[], group=[]
    )
    sol = solve_cover(p)
    assert sol.selected == () and not sol.feasible_goal and sol.count == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"covers": sp.csr_array((0, 2))}, "no points"),
        ({"must": np.ones(3, bool)}, "must must have shape"),
        ({"cost": np.array([1.0, -1.0])}, "cost must be >= 0"),
        ({"cost": np.array([1.0, np.nan])}, "cost must be finite"),
        ({"group": np.array([0.5, 1.0])}, "group must hold integers"),
        ({"conflicts": np.array([1, 2, 3])}, "conflicts must have shape"),
        ({"conflicts": np.array([[1, 1]])}, "two different groups"),
        ({"same_setting": True}, "same_setting needs setting"),
        ({"max_selected": 0}, "max_selected"),
        ({"min_other_fraction": 1.5}, "min_other_fraction"),
        ({"point_weight": np.zeros(4)}, "point_weight must be > 0"),
        ({"covers": sp.csr_array(np.full((4, 2), 2))}, "bool or 0/1"),
    ],
)
def test_input_errors(change, message):
    kw = {
        "covers": sp.csr_array(np.eye(4, 2, dtype=bool)),
        "must": np.zeros(4, bool),
        "cost": np.ones(2),
        "group": np.arange(2),
    }
    kw.update(change)
    with pytest.raises(InputError, match=message) as err:
        solve_cover(CoverProblem(**kw))
    assert "\n" not in str(err.value)


def test_forbid_and_time_limit_errors():
    p = _problem([[0], [1]], 2, [0], [1.0, 1.0])
    with pytest.raises(InputError, match="forbid"):
        solve_cover(p, forbid=[[5]])
    with pytest.raises(InputError, match="forbid"):
        solve_cover(p, forbid=[[]])
    with pytest.raises(InputError, match="time_limit_s"):
        solve_cover(p, time_limit_s=0)


# --------------------------------------------------------------------------------------
# A large case: ball zones around random centres covering a ball target
# --------------------------------------------------------------------------------------


def _sphere_problem(seed: int = 0, h: float = 1.35, n_traj: int = 200) -> CoverProblem:
    rng = np.random.default_rng(seed)
    tumour_r, margin = 12.0, 5.0  # mm
    target_r = tumour_r + margin
    # h = 1.35 mm: ~8000 points in the 17 mm target ball
    ax = np.arange(-target_r, target_r + h / 2, h)
    pts = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    r = np.linalg.norm(pts, axis=1)
    pts, r = pts[r <= target_r], r[r <= target_r]
    # n_traj trajectories x 10 depths (200: 2000 candidates); zones 11-19 mm radius
    n_depth = 10
    entry = rng.normal(size=(n_traj, 3))
    entry /= np.linalg.norm(entry, axis=1, keepdims=True)
    offset = rng.uniform(-8, 8, (n_traj, 3))
    depth = np.linspace(-10, 10, n_depth)
    centres = (offset[:, None, :] + depth[None, :, None] * entry[:, None, :]).reshape(-1, 3)
    radius = rng.uniform(11.0, 19.0, n_traj * n_depth)
    d2 = ((pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    covers = sp.csr_array(d2 <= radius[None, :] ** 2)
    # cost: zone volume outside the target (mL, crude) plus 0.01 per candidate
    outside = np.clip(np.linalg.norm(centres, axis=1) + radius - target_r, 0, None)
    cost = 4.0 / 3.0 * np.pi * (radius**3 - np.clip(radius - outside, 0, None) ** 3) / 1000
    # trajectories whose entries are within 15 degrees conflict
    cosang = entry @ entry.T
    i, j = np.nonzero(np.triu(cosang > np.cos(np.radians(15)), 1))
    return CoverProblem(
        covers=covers,
        must=r <= tumour_r,
        cost=cost + 0.01,
        group=np.repeat(np.arange(n_traj), n_depth),
        conflicts=np.stack([i, j], 1),
        max_selected=3,
    )


def test_large_sphere_problem_covers():
    # 1.7 mm points (~4000) and 1000 candidates: thousands of rows, where the solver works
    # by row generation (a subset of rows per MILP). Its speed is measured by bench/plan.py
    # (the whole planner on the demo and a 45 mm tumour), not asserted here: the 8000 x 2000
    # version took 14-26 s of the suite, and a CPU-time bound fails on a slower machine.
    p = _sphere_problem(h=1.7, n_traj=100)
    n_points, n_cand = p.covers.shape
    assert n_cand == 1000 and 3000 <= n_points <= 5000
    sol = solve_cover(p)
    assert sol.optimal and sol.feasible_goal
    cols = list(sol.selected)
    hit = np.asarray(p.covers[:, cols].sum(axis=1)).ravel() > 0
    assert hit[p.must].all()
    others = ~np.asarray(p.must)
    assert hit[others].sum() >= math.ceil(0.99 * others.sum())
    assert len(set(np.asarray(p.group)[cols])) == len(cols)


def test_a_stage_with_nothing_to_choose_is_no_solution():
    """`ioplan plan --placement-error-mm 20` (inside its documented 0-20 mm) ended in an
    internal error: a stage with no variable reached HiGHS ("c must be ... at least one
    element"). Such a stage has no solution, and the planner goes on to its fallbacks."""
    from ioplan.planning._setcover import _Model, _run

    empty = _Model(n_var=0, x=slice(0, 0), y_must=slice(0, 0), y_other=slice(0, 0),
                   integrality=np.zeros(0), bounds=None, constraint=None)  # fmt: skip
    stage = _run(empty, np.zeros(0), 1.0)
    assert stage.x is None and stage.infeasible and not stage.optimal
