"""The inverse planner's candidates: applicator placements and settings, and their zones.

A candidate is one applicator on one feasible path (:func:`candidate_trajectories`),
with its zone centred at an aim point shifted along the path (the tip pushed in or
pulled back), at one setting of the applicator's zone surrogate (:func:`zone_table`).

Aim points are the centres of k-means clusters of the target (tumour plus margin)
for every applicator count k the modality allows, so each count has its own natural
split of the target. Each aim point gets its best feasible paths, kept apart in angle.

A candidate's predicted zone is the surrogate's ellipsoid (length along the path,
width across, centred ``centre_offset_mm`` behind the tip), corrected for heat sinks:
a target point counts as covered only if it lies at least ``required_depth_mm`` inside
the ellipsoid (measured along the ray from the zone centre). The required depth starts
at the heat-sink prior (points within 5 mm of a vessel >= 3 mm) and is raised by the
verification loop where the simulated zone fell short.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from scipy import ndimage, sparse
from scipy.cluster.vq import kmeans2

from ioplan.anatomy import VESSEL_LABELS, Case, Label
from ioplan.devices import Applicator
from ioplan.imaging import Grid
from ioplan.planning._metrics import _large_vessel_lumen
from ioplan.planning._organ_rules import (
    case_organ,
    host_labels,
    margin_tissue_labels,
    protected_structures,
)
from ioplan.planning._trajectories import Trajectory, TrajectoryConfig, candidate_trajectories

__all__ = [
    "CandidateSet",
    "TargetPoints",
    "make_candidates",
    "merge",
    "planner_settings",
    "target_points",
    "toward",
]


@lru_cache(maxsize=1)
def planner_settings() -> dict[str, Any]:
    """The planner's settings with their sources (``planning/data/planner.toml``)."""
    text = resources.files("ioplan.planning").joinpath("data/planner.toml").read_text()
    return tomllib.loads(text)


def parenchyma(labels: np.ndarray, organ: str = "liver") -> np.ndarray:
    """Tissue a margin is measured in: the organ's, the tumour and vessel labels.

    The lumen is removed later; the organ's labels:
    :func:`ioplan.planning._organ_rules.margin_tissue_labels` (liver: the liver).
    """
    keep = [*margin_tissue_labels(organ), int(Label.TUMOR), *(int(v) for v in VESSEL_LABELS)]
    return np.isin(labels, keep)


@dataclass(frozen=True, eq=False)
class TargetPoints:
    """The target to cover: masks on the case grid and the points the optimiser sees."""

    tumour: np.ndarray
    #: tumour plus its margin shell in parenchyma, without the lumen of vessels >= 3 mm
    target: np.ndarray
    lumen: np.ndarray
    points_mm: np.ndarray
    must: np.ndarray
    vessel_distance_mm: np.ndarray
    point_volume_ml: float


def target_points(case: Case, tumour: np.ndarray, margin_mm: float,
                  spacing_mm: float) -> TargetPoints:  # fmt: skip
    """The tumour plus its margin in parenchyma, sampled about every ``spacing_mm``."""
    g = case.labels.grid
    sp = np.asarray(g.spacing_mm)
    lab = np.asarray(case.labels.array)
    # work in a box around the tumour: its margin plus room for the vessels' calibre
    box = grid_box(g, [tumour], margin_mm + 30.0)
    lumen = np.zeros(tumour.shape, bool)
    lumen[box] = _large_vessel_lumen(lab[box], g.spacing_mm)
    near = np.zeros(tumour.shape, bool)
    near[box] = ndimage.distance_transform_edt(~tumour[box], sampling=g.spacing_mm) <= margin_mm
    target = tumour | (near & parenchyma(lab, case_organ(case)) & ~lumen)
    stride = np.maximum(1, np.floor(spacing_mm / sp + 1e-6)).astype(int)
    sub = np.zeros_like(target)
    sub[:: stride[0], :: stride[1], :: stride[2]] = True
    idx = np.argwhere(target & sub)
    # in patient (LPS) order, so that the plan does not depend on how the array is stored
    lps = np.round(g.index_to_lps(idx), 3)
    idx = idx[np.lexsort((lps[:, 2], lps[:, 1], lps[:, 0]))]
    if lumen[box].any():
        dist = ndimage.distance_transform_edt(~lumen[box], sampling=g.spacing_mm)
        lo = np.array([b.start for b in box])
        vdist = dist[tuple((idx - lo).T)]
    else:
        vdist = np.full(len(idx), np.inf)
    return TargetPoints(
        tumour=tumour,
        target=target,
        lumen=lumen,
        points_mm=g.index_to_lps(idx),
        must=tumour[tuple(idx.T)],
        vessel_distance_mm=vdist,
        point_volume_ml=float(g.voxel_volume_ml * np.prod(stride)),
    )


