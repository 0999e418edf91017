"""The planner learns from a verified zone that came nearer a protected structure than predicted.

Session 56: with session 55's antenna fits the bone demo's five verification rounds each
chose a single antenna whose simulated zone came 2.0 mm from the spinal canal (protect 3 mm)
while the ellipsoid surrogate judged it 4.5 mm clear beyond the protect distance; excluding
only each culprit's path let a neighbouring path with the same setting be chosen again. Now
every candidate must predict the clearance the miss showed (the safety analogue of the
required depth for missed target points).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ioplan.planning._candidates import ellipsoid_clearance_mm
from ioplan.planning._inverse import clearance_needed


def _distance_to_ellipse(x, y, a, b, n=200_000):
    """Brute force: the nearest of n points on the ellipse (x/a)^2 + (y/b)^2 = 1."""
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return float(np.min(np.hypot(a * np.cos(t) - x, b * np.sin(t) - y)))


@pytest.mark.parametrize("a,b", [(20.0, 15.0), (15.0, 20.0), (18.0, 18.0), (25.0, 8.0)])
def test_the_clearance_is_a_lower_bound_of_the_distance_and_exact_for_a_sphere(a, b):
    rng = np.random.default_rng(int(a * b))
    pts = rng.uniform(-2 * max(a, b), 2 * max(a, b), size=(400, 2))
    outside = np.hypot(pts[:, 0] / a, pts[:, 1] / b) > 1.0
    for x, y in pts[outside][:60]:
        lb = ellipsoid_clearance_mm(np.array([x]), np.array([abs(y)]), a, b)
        d = _distance_to_ellipse(x, y, a, b)
        # brute force samples the ellipse every 2 pi max(a, b) / n < 1e-3 mm
        assert 0.0 < lb <= d + 1e-3
        if a == b:
            assert lb == pytest.approx(d, abs=1e-3)
    inside = pts[~outside][:5]
    assert ellipsoid_clearance_mm(inside[:, 0], np.abs(inside[:, 1]), a, b) < 0.0
    assert ellipsoid_clearance_mm(np.zeros(0), np.zeros(0), a, b) == np.inf


def _verification(distance_mm, lethal=False, protect_mm=3.0):
    risk = {"structure": "spinal canal", "closest_distance_mm": distance_mm,
            "lethal_damage": lethal, "within_protect_distance": distance_mm < protect_mm}
    return SimpleNamespace(metrics={"at_risk": [risk]})


def test_the_needed_clearance_is_the_surrogates_shortfall_and_only_grows():
    cs = SimpleNamespace(clearance_mm=np.array([4.5, 1.0, np.inf, 7.0]))
    # the bone demo's miss: judged 4.5 mm clear beyond 3 mm, simulated 2.0 mm away
    assert clearance_needed(_verification(2.0), cs, [0], 3.0, 0.0) == pytest.approx(5.5)
    # several culprits: the surrogate trusted the most clear one, so the shortfall is its
    assert clearance_needed(_verification(2.0), cs, [0, 1], 3.0, 0.0) == pytest.approx(5.5)
    # a zone that reached into the structure counts from 0 mm
    assert clearance_needed(_verification(0.0, lethal=True), cs, [1], 3.0, 0.0) == 4.0
    # never lowered; nothing learnt without harm, culprit, or a finite prediction
    assert clearance_needed(_verification(2.0), cs, [1], 3.0, 6.0) == 6.0
    assert clearance_needed(_verification(5.0), cs, [0], 3.0, 1.0) == 1.0
    assert clearance_needed(_verification(2.0), cs, [], 3.0, 1.0) == 1.0
    assert clearance_needed(_verification(2.0), cs, [2], 3.0, 1.0) == 1.0
