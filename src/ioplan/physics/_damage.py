"""Thermal damage, in one place: Arrhenius Omega and CEM43 thermal dose.

The engine's kernel (:mod:`ioplan.physics._kernel`) and the MR thermometry
(:mod:`ioplan.monitoring`) both take their rates, rate tables and exact increments from
here. The constants are read from the tissue table (``tissue/data/tissues.toml``), where
each value carries its source:

- Arrhenius: ``dOmega/dt = A exp(-Ea / (R T)) - A exp(-Ea / (R T_b))`` where positive, else
  0: the rate in excess of the rate at the body temperature ``T_b`` (37 degC,
  ``baseline_c``), T in kelvin, liver ``A`` and ``Ea`` (``[damage.arrhenius_liver]``), ``R``
  (``[constants]``, CODATA 2018). Without the excess, the constants (fitted at ablation
  temperatures) kill liver left at 37 degC within an hour (2.9e-4 1/s: Omega = 1 after 57
  min), so a long in vivo run would call the whole domain ablated (issue 19).
- CEM43: ``dCEM43/dt = R^(43 - T) / 60`` minutes per second, ``R = 0.5`` at or above
  43 degC and ``0.25`` below (``[damage.cem43]``; Sapareto & Dewey 1984,
  DOI 10.1016/0360-3016(84)90379-1).

Note for whoever edits this file: the engine's CPU kernel and the thermometry's
per-frame kernel inline these functions and are cached by numba (``cache=True``).
numba invalidates a cache only when the file of the cached function changes, and it
keeps module globals (the CEM43 constants here) as compile-time constants (numba
"Notes on caching", limitations). After changing this file or the damage tables,
delete ``src/ioplan/physics/__pycache__/*.nb*`` and
``src/ioplan/monitoring/__pycache__/*.nb*``.

References
----------
Sapareto SA, Dewey WC. Thermal dose determination in cancer therapy. Int J Radiat
Oncol Biol Phys 1984;10:787-800. DOI 10.1016/0360-3016(84)90379-1
Henriques FC. Studies of thermal injury V. Arch Pathol 1947;43:489-502.

Examples
--------
Ten seconds at a constant 60 degC: CEM43 = 10 s x 0.5^(43 - 60) / 60 min/s.

>>> from ioplan.physics import cem43_increment
>>> float(cem43_increment(60.0, 60.0, 10.0))  # doctest: +ELLIPSIS
21845.33...
"""

from __future__ import annotations

import math
from functools import cache

import numba
import numpy as np

from ioplan.tissue import arrhenius_parameters, cem43_parameters, constants

__all__ = [
    "ARRHENIUS_A_PER_S",
    "ARRHENIUS_BASELINE_C",
    "ARRHENIUS_EA_J_MOL",
    "CEM43_BREAKPOINT_C",
    "CEM43_NECROSIS_MIN",
    "GAS_CONSTANT_J_MOL_K",
    "KELVIN",
    "MIDPOINT_SPAN_C",
    "RATE_STEP_C",
    "RATE_T0_C",
    "arrhenius_increment",
    "arrhenius_log_constants",
    "arrhenius_rate",
    "cem43_increment",
    "cem43_rate",
    "dose_increment_linear",
    "liver_rate_table",
    "mean_rates_linear",
    "rate_integral_table",
    "rate_table",
]

_ARR = arrhenius_parameters()
_CEM = cem43_parameters()
#: Arrhenius frequency factor A of liver (1/s), from the tissue table.
ARRHENIUS_A_PER_S: float = _ARR["frequency_factor_1_per_s"]
#: Arrhenius activation energy Ea of liver (J/mol), from the tissue table.
ARRHENIUS_EA_J_MOL: float = _ARR["activation_energy_j_mol"]
#: Damage accrues above this temperature (degC), at the rate in excess of the rate here:
#: normal body temperature (tissue table ``baseline_c``).
ARRHENIUS_BASELINE_C: float = _ARR["baseline_c"]
#: Molar gas constant (J/mol/K), CODATA 2018.
GAS_CONSTANT_J_MOL_K: float = constants()["gas_constant_j_mol_k"]
#: CEM43 necrosis threshold (min), from the tissue table.
CEM43_NECROSIS_MIN: float = _CEM["necrosis_threshold_min"]
#: The temperature at which the CEM43 base R changes (degC).
CEM43_BREAKPOINT_C = 43.0
KELVIN = 273.15
# ln R above and below the breakpoint; CEM43 rate = exp((43 - T) ln R) / 60
LN_R_ABOVE = math.log(_CEM["r_above_43"])
LN_R_BELOW = math.log(_CEM["r_below_43"])

