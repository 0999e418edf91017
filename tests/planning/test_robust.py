"""Monte Carlo robustness of a plan to placement error, against analytic references.

Geometry used throughout: a zone part that is a ball of radius ``RZ`` = 12 mm centred on
the tip, and a tumour (= target) ball of radius ``R`` = 7 mm at the same centre, on a
0.5 mm grid. The plan is complete exactly when the zone, moved by the error, still holds
the tumour ball: when the tumour centre moves by at most ``RZ - R`` = 5 mm.

Voxelisation: a target voxel centre ``p`` is mapped to ``q`` and rounded to the nearest
voxel ``v``; ``|v - q| <= h sqrt(3) / 2`` (half a voxel diagonal, 0.43 mm). So a sample
whose centre shift is below ``RZ - R - h sqrt(3)/2`` is surely complete; above
``RZ - R + h sqrt(3)/2`` the lattice ball's extreme voxels leave the lattice zone (the
boundary seen is 4.80-5.36 mm with seed 1, inside that band). The analytic probability
is therefore bracketed by evaluating it at ``RZ - R -/+ h sqrt(3)/2``, and the Monte
Carlo estimate must fall inside the bracket widened by 4 binomial standard errors
(``sqrt(p (1 - p) / n)``, 0.011 at p = 0.5 and n = 2000): a false failure has
probability below 1e-4 even before the bracket's own width.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.transform import Rotation

from ioplan.errors import InputError
from ioplan.imaging import Grid
from ioplan.planning._robust import (
    PlacementError,
    _perpendicular_basis,
    _rotations,
    robust_coverage,
)

H = 0.5  # grid spacing, mm
RZ = 12.0  # zone ball radius, mm
R = 7.0  # tumour ball radius, mm
GAP = RZ - R  # allowed shift of the tumour centre, mm
HALF_DIAG = H * math.sqrt(3.0) / 2.0  # largest nearest-voxel rounding distance, mm
L = 150.0  # tip to skin entry, mm
N_MC = 2000


@pytest.fixture(scope="module")
def balls():
    """Grid centred on the LPS origin (61^3 voxels of 0.5 mm) and distance to the centre."""
    n = 61
    grid = Grid((n, n, n), (H, H, H), origin_mm=(-15.0, -15.0, -15.0))
    zz, yy, xx = np.indices(grid.shape) * H - 15.0
    dist = np.sqrt(zz**2 + yy**2 + xx**2)
    return grid, dist, zz


def _draws(seed: int, samples: int, applicators: int) -> np.ndarray:
    """The documented draw layout: (samples, applicators, 5) standard normals."""
    return np.random.default_rng(seed).standard_normal((samples, applicators, 5))


def _binomial_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1.0 - p), 1e-12) / n)


def test_tip_error_matches_chi3(balls):
    grid, dist, _ = balls
    # chi(3) median = 1.538, so sigma = GAP / 1.538 = 3.25 mm per axis gives p = 0.5.
    sigma = GAP / stats.chi(3).median()
    tip = round(sigma * math.sqrt(3.0), 2)  # 5.63 mm RMS
    sigma = tip / math.sqrt(3.0)
    err = PlacementError(tip_mm=tip, angle_deg=0.0, samples=N_MC, seed=1)
    out = robust_coverage([dist <= RZ], [((0, 0, 0), (0, 0, L))], grid, dist <= R, dist <= R, err)

    assert out["nominal_complete"] is True
    assert out["nominal_target_coverage_percent"] == 100.0
    p_mc = out["robust_coverage"]
    p_lo = stats.chi(3).cdf((GAP - HALF_DIAG) / sigma)  # 0.422
    p_hi = stats.chi(3).cdf((GAP + HALF_DIAG) / sigma)  # 0.575
    se = _binomial_se(0.5, N_MC)
    assert p_lo - 4 * se < p_mc < p_hi + 4 * se
    assert out["ci95"][0] <= p_mc <= out["ci95"][1]

    # Sample by sample, from the documented draws: the shift decides, up to voxelisation.
    shift = np.linalg.norm(_draws(1, N_MC, 1)[:, 0, :3], axis=1) * sigma
    complete = np.array(out["per_sample_tumour_coverage_percent"]) == 100.0
    assert complete.sum() == out["complete_samples"]
    assert np.all(complete[shift <= GAP - HALF_DIAG])
    assert not np.any(complete[shift > GAP + HALF_DIAG])
    # Most samples fall outside the ambiguous band, so this is a sharp check.
    assert np.mean(np.abs(shift - GAP) > HALF_DIAG) > 0.8


@pytest.mark.parametrize("direction", [(0.0, 0.0, 1.0), (1.0, 2.0, 2.0)])
def test_angle_error_matches_rayleigh(balls, direction):
    grid, dist, _ = balls
    u = np.asarray(direction) / np.linalg.norm(direction)
    entry = L * u  # the pivot, L from the tip (and from the ball centre)
    # The ball centre moves by 2 L sin(theta / 2) exactly (the ball is symmetric, so the
    # rotation of the points around it does not matter): complete iff
    # theta <= theta* = 2 arcsin(GAP / (2 L)) = 0.0333 rad. |theta| is Rayleigh with
    # scale s = a / sqrt(2); its median s sqrt(2 ln 2) = theta* gives a = 2.3 degrees.
    # L = 150 mm >> R so the small-angle form 1 - exp(-(GAP/L)^2 / (2 s^2)) differs
    # by < 1e-4 from the exact one used here.
    angle = 2.3
    s = math.radians(angle) / math.sqrt(2.0)

    def p_of(gap: float) -> float:
        theta = 2.0 * math.asin(gap / (2.0 * L))
        return 1.0 - math.exp(-(theta**2) / (2.0 * s**2))

    err = PlacementError(tip_mm=0.0, angle_deg=angle, samples=N_MC, seed=2)
    out = robust_coverage([dist <= RZ], [((0, 0, 0), entry)], grid, dist <= R, dist <= R, err)
    p_mc = out["robust_coverage"]
    se = _binomial_se(0.5, N_MC)
    assert p_of(GAP - HALF_DIAG) - 4 * se < p_mc < p_of(GAP + HALF_DIAG) + 4 * se
    assert abs(p_of(GAP) - 0.5) < 0.01

    theta = np.linalg.norm(_draws(2, N_MC, 1)[:, 0, 3:], axis=1) * s
    centre_shift = 2.0 * L * np.sin(theta / 2.0)
    complete = np.array(out["per_sample_tumour_coverage_percent"]) == 100.0
    assert np.all(complete[centre_shift <= GAP - HALF_DIAG])
    assert not np.any(complete[centre_shift > GAP + HALF_DIAG])


def test_tilt_is_perpendicular_to_the_needle():
    rng = np.random.default_rng(5)
    for u in rng.standard_normal((20, 3)):
        u /= np.linalg.norm(u)
        v1, v2 = _perpendicular_basis(u)
        np.testing.assert_allclose(np.stack([v1, v2, u]) @ np.stack([v1, v2, u]).T, np.eye(3),
                                   atol=1e-12)  # fmt: skip
    rotvec = rng.standard_normal((4, 3, 3)) * 0.3
    np.testing.assert_allclose(
        _rotations(rotvec), Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(
            4, 3, 3, 3), atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(_rotations(np.zeros((2, 3))), np.broadcast_to(np.eye(3), (2, 3, 3)))


def test_zero_error_is_the_nominal(balls):
    grid, dist, _ = balls
    zero = PlacementError(tip_mm=0.0, angle_deg=0.0, samples=10)
    needle = [((0, 0, 0), (0, 0, L))]
    out = robust_coverage([dist <= RZ], needle, grid, dist <= R, dist <= R, zero)
    assert out["robust_coverage"] == 1.0 and out["nominal_complete"] is True
    assert out["ci95"][1] == 1.0 and out["ci95"][0] > 0.69  # Wilson, 10 of 10: [0.722, 1]
    assert out["p5_target_coverage_percent"] == 100.0
    small = robust_coverage([dist <= 5.0], needle, grid, dist <= R, dist <= R, zero)
    assert small["robust_coverage"] == 0.0 and small["nominal_complete"] is False
    assert small["complete_samples"] == 0 and small["ci95"][0] == 0.0
    # Hand count: the part holds the voxels within 5 mm, the target those within 7 mm.
    expected = 100.0 * np.count_nonzero(dist <= 5.0) / np.count_nonzero(dist <= R)
    assert small["nominal_target_coverage_percent"] == pytest.approx(expected, abs=0.005)
    assert small["per_sample_target_coverage_percent"] == [round(expected, 2)] * 10


def test_goal_fraction_on_the_margin_shell(balls):
    grid, dist, _ = balls
    # Tumour 7 mm, target 13 mm (6 mm margin), zone 12.5 mm: the tumour is covered, the
    # target only partly: fraction = count(<= 12.5) / count(<= 13), about (12.5/13)^3.
    frac = np.count_nonzero(dist <= 12.5) / np.count_nonzero(dist <= 13.0)
    assert 0.85 < frac < 0.92
    zero = PlacementError(tip_mm=0.0, angle_deg=0.0, samples=10)
    args = ([dist <= 12.5], [((0, 0, 0), (0, 0, L))], grid, dist <= R, dist <= 13.0, zero)
    below = robust_coverage(*args, goal_fraction=frac - 0.001)
    above = robust_coverage(*args, goal_fraction=frac + 0.001)
    assert below["nominal_complete"] and below["robust_coverage"] == 1.0
    assert not above["nominal_complete"] and above["robust_coverage"] == 0.0
    assert below["mean_tumour_coverage_percent"] == 100.0
    assert below["nominal_target_coverage_percent"] == pytest.approx(100 * frac, abs=0.005)


def test_two_half_balls(balls):
    grid, dist, zz = balls
    # Array axis 0 is LPS z here: the upper and the lower half of the zone ball.
    upper, lower = (dist <= RZ) & (zz >= 0), (dist <= RZ) & (zz < 0)
    needles = [((0, 0, 3), (0, 0, L)), ((0, 0, -3), (0, 0, -L))]
    zero = PlacementError(tip_mm=0.0, angle_deg=0.0, samples=20)
    both = robust_coverage([upper, lower], needles, grid, dist <= R, dist <= R, zero)
    assert both["nominal_complete"] and both["robust_coverage"] == 1.0
    one = robust_coverage([upper], needles[:1], grid, dist <= R, dist <= R, zero)
    assert not one["nominal_complete"] and one["robust_coverage"] == 0.0
    # The upper half covers the voxels with z >= 0: 100 * count / total, by hand.
    expected = 100.0 * np.count_nonzero((dist <= R) & (zz >= 0)) / np.count_nonzero(dist <= R)
    assert one["mean_tumour_coverage_percent"] == pytest.approx(expected, abs=0.005)
    # Each half moves on its own: with error, both halves must stay put, so the split plan
    # is no more robust than one ball moving as a whole (same tip error, same seed).
    err = PlacementError(tip_mm=4.0, angle_deg=0.0, samples=200, seed=3)
    split = robust_coverage([upper, lower], needles, grid, dist <= R, dist <= R, err)
    whole = robust_coverage([dist <= RZ], needles[:1], grid, dist <= R, dist <= R, err)
    assert 0.0 < split["robust_coverage"] < whole["robust_coverage"]


def test_seed_and_chunking(balls):
    grid, dist, _ = balls
    parts = [dist <= 10.0, dist <= 9.0]
    needles = [((0, 0, 0), (0, 0, L)), ((1, 0, 0), (100, 0, 0))]
    err = PlacementError(tip_mm=3.0, angle_deg=3.0, samples=50, seed=7)
    ref = robust_coverage(parts, needles, grid, dist <= 6.0, dist <= 8.0, err)
    ref.pop("runtime_s")
    assert 0.0 < ref["robust_coverage"] < 1.0
    for chunk in (1, 7, 1000):
        out = robust_coverage(parts, needles, grid, dist <= 6.0, dist <= 8.0, err, chunk=chunk)
        out.pop("runtime_s")
        assert out == ref
    other = PlacementError(tip_mm=3.0, angle_deg=3.0, samples=50, seed=8)
    out = robust_coverage(parts, needles, grid, dist <= 6.0, dist <= 8.0, other)
    assert out["per_sample_target_coverage_percent"] != ref["per_sample_target_coverage_percent"]
    assert out["seed"] == 8 and ref["seed"] == 7


def test_result_is_json_ready(balls):
    grid, dist, _ = balls
    out = robust_coverage([dist <= RZ], [((0, 0, 0), (0, 0, L))], grid, dist <= R, dist <= 8.0,
                          PlacementError(samples=30))  # fmt: skip
    back = json.loads(json.dumps(out))
    assert back == out
    assert set(out) == {
        "robust_coverage", "ci95", "samples", "complete_samples", "placement_error_mm",
        "angle_error_deg", "seed", "goal_fraction", "nominal_complete",
        "nominal_target_coverage_percent", "mean_target_coverage_percent",
        "p5_target_coverage_percent", "mean_tumour_coverage_percent",
        "per_sample_target_coverage_percent", "per_sample_tumour_coverage_percent", "model",
        "runtime_s",
    }  # fmt: skip
    assert out["samples"] == 30 and len(out["per_sample_target_coverage_percent"]) == 30
    assert out["placement_error_mm"] == 2.0 and out["angle_error_deg"] == 3.0
    assert out["p5_target_coverage_percent"] <= out["mean_target_coverage_percent"]


def test_speed_three_applicators_20000_points():
    grid = Grid((40, 40, 40), (1.0, 1.0, 1.0))
    target = np.zeros(grid.shape, dtype=bool)
    target[5:25, 0:40, 5:30] = True  # 20 * 40 * 25 = 20000 voxels
    assert target.sum() == 20000
    tumour = np.zeros_like(target)
    tumour[10:20, 10:30, 10:25] = True
    parts = [np.zeros_like(target) for _ in range(3)]
    parts[0][:, :14], parts[1][:, 13:27], parts[2][:, 26:] = True, True, True
    needles = [((17.0, y, 15.0), (17.0, y, 200.0)) for y in (7.0, 20.0, 33.0)]
    out = robust_coverage(parts, needles, grid, tumour, target, PlacementError(samples=200))
    assert out["nominal_complete"]
    assert out["runtime_s"] < 5.0


def test_input_errors(balls):
    grid, dist, _ = balls
    ball, needle = dist <= RZ, [((0, 0, 0), (0, 0, L))]
    with pytest.raises(InputError, match="parts"):
        robust_coverage([], [], grid, dist <= R, dist <= R)
    with pytest.raises(InputError, match=r"parts\[0\] must have the grid's shape"):
        robust_coverage([ball[1:]], needle, grid, dist <= R, dist <= R)
    with pytest.raises(InputError, match="target must have"):
        robust_coverage([ball], needle, grid, dist <= R, (dist <= R)[:, 1:])
    with pytest.raises(InputError, match="tumour must hold"):
        robust_coverage([ball], needle, grid, np.zeros(grid.shape, bool), dist <= R)
    with pytest.raises(InputError, match="needles"):
        robust_coverage([ball, ball], needle, grid, dist <= R, dist <= R)
    with pytest.raises(InputError, match="zero length"):
        robust_coverage([ball], [((0, 0, 0), (0, 0, 0))], grid, dist <= R, dist <= R)
    with pytest.raises(InputError, match="goal_fraction"):
        robust_coverage([ball], needle, grid, dist <= R, dist <= R, goal_fraction=1.5)
    with pytest.raises(InputError, match="overlap the target"):
        robust_coverage([ball], needle, grid, dist <= 2.0, (dist > 3.0) & (dist <= R))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"tip_mm": -1.0}, "tip_mm"), ({"tip_mm": 21.0}, "tip_mm"), ({"angle_deg": 31}, "angle_deg"),
     ({"angle_deg": float("nan")}, "angle_deg"), ({"samples": 9}, "samples"),
     ({"samples": 100001}, "samples"), ({"samples": 20.5}, "samples"), ({"seed": -1}, "seed")],
)  # fmt: skip
def test_placement_error_validation(kwargs, name):
    with pytest.raises(InputError, match=name) as info:
        PlacementError(**kwargs)
    assert "\n" not in str(info.value)
