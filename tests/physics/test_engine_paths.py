"""The fast engine's separate arithmetic paths, each against an independent reference.

The bioheat engine (issue 18, :mod:`ioplan.physics._kernel`) computes the same physics
in several ways: a vectorised float32 liquid fast path and a float64 enthalpy update,
damage every ``DAMAGE_INTERVAL_S`` from a rate-integral table, the microwave pattern
from two interpolation tables, subnormal numbers flushed to zero. Each test below sets
one of these against something computed another way:

- the fast path against the general enthalpy update forced everywhere (same problem);
- the kernel's E(T) and T(E) against :meth:`MaterialTable.enthalpy` (numpy);
- ``mean_rates_linear`` against adaptive quadrature (``scipy.integrate.quad``);
- damage at 1-step, 10 s and 60 s intervals against closed forms on a linear ramp;
- the float32 flush against a float64 run, and the energy balance;
- the microwave pattern against a plain numpy evaluation of its formula;
- the source update interval against a count of calls.

Tolerances are derived in each test from the tables' interpolation bounds and from
float rounding; no expected value is taken from the code under test.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import integrate as sp_integrate

from ioplan.anatomy import Label
from ioplan.devices import applicator
from ioplan.errors import InputError
from ioplan.imaging import Grid
from ioplan.physics import (
    Placement,
    SimulationConfig,
    Source,
    ThermalProblem,
    attenuation_per_m,
    init_state,
    integrate,
    microwave_source,
    simulate,
    stable_time_step,
    tissue_material_table,
)
from ioplan.physics._damage import (
    MIDPOINT_SPAN_C,
    RATE_SPAN_C,
    RATE_STEP_C,
    RATE_T0_C,
    arrhenius_log_constants,
    arrhenius_rate,
    cem43_rate,
    mean_rates_linear,
    rate_integral_table,
)
from ioplan.physics._heating import MW_UPDATE_S
from ioplan.physics._kernel import FLUSH_BELOW_C, T_REF, energy_from_theta, theta_from_energy
from ioplan.physics._materials import tissue_dielectric
from ioplan.physics._solver import SOURCE_UPDATE_S, _Runner
from ioplan.tissue import dielectric_ji_brace_2450

LIVER, TUMOR, FAT = int(Label.LIVER), int(Label.TUMOR), int(Label.FAT)
EPS32 = float(np.finfo(np.float32).eps)  # 1.19e-7
EPS64 = float(np.finfo(np.float64).eps)  # 2.2e-16
TINY32 = float(np.finfo(np.float32).tiny)  # 1.18e-38, the smallest normal float32
MW = applicator("generic-mw-2450")


# -- helpers ---------------------------------------------------------------------------
def _run_runner(problem, dt, n, source, *, damage_interval_s=10.0, force_general=False):
    """Run ``n`` steps through ``_Runner``; returns (E, T, omega, cem, tmin, tmax), runner."""
    runner = _Runner(problem, "cpu", damage_interval_s=damage_interval_s)
    if force_general:
        # an empty theta range for the fast path(s): every free voxel takes the general
        # float64 enthalpy update (and is counted in ``general_updates``)
        runner.lo_th, runner.hi_th = np.inf, -np.inf
    runner.start(init_state(problem).arrays())
    runner.run(dt, n, source, None)
    return runner.finish(), runner


def _interior(a):
    return a[1:-1, 1:-1, 1:-1]


def _heterogeneous_problem(dtype):
    """Liver with a tumour sphere (k 0.50 vs 0.52) and a fat slab (k 0.21), perfused."""
    n = 20
    g = Grid((n, n, n), (1.5, 1.5, 1.5))
    mat = np.full(g.shape, LIVER, np.uint8)
    zz, yy, xx = np.indices(g.shape)
    r2 = (zz - 9.5) ** 2 + (yy - 9.5) ** 2 + (xx - 9.0) ** 2
    mat[r2 <= 16.0] = TUMOR
    mat[:, :, 14:] = FAT
    problem = ThermalProblem(g, mat, tissue_material_table(), dtype=dtype)
    # a Gaussian source centred in the tumour, about 10 degC rise in 60 s at the peak:
    # well inside the liquid range, Omega < 1 (perfusion never stops: see the test)
    q = 1.3e6 * np.exp(-r2 / (2 * 2.5**2))
    return problem, q


# -- 1. fast path == general path ------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_path_equals_general_enthalpy_update(dtype):
    """The same heterogeneous problem, fast path allowed vs the general update everywhere.

    The forced run empties the fast paths' theta range (``lo_th > hi_th``), so every
    free voxel takes :func:`general_update`. The two are independent arithmetic: the
    fast path adds ``a lap(theta) + b (theta_b - theta) + q`` in the state's dtype
    (interface voxels, where the engine has that path, the same with precomputed face
    conductances); the general path rebuilds E(T) in float64, adds the harmonic-mean
    face fluxes, Pennes term and source, and inverts T(E). In exact
    arithmetic they agree in the liquid range (E = C theta). Rounding per step: the fast
    path's ~8 operations each carry at most half an ulp of the largest term (|theta| <=
    theta_max), the general path rounds once when it stores; diffusion is a contraction
    (weights >= 0, summing to <= 1), so the per-step errors add at most linearly:
    |dT| <= n_steps x 10 eps theta_max (eps of the dtype; for float64 the general path
    works with T = theta + 37, so theta_max + 37 there). Damage: its rates change by
    dln(rate)/dT <= ln 4 = 1.39 /degC (CEM43 below 43 degC; ln 2 above; Arrhenius liver
    at 37-60 degC Ea/(R T^2) = 0.30) times dT, plus the float32 accumulation of a few
    additions: relative tolerance 1.4 x dT + 10 eps.
    """
    problem, q = _heterogeneous_problem(dtype)
    dt = stable_time_step(problem, min_temperature_c=37.0)
    n = round(60.0 / dt)
    (_, t_fast, om_fast, cem_fast, _, tmax_fast), r_fast = _run_runner(problem, dt, n, q)
    (_, t_gen, om_gen, cem_gen, _, tmax_gen), r_gen = _run_runner(
        problem, dt, n, q, force_general=True
    )
    interior = int(np.prod([s - 2 for s in problem.grid.shape]))
    # the comparison means something: one run took the fast path for most voxels, the
    # other the general update for every voxel update
    assert r_gen.general_updates == n * interior
    assert r_fast.general_updates < 0.5 * n * interior
    t_fast, t_gen = (np.asarray(a, np.float64) for a in (t_fast, t_gen))
    theta_max = float(np.max(t_gen)) - T_REF
    assert 5.0 < theta_max < 20.0  # liquid, heated, Omega < 1 (no perfusion shutdown)
    assert float(np.max(om_gen)) < 0.5
    eps = EPS32 if dtype == "float32" else EPS64
    scale = theta_max if dtype == "float32" else theta_max + T_REF
    tol_t = n * 10 * eps * scale
    assert np.max(np.abs(t_fast - t_gen)) <= tol_t
    assert np.max(np.abs(np.asarray(tmax_fast, float) - np.asarray(tmax_gen, float))) <= tol_t
    rel = 1.4 * tol_t + 10 * eps
    # Omega counts the Arrhenius rate in excess of the rate at 37 degC (k_b); every voxel
    # here stays >= 37 degC, so Omega + k_b t is the raw rate's integral, whose relative
    # error is the bound above: the excess's absolute error is that of the raw integral.
    raw = n * dt * math.exp(_LN_A - _EA_R / (37.0 + 273.15))
    for fast, gen, add in ((om_fast, om_gen, raw), (cem_fast, cem_gen, 0.0)):
        fast, gen = np.asarray(fast, float), np.asarray(gen, float)
        assert np.all(np.abs(fast - gen) <= rel * (np.abs(gen) + add) + 1e-300)


# -- 2. enthalpy round trip ------------------------------------------------------------
def _test_temperatures(tab, m):
    """Temperatures spanning frozen, mushy, liquid, boiling, dry, with the breakpoints."""
    bps = [tab.solidus_c[m], tab.liquidus_c[m], tab.vapor_start_c[m], tab.vapor_end_c[m]]
    near = [b + d for b in bps for d in (-1e-6, 0.0, 1e-6)]
    grid = np.linspace(-150.0, 300.0, 4501)
    return np.unique(np.concatenate([grid, near, np.linspace(99.0, 100.0, 101)]))


def test_enthalpy_round_trip_for_every_free_material():
    """E(T) of the kernel vs :meth:`MaterialTable.enthalpy`, and T(E(T)) == T.

    Both E(T) are float64 (the kernel's packed breakpoints vs the table's numpy
    ``where`` chain): they agree to rounding, |E| <= ~2e9 J/m^3 (boiling latent heat
    included), so 1e-12 relative or 1e-3 J/m^3 absolute (1e-3 J/m^3 is 3e-10 degC).
    The inverse T(E) rounds E / C once: |dT| <= a few ulp of |E| / C_min, i.e. < 1e-9
    degC even across the boiling plateau (apparent C ~ 2e9 J/m^3/K makes it smaller
    there). T(E) must be strictly increasing (the state carries T only because of it),
    and E(T) continuous at the breakpoints (over 2e-6 degC it rises by at most 2e-6 x
    the larger of the heat capacities, sensible or apparent, on the two sides).
    """
    tab = tissue_material_table()
    packed = ThermalProblem(
        Grid((3, 3, 3), (1.0, 1.0, 1.0)), np.zeros((3, 3, 3), np.uint8), tab
    ).packed
    free = [m for m in range(256) if tab.names[m] and tab.fixed_group[m] < 0]
    assert LIVER in free and TUMOR in free and FAT in free
    for m in free:
        t = _test_temperatures(tab, m)
        mat = np.full(t.shape, m, np.uint8)
        e = np.empty_like(t)
        t_out = np.empty_like(t)
        energy_from_theta(t - T_REF, mat, packed, 0, e, t_out)
        ref = tab.enthalpy(mat, t)
        assert np.all(np.abs(e - ref) <= 1e-12 * np.abs(ref) + 1e-3), tab.names[m]
        back = np.empty_like(t)
        theta_from_energy(e, mat, packed, 0, back)
        assert np.max(np.abs(back + T_REF - t)) < 1e-9, tab.names[m]
        # strictly increasing both ways
        assert np.all(np.diff(e) > 0), tab.names[m]
        e_fine = np.linspace(e[0], e[-1], 20001)
        t_fine = np.empty_like(e_fine)
        theta_from_energy(e_fine, np.full(e_fine.shape, m, np.uint8), packed, 0, t_fine)
        assert np.all(np.diff(t_fine) > 0), tab.names[m]
        # continuity at the breakpoints: over b +- 1e-6 degC, E rises by at most 2e-6 x
        # the larger heat capacity (sensible or apparent) on either side
        c = tab.c_vol_j_m3_k[m]
        c_fus = tab.latent_j_m3[m] / (tab.liquidus_c[m] - tab.solidus_c[m])
        c_fus += tab.c_vol_mushy_j_m3_k[m]
        c_vap = float(tab.vapor_breakpoints()[2][m])
        sides = {
            tab.solidus_c[m]: max(tab.c_vol_frozen_j_m3_k[m], c_fus),
            tab.liquidus_c[m]: max(c_fus, c),
            tab.vapor_start_c[m]: max(c, c_vap),
            tab.vapor_end_c[m]: max(c_vap, c),
        }
        for b, c_side in sides.items():
            lo_hi = np.array([b - 1e-6, b + 1e-6])
            e2, t2 = np.empty(2), np.empty(2)
            energy_from_theta(lo_hi - T_REF, np.full(2, m, np.uint8), packed, 0, e2, t2)
            assert 0 < e2[1] - e2[0] <= c_side * 2e-6 * (1 + 1e-6), (tab.names[m], b)


# -- 3. mean rates over a linear temperature -------------------------------------------
_LN_A, _EA_R = arrhenius_log_constants()
_RI = rate_integral_table(_LN_A, _EA_R)
_T_HI = RATE_T0_C + RATE_SPAN_C  # 160 degC, the table's top


def _quad_mean(f, a, b):
    lo, hi = min(a, b), max(a, b)
    # the kinks: CEM43's base changes at 43 degC, the Arrhenius excess starts at 37 degC
    pts = [p for p in (37.0, 43.0) if lo < p < hi] or None
    val, _ = sp_integrate.quad(f, lo, hi, points=pts, epsrel=1e-12, epsabs=0.0, limit=200)
    return val / (hi - lo)


def _raw_rate(t):
    """The Arrhenius rate before the body-temperature rate is taken off (1/s)."""
    return math.exp(_LN_A - _EA_R / (t + 273.15))


def _arrhenius_tolerance(a, b, rel):
    """Absolute bound on the mean excess Arrhenius rate's error over a -> b.

    The excess is the raw rate less a constant, so away from 37 degC its interpolation
    error is the raw rate's: ``rel`` of the raw mean. In the one table interval across
    37 degC the clamp at 0 adds at most the excess at the interval's end, k_b kappa h
    (kappa = Ea / (R T^2) at 37 degC), weighted by that interval's share of the span.
    """
    lo, hi = min(a, b), max(a, b)
    raw = _quad_mean(_raw_rate, a, b) if hi - lo > 1e-6 else _raw_rate(0.5 * (a + b))
    kink = 0.0
    if lo - RATE_STEP_C < 37.0 < hi + RATE_STEP_C:
        kappa = _EA_R / 310.15**2
        kink = _raw_rate(37.0) * kappa * RATE_STEP_C * min(1.0, RATE_STEP_C / max(hi - lo, 1e-12))
    return rel * raw + kink


def _pairs():
    rng = np.random.default_rng(18)
    out = []
    # random pairs inside the table, random spans from 1e-9 to 100 degC
    for _ in range(150):
        span = 10.0 ** rng.uniform(-9, 2)
        a = rng.uniform(RATE_T0_C + 0.1, _T_HI - span - 0.1)
        out.append((a, a + span) if rng.random() < 0.5 else (a + span, a))
    # straddling 43 degC, and at the edges of the midpoint branch
    out += [
        (42.0, 44.0),
        (42.98, 43.02),
        (42.999, 43.001),
        (30.0, 90.0),
        (43.0, 50.0),
        (36.0, 43.0),
    ]
    out += [(60.0, 60.0 + 0.999 * MIDPOINT_SPAN_C), (60.0, 60.0 + 1.001 * MIDPOINT_SPAN_C)]
    out += [(-59.9, -59.5), (159.5, 159.9)]
    return out


def test_mean_rates_linear_against_quadrature_inside_the_table():
    """Mean Arrhenius and CEM43 rates over a line a -> b vs ``quad`` of the exact rates.

    Inside the table the mean is (G(b) - G(a)) / (b - a), G the exact integral of the
    linearly interpolated rate; the rate is positive, so the mean's relative error is at
    most the pointwise interpolation error, (h kappa)^2 / 8 with h = RATE_STEP_C and
    kappa = dln(rate)/dT <= ln 4 (CEM43 below 43 degC; Arrhenius liver <= 0.68 /degC at
    -60 degC): 9.6e-5. Below MIDPOINT_SPAN_C the rate at the midpoint adds
    (kappa d)^2 / 24 <= 3.2e-5. Cancellation in G(b) - G(a) is ~1e-13 here. Bound 1.3e-4.
    """
    bound = (RATE_STEP_C * math.log(4.0)) ** 2 / 8 + (math.log(4.0) * MIDPOINT_SPAN_C) ** 2 / 24
    assert bound < 1.3e-4
    for a, b in _pairs():
        r_arr, r_cem = mean_rates_linear(a, b, _LN_A, _EA_R, _RI)
        if abs(b - a) < 1e-6:
            ref_arr = arrhenius_rate(0.5 * (a + b), _LN_A, _EA_R)
            ref_cem = cem43_rate(0.5 * (a + b))  # quad is meaningless on a 1e-9 span
            slack = 1e-6 * math.log(4.0)  # the rate's change over the span
        else:
            ref_arr = _quad_mean(lambda t: arrhenius_rate(t, _LN_A, _EA_R), a, b)
            ref_cem = _quad_mean(cem43_rate, a, b)
            slack = 0.0
        assert abs(r_arr - ref_arr) <= _arrhenius_tolerance(a, b, 1.3e-4 + slack), (a, b)
        assert abs(r_cem / ref_cem - 1) <= 1.3e-4 + slack, (a, b)


@pytest.mark.parametrize("a, b", [(42.999, 43.001), (42.99, 43.0099), (43.0099, 42.99)])
def test_mean_rates_linear_midpoint_straddling_43(a, b):
    """A short span across 43 degC, where the CEM43 base changes from 1/4 to 1/2.

    The rate is continuous there but its slope jumps from ln 4 to ln 2 /degC: a
    midpoint rule's error would be first order, (ln 4 - ln 2) |b - a| / 8 relative
    (1.7e-4 at |b - a| = 0.002, 1.7e-3 at 0.0199; measured on the first version of the
    engine, fixed since: such spans take the table's integrals). Reference: the closed
    form of the CEM43 integral on the line (Sapareto & Dewey 1984), split at 43 degC.
    Bound: the table's 9.6e-5 (the midpoint's 3.2e-5 included), 1.3e-4.
    """
    lo, hi = min(a, b), max(a, b)
    ref = _cem43_linear_exact(lo, hi, 1.0)  # minutes in 1 s: the mean rate (min/s)
    _, r_cem = mean_rates_linear(a, b, _LN_A, _EA_R, _RI)
    assert abs(r_cem / ref - 1) <= 1.3e-4


@pytest.mark.parametrize("a, b", [(-100.0, -99.0), (-70.0, -69.5), (165.0, 166.0),
                                  (200.0, 200.5), (299.0, 300.0)])  # fmt: skip
def test_mean_rates_linear_outside_the_table_short_spans(a, b):
    """Outside the table (below -60, above 160 degC): Simpson's rule on the exact rates.

    Simpson's relative error for an exponential e^(kappa T) over a span d is about
    (kappa d)^4 / 2880; with kappa <= 1.05 /degC (Arrhenius at -100 degC: Ea/(R T^2);
    CEM43 ln 4 = 1.39 below 43) and d <= 1 degC that is < 1.3e-3. Bound 1.5e-3.
    (Over spans of many degrees outside the table, or across its edge, Simpson's error
    grows as (kappa d)^4 and is not bounded by these figures; there, above 160 degC,
    Omega and CEM43 are already many orders of magnitude past their thresholds.)
    """
    kappa = max(_EA_R / (min(a, b) + 273.15) ** 2, math.log(4.0))
    bound = (kappa * abs(b - a)) ** 4 / 2880
    assert bound < 1.5e-3
    r_arr, r_cem = mean_rates_linear(a, b, _LN_A, _EA_R, _RI)
    ref_arr = _quad_mean(lambda t: arrhenius_rate(t, _LN_A, _EA_R), a, b)
    ref_cem = _quad_mean(cem43_rate, a, b)
    if max(a, b) < 37.0:  # below body temperature no damage accrues: exactly 0
        assert r_arr == 0.0 and ref_arr == 0.0
    else:
        assert abs(r_arr / ref_arr - 1) <= 1.5e-3
    assert abs(r_cem / ref_cem - 1) <= 1.5e-3


# -- 4. damage at intervals on a linear ramp -------------------------------------------
def _cem43_linear_exact(t0: float, t1: float, duration_s: float) -> float:
    """Closed form of the CEM43 minutes of a temperature linear from t0 to t1 (t0 < t1)."""
    lo_end = min(t1, 43.0)
    hi_start = max(t0, 43.0)
    below = (4.0 ** (lo_end - 43.0) - 4.0 ** (t0 - 43.0)) / math.log(4.0) if t0 < 43 else 0.0
    above = (2.0 ** (t1 - 43.0) - 2.0 ** (hi_start - 43.0)) / math.log(2.0) if t1 > 43 else 0.0
    return duration_s / (t1 - t0) * (below + above) / 60.0


def _insulated_block(dtype):
    """A liver block, no perfusion, constant properties, an insulating outer layer."""
    tab = tissue_material_table(perfusion_scale=0.0)
    tab = tab.with_material(200, "insulator", k_w_m_k=0.0, k_frozen_w_m_k=0.0,
                            k_mushy_w_m_k=0.0, fixed_group=-1.0)  # fmt: skip
    g = Grid((6, 6, 6), (2.0, 2.0, 2.0))
    mat = np.full(g.shape, LIVER, np.uint8)
    return ThermalProblem(g, mat, tab, dtype=dtype, constant_properties=True,
                          boundary_material=200)  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("interval", ["step", 10.0, 60.0])
def test_damage_at_intervals_is_exact_for_a_linear_ramp(dtype, interval):
    """Uniform power in an insulated block: T rises linearly, 37 -> 67 degC in 120 s.

    No gradients (insulated outer layer, uniform source, one material, constant
    properties, no perfusion): dT/dt = Q / C exactly. CEM43 has a closed form on the
    line (Sapareto & Dewey 1984); Omega is ``quad`` of A exp(-Ea / R T) on it. The
    engine integrates the damage at every step, every 10 s or every 60 s, exactly for
    a linear temperature each time, so all three give the table's accuracy: 1e-4
    relative (test above). float32: the temperature after 120 steps carries at most
    120 x half an ulp of 30 degC (2.3e-4 degC), worth ln 2 x 2.3e-4 = 1.6e-4 of the
    rates near the end, plus the float32 sum of up to 120 increments (120 x 6e-8):
    4e-4 in all.
    """
    problem = _insulated_block(dtype)
    c = float(problem.materials.c_vol_j_m3_k[LIVER])
    dt, n, rise = 1.0, 120, 30.0
    q = np.full(problem.grid.shape, rise / (n * dt) * c)
    span = dt if interval == "step" else float(interval)
    (_, t, om, cem, tmin, tmax), _ = _run_runner(problem, dt, n, q, damage_interval_s=span)
    tol = {"float64": 1e-4, "float32": 4e-4}[dtype]
    t_i = _interior(np.asarray(t, float))
    assert np.allclose(t_i, T_REF + rise, rtol=0, atol=1e-9 if dtype == "float64" else 3e-4)
    t1 = float(np.mean(t_i))  # the ramp's end, as the engine reached it
    ref_cem = _cem43_linear_exact(T_REF, t1, n * dt)
    ref_om = sp_integrate.quad(lambda s: arrhenius_rate(T_REF + (t1 - T_REF) * s / (n * dt),
                                                        _LN_A, _EA_R), 0.0, n * dt,
                               epsrel=1e-12)[0]  # fmt: skip
    assert np.allclose(_interior(np.asarray(cem, float)), ref_cem, rtol=tol, atol=0)
    assert np.allclose(_interior(np.asarray(om, float)), ref_om, rtol=tol, atol=0)
    assert np.allclose(_interior(np.asarray(tmax, float)), t1, atol=1e-9 if dtype == "float64"
                       else 3e-4)  # fmt: skip
    assert np.allclose(_interior(np.asarray(tmin, float)), T_REF, atol=1e-9)


# -- 5. no subnormal numbers, energy conserved -----------------------------------------
def test_float32_flush_leaves_no_subnormals_and_conserves_energy():
    """A point source in a liver block, 60 short steps: float32 state vs a float64 run.

    The explicit 7-point scheme spreads heat one voxel per step, each step passing a
    fraction a = dt k / (C h^2) ~ 0.02 (an eighth of the stable step) to each
    neighbour: after 60 steps the far tail (Manhattan distance 30-57 from the source)
    lies between 1e-30 and 1e-70, across float32's subnormal range (1.4e-45 to
    1.18e-38). The float32 state must hold no subnormal and, by the flush, nothing
    below FLUSH_BELOW_C; the float64 run (whose fast path does not flush) shows that
    such values do arise there. Energy: no perfusion, nothing reaches the fixed outer
    layer but ~1e-20 degC, so the heat content sum(E) V equals the energy deposited,
    P t, to rounding: float32 theta carries ~10 eps per step on the hot voxels,
    60 x 10 x 1.2e-7 = 7e-5 relative; bound 1e-4.
    """
    tab = tissue_material_table(perfusion_scale=0.0)
    g = Grid((41, 41, 41), (1.0, 1.0, 1.0))
    mat = np.full(g.shape, LIVER, np.uint8)
    q = np.zeros(g.shape)
    power_w = 0.05  # about 20 degC rise at the source: liquid, the fast path throughout
    q[20, 20, 20] = power_w / g.voxel_volume_m3
    thetas = {}
    for dtype in ("float32", "float64"):
        problem = ThermalProblem(g, mat, tab, dtype=dtype)
        dt = stable_time_step(problem, min_temperature_c=37.0) / 8
        n = 60
        runner = _Runner(problem, "cpu")
        runner.start(init_state(problem).arrays())
        runner.run(dt, n, q, None)
        thetas[dtype] = runner.arrays["th"].copy()
        e, *_ = runner.finish()
        if dtype == "float32":
            th = np.abs(thetas[dtype])
            assert not np.any((th > 0) & (th < TINY32))  # no subnormal
            assert not np.any((th > 0) & (th < FLUSH_BELOW_C))
            heat = float(np.sum(np.asarray(e, np.float64))) * g.voxel_volume_m3
            deposited = power_w * n * dt
            assert heat == pytest.approx(deposited, rel=1e-4)
    th64 = np.abs(thetas["float64"])
    th32 = np.abs(thetas["float32"]).astype(np.float64)
    # values float32 could hold (as subnormals, or normal below 1e-30): flushed to 0
    small = (th64 > 1.5e-45) & (th64 < FLUSH_BELOW_C / 10)
    assert np.count_nonzero(small) > 1000  # the tail does reach below the flush level
    assert np.all(th32[small] == 0.0)
    # where both are well above the flush level the two runs agree to float32 rounding
    big = th64 > 1e-20
    assert np.allclose(th32[big], th64[big], rtol=1e-4, atol=0)


# -- 6. microwave pattern ---------------------------------------------------------------
def _mw_reference(grid, placements, app, power_w, material, temp, tissue):
    """The pattern of :func:`microwave_source`'s docstring, in plain numpy."""
    z, y, x = grid.axis_coordinates_mm()
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    eps37, sig37 = tissue_dielectric(material, app.frequency_mhz)
    eps_ref, sig_ref = dielectric_ji_brace_2450(37.0)
    sig_scale = dielectric_ji_brace_2450(temp)[1] / sig_ref

    def eps_scale_of(t):
        return float(dielectric_ji_brace_2450(t)[0] / eps_ref)

    r_min = max(0.5 * app.diameter_mm, 0.5 * min(grid.spacing_mm))
    out = np.zeros(grid.shape)
    absorbed_total, alpha_max = 0.0, 0.0
    for pl in placements:
        d = np.asarray(pl.direction)
        rel = np.stack([xx - pl.tip_mm[0], yy - pl.tip_mm[1], zz - pl.tip_mm[2]], axis=-1)
        along = rel @ d
        radial = np.sqrt(np.maximum(np.sum(rel**2, axis=-1) - along**2, 0.0))
        zf = along + app.feed_offset_mm
        spread = np.where(zf > 0, app.axial_sigma_forward_mm, app.axial_sigma_backward_mm)
        keep = tissue & (radial <= 40.0) & (np.abs(zf) <= 4.0 * spread)
        # the tissue that loads the antenna: 15 mm around the feed (10 mm before session 53)
        near = keep & (np.abs(zf) < 15.0) & (radial < 15.0)
        t_near = float(np.mean(temp[near]))
        e_near = float(np.mean(eps37[near])) * eps_scale_of(t_near)
        s_near = float(np.mean(sig37[near] * sig_scale[near]))
        alpha = attenuation_per_m(app.frequency_mhz, e_near, s_near)
        alpha_max = max(alpha_max, alpha)
        rho_m = np.maximum(radial, r_min) * 1e-3
        profile = np.exp(-0.5 * (zf / spread) ** 2)
        s = sig37 * sig_scale * np.exp(-2 * alpha * rho_m) / rho_m * profile
        s = np.where(keep, s, 0.0)
        absorbed = power_w * app.efficiency
        if app.detuning_exponent > 0:
            absorbed *= min(1.0, s_near / float(np.mean(sig37[near]))) ** app.detuning_exponent
        out += s * absorbed / (s.sum() * grid.voxel_volume_m3)
        absorbed_total += absorbed
    return out, absorbed_total, alpha_max