# Damage-rate table: Arrhenius and CEM43 rates tabulated every RATE_STEP_C from RATE_T0_C
# and interpolated linearly. The relative interpolation error is at most
# (h * dln(rate)/dT)^2 / 8: with h = 0.02 degC and dln(rate)/dT <= ln 4 (CEM43 below
# 43 degC; Arrhenius liver ~0.3/degC) that is < 1e-4 relative, far below the spread
# of the published damage constants. Outside the table the exact exponentials are used.
RATE_T0_C = -60.0
RATE_STEP_C = 0.02
RATE_SPAN_C = 220.0
# Below this change of temperature over an interval (degC), mean_rates_linear takes the
# rate at the midpoint (relative error (ln 4 x 0.02)^2 / 24 = 3.2e-5 at most).
MIDPOINT_SPAN_C = 0.02

# 3-point Gauss-Legendre nodes and weights on [-1, 1] (the per-frame thermometry kernel)
_GL3_X, _GL3_W = np.polynomial.legendre.leggauss(3)
# cap of the Arrhenius exponent (rate e^50 /s: Omega passes 1 in 2e-22 s; no overflow)
_LN_RATE_CAP = 50.0


def arrhenius_log_constants(
    a_per_s: float = ARRHENIUS_A_PER_S, ea_j_mol: float = ARRHENIUS_EA_J_MOL
) -> tuple[float, float]:
    """``(ln A, Ea / R)``: the Arrhenius constants as the kernels use them.

    Parameters
    ----------
    a_per_s : float
        Frequency factor A (1/s); default liver, from the tissue table.
    ea_j_mol : float
        Activation energy Ea (J/mol); default liver, from the tissue table.

    Returns
    -------
    ln_a : float
        Natural logarithm of A (A in 1/s).
    ea_r : float
        Ea / R in kelvin.
    """
    return math.log(a_per_s), ea_j_mol / GAS_CONSTANT_J_MOL_K


def arrhenius_rate(t, ln_a, ea_r):
    """Arrhenius damage rate (1/s) at temperature ``t`` (degC), in excess of body temperature's.

    ``exp(ln_a - ea_r / T_K) - exp(ln_a - ea_r / T_b)`` where positive, else 0, with
    ``T_b`` = :data:`ARRHENIUS_BASELINE_C` in kelvin. Scalar, plain Python: the engine
    compiles it for CPU and GPU.
    """
    base = math.exp(ln_a - ea_r / (ARRHENIUS_BASELINE_C + KELVIN))
    r = math.exp(ln_a - ea_r / (t + KELVIN)) - base
    return r if r > 0.0 else 0.0


def cem43_rate(t):
    """CEM43 rate (minutes per second) at temperature ``t`` (degC): ``R^(43 - t) / 60``.

    Scalar, plain Python: the engine compiles it for CPU and GPU.
    """
    if t >= CEM43_BREAKPOINT_C:
        return math.exp((CEM43_BREAKPOINT_C - t) * LN_R_ABOVE) / 60.0
    return math.exp((CEM43_BREAKPOINT_C - t) * LN_R_BELOW) / 60.0


def _rates_at_nodes(ln_a: float, ea_r: float) -> tuple[np.ndarray, np.ndarray]:
    """Arrhenius (1/s) and CEM43 (min/s) rates at the table's nodes."""
    t = RATE_T0_C + RATE_STEP_C * np.arange(round(RATE_SPAN_C / RATE_STEP_C) + 2)
    base = math.exp(ln_a - ea_r / (ARRHENIUS_BASELINE_C + KELVIN))
    arr = np.maximum(np.exp(ln_a - ea_r / (t + KELVIN)) - base, 0.0)
    cem = np.where(
        t >= CEM43_BREAKPOINT_C,
        np.exp((CEM43_BREAKPOINT_C - t) * LN_R_ABOVE),
        np.exp((CEM43_BREAKPOINT_C - t) * LN_R_BELOW),
    )
    cem = cem / 60.0
    return arr, cem


