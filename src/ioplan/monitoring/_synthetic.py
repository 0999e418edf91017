"""A synthetic MR scanner for tests and demos: complex PRF images from a temperature history.

Each frame: magnitude of an elliptic object (zero outside: noise only), a smooth background
field-map phase, the PRF phase alpha gamma B0 TE (T - T_baseline), a global phase drift that
grows in time with a linear spatial gradient, rigid respiratory motion (a sine along the
first in-plane axis, moving tissue, field and temperature together), and complex Gaussian
noise at the given SNR (object magnitude / noise sigma).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ioplan.monitoring._prf import ThermometryConfig

__all__ = ["ScannerConfig", "engine_temperatures", "gaussian_heating", "synthetic_frames"]


@dataclass(frozen=True)
class ScannerConfig:
    """Synthetic acquisition (units in the names)."""

    b0_t: float = 3.0
    te_ms: float = 10.0
    snr: float = 50.0
    drift_rad_per_s: float = 0.0
    motion_mm: float = 0.0
    motion_period_s: float = 4.0
    spacing_mm: float = 1.5
    baseline_temperature_c: float = 37.0
    seed: int = 0


def gaussian_heating(shape, spacing_mm: float, times_s, *, peak_rise_c: float = 40.0,
                     width_mm: float = 6.0, heat_from_s: float = 0.0,
                     tau_s: float = 30.0, body_c: float = 37.0) -> np.ndarray:  # fmt: skip
    """A hot spot at the centre: T = body + rise (1 - exp(-(t - t0)/tau)) exp(-r^2 / 2w^2)."""
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * spacing_mm for n in shape], indexing="ij")
    r2 = sum(g * g for g in grids)
    space = np.exp(-r2 / (2.0 * width_mm**2))
    out = []
    for t in times_s:
        ramp = 0.0 if t <= heat_from_s else 1.0 - math.exp(-(t - heat_from_s) / tau_s)
        out.append(body_c + peak_rise_c * ramp * space)
    return np.stack(out)


def synthetic_frames(temperature_c: np.ndarray, times_s, cfg: ScannerConfig) -> np.ndarray:
    """Complex frames (n, *shape) for the temperature history ``temperature_c`` (n, *shape).

    ``temperature_c`` is in the tissue's rest position (the first frame's); motion moves
    it with the tissue.
    """
    rng = np.random.default_rng(cfg.seed)
    shape = temperature_c.shape[1:]
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) / max(n - 1, 1) for n in shape],
                        indexing="ij")  # fmt: skip
    # object: an ellipse filling ~80 % of each in-plane axis (all slices)
    r2 = sum((g / 0.42) ** 2 for g in grids[-2:])
    mag = np.where(r2 <= 1.0, 1.0, 0.0) * (1.0 + 0.2 * grids[-1])
    field = 3.0 * grids[-1] ** 2 - 2.0 * grids[-2] * grids[-1] + 1.5 * grids[-2]
    rad_per_c = ThermometryConfig(b0_t=cfg.b0_t, te_ms=cfg.te_ms).rad_per_c
    sigma = 1.0 / cfg.snr
    frames = []
    for t, temp in zip(times_s, temperature_c, strict=True):
        drift = cfg.drift_rad_per_s * t * (1.0 + 0.5 * grids[-1] + 0.3 * grids[-2])
        phase = field + rad_per_c * (temp - cfg.baseline_temperature_c) + drift
        z = mag * np.exp(1j * phase)
        if cfg.motion_mm:
            shift_vox = cfg.motion_mm * math.sin(2 * math.pi * t / cfg.motion_period_s)
            sh = [0.0] * len(shape)
            sh[-2] = shift_vox / cfg.spacing_mm
            z = ndimage.shift(z.real, sh, order=1) + 1j * ndimage.shift(z.imag, sh, order=1)
        noise = rng.normal(0, sigma, shape) + 1j * rng.normal(0, sigma, shape)
        frames.append((z + noise).astype(np.complex64))
    return np.stack(frames)


def engine_temperatures(result, times_s, heat_on_s: float, grid, tip_lps, direction, *,
                        body_c: float = 37.0) -> np.ndarray:  # fmt: skip
    """Temperatures (n, *grid.shape) on an image grid from an engine run's snapshots.

    The run (``ioplan.physics.simulate`` in a block: the applicator along -z, its tip at the
    origin) is placed with its tip at ``tip_lps`` and its axis along ``direction`` (entry
    towards tip); each image voxel is rotated into the block and sampled linearly. A frame
    at or before ``heat_on_s`` is ``body_c``; a frame at t takes the run's snapshot at
    ``t - heat_on_s`` (the run's ``snapshot_times_s`` must hold it).
    """
    from ioplan.monitoring._learn import _rotation_to_minus_z

    tip = np.asarray(tip_lps, float)
    local = (grid.voxel_centres_lps().reshape(-1, 3) - tip) @ _rotation_to_minus_z(direction).T
    idx = result.grid.lps_to_index(local).T
    out = np.full((len(times_s), *grid.shape), body_c)
    for i, t in enumerate(times_s):
        if t > heat_on_s:
            f = result.snapshot_temperatures_c[f"{t - heat_on_s:g}"]
            out[i] = ndimage.map_coordinates(f, idx, order=1, mode="nearest").reshape(grid.shape)
    return out
