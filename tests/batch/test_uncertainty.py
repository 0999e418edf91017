"""The Monte Carlo sweep against analytic answers, and its reproducibility across workers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ioplan.batch import (
    Needle,
    SphereZoneModel,
    UncertaintySpec,
    dask_client,
    first_order_indices,
    lognormal_factor,
    perturb_needle,
    run_uncertainty,
    sample_draws,
    wilson_interval,
)
from ioplan.imaging import Grid


@pytest.fixture(scope="module")
def two_workers():
    with dask_client(workers=2) as client:
        yield client


def _point_tumour_model(radius_mm: float, n: int = 9) -> SphereZoneModel:
    """A 1 mm grid of n^3 voxels; the tumour is the centre voxel; the tip on it."""
    g = Grid((n, n, n))
    c = n // 2
    tumour = np.zeros(g.shape, bool)
    tumour[c, c, c] = True
    tip = tuple(float(v) for v in g.index_to_lps(np.array([[c, c, c]]))[0])
    needle = Needle(tip_mm=tip, direction=(0.0, 0.0, -1.0), entry_mm=None)
    return SphereZoneModel(grid=g, tumour=tumour, target=tumour, needles=(needle,),
                           radius_mm=radius_mm)  # fmt: skip


def test_point_tumour_coverage_follows_the_chi_distribution(two_workers):
    """P(complete) = P(|e| <= R) with |e| sqrt3 / tip ~ chi(3); each voxel: noncentral chi2."""
    tip_mm, radius_mm, n = 3.0, 3.0, 400
    model = _point_tumour_model(radius_mm)
    # angle error with no skin entry tilts about the tip: no tip movement; factors unused
    spec = UncertaintySpec(placement_error_mm=tip_mm, angle_error_deg=5.0, perfusion_cv=0.3)
    res = run_uncertainty(model, spec, samples=n, seed=11, client=two_workers)
    sd = tip_mm / math.sqrt(3)
    p = stats.chi(3).cdf(radius_mm / sd)  # 0.61
    # binomial standard error sqrt(p(1-p)/n) = 0.024; 4 SE: a false failure 6e-5 of the time
    assert abs(res.coverage_probability - p) < 4 * math.sqrt(p * (1 - p) / n)
    lo, hi = res.interval_95
    assert lo < res.coverage_probability < hi
    # the map: a voxel at distance d from the tip is in the ball when |d + e| <= R,
    # (|d + e| / sd)^2 ~ noncentral chi2(3, (d / sd)^2)
    g = model.grid
    pts = g.index_to_lps(np.indices(g.shape).reshape(3, -1).T)
    d = np.linalg.norm(pts - np.asarray(model.needles[0].tip_mm), axis=1)
    want = stats.ncx2(3, (d / sd) ** 2).cdf((radius_mm / sd) ** 2).reshape(g.shape)
    got = np.asarray(res.map.array, float)
    # averaged over the voxels at the same distance (a shell): a shift of this sample's
    # mean error raises one side and lowers the other, and the shell average cancels
    # that to first order. The average's SD is at most a voxel's binomial SD sqrt(p(1-p)/n)
    # (correlated members average no worse than one): 4 SD, plus one count (1/n).
    key = np.round(d, 6).reshape(g.shape)
    for r in np.unique(key):
        shell = key == r
        p_r = float(want[shell][0])
        assert abs(got[shell].mean() - p_r) <= 4 * math.sqrt(p_r * (1 - p_r) / n) + 1 / n, r
    assert got[4, 4, 4] == pytest.approx(res.coverage_probability)


def test_same_numbers_on_one_and_two_workers(two_workers):
    """Per-sample seeds: any number of workers gives the same bits."""
    model = _point_tumour_model(3.0, n=7)
    spec = UncertaintySpec(placement_error_mm=2.5, angle_error_deg=3.0)
    a = run_uncertainty(model, spec, samples=24, seed=5, client=two_workers)
    with dask_client(workers=1) as one:
        b = run_uncertainty(model, spec, samples=24, seed=5, client=one)
    assert (a.workers, b.workers) == (2, 1)
    assert a.per_sample_coverage == b.per_sample_coverage
    assert a.coverage_probability == b.coverage_probability
    assert np.array_equal(np.asarray(a.map.array), np.asarray(b.map.array))
    assert a.first_order == b.first_order
    c = run_uncertainty(model, spec, samples=24, seed=6, client=two_workers)
    assert c.per_sample_coverage != a.per_sample_coverage  # the seed matters


def test_sample_seeds_are_spawned_children():
    """Sample i draws from SeedSequence(seed).spawn(n)[i], first 5 normals per applicator."""
    child = np.random.SeedSequence(42).spawn(10)[7]
    want = np.random.default_rng(child).standard_normal(2 * 5 + 2)
    needle, factors = sample_draws(42, 7, 10, 2)
    assert np.array_equal(np.concatenate([needle.ravel(), factors]), want)


def test_tilt_and_tip_error_have_the_stated_rms():
    """RMS tilt = angle, RMS tip error length = tip (the model of planning.robust_coverage)."""
    spec = UncertaintySpec(placement_error_mm=0.0, angle_error_deg=4.0)
    tip, entry, u = np.array([0.0, 0.0, 0.0]), np.array([0.0, 0.0, 100.0]), (0.0, 0.0, -1.0)
    rng = np.random.default_rng(0)
    tilts, radii = [], []
    for z in rng.standard_normal((4000, 5)):
        t, d = perturb_needle(tip, u, entry, z, spec)
        tilts.append(math.degrees(math.acos(min(1.0, float(d @ np.asarray(u))))))
        radii.append(np.linalg.norm(t - entry))
    # the tip turns about the entry: its distance to it is kept exactly
    assert np.allclose(radii, 100.0)
    # mean of |w|^2 over 4000 draws of a chi2(2): relative SE 1/sqrt(4000) = 1.6 %; 5 %
    assert math.sqrt(np.mean(np.square(tilts))) == pytest.approx(4.0, rel=0.05)
    spec = UncertaintySpec(placement_error_mm=3.0, angle_error_deg=0.0)
    errs = [np.linalg.norm(perturb_needle(tip, u, entry, z, spec)[0] - tip)
            for z in rng.standard_normal((4000, 5))]  # fmt: skip
    assert math.sqrt(np.mean(np.square(errs))) == pytest.approx(3.0, rel=0.05)


def test_lognormal_factor_has_mean_one_and_the_cv():
    """Gauss-Hermite quadrature (exact for this smooth integrand to ~1e-12)."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    f = np.array([lognormal_factor(v, 0.3) for v in x])
    mean = float(w @ f)
    cv = math.sqrt(float(w @ (f - mean) ** 2)) / mean
    assert mean == pytest.approx(1.0, abs=1e-9)
    assert cv == pytest.approx(0.3, abs=1e-9)
    assert lognormal_factor(1.7, 0.0) == 1.0


