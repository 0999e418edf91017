"""Complex MR series from DICOM: magnitude + phase, or real + imaginary, images.

Inputs: two folders (one per component), or one folder holding both, split by the
component each image declares: ``ComplexImageComponent`` (0008,9208) when present, else
the values of ``ImageType`` from the third on (``M``/``P``/``R``/``I``, also ``MAGNITUDE``,
``PHASE``, ``REAL``, ``IMAGINARY`` and Philips' ``M_FFE``, ``P_SE``, ...), else GE's private
image type (0043,102F; 0 magnitude, 1 phase, 2 real, 3 imaginary).

Geometry: images are grouped by their position along the slice normal (ImagePositionPatient
projected on the cross product of the ImageOrientationPatient cosines); every position
must hold the same number of images, one per frame. Within a position, images are put in
frame order by the first of ``TemporalPositionIdentifier``, ``AcquisitionTime`` (with
``AcquisitionDate`` when every image has it), ``TriggerTime`` and ``InstanceNumber`` that
every image carries and that tells the images at one position apart; each frame must then
be a regular volume (:func:`ioplan.imaging._dicom._series_geometry`), on the same grid as
the first. Frame times: the mean over the frame's slices of ``AcquisitionTime``, else of
``TriggerTime``, the first that increases from frame to frame; none when neither varies.

Phase scaling (``phase_scale``), applied after RescaleSlope/RescaleIntercept:

- ``siemens``: 12-bit phase. With a rescale (slope 2, intercept -4096: values -4096..4094)
  the value times pi/4096; without one (stored 0..4095), (value - 2048) pi/2048. Both map
  to -pi..pi.
- ``radians``: the rescaled values are radians (Philips phase images whose rescale maps to
  radians; ISMRMRD/Gadgetron float phase).
- ``milliradians``: the rescaled values are radians x 1000 (GE and some Philips exports).
- ``auto`` (default): ``siemens`` when Manufacturer says SIEMENS; otherwise ``radians``
  when every value lies in -pi..pi, ``milliradians`` when in -1000 pi..1000 pi; anything
  else is refused with a request for ``--phase-scale``.

Not supported: Philips' private floating-point scale (2005,100E), Real World Value
Mapping, multi-frame (enhanced) DICOM, multi-echo series (one echo time per series).

B0 comes from MagneticFieldStrength (T; values above 100 are taken as gauss, as some older
scanners write them), TE from EchoTime (ms).
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

from ioplan.errors import DicomSeriesError, InputError
from ioplan.imaging import DicomSliceHeader, dicom_images, read_dicom_pixels
from ioplan.monitoring._series import (
    ComplexSeries,
    Plane,
    combine_components,
    pick_roles,
    stack_planes,
)

__all__ = ["ORDER_KEYS", "TIME_KEYS", "read_dicom_complex_series"]

#: DICOM tags that order the images of one slice position, first found first used.
ORDER_KEYS = ("TemporalPositionIdentifier", "AcquisitionTime", "TriggerTime", "InstanceNumber")
#: DICOM tags that give frame times, first that increases used.
TIME_KEYS = ("AcquisitionTime", "TriggerTime")


_COMPONENT_WORDS = {
    "M": "magnitude",
    "MAGNITUDE": "magnitude",
    "P": "phase",
    "PHASE": "phase",
    "R": "real",
    "REAL": "real",
    "I": "imaginary",
    "IMAGINARY": "imaginary",
}
_GE_COMPONENT = {0: "magnitude", 1: "phase", 2: "real", 3: "imaginary"}


def _number(ds, tag: str) -> float | None:
    v = ds.get(tag)
    if v in (None, ""):
        return None
    try:
        out = float(v)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _tm_seconds(value: str) -> float | None:
    """Seconds of the day from a DICOM TM 'HHMMSS.FFFFFF' (or the old 'HH:MM:SS')."""
    s = str(value).strip().replace(":", "")
    if len(s) < 2 or not s[:2].isdigit():
        return None
    try:
        hh = int(s[:2])
        mm = int(s[2:4]) if len(s) >= 4 else 0
        ss = float(s[4:]) if len(s) > 4 else 0.0
    except ValueError:
        return None
    return 3600.0 * hh + 60.0 * mm + ss


def _date_days(value) -> int | None:
    try:
        return _dt.datetime.strptime(str(value).strip(), "%Y%m%d").toordinal()
    except ValueError:
        return None


def _component(ds) -> str | None:
    """What an image holds: magnitude, phase, real, imaginary, or None (not said)."""
    cic = str(ds.get("ComplexImageComponent", "") or "").upper()
    if cic in _COMPONENT_WORDS:
        return _COMPONENT_WORDS[cic]
    image_type = ds.get("ImageType")
    if image_type:
        values = [image_type] if isinstance(image_type, str) else list(image_type)
        found = {
            _COMPONENT_WORDS[head]
            for v in values[2:]
            if (head := str(v).upper().split("_")[0]) in _COMPONENT_WORDS
        }
        if len(found) == 1:
            return found.pop()
    elem = ds.get((0x0043, 0x0010))
    creator = str(elem.value).strip() if elem is not None else ""
    if creator == "GEMS_PARM_01" and (0x0043, 0x102F) in ds:
        raw = ds[0x0043, 0x102F].value
        if isinstance(raw, bytes) and len(raw) >= 2:
            raw = int.from_bytes(raw[:2], "little", signed=True)
        try:
            return _GE_COMPONENT.get(int(raw))
        except (TypeError, ValueError):
            return None
    return None


def _plane(header: DicomSliceHeader, ds) -> Plane:
    keys: dict[str, float] = {}
    times: dict[str, float] = {}
    for k in ("TemporalPositionIdentifier", "InstanceNumber", "TriggerTime"):
        v = _number(ds, k)
        if v is not None:
            keys[k] = v
    if "TriggerTime" in keys:
        times["TriggerTime"] = keys["TriggerTime"] / 1000.0  # ms
    tm = _tm_seconds(ds.get("AcquisitionTime", "")) if ds.get("AcquisitionTime") else None
    if tm is not None:
        days = _date_days(ds.get("AcquisitionDate", "")) if ds.get("AcquisitionDate") else None
        keys["AcquisitionTime"] = tm
        times["AcquisitionTime"] = tm
        if days is not None:
            keys["AcquisitionDateTime"] = days * 86400.0 + tm
    return Plane(header, _component(ds), keys, times, lambda h=header: read_dicom_pixels(h),
                 group=str(ds.get("SeriesInstanceUID", "")))  # fmt: skip


def _with_dates(planes: list[Plane]) -> list[Plane]:
    """Use date + time where every image has both (series that pass midnight)."""
    if planes and all("AcquisitionDateTime" in p.keys for p in planes):
        out = []
        for p in planes:
            keys = dict(p.keys, AcquisitionTime=p.keys["AcquisitionDateTime"])
            times = dict(p.times_s, AcquisitionTime=p.keys["AcquisitionDateTime"])
            out.append(Plane(p.header, p.component, keys, times, p.load, p.group))
        return out
    return planes


def _header_value(datasets, tag: str, what: str, where: str) -> float | None:
    values = {round(v, 6) for ds in datasets if (v := _number(ds, tag)) is not None}
    if not values:
        return None
    if len(values) > 1:
        shown = ", ".join(f"{v:g}" for v in sorted(values)[:4])
        raise DicomSeriesError(
            f"{where}: {tag} differs between images ({shown}): one {what} per series "
            "(multi-echo or mixed series are not supported)"
        )
    return values.pop()


def _read_role(planes: list[Plane], role: str, where: str):
    """Stack one component's planes: (grid, frames, order key, times, time key)."""
    groups = {p.group for p in planes}
    if len(groups) > 1:
        raise DicomSeriesError(
            f"{where}: the {role} images come from {len(groups)} series; keep one series "
            "per component (or choose the folder of one)"
        )
    return stack_planes(_with_dates(planes), where, order_keys=ORDER_KEYS, time_keys=TIME_KEYS)