@dataclass(frozen=True, eq=False)
class CandidateSet:
    """Every candidate (arrays, one row each) and what the optimiser needs of them.

    ``along``/``radial`` hold, per placement (path and zone centre), the target points'
    coordinates in the zone frame (mm), so that the coverage can be recomputed for any
    required depth without touching the image again.
    """

    trajectories: tuple[Trajectory, ...]
    aims_mm: np.ndarray
    placement_path: np.ndarray  # (P,) trajectory id of each placement
    placement_centre_mm: np.ndarray  # (P, 3) zone centre of each placement
    along: np.ndarray  # (P, N)
    radial: np.ndarray  # (P, N)
    placement: np.ndarray  # (C,) placement id of each candidate
    setting: np.ndarray  # (C,) setting (surrogate row) id
    rows: tuple[tuple, ...]  # surrogate rows (power_w, duration_s, length, width, offset, n)
    tip_mm: np.ndarray  # (C, 3)
    normal_ml: np.ndarray  # (C,) normal liver inside the predicted ellipsoid
    safe: np.ndarray  # (C,) bool: the ellipsoid keeps protect_mm from protected structures
    #: (C,) a lower bound of how far (mm) the predicted ellipsoid stays beyond protect_mm of
    #: the nearest protected voxel: (min scaled radius - 1) x the shorter semi-axis, since
    #: the ellipsoid is the unit sphere stretched by its semi-axes (negative: it reaches
    #: in; inf: no protected voxel within reach). The search raises the clearance it asks
    #: for after a verified zone came nearer than predicted.
    clearance_mm: np.ndarray
    depth_shift_mm: np.ndarray  # (C,) zone centre shift along the path from the aim point
    roll_deg: np.ndarray  # (C,) turn of a parallel array's pattern about its path (degrees)

    @property
    def n(self) -> int:
        return len(self.placement)

    def probes(self, c: int) -> int:
        """How many probes candidate ``c`` places (a parallel cryo array; else 1)."""
        return int(self.rows[int(self.setting[c])][5])

    def probe_tips(self, c: int) -> list[np.ndarray]:
        """Every probe tip of candidate ``c`` (LPS mm)."""
        n = self.probes(c)
        if n == 1:
            return [self.tip_mm[c]]
        return array_tips(self.tip_mm[c], self.direction(c), n, float(self.roll_deg[c]))

    def trajectory(self, c: int) -> Trajectory:
        return self.trajectories[int(self.placement_path[self.placement[c]])]

    def trajectory_id(self, c: int) -> int:
        return int(self.placement_path[self.placement[c]])

    def direction(self, c: int) -> np.ndarray:
        return np.asarray(self.trajectory(c).direction)

    def setting_of(self, c: int) -> tuple:
        return self.rows[int(self.setting[c])]

    def depth_inside_mm(self, c: int) -> np.ndarray:
        """How deep each target point lies inside candidate ``c``'s ellipsoid (mm; < 0 outside)."""
        _, _, length, width, _, _ = self.rows[int(self.setting[c])]
        return _depth_inside(self.along[self.placement[c]], self.radial[self.placement[c]],
                             0.5 * length, 0.5 * width)  # fmt: skip

    def cover_matrix(self, required_depth_mm: np.ndarray) -> sparse.csc_matrix:
        """Boolean (points x candidates): candidate covers the point at the required depth."""
        cols, rows_ = [], []
        for c in range(self.n):
            hit = np.flatnonzero(self.depth_inside_mm(c) >= required_depth_mm)
            rows_.append(hit)
            cols.append(np.full(hit.size, c))
        r = np.concatenate(rows_) if rows_ else np.zeros(0, int)
        k = np.concatenate(cols) if cols else np.zeros(0, int)
        shape = (self.along.shape[1], self.n)
        return sparse.csc_matrix((np.ones(r.size, bool), (r, k)), shape=shape)


