"""Cryoprobes limited by their gas's cooling power (issue 19: "probe temperature versus
gas flow sharing").

A Joule-Thomson probe extracts at most its cooling power; below that it is held at its
temperature floor. The engine sets the probe's temperature each second so that the heat
through its cut faces equals the power (:func:`ioplan.physics._sources.cryo_power_limited_c`).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import liver_k_of_t
from ioplan.anatomy import Label
from ioplan.devices import applicator
from ioplan.imaging import Grid
from ioplan.physics import CryoProtocol, SimulationConfig, simulate, tissue_material_table
from ioplan.physics._domain import make_domain
from ioplan.physics._simulate import _materials
from ioplan.physics._sources import cryo_power_limited_c
from ioplan.physics._subvoxel import Cylinder, cylinder_surfaces, inside_cylinders

CRYO = applicator("cryo-2.4mm")


def test_power_limited_temperature_recounted_by_hand():
    """The limit against a recount over the cut voxels: each carries
    ``c_n V integral_{T_p}^{T_n} k(T) dT`` (the tissue between its centre and the probe in
    whatever phase it is in: unfrozen above the liquidus, frozen below the solidus, mushy
    between), integrated here by quadrature of k(T), not by the code's closed form; the
    limit's T_p must make that sum the cooling power (quadrature and bisection tolerances
    1e-4 degC, so 1e-6 relative on the power).
    """
    from scipy.integrate import quad

    g = Grid((6, 9, 9), (1.5, 1.5, 1.5), origin_mm=(-6.0, -6.0, -4.0))
    cyl = Cylinder((0.4, 0.3, 0.0), (0.0, 0.0, 1.0), 1.2, -2.0, 2.0)
    tab = tissue_material_table()
    mat = np.full(g.shape, int(Label.LIVER), np.uint8)
    inside = inside_cylinders(g, [cyl])
    outer = np.ones(g.shape, bool)
    outer[1:-1, 1:-1, 1:-1] = False
    surf = cylinder_surfaces(g, [cyl], inside | outer)
    assert surf.size > 4
    rng = np.random.default_rng(0)
    t = rng.uniform(-30.0, 20.0, g.shape)  # frozen, mushy and unfrozen voxels
    q = 12.0
    got = cryo_power_limited_c(t, mat, tab, surf, g, q)
    k_of, breaks = liver_k_of_t(tab, int(Label.LIVER))
    taken = 0.0
    for n, idx in enumerate(surf.index):
        tn = float(t.reshape(-1)[idx])
        integral = quad(k_of, got, tn, points=breaks, epsabs=1e-10, limit=200)[0]
        taken += surf.coefficient_m2[n] * g.voxel_volume_m3 * integral
    assert got < float(t.min())  # colder than every cut voxel here
    assert taken == pytest.approx(q, rel=1e-6)
    # a greater power needs a colder probe
    assert cryo_power_limited_c(t, mat, tab, surf, g, 2 * q) < got
    # two tissues among the cut voxels (the root is then found numerically, not in closed
    # form): the same recount, each voxel with its own material's k(T)
    mixed = mat.copy()
    mixed.reshape(-1)[surf.index[::2]] = int(Label.TUMOR)
    got2 = cryo_power_limited_c(t, mixed, tab, surf, g, q)
    taken2 = 0.0
    for n, idx in enumerate(surf.index):
        k_n, br = liver_k_of_t(tab, int(mixed.reshape(-1)[idx]))
        tn = float(t.reshape(-1)[idx])
        integral = quad(k_n, got2, tn, points=br, epsabs=1e-10, limit=200)[0]
        taken2 += surf.coefficient_m2[n] * g.voxel_volume_m3 * integral
    assert taken2 == pytest.approx(q, rel=1e-6)
    # no cut faces: no limit
    assert cryo_power_limited_c(t, mat, tab, None, g, q) == -np.inf


@pytest.mark.slow
def test_power_limited_probe_takes_its_cooling_power_from_the_tissue():
    """Energy balance: while the limit binds, the tissue loses the probe's cooling power.

    A 2.4 mm probe at 20 W, floor -185.8 degC (not reached: the coldest tissue is -42
    degC at 120 s), liver block without perfusion, 2 mm voxels, 20 mm margin. Between 60
    s and 120 s the far faces (20 mm away; the cold reaches about 4 mm in 2 min) add no
    heat, so the free voxels' enthalpy falls by 20 W x 60 s = 1200 J. The probe's
    temperature is set once a second from the state at that moment, so the power may lag
    as the ice grows; measured 1194.9 J (0.4 %). Bound 5 %.
    """
    q = 20.0

    def energy(seconds: float) -> float:
        cfg = SimulationConfig(
            CRYO, protocol=CryoProtocol.parse(f"freeze:{seconds:g}"), perfusion_per_s=0.0,
            spacing_mm=2.0, margin_mm=20.0, cryo_cooling_power_w=q,
        )  # fmt: skip
        res = simulate(cfg)
        model = _materials(cfg, make_domain(cfg))
        free = model.free.copy()
        free[0, :, :] = free[-1, :, :] = False
        free[:, 0, :] = free[:, -1, :] = False
        free[:, :, 0] = free[:, :, -1] = False
        return float(np.sum(res.state.energy_j_m3[free])) * res.grid.voxel_volume_m3

    lost = energy(60.0) - energy(120.0)
    assert lost == pytest.approx(q * 60.0, rel=0.05)


def test_array_probes_share_no_gas_but_each_has_its_power():
    """Each probe of an array has the single probe's cooling power (Sprenkle et al., J
    Endourol 2010: firing several argon probes at once changed no probe's temperature):
    the settings carry the total, n times the per-probe power.
    """
    base = dict(protocol=CryoProtocol.parse("freeze:5"), spacing_mm=4.0, margin_mm=15.0,
                cryo_cooling_power_w=20.0)  # fmt: skip
    one = simulate(SimulationConfig(CRYO, **base))
    four = simulate(SimulationConfig(CRYO, array=4, spacing_between_mm=20.0, **base))
    assert one.settings["cryo_cooling_power_w"] == pytest.approx(20.0)
    assert four.settings["cryo_cooling_power_w"] == pytest.approx(80.0)
    unlimited = simulate(SimulationConfig(CRYO, **{**base, "cryo_cooling_power_w": np.inf}))
    assert unlimited.settings["cryo_cooling_power_w"] is None


def test_phase_at_follows_the_protocol():
    proto = CryoProtocol.parse("freeze:600,thaw:300,freeze:600")
    assert [proto.phase_at(t) for t in (0.0, 599.9, 600.0, 899.0, 900.0, 2000.0)] == [
        "freeze", "freeze", "thaw", "thaw", "freeze", "freeze",
    ]  # fmt: skip


def test_tissue_properties_replace_the_block_row_and_are_validated():
    """A phantom's properties (Littrup's water-agar gel) replace the block tissue's row."""
    from ioplan.errors import InputError
    from ioplan.validation._checks import AGAR_GEL_PROPERTIES

    cfg = SimulationConfig(
        CRYO, protocol=CryoProtocol.parse("freeze:5"), spacing_mm=4.0, margin_mm=15.0,
        tissue_properties=dict(AGAR_GEL_PROPERTIES),
    )  # fmt: skip
    model = _materials(cfg, make_domain(cfg))
    row = model.problem.materials.row(int(Label.LIVER))
    for name, value in AGAR_GEL_PROPERTIES.items():
        assert row[name] == pytest.approx(value)
    with pytest.raises(InputError, match="unknown material property 'bogus'"):
        SimulationConfig(CRYO, protocol=CryoProtocol.parse("freeze:5"),
                         tissue_properties={"bogus": 1.0})  # fmt: skip
    with pytest.raises(InputError, match="cryo_cooling_power_w"):
        SimulationConfig(CRYO, protocol=CryoProtocol.parse("freeze:5"), cryo_cooling_power_w=-1.0)
