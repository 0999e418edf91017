"""The computed-field microwave source (issue 19): energy, the held field, water, grids.

References are independent of the code under test where one exists: the solver's own
energy balance (exact to round-off, tests/physics/test_maxwell.py) for the mapped power,
a fresh solve for the held-field update, Ji & Brace's published curve for wet tissue.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from ioplan.devices import applicator
from ioplan.imaging import Grid
from ioplan.physics import (
    MicrowaveFieldState,
    Placement,
    SimulationConfig,
    TissueMap,
    antenna_geometry,
    axial_zone,
    field_solver_options,
    map_axisymmetric,
    microwave_field_pair,
    microwave_field_report,
    microwave_pair,
    simulate,
    solve_antenna,
)
from ioplan.physics._domain import tissue_label
from ioplan.physics._mw_field import MW_RESOLVE_SIGMA_CHANGE, _resolve
from ioplan.tissue import dielectric_ji_brace_2450, dielectric_water_2450, water_remaining

# the field model is an option (the lumped pattern is the calibrated default)
EMPRINT = replace(applicator("covidien-emprint"), mw_model="field")


def _block(spacing_mm: float, power_w: float = 60.0, app=EMPRINT):
    """A liver block holding the whole SAR window (r <= 30 mm, z -60..20 mm)."""
    n = round(64 / spacing_mm) + 1
    nz = round(84 / spacing_mm) + 1
    grid = Grid((nz, n, n), (spacing_mm,) * 3, (-32.0, -32.0, -62.0))
    material = np.full(grid.shape, int(tissue_label("liver")), np.uint8)
    mask = np.ones(grid.shape, bool)
    pair = microwave_field_pair([Placement((0.0, 0.0, 0.0), (0.0, 0.0, 1.0))], app, power_w, mask)
    state = pair.init(SimpleNamespace(grid=grid, material=material))
    return grid, pair, state


def test_water_model_monotone_and_ji_brace_when_wet():
    t = np.linspace(20.0, 130.0, 45)
    e1, s1 = dielectric_water_2450(t, 1.0)
    ej, sj = dielectric_ji_brace_2450(t)
    np.testing.assert_allclose(e1, ej, rtol=1e-12)
    np.testing.assert_allclose(s1, sj, rtol=1e-12)
    prev = None
    for w in np.linspace(0.0, 1.0, 11):
        e, s = dielectric_water_2450(t, w)
        if prev is not None:
            assert np.all(e >= prev[0] - 1e-12) and np.all(s >= prev[1] - 1e-12)
        prev = (e, s)
    # water boils off over the enthalpy model's 99-100 degC window, irreversibly by Tmax
    assert water_remaining(98.9) == 1.0 and water_remaining(100.0) == 0.0
    assert 0.0 < float(water_remaining(99.5)) < 1.0


def test_lumped_model_kept_for_generic_antenna():
    app = applicator("generic-mw-2450")
    assert app.mw_model == "lumped"
    pair = microwave_pair([Placement((0.0, 0.0, 0.0))], app, 40.0, np.ones((3, 3, 3), bool))
    assert pair.update_s == 10.0  # the lumped pattern's interval (MW_UPDATE_S)


def test_mapped_power_is_feed_power_times_tissue_fraction():
    """Integral of the map = power x feed efficiency x the window's tissue fraction.

    The solver's balance (forward = reflected + tissue + coolant + radiated) is exact to
    round-off; the window holds all but the tissue power outside r 30 mm / z -60..20 mm.
    The map is renormalised to the window's power exactly, so the tolerance is float32
    rounding of the returned map (1e-5).
    """
    grid, pair, state = _block(2.0)
    q, state = pair.step(state, np.full(grid.shape, 20.0), 0.0)
    rep = microwave_field_report(state)
    _, refl, cool, win, wall = state.history[-1]
    assert wall == 0.0  # no cooled shaft surface in this bare problem
    absorbed = float(q.sum(dtype=np.float64)) * grid.voxel_volume_m3
    assert absorbed == pytest.approx(60.0 * EMPRINT.feed_efficiency * win, rel=1e-5)
    assert win <= 1.0 - refl - cool + 1e-9
    assert 1.0 - refl - cool - win < 0.05  # little tissue power beyond the window
    assert rep["solves"] == 1
    assert rep["s11_db_initial"] == pytest.approx(10 * np.log10(refl), abs=1e-3)


def test_map_matches_map_axisymmetric():
    """The precomputed interpolation reproduces the solver's own mapping."""
    grid, pair, state = _block(2.0)
    q, state = pair.step(state, np.full(grid.shape, 20.0), 0.0)
    e20, s20 = dielectric_ji_brace_2450(20.0)
    e37, s37 = dielectric_ji_brace_2450(37.0)
    tissue = TissueMap(43.0 * e20 / e37, 1.69 * s20 / s37)
    sol = solve_antenna(antenna_geometry(EMPRINT), tissue, field_solver_options(2450.0))
    ref, _ = map_axisymmetric(
        grid, Placement((0.0, 0.0, 0.0), (0.0, 0.0, 1.0)), sol, 60.0 * EMPRINT.feed_efficiency,
        supersample=2,
    )  # fmt: skip
    assert np.max(np.abs(q - ref)) <= 1e-5 * ref.max()


