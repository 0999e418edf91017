"""Minimal ablative margin with sub-voxel accuracy.

Both masks become smooth fields on one grid: a binary mask is blurred with a Gaussian
(sigma :data:`SMOOTH_SIGMA_VOXELS` voxels) and its 0.5 level is the surface; a mask given
as probabilities (values between 0 and 1) is used as it is. Marching cubes turns each
0.5 level into a triangle mesh in patient LPS mm; the blur's inward shift of curved
surfaces (sigma^2 H / 2) is put back along the normals. The margin at a tumour vertex
inside the zone is the distance along the vertex's outward normal to the zone's 0.5 level
(at the minimum it equals the closest distance, and it is not drawn to the ripples of a
voxelised zone); outside, minus the exact distance to the zone's mesh (closest point on
a triangle). The minimal margin is the lowest value of local quadratic fits of these
margins around their lowest smoothed values.

Why this is better than distances between voxel centres: a voxel map puts every surface
on a staircase of voxel centres, which biases the minimum margin low by up to a voxel
(a true 5 mm margin reads about 4.1 mm at 1 mm voxels in one published implementation).
The blurred 0.5 level runs between the staircase's steps, and the accuracy on spheres
and ellipsoids at 0.5-2 mm voxels is tested in ``tests/test_assessment.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ioplan.assessment._masks import PROBABILITIES, mask_field
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume, resample
from ioplan.resources import check_memory

__all__ = [
    "MARGIN_BINS_MM",
    "MarginResult",
    "Mesh",
    "measure_margin",
    "point_mesh_distance",
    "surface_mesh",
]

#: Gaussian blur (in voxels) that turns a binary mask into a field whose 0.5 level runs
#: between the voxel staircase's steps (chosen on analytic spheres: see the tests).
SMOOTH_SIGMA_VOXELS = 1.0
#: Bins of the margin distribution over the tumour surface (mm), as the issue asks.
MARGIN_BINS_MM = {"lt0": (-np.inf, 0.0), "0to5": (0.0, 5.0), "5to10": (5.0, 10.0),
                  "ge10": (10.0, np.inf)}  # fmt: skip
#: Margins (mm) at which the volume of insufficient coverage is given (Kaye et al., "Volumetric
#: 3D assessment of ablation zones", J Vasc Interv Radiol 2019; 0-10 mm).
VIC_MARGINS_MM = (0.0, 5.0, 10.0)


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh in patient LPS mm."""

    vertices_mm: np.ndarray
    faces: np.ndarray

    def vertex_areas_mm2(self) -> np.ndarray:
        """Each vertex's share of the surface (a third of each adjacent triangle)."""
        v = self.vertices_mm[self.faces]
        a = 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
        out = np.zeros(len(self.vertices_mm))
        for k in range(3):
            out += np.bincount(self.faces[:, k], a / 3.0, minlength=len(out))
        return out


def _smoothed(f: np.ndarray, kind: str, sigma_mm: float, what: str,
              notes: list[str]) -> tuple[np.ndarray, float]:  # fmt: skip
    """The field whose 0.5 level is the surface, and the blur it carries (mm).

    A binary mask is blurred (:data:`SMOOTH_SIGMA_VOXELS`), unless it is so small (a few
    voxels across) that the blur would take its every value below 0.5: then its voxel
    surface is used as it is, and ``notes`` says so.
    """
    if kind == PROBABILITIES:
        return f, 0.0
    b = _blur(f, kind)
    if float(b.max()) > 0.5 + 1e-3:
        return b, sigma_mm
    notes.append(f"the {what} mask is only a few voxels across: its voxel surface is used "
                 "(the sub-voxel smoothing would erase it)")  # fmt: skip
    return f, 0.0


def _blur(f: np.ndarray, kind: str) -> np.ndarray:
    if kind == PROBABILITIES:
        return f
    return ndimage.gaussian_filter(f, SMOOTH_SIGMA_VOXELS, mode="constant")


