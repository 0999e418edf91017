"""Minimal ablative margin with sub-voxel accuracy.

Both masks become smooth fields on one grid: a binary mask is blurred with a Gaussian
(sigma :data:`SMOOTH_SIGMA_VOXELS` voxels) and its 0.5 level is the surface; a mask given
as probabilities (values between 0 and 1) is used as it is. Marching cubes turns each
0.5 level into a triangle mesh in patient LPS mm. The margin at every vertex of the
tumour surface is its exact distance to the zone's mesh (closest point on a triangle),
positive where the vertex lies inside the zone and negative outside.

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

from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume, resample

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


def _field(arr: np.ndarray, what: str) -> tuple[np.ndarray, str, np.ndarray]:
    """A float field whose 0.5 level is the surface, how it was made, and the voxel mask."""
    a = np.asarray(arr)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise InputError(f"the {what} mask holds NaN or infinite values")
        if a.min() < 0.0 or a.max() > 1.0:
            raise InputError(
                f"the {what} mask has values outside 0-1 ({a.min():g} to {a.max():g}): give a "
                "label map or probabilities"
            )
        if np.all((a == 0) | (a == 1)):
            a = a.astype(np.uint8)
        else:
            return a.astype(np.float32), "probabilities (surface at 0.5)", a > 0.5
    if a.min() < 0:
        raise InputError(f"the {what} mask has negative labels")
    binary = (a > 0).astype(np.float32)
    kind = "binary"
    if a.max() > 1:
        kind = "label map (every non-zero label counted)"
    smooth = ndimage.gaussian_filter(binary, SMOOTH_SIGMA_VOXELS, mode="constant")
    return smooth, kind, binary > 0


def surface_mesh(field_: np.ndarray, grid: Grid, level: float = 0.5) -> Mesh:
    """The ``level`` iso-surface of ``field_`` on ``grid`` (marching cubes), in LPS mm."""
    from skimage.measure import marching_cubes

    f = np.pad(np.asarray(field_, np.float32), 1, mode="constant")  # closed surfaces
    if not (f.max() > level > f.min()):
        raise InputError("the mask has no surface (it is empty or fills the whole image)")
    verts, faces, _, _ = marching_cubes(f, level=level)
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


def _common_grid(tumour: Volume, zone: Volume, notes: list[str]) -> tuple[Volume, Volume]:
    """Both masks on one grid: the finer one's (probabilities kept by linear resampling)."""
    gt, gz = tumour.grid, zone.grid
    if gt == gz:
        return tumour, zone
    lo_t, hi_t = _bounds(gt)
    lo_z, hi_z = _bounds(gz)
    if np.any(np.minimum(hi_t, hi_z) < np.maximum(lo_t, lo_z)):
        raise InputError("the tumour and zone images do not overlap in space")
    fine_t = np.prod(gt.spacing_mm) <= np.prod(gz.spacing_mm)
    target = gt if fine_t else gz
    moving, name = (zone, "zone") if fine_t else (tumour, "tumour")
    arr = np.asarray(moving.array)
    f = arr.astype(np.float32) if np.issubdtype(arr.dtype, np.floating) else (arr > 0)
    res = resample(Volume(f.astype(np.float32), moving.grid), target, interpolation="linear")
    notes.append(
        f"the {name} mask was on another grid: resampled (linear, as a fraction) onto the "
        f"other's {tuple(round(s, 3) for s in target.spacing_mm)} mm grid"
    )
    out = Volume(np.clip(np.asarray(res.array), 0.0, 1.0).astype(np.float32), target)
    return (tumour, out) if fine_t else (out, zone)


