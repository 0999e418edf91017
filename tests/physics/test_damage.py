"""Thermal damage (one home: ``ioplan.physics``): rates, tables, exact increments.

The engine's kernel and the MR thermometry must give the same dose for the same
temperature history, and both must match closed forms:

- CEM43 of a temperature linear in time (Sapareto & Dewey 1984,
  DOI 10.1016/0360-3016(84)90379-1): with R = 1/2 above 43 degC and 1/4 below,
  ``int R^(43 - T) dt = D / (T1 - T0) * int_{T0}^{T1} R^(43 - T) dT`` in closed form.
- Arrhenius Omega at a constant temperature: ``A exp(-Ea / (R T)) t`` (Henriques 1947),
  less the rate at body temperature ``T_b`` (the model's definition, tissue table
  ``baseline_c``; 0 where negative); for a ramp, adaptive quadrature
  (``scipy.integrate.quad``) of the same rate.

The Arrhenius A and Ea are the model's inputs (the tissue table); the tests check the
numerics against independent integrals, not the values themselves.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ioplan.anatomy import Label
from ioplan.imaging import Grid
from ioplan.physics import (
    RATE_STEP_C,
    RATE_T0_C,
    ThermalProblem,
    arrhenius_increment,
    arrhenius_log_constants,
    cem43_increment,
    init_state,
    liver_rate_table,
    run,
    tissue_material_table,
)
from ioplan.tissue import arrhenius_parameters, constants

LIVER = int(Label.LIVER)
_ARR = arrhenius_parameters()
_A, _EA = _ARR["frequency_factor_1_per_s"], _ARR["activation_energy_j_mol"]
_R = constants()["gas_constant_j_mol_k"]
_T_BODY_K = _ARR["baseline_c"] + 273.15

# Per-dtype tolerances of the engine's damage integrals. float64: the rate table's
# interpolation bound, (h dln(rate)/dT)^2 / 8 = (0.02 ln 4)^2 / 8 < 1e-4 (see below).
# float32 (production): the temperature carries ~6e-8 relative rounding per step
# (~4e-6 degC at 60 degC); over the runs below (<= 240 steps) the rate's error
# (dln(rate)/dT <= ln 2 above 43 degC) and the float32 accumulation of Omega and CEM43
# stay below 240 x 6e-8 + ln 2 x 1e-3 degC ~ 1e-3: 2e-3 relative.
_TOL = {"float64": 1e-4, "float32": 2e-3}


def _arrhenius_raw(t_c):
    return _A * np.exp(-_EA / (_R * (np.asarray(t_c, float) + 273.15)))


def _arrhenius_exact(t_c: float) -> float:
    """The model's rate: the excess over body temperature's rate, never negative."""
    return float(max(_arrhenius_raw(t_c) - _A * math.exp(-_EA / (_R * _T_BODY_K)), 0.0))


def _cem43_linear_exact(t0: float, t1: float, duration_s: float) -> float:
    """Closed form of the CEM43 minutes of a temperature linear from t0 to t1 (t0 < t1)."""
    lo_end = min(t1, 43.0)
    hi_start = max(t0, 43.0)
    below = (4.0 ** (lo_end - 43.0) - 4.0 ** (t0 - 43.0)) / math.log(4.0) if t0 < 43 else 0.0
    above = (2.0 ** (t1 - 43.0) - 2.0 ** (hi_start - 43.0)) / math.log(2.0) if t1 > 43 else 0.0
    return duration_s / (t1 - t0) * (below + above) / 60.0


def test_one_home_for_thermal_damage():
    """The thermometry uses the engine's damage functions, not a copy of them."""
    import ioplan.monitoring as mon
    import ioplan.physics as phys

    assert mon.cem43_increment is phys.cem43_increment
    assert mon.arrhenius_increment is phys.arrhenius_increment