def test_microwave_pattern_against_plain_numpy():
    """``microwave_source`` (numba, two tables) vs the formula in numpy, hot tissue.

    The kernel interpolates sigma(T)/sigma(37) on 0.01 degC steps and exp(-2 alpha rho)
    on 0.02 mm steps; linear interpolation's relative error is h^2 max|f''/f| / 8:
    for the exponential (2 alpha h)^2 / 8, for the Ji & Brace logistic estimated here
    by finite differences of the exact curve. Each voxel carries at most the sum of the
    two, and so does the normalising sum (a weighted mean of the same errors): the
    relative difference is at most twice the sum (plus rounding, 1e-12). The absorbed
    power is normalised exactly: power x efficiency x detuning, to rounding.
    """
    g = Grid((23, 19, 21), (2.0, 2.0, 2.0), (-22.0, -18.0, -20.0))
    app = replace(MW, detuning_exponent=1.5)  # exercise the detuning factor
    placements = [Placement((0.0, 0.0, 10.0)), Placement((6.0, -4.0, 12.0), (0.3, 0.2, -1.0))]
    mat = np.full(g.shape, LIVER, np.uint8)
    mat[:, :, 16:] = FAT  # a second dielectric
    z, y, x = g.axis_coordinates_mm()
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    r2 = xx**2 + yy**2 + zz**2
    temp = 37.0 + 63.0 * np.exp(-r2 / (2 * 8.0**2))  # up to 100 degC at the feeds
    temp[np.abs(temp - 95.0) < 2.0] = 97.5  # a band at 93-97 degC, steep sigma(T)
    tissue = np.ones(g.shape, bool)
    tissue[:, 0, :] = False
    power = 60.0
    got = microwave_source(g, placements, app, power, mat, temp, tissue)
    ref, absorbed, alpha = _mw_reference(g, placements, app, power, mat, temp, tissue)
    assert np.count_nonzero(temp[ref > 0] > 90.0) > 10  # hot voxels in the pattern
    # interpolation bounds
    h_t = 0.01
    t_fd = np.linspace(-60.0, 250.0, 31001)
    sig = dielectric_ji_brace_2450(t_fd)[1]
    f2 = np.abs(np.diff(sig, 2)) / h_t**2 / sig[1:-1]
    bound_sig = h_t**2 * float(np.max(f2)) / 8
    assert alpha < 100.0  # (liver ~48 /m)
    bound_exp = (2 * 100.0 * 0.02e-3) ** 2 / 8  # 2e-6
    tol = 2 * (bound_sig + bound_exp) + 1e-12
    assert tol < 1e-4  # the tables are as fine as documented
    assert np.array_equal(got > 0, ref > 0)
    m = ref > 0
    assert np.max(np.abs(got[m] / ref[m] - 1)) <= tol
    # the map is float32 (each value rounded by <= 6e-8 relative): the float64 sum of the
    # rounded values carries at most that, so 1e-6 is the bound (the normalisation itself
    # is exact in float64)
    total = float(got.astype(np.float64).sum())
    assert total * g.voxel_volume_m3 == pytest.approx(absorbed, rel=1e-6)
    assert absorbed < 0.999 * 2 * power * app.efficiency  # the detuning did reduce it


