"""The model learns from the scanner: it fits power and perfusion, and predicts the zone.

Power and perfusion are fitted to the thermometry as it arrives; the final ablation zone
is predicted with an uncertainty.

Model: Pennes bioheat with constant liver properties (the tissue table) around a point
source switched on at ``t_on``: the temperature rise is the source's power convolved
with the perfused Green's function

    dT(r, t) = P / (rho c) * int_0^(t - t_on) exp(-w s) (4 pi a s)^(-3/2) exp(-r^2 / 4 a s) ds,

the same solution the engine is verified against (tests/test_physics_verification.py).
Two unknowns: the effective power P (W) and the perfusion w (1/s). They are fitted by
least squares (scipy) to the measured rise in voxels where it is above the noise, from
all frames so far. The final zone: the fitted model run to the planned end, CEM43 >= 240
min; its uncertainty: the zone volume for parameter draws from the fit's covariance
(5th-95th percentiles). A research model: a real antenna is a line source with a
temperature-dependent field; the point source is the simplest model with the right
physics, and the fit says how far it is from the data (residual RMS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from ioplan.errors import InputError
from ioplan.monitoring._prf import cem43_increment

__all__ = ["ZonePrediction", "pennes_point_rise", "predict_zone"]

#: The source's radius (mm): inside it the rise is held at its value there (an antenna is
#: about 1 mm thick and the tissue next to it chars; thermometry there is unreliable).
SOURCE_RADIUS_MM = 2.5
#: Voxels this close to the source are left out of the fit (susceptibility artefact of
#: the applicator, and the point-source model's weakest region).
FIT_MIN_RADIUS_MM = 4.0


def _props():
    from ioplan.tissue import tissue

    t = tissue("liver")
    return t.density_kg_m3 * t.specific_heat_j_kg_k, t.thermal_diffusivity_m2_s


def pennes_point_rise(r_mm: np.ndarray, t_s: float, power_w: float, perfusion_1_per_s: float,
                      *, t_on_s: float = 0.0, n_nodes: int = 32) -> np.ndarray:  # fmt: skip
    """Temperature rise (degC) at distances ``r_mm`` from a point source of ``power_w``.

    The time integral is done in the variable u = sqrt(s) (smooth at s -> 0) with
    Gauss-Legendre nodes.
    """
    rho_c, a = _props()
    dur = max(t_s - t_on_s, 0.0)
    r = np.asarray(r_mm, float) * 1e-3
    if dur <= 0 or power_w == 0:
        return np.zeros_like(r)
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    u = 0.5 * (x + 1.0) * math.sqrt(dur)
    wu = 0.5 * w * math.sqrt(dur)
    s = u * u  # s = u^2, ds = 2u du
    r2 = np.maximum(r * r, (SOURCE_RADIUS_MM * 1e-3) ** 2)  # the source has a finite size
    out = np.zeros_like(r)
    for sk, uk, wk in zip(s, u, wu, strict=True):
        g = math.exp(-perfusion_1_per_s * sk) * (4.0 * math.pi * a * sk) ** -1.5
        out += wk * 2.0 * uk * g * np.exp(-r2 / (4.0 * a * sk))
    return power_w / rho_c * out


@dataclass(frozen=True)
class ZonePrediction:
    """Fitted parameters and the predicted final zone."""

    power_w: float
    perfusion_1_per_s: float
    power_sd_w: float
    perfusion_sd_1_per_s: float
    residual_rms_c: float
    necrosis_volume_ml: float
    necrosis_volume_p5_ml: float
    necrosis_volume_p95_ml: float
    end_time_s: float
    frames_used: int

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _final_volume(r_mm, voxel_ml, p, w, t_on, t_end, body_c, dt=5.0) -> float:
    cem = np.zeros_like(r_mm)
    prev = np.full(r_mm.shape, body_c)
    for t in np.arange(t_on + dt, t_end + 1e-9, dt):
        cur = body_c + pennes_point_rise(r_mm, t, p, w, t_on_s=t_on)
        cem += cem43_increment(prev, cur, dt)
        prev = cur
    return float((cem >= 240.0).sum()) * voxel_ml


def predict_zone(
    temps_c: list[np.ndarray], times_s: list[float], r_mm: np.ndarray, *, t_on_s: float,
    end_time_s: float, voxel_ml: float, valid: np.ndarray | None = None,
    body_c: float = 37.0, noise_c: float = 0.5, n_draws: int = 40, seed: int = 0,
) -> ZonePrediction:  # fmt: skip
    """Fit P and w to the measured temperatures so far and predict the final zone.

    ``r_mm``: each voxel's distance from the source (the applicator's hot spot).
    """
    if not temps_c:
        raise InputError("no thermometry frames to learn from")
    if end_time_s <= times_s[-1]:
        raise InputError("the end of treatment must lie after the last frame")
    v = np.ones(r_mm.shape, bool) if valid is None else np.asarray(valid, bool)
    # at most 10 frames, spread over the history: each adds little once the rise is seen
    pick = np.unique(np.linspace(0, len(times_s) - 1, min(10, len(times_s))).round().astype(int))
    temps_c = [temps_c[i] for i in pick]
    times_s = [times_s[i] for i in pick]
    sel = v & (r_mm < 20.0) & (r_mm >= FIT_MIN_RADIUS_MM)  # the heated neighbourhood
    rr = r_mm[sel]
    data = np.concatenate([np.asarray(t)[sel] - body_c for t in temps_c])

    def resid(x):
        p, w = x
        model = np.concatenate([pennes_point_rise(rr, t, p, w, t_on_s=t_on_s) for t in times_s])
        return (model - data) / noise_c

    fit = least_squares(resid, x0=[20.0, 0.005], bounds=([0.0, 0.0], [500.0, 0.1]))
    p, w = (float(v_) for v_ in fit.x)
    jac = fit.jac
    dof = max(1, data.size - 2)
    s2 = float(np.sum(fit.fun**2)) / dof
    try:
        cov = np.linalg.inv(jac.T @ jac) * s2
    except np.linalg.LinAlgError:
        cov = np.diag([p * p, w * w])
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal([p, w], cov, size=n_draws)
    draws = np.clip(draws, [0.0, 0.0], None)
    vols = [_final_volume(r_mm[v], voxel_ml, d[0], d[1], t_on_s, end_time_s, body_c)
            for d in draws]  # fmt: skip
    best = _final_volume(r_mm[v], voxel_ml, p, w, t_on_s, end_time_s, body_c)
    return ZonePrediction(
        power_w=p,
        perfusion_1_per_s=w,
        power_sd_w=float(math.sqrt(max(cov[0, 0], 0.0))),
        perfusion_sd_1_per_s=float(math.sqrt(max(cov[1, 1], 0.0))),
        residual_rms_c=float(math.sqrt(s2)) * noise_c,
        necrosis_volume_ml=best,
        necrosis_volume_p5_ml=float(np.percentile(vols, 5)),
        necrosis_volume_p95_ml=float(np.percentile(vols, 95)),
        end_time_s=end_time_s,
        frames_used=len(pick),
    )
