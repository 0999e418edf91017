"""Identifiability of a microwave calibration: sensitivity and Gauss-Newton uncertainty.

The engine is replaced by a stub whose errors are exactly linear in the logarithms of the
six parameters, e = c + A ln(x / x0), so the finite differences must recover A, and the
covariance must be the textbook linear least-squares one, s^2 (A^T A)^-1 with
s^2 = |c|^2 / (n - p) (e.g. Bates & Watts 1988, section 1.1), computed here from A and c
directly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ioplan.devices import applicator
from ioplan.errors import InputError
from ioplan.validation import MW_PARAMETERS, ZonePrediction, ZoneRow, _calibrate
from ioplan.validation._identify import parameter_identifiability

NAMES = tuple(MW_PARAMETERS)


def _rows(n: int = 8):
    return [ZoneRow(device="amica", frequency_mhz=2450.0, power_w=20.0 * (1 + i % 3),
                    duration_s=60.0 * (1 + i), length_mm=30.0 + i, width_mm=20.0 + i,
                    line=i + 2)
            for i in range(n)]  # fmt: skip


def _linear_engine(monkeypatch, a: np.ndarray, c: np.ndarray, seen: list | None = None):
    """Errors (length, width per row) = c + a @ ln(x / x0), x0 the catalogue's amica."""
    x0 = np.array([getattr(applicator("amica"), k) for k in NAMES])

    def predict(rows, *, spacing_mm, applicators, initial_temperature_c=None):
        app = applicators["amica"]
        x = np.array([getattr(app, k) for k in NAMES])
        if seen is not None:
            seen.append(x)
        e = c + a @ np.log(x / x0)
        return [ZonePrediction(r, r.length_mm + e[2 * i], r.width_mm + e[2 * i + 1], 0.0,
                               r.length_mm, r.width_mm, spacing_mm)
                for i, r in enumerate(rows)]  # fmt: skip

    monkeypatch.setattr(_calibrate, "predict_zones", predict)


def test_the_covariance_is_the_linear_least_squares_one(monkeypatch):
    rng = np.random.default_rng(7)
    a = rng.normal(0.0, 3.0, size=(16, 6))
    c = rng.normal(0.0, 1.5, size=16)
    seen: list = []
    _linear_engine(monkeypatch, a, c, seen)
    res = parameter_identifiability(applicator("amica"), _rows(), spacing_mm=1.0)
    # the finite differences of an exactly linear function are exact (to rounding)
    np.testing.assert_allclose(res.jacobian_mm, a, rtol=1e-9, atol=1e-9)
    s2 = float(c @ c) / (16 - 6)
    cov = s2 * np.linalg.inv(a.T @ a)
    se = np.sqrt(np.diag(cov))
    for j, k in enumerate(NAMES):
        assert res.standard_error_log[k] == pytest.approx(se[j], rel=1e-6)
        hi = res.interval_95(k)[1]
        assert math.log(hi / res.values[k]) == pytest.approx(1.959964 * se[j], rel=1e-6)
        assert res.identified(k) == (math.exp(1.959964 * se[j]) < 2.0)
    np.testing.assert_allclose(res.correlation, cov / np.outer(se, se), atol=1e-9)
    assert res.residual_sd_mm == pytest.approx(math.sqrt(s2), rel=1e-12)
    assert res.evaluations == len(seen) == 2 * 6 + 1
    # no evaluation leaves the parameters' bounds (amica's feed offset sits 0.015 mm above
    # its lower bound: that difference is one-sided)
    lo_b = np.array([MW_PARAMETERS[k][0] for k in NAMES])
    hi_b = np.array([MW_PARAMETERS[k][1] for k in NAMES])
    assert all(np.all(x >= lo_b - 1e-12) and np.all(x <= hi_b + 1e-12) for x in seen)
    doc = res.to_dict()
    assert set(doc["parameters"]) == set(NAMES)
    assert doc["condition_number"] == pytest.approx(np.linalg.cond(a), rel=1e-3)


def test_a_parameter_without_effect_or_collinear_with_another_is_not_identified(monkeypatch):
    rng = np.random.default_rng(3)
    a = rng.normal(0.0, 3.0, size=(16, 6))
    a[:, 1] = 0.0  # detuning exponent: moves no zone
    a[:, 3] = -2.0 * a[:, 2]  # backward spread: undoes twice the forward spread
    _linear_engine(monkeypatch, a, rng.normal(0.0, 1.0, size=16))
    res = parameter_identifiability(applicator("amica"), _rows(), spacing_mm=1.0)
    for k in (NAMES[1], NAMES[2], NAMES[3]):
        assert math.isinf(res.standard_error_log[k]) and not res.identified(k)
        assert res.interval_95(k) == (0.0, math.inf)
        assert res.to_dict()["parameters"][k]["standard_error_log"] is None
    for k in (NAMES[0], NAMES[4], NAMES[5]):
        assert math.isfinite(res.standard_error_log[k])
    assert math.isinf(res.condition_number)
    # the least constrained direction lies in the span of the three
    w = np.array([res.weakest_direction[k] for k in NAMES])
    assert np.sum(w[[1, 2, 3]] ** 2) == pytest.approx(1.0, abs=1e-9)


def test_bad_requests_are_refused():
    with pytest.raises(InputError, match="only microwave"):
        parameter_identifiability(applicator("cryo-2.4mm"), _rows())
    with pytest.raises(InputError, match="step_log"):
        parameter_identifiability(applicator("amica"), _rows(), step_log=0.0)
    with pytest.raises(InputError, match="at least 3"):
        parameter_identifiability(applicator("amica"), _rows(2))


def test_a_held_parameter_is_left_out_and_the_degrees_of_freedom_follow(monkeypatch):
    """Holding the forward spread (as the stored fits do) leaves a five-column Jacobian and
    s^2 = |c|^2 / (n - 5); the reference is the linear least-squares covariance of the other
    five columns."""
    rng = np.random.default_rng(11)
    a = rng.normal(0.0, 3.0, size=(16, 6))
    c = rng.normal(0.0, 1.5, size=16)
    seen: list = []
    _linear_engine(monkeypatch, a, c, seen)
    k = NAMES.index("axial_sigma_forward_mm")
    res = parameter_identifiability(applicator("amica"), _rows(), spacing_mm=1.0,
                                    fixed=("axial_sigma_forward_mm",))  # fmt: skip
    keep = [j for j in range(6) if j != k]
    assert res.parameters == tuple(NAMES[j] for j in keep)
    assert res.evaluations == len(seen) == 2 * 5 + 1
    assert len({float(x[k]) for x in seen}) == 1  # never moved
    ak = a[:, keep]
    cov = float(c @ c) / (16 - 5) * np.linalg.inv(ak.T @ ak)
    for i, j in enumerate(keep):
        assert res.standard_error_log[NAMES[j]] == pytest.approx(math.sqrt(cov[i, i]), rel=1e-6)
    with pytest.raises(InputError, match="cannot fix"):
        parameter_identifiability(applicator("amica"), _rows(), fixed=("bogus",))
