"""Analytic shapes of the synthetic abdomen, in patient LPS millimetres.

Implicit fields (ellipsoids, smooth unions, superellipse body outline), seeded
smooth noise, tubes around polylines, and the phantom's coordinate space (its
grid with broadcastable axes). Everything here is a pure function of its
arguments (the noise fields draw from the generator they are given, once).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy import ndimage

from ioplan.imaging import Grid

#: Field of view ``(z, y, x)`` in mm: from below the right kidney's hilum to the lung bases.
FOV_MM = (180.0, 260.0, 340.0)
#: Extent of the field of view along z (LPS mm, inferior to superior).
Z_RANGE_MM = (-95.0, 85.0)


class SmoothNoise:
    """Seeded smooth random field in [-1, 1] (cubic interpolation of a coarse lattice)."""

    def __init__(self, rng: np.random.Generator, lattice_mm: float, lo_mm, hi_mm) -> None:
        self.lattice_mm = lattice_mm
        self.lo = np.asarray(lo_mm, float) - 2 * lattice_mm
        n = np.ceil((np.asarray(hi_mm, float) + 2 * lattice_mm - self.lo) / lattice_mm).astype(int)
        raw = rng.uniform(-1.0, 1.0, size=tuple(n + 1))
        # Smoothing the lattice a little keeps cubic overshoot in check.
        self.coeffs = ndimage.spline_filter(ndimage.gaussian_filter(raw, 0.6) * 1.6, order=3)

    def __call__(self, x, y, z) -> np.ndarray:
        fast = self._on_axes(x, y, z)
        if fast is not None:
            return np.clip(fast, -1.0, 1.0)
        x, y, z = np.broadcast_arrays(x, y, z)
        coords = np.stack(
            [
                (x - self.lo[0]) / self.lattice_mm,
                (y - self.lo[1]) / self.lattice_mm,
                (z - self.lo[2]) / self.lattice_mm,
            ]
        ).reshape(3, -1)
        v = ndimage.map_coordinates(self.coeffs, coords, order=3, prefilter=False, mode="nearest")
        return np.clip(v.reshape(x.shape), -1.0, 1.0)

    def _on_axes(self, x, y, z) -> np.ndarray | None:
        """The field on a grid by the cubic B-spline's separable weights, or None.

        For coordinates that each vary along their own array axis (or not at all): the
        same sum as ``map_coordinates`` (order 3, no prefilter, nearest beyond the
        lattice), a few operations per voxel instead of 64 (it took most of a 1 mm
        phantom's 23 s). None when the coordinates are not of that form.
        """
        arrs = [np.asarray(v, float) for v in (x, y, z)]
        if any(a.ndim > 3 for a in arrs):
            return None
        shape = np.broadcast_shapes(*(a.shape for a in arrs))
        if len(shape) != 3:
            return None
        out_letters, subs, mats = [], [], []
        for d, a in enumerate(arrs):
            a3 = a.reshape((1,) * (3 - a.ndim) + a.shape)
            big = [k for k in range(3) if a3.shape[k] > 1]
            if len(big) > 1:
                return None
            letter = "abc"[big[0]] if big else "pqr"[d]
            if big:
                if letter in out_letters:
                    return None  # two coordinates along one axis: not a grid
                out_letters.append(letter)
            subs.append(letter + "ijk"[d])
            mats.append(_bspline3_weights((a3.reshape(-1) - self.lo[d]) / self.lattice_mm,
                                          self.coeffs.shape[d]))  # fmt: skip
        out = "".join(sorted(out_letters))
        v = np.einsum(f"ijk,{','.join(subs)}->{out}", self.coeffs, *mats, optimize=True)
        small = tuple(shape[k] if "abc"[k] in out_letters else 1 for k in range(3))
        return np.broadcast_to(v.reshape(small), shape)


def _bspline3_weights(t: np.ndarray, n: int) -> np.ndarray:
    """Weights (len(t), n) of the cubic B-spline at lattice coordinates ``t``.

    Four per row, on coefficients floor(t) - 1 ... floor(t) + 2, an index beyond the
    lattice taken as its nearest end (scipy.ndimage's mode "nearest").
    """
    f0 = np.floor(t)
    f = t - f0
    w = np.stack([(1 - f) ** 3 / 6.0, (3 * f**3 - 6 * f**2 + 4) / 6.0,
                  (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6.0, f**3 / 6.0], axis=1)  # fmt: skip
    idx = np.clip(f0.astype(np.int64)[:, None] - 1 + np.arange(4)[None, :], 0, n - 1)
    out = np.zeros((len(t), n))
    np.add.at(out, (np.repeat(np.arange(len(t)), 4), idx.reshape(-1)), w.reshape(-1))
    return out


def softmin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth minimum of two implicit fields (smooth union of the shapes)."""
    m = np.minimum(a, b)
    return m - k * np.log1p(np.exp(-np.abs(a - b) / k))


def ellipsoid(x, y, z, centre, semi, rot_deg=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Normalised radius of an ellipsoid (< 1 inside); rotation about x, y, z in degrees."""
    px, py, pz = x - centre[0], y - centre[1], z - centre[2]
    ax, ay, az = np.deg2rad(rot_deg)
    if ax:
        py, pz = np.cos(ax) * py + np.sin(ax) * pz, -np.sin(ax) * py + np.cos(ax) * pz
    if ay:
        px, pz = np.cos(ay) * px - np.sin(ay) * pz, np.sin(ay) * px + np.cos(ay) * pz
    if az:
        px, py = np.cos(az) * px + np.sin(az) * py, -np.sin(az) * px + np.cos(az) * py
    return np.sqrt((px / semi[0]) ** 2 + (py / semi[1]) ** 2 + (pz / semi[2]) ** 2)


class Anatomy:
    """The analytic anatomy; every method takes broadcastable LPS coordinate arrays.

    Construction draws three smooth noise fields (body outline, liver, fat) from ``rng``.
    """

    # body outline: superellipse half-axes (mm) and exponent
    AX, AY_ANT, AY_POST, P = 160.0, 118.0, 110.0, 2.6
    SKIN_MM, MUSCLE_MM = 2.0, 11.0

    def __init__(self, rng: np.random.Generator) -> None:
        lo = (-200.0, -150.0, Z_RANGE_MM[0] - 20)
        hi = (200.0, 150.0, Z_RANGE_MM[1] + 20)
        self.body_noise = SmoothNoise(rng, 70.0, lo, hi)
        self.liver_noise = SmoothNoise(rng, 45.0, lo, hi)
        self.fat_noise = SmoothNoise(rng, 60.0, lo, hi)

    # -- body wall ---------------------------------------------------------
    def depth(self, x, y, z) -> np.ndarray:
        """Approximate depth below the skin (mm), along the ray from the body axis."""
        ay = np.where(y < 0, self.AY_ANT, self.AY_POST)
        scale = 1.0 + 0.02 * self.body_noise(x * 0, y * 0 + 0.0, z) + 0.0003 * (z - Z_RANGE_MM[0])
        rho = (
            (np.abs(x) / (self.AX * scale)) ** self.P + (np.abs(y) / (ay * scale)) ** self.P
        ) ** (1.0 / self.P)
        r = np.sqrt(x * x + y * y)
        return np.where(rho > 0, r * (1.0 / np.maximum(rho, 1e-6) - 1.0), 1e3)

    def fat_thickness(self, x, y, z) -> np.ndarray:
        """Subcutaneous fat thickness (mm): thicker anteriorly and at the flanks."""
        phi = np.arctan2(np.abs(x), y)  # 0 posterior, pi anterior
        return 16.0 + 8.0 * np.sin(phi) ** 2 + 4.0 * self.fat_noise(x, y, z * 0.3)

    # -- thorax ------------------------------------------------------------
    def dome_z(self, x, y) -> np.ndarray:
        """Height (mm) of the diaphragm's lower surface; right dome higher than left."""
        right = 70.0 - 0.0055 * (x + 55.0) ** 2 - 0.0045 * y**2 - 0.12 * np.maximum(y, 0)
        left = 60.0 - 0.0055 * (x - 60.0) ** 2 - 0.0045 * y**2 - 0.12 * np.maximum(y, 0)
        # smooth maximum of the two domes (no step at the midline), 6 mm softness
        k = 6.0
        return np.logaddexp(right / k, left / k) * k

    # -- liver -------------------------------------------------------------
    def liver_field(self, x, y, z) -> np.ndarray:
        """Implicit liver shape (< 1 inside), before cuts by neighbouring organs."""
        right = ellipsoid(x, y, z, (-62.0, 8.0, 12.0), (82.0, 95.0, 78.0), (0.0, -8.0, 0.0))
        left = ellipsoid(x, y, z, (15.0, -32.0, 42.0), (70.0, 45.0, 33.0), (0.0, 0.0, -12.0))
        return softmin(right, left, 0.10) + 0.06 * self.liver_noise(x, y, z)


@dataclass(frozen=True, eq=False)
class Space:
    """An axis-aligned grid with its broadcastable LPS coordinates.

    ``z``, ``y`` and ``x`` have shapes ``(nz, 1, 1)``, ``(1, ny, 1)`` and
    ``(1, 1, nx)``: an expression in them broadcasts to the grid's shape.
    """

    grid: Grid
    z: np.ndarray
    y: np.ndarray
    x: np.ndarray

    @classmethod
    def of(cls, grid: Grid) -> Space:
        """The coordinates of ``grid``'s voxel centres."""
        z, y, x = grid.axis_coordinates_mm()
        return cls(grid, z[:, None, None], y[None, :, None], x[None, None, :])

    def full(self, mask: np.ndarray) -> np.ndarray:
        """``mask`` broadcast to the grid's shape (a read-only view)."""
        return np.broadcast_to(mask, self.grid.shape)

    def box(self, lo_xyz, hi_xyz):
        """Index slices and broadcast coordinates ``(slices, x, y, z)`` of the LPS box [lo, hi]."""
        sl = []
        coords = []
        for ax_coords, lo, hi in (
            (self.z.reshape(-1), lo_xyz[2], hi_xyz[2]),
            (self.y.reshape(-1), lo_xyz[1], hi_xyz[1]),
            (self.x.reshape(-1), lo_xyz[0], hi_xyz[0]),
        ):
            i0 = int(np.searchsorted(ax_coords, lo, side="left"))
            i1 = int(np.searchsorted(ax_coords, hi, side="right"))
            sl.append(slice(i0, max(i0, i1)))
            coords.append(ax_coords[i0 : max(i0, i1)])
        z = coords[0][:, None, None]
        y = coords[1][None, :, None]
        x = coords[2][None, None, :]
        return tuple(sl), x, y, z


def tube_mask(x, y, z, points: np.ndarray, radius: float) -> np.ndarray:
    """Voxels within ``radius`` of a polyline (a zero-length segment is its point)."""
    best = np.full(np.broadcast(x, y, z).shape, np.inf)
    for p0, p1 in pairwise(points):
        v = p1 - p0
        vv = float(v @ v)
        if vv > 0.0:
            t = ((x - p0[0]) * v[0] + (y - p0[1]) * v[1] + (z - p0[2]) * v[2]) / vv
            t = np.clip(t, 0.0, 1.0)
        else:  # repeated point (clipped to the loops' box): distance to the point
            t = 0.0
        d2 = (x - p0[0] - t * v[0]) ** 2 + (y - p0[1] - t * v[1]) ** 2 + (z - p0[2] - t * v[2]) ** 2
        best = np.minimum(best, d2)
    return best <= radius * radius


def lobulated_sphere(
    x, y, z, centre_mm, diameter_mm: float, irregularity: float, noise: SmoothNoise
) -> tuple[np.ndarray, np.ndarray]:
    """Inside mask and normalised radius (0 centre, 1 surface) of a lobulated sphere.

    The local radius is ``diameter_mm / 2 * (1 + irregularity * noise)``, the noise
    sampled on a sphere of radius 30 mm around the centre (so the lobulation scale
    does not depend on the size).
    """
    c = centre_mm
    dx, dy, dz = x - c[0], y - c[1], z - c[2]
    r = np.sqrt(dx * dx + dy * dy + dz * dz)
    rr = np.maximum(r, 1e-6)
    pert = noise(30.0 * dx / rr, 30.0 * dy / rr, 30.0 * dz / rr)
    local_r = 0.5 * diameter_mm * (1.0 + irregularity * pert)
    frac = r / local_r
    return frac <= 1.0, frac


def perpendicular(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``v`` and to each other."""
    v = v / np.linalg.norm(v)
    helper = np.array([0.0, 0.0, 1.0]) if abs(v[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(v, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(v, e1)
