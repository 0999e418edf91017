"""PRF-shift thermometry, frame by frame: temperature, uncertainty, thermal dose, alerts.

dT = dphi / (alpha gamma B0 TE), with dphi the angle of the complex product of the
current frame and the conjugate of its baseline (never a difference of wrapped phases).
Baselines: the average of the first frames, or a library of them matched to each frame
by magnitude (respiratory motion; Vigen et al., MRM 2003). Drift: a polynomial (order 0-2)
fitted to dphi in unheated reference voxels and removed. Noise: voxels whose magnitude
SNR is below a threshold are masked; the temperature uncertainty per voxel is
sqrt(1 + 1/N) / (|alpha| gamma B0 TE SNR) for a baseline averaged over N frames.
Thermal dose: CEM43 integrated exactly for a temperature linear between frames, Arrhenius
damage by 5-point Gauss-Legendre on the same line (3-point on the engine's rate table in
the per-frame kernel); both from :mod:`ioplan.physics` (one home for thermal damage,
shared with the engine).

Speed: per frame, numba kernels do the baseline match (one pass over the voxels for every
baseline), the drift fit (the phase at the reference voxels only; the drift polynomial is
then applied along each row by complex products), the motion compensation (bilinear
interpolation of unit phasors, as ``scipy.ndimage.shift`` of cos and sin with order 1
and mode "nearest") and the unwrap, temperature and dose, fused; voxels outside the
noise mask take the constant dose increment of the baseline temperature.
"""

from __future__ import annotations

import math
import time
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numba
import numpy as np

from ioplan.errors import InputError
from ioplan.physics import (
    CEM43_NECROSIS_MIN,
    arrhenius_increment,
    arrhenius_log_constants,
    cem43_increment,
    dose_increment_linear,
    liver_rate_table,
)

__all__ = [
    "FrameResult",
    "Thermometry",
    "ThermometryConfig",
    "arrhenius_increment",
    "cem43_increment",
    "prf_constants",
]


@lru_cache(maxsize=1)
def prf_constants() -> dict[str, float]:
    """PRF constants and defaults (values; sources in monitoring/data/prf.toml)."""
    text = resources.files("ioplan.monitoring").joinpath("data/prf.toml").read_text()
    return {k: v["value"] for k, v in tomllib.loads(text).items()}


def _check_range(what: str, value: Any, lo: float, hi: float) -> None:
    """Raise InputError unless ``value`` is a finite number in ``[lo, hi]``."""
    try:
        ok = value is not None and not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok or not lo <= float(value) <= hi:
        raise InputError(f"{what} must be given and in {lo:g}-{hi:g}, got {value}")


@dataclass(frozen=True)
class ThermometryConfig:
    """Acquisition and processing settings (units in the names)."""

    b0_t: float
    te_ms: float
    baseline_frames: int = 1
    baseline_temperature_c: float = 37.0
    alpha_ppm_per_c: float | None = None
    multi_baseline: bool = False
    referenceless: bool = False
    drift_order: int = -1  # -1: no drift correction; 0-2: polynomial order
    snr_threshold: float | None = None
    necrosis_cem43_min: float = CEM43_NECROSIS_MIN
    alert_temperature_c: float | None = None

    def __post_init__(self) -> None:
        # every caller (CLI, live loop, library) gets the same checks; the messages name
        # the quantity with its unit, as the commands' options do
        _check_range("B0 (T)", self.b0_t, 0.1, 12.0)
        _check_range("TE (ms)", self.te_ms, 0.5, 200.0)
        if isinstance(self.baseline_frames, bool) or not isinstance(
            self.baseline_frames, int | np.integer
        ):
            raise InputError(f"baseline frames must be a whole number, got {self.baseline_frames}")
        if not 1 <= self.baseline_frames <= 1000:
            raise InputError(f"baseline frames must be 1-1000, got {self.baseline_frames}")
        _check_range("baseline temperature (degC)", self.baseline_temperature_c, 0.0, 45.0)
        if self.alpha_ppm_per_c is not None:
            # PRF coefficient of water-based tissue: about -0.01 ppm/degC (Rieke 2008)
            _check_range("PRF alpha (ppm/degC)", self.alpha_ppm_per_c, -0.05, -0.001)
        if isinstance(self.drift_order, bool) or self.drift_order not in (-1, 0, 1, 2):
            raise InputError(f"drift order must be -1 (off), 0, 1 or 2, got {self.drift_order}")
        if self.snr_threshold is not None:
            _check_range("SNR threshold", self.snr_threshold, 0.0, 1000.0)
        _check_range("necrosis threshold (CEM43 min)", self.necrosis_cem43_min, 1e-3, 1e9)
        if self.alert_temperature_c is not None:
            _check_range("alert temperature (degC)", self.alert_temperature_c, 37.0, 100.0)

    @property
    def alpha(self) -> float:
        a = self.alpha_ppm_per_c
        return prf_constants()["alpha_ppm_per_c"] if a is None else a

    @property
    def rad_per_c(self) -> float:
        """Phase change per degree (rad/degC): alpha gamma B0 TE."""
        gamma = 2.0 * math.pi * prf_constants()["gyromagnetic_ratio_mhz_per_t"] * 1e6
        return self.alpha * 1e-6 * gamma * self.b0_t * self.te_ms * 1e-3


