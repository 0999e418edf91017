"""The per-voxel updates of the bioheat engine, written once, compiled for CPU and GPU.

One explicit (forward Euler) finite-volume step of the enthalpy form of the
Pennes equation::

    dE/dt = div(k grad T) + w_b c_b (T_a - T) + Q,     T = T(E)

where T(E) is piecewise linear and strictly increasing: frozen, mushy (latent heat of
fusion), liquid, boiling (latent heat of the tissue's water between 99 and 100 degC),
dry; on a uniform grid with 7-point stencil, harmonic-mean face conductances, and a
wall heat-transfer coefficient on faces towards fixed vessel voxels. Fixed voxels (far
boundary, vessels, probes) take their group's temperature. Applicator surfaces below the
voxel size (a cryoprobe's freeze segment, a cooled shaft) are cut-cell faces of the free
voxels next to them (:mod:`ioplan.physics._subvoxel`): a separate small kernel
overwrites those voxels after each step, so nothing here changes for them.

How the work is split (issue 18, measured in ``bench/engine.py``):

- **State.** The kernels carry ``theta = T - 37 degC`` only (one array read with its
  neighbours, one written): because T(E) is strictly increasing, the enthalpy is a
  function of the temperature, ``E = E(T)``, and needs no array of its own during a
  run; it is rebuilt in float64 from ``theta`` at the end (:func:`energy_from_theta`).
  ``theta`` rather than T keeps small rises far from the source in float32 (a rise of
  1e-7 degC is representable next to 0, not next to 37).
- **Fast path.** A voxel whose six neighbours conduct like itself (same conductivity,
  no vessel wall; :func:`uniform_mask`, computed once) and whose temperatures, and its
  own before and after the step, lie in the liquid range (above every liquidus, below
  boiling) has ``E = C theta`` exactly, so the enthalpy update is the plain update
  ``theta' = theta + a lap(theta) + b (theta_b - theta) + q`` with per-material
  ``a = dt k / (C h^2)``, ``b = dt w_b c_b / C`` and ``q = dt Q / C``: the same
  arithmetic, branch-free and vectorised over a row. Every other voxel (interfaces,
  walls, phase change, fixed voxels) takes the general enthalpy update in float64,
  :func:`general_update`, in a second pass over the rows that need it.
- **Damage and extremes** (Arrhenius Omega, CEM43, lowest and highest temperature)
  are integrated every few steps by :func:`damage_update`, exactly for a temperature
  linear in time between the two states (:func:`~ioplan.physics._damage.mean_rates_linear`);
  perfusion stops (coagulated or frozen tissue) at the same moments, by the share of each
  voxel past the threshold (:mod:`ioplan.physics._perfusion`).

:func:`step_cpu` compiles the row loop with ``numba.njit(parallel=True)``;
:func:`step_gpu` runs one CUDA thread per voxel with the same scalar functions.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import cuda

from ioplan.physics._damage import (
    CEM43_BREAKPOINT_C,
    MIDPOINT_SPAN_C,
    RATE_STEP_C,
    RATE_T0_C,
    _rate_and_integral,
    arrhenius_rate,
    cem43_rate,
    mean_rates_linear,
)

__all__ = [
    "DOSE_CAP",
    "N_PROPS",
    "T_REF",
    "damage_cpu",
    "damage_gpu",
    "energy_from_theta",
    "fast_coefficients",
    "general_update",
    "interface_faces",
    "pack_properties",
    "perfusion_flags",
    "prepare_source",
    "step_cpu",
    "step_gpu",
    "theta_from_energy",
    "uniform_mask",
    "warm_up",
]

# Rows of the packed property table P[row, material].
K, KF, KM, C, CF, CM, LV, TS, TL, B, FIXED, H, EL, ES, CAPP, TV1, TV2, EV1, EV2, CV, INVC = range(
    21
)
N_PROPS = 21
T_REF = 37.0
#: The float32 fast path stores |theta| below this (degC) as 0: the heat front's far tail
#: would otherwise pass through subnormal numbers (below 1.2e-38), whose arithmetic is
#: about 100 times slower on x86; 1e-30 degC is 30 orders of magnitude below anything
#: the model resolves (measured: bench/engine.py, first 200 steps of a run 2x faster).
FLUSH_BELOW_C = 1e-30
#: Omega and CEM43 (min) stop growing here: far past any threshold (Omega 1, 240 min) and
#: below float32's largest number (3.4e38), which 10 s at 175 degC would pass otherwise.
DOSE_CAP = 1e30
#: ``perf`` holds the share of a voxel's perfusion still running, in steps of 1 / PERF_FULL
#: (set below the voxel size by :mod:`ioplan.physics._perfusion`); PERF_FIXED: a fixed voxel.
PERF_FULL = 100
PERF_FIXED = 255
PERF_SCALE = 1.0 / PERF_FULL


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


def fast_coefficients(packed: np.ndarray, dt: float, h_min_m: float, dtype) -> tuple:
    """Per-material ``a = dt k / (C h^2)`` and ``b = dt w_b c_b / C`` of the fast path."""
    a = dt * packed[K] * packed[INVC] / (h_min_m * h_min_m)
    b = dt * packed[B] * packed[INVC] * PERF_SCALE  # times perf, the share in 1/PERF_FULL
    fixed = packed[FIXED] >= 0
    a = np.where(fixed | ~np.isfinite(a), 0.0, a)
    b = np.where(fixed | ~np.isfinite(b), 0.0, b)
    return a.astype(dtype), b.astype(dtype)


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


def _phi(P, m, t):
    """Kirchhoff potential of material ``m``: the integral of k(T) from its liquidus to t (W/m)."""
    tl = P[TL, m]
    if t >= tl:
        return P[K, m] * (t - tl)
    ts = P[TS, m]
    if t >= ts:
        return P[KM, m] * (t - tl)
    return P[KM, m] * (ts - tl) + P[KF, m] * (t - ts)


def _k_mean(P, m, ta, tb, const):
    """Mean conductivity of material ``m`` between ta and tb (degC): Kirchhoff's transform.

    Steady conduction along a line with k(T) carries exactly ``(Phi(tb) - Phi(ta)) / d``
    over a distance d, whatever k(T) does between the ends; this mean times
    ``(tb - ta) / d`` is that flux. Across a freezing front, where k jumps from the
    liquid's 0.52 to the frozen 2.0 W/m/K, the node values' harmonic mean takes the
    liquid's value for the whole face (issue 19: the ice edge in perfused liver was 1.7 mm
    short on 2 mm voxels against 0.5 mm ones; 1.14 mm with this mean).
    """
    if const != 0:
        return P[K, m]
    tl = P[TL, m]
    if ta >= tl and tb >= tl:
        return P[K, m]
    d = tb - ta
    if abs(d) < 1e-6:
        return _k_of(P, m, ta, const)
    return (_phi(P, m, tb) - _phi(P, m, ta)) / d


def _conductance(P, ki, m, mj, ti, tj, d, inv_d2, const):
    """Face coefficient per volume (W/m^3/K): conductance per area over the spacing d.

    ``inv_d2`` is 1 / d^2; ``ki`` is k(ti). Within one material the face conducts with
    the mean k over [ti, tj] (:func:`_k_mean`); between two, each half of the gap with its
    material's mean over its half of the temperature span (the face taken at the mean
    temperature), in series. Above the liquidus (every heating case) these are the
    node values; between equal conductivities there is no division.
    """
    if mj != m and P[FIXED, mj] >= 0 and P[H, mj] > 0:
        if ki <= 0.0:
            return 0.0
        return 1.0 / (0.5 * d / ki + 1.0 / P[H, mj]) / d
    if mj == m:
        return _k_mean(P, m, ti, tj, const) * inv_d2
    tf = 0.5 * (ti + tj)
    k1 = _k_mean(P, m, ti, tf, const)
    kj = _k_mean(P, mj, tf, tj, const)
    if kj == k1:
        return k1 * inv_d2
    if k1 + kj <= 0.0:
        return 0.0  # two insulators
    return 2.0 * k1 * kj / (k1 + kj) * inv_d2


def general_update(
    i, j, k, TH, TH2, mat, QS, perf, P, gt, dt, dz, dy, dx, iz2, iy2, ix2, tb, const,
):  # fmt: skip
    """The enthalpy update of voxel (i, j, k) in float64; writes ``TH2[i, j, k]``.

    ``TH`` holds theta = T - 37 degC; ``QS`` the source as ``dt Q / C`` (degC per
    step); ``perf`` the share of the voxel's perfusion still running, in 1 / PERF_FULL
    (PERF_FIXED on fixed voxels, which return before it is read);
    ``iz2``, ``iy2``, ``ix2`` are 1 / d^2 along each axis.
    """
    m = mat[i, j, k]
    group = P[FIXED, m]
    if group >= 0:
        TH2[i, j, k] = gt[int(group)] - T_REF
        return
    ti = TH[i, j, k] + T_REF
    ki = _k_of(P, m, ti, const)
    flux = 0.0
    mj = mat[i - 1, j, k]
    tj = TH[i - 1, j, k] + T_REF
    flux += _conductance(P, ki, m, mj, ti, tj, dz, iz2, const) * (tj - ti)
    mj = mat[i + 1, j, k]
    tj = TH[i + 1, j, k] + T_REF
    flux += _conductance(P, ki, m, mj, ti, tj, dz, iz2, const) * (tj - ti)
    mj = mat[i, j - 1, k]
    tj = TH[i, j - 1, k] + T_REF
    flux += _conductance(P, ki, m, mj, ti, tj, dy, iy2, const) * (tj - ti)
    mj = mat[i, j + 1, k]
    tj = TH[i, j + 1, k] + T_REF
    flux += _conductance(P, ki, m, mj, ti, tj, dy, iy2, const) * (tj - ti)
    mj = mat[i, j, k - 1]
    tj = TH[i, j, k - 1] + T_REF
    flux += _conductance(P, ki, m, mj, ti, tj, dx, ix2, const) * (tj - ti)
    mj = mat[i, j, k + 1]
    tj = TH[i, j, k + 1] + T_REF
    flux += _conductance(P, ki, m, mj, ti, tj, dx, ix2, const) * (tj - ti)
    b = P[B, m] * (perf[i, j, k] * PERF_SCALE)
    e_new = _e_of_t(P, m, ti, const) + dt * (flux + b * (tb - ti)) + QS[i, j, k] * P[C, m]
    th_new = _t_of_e(P, m, e_new, const) - T_REF
    if abs(th_new) < FLUSH_BELOW_C:
        th_new = 0.0  # as the fast path: no subnormal numbers
    TH2[i, j, k] = th_new


def damage_update(
    i, j, k, TH, SNAP, omega, cem, tmin, tmax, perf, mat, P, span_s, ln_a, ea_r, RI,
):  # fmt: skip
    """Damage and extremes of voxel (i, j, k) over ``span_s`` seconds.

    The temperature is taken as linear in time from ``SNAP`` (theta at the last call)
    to ``TH`` (theta now); the increments are exact for that line (``RI`` is
    :func:`~ioplan.physics._damage.rate_integral_table`). ``SNAP`` takes ``TH``.
    """
    th = TH[i, j, k]
    if perf[i, j, k] == PERF_FIXED:
        SNAP[i, j, k] = th
        return
    a = SNAP[i, j, k] + T_REF
    t = th + T_REF
    r_arr, r_cem = mean_rates_linear(a, t, ln_a, ea_r, RI)
    om = min(omega[i, j, k] + span_s * r_arr, DOSE_CAP)
    omega[i, j, k] = om
    cem[i, j, k] = min(cem[i, j, k] + span_s * r_cem, DOSE_CAP)
    lo = min(tmin[i, j, k], t)
    tmin[i, j, k] = lo
    tmax[i, j, k] = max(tmax[i, j, k], t)
    SNAP[i, j, k] = th


# -- CPU ---------------------------------------------------------------------
#: Helpers are separate compiled functions (LLVM still inlines the small ones); only the
#: general update and its face conductance are inlined by numba into the row pass. Inlining
#: every helper by numba (``inline="always"``) made step_cpu take 36 s to compile per dtype
#: (a fresh install's first run, and every test process) for no speed: 6.4 s now, and a
#: 10-min cryo freeze at 1 mm (0.8 % general updates) runs its kernel in the same 7.1-7.5 s
#: (session 45, side by side).
_jit = numba.njit(fastmath=False, cache=False)
_jit_inline = numba.njit(inline="always", fastmath=False, cache=False)
_k_of_cpu = _jit(_k_of)
_t_of_e_cpu = _jit(_t_of_e)
_e_of_t_cpu = _jit(_e_of_t)


def _bind(fn, names):
    """Re-create ``fn`` with its helper globals pointing at compiled versions."""
    g = dict(fn.__globals__)
    g.update(names)
    return type(fn)(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)


_cpu_helpers = {"_k_of": _k_of_cpu, "_t_of_e": _t_of_e_cpu, "_e_of_t": _e_of_t_cpu}
_cpu_helpers["_phi"] = _jit(_phi)
_cpu_helpers["_k_mean"] = _jit(_bind(_k_mean, _cpu_helpers))
_conductance_cpu = _jit_inline(_bind(_conductance, _cpu_helpers))
_cpu_helpers["_conductance"] = _conductance_cpu
_general_cpu = _jit_inline(_bind(general_update, _cpu_helpers))
_rate_helpers = {
    "_rate_and_integral": _jit(_rate_and_integral),
    "arrhenius_rate": _jit(arrhenius_rate),
    "cem43_rate": _jit(cem43_rate),
}
_mean_rates_cpu = _jit(_bind(mean_rates_linear, _rate_helpers))
_damage_cpu_voxel = _jit(_bind(damage_update, {"mean_rates_linear": _mean_rates_cpu}))


@numba.njit(cache=True)
def _slow_row(
    i, j, bad, TH, TH2, mat, QS, perf, uni, Bc, fidx, C6, P, gt,
    dt, dz, dy, dx, iz2, iy2, ix2, tb, const, lo, hi, thb, tiny,
):  # fmt: skip
    """The second pass over row (i, j) where ``bad``: interface voxels, general update."""
    nx = TH.shape[2]
    ft = TH.dtype.type
    n_general = 0
    for k in range(1, nx - 1):
        if bad[k] == 0:
            continue
        t0 = TH[i, j, k]
        a0 = TH[i - 1, j, k]
        a1 = TH[i + 1, j, k]
        b0 = TH[i, j - 1, k]
        b1 = TH[i, j + 1, k]
        c0 = TH[i, j, k - 1]
        c1 = TH[i, j, k + 1]
        least = min(min(min(a0, a1), min(b0, b1)), min(min(c0, c1), t0))
        u = uni[i, j, k]
        liquid = least >= lo and t0 < hi
        if u == 2 and liquid:
            # interface: constant face conductances while all seven are liquid
            f = fidx[i, j, k]
            m = mat[i, j, k]
            tn = t0 + C6[f, 0] * (a0 - t0) + C6[f, 1] * (a1 - t0)
            tn += C6[f, 2] * (b0 - t0) + C6[f, 3] * (b1 - t0)
            tn += C6[f, 4] * (c0 - t0) + C6[f, 5] * (c1 - t0)
            tn += Bc[m] * ft(perf[i, j, k]) * (thb - t0) + QS[i, j, k]
            if abs(tn) < tiny:
                tn = ft(0.0)
            if tn >= lo and tn < hi:
                TH2[i, j, k] = tn
                continue
        if u != 0:
            n_general += 1  # (fixed voxels, u == 0, only take their group's temperature)
        _general_cpu(
            i, j, k, TH, TH2, mat, QS, perf, P, gt,
            dt, dz, dy, dx, iz2, iy2, ix2, tb, const,
        )  # fmt: skip
    return n_general


@numba.njit(parallel=True, cache=True)
def step_cpu(
    TH, TH2, mat, QS, perf, uni, A, Bc, fidx, C6, P, gt,
    dt, dz, dy, dx, tb, const, lo_th, hi_th, m_only,
):  # fmt: skip
    """One explicit step over every voxel not on the outer layer; returns general voxels.

    ``A``, ``Bc``: :func:`fast_coefficients`; ``uni``: :func:`uniform_mask` (1 uniform,
    2 interface); ``fidx``, ``C6``: :func:`interface_faces` and its six face coefficients
    per step (``dt G / C``) for the interface voxels; ``lo_th``, ``hi_th``: the fast
    paths' theta range (above every liquidus, below boiling); ``m_only``: the one free
    material when there is only one (a block of tissue: no per-voxel look-up), else -1.
    Returns how many voxels took the general update.
    """
    nz, ny, nx = TH.shape
    iz2 = 1.0 / (dz * dz)
    iy2 = 1.0 / (dy * dy)
    ix2 = 1.0 / (dx * dx)
    h2 = min(dz, min(dy, dx)) ** 2
    ft = TH.dtype.type
    wz = ft(h2 * iz2)
    wy = ft(h2 * iy2)
    wx = ft(h2 * ix2)
    thb = ft(tb - T_REF)
    lo = ft(lo_th)
    hi = ft(hi_th)
    two = ft(2.0)
    tiny = ft(FLUSH_BELOW_C) if TH.itemsize == 4 else ft(0.0)
    zero = ft(0.0)
    # per-slice counts, summed after the loop: no scalar reduction across the parallel loop
    # (numba's reduction analysis rejects this nested shape under Python 3.12)
    counts = np.zeros(nz, np.int64)
    for i in numba.prange(1, nz - 1):
        n_general = 0
        bad = np.zeros(nx, np.uint8)
        for j in range(1, ny - 1):
            slow = 0
            for k in range(1, nx - 1):
                t0 = TH[i, j, k]
                a0 = TH[i - 1, j, k]
                a1 = TH[i + 1, j, k]
                b0 = TH[i, j - 1, k]
                b1 = TH[i, j + 1, k]
                c0 = TH[i, j, k - 1]
                c1 = TH[i, j, k + 1]
                m = m_only if m_only >= 0 else mat[i, j, k]
                lap = wz * (a0 + a1 - two * t0) + wy * (b0 + b1 - two * t0)
                lap += wx * (c0 + c1 - two * t0)
                tn = t0 + A[m] * lap + Bc[m] * ft(perf[i, j, k]) * (thb - t0) + QS[i, j, k]
                if abs(tn) < tiny:
                    tn = zero  # no subnormal numbers (100x slower arithmetic on x86)
                least = min(min(min(a0, a1), min(b0, b1)), min(min(c0, c1), t0))
                ok = (uni[i, j, k] == 1) & (least >= lo) & (t0 < hi) & (tn < hi) & (tn >= lo)
                TH2[i, j, k] = tn
                bad[k] = not ok
                slow += 1 - np.int32(ok)
            if slow:
                n_general += _slow_row(
                    i, j, bad, TH, TH2, mat, QS, perf, uni, Bc, fidx, C6, P, gt,
                    dt, dz, dy, dx, iz2, iy2, ix2, tb, const, lo, hi, thb, tiny,
                )  # fmt: skip
        counts[i] = n_general
    return int(counts.sum())


@numba.njit(cache=True)
def _damage_row(i, j, bad, TH, SNAP, omega, cem, tmin, tmax, perf, mat, P, span_s,
                ln_a, ea_r, RI):  # fmt: skip
    """The second pass over row (i, j) where ``bad``: the exact :func:`damage_update`."""
    for k in range(1, TH.shape[2] - 1):
        if bad[k]:
            _damage_cpu_voxel(
                i, j, k, TH, SNAP, omega, cem, tmin, tmax, perf, mat, P, span_s,
                ln_a, ea_r, RI,
            )  # fmt: skip


@numba.njit(parallel=True, cache=True)
def damage_cpu(TH, SNAP, omega, cem, tmin, tmax, perf, mat, P, span_s, ln_a, ea_r, RI):  # fmt: skip
    """:func:`damage_update` over every voxel not on the outer layer.

    A first, vectorised pass per row takes every free voxel whose two temperatures lie
    inside the rate table, with the formulas of
    :func:`~ioplan.physics._damage.mean_rates_linear` (midpoint rate for a short span on
    one side of 43 degC, else the difference of the integrals); :func:`damage_update`
    takes the rest (fixed voxels, temperatures outside the table) in a second pass.
    """
    nz, ny, nx = TH.shape
    n_rows = RI.shape[0] - 1
    inv_h = 1.0 / RATE_STEP_C
    for i in numba.prange(1, nz - 1):
        bad = np.zeros(nx, np.uint8)
        for j in range(1, ny - 1):
            n_bad = 0
            for k in range(1, nx - 1):
                th = TH[i, j, k]
                sn = SNAP[i, j, k]
                a = sn + T_REF
                t = th + T_REF
                d = t - a
                xa = (a - RATE_T0_C) * inv_h
                xb = (t - RATE_T0_C) * inv_h
                inside = (xa >= 0.0) & (xb >= 0.0) & (xa < n_rows) & (xb < n_rows)
                # midpoint rate (short spans on one side of 43 degC)
                xm = min(max(0.5 * (xa + xb), 0.0), n_rows - 1.0)
                rm = int(xm)
                fm = xm - rm
                mid_arr = RI[rm, 0] + fm * (RI[rm + 1, 0] - RI[rm, 0])
                mid_cem = RI[rm, 2] + fm * (RI[rm + 1, 2] - RI[rm, 2])
                # mean rate from the integrals (G(b) - G(a)) / (b - a)
                xa = min(max(xa, 0.0), n_rows - 1.0)
                xb = min(max(xb, 0.0), n_rows - 1.0)
                ra = int(xa)
                fa = xa - ra
                rb = int(xb)
                fb = xb - rb
                da = RI[ra + 1, 0] - RI[ra, 0]
                db = RI[rb + 1, 0] - RI[rb, 0]
                g_a = RI[ra, 1] + RATE_STEP_C * fa * (RI[ra, 0] + 0.5 * fa * da)
                g_b = RI[rb, 1] + RATE_STEP_C * fb * (RI[rb, 0] + 0.5 * fb * db)
                da = RI[ra + 1, 2] - RI[ra, 2]
                db = RI[rb + 1, 2] - RI[rb, 2]
                c_a = RI[ra, 3] + RATE_STEP_C * fa * (RI[ra, 2] + 0.5 * fa * da)
                c_b = RI[rb, 3] + RATE_STEP_C * fb * (RI[rb, 2] + 0.5 * fb * db)
                short = (abs(d) < MIDPOINT_SPAN_C) & (
                    (a - CEM43_BREAKPOINT_C) * (t - CEM43_BREAKPOINT_C) >= 0.0
                )
                inv_d = 1.0 / d if d != 0.0 else 0.0
                r_arr = mid_arr if short else (g_b - g_a) * inv_d
                r_cem = mid_cem if short else (c_b - c_a) * inv_d
                ok = inside & (short | (d != 0.0)) & (perf[i, j, k] != PERF_FIXED)
                # stores of selected values (no branch: the loop vectorises)
                om0 = omega[i, j, k]
                om = min(om0 + span_s * r_arr, DOSE_CAP)
                omega[i, j, k] = om if ok else om0
                c0 = cem[i, j, k]
                c1 = min(c0 + span_s * r_cem, DOSE_CAP)
                cem[i, j, k] = c1 if ok else c0
                lo0 = tmin[i, j, k]
                lo = min(lo0, t)
                tmin[i, j, k] = lo if ok else lo0
                hi0 = tmax[i, j, k]
                tmax[i, j, k] = max(hi0, t) if ok else hi0
                SNAP[i, j, k] = th if ok else sn
                bad[k] = not ok
                n_bad += 1 - np.int32(ok)
            if n_bad:
                _damage_row(i, j, bad, TH, SNAP, omega, cem, tmin, tmax, perf, mat, P, span_s,
                            ln_a, ea_r, RI)  # fmt: skip


@numba.njit(parallel=True, cache=True)
def uniform_mask(mat, P):
    """Which fast path a voxel may take: 1 uniform, 2 interface, 0 none (fixed voxels).

    1: every neighbour conducts like the voxel (same liquid conductivity, no vessel
    wall); 2: another free voxel with a finite heat capacity (its faces differ; their
    liquid-phase conductances are precomputed by :func:`interface_faces`).
    """
    nz, ny, nx = mat.shape
    out = np.zeros(mat.shape, np.uint8)
    for i in numba.prange(1, nz - 1):
        for j in range(1, ny - 1):
            for k in range(1, nx - 1):
                m = mat[i, j, k]
                if P[FIXED, m] >= 0:
                    continue
                ok = 1
                for d in range(6):
                    ii, jj, kk = i, j, k
                    if d == 0:
                        ii = i - 1
                    elif d == 1:
                        ii = i + 1
                    elif d == 2:
                        jj = j - 1
                    elif d == 3:
                        jj = j + 1
                    elif d == 4:
                        kk = k - 1
                    else:
                        kk = k + 1
                    mj = mat[ii, jj, kk]
                    if mj == m:
                        continue
                    if P[K, mj] != P[K, m] or (P[FIXED, mj] >= 0 and P[H, mj] > 0):
                        ok = 0
                if P[INVC, m] > 0 and np.isfinite(P[INVC, m]):
                    out[i, j, k] = 1 if ok else 2
    return out


def _face_g(P, m, mj, d, inv_d2):
    """Liquid-phase face coefficient (W/m^3/K), as :func:`_conductance` above the liquidus."""
    ki = P[K, m]
    if mj != m and P[FIXED, mj] >= 0 and P[H, mj] > 0:
        if ki <= 0.0:
            return 0.0
        return 1.0 / (0.5 * d / ki + 1.0 / P[H, mj]) / d
    kj = P[K, mj]
    if kj == ki:
        return ki * inv_d2
    if ki + kj <= 0.0:
        return 0.0
    return 2.0 * ki * kj / (ki + kj) * inv_d2


_face_g_cpu = _jit(_face_g)


@numba.njit(parallel=True, cache=True)
def _fill_faces(mat, P, flat, dz, dy, dx, out):
    ny, nx = mat.shape[1], mat.shape[2]
    for n in numba.prange(flat.size):
        v = flat[n]
        i = v // (ny * nx)
        j = (v // nx) % ny
        k = v % nx
        m = mat[i, j, k]
        out[n, 0] = _face_g_cpu(P, m, mat[i - 1, j, k], dz, 1.0 / (dz * dz))
        out[n, 1] = _face_g_cpu(P, m, mat[i + 1, j, k], dz, 1.0 / (dz * dz))
        out[n, 2] = _face_g_cpu(P, m, mat[i, j - 1, k], dy, 1.0 / (dy * dy))
        out[n, 3] = _face_g_cpu(P, m, mat[i, j + 1, k], dy, 1.0 / (dy * dy))
        out[n, 4] = _face_g_cpu(P, m, mat[i, j, k - 1], dx, 1.0 / (dx * dx))
        out[n, 5] = _face_g_cpu(P, m, mat[i, j, k + 1], dx, 1.0 / (dx * dx))


def interface_faces(mat, P, uni, spacing_m) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The interface voxels' index and six liquid-phase face coefficients (W/m^3/K).

    Returns ``fidx`` (int32, the grid's shape: row of each interface voxel, -1 elsewhere),
    ``G`` (float64, shape (n, 6): faces towards z-1, z+1, y-1, y+1, x-1, x+1) and the
    interface voxels' material ids. Per step the coefficients are ``dt G / C``.
    """
    flat = np.flatnonzero(uni.reshape(-1) == 2)
    fidx = np.full(mat.shape, -1, np.int32)
    fidx.reshape(-1)[flat] = np.arange(flat.size, dtype=np.int32)
    g = np.zeros((flat.size, 6))
    if flat.size:
        dz, dy, dx = (float(v) for v in spacing_m)
        _fill_faces(mat, P, flat.astype(np.int64), dz, dy, dx, g)
    return fidx, g, mat.reshape(-1)[flat]


