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

from ioplan.anatomy import Case, Label, local_radius_mm
from ioplan.devices import Applicator, applicator
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume, resample, resample_to_spacing
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
    "PLAN_SCHEMA_VERSION",
    "Plan",
    "PlanConfig",
    "plan_ablation",
    "tumour_mask",
]

PLAN_SCHEMA_VERSION = 1
#: Default applicator per modality.
DEFAULT_APPLICATOR = {"mwa": "covidien-emprint", "rfa": "cooled-rf-3cm", "cryo": "cryo-2.4mm"}
#: Margins by histology (mm): 5 mm (HCC; Laimer et al. 2020, ACCLAIM), 10 mm for colorectal
#: metastases (Wang et al., CVIR 2013: 2-year LTP-free 26/46/74/80 % for 0/1-5/6-10/11-15 mm);
#: shared/validation/README.md section 8.
DEFAULT_MARGIN_MM = {"colorectal_metastasis": 10.0}
#: Structures that must not receive lethal damage (planning), within ``protect_mm``.
PROTECTED = {
    "bile duct": (Label.BILE_DUCT,),
    "bowel": (Label.BOWEL_WALL, Label.BOWEL_CONTENT, Label.STOMACH),
    "diaphragm": (Label.DIAPHRAGM,),
    "gallbladder": (Label.GALLBLADDER,),
    "kidney": (Label.KIDNEY,),
    "lung": (Label.LUNG,),
    "heart": (Label.HEART,),
}


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
        if self.margin_mm is not None and (
            not np.isfinite(self.margin_mm) or not 0 <= self.margin_mm <= 20
        ):
            raise InputError(f"margin must be 0-20 mm, got {self.margin_mm}")
        if not np.isfinite(self.protect_mm) or not 0 <= self.protect_mm <= 30:
            raise InputError(f"protect distance must be 0-30 mm, got {self.protect_mm}")
        if not np.isfinite(self.spacing_mm) or not 1.0 <= self.spacing_mm <= 4.0:
            raise InputError(f"planning spacing must be 1-4 mm, got {self.spacing_mm}")

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
    zone: Volume | None = field(default=None, repr=False, compare=False)
    tmax: Volume | None = field(default=None, repr=False, compare=False)
    tmin: Volume | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The ``plan.json`` document (keys named in the issue are a contract)."""
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
            d[k] = round(d[k], 3)
        return d


def tumour_mask(case: Case, index: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """The tumour's voxels (the connected part holding its listed centre) and its record."""
    lab = np.asarray(case.labels.array)
    tum = lab == int(Label.TUMOR)
    if not tum.any():
        raise InputError("the case has no tumour label: nothing to plan for")
    comps, n = ndimage.label(tum)
    rec: dict[str, Any] = {}
    if case.tumors and index < len(case.tumors):
        rec = dict(case.tumors[index])
    elif index > 0:
        raise InputError(f"tumour {index} does not exist (the case lists {len(case.tumors)})")
    pick = 0
    if "centre_mm" in rec:
        g = case.labels.grid
        c = np.rint(g.lps_to_index(rec["centre_mm"])).astype(int)
        if np.all((c >= 0) & (c < np.asarray(g.shape))):
            pick = int(comps[tuple(c)])
    if pick == 0:
        sizes = ndimage.sum(tum, comps, range(1, n + 1))
        pick = int(np.argmax(sizes)) + 1
    mask = comps == pick
    liver = lab == int(Label.LIVER)
    near = ndimage.binary_dilation(mask, iterations=2) & ~mask
    if near.any() and liver[near].mean() < 0.2:
        raise InputError("the tumour does not lie in the liver (less than 20 % liver around it)")
    return mask, rec


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