def _bounds(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array(
        [[i, j, k] for i in (0, g.shape[0] - 1) for j in (0, g.shape[1] - 1)
         for k in (0, g.shape[2] - 1)], float,
    )  # fmt: skip
    pts = g.index_to_lps(corners)
    h = 0.5 * max(g.spacing_mm)
    return pts.min(axis=0) - h, pts.max(axis=0) + h


def measure_margin(
    tumour: Volume,
    zone: Volume,
    *,
    margin_mm: float = 5.0,
    liver: Volume | None = None,
    capsule_exclusion_mm: float = 0.0,
) -> MarginResult:
    """Margins of ``tumour`` against ``zone`` (masks: labels or probabilities).

    ``capsule_exclusion_mm`` > 0 (with ``liver``) leaves out tumour surface within that
    distance of the liver's edge: the zone cannot extend beyond the capsule there.
    """
    t0 = time.perf_counter()
    if not np.isfinite(margin_mm) or not 0.0 <= margin_mm <= 30.0:
        raise InputError(f"margin must be 0-30 mm, got {margin_mm}")
    if not np.isfinite(capsule_exclusion_mm) or not 0.0 <= capsule_exclusion_mm <= 30.0:
        raise InputError(f"capsule exclusion must be 0-30 mm, got {capsule_exclusion_mm}")
    if capsule_exclusion_mm > 0 and liver is None:
        raise InputError("capsule exclusion needs the liver mask (--liver)")
    notes: list[str] = []
    tumour, zone = _common_grid(tumour, zone, notes)
    g = tumour.grid
    tf, t_kind, tm = _field(tumour.array, "tumour")
    zf, z_kind, zm = _field(zone.array, "zone")
    if not tm.any():
        raise InputError("the tumour mask is empty")
    if not zm.any():
        raise InputError("the ablation zone mask is empty")
    # crop to both masks plus room for the blur and the 10 mm bins
    pad = np.ceil(12.0 / np.asarray(g.spacing_mm)).astype(int) + 3
    both = tm | zm
    idx = np.argwhere(both)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, g.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    sub = Grid(
        tuple(int(v) for v in hi - lo), g.spacing_mm, tuple(g.index_to_lps(lo)), g.direction
    )
    tf, zf, tm, zm = tf[sl], zf[sl], tm[sl], zm[sl]
    t_mesh = surface_mesh(tf, sub)
    z_mesh = surface_mesh(zf, sub)
    dist = point_mesh_distance(t_mesh.vertices_mm, z_mesh)
    inside = ndimage.map_coordinates(zf, sub.lps_to_index(t_mesh.vertices_mm).T, order=1) > 0.5
    margin = np.where(inside, dist, -dist)
    area = t_mesh.vertex_areas_mm2()
    excluded = np.zeros(len(margin), bool)
    if capsule_exclusion_mm > 0 and liver is not None:
        lv = liver if liver.grid == g else resample(liver, g, interpolation="nearest")
        lm = np.asarray(lv.array)[sl] > 0
        # the tumour counts as liver (a tumour on the capsule lies in it)
        edge = ndimage.distance_transform_edt(lm | tm, sampling=g.spacing_mm)
        d_edge = ndimage.map_coordinates(edge, sub.lps_to_index(t_mesh.vertices_mm).T, order=1)
        excluded = d_edge <= capsule_exclusion_mm
        if excluded.all():
            raise InputError("the capsule exclusion leaves no tumour surface to measure")
        notes.append(
            f"{100 * area[excluded].sum() / area.sum():.1f} % of the tumour surface lies "
            f"within {capsule_exclusion_mm:g} mm of the liver capsule and is left out"
        )
    keep = ~excluded
    m_keep, a_keep = margin[keep], area[keep]
    i_min = int(np.argmin(m_keep))
    mam = float(m_keep[i_min])
    fractions = {
        k: float(100.0 * a_keep[(m_keep >= lo_) & (m_keep < hi_)].sum() / a_keep.sum())
        for k, (lo_, hi_) in MARGIN_BINS_MM.items()
    }
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
        surface_area_mm2=float(area.sum()),
        excluded_surface_percent=float(100.0 * area[excluded].sum() / area.sum()),
        closest_point_mm=tuple(float(v) for v in t_mesh.vertices_mm[keep][i_min]),
        tumour_mask_kind=t_kind,
        zone_mask_kind=z_kind,
        notes=tuple(notes),
        runtime_s=time.perf_counter() - t0,
        mesh=t_mesh,
        vertex_margin_mm=margin,
        vertex_excluded=excluded,
        grid=sub,
    )
