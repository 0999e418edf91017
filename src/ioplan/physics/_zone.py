"""Ablation-zone metrics: length along the applicator, largest width across it, volume."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ioplan.imaging import Grid

__all__ = ["ZoneMetrics", "zone_metrics"]


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
    """Metrics of the voxels in ``mask`` around the axis through ``tip_mm`` along ``direction``."""
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
