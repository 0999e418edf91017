"""Vessel trees: centreline segments with radii, grown by a seeded branching rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["VesselSegment", "grow_tree", "local_radius_mm", "rasterise_segments"]


@dataclass(frozen=True)
class VesselSegment:
    """One straight piece of a vessel centreline, in LPS mm.

    Attributes
    ----------
    tree : str
        Name of the tree (``"portal"``, ``"hepatic_right"``, ...).
    index, parent : int
        Position in the tree's list; ``parent`` is -1 for a root.
    start_mm, end_mm : tuple of 3 float
        LPS end points.
    radius_mm : float
        Lumen radius (constant along the segment).
    """

    tree: str
    index: int
    parent: int
    start_mm: tuple[float, float, float]
    end_mm: tuple[float, float, float]
    radius_mm: float

    @property
    def length_mm(self) -> float:
        """Centreline length in mm."""
        return float(np.linalg.norm(np.subtract(self.end_mm, self.start_mm)))


def _perpendicular_basis(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(d, e1)


def _rotate_towards(d: np.ndarray, axis_dir: np.ndarray, angle: float) -> np.ndarray:
    """Tilt unit vector ``d`` by ``angle`` towards unit vector ``axis_dir`` (perpendicular to d)."""
    v = np.cos(angle) * d + np.sin(angle) * axis_dir
    return v / np.linalg.norm(v)


def grow_tree(
    name: str,
    root_start_mm: np.ndarray,
    root_direction: np.ndarray,
    root_radius_mm: float,
    *,
    inside_depth_mm: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    min_radius_mm: float = 1.0,
    max_segments: int = 1500,
    length_per_radius: float = 6.0,
) -> list[VesselSegment]:
    """Grow a bifurcating vessel tree inside an organ.

    Each parent of radius ``r0`` splits into two children whose radii obey
    Murray's law, ``r0^3 = r1^3 + r2^3`` (Murray, PNAS 1926;12:207), with a
    random asymmetry, at the angles that minimise the work of flow for that
    split (Zamir, J Gen Physiol 1978;72:837):
    ``cos(theta_1) = (r0^4 + r1^4 - r2^4) / (2 r0^2 r1^2)``. A child is kept
    only if its end lies at least its radius plus 1 mm inside the organ;
    of twelve bifurcation planes, the larger child takes the one that leads
    deepest into the organ and the smaller child the opposite side. Growth stops below
    ``min_radius_mm``.

    Parameters
    ----------
    name : str
        Tree name stored in each segment.
    root_start_mm, root_direction : array of 3
        Where the root starts, and its direction (normalised here).
    root_radius_mm : float
        Radius of the root segment.
    inside_depth_mm : callable
        Maps points ``(N, 3)`` in LPS mm to their depth inside the organ, in
        mm (negative or zero outside).
    rng : numpy.random.Generator
        Source of the random asymmetry and bifurcation planes.

    Returns
    -------
    list of VesselSegment
        Parents come before their children.
    """
    segments: list[VesselSegment] = []
    d0 = np.asarray(root_direction, float)
    d0 /= np.linalg.norm(d0)
    # (start, direction, radius, parent index)
    queue: list[tuple[np.ndarray, np.ndarray, float, int]] = [
        (np.asarray(root_start_mm, float), d0, float(root_radius_mm), -1)
    ]
    while queue and len(segments) < max_segments:
        start, d, r0, parent = queue.pop(0)
        length = float(np.clip(length_per_radius * r0 * rng.uniform(0.8, 1.25), 5.0, 35.0))
        end = start + d * length
        idx = len(segments)
        segments.append(
            VesselSegment(name, idx, parent, tuple(map(float, start)), tuple(map(float, end)), r0)
        )
        if r0 < min_radius_mm * 1.26:  # children would fall below the minimum radius
            continue
        asym = rng.uniform(0.45, 1.0)  # r2 / r1
        r1 = r0 / (1.0 + asym**3) ** (1.0 / 3.0)
        r2 = asym * r1
        cos1 = (r0**4 + r1**4 - r2**4) / (2 * r0**2 * r1**2)
        cos2 = (r0**4 + r2**4 - r1**4) / (2 * r0**2 * r2**2)
        th1, th2 = float(np.arccos(np.clip(cos1, -1, 1))), float(np.arccos(np.clip(cos2, -1, 1)))
        e1, e2 = _perpendicular_basis(d)
        # Candidate bifurcation planes: 12 azimuths. The larger child takes the
        # plane that leads deepest into the organ; the smaller one goes to the
        # opposite side (within +-60 degrees), as Murray-Zamir geometry wants.
        psis = rng.uniform(0, 2 * np.pi) + np.arange(12) * (np.pi / 6)
        chosen: float | None = None
        for th, r, is_first in ((th1, r1, True), (th2, r2, False)):
            if r < min_radius_mm:
                continue
            child_len = float(np.clip(length_per_radius * r, 5.0, 35.0))
            best, best_depth = None, -np.inf
            for psi in psis:
                if not is_first and chosen is not None:
                    gap = np.angle(np.exp(1j * (psi - chosen - np.pi)))
                    if abs(gap) > np.pi / 3:
                        continue
                axis = np.cos(psi) * e1 + np.sin(psi) * e2
                dc = _rotate_towards(d, axis, th)
                depth = inside_depth_mm(
                    np.stack([end + dc * child_len, end + dc * 0.5 * child_len])
                )
                if np.all(depth >= r + 0.5) and depth.min() > best_depth:
                    best, best_depth = (psi, dc), float(depth.min())
            if best is None:
                continue
            if is_first:
                chosen = best[0]
            queue.append((end, best[1], r, idx))
    return segments


def rasterise_segments(
    labels: np.ndarray,
    value: int,
    segments: list[VesselSegment],
    lps_to_index: Callable[[np.ndarray], np.ndarray],
    index_to_lps: Callable[[np.ndarray], np.ndarray],
    spacing_mm: tuple[float, float, float],
    *,
    allowed: np.ndarray | None = None,
    min_radius_mm: float | None = None,
) -> None:
    """Paint ``value`` into ``labels`` wherever a voxel centre lies within a segment's radius.

    Parameters
    ----------
    labels : ndarray (z, y, x)
        Modified in place.
    value : int
        Label value to paint.
    segments : list of VesselSegment
        Centrelines.
    lps_to_index, index_to_lps : callable
        The grid's mappings.
    spacing_mm : tuple of 3 float
        Voxel spacing ``(z, y, x)``.
    allowed : ndarray of bool, optional
        Only these voxels may be painted.
    min_radius_mm : float, optional
        Radii below this are drawn with this radius, so that thin vessels stay
        connected on coarse grids (default: half the largest spacing).
    """
    shape = np.asarray(labels.shape)
    floor_r = 0.5 * max(spacing_mm) if min_radius_mm is None else min_radius_mm
    for seg in segments:
        p0 = np.asarray(seg.start_mm)
        p1 = np.asarray(seg.end_mm)
        r = max(seg.radius_mm, floor_r)
        lo_mm = np.minimum(p0, p1) - r
        hi_mm = np.maximum(p0, p1) + r
        corners = np.array(
            [
                [a, b, c]
                for a in (lo_mm[0], hi_mm[0])
                for b in (lo_mm[1], hi_mm[1])
                for c in (lo_mm[2], hi_mm[2])
            ]
        )
        idx = lps_to_index(corners)
        lo = np.maximum(np.floor(idx.min(axis=0)).astype(int), 0)
        hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        zz, yy, xx = np.meshgrid(
            *(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij"
        )
        pts = index_to_lps(np.stack([zz, yy, xx], axis=-1))
        seg_v = p1 - p0
        seg_len2 = float(seg_v @ seg_v)
        t = np.clip(((pts - p0) @ seg_v) / seg_len2, 0.0, 1.0) if seg_len2 > 0 else 0.0
        closest = p0 + np.asarray(t)[..., None] * seg_v
        inside = np.sum((pts - closest) ** 2, axis=-1) <= r * r
        sub = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        if allowed is not None:
            inside &= allowed[sub]
        labels[sub][inside] = value


def local_radius_mm(mask: np.ndarray, spacing_mm) -> np.ndarray:
    """Local radius (mm) of a tubular mask at each voxel.

    The largest inscribed distance within 2 voxels, plus half a voxel (the centreline
    voxel's own half-width).

    Zero outside ``mask``'s neighbourhood; only its values on ``mask`` are meaningful.
    """
    from scipy import ndimage

    edt = ndimage.distance_transform_edt(mask, sampling=spacing_mm)
    return ndimage.maximum_filter(edt, size=5) + 0.5 * min(spacing_mm)