# -- 7. the source's update interval ---------------------------------------------------
def _counting_source(update_s):
    calls = []

    def step(state, temperature_c, time_s):
        calls.append(time_s)
        return None, state

    return Source(init=lambda problem: None, step=step, update_s=update_s), calls


@pytest.mark.parametrize(
    "update_s, override, expected",
    [(20.0, None, 5), (None, None, round(100 / SOURCE_UPDATE_S)), (20.0, 50.0, 2)],
)
def test_source_update_interval_is_honoured(update_s, override, expected):
    """100 s at dt = 1 s: a Source re-evaluated every 20 s is called 5 times (0, 20, ...,
    80 s), one that does not say every SOURCE_UPDATE_S (20 times); ``source_update_s``
    given to ``integrate`` wins over the Source's own."""
    g = Grid((5, 5, 5), (2.0, 2.0, 2.0))
    problem = ThermalProblem(g, np.full(g.shape, LIVER, np.uint8), tissue_material_table())
    src, calls = _counting_source(update_s)
    _, _, stats = integrate(problem, 100.0, dt_s=1.0, source=src, source_update_s=override)
    assert stats["steps"] == 100
    assert len(calls) == expected
    every = 100.0 / expected
    assert calls == pytest.approx([i * every for i in range(expected)])


def test_microwave_pair_updates_every_10_s_and_bad_intervals_are_refused():
    from ioplan.physics import microwave_pair

    assert MW_UPDATE_S == 10.0
    assert microwave_pair.__module__ == "ioplan.physics._heating"
    g = Grid((5, 5, 5), (2.0, 2.0, 2.0))
    problem = ThermalProblem(g, np.full(g.shape, LIVER, np.uint8), tissue_material_table())
    src, _ = _counting_source(20.0)
    for bad in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(InputError):
            integrate(problem, 10.0, dt_s=1.0, source=src, source_update_s=bad)
    src_bad, _ = _counting_source(-5.0)
    with pytest.raises(InputError):
        integrate(problem, 10.0, dt_s=1.0, source=src_bad)


