"""Choice of applicator candidates whose ablation zones cover the target: a set-cover MILP.

Each candidate is one needle trajectory, one tip depth and one power/time setting; its
predicted ablation zone covers some of the target points (tumour plus ablative margin).
:func:`solve_cover` chooses the candidates with lexicographic objectives, each stage a
mixed-integer linear programme solved by HiGHS through :func:`scipy.optimize.milp`:

1. Goal: the fewest candidates that cover every tumour ("must") point and at least
   ``ceil(min_other_fraction * n_other)`` of the other (margin) points.
2. When the goal cannot be met: the largest coverage (must points first, then the other
   points, weighted by ``point_weight``), then the fewest candidates with that coverage.
3. With the coverage and the count fixed: the least total cost (e.g. normal liver ablated).

All stages share the side constraints: at most ``max_selected`` candidates, at most one per
trajectory group, no two conflicting groups, optionally one setting for all, and no
selection that contains a forbidden selection.

Before the MILP is built, candidates that cover no point are dropped (a selection without
them covers the same points with fewer candidates, and dropping one never breaks a
constraint), points no candidate covers are counted but not modelled, and points covered by
exactly the same candidates are merged into one row that carries their number and weight.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from ioplan.errors import InputError

__all__ = ["CoverProblem", "CoverSolution", "solve_cover"]

#: Relative tolerance when a stage's achieved coverage becomes a floor of the next stage.
_FIX_REL_TOL = 1e-6

#: Rows (hardest first) in each stage's first model; row generation adds the rest as needed.
_START_ROWS = 64


@dataclass(frozen=True, eq=False)
class CoverProblem:
    """Which candidates cover which target points, and the rules a selection must obey.

    Attributes
    ----------
    covers : scipy.sparse matrix or array, shape (n_points, n_candidates), bool or 0/1
        ``covers[v, c]`` is true when candidate ``c``'s ablation zone covers point ``v``.
    must : np.ndarray of bool, shape (n_points,)
        Points that must all be covered when possible (the tumour).
    min_other_fraction : float
        Share (0-1) of the other points (the margin shell) that the goal asks to cover.
    cost : np.ndarray of float, shape (n_candidates,)
        Secondary cost of each candidate, >= 0 (e.g. normal liver ablated in mL plus a small
        time term); the sum over the chosen candidates is minimised last.
    group : np.ndarray of int, shape (n_candidates,)
        Trajectory id of each candidate; at most one candidate per group is chosen.
    conflicts : np.ndarray of int, shape (k, 2)
        Pairs of group ids that may not both be used (needles too close).
    setting : np.ndarray of int, shape (n_candidates,), or None
        Power/time setting id of each candidate; needed when ``same_setting`` is true.
    same_setting : bool
        All chosen candidates must share one setting id (simultaneous delivery).
    max_selected : int
        Most candidates chosen (>= 1).
    point_weight : np.ndarray of float, shape (n_points,), or None
        Weights (> 0) of the points in the coverage objective of stage 2; None means 1 each.
    """

    covers: object
    must: np.ndarray
    cost: np.ndarray
    group: np.ndarray
    min_other_fraction: float = 0.99
    conflicts: np.ndarray = field(default_factory=lambda: np.empty((0, 2), dtype=np.int64))
    setting: np.ndarray | None = None
    same_setting: bool = False
    max_selected: int = 3
    point_weight: np.ndarray | None = None
    #: applicators each candidate places (a parallel array places several): the count that
    #: is minimised and bounded by max_selected is the sum of these (default 1 each)
    size: np.ndarray | None = None


@dataclass(frozen=True)
class CoverSolution:
    """The chosen candidates and what they achieve.

    Attributes
    ----------
    selected : tuple of int
        Indices of the chosen candidates, sorted.
    feasible_goal : bool
        True when every must point and at least ``min_other_fraction`` of the other points
        are covered.
    must_covered_fraction : float
        Share of the must points covered (1.0 when there are none).
    other_covered_fraction : float
        Share of the other points covered (1.0 when there are none).
    count : int
        Number of chosen candidates.
    cost : float
        Total cost of the chosen candidates (units of ``CoverProblem.cost``).
    optimal : bool
        True when every stage was solved to proven optimality (none hit the time limit).
    stages : tuple of str
        The stages solved, in order, e.g. ``("min count", "min cost")``.
    status : str
        The solver's message for each stage, ``"; "``-separated.
    runtime_s : float
        Wall-clock time of :func:`solve_cover` (s).
    """

    selected: tuple[int, ...]
    feasible_goal: bool
    must_covered_fraction: float
    other_covered_fraction: float
    count: int
    cost: float
    optimal: bool
    stages: tuple[str, ...]
    status: str
    runtime_s: float


@dataclass(frozen=True)
class _Checked:
    """The problem's arrays, validated and converted."""

    covers: sp.csr_array  # bool, (n_points, n_candidates), sorted indices, no explicit zeros
    must: np.ndarray
    weight: np.ndarray
    cost: np.ndarray
    group: np.ndarray
    conflicts: np.ndarray
    setting: np.ndarray | None
    same_setting: bool
    max_selected: int
    required_other: int
    forbid: tuple[np.ndarray, ...]
    size: np.ndarray | None = None


