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

__all__ = [
    "ZonePrediction",
    "check_engine_source",
    "pennes_point_rise",
    "predict_zone",
    "predict_zone_engine",
]

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
    #: "point" (analytic Pennes point source) or "engine" (ioplan.physics with the applicator)
    model: str = "point"
    #: with the engine: fitted power / nominal power, and the predicted zone's size
    power_scale: float | None = None
    zone_length_mm: float | None = None
    zone_width_mm: float | None = None
    applicator: str | None = None

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


# ----------------------------------------------------------------- the engine as the model

#: Voxels used by the engine fit: within this distance of the applicator axis ...
ENGINE_FIT_RADIUS_MM = 25.0
#: ... and not closer than this to it (the shaft's susceptibility artefact).
ENGINE_FIT_MIN_RADIUS_MM = 3.0
#: Frames of the history the engine fit uses (spread over it; each costs one snapshot).
ENGINE_FIT_FRAMES = 4


def _rotation_to_minus_z(direction) -> np.ndarray:
    """Rotation taking the unit vector ``direction`` to (0, 0, -1) (Rodrigues)."""
    d = np.asarray(direction, float)
    n = np.linalg.norm(d)
    if not np.isfinite(n) or n == 0:
        raise InputError(f"applicator direction {tuple(direction)} is not a direction")
    d = d / n
    e = np.array([0.0, 0.0, -1.0])
    v = np.cross(d, e)
    c = float(d @ e)
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def check_engine_source(applicator_id: str, nominal_power_w: float, direction):
    """The catalogue applicator for :func:`predict_zone_engine`, after checking its inputs.

    Cheap (a catalogue look-up): call it before the thermometry. Raises
    :class:`~ioplan.errors.InputError` for an unknown applicator or a cryoprobe, a power
    outside (0, 300] W, or a direction of zero length.
    """
    from ioplan.devices import applicator

    if not np.isfinite(nominal_power_w) or not 0 < nominal_power_w <= 300:
        raise InputError(f"--power-w must be in (0, 300] W, got {nominal_power_w}")
    app = applicator(applicator_id)
    if app.modality == "cryo":
        raise InputError(f"{applicator_id} is a cryoprobe: the learned model is for heating")
    _rotation_to_minus_z(direction)
    return app