def _target_points(mask: np.ndarray, grid: Grid, margin_mm: float) -> np.ndarray:
    """LPS points of the tumour plus its margin (its surface shell is enough)."""
    outside = ndimage.distance_transform_edt(~mask, sampling=grid.spacing_mm)
    tm = outside <= margin_mm
    shell = tm & ~ndimage.binary_erosion(tm)
    return grid.index_to_lps(np.argwhere(shell))


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
    z = np.asarray(zone.array) > 0
    # the applicator's own voxels are not tissue in the engine; where the zone surrounds
    # the shaft, the track is ablated too
    pts = g.index_to_lps(np.argwhere(np.ones(g.shape, bool))).reshape(*g.shape, 3)
    r_shaft = max(0.5 * app.diameter_mm, 0.71 * cfg.spacing_mm) + 0.5 * max(g.spacing_mm)
    tips = [np.asarray(t_, float) for t_ in res.settings["tips_mm"]]
    shaft = np.zeros(g.shape, bool)
    for t_ in tips:
        rel = pts - t_
        along = rel @ d
        radial = np.linalg.norm(rel - along[..., None] * d, axis=-1)
        shaft |= (along <= 0) & (radial <= r_shaft)
    z |= shaft & ndimage.binary_dilation(z, iterations=2)
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


def _large_vessel_lumen(lab: np.ndarray, sp) -> np.ndarray:
    """Voxels the engine holds at blood temperature: vessels of the small-vessel radius or more.

    The same rule as :func:`ioplan.physics._simulate._vessel_materials` (per vessel label).
    """
    from ioplan.anatomy import VESSEL_LABELS
    from ioplan.tissue import blood_flow_parameters

    r_small = blood_flow_parameters()["small_vessel_radius_mm"]
    out = np.zeros(lab.shape, bool)
    for lbl in VESSEL_LABELS:
        m = lab == int(lbl)
        if m.any():
            out |= m & (local_radius_mm(m, sp) >= r_small)
    return out


def _metrics(case: Case, z: np.ndarray, tmax: np.ndarray, tmin: np.ndarray, mask: np.ndarray,
             margin_mm: float, protect_mm: float) -> dict[str, Any]:  # fmt: skip
    g = case.labels.grid
    sp = g.spacing_mm
    lab = np.asarray(case.labels.array)
    vox_ml = g.voxel_volume_ml
    # the lumen of large vessels is blood, not tissue to ablate (the engine holds it at
    # blood temperature): it leaves the target; its wall and the tissue around it stay
    lumen = _large_vessel_lumen(lab, sp)
    tm = (ndimage.distance_transform_edt(~mask, sampling=sp) <= margin_mm) & ~lumen
    cov = 100.0 * float(np.sum(z & mask)) / float(mask.sum())
    mcov = 100.0 * float(np.sum(z & tm)) / float(tm.sum())
    # signed distance to the zone edge (> 0 inside), voxel centres
    sd = ndimage.distance_transform_edt(z, sampling=sp) - ndimage.distance_transform_edt(
        ~z, sampling=sp
    )
    min_margin = float(sd[mask].min()) if z.any() else -float("inf")
    liver_ml = float(np.sum(z & (lab == int(Label.LIVER)))) * vox_ml
    out_dist = ndimage.distance_transform_edt(~z, sampling=sp) if z.any() else None
    risk = []
    for name, labels in PROTECTED.items():
        m = np.isin(lab, [int(x) for x in labels])
        if not m.any():
            continue
        dist = float(out_dist[m].min()) if out_dist is not None else float("inf")
        risk.append(
            {
                "structure": name,
                "closest_distance_mm": round(dist, 2),
                "max_temperature_c": round(float(tmax[m].max()), 2),
                "min_temperature_c": round(float(tmin[m].min()), 2),
                "lethal_damage": bool(np.any(z & m)),
                "within_protect_distance": dist < protect_mm,
            }
        )
    risk.sort(key=lambda r: r["closest_distance_mm"])
    return {
        "coverage_percent": cov,
        "margin_coverage_percent": mcov,
        "minimal_margin_mm": min_margin,
        "ablated_liver_ml": liver_ml,
        "zone_volume_ml": float(z.sum()) * vox_ml,
        "at_risk": tuple(risk),
    }


#: Largest ratio of voxel sides planned on as given; above it the case is resampled.
ANISOTROPY_LIMIT = 3.0


def _isotropic(case: Case, spacing_mm: float) -> Case:
    """``case`` resampled to cubic voxels of ``spacing_mm`` over the same extent."""
    iso = (spacing_mm,) * 3
    image = resample_to_spacing(case.image, iso, interpolation="linear")
    labels = resample_to_spacing(case.labels, iso, interpolation="nearest")
    return replace(case, image=image, labels=labels)


