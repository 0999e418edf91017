"""The inverse planner's loop: choose a set of applicators, verify it, correct, repeat.

1. Candidates (:mod:`ioplan.planning._candidates`): aim points x feasible paths x zone
   shifts x settings, each with a predicted zone (surrogate ellipsoid, heat-sink prior).
2. Selection (:func:`ioplan.planning._setcover.solve_cover`, integer programming with
   HiGHS): the fewest applicators whose predicted zones cover the whole tumour and
   >= 99 % of its margin, each on its own path, none predicted to reach a protected
   structure; then the least normal liver ablated, then the least time.
3. Verification: the chosen set is simulated on the case (full physics, perfusion, the
   heat sink of the case's vessels), all at once or one after the other as delivered.
   Where the verified zone misses target points, those points must lie deeper inside a
   candidate's predicted zone by the distance they were missed by; where it reaches a
   protected structure, that placement at that setting and larger is excluded. The set
   is chosen again (never the same set twice) and verified, up to ``max_rounds``.
4. Robustness: plans that meet the goal are compared by the probability that they still
   cover under placement error (:func:`ioplan.planning._robust.robust_coverage`); an
   alternative of the same count and similar cost replaces the first when it is clearly
   more robust.

Coverage, margin and risk reported come only from verified runs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.anatomy import Case, Label
from ioplan.devices import Applicator
from ioplan.imaging import Grid, Volume, resample
from ioplan.planning._candidates import CandidateSet, TargetPoints, grid_box, planner_settings
from ioplan.planning._metrics import PROTECTED, plan_metrics
from ioplan.planning._surrogate import CRYO_LETHAL_C, CRYO_PROTOCOL

__all__ = ["Verification", "simulate_selection", "verify_selection"]

#: Share of the tumour plus its margin the verified zone must cover (%); see _plan.GOAL.
GOAL_MARGIN_PERCENT = 99.0


@dataclass(frozen=True, eq=False)
class Verification:
    """One verified set of applicators: zone, temperatures, per-applicator parts, metrics."""

    selected: tuple[int, ...]
    zone: np.ndarray
    tmax: np.ndarray
    tmin: np.ndarray
    parts: tuple[np.ndarray, ...]
    tips: tuple[np.ndarray, ...]
    directions: tuple[np.ndarray, ...]
    #: the candidate each probe (tip) belongs to
    owners: tuple[int, ...]
    metrics: dict[str, Any]
    ok: bool
    safe: bool
    runtime_s: float
    settings: tuple[dict[str, Any], ...]
    grid_shapes: tuple[tuple[int, ...], ...]
    max_temperature_c: float
    #: wall time (s) of the simulations this verification ran (not found in the cache)
    simulated_s: float = 0.0
    robust: dict[str, Any] | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        """Better plans sort higher: goal met, tumour covered, margin covered, fewer, safer."""
        m = self.metrics
        return (
            self.ok,
            self.safe,
            round(m["tumour_voxels_covered_percent"], 3),
            round(m["margin_coverage_percent"], 3),
            -len(self.tips),
            -m["ablated_host_ml"],
        )


def zone_with_shaft(z: np.ndarray, g: Grid, diameter_mm: float, spacing_mm: float,
                    needles) -> np.ndarray:  # fmt: skip
    """The zone plus the applicators' own voxels where the zone surrounds the shaft.

    The engine does not count the applicator's voxels as tissue; where the zone lies
    around the shaft (voxels within two voxels of the zone, within the shaft radius behind
    the tip), the track is ablated too. ``needles``: ``(tip, direction)`` pairs (LPS mm, unit
    vectors); ``spacing_mm``: the simulation's voxel size. Only the box around the zone is
    visited.
    """
    near = ndimage.binary_dilation(z, iterations=2)
    if not near.any():
        return z
    idx = np.argwhere(near)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    pts = g.index_to_lps(np.argwhere(np.ones(hi - lo, bool)) + lo).reshape(*(hi - lo), 3)
    r_shaft = max(0.5 * diameter_mm, 0.71 * spacing_mm) + 0.5 * max(g.spacing_mm)
    shaft = np.zeros(pts.shape[:3], bool)
    for t_, d in needles:
        d = np.asarray(d, float)
        rel = pts - np.asarray(t_, float)
        along = rel @ d
        radial = np.linalg.norm(rel - along[..., None] * d, axis=-1)
        shaft |= (along <= 0) & (radial <= r_shaft)
    out = z.copy()
    out[box] |= shaft & near[box]
    return out


def _run(case: Case, app: Applicator, placements: list[tuple[np.ndarray, np.ndarray]],
         setting: tuple, spacing_mm: float, progress) -> dict[str, Any]:  # fmt: skip
    """One simulation on the case; its zone, Tmax and Tmin on the case grid."""
    from ioplan.physics import CryoProtocol, Placement, SimulationConfig, simulate

    p, t = setting[0], setting[1]
    kw: dict[str, Any] = {"power_w": p, "duration_s": t}
    if app.modality == "cryo":
        kw = {"protocol": CryoProtocol.parse(CRYO_PROTOCOL), "lethal_temperature_c": CRYO_LETHAL_C}
    if len(placements) == 1:
        tip, d = placements[0]
        kw |= {"tip_mm": tuple(float(v) for v in tip), "direction": tuple(float(v) for v in d)}
    else:
        kw["placements"] = tuple(
            Placement(tuple(float(v) for v in tip), tuple(float(v) for v in d))
            for tip, d in placements
        )
    res = simulate(
        SimulationConfig(applicator=app, case=case, spacing_mm=spacing_mm, tissue=None, **kw),
        progress=progress,
    )
    g = case.labels.grid
    zone = resample(Volume(res.zone_mask.astype(np.uint8), res.grid), g, interpolation="nearest")
    tmax = resample(Volume(res.state.tmax_c.astype(np.float32), res.grid), g,
                    interpolation="linear", default_value=37.0)  # fmt: skip
    tmin = resample(Volume(res.state.tmin_c.astype(np.float32), res.grid), g,
                    interpolation="linear", default_value=37.0)  # fmt: skip
    z = zone_with_shaft(np.asarray(zone.array) > 0, g, app.diameter_mm, spacing_mm,
                        [(np.asarray(a), np.asarray(b)) for a, b in placements])  # fmt: skip
    return {
        "zone": z,
        "tmax": np.asarray(tmax.array),
        "tmin": np.asarray(tmin.array),
        "settings": res.settings,
        "runtime_s": res.runtime_s,
        "grid_shape": tuple(res.grid.shape),
        "max_temperature_c": res.max_temperature_c,
    }


def _voronoi_parts(z: np.ndarray, g: Grid, tips: list[np.ndarray], dirs: list[np.ndarray],
                   back_mm: float) -> list[np.ndarray]:  # fmt: skip
    """Split a zone among applicators run together: each voxel to the nearest active segment."""
    if len(tips) == 1:
        return [z]
    idx = np.argwhere(z)
    pts = g.index_to_lps(idx)
    dist = []
    for tip, d in zip(tips, dirs, strict=True):
        rel = pts - tip
        s = np.clip(rel @ d, -back_mm, 0.0)
        dist.append(np.linalg.norm(rel - s[:, None] * d[None, :], axis=1))
    owner = np.argmin(np.asarray(dist), axis=0)
    parts = []
    for i in range(len(tips)):
        m = np.zeros(z.shape, bool)
        m[tuple(idx[owner == i].T)] = True
        parts.append(m)
    return parts


def simulate_selection(case: Case, app: Applicator, cs: CandidateSet, selected: tuple[int, ...],
                       delivery: str, spacing_mm: float, progress,
                       cache: dict) -> dict[str, Any]:  # fmt: skip
    """The selected applicators simulated as delivered (runs reused from ``cache``).

    A candidate may place several probes (a parallel cryo array): they run together.
    ``parts`` holds one zone part per probe (a run's zone split among its probes by the
    nearest active segment).
    """
    from ioplan.physics import active_extent_mm

    back = active_extent_mm(app)
    groups = _probe_groups(cs, selected)
    keys = run_keys(cs, selected, delivery)
    runs = []
    parts: list[np.ndarray] = []

    def run(key, probes, setting) -> dict[str, Any]:
        if key not in cache:
            t0 = time.perf_counter()
            cache[key] = _run(case, app, probes, setting, spacing_mm, progress)
            cache[key]["wall_s"] = time.perf_counter() - t0
            cache[key]["fresh"] = True  # not yet counted by a verification
        return cache[key]

    if delivery == "sequential" or len(selected) == 1:
        for c, probes, key in zip(selected, groups, keys, strict=True):
            runs.append(run(key, probes, cs.setting_of(c)))
            tips_c, dirs_c = [t for t, _ in probes], [d for _, d in probes]
            parts.extend(_voronoi_parts(cache[key]["zone"], case.labels.grid, tips_c, dirs_c, back))
        zone = np.logical_or.reduce([r["zone"] for r in runs])
        tmax = np.maximum.reduce([r["tmax"] for r in runs])
        tmin = np.minimum.reduce([r["tmin"] for r in runs])
    else:
        probes = [p for grp in groups for p in grp]
        runs = [run(keys[0], probes, cs.setting_of(selected[0]))]
        zone, tmax, tmin = runs[0]["zone"], runs[0]["tmax"], runs[0]["tmin"]
        parts = _voronoi_parts(zone, case.labels.grid, [t for t, _ in probes],
                               [d for _, d in probes], back)  # fmt: skip
    probes = [p for grp in groups for p in grp]
    owners = [c for c, grp in zip(selected, groups, strict=True) for _ in grp]
    simulated_s = 0.0
    for r in runs:
        if r.pop("fresh", False):
            simulated_s += r["wall_s"]
    return {
        "simulated_s": simulated_s,
        "zone": zone,
        "tmax": tmax,
        "tmin": tmin,
        "parts": parts,
        "tips": [t for t, _ in probes],
        "dirs": [d for _, d in probes],
        "owners": owners,
        "runs": runs,
    }


def _probe_groups(cs: CandidateSet, selected: tuple[int, ...]) -> list[list[tuple]]:
    """Per selected candidate: its probes' (tip, direction)."""
    return [[(tip, cs.direction(c)) for tip in cs.probe_tips(c)] for c in selected]


