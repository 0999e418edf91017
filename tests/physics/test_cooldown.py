"""The power-off period after heating (``cooldown_s``): no power, damage keeps accruing.

References: a uniformly heated block far from its boundary is a lumped body (T rises as
q t / C, then holds), whose Arrhenius damage is a one-dimensional integral of the model's
rate (``scipy.integrate.quad``); and the same run without the power-off period.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ioplan.anatomy import Label
from ioplan.cli import main
from ioplan.devices import applicator
from ioplan.imaging import Grid, Volume
from ioplan.physics import SimulationConfig, simulate, tissue_material_table
from ioplan.tissue import arrhenius_parameters, constants

_ARR = arrhenius_parameters()
_A, _EA = _ARR["frequency_factor_1_per_s"], _ARR["activation_energy_j_mol"]
_R = constants()["gas_constant_j_mol_k"]


def _rate(t_c: float) -> float:
    """The model's Arrhenius rate: the excess over the rate at body temperature (1/s)."""

    def k(t):
        return _A * math.exp(-_EA / (_R * (t + 273.15)))

    return max(k(t_c) - k(_ARR["baseline_c"]), 0.0)


def test_uniform_block_holds_its_temperature_and_keeps_accruing_damage():
    """1 MW/m^3 inside the block for 60 s, then 120 s off, no perfusion, constant properties.

    The centre voxel lies 40 mm from the held boundary; the boundary's cooling reaches it
    within 180 s only as erfc(40 / (2 sqrt(alpha t))) = erfc(4.0) ~ 2e-8 of the rise per
    face (alpha = 0.52 / 3.82e6 m^2/s; at 24 mm it was a measurable 0.02 degC), so it is
    a lumped body: T = 37 + q t / C while heated, then
    constant. Its Omega: quad of the rate on the ramp plus rate(T1) x 120 s. Tolerance 2e-3
    relative: float32 temperatures and the rate table (test_damage.py's bound); the
    temperature to 2e-3 degC (float32 steps of a 16 degC rise).
    """
    g = Grid((41, 41, 41), (2.0, 2.0, 2.0), (-40.0, -40.0, -40.0))
    q = 1e6
    qmap = np.zeros(g.shape, np.float32)
    qmap[1:-1, 1:-1, 1:-1] = q  # the outer layer is the held boundary: no power there
    res = simulate(
        SimulationConfig(
            None,
            duration_s=60.0,
            cooldown_s=120.0,
            perfusion_per_s=0.0,
            constant_properties=True,
            power_density_w_m3=Volume(qmap, g),
        )
    )
    c = float(tissue_material_table().c_vol_j_m3_k[int(Label.LIVER)])
    t1 = 37.0 + q * 60.0 / c
    centre = (20, 20, 20)
    assert float(res.state.temperature_c[centre]) == pytest.approx(t1, abs=2e-3)
    assert float(res.state.tmax_c[centre]) == pytest.approx(t1, abs=2e-3)
    from scipy.integrate import quad

    ramp, _ = quad(lambda s: _rate(37.0 + q * s / c), 0.0, 60.0, epsrel=1e-10)
    ref = ramp + _rate(t1) * 120.0
    assert float(res.state.omega[centre]) == pytest.approx(ref, rel=2e-3)
    # the power stopped at 60 s: the energy is q x heated volume x 60 s (float32 rounding)
    assert res.energy_j == pytest.approx(q * (39 * 2e-3) ** 3 * 60.0, rel=1e-4)
    # the zone at power off is a snapshot, beside the end's
    assert set(res.snapshots) == {"60", "180"}


def test_power_off_period_changes_nothing_before_it():
    """The run with 120 s off equals the run without it up to power off, then grows.

    Both runs stop at 60 s with the same steps, so the heating and the zone at power off
    are the same arithmetic: equal to rounding. Omega only grows, so the final zone
    contains the one at power off.
    """
    app = applicator("generic-mw-2450")
    kw = dict(power_w=40.0, duration_s=60.0, perfusion_per_s=0.0, spacing_mm=3.0,
              tissue="liver")  # fmt: skip
    off = simulate(SimulationConfig(app, cooldown_s=120.0, **kw))
    on = simulate(SimulationConfig(app, **kw))
    assert off.energy_j == pytest.approx(on.energy_j, rel=1e-9)
    snap = off.snapshots["60"]
    assert snap.volume_ml == pytest.approx(on.zone.volume_ml, rel=1e-9)
    assert snap.length_mm == pytest.approx(on.zone.length_mm, abs=1e-9)
    assert off.zone.volume_ml > snap.volume_ml > 0
    assert np.all(off.state.omega >= on.state.omega * (1 - 1e-6))
    assert off.settings["cooldown_s"] == 120.0
    # the thermal-dose zone beside it: a recount of the voxels at CEM43 >= 240 min (the
    # antenna's cooled voxels never get there); 27 uL voxels
    n = int(np.count_nonzero(off.state.cem43_min >= 240.0))
    assert n > 0
    assert off.settings["thermal_dose_zone"]["volume_ml"] == pytest.approx(n * 0.027, rel=1e-9)


@pytest.mark.parametrize(
    "extra",
    [
        ["--applicator", "cryo-2.4mm", "--protocol", "freeze:60", "--cooldown-s", "30"],
        ["--applicator", "generic-mw-2450", "--power-w", "40", "--duration-s", "60",
         "--cooldown-s", "-5"],
        ["--applicator", "generic-mw-2450", "--power-w", "40", "--duration-s", "60",
         "--cooldown-s", "4000"],
    ],
)  # fmt: skip
def test_bad_cooldown_is_one_line_and_exit_2(extra, capsys):
    code = main(["simulate", "--tissue", "liver", "--quiet", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "cooldown" in err
