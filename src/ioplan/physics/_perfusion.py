"""Perfusion shutdown below the voxel size: the share of a voxel that has coagulated or frozen.

Blood flow stops in tissue that has coagulated (Arrhenius Omega >= 1) or frozen (lowest
temperature below ``ThermalProblem.perfusion_stop_c``). Stopping a voxel's whole
perfusion when its centre crosses the threshold makes a zone edge that sits in a perfused
rim a few millimetres wide depend on the voxel size: a 2 mm voxel half frozen keeps all its
perfusion until its centre freezes, then loses all of it. Measured before this module
(one 2.4 mm cryoprobe, 10 min in liver at 0.018 1/s, 0 degC width; validation/
convergence.md): 16.73 mm at 2 mm voxels against 17.47 at 1 mm and 17.87 at 0.5 mm; with
the same perfusion never stopping, 10.14 against 10.37 mm; with the frozen tissue's
conductivity and latent heat removed instead, the gap stayed (1.06 mm): the switch was it.

Here each voxel keeps the share of its perfusion that lies on the unstopped side of the
threshold, with the field taken as linear across the voxel: for a field ``f`` (ln Omega,
or the lowest temperature), the centre's distance past the threshold ``g`` and the
changes ``D_a`` of ``f`` across the voxel along each axis (half the central difference,
one-sided beside a fixed voxel), the stopped share is ``clip(0.5 + g / |D|, 0, 1)``, with
``|D| = sqrt(sum D_a^2)`` (exact for a gradient along an axis; for an oblique one it
matches the spread of ``f`` over the cube). Coagulated and frozen shares combine by the
larger. The share only grows: blood does not return to tissue once stopped. As the voxel
shrinks the ramp narrows to the sharp switch.

``perf`` stores the running share in steps of ``1 / PERF_FULL`` (uint8); ``PERF_FIXED``
marks a fixed voxel.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import cuda

from ioplan.physics._kernel import FIXED, N_PROPS, PERF_FIXED, PERF_FULL, _bind

__all__ = ["perfusion_share_cpu", "perfusion_share_gpu", "warm_up"]

#: ln Omega of an undamaged voxel (Omega = 0): far below the threshold of 0.
_LN_FLOOR = math.log(1e-30)


def _field(f, i, j, k, use_log):
    v = f[i, j, k]
    if use_log:
        return math.log(v) if v > 1e-30 else _LN_FLOOR
    return v


def _half_change(f, mat, P, c, i0, j0, k0, i1, j1, k1, use_log):
    """Change of ``f`` over half a voxel along one axis (signed), from the free neighbours."""
    lo_free = P[FIXED, mat[i0, j0, k0]] < 0
    hi_free = P[FIXED, mat[i1, j1, k1]] < 0
    if lo_free and hi_free:
        return 0.25 * (_field(f, i1, j1, k1, use_log) - _field(f, i0, j0, k0, use_log))
    if hi_free:
        return 0.5 * (_field(f, i1, j1, k1, use_log) - c)
    if lo_free:
        return 0.5 * (c - _field(f, i0, j0, k0, use_log))
    return 0.0


def _stopped_share(f, mat, P, i, j, k, threshold, sign, use_log):
    """Share of voxel (i, j, k) past ``threshold`` (``sign`` +1: f >= it; -1: f < it)."""
    c = _field(f, i, j, k, use_log)
    g = sign * (c - threshold)
    dz = _half_change(f, mat, P, c, i - 1, j, k, i + 1, j, k, use_log)
    dy = _half_change(f, mat, P, c, i, j - 1, k, i, j + 1, k, use_log)
    dx = _half_change(f, mat, P, c, i, j, k - 1, i, j, k + 1, use_log)
    # D_a above is half the change across the voxel: the ramp spans 2 |D|
    spread = 2.0 * math.sqrt(dz * dz + dy * dy + dx * dx)
    if not spread > 0.0:
        if sign > 0:
            return 1.0 if g >= 0.0 else 0.0
        return 1.0 if g > 0.0 else 0.0
    s = 0.5 + g / spread
    return 0.0 if s < 0.0 else (1.0 if s > 1.0 else s)


def _stencil_quiet(omega, tmin, i, j, k, tstop):
    """True when no voxel of the 7-point stencil is coagulated or frozen (share 0)."""
    if omega[i, j, k] >= 1.0 or tmin[i, j, k] < tstop:
        return False
    if omega[i - 1, j, k] >= 1.0 or omega[i + 1, j, k] >= 1.0:
        return False
    if omega[i, j - 1, k] >= 1.0 or omega[i, j + 1, k] >= 1.0:
        return False
    if omega[i, j, k - 1] >= 1.0 or omega[i, j, k + 1] >= 1.0:
        return False
    if tmin[i - 1, j, k] < tstop or tmin[i + 1, j, k] < tstop:
        return False
    if tmin[i, j - 1, k] < tstop or tmin[i, j + 1, k] < tstop:
        return False
    return not (tmin[i, j, k - 1] < tstop or tmin[i, j, k + 1] < tstop)


def perfusion_voxel(i, j, k, omega, tmin, perf, mat, P, tstop):
    """Lower ``perf`` at (i, j, k) to the share of the voxel still perfused."""
    p0 = perf[i, j, k]
    if p0 == PERF_FIXED or p0 == 0:
        return
    if _stencil_quiet(omega, tmin, i, j, k, tstop):
        return
    s1 = _stopped_share(omega, mat, P, i, j, k, 0.0, 1.0, True)
    s2 = _stopped_share(tmin, mat, P, i, j, k, tstop, -1.0, False)
    s = s1 if s1 > s2 else s2
    p = int(PERF_FULL * (1.0 - s) + 0.5)
    if p < p0:
        perf[i, j, k] = p


#: Numba inlines the helpers into the voxel pass except ``_half_change`` (called six times
#: a voxel, each with ``_field`` twice): inlining it too made the pass take 13.5 s to
#: compile per dtype for 6 % less time a call where every voxel is worked out (4.8 s and
#: 9.0 against 8.5 ms on 120^3, session 49); nothing inlined compiles in 3.6 s but runs
#: 7x slower (62 ms: LLVM does not inline separately compiled functions).
_jit = numba.njit(inline="always", fastmath=False, cache=False)
_jit_call = numba.njit(fastmath=False, cache=False)
_cpu = {"_field": _jit(_field)}
_cpu["_half_change"] = _jit_call(_bind(_half_change, _cpu))
_cpu["_stopped_share"] = _jit(_bind(_stopped_share, _cpu))
_cpu["_stencil_quiet"] = _jit(_stencil_quiet)
_voxel_cpu = _jit(_bind(perfusion_voxel, _cpu))


@numba.njit(parallel=True, cache=True)
def perfusion_share_cpu(omega, tmin, perf, mat, P, const, tstop):
    """:func:`perfusion_voxel` over every voxel not on the outer layer (none if ``const``)."""
    if const != 0:
        return
    nz, ny, nx = omega.shape
    for i in numba.prange(1, nz - 1):
        for j in range(1, ny - 1):
            for k in range(1, nx - 1):
                _voxel_cpu(i, j, k, omega, tmin, perf, mat, P, tstop)


_dev = cuda.jit(device=True)
_gpu = {"_field": _dev(_field)}
_gpu["_half_change"] = _dev(_bind(_half_change, _gpu))
_gpu["_stopped_share"] = _dev(_bind(_stopped_share, _gpu))
_gpu["_stencil_quiet"] = _dev(_stencil_quiet)
_voxel_gpu = _dev(_bind(perfusion_voxel, _gpu))


@cuda.jit
def perfusion_share_gpu(omega, tmin, perf, mat, P, const, tstop):
    """:func:`perfusion_share_cpu` on an NVIDIA GPU (one thread per voxel)."""
    k, j, i = cuda.grid(3)
    nz, ny, nx = omega.shape
    if const == 0 and 1 <= i < nz - 1 and 1 <= j < ny - 1 and 1 <= k < nx - 1:
        _voxel_gpu(i, j, k, omega, tmin, perf, mat, P, tstop)


@functools.cache
def warm_up(dtype: str) -> None:
    """Load (or compile) :func:`perfusion_share_cpu` for ``dtype`` before a run's clock."""
    a = np.zeros((3, 3, 3), np.dtype(dtype))
    P = np.zeros((N_PROPS, 256))
    P[FIXED] = -1.0
    perf = np.full((3, 3, 3), PERF_FULL, np.uint8)
    perfusion_share_cpu(a, a + 37.0, perf, np.zeros((3, 3, 3), np.uint8), P, 0, -2.0)