def run_keys(cs: CandidateSet, selected: tuple[int, ...], delivery: str) -> list[tuple]:
    """The cache keys of the simulations that verify ``selected``.

    One per candidate when delivered one after another (or alone), one for the set when
    run together.
    """
    groups = _probe_groups(cs, selected)
    if delivery == "sequential" or len(selected) == 1:
        out = []
        for c, probes in zip(selected, groups, strict=True):
            setting = cs.setting_of(c)
            out.append((tuple(np.round(np.concatenate([t for t, _ in probes]), 3)),
                        tuple(np.round(cs.direction(c), 5)), setting[0], setting[1],
                        len(probes)))  # fmt: skip
        return out
    setting = cs.setting_of(selected[0])
    where = [(tuple(np.round(t, 3)), tuple(np.round(d, 5))) for grp in groups for t, d in grp]
    return [(*where, setting[0], setting[1])]


def next_verification_s(cache: dict, verified: list[Verification],
                        cs: CandidateSet | None = None, selected: tuple[int, ...] = (),
                        delivery: str = "") -> float:  # fmt: skip
    """Expected wall time (s) of the next verification.

    The simulations of ``selected`` not in ``cache`` (without a selection: one) at the
    mean time of those run so far, plus the mean time a verification spent outside its
    simulations (metrics, resampling).

    A set delivered one after another reuses the runs of its applicators that an earlier
    set had, so a second round that moves one of two RF electrodes costs one run, not two.
    """
    walls = [r["wall_s"] for r in cache.values() if "wall_s" in r]
    per_sim = float(np.mean(walls)) if walls else 0.0
    fresh = 1 if cs is None else sum(1 for k in run_keys(cs, selected, delivery) if k not in cache)
    outside = [max(0.0, v.runtime_s - v.simulated_s) for v in verified]
    return fresh * per_sim + (float(np.mean(outside)) if outside else 0.0)