def read_dicom_complex_series(*, magnitude: str | Path | None = None,
                              phase: str | Path | None = None,
                              real: str | Path | None = None,
                              imaginary: str | Path | None = None,
                              series: str | Path | None = None,
                              phase_scale: str = "auto") -> ComplexSeries:  # fmt: skip
    """Read an MR series from DICOM into complex frames, with B0, TE and frame times.

    Give ``magnitude`` and ``phase`` (folders or files), or ``real`` and ``imaginary``, or
    ``series``: one folder holding both components of either pair, split by the
    component each image declares. See the module documentation for how frames are
    ordered and timed, and for ``phase_scale``.

    Returns
    -------
    ComplexSeries
        Frames ``(n, z, y, x)`` complex64, the grid, frame times from the first frame
        (None when the headers give none), B0 (T) and TE (ms) from the headers.

    Raises
    ------
    ioplan.errors.DicomSeriesError
        Mixed series, incomplete frames, frames on different grids, several echo times.
    ioplan.errors.FileFormatError
        No DICOM image, a corrupt file.
    ioplan.errors.InputError
        Components that do not pair up, phase outside the declared range, negative
        magnitude.
    """
    pairs = {"magnitude": magnitude, "phase": phase, "real": real, "imaginary": imaginary}
    given = [k for k, v in pairs.items() if v is not None]
    if series is not None and given:
        raise InputError("give either one series folder or two component folders, not both")
    by_role: dict[str, list[Plane]] = {}
    datasets: dict[str, list] = {}
    if series is not None:
        where = str(series)
        items = dicom_images(series)
        planes = [_plane(h, ds) for h, ds in items]
        unknown = [p for p in planes if p.component is None]
        if unknown:
            raise DicomSeriesError(
                f"{where}: {len(unknown)} of {len(planes)} images do not say whether they "
                f"hold magnitude or phase ({unknown[0].header.path.name}: no M/P/R/I in "
                "ImageType, no ComplexImageComponent): give the components as two folders"
            )
        for p, (_, ds) in zip(planes, items, strict=True):
            by_role.setdefault(p.component, []).append(p)
            datasets.setdefault(p.component, []).append(ds)
        roles = pick_roles(by_role, where, DicomSeriesError)
    else:
        if set(given) == {"magnitude", "phase"}:
            roles = ("magnitude", "phase")
        elif set(given) == {"real", "imaginary"}:
            roles = ("real", "imaginary")
        else:
            raise InputError(
                "give magnitude and phase, or real and imaginary, or one series folder "
                f"(got {', '.join(given) or 'nothing'})"
            )
        where = f"{pairs[roles[0]]} + {pairs[roles[1]]}"
        for role in roles:
            items = dicom_images(pairs[role])
            planes = [_plane(h, ds) for h, ds in items]
            wrong = [p for p in planes if p.component not in (None, role)]
            if wrong:
                raise DicomSeriesError(
                    f"{pairs[role]}: holds {wrong[0].component} images among the {role} ones "
                    f"({wrong[0].header.path.name}): mixed series"
                )
            by_role[role] = planes
            datasets[role] = [ds for _, ds in items]
    all_ds = [ds for role in roles for ds in datasets[role]]
    b0 = _header_value(all_ds, "MagneticFieldStrength", "field strength", where)
    if b0 is not None and b0 > 100.0:
        b0 = b0 / 1e4  # gauss
    te = _header_value(all_ds, "EchoTime", "echo time", where)
    manufacturer = str(all_ds[0].get("Manufacturer", "") or "")
    stacked = [_read_role(by_role[role], role, where) for role in roles]
    z, grid, times, read_as = combine_components(roles, stacked, where, phase_scale=phase_scale,
                                                 manufacturer=manufacturer)  # fmt: skip
    return ComplexSeries(z, grid, times, b0, te, {"format": "dicom"} | read_as)
