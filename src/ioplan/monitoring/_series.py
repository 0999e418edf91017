"""Thermometry on a stored series: complex frames in (NIfTI, DICOM, ISMRMRD), maps out.

:func:`read_series` reads magnitude + phase or real + imaginary from 4D NIfTI files, DICOM
folders (:mod:`ioplan.monitoring._dicom_series`) or an ISMRMRD image file
(:mod:`ioplan.monitoring._ismrmrd`) into a :class:`ComplexSeries`;
:func:`run_thermometry` processes it frame by frame.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.errors import DicomSeriesError, FileFormatError, InputError, InputFileNotFoundError
from ioplan.imaging import DicomSliceHeader, Grid, read_nifti_series, series_geometry
from ioplan.monitoring._prf import Thermometry, ThermometryConfig

__all__ = [
    "PHASE_SCALES",
    "ComplexSeries",
    "read_complex_series",
    "read_series",
    "run_thermometry",
    "zone_overlap",
]

#: How stored NIfTI phase values map to radians. Siemens phase images are 12-bit:
#: -4096..4095 maps to -pi..pi (vendor convention for phase-difference/phase maps);
#: GE and some Philips exports store milliradians. ``auto`` means radians for NIfTI,
#: which carries no vendor.
PHASE_SCALES = {
    "auto": 1.0,
    "radians": 1.0,
    "siemens": math.pi / 4096.0,
    "milliradians": 1e-3,
}

# Phase above pi by more than this is outside the declared range (float32 rounding and
# the quantisation of stored phase stay well below it).
_PHASE_TOL = 1e-3
# Two images belong to one slice position when their positions along the normal differ
# by less than this: above the 0.01 mm rounding of written positions, far below any
# slice gap (>= 0.5 mm).
_SAME_POSITION_MM = 0.05


@dataclass(frozen=True)
class ComplexSeries:
    """A complex MR image series and what its headers say about the acquisition.

    Attributes
    ----------
    frames : ndarray, shape (n, z, y, x), complex64
        The complex images, frame by frame.
    grid : Grid
        Geometry of one frame (patient LPS mm).
    times_s : ndarray, shape (n,), or None
        Frame times in s from the first frame; None when the headers give none.
    b0_t, te_ms : float or None
        Field strength (T) and echo time (ms) from the headers, None when absent.
    read_as : dict
        How the series was read (format, components, frame order and time sources,
        phase scaling), for the record.
    """

    frames: np.ndarray
    grid: Grid
    times_s: np.ndarray | None
    b0_t: float | None
    te_ms: float | None
    read_as: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plane:
    """One 2D image of a series, before it is put in its frame and slice."""

    header: DicomSliceHeader
    component: str | None
    keys: dict[str, float]
    times_s: dict[str, float]
    load: Callable[[], Any]
    group: str = ""


def stack_planes(planes: list[Plane], where: str, *, order_keys, time_keys):
    """Frames of slices from loose planes: ``(grid, frames, order_key, times_s, time_key)``.

    ``frames[k][j]`` is the plane of frame ``k`` at slice ``j`` (slices from the first
    array index up, as :func:`ioplan.imaging.read_dicom_series` orders them).
    """
    h0 = planes[0].header
    normal = np.cross(np.array(h0.row_cosine), np.array(h0.column_cosine))
    along = np.array([float(np.dot(p.header.position_mm, normal)) for p in planes])
    order = np.argsort(along, kind="stable")
    clusters: list[list[Plane]] = [[planes[order[0]]]]
    for a, b in itertools.pairwise(order):
        if along[b] - along[a] > _SAME_POSITION_MM:
            clusters.append([])
        clusters[-1].append(planes[b])
    counts = [len(c) for c in clusters]
    if min(counts) != max(counts):
        j = int(np.argmin(counts))
        raise DicomSeriesError(
            f"{where}: slice positions hold {min(counts)} to {max(counts)} images (the one at "
            f"{along[order][sum(counts[:j])]:.2f} mm along the normal holds {counts[j]}): a "
            "frame is incomplete, or images of another series are mixed in"
        )
    key = None
    for k in order_keys:
        if all(k in p.keys for p in planes) and all(
            len({p.keys[k] for p in c}) == len(c) for c in clusters
        ):
            key = k
            break
    if key is None:
        raise DicomSeriesError(
            f"{where}: cannot put the images of one slice position in frame order: none of "
            f"{', '.join(order_keys)} is present in every image and different between them"
        )
    for c in clusters:
        c.sort(key=lambda p: p.keys[key])
    n = counts[0]
    frames = [[c[k] for c in clusters] for k in range(n)]
    grid = None
    for k, fr in enumerate(frames):
        g, _ = series_geometry([p.header for p in fr], Path(where))
        if grid is None:
            grid = g
        elif (why := g.mismatch(grid)) is not None:
            raise DicomSeriesError(f"{where}: frame {k} is not on the grid of frame 0 ({why})")
    times = None
    time_key = None
    for tk in time_keys:
        if not all(tk in p.times_s for p in planes):
            continue
        ft = np.array([np.mean([p.times_s[tk] for p in fr]) for fr in frames])
        d = np.diff(ft)
        if n > 1 and np.all(d > 0):
            times, time_key = ft - ft[0], tk
            break
        if n > 1 and np.any(d != 0):
            k = int(np.argmax(d <= 0)) + 1
            raise DicomSeriesError(
                f"{where}: {tk} goes back at frame {k} when frames are ordered by {key}: "
                "the headers disagree about the frame order"
            )
    return grid, frames, key, times, time_key


def _looks_like_radians(values) -> bool:
    """Whether phase values lie within -pi..pi and are not all whole numbers."""
    arrs = [np.asarray(v, dtype=np.float64) for v in values]
    top = max((float(np.max(np.abs(a))) for a in arrs if a.size), default=0.0)
    return top <= math.pi + _PHASE_TOL and any(bool(np.any(a != np.round(a))) for a in arrs)


def check_not_radians_already(values, scale: str, where: str) -> None:
    """Refuse a phase in radians read with a scale for integer phases (a silent x1/1000).

    Values within -pi..pi that are not whole numbers are radians: read as Siemens 12-bit
    or milliradians they would become a phase range of a few milliradians, and every
    temperature change near zero.
    """
    if scale in ("siemens", "milliradians") and _looks_like_radians(values):
        raise InputError(
            f"{where}: the phase values are radians already (-pi..pi, not whole numbers), "
            f"but --phase-scale {scale} scales stored integers: pass --phase-scale radians "
            "(or auto)"
        )


def phase_to_radians(planes_values, scale: str, manufacturer: str, where: str):
    """Phase in radians from per-image ``(rescaled, stored, slope, intercept)`` tuples.

    ``scale``: ``siemens`` (12-bit: rescaled -4096..4094 times pi/4096, or stored 0..4095
    without a rescale, (stored - 2048) pi/2048), ``radians``, ``milliradians``, or
    ``auto``: ``siemens`` when ``manufacturer`` says SIEMENS (and the values are not
    fractions within -pi..pi, radians already), else radians or milliradians
    by the range of the values, else an error. Returns the phases and the scale used.
    """
    if scale not in PHASE_SCALES:
        raise InputError(f"phase scale must be one of {', '.join(PHASE_SCALES)}, got {scale!r}")
    used = scale
    if scale == "auto":
        if "SIEMENS" in manufacturer.upper() and not _looks_like_radians(
            [v[0] for v in planes_values]
        ):
            used = "siemens"  # (a Siemens series converted to radians is read as such)
        else:
            top = max(float(np.max(np.abs(v[0]))) for v in planes_values)
            if top <= math.pi + _PHASE_TOL:
                used = "radians"
            elif top <= 1000.0 * math.pi + 1.0:
                used = "milliradians"
            else:
                lo = min(float(v[0].min()) for v in planes_values)
                hi = max(float(v[0].max()) for v in planes_values)
                raise InputError(
                    f"{where}: phase values run {lo:.6g} to {hi:.6g}, not radians or "
                    "milliradians, and the Manufacturer is not SIEMENS: pass --phase-scale "
                    "(siemens, radians or milliradians)"
                )
    check_not_radians_already([v[0] for v in planes_values], used, where)
    out = []
    for rescaled, stored, slope, intercept in planes_values:
        if used == "siemens":
            if slope == 1.0 and intercept == 0.0:
                ph = (stored.astype(np.float64) - 2048.0) * (math.pi / 2048.0)
            else:
                ph = rescaled * (math.pi / 4096.0)
        elif used == "milliradians":
            ph = rescaled / 1000.0
        else:
            ph = rescaled
        out.append(ph)
    lo = min(float(p.min()) for p in out)
    hi = max(float(p.max()) for p in out)
    if lo < -math.pi - _PHASE_TOL or hi > math.pi + _PHASE_TOL:
        raise InputError(
            f"{where}: phase runs {lo:.4g} to {hi:.4g} rad with --phase-scale {used}, "
            "outside -pi..pi: pass the right --phase-scale (siemens, radians, milliradians)"
        )
    return out, used


def pick_roles(present, where: str, error=FileFormatError) -> tuple[str, ...]:
    """The components to combine, from those a series holds.

    Complex first, then real and imaginary, then magnitude and phase; ``error`` is raised,
    naming what the series holds, when none is complete.
    """
    present = set(present)
    for roles in (("complex",), ("real", "imaginary"), ("magnitude", "phase")):
        if present.issuperset(roles):
            return roles
    raise error(
        f"{where}: holds only {', '.join(sorted(present)) or 'no usable'} images; thermometry "
        "needs complex images, magnitude and phase, or real and imaginary"
    )


def combine_components(roles, stacked, where: str, *, phase_scale: str, manufacturer: str):
    """Complex frames from stacked components: ``(frames, grid, times_s, read_as)``.

    ``roles`` is ``("magnitude", "phase")``, ``("real", "imaginary")`` or ``("complex",)``;
    ``stacked`` holds :func:`stack_planes`'s result for each, whose planes load
    ``(rescaled, stored, slope, intercept)`` (complex planes load the complex array).
    """
    g1, fr1, key1, t1, tk1 = stacked[0]
    read_as: dict[str, Any] = {"components": "+".join(roles), "frame_order": key1,
                               "frame_times": tk1}  # fmt: skip
    if roles == ("complex",):
        z = np.array([[p.load() for p in fr] for fr in fr1])
        return z.astype(np.complex64), g1, t1, read_as
    first, second = roles
    g2, fr2, _, t2, _ = stacked[1]
    if len(fr1) != len(fr2) or (why := g1.mismatch(g2)) is not None:
        raise InputError(
            f"{where}: {first} ({len(fr1)} frames of {g1.shape}) and {second} ({len(fr2)} "
            f"frames of {g2.shape}) do not pair up" + ("" if len(fr1) != len(fr2) else f": {why}")
        )
    if t1 is not None and t2 is not None and len(t1) > 1:
        step = float(np.min(np.diff(t1)))
        worst = float(np.max(np.abs(t1 - t2)))
        if worst > 0.25 * step:
            raise InputError(
                f"{where}: {first} and {second} frame times differ by up to {worst:.3g} s "
                f"(frames {step:.3g} s apart): they do not pair up"
            )
    a = np.array([[p.load()[0] for p in fr] for fr in fr1])
    if first == "magnitude":
        if a.min() < 0:
            raise InputError(f"{where}: magnitude has negative values (is it a phase image?)")
        flat = [p.load() for fr in fr2 for p in fr]
        ph, used = phase_to_radians(flat, phase_scale, manufacturer, where)
        z = a * np.exp(1j * np.array(ph).reshape(a.shape))
        read_as["phase_scale"] = used
        read_as["phase_scale_from"] = "auto" if phase_scale == "auto" else "option"
    else:
        z = a + 1j * np.array([[p.load()[0] for p in fr] for fr in fr2])
    return z.astype(np.complex64), g1, t1, read_as


def read_complex_series(magnitude: Path, phase: Path, *, phase_scale: str = "radians"):
    """Complex frames (n, z, y, x), their 3D grid, and the frame spacing from the header.

    4D NIfTI magnitude and phase files; ``phase_scale`` one of :data:`PHASE_SCALES`.
    """
    if phase_scale not in PHASE_SCALES:
        raise InputError(
            f"phase scale must be one of {', '.join(PHASE_SCALES)} for NIfTI, got {phase_scale!r}"
        )
    mag, grid, dt = read_nifti_series(magnitude, what="magnitude")
    ph, grid_p, _ = read_nifti_series(phase, what="phase")
    if mag.shape != ph.shape or grid.mismatch(grid_p) is not None:
        raise InputError(
            f"magnitude {mag.shape} and phase {ph.shape} are not on the same grid and frames"
        )
    check_not_radians_already([ph], phase_scale, "phase")
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


def _is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith((".nii", ".nii.gz"))


def _is_ismrmrd(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".h5", ".hdf5", ".mrd")


def read_series(*, magnitude: str | Path | None = None, phase: str | Path | None = None,
                real: str | Path | None = None, imaginary: str | Path | None = None,
                series: str | Path | None = None,
                phase_scale: str = "auto") -> ComplexSeries:  # fmt: skip
    """Read a complex MR series from NIfTI, DICOM or ISMRMRD, by what the paths are.

    Give ``magnitude`` and ``phase``, or ``real`` and ``imaginary``: 4D NIfTI files
    (``.nii``, ``.nii.gz``; no B0 or TE in them) or DICOM folders (or files). Or give
    ``series``: one DICOM folder holding both components, or an ISMRMRD image file
    (``.h5``, ``.hdf5``, ``.mrd``). ``phase_scale`` says how stored phase maps to radians
    (:data:`PHASE_SCALES` for NIfTI, where ``auto`` means radians;
    :data:`ioplan.monitoring._dicom_series.DICOM_PHASE_SCALES` for DICOM and ISMRMRD).

    Returns
    -------
    ComplexSeries
    """
    named = {"magnitude": magnitude, "phase": phase, "real": real, "imaginary": imaginary}
    paths = [Path(v) for v in (*named.values(), series) if v is not None]
    for p in paths:
        if not p.exists():
            raise InputFileNotFoundError(f"{p}: no such file or folder")
    if series is not None and _is_ismrmrd(Path(series)):
        if any(v is not None for v in named.values()):
            raise InputError("an ISMRMRD file holds the whole series: give it alone")
        from ioplan.monitoring._ismrmrd import read_ismrmrd_series

        return read_ismrmrd_series(series, phase_scale=phase_scale)
    if paths and all(_is_nifti(p) for p in paths):
        if series is not None:
            raise InputError(f"{series}: a NIfTI series needs two files (magnitude and phase)")
        if magnitude is not None and phase is not None and real is None and imaginary is None:
            z, grid, dt = read_complex_series(Path(magnitude), Path(phase),
                                              phase_scale=phase_scale)  # fmt: skip
            how = {"format": "nifti", "components": "magnitude+phase",
                   "phase_scale": "radians" if phase_scale == "auto" else phase_scale}  # fmt: skip
        elif real is not None and imaginary is not None and magnitude is None and phase is None:
            re_, grid, dt = read_nifti_series(real, what="real part")
            im_, grid_i, _ = read_nifti_series(imaginary, what="imaginary part")
            if re_.shape != im_.shape or grid.mismatch(grid_i) is not None:
                raise InputError(
                    f"real {re_.shape} and imaginary {im_.shape} are not on the same grid "
                    "and frames"
                )
            z = (re_ + 1j * im_).astype(np.complex64)
            how = {"format": "nifti", "components": "real+imaginary"}
        else:
            raise InputError("give magnitude and phase, or real and imaginary")
        times = np.arange(len(z)) * dt if dt and dt > 0 else None
        how["frame_times"] = "NIfTI pixdim[4]" if times is not None else None
        return ComplexSeries(z, grid, times, None, None, how)
    if any(_is_nifti(p) for p in paths):
        raise InputError("mixing NIfTI and other formats: give both components in one format")
    from ioplan.monitoring._dicom_series import read_dicom_complex_series

    return read_dicom_complex_series(magnitude=magnitude, phase=phase, real=real,
                                     imaginary=imaginary, series=series,
                                     phase_scale=phase_scale)  # fmt: skip


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


def zone_overlap(necrosis: np.ndarray, planned: np.ndarray, voxel_ml: float) -> dict:
    """Overlap of the dose-predicted necrosis with the planned zone (masks on one grid).

    Returns the volumes (mL), the planned zone's fraction already necrotic
    (``planned_covered_percent``), the necrosis outside the plan (``outside_plan_ml``) and
    the Dice coefficient 2|A and B| / (|A| + |B|).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((1, 1, 4), bool); a[..., :2] = True
    >>> b = np.zeros((1, 1, 4), bool); b[..., 1:] = True
    >>> zone_overlap(a, b, 1.0)["dice"]
    0.4
    """
    a = np.asarray(necrosis, bool)
    b = np.asarray(planned, bool)
    if a.shape != b.shape:
        raise InputError(f"necrosis {a.shape} and planned zone {b.shape} differ in shape")
    both = int(np.count_nonzero(a & b))
    na, nb = int(a.sum()), int(b.sum())
    return {
        "planned_zone_ml": round(nb * voxel_ml, 4),
        "necrosis_ml": round(na * voxel_ml, 4),
        "planned_covered_percent": round(100.0 * both / nb, 2) if nb else None,
        "outside_plan_ml": round((na - both) * voxel_ml, 4),
        "dice": round(2.0 * both / (na + nb), 4) if na + nb else None,
    }