def surface_mesh(
    field_: np.ndarray, grid: Grid, level: float = 0.5, blur_sigma_mm: float = 0.0
) -> Mesh:
    """The ``level`` iso-surface of ``field_`` on ``grid`` (marching cubes), in LPS mm.

    ``blur_sigma_mm`` > 0 says the field is a mask blurred with that Gaussian. Blurring
    moves the 0.5 level of a curved surface inwards by ``sigma^2 H / 2`` (``H`` the sum of
    the principal curvatures; ``sigma^2 / R`` on a sphere), so each vertex is moved back
    out along its normal by that amount, with ``H = div(n)`` taken from the field.
    """
    from skimage.measure import marching_cubes

    f = np.pad(np.asarray(field_, np.float32), 1, mode="constant")  # closed surfaces
    if not (f.max() > level > f.min()):
        raise InputError("the mask has no surface (it is empty or fills the whole image)")
    verts, faces, _, _ = marching_cubes(f, level=level)
    if blur_sigma_mm > 0:
        sp = grid.spacing_mm
        n_out, curv = _outward_normals_and_curvature(f, sp)
        at = verts.T
        h = ndimage.map_coordinates(curv, at, order=1)
        nv = np.stack([ndimage.map_coordinates(c, at, order=1) for c in n_out], axis=1)
        nv /= np.linalg.norm(nv, axis=1, keepdims=True) + 1e-12
        shift_mm = 0.5 * blur_sigma_mm**2 * np.clip(h, -1.0 / blur_sigma_mm, 1.0 / blur_sigma_mm)
        # from mm along the array axes to index units
        verts = verts + nv * (shift_mm[:, None] / np.asarray(sp))
    return Mesh(grid.index_to_lps(verts - 1.0), faces.astype(np.int64))


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray):
    """Squared distance from points ``p`` to triangles ``abc`` (row by row).

    The region tests of Ericson, Real-Time Collision Detection (2005), section 5.1.5,
    vectorised.
    """
    ab, ac, ap = b - a, c - a, p - a
    d1 = np.einsum("ij,ij->i", ab, ap)
    d2 = np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3 = np.einsum("ij,ij->i", ab, bp)
    d4 = np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5 = np.einsum("ij,ij->i", ab, cp)
    d6 = np.einsum("ij,ij->i", ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v = np.where(denom != 0, vb / denom, 0.0)
        w = np.where(denom != 0, vc / denom, 0.0)
        q = a + ab * v[:, None] + ac * w[:, None]  # inside the face
        # edges
        t_ab = np.where(d1 - d3 != 0, d1 / (d1 - d3), 0.0)
        t_ac = np.where(d2 - d6 != 0, d2 / (d2 - d6), 0.0)
        t_bc = np.where((d4 - d3) + (d5 - d6) != 0, (d4 - d3) / ((d4 - d3) + (d5 - d6)), 0.0)
    on_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    on_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    on_bc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
    q = np.where(on_bc[:, None], b + (c - b) * t_bc[:, None], q)
    q = np.where(on_ac[:, None], a + ac * t_ac[:, None], q)
    q = np.where(on_ab[:, None], a + ab * t_ab[:, None], q)
    # vertices
    q = np.where(((d6 >= 0) & (d5 <= d6))[:, None], c, q)
    q = np.where(((d3 >= 0) & (d4 <= d3))[:, None], b, q)
    q = np.where(((d1 <= 0) & (d2 <= 0))[:, None], a, q)
    diff = p - q
    return np.einsum("ij,ij->i", diff, diff)


def point_mesh_distance(points: np.ndarray, mesh: Mesh, k: int = 8) -> np.ndarray:
    """Distance (mm) from each point to the mesh surface.

    The closest point is searched on every triangle touching the ``k`` mesh vertices
    nearest to the point; on a marching-cubes mesh (edges shorter than a voxel) that
    holds the closest triangle.
    """
    pts = np.asarray(points, float)
    verts, faces = mesh.vertices_mm, mesh.faces
    k = min(k, len(verts))
    _, near = cKDTree(verts).query(pts, k=k)
    near = near.reshape(len(pts), k)
    # vertex -> incident faces, padded
    order = np.argsort(faces.ravel(), kind="stable")
    owner = faces.ravel()[order]
    face_of = order // 3
    starts = np.searchsorted(owner, np.arange(len(verts)))
    ends = np.searchsorted(owner, np.arange(len(verts)), side="right")
    deg = int((ends - starts).max())
    best = np.full(len(pts), np.inf)
    for j in range(deg):
        for col in range(k):
            v = near[:, col]
            has = starts[v] + j < ends[v]
            if not has.any():
                continue
            f = face_of[starts[v[has]] + j]
            tri = verts[faces[f]]
            d2 = _closest_on_triangles(pts[has], tri[:, 0], tri[:, 1], tri[:, 2])
            best[has] = np.minimum(best[has], d2)
    return np.sqrt(best)


#: The ray distance may exceed the closest distance by at most this (mm) before the
#: closest distance is taken: far from the minimum the ray runs obliquely to the zone.
RAY_SLACK_MM = 0.5


def _outward_normals_and_curvature(f: np.ndarray, sp) -> tuple[list[np.ndarray], np.ndarray]:
    grad = np.gradient(f.astype(np.float64), *sp)
    norm = np.sqrt(sum(g * g for g in grad)) + 1e-12
    n_out = [-g / norm for g in grad]  # the field falls outwards
    curv = sum(np.gradient(n_out[a], sp[a], axis=a) for a in range(3))
    return n_out, curv


def _ray_margin(tf, zf, grid: Grid, verts_mm: np.ndarray, zone_sigma_mm: float,
                reach_mm: float = 40.0, chunk: int = 4000) -> np.ndarray:  # fmt: skip
    """Distance from each tumour vertex along its outward normal to the zone's 0.5 level.

    The zone field is sampled every half voxel along the ray and the crossing found by
    linear interpolation; a blurred zone's curvature shift (see :func:`surface_mesh`) is
    added back. Rays that leave no crossing within ``reach_mm`` get ``reach_mm``.
    """
    sp = np.asarray(grid.spacing_mm)
    n_t, _ = _outward_normals_and_curvature(tf, sp)
    at = grid.lps_to_index(verts_mm).T
    n_idx = np.stack([ndimage.map_coordinates(c, at, order=1) for c in n_t], axis=1)
    # array-axis components (mm) -> LPS
    d = np.asarray(grid.direction, float)
    n_lps = n_idx @ d.T
    n_lps /= np.linalg.norm(n_lps, axis=1, keepdims=True) + 1e-12
    step = 0.5 * float(sp.min())
    ts = np.arange(0.0, reach_mm + step, step)
    out = np.full(len(verts_mm), reach_mm)
    if zone_sigma_mm > 0:
        n_z, curv_z = _outward_normals_and_curvature(zf, sp)
    for a in range(0, len(verts_mm), chunk):
        p = verts_mm[a : a + chunk]
        nn = n_lps[a : a + chunk]
        pts = p[:, None, :] + ts[None, :, None] * nn[:, None, :]
        idx = grid.lps_to_index(pts.reshape(-1, 3)).T
        f = ndimage.map_coordinates(zf, idx, order=1, cval=0.0).reshape(len(p), len(ts))
        below = f < 0.5
        first = np.argmax(below, axis=1)
        hit = below.any(axis=1) & (first > 0)
        i1 = first[hit]
        rows = np.flatnonzero(hit)
        f0, f1 = f[rows, i1 - 1], f[rows, i1]
        t = ts[i1 - 1] + step * (f0 - 0.5) / np.maximum(f0 - f1, 1e-12)
        if zone_sigma_mm > 0:
            q = p[rows] + t[:, None] * nn[rows]
            qi = grid.lps_to_index(q).T
            h = ndimage.map_coordinates(curv_z, qi, order=1)
            nz = np.stack([ndimage.map_coordinates(c, qi, order=1) for c in n_z], axis=1) @ d.T
            nz /= np.linalg.norm(nz, axis=1, keepdims=True) + 1e-12
            cos = np.clip(np.einsum("ij,ij->i", nz, nn[rows]), 0.5, 1.0)
            shift = 0.5 * zone_sigma_mm**2 * np.clip(h, -1 / zone_sigma_mm, 1 / zone_sigma_mm)
            t = t + shift / cos
        out[a + rows] = t
    return out


#: The margin over the tumour surface is averaged with a Gaussian of this width (voxels,
#: and at least :data:`MARGIN_SMOOTH_MIN_MM`): the staircase leaves each vertex's margin
#: uncertain by about a tenth of a voxel, and the minimum of many such values would read
#: low; a wider average lifts the minimum of a curved margin function (ellipsoids).
#: Chosen on spheres and ellipsoids at 0.5-2 mm voxels (errors in tests/test_assessment.py).
MARGIN_SMOOTH_VOXELS = 1.0
MARGIN_SMOOTH_MIN_MM = 1.0
#: Radius (voxels) of the local quadratic fits that find the minimum (see :func:`_minimum`).
MINIMUM_FIT_VOXELS = 4.0


def _smooth_on_surface(verts: np.ndarray, values: np.ndarray, sigma_mm: float) -> np.ndarray:
    """Gaussian-weighted mean of ``values`` over surface vertices within 2.5 sigma."""
    tree = cKDTree(verts)
    pairs = tree.query_pairs(2.5 * sigma_mm, output_type="ndarray")
    w = np.exp(-0.5 * (np.linalg.norm(verts[pairs[:, 0]] - verts[pairs[:, 1]], axis=1)
                       / sigma_mm) ** 2)  # fmt: skip
    n = len(values)
    num = values.copy()
    den = np.ones(n)
    num += np.bincount(pairs[:, 0], w * values[pairs[:, 1]], minlength=n)
    num += np.bincount(pairs[:, 1], w * values[pairs[:, 0]], minlength=n)
    den += np.bincount(pairs[:, 0], w, minlength=n) + np.bincount(pairs[:, 1], w, minlength=n)
    return num / den


def _minimum(verts, raw, smooth, keep, radius_mm: float, n_candidates: int = 5):
    """The smallest margin, from local quadratic fits around the lowest smoothed margins.

    A quadratic ``m(u, v)`` in the tangent plane is fitted by least squares to the raw
    vertex margins within ``radius_mm`` of each candidate vertex, and its lowest value
    inside half that radius is the local minimum. For a smooth margin function this is
    unbiased, unlike the smoothed value (an average lifts a minimum) or the raw minimum
    (which the staircase's noise lowers).
    """
    idx = np.flatnonzero(keep)
    order = idx[np.argsort(smooth[idx])]
    tree = cKDTree(verts)
    picked: list[int] = []
    for i in order:
        if all(np.linalg.norm(verts[i] - verts[j]) > radius_mm for j in picked):
            picked.append(int(i))
        if len(picked) == n_candidates:
            break
    best = (float("inf"), verts[order[0]])
    for i in picked:
        near = np.asarray(tree.query_ball_point(verts[i], radius_mm))
        near = near[keep[near]]
        val, at = float(smooth[i]), verts[i]
        if len(near) >= 12:
            rel = verts[near] - verts[i]
            _, _, vt = np.linalg.svd(rel - rel.mean(axis=0), full_matrices=False)
            u, v = rel @ vt[0], rel @ vt[1]
            a = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
            coef, *_ = np.linalg.lstsq(a, raw[near], rcond=None)
            # the lowest fitted value on a small disc of sample points
            r = 0.5 * radius_mm
            gu, gv = np.meshgrid(np.linspace(-r, r, 11), np.linspace(-r, r, 11))
            disc = gu**2 + gv**2 <= r * r
            gu, gv = gu[disc], gv[disc]
            q = np.stack([np.ones_like(gu), gu, gv, gu * gu, gu * gv, gv * gv], axis=1) @ coef
            k = int(np.argmin(q))
            val, at = float(q[k]), verts[i] + gu[k] * vt[0] + gv[k] * vt[1]
        if val < best[0]:
            best = (val, at)
    return best


@dataclass(frozen=True)
class MarginResult:
    """Margins of one tumour against one ablation zone (JSON: :meth:`to_dict`)."""

    minimal_margin_mm: float
    coverage_percent: float
    surface_fraction: dict[str, float]
    vic_ml: dict[str, float]
    technical_success: bool
    complete_ablation: bool
    margin_mm: float
    tumour_volume_ml: float
    zone_volume_ml: float
    surface_area_mm2: float
    excluded_surface_percent: float
    closest_point_mm: tuple[float, float, float]
    tumour_mask_kind: str
    zone_mask_kind: str
    notes: tuple[str, ...]
    runtime_s: float
    mesh: Mesh | None = field(default=None, repr=False, compare=False)
    vertex_margin_mm: np.ndarray | None = field(default=None, repr=False, compare=False)
    vertex_excluded: np.ndarray | None = field(default=None, repr=False, compare=False)
    grid: Grid | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (the issue's keys are a contract)."""
        return {
            "minimal_margin_mm": round(self.minimal_margin_mm, 3),
            "coverage_percent": round(self.coverage_percent, 3),
            "surface_fraction": {k: round(v, 3) for k, v in self.surface_fraction.items()},
            "surface_fraction_unit": "percent of the tumour surface",
            "vic_ml": {k: round(v, 4) for k, v in self.vic_ml.items()},
            "technical_success": self.technical_success,
            "technical_success_definition": (
                f"tumour plus its {self.margin_mm:g} mm margin inside the ablation zone "
                "(minimal margin >= the set margin)"
            ),
            "complete_ablation": self.complete_ablation,
            "standard_terms": {
                "reference": "Ahmed M et al. Image-guided tumor ablation: standardization of "
                "terminology and reporting criteria - a 10-year update. Radiology "
                "2014;273:241-260",
                "ablation_zone_volume_ml": round(self.zone_volume_ml, 3),
                "technical_success": self.technical_success,
                "complete_coverage_of_tumour": self.complete_ablation,
                "minimal_ablative_margin_mm": round(self.minimal_margin_mm, 3),
                "not_from_this_measurement": "technique efficacy and local tumour "
                "progression need follow-up imaging (ioplan response, the registry)",
            },
            "margin_mm": self.margin_mm,
            "tumour_volume_ml": round(self.tumour_volume_ml, 4),
            "zone_volume_ml": round(self.zone_volume_ml, 4),
            "surface_area_mm2": round(self.surface_area_mm2, 2),
            "excluded_surface_percent": round(self.excluded_surface_percent, 3),
            "closest_point_mm": [round(v, 2) for v in self.closest_point_mm],
            "tumour_mask": self.tumour_mask_kind,
            "zone_mask": self.zone_mask_kind,
            "method": "sub-voxel: marching-cubes surfaces, exact point-to-triangle distances",
            "notes": list(self.notes),
            "runtime_s": round(self.runtime_s, 3),
        }


def _content_corners_lps(vol: Volume) -> np.ndarray:
    """The 8 corners (LPS mm) of the box around a mask's non-zero voxels (voxel edges)."""
    nz = np.asarray(vol.array) != 0
    lo, hi = [], []
    for ax in range(3):
        hit = np.flatnonzero(nz.any(axis=tuple(k for k in range(3) if k != ax)))
        lo.append(hit[0] - 0.5 if len(hit) else 0.0)
        hi.append(hit[-1] + 0.5 if len(hit) else 0.0)
    corners = [[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]
    return vol.grid.index_to_lps(np.asarray(corners, float))


def _whole_voxel_shift(g: Grid, other: Grid) -> np.ndarray | None:
    """``other``'s first voxel in ``g``'s indices when the two grids share voxels.

    Shared: the same spacing and direction, origins whole voxels apart; None otherwise.
    """
    if not (np.allclose(g.spacing_mm, other.spacing_mm, rtol=1e-6, atol=1e-9)
            and np.allclose(g.direction, other.direction, atol=1e-6)):  # fmt: skip
        return None
    at = np.asarray(g.lps_to_index(np.asarray(other.origin_mm, float)), float)
    whole = np.rint(at)
    return whole.astype(int) if np.allclose(at, whole, atol=1e-4) else None


def _union_grid(g: Grid, lo: np.ndarray, hi: np.ndarray, arrays: int) -> Grid:
    """``g`` widened to indices ``lo`` .. ``hi`` (exclusive), if ``arrays`` float32 maps fit."""
    shape = tuple(int(v) for v in np.asarray(hi) - np.asarray(lo))
    check_memory(
        arrays * 4 * float(np.prod(shape)),
        f"a common {' x '.join(map(str, shape))} grid for the tumour and zone masks",
        hint="crop the masks to the region of the tumour",
    )
    return Grid(shape, g.spacing_mm, tuple(g.index_to_lps(lo)), g.direction)


def _common_grid(tumour: Volume, zone: Volume, notes: list[str]) -> tuple[Volume, Volume]:
    """Both masks on one grid: the finer one's, widened by whole voxels to hold both.

    The coarser mask is resampled linearly (a binary mask becomes a fraction, whose 0.5
    level is its surface); the finer one is only padded. Widening keeps a mask that
    reaches beyond the other's image whole (it used to be cut at the edge).
    """
    gt, gz = tumour.grid, zone.grid
    if gt == gz:
        return tumour, zone
    if not gt.overlaps(gz):
        (lt, ht), (lz, hz) = gt.bounds_lps(), gz.bounds_lps()
        raise InputError(
            "the tumour and zone masks do not overlap in space: the tumour image spans "
            f"{np.round(lt, 1).tolist()} to {np.round(ht, 1).tolist()} mm (LPS), the zone "
            f"image {np.round(lz, 1).tolist()} to {np.round(hz, 1).tolist()} mm; were they "
            "drawn on the same patient and scan (or give --pre-image/--post-image)?"
        )
    fine_t = np.prod(gt.spacing_mm) <= np.prod(gz.spacing_mm)
    fine, moving = (tumour, zone) if fine_t else (zone, tumour)
    name = "zone" if fine_t else "tumour"
    g = fine.grid
    shift = _whole_voxel_shift(g, moving.grid)
    if shift is not None:
        # the same voxels, another crop (a mask padded or cut by whole slices): both are
        # placed as they are on the union of the two boxes, nothing resampled, so a padded
        # copy of a mask measures exactly as the mask (it was resampled into a fraction)
        lo = np.minimum(shift, 0)
        target = _union_grid(g, lo, np.maximum(shift + np.asarray(moving.grid.shape), g.shape),
                             arrays=2)  # fmt: skip
        shape = target.shape
        placed = []
        for vol, start in ((fine, -lo), (moving, shift - lo)):
            arr = np.zeros(shape, np.asarray(vol.array).dtype)
            arr[tuple(slice(a, a + n) for a, n in zip(start, vol.grid.shape, strict=True))] = (
                np.asarray(vol.array)
            )
            placed.append(Volume(arr, target))
        notes.append(f"the {name} mask was on another crop of the same voxels: placed as it is")
        return (placed[0], placed[1]) if fine_t else (placed[1], placed[0])
    idx = g.lps_to_index(_content_corners_lps(moving))
    lo = np.minimum(np.floor(idx.min(axis=0)).astype(int) - 1, 0)
    hi = np.maximum(np.ceil(idx.max(axis=0)).astype(int) + 2, np.asarray(g.shape))
    target = _union_grid(g, lo, hi, arrays=3)
    shape = target.shape
    placed = np.zeros(shape, np.asarray(fine.array).dtype)
    at = tuple(slice(-a, -a + n) for a, n in zip(lo, g.shape, strict=True))
    placed[at] = np.asarray(fine.array)
    arr = np.asarray(moving.array)
    f = arr.astype(np.float32) if np.issubdtype(arr.dtype, np.floating) else (arr > 0)
    res = resample(Volume(f.astype(np.float32), moving.grid), target, interpolation="linear")
    widened = " (widened to hold both masks)" if shape != tuple(g.shape) else ""
    notes.append(
        f"the {name} mask was on another grid: resampled (linear, as a fraction) onto the "
        f"other's {tuple(round(s, 3) for s in target.spacing_mm)} mm grid{widened}"
    )
    out = Volume(np.clip(np.asarray(res.array), 0.0, 1.0).astype(np.float32), target)
    return (Volume(placed, target), out) if fine_t else (out, Volume(placed, target))


def check_margin_options(margin_mm: float, capsule_exclusion_mm: float, has_liver: bool) -> None:
    """Refuse a margin or capsule exclusion outside 0-30 mm, or an exclusion without a liver."""
    if not np.isfinite(margin_mm) or not 0.0 <= margin_mm <= 30.0:
        raise InputError(f"--margin-mm must be 0-30 mm, got {margin_mm:g}")
    if not np.isfinite(capsule_exclusion_mm) or not 0.0 <= capsule_exclusion_mm <= 30.0:
        raise InputError(f"--capsule-exclusion-mm must be 0-30 mm, got {capsule_exclusion_mm:g}")
    if capsule_exclusion_mm > 0 and not has_liver:
        raise InputError("--capsule-exclusion-mm needs the liver mask (--liver)")


def _edge_notes(tm: np.ndarray, zm: np.ndarray, sub: Grid, g: Grid, notes: list[str]) -> None:
    """Say when the zone (only) reaches the image's edge: it is taken to continue there."""
    def touches(m: np.ndarray) -> bool:
        # the crop ``sub`` starts at the image's edge where its origin is the image's
        lo = np.rint(g.lps_to_index(np.asarray(sub.origin_mm, float))).astype(int)
        hi = lo + np.asarray(m.shape)
        for ax in range(3):
            first = np.take(m, 0, axis=ax).any() and lo[ax] == 0
            last = np.take(m, -1, axis=ax).any() and hi[ax] == g.shape[ax]
            if first or last:
                return True
        return False

    if touches(zm) and not touches(tm):
        notes.append("the ablation zone reaches the image's edge: it is taken to continue past "
                     "the edge as it is at it")  # fmt: skip


def _holes_bound(mam: float, where, tm: np.ndarray, zm: np.ndarray, grid: Grid,
                 notes: list[str]) -> tuple[float, Any]:  # fmt: skip
    """Keep the minimal margin honest where the zone has holes smaller than the blur.

    The surfaces are drawn from masks blurred by a voxel, which closes a one-voxel hole in
    the zone. When tumour voxels lie outside the zone but the surfaces say the tumour is
    covered (``mam > 0``), the margin is bounded by the deepest such voxel: its centre lies
    at least (distance to the nearest zone voxel centre - half a voxel) from ablated tissue.
    """
    uncovered = tm & ~zm
    if mam <= 0 or not uncovered.any():
        return mam, where
    sp = np.asarray(grid.spacing_mm)
    edt = ndimage.distance_transform_edt(~zm, sampling=sp)
    idx = np.argwhere(uncovered)
    depth = edt[tuple(idx.T)] - 0.5 * float(sp.min())
    k = int(np.argmax(depth))
    bound = -float(max(depth[k], 0.5 * float(sp.min())))
    notes.append(
        f"{len(idx)} tumour voxel(s) lie in holes of the zone that the sub-voxel surfaces "
        f"close over; the minimal margin is bounded by the deepest one ({bound:.2f} mm)"
    )
    return bound, tuple(float(v) for v in grid.index_to_lps(idx[k].astype(float)))


def measure_margin(
    tumour: Volume,
    zone: Volume,
    *,
    margin_mm: float = 5.0,
    liver: Volume | None = None,
    capsule_exclusion_mm: float = 0.0,
) -> MarginResult:
    """Margins of ``tumour`` against ``zone``, between sub-voxel surfaces (see the module doc).

    Parameters
    ----------
    tumour, zone : Volume
        Masks, arrays ``(z, y, x)`` with their grids (LPS mm): 0/1, labels (every
        non-zero counted) or probabilities 0-1 (surface at 0.5). On different grids, both
        go onto the finer grid, widened to hold both masks (said in ``notes``).
    margin_mm : float
        The margin wanted for technical success, 0-30 mm.
    liver : Volume, optional
        Liver mask, needed by ``capsule_exclusion_mm``.
    capsule_exclusion_mm : float
        0-30 mm; > 0 leaves out tumour surface within that distance of the liver's edge
        (the zone cannot extend beyond the capsule there).

    Returns
    -------
    MarginResult
        ``minimal_margin_mm`` (negative when the tumour pokes out of the zone),
        ``coverage_percent`` (tumour voxels inside the zone), ``surface_fraction`` (% of
        the tumour surface per margin bin of :data:`MARGIN_BINS_MM`), ``vic_ml`` (volume
        of insufficient coverage, mL, at 0, 5 and 10 mm), ``technical_success``
        (minimal margin >= ``margin_mm``), the tumour surface mesh with per-vertex
        margins (mm), and ``notes``.

    Raises
    ------
    ioplan.errors.InputError
        An empty mask, an image given as a mask, NaN values, masks whose images do not
        overlap in space, a margin or exclusion out of range.

    References
    ----------
    .. [1] Ahmed M et al. Image-guided tumor ablation: standardization of terminology and
       reporting criteria - a 10-year update. Radiology 2014;273:241-260.
       https://doi.org/10.1148/radiol.14132958 (minimal ablative margin, technical
       success).
    .. [2] Lorensen WE, Cline HE. Marching cubes: a high resolution 3D surface
       construction algorithm. SIGGRAPH Comput Graph 1987;21(4):163-169.
       https://doi.org/10.1145/37402.37422
    .. [3] Ericson C. Real-Time Collision Detection. Morgan Kaufmann 2005, section 5.1.5
       (closest point on a triangle).

    Examples
    --------
    Concentric balls of radius 6 and 12 mm on 1 mm voxels: the margin is 12 - 6 = 6 mm
    (the tests bound the error on such shapes at 0.45 mm for 1 mm voxels).

    >>> g = Grid((40, 40, 40), (1.0, 1.0, 1.0), (-19.5, -19.5, -19.5))
    >>> r = np.linalg.norm(np.indices(g.shape) - 19.5, axis=0)
    >>> res = measure_margin(Volume((r <= 6).astype(np.uint8), g),
    ...                      Volume((r <= 12).astype(np.uint8), g), margin_mm=5.0)
    >>> abs(res.minimal_margin_mm - 6.0) < 0.45, res.technical_success
    (True, True)
    >>> round(res.coverage_percent)
    100
    """
    t0 = time.perf_counter()
    check_margin_options(margin_mm, capsule_exclusion_mm, liver is not None)
    notes: list[str] = []
    tumour, zone = _common_grid(tumour, zone, notes)
    g = tumour.grid
    tf, t_kind, tm = mask_field(tumour.array, "the tumour mask", one_structure=True)
    zf, z_kind, zm = mask_field(zone.array, "the zone mask", one_structure=True)
    if not tm.any():
        raise InputError("the tumour mask is empty")
    if not zm.any():
        raise InputError("the ablation zone mask is empty")
    if not (tm & zm).any():
        notes.append(
            "the tumour lies entirely outside the ablation zone (no tumour voxel inside it): "
            "the margin is minus the largest distance of the tumour from the zone"
        )
    # crop to both masks plus room for the blur and the 10 mm bins; where that room runs
    # past the image's edge, the masks are continued as they are at the edge (a mask cut
    # by the edge does not end there), and the tumour surface beyond the edge is left out
    pad = np.ceil(12.0 / np.asarray(g.spacing_mm)).astype(int) + 3
    both = tm | zm
    idx = np.argwhere(both)
    lo_w, hi_w = idx.min(axis=0) - pad, idx.max(axis=0) + pad + 1
    lo, hi = np.maximum(lo_w, 0), np.minimum(hi_w, g.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    sub = Grid(tuple(int(v) for v in hi - lo), g.spacing_mm, tuple(g.index_to_lps(lo)), g.direction)
    widen = [(int(a), int(b)) for a, b in zip(lo - lo_w, hi_w - hi, strict=True)]
    subw = Grid(tuple(int(v) for v in hi_w - lo_w), g.spacing_mm, tuple(g.index_to_lps(lo_w)),
                g.direction)  # fmt: skip
    sig_mm = SMOOTH_SIGMA_VOXELS * float(np.mean(g.spacing_mm))
    tf, t_sig = _smoothed(np.pad(tf[sl], widen, mode="edge"), t_kind, sig_mm, "tumour", notes)
    zf, z_sig = _smoothed(np.pad(zf[sl], widen, mode="edge"), z_kind, sig_mm, "zone", notes)
    tm, zm = tm[sl], zm[sl]
    _edge_notes(tm, zm, sub, g, notes)
    t_mesh = surface_mesh(tf, subw, blur_sigma_mm=t_sig)
    z_mesh = surface_mesh(zf, subw, blur_sigma_mm=z_sig)
    dist = point_mesh_distance(t_mesh.vertices_mm, z_mesh)
    inside = ndimage.map_coordinates(zf, subw.lps_to_index(t_mesh.vertices_mm).T, order=1) > 0.5
    ray = _ray_margin(tf, zf, subw, t_mesh.vertices_mm, z_sig)
    # inside the zone: the distance along the tumour's normal to the zone's edge; at the
    # minimum it equals the closest distance (there the shortest segment is normal to
    # both surfaces), and unlike the closest distance it is not drawn to the ripples of a
    # voxelised zone surface. Outside: the closest distance, negative.
    raw = np.where(inside, np.minimum(ray, np.maximum(dist, 0.0) + RAY_SLACK_MM), -dist)
    h_mm = float(np.mean(g.spacing_mm))
    s_mm = max(MARGIN_SMOOTH_VOXELS * h_mm, MARGIN_SMOOTH_MIN_MM)
    margin = _smooth_on_surface(t_mesh.vertices_mm, raw, s_mm)
    area = t_mesh.vertex_areas_mm2()
    # tumour surface beyond the outermost voxel centres: the mask was cut by the image's
    # edge there, and the margin is unknown
    at = g.lps_to_index(t_mesh.vertices_mm)
    tol = 1e-6
    off_image = np.any((at < -tol) | (at > np.asarray(g.shape) - 1 + tol), axis=1)
    if off_image.all():
        raise InputError("the tumour's surface lies wholly outside the image (the mask is cut "
                         "by the image's edges everywhere): no margin can be measured")  # fmt: skip
    excluded = off_image.copy()
    if off_image.any():
        notes.append(
            "the tumour reaches the image's edge, which cuts its mask: the margin is measured "
            "on its surface inside the image only (the masks are taken to continue past the "
            "edge as they are at it; the surface fractions are of the surface inside)"
        )
    if capsule_exclusion_mm > 0 and liver is not None:
        lv = liver if liver.grid == g else resample(liver, g, interpolation="nearest")
        lm = np.asarray(lv.array)[sl] > 0
        # the tumour counts as liver (a tumour on the capsule lies in it)
        edge = ndimage.distance_transform_edt(lm | tm, sampling=g.spacing_mm)
        d_edge = ndimage.map_coordinates(edge, sub.lps_to_index(t_mesh.vertices_mm).T, order=1)
        excluded |= d_edge <= capsule_exclusion_mm
        if excluded.all():
            raise InputError("the capsule exclusion leaves no tumour surface to measure")
        share = 100 * area[excluded & ~off_image].sum() / area[~off_image].sum()
        notes.append(
            f"{share:.1f} % of the tumour surface lies "
            f"within {capsule_exclusion_mm:g} mm of the liver capsule and is left out"
        )
    keep = ~excluded
    m_keep, a_keep = margin[keep], area[keep]
    mam, where = _minimum(t_mesh.vertices_mm, raw, margin, keep, MINIMUM_FIT_VOXELS * h_mm)
    fractions = {
        k: float(100.0 * a_keep[(m_keep >= lo_) & (m_keep < hi_)].sum() / a_keep.sum())
        for k, (lo_, hi_) in MARGIN_BINS_MM.items()
    }
    mam, where = _holes_bound(mam, where, tm, zm, sub, notes)
    if mam < 0 and not (tm & ~zm).any() and fractions["lt0"] == 0.0:
        # the two measures disagree within a voxel: say which holds what
        notes.append(
            f"every tumour voxel lies in the zone, but the sub-voxel surfaces put the closest "
            f"point {-mam:.2f} mm outside it (the zone's edge passes through a tumour voxel "
            "there, e.g. where it stops at a vessel): incomplete by the surface distance, "
            "complete by the voxels"
        )
    vox_ml = g.voxel_volume_ml
    d_t = ndimage.distance_transform_edt(~tm, sampling=g.spacing_mm)
    vic = {f"{m:g}": float(np.sum((d_t <= m) & ~zm)) * vox_ml for m in VIC_MARGINS_MM}
    return MarginResult(
        minimal_margin_mm=mam,
        coverage_percent=100.0 * float(np.sum(tm & zm)) / float(tm.sum()),
        surface_fraction=fractions,
        vic_ml=vic,
        technical_success=bool(mam >= margin_mm),
        complete_ablation=bool(mam >= 0.0),
        margin_mm=float(margin_mm),
        tumour_volume_ml=float(tm.sum()) * vox_ml,
        zone_volume_ml=float(zm.sum()) * vox_ml,
        surface_area_mm2=float(area[~off_image].sum()),
        excluded_surface_percent=float(
            100.0 * area[excluded & ~off_image].sum() / area[~off_image].sum()
        ),
        closest_point_mm=tuple(float(v) for v in where),
        tumour_mask_kind=t_kind,
        zone_mask_kind=z_kind,
        notes=tuple(notes),
        runtime_s=time.perf_counter() - t0,
        mesh=t_mesh,
        vertex_margin_mm=margin,
        vertex_excluded=excluded,
        grid=subw,
    )
