"""Tumour response on follow-up images: RECIST 1.1, mRECIST and EASL from masks.

Measurements come from label masks (the whole tumour for RECIST 1.1; its viable,
arterially enhancing part for mRECIST and EASL), slice by slice in the patient's axial
plane (a sagittal, coronal or oblique mask is first put on an axial grid): the longest
diameter is the largest distance between the corners of the lesion's voxels in one
slice, and the perpendicular diameter the lesion's extent across it in the same slice.
Target lesions: the largest measurable connected parts, at most ``max_target_lesions``
(RECIST 1.1: two per organ). Thresholds and sources are in
``assessment/data/response.toml``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from ioplan.assessment._masks import ImageInput, check_label, mask_field, read_mask
from ioplan.errors import InputError
from ioplan.imaging import Volume, axial_volume

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
    """Target-lesion diameters of a mask (labels > 0 or probabilities > 0.5).

    Refuses an image given as a mask (see :func:`~ioplan.assessment.mask_field`).
    """
    # diameters in the patient's axial plane, whatever the image's slice orientation (a
    # sagittal or coronal mask is re-indexed exactly; an oblique one resampled)
    vol = axial_volume(vol, labels=True)
    _, _, m = mask_field(vol.array, f"the {what} mask")
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


def _new_lesions(base: Volume, follow: Volume) -> tuple[Volume, list[dict[str, Any]]]:
    """Follow-up lesions far from every part of the baseline tumour, and the rest.

    Returns the follow-up mask without the new lesions (on the follow-up's axial grid) and
    one record per new lesion: its longest axial diameter, its centre (LPS mm) and its
    distance from the baseline tumour (mm). Distances are between voxel centres in patient
    coordinates, so the two masks may lie on different grids.
    """
    from scipy.spatial import cKDTree

    limit = float(criteria()["new_lesions"]["distance_mm"])
    base = axial_volume(base, labels=True)
    follow = axial_volume(follow, labels=True)
    _, _, bm = mask_field(base.array, "the baseline mask")
    _, _, fm = mask_field(follow.array, "the follow-up mask")
    if not bm.any() or not fm.any():
        return follow, []
    edge = bm & ~ndimage.binary_erosion(bm)
    tree = cKDTree(base.grid.index_to_lps(np.argwhere(edge)))
    comps, n = ndimage.label(fm)
    kept = fm.copy()
    new = []
    for lab in range(1, n + 1):
        part = comps == lab
        pts = follow.grid.index_to_lps(np.argwhere(part))
        d = float(tree.query(pts, k=1)[0].min())
        inside = bm[tuple(np.argwhere(part)[0])] if base.grid == follow.grid else False
        if d > limit and not inside:
            longest, _ = _lesion(part, follow)
            new.append({"longest_diameter_mm": round(longest, 2),
                        "centre_mm": [round(float(v), 1) for v in pts.mean(axis=0)],
                        "distance_from_baseline_tumour_mm": round(d, 1)})  # fmt: skip
            kept &= ~part
    return follow.with_array(kept.astype(np.uint8)), new


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


#: A viable-tumour mask may exceed its whole-tumour mask by this factor in volume (two
#: outlines drawn apart differ by a voxel layer: 10 % of a 20 mm lesion at 1 mm voxels is
#: about a third of a layer), not more.
VIABLE_SLACK = 1.10


def _volume_ml(v: Volume) -> float:
    return float(np.count_nonzero(np.asarray(v.array))) * v.grid.voxel_volume_ml


def response(
    baseline: ImageInput,
    followups: Sequence[ImageInput],
    *,
    viable_baseline: ImageInput | None = None,
    viable_followups: Sequence[ImageInput] | None = None,
    label: int | None = None,
    viable_label: int | None = None,
) -> dict[str, Any]:
    """Tumour response per follow-up: RECIST 1.1, and mRECIST and EASL with viable tumour.

    Parameters
    ----------
    baseline : str, Path or Volume
        Whole-tumour mask at baseline (array ``(z, y, x)``, axial slices along the first
        axis): 0/1, labels (every non-zero counted, or ``label``) or probabilities 0-1.
    followups : sequence of str, Path or Volume
        The same at each follow-up, in time order (at least one). Each may lie on its own
        grid: each mask is measured on its own.
    viable_baseline, viable_followups : optional
        Viable (arterially enhancing) tumour at baseline and at every follow-up, for
        mRECIST and EASL; give both or neither.
    label, viable_label : int, optional
        Take this label (>= 1) of the tumour (viable) masks instead of every non-zero.

    Returns
    -------
    dict
        ``baseline`` (sum of longest diameters in mm, sum of bidimensional products in
        mm^2, target lesions), ``followups`` (the same per follow-up, with ``category``:
        ``CR``, ``PR``, ``SD``, ``PD`` or ``not evaluable`` per criterion) and
        ``criteria`` (their sources). The nadir is the smallest sum so far.

    Raises
    ------
    ioplan.errors.InputError
        No follow-up; viable masks for only some time points; a baseline below the 10 mm
        a measurable lesion needs; an image (CT, MR) given as a mask; a missing label.

    References
    ----------
    .. [1] Eisenhauer EA et al. New response evaluation criteria in solid tumours: revised
       RECIST guideline (version 1.1). Eur J Cancer 2009;45:228-247.
       https://doi.org/10.1016/j.ejca.2008.10.026
    .. [2] Lencioni R, Llovet JM. Modified RECIST (mRECIST) assessment for hepatocellular
       carcinoma. Semin Liver Dis 2010;30:52-60. https://doi.org/10.1055/s-0030-1247132
    .. [3] Bruix J et al. Clinical management of hepatocellular carcinoma. Conclusions of
       the Barcelona-2000 EASL conference. J Hepatol 2001;35:421-430.
       https://doi.org/10.1016/S0168-8278(01)00130-1

    Examples
    --------
    A 30 mm square lesion shrinking to 20 mm (1 mm voxels): longest diameters are the
    diagonals, -33 %, a partial response (RECIST 1.1: at least -30 %).

    >>> import numpy as np
    >>> from ioplan.imaging import Grid, Volume
    >>> g = Grid((3, 40, 40), (1.0, 1.0, 1.0))
    >>> def square(n):
    ...     a = np.zeros(g.shape, np.uint8)
    ...     a[1, :n, :n] = 1
    ...     return Volume(a, g)
    >>> res = response(square(30), [square(20)])
    >>> res["followups"][0]["category"]["recist11"]
    'PR'
    """
    if not followups:
        raise InputError("give at least one follow-up mask (--followup)")
    if (viable_baseline is None) != (viable_followups is None):
        raise InputError(
            "give the viable-tumour masks for the baseline and every follow-up "
            "(--viable-baseline and --viable-followup)"
        )
    if viable_followups is not None and len(viable_followups) != len(followups):
        raise InputError(
            f"give one viable-tumour mask per follow-up: {len(followups)} --followup, "
            f"{len(viable_followups)} --viable-followup"
        )
    check_label(label, "--label")
    check_label(viable_label, "--viable-label")
    # every mask read and checked before any is measured

    def mask(x: ImageInput, what: str, viable: bool) -> Volume:
        lab, opt = (viable_label, "--viable-label") if viable else (label, "--label")
        return read_mask(x, what, label=lab, label_option=opt, allow_empty=True,
                         one_structure=True)  # fmt: skip

    base = mask(baseline, "the baseline mask (--baseline)", False)
    follow = [
        mask(f, f"follow-up mask {i + 1} (--followup)", False) for i, f in enumerate(followups)
    ]
    viable: list[Volume] = []
    if viable_baseline is not None and viable_followups is not None:
        viable = [mask(viable_baseline, "the viable baseline mask (--viable-baseline)", True)]
        viable += [
            mask(f, f"viable follow-up mask {i + 1} (--viable-followup)", True)
            for i, f in enumerate(viable_followups)
        ]
    for i, f in enumerate(follow):
        # the new-lesion test compares positions: a follow-up mask on an image that does
        # not even overlap the baseline's is not in its frame (unregistered, or another
        # patient), and every lesion in it would count as new
        if not f.grid.overlaps(base.grid):
            raise InputError(
                f"follow-up mask {i + 1} (--followup) does not overlap the baseline mask's "
                "image in space: new lesions are found by their distance from the baseline "
                "tumour, so give the follow-up on the baseline's frame (registered)"
            )
    for k, v in enumerate(viable):
        whole = base if k == 0 else follow[k - 1]
        vv, vw = _volume_ml(v), _volume_ml(whole)
        if vv > VIABLE_SLACK * vw:
            what = "baseline" if k == 0 else f"follow-up {k}"
            raise InputError(
                f"the viable tumour at {what} ({vv:.2f} mL) is larger than the whole tumour "
                f"({vw:.2f} mL): viable tumour is a part of the tumour (are the whole and "
                "viable masks swapped?)"
            )
    b = measure_lesions(base)
    if b.sum_longest_mm < criteria()["recist11"]["minimum_measurable_mm"]:
        raise InputError(
            f"the baseline tumour measures {b.sum_longest_mm:.1f} mm: below the 10 mm a "
            "measurable lesion needs (RECIST 1.1)"
        )
    vb = measure_lesions(viable[0], what="viable") if viable else None
    out: dict[str, Any] = {
        "baseline": b.to_dict() | ({"viable": vb.to_dict()} if vb else {}),
        "followups": [],
        "criteria": {
            k: {"source": criteria()[k]["source"], "measure": criteria()[k]["measure"]}
            for k in CRITERIA
        },
    }
    nadir = {"recist11": b.sum_longest_mm}
    viable_measurable = True
    if vb is not None:
        nadir |= {"mrecist": vb.sum_longest_mm, "easl": vb.sum_product_mm2}
        least = criteria()["mrecist"]["minimum_measurable_mm"]
        if vb.sum_longest_mm < least:
            # mRECIST and EASL follow viable (enhancing) tumour measurable at baseline; with
            # none, a follow-up without viable tumour is no complete response
            viable_measurable = False
            out["notes"] = [
                f"the viable baseline tumour measures {vb.sum_longest_mm:.1f} mm, below the "
                f"{least:g} mm mRECIST needs (Lencioni & Llovet 2010): mRECIST and EASL are "
                "not evaluable"
            ]
    for i, f in enumerate(follow):
        f, new = _new_lesions(base, f)
        m = measure_lesions(f)
        row: dict[str, Any] = {"index": i, **m.to_dict(), "new_lesions": new}
        gone = m.sum_longest_mm == 0 and not new
        cats = {"recist11": _category("recist11", b.sum_longest_mm, nadir["recist11"],
                                      m.sum_longest_mm, gone)}  # fmt: skip
        nadir["recist11"] = min(nadir["recist11"], m.sum_longest_mm)
        if vb is not None:
            v = measure_lesions(viable[i + 1], what="viable")
            row["viable"] = v.to_dict()
            gone = v.sum_longest_mm == 0
            cats["mrecist"] = _category("mrecist", vb.sum_longest_mm, nadir["mrecist"],
                                        v.sum_longest_mm, gone)  # fmt: skip
            cats["easl"] = _category("easl", vb.sum_product_mm2, nadir["easl"],
                                     v.sum_product_mm2, gone)  # fmt: skip
            nadir["mrecist"] = min(nadir["mrecist"], v.sum_longest_mm)
            nadir["easl"] = min(nadir["easl"], v.sum_product_mm2)
            if not viable_measurable:
                cats["mrecist"] = cats["easl"] = "not evaluable"
        if new:  # a new lesion is progression under every criterion
            cats = {k: ("PD" if v != "not evaluable" else v) for k, v in cats.items()}
            limit = criteria()["new_lesions"]["distance_mm"]
            out.setdefault("notes", []).append(
                f"follow-up {i + 1}: {len(new)} new lesion(s), more than {limit:g} mm from the "
                "baseline tumour, left out of the target sums: progressive disease (RECIST "
                "1.1 section 4.3.2)"
            )
        row["category"] = cats
        out["followups"].append(row)
    return out