def test_held_field_against_a_fresh_solve():
    """Between solves the SAR follows sigma with E's shape held, at the last solve's power.

    Reference: a fresh solve after a uniform 10 % drop of sigma (the re-solve threshold).
    The attenuation and the match change, so E is not exactly held. Measured: the fresh
    solve keeps 98.4 % of the absorbed power; E held alone would keep 90 % and differ from
    the fresh map by 8.5 % (power-weighted L1); the rescaled map differs by 6.3 %. The test
    allows 7 % and 2 %.
    """
    grid, pair, state = _block(2.0)
    _, state = pair.step(state, np.full(grid.shape, 20.0), 0.0)
    e20, _ = dielectric_ji_brace_2450(20.0)
    e37, _ = dielectric_ji_brace_2450(37.0)
    fresh = _resolve(
        replace(state, history=()), antenna_geometry(EMPRINT), field_solver_options(2450.0),
        state.eps37 * e20 / e37, state.sigma_solve * 0.9, 60.0 * EMPRINT.feed_efficiency, 5.0,
    )  # fmt: skip
    held = state.q_solve  # shape of sigma * |E|^2 with sigma uniformly 0.9x, rescaled
    diff = np.sum(np.abs(held - fresh.q_solve)) / np.sum(fresh.q_solve)
    assert diff < 0.07, diff
    assert abs(fresh.q_solve.sum() / state.q_solve.sum() - 1.0) < 0.02
    assert MW_RESOLVE_SIGMA_CHANGE <= 0.10


def test_resolve_when_sigma_changes():
    grid, pair, state = _block(3.0)
    _, state = pair.step(state, np.full(grid.shape, 20.0), 0.0)
    _, state = pair.step(state, np.full(grid.shape, 21.0), 5.0)
    assert len(state.history) == 1  # sigma changed by ~0.1 %: field held
    _, state = pair.step(state, np.full(grid.shape, 99.5), 10.0)  # dried half-way
    assert len(state.history) == 2
    assert isinstance(state, MicrowaveFieldState)


def _zone(spacing_mm: float, duration_s: float):
    res = simulate(
        SimulationConfig(EMPRINT, power_w=60.0, duration_s=duration_s, spacing_mm=spacing_mm,
                         tissue="liver", perfusion_per_s=0.0, initial_temperature_c=20.0,
                         snapshot_times_s=(duration_s,))
    )  # fmt: skip
    f = res.snapshot_fields[f"{duration_s:g}"]
    return axial_zone(f, res.grid, tuple(res.settings["tips_mm"][0]),
                      tuple(res.settings["direction"]), 0.0)  # fmt: skip


def test_field_model_zone_independent_of_voxel_size():
    """Sub-voxel zone sizes at 2 and 1 mm after 300 s agree within issue 19's goal, 1 mm or
    5 % (validation/convergence.md: 1 mm is within 0.9 mm of 0.5 mm for every chart row).

    Measured (60 W): length 26.37 / 25.25 mm, width 28.17 / 28.10 mm. Without the
    coolant's share of the power next to the shaft (:func:`wall_kept_fraction`) the 2 mm
    length was 27.33 mm, 1.9 mm (7.6 %) over, and this test failed.
    """
    a, b = _zone(2.0, 300.0), _zone(1.0, 300.0)
    assert abs(a.width_mm - b.width_mm) <= max(1.0, 0.05 * b.width_mm), (a, b)
    assert abs(a.length_mm - b.length_mm) <= max(1.0, 0.05 * b.length_mm), (a, b)


def _radial_split(a_mm: float, rho_c_mm: float, rho_s_mm: float, n: int = 4000) -> float:
    """Share of a ring source at ``rho_s`` leaving through ``rho_c`` (finite volumes).

    Steady radial conduction in the annulus ``a < rho < rho_c``, both ends held at 0: the
    nodes are ``n`` equal steps, the conductance between two nodes ``rho_mid / step``
    (per radian and unit length, k = 1). An independent check of the closed form.
    """
    r = np.linspace(a_mm, rho_c_mm, n + 1)
    step = r[1] - r[0]
    g = 0.5 * (r[1:] + r[:-1]) / step  # between node i and i + 1
    inner = np.arange(1, n)  # unknowns: nodes 1..n-1
    main = g[inner - 1] + g[inner]
    mat = np.diag(main) - np.diag(g[inner[:-1]], 1) - np.diag(g[inner[:-1]], -1)
    src = np.zeros(n - 1)
    src[int(np.argmin(np.abs(r[inner] - rho_s_mm)))] = 1.0
    t = np.linalg.solve(mat, src)
    return float(g[-1] * t[-1])  # the flux into the outer node


@pytest.mark.parametrize(
    ("a", "rho_c", "rho_s"), [(1.2, 2.0, 1.3), (1.2, 2.0, 1.8), (0.9, 2.83, 1.5), (1.2, 1.41, 1.25)]
)
def test_wall_kept_fraction_is_the_annulus_split(a, rho_c, rho_s):
    """The node's share of power deposited between a cooled wall and the node: the closed
    form against a finite-volume solve of the annulus (4000 steps: a discretisation error
    below 1e-3, the tolerance)."""
    from ioplan.physics import wall_kept_fraction

    ref = _radial_split(a, rho_c, rho_s)
    got = float(wall_kept_fraction(np.array([rho_s]), np.array([rho_c]), a)[0])
    assert got == pytest.approx(ref, abs=1e-3)
    # inside the catheter none of it, beyond the node all of it
    out = wall_kept_fraction(np.array([0.5 * a, rho_c, rho_c + 1.0]), np.full(3, rho_c), a)
    assert out.tolist() == [0.0, 1.0, 1.0]


def test_field_model_simulate_smoke():
    res = simulate(SimulationConfig(EMPRINT, power_w=60.0, duration_s=30.0, spacing_mm=3.0))
    assert res.modality == "mw" and res.zone.volume_ml > 0
    assert res.max_temperature_c > 60.0