def test_wilson_interval_matches_newcombe():
    """Newcombe (1998) Stat Med 17:857, table I: 81/263 -> 0.2553-0.3662; 0/10 -> 0-0.2775."""
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)


def test_first_order_indices_of_a_linear_model():
    """Y = X1 + 0.5 X2 + 0 X3, X ~ N(0, I): S1 = 1/1.25 = 0.8, S2 = 0.2, S3 = 0."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 3))
    y = x[:, 0] + 0.5 * x[:, 1]
    s = first_order_indices(x, y)
    # binning loses the within-bin variance of E[Y|X_i] (about 1 % at 55 bins) and the
    # estimate's sampling SD at n = 3000 is about 0.01-0.02: 0.05
    assert s == pytest.approx([0.8, 0.2, 0.0], abs=0.05)
    assert np.all(first_order_indices(x, np.ones(3000)) == 0)


def test_property_factor_scales_a_cryoprobes_cooling_power(small_case):
    """For a cryoprobe the property factor scales its calibrated cooling power per probe
    (the gas it gets): the engine's own runs at 0.7 and 1.5 times it, on the 4 mm phantom,
    give nested zones, the larger power the larger (colder everywhere: the lethal isotherm
    can only move outwards). Before, cryoprobes ignored the factor (equal zones). (0.5
    until session 43: with the Kirchhoff face conductances and the refitted 25 W one probe
    at half power reaches no -40 degC voxel on 4 mm voxels in perfused liver, 0 voxels at
    0.5 and 0.6, 46 at 0.7, so the nesting would be vacuous.)"""
    from ioplan.batch import EngineZoneModel
    from ioplan.planning import tumour_mask

    tumour, _ = tumour_mask(small_case)
    g = small_case.labels.grid
    centre = g.index_to_lps(np.argwhere(tumour).mean(axis=0)[None, :])[0]
    needle = Needle(tip_mm=tuple(float(v) for v in centre), direction=(0.0, 0.0, -1.0),
                    entry_mm=None)  # fmt: skip
    model = EngineZoneModel(
        case=small_case, applicator_id="cryo-2.4mm", needles=(needle,), spacing_mm=4.0,
        delivery="sequential", base_perfusion_1_per_s=None, tumour=tumour, target=tumour,
    )  # fmt: skip
    placed = [(np.asarray(needle.tip_mm), np.asarray(needle.direction))]
    weak = model.zone(placed, 1.0, 0.7)
    strong = model.zone(placed, 1.0, 1.5)
    assert weak.sum() > 0
    assert strong.sum() > weak.sum()
    assert not (weak & ~strong).any()
