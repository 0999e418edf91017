"""Applicator placement and energy, verified by full simulation: the :class:`Plan`.

Search, coarse to fine:

1. Feasible trajectories to the tumour centre (:func:`candidate_trajectories`).
2. A surrogate screens settings: the applicator's calibrated zone (length, width,
   centre offset) from block simulations, one per power with the zone measured at
   every candidate time (snapshots), cached per applicator. For each of the best
   trajectories the tip is placed so that the zone's centre lies on the tumour
   centre, and the least energy whose zone ellipsoid holds the tumour plus its
   margin is taken.
3. The chosen plan is simulated in full on the patient's anatomy (perfusion and
   the heat sink of the case's vessels included). Coverage, margin and risk come
   from that simulation, never from the surrogate. If it falls short, the next
   settings up are simulated (at most three), then more applicators; if nothing
   covers, the best plan is reported with where it falls short and what would help.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.anatomy import Case
from ioplan.devices import Applicator, applicator
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume, resample, resample_to_spacing
from ioplan.planning._checks import (
    ANISOTROPY_LIMIT,
    MARGIN_RANGE_MM,
    PROTECT_RANGE_MM,
    SPACING_RANGE_MM,
    check_in_range,
    check_plan_request,
)
from ioplan.planning._metrics import MARGIN_METHOD, plan_metrics, target_points, tumour_mask
from ioplan.planning._surrogate import (
    CRYO_LETHAL_C,
    CRYO_PROTOCOL,
    CRYO_SPACING_MM,
    MAX_CRYOPROBES,
    zone_table,
)
from ioplan.planning._trajectories import (
    Trajectory,
    TrajectoryConfig,
    candidate_trajectories,
    forbidden_groups,
)

__all__ = [
    "DEFAULT_APPLICATOR",
    "GOAL",
    "GOAL_MARGIN_COVERAGE_PERCENT",
    "PLAN_SCHEMA_VERSION",
    "Plan",
    "PlanConfig",
    "plan_ablation",
]

PLAN_SCHEMA_VERSION = 1
#: Share of the tumour plus its margin the zone must cover for the plan to meet its goal (%).
GOAL_MARGIN_COVERAGE_PERCENT = 99.0
#: A plan's goal, as recorded in plan.json (``goal_met``, ``covered``).
GOAL = (
    f"the verified zone covers at least {GOAL_MARGIN_COVERAGE_PERCENT:g} % of the tumour plus "
    "its margin, with no lethal damage to a protected structure nor within protect_mm of it"
)
#: Default applicator per modality.
DEFAULT_APPLICATOR = {"mwa": "covidien-emprint", "rfa": "cooled-rf-3cm", "cryo": "cryo-2.4mm"}
#: Margins by histology (mm): 5 mm (HCC; Laimer et al. 2020, ACCLAIM), 10 mm for colorectal
#: metastases (Wang et al., CVIR 2013: 2-year LTP-free 26/46/74/80 % for 0/1-5/6-10/11-15 mm);
#: shared/validation/README.md section 8.
DEFAULT_MARGIN_MM = {"colorectal_metastasis": 10.0}


@dataclass(frozen=True)
class PlanConfig:
    """What the plan must achieve and how hard to search."""

    modality: str = "mwa"
    applicator_id: str | None = None
    margin_mm: float | None = None
    protect_mm: float = 3.0
    tumour_index: int = 0
    spacing_mm: float = 2.0
    trajectories: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    max_candidates: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.modality not in DEFAULT_APPLICATOR:
            raise InputError(f"modality must be mwa, rfa or cryo, got {self.modality!r}")
        if self.margin_mm is not None:
            check_in_range(self.margin_mm, *MARGIN_RANGE_MM, "margin")
        check_in_range(self.protect_mm, *PROTECT_RANGE_MM, "protect distance")
        check_in_range(self.spacing_mm, *SPACING_RANGE_MM, "planning spacing")
        if self.tumour_index < 0:
            raise InputError(f"tumour index must be 0 or more, got {self.tumour_index}")
        if not 1 <= self.max_candidates <= 50:
            raise InputError(f"max_candidates must be 1-50, got {self.max_candidates}")

    def applicator(self) -> Applicator:
        """The applicator used (the modality's default unless given)."""
        app = applicator(self.applicator_id or DEFAULT_APPLICATOR[self.modality])
        want = {"mwa": "mw", "rfa": "rf", "cryo": "cryo"}[self.modality]
        if app.modality != want:
            raise InputError(f"{app.id} is a {app.modality} applicator, not {self.modality}")
        return app


@dataclass(frozen=True)
class Plan:
    """A verified treatment plan (JSON: :meth:`to_dict`, schema :data:`PLAN_SCHEMA_VERSION`)."""

    modality: str
    applicators: tuple[dict[str, Any], ...]
    margin_mm: float
    coverage_percent: float
    margin_coverage_percent: float
    minimal_margin_mm: float
    ablated_liver_ml: float
    zone_volume_ml: float
    at_risk: tuple[dict[str, Any], ...]
    covered: bool
    target_mm: tuple[float, float, float]
    tumour_diameter_mm: float
    histology: str
    verified_by_simulation: bool
    simulation: dict[str, Any]
    surrogate: dict[str, Any]
    rejected_trajectories: tuple[dict[str, Any], ...]
    accepted_trajectories: int
    suggestions: tuple[str, ...]
    runtime_s: float
    seed: int
    software_version: str
    notes: tuple[str, ...] = ()
    tumour_index: int = 0
    #: LPS point (mm) of the tumour surface where the margin is smallest (None: no zone)
    minimal_margin_point_mm: tuple[float, float, float] | None = None
    protect_mm: float = 3.0
    #: how far (mm) the verified zone reaches past the scanned range on each patient side
    #: (``{"superior": 6.0}``; empty: the zone lies inside the image); there the edge
    #: slices were continued, and the zone's metrics count only its part inside the image
    extends_past_scan_mm: dict[str, float] = field(default_factory=dict)
    #: the zone's volume past the scanned range (mL), not in ``zone_volume_ml``
    zone_past_scan_ml: float = 0.0
    zone: Volume | None = field(default=None, repr=False, compare=False)
    tmax: Volume | None = field(default=None, repr=False, compare=False)
    tmin: Volume | None = field(default=None, repr=False, compare=False)

    @property
    def goal_met(self) -> bool:
        """Whether the plan reaches its goal (see :data:`GOAL`): the same as ``covered``."""
        return bool(self.covered)

    def to_dict(self) -> dict[str, Any]:
        """The ``plan.json`` document (keys named in the issue are a contract).

        Non-finite numbers (a minimal margin with no zone at all) become ``null``.
        """
        d = asdict(self)
        for k in ("zone", "tmax", "tmin"):
            d.pop(k)
        d["schema_version"] = PLAN_SCHEMA_VERSION
        for k in ("applicators", "at_risk", "rejected_trajectories", "suggestions", "notes"):
            d[k] = list(d[k])
        d["target_mm"] = [round(v, 2) for v in self.target_mm]
        for k in (
            "coverage_percent",
            "margin_coverage_percent",
            "minimal_margin_mm",
            "ablated_liver_ml",
            "zone_volume_ml",
            "runtime_s",
        ):
            d[k] = round(d[k], 3) if math.isfinite(d[k]) else None
        if self.minimal_margin_point_mm is not None:
            d["minimal_margin_point_mm"] = [round(v, 2) for v in self.minimal_margin_point_mm]
        d["minimal_margin_method"] = MARGIN_METHOD
        d["goal_met"] = self.goal_met
        d["goal"] = {
            "description": GOAL,
            "margin_coverage_percent_at_least": GOAL_MARGIN_COVERAGE_PERCENT,
            "margin_mm": self.margin_mm,
            "protect_mm": self.protect_mm,
        }
        return d


def _ellipsoid_holds(points: np.ndarray, centre: np.ndarray, d: np.ndarray, length: float,
                     width: float) -> float:  # fmt: skip
    """Largest normalised radius of ``points`` in the zone ellipsoid (<= 1: all inside)."""
    rel = points - centre
    a = rel @ d
    r2 = np.einsum("ij,ij->i", rel, rel) - a * a
    if length <= 0 or width <= 0:
        return float("inf")
    q = (a / (0.5 * length)) ** 2 + r2 / (0.5 * width) ** 2
    return float(np.sqrt(q.max()))


def _ladder(app, trajs, pts, centre, spacing_mm, n_steps: int = 3):
    """The trajectory to use and the settings to verify, least energy first.

    For each trajectory, the settings whose surrogate zone holds ``pts`` sorted by
    energy; the trajectory whose first such setting needs the least energy wins (ties:
    the better path). Its ladder is that setting and the next ones up. If no
    setting holds the points, the ladder is the settings that come closest.
    """
    table = zone_table(app, spacing_mm)
    ranked = []
    for tr in trajs:
        d = np.asarray(tr.direction)
        rows = []
        for p, t, length, width, offset, n in table:
            fit = _ellipsoid_holds(pts, centre, d, length, width)
            energy = n * t if app.modality == "cryo" else n * p * t
            rows.append((energy, fit, p, t, offset, length, width, n))
        rows.sort(key=lambda r: r[0])
        ok = [r for r in rows if r[1] <= 1.0]
        if ok and app.modality == "cryo":
            # the fewest probes that cover, then one and two more (the heat sink of the
            # case's vessels shrinks the ice below the surrogate's)
            picks = [r for r in rows if ok[0][7] <= r[7] <= ok[0][7] + 2]
        elif ok:
            # the least energy that covers, then half-way and the most (the heat sink and
            # the anatomy can shrink the zone below the surrogate's)
            picks = [ok[0], ok[len(ok) // 2], ok[-1]]
        if ok:
            ladder = [r for i, r in enumerate(picks) if r not in picks[:i]]
            ranked.append((0, ok[0][0], -tr.score, tr, ladder[:n_steps]))
        else:
            close = sorted(rows, key=lambda r: (r[1], r[0]))[:n_steps]
            if app.modality == "cryo":
                close = sorted(close, key=lambda r: r[0])  # fewer probes first
            ranked.append((1, close[0][1], -tr.score, tr, close))
    ranked.sort(key=lambda r: r[:3])
    _, _, _, tr, ladder = ranked[0]
    return tr, ladder


def _with_track(z: np.ndarray, g: Grid, app: Applicator, spacing_mm: float, tips_mm,
                d: np.ndarray) -> np.ndarray:  # fmt: skip
    """The zone plus the applicators' own voxels where the zone surrounds the shaft.

    The engine does not count the applicator's voxels as tissue; where the zone lies
    around the shaft, the track is ablated too. Only the box around the zone is
    visited (the rest of the case grid cannot change).
    """
    near = ndimage.binary_dilation(z, iterations=2)
    if not near.any():
        return z
    idx = np.argwhere(near)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    pts = g.index_to_lps(np.argwhere(np.ones(hi - lo, bool)) + lo).reshape(*(hi - lo), 3)
    r_shaft = max(0.5 * app.diameter_mm, 0.71 * spacing_mm) + 0.5 * max(g.spacing_mm)
    shaft = np.zeros(pts.shape[:3], bool)
    for t_ in tips_mm:
        rel = pts - np.asarray(t_, float)
        along = rel @ d
        radial = np.linalg.norm(rel - along[..., None] * d, axis=-1)
        shaft |= (along <= 0) & (radial <= r_shaft)
    out = z.copy()
    out[box] |= shaft & near[box]
    return out


def _verify(case, app, tr, power, duration, offset, cfg, progress, n=1):
    """Full simulation of one plan on the case; metrics on the case grid."""
    from ioplan.physics import CryoProtocol, SimulationConfig, simulate

    d = np.asarray(tr.direction)
    tip = np.asarray(tr.target_mm) + d * offset
    kw: dict[str, Any] = {"power_w": power, "duration_s": duration}
    spacing_between = 15.0
    if app.modality == "cryo":
        kw = {"protocol": CryoProtocol.parse(CRYO_PROTOCOL), "lethal_temperature_c": CRYO_LETHAL_C}
        spacing_between = CRYO_SPACING_MM
    res = simulate(
        SimulationConfig(
            applicator=app,
            case=case,
            tip_mm=tuple(float(v) for v in tip),
            direction=tuple(float(v) for v in d),
            spacing_mm=cfg.spacing_mm,
            tissue=None,
            array=n,
            spacing_between_mm=spacing_between,
            **kw,
        ),
        progress=progress,
    )
    g = case.labels.grid
    zone = resample(Volume(res.zone_mask.astype(np.uint8), res.grid), g, interpolation="nearest")
    tmax = resample(
        Volume(res.state.tmax_c.astype(np.float32), res.grid), g, interpolation="linear",
        default_value=37.0,
    )  # fmt: skip
    tmin = resample(
        Volume(res.state.tmin_c.astype(np.float32), res.grid), g, interpolation="linear",
        default_value=37.0,
    )  # fmt: skip
    z = _with_track(np.asarray(zone.array) > 0, g, app, cfg.spacing_mm, res.settings["tips_mm"], d)
    tips = [np.asarray(t_, float) for t_ in res.settings["tips_mm"]]
    return res, z, np.asarray(tmax.array), np.asarray(tmin.array), tips


def _parallel_paths_safe(
    tr: Trajectory, n: int, spacing_mm: float, dmaps: dict, safety_mm: float, grid: Grid
) -> bool:
    """Whether ``n`` paths parallel to ``tr`` around its axis all keep the safety distance."""
    from ioplan.physics import Placement, array_placements

    d = np.asarray(tr.direction)
    target = np.asarray(tr.target_mm)
    for pl in array_placements(Placement(tuple(target), tuple(d)), n, spacing_mm):
        tip = np.asarray(pl.tip_mm)
        entry = tip - d * tr.length_mm
        k = max(2, int(np.linalg.norm(tip - entry) / (0.5 * min(grid.spacing_mm))))
        pts = entry[None, :] + np.linspace(0, 1, k)[:, None] * (tip - entry)[None, :]
        idx = np.rint(grid.lps_to_index(pts)).astype(int)
        idx = idx[np.all((idx >= 0) & (idx < np.asarray(grid.shape)), axis=1)]
        for dm in dmaps.values():
            if idx.size and float(dm[tuple(idx.T)].min()) < safety_mm:
                return False
    return True


def _past_scan_notes(settings: dict[str, Any], notes: list[str]) -> tuple[dict, dict, list]:
    """The simulation domain's and the zone's reach past the scanned range (mm per side).

    A case whose scan range is short (a slab of slices) is simulated with its edge
    slices continued outward; the engine's warnings about it become the plan's notes
    (the zone's when it reaches past the scan, else the domain's). Returns the domain's
    reach, the zone's reach and the notes added.
    """
    domain = dict(settings.get("extends_past_scan_mm", {}))
    zone = dict(settings.get("zone_extends_past_scan_mm", {}))
    added = [
        w
        for w in settings.get("warnings", [])
        if "past the scanned range" in w and (("ablation zone" in w) == bool(zone))
    ]
    if zone:
        added.append(
            "coverage, margin and zone volume count only the part of the zone inside the "
            "image; a scan covering the whole zone would confirm the plan"
        )
    notes.extend(added)
    return domain, zone, added


def _isotropic(case: Case, spacing_mm: float) -> Case:
    """``case`` resampled to cubic voxels of ``spacing_mm`` over the same extent."""
    iso = (spacing_mm,) * 3
    image = resample_to_spacing(case.image, iso, interpolation="linear")
    labels = resample_to_spacing(case.labels, iso, interpolation="nearest")
    return replace(case, image=image, labels=labels)


@dataclass(frozen=True)
class _Target:
    """The tumour to treat, on the planning grid."""

    mask: np.ndarray
    centre_mm: np.ndarray
    diameter_mm: float
    histology: str
    margin_mm: float


@dataclass(frozen=True)
class _Paths:
    """The needle paths: the feasible ones (best first), the rejected ones, distance maps."""

    accepted: list[Trajectory]
    rejected: tuple[dict[str, Any], ...]
    distance_maps: dict


@dataclass(frozen=True)
class _Verified:
    """The best simulated setting and the record of every setting simulated."""

    ok: bool
    step: tuple
    result: Any
    zone: np.ndarray
    tmax: np.ndarray
    tmin: np.ndarray
    tips: list[np.ndarray]
    metrics: dict[str, Any]
    tried: list[dict[str, Any]]


def _planning_case(case: Case, cfg: PlanConfig, notes: list[str]) -> Case:
    """The case on the grid the plan is made on (resampled when very anisotropic)."""
    sp = np.asarray(case.labels.grid.spacing_mm)
    if sp.max() / sp.min() <= ANISOTROPY_LIMIT:
        return case
    notes.append(
        f"the case's voxels ({', '.join(f'{v:g}' for v in sp)} mm) are very anisotropic: "
        f"it was resampled to {cfg.spacing_mm:g} mm isotropic voxels for planning (image "
        "linear, labels nearest neighbour); the plan's maps are on that grid"
    )
    return _isotropic(case, cfg.spacing_mm)


def _target(case: Case, cfg: PlanConfig) -> _Target:
    """The tumour's mask, centre, equivalent diameter, histology and the margin to reach."""
    mask, rec = tumour_mask(case, cfg.tumour_index)
    g = case.labels.grid
    histology = str(rec.get("histology", "unknown"))
    margin = cfg.margin_mm if cfg.margin_mm is not None else DEFAULT_MARGIN_MM.get(histology, 5.0)
    centre = g.index_to_lps(np.argwhere(mask).mean(axis=0))
    diam = 2.0 * (3.0 * float(mask.sum()) * g.voxel_volume_ml * 1e3 / (4.0 * math.pi)) ** (1 / 3)
    return _Target(mask, centre, diam, histology, margin)


def _blocked_summary(trajs: list[Trajectory]) -> str:
    """The structures that block most paths, with their counts."""
    counts: dict[str, int] = {}
    for t in trajs:
        for r in t.reasons:
            key = r.split(" (")[0].split(" at (")[0]
            key = key.split("mm from ")[-1] if "mm from " in key else key
            counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} ({v})" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:4])


def _paths(case: Case, cfg: PlanConfig, target: _Target, offset_guess_mm: float) -> _Paths:
    """Feasible needle paths to the tumour centre; refuses when there is none."""
    dmaps = forbidden_groups(case, cfg.trajectories)
    trajs = candidate_trajectories(
        case,
        tuple(target.centre_mm),
        cfg.trajectories,
        tip_beyond_mm=max(0.0, -offset_guess_mm) + 5.0,
        distance_maps=dmaps,
    )
    accepted = [t for t in trajs if t.accepted]
    if not accepted:
        raise InputError(
            f"no feasible needle path to the tumour; blocked by: {_blocked_summary(trajs)}"
        )
    return _Paths(accepted, tuple(t.to_dict() for t in trajs if not t.accepted), dmaps)


def _with_more_applicators(tr: Trajectory, ladder: list, paths: _Paths, cfg: PlanConfig,
                           grid: Grid) -> tuple[list, list[str]]:  # fmt: skip
    """MW/RF: 2 and 3 parallel applicators (15 mm apart) at the least-energy setting.

    Their own paths are checked like the first one's; those that break the safety
    distance are returned as the reasons they were not tried.
    """
    extra, blocked = [], []
    for n in (2, 3):
        if _parallel_paths_safe(tr, n, 15.0, paths.distance_maps, cfg.trajectories.safety_mm, grid):
            extra.append((*ladder[0][:7], n))
        else:
            blocked.append(
                f"{n} parallel applicators 15 mm apart: a path breaks the "
                f"{cfg.trajectories.safety_mm:g} mm safety distance"
            )
    return list(ladder) + extra, blocked


def _verify_ladder(case: Case, app: Applicator, tr: Trajectory, ladder: list, target: _Target,
                   cfg: PlanConfig, say, progress) -> _Verified:  # fmt: skip
    """Simulate the settings up the ladder until one meets the goal (or harms a structure)."""
    tried: list[dict[str, Any]] = []
    best = None
    for step_ in ladder:
        _, _fit, p, t, offset, length, width, n = step_
        what = (
            f"{n} x {t:g} s freeze protocol" if app.modality == "cryo" else f"{n} x {p:g} W {t:g} s"
        )
        say(f"verifying {what} (surrogate zone {length:.0f} x {width:.0f} mm)")
        res, z, tmax, tmin, tips = _verify(case, app, tr, p, t, offset, cfg, progress, n=int(n))
        m = plan_metrics(case, z, tmax, tmin, target.mask, target.margin_mm, cfg.protect_mm)
        tried.append(
            {"applicators": int(n), "power_w": p, "duration_s": t}
            | {k: (round(m[k], 2) if math.isfinite(m[k]) else None)
               for k in ("coverage_percent", "margin_coverage_percent", "minimal_margin_mm")}
        )  # fmt: skip
        safe = not any(r["lethal_damage"] or r["within_protect_distance"] for r in m["at_risk"])
        covers = m["margin_coverage_percent"] >= GOAL_MARGIN_COVERAGE_PERCENT
        key = (covers and safe, m["margin_coverage_percent"], -n)
        if best is None or key > best[0]:
            best = (key, _Verified(key[0], step_, res, z, tmax, tmin, tips, m, tried))
        if key[0] or not safe:
            break  # covered; or more energy would only reach further into a protected structure
    if best is None:  # pragma: no cover - the ladder always holds a setting
        raise RuntimeError("no setting to verify")
    return best[1]


def _suggestions(v: _Verified, app: Applicator, target: _Target, blocked: list[str]) -> list[str]:
    """What would help a plan that misses its goal (nothing for one that meets it)."""
    if v.ok:
        return []
    m, n = v.metrics, v.step[7]
    out = [f"not possible here: {b}" for b in blocked]
    if m["margin_coverage_percent"] < GOAL_MARGIN_COVERAGE_PERCENT:
        more = "" if blocked else "2-3 applicators, "
        if app.modality == "cryo":
            more = "" if n >= MAX_CRYOPROBES else f"{n + 1}-{MAX_CRYOPROBES} cryoprobes, "
        out.append(
            f"the zone covers {m['margin_coverage_percent']:.1f} % of the tumour plus its "
            f"{target.margin_mm:g} mm margin: consider {more}another path or device, a smaller "
            "margin only if the histology allows it, or combining ablation with TACE/TARE"
        )
    if target.diameter_mm > 30.0:
        out.append(
            f"the tumour is {target.diameter_mm:.0f} mm: ablation is mostly used up to 30 mm (up "
            "to 50 mm with several probes); radioembolization or surgery may suit it better"
        )
    for r in m["at_risk"]:
        if r["lethal_damage"] or r["within_protect_distance"]:
            out.append(
                f"{r['structure']} is {r['closest_distance_mm']:.1f} mm from the zone: "
                "hydrodissection, a different path, or cryoablation"
            )
    return out


def _applicator_records(app: Applicator, tr: Trajectory, v: _Verified) -> tuple[dict, ...]:
    """Each applicator's entry, tip, direction and setting (LPS mm, W, s)."""
    _, _fit, p, t, offset, _length, _width, _n = v.step
    d = np.asarray(tr.direction)
    entry0 = np.asarray(tr.entry_mm)
    tip0 = np.asarray(tr.target_mm) + d * offset
    return tuple(
        {
            "id": app.id,
            "tip_mm": [round(float(x), 2) for x in tip],
            "entry_mm": [round(float(x), 2) for x in entry0 + (tip - tip0)],
            "direction": [round(float(x), 5) for x in d],
            "power_w": p,
            "duration_s": t,
            "protocol": CRYO_PROTOCOL if app.modality == "cryo" else None,
            "path_length_mm": round(tr.length_mm, 1),
            "insertion_depth_mm": round(float(np.linalg.norm(tip0 - entry0)), 1),
            "trajectory": tr.to_dict(),
        }
        for tip in v.tips
    )


def plan_ablation(
    case: Case,
    cfg: PlanConfig | None = None,
    *,
    log: Callable[[str], None] | None = None,
    progress: Callable[[float], None] | None = None,
) -> Plan:
    """Plan a thermal ablation of one tumour of ``case`` and verify it by simulation.

    The steps, each a function of this module: the cheap checks
    (:func:`~ioplan.planning.check_plan_request`: applicator, tumour index, memory,
    tumour in the liver); the planning grid (cubic voxels if the case's are very
    anisotropic); the target (tumour mask, centre, equivalent diameter, margin by
    histology); feasible needle paths (:func:`candidate_trajectories`); a ladder of
    settings screened by the applicator's calibrated zone surrogate; full simulations
    up the ladder (Pennes bioheat with perfusion and the heat sink of the case's
    vessels); metrics of the best one; suggestions where it falls short.

    Parameters
    ----------
    case : Case
        Image and label map (:class:`ioplan.anatomy.Label` values), LPS mm.
    cfg : PlanConfig, optional
        Modality, applicator, ablative margin (mm; default 5, 10 for colorectal
        metastases), protect distance (mm), tumour index, simulation voxel size
        (1-4 mm) and path constraints. Default: ``PlanConfig()``.
    log : callable, optional
        Receives one line of text per step.
    progress : callable, optional
        Receives the simulations' progress (0-1).

    Returns
    -------
    Plan
        Applicators (entry and tip in LPS mm, power in W, time in s), coverage of the
        tumour and of the tumour plus margin (%), minimal ablative margin (mm, by
        :func:`ioplan.assessment.measure_margin`), normal liver ablated (mL),
        structures at risk (distance in mm, temperatures in degC), ``covered`` /
        ``goal_met``, and the zone, Tmax and Tmin maps on the planning grid.

    Raises
    ------
    InputError
        Bad configuration, no or no such tumour, a tumour outside the liver, not
        enough memory, or no feasible needle path.

    Notes
    -----
    The surrogate only ranks settings; coverage, margin and risk come from the full
    simulation. Margins by histology: Laimer et al., "Minimal ablative margin (MAM)
    assessment with image fusion", Eur Radiol 2020, doi:10.1007/s00330-019-06609-7
    (HCC, 5 mm); Wang et al., "Margin size is an independent predictor of local tumor
    progression after ablation of colon cancer liver metastases", Cardiovasc Intervent
    Radiol 2013, doi:10.1007/s00270-012-0377-1 (10 mm).

    Examples
    --------
    A 16 mm tumour in a ball of liver, planned on 4 mm voxels (seconds once the
    applicator's surrogate table is cached; its first computation takes about a minute,
    so the example is not run as a doctest)::

        >>> import numpy as np
        >>> from ioplan.anatomy import Case, Label
        >>> from ioplan.imaging import Grid, Volume
        >>> g = Grid((31, 31, 31), (4.0, 4.0, 4.0), (-60.0, -60.0, -60.0))
        >>> z, y, x = np.meshgrid(*g.axis_coordinates_mm(), indexing="ij")
        >>> r = np.sqrt(x**2 + y**2 + z**2)
        >>> lab = np.where(r <= 50, Label.LIVER, Label.BACKGROUND).astype(np.uint8)
        >>> lab[r <= 8] = Label.TUMOR
        >>> case = Case(Volume(np.full(g.shape, 60.0, np.float32), g), Volume(lab, g),
        ...             tumors=({"centre_mm": [0, 0, 0], "histology": "hcc"},))
        >>> cfg = PlanConfig(spacing_mm=4.0, max_candidates=1)
        >>> plan = plan_ablation(case, cfg)  # doctest: +SKIP
        >>> plan.applicators[0]["id"], plan.verified_by_simulation  # doctest: +SKIP
        ('covidien-emprint', True)
    """
    from ioplan import __version__

    cfg = cfg or PlanConfig()
    t0 = time.perf_counter()
    say = log or (lambda _m: None)
    check_plan_request(case, cfg)
    app = cfg.applicator()
    notes: list[str] = []
    case = _planning_case(case, cfg, notes)
    for note in notes:
        say(note)
    target = _target(case, cfg)
    say(f"tumour: {target.diameter_mm:.0f} mm ({target.histology}), margin {target.margin_mm:g} mm")
    table = zone_table(app, cfg.spacing_mm)
    paths = _paths(case, cfg, target, float(np.median([r[4] for r in table])))
    n_paths = len(paths.accepted) + len(paths.rejected)
    say(f"trajectories: {len(paths.accepted)} feasible of {n_paths}")
    g = case.labels.grid
    pts = target_points(target.mask, g, target.margin_mm)
    tr, ladder = _ladder(app, paths.accepted[: cfg.max_candidates], pts, target.centre_mm,
                         cfg.spacing_mm)  # fmt: skip
    blocked: list[str] = []
    if app.modality in ("mw", "rf"):
        ladder, blocked = _with_more_applicators(tr, ladder, paths, cfg, g)
    v = _verify_ladder(case, app, tr, ladder, target, cfg, say, progress)
    m = v.metrics
    _, fit, _p, _t, _offset, length, width, _n = v.step
    past = _past_scan_notes(v.result.settings, notes)
    if tr.unimaged_mm > 0:  # the path search continued the edge slices beyond the image
        notes.append(
            f"the needle path runs {tr.unimaged_mm:.0f} mm outside the scanned image, where "
            "the anatomy is assumed from the edge slices, not imaged: review the path on an "
            "image that covers it"
        )
        say(notes[-1])
    for note in past[2]:
        say(note)
    return Plan(
        modality=cfg.modality,
        applicators=_applicator_records(app, tr, v),
        margin_mm=target.margin_mm,
        coverage_percent=m["coverage_percent"],
        margin_coverage_percent=m["margin_coverage_percent"],
        minimal_margin_mm=m["minimal_margin_mm"],
        ablated_liver_ml=m["ablated_liver_ml"],
        zone_volume_ml=m["zone_volume_ml"],
        at_risk=m["at_risk"],
        covered=bool(v.ok),
        target_mm=tuple(float(x) for x in target.centre_mm),
        tumour_diameter_mm=target.diameter_mm,
        histology=target.histology,
        verified_by_simulation=True,
        simulation={
            "spacing_mm": cfg.spacing_mm,
            "grid_shape": list(v.result.grid.shape),
            "perfusion": "in vivo (tissue table), shut down where coagulated",
            "heat_sink": "vessels >= 3 mm from the label map at blood temperature",
            "runtime_s": round(v.result.runtime_s, 2),
            "max_temperature_c": round(v.result.max_temperature_c, 2),
            "tried": v.tried,
            "not_tried": blocked,
        }
        | ({"extends_past_scan_mm": past[0]} if past[0] else {}),
        surrogate={
            "kind": "calibrated zone ellipsoid from block simulations (perfused liver)",
            "rows": len(table),
            "predicted_fit": round(fit, 3),
            "predicted_length_mm": round(length, 2),
            "predicted_width_mm": round(width, 2),
        },
        rejected_trajectories=paths.rejected,
        accepted_trajectories=len(paths.accepted),
        suggestions=tuple(_suggestions(v, app, target, blocked)),
        notes=tuple(notes),
        tumour_index=cfg.tumour_index,
        minimal_margin_point_mm=m["minimal_margin_point_mm"],
        protect_mm=cfg.protect_mm,
        extends_past_scan_mm=past[1],
        zone_past_scan_ml=float(v.result.settings.get("zone_past_scan_ml", 0.0)),
        runtime_s=time.perf_counter() - t0,
        seed=cfg.seed,
        software_version=__version__,
        zone=Volume(v.zone.astype(np.uint8), g),
        tmax=Volume(v.tmax.astype(np.float32), g),
        tmin=Volume(v.tmin.astype(np.float32), g),
    )
