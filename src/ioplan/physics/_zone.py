"""Ablation-zone metrics: length along the applicator, largest width across it, volume."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ioplan.errors import InputError
from ioplan.imaging import Grid

__all__ = ["AxialZone", "ZoneMetrics", "axial_zone", "boundary_change_c", "boundary_warning",
           "zone_metrics"]


@dataclass(frozen=True)
class ZoneMetrics:
    """Size of a zone relative to an applicator axis (mm, mL).

    Attributes
    ----------
    length_mm : float
        Extent along the applicator axis (voxel edges included).
    width_mm : float
        Largest extent across the axis (over 36 directions in the
        perpendicular plane, voxel edges included).
    volume_ml : float
        Voxel count times voxel volume.
    tip_extent_mm : float
        How far the zone reaches beyond the tip along the axis (negative if it
        ends before the tip).
    """

    length_mm: float
    width_mm: float
    volume_ml: float
    tip_extent_mm: float

    def to_dict(self) -> dict[str, float]:
        """JSON-friendly dictionary."""
        return {k: round(v, 3) for k, v in asdict(self).items()}


def zone_metrics(
    mask: np.ndarray,
    grid: Grid,
    tip_mm: tuple[float, float, float],
    direction: tuple[float, float, float],
) -> ZoneMetrics:
    """Length, width, volume and tip extent of the voxels in ``mask`` around an axis.

    Parameters
    ----------
    mask : ndarray of bool, shape ``grid.shape``
        The zone.
    grid : Grid
        Its geometry (any direction).
    tip_mm : tuple of float
        The applicator tip (LPS mm).
    direction : tuple of float
        The insertion direction (towards the tip); normalised here.

    Returns
    -------
    ZoneMetrics
        Extents in mm include the voxels' own extent; the volume in mL.

    Examples
    --------
    A 5 x 7 x 9 voxel box at 2 mm, the axis along z: 18 mm long.

    >>> import numpy as np
    >>> from ioplan.imaging import Grid
    >>> g = Grid((20, 20, 20), (2.0, 2.0, 2.0))
    >>> m = np.zeros(g.shape, bool)
    >>> m[4:13, 6:13, 8:13] = True
    >>> z = zone_metrics(m, g, tuple(g.index_to_lps((12, 9, 10))), (0.0, 0.0, 1.0))
    >>> z.length_mm, round(z.volume_ml, 3), z.tip_extent_mm
    (18.0, 2.52, 1.0)
    """
    idx = np.argwhere(mask)
    if idx.size == 0:
        return ZoneMetrics(0.0, 0.0, 0.0, 0.0)
    pts = grid.index_to_lps(idx)
    d = np.asarray(direction, float)
    d /= np.linalg.norm(d)
    rel = pts - np.asarray(tip_mm, float)
    along = rel @ d
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d, e1)
    # a voxel's extent along a unit direction u is sum_j |u . axis_j| * spacing_j
    dirs = grid.direction_matrix * np.asarray(grid.spacing_mm)[None, :]

    def voxel_extent(u: np.ndarray) -> float:
        return float(np.sum(np.abs(u @ dirs)))

    length = float(along.max() - along.min()) + voxel_extent(d)
    width = 0.0
    for a in np.linspace(0.0, np.pi, 36, endpoint=False):
        u = np.cos(a) * e1 + np.sin(a) * e2
        proj = rel @ u
        width = max(width, float(proj.max() - proj.min()) + voxel_extent(u))
    tip_extent = float(along.max()) + 0.5 * voxel_extent(d)
    return ZoneMetrics(length, width, idx.shape[0] * grid.voxel_volume_ml, tip_extent)


@dataclass(frozen=True)
class AxialZone:
    """Sub-voxel size of a zone around an applicator along a grid axis (mm).

    Attributes
    ----------
    length_mm : float
        Extent along the applicator axis where the zone reaches (level crossings
        interpolated linearly between voxel centres).
    width_mm : float
        Largest diameter across the axis: at each slice, the sum of the crossings
        along opposite rays (4 rays: +-each in-plane grid axis), maximised over slices.
    tip_extent_mm : float
        How far the zone reaches beyond the tip.
    centre_offset_mm : float
        How far behind the tip the middle of the zone's length lies (the chart
        ellipsoid's centre offset).
    """

    length_mm: float
    width_mm: float
    tip_extent_mm: float
    centre_offset_mm: float

    def to_dict(self) -> dict[str, float]:
        """JSON-friendly dictionary."""
        return {k: round(v, 3) for k, v in asdict(self).items()}


def _crossing(values: np.ndarray, level: float) -> float:
    """Distance (in samples from index 0) where ``values`` last falls below ``level``.

    ``values[0]`` need not reach the level (an applicator voxel on the axis): the
    first sample at or above it starts the zone. Returns 0 if none reaches it.
    """
    inside = np.flatnonzero(values >= level)
    if inside.size == 0:
        return 0.0
    i = int(inside[-1])
    if i + 1 >= values.size:
        return float(i)
    a, b = float(values[i]), float(values[i + 1])
    return i + (a - level) / (a - b) if a != b else float(i)


def axial_zone(
    field: np.ndarray,
    grid: Grid,
    tip_mm: tuple[float, float, float],
    direction: tuple[float, float, float],
    level: float,
) -> AxialZone:
    """Sub-voxel zone size where ``field >= level``, for an applicator along a grid axis.

    Used for validation against charts: voxel counting quantises length and width to
    the spacing, which at 2 mm is as large as the errors being measured. The field
    should vary smoothly across the edge (log Omega, temperature). The tip must lie
    on a voxel centre and the axis along a grid axis (a homogeneous block).
    """
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    axis_lps = np.abs(grid.direction_matrix.T @ d)  # |cosine| with each array axis
    a = int(np.argmax(axis_lps))
    if axis_lps[a] < 1 - 1e-9:
        raise InputError("axial_zone needs the applicator along a grid axis")
    idx = np.asarray(grid.lps_to_index(tip_mm), float)
    tip_idx = np.rint(idx).astype(int)
    if np.max(np.abs(idx - tip_idx)) > 1e-6 or not grid.contains_lps(tip_mm):
        raise InputError("axial_zone needs the tip on a voxel centre of the grid")
    h = grid.spacing_mm[a]
    sign = float(np.sign(grid.direction_matrix[:, a] @ d))  # +1: tip direction = +index
    f = np.moveaxis(np.asarray(field, float), a, 0)
    others = [ax for ax in range(3) if ax != a]
    c1, c2 = int(tip_idx[others[0]]), int(tip_idx[others[1]])
    h1, h2 = grid.spacing_mm[others[0]], grid.spacing_mm[others[1]]
    n = f.shape[0]
    slice_max = f.reshape(n, -1).max(axis=1)
    hit = np.flatnonzero(slice_max >= level)
    if hit.size == 0:
        return AxialZone(0.0, 0.0, 0.0, 0.0)
    # ends along the axis (index units), interpolated between slice maxima
    lo, hi = int(hit[0]), int(hit[-1])
    lo_x = float(lo) - _frac_out(slice_max, lo, -1, level)
    hi_x = float(hi) + _frac_out(slice_max, hi, +1, level)
    length = (hi_x - lo_x) * h
    width = 0.0
    for s in range(lo, hi + 1):
        plane = f[s]
        r = (
            _crossing(plane[c1:, c2], level) * h1 + _crossing(plane[c1::-1, c2], level) * h1,
            _crossing(plane[c1, c2:], level) * h2 + _crossing(plane[c1, c2::-1], level) * h2,
        )
        width = max(width, *r)
    t = float(tip_idx[a])
    tip_end = hi_x if sign > 0 else lo_x
    back_end = lo_x if sign > 0 else hi_x
    tip_extent = (tip_end - t) * sign * h
    centre_offset = -((0.5 * (tip_end + back_end) - t) * sign * h)
    return AxialZone(length, width, tip_extent, centre_offset)


def _frac_out(values: np.ndarray, i: int, step: int, level: float) -> float:
    """Fraction of a sample beyond inside index ``i`` (towards ``step``) where the level falls."""
    j = i + step
    if j < 0 or j >= values.size:
        return 0.0
    a, b = float(values[i]), float(values[j])
    return (a - level) / (a - b) if a > b else 0.0


def boundary_change_c(state, body_c: float, cold: bool) -> float:
    """Largest heating (or, for cryo, cooling) on the layer inside the far boundary (degC).

    ``state`` is a :class:`~ioplan.physics.ThermalState`. Only the direction the ablation
    acts in counts: cooled applicator shafts that cross the boundary cool tissue there
    without touching the zone.
    """
    arr = state.tmin_c if cold else state.tmax_c
    layer = np.concatenate(
        [arr[1].ravel(), arr[-2].ravel(), arr[:, 1].ravel(), arr[:, -2].ravel(),
         arr[:, :, 1].ravel(), arr[:, :, -2].ravel()]
    )  # fmt: skip
    change = (body_c - layer) if cold else (layer - body_c)
    return max(0.0, float(np.max(change)))


def boundary_warning(change_c: float, external_map: bool, cold: bool) -> str:
    """Why a zone may be cut by the grid's edge (the tissue there changed by ``change_c``)."""
    what = "cooled" if cold else "heated"
    why = ("the power map fixes the grid: give a map that reaches further beyond the zone"
           if external_map else "the domain is already at its largest margin (100 mm)")
    return (f"the tissue next to the grid's edge {what} by {change_c:.1f} degC: the edge, held "
            f"at the starting temperature, cuts the zone short; {why}")