def rate_table(ln_a: float, ea_r: float) -> np.ndarray:
    """Tabulated damage rates, for linear interpolation in the kernels.

    Parameters
    ----------
    ln_a, ea_r : float
        Arrhenius constants, as :func:`arrhenius_log_constants` returns them.

    Returns
    -------
    ndarray of float64, shape (n, 4)
        Row ``i`` holds, at ``RATE_T0_C + i * RATE_STEP_C`` degC: the Arrhenius rate
        (1/s), its increment to the next row, the CEM43 rate (min/s) and its increment.
    """
    arr, cem = _rates_at_nodes(ln_a, ea_r)
    tab = np.stack([arr[:-1], np.diff(arr), cem[:-1], np.diff(cem)], axis=1)
    return np.ascontiguousarray(tab, dtype=np.float64)


def rate_integral_table(ln_a: float, ea_r: float) -> np.ndarray:
    """Rates and their integrals over temperature, for exact increments on a linear path.

    For a temperature linear in time from ``a`` to ``b`` over ``dt``, the dose is
    ``dt / (b - a) * (G(b) - G(a))`` with ``G(T)`` the integral of the rate over
    temperature: two table look-ups, whatever the length of the interval. ``G`` is the
    exact integral of the linearly interpolated rate (the same interpolant as
    :func:`rate_table`), so that the increment and the rate agree.

    Parameters
    ----------
    ln_a, ea_r : float
        Arrhenius constants, as :func:`arrhenius_log_constants` returns them.

    Returns
    -------
    ndarray of float64, shape (n, 4)
        Row ``i`` holds, at ``RATE_T0_C + i * RATE_STEP_C`` degC: the Arrhenius rate
        (1/s), its integral from ``RATE_T0_C`` (degC/s), the CEM43 rate (min/s) and its
        integral (degC min/s).
    """
    arr, cem = _rates_at_nodes(ln_a, ea_r)

    def integral(r):
        return np.concatenate([[0.0], np.cumsum(0.5 * RATE_STEP_C * (r[:-1] + r[1:]))])

    tab = np.stack([arr, integral(arr), cem, integral(cem)], axis=1)
    return np.ascontiguousarray(tab, dtype=np.float64)


def _rate_and_integral(tab, col, x):
    """Rate and its integral from the table at row coordinate ``x`` (in range)."""
    row = int(x)
    f = x - row
    r0 = tab[row, col]
    dr = tab[row + 1, col] - r0
    return r0 + f * dr, tab[row, col + 1] + RATE_STEP_C * f * (r0 + 0.5 * f * dr)