@dataclass(frozen=True)
class _Reduced:
    """The modelled part of the problem: useful columns, coverable and merged rows."""

    cols: np.ndarray  # original indices of the kept candidates
    a_must: sp.csr_array  # (m_must, n_cols) one row per distinct must coverage set
    w_must: np.ndarray  # summed point weights of each must row
    a_other: sp.csr_array  # (m_other, n_cols)
    n_other: np.ndarray  # number of points in each other row
    w_other: np.ndarray  # summed point weights of each other row
    must_uncoverable: bool  # some must point is covered by no candidate
    n_other_coverable: int


@dataclass(frozen=True)
class _Model:
    """One MILP's variables and constraints; the objective is set per stage."""

    n_var: int
    x: slice
    y_must: slice
    y_other: slice
    integrality: np.ndarray
    bounds: Bounds
    constraint: LinearConstraint


@dataclass(frozen=True)
class _Stage:
    """One solved stage: the chosen columns (None when no solution) and the solver's word."""

    x: np.ndarray | None
    optimal: bool
    infeasible: bool
    message: str


def _fail(message: str) -> None:
    raise InputError(message)


def _vector(value: object, name: str, n: int, kind: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != (n,):
        _fail(f"{name} must have shape ({n},), got {arr.shape}")
    if kind == "bool":
        if arr.dtype != bool and not (
            np.issubdtype(arr.dtype, np.number) and np.all((arr == 0) | (arr == 1))
        ):
            _fail(f"{name} must be bool (or 0/1), got dtype {arr.dtype}")
        return arr.astype(bool)
    if kind == "int":
        if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
            _fail(f"{name} must hold integers, got dtype {arr.dtype}")
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
        _fail(f"{name} must hold numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        _fail(f"{name} must be finite")
    return arr


def _sizes(size, n: int) -> np.ndarray:
    """Applicators per candidate (integers >= 1; default 1 each)."""
    if size is None:
        return np.ones(n)
    arr = np.asarray(size, dtype=np.float64).reshape(-1)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)) or np.any(arr < 1):
        _fail(f"size must hold {n} numbers >= 1")
    return arr


