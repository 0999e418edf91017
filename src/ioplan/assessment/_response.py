"""Tumour response on follow-up images: RECIST 1.1, mRECIST and EASL from masks.

Measurements come from label masks (the whole tumour for RECIST 1.1; its viable,
arterially enhancing part for mRECIST and EASL), slice by slice along the image's first
array axis (axial slices): the longest diameter is the largest distance between the
corners of the lesion's voxels in one slice, and the perpendicular diameter the lesion's
extent across it in the same slice. Target lesions: the largest measurable connected
parts, at most ``max_target_lesions`` (RECIST 1.1: two per organ). Thresholds and sources
are in ``assessment/data/response.toml``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from ioplan.errors import InputError
from ioplan.imaging import Volume

__all__ = ["Measurement", "criteria", "measure_lesions", "response"]

CRITERIA = ("recist11", "mrecist", "easl")
#: RECIST 1.1 allows two target lesions per organ (Eisenhauer et al. 2009); one organ here.
MAX_TARGET_LESIONS = 2


@lru_cache(maxsize=1)
def criteria() -> dict[str, dict[str, Any]]:
    """The response criteria's thresholds and sources."""
    text = resources.files("ioplan.assessment").joinpath("data/response.toml").read_text()
    return tomllib.loads(text)


@dataclass(frozen=True)
class Measurement:
    """Target-lesion measurements of one mask (mm, mm^2)."""

    sum_longest_mm: float
    sum_product_mm2: float
    lesions: tuple[dict[str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sum_longest_diameter_mm": round(self.sum_longest_mm, 2),
            "sum_bidimensional_product_mm2": round(self.sum_product_mm2, 1),
            "target_lesions": [dict(x) for x in self.lesions],
        }


def _slice_diameters(pts: np.ndarray) -> tuple[float, float]:
    """Longest diameter and the extent perpendicular to it of 2D points (mm)."""
    if len(pts) < 3:
        return (float(np.ptp(pts[:, 0])) if len(pts) else 0.0), 0.0
    try:
        hull = pts[ConvexHull(pts).vertices]
    except QhullError:  # collinear
        hull = pts
    d = hull[:, None, :] - hull[None, :, :]
    dist = np.sqrt((d**2).sum(-1))
    i, j = np.unravel_index(int(np.argmax(dist)), dist.shape)
    longest = float(dist[i, j])
    u = (hull[j] - hull[i]) / max(longest, 1e-12)
    perp = np.array([-u[1], u[0]])
    return longest, float(np.ptp(hull @ perp))


def _lesion(mask: np.ndarray, vol: Volume) -> tuple[float, float]:
    """Largest (longest diameter, its perpendicular) over the axial slices of one lesion.

    Within a slice, distances need only the in-plane spacing: the grid's direction
    columns are orthonormal.
    """
    sp = np.asarray(vol.grid.spacing_mm)
    best = (0.0, 0.0)
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        idx = np.argwhere(mask[k])
        # the four in-plane corners of every voxel, in mm along the slice's two axes
        corners = np.concatenate([idx + np.array([a, b]) for a in (-0.5, 0.5) for b in (-0.5, 0.5)])
        longest, perp = _slice_diameters(corners * sp[1:])
        if longest > best[0]:
            best = (longest, perp)
    return best


def measure_lesions(vol: Volume, *, what: str = "tumour") -> Measurement:
    """Target-lesion diameters of a mask (labels > 0 or probabilities > 0.5)."""
    a = np.asarray(vol.array)
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise InputError(f"the {what} mask holds NaN or infinite values")
        m = a > 0.5
    else:
        m = a > 0
    comps, n = ndimage.label(m)
    rows = []
    for lab in range(1, n + 1):
        longest, perp = _lesion(comps == lab, vol)
        rows.append({"longest_diameter_mm": round(longest, 2),
                     "perpendicular_diameter_mm": round(perp, 2)})  # fmt: skip
    rows.sort(key=lambda r: -r["longest_diameter_mm"])
    targets = tuple(rows[:MAX_TARGET_LESIONS])
    return Measurement(
        sum_longest_mm=float(sum(r["longest_diameter_mm"] for r in targets)),
        sum_product_mm2=float(
            sum(r["longest_diameter_mm"] * r["perpendicular_diameter_mm"] for r in targets)
        ),
        lesions=targets,
    )


def _category(name: str, base: float, nadir: float, now: float, gone: bool) -> str:
    c = criteria()[name]
    if gone:
        return "CR"
    if base <= 0:
        return "not evaluable"
    if now >= nadir * (1 + c["progression_increase_percent"] / 100.0) and (
        now - nadir >= c["progression_increase_min_mm"]
    ):
        return "PD"
    if now <= base * (1 - c["partial_response_decrease_percent"] / 100.0):
        return "PR"
    return "SD"


def response(
    baseline: Volume,
    followups: list[Volume],
    *,
    viable_baseline: Volume | None = None,
    viable_followups: list[Volume] | None = None,
) -> dict[str, Any]:
    """Measurements and categories (CR/PR/SD/PD) per follow-up, per criterion."""
    if not followups:
        raise InputError("give at least one follow-up mask")
    if (viable_baseline is None) != (viable_followups is None):
        raise InputError("give the viable-tumour masks for the baseline and every follow-up")
    if viable_followups is not None and len(viable_followups) != len(followups):
        raise InputError("give one viable-tumour mask per follow-up")
    b = measure_lesions(baseline)
    if b.sum_longest_mm < criteria()["recist11"]["minimum_measurable_mm"]:
        raise InputError(
            f"the baseline tumour measures {b.sum_longest_mm:.1f} mm: below the 10 mm a "
            "measurable lesion needs (RECIST 1.1)"
        )
    vb = measure_lesions(viable_baseline, what="viable") if viable_baseline is not None else None
    out: dict[str, Any] = {
        "baseline": b.to_dict() | ({"viable": vb.to_dict()} if vb else {}),
        "followups": [],
        "criteria": {
            k: {"source": criteria()[k]["source"], "measure": criteria()[k]["measure"]}
            for k in CRITERIA
        },
    }
    nadir = {"recist11": b.sum_longest_mm}
    if vb is not None:
        nadir |= {"mrecist": vb.sum_longest_mm, "easl": vb.sum_product_mm2}
    for i, f in enumerate(followups):
        m = measure_lesions(f)
        row: dict[str, Any] = {"index": i, **m.to_dict()}
        cats = {"recist11": _category("recist11", b.sum_longest_mm, nadir["recist11"],
                                      m.sum_longest_mm, m.sum_longest_mm == 0)}  # fmt: skip
        nadir["recist11"] = min(nadir["recist11"], m.sum_longest_mm)
        if vb is not None and viable_followups is not None:
            v = measure_lesions(viable_followups[i], what="viable")
            row["viable"] = v.to_dict()
            gone = v.sum_longest_mm == 0
            cats["mrecist"] = _category("mrecist", vb.sum_longest_mm, nadir["mrecist"],
                                        v.sum_longest_mm, gone)  # fmt: skip
            cats["easl"] = _category("easl", vb.sum_product_mm2, nadir["easl"],
                                     v.sum_product_mm2, gone)  # fmt: skip
            nadir["mrecist"] = min(nadir["mrecist"], v.sum_longest_mm)
            nadir["easl"] = min(nadir["easl"], v.sum_product_mm2)
        row["category"] = cats
        out["followups"].append(row)
    return out