def _depth_inside(along: np.ndarray, radial: np.ndarray, a: float, b: float) -> np.ndarray:
    """Depth (mm) of points inside an ellipsoid of semi-axes ``a`` (axis) and ``b``.

    Measured along the ray from the centre: ``r_boundary - r`` (exact for a sphere; for an
    elongated ellipsoid it overstates the depth where the ray meets the surface obliquely).
    Negative outside.
    """
    if a <= 0 or b <= 0:
        return np.full(along.shape, -np.inf)
    r = np.hypot(along, radial)
    q = np.hypot(along / a, radial / b)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_bound = np.where(q > 0, r / np.where(q > 0, q, 1.0), min(a, b))
    return r_bound - r


def _aim_points(points_mm: np.ndarray, k_max: int, seed: int) -> np.ndarray:
    """Centres of k-means clusters of the target points for k = 1 .. k_max (unique)."""
    aims = [points_mm.mean(axis=0)]
    for k in range(2, k_max + 1):
        if len(points_mm) < 4 * k:
            break
        centres, _ = kmeans2(points_mm, k, seed=seed + k, minit="++")
        aims.extend(centres)
    out: list[np.ndarray] = []
    for a in aims:
        if all(np.linalg.norm(a - b) > 1.0 for b in out):
            out.append(np.asarray(a, float))
    return np.array(out)


def _diverse_paths(trajs: list[Trajectory], n: int, min_angle_deg: float) -> list[Trajectory]:
    """The best ``n`` accepted paths, each at least ``min_angle_deg`` from those kept."""
    cos_lim = math.cos(math.radians(min_angle_deg))
    kept: list[Trajectory] = []
    for t in trajs:
        if not t.accepted:
            continue
        d = np.asarray(t.direction)
        if all(float(d @ np.asarray(k.direction)) < cos_lim for k in kept):
            kept.append(t)
        if len(kept) >= n:
            break
    return kept


def _region_points(case: Case, mask: np.ndarray, centre: np.ndarray, radius_mm: float,
                   stride: int = 1) -> np.ndarray:  # fmt: skip
    """LPS points of ``mask`` within ``radius_mm`` of ``centre`` (every ``stride``-th voxel)."""
    g = case.labels.grid
    c = g.lps_to_index(centre)
    half = np.ceil(radius_mm / np.asarray(g.spacing_mm)).astype(int)
    lo = np.clip(np.floor(c).astype(int) - half, 0, np.asarray(g.shape))
    hi = np.clip(np.ceil(c).astype(int) + half + 1, 0, np.asarray(g.shape))
    win = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    idx = np.argwhere(win[::stride, ::stride, ::stride]) * stride + lo
    pts = g.index_to_lps(idx)
    return pts[np.linalg.norm(pts - centre, axis=1) <= radius_mm]


