"""The per-voxel update of the bioheat engine, written once, compiled for CPU and GPU.

One explicit (forward Euler) finite-volume step of the enthalpy form of the
Pennes equation::

    dE/dt = div(k grad T) + w_b c_b (T_a - T) + Q,     T = T(E)

where T(E) is piecewise linear: frozen, mushy (latent heat of fusion), liquid,
boiling (latent heat of the tissue's water between 99 and 100 degC), dry.
on a uniform grid with 7-point stencil, harmonic-mean face conductances, and a
wall heat-transfer coefficient on faces towards fixed vessel voxels. Fixed
voxels (far boundary, vessels, probes) take their group's temperature. Damage
(Arrhenius Omega, CEM43; rates from :mod:`ioplan.physics._damage`) is integrated with
the midpoint rule over the step;
minimum and maximum temperatures are tracked.

The body :func:`voxel_update` is plain Python; :func:`step_cpu` compiles it
with ``numba.njit(parallel=True)`` and :func:`step_gpu` with ``numba.cuda.jit``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda

from ioplan.physics._damage import RATE_STEP_C, RATE_T0_C, arrhenius_rate, cem43_rate

__all__ = [
    "N_PROPS",
    "pack_properties",
    "step_cpu",
    "step_gpu",
    "voxel_update",
]

# Rows of the packed property table P[row, material].
K, KF, KM, C, CF, CM, LV, TS, TL, B, FIXED, H, EL, ES, CAPP, TV1, TV2, EV1, EV2, CV, INVC = range(
    21
)
N_PROPS = 21
T_REF = 37.0


def pack_properties(table) -> np.ndarray:
    """The (21, 256) float64 table the kernel reads (see the row constants)."""
    e_l, e_s = table.enthalpy_breakpoints()
    e_v1, e_v2, c_v = table.vapor_breakpoints()
    width = table.liquidus_c - table.solidus_c
    c_app = table.latent_j_m3 / np.where(width > 0, width, 1.0) + table.c_vol_mushy_j_m3_k
    rows = [
        table.k_w_m_k,
        table.k_frozen_w_m_k,
        table.k_mushy_w_m_k,
        table.c_vol_j_m3_k,
        table.c_vol_frozen_j_m3_k,
        table.c_vol_mushy_j_m3_k,
        table.latent_j_m3,
        table.solidus_c,
        table.liquidus_c,
        table.perfusion_w_m3_k,
        table.fixed_group,
        table.wall_h_w_m2_k,
        e_l,
        e_s,
        c_app,
        table.vapor_start_c,
        table.vapor_end_c,
        e_v1,
        e_v2,
        c_v,
        1.0 / table.c_vol_j_m3_k,
    ]
    return np.ascontiguousarray(np.stack(rows).astype(np.float64))


def _k_of(P, m, t, const):
    if const != 0 or t >= P[TL, m]:
        return P[K, m]
    if t <= P[TS, m]:
        return P[KF, m]
    return P[KM, m]


def _t_of_e(P, m, e, const):
    if const != 0 or (e >= P[EL, m] and e < P[EV1, m]):
        return T_REF + e * P[INVC, m]
    if e >= P[EV2, m]:
        return P[TV2, m] + (e - P[EV2, m]) * P[INVC, m]
    if e >= P[EV1, m]:
        return P[TV1, m] + (e - P[EV1, m]) / P[CV, m]
    if e >= P[ES, m]:
        return P[TL, m] - (P[EL, m] - e) / P[CAPP, m]
    return P[TS, m] - (P[ES, m] - e) / P[CF, m]


def _e_of_t(P, m, t, const):
    if const != 0 or (t >= P[TL, m] and t < P[TV1, m]):
        return P[C, m] * (t - T_REF)
    if t >= P[TV2, m]:
        return P[EV2, m] + P[C, m] * (t - P[TV2, m])
    if t >= P[TV1, m]:
        return P[EV1, m] + P[CV, m] * (t - P[TV1, m])
    if t >= P[TS, m]:
        return P[EL, m] - P[CAPP, m] * (P[TL, m] - t)
    return P[ES, m] - P[CF, m] * (P[TS, m] - t)


def _conductance(P, ki, m, mj, tj, d, inv_d2, const):
    """Face coefficient per volume (W/m^3/K): conductance per area over the spacing d.

    ``inv_d2`` is 1 / d^2. Between equal conductivities (the common case) there is
    no division.
    """
    if mj != m and P[FIXED, mj] >= 0 and P[H, mj] > 0:
        if ki <= 0.0:
            return 0.0
        return 1.0 / (0.5 * d / ki + 1.0 / P[H, mj]) / d
    kj = _k_of(P, mj, tj, const)
    if kj == ki:
        return ki * inv_d2
    if ki + kj <= 0.0:
        return 0.0  # two insulators
    return 2.0 * ki * kj / (ki + kj) * inv_d2


def voxel_update(
    i, j, k, E, T, E2, T2, omega, cem, tmin, tmax, mat, Q, P, gt,
    dt, dz, dy, dx, iz2, iy2, ix2, tb, const, tstop, ln_a, ea_r, RT,
):  # fmt: skip
    """Advance voxel (i, j, k) by ``dt``; write ``E2``/``T2`` and update damage in place.

    ``iz2``, ``iy2``, ``ix2`` are 1 / d^2 along each axis (computed once by the caller);
    ``RT`` is :func:`rate_table` of ``ln_a`` and ``ea_r``.
    """
    m = mat[i, j, k]
    group = P[FIXED, m]
    if group >= 0:
        tf = gt[int(group)]
        T2[i, j, k] = tf
        E2[i, j, k] = _e_of_t(P, m, tf, const)
        return
    ti = T[i, j, k]
    ki = _k_of(P, m, ti, const)
    flux = 0.0
    # z neighbours
    mj = mat[i - 1, j, k]
    tj = T[i - 1, j, k]
    flux += _conductance(P, ki, m, mj, tj, dz, iz2, const) * (tj - ti)
    mj = mat[i + 1, j, k]
    tj = T[i + 1, j, k]
    flux += _conductance(P, ki, m, mj, tj, dz, iz2, const) * (tj - ti)
    # y neighbours
    mj = mat[i, j - 1, k]
    tj = T[i, j - 1, k]
    flux += _conductance(P, ki, m, mj, tj, dy, iy2, const) * (tj - ti)
    mj = mat[i, j + 1, k]
    tj = T[i, j + 1, k]
    flux += _conductance(P, ki, m, mj, tj, dy, iy2, const) * (tj - ti)
    # x neighbours
    mj = mat[i, j, k - 1]
    tj = T[i, j, k - 1]
    flux += _conductance(P, ki, m, mj, tj, dx, ix2, const) * (tj - ti)
    mj = mat[i, j, k + 1]
    tj = T[i, j, k + 1]
    flux += _conductance(P, ki, m, mj, tj, dx, ix2, const) * (tj - ti)
    om = omega[i, j, k]
    b = P[B, m]
    if const == 0 and (om >= 1.0 or tmin[i, j, k] < tstop):
        b = 0.0  # perfusion stops in coagulated tissue and in tissue that has frozen
    e_new = E[i, j, k] + dt * (flux + b * (tb - ti) + Q[i, j, k])
    t_new = _t_of_e(P, m, e_new, const)
    E2[i, j, k] = e_new
    T2[i, j, k] = t_new
    # midpoint rule over the step (second order, one exponential per integral)
    t_mid = 0.5 * (ti + t_new)
    x = (t_mid - RATE_T0_C) * (1.0 / RATE_STEP_C)
    if x >= 0.0 and x < RT.shape[0]:
        row = numba.uint32(x)
        f = x - row
        r_arr = RT[row, 0] + f * RT[row, 1]
        r_cem = RT[row, 2] + f * RT[row, 3]
    else:
        r_arr = arrhenius_rate(t_mid, ln_a, ea_r)
        r_cem = cem43_rate(t_mid)
    omega[i, j, k] = om + dt * r_arr
    cem[i, j, k] = cem[i, j, k] + dt * r_cem
    if t_new < tmin[i, j, k]:
        tmin[i, j, k] = t_new
    if t_new > tmax[i, j, k]:
        tmax[i, j, k] = t_new


# -- CPU ---------------------------------------------------------------------
_jit = numba.njit(inline="always", fastmath=False, cache=False)
_k_of_cpu = _jit(_k_of)
_t_of_e_cpu = _jit(_t_of_e)
_e_of_t_cpu = _jit(_e_of_t)


def _bind(fn, names):
    """Re-create ``fn`` with its helper globals pointing at compiled versions."""
    g = dict(fn.__globals__)
    g.update(names)
    return type(fn)(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)


_cpu_helpers = {"_k_of": _k_of_cpu, "_t_of_e": _t_of_e_cpu, "_e_of_t": _e_of_t_cpu}
_conductance_cpu = _jit(_bind(_conductance, _cpu_helpers))
_cpu_helpers["_conductance"] = _conductance_cpu
_cpu_helpers["arrhenius_rate"] = _jit(arrhenius_rate)
_cpu_helpers["cem43_rate"] = _jit(cem43_rate)
_voxel_cpu = _jit(_bind(voxel_update, _cpu_helpers))


@numba.njit(parallel=True, cache=True)
def step_cpu(
    E, T, E2, T2, omega, cem, tmin, tmax, mat, Q, P, gt,
    dt, dz, dy, dx, tb, const, tstop, ln_a, ea_r, RT,
):  # fmt: skip
    """One explicit step on the CPU over every voxel not on the outer layer."""
    nz, ny, nx = E.shape
    iz2 = 1.0 / (dz * dz)
    iy2 = 1.0 / (dy * dy)
    ix2 = 1.0 / (dx * dx)
    for i in numba.prange(1, nz - 1):
        for j in range(1, ny - 1):
            for k in range(1, nx - 1):
                _voxel_cpu(
                    i, j, k, E, T, E2, T2, omega, cem, tmin, tmax, mat, Q, P, gt,
                    dt, dz, dy, dx, iz2, iy2, ix2, tb, const, tstop, ln_a, ea_r, RT,
                )  # fmt: skip


# -- GPU ---------------------------------------------------------------------
_dev = cuda.jit(device=True)
_gpu_helpers = {"_k_of": _dev(_k_of), "_t_of_e": _dev(_t_of_e), "_e_of_t": _dev(_e_of_t)}
_gpu_helpers["_conductance"] = _dev(_bind(_conductance, _gpu_helpers))
_gpu_helpers["arrhenius_rate"] = _dev(arrhenius_rate)
_gpu_helpers["cem43_rate"] = _dev(cem43_rate)
_voxel_gpu = _dev(_bind(voxel_update, _gpu_helpers))


@cuda.jit
def step_gpu(
    E, T, E2, T2, omega, cem, tmin, tmax, mat, Q, P, gt,
    dt, dz, dy, dx, tb, const, tstop, ln_a, ea_r, RT,
):  # fmt: skip
    """One explicit step on an NVIDIA GPU (one thread per voxel; x fastest)."""
    k, j, i = cuda.grid(3)
    nz, ny, nx = E.shape
    if 1 <= i < nz - 1 and 1 <= j < ny - 1 and 1 <= k < nx - 1:
        _voxel_gpu(
            i, j, k, E, T, E2, T2, omega, cem, tmin, tmax, mat, Q, P, gt,
            dt, dz, dy, dx, 1.0 / (dz * dz), 1.0 / (dy * dy), 1.0 / (dx * dx),
            tb, const, tstop, ln_a, ea_r, RT,
        )  # fmt: skip
