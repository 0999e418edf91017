"""Applicators on independent, non-parallel paths in one simulation (``placements``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from ioplan.anatomy import Label
from ioplan.devices import applicator
from ioplan.errors import InputError
from ioplan.physics import CryoProtocol, Placement, SimulationConfig, simulate
from ioplan.physics._domain import active_extent_mm, make_domain
from ioplan.physics._simulate import _materials
from ioplan.physics._sources import array_placements

MW = applicator("generic-mw-2450")
CRYO = applicator("cryo-2.4mm")
MW_KW = dict(power_w=60.0, duration_s=180.0, spacing_mm=2.0, margin_mm=25.0, perfusion_per_s=0.0)


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def test_placements_equal_to_an_array_give_the_same_zone():
    """The same two antennas, said as ``array=2`` or as two placements: the same physics.

    Both blocks put voxel centres on multiples of the spacing, so both antennas sit on the
    same lattice points and see the same sources; the blocks differ only in how far they
    reach (the array block adds its 15 mm spread on both transverse axes), and the engine
    widens either until the far boundary warms by less than its limit, so the boundary
    does not reach the zone. What is left is float rounding (float32 state): rel 1e-5.
    """
    array = simulate(SimulationConfig(MW, tip_mm=(0.0, 0.0, 0.0), array=2, **MW_KW))
    pls = tuple(array_placements(Placement((0.0, 0.0, 0.0)), 2, 15.0))
    indep = simulate(SimulationConfig(MW, placements=pls, **MW_KW))
    assert indep.zone.volume_ml == pytest.approx(array.zone.volume_ml, rel=1e-5)
    assert indep.max_temperature_c == pytest.approx(array.max_temperature_c, rel=1e-5)
    assert np.allclose(indep.settings["tips_mm"], array.settings["tips_mm"], atol=1e-9)
    assert indep.settings["directions"] == [[0.0, 0.0, -1.0]] * 2
    assert indep.settings["direction"] == [0.0, 0.0, -1.0]


def _principal_axis(mask: np.ndarray, grid) -> np.ndarray:
    pts = grid.index_to_lps(np.argwhere(mask).astype(float))
    w, v = np.linalg.eigh(np.cov((pts - pts.mean(axis=0)).T))
    return v[:, np.argmax(w)]


def test_far_apart_applicators_superpose_and_follow_their_own_axes():
    """Two antennas 70 mm apart, one vertical and one oblique (53 degrees off it).

    Each zone alone is ~35 mL, ~42 mm wide: ~21 mm in radius, so ~28 mm of unheated
    liver separates the zones (checked below: none reaches within 14 mm of the mid-plane).
    In 180 s heat diffuses ~sqrt(4 alpha t) ~ 10 mm, and 35 mm off its axis an antenna
    deposits a few % of the power per unit area that it does near the axis, far under
    the zone's threshold. So the zones do not interact: the joint volume is the sum of the
    single ones, up to the voxels that differ where the blocks' extents differ (2 %
    allowed; measured: 0.05 %).
    """
    a = Placement((-35.0, 0.0, 0.0), (0.0, 0.0, -1.0))
    b = Placement((35.0, 0.0, 0.0), (0.0, 0.8, -0.6))
    both = simulate(SimulationConfig(MW, placements=(a, b), **MW_KW))
    alone = [simulate(SimulationConfig(MW, placements=(p,), **MW_KW)) for p in (a, b)]
    total = sum(r.zone.volume_ml for r in alone)
    assert both.zone.volume_ml == pytest.approx(total, rel=0.02)
    assert both.settings["directions"] == [list(a.direction), list(b.direction)]
    labels, n = ndimage.label(both.zone_mask)
    assert n == 2
    grid = both.grid
    for p in (a, b):
        # the component nearest this antenna's feed gap is its zone
        feed = np.asarray(p.tip_mm) - np.asarray(p.direction) * MW.feed_offset_mm
        dist = [
            np.linalg.norm(grid.index_to_lps(np.argwhere(labels == k).astype(float)) - feed,
                           axis=1).min()
            for k in (1, 2)
        ]  # fmt: skip
        comp = labels == 1 + int(np.argmin(dist))
        lps = grid.index_to_lps(np.argwhere(comp).astype(float))
        # each zone stays on its own antenna's side of the mid-plane x = 0, well away
        assert np.all(lps[:, 0] * np.sign(p.tip_mm[0]) > 14.0)
        # an MW zone is elongated along its antenna: the principal axis of its voxels
        # is the antenna's axis to within ~18 degrees (voxels of 2 mm on a ~30 mm zone)
        cos = abs(float(_principal_axis(comp, grid) @ _unit(p.direction)))
        assert cos > math.cos(math.radians(18.0)), (p, cos)


def test_case_domain_holds_every_placement(small_case):
    c = np.asarray(small_case.tumors[0]["centre_mm"], float)
    off = np.array([10.0, 0.0, 0.0])
    a = Placement(tuple(c - off), (0.0, 0.0, -1.0))
    b = Placement(tuple(c + off), (0.6, 0.0, -0.8))
    cfg = SimulationConfig(MW, power_w=60.0, duration_s=60.0, tissue=None, case=small_case,
                           placements=(a, b), spacing_mm=4.0, margin_mm=15.0)  # fmt: skip
    dom = make_domain(cfg)
    assert dom.centre == a and dom.placements == [a, b]
    ext = active_extent_mm(MW)
    for p in (a, b):
        tip = np.asarray(p.tip_mm)
        for pt in (tip, tip - np.asarray(p.direction) * ext):
            assert dom.grid.contains_lps(tuple(pt))
            # and the margin around it
            for off in np.eye(3) * (cfg.margin_mm - 4.0):
                assert dom.grid.contains_lps(tuple(pt + off))
                assert dom.grid.contains_lps(tuple(pt - off))
    # a tip in air: a corner of the phantom's grid lies outside the body
    g = small_case.labels.grid
    corner = tuple(float(v) for v in g.index_to_lps(np.array([1.0, 1.0, 1.0])))
    assert np.asarray(small_case.labels.array)[1, 1, 1] == Label.BACKGROUND
    air = Placement(corner, (0.0, 0.0, -1.0))
    bad = SimulationConfig(MW, power_w=60.0, duration_s=60.0, tissue=None, case=small_case,
                           placements=(a, air), spacing_mm=4.0, margin_mm=15.0)  # fmt: skip
    with pytest.raises(InputError, match="in air") as err:
        make_domain(bad)
    assert str(air.tip_mm) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"tip_mm": (0.0, 0.0, 0.0)}, "not both"),
        ({"array": 2}, "not both"),
        ({"placements": tuple(Placement((3.0 * i, 0.0, 0.0)) for i in range(9))}, "at most 8"),
        ({"placements": (Placement((0.0, 0.0, 0.0)), (1.0, 2.0, 3.0))}, "placements[1]"),
    ],
)
def test_placements_refusals(extra, fragment):
    kw = {"placements": (Placement((0.0, 0.0, 0.0)), Placement((20.0, 0.0, 0.0)))}
    kw.update(extra)
    with pytest.raises(InputError) as err:
        SimulationConfig(MW, power_w=60.0, duration_s=60.0, **kw)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_placements_list_becomes_tuple_and_cluster_is_refused():
    pls = [Placement((0.0, 0.0, 0.0)), Placement((20.0, 0.0, 0.0), (1.0, 0.0, -1.0))]
    cfg = SimulationConfig(MW, power_w=60.0, duration_s=60.0, placements=pls)
    assert cfg.placements == tuple(pls)
    cluster = applicator("cooled-rf-cluster")
    with pytest.raises(InputError, match="cluster") as err:
        SimulationConfig(cluster, power_w=100.0, duration_s=60.0, placements=pls)
    assert "\n" not in str(err.value)
    # an external power map sets the sources itself
    from ioplan.imaging import Grid, Volume

    grid = Grid((9, 9, 9), (2.0, 2.0, 2.0), (-8.0, -8.0, -8.0))
    q = Volume(np.ones(grid.shape, np.float32), grid)
    with pytest.raises(InputError, match="no placements"):
        SimulationConfig(None, duration_s=60.0, power_density_w_m3=q, placements=pls)


def test_two_independent_cryoprobes_make_two_cold_segments():
    a = Placement((-12.0, 0.0, 0.0), (0.0, 0.0, -1.0))
    b = Placement((12.0, 0.0, 0.0), (-0.6, 0.0, -0.8))  # its shaft leans away from a
    cfg = SimulationConfig(CRYO, protocol=CryoProtocol.parse("freeze:120"), spacing_mm=3.0,
                           margin_mm=20.0, placements=(a, b))  # fmt: skip
    dom = make_domain(cfg)
    # the cold segments' voxels within half a voxel diagonal of each axis (issue 19: the
    # fixed voxels alone are the centres inside the true 1.2 mm radius, not connected at
    # 3 mm along an oblique axis; the surface between is cut-cell faces)
    cold = np.asarray(_materials(cfg, dom).cold)
    labels, n = ndimage.label(cold)
    assert n == 2
    res = simulate(cfg)
    assert len(res.settings["tips_mm"]) == 2
    assert res.min_temperature_c < 0.0  # the probes froze tissue
    # each cold segment lies on its own probe's axis, behind its tip
    for p in (a, b):
        axis = _unit(p.direction)
        for k in (1, 2):
            lps = dom.grid.index_to_lps(np.argwhere(labels == k).astype(float))
            rel = lps - np.asarray(p.tip_mm)
            along = rel @ axis
            radial = np.linalg.norm(rel - np.outer(along, axis), axis=1)
            if np.all(radial < 3.0):  # this segment belongs to p
                assert np.all(along <= 0.0)
                break
        else:
            pytest.fail(f"no cold segment along {p}")