def verify_selection(case: Case, app: Applicator, cs: CandidateSet, tp: TargetPoints,
                     selected: tuple[int, ...], *, delivery: str, spacing_mm: float,
                     margin_mm: float, protect_mm: float, progress,
                     cache: dict) -> Verification:  # fmt: skip
    """Simulate ``selected`` and measure it against the goal."""
    t0 = time.perf_counter()
    sim = simulate_selection(case, app, cs, selected, delivery, spacing_mm, progress, cache)
    m = plan_metrics(case, sim["zone"], sim["tmax"], sim["tmin"], tp.tumour, margin_mm,
                     protect_mm, target=tp.target)  # fmt: skip
    safe = not any(r["lethal_damage"] or r["within_protect_distance"] for r in m["at_risk"])
    ok = (
        safe
        and m["tumour_voxels_covered_percent"] >= 100.0
        and m["margin_coverage_percent"] >= GOAL_MARGIN_PERCENT
    )
    return Verification(
        selected=tuple(int(c) for c in selected),
        zone=sim["zone"],
        tmax=sim["tmax"],
        tmin=sim["tmin"],
        parts=tuple(sim["parts"]),
        tips=tuple(sim["tips"]),
        directions=tuple(sim["dirs"]),
        owners=tuple(int(c) for c in sim["owners"]),
        metrics=m,
        ok=ok,
        safe=safe,
        runtime_s=time.perf_counter() - t0,
        simulated_s=sim["simulated_s"],
        settings=tuple(r["settings"] for r in sim["runs"]),
        grid_shapes=tuple(r["grid_shape"] for r in sim["runs"]),
        max_temperature_c=max(r["max_temperature_c"] for r in sim["runs"]),
    )


