"""A DICOM series' slice layout, and its regularisation onto an even grid along the normal.

Most series are regular: parallel slices, evenly spaced along their normal, each slice's
corner on the normal through the first. Real series are not always: a slice lost in an
export, reconstructions with mixed spacing, or a gantry tilt (each slice shifted in-plane
by its distance times tan(tilt)). :func:`series_layout` describes the slices; with
``regularize`` it accepts such a series and :func:`resample_planes` puts it on an even
grid (the smallest gap, along the slice normal) by shifting each slice in-plane
(bilinear) and interpolating linearly between the two nearest slices, as 3D Slicer's
"acquisition geometry regularization" does. The note it returns says what was done; a gap
of more than :data:`MAX_GAP_STEPS` spacings is refused, not bridged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.errors import DicomSeriesError, FileFormatError, IrregularSeriesError
from ioplan.imaging._grid import Grid

__all__ = ["MAX_GAP_STEPS", "SeriesLayout", "resample_planes", "series_layout"]

# Orientation cosines are written with 6-10 significant digits; positions
# with about 0.001 mm. These tolerances are above that rounding and far below
# a clinically meaningful error.
COS_TOL = 1e-4
POS_TOL_MM = 0.01
# Slice gaps may vary by this fraction before the series is called irregular
# (scanners round positions; 1 % of a 5 mm gap is 0.05 mm).
GAP_REL_TOL = 0.01
#: The widest gap regularisation bridges, in spacings: two missing slices in a row. More
#: would interpolate across a stretch of anatomy nobody imaged (a rib, a vessel).
MAX_GAP_STEPS = 3.0


@dataclass(frozen=True)
class SeriesLayout:
    """Where a series' slices lie, and the grid they are read onto.

    ``order`` sorts the headers from the first slice along the normal; ``along_mm`` is each
    sorted slice's distance from the first along the normal, ``shift_px`` its corner's
    in-plane offset from the normal through the first corner, in pixels (rows, columns).
    ``note`` is None for a regular series (read as it is), else what regularising does.
    """

    grid: Grid
    order: list[int]
    along_mm: np.ndarray
    shift_px: np.ndarray
    note: str | None


def series_layout(headers: list[Any], where: Path, *, regularize: bool = False) -> SeriesLayout:
    """Check a series' slices and describe their layout (see :class:`SeriesLayout`).

    Without ``regularize`` an uneven or sheared series is an error, as the strict readers
    (thermometry frames, which must share one grid) need.
    """
    h0 = headers[0]
    for h in headers[1:]:
        if (h.rows, h.columns) != (h0.rows, h0.columns):
            raise DicomSeriesError(
                f"{where}: mixed image sizes {h0.rows}x{h0.columns} and {h.rows}x{h.columns}"
            )
        if not (
            np.allclose(h.row_cosine, h0.row_cosine, atol=COS_TOL)
            and np.allclose(h.column_cosine, h0.column_cosine, atol=COS_TOL)
        ):
            raise DicomSeriesError(f"{where}: slices have different orientations ({h.path.name})")
        if not np.allclose(h.pixel_spacing_mm, h0.pixel_spacing_mm, atol=1e-4):
            raise DicomSeriesError(
                f"{where}: mixed pixel spacing {h0.pixel_spacing_mm} and {h.pixel_spacing_mm} mm"
            )
    row = np.array(h0.row_cosine)
    col = np.array(h0.column_cosine)
    normal = np.cross(row, col)
    dy, dx = h0.pixel_spacing_mm
    pos = np.array([h.position_mm for h in headers])
    along = pos @ normal
    order = [int(i) for i in np.argsort(along, kind="stable")]
    along = along[order]
    pos = pos[order]
    n = len(headers)
    notes = []
    shift_px = np.zeros((n, 2))
    if n > 1:
        gaps = np.diff(along)
        if np.any(gaps < POS_TOL_MM):
            i = int(np.argmin(gaps))
            raise DicomSeriesError(
                f"{where}: two slices at the same position {along[i]:.3f} mm along the normal "
                f"({headers[order[i]].path.name}, {headers[order[i + 1]].path.name})"
            )
        # sheared when a step between neighbours moves in-plane (per step, so that the
        # rounding of the orientation cosines over a long stack is not called a tilt)
        in_plane = (pos[1:] - pos[:-1]) - np.outer(gaps, normal)
        if np.max(np.linalg.norm(in_plane, axis=1)) > max(POS_TOL_MM, 0.01 * float(gaps.min())):
            offset = (pos - pos[0]) - np.outer(along - along[0], normal)  # in-plane, mm
            drift = np.linalg.norm(offset, axis=1)
            if not regularize:
                raise IrregularSeriesError(
                    f"{where}: slice positions are not along the slice normal (gantry tilt or "
                    "shear); resample the series first"
                )
            shift_px = np.column_stack([offset @ col / dy, offset @ row / dx])
            extent = float(along[-1] - along[0])
            tilt = math.degrees(math.atan2(float(drift[-1]), extent))
            notes.append(f"slices shifted in-plane by up to {float(drift.max()):.1f} mm onto "
                         f"the slice normal (gantry tilt or shear, {tilt:.1f} degrees "
                         "end to end)")  # fmt: skip
        step = float(np.min(gaps))
        if float(np.max(gaps)) - step > max(POS_TOL_MM, GAP_REL_TOL * step):
            ratios = gaps / step
            i = int(np.argmax(gaps))
            whole = np.allclose(ratios, np.rint(ratios), atol=0.05)
            missing = round(float(np.sum(np.rint(ratios) - 1))) if whole else 0
            where_gap = f"gap of {gaps[i]:.3f} mm after position {along[i]:.3f} mm"
            if not regularize:
                if whole:
                    raise IrregularSeriesError(
                        f"{where}: {missing} slice(s) missing: {where_gap} where the spacing "
                        f"is {step:.3f} mm"
                    )
                raise IrregularSeriesError(
                    f"{where}: mixed slice spacing from {step:.3f} to {float(np.max(gaps)):.3f} mm"
                )
            if float(gaps[i]) > MAX_GAP_STEPS * step + POS_TOL_MM:
                raise DicomSeriesError(
                    f"{where}: {where_gap}, {gaps[i] / step:.1f} times the spacing of "
                    f"{step:.3f} mm: more than {MAX_GAP_STEPS - 1:g} slices missing in a row "
                    "are not interpolated; export the whole series"
                )
            what = f"{missing} missing slice(s)" if whole else "mixed slice spacing"
            notes.append(f"{what}: slices interpolated onto an even {step:.3f} mm spacing "
                         f"(largest gap {float(gaps[i]):.3f} mm, after {along[i]:.3f} mm "
                         "along the normal)")  # fmt: skip
        else:
            step = float(np.mean(gaps))
        # never beyond the last slice (no extrapolation): floor, with the positions' rounding
        nz = math.floor((along[-1] - along[0]) / step + 1e-3) + 1 if notes else n
    else:
        given = [
            (tag, v)
            for tag, v in (
                ("SpacingBetweenSlices", h0.spacing_between_slices_mm),
                ("SliceThickness", h0.slice_thickness_mm),
            )
            if v is not None
        ]
        for tag, v in given[:1]:  # the one used; a zero or negative one is nonsense
            if not (np.isfinite(v) and v > 0):
                raise FileFormatError(f"{where}: {tag} must be > 0 mm, got {v:g}")
        step = given[0][1] if given else 1.0
        nz = 1
    grid = Grid(
        shape=(nz, h0.rows, h0.columns),
        spacing_mm=(step, dy, dx),
        origin_mm=tuple(pos[0]),
        direction=tuple(map(tuple, np.column_stack([normal, col, row]))),
    )
    note = "DICOM series regularised: " + "; ".join(notes) if notes else None
    return SeriesLayout(grid, order, along - along[0], shift_px, note)


def resample_planes(planes: np.ndarray, layout: SeriesLayout) -> np.ndarray:
    """The sorted slices ``planes`` (n, rows, columns) on ``layout.grid`` (float32).

    Each slice is shifted in-plane onto the normal through the first slice's corner
    (bilinear; pixels from outside its field of view take the series' lowest value, air
    or padding), then each grid slice is interpolated linearly between the two sorted
    slices around it.
    """
    from scipy import ndimage

    fill = float(np.min(planes))
    cache: dict[int, np.ndarray] = {}

    def shifted(k: int) -> np.ndarray:
        if k not in cache:
            p = planes[k].astype(np.float32)
            s = layout.shift_px[k]
            if np.any(np.abs(s) > 1e-6):
                p = ndimage.shift(p, s, order=1, mode="constant", cval=fill)
            if len(cache) > 3:  # grid slices walk forward: two sources at a time are enough
                cache.clear()
            cache[k] = p
        return cache[k]

    along = layout.along_mm
    nz = layout.grid.shape[0]
    out = np.empty((nz, *planes.shape[1:]), np.float32)
    if len(along) == 1:
        out[0] = shifted(0)
        return out
    targets = np.arange(nz) * layout.grid.spacing_mm[0]
    lower = np.clip(np.searchsorted(along, targets, side="right") - 1, 0, len(along) - 2)
    for t in range(nz):
        a = int(lower[t])
        w = min(max((targets[t] - along[a]) / (along[a + 1] - along[a]), 0.0), 1.0)
        if w < 1e-6:
            out[t] = shifted(a)
        elif w > 1 - 1e-6:
            out[t] = shifted(a + 1)
        else:
            out[t] = (1.0 - w) * shifted(a) + w * shifted(a + 1)
    return out