def test_rate_table_matches_the_exact_rates():
    """The tabulated Arrhenius and CEM43 rates against the closed forms.

    Linear interpolation on a 0.02 degC grid has a relative error of at most
    (h dln(rate)/dT)^2 / 8 = (0.02 ln 4)^2 / 8 = 9.6e-5, so 1e-4 is the bound the table
    must meet; a wrong row or increment fails by far more.
    """
    table = liver_rate_table()
    rng = np.random.default_rng(3)
    t = rng.uniform(-55.0, 155.0, 20000)
    x = (t - RATE_T0_C) / RATE_STEP_C
    row = x.astype(int)
    f = x - row
    arr = table[row, 0] + f * table[row, 1]
    cem = table[row, 2] + f * table[row, 3]
    arr_exact = np.maximum(_arrhenius_raw(t) - _A * math.exp(-_EA / (_R * _T_BODY_K)), 0.0)
    cem_exact = np.where(t >= 43.0, 0.5 ** (43.0 - t), 0.25 ** (43.0 - t)) / 60.0
    # the piecewise CEM43 rate has a kink at 43 degC: leave out the one interval across it
    smooth = np.abs(t - 43.0) > RATE_STEP_C
    # The Arrhenius excess g(T) = k(T) - k(T_b) starts from 0 at T_b = 37 degC: below it
    # the table must hold exactly 0; just above it g ~ k(T_b) kappa (T - T_b) (kappa =
    # Ea / (R T^2) ~ 0.32 /degC), whose relative interpolation error (h^2 / 8) kappa /
    # (T - T_b) passes 1e-4 only within 0.2 degC of T_b, where the absolute error
    # (h^2 / 8) k(T_b) kappa^2 is below 2e-9 1/s (Omega 1e-6 in 10 minutes).
    t_b = _T_BODY_K - 273.15
    assert np.all(arr[t < t_b - RATE_STEP_C] == 0.0)
    far = t > t_b + 0.2
    assert np.max(np.abs(arr[far] / arr_exact[far] - 1)) < 1e-4
    near = ~far & (t > t_b - RATE_STEP_C)
    assert np.max(np.abs(arr[near] - arr_exact[near])) < 2e-9
    assert np.max(np.abs(cem[smooth] / cem_exact[smooth] - 1)) < 1e-4


@pytest.mark.parametrize(("t0", "t1"), [(43.0, 47.0), (40.0, 46.0), (37.0, 41.0), (50.0, 50.0)])
def test_cem43_increment_against_the_closed_form(t0, t1):
    """Exact for a linear history (to rounding: 1e-12)."""
    got = float(cem43_increment(t0, t1, 30.0))
    if t0 == t1:
        ref = 30.0 * 0.5 ** (43.0 - t0) / 60.0
    else:
        ref = _cem43_linear_exact(t0, t1, 30.0)
    assert got == pytest.approx(ref, rel=1e-12)
    # the same interval run backwards (cooling) accrues the same dose
    assert float(cem43_increment(t1, t0, 30.0)) == pytest.approx(ref, rel=1e-12)


def test_arrhenius_increment_against_quadrature():
    """5-point Gauss-Legendre on a 45 -> 60 degC line vs adaptive quadrature.

    Over 15 degC the rate spans 1.8 decades; Gauss-Legendre's error for
    exp(c x) with c = 15 x 0.28 / 2 = 2.1 on [-1, 1] and 5 nodes is ~(c^10 / 10!) ~ 4e-4
    of the integral, so 1e-3 relative.
    """
    from scipy.integrate import quad

    ref, _ = quad(lambda s: _arrhenius_exact(45.0 + 15.0 * s / 20.0), 0.0, 20.0, epsrel=1e-12)
    assert float(arrhenius_increment(45.0, 60.0, 20.0)) == pytest.approx(ref, rel=1e-3)
    assert float(arrhenius_increment(60.0, 60.0, 20.0)) == pytest.approx(
        20.0 * _arrhenius_exact(60.0), rel=1e-12
    )
    ln_a, ea_r = arrhenius_log_constants()
    assert math.exp(ln_a - ea_r / 333.15) == pytest.approx(float(_arrhenius_raw(60.0)), rel=1e-12)


def test_no_damage_at_body_temperature():
    """Liver left at 37 degC for an hour is not ablated (the constants alone give Omega 1.05).

    The raw rate at 37 degC, 2.9e-4 1/s, is recounted here from A and Ea; the model
    counts only the excess over it, so an hour at 37 degC (or at 20 degC, an ex vivo
    block) accrues nothing, and an hour at 38 degC accrues (k(38) - k(37)) x 3600 s.
    """
    assert float(_arrhenius_raw(37.0)) * 3600.0 > 1.0  # the artefact being removed
    assert float(arrhenius_increment(37.0, 37.0, 3600.0)) == 0.0
    assert float(arrhenius_increment(20.0, 20.0, 3600.0)) == 0.0
    ref = (float(_arrhenius_raw(38.0)) - float(_arrhenius_raw(37.0))) * 3600.0
    assert float(arrhenius_increment(38.0, 38.0, 3600.0)) == pytest.approx(ref, rel=1e-9)