# -- 8. engine timings ---------------------------------------------------------------------
def test_simulate_reports_engine_timings():
    """The parts (kernel, damage, source) are inside the run's wall time; keys are a contract."""
    res = simulate(SimulationConfig(MW, power_w=40.0, duration_s=30.0, spacing_mm=3.0,
                                    perfusion_per_s=0.0))  # fmt: skip
    eng = res.engine
    keys = {"kernel_s", "damage_s", "source_s", "kernel_voxel_updates_per_s",
            "general_update_fraction"}  # fmt: skip
    assert keys <= set(eng)
    assert all(eng[k] >= 0 for k in keys)
    assert eng["kernel_s"] > 0
    assert eng["kernel_s"] + eng["damage_s"] + eng["source_s"] <= res.runtime_s * 1.05
    assert 0.0 <= eng["general_update_fraction"] <= 1.0
    doc = res.to_dict()
    assert keys <= set(doc["engine"])


def test_damage_saturates_below_the_float32_limit():
    """Ten seconds at 200 degC: CEM43 = 10 x 2^157 / 60 ~ 3e46 min would overflow float32
    (3.4e38) to inf; the kernel caps Omega and CEM43 at DOSE_CAP instead (both far past
    any threshold), and a cooler voxel beside it is untouched by the cap."""
    from ioplan.physics._damage import arrhenius_log_constants, rate_integral_table
    from ioplan.physics._kernel import DOSE_CAP, damage_cpu

    ln_a, ea_r = arrhenius_log_constants()
    shape = (3, 3, 4)
    th = np.zeros(shape, np.float32)
    th[1, 1, 1] = 200.0 - 37.0
    th[1, 1, 2] = 50.0 - 37.0
    snap = th.copy()
    zeros = [np.zeros(shape, np.float32) for _ in range(2)]
    tmin = th + np.float32(37.0)
    tmax = tmin.copy()
    perf = np.ones(shape, np.uint8)
    mat = np.full(shape, int(Label.LIVER), np.uint8)
    table = tissue_material_table()
    from ioplan.physics._kernel import pack_properties

    damage_cpu(th, snap, zeros[0], zeros[1], tmin, tmax, perf, mat, pack_properties(table),
               10.0, ln_a, ea_r, rate_integral_table(ln_a, ea_r))  # fmt: skip
    omega, cem = zeros
    assert np.all(np.isfinite(omega)) and np.all(np.isfinite(cem))
    assert cem[1, 1, 1] == np.float32(DOSE_CAP)
    # Omega at a constant 200 degC: A exp(-Ea / (R T)) x 10 s (closed form, ~2.6e12: no cap)
    assert omega[1, 1, 1] == pytest.approx(10.0 * math.exp(ln_a - ea_r / 473.15), rel=1e-5)
    # 50 degC for 10 s: 10 x 2^7 / 60 = 21.33 CEM43 min (closed form), far below the cap
    assert cem[1, 1, 2] == pytest.approx(10 * 2.0**7 / 60.0, rel=1e-4)


