"""Thermometry of a stored series from end to end: what ``ioplan thermometry`` does.

:class:`SeriesOptions` holds the settings and the masks and checks them (cheap: before
the series is read); :func:`thermometry_from_series` resolves the acquisition (B0, TE and
frame times from the headers unless overridden), runs :func:`run_thermometry`, and adds
the overlap with a planned zone and the learned prediction;
:func:`write_thermometry_outputs` writes the maps and ``thermometry.json`` atomically.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.errors import InputError, InvalidImageError
from ioplan.imaging import Grid, Volume, read_image
from ioplan.monitoring._live import MAX_WAIT_S
from ioplan.monitoring._prf import ThermometryConfig
from ioplan.monitoring._series import ComplexSeries, run_thermometry, zone_overlap

__all__ = [
    "THERMOMETRY_FILES",
    "HeatSource",
    "SeriesOptions",
    "ThermometryResult",
    "thermometry_from_series",
    "write_thermometry_outputs",
]

#: The files :func:`write_thermometry_outputs` writes (a contract: names never change).
#: ``ice.nii.gz`` and ``lethal_minus40.nii.gz`` only with cryoprobes.
THERMOMETRY_FILES = (
    "temperature.nii.gz",
    "cem43.nii.gz",
    "necrosis.nii.gz",
    "uncertainty.nii.gz",
    "ice.nii.gz",
    "lethal_minus40.nii.gz",
    "thermometry.json",
)

# B0 and TE stand in for absent header values while the other settings are checked
# before the series is read (their own ranges are checked once the values are known).
_CHECK_B0_T, _CHECK_TE_MS = 3.0, 10.0
# An override within this of the header's value is the same value (headers round).
_SAME_VALUE = 1e-6

MaskInput = str | Path | Volume | np.ndarray | None


def _point(value, what: str) -> tuple[float, float, float]:
    p = np.asarray(value, float).reshape(-1)
    if p.size != 3 or not np.all(np.isfinite(p)):
        raise InputError(f"{what} must be three finite numbers x,y,z (LPS mm), got {value}")
    return (float(p[0]), float(p[1]), float(p[2]))


def _finite(value: float | None, what: str) -> None:
    if value is None:
        return
    try:
        ok = math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"{what} must be a finite number, got {value}")


#: The longest heating the prediction simulates (s): `ioplan simulate`'s --duration-s limit.
MAX_HEATING_S = 3600.0


@dataclass(frozen=True)
class HeatSource:
    """The heat source whose power and perfusion are learned from the thermometry.

    Attributes
    ----------
    tip_lps : tuple of float
        Source (a point source) or applicator tip, LPS mm.
    end_s : float
        Planned end of heating (s, on the frame time axis); after ``heat_on_s``.
    heat_on_s : float
        When heating started (s).
    applicator_id : str, optional
        Learn with the full engine and this catalogue applicator instead of a point
        source; needs ``power_w`` and ``direction``.
    power_w : float, optional
        Generator power (W, (0, 300]) with ``applicator_id``.
    direction : tuple of float, optional
        Applicator direction from the entry towards the tip, with ``applicator_id``.
    """

    tip_lps: tuple[float, float, float]
    end_s: float | None
    heat_on_s: float = 0.0
    applicator_id: str | None = None
    power_w: float | None = None
    direction: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tip_lps", _point(self.tip_lps, "--source"))
        if self.end_s is None:
            raise InputError("--source needs --end-s (the planned end of heating)")
        _finite(self.end_s, "--end-s")
        _finite(self.heat_on_s, "--heat-on-s")
        if not self.end_s > self.heat_on_s:
            raise InputError(
                f"--end-s ({self.end_s:g} s) must lie after --heat-on-s ({self.heat_on_s:g} s)"
            )
        if self.end_s - self.heat_on_s > MAX_HEATING_S:
            # the prediction simulates the heating to its planned end: as `ioplan simulate`,
            # at most an hour (no ablation protocol heats longer)
            raise InputError(
                f"--end-s - --heat-on-s must be at most {MAX_HEATING_S:g} s of heating, got "
                f"{self.end_s - self.heat_on_s:g} s"
            )
        if self.applicator_id is None:
            if self.power_w is not None or self.direction is not None:
                raise InputError("--power-w and --direction go with --applicator")
            return
        if self.power_w is None or self.direction is None:
            raise InputError("--applicator needs --power-w and --direction dx,dy,dz")
        object.__setattr__(self, "direction", _point(self.direction, "--direction"))
        from ioplan.monitoring._learn import check_engine_source

        check_engine_source(self.applicator_id, self.power_w, self.direction)


@dataclass(frozen=True, eq=False)
class SeriesOptions:
    """Settings and masks of the thermometry of a stored series; checked when made.

    Attributes
    ----------
    b0_t, te_ms : float, optional
        Field strength (T) and echo time (ms); default: the series' headers. A value
        given here overrides the header's (with a note).
    frame_s : float, optional
        Time between frames (s, > 0 and at most 3600); default: the headers'.
    baseline_frames, baseline_temperature_c, alpha_ppm_per_c, multi_baseline,
    drift_order, referenceless, alert_temperature_c
        As in :class:`ThermometryConfig`.
    reference, protected : path, Volume or ndarray, optional
        Masks on the series' grid: unheated voxels (needed by drift correction and
        referenceless thermometry) and protected structures (alerts).
    planned_zone : path or Volume, optional
        The planned ablation zone on any grid overlapping the series: its overlap with
        the necrosis is reported.
    probes_lps : tuple of points, optional
        Cryoprobe tips (LPS mm): the ice ball is segmented.
    source : HeatSource, optional
        Learn power and perfusion and predict the final zone.
    """

    b0_t: float | None = None
    te_ms: float | None = None
    frame_s: float | None = None
    baseline_frames: int = 1
    baseline_temperature_c: float = 37.0
    alpha_ppm_per_c: float | None = None
    multi_baseline: bool = False
    drift_order: int = -1
    referenceless: bool = False
    alert_temperature_c: float | None = None
    reference: MaskInput = None
    protected: MaskInput = None
    planned_zone: str | Path | Volume | None = None
    probes_lps: tuple[tuple[float, float, float], ...] | None = None
    source: HeatSource | None = None

    def __post_init__(self) -> None:
        for name, v in (("--b0-t", self.b0_t), ("--te-ms", self.te_ms),
                        ("--frame-s", self.frame_s)):  # fmt: skip
            _finite(v, name)
        if self.frame_s is not None and not 0.0 < self.frame_s <= MAX_WAIT_S:
            raise InputError(
                f"--frame-s must be > 0 and at most {MAX_WAIT_S:g} s, got {self.frame_s}"
            )
        # every other setting, checked now by the configuration itself
        self.config(self.b0_t if self.b0_t is not None else _CHECK_B0_T,
                    self.te_ms if self.te_ms is not None else _CHECK_TE_MS)  # fmt: skip
        if (self.drift_order >= 0 or self.referenceless) and self.reference is None:
            raise InputError(
                "drift correction (--drift-order 0-2) and --referenceless need --reference "
                "(a mask of unheated voxels)"
            )
        if self.reference is not None and self.drift_order < 0 and not self.referenceless:
            raise InputError(
                "--reference is not used without --drift-order 0-2 or --referenceless (the "
                "drift corrections that read it): give one, or leave --reference out"
            )
        for what, m in (("--reference", self.reference), ("--protected", self.protected),
                        ("--planned-zone", self.planned_zone)):  # fmt: skip
            if isinstance(m, str | Path) and not Path(m).exists():
                from ioplan.errors import InputFileNotFoundError

                raise InputFileNotFoundError(f"{what} {m}: no such file or folder")
        if self.probes_lps is not None:
            probes = tuple(_point(p, "--probe") for p in self.probes_lps)
            object.__setattr__(self, "probes_lps", probes or None)

    def config(self, b0_t: float, te_ms: float) -> ThermometryConfig:
        """The processing configuration for the acquisition's B0 (T) and TE (ms)."""
        return ThermometryConfig(
            b0_t=b0_t, te_ms=te_ms, baseline_frames=self.baseline_frames,
            baseline_temperature_c=self.baseline_temperature_c,
            alpha_ppm_per_c=self.alpha_ppm_per_c, multi_baseline=self.multi_baseline,
            drift_order=self.drift_order, alert_temperature_c=self.alert_temperature_c,
            referenceless=self.referenceless,
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class ThermometryResult:
    """Maps and summary of a stored series' thermometry.

    Attributes
    ----------
    grid : Grid
        Geometry of every map (one frame's).
    frame_s : float
        Median time between frames (s): the 4th axis of ``temperature.nii.gz``.
    temperature_c : ndarray, shape (n, z, y, x), float32
        Temperature (degC) of every frame after the baseline; NaN inside the ice ball.
    cem43 : ndarray, shape (z, y, x)
        Thermal dose (CEM43 minutes) at the last frame.
    necrosis : ndarray of bool, shape (z, y, x)
        CEM43 at or above the necrosis threshold, among valid voxels.
    uncertainty_c : ndarray, shape (z, y, x)
        Temperature standard deviation per voxel (degC); -1 where not measured.
    valid : ndarray of bool, shape (z, y, x)
        Voxels above the noise threshold.
    frame_times_s : list of float
        Times (s) of the frames in ``temperature_c``.
    ice, lethal_core : ndarray of bool or None
        Ice ball and -40 degC core at the last frame (cryoprobes only).
    summary : dict
        The JSON summary (``thermometry.json``, ``--json``): frames,
        max_temperature_c, necrosis_volume_ml, ms_per_frame, alerts, notes, rad_per_c,
        baseline_temperature_c, acquisition; planned_zone, prediction, ice when asked.
    """

    grid: Grid
    frame_s: float
    temperature_c: np.ndarray
    cem43: np.ndarray
    necrosis: np.ndarray
    uncertainty_c: np.ndarray
    valid: np.ndarray
    frame_times_s: list[float]
    ice: np.ndarray | None
    lethal_core: np.ndarray | None
    summary: dict[str, Any] = field(default_factory=dict)


def _mask(value: MaskInput, grid: Grid, what: str) -> np.ndarray | None:
    """A mask on ``grid`` (0/1, labels or probabilities: :func:`ioplan.assessment.mask_field`)."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        arr = value
        if arr.shape != tuple(grid.shape):
            raise InputError(f"{what}: shape {arr.shape} is not the series' {tuple(grid.shape)}")
        return _as_mask(arr, what)
    if not isinstance(value, Volume):
        what = f"{what} {value}"
        value = read_image(value)
    grid.require_same(value.grid, what=what)
    return _as_mask(np.asarray(value.array), what)


def _as_mask(arr: np.ndarray, what: str) -> np.ndarray:
    """The voxels inside a mask; an image given as a mask, or an empty mask, is refused."""
    from ioplan.assessment import mask_field

    _, _, inside = mask_field(arr, what)
    if not inside.any():
        raise InvalidImageError(f"{what} is empty (no voxel inside it)")
    return inside


def _acquisition(series: ComplexSeries, opts: SeriesOptions):
    """B0 (T), TE (ms), frame times (s) and the ``acquisition`` record with its notes."""
    acq: dict[str, Any] = dict(series.read_as)
    notes = []
    if acq.get("phase_scale") == "milliradians" and acq.get("phase_scale_from") == "auto":
        # chosen from the values' range: Siemens 12-bit values within +-3142 read the same
        notes.append("the phase was read as milliradians from its range of values; if they "
                     "are Siemens 12-bit units, pass --phase-scale siemens")  # fmt: skip
    pairs = (("B0", "--b0-t", opts.b0_t, series.b0_t, "T"),
             ("TE", "--te-ms", opts.te_ms, series.te_ms, "ms"))  # fmt: skip
    for name, opt, given, header, unit in pairs:
        if given is not None and header is not None and abs(given - header) > _SAME_VALUE:
            notes.append(f"{opt} {given:g} overrides the header's {name} of {header:g} {unit}")
        acq[f"{name.lower()}_from"] = "command line" if given is not None else "header"
    b0_t = opts.b0_t if opts.b0_t is not None else series.b0_t
    te_ms = opts.te_ms if opts.te_ms is not None else series.te_ms
    missing = [f"{n} ({o})" for n, o, v in (("B0", "--b0-t", b0_t), ("TE", "--te-ms", te_ms))
               if v is None]  # fmt: skip
    if missing:
        one = len(missing) == 1
        raise InputError(
            f"{' and '.join(missing)} {'is' if one else 'are'} needed: the headers do not "
            f"give {'it' if one else 'them'}"
        )
    acq |= {"b0_t": b0_t, "te_ms": te_ms}
    n = len(series.frames)
    if opts.frame_s is not None:
        times = [i * opts.frame_s for i in range(n)]
        acq["frame_times"] = "--frame-s"
        if series.times_s is not None and n > 1:  # as --b0-t and --te-ms: said when it differs
            step = float(np.median(np.diff(np.asarray(series.times_s, float))))
            if abs(step - opts.frame_s) > 0.01 * max(step, opts.frame_s):
                notes.append(f"--frame-s {opts.frame_s:g} overrides the header's frame times "
                             f"({step:g} s apart)")  # fmt: skip
    elif series.times_s is not None:
        times = [float(t) for t in series.times_s]
    else:
        raise InputError("the headers give no frame times: pass --frame-s")
    return b0_t, te_ms, times, acq, notes


def _planned_zone(zone_in: str | Path | Volume, grid: Grid) -> np.ndarray:
    """The planned zone (a mask on any grid overlapping ``grid``) on ``grid``."""
    from ioplan.imaging import resample

    zone = zone_in if isinstance(zone_in, Volume) else read_image(zone_in)
    planned = _as_mask(np.asarray(zone.array), f"--planned-zone {zone_in}")
    if not zone.grid.overlaps(grid):
        raise InputError(f"--planned-zone {zone_in} does not overlap the thermometry")
    # as a fraction, linearly: a voxel is in the zone when more than half of it is
    frac = resample(Volume(planned.astype(np.float32), zone.grid), grid)
    return np.asarray(frac.array) > 0.5


def _prediction(src: HeatSource, res: dict, grid: Grid, body_c: float) -> dict:
    from ioplan.monitoring._learn import predict_zone, predict_zone_engine

    temps, times = list(res["temperature"]), res["frame_times_s"]
    if src.applicator_id is not None:
        pred = predict_zone_engine(
            temps, times, grid.voxel_centres_lps(), applicator_id=src.applicator_id,
            tip_lps=np.asarray(src.tip_lps), direction=src.direction,
            nominal_power_w=src.power_w, t_on_s=src.heat_on_s, end_time_s=src.end_s,
            valid=res["valid"], body_c=body_c,
        )  # fmt: skip
    else:
        r_mm = np.linalg.norm(grid.voxel_centres_lps() - np.asarray(src.tip_lps), axis=-1)
        pred = predict_zone(
            temps, times, r_mm, t_on_s=src.heat_on_s, end_time_s=src.end_s,
            voxel_ml=grid.voxel_volume_ml, valid=res["valid"], body_c=body_c,
        )  # fmt: skip
    return pred.to_dict()


def thermometry_from_series(series: ComplexSeries,
                            options: SeriesOptions | None = None) -> ThermometryResult:  # fmt: skip
    """PRF thermometry of a stored series: temperature, CEM43, necrosis, uncertainty.

    B0, TE and the frame times come from the series' headers unless ``options`` gives
    them; an override that differs from the header is noted (``summary["notes"]``), and
    ``summary["acquisition"]`` records where each value came from. The masks and the
    planned zone are read and checked before any frame is processed.

    Parameters
    ----------
    series : ComplexSeries
        From :func:`read_series`.
    options : SeriesOptions, optional
        Settings and masks (default: all defaults, which need B0, TE and frame times in
        the headers).

    Returns
    -------
    ThermometryResult

    Raises
    ------
    InputError
        B0, TE or frame times neither in the headers nor given; a mask that is not on
        the series' grid, is empty or is not a mask; a planned zone that does not
        overlap the series; every frame used as baseline; a probe outside the image;
        the prediction's own errors.

    Examples
    --------
    A synthetic scanner's series of 4 frames (3 T, TE 10 ms, 1 s apart), the first as
    baseline:

    >>> import numpy as np
    >>> from ioplan.imaging import Grid
    >>> from ioplan.monitoring import (ComplexSeries, ScannerConfig, SeriesOptions,
    ...     gaussian_heating, synthetic_frames, thermometry_from_series)
    >>> t = np.arange(4.0)
    >>> temp = gaussian_heating((2, 16, 16), 2.0, t, peak_rise_c=40.0, tau_s=3.0)
    >>> z = synthetic_frames(temp, t, ScannerConfig(spacing_mm=2.0, snr=200))
    >>> s = ComplexSeries(z, Grid((2, 16, 16), (2.0,) * 3), t, 3.0, 10.0)
    >>> r = thermometry_from_series(s, SeriesOptions(te_ms=12.0))
    >>> r.summary["frames"], r.summary["acquisition"]["te_from"], r.temperature_c.shape
    (3, 'command line', (3, 2, 16, 16))
    >>> r.summary["notes"]
    ["--te-ms 12 overrides the header's TE of 10 ms"]
    """
    opts = SeriesOptions() if options is None else options
    grid = series.grid
    b0_t, te_ms, times, acquisition, notes = _acquisition(series, opts)
    cfg = opts.config(b0_t, te_ms)
    reference = _mask(opts.reference, grid, "--reference")
    protected = _mask(opts.protected, grid, "--protected")
    planned = None if opts.planned_zone is None else _planned_zone(opts.planned_zone, grid)
    probes = list(opts.probes_lps) if opts.probes_lps else None
    if opts.source is not None:
        # a source off the images has no thermometry to learn from: its prediction would
        # only be the prior, reported as if measured
        at = np.rint(grid.lps_to_index(np.asarray(opts.source.tip_lps, float)))
        if np.any(at < 0) or np.any(at >= np.asarray(grid.shape)):
            raise InputError("--source lies outside the image")
    res = run_thermometry(series.frames, times, cfg, grid=grid, protected=protected,
                          reference=reference, probes_lps=probes)  # fmt: skip
    summary = res["summary"]
    summary["notes"] = notes + summary["notes"]
    summary["acquisition"] = acquisition
    if planned is not None:
        summary["planned_zone"] = zone_overlap(res["necrosis"], planned, grid.voxel_volume_ml)
    if opts.source is not None:
        summary["prediction"] = _prediction(opts.source, res, grid, cfg.baseline_temperature_c)
    step = float(np.median(np.diff(times))) if len(times) > 1 else (opts.frame_s or 1.0)
    return ThermometryResult(
        grid=grid, frame_s=step, temperature_c=res["temperature"], cem43=res["cem43"],
        necrosis=res["necrosis"], uncertainty_c=res["uncertainty"], valid=res["valid"],
        frame_times_s=res["frame_times_s"], ice=res["ice_mask"],
        lethal_core=res["lethal_mask"], summary=summary,
    )  # fmt: skip


def write_thermometry_outputs(result: ThermometryResult, out: str | Path, *,
                              overwrite: bool = False) -> Path:  # fmt: skip
    """Write the maps and ``thermometry.json`` into the folder ``out``, atomically.

    The files (:data:`THERMOMETRY_FILES`) are written into a temporary folder beside
    ``out`` and moved into place when all are written
    (:func:`ioplan.imaging.staged_output_folder`): an interrupted run leaves ``out`` as it
    was. With ``overwrite``, ``out`` must be an earlier thermometry output (its
    ``thermometry.json``; :func:`ioplan.imaging.check_mergeable`): each file replaces its
    namesake, a map of an earlier run that this one does not make (the ice ball of a cryo
    run) is removed, and other files in ``out`` are kept.

    Parameters
    ----------
    result : ThermometryResult
        From :func:`thermometry_from_series`.
    out : path
        The output folder: absent, empty, or (with ``overwrite``) an earlier output.
    overwrite : bool
        Write into a folder that is not empty.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    OutputExistsError
        ``out`` is a file, or a folder that is not empty and ``overwrite`` is False.
    OutputNotWritableError
        ``out`` (or the folder above it) cannot be written.
    """
    from ioplan.imaging import (
        check_mergeable,
        staged_output_folder,
        write_nifti,
        write_nifti_series,
    )

    g = result.grid
    maps = {"cem43.nii.gz": result.cem43.astype(np.float32),
            "necrosis.nii.gz": result.necrosis.astype(np.uint8),
            "uncertainty.nii.gz": result.uncertainty_c.astype(np.float32)}  # fmt: skip
    if result.ice is not None and result.lethal_core is not None:
        maps["ice.nii.gz"] = result.ice.astype(np.uint8)
        maps["lethal_minus40.nii.gz"] = result.lethal_core.astype(np.uint8)
    out = check_mergeable(out, command="thermometry", own_json="thermometry.json",
                          overwrite=overwrite)
    with staged_output_folder(out, overwrite=overwrite) as tmp:
        write_nifti_series(result.temperature_c, g, tmp / "temperature.nii.gz",
                           frame_s=result.frame_s)  # fmt: skip
        for name, arr in maps.items():
            write_nifti(Volume(arr, g), tmp / name)
        (tmp / "thermometry.json").write_text(json.dumps(result.summary, indent=2) + "\n")
        written = {p.name for p in tmp.iterdir()}
    for name in set(THERMOMETRY_FILES) - written:  # an earlier run's, not this one's
        (out / name).unlink(missing_ok=True)
    return out