@numba.njit(parallel=True, cache=True)
def theta_from_energy(E, mat, P, const, out):
    """Theta = T(E) - 37 degC (float64 arithmetic, stored in ``out``'s dtype)."""
    ef = E.reshape(-1)
    mf = mat.reshape(-1)
    of = out.reshape(-1)
    for n in numba.prange(ef.size):
        of[n] = _t_of_e_cpu(P, mf[n], ef[n], const) - T_REF


@numba.njit(parallel=True, cache=True)
def energy_from_theta(TH, mat, P, const, E, T):
    """E = E(37 + theta) and T = 37 + theta, in float64 arithmetic, into ``E`` and ``T``."""
    tf = TH.reshape(-1)
    mf = mat.reshape(-1)
    ef = E.reshape(-1)
    of = T.reshape(-1)
    for n in numba.prange(tf.size):
        t = tf[n] + T_REF
        ef[n] = _e_of_t_cpu(P, mf[n], t, const)
        of[n] = t


@numba.njit(parallel=True, cache=True)
def perfusion_flags(mat, P, out):
    """Perfusion before the shares: PERF_FULL, or PERF_FIXED on a fixed voxel.

    The shares that have stopped (coagulated or frozen tissue, from ``omega`` and
    ``tmin``) are set next by :func:`ioplan.physics._perfusion.perfusion_share_cpu`.
    """
    mf = mat.reshape(-1)
    pf = out.reshape(-1)
    for n in numba.prange(mf.size):
        pf[n] = PERF_FIXED if P[FIXED, mf[n]] >= 0 else PERF_FULL