def _check(problem: CoverProblem, forbid: Sequence[Sequence[int]]) -> _Checked:
    """Validate the problem and convert its arrays; raise InputError on the first fault."""
    if sp.issparse(problem.covers):
        covers = sp.csr_array(problem.covers)
    else:
        dense = np.asarray(problem.covers)
        if dense.ndim != 2:
            _fail(f"covers must be 2-D (n_points, n_candidates), got shape {dense.shape}")
        covers = sp.csr_array(dense)
    if covers.ndim != 2:
        _fail(f"covers must be 2-D (n_points, n_candidates), got shape {covers.shape}")
    n_points, n_cand = covers.shape
    if n_points == 0:
        _fail("covers has no points (0 rows)")
    if covers.dtype != bool:
        if not np.issubdtype(covers.dtype, np.number):
            _fail(f"covers must be bool or 0/1, got dtype {covers.dtype}")
        if not np.all((covers.data == 0) | (covers.data == 1)):
            _fail("covers must be bool or 0/1, found other values")
    covers = sp.csr_array(covers.astype(bool))
    covers.sum_duplicates()
    covers.eliminate_zeros()
    covers.sort_indices()

    must = _vector(problem.must, "must", n_points, "bool")
    frac = problem.min_other_fraction
    if not isinstance(frac, int | float) or not 0.0 <= float(frac) <= 1.0:
        _fail(f"min_other_fraction must be a number in [0, 1], got {frac!r}")
    cost = _vector(problem.cost, "cost", n_cand, "float")
    if np.any(cost < 0):
        _fail(f"cost must be >= 0, got minimum {cost.min():g}")
    group = _vector(problem.group, "group", n_cand, "int")

    conflicts = np.asarray(problem.conflicts)
    if conflicts.size == 0:
        conflicts = np.empty((0, 2), dtype=np.int64)
    if conflicts.ndim != 2 or conflicts.shape[1] != 2:
        _fail(f"conflicts must have shape (k, 2), got {conflicts.shape}")
    if conflicts.dtype == bool or not np.issubdtype(conflicts.dtype, np.integer):
        _fail(f"conflicts must hold integer group ids, got dtype {conflicts.dtype}")
    conflicts = conflicts.astype(np.int64)
    if np.any(conflicts[:, 0] == conflicts[:, 1]):
        _fail("conflicts must pair two different groups, found a group paired with itself")

    setting = None
    if problem.setting is not None:
        setting = _vector(problem.setting, "setting", n_cand, "int")
    if problem.same_setting and setting is None:
        _fail("same_setting needs setting (one setting id per candidate)")

    max_sel = problem.max_selected
    if isinstance(max_sel, bool) or not isinstance(max_sel, int | np.integer) or max_sel < 1:
        _fail(f"max_selected must be an integer >= 1, got {max_sel!r}")

    if problem.point_weight is None:
        weight = np.ones(n_points)
    else:
        weight = _vector(problem.point_weight, "point_weight", n_points, "float")
        if np.any(weight <= 0):
            _fail(f"point_weight must be > 0, got minimum {weight.min():g}")

    cuts = []
    for i, sel in enumerate(forbid):
        arr = np.asarray(sel)
        if arr.ndim != 1 or arr.size == 0:
            _fail(f"forbid[{i}] must be a non-empty sequence of candidate indices")
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            _fail(f"forbid[{i}] must hold integer candidate indices, got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= n_cand:
            _fail(f"forbid[{i}] holds an index outside 0..{n_cand - 1}")
        cuts.append(np.unique(arr.astype(np.int64)))

    n_other = int(n_points - must.sum())
    # round() guards against products such as 0.07 * 100 = 7.000000000000001
    required = math.ceil(round(float(frac) * n_other, 9))
    return _Checked(
        covers=covers,
        must=must,
        weight=weight,
        cost=cost,
        group=group,
        conflicts=conflicts,
        setting=setting,
        same_setting=bool(problem.same_setting),
        max_selected=int(max_sel),
        required_other=required,
        forbid=tuple(cuts),
        size=_sizes(problem.size, covers.shape[1]),
    )


def _merge_rows(a: sp.csr_array, weight: np.ndarray, compress: bool):
    """Merge rows with the same column set; return (rows, counts, summed weights)."""
    n = a.shape[0]
    if not compress or n == 0:
        return a, np.ones(n), weight.astype(np.float64)
    first: dict[bytes, int] = {}
    label = np.empty(n, dtype=np.int64)
    ptr, idx = a.indptr, a.indices
    for i in range(n):
        label[i] = first.setdefault(idx[ptr[i] : ptr[i + 1]].tobytes(), len(first))
    reps = np.empty(len(first), dtype=np.int64)
    reps[label[::-1]] = np.arange(n - 1, -1, -1)  # the first row of each label wins
    counts = np.bincount(label, minlength=len(first)).astype(np.float64)
    weights = np.bincount(label, weights=weight, minlength=len(first))
    return sp.csr_array(a[reps]), counts, weights


def _reduce(chk: _Checked, compress: bool) -> _Reduced:
    """Drop useless columns and uncoverable rows; merge duplicate rows."""
    a = chk.covers
    n_cand = a.shape[1]
    col_nnz = np.bincount(a.indices, minlength=n_cand)
    cols = np.flatnonzero(col_nnz > 0)
    a = sp.csr_array(a[:, cols])
    a.sort_indices()
    row_nnz = np.diff(a.indptr)
    coverable = row_nnz > 0
    must_rows = np.flatnonzero(chk.must & coverable)
    other_rows = np.flatnonzero(~chk.must & coverable)
    a_must, _, w_must = _merge_rows(sp.csr_array(a[must_rows]), chk.weight[must_rows], compress)
    a_other, n_other, w_other = _merge_rows(
        sp.csr_array(a[other_rows]), chk.weight[other_rows], compress
    )
    return _Reduced(
        cols=cols,
        a_must=a_must,
        w_must=w_must,
        a_other=a_other,
        n_other=n_other,
        w_other=w_other,
        must_uncoverable=bool(np.any(chk.must & ~coverable)),
        n_other_coverable=len(other_rows),
    )


def conflict_cliques(pairs: np.ndarray, n: int) -> list[np.ndarray]:
    """Cliques of the conflict graph on ``n`` groups that together hold every pair.

    Groups that conflict pairwise can give at most one applicator between them, so one
    row ``sum(x) <= 1`` per clique replaces the rows of all its pairs: the same choices
    are allowed, but the relaxation is much tighter (with every pair alone, x = 1/2
    everywhere is allowed) and there are far fewer rows where most groups conflict, as
    cryo arrays converging on a tumour do. Greedy: start at the group with the most pairs
    not yet held, add the groups that conflict with every member (most such pairs first),
    until every pair lies in a clique.
    """
    adj = np.zeros((n, n), bool)
    adj[pairs[:, 0], pairs[:, 1]] = True
    adj[pairs[:, 1], pairs[:, 0]] = True
    left = adj.copy()  # pairs not yet in a clique
    degree = adj.sum(axis=1)
    out: list[np.ndarray] = []
    while left.any():
        v = int(np.argmax(left.sum(axis=1)))
        clique = [v]
        can = adj[v].copy()
        while can.any():
            # prefer groups that bring the most pairs not yet held with the clique
            score = np.where(can, left[:, clique].sum(axis=1) * (n + 1) + degree, -1)
            u = int(np.argmax(score))
            clique.append(u)
            can &= adj[u]
        c = np.array(sorted(clique), dtype=np.int64)
        left[np.ix_(c, c)] = False
        out.append(c)
    return out


def _side_rows(chk: _Checked, red: _Reduced) -> tuple[sp.csr_array, np.ndarray, int]:
    """Rows over [x | z] for groups, conflicts, one setting and forbidden selections.

    Returns the matrix (upper bounds only), the upper bounds and the number of z variables.
    """
    n = len(red.cols)
    blocks: list[sp.csr_array] = []
    ubs: list[np.ndarray] = []

    gid, ginv = np.unique(chk.group[red.cols], return_inverse=True)
    gmat = sp.csr_array((np.ones(n), (ginv, np.arange(n))), shape=(len(gid), n))
    gsize = np.bincount(ginv, minlength=len(gid))
    multi = np.flatnonzero(gsize > 1)
    if len(multi):
        blocks.append(sp.csr_array(gmat[multi]))
        ubs.append(np.ones(len(multi)))

    if len(chk.conflicts):
        pos = np.searchsorted(gid, chk.conflicts)
        pos = np.minimum(pos, len(gid) - 1)
        present = gid[pos] == chk.conflicts
        both = present.all(axis=1)
        if np.any(both):
            pairs = np.unique(np.sort(pos[both], axis=1), axis=0)
            cliques = conflict_cliques(pairs, len(gid))
            member = sp.csr_array(
                (np.ones(sum(len(c) for c in cliques)),
                 (np.repeat(np.arange(len(cliques)), [len(c) for c in cliques]),
                  np.concatenate(cliques))),
                shape=(len(cliques), len(gid)),
            )  # fmt: skip
            blocks.append(sp.csr_array(member @ gmat))
            ubs.append(np.ones(len(cliques)))

    n_z = 0
    if chk.same_setting:
        sid, sinv = np.unique(chk.setting[red.cols], return_inverse=True)
        n_z = len(sid)
        rows = np.arange(n)
        link = sp.csr_array(
            (
                np.concatenate([np.ones(n), -np.ones(n)]),
                (np.concatenate([rows, rows]), np.concatenate([rows, n + sinv])),
            ),
            shape=(n, n + n_z),
        )
        one = sp.csr_array(np.concatenate([np.zeros(n), np.ones(n_z)])[None, :])
        blocks = [sp.hstack([b, sp.csr_array((b.shape[0], n_z))], format="csr") for b in blocks]
        blocks += [link, one]
        ubs += [np.zeros(n), np.ones(1)]

    where = {int(c): j for j, c in enumerate(red.cols)}
    for cut in chk.forbid:
        if all(int(c) in where for c in cut):  # a cut naming a dropped column never binds
            row = np.zeros(n + n_z)
            row[[where[int(c)] for c in cut]] = 1.0
            blocks.append(sp.csr_array(row[None, :]))
            ubs.append(np.array([len(cut) - 1.0]))

    if not blocks:
        return sp.csr_array((0, n + n_z)), np.zeros(0), n_z
    return sp.vstack(blocks, format="csr"), np.concatenate(ubs), n_z


def _model(
    red: _Reduced,
    side: tuple[sp.csr_array, np.ndarray, int],
    *,
    hard_must: bool,
    other_floor: tuple[np.ndarray, float] | None,
    must_floor: float | None,
    count: tuple[float, float],
    size: np.ndarray | None = None,
) -> _Model:
    """Build one MILP over [x | z | y_must | y_other].

    ``hard_must`` asks every must row to be covered (goal); otherwise each must row gets a
    coverage variable y <= covering sum. ``other_floor`` (coefficients, floor) asks
    ``coef . y_other >= floor``; ``must_floor`` asks ``w_must . y_must >= floor``.
    ``count`` bounds the number of chosen candidates.
    """
    s_mat, s_ub, n_z = side
    n = len(red.cols)
    m_must = 0 if hard_must else red.a_must.shape[0]
    m_other = red.a_other.shape[0] if other_floor is not None or not hard_must else 0
    n_var = n + n_z + m_must + m_other
    x = slice(0, n)
    y_must = slice(n + n_z, n + n_z + m_must)
    y_other = slice(n + n_z + m_must, n_var)

    def pad(block: sp.csr_array, left: int) -> sp.csr_array:
        """Place a block whose columns start at variable ``left``."""
        right = n_var - left - block.shape[1]
        parts = [sp.csr_array((block.shape[0], left))] if left else []
        parts.append(block)
        if right:
            parts.append(sp.csr_array((block.shape[0], right)))
        return sp.hstack(parts, format="csr")

    rows: list[sp.csr_array] = []
    lbs: list[np.ndarray] = []
    ubs: list[np.ndarray] = []

    def add(block: sp.csr_array, lb: np.ndarray, ub: np.ndarray) -> None:
        rows.append(block)
        lbs.append(lb)
        ubs.append(ub)

    sizes = np.ones((1, n)) if size is None else np.asarray(size, float).reshape(1, n)
    add(pad(sp.csr_array(sizes), 0), np.array([count[0]]), np.array([count[1]]))
    if s_mat.shape[0]:
        add(pad(s_mat, 0), np.full(len(s_ub), -np.inf), s_ub)
    if hard_must and red.a_must.shape[0]:
        m = red.a_must.shape[0]
        add(pad(red.a_must.astype(np.float64), 0), np.ones(m), np.full(m, np.inf))
    for a, sl, m in ((red.a_must, y_must, m_must), (red.a_other, y_other, m_other)):
        if m:
            link = sp.hstack(
                [-a.astype(np.float64), sp.csr_array((m, sl.start - n)), sp.eye_array(m)],
                format="csr",
            )
            add(pad(link, 0), np.full(m, -np.inf), np.zeros(m))
    if must_floor is not None and m_must:
        add(pad(sp.csr_array(red.w_must[None, :]), y_must.start), [must_floor], [np.inf])
    if other_floor is not None and m_other:
        coef, floor = other_floor
        add(pad(sp.csr_array(coef[None, :]), y_other.start), [floor], [np.inf])

    integrality = np.zeros(n_var)
    integrality[: n + n_z] = 1
    return _Model(
        n_var=n_var,
        x=x,
        y_must=y_must,
        y_other=y_other,
        integrality=integrality,
        bounds=Bounds(np.zeros(n_var), np.ones(n_var)),
        constraint=LinearConstraint(
            sp.vstack(rows, format="csr"), np.concatenate(lbs), np.concatenate(ubs)
        ),
    )


def _run(model: _Model, objective: np.ndarray, time_limit_s: float, gap: float = 0.0,
         presolve: bool = True) -> _Stage:  # fmt: skip
    """Solve one stage with HiGHS; ``x`` is the rounded choice of the kept columns."""
    if model.n_var == 0:  # nothing to choose from (every candidate left out): no solution
        return _Stage(x=None, optimal=False, infeasible=True, message="no candidate to choose")
    res = milp(
        objective,
        integrality=model.integrality,
        bounds=model.bounds,
        constraints=model.constraint,
        # gap 0 by default: coverage objectives reach ~1e8 with the must weight, where the
        # default relative gap (1e-4) would give up whole points
        options={"time_limit": time_limit_s, "mip_rel_gap": gap, "presolve": presolve},
    )
    x = None if res.x is None else np.round(res.x[model.x]) > 0.5
    message = str(res.message)
    if res.status != 0 and x is not None and res.mip_gap is not None:
        message += f" (mip_gap {res.mip_gap:.3g})"
    return _Stage(x=x, optimal=res.status == 0, infeasible=res.status == 2, message=message)


def _covered(chk: _Checked, selected: np.ndarray) -> np.ndarray:
    """Which points the selected candidates (original indices) cover."""
    if len(selected) == 0:
        return np.zeros(chk.covers.shape[0], dtype=bool)
    return np.asarray(chk.covers[:, selected].sum(axis=1)).ravel() > 0


def _weighted(chk: _Checked, selected: np.ndarray) -> tuple[float, float]:
    """Weighted coverage (must points, other points) of a selection."""
    cov = _covered(chk, selected)
    return float(chk.weight[cov & chk.must].sum()), float(chk.weight[cov & ~chk.must].sum())


def _objective(model: _Model, x_coef: np.ndarray | float) -> np.ndarray:
    c = np.zeros(model.n_var)
    c[model.x] = x_coef
    return c


def _solution(
    chk: _Checked,
    selected: np.ndarray,
    *,
    optimal: bool,
    stages: list[str],
    messages: list[str],
    start: float,
) -> CoverSolution:
    cov = _covered(chk, selected)
    n_must = int(chk.must.sum())
    n_other = len(chk.must) - n_must
    must_hit = int((cov & chk.must).sum())
    other_hit = int((cov & ~chk.must).sum())
    return CoverSolution(
        selected=tuple(sorted(int(c) for c in selected)),
        feasible_goal=must_hit == n_must and other_hit >= chk.required_other,
        must_covered_fraction=must_hit / n_must if n_must else 1.0,
        other_covered_fraction=other_hit / n_other if n_other else 1.0,
        count=len(selected),
        cost=float(chk.cost[selected].sum()),
        optimal=optimal,
        stages=tuple(stages),
        status="; ".join(messages),
        runtime_s=time.perf_counter() - start,
    )


@dataclass
class _Rows:
    """Rows of the reduced problem that are in the model (row generation); grows."""

    must: np.ndarray
    other: np.ndarray


def _start_rows(red: _Reduced, n_start: int) -> _Rows:
    """The rows covered by the fewest candidates: the likeliest to bind."""

    def hardest(a: sp.csr_array) -> np.ndarray:
        keep = np.zeros(a.shape[0], dtype=bool)
        keep[np.argsort(np.diff(a.indptr), kind="stable")[:n_start]] = True
        return keep

    return _Rows(must=hardest(red.a_must), other=hardest(red.a_other))


def _sub(red: _Reduced, rows: _Rows) -> _Reduced:
    return _Reduced(
        cols=red.cols,
        a_must=sp.csr_array(red.a_must[np.flatnonzero(rows.must)]),
        w_must=red.w_must[rows.must],
        a_other=sp.csr_array(red.a_other[np.flatnonzero(rows.other)]),
        n_other=red.n_other[rows.other],
        w_other=red.w_other[rows.other],
        must_uncoverable=red.must_uncoverable,
        n_other_coverable=red.n_other_coverable,
    )


def _solve_lazy(
    red: _Reduced,
    side: tuple[sp.csr_array, np.ndarray, int],
    rows: _Rows,
    *,
    kind: str,
    required: float,
    floors: tuple[float, float],
    count: tuple[float, float],
    cost: np.ndarray | None,
    time_limit_s: float,
    size: np.ndarray | None = None,
    cost_gap: float = 0.0,
) -> _Stage:
    """Solve one stage by row generation: model only ``rows``, add the rows it misses.

    Rows left out are taken as covered, so each model is a relaxation of the stage; when
    its solution meets the stage on every row it is the stage's optimum. ``kind`` is
    ``"goal"`` (all must rows, ``required`` other points), ``"cover"`` (maximise weighted
    coverage) or ``"floors"`` (weighted coverage >= ``floors``). The objective is the
    count, or ``cost`` of the columns when given (coverage for ``"cover"``).
    """
    deadline = time.perf_counter() + time_limit_s
    while True:
        sub = _sub(red, rows)
        if kind == "goal":
            floor = required - red.n_other[~rows.other].sum()
            model = _model(
                sub,
                side,
                hard_must=True,
                other_floor=(sub.n_other, floor) if required > 0 else None,
                must_floor=None,
                count=count,
                size=size,
            )
        elif kind == "cover":
            model = _model(
                sub,
                side,
                hard_must=False,
                other_floor=None,
                must_floor=None,
                count=count,
                size=size,
            )
        else:
            model = _model(
                sub,
                side,
                hard_must=False,
                other_floor=(sub.w_other, floors[1] - red.w_other[~rows.other].sum()),
                must_floor=floors[0] - red.w_must[~rows.must].sum(),
                count=count,
                size=size,
            )
        objective = _objective(model, (1.0 if size is None else size) if cost is None else cost)
        if kind == "cover":
            objective = np.zeros(model.n_var)
            if len(red.w_must):
                must_w = (red.w_other.sum() + 1.0) / red.w_must.min()
                objective[model.y_must] = -must_w * sub.w_must
            objective[model.y_other] = -sub.w_other
        # HiGHS's presolve only for the count and coverage stages. On the cost stage (count
        # fixed) it took 54 s of 77 s over 40 such solves of eight demo plans (liver 2-4 mm,
        # liver 45 mm, lung, bone, kidney, soft tissue), against 23 s without, the same
        # optima; and once it declared a feasible stage infeasible (liver demo at 3 mm: the
        # count stage's set kept instead of the cheaper one). On the count stages it pays
        # (20 s against 34 s). Measured with scipy 1.17's HiGHS; session 34's note.
        stage = _run(model, objective, max(deadline - time.perf_counter(), 0.01),
                     gap=cost_gap if cost is not None else 0.0,
                     presolve=cost is None)  # fmt: skip
        if stage.x is None:
            return stage
        xf = stage.x.astype(np.float64)
        hit_m = red.a_must @ xf > 0.5
        hit_o = red.a_other @ xf > 0.5
        if kind == "goal":
            done = hit_m.all() and red.n_other[hit_o].sum() >= required
        elif kind == "cover":
            done = hit_m[~rows.must].all() and hit_o[~rows.other].all()
        else:
            done = red.w_must[hit_m].sum() >= floors[0] and red.w_other[hit_o].sum() >= floors[1]
        if done:
            return stage
        rows.must |= ~hit_m
        rows.other |= ~hit_o
        if time.perf_counter() >= deadline:
            return _Stage(x=None, optimal=False, infeasible=False, message=stage.message)


def solve_cover(
    problem: CoverProblem,
    *,
    forbid: Sequence[Sequence[int]] = (),
    time_limit_s: float = 20.0,
    compress: bool = True,
    cost_gap: float = 0.0,
) -> CoverSolution:
    """Choose the candidates whose ablation zones cover the target, lexicographically best.

    Objectives, in order (each a MILP solved by HiGHS):

    1. ``"min count"``: the fewest candidates meeting the goal, i.e. covering every must
       point and at least ``ceil(min_other_fraction * n_other)`` other points. Skipped when
       a must point is covered by no candidate, or too few other points can be covered.
    2. When the goal cannot be met, ``"max coverage"``: the largest weighted coverage, must
       points first (one must point outweighs all the other points), then ``"min count"``
       with that coverage kept.
    3. ``"min cost"``: with the coverage constraints and the count found, the least cost.

    Every stage obeys: at most ``max_selected`` candidates, at most one per group, no two
    groups named together in ``conflicts``, one setting for all when ``same_setting``, and
    no selection containing all the candidates of a ``forbid`` entry.

    Parameters
    ----------
    problem : CoverProblem
        Coverage matrix, must points, costs, groups and rules.
    forbid : sequence of sequences of int
        Selections (candidate indices) to exclude, e.g. earlier answers, to get the next
        best; every selection that contains one of them is excluded.
    time_limit_s : float
        Wall-clock limit of each stage (s). A stage that hits it gives HiGHS's best
        solution and makes ``optimal`` false.
    cost_gap : float
        Relative MIP gap accepted in the "min cost" stage (the coverage and count
        stages are always solved to optimality): cost is the last tie-breaker, and a
        1 % gap on it saves most of the solver's time on large problems.
    compress : bool
        Merge points covered by exactly the same candidates into one weighted row before
        building the MILPs (same answer, much smaller models).

    Returns
    -------
    CoverSolution
        The chosen candidates and their coverage, count and cost.

    Raises
    ------
    InputError
        When a shape, type or value of the problem, ``forbid`` or ``time_limit_s`` is wrong,
        or the problem has no points.
    """
    start = time.perf_counter()
    if not isinstance(time_limit_s, int | float) or not 0 < time_limit_s < math.inf:
        raise InputError(f"time_limit_s must be a positive number, got {time_limit_s!r}")
    chk = _check(problem, forbid)
    empty = np.zeros(0, dtype=np.int64)
    if chk.covers.shape[1] == 0:
        return _solution(
            chk, empty, optimal=True, stages=[], messages=["no candidates"], start=start
        )
    red = _reduce(chk, compress)
    side = _side_rows(chk, red)
    stages: list[str] = []
    messages: list[str] = []
    optimal = True

    rows = _start_rows(red, _START_ROWS)
    limit = float(time_limit_s)

    def run(name: str, **kw) -> np.ndarray | None:
        nonlocal optimal
        stage = _solve_lazy(red, side, rows, time_limit_s=limit, size=size_cols,
                            cost_gap=cost_gap, **kw)  # fmt: skip
        stages.append(name)
        messages.append(f"{name}: {stage.message}")
        optimal = optimal and (stage.optimal or stage.infeasible)
        return stage.x

    size_cols = chk.size[red.cols]
    count_range = (0.0, float(chk.max_selected))
    required = float(chk.required_other)
    x = None
    kind, floors = "goal", (0.0, 0.0)
    if red.must_uncoverable:
        messages.append("goal: a must point is covered by no candidate")
    elif chk.required_other > red.n_other_coverable:
        messages.append("goal: too few other points can be covered")
    else:
        x = run(
            "min count", kind="goal", required=required, floors=floors, count=count_range, cost=None
        )

    if x is None:
        found = run(
            "max coverage", kind="cover", required=0.0, floors=floors, count=count_range, cost=None
        )
        x = np.zeros(len(red.cols), dtype=bool) if found is None else found
        must_got, other_got = _weighted(chk, red.cols[x])
        kind = "floors"
        floors = (must_got * (1 - _FIX_REL_TOL), other_got * (1 - _FIX_REL_TOL))
        fewer = run(
            "min count", kind=kind, required=0.0, floors=floors, count=count_range, cost=None
        )
        if fewer is not None and size_cols[fewer].sum() <= size_cols[x].sum():
            x = fewer

    k = float(size_cols[x].sum())
    if k > 0:
        cols_cost = chk.cost[red.cols]
        cheaper = run(
            "min cost", kind=kind, required=required, floors=floors, count=(k, k), cost=cols_cost
        )
        if cheaper is not None and cols_cost[cheaper].sum() <= cols_cost[x].sum():
            x = cheaper
    return _solution(
        chk, red.cols[x], optimal=optimal, stages=stages, messages=messages, start=start
    )
