"""Monte Carlo machinery of the uncertainty sweep: draws, perturbation, statistics.

Error model (the same as :func:`ioplan.planning.robust_coverage`, so that the plan's
robustness figure and this sweep mean the same thing):

1. each applicator tilts about its skin entry ``E`` by the rotation vector
   ``w = a v1 + b v2`` (``v1, v2`` perpendicular to the needle axis), ``a, b ~
   N(0, (angle / sqrt 2)^2)``: the RMS tilt is ``angle``;
2. then its tip moves by ``e ~ N(0, (tip / sqrt 3)^2 I_3)`` (mm): the RMS length of the
   3-D tip error is ``tip`` (``--placement-error-mm``), so ``|e| sqrt 3 / tip`` follows a
   chi distribution with 3 degrees of freedom;
3. the perfusion and the property factor are lognormal with mean 1 and the given
   coefficient of variation: ``exp(sigma z - sigma^2 / 2)``, ``sigma^2 = ln(1 + cv^2)``.

Random numbers: sample ``i`` draws from ``default_rng(SeedSequence(seed).spawn(n)[i])``,
``standard_normal((n_applicators, 5))`` (tip x, y, z; tilt a, b) then
``standard_normal(2)`` (perfusion, property), whatever the magnitudes (a zero error still
consumes its draws). A sample's numbers depend only on the seed and its index: the same
on any number of workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ioplan.errors import InputError

__all__ = [
    "UncertaintySpec",
    "first_order_indices",
    "lognormal_factor",
    "perturb_needle",
    "sample_draws",
    "wilson_interval",
]

#: Two-sided 95 % standard normal quantile.
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class UncertaintySpec:
    """Magnitudes of the errors sampled (see the module docstring for the model).

    Parameters
    ----------
    placement_error_mm : float
        RMS length of the 3-D tip error (mm), 0-20; per axis ``/ sqrt 3``.
    angle_error_deg : float
        RMS tilt of the needle axis about the skin entry (degrees), 0-30.
    perfusion_cv : float
        Coefficient of variation of the perfusion factor (lognormal, mean 1), 0-2.
    property_cv : float
        Coefficient of variation of the property factor (lognormal, mean 1), 0-2.
    """

    placement_error_mm: float = 2.0
    angle_error_deg: float = 3.0
    perfusion_cv: float = 0.3
    property_cv: float = 0.1

    def __post_init__(self) -> None:
        for name, value, hi in (
            ("--placement-error-mm", self.placement_error_mm, 20.0),
            ("--angle-error-deg", self.angle_error_deg, 30.0),
            ("--perfusion-cv", self.perfusion_cv, 2.0),
            ("--property-cv", self.property_cv, 2.0),
        ):
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= hi):
                raise InputError(f"{name} must be 0-{hi:g}, got {value!r}")


def sample_draws(seed: int, index: int, samples: int, n_applicators: int):
    """The standard normal draws of sample ``index`` of ``samples`` (see the module doc).

    Returns ``(needle, factors)``: arrays of shape ``(n_applicators, 5)`` and ``(2,)``.
    """
    if not 0 <= index < samples:
        raise InputError(f"sample index must be 0-{samples - 1}, got {index}")
    # SeedSequence(seed).spawn(samples)[index] is this child; built directly (O(1))
    child = np.random.SeedSequence(seed, spawn_key=(index,))
    rng = np.random.default_rng(child)
    return rng.standard_normal((n_applicators, 5)), rng.standard_normal(2)


def lognormal_factor(z: float, cv: float) -> float:
    """``exp(sigma z - sigma^2/2)`` with ``sigma^2 = ln(1 + cv^2)``: mean 1, CV ``cv``."""
    s2 = math.log1p(cv * cv)
    return math.exp(math.sqrt(s2) * z - 0.5 * s2)


def _rotate(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``v`` rotated by the rotation vector ``w`` (radians; Rodrigues)."""
    th = float(np.linalg.norm(w))
    if th == 0.0:
        return v.copy()
    k = w / th
    return v * math.cos(th) + np.cross(k, v) * math.sin(th) + k * (k @ v) * (1 - math.cos(th))


def perturb_needle(tip_mm, direction, entry_mm, draws: np.ndarray, spec: UncertaintySpec):
    """One applicator's perturbed ``(tip_mm, direction)`` for its 5 draws.

    ``entry_mm`` None: the needle tilts about its tip (no skin entry known).
    """
    tip = np.asarray(tip_mm, float)
    u = np.asarray(direction, float)
    u = u / np.linalg.norm(u)
    entry = tip if entry_mm is None else np.asarray(entry_mm, float)
    helper = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    v1 = np.cross(u, helper)
    v1 /= np.linalg.norm(v1)
    v2 = np.cross(u, v1)
    sd_rad = math.radians(spec.angle_error_deg) / math.sqrt(2.0)
    w = sd_rad * (draws[3] * v1 + draws[4] * v2)
    new_tip = entry + _rotate(tip - entry, w) + draws[:3] * spec.placement_error_mm / math.sqrt(3)
    new_u = _rotate(u, w)
    return new_tip, new_u / np.linalg.norm(new_u)


def wilson_interval(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion ``k / n`` (Wilson 1927, JASA 22:209)."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    z2 = _Z95 * _Z95
    den = 1 + z2 / n
    mid = (p + z2 / (2 * n)) / den
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def first_order_indices(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """First-order (Sobol) indices from given data, one per column of ``x``.

    ``S_i = Var(E[Y | X_i]) / Var(Y)`` estimated by the correlation ratio over
    equal-count bins of ``X_i`` (``max(2, min(50, round(sqrt n)))`` bins), with the
    small-sample correction of the adjusted correlation ratio (epsilon squared:
    ``(SS_between - (k - 1) MS_within) / SS_total``, Kelley 1935) so that an input
    with no effect scores about 0, clipped to [0, 1]. This is the given-data
    estimator of Plischke, Borgonovo & Smith (2013), Eur. J. Oper. Res. 226:536,
    doi:10.1016/j.ejor.2012.11.047: the Monte Carlo samples themselves, no Saltelli
    design (so the per-sample seeds stay the only randomness). Returns zeros when ``y``
    does not vary.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    n, d = x.shape
    out = np.zeros(d)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    if n < 4 or ss_tot <= 0:
        return out
    k = int(max(2, min(50, round(math.sqrt(n)))))
    for j in range(d):
        order = np.argsort(x[:, j], kind="stable")
        groups = np.array_split(y[order], k)
        ss_b = sum(len(g) * (g.mean() - y.mean()) ** 2 for g in groups)
        ss_w = ss_tot - ss_b
        ms_w = ss_w / max(n - k, 1)
        out[j] = min(1.0, max(0.0, (ss_b - (k - 1) * ms_w) / ss_tot))
    return out