@numba.njit(parallel=True, cache=True)
def prepare_source(Q, mat, P, dt, out):
    """``out = dt Q / C`` (degC per step) and the power in free voxels (W/m^3 summed)."""
    qf = Q.reshape(-1)
    mf = mat.reshape(-1)
    of = out.reshape(-1)
    size = qf.size
    n_chunks = _chunks(size)
    part = np.zeros(n_chunks)  # per-chunk sums: no scalar reduction across the loop
    for c in numba.prange(n_chunks):
        total = 0.0
        for n in range(c * size // n_chunks, (c + 1) * size // n_chunks):
            m = mf[n]
            q = float(qf[n])
            if P[FIXED, m] >= 0:
                of[n] = 0.0
            else:
                of[n] = dt * q * P[INVC, m]
                total += q
        part[c] = total
    return part.sum()


@numba.njit(cache=True)
def _chunks(size):
    """How many chunks a parallel loop over ``size`` items takes (at least 1, at most 1024).

    Loops that add up a total write one partial sum per chunk and add the partials after
    the loop, instead of a scalar reduction across the parallel loop: numba's reduction
    analysis rejects some loop shapes under Python 3.12 ("unexpected cycle in lookup()").
    1024 chunks keep every core busy; each holds at least 256 items.
    """
    return max(1, min(1024, size // 256))


def warm_up(dtype: str) -> None:
    """Load (or compile) the CPU kernels for ``dtype`` on a 3 x 3 x 3 block.

    numba loads a cached kernel at its first call; the time loop calls this before it
    starts its clock, so that a run's timing is the simulation's, not the loading's.
    """
    _warm(str(np.dtype(dtype)))


@functools.cache
def _warm(dtype: str) -> None:
    P = np.zeros((N_PROPS, 256))
    P[FIXED] = -1.0
    P[INVC] = 1.0
    mat = np.zeros((3, 3, 3), np.uint8)
    th = np.zeros((3, 3, 3), dtype)
    u8 = np.zeros((3, 3, 3), np.uint8)
    coef = np.zeros(256, dtype)
    gt = np.zeros(1)
    ri = np.zeros((4, 4))
    fidx = np.full((3, 3, 3), -1, np.int32)
    c6 = np.zeros((1, 6), dtype)
    step_cpu(th, th.copy(), mat, th, u8, u8, coef, coef, fidx, c6, P, gt, 1.0, 1.0, 1.0, 1.0,
             37.0, 0, 0.0, 1.0, -1)  # fmt: skip
    _fill_faces(mat, P, np.zeros(0, np.int64), 1.0, 1.0, 1.0, np.zeros((0, 6)))
    damage_cpu(th, th.copy(), th.copy(), th.copy(), th.copy(), th.copy(), u8, mat, P, 1.0,
               1.0, 1.0, ri)  # fmt: skip
    prepare_source(np.zeros((3, 3, 3)), mat, P, 1.0, th.copy())
    prepare_source(th, mat, P, 1.0, th.copy())
    theta_from_energy(th, mat, P, 0, th.copy())
    energy_from_theta(th, mat, P, 0, th.copy(), th.copy())
    perfusion_flags(mat, P, u8.copy())
    uniform_mask(mat, P)


# -- GPU ---------------------------------------------------------------------
_dev = cuda.jit(device=True)


def _min2(a, b):
    """``min(a, b)`` as Python has it (the first when equal).

    numba's CUDA target does not compile the built-in ``min`` or ``max`` (their overloads
    take ``*args``; measured with ``cuda.compile_ptx``, numba 0.68), so the GPU kernels
    use these, also inside the shared :func:`damage_update`.
    """
    return b if b < a else a


def _max2(a, b):
    """``max(a, b)`` as Python has it (the first when equal)."""
    return b if b > a else a


_min_gpu = _dev(_min2)
_max_gpu = _dev(_max2)
_gpu_helpers = {"_k_of": _dev(_k_of), "_t_of_e": _dev(_t_of_e), "_e_of_t": _dev(_e_of_t)}
_gpu_helpers["_phi"] = _dev(_phi)
_gpu_helpers["_k_mean"] = _dev(_bind(_k_mean, _gpu_helpers))
_gpu_helpers["_conductance"] = _dev(_bind(_conductance, _gpu_helpers))
_general_gpu = _dev(_bind(general_update, _gpu_helpers))
_rate_helpers_gpu = {
    "_rate_and_integral": _dev(_rate_and_integral),
    "arrhenius_rate": _dev(arrhenius_rate),
    "cem43_rate": _dev(cem43_rate),
}
_damage_gpu_voxel = _dev(
    _bind(
        damage_update,
        {
            "mean_rates_linear": _dev(_bind(mean_rates_linear, _rate_helpers_gpu)),
            "min": _min_gpu,
            "max": _max_gpu,
        },
    )
)


#: Register cap of :func:`step_gpu`. Uncapped, the compiler gives it 72 registers a thread,
#: which lets a third of an H200's warps run at once (ncu: 32 % warps active) and the step
#: moves 0.63 TB/s (15 % of the card's 4.2 TB/s). Measured on an H200 (numba-cuda 0.30.4,
#: 256^3 liver block, 100 steps back to back, ``bench/_gpu.py: gpu_launch_variants``):
#: 0.383 ms a step uncapped, 0.253 at 32, 0.232 at 40, 0.248 at 48, 0.304 at 64, theta
#: bit-identical in every variant. 40 is the fastest measured.
STEP_GPU_MAX_REGISTERS = 40


def _capped_jit(max_registers: int):
    """``cuda.jit`` with a register cap; plain ``cuda.jit`` on numba's simulator."""
    try:
        return cuda.jit(max_registers=max_registers)
    except TypeError:  # the simulator runs Python, and its jit takes no register cap
        return cuda.jit


@_capped_jit(STEP_GPU_MAX_REGISTERS)
def step_gpu(
    TH, TH2, mat, QS, perf, uni, A, Bc, P, gt,
    dt, dz, dy, dx, tb, const, lo_th, hi_th,
):  # fmt: skip
    """One explicit step on an NVIDIA GPU (one thread per voxel; x fastest).

    The same update as :func:`step_cpu`, per thread: a voxel with ``uni == 1`` whose
    seven temperatures, and its own after the step, lie in the fast path's range
    ``[lo_th, hi_th)`` takes the fast path in the arrays' dtype (the float64 scalars
    are cast to it once per thread, so that a float32 run loads and computes float32
    only, as the CPU does), with the same weights and the same flush of
    ``|theta| < FLUSH_BELOW_C`` to 0 in float32; every other voxel (interface voxels,
    ``uni == 2``, included) takes :func:`general_update` in float64. The CUDA compiler
    may fuse a multiply and an add (one rounding instead of two), so a float32 result
    can differ from the CPU's by about one unit in the last place per step.

    Per fast-path update it loads theta at the voxel and its six neighbours (mostly
    from cache: about one value per voxel from memory), ``QS``, ``uni``, ``mat`` and
    ``perf``, and stores theta: ``3 itemsize + 3`` bytes (15 in float32) from and to
    memory.
    """
    k, j, i = cuda.grid(3)
    nz, ny, nx = TH.shape
    if 1 <= i < nz - 1 and 1 <= j < ny - 1 and 1 <= k < nx - 1:
        iz2 = 1.0 / (dz * dz)
        iy2 = 1.0 / (dy * dy)
        ix2 = 1.0 / (dx * dx)
        hi = TH.dtype.type(hi_th)
        t0 = TH[i, j, k]
        if uni[i, j, k] == 1 and t0 < hi:
            ft = TH.dtype.type
            a0 = TH[i - 1, j, k]
            a1 = TH[i + 1, j, k]
            b0 = TH[i, j - 1, k]
            b1 = TH[i, j + 1, k]
            c0 = TH[i, j, k - 1]
            c1 = TH[i, j, k + 1]
            least = _min_gpu(
                _min_gpu(_min_gpu(a0, a1), _min_gpu(b0, b1)), _min_gpu(_min_gpu(c0, c1), t0)
            )
            lo = ft(lo_th)
            if least >= lo:
                # the weights exactly as step_cpu forms them (h2 * (1 / d^2), then cast)
                h2 = _min_gpu(dz, _min_gpu(dy, dx)) ** 2
                two = ft(2.0)
                m = mat[i, j, k]
                lap = ft(h2 * iz2) * (a0 + a1 - two * t0) + ft(h2 * iy2) * (b0 + b1 - two * t0)
                lap += ft(h2 * ix2) * (c0 + c1 - two * t0)
                tn = t0 + A[m] * lap + Bc[m] * ft(perf[i, j, k]) * (ft(tb - T_REF) - t0)
                tn += QS[i, j, k]
                if TH.itemsize == 4 and abs(tn) < ft(FLUSH_BELOW_C):
                    tn = ft(0.0)  # as step_cpu: no subnormal numbers
                if lo <= tn < hi:
                    TH2[i, j, k] = tn
                    return
        _general_gpu(
            i, j, k, TH, TH2, mat, QS, perf, P, gt,
            dt, dz, dy, dx, iz2, iy2, ix2, tb, const,
        )  # fmt: skip


@cuda.jit
def damage_gpu(TH, SNAP, omega, cem, tmin, tmax, perf, mat, P, span_s, ln_a, ea_r, RI):  # fmt: skip
    """:func:`damage_update` on an NVIDIA GPU (one thread per voxel)."""
    k, j, i = cuda.grid(3)
    nz, ny, nx = TH.shape
    if 1 <= i < nz - 1 and 1 <= j < ny - 1 and 1 <= k < nx - 1:
        _damage_gpu_voxel(
            i, j, k, TH, SNAP, omega, cem, tmin, tmax, perf, mat, P, span_s, ln_a, ea_r, RI,
        )  # fmt: skip