def test_face_conductance_is_the_mean_k_over_the_two_temperatures():
    """The kernel's face k (Kirchhoff's mean) against a quadrature of the table's k(T).

    For one material the face conducts with (1 / (tb - ta)) * integral of k(T) dT over
    [ta, tb], k(T) read here from the :class:`MaterialTable` columns (frozen below the
    solidus, mushy up to the liquidus, liquid above), integrated by scipy's quad with the
    breakpoints given: it is exact for the piecewise-constant k, so 1e-9 relative. Between
    liver and tumour each half-gap takes its own material's mean over its half of the span
    (the face at the mean temperature), in series. Above the liquidus it is the node
    value, so no heating case changes.
    """
    from ioplan.physics._kernel import _conductance_cpu

    tab = tissue_material_table()
    packed = ThermalProblem(
        Grid((3, 3, 3), (1.0, 1.0, 1.0)), np.zeros((3, 3, 3), np.uint8), tab
    ).packed

    def k_table(m, t):
        if t >= tab.liquidus_c[m]:
            return tab.k_w_m_k[m]
        if t <= tab.solidus_c[m]:
            return tab.k_frozen_w_m_k[m]
        return tab.k_mushy_w_m_k[m]

    def mean(m, ta, tb):
        if ta == tb:
            return k_table(m, ta)
        pts = [tab.solidus_c[m], tab.liquidus_c[m]]
        val, _ = sp_integrate.quad(lambda t: k_table(m, t), min(ta, tb), max(ta, tb),
                                   points=pts, epsabs=0.0, epsrel=1e-12)  # fmt: skip
        return val / abs(tb - ta)

    d = 2e-3
    inv_d2 = 1.0 / d**2
    pairs = [(-20.0, 5.0), (5.0, -20.0), (-4.0, -1.5), (-60.0, -9.0), (-3.0, 30.0),
             (10.0, 60.0), (-0.5, 0.5), (-7.9, -8.1)]  # fmt: skip
    for ta, tb in pairs:
        ki = k_table(LIVER, ta)
        got = _conductance_cpu(packed, ki, LIVER, LIVER, ta, tb, d, inv_d2, 0)
        assert got == pytest.approx(mean(LIVER, ta, tb) * inv_d2, rel=1e-9), (ta, tb)
        # liver | tumour: two half-gaps in series
        tf = 0.5 * (ta + tb)
        k1, k2 = mean(LIVER, ta, tf), mean(TUMOR, tf, tb)
        want = 2.0 * k1 * k2 / (k1 + k2) * inv_d2
        got = _conductance_cpu(packed, ki, LIVER, TUMOR, ta, tb, d, inv_d2, 0)
        assert got == pytest.approx(want, rel=1e-9), (ta, tb)
    # a front between a frozen and a liquid node conducts far better than the liquid alone
    assert _conductance_cpu(packed, 0.52, LIVER, LIVER, 5.0, -20.0, d, inv_d2, 0) > (
        2.0 * tab.k_w_m_k[LIVER] * inv_d2
    )