def shortfall_mm(v: Verification, tp: TargetPoints, grid: Grid) -> np.ndarray:
    """Per target point, how far (mm) outside the verified zone it lies (0 inside)."""
    idx = np.rint(grid.lps_to_index(tp.points_mm)).astype(int)
    inside = v.zone[tuple(idx.T)]
    out = np.zeros(len(idx))
    if inside.all():
        return out
    if not v.zone.any():
        return np.full(len(idx), 10.0)
    box = grid_box(grid, [v.zone, tp.target], 5.0)
    lo = np.array([b.start for b in box])
    dist = ndimage.distance_transform_edt(~v.zone[box], sampling=grid.spacing_mm)
    out[~inside] = dist[tuple((idx[~inside] - lo).T)] + 0.5 * min(grid.spacing_mm)
    return out


def culprits(v: Verification, case: Case, protect_mm: float) -> list[int]:
    """The candidates whose applicators' zone parts reach a protected structure."""
    lab = np.asarray(case.labels.array)
    g = case.labels.grid
    harmed = [r for r in v.metrics["at_risk"] if r["lethal_damage"] or r["within_protect_distance"]]
    if not harmed:
        return []
    names = {r["structure"] for r in harmed}
    mask = np.isin(lab, [int(x) for n, labels in PROTECTED.items() if n in names for x in labels])
    out = []
    for i, part in enumerate(v.parts):
        if not part.any():
            continue
        box = grid_box(g, [part], protect_mm + 2 * max(g.spacing_mm))
        if not mask[box].any():
            continue
        dist = ndimage.distance_transform_edt(~part[box], sampling=g.spacing_mm)
        if float(dist[mask[box]].min()) < protect_mm:
            out.append(i)
    return sorted({v.owners[i] for i in out}) or list(v.selected)


def clearance_needed(v: Verification, cs, guilty: list[int], protect_mm: float,
                     need_mm: float) -> float:
    """The clearance (mm) predicted zones must keep after ``v`` reached too near a structure.

    The surrogate judged the ``guilty`` candidates clear by ``cs.clearance_mm`` (beyond
    ``protect_mm``); the simulated zone came ``protect_mm - d`` inside it instead (``d``
    its distance to the nearest harmed structure, 0 where it reached in). The surrogate
    thus fell short by at least the sum, and every candidate must now predict at least that
    much clearance: the safety analogue of the required depth for missed target points. A
    lower bound (the shorter semi-axis), so it asks no more than the miss shows.
    """
    harmed = [r for r in v.metrics["at_risk"] if r["lethal_damage"] or r["within_protect_distance"]]
    if not harmed or not guilty:
        return need_mm
    d = max(0.0, min(float(r["closest_distance_mm"]) for r in harmed))
    predicted = max(float(cs.clearance_mm[c]) for c in guilty)
    if not np.isfinite(predicted):
        return need_mm
    return max(need_mm, max(predicted, 0.0) + protect_mm - d)


_SIDES = (("right", "left"), ("anterior", "posterior"), ("inferior", "superior"))


def _where(offset_mm: np.ndarray) -> str:
    """Patient-side words for an LPS offset (the largest one or two components)."""
    order = np.argsort(-np.abs(offset_mm))
    words = []
    for a in order[:2]:
        if abs(offset_mm[a]) >= 2.0 and (not words or abs(offset_mm[a]) >= 0.5 * abs(
                offset_mm[order[0]])):  # fmt: skip
            words.append(_SIDES[a][int(offset_mm[a] > 0)])
    return "-".join(words) if words else "central"


def applicator_covers(v: Verification, tp: TargetPoints, case: Case) -> list[dict[str, Any]]:
    """Why each applicator is there: the target it covers, and covers alone, and where."""
    g = case.labels.grid
    target = tp.target
    n_t = float(target.sum())
    centre = g.index_to_lps(np.argwhere(tp.tumour).mean(axis=0))
    lab = np.asarray(case.labels.array)
    out = []
    for i, part in enumerate(v.parts):
        others = np.zeros_like(part)
        for j, p in enumerate(v.parts):
            if j != i:
                others |= p
        mine = part & target
        alone = mine & ~others
        rec: dict[str, Any] = {
            "target_percent": round(100.0 * float(mine.sum()) / n_t, 1),
            "only_this_percent": round(100.0 * float(alone.sum()) / n_t, 1),
            "tumour_percent": round(
                100.0 * float((part & tp.tumour).sum()) / float(tp.tumour.sum()), 1
            ),
        }
        region = alone if alone.any() else mine
        if region.any():
            where = _where(g.index_to_lps(np.argwhere(region).mean(axis=0)) - centre)
            near_vessel = ""
            if tp.lumen.any():
                box = grid_box(g, [region], 6.0)
                grown = ndimage.binary_dilation(region[box], iterations=max(
                    1, round(5.0 / min(g.spacing_mm))))  # fmt: skip
                hit = lab[box][grown & tp.lumen[box]]
                if hit.size:
                    near_vessel = (
                        Label(int(np.bincount(hit).argmax())).name.lower().replace("_", " ")
                    )
            what = "the whole target" if len(v.parts) == 1 else f"the {where} part of the target"
            rec["region"] = where
            rec["why"] = (
                f"covers {rec['target_percent']:g} % of the tumour plus margin"
                + (f", {rec['only_this_percent']:g} % by itself ({what})" if len(v.parts) > 1
                   else f" ({what})")
                + (f", next to the {near_vessel}" if near_vessel else "")
            )  # fmt: skip
        else:
            rec["region"] = ""
            rec["why"] = "covers none of the target"
        out.append(rec)
    return out


