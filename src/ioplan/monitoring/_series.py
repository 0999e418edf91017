"""Thermometry on a stored series: 4D NIfTI magnitude + phase in, 4D temperature out."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.errors import InputError
from ioplan.imaging import Grid, read_nifti_series
from ioplan.monitoring._prf import Thermometry, ThermometryConfig

__all__ = ["PHASE_SCALES", "read_complex_series", "run_thermometry"]

#: How stored phase values map to radians. Siemens phase images are 12-bit: -4096..4095
#: maps to -pi..pi (vendor convention for phase-difference/phase maps).
PHASE_SCALES = {"radians": 1.0, "siemens": math.pi / 4096.0}


def read_complex_series(magnitude: Path, phase: Path, *, phase_scale: str = "radians"):
    """Complex frames (n, z, y, x), their 3D grid, and the frame spacing from the header."""
    if phase_scale not in PHASE_SCALES:
        raise InputError(f"phase scale must be one of {', '.join(PHASE_SCALES)}")
    mag, grid, dt = read_nifti_series(magnitude, what="magnitude")
    ph, grid_p, _ = read_nifti_series(phase, what="phase")
    if mag.shape != ph.shape or grid.mismatch(grid_p) is not None:
        raise InputError(
            f"magnitude {mag.shape} and phase {ph.shape} are not on the same grid and frames"
        )
    ph = ph * PHASE_SCALES[phase_scale]
    if ph.min() < -math.pi - 1e-3 or ph.max() > math.pi + 1e-3:
        raise InputError(
            f"phase runs {ph.min():.4g} to {ph.max():.4g}, outside -pi..pi for "
            f"--phase-scale {phase_scale} (Siemens 12-bit phase: --phase-scale siemens)"
        )
    if mag.min() < 0:
        raise InputError("magnitude has negative values")
    z = mag * np.exp(1j * ph)
    return z.astype(np.complex64), grid, dt


def run_thermometry(frames: np.ndarray, times_s, cfg: ThermometryConfig, *, grid: Grid,
                    protected: np.ndarray | None = None,
                    reference: np.ndarray | None = None,
                    probes_lps: list[tuple[float, float, float]] | None = None,
                    progress=None) -> dict[str, Any]:  # fmt: skip
    """Process every frame; returns the maps and the summary (JSON keys of the issue).

    With ``probes_lps`` (cryoablation), the ice ball is segmented on every frame (see
    :func:`ioplan.monitoring.measure_ice`); PRF temperatures inside the ice, where there
    is no signal, are left out (NaN) of the temperature maps.
    """
    th = Thermometry(cfg, voxel_ml=grid.voxel_volume_ml, protected=protected,
                     reference=reference)  # fmt: skip
    temps, alerts, ms = [], [], []
    last = None
    ice = None
    ice_rows = []
    probes = None
    if probes_lps:
        probes = np.rint(grid.lps_to_index(np.asarray(probes_lps, float))).astype(int)
        if np.any(probes < 0) or np.any(probes >= np.asarray(grid.shape)):
            raise InputError("a probe position lies outside the image")
    for i, (t, f) in enumerate(zip(times_s, frames, strict=True)):
        r = th.add(f, float(t), index=i)
        if progress is not None:
            progress(i)
        if r is None:
            continue
        t_map = r.temperature_c.astype(np.float32)
        if probes is not None:
            from ioplan.monitoring._cryo import measure_ice

            base_mag = np.abs(th._mean_base)
            ice = measure_ice(np.abs(f), base_mag, grid, probes, previous=ice,
                              dt_s=float(times_s[i] - times_s[i - 1]) if i else None)  # fmt: skip
            t_map[ice.mask] = np.nan
            ice_rows.append({"frame": i} | ice.to_dict())
        temps.append(t_map)
        alerts += r.alerts
        ms.append(r.ms)
        last = r
    if last is None:
        raise InputError(
            f"the series has {len(frames)} frames, all used as baseline "
            f"({cfg.baseline_frames}): nothing to measure"
        )
    valid_t = [float(np.nanmax(tt[last.valid])) for tt in temps if last.valid.any()]
    extra = {}
    if ice is not None:
        extra = {"ice": ice_rows[-1], "ice_by_frame": ice_rows}
    return {
        "valid": last.valid,
        "frame_times_s": [
            float(times_s[i]) for i in range(len(times_s)) if i >= cfg.baseline_frames
        ],
        "ice_mask": None if ice is None else ice.mask,
        "lethal_mask": None if ice is None else ice.core_40,
        "temperature": np.stack(temps),
        "cem43": th.cem43,
        "necrosis": (th.cem43 >= cfg.necrosis_cem43_min) & last.valid,
        "uncertainty": np.where(np.isfinite(last.uncertainty_c), last.uncertainty_c, -1.0),
        "summary": {
            "frames": len(temps),
            "baseline_frames": cfg.baseline_frames,
            "max_temperature_c": round(max(valid_t), 3) if valid_t else None,
            "necrosis_volume_ml": round(last.necrosis_volume_ml, 4),
            "ms_per_frame": round(float(np.median(ms)), 3),
            "alerts": alerts,
            "notes": list(th.notes),
            "rad_per_c": cfg.rad_per_c,
            "baseline_temperature_c": cfg.baseline_temperature_c,
        }
        | extra,
    }
