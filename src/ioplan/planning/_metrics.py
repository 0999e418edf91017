"""The tumour to plan for, its target points, and the verified plan's metrics.

The minimal margin and the tumour coverage come from
:func:`ioplan.assessment.measure_margin`, the one definition of the minimal ablative
margin in ioplan (sub-voxel, on the surfaces): a plan and a later confirmation of the
same masks (``ioplan margin``) give the same number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.anatomy import VESSEL_LABELS, Case, Label, local_radius_mm
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume
from ioplan.planning._organ_rules import (
    ALL_PROTECTED,
    case_organ,
    host_labels,
    protected_structures,
    temperature_limits,
)

__all__ = [
    "PROTECTED",
    "goal_shortfalls",
    "goal_verdict",
    "plan_metrics",
    "target_points",
    "tumour_mask",
]

#: Structures that must not receive lethal damage (planning), within ``protect_mm``: every
#: organ's (names -> labels); each organ protects its own list
#: (:func:`ioplan.planning._organ_rules.protected_structures`: not the host organ itself).
PROTECTED = ALL_PROTECTED

#: How the minimal margin is measured (recorded in plan.json).
MARGIN_METHOD = "tumour surface to zone surface, sub-voxel (ioplan.assessment.measure_margin)"


#: Least share of host-organ voxels around the tumour (a 2-voxel shell): the liver's 20 %;
#: other organs 10 % (an exophytic renal tumour or a pleural-based lung tumour touches
#: fat and chest wall over most of its surface).
HOST_SHARE = {"liver": 0.2, "lung": 0.1, "kidney": 0.1, "bone": 0.1, "soft_tissue": 0.1}


def tumour_mask(case: Case, index: int = 0, organ: str | None = None
                ) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """The tumour's voxels (the connected part holding its listed centre) and its record.

    Raises :class:`~ioplan.errors.InputError` when the case has no tumour, when
    ``index`` is not one of its tumours (negative indices included), and when the
    tumour does not lie in its organ (``organ``, default the case's as set by the
    planner, else the liver: less than :data:`HOST_SHARE` of that organ around it).
    """
    from ioplan.planning._checks import check_tumour_index

    check_tumour_index(case, index)
    lab = np.asarray(case.labels.array)
    tum = lab == int(Label.TUMOR)
    if not tum.any():
        raise InputError("the case has no tumour label: nothing to plan for")
    comps, n = ndimage.label(tum)
    rec: dict[str, Any] = dict(case.tumors[index]) if case.tumors else {}
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
    organ = organ or case_organ(case)
    host = np.isin(lab, host_labels(organ))
    near = ndimage.binary_dilation(mask, iterations=2) & ~mask
    share = HOST_SHARE[organ]
    if near.any() and host[near].mean() < share:
        raise InputError(
            f"the tumour does not lie in the {organ} (less than {100 * share:.0f} % {organ} "
            "around it)"
        )
    return mask, rec


def target_points(mask: np.ndarray, grid: Grid, margin_mm: float) -> np.ndarray:
    """LPS points of the tumour plus its margin (its surface shell is enough)."""
    outside = ndimage.distance_transform_edt(~mask, sampling=grid.spacing_mm)
    tm = outside <= margin_mm
    shell = tm & ~ndimage.binary_erosion(tm)
    return grid.index_to_lps(np.argwhere(shell))


def _large_vessel_lumen(lab: np.ndarray, sp) -> np.ndarray:
    """Voxels the engine holds at blood temperature: vessels of the small-vessel radius or more.

    The same rule as the engine's vessel materials (per vessel label).
    """
    from ioplan.tissue import blood_flow_parameters

    r_small = blood_flow_parameters()["small_vessel_radius_mm"]
    out = np.zeros(lab.shape, bool)
    for lbl in VESSEL_LABELS:
        m = lab == int(lbl)
        if m.any():
            out |= m & (local_radius_mm(m, sp) >= r_small)
    return out


def _margin_and_coverage(mask: np.ndarray, z: np.ndarray, grid: Grid,
                         margin_mm: float) -> tuple[float, float, tuple | None]:  # fmt: skip
    """Minimal margin (mm), tumour coverage (%) and the closest point, by measure_margin."""
    from ioplan.assessment import measure_margin

    if not z.any():  # nothing ablated: no zone surface to measure to
        return -float("inf"), 0.0, None
    res = measure_margin(
        Volume(mask.astype(np.uint8), grid), Volume(z.astype(np.uint8), grid), margin_mm=margin_mm
    )
    return res.minimal_margin_mm, res.coverage_percent, res.closest_point_mm


def _structures_at_risk(lab: np.ndarray, z: np.ndarray, tmax: np.ndarray, tmin: np.ndarray,
                        sp, protect_mm: float, organ: str = "liver"
                        ) -> tuple[dict[str, Any], ...]:  # fmt: skip
    """Distance of each protected structure to the zone, its extreme temperatures.

    A structure with temperature limits (planner.toml ``[limits]``: cord, nerve roots,
    collecting system, ureter) also records them and whether the predicted Tmax/Tmin
    passes one (``limit_exceeded``); past its limit it counts as damaged
    (``lethal_damage``) even outside the ablation zone: neural tissue and urothelium are
    injured below the ablation's lethal dose.
    """
    out_dist = ndimage.distance_transform_edt(~z, sampling=sp) if z.any() else None
    limits = temperature_limits()
    risk = []
    for name, labels in protected_structures(organ).items():
        m = np.isin(lab, [int(x) for x in labels])
        if not m.any():
            continue
        dist = float(out_dist[m].min()) if out_dist is not None else float("inf")
        rec = {
            "structure": name,
            "closest_distance_mm": round(dist, 2),
            "max_temperature_c": round(float(tmax[m].max()), 2),
            "min_temperature_c": round(float(tmin[m].min()), 2),
            "lethal_damage": bool(np.any(z & m)),
            "within_protect_distance": dist < protect_mm,
        }
        if name in limits:
            lim = limits[name]
            over = bool(rec["max_temperature_c"] >= lim["max_c"]
                        or rec["min_temperature_c"] <= lim["min_c"])  # fmt: skip
            rec |= {
                "max_limit_c": float(lim["max_c"]),
                "min_limit_c": float(lim["min_c"]),
                "limit_exceeded": over,
                "lethal_damage": rec["lethal_damage"] or over,
            }
        risk.append(rec)
    risk.sort(key=lambda r: r["closest_distance_mm"])
    return tuple(risk)


def goal_shortfalls(coverage_percent: float, margin_coverage_percent: float,
                    at_risk, protect_mm: float, goal_margin_percent: float) -> list[str]:
    """What keeps a verified zone from the plan's goal, one phrase each (empty: goal met).

    The goal (:data:`ioplan.planning._plan.GOAL`): the whole tumour, at least
    ``goal_margin_percent`` of the tumour plus its margin, and no protected structure
    damaged, past its temperature limit or within ``protect_mm`` of the zone. ``at_risk``
    as :func:`plan_metrics` gives it. A plan that covers its target but passes near a
    structure must not read as one that misses the tumour.
    """
    out = []
    if coverage_percent < 100.0:
        out.append(f"the tumour is {coverage_percent:.2f} % covered (goal 100 %)")
    if margin_coverage_percent < goal_margin_percent:
        out.append(f"the tumour + margin is {margin_coverage_percent:.1f} % covered "
                   f"(goal {goal_margin_percent:g} %)")  # fmt: skip
    for r in at_risk:
        name = r["structure"]
        if r.get("limit_exceeded"):
            out.append(
                f"the {name} passes its temperature limits (predicted {r['min_temperature_c']:g}"
                f" to {r['max_temperature_c']:g} degC, limits {r['min_limit_c']:g} / "
                f"{r['max_limit_c']:g} degC)"
            )
        elif r["lethal_damage"]:
            out.append(f"the zone reaches the {name}")
        elif r["within_protect_distance"]:
            out.append(f"the zone comes within {r['closest_distance_mm']:.1f} mm of the {name} "
                       f"(to be kept {protect_mm:g} mm away)")  # fmt: skip
    return out


def goal_verdict(covered: bool, coverage_percent: float, margin_coverage_percent: float,
                 at_risk, protect_mm: float, goal_margin_percent: float
                 ) -> tuple[str, list[str]]:  # fmt: skip
    """``("covers" | "misses the target" | "misses the goal", reasons)`` of a verified plan.

    "misses the goal": the tumour and its margin are covered as the goal asks, another rule
    (:func:`goal_shortfalls`) is broken. A plan not covered with no reason found (rounded
    figures at the threshold) reads as missing its target, as before.
    """
    if covered:
        return "covers", []
    reasons = goal_shortfalls(coverage_percent, margin_coverage_percent, at_risk, protect_mm,
                              goal_margin_percent)  # fmt: skip
    target_short = coverage_percent < 100.0 or margin_coverage_percent < goal_margin_percent
    return ("misses the target" if target_short or not reasons else "misses the goal"), reasons


def plan_metrics(case: Case, z: np.ndarray, tmax: np.ndarray, tmin: np.ndarray, mask: np.ndarray,
                 margin_mm: float, protect_mm: float, *,
                 target: np.ndarray | None = None) -> dict[str, Any]:  # fmt: skip
    """Coverage, minimal margin, normal liver ablated and structures at risk of a zone ``z``.

    All on the case grid. ``target`` is the tumour plus its margin to cover; by default
    the tumour and its margin shell without the lumen of large vessels (blood, held at
    body temperature by the engine, not tissue to ablate). The planner passes the margin
    in parenchyma only (:func:`ioplan.planning._candidates.target_points`).
    """
    g = case.labels.grid
    sp = g.spacing_mm
    lab = np.asarray(case.labels.array)
    vox_ml = g.voxel_volume_ml
    if target is None:
        lumen = _large_vessel_lumen(lab, sp)
        target = (ndimage.distance_transform_edt(~mask, sampling=sp) <= margin_mm) & ~lumen
    tm = target
    min_margin, cov, where = _margin_and_coverage(mask, z, g, margin_mm)
    organ = case_organ(case)
    return {
        "coverage_percent": cov,
        "tumour_voxels_covered_percent": 100.0 * float(np.sum(z & mask)) / float(mask.sum()),
        "margin_coverage_percent": 100.0 * float(np.sum(z & tm)) / float(tm.sum()),
        "minimal_margin_mm": min_margin,
        "minimal_margin_point_mm": where,
        "ablated_liver_ml": float(np.sum(z & (lab == int(Label.LIVER)))) * vox_ml,
        # the host organ's normal parenchyma (the liver's for a liver tumour)
        "ablated_host_ml": float(np.sum(z & np.isin(lab, host_labels(organ)))) * vox_ml,
        "zone_volume_ml": float(z.sum()) * vox_ml,
        "at_risk": _structures_at_risk(lab, z, tmax, tmin, sp, protect_mm, organ),
    }


def margin_on_case_grid(m: dict[str, Any], case: Case, zone: np.ndarray, grid: Grid,
                        tumour_index: int, organ: str, margin_mm: float
                        ) -> tuple[dict[str, Any], str]:  # fmt: skip
    """``m`` with the minimal margin and the coverage measured on ``case``'s own voxels.

    For a case planned on a resampled grid (very anisotropic voxels): the tumour as it was
    segmented (``case``'s grid) against the zone on the planning ``grid``, as ``ioplan
    margin`` measures them from the case and the plan's zone file. The resampled tumour
    (nearest neighbour) moves its surface by up to half a slice, which moved the plan's
    margin by up to 3 mm from ``ioplan margin``'s on a 5 mm slice CT. Returns the updated
    metrics and a note that gives both figures.
    """
    from ioplan.assessment import measure_margin

    mask, _ = tumour_mask(case, tumour_index, organ)
    before = m["minimal_margin_mm"]
    if not zone.any():
        return m, ""
    res = measure_margin(Volume(mask.astype(np.uint8), case.labels.grid),
                         Volume(zone.astype(np.uint8), grid), margin_mm=margin_mm)  # fmt: skip
    out = dict(m) | {
        "minimal_margin_mm": res.minimal_margin_mm,
        "coverage_percent": res.coverage_percent,
        "minimal_margin_point_mm": res.closest_point_mm,
        "minimal_margin_on_planning_grid_mm": before,
    }
    note = (
        f"the minimal margin ({res.minimal_margin_mm:.1f} mm) and the tumour coverage are "
        "measured against the tumour as segmented on the case's own voxels, as `ioplan "
        f"margin` measures them; against the resampled tumour on the planning grid the margin "
        f"is {before:.1f} mm"
    )
    return out, note