def run_record(v: Verification, cs: CandidateSet, round_: int, change: str,
               delivery: str) -> dict[str, Any]:  # fmt: skip
    """The JSON record of one verification run."""
    m = v.metrics

    def r(x: float) -> float | None:
        return round(float(x), 2) if math.isfinite(x) else None

    settings = [cs.setting_of(c) for c in v.selected]
    return {
        "round": round_,
        "applicators": len(v.tips),
        "delivery": delivery,
        "candidates": list(v.selected),
        "trajectory_ids": [cs.trajectory_id(c) for c in v.selected],
        "power_w": [s[0] for s in settings],
        "duration_s": [s[1] for s in settings],
        "coverage_percent": r(m["coverage_percent"]),
        "tumour_voxels_covered_percent": r(m["tumour_voxels_covered_percent"]),
        "margin_coverage_percent": r(m["margin_coverage_percent"]),
        "minimal_margin_mm": r(m["minimal_margin_mm"]),
        "ablated_liver_ml": r(m["ablated_liver_ml"]),
        "safe": v.safe,
        "goal_met": v.ok,
        "runtime_s": round(v.runtime_s, 2),
        "change": change,
    }


def _undominated(a, keep: np.ndarray, placement: np.ndarray, cost: np.ndarray,
                 probes: np.ndarray, together: np.ndarray) -> np.ndarray:  # fmt: skip
    """``keep`` without candidates another one at the same placement makes redundant.

    Two settings at one placement that cover exactly the same target points (a zone that
    already holds the whole target, grown further) differ only in cost: the optimiser
    would never take the dearer, so only the cheapest is modelled (a smaller problem,
    the same optimum). Probe count and the simultaneous-setting class must match too.
    """
    a = a.tocsc()
    best: dict[tuple, int] = {}
    for c in keep:
        c = int(c)
        rows = a.indices[a.indptr[c] : a.indptr[c + 1]]
        key = (int(placement[c]), int(probes[c]), int(together[c]), hash(np.sort(rows).tobytes()))
        if key not in best or cost[c] < cost[best[key]]:
            best[key] = c
    return np.array(sorted(best.values()), int)


def _depths(cs: CandidateSet) -> np.ndarray:
    """Each candidate's insertion depth (mm): skin entry to tip."""
    entries = np.array([cs.trajectories[int(cs.placement_path[p])].entry_mm for p in cs.placement])
    return np.linalg.norm(cs.tip_mm - entries.reshape(-1, 3), axis=1)


def _min_separation(app: Applicator) -> float:
    """Smallest distance (mm) between shafts used at once, per modality (planner.toml)."""
    key = {"mw": "mwa", "rf": "rfa", "cryo": "cryo"}[app.modality]
    return float(planner_settings()["applicators"]["min_shaft_separation_mm"][key])


def delivery_for(modality: str, requested: str | None) -> str:
    """How several applicators are delivered: the request, else the modality's default."""
    if requested:
        return requested
    return str(planner_settings()["applicators"]["delivery"][modality])


@dataclass(frozen=True, eq=False)
class SearchResult:
    """The chosen verified plan, every verification run, and the optimiser's record."""

    best: Verification
    runs: tuple[dict[str, Any], ...]
    optimiser: dict[str, Any]
    #: the candidates at the end (those added during the search included)
    candidates: CandidateSet | None = None