def _insulated_block(dtype: str) -> ThermalProblem:
    tab = tissue_material_table(perfusion_scale=0.0)
    tab = tab.with_material(81, "insulator", k_w_m_k=0.0, k_frozen_w_m_k=0.0,
                            k_mushy_w_m_k=0.0, c_vol_j_m3_k=3.8e6)  # fmt: skip
    g = Grid((5, 5, 5), (2.0, 2.0, 2.0))
    mat = np.full(g.shape, LIVER, np.uint8)
    return ThermalProblem(g, mat, tab, dtype=dtype, boundary_material=81,
                          constant_properties=True)  # fmt: skip


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_engine_dose_at_constant_temperature(dtype):
    """Insulated block held at 55 degC by nothing but insulation: exact closed forms."""
    p = _insulated_block(dtype)
    final, _ = run(p, 30.0, state=init_state(p, 55.0))
    assert float(final.temperature_c[2, 2, 2]) == pytest.approx(55.0, abs=1e-5)
    omega = 30.0 * _arrhenius_exact(55.0)
    cem = 30.0 * 0.5 ** (43.0 - 55.0) / 60.0
    assert float(final.omega[2, 2, 2]) == pytest.approx(omega, rel=_TOL[dtype])
    assert float(final.cem43_min[2, 2, 2]) == pytest.approx(cem, rel=_TOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_engine_and_thermometry_agree_on_a_linear_heating(dtype):
    """A uniform source in an insulated block heats it linearly from 37 to 60 degC in 60 s.

    Engine: midpoint rule per 0.25 s step; its error on exp(k T) is (k dT)^2 / 24 per
    step: k dT = ln 2 x 0.096 degC = 0.066 -> 2e-4 (CEM43), 0.28 x 0.096 -> 3e-5
    (Arrhenius), plus the table's 1e-4 and float32 rounding (see _TOL): 1e-3 + _TOL.
    Thermometry: frames every 2 s of the same line (CEM43 exact, Arrhenius 3-point
    Gauss-Legendre on the table). Reference: the closed form (CEM43) and adaptive
    quadrature (Arrhenius).
    """
    from scipy.integrate import quad

    from ioplan.monitoring import Thermometry, ThermometryConfig

    p = _insulated_block(dtype)
    c_vol = float(p.materials.c_vol_j_m3_k[LIVER])
    rate_c_s = 23.0 / 60.0
    q = np.full(p.grid.shape, c_vol * rate_c_s)
    final, _ = run(p, 60.0, dt_s=0.25, source=q)
    assert float(final.temperature_c[2, 2, 2]) == pytest.approx(60.0, abs=1e-3)
    cem_ref = _cem43_linear_exact(37.0, 60.0, 60.0)
    om_ref, _ = quad(lambda s: _arrhenius_exact(37.0 + rate_c_s * s), 0.0, 60.0, epsrel=1e-12)
    tol = 1e-3 + _TOL[dtype]
    assert float(final.cem43_min[2, 2, 2]) == pytest.approx(cem_ref, rel=tol)
    assert float(final.omega[2, 2, 2]) == pytest.approx(om_ref, rel=tol)

    cfg = ThermometryConfig(b0_t=3.0, te_ms=10.0, snr_threshold=0.0)
    th = Thermometry(cfg, noise_sigma=1e-3)
    base = np.ones((1, 2, 2), np.complex64)
    th.add(base, 0.0)
    for s in np.arange(2.0, 61.0, 2.0):
        th.add(base * np.exp(1j * cfg.rad_per_c * rate_c_s * s), float(s))
    # complex64 frames: the phase carries ~1e-7 rad, 1e-5 degC at 3 T, TE 10 ms;
    # 3-point Gauss-Legendre on 0.77 degC per frame: ~(0.2)^6 / 6! << 1e-6; the table 1e-4
    assert th.cem43[0, 0, 0] == pytest.approx(cem_ref, rel=1e-4)
    assert th.omega[0, 0, 0] == pytest.approx(om_ref, rel=2e-4)
    # and the two agree with each other within the engine's tolerance
    assert th.cem43[0, 0, 0] == pytest.approx(float(final.cem43_min[2, 2, 2]), rel=tol)