def temperature_sigma_c(cfg: ThermometryConfig, snr, baseline_frames: int | None = None):
    """Temperature uncertainty (degC, one standard deviation) of a PRF frame.

    ``sqrt(1 + 1/N) / (|alpha gamma B0 TE| SNR)``: the frame's phase noise and its
    baseline's, averaged over ``N`` frames (``cfg.baseline_frames`` unless given); ``snr``
    is the magnitude SNR (a number or an array).
    """
    n = cfg.baseline_frames if baseline_frames is None else baseline_frames
    return np.sqrt(1.0 + 1.0 / n) / (abs(cfg.rad_per_c) * np.asarray(snr, float))


@numba.njit(parallel=True, cache=True)
def _match(z, mags, out):
    """Sum over voxels of (|z| - |baseline b|)^2 for every baseline: ``out[b]``.

    ``z`` (rows, nx) complex; ``mags`` (rows, nx, n_baselines) float32.
    """
    rows, nx = z.shape
    nb = mags.shape[2]
    part = np.zeros((rows, nb))
    for r in numba.prange(rows):
        for x in range(nx):
            w = z[r, x]
            m = math.sqrt(w.real * w.real + w.imag * w.imag)
            for b in range(nb):
                d = mags[r, x, b] - m
                part[r, b] += d * d
    for b in range(nb):
        out[b] = part[:, b].sum()


@numba.njit(parallel=True, cache=True)
def _ref_angles(z, base, idx, out):
    """Angle of z conj(base) at the flat indices ``idx`` (the drift reference voxels)."""
    for n in numba.prange(idx.size):
        w = z[idx[n]] * np.conj(base[idx[n]])
        out[n] = math.atan2(w.imag, w.real)


@numba.njit(inline="always", cache=True)
def _drift_steps(drift, r):
    """Phasors e^(-i d) at x = 0, its step and the step's step along row ``r``.

    The drift polynomial (order <= 2) is at most quadratic along a row, so
    e^(-i d(x)) follows from d(0), d(1), d(2) by complex products alone.
    """
    d0 = drift[r, 0]
    d1 = drift[r, 1] - d0
    d2 = drift[r, 2] - 2.0 * drift[r, 1] + d0
    p = complex(math.cos(d0), -math.sin(d0))
    q = complex(math.cos(d1), -math.sin(d1))
    c = complex(math.cos(d2), -math.sin(d2))
    return p, q, c


@numba.njit(parallel=True, cache=True)
def _phasors(z, base, drift, has_drift, out):
    """Unit phasors of z conj(base) e^(-i drift), row by row (``out`` (rows, nx))."""
    rows, nx = z.shape
    for r in numba.prange(rows):
        p = q = c = complex(1.0, 0.0)
        if has_drift:
            p, q, c = _drift_steps(drift, r)
        for x in range(nx):
            w = z[r, x] * np.conj(base[r, x])
            m = math.sqrt(w.real * w.real + w.imag * w.imag)
            w = w / m if m > 0.0 else complex(1.0, 0.0)
            out[r, x] = w * p
            p = p * q
            q = q * c