def greedy_cover(a, must: np.ndarray, group: np.ndarray, conflicts: np.ndarray,
                 max_selected: int, forbid: list[list[int]],
                 size: np.ndarray | None = None) -> tuple[int, ...]:  # fmt: skip
    """Greedy set cover: each step adds the column covering the most uncovered weight.

    Tumour points weigh more than all margin points together. Respects one column per
    group, the group conflicts and ``max_selected`` applicators in all (``size``: the
    applicators, e.g. array probes, each column counts; default 1); stops when nothing
    adds. A result equal to a ``forbid`` set (one already verified) is not returned: the
    search runs again without that set's first column, until it finds another set or
    none. Used only when the integer program finds no set in its time limit.
    """
    a = a.tocsc().astype(bool)
    n = a.shape[1]
    size = np.ones(n, int) if size is None else np.asarray(size, int)
    w = np.where(must, float((~must).sum() + 1), 1.0)
    bad = {frozenset(int(c) for c in f) for f in forbid}
    partners: dict[int, set[int]] = {}
    for x, y in np.asarray(conflicts, int).reshape(-1, 2):
        partners.setdefault(int(x), set()).add(int(y))
        partners.setdefault(int(y), set()).add(int(x))
    excluded: set[int] = set()
    for _ in range(len(bad) + 1):
        covered = np.zeros(a.shape[0], bool)
        chosen: list[int] = []
        banned_groups: set[int] = set()
        used = 0
        while True:
            gain = np.asarray(a.T @ (w * ~covered), float)
            off = np.isin(group, list(banned_groups)) | (used + size > max_selected)
            off[chosen] = True
            off[list(excluded)] = True
            gain[off] = -1.0
            best = int(np.argmax(gain))
            if gain[best] <= 0:
                break
            chosen.append(best)
            used += int(size[best])
            covered |= a[:, best].toarray().ravel()
            g = int(group[best])
            banned_groups |= {g} | partners.get(g, set())
        if not chosen or frozenset(chosen) not in bad:
            return tuple(sorted(chosen))
        excluded.add(chosen[0])
    return ()


def _crop_for_robustness(v: Verification, tp: TargetPoints, g: Grid):
    """The parts, tumour, target and grid cropped to the box that holds them (speed)."""
    box = grid_box(g, [v.zone, tp.target], 15.0)
    lo = np.array([b.start for b in box])
    sub = Grid(tuple(b.stop - b.start for b in box), g.spacing_mm,
               tuple(float(x) for x in g.index_to_lps(lo)), g.direction)  # fmt: skip
    return [p[box] for p in v.parts], tp.tumour[box], tp.target[box], sub


def robustness(v: Verification, cs: CandidateSet, tp: TargetPoints, g: Grid,
               error) -> dict[str, Any]:  # fmt: skip
    """Probability that ``v`` still meets its coverage goal under placement error."""
    from ioplan.planning._robust import robust_coverage

    parts, tumour, target, sub = _crop_for_robustness(v, tp, g)
    needles = []
    for tip, d, c in zip(v.tips, v.directions, v.owners, strict=True):
        depth = float(np.linalg.norm(cs.tip_mm[c] - np.asarray(cs.trajectory(c).entry_mm)))
        needles.append((tip, tip - depth * d))
    return robust_coverage(parts, needles, sub, tumour, target, error,
                           goal_fraction=GOAL_MARGIN_PERCENT / 100.0)  # fmt: skip


def _exclude_larger(cs: CandidateSet, excluded: np.ndarray, c: int) -> int:
    """Exclude candidate ``c``'s placement at its setting and every larger one."""
    _, _, length, width, _, _ = cs.setting_of(c)
    same = cs.placement == cs.placement[c]
    big = np.array([cs.rows[s][2] >= length - 1e-9 and cs.rows[s][3] >= width - 1e-9
                    for s in cs.setting])  # fmt: skip
    new = same & big & ~excluded
    excluded |= same & big
    return int(new.sum())