def predict_zone_engine(
    temps_c: list[np.ndarray], times_s: list[float], points_lps: np.ndarray, *,
    applicator_id: str, tip_lps, direction, nominal_power_w: float, t_on_s: float,
    end_time_s: float, valid: np.ndarray | None = None, body_c: float = 37.0,
    noise_c: float = 0.5, spacing_mm: float = 2.0,
) -> ZonePrediction:  # fmt: skip
    """Fit power and perfusion of the full engine to the thermometry; predict the final zone.

    The engine (``ioplan.physics``: the applicator's own source model, temperature-dependent
    tissue properties, perfusion shut-down, Arrhenius/CEM43 damage) is run in a homogeneous
    liver block whose axis is the applicator's (``tip_lps``, ``direction`` from the entry
    towards the tip). Its temperature at up to :data:`ENGINE_FIT_FRAMES` frame times is
    sampled (linearly) at the thermometry voxels ``points_lps`` (same shape as a frame plus
    a last axis of 3) near the axis, and the power scale (effective / nominal power) and
    the perfusion (1/s) are fitted by least squares. The final zone is the engine's, run to
    ``end_time_s`` with the fitted values; its 5-95 % band comes from the fit's covariance
    by the delta method (two more runs). The band holds the parameters' uncertainty only,
    not the model's (a homogeneous block, no vessels; the engine's grid).
    """
    from scipy.ndimage import map_coordinates

    from ioplan.physics import SimulationConfig, simulate

    if not temps_c:
        raise InputError("no thermometry frames to learn from")
    if end_time_s <= times_s[-1]:
        raise InputError("the end of treatment must lie after the last frame")
    app = check_engine_source(applicator_id, nominal_power_w, direction)
    heated = [i for i, t in enumerate(times_s) if t > t_on_s + 1e-6]
    if not heated:
        raise InputError("no frame after the heat was switched on (--heat-on-s)")
    pick = np.unique(
        np.linspace(heated[0], heated[-1], min(ENGINE_FIT_FRAMES, len(heated))).round()
    ).astype(int)
    pts = np.asarray(points_lps, float).reshape(-1, 3)
    rot = _rotation_to_minus_z(direction)
    local = (pts - np.asarray(tip_lps, float)) @ rot.T  # block frame: tip at 0, axis -z
    radial = np.hypot(local[:, 0], local[:, 1])
    sel = (radial <= ENGINE_FIT_RADIUS_MM) & (radial >= ENGINE_FIT_MIN_RADIUS_MM)
    sel &= (local[:, 2] >= -ENGINE_FIT_RADIUS_MM) & (local[:, 2] <= 60.0)
    if valid is not None:
        sel &= np.asarray(valid, bool).reshape(-1)
    if sel.sum() < 10:
        raise InputError("fewer than 10 valid thermometry voxels near the applicator axis")
    data = np.concatenate([np.asarray(temps_c[i], float).reshape(-1)[sel] for i in pick])
    loc = local[sel]
    k_max = min(3.0, 300.0 / nominal_power_w)

    def run(k: float, w: float, duration: float, snaps=()):
        cfg = SimulationConfig(
            applicator=app, power_w=k * nominal_power_w, duration_s=duration,
            spacing_mm=spacing_mm, margin_mm=ENGINE_FIT_RADIUS_MM + 10.0,
            perfusion_per_s=w, snapshot_times_s=tuple(snaps),
        )  # fmt: skip
        return simulate(cfg)

    def model(x) -> np.ndarray:
        k, w = float(x[0]), float(x[1])
        rel = [float(times_s[i] - t_on_s) for i in pick]
        res = run(k, w, rel[-1], snaps=rel)
        idx = res.grid.lps_to_index(loc).T
        out = []
        for t in rel:
            field_c = res.snapshot_temperatures_c[f"{t:g}"]
            out.append(map_coordinates(field_c, idx, order=1, mode="nearest"))
        return np.concatenate(out) - 37.0 + body_c  # the engine's body is at 37 degC

    def resid(x):
        return (model(x) - data) / noise_c

    x0 = [1.0, 0.0064]
    fit = least_squares(
        resid, x0=x0, bounds=([0.1, 0.0], [k_max, 0.05]), x_scale=[0.3, 0.005],
        diff_step=[0.02, 0.05], max_nfev=40,
    )  # fmt: skip
    k, w = (float(v_) for v_ in fit.x)
    dof = max(1, data.size - 2)
    s2 = float(np.sum(fit.fun**2)) / dof
    try:
        cov = np.linalg.inv(fit.jac.T @ fit.jac) * s2
    except np.linalg.LinAlgError:
        cov = np.diag([k * k, max(w, 1e-3) ** 2])
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    full = end_time_s - t_on_s
    best = run(k, w, full).zone
    # delta method: the zone volume's gradient by a secant over one sd or 5 % of the value,
    # whichever is larger (the volume counts voxels: smaller steps may not change it)
    grad = []
    for j, (lo, hi) in enumerate(((0.1, k_max), (0.0, 0.05))):
        x = [k, w]
        step = max(sd[j], 0.05 * abs(x[j]), 1e-4)
        x[j] = min(hi, x[j] + step) if x[j] + step <= hi else max(lo, x[j] - step)
        dv = run(x[0], x[1], full).zone.volume_ml - best.volume_ml
        grad.append(dv / (x[j] - (k, w)[j]) if x[j] != (k, w)[j] else 0.0)
    g = np.asarray(grad)
    vol_sd = float(math.sqrt(max(g @ cov @ g, 0.0)))
    return ZonePrediction(
        power_w=k * nominal_power_w,
        perfusion_1_per_s=w,
        power_sd_w=float(sd[0] * nominal_power_w),
        perfusion_sd_1_per_s=float(sd[1]),
        residual_rms_c=float(math.sqrt(s2)) * noise_c,
        necrosis_volume_ml=float(best.volume_ml),
        necrosis_volume_p5_ml=max(0.0, best.volume_ml - 1.645 * vol_sd),
        necrosis_volume_p95_ml=best.volume_ml + 1.645 * vol_sd,
        end_time_s=end_time_s,
        frames_used=len(pick),
        model="engine",
        power_scale=k,
        zone_length_mm=float(best.length_mm),
        zone_width_mm=float(best.width_mm),
        applicator=app.id,
    )