def _frame(points: np.ndarray, centre: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rel = points - centre
    along = rel @ d
    radial = np.sqrt(np.maximum(np.einsum("ij,ij->i", rel, rel) - along * along, 0.0))
    return along, radial


def ellipsoid_clearance_mm(along: np.ndarray, radial: np.ndarray, a_mm: float,
                           b_mm: float) -> float:
    """A lower bound of the points' distance (mm) outside an ellipsoid of revolution.

    Points in the ellipsoid's frame (``along`` its axis, ``radial`` from it), semi-axes
    ``a_mm`` along and ``b_mm`` across. The ellipsoid is the unit sphere stretched by
    diag(a, b, b), which lengthens no distance by less than min(a, b): a point at scaled
    radius rho lies at least (rho - 1) min(a, b) from it. Negative: some point is inside
    (rho < 1); zero: one on the surface; inf: no points.
    """
    if len(along) == 0:
        return math.inf
    rho = float(np.hypot(np.asarray(along) / a_mm, np.asarray(radial) / b_mm).min())
    return (rho - 1.0) * min(a_mm, b_mm)


def make_candidates(
    case: Case,
    app: Applicator,
    tp: TargetPoints,
    rows: tuple[tuple, ...],
    *,
    k_max: int,
    protect_mm: float,
    trajectories: TrajectoryConfig,
    distance_maps: dict[str, np.ndarray],
    seed: int = 0,
    aims: np.ndarray | None = None,
) -> tuple[CandidateSet, list[Trajectory]]:
    """Every candidate: aim points x feasible paths x zone shifts x settings.

    ``aims`` (LPS mm) replaces the default aim points (k-means centres of the target and
    points toward its perivascular parts). Returns the candidates and every path
    examined (accepted or not) for the record. A target with no feasible path gives an
    empty set.
    """
    cfg = planner_settings()["candidates"]
    g = case.labels.grid
    lab = np.asarray(case.labels.array)
    shifts = np.asarray(cfg["depths_mm"], float)
    offsets = np.asarray([r[4] for r in rows], float)
    # paths are searched with the shallowest tip; a deeper tip's extra length is checked
    # per candidate (_segment_clear), so a path that only a deep tip would spoil stays
    tip_beyond = max(0.0, float(shifts.min() + offsets.min())) + 5.0
    if aims is None:
        aims = _aim_points(tp.points_mm, k_max, seed)
        aims = np.vstack([aims, toward(tp, tp.vessel_distance_mm <= _sink_within(), seed)])
    paths: list[Trajectory] = []
    examined: list[Trajectory] = []
    path_aim: list[int] = []
    for i, aim in enumerate(aims):
        if not g.contains_lps(aim):
            continue
        found = candidate_trajectories(
            case, tuple(aim), trajectories, tip_beyond_mm=tip_beyond, distance_maps=distance_maps
        )
        examined.extend(found)
        for t in _diverse_paths(found, int(cfg["paths_per_aim"]), float(cfg["min_path_angle_deg"])):
            paths.append(t)
            path_aim.append(i)
    # what the ellipsoids may reach: protected structures and normal liver near the target
    centre = tp.points_mm.mean(axis=0)
    reach = float(np.max(np.linalg.norm(tp.points_mm - centre, axis=1)))
    reach += float(max(max(r[2], r[3]) for r in rows)) + float(np.abs(shifts).max()) + 5.0
    organ = case_organ(case)
    protected = protected_structures(organ)
    prot = np.isin(lab, [int(x) for labels in protected.values() for x in labels])
    if prot.any() and protect_mm > 0:
        prot = ndimage.binary_dilation(
            prot, iterations=max(1, math.ceil(protect_mm / min(g.spacing_mm)))
        )
    prot_pts = _region_points(case, prot, centre, reach)
    normal = np.isin(lab, host_labels(organ)) & ~tp.target
    stride = max(1, round(4.0 / min(g.spacing_mm)))  # 4 mm lattice: a cost estimate
    normal_pts = _region_points(case, normal, centre, reach, stride)
    normal_ml = g.voxel_volume_ml * stride**3
    p_path, p_centre, alongs, radials = [], [], [], []
    c_place, c_setting, c_tip, c_normal, c_safe, c_shift, c_roll = [], [], [], [], [], [], []
    c_clear = []
    counts = sorted({int(r[5]) for r in rows if int(r[5]) > 1})
    for j, t in enumerate(paths):
        d = np.asarray(t.direction)
        # one turn of the pattern per (path, probe count): the one whose probes' own paths
        # keep the most clearance at the deepest tip (a shaft group shares its shafts)
        deepest = {n: aims[path_aim[j]] + (shifts.max() + max(r[4] for r in rows if r[5] == n)) * d
                   for n in counts}  # fmt: skip
        roll = {n: best_roll_deg(case, t, deepest[n], n, trajectories, distance_maps)
                for n in counts}  # fmt: skip
        for s in shifts:
            zc = aims[path_aim[j]] + s * d
            p = len(p_path)
            p_path.append(j)
            p_centre.append(zc)
            a, r = _frame(tp.points_mm, zc, d)
            alongs.append(a)
            radials.append(r)
            pa, pr = _frame(prot_pts, zc, d)
            na, nr = _frame(normal_pts, zc, d)
            for k, (_p, _t, length, width, off, n_probes) in enumerate(rows):
                A, B = 0.5 * length, 0.5 * width
                c_place.append(p)
                c_setting.append(k)
                c_tip.append(zc + off * d)
                c_shift.append(s)
                c_roll.append(roll.get(int(n_probes), 0.0))
                c_clear.append(ellipsoid_clearance_mm(pa, pr, A, B))
                clear = c_clear[-1] > 0.0
                tip = zc + off * d
                # the applicator's reach: skin entry to the tip, not only to the aim point
                reach_ok = float(np.linalg.norm(tip - np.asarray(t.entry_mm)))
                clear = clear and reach_ok <= trajectories.max_length_mm
                if clear and float((tip - aims[path_aim[j]]) @ d) + 5.0 > tip_beyond:
                    clear = _segment_clear(g, aims[path_aim[j]], tip + 5.0 * d, trajectories,
                                           distance_maps)  # fmt: skip
                if clear and n_probes > 1:
                    clear = _array_clear(case, t, zc + off * d, int(n_probes), trajectories,
                                         distance_maps, c_roll[-1])  # fmt: skip
                c_safe.append(clear)
                c_normal.append(
                    float(np.count_nonzero(np.hypot(na / A, nr / B) <= 1.0)) * normal_ml
                )
    n_pts = len(tp.points_mm)
    cs = CandidateSet(
        trajectories=tuple(paths),
        aims_mm=aims,
        placement_path=np.asarray(p_path, int),
        placement_centre_mm=np.asarray(p_centre, float).reshape(-1, 3),
        along=np.asarray(alongs, float).reshape(-1, n_pts),
        radial=np.asarray(radials, float).reshape(-1, n_pts),
        placement=np.asarray(c_place, int),
        setting=np.asarray(c_setting, int),
        rows=tuple(rows),
        tip_mm=np.asarray(c_tip, float).reshape(-1, 3),
        normal_ml=np.asarray(c_normal, float),
        safe=np.asarray(c_safe, bool),
        clearance_mm=np.asarray(c_clear, float),
        depth_shift_mm=np.asarray(c_shift, float),
        roll_deg=np.asarray(c_roll, float),
    )
    return cs, examined


def _sink_within() -> float:
    return float(planner_settings()["heat_sink"]["within_mm"])


def toward(tp: TargetPoints, hard: np.ndarray, seed: int = 0, k_max: int = 3,
           fractions: tuple[float, ...] = (0.5,)) -> np.ndarray:  # fmt: skip
    """Aim points from the target's centre toward clusters of ``hard`` points.

    At ``fractions`` of the way (half-way by default).

    Where the zone must reach into a corner the heat sink guards (the tissue between the
    tumour and a vessel), an applicator aimed half-way toward it heats that corner the
    most without leaving the rest uncovered ("move the tip toward the vessel").
    """
    pts = tp.points_mm[hard]
    if len(pts) == 0:
        return np.zeros((0, 3))
    centre = tp.points_mm.mean(axis=0)
    k = int(min(k_max, max(1, len(pts) // 20)))
    centres = pts.mean(axis=0)[None, :] if k == 1 else kmeans2(pts, k, seed=seed, minit="++")[0]
    return np.array([centre + f * (c - centre) for c in centres for f in fractions])


def merge(a: CandidateSet, b: CandidateSet) -> CandidateSet:
    """The candidates of ``a`` followed by those of ``b`` (ids of ``a`` unchanged)."""
    n_paths, n_place = len(a.trajectories), len(a.placement_path)
    return CandidateSet(
        trajectories=a.trajectories + b.trajectories,
        aims_mm=np.vstack([a.aims_mm, b.aims_mm]),
        placement_path=np.concatenate([a.placement_path, b.placement_path + n_paths]),
        placement_centre_mm=np.vstack([a.placement_centre_mm, b.placement_centre_mm]),
        along=np.vstack([a.along, b.along]),
        radial=np.vstack([a.radial, b.radial]),
        placement=np.concatenate([a.placement, b.placement + n_place]),
        setting=np.concatenate([a.setting, b.setting]),
        rows=a.rows,
        tip_mm=np.vstack([a.tip_mm, b.tip_mm]),
        normal_ml=np.concatenate([a.normal_ml, b.normal_ml]),
        safe=np.concatenate([a.safe, b.safe]),
        clearance_mm=np.concatenate([a.clearance_mm, b.clearance_mm]),
        depth_shift_mm=np.concatenate([a.depth_shift_mm, b.depth_shift_mm]),
        roll_deg=np.concatenate([a.roll_deg, b.roll_deg]),
    )


def array_tips(tip: np.ndarray, d: np.ndarray, n: int, roll_deg: float = 0.0) -> list[np.ndarray]:
    """The tips of an array of ``n`` parallel probes around ``tip`` (cryo, 15 mm apart).

    The pattern is turned by ``roll_deg`` about the axis.
    """
    from ioplan.physics import Placement, array_placements
    from ioplan.planning._surrogate import CRYO_SPACING_MM

    pls = array_placements(Placement(tuple(tip), tuple(d)), n, CRYO_SPACING_MM, roll_deg)
    return [np.asarray(pl.tip_mm) for pl in pls]


def _segment_clearance_mm(g: Grid, a: np.ndarray, b: np.ndarray,
                          dmaps: dict[str, np.ndarray]) -> float:  # fmt: skip
    """Smallest distance (mm) from the segment ``a``-``b`` to any forbidden group.

    -inf where the segment leaves the grid.
    """
    k = max(2, int(np.linalg.norm(b - a) / (0.5 * min(g.spacing_mm))) + 1)
    pts = a[None, :] + np.linspace(0, 1, k)[:, None] * (b - a)[None, :]
    idx = np.rint(g.lps_to_index(pts)).astype(int)
    if not np.all((idx >= 0) & (idx < np.asarray(g.shape))):
        return -math.inf
    return min((float(dm[tuple(idx.T)].min()) for dm in dmaps.values()), default=math.inf)


def _segment_clear(g: Grid, a: np.ndarray, b: np.ndarray, cfg: TrajectoryConfig,
                   dmaps: dict[str, np.ndarray]) -> bool:  # fmt: skip
    """Whether the segment ``a``-``b`` keeps the safety distance (and stays in the grid)."""
    return _segment_clearance_mm(g, a, b, dmaps) >= cfg.safety_mm


def _array_clearance_mm(case: Case, t: Trajectory, tip: np.ndarray, n: int,
                        dmaps: dict[str, np.ndarray], roll_deg: float) -> float:  # fmt: skip
    """Smallest clearance (mm) of the probes' own paths of a parallel array.

    Each probe runs parallel to ``t`` from the skin-entry plane to its tip.
    """
    d = np.asarray(t.direction)
    length = float(np.linalg.norm(tip - np.asarray(t.entry_mm)))
    return min(
        _segment_clearance_mm(case.labels.grid, p_tip - d * length, p_tip, dmaps)
        for p_tip in array_tips(tip, d, n, roll_deg)
    )


def _array_clear(case: Case, t: Trajectory, tip: np.ndarray, n: int, cfg: TrajectoryConfig,
                 dmaps: dict[str, np.ndarray], roll_deg: float = 0.0) -> bool:  # fmt: skip
    """Whether every probe of a parallel array keeps the safety distance on its own path."""
    return _array_clearance_mm(case, t, tip, n, dmaps, roll_deg) >= cfg.safety_mm


def array_roll_period_deg(n: int) -> float:
    """The turn (degrees) after which an array of ``n`` probes looks the same.

    A regular polygon of ``n`` (2-4 probes) or a ring of ``n - 1`` around a central probe
    (5-8; :func:`ioplan.physics.array_placements`).
    """
    return 360.0 / (n if n <= 4 else n - 1)


def best_roll_deg(case: Case, t: Trajectory, tip: np.ndarray, n: int, cfg: TrajectoryConfig,
                  dmaps: dict[str, np.ndarray]) -> float:  # fmt: skip
    """The turn of an ``n``-probe array about path ``t`` (degrees).

    The default pattern (0) where its probes keep the safety distance at ``tip``, else the
    turn whose probes keep the most clearance from forbidden structures (the smallest such
    turn on a tie). Turns are tried in steps of ``[candidates] array_roll_step_deg`` over
    one period of the pattern. The default pattern may send a probe through a vessel or a
    rib that a turned one misses; the chosen turn is still checked per candidate against
    the safety distance (:func:`_array_clear`).
    """
    if _array_clearance_mm(case, t, tip, n, dmaps, 0.0) >= cfg.safety_mm:
        return 0.0
    step = float(planner_settings()["candidates"]["array_roll_step_deg"])
    rolls = np.arange(0.0, array_roll_period_deg(n) - 1e-9, step)
    clear = [_array_clearance_mm(case, t, tip, n, dmaps, float(r)) for r in rolls]
    return float(rolls[int(np.argmax(clear))])


def heat_sink_prior(tp: TargetPoints) -> np.ndarray:
    """The required depth (mm) per target point before any verification (the sink prior)."""
    hs = planner_settings()["heat_sink"]
    near = tp.vessel_distance_mm <= _sink_within()
    return np.where(near, float(hs["extra_depth_mm"]), 0.0)


def segment_distance_mm(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> float:
    """Smallest distance between segments p0-p1 and q0-q1 (mm), by dense sampling."""
    s = np.linspace(0.0, 1.0, 41)[:, None]
    a = p0 + s * (p1 - p0)
    b = q0 + s * (q1 - q0)
    return float(np.min(np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)))


#: Shaft group id of a candidate: its path id times this, plus its probe count (< 16).
_GROUP_STRIDE = 16


def shaft_groups(cs: CandidateSet) -> np.ndarray:
    """Per candidate, its shaft group: the path and the number of probes it places.

    Candidates of one group share their shafts (the deepest one contains the others); a
    plan takes at most one candidate per group, and one group per path
    (:func:`shaft_conflicts`).
    """
    return np.array([cs.trajectory_id(c) * _GROUP_STRIDE + cs.probes(c) for c in range(cs.n)],
                    dtype=np.int64)  # fmt: skip


def shaft_conflicts(cs: CandidateSet, min_mm: float | None) -> np.ndarray:
    """Pairs of shaft groups (:func:`shaft_groups`) that cannot be chosen together.

    Two groups on one path always conflict (one path carries one applicator or array).
    With ``min_mm`` (applicators run together), two groups on different paths conflict
    when a probe's shaft of one comes within ``min_mm`` of a probe's shaft of the other:
    a group's shafts run from the path's entry to its deepest tip, for a parallel array
    (cryo) each probe's own, as long as the path (as :func:`_array_clear` checks them);
    exact segment distances (:func:`segment_distances_mm`).
    """
    deepest: dict[int, np.ndarray] = {}
    roll: dict[int, float] = {}
    groups = shaft_groups(cs)
    for c in range(cs.n):
        tip = cs.tip_mm[c]
        g = int(groups[c])
        roll[g] = float(cs.roll_deg[c])  # one turn per group (make_candidates)
        if g not in deepest or float((tip - deepest[g]) @ cs.direction(c)) > 0:
            deepest[g] = tip
    ids = sorted(deepest)
    out = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]
           if a // _GROUP_STRIDE == b // _GROUP_STRIDE]  # fmt: skip
    if min_mm is None:
        return np.asarray(out, int).reshape(-1, 2)
    starts, ends, owner = [], [], []
    for g in ids:
        t = cs.trajectories[g // _GROUP_STRIDE]
        n, tip = g % _GROUP_STRIDE, deepest[g]
        d = np.asarray(t.direction, float)
        entry = np.asarray(t.entry_mm, float)
        if n == 1:
            shafts = [(entry, tip)]
        else:
            length = float(np.linalg.norm(tip - entry))
            shafts = [(p - d * length, p) for p in array_tips(tip, d, n, roll[g])]
        for a, b in shafts:
            starts.append(a)
            ends.append(b)
            owner.append(g)
    p0, p1, own = np.array(starts), np.array(ends), np.array(owner)
    close = [np.zeros((0, 2), np.int64)]
    for k in range(len(own)):  # each shaft against the later ones, in one vector step
        other = np.arange(k + 1, len(own))
        other = other[own[other] // _GROUP_STRIDE != own[k] // _GROUP_STRIDE]
        if other.size:
            dist = segment_distances_mm(p0[k], p1[k], p0[other], p1[other])
            near = own[other][dist < min_mm]
            close.append(np.stack([np.minimum(own[k], near), np.maximum(own[k], near)], 1))
    # each pair once, in ascending order: one integer key per pair (a row-wise np.unique
    # sorted millions of rows lexicographically: 7 s of a kidney cryo plan)
    both = np.concatenate(close).astype(np.int64)
    base = int(own.max()) + 1 if own.size else 1
    keys = np.unique(both[:, 0] * base + both[:, 1])
    pairs = np.stack([keys // base, keys % base], 1)
    return np.concatenate([np.asarray(out, np.int64).reshape(-1, 2), pairs]).astype(int)


def segment_distances_mm(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray,
                         q1: np.ndarray) -> np.ndarray:  # fmt: skip
    """Exact smallest distances (mm) between segment p0-p1 and each segment q0[i]-q1[i].

    The closed form of the closest points of two segments (clamped line parameters, then
    each end re-projected), vectorised over the second segments.
    """
    u = p1 - p0
    v = q1 - q0
    w = p0 - q0
    a = float(u @ u)
    b = v @ u
    c = np.einsum("ij,ij->i", v, v)
    d = w @ u
    e = np.einsum("ij,ij->i", v, w)
    den = a * c - b * b
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(den > 1e-12 * a * np.maximum(c, 1e-300), (b * e - c * d) / den, 0.0)
    s = np.clip(s, 0.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(c > 0, (b * s + e) / c, 0.0)
    t = np.clip(t, 0.0, 1.0)
    s = np.clip(np.where(a > 0, (b * t - d) / a, 0.0), 0.0, 1.0)
    diff = (p0 + s[:, None] * u) - (q0 + t[:, None] * v)
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def grid_box(grid: Grid, masks: list[np.ndarray], pad_mm: float) -> tuple[slice, ...]:
    """The index box holding every mask's voxels plus ``pad_mm`` (clipped to the grid)."""
    idx = np.concatenate([np.argwhere(m) for m in masks if m.any()])
    pad = np.ceil(pad_mm / np.asarray(grid.spacing_mm)).astype(int)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, np.asarray(grid.shape))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