def search(case: Case, app: Applicator, cs: CandidateSet, tp: TargetPoints, *, delivery: str,
           max_selected: int, spacing_mm: float, margin_mm: float, protect_mm: float, error,
           time_budget_s: float, say, progress, more=None,
           min_rounds: int = 1) -> SearchResult:  # fmt: skip
    """Select, verify and correct until a set meets the goal (or the rounds run out).

    ``time_budget_s`` stops the search before a verification that would end past it, but
    never before ``min_rounds`` verifications while none meets the goal: the plan then
    does not depend on how loaded the machine is, only the time it takes.

    ``more(aims)`` makes candidates aimed at new points (LPS mm); where a verified zone
    misses target points, candidates aimed toward them are added for the next round.
    """
    from ioplan.planning._candidates import (
        heat_sink_prior,
        merge,
        shaft_conflicts,
        shaft_groups,
        toward,
    )
    from ioplan.planning._setcover import CoverProblem, solve_cover

    t0 = time.perf_counter()
    st = planner_settings()
    g = case.labels.grid
    required = heat_sink_prior(tp)
    simultaneous = delivery == "simultaneous"
    state: dict[str, Any] = {}

    def adopt(new_cs: CandidateSet, excluded_old: np.ndarray | None) -> None:
        """Take ``new_cs`` (the old candidates first) and its costs and conflicts."""
        n_old = 0 if excluded_old is None else len(excluded_old)
        excluded = ~new_cs.safe | (new_cs.clearance_mm < state.get("clearance_mm", 0.0))
        if excluded_old is not None:
            excluded[:n_old] |= excluded_old
        durations = np.array([new_cs.rows[k][1] for k in new_cs.setting], float)
        probes = np.array([new_cs.rows[k][5] for k in new_cs.setting], float)
        state.update(
            cs=new_cs,
            excluded=excluded,
            probes=probes,
            cost=new_cs.normal_ml
            + durations / float(st["candidates"]["seconds_per_ml"])
            + _depths(new_cs) / float(st["candidates"]["path_mm_per_ml"]),
            # settings that can run together: the same power and time (the same protocol)
            together=np.unique(
                np.array([new_cs.rows[k][:2] for k in new_cs.setting]), axis=0,
                return_inverse=True,
            )[1].reshape(-1),
            # one path, one applicator or array; run together, shafts kept apart
            groups=shaft_groups(new_cs),
            conflicts=shaft_conflicts(new_cs, _min_separation(app) if simultaneous else None),
        )  # fmt: skip

    adopt(cs, None)
    cache: dict = {}
    verified: list[Verification] = []
    records: list[dict[str, Any]] = []
    solves: list[dict[str, Any]] = []
    change = "first selection (predicted zones with the heat-sink prior)"

    def select(extra_depth_mm: float = 0.0):
        cs_, excluded = state["cs"], state["excluded"]
        full = cs_.cover_matrix(required + extra_depth_mm)
        keep = _undominated(full, np.flatnonzero(~excluded), cs_.placement, state["cost"],
                            state["probes"], state["together"])  # fmt: skip
        if keep.size == 0:
            return None, None
        pos = {int(c): i for i, c in enumerate(keep)}
        forbid = [[pos[c] for c in v.selected] for v in verified
                  if all(c in pos for c in v.selected)]  # fmt: skip
        a = full[:, keep]
        sol = solve_cover(
            CoverProblem(covers=a, must=tp.must, cost=state["cost"][keep],
                         group=state["groups"][keep],
                         min_other_fraction=GOAL_MARGIN_PERCENT / 100.0,
                         conflicts=state["conflicts"], setting=state["together"][keep],
                         same_setting=simultaneous, max_selected=max_selected,
                         size=state["probes"][keep]),
            forbid=forbid, time_limit_s=8.0, cost_gap=0.01,
        )  # fmt: skip
        solves.append(
            {
                "candidates": int(keep.size),
                "count": sol.count,
                "predicted_goal": sol.feasible_goal,
                "optimal": sol.optimal,
                "stages": list(sol.stages),
                "runtime_s": round(sol.runtime_s, 3),
            }
        )
        chosen = tuple(int(keep[i]) for i in sol.selected)
        if not chosen:  # the solver found no set in time: a greedy cover instead
            chosen = greedy_cover(a, tp.must, state["groups"][keep], state["conflicts"],
                                  max_selected, forbid,
                                  state["probes"][keep].astype(int))  # fmt: skip
            chosen = tuple(int(keep[i]) for i in chosen)
            solves[-1]["greedy_fallback"] = True
        return chosen, sol

    max_rounds = int(st["verification"]["max_rounds"])
    stopped = ""

    def over(est: float) -> bool:
        if len(verified) < min_rounds and not any(v.ok for v in verified):
            return False
        return bool(verified) and time.perf_counter() - t0 + est > time_budget_s

    for round_ in range(1, max_rounds + 1):
        # the next verification's cost: its simulations not already run (cache); before
        # selecting, at least one
        if over(next_verification_s(cache, verified)):
            sel = None
        else:
            sel, sol = select()
            if not sel:
                say(f"no set selected: {sol.status if sol is not None else 'no candidate left'}")
                break
            if over(next_verification_s(cache, verified, state["cs"], sel, delivery)):
                sel = None
        if sel is None:
            stopped = (
                f"stopped after {len(verified)} verification run(s): another would pass "
                f"the {time_budget_s:g} s time budget (--time-budget-s)"
            )
            say(stopped)
            break
        cs = state["cs"]
        why = "predicted to cover" if sol.feasible_goal else "best predicted coverage"
        say(f"round {round_}: verifying {len(sel)} applicator(s) ({why})")
        v = verify_selection(case, app, cs, tp, sel, delivery=delivery, spacing_mm=spacing_mm,
                             margin_mm=margin_mm, protect_mm=protect_mm, progress=progress,
                             cache=cache)  # fmt: skip
        verified.append(v)
        records.append(run_record(v, cs, round_, change, delivery))
        m = v.metrics
        harm = "" if v.safe else ", reaches a protected structure"
        say(f"  tumour {m['tumour_voxels_covered_percent']:.1f} %, margin "
            f"{m['margin_coverage_percent']:.1f} %{harm}")  # fmt: skip
        if v.ok:
            break
        notes = []
        if not v.safe:
            guilty = culprits(v, case, protect_mm)
            n_ex = sum(_exclude_larger(cs, state["excluded"], c) for c in guilty)
            notes.append(f"excluded {n_ex} candidate(s) whose zone reached a protected structure")
            need = clearance_needed(v, cs, guilty, protect_mm, state.get("clearance_mm", 0.0))
            if need > state.get("clearance_mm", 0.0):
                state["clearance_mm"] = need
                fresh = (cs.clearance_mm < need) & ~state["excluded"]
                state["excluded"] |= fresh
                notes.append(
                    f"the verified zone came nearer a protected structure than predicted: "
                    f"predicted zones must now stay {need:.1f} mm further out "
                    f"({int(fresh.sum())} more candidate(s) excluded)"
                )
        short = shortfall_mm(v, tp, g)
        if np.any(short > 0):
            required = required + short
            notes.append(
                f"{int(np.count_nonzero(short))} target points missed by up to "
                f"{short.max():.1f} mm must lie that much deeper inside a predicted zone"
            )
            if more is not None and round_ < max_rounds:
                # half-way and most of the way toward the missed points
                new_cs = more(toward(tp, short > 0, seed=round_, fractions=(0.5, 0.8)))
                if new_cs.n:
                    adopt(merge(cs, new_cs), state["excluded"])
                    notes.append(f"{new_cs.n} candidates aimed toward the missed points added")
        change = "; ".join(notes) or "the same prediction, a different set"
    if not verified:
        return SearchResult(None, (), {"solves": solves})  # type: ignore[arg-type]
    cs = state["cs"]
    best = max(verified, key=lambda v: v.key)
    if best.ok:
        best = _prefer_robust(case, app, cs, tp, best, verified, records, select, error,
                              t0=t0, time_budget_s=time_budget_s, delivery=delivery,
                              spacing_mm=spacing_mm, margin_mm=margin_mm, protect_mm=protect_mm,
                              progress=progress, cache=cache, say=say,
                              cost=state["cost"])  # fmt: skip
    optimiser = {
        "method": "integer programming over predicted voxel coverage (scipy.optimize.milp, "
        "HiGHS): fewest applicators covering the tumour and >= 99 % of its margin, then "
        "least normal liver ablated, then least time; each applicator on its own path",
        "solves": solves,
        "rounds": len(records),
        "candidates_final": cs.n,
        "time_budget_s": time_budget_s,
        "stopped": stopped,
        "runtime_s": round(time.perf_counter() - t0, 2),
    }
    return SearchResult(best, tuple(records), optimiser, cs)