def mean_rates_linear(a, b, ln_a, ea_r, tab):
    """Mean Arrhenius (1/s) and CEM43 (min/s) rates over a temperature linear from a to b.

    Scalar, plain Python (the engine compiles it for CPU and GPU). Inside the table
    (:func:`rate_integral_table`) the mean is ``(G(b) - G(a)) / (b - a)``, exact for the
    interpolated rate. For ``|b - a| < MIDPOINT_SPAN_C`` on one side of 43 degC (the
    CEM43 rate has a kink there) it is the rate at the midpoint (one look-up, no
    cancellation), whose relative error for an exponential rate
    ``e^(kappa T)`` is ``(kappa (b - a))^2 / 24``: at most 3.2e-5 with kappa <= ln 4
    (CEM43 below 43 degC; Arrhenius liver ~0.3 /degC). Outside the table (below -60 or
    above 160 degC): Simpson's rule on the exact rates.
    """
    n = tab.shape[0] - 1
    inv = 1.0 / RATE_STEP_C
    d = b - a
    if abs(d) < MIDPOINT_SPAN_C and (a - CEM43_BREAKPOINT_C) * (b - CEM43_BREAKPOINT_C) >= 0.0:
        xm = (0.5 * (a + b) - RATE_T0_C) * inv
        if xm >= 0.0 and xm < n:
            row = int(xm)
            f = xm - row
            r_arr = tab[row, 0] + f * (tab[row + 1, 0] - tab[row, 0])
            r_cem = tab[row, 2] + f * (tab[row + 1, 2] - tab[row, 2])
            return r_arr, r_cem
    xa = (a - RATE_T0_C) * inv
    xb = (b - RATE_T0_C) * inv
    if xa >= 0.0 and xb >= 0.0 and xa < n and xb < n:
        inv_d = 1.0 / d
        ga = _rate_and_integral(tab, 0, xa)[1]
        gb = _rate_and_integral(tab, 0, xb)[1]
        ca = _rate_and_integral(tab, 2, xa)[1]
        cb = _rate_and_integral(tab, 2, xb)[1]
        return (gb - ga) * inv_d, (cb - ca) * inv_d
    tm = 0.5 * (a + b)
    r_arr = arrhenius_rate(a, ln_a, ea_r) + 4.0 * arrhenius_rate(tm, ln_a, ea_r)
    r_cem = cem43_rate(a) + 4.0 * cem43_rate(tm) + cem43_rate(b)
    return (r_arr + arrhenius_rate(b, ln_a, ea_r)) / 6.0, r_cem / 6.0


@cache
def liver_rate_table() -> np.ndarray:
    """:func:`rate_table` for liver's Arrhenius constants (computed once)."""
    return rate_table(*arrhenius_log_constants())


def cem43_increment(t0, t1, dt_s: float) -> np.ndarray:
    """CEM43 minutes accrued over ``dt_s`` for a temperature linear from ``t0`` to ``t1``.

    Exact: the integral of ``R^(43 - T(t)) / 60`` over the line, split at 43 degC.

    Parameters
    ----------
    t0, t1 : array_like
        Temperature (degC) at the start and the end of the interval; broadcast together.
    dt_s : float
        Duration of the interval (s).

    Returns
    -------
    ndarray
        Thermal dose (CEM43 minutes), the broadcast shape of ``t0`` and ``t1``.

    Examples
    --------
    From 43 to 47 degC in 60 s: ``60 (2^4 - 1) / (4 ln 2) / 60`` minutes.

    >>> round(float(cem43_increment(43.0, 47.0, 60.0)), 6)
    5.410106
    """
    t0 = np.asarray(t0, float)
    t1 = np.asarray(t1, float)

    def piece(a, b, ln_r, length):
        # integral over a duration ``length`` of R^(43 - T) with T linear from a to b
        k = -ln_r  # R^(43-T) = exp(k (T - 43))
        d = b - a
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            exact = length * (np.exp(k * (b - 43.0)) - np.exp(k * (a - 43.0))) / (k * d)
            flat = length * np.exp(k * (a - 43.0))
        return np.where(np.abs(d) < 1e-9, flat, exact)

    lo, hi = np.minimum(t0, t1), np.maximum(t0, t1)
    span = np.where(hi > lo, hi - lo, 1.0)
    # the part of the interval spent above 43 degC (the line is monotonic)
    frac_above = np.clip((hi - 43.0) / span, 0.0, 1.0)
    frac_above = np.where(hi > lo, frac_above, (lo >= 43.0).astype(float))
    above = piece(np.maximum(lo, 43.0), np.maximum(hi, 43.0), LN_R_ABOVE, dt_s * frac_above)
    below = piece(np.minimum(lo, 43.0), np.minimum(hi, 43.0), LN_R_BELOW, dt_s * (1 - frac_above))
    return (above + below) / 60.0


