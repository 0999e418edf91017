"""Applicator surfaces below the voxel size: cut-cell faces on cylinders held at a temperature.

A cryoprobe's freeze segment and a cooled MW/RF shaft are cylinders (radius ``a`` of
0.5-1.3 mm) held at a temperature ``Tp``; voxels are 0.5-3 mm. Marking the voxels
whose centres lie within a (stretched) radius as fixed gives a staircase whose surface
and position change with the voxel size, and with it the zone (issue 19: the -30 degC
width of a 2.4 mm cryoprobe after 15 min was 14.1, 11.4 and 17 mm at 2, 1.5 and 1 mm).

Here the cylinder keeps its true surface (Shortley-Weller ghost-point Dirichlet boundary,
the finite-difference cut cell):

- **Fixed voxels** are those whose centres lie inside the true cylinder (none when the
  grid is coarse and the axis passes between centres).
- **Cut faces.** For a free voxel ``i``, the segment from its centre to a neighbour's
  centre (length ``d`` along one axis) may enter the solid cylinder, at ``delta d``
  (``0 < delta <= 1``; slab test on the radial and axial intervals). That face's
  conduction ``k/d^2 (T_j - T_i)`` is replaced by ``k_i / (delta d^2) (Tp - T_i)``: the
  linear profile between the voxel centre and the true surface. ``k_i`` is the mean of
  the voxel's material conductivity over ``[Tp, T_i]`` (Kirchhoff's transform, as the
  engine's faces: frozen 2.0, mushy 1.25, liquid 0.52 W/m/K; the tissue between the centre
  and a cryoprobe is frozen long before the centre is). With the voxel's own phase instead,
  a 1.5 mm probe on 4 mm voxels froze nothing (coldest tissue 0.6 degC after 10 min;
  -33.9 degC with the mean, against -124 degC on 1 mm voxels). ``delta`` is clamped below at
  :data:`DELTA_MIN` only to keep the coefficient finite.
- **Stability.** A small ``delta`` makes the coefficient large; rather than shortening
  the time step for every voxel, the probe term of a cut voxel is taken linearly
  implicit: ``dE (1 + dt G / c) = dt (F + G (Tp - T))`` with ``G = k sum 1/(delta d^2)``
  and ``c`` the smallest of ``dE/dT`` on either side of the voxel's state and the secant
  slope of E(T) from the state to ``Tp``, so that no phase boundary makes the step
  overshoot ``Tp``. The voxel's other faces are ordinary
  explicit faces, so the usual stable step (:func:`~ioplan.physics.stable_time_step`)
  still holds. Cut voxels are few (a ring around each applicator): the kernel
  (:func:`cut_cpu`, :func:`cut_gpu`) runs after the main step and overwrites them;
  the fast path for uniform voxels is unchanged.

The same cut faces carry the RF electrode in the potential solve (Dirichlet 1 V on its
true cylinder, conductance ``sigma_i A / (delta d)``; :func:`~ioplan.physics.rf_potential`
with ``surfaces``), verified against the coaxial closed form
``R = ln(R_g / a) / (2 pi sigma L)`` in ``tests/physics/test_rf_cut_cell.py``.

Verification: steady conduction around a cylinder at ``Tp`` inside a block whose far
boundary is at ``Tb`` against ``T(rho) = Tp + (Tb - Tp) ln(rho/a) / ln(R/a)``
(``tests/physics/test_grid_independence.py``); convergence tables for cryo and MW zones
in ``validation/convergence.md`` (``python validation/convergence.py``).

References
----------
Shortley GH, Weller R. The numerical solution of Laplace's equation. J Appl Phys
1938;9:334-348. DOI 10.1063/1.1710426
Gibou F, Fedkiw RP, Cheng LT, Kang M. A second-order-accurate symmetric discretization
of the Poisson equation on irregular domains. J Comput Phys 2002;176:205-227.
DOI 10.1006/jcph.2001.6977
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numba
import numpy as np
from numba import cuda

from ioplan.errors import InputError
from ioplan.imaging import Grid
from ioplan.physics import _kernel
from ioplan.physics._kernel import (
    FLUSH_BELOW_C,
    PERF_SCALE,
    T_REF,
    B,
    C,
    _bind,
    _conductance,
    _dev,
    _e_of_t,
    _jit,
    _k_mean,
    _k_of,
    _t_of_e,
)

__all__ = [
    "DELTA_MIN",
    "Cylinder",
    "Surfaces",
    "covering_radius_mm",
    "cryo_resolution_warning",
    "cryo_resolved_spacing_mm",
    "cut_cpu",
    "cut_gpu",
    "cylinder_surfaces",
    "inside_cylinders",
    "kirchhoff_phi",
    "near_field_lethal",
    "warm_up",
]

#: Smallest fraction of a voxel spacing between a free voxel's centre and a surface;
#: only keeps the coefficient finite (the probe term is implicit, so any value is stable).
DELTA_MIN = 0.05


@dataclass(frozen=True)
class Cylinder:
    """A finite cylinder held at a fixed group's temperature.

    Attributes
    ----------
    tip_mm : tuple of float
        A point on the axis (LPS mm), where ``along`` is 0.
    direction : tuple of float
        Unit axis direction (LPS).
    radius_mm : float
        True radius (mm).
    along_min_mm, along_max_mm : float
        The cylinder's extent along the axis (mm from ``tip_mm``; may be infinite).
    group : int
        The fixed group whose temperature the surface takes (1: the applicator).
    true_radius_mm : float, optional
        The applicator's own radius when ``radius_mm`` is a widened one (a coarse grid,
        :func:`covering_radius_mm`): the cut faces on the lateral surface then carry the
        conduction of the true cylinder (log near-field correction, see
        :func:`cylinder_surfaces`).
    """

    tip_mm: tuple[float, float, float]
    direction: tuple[float, float, float]
    radius_mm: float
    along_min_mm: float
    along_max_mm: float
    group: int = 1
    true_radius_mm: float | None = None


@dataclass(frozen=True, eq=False)
class Surfaces:
    """The cut voxels of a grid: which faces are cut, and their geometric coefficient.

    Attributes
    ----------
    index : ndarray of int64, shape (n,)
        Flat (C-order) index of each cut voxel.
    coefficient_m2 : ndarray of float64, shape (n,)
        ``sum over cut faces of 1 / (delta d^2)`` (1/m^2); times the voxel's
        conductivity it is the probe coefficient (W/m^3/K).
    faces : ndarray of uint8, shape (n,)
        Bit f set where face f (z-1, z+1, y-1, y+1, x-1, x+1) is cut.
    group : ndarray of int32, shape (n,)
        Fixed group of the surface (its temperature).
    """

    index: np.ndarray
    coefficient_m2: np.ndarray
    faces: np.ndarray
    group: np.ndarray

    @property
    def size(self) -> int:
        """Number of cut voxels."""
        return int(self.index.size)

    @staticmethod
    def empty() -> Surfaces:
        """No cut voxels."""
        return Surfaces(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.uint8),
                        np.zeros(0, np.int32))  # fmt: skip


def inside_cylinders(grid: Grid, cylinders) -> np.ndarray:
    """Voxels whose centres lie inside any of ``cylinders`` (bool, ``grid.shape``)."""
    z, y, x = grid.axis_coordinates_mm()
    out = np.zeros(grid.shape, bool)
    for cyl in cylinders:
        t = np.asarray(cyl.tip_mm, float)
        u = np.asarray(cyl.direction, float)
        u = u / np.linalg.norm(u)
        rx = x[None, None, :] - t[0]
        ry = y[None, :, None] - t[1]
        rz = z[:, None, None] - t[2]
        along = rx * u[0] + ry * u[1] + rz * u[2]
        r2 = rx * rx + ry * ry + rz * rz - along * along
        out |= (r2 <= cyl.radius_mm**2) & (along >= cyl.along_min_mm) & (along <= cyl.along_max_mm)
    return out


def _entry(w, v, u, a, s_lo, s_hi):
    """Fraction t in (0, 1] where the segment ``w + t v`` enters the cylinder, or inf.

    ``w`` (n, 3) from the cylinder's tip to the start, ``v`` (3,) the segment, ``u``
    the unit axis; slab test on the radial (``|perp| <= a``) and axial intervals.
    """
    wa = w @ u
    va = float(v @ u)
    wp = w - wa[:, None] * u
    vp = v - va * u
    A = float(vp @ vp)
    Bq = 2.0 * (wp @ vp)
    C0 = np.einsum("ij,ij->i", wp, wp) - a * a
    n = w.shape[0]
    if A < 1e-18:
        r0 = np.where(C0 <= 0, -np.inf, np.inf)
        r1 = np.where(C0 <= 0, np.inf, -np.inf)
    else:
        disc = Bq * Bq - 4 * A * C0
        sq = np.sqrt(np.maximum(disc, 0.0))
        r0 = np.where(disc >= 0, (-Bq - sq) / (2 * A), np.inf)
        r1 = np.where(disc >= 0, (-Bq + sq) / (2 * A), -np.inf)
    if abs(va) < 1e-12:
        ok = (wa >= s_lo) & (wa <= s_hi)
        a0 = np.where(ok, -np.inf, np.inf)
        a1 = np.where(ok, np.inf, -np.inf)
    else:
        with np.errstate(invalid="ignore"):
            t1 = (s_lo - wa) / va
            t2 = (s_hi - wa) / va
        a0 = np.minimum(t1, t2)
        a1 = np.maximum(t1, t2)
    entry = np.maximum(r0, a0)
    leave = np.minimum(r1, a1)
    hit = (entry <= leave) & (entry > 0.0) & (entry <= 1.0)
    return np.where(hit, entry, np.inf) if n else np.zeros(0)


def cylinder_surfaces(grid: Grid, cylinders, fixed: np.ndarray) -> Surfaces:
    """The cut faces of the free voxels around ``cylinders``.

    Parameters
    ----------
    grid : Grid
        Axis-aligned grid (spacing in mm).
    cylinders : sequence of Cylinder
        The surfaces held at a temperature.
    fixed : ndarray of bool, ``grid.shape``
        Voxels that are not free (their faces are never cut): at least the voxels inside
        the cylinders (:func:`inside_cylinders`).

    Returns
    -------
    Surfaces
        Per cut voxel: flat index, ``sum 1/(delta d^2)`` (1/m^2), cut-face bits, group.

    Notes
    -----
    A widened cylinder (radius ``a'`` above its ``true_radius_mm`` ``a``) would take too
    much heat: around a cylinder the steady profile is logarithmic, and the conductance
    from a voxel centre at ``rho`` from the axis to the surface is
    ``2 pi k / ln(rho / a)`` per length, not ``2 pi k / ln(rho / a')``. Each lateral cut
    face of such a cylinder has its ``delta`` scaled by ``ln(rho / a) / ln(rho / a')``
    (> 1), the conductance of the true cylinder from that voxel (a Peaceman-type
    near-field correction; Peaceman DW. Interpretation of well-block pressures in
    numerical reservoir simulation. SPE J 1978;18:183-194. DOI 10.2118/6893-PA).
    """
    cylinders = list(cylinders)
    if not cylinders:
        return Surfaces.empty()
    z, y, x = grid.axis_coordinates_mm()
    nz, ny, nx = grid.shape
    sp = np.asarray(grid.spacing_mm, float)  # z, y, x
    best = {}  # (flat index) -> per-face entry fractions and group
    for cyl in cylinders:
        t = np.asarray(cyl.tip_mm, float)
        u = np.asarray(cyl.direction, float)
        u = u / np.linalg.norm(u)
        a = float(cyl.radius_mm)
        # index box around the segment (clipped to the grid), one spacing beyond
        lo_s = max(cyl.along_min_mm, -1e4)
        hi_s = min(cyl.along_max_mm, 1e4)
        ends = np.array([t + lo_s * u, t + hi_s * u])  # (x, y, z)
        box = []
        for ax, coords, h in ((2, z, sp[0]), (1, y, sp[1]), (0, x, sp[2])):
            lo = ends[:, ax].min() - a - 1.01 * h
            hi = ends[:, ax].max() + a + 1.01 * h
            sel = np.flatnonzero((coords >= lo) & (coords <= hi))
            if sel.size == 0:
                break
            box.append((int(sel[0]), int(sel[-1]) + 1))
        if len(box) < 3:
            continue
        (z0, z1), (y0, y1), (x0, x1) = box
        zz, yy, xx = np.meshgrid(np.arange(z0, z1), np.arange(y0, y1), np.arange(x0, x1),
                                 indexing="ij")  # fmt: skip
        zz, yy, xx = zz.ravel(), yy.ravel(), xx.ravel()
        outer = (zz == 0) | (yy == 0) | (xx == 0) | (zz == nz - 1) | (yy == ny - 1)
        keep = ~fixed[zz, yy, xx] & ~outer & (xx != nx - 1)
        zz, yy, xx = zz[keep], yy[keep], xx[keep]
        w = np.stack([x[xx] - t[0], y[yy] - t[1], z[zz] - t[2]], axis=1)
        flat = (zz * ny + yy) * nx + xx
        scale = np.ones(flat.size)
        a_true = cyl.true_radius_mm
        if a_true is not None and 0.0 < a_true < a:
            wa = w @ u
            rho = np.linalg.norm(w - wa[:, None] * u, axis=1)
            lateral = (rho > a) & (wa >= cyl.along_min_mm) & (wa <= cyl.along_max_mm)
            with np.errstate(divide="ignore", invalid="ignore"):
                fac = np.log(rho / a_true) / np.log(rho / a)
            scale = np.where(lateral & np.isfinite(fac), fac, 1.0)
        for f in range(6):
            axis, sign = divmod(f, 2)
            step = 1 if sign else -1
            idx = (zz, yy, xx)[axis] + step
            n_axis = (nz, ny, nx)[axis]
            inside = (idx >= 0) & (idx < n_axis)
            coords = (z, y, x)[axis]
            v = np.zeros(3)
            j = np.clip(idx, 0, n_axis - 1)
            base = (zz, yy, xx)[axis]
            # the segment to the neighbour's centre (LPS order x, y, z)
            d_mm = coords[j] - coords[base]
            lps_axis = 2 - axis
            ent = np.full(flat.size, np.inf)
            if inside.any():
                for sval in np.unique(d_mm[inside]):
                    m = inside & (d_mm == sval)
                    v[:] = 0.0
                    v[lps_axis] = sval
                    ent[m] = _entry(w[m], v, u, a, cyl.along_min_mm, cyl.along_max_mm)
            ent = ent * scale
            for n in np.flatnonzero(np.isfinite(ent)):
                rec = best.setdefault(int(flat[n]), [np.full(6, np.inf), cyl.group])
                if ent[n] < rec[0][f]:
                    rec[0][f] = ent[n]
                    rec[1] = cyl.group
    if not best:
        return Surfaces.empty()
    keys = np.array(sorted(best), np.int64)
    h_m = sp * 1e-3
    coef = np.zeros(keys.size)
    bits = np.zeros(keys.size, np.uint8)
    group = np.zeros(keys.size, np.int32)
    for n, key in enumerate(keys):
        ent, g = best[int(key)]
        for f in range(6):
            if np.isfinite(ent[f]):
                d = h_m[f // 2]
                coef[n] += 1.0 / (max(ent[f], DELTA_MIN) * d * d)
                bits[n] |= 1 << f
        group[n] = g
    return Surfaces(keys, coef, bits, group)


def covering_radius_mm(grid: Grid, cylinder: Cylinder) -> float:
    """The cylinder's true radius if the grid sees it along its whole length, else widened.

    A cylinder thinner than half a voxel whose axis runs between lattice lines contains
    no voxel centre and cuts no lattice segment: it would vanish. The true radius is
    kept where the voxels inside it and the free voxels with a cut face cover its
    (finite, in-grid) length with no gap over 1.5 voxel spacings (e.g. an axis on a
    lattice line, as in the blocks); otherwise the radius is ``max(a, 0.51 h)``, which
    cuts a segment in every cross-section wherever the axis lies.
    """
    a = float(cylinder.radius_mm)
    h = float(max(grid.spacing_mm))
    wide = max(a, 0.51 * h)
    if wide == a:
        return a
    t = np.asarray(cylinder.tip_mm, float)
    u = np.asarray(cylinder.direction, float)
    u = u / np.linalg.norm(u)
    # the part of the axis inside the grid's bounding box
    z, y, x = grid.axis_coordinates_mm()
    lo_box = np.array([x.min(), y.min(), z.min()])
    hi_box = np.array([x.max(), y.max(), z.max()])
    s_lo, s_hi = -np.inf, np.inf
    for ax in range(3):
        if abs(u[ax]) > 1e-12:
            s1, s2 = (lo_box[ax] - t[ax]) / u[ax], (hi_box[ax] - t[ax]) / u[ax]
            s_lo, s_hi = max(s_lo, min(s1, s2)), min(s_hi, max(s1, s2))
    s_lo = max(s_lo, cylinder.along_min_mm)
    s_hi = min(s_hi, cylinder.along_max_mm)
    if not s_hi > s_lo:
        return wide
    inside = inside_cylinders(grid, [cylinder])
    surf = cylinder_surfaces(grid, [cylinder], inside)
    ids = np.concatenate([np.flatnonzero(inside.reshape(-1)), surf.index])
    zz, yy, xx = np.unravel_index(ids, grid.shape)
    along = (x[xx] - t[0]) * u[0] + (y[yy] - t[1]) * u[1] + (z[zz] - t[2]) * u[2]
    pts = np.sort(np.concatenate([[s_lo, s_hi], along[(along > s_lo) & (along < s_hi)]]))
    return a if float(np.max(np.diff(pts))) <= 1.5 * h else wide


def check_surfaces(surfaces: Surfaces, material: np.ndarray, packed: np.ndarray) -> None:
    """Refuse cut voxels outside the grid's interior or on fixed voxels."""
    n = surfaces.size
    for name in ("coefficient_m2", "faces", "group"):
        if np.shape(getattr(surfaces, name)) != (n,):
            raise InputError(f"surfaces.{name} must have shape ({n},)")
    if n == 0:
        return
    idx = np.asarray(surfaces.index)
    if idx.min() < 0 or idx.max() >= material.size:
        raise InputError("surfaces.index lies outside the grid")
    zz, yy, xx = np.unravel_index(idx, material.shape)
    edge = (zz == 0) | (yy == 0) | (xx == 0)
    edge |= (zz == material.shape[0] - 1) | (yy == material.shape[1] - 1)
    edge |= xx == material.shape[2] - 1
    if edge.any():
        raise InputError("a cut voxel lies on the grid's outer layer")
    if np.any(packed[_kernel.FIXED, material.reshape(-1)[idx]] >= 0):
        raise InputError("a cut voxel is a fixed voxel")
    if not np.all(np.isfinite(surfaces.coefficient_m2)) or np.any(surfaces.coefficient_m2 < 0):
        raise InputError("surfaces.coefficient_m2 must be finite and >= 0")


def cut_update(
    n, idx, coef, bits, grp, TH, TH2, mat, QS, perf, P, gt,
    dt, dz, dy, dx, iz2, iy2, ix2, tb, const,
):  # fmt: skip
    """The update of cut voxel ``n`` (float64 enthalpy; writes ``TH2`` there).

    As :func:`~ioplan.physics._kernel.general_update`, with the cut faces replaced by the
    probe term ``G (Tp - T)``, ``G = k(T) coef[n]``, taken linearly implicit.
    """
    ny = TH.shape[1]
    nx = TH.shape[2]
    v = idx[n]
    i = v // (ny * nx)
    j = (v // nx) % ny
    k = v % nx
    m = mat[i, j, k]
    ti = TH[i, j, k] + T_REF
    ki = _k_of(P, m, ti, const)
    b = bits[n]
    flux = 0.0
    if (b & 1) == 0:
        tj = TH[i - 1, j, k] + T_REF
        flux += _conductance(P, ki, m, mat[i - 1, j, k], ti, tj, dz, iz2, const) * (tj - ti)
    if (b & 2) == 0:
        tj = TH[i + 1, j, k] + T_REF
        flux += _conductance(P, ki, m, mat[i + 1, j, k], ti, tj, dz, iz2, const) * (tj - ti)
    if (b & 4) == 0:
        tj = TH[i, j - 1, k] + T_REF
        flux += _conductance(P, ki, m, mat[i, j - 1, k], ti, tj, dy, iy2, const) * (tj - ti)
    if (b & 8) == 0:
        tj = TH[i, j + 1, k] + T_REF
        flux += _conductance(P, ki, m, mat[i, j + 1, k], ti, tj, dy, iy2, const) * (tj - ti)
    if (b & 16) == 0:
        tj = TH[i, j, k - 1] + T_REF
        flux += _conductance(P, ki, m, mat[i, j, k - 1], ti, tj, dx, ix2, const) * (tj - ti)
    if (b & 32) == 0:
        tj = TH[i, j, k + 1] + T_REF
        flux += _conductance(P, ki, m, mat[i, j, k + 1], ti, tj, dx, ix2, const) * (tj - ti)
    tp = gt[grp[n]]
    g = _k_mean(P, m, ti, tp, const) * coef[n]
    e0 = _e_of_t(P, m, ti, const)
    # dE/dT at the state: the smaller one-sided slope (never overshoots Tp)
    c_up = (_e_of_t(P, m, ti + 0.01, const) - e0) * 100.0
    c_dn = (e0 - _e_of_t(P, m, ti - 0.01, const)) * 100.0
    c_eff = c_up if c_up < c_dn else c_dn
    # nor past Tp over a phase change: at most the secant slope from the state to Tp (a
    # voxel in the mushy zone has a latent slope that the frozen range below lacks)
    if abs(tp - ti) > 0.01:
        c_sec = (e0 - _e_of_t(P, m, tp, const)) / (ti - tp)
        if c_sec < c_eff:
            c_eff = c_sec
    bp = P[B, m] * (perf[i, j, k] * PERF_SCALE)
    de = dt * (flux + bp * (tb - ti) + g * (tp - ti)) + QS[i, j, k] * P[C, m]
    de = de / (1.0 + dt * g / c_eff)
    th_new = _t_of_e(P, m, e0 + de, const) - T_REF
    if abs(th_new) < FLUSH_BELOW_C:
        th_new = 0.0
    TH2[i, j, k] = th_new


_cut_cpu_voxel = _jit(
    _bind(
        cut_update,
        {
            "_k_of": _kernel._k_of_cpu,
            "_k_mean": _kernel._cpu_helpers["_k_mean"],
            "_e_of_t": _kernel._e_of_t_cpu,
            "_t_of_e": _kernel._t_of_e_cpu,
            "_conductance": _kernel._conductance_cpu,
        },
    )
)


# serial: a few hundred to a few thousand voxels (microseconds); a parallel region per
# step would cost more in thread wake-ups than it saves, most of all on a busy machine
@numba.njit(cache=True)
def cut_cpu(idx, coef, bits, grp, TH, TH2, mat, QS, perf, P, gt,
            dt, dz, dy, dx, tb, const):  # fmt: skip
    """:func:`cut_update` over every cut voxel (after :func:`~ioplan.physics._kernel.step_cpu`)."""
    iz2 = 1.0 / (dz * dz)
    iy2 = 1.0 / (dy * dy)
    ix2 = 1.0 / (dx * dx)
    for n in range(idx.size):
        _cut_cpu_voxel(n, idx, coef, bits, grp, TH, TH2, mat, QS, perf, P, gt,
                       dt, dz, dy, dx, iz2, iy2, ix2, tb, const)  # fmt: skip


_cut_gpu_voxel = _dev(
    _bind(
        cut_update,
        {
            "_k_of": _kernel._gpu_helpers["_k_of"],
            "_k_mean": _kernel._gpu_helpers["_k_mean"],
            "_e_of_t": _kernel._gpu_helpers["_e_of_t"],
            "_t_of_e": _kernel._gpu_helpers["_t_of_e"],
            "_conductance": _kernel._gpu_helpers["_conductance"],
        },
    )
)


@cuda.jit
def cut_gpu(idx, coef, bits, grp, TH, TH2, mat, QS, perf, P, gt,
            dt, dz, dy, dx, tb, const):  # fmt: skip
    """:func:`cut_update` on an NVIDIA GPU (one thread per cut voxel, after ``step_gpu``)."""
    n = cuda.grid(1)
    if n < idx.size:
        _cut_gpu_voxel(n, idx, coef, bits, grp, TH, TH2, mat, QS, perf, P, gt,
                       dt, dz, dy, dx, 1.0 / (dz * dz), 1.0 / (dy * dy), 1.0 / (dx * dx),
                       tb, const)  # fmt: skip


def warm_up(dtype: str) -> None:
    """Load (or compile) :func:`cut_cpu` for ``dtype`` before a run's clock starts."""
    _warm(str(np.dtype(dtype)))


@functools.cache
def _warm(dtype: str) -> None:
    P = np.zeros((_kernel.N_PROPS, 256))
    P[_kernel.FIXED] = -1.0
    P[_kernel.INVC] = 1.0
    P[C] = 1.0
    th = np.zeros((3, 3, 3), dtype)
    cut_cpu(np.array([13], np.int64), np.ones(1), np.ones(1, np.uint8), np.zeros(1, np.int32),
            th, th.copy(), np.zeros((3, 3, 3), np.uint8), th.copy(),
            np.ones((3, 3, 3), np.uint8), P, np.zeros(1), 1.0, 1.0, 1.0, 1.0, 37.0, 1)  # fmt: skip


def cryo_resolved_spacing_mm(probe_diameter_mm: float) -> float:
    """The coarsest voxel (mm) at which a cryoprobe's zone is trusted: max(2, 1.25 d).

    See :func:`cryo_resolution_warning` and validation/convergence.md (session 46).
    """
    return max(2.0, 1.25 * float(probe_diameter_mm))


def cryo_resolution_warning(probe_diameter_mm: float, spacing_mm: float) -> str | None:
    """Why a cryoprobe's zone is not to be trusted at this voxel size (None when it is).

    The cut-cell probe's zones agree within 1 mm over 2, 1.5, 1 and 0.5 mm voxels
    (validation/convergence.md). Coarser, the first voxels around the probe average over
    the steep near field: a 2.4 mm probe's lethal zone holds at 3.9 mm voxels but
    vanishes at 4 mm, a 1.5 mm probe's at 3 mm (session 46, `ioplan simulate --tissue
    liver --protocol freeze:600`). Trusted up to the larger of 2 mm and 1.25 probe
    diameters.
    """
    limit = cryo_resolved_spacing_mm(probe_diameter_mm)
    if spacing_mm <= limit + 1e-9:
        return None
    return (f"{spacing_mm:g} mm voxels are coarse for a {probe_diameter_mm:g} mm cryoprobe (its "
            f"zones are grid-independent up to {limit:g} mm): the cold near the probe is "
            "under-resolved and the lethal zone too small or missing; use --spacing-mm "
            f"{min(2.0, limit):g} or finer")  # fmt: skip


def kirchhoff_phi(table, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Kirchhoff potential (W/m): the integral of k(T) from the liquidus to ``t``.

    As the engine's ``_phi`` (``ioplan.physics._kernel``): liquid, mushy and frozen
    conductivities by phase; the heat through a cut face is ``coef V (Phi(T_n) - Phi(T_p))``.
    """
    tl = table.liquidus_c[m]
    ts = table.solidus_c[m]
    k, km, kf = table.k_w_m_k[m], table.k_mushy_w_m_k[m], table.k_frozen_w_m_k[m]
    return np.where(t >= tl, k * (t - tl),
                    np.where(t >= ts, km * (t - tl), km * (ts - tl) + kf * (t - ts)))  # fmt: skip


def near_field_lethal(
    grid: Grid,
    cylinders,
    surfaces: Surfaces,
    tmin_c: np.ndarray,
    material: np.ndarray,
    table,
    lethal_c: float,
    probe_c: float,
    free: np.ndarray,
    samples: int = 4,
) -> np.ndarray:
    """Voxels at least half inside a cryoprobe's lethal isotherm by its near field (bool).

    Around a cold cylinder of true radius ``a`` at ``T_p`` the quasi-steady profile is
    logarithmic in the Kirchhoff potential: ``Phi(T(r)) = Phi(T_p) + (Phi(T_n) -
    Phi(T_p)) ln(r / a) / ln(rho_n / a)`` through a cut voxel's centre (``rho_n``, its
    lowest temperature ``T_n``; the cut faces carry exactly that conductance). The lethal
    radius there is ``R = a (rho_n / a)^f``, ``f = (Phi(T_L) - Phi(T_p)) / (Phi(T_n) -
    Phi(T_p))`` (beyond the centre when it is lethal itself, f > 1), averaged over the cut
    voxels in each voxel-long station of the cold segment. A voxel next to the probe (a
    cut voxel, or one holding the probe) is marked when at least half of its volume
    (``samples^3`` points) lies between the probe's surface and ``R``; the probe itself
    counts as not lethal, so on fine grids the probe's own voxels stay out. On voxels
    coarser than the lethal radius (a 1.5 mm probe on 3-4 mm voxels: lethal radius about
    2.9 mm) no tissue centre reaches the lethal temperature, and the zone was empty.

    ``probe_c`` is the probes' coldest temperature during the run (all probes of one
    applicator share it); ``tmin_c`` the voxels' lowest temperatures; ``free`` the tissue
    voxels that may be in the zone.
    """
    out = np.zeros(grid.shape, bool)
    cyls = [c for c in cylinders if c.group == 1]
    sel = surfaces.group == 1 if surfaces.size else np.zeros(0, bool)
    if not cyls or not sel.any() or not probe_c < lethal_c:
        return out
    idx = surfaces.index[sel]
    t_n = np.asarray(tmin_c, float).reshape(-1)[idx]
    m_n = np.asarray(material).reshape(-1)[idx]
    pts = grid.index_to_lps(np.stack(np.unravel_index(idx, grid.shape), axis=1))
    h = float(max(grid.spacing_mm))
    axes = [(np.asarray(c.tip_mm, float), np.asarray(c.direction, float)
             / np.linalg.norm(c.direction)) for c in cyls]  # fmt: skip
    a_true = [float(c.true_radius_mm or c.radius_mm) for c in cyls]

    def axial(p: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
        w = p - axes[i][0]
        s = w @ axes[i][1]
        return s, np.linalg.norm(w - s[:, None] * axes[i][1], axis=1)

    # each cut voxel belongs to its nearest cold segment
    dist = []
    for i, c in enumerate(cyls):
        s, rho = axial(pts, i)
        ds = np.maximum(0.0, np.maximum(c.along_min_mm - s, s - c.along_max_mm))
        dist.append(np.hypot(rho, ds))
    owner = np.argmin(np.asarray(dist), axis=0)
    phi_l = kirchhoff_phi(table, m_n, np.full(t_n.shape, float(lethal_c)))
    phi_p = kirchhoff_phi(table, m_n, np.full(t_n.shape, float(probe_c)))
    phi_n = kirchhoff_phi(table, m_n, t_n)
    z, y, x = grid.axis_coordinates_mm()
    off = (np.arange(samples) + 0.5) / samples - 0.5
    sub = np.stack(np.meshgrid(off, off, off, indexing="ij"), -1).reshape(-1, 3)  # index units
    for i, c in enumerate(cyls):
        a = a_true[i]
        mine = owner == i
        s_n, rho_n = axial(pts[mine], i)
        ok = (rho_n > a * (1 + 1e-9)) & (s_n >= c.along_min_mm) & (s_n <= c.along_max_mm)
        if not ok.any():
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            f = (phi_l[mine] - phi_p[mine]) / (phi_n[mine] - phi_p[mine])
        # f > 1 where the centre itself is lethal: the profile carries on past it
        r_l = a * (rho_n / a) ** np.clip(np.nan_to_num(f, nan=0.0, posinf=4.0), 0.0, 4.0)
        lo = max(c.along_min_mm, -1e4)
        n_bins = max(1, int(np.ceil((min(c.along_max_mm, 1e4) - lo) / h)))
        b_n = np.clip(((s_n - lo) / h).astype(int), 0, n_bins - 1)
        total = np.bincount(b_n[ok], r_l[ok], n_bins)
        count = np.bincount(b_n[ok], None, n_bins)
        radius = np.where(count > 0, total / np.maximum(count, 1), 0.0)
        # candidate voxels: centres within the largest lethal radius plus a voxel diagonal
        reach = float(radius.max()) + 0.87 * h
        ends = np.array([axes[i][0] + lo * axes[i][1],
                         axes[i][0] + min(c.along_max_mm, 1e4) * axes[i][1]])  # fmt: skip
        box = []
        for ax, coords in ((2, z), (1, y), (0, x)):
            keep = np.flatnonzero((coords >= ends[:, ax].min() - reach)
                                  & (coords <= ends[:, ax].max() + reach))  # fmt: skip
            box.append(keep)
        if any(b.size == 0 for b in box):
            continue
        cand = np.stack(np.meshgrid(*box, indexing="ij"), -1).reshape(-1, 3)
        centres = grid.index_to_lps(cand)
        s_c, rho_c = axial(centres, i)
        near = (rho_c <= reach) & (s_c >= lo - h) & (s_c <= c.along_max_mm + h)
        cand, centres = cand[near], centres[near]
        if cand.size == 0:
            continue
        p = grid.index_to_lps((cand[:, None, :] + sub[None, :, :]).reshape(-1, 3))
        s_p, rho_p = axial(p, i)
        b_p = np.clip(((s_p - lo) / h).astype(int), 0, n_bins - 1)
        inside_seg = (s_p >= c.along_min_mm) & (s_p <= c.along_max_mm)
        lethal = inside_seg & (rho_p >= a) & (rho_p <= radius[b_p])
        share = lethal.reshape(len(cand), -1).mean(axis=1)
        hit = cand[share >= 0.5]
        out[hit[:, 0], hit[:, 1], hit[:, 2]] = True
    probe_voxels = inside_cylinders(grid, cyls)
    return out & (free | probe_voxels)