def _prefer_robust(case, app, cs, tp, best: Verification, verified, records, select, error, *,
                   t0, time_budget_s, delivery, spacing_mm, margin_mm, protect_mm, progress,
                   cache, say, cost) -> Verification:  # fmt: skip
    """Among verified plans of the same count and similar cost, the most robust one."""
    st = planner_settings()["verification"]
    g = case.labels.grid
    rob = robustness(best, cs, tp, g, error)
    best = _with_robust(best, rob)
    best_cost = float(sum(cost[c] for c in best.selected))
    # first an alternative whose predicted zones hold the target deeper by the tip error,
    # then the next best sets of the same count
    for k in range(int(st["alternatives"])):
        if time.perf_counter() - t0 + next_verification_s(cache, verified) > time_budget_s:
            break
        deeper = float(error.tip_mm) if k == 0 else 0.0
        sel, sol = select(deeper)
        if not sel or len(sel) != len(best.selected) or not sol.feasible_goal:
            continue
        if float(sum(cost[c] for c in sel)) > float(st["alternative_cost_ratio"]) * best_cost:
            continue
        est = next_verification_s(cache, verified, cs, sel, delivery)
        if time.perf_counter() - t0 + est > time_budget_s:
            break
        v = verify_selection(case, app, cs, tp, sel, delivery=delivery, spacing_mm=spacing_mm,
                             margin_mm=margin_mm, protect_mm=protect_mm, progress=progress,
                             cache=cache)  # fmt: skip
        verified.append(v)
        why = (
            f"alternative whose predicted zones hold the target {deeper:g} mm deeper"
            if deeper
            else "next best set of the same count"
        )
        rec = run_record(v, cs, len(records) + 1, f"{why}, for robustness to placement error",
                         delivery)  # fmt: skip
        if v.ok:
            r = robustness(v, cs, tp, g, error)
            rec["robust_coverage"] = r["robust_coverage"]
            if r["robust_coverage"] > best.robust["robust_coverage"] + float(
                st["robust_difference"]
            ):
                say(f"  an alternative is more robust ({r['robust_coverage']:.2f} vs "
                    f"{best.robust['robust_coverage']:.2f}): chosen")  # fmt: skip
                best = _with_robust(v, r)
        records.append(rec)
    for rec in records:
        if rec["candidates"] == list(best.selected):
            rec["robust_coverage"] = best.robust["robust_coverage"]
            rec["chosen"] = True
    return best


def _with_robust(v: Verification, rob: dict[str, Any]) -> Verification:
    from dataclasses import replace

    return replace(v, robust=rob)