@numba.njit(parallel=True, cache=True, fastmath=False)
def _update(z, base, drift, has_drift, sampled, ny, sy, sx, last, has_last, rad_per_c, t_base,
            valid, prev, dt_s, cem, omega, tmax, nec_min, ln_a, ea_r, table, temp_out,
            dphi_out):  # fmt: skip
    """One frame, every voxel: phase, temporal unwrap, temperature, exact dose increments.

    Arrays are (rows, nx), rows running over slices of ``ny`` rows. Direct
    (``sampled`` False): dphi is the angle of z conj(base) e^(-i drift) at the voxel.
    Sampled: ``z`` holds unit phasors (drift removed) and dphi is the angle of their
    bilinear interpolation at (y + sy, x + sx) in the voxel's slice, coordinates clamped
    to the slice (motion compensation: ``scipy.ndimage.shift`` of cos and sin, order 1,
    mode "nearest", in one pass). Voxels outside ``valid`` stay at ``t_base`` and take
    the dose increment of ``t_base`` held, computed once. Returns the highest valid
    temperature and the number of valid voxels at CEM43 >= ``nec_min``.
    """
    rows, nx = z.shape
    two_pi = 2.0 * math.pi
    cem_base = 0.0
    om_base = 0.0
    if dt_s > 0.0:
        cem_base, om_base = dose_increment_linear(t_base, t_base, dt_s, ln_a, ea_r, table)
    # per-row results, combined after the loop: no scalar reduction across the parallel
    # loop (numba's reduction analysis rejects this loop's shape under Python 3.12)
    row_max = np.full(rows, -np.inf)
    row_nec = np.zeros(rows, np.int64)
    for r in numba.prange(rows):
        t_max = -np.inf
        n_nec = 0
        p = q = c = complex(1.0, 0.0)
        if has_drift and not sampled:
            p, q, c = _drift_steps(drift, r)
        slice0 = (r // ny) * ny
        j = r - slice0
        for x in range(nx):
            if not valid[r, x]:
                temp_out[r, x] = t_base
                dphi_out[r, x] = 0.0
                cem[r, x] += cem_base
                omega[r, x] += om_base
                if not sampled:
                    p = p * q
                    q = q * c
                continue
            if sampled:
                qy = min(max(j + sy, 0.0), ny - 1.0)
                qx = min(max(x + sx, 0.0), nx - 1.0)
                j0 = min(int(qy), max(ny - 2, 0))
                x0 = min(int(qx), max(nx - 2, 0))
                fy = qy - j0
                fx = qx - x0
                j1 = min(j0 + 1, ny - 1)
                x1 = min(x0 + 1, nx - 1)
                a0 = slice0 + j0
                a1 = slice0 + j1
                w = (1.0 - fy) * ((1.0 - fx) * z[a0, x0] + fx * z[a0, x1]) + fy * (
                    (1.0 - fx) * z[a1, x0] + fx * z[a1, x1]
                )
            else:
                w = z[r, x] * np.conj(base[r, x]) * p
                p = p * q
                q = q * c
            d = math.atan2(w.imag, w.real)
            if has_last:
                step = d - last[r, x]
                step = (step + math.pi) % two_pi - math.pi
                d = last[r, x] + step
            dphi_out[r, x] = d
            t = t_base + d / rad_per_c
            temp_out[r, x] = t
            if dt_s > 0.0:
                dc, do = dose_increment_linear(prev[r, x], t, dt_s, ln_a, ea_r, table)
                cem[r, x] += dc
                omega[r, x] += do
            if t > tmax[r, x]:
                tmax[r, x] = t
            t_max = max(t_max, t)
            if cem[r, x] >= nec_min:
                n_nec += 1
        row_max[r] = t_max
        row_nec[r] = n_nec
    t_all = -np.inf
    for r in range(rows):
        t_all = max(t_all, row_max[r])
    return t_all, int(row_nec.sum())


def warm_up() -> None:
    """Load (or compile) the per-frame kernels and the dose tables now.

    The first frame otherwise pays for it (about 0.3 s with numba's cache warm, much
    more without): in a live loop, frames that arrive meanwhile are lost. Runs a tiny
    session through every path (direct and motion-compensated, complex64 and
    complex128 frames: both are processed in complex64).
    """
    img = np.zeros((1, 16, 16), np.complex64)
    img[0, 4:10, 5:11] = 1.0
    moved = np.roll(img, 2, axis=1)
    cfg = ThermometryConfig(b0_t=3.0, te_ms=10.0, baseline_frames=2, multi_baseline=True,
                            drift_order=1)  # fmt: skip
    for dtype in (np.complex64, np.complex128):
        th = Thermometry(cfg, noise_sigma=0.01, reference=np.ones(img.shape, bool))
        for k, f in enumerate((img, moved, img, moved)):
            th.add(f.astype(dtype), float(k))


@dataclass
class FrameResult:
    """One processed frame."""

    index: int
    time_s: float
    temperature_c: np.ndarray
    uncertainty_c: np.ndarray
    valid: np.ndarray
    max_temperature_c: float
    necrosis_volume_ml: float
    baseline_used: int
    alerts: list[dict[str, Any]]
    ms: float


@dataclass
class Thermometry:
    """A running thermometry session: feed complex frames with :meth:`add`.

    The first ``baseline_frames`` frames build the baseline (library); later frames
    give temperature. ``reference`` marks unheated voxels for drift correction;
    ``fat`` masks fat; ``protected`` marks structures for alerts; ``voxel_ml`` sizes the
    necrosis volume.
    """

    cfg: ThermometryConfig
    voxel_ml: float = 1.0
    reference: np.ndarray | None = None
    fat: np.ndarray | None = None
    protected: np.ndarray | None = None
    noise_sigma: float | None = None
    baselines: list[np.ndarray] = field(default_factory=list)
    last_time_s: float | None = None
    last_index: int = -1
    last_t: np.ndarray | None = None
    cem43: np.ndarray | None = None
    omega: np.ndarray | None = None
    tmax: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    _mean_base: np.ndarray | None = None
    _last_dphi: np.ndarray | None = None
    _shifts: np.ndarray | None = None
    _mag_stack: np.ndarray | None = None
    _sigma: np.ndarray | None = None
    _pinv: np.ndarray | None = None
    _snr: np.ndarray | None = None
    _design: np.ndarray | None = None

    def add(self, frame: np.ndarray, time_s: float, index: int | None = None):
        """Process one complex frame; returns a :class:`FrameResult` or None (baseline)."""
        t0 = time.perf_counter()
        z = np.asarray(frame)
        if not np.iscomplexobj(z):
            raise InputError("frames must be complex (magnitude and phase combined)")
        idx = self.last_index + 1 if index is None else int(index)
        if idx <= self.last_index:
            raise InputError(f"frame {idx} arrives out of order (last was {self.last_index})")
        if self.last_time_s is not None and time_s <= self.last_time_s:
            raise InputError(f"frame time {time_s} s is not after {self.last_time_s} s")
        if idx > self.last_index + 1 and self.last_index >= 0:
            lost = (f"frame {idx - 1} was" if idx - 1 == self.last_index + 1
                    else f"frames {self.last_index + 1}-{idx - 1} were")  # fmt: skip
            self.notes.append(f"{lost} dropped; carried on")
        if self.baselines and z.shape != self.baselines[0].shape:
            raise InputError(
                f"frame {idx} has shape {z.shape}, the first frame {self.baselines[0].shape}"
            )
        if len(self.baselines) < self.cfg.baseline_frames:
            self.baselines.append(z.astype(np.complex64))
            self.last_index, self.last_time_s = idx, time_s
            if len(self.baselines) == self.cfg.baseline_frames:
                self._prepare()
            return None
        assert self._mean_base is not None and self._snr is not None
        shape = self._mean_base.shape
        nx = shape[-1] if z.ndim else 1
        ny = shape[-2] if z.ndim >= 2 else 1
        # complex64 throughout (a scanner's frames are single precision; 1e-7 rad is far
        # below the phase noise): one compiled version of each kernel, not two
        z2 = np.ascontiguousarray(z, dtype=np.complex64).reshape(-1, nx)
        if self.cfg.multi_baseline:
            errs = np.empty(len(self.baselines))
            _match(z2, self._mag_stack, errs)
            used = int(np.argmin(errs))
            base = self.baselines[used]
        else:
            used, base = -1, self._mean_base
        base2 = base.reshape(-1, nx)
        drift = self._no_drift
        has_drift = (self.cfg.drift_order >= 0 and self.reference is not None
                     and not self.cfg.referenceless)  # fmt: skip
        if has_drift:
            # least squares on the reference voxels, evaluated at x = 0, 1, 2 of each row
            ref_phase = np.empty(self._ref_flat.size)
            _ref_angles(z2.ravel(), base2.ravel(), self._ref_flat, ref_phase)
            drift = self._row_design @ (self._pinv @ ref_phase)
        sy = sx = 0.0
        if self.cfg.multi_baseline and self._shifts is not None and np.any(self._shifts[used]):
            # back to the first baseline's position, so that dose accrues in tissue
            sy, sx = (float(v) for v in self._shifts[used][-2:])
        sampled = bool(sy or sx) or self.cfg.referenceless
        if self.cfg.referenceless:
            src = np.exp(1j * self._referenceless(z)).astype(np.complex64).reshape(-1, nx)
        elif sampled:
            src = np.empty(z2.shape, np.complex64)
            _phasors(z2, base2, drift, has_drift, src)
        else:
            src = z2
        # temporal unwrapping (beyond about 39 degC of heating at 3 T, TE 10 ms the phase
        # passes pi; between frames it changes little, so it is followed), temperature
        # and the exact dose increments on the line from the last frame: one fused pass
        valid = self._valid
        dt_s = time_s - (self.last_time_s if self.last_time_s is not None else time_s)
        if self.cem43 is None:
            self.cem43 = np.zeros(shape)
            self.omega = np.zeros(shape)
            self.tmax = np.full(shape, self.cfg.baseline_temperature_c)
        prev = self.last_t
        if prev is None:
            prev = np.full(shape, self.cfg.baseline_temperature_c)
        has_last = self._last_dphi is not None
        temp = np.empty(shape)
        dphi = np.empty(shape)
        last = self._last_dphi if has_last else dphi

        def rows(a):
            return a.reshape(-1, nx)

        t_max, n_nec = _update(
            src, base2, drift, has_drift, sampled, ny, sy, sx, rows(last), has_last,
            self.cfg.rad_per_c, float(self.cfg.baseline_temperature_c), rows(valid), rows(prev),
            float(dt_s), rows(self.cem43), rows(self.omega), rows(self.tmax),
            float(self.cfg.necrosis_cem43_min), *arrhenius_log_constants(), liver_rate_table(),
            rows(temp), rows(dphi),
        )  # fmt: skip
        self._last_dphi = dphi
        alerts = []
        limit = self.cfg.alert_temperature_c
        if limit is None:
            limit = prf_constants()["alert_temperature_c"]
        if self.protected is not None:
            hot = self.protected & valid & (temp > limit)
            if hot.any():
                pos = np.unravel_index(int(np.argmax(np.where(hot, temp, -np.inf))), temp.shape)
                alert = {"frame": idx, "time_s": time_s, "voxel": [int(v) for v in pos]}
                alert |= {"temperature_c": round(float(temp[pos]), 2), "limit_c": limit}
                alerts.append(alert)
        self.last_t, self.last_index, self.last_time_s = temp, idx, time_s
        return FrameResult(
            index=idx,
            time_s=time_s,
            temperature_c=temp,
            uncertainty_c=self._sigma,
            valid=valid,
            max_temperature_c=float(t_max) if np.isfinite(t_max) else float("nan"),
            necrosis_volume_ml=float(n_nec) * self.voxel_ml,
            baseline_used=used,
            alerts=alerts,
            ms=1e3 * (time.perf_counter() - t0),
        )

    def _prepare(self) -> None:
        stack = np.stack(self.baselines)
        nx = stack.shape[-1] if stack.ndim > 1 else 1
        # baseline magnitudes voxel-major (rows, nx, n): one stream for the matching
        self._mag_stack = np.ascontiguousarray(
            np.abs(stack).reshape(len(self.baselines), -1, nx).transpose(1, 2, 0)
        )
        self._no_drift = np.zeros((1, 3))
        # average in the complex domain: phases never subtracted wrapped
        self._mean_base = stack.mean(axis=0)
        mag = np.abs(self._mean_base)
        sigma = self.noise_sigma
        if sigma is None:
            # noise from the background (no signal) of the first frame: there |z|^2 has
            # mean 2 sigma^2 (complex Gaussian noise)
            first = np.abs(self.baselines[0])
            bg = first < 0.1 * float(first.max())
            if bg.sum() >= 50:
                sigma = math.sqrt(float(np.mean(first[bg] ** 2)) / 2.0)
            else:
                raise InputError(
                    "no background to measure the noise in: the magnitude images need air "
                    "around the object (at least 50 voxels below 10 % of the brightest)"
                )
        self._snr = mag / max(sigma, 1e-12)
        if self.cfg.multi_baseline and len(self.baselines) > 1:
            # each baseline's displacement from the first (respiratory position), by
            # phase correlation of the magnitudes, to bring temperatures back to it
            from skimage.registration import phase_cross_correlation

            # in-plane only (multi-slice 2D imaging: through-plane motion cannot be undone
            # by shifting), on the magnitude averaged over slices
            def plane(b):
                m = np.abs(b)
                return m.mean(axis=tuple(range(m.ndim - 2))) if m.ndim > 2 else m

            ref = plane(self.baselines[0])
            shifts = []
            for b in self.baselines:
                sh = np.zeros(np.ndim(b))
                sh[-2:] = -phase_cross_correlation(ref, plane(b), upsample_factor=10)[0]
                shifts.append(sh)
            self._shifts = np.array(shifts)
        thr = self.cfg.snr_threshold
        if thr is None:
            thr = prf_constants()["noise_mask_snr"]
        # voxels with signal in every baseline frame: with respiratory motion, voxels at
        # the object's edge move in and out of it, and their phase is noise
        low = np.min(np.abs(stack), axis=0) / max(sigma, 1e-12)
        valid = (self._snr >= thr) & (low >= thr)
        if self.fat is not None:
            valid &= ~np.asarray(self.fat, bool)
        self._valid = valid
        # noise of the phase difference: the frame's and its baseline's (averaged over N
        # frames, or a single library frame)
        n_avg = 1 if self.cfg.multi_baseline else len(self.baselines)
        sig = temperature_sigma_c(self.cfg, np.maximum(self._snr, 1e-6), n_avg)
        self._sigma = np.where(valid, sig, np.inf)
        if self.cfg.drift_order >= 0 and self.reference is not None:
            ref = np.asarray(self.reference, bool) & valid
            if ref.sum() < 10:
                raise InputError("the drift reference region holds fewer than 10 valid voxels")
            self._ref = ref
            coords = np.argwhere(np.ones(ref.shape, bool)).astype(float)
            coords /= np.maximum(np.asarray(ref.shape, float) - 1, 1)
            cols = [np.ones(len(coords))]
            if self.cfg.drift_order >= 1:
                cols += [coords[:, a] for a in range(coords.shape[1])]
            if self.cfg.drift_order >= 2:
                nd = coords.shape[1]
                cols += [coords[:, a] * coords[:, b] for a in range(nd) for b in range(a, nd)]
            self._design = np.stack(cols, axis=1)
            self._ref_flat = np.flatnonzero(ref.ravel())
            self._pinv = np.linalg.pinv(self._design[self._ref_flat])
            # the design at x = 0, 1, 2 of every row (repeated where a row is shorter):
            # the drift along a row is at most quadratic, so these three fix it
            per_row = self._design.reshape(-1, nx, self._design.shape[1])
            self._row_design = np.ascontiguousarray(per_row[:, [0, min(1, nx - 1),
                                                                 min(2, nx - 1)], :])  # fmt: skip

    def _referenceless(self, z: np.ndarray) -> np.ndarray:
        """Referenceless phase (Rieke et al., MRM 2004): no baseline needed.

        The background phase inside the heated region is the polynomial (order 2
        in-plane, per slice) fitted to the frame's own unwrapped phase in the unheated
        ``reference`` voxels; dphi is the frame's phase against it.
        """
        from skimage.restoration import unwrap_phase

        if self.reference is None:
            raise InputError("referenceless thermometry needs --reference (unheated voxels)")
        ref = np.asarray(self.reference, bool) & self._valid
        zz = z.reshape((-1, *z.shape[-2:]))
        rr = ref.reshape((-1, *z.shape[-2:]))
        ny, nx = z.shape[-2:]
        yy, xx = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
        basis = np.stack([np.ones_like(yy), yy, xx, yy * yy, yy * xx, xx * xx], axis=-1)
        out = np.zeros(zz.shape)
        for k in range(zz.shape[0]):
            if rr[k].sum() < 12:
                raise InputError(f"slice {k}: fewer than 12 valid reference voxels")
            ph = unwrap_phase(np.ma.masked_array(np.angle(zz[k]), mask=~rr[k]))
            coef, *_ = np.linalg.lstsq(basis[rr[k]], np.asarray(ph)[rr[k]], rcond=None)
            out[k] = np.angle(zz[k] * np.exp(-1j * (basis @ coef)))
        return out.reshape(z.shape)