def plan_ablation(
    case: Case,
    cfg: PlanConfig | None = None,
    *,
    log: Callable[[str], None] | None = None,
    progress: Callable[[float], None] | None = None,
) -> Plan:
    """Plan a thermal ablation of one tumour of ``case`` and verify it by simulation."""
    from ioplan import __version__

    cfg = cfg or PlanConfig()
    t0 = time.perf_counter()
    app = cfg.applicator()
    say = log or (lambda _m: None)
    notes: list[str] = []
    sp = np.asarray(case.labels.grid.spacing_mm)
    if sp.max() / sp.min() > ANISOTROPY_LIMIT:
        case = _isotropic(case, cfg.spacing_mm)
        notes.append(
            f"the case's voxels ({', '.join(f'{v:g}' for v in sp)} mm) are very anisotropic: "
            f"it was resampled to {cfg.spacing_mm:g} mm isotropic voxels for planning (image "
            "linear, labels nearest neighbour); the plan's maps are on that grid"
        )
        say(notes[-1])
    mask, rec = tumour_mask(case, cfg.tumour_index)
    g = case.labels.grid
    histology = str(rec.get("histology", "unknown"))
    margin = cfg.margin_mm if cfg.margin_mm is not None else DEFAULT_MARGIN_MM.get(histology, 5.0)
    centre = g.index_to_lps(np.argwhere(mask).mean(axis=0))
    diam = 2.0 * (3.0 * float(mask.sum()) * g.voxel_volume_ml * 1e3 / (4.0 * math.pi)) ** (1 / 3)
    say(f"tumour: {diam:.0f} mm ({histology}), margin {margin:g} mm")
    table = zone_table(app, cfg.spacing_mm)
    offset_guess = float(np.median([r[4] for r in table]))
    dmaps = forbidden_groups(case, cfg.trajectories)
    trajs = candidate_trajectories(
        case,
        tuple(centre),
        cfg.trajectories,
        tip_beyond_mm=max(0.0, -offset_guess) + 5.0,
        distance_maps=dmaps,
    )
    accepted = [t for t in trajs if t.accepted]
    rejected = tuple(t.to_dict() for t in trajs if not t.accepted)
    say(f"trajectories: {len(accepted)} feasible of {len(trajs)}")
    if not accepted:
        counts: dict[str, int] = {}
        for t in trajs:
            for r in t.reasons:
                key = r.split(" (")[0].split(" at (")[0]
                key = key.split("mm from ")[-1] if "mm from " in key else key
                counts[key] = counts.get(key, 0) + 1
        top = ", ".join(f"{k} ({v})" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:4])
        raise InputError(f"no feasible needle path to the tumour; blocked by: {top}")
    pts = _target_points(mask, g, margin)
    tr, ladder = _ladder(app, accepted[: cfg.max_candidates], pts, centre, cfg.spacing_mm)
    blocked: list[str] = []
    if app.modality in ("mw", "rf"):
        # more applicators (parallel, 15 mm apart) at the least-energy setting, if one
        # is not enough; their own paths are checked like the first one's
        extra = []
        for n in (2, 3):
            if _parallel_paths_safe(tr, n, 15.0, dmaps, cfg.trajectories.safety_mm, g):
                extra.append((*ladder[0][:7], n))
            else:
                blocked.append(
                    f"{n} parallel applicators 15 mm apart: a path breaks the "
                    f"{cfg.trajectories.safety_mm:g} mm safety distance"
                )
        ladder = list(ladder) + extra
    tried = []
    best = None
    for step_ in ladder:
        _, fit, p, t, offset, length, width, n = step_
        what = (
            f"{n} x {t:g} s freeze protocol" if app.modality == "cryo" else f"{n} x {p:g} W {t:g} s"
        )
        say(f"verifying {what} (surrogate zone {length:.0f} x {width:.0f} mm)")
        res, z, tmax, tmin, tips = _verify(case, app, tr, p, t, offset, cfg, progress, n=int(n))
        m = _metrics(case, z, tmax, tmin, mask, margin, cfg.protect_mm)
        tried.append(
            {"applicators": int(n), "power_w": p, "duration_s": t}
            | {k: round(m[k], 2) for k in ("coverage_percent", "margin_coverage_percent",
                                           "minimal_margin_mm")}
        )  # fmt: skip
        safe = not any(r["lethal_damage"] or r["within_protect_distance"] for r in m["at_risk"])
        key = (m["margin_coverage_percent"] >= 99.0 and safe, m["margin_coverage_percent"], -n)
        if best is None or key > best[0]:
            best = (key, step_, res, z, tmax, tmin, tips, m)
        if key[0] or not safe:
            break  # covered; or more energy would only reach further into a protected structure
    assert best is not None
    (ok, _, _), step_, res, z, tmax, tmin, tips, m = best
    _, fit, p, t, offset, length, width, n = step_
    suggestions = []
    if not ok and blocked:
        suggestions += [f"not possible here: {b}" for b in blocked]
    if not ok:
        if m["margin_coverage_percent"] < 99.0:
            more = "" if blocked else "2-3 applicators, "
            if app.modality == "cryo":
                more = "" if n >= MAX_CRYOPROBES else f"{n + 1}-{MAX_CRYOPROBES} cryoprobes, "
            suggestions.append(
                f"the zone covers {m['margin_coverage_percent']:.1f} % of the tumour plus its "
                f"{margin:g} mm margin: consider {more}another path or device, a smaller "
                "margin only if the histology allows it, or combining ablation with TACE/TARE"
            )
        if diam > 30.0:
            suggestions.append(
                f"the tumour is {diam:.0f} mm: ablation is mostly used up to 30 mm (up to 50 mm "
                "with several probes); radioembolization or surgery may suit it better"
            )
        for r in m["at_risk"]:
            if r["lethal_damage"] or r["within_protect_distance"]:
                suggestions.append(
                    f"{r['structure']} is {r['closest_distance_mm']:.1f} mm from the zone: "
                    "hydrodissection, a different path, or cryoablation"
                )
    d = np.asarray(tr.direction)
    entry0 = np.asarray(tr.entry_mm)
    tip0 = np.asarray(tr.target_mm) + d * offset
    apps = tuple(
        {
            "id": app.id,
            "tip_mm": [round(float(v), 2) for v in tip],
            "entry_mm": [round(float(v), 2) for v in entry0 + (tip - tip0)],
            "direction": [round(float(v), 5) for v in d],
            "power_w": p,
            "duration_s": t,
            "protocol": CRYO_PROTOCOL if app.modality == "cryo" else None,
            "path_length_mm": round(tr.length_mm, 1),
            "insertion_depth_mm": round(float(np.linalg.norm(tip0 - entry0)), 1),
            "trajectory": tr.to_dict(),
        }
        for tip in tips
    )
    return Plan(
        modality=cfg.modality,
        applicators=apps,
        margin_mm=margin,
        coverage_percent=m["coverage_percent"],
        margin_coverage_percent=m["margin_coverage_percent"],
        minimal_margin_mm=m["minimal_margin_mm"],
        ablated_liver_ml=m["ablated_liver_ml"],
        zone_volume_ml=m["zone_volume_ml"],
        at_risk=m["at_risk"],
        covered=bool(ok),
        target_mm=tuple(float(v) for v in centre),
        tumour_diameter_mm=diam,
        histology=histology,
        verified_by_simulation=True,
        simulation={
            "spacing_mm": cfg.spacing_mm,
            "grid_shape": list(res.grid.shape),
            "perfusion": "in vivo (tissue table), shut down where coagulated",
            "heat_sink": "vessels >= 3 mm from the label map at blood temperature",
            "runtime_s": round(res.runtime_s, 2),
            "max_temperature_c": round(res.max_temperature_c, 2),
            "tried": tried,
            "not_tried": blocked,
        },
        surrogate={
            "kind": "calibrated zone ellipsoid from block simulations (perfused liver)",
            "rows": len(zone_table(app, cfg.spacing_mm)),
            "predicted_fit": round(fit, 3),
            "predicted_length_mm": round(length, 2),
            "predicted_width_mm": round(width, 2),
        },
        rejected_trajectories=rejected,
        accepted_trajectories=len(accepted),
        suggestions=tuple(suggestions),
        notes=tuple(notes),
        tumour_index=cfg.tumour_index,
        runtime_s=time.perf_counter() - t0,
        seed=cfg.seed,
        software_version=__version__,
        zone=Volume(z.astype(np.uint8), g),
        tmax=Volume(tmax.astype(np.float32), g),
        tmin=Volume(tmin.astype(np.float32), g),
    )