def arrhenius_increment(t0, t1, dt_s: float) -> np.ndarray:
    """Arrhenius damage accrued over ``dt_s`` for a temperature linear from ``t0`` to ``t1``.

    5-point Gauss-Legendre on the line (the rate spans decades over a wide line; for
    the thermometry's frame intervals the error is far below the constants' spread);
    liver constants from the tissue table.

    Parameters
    ----------
    t0, t1 : array_like
        Temperature (degC) at the start and the end; broadcast together.
    dt_s : float
        Duration (s).

    Returns
    -------
    ndarray
        Omega accrued (dimensionless), the broadcast shape of ``t0`` and ``t1``.

    Examples
    --------
    A constant temperature: ``(A exp(-Ea / (R T)) - A exp(-Ea / (R T_b))) dt``.

    >>> import math
    >>> def k(t_k):
    ...     return ARRHENIUS_A_PER_S * math.exp(-ARRHENIUS_EA_J_MOL / GAS_CONSTANT_J_MOL_K / t_k)
    >>> om = float(arrhenius_increment(60.0, 60.0, 10.0))
    >>> abs(om / ((k(333.15) - k(310.15)) * 10.0) - 1) < 1e-12
    True
    """
    ln_a, ea_r = arrhenius_log_constants()
    base = math.exp(ln_a - ea_r / (ARRHENIUS_BASELINE_C + KELVIN))
    x, w = np.polynomial.legendre.leggauss(5)
    t0 = np.asarray(t0, float)
    t1 = np.asarray(t1, float)
    out = np.zeros(np.broadcast(t0, t1).shape)
    for xi, wi in zip(x, w, strict=True):
        t = t0 + (t1 - t0) * 0.5 * (xi + 1.0)
        rate = np.exp(np.minimum(ln_a - ea_r / (t + KELVIN), _LN_RATE_CAP)) - base
        out += 0.5 * wi * np.maximum(rate, 0.0)
    return out * dt_s


@numba.njit(inline="always", cache=True)
def dose_increment_linear(a, t, dt_s, ln_a, ea_r, table):
    """CEM43 (min) and Arrhenius increments for a temperature linear from ``a`` to ``t``.

    Compiled scalar version for per-voxel kernels. CEM43: ``R^(43 - T)`` integrated
    exactly on the line, split at 43 degC (as :func:`cem43_increment`). Arrhenius:
    3-point Gauss-Legendre on the line, the rate at the nodes interpolated in
    ``table`` (:func:`rate_table`, relative error < 1e-4), exact outside it.

    Parameters
    ----------
    a, t : float
        Temperature (degC) at the start and at the end of the interval.
    dt_s : float
        Duration (s).
    ln_a, ea_r : float
        Arrhenius constants (:func:`arrhenius_log_constants`).
    table : ndarray, shape (n, 4)
        :func:`rate_table` of ``ln_a`` and ``ea_r``.

    Returns
    -------
    cem43_min, omega : float
    """
    lo = min(a, t)
    hi = max(a, t)
    inc = 0.0
    if hi - lo < 1e-9:
        r = LN_R_ABOVE if lo >= CEM43_BREAKPOINT_C else LN_R_BELOW
        inc = dt_s * math.exp(-r * (lo - CEM43_BREAKPOINT_C))
    else:
        for seg in range(2):
            s_lo = max(lo, CEM43_BREAKPOINT_C) if seg == 0 else lo
            s_hi = hi if seg == 0 else min(hi, CEM43_BREAKPOINT_C)
            if s_hi <= s_lo:
                continue
            k = -(LN_R_ABOVE if seg == 0 else LN_R_BELOW)
            length = dt_s * (s_hi - s_lo) / (hi - lo)
            inc += (
                length
                * (
                    math.exp(k * (s_hi - CEM43_BREAKPOINT_C))
                    - math.exp(k * (s_lo - CEM43_BREAKPOINT_C))
                )
                / (k * (s_hi - s_lo))
            )
    acc = 0.0
    for j in range(_GL3_X.size):
        tj = a + (t - a) * 0.5 * (_GL3_X[j] + 1.0)
        x = (tj - RATE_T0_C) / RATE_STEP_C
        if x >= 0.0 and x < table.shape[0]:
            row = int(x)
            acc += 0.5 * _GL3_W[j] * (table[row, 0] + (x - row) * table[row, 1])
        else:
            r = math.exp(min(ln_a - ea_r / (tj + KELVIN), _LN_RATE_CAP)) - math.exp(
                ln_a - ea_r / (ARRHENIUS_BASELINE_C + KELVIN)
            )
            acc += 0.5 * _GL3_W[j] * (r if r > 0.0 else 0.0)
    return inc / 60.0, acc * dt_s
