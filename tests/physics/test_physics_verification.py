"""Verification of the bioheat engine against analytic solutions and conservation laws.

References are stated in each test. Grids are coarse so that the suite stays fast;
the full convergence study is `ioplan validate engine` (later) and bench/.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ioplan.anatomy import Label
from ioplan.imaging import Grid
from ioplan.physics import (
    ThermalProblem,
    init_state,
    run,
    stable_time_step,
    step,
    tissue_material_table,
)

LIVER = int(Label.LIVER)


def _block(n: int, spacing_mm: float, perfusion_1_per_s: float, dtype="float64"):
    tab = tissue_material_table(perfusion_override_1_per_s={"liver": perfusion_1_per_s})
    g = Grid((n, n, n), (spacing_mm,) * 3)
    mat = np.full(g.shape, LIVER, np.uint8)
    return ThermalProblem(g, mat, tab, constant_properties=True, dtype=dtype)


def _liver_constants(problem):
    t = problem.materials
    k = t.k_w_m_k[LIVER]
    c = t.c_vol_j_m3_k[LIVER]
    b = t.perfusion_w_m3_k[LIVER]
    return k, c, b


def _radius_mm(problem):
    g = problem.grid
    centre = (np.asarray(g.shape) - 1) / 2.0
    idx = np.indices(g.shape).reshape(3, -1).T
    d = (idx - centre) * np.asarray(g.spacing_mm)
    return np.linalg.norm(d, axis=1).reshape(g.shape)


def _gaussian_error(spacing_mm: float, dtype: str = "float64") -> float:
    """Relative L2 error of a diffusing, perfusion-damped Gaussian after 20 s.

    Reference: the heat kernel. An initial excess temperature
    A exp(-r^2 / 2 s^2) in an infinite medium of diffusivity alpha with Pennes
    perfusion b (relative to blood at the initial background temperature) is
    A (s^2 / (s^2 + 2 alpha t))^{3/2} exp(-r^2 / 2 (s^2 + 2 alpha t)) exp(-b t / C).
    """
    extent = 48.0
    n = round(extent / spacing_mm) + 1
    p = _block(n, spacing_mm, 0.01, dtype)
    k, c, b = _liver_constants(p)
    alpha = k / c * 1e6  # mm^2/s
    s2, amp, t_end = 16.0, 10.0, 20.0
    r = _radius_mm(p)
    t0 = 37.0 + amp * np.exp(-(r**2) / (2 * s2))
    state = init_state(p, t0)
    final, _ = run(p, t_end, state=state, dt_s=min(stable_time_step(p), 0.25 * spacing_mm**2))
    s2t = s2 + 2 * alpha * t_end
    exact = amp * (s2 / s2t) ** 1.5 * np.exp(-(r**2) / (2 * s2t)) * math.exp(-b * t_end / c)
    num = final.temperature_c - 37.0
    return float(np.linalg.norm(num - exact) / np.linalg.norm(exact))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_transient_gaussian_second_order_convergence(dtype):
    """Error < 1 % at 1 mm and falls ~4x per halving of dx (second order).

    The time step is tied to dx^2 (dt = 0.25 dx^2 s), so the first-order time
    error of forward Euler also falls as dx^2. float32 (production): the enthalpy
    (~4e7 J/m^3 for a 10 degC rise) carries 6e-8 relative rounding per step, 1e-6 degC
    over a 20 s run of 320 steps at 1 mm: 1e-5 of the 1e-3-level discretisation error
    at 1 mm, so the same bounds hold.
    """
    spacings = [4.0, 2.0, 1.0]
    errors = [_gaussian_error(h, dtype) for h in spacings]
    slope = np.polyfit(np.log(spacings), np.log(errors), 1)[0]
    assert errors[-1] < 0.01, errors
    # second order: slope 2; 1.8-2.3 allows the pre-asymptotic coarse grid
    assert 1.8 < slope < 2.3, (slope, errors)


def _sphere_steady_state(r_mm, a_mm, q_w_m3, k, b):
    """Steady Pennes solution around a uniformly heated sphere (derived for this test).

    With theta = T - T_a and m^2 = b / k, u = r theta solves u'' - m^2 u = -q r / k
    inside and u'' = m^2 u outside. Inside: u = q r / b + A sinh(m r); outside:
    u = D exp(-m r); continuity of u and u' at r = a gives
    A = -q (1 + m a) / (b m e^{m a}) and D e^{-m a} = q a / b + A sinh(m a).
    """
    m = math.sqrt(b / k)
    r = np.asarray(r_mm) * 1e-3
    a = a_mm * 1e-3
    big_a = -q_w_m3 * (1 + m * a) / (b * m * math.exp(m * a))
    d = (q_w_m3 * a / b + big_a * math.sinh(m * a)) * math.exp(m * a)
    rr = np.maximum(r, 1e-12)
    inside = q_w_m3 / b + big_a * np.sinh(m * rr) / rr
    inside = np.where(r > 0, inside, q_w_m3 / b + big_a * m)
    outside = d * np.exp(-m * rr) / rr
    return np.where(r <= a, inside, outside)


def _sphere_fraction(problem, a_mm, sub=6):
    """Volume fraction of each voxel inside the sphere (sub^3 supersampling)."""
    g = problem.grid
    h = g.spacing_mm[0]
    r = _radius_mm(problem)
    frac = np.zeros(g.shape)
    near = np.abs(r - a_mm) < h
    frac[r < a_mm - h] = 1.0
    offs = (np.arange(sub) + 0.5) / sub - 0.5
    idx = np.argwhere(near)
    centre = (np.asarray(g.shape) - 1) / 2.0
    for z, y, x in idx:
        pts = (np.array([z, y, x]) - centre)[None, :] * h + np.stack(
            np.meshgrid(offs, offs, offs, indexing="ij"), -1
        ).reshape(-1, 3) * h
        frac[z, y, x] = np.mean(np.linalg.norm(pts, axis=1) <= a_mm)
    return frac


@pytest.mark.slow
def test_steady_state_heated_sphere_in_perfused_tissue():
    """Steady state around a uniformly heated 6 mm sphere: relative L2 error < 1 %.

    At 0.75 mm the error is 0.67 % (1.0 mm: 0.97 %; the source's edge, a jump in
    the second derivative, makes convergence slower than the smooth Gaussian's).
    The box reaches 25 mm from the centre, 6.7 perfusion lengths (3.7 mm at
    w = 0.01 1/s): the far boundary changes the result by < 0.01 % (checked at 40 mm).
    """
    h = 0.75
    p = _block(67, h, 0.01)
    k, c, b = _liver_constants(p)
    a_mm, q = 6.0, 2.0e6
    frac = _sphere_fraction(p, a_mm)
    # hold the intended power exactly (the voxelised source must carry 4/3 pi a^3 q)
    frac *= (4 / 3 * math.pi * a_mm**3 / h**3) / frac.sum()
    final, _ = run(p, 8 * c / b, source=q * frac)  # 8 perfusion time constants
    exact = _sphere_steady_state(_radius_mm(p), a_mm, q, k, b)
    num = final.temperature_c - 37.0
    err = float(np.linalg.norm(num - exact) / np.linalg.norm(exact))
    assert err < 0.01, err


@pytest.mark.parametrize(("dtype", "rel"), [("float64", 1e-3), ("float32", 1e-3)])
def test_energy_balance(dtype, rel):
    """Deposited = stored + perfused + lost through the far boundary (0.1 %).

    Each term is summed independently with numpy (float64) from the state before every
    step. The remaining 1e-4-level mismatch is the explicit scheme's (the flux and the
    perfusion are evaluated at the start of each step, as here). float32: enthalpies
    ~1e7 J/m^3 round at ~1 J/m^3 per step, 60 steps: < 1e-5 relative, same bound.
    """
    p = _block(15, 2.0, 0.006, dtype)
    k, _c, b = _liver_constants(p)
    q = np.zeros(p.grid.shape)
    q[6:9, 6:9, 6:9] = 5e6
    vol = (2e-3) ** 3
    dt = stable_time_step(p)
    st = init_state(p)
    deposited = perfused = boundary = 0.0
    free = p.material != p.boundary_material
    inner = np.zeros(p.grid.shape, bool)
    inner[1:-1, 1:-1, 1:-1] = True
    d = 2e-3
    for _ in range(60):
        t = st.temperature_c
        deposited += float(q[free].sum()) * vol * dt
        perfused += float((b * (t - 37.0))[free].sum()) * vol * dt
        # flux into the fixed outer layer across the faces next to it (k/d * dT * area)
        for axis in range(3):
            for side in (1, -2):
                sl = [slice(1, -1)] * 3
                sl[axis] = side
                sl_b = list(sl)
                sl_b[axis] = 0 if side == 1 else -1
                boundary += float(np.sum(k / d * (t[tuple(sl)] - t[tuple(sl_b)]))) * d * d * dt
        st = step(p, st, dt, source_w_m3=q)
    stored = float(st.energy_j_m3[inner].sum()) * vol
    balance = stored + perfused + boundary
    assert balance == pytest.approx(deposited, rel=1e-3)


def test_symmetric_source_gives_symmetric_field():
    p = _block(17, 1.5, 0.005)
    q = np.zeros(p.grid.shape)
    q[7:10, 7:10, 7:10] = 3e6
    final, _ = run(p, 30.0, source=q)
    t = final.temperature_c
    # float64 state; the stencil sums the same terms in the same order: exact mirror
    np.testing.assert_allclose(t, t[::-1], atol=1e-10)
    np.testing.assert_allclose(t, t[:, ::-1], atol=1e-10)
    np.testing.assert_allclose(t, np.transpose(t, (2, 1, 0)), atol=1e-10)
    assert t.max() > 40.0


def _neumann_lambda(k_s, k_l, c_s, c_l, latent, t_w, t_f, t_i):
    """Root of the two-phase Neumann (Stefan) transcendental equation.

    Reference: Carslaw & Jaeger, Conduction of Heat in Solids (1959), section 11.2;
    solid 0 < x < X(t) = 2 lambda sqrt(alpha_s t), wall at t_w, far field t_i.
    """
    from scipy.optimize import brentq
    from scipy.special import erf, erfc

    a_s, a_l = k_s / c_s, k_l / c_l
    nu = a_s / a_l

    def f(lam):
        solid = k_s * (t_f - t_w) * math.exp(-(lam**2)) / (erf(lam) * math.sqrt(math.pi * a_s))
        liquid = (
            k_l
            * (t_i - t_f)
            * math.exp(-(lam**2) * nu)
            / (erfc(lam * math.sqrt(nu)) * math.sqrt(math.pi * a_l))
        )
        return solid - liquid - latent * lam * math.sqrt(a_s)

    return brentq(f, 1e-6, 5.0), a_s


def test_freezing_front_matches_the_neumann_solution():
    """1D freezing from a wall at -40 degC into tissue at 37 degC: front within 1 voxel.

    Engine: enthalpy method with latent heat over a narrow mushy zone
    (-1.05 to -0.95 degC, so that the sharp-front Neumann solution applies),
    frozen k 2.0 W/m/K and c 1860 J/kg/K (shared README section 3).
    """
    h, n, t_end = 1.0, 90, 400.0
    k_l, k_s, rho = 0.52, 2.0, 1079.0
    c_l, c_s, latent = rho * 3540.0, rho * 1860.0, rho * 250e3
    tab = tissue_material_table()
    tab = tab.with_material(
        80,
        "stefan tissue",
        k_w_m_k=k_l,
        k_frozen_w_m_k=k_s,
        k_mushy_w_m_k=0.5 * (k_l + k_s),
        c_vol_j_m3_k=c_l,
        c_vol_frozen_j_m3_k=c_s,
        c_vol_mushy_j_m3_k=0.5 * (c_l + c_s),
        latent_j_m3=latent,
        solidus_c=-1.05,
        liquidus_c=-0.95,
        perfusion_w_m3_k=0.0,
        fixed_group=-1,
    )
    tab = tab.with_material(
        81,
        "insulator",
        k_w_m_k=0.0,
        k_frozen_w_m_k=0.0,
        k_mushy_w_m_k=0.0,
        c_vol_j_m3_k=c_l,
        fixed_group=-1,
    )
    tab = tab.with_material(82, "cold wall", k_w_m_k=k_s, c_vol_j_m3_k=c_s, fixed_group=1)
    g = Grid((3, 3, n), (h, h, h))
    mat = np.full(g.shape, 80, np.uint8)
    mat[:, :, 1] = 82
    p = ThermalProblem(g, mat, tab, dtype="float64", boundary_material=81)
    final, _ = run(p, t_end, group_temperatures=[37.0, -40.0])
    line = final.temperature_c[1, 1, 1:-1]
    x = np.arange(line.size) * h  # distance from the wall voxel centre (mm)
    k = int(np.argmax(line > -1.0))
    front_num = x[k - 1] + (-1.0 - line[k - 1]) / (line[k] - line[k - 1]) * h
    lam, a_s = _neumann_lambda(k_s, k_l, c_s, c_l, latent, -40.0, -1.0, 37.0)
    front_exact = 2 * lam * math.sqrt(a_s * t_end) * 1e3
    assert abs(front_num - front_exact) < h, (front_num, front_exact)
    assert front_exact > 5.0  # a front that moved several voxels


def _point_source_error(h: float, dtype: str = "float64") -> float:
    """Relative L2 error, 6-14 mm from a one-voxel source of 0.2 W after 60 s.

    Reference: the Green's function of the Pennes equation integrated over time,
    theta(r, t) = P / (8 pi k r) [e^{-m r} erfc(r / 2 sqrt(alpha t) - sqrt(b t / C))
                                 + e^{m r} erfc(r / 2 sqrt(alpha t) + sqrt(b t / C))],
    m = sqrt(b / k) (Carslaw & Jaeger, Conduction of Heat in Solids, 10.4, with a
    linear loss term).
    """
    from scipy.special import erfc

    n = round(52.0 / h) + 1
    t_end, power = 60.0, 0.2
    p = _block(n, h, 0.01, dtype)
    k, c, b = _liver_constants(p)
    q = np.zeros(p.grid.shape)
    q[n // 2, n // 2, n // 2] = power / (h * 1e-3) ** 3
    final, _ = run(p, t_end, source=q, dt_s=min(stable_time_step(p), 0.25 * h * h))
    r = _radius_mm(p) * 1e-3
    sel = (r >= 6e-3) & (r <= 14e-3)
    alpha, m = k / c, math.sqrt(b / k)
    rr = r[sel]
    u = rr / (2 * math.sqrt(alpha * t_end))
    v = math.sqrt(b * t_end / c)
    exact = (
        power
        / (8 * math.pi * k * rr)
        * (np.exp(-m * rr) * erfc(u - v) + np.exp(m * rr) * erfc(u + v))
    )
    num = final.temperature_c[sel] - 37.0
    return float(np.linalg.norm(num - exact) / np.linalg.norm(exact))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_continuous_point_source_against_greens_function(dtype):
    """Second-order convergence to the point-source Green's function.

    Measured: 13.4 % at 2 mm, 3.0 % at 1 mm (0.7 % at 0.5 mm, too slow for the
    suite). A one-voxel source is a point only from a few voxels away; the
    lattice's anisotropy near it is the error that falls as h^2. float32: the
    temperatures 6-14 mm out rise by ~0.5 degC; the enthalpy near the source
    (~1e9 J/m^3) rounds at 60 J/m^3 = 2e-5 degC per step there, far from the
    measured region: the errors and the same bounds hold.
    """
    e2, e1 = _point_source_error(2.0, dtype), _point_source_error(1.0, dtype)
    assert e1 < 0.04, (e2, e1)
    assert e2 / e1 > 3.5, (e2, e1)  # order log2(3.5) = 1.8 or better


def test_energy_balance_with_boiling_and_the_microwave_source():
    """Insulated ex vivo block, uncooled antenna: stored enthalpy = P x efficiency x t.

    Runs the production path (run(), float32 state, the MW source re-evaluated from the
    temperature, latent heat of boiling near the antenna). The stored enthalpy is summed
    from the final state, independently of the source's normalisation.
    """
    from ioplan.devices import applicator
    from ioplan.physics import microwave_source

    app = applicator("generic-mw-2450")
    tab = tissue_material_table(perfusion_scale=0.0)
    tab = tab.with_material(81, "insulator", k_w_m_k=0.0, k_frozen_w_m_k=0.0,
                            k_mushy_w_m_k=0.0, c_vol_j_m3_k=3.8e6)  # fmt: skip
    g = Grid((41, 31, 31), (2.0, 2.0, 2.0), (-30.0, -30.0, -40.0))
    p = ThermalProblem(g, np.full(g.shape, LIVER, np.uint8), tab, boundary_material=81)
    from ioplan.physics._sources import Placement

    tissue = p.material == LIVER
    pl = [Placement((0.0, 0.0, 0.0))]

    def source(state):
        return microwave_source(g, pl, app, 60.0, p.material, state.temperature_c, tissue)

    final, _ = run(p, 120.0, source=source)
    stored = float(np.sum(final.energy_j_m3[tissue], dtype=np.float64)) * 8e-9
    assert float(final.tmax_c.max()) > 99.0  # water boiled near the antenna
    # float32 enthalpies of ~1e8 J/m^3 summed over 30k voxels: 1e-4 relative
    assert stored == pytest.approx(60.0 * app.efficiency * 120.0, rel=1e-4)
