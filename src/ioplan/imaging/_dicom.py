"""DICOM series: read with pydicom (sorted by position, not by file name), write anonymous series.

No identifying tag is ever logged or put in an error message: messages name
files, positions and geometry only.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ioplan.errors import (
    DicomSeriesError,
    FileFormatError,
    InputFileNotFoundError,
)
from ioplan.imaging._grid import Grid
from ioplan.imaging._regularize import resample_planes, series_layout
from ioplan.imaging._volume import Volume, check_finite

__all__ = [
    "DicomSliceHeader",
    "dicom_images",
    "dicom_series_grid",
    "read_dicom_pixels",
    "read_dicom_series",
    "write_dicom_series",
]

_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


@dataclass(frozen=True)
class DicomSliceHeader:
    """The geometry of one DICOM image slice (no patient data)."""

    path: Path
    series_uid: str
    rows: int
    columns: int
    row_cosine: tuple[float, float, float]  # along increasing column index (x)
    column_cosine: tuple[float, float, float]  # along increasing row index (y)
    position_mm: tuple[float, float, float]
    pixel_spacing_mm: tuple[float, float]  # (between rows, between columns)
    slice_thickness_mm: float | None
    spacing_between_slices_mm: float | None


def _floats(value: Any, n: int, what: str, path: Path) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise FileFormatError(f"{path}: {what} is not numeric: {value!r}") from None
    if len(out) != n or not np.all(np.isfinite(out)):
        raise FileFormatError(f"{path}: {what} must have {n} finite values, got {value!r}")
    return out


def _header(ds: Dataset, path: Path) -> DicomSliceHeader:
    for tag in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"):
        if tag not in ds:
            raise FileFormatError(f"{path}: DICOM image lacks {tag}; cannot place it in space")
    for tag in ("Rows", "Columns"):
        if not isinstance(ds.get(tag), int) or ds.get(tag) < 1:
            raise FileFormatError(f"{path}: DICOM image lacks a valid {tag}")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise FileFormatError(
            f"{path}: multi-frame DICOM ({frames} frames) is not supported; export single slices"
        )
    iop = _floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient", path)
    row, col = np.array(iop[:3]), np.array(iop[3:])
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3:
        raise FileFormatError(f"{path}: ImageOrientationPatient is not unit length: {iop}")
    if abs(float(row @ col)) > 1e-3:
        raise FileFormatError(f"{path}: ImageOrientationPatient axes are not orthogonal: {iop}")
    ps = _floats(ds.PixelSpacing, 2, "PixelSpacing", path)
    if min(ps) <= 0:
        raise FileFormatError(f"{path}: PixelSpacing must be > 0, got {ps}")

    def _opt(tag: str) -> float | None:
        v = ds.get(tag)
        try:
            return float(v) if v not in (None, "") else None
        except (TypeError, ValueError):
            return None

    return DicomSliceHeader(
        path=path,
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        row_cosine=tuple(row / np.linalg.norm(row)),
        column_cosine=tuple(col / np.linalg.norm(col)),
        position_mm=_floats(ds.ImagePositionPatient, 3, "ImagePositionPatient", path),
        pixel_spacing_mm=(ps[0], ps[1]),
        slice_thickness_mm=_opt("SliceThickness"),
        spacing_between_slices_mm=_opt("SpacingBetweenSlices"),
    )


def _dcmread(path: Path, *, pixels: bool) -> Dataset:
    with warnings.catch_warnings():
        # pydicom warns about harmless VR quirks; they must not leak to users as noise.
        warnings.simplefilter("ignore")
        return pydicom.dcmread(str(path), stop_before_pixels=not pixels)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sop_class(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("MediaStorageSOPClassUID", "") if meta is not None else ""
    return str(uid or ds.get("SOPClassUID", ""))


def _has_dicom_magic(path: Path) -> bool:
    """A DICOM Part 10 file has 'DICM' after its 128-byte preamble."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _rescale(ds: Dataset, tag: str, default: float, path: Path) -> float:
    value = ds.get(tag)
    if value in (None, ""):
        return default
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise FileFormatError(f"{path}: {tag} is not numeric: {value!r}") from None
    if not np.isfinite(out):
        raise FileFormatError(f"{path}: {tag} is not finite: {value!r}")
    return out


def _list_candidates(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))


def _scan_images(path: Path) -> list[tuple[Path, Dataset]]:
    """Headers (no pixels) of every DICOM image under ``path``, corrupt files refused."""
    if not path.exists():
        raise InputFileNotFoundError(f"{path}: no such file or folder")
    files = _list_candidates(path)
    if not files:
        raise FileFormatError(f"{path}: folder is empty, no DICOM files")
    images: list[tuple[Path, Dataset]] = []
    without_pixels: list[tuple[Path, str]] = []
    for f in files:
        try:
            ds = _dcmread(f, pixels=False)
        except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError) as exc:
            if _has_dicom_magic(f):
                # It says it is DICOM but cannot be read: skipping it could
                # silently drop the first or last slice of the series.
                raise FileFormatError(f"{f}: corrupt DICOM file ({_first_line(exc)})") from None
            continue
        if "Rows" not in ds:  # headers are read without pixels; Rows marks an image
            without_pixels.append((f, _sop_class(ds)))
            continue  # DICOMDIR, structured reports, ... (or a truncated image: see below)
        images.append((f, ds))
    # A file of the same SOP class as the images but without pixel data was cut
    # short: skipping it would silently drop a slice (perhaps the first or last).
    image_classes = {_sop_class(ds) for _, ds in images} - {""}
    for f, sop in without_pixels:
        # (a Part 10 file must name its SOP class; one that does not is cut short too)
        if sop in image_classes or (not sop and _has_dicom_magic(f)):
            raise FileFormatError(f"{f}: corrupt DICOM image (no image data; file cut short?)")
    if not images:
        if path.is_file():
            raise FileFormatError(f"{path}: not a DICOM image file")
        raise FileFormatError(f"{path}: no DICOM image among {len(files)} files")
    return images


def _load_headers(path: Path, series_uid: str | None) -> list[tuple[DicomSliceHeader, Dataset]]:
    images = _scan_images(path)

    def uid_of(ds: Dataset) -> str:
        return str(ds.get("SeriesInstanceUID", ""))

    uids = sorted({uid_of(ds) for _, ds in images})
    if series_uid is not None:
        chosen = series_uid
        if series_uid.startswith("#") and series_uid[1:].isdigit():
            k = int(series_uid[1:])
            if not 1 <= k <= len(uids):
                raise DicomSeriesError(
                    f"{path}: series {series_uid} does not exist (1-{len(uids)})"
                )
            chosen = uids[k - 1]
        images = [(f, ds) for f, ds in images if uid_of(ds) == chosen]
        if not images:
            raise DicomSeriesError(f"{path}: no series with SeriesInstanceUID {series_uid}")
    elif len(uids) > 1:
        # UIDs are not printed: DICOM PS3.15 counts them as identifying.
        listing = []
        for k, uid in enumerate(uids, start=1):
            members = [ds for _, ds in images if uid_of(ds) == uid]
            first = members[0]
            listing.append(
                f"#{k} series number {first.get('SeriesNumber', '?')}, "
                f"{first.get('Modality', '?')}, {len(members)} images"
            )
        raise DicomSeriesError(
            f"{path}: holds {len(uids)} series ({'; '.join(listing)}); choose one with "
            "series_uid (--series-uid) '#N' or its SeriesInstanceUID"
        )
    # A localizer (scout) stored in the series of the axial images is not a slice of the
    # volume: another orientation, size or position. Left out when the series holds other
    # images (DICOM PS3.3 C.8.2.1.1.1: CT's ImageType value 3 is AXIAL or LOCALIZER).
    volume = [(f, ds) for f, ds in images if not _is_localizer(ds)]
    if volume:
        images = volume
    # Geometry is checked only for the chosen series: other series in the same
    # folder (screenshots, secondary captures) may lack it.
    slices = [(_header(ds, f), ds) for f, ds in images]
    return slices


def _is_localizer(ds: Dataset) -> bool:
    """Whether an image says it is a localizer (scout, topogram) in its ImageType."""
    value = ds.get("ImageType", None)
    if value is None:
        return False
    items = [value] if isinstance(value, str) else list(value)  # one value, or MultiValue
    return "LOCALIZER" in {str(v).strip().upper() for v in items}


def dicom_images(path: str | Path) -> list[tuple[DicomSliceHeader, Dataset]]:
    """Every DICOM image in a folder (or one file), of any series, with its geometry.

    Headers only (no pixel data): for readers that group images themselves, by frame,
    image type or series (MR thermometry series hold several images per slice
    position). As in :func:`read_dicom_series`, a file that says it is DICOM but cannot
    be read, or an image cut short, is an error rather than silently skipped; other
    files (text, DICOMDIR, reports) are ignored.

    Raises
    ------
    ioplan.errors.InputFileNotFoundError
        ``path`` does not exist.
    ioplan.errors.FileFormatError
        No DICOM image, a corrupt one, or an image without geometry.
    """
    images = _scan_images(Path(path))
    return [(_header(ds, f), ds) for f, ds in images]


def read_dicom_pixels(header: DicomSliceHeader) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The pixels of one image: (rescaled float64, stored values, slope, intercept).

    The stored values are the file's own integers; the rescaled ones are
    ``stored * RescaleSlope + RescaleIntercept`` (1 and 0 when absent).

    Raises
    ------
    ioplan.errors.FileFormatError
        Pixel data that cannot be decoded, of the wrong shape, or a zero slope.
    """
    try:
        ds = _dcmread(header.path, pixels=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pix = ds.pixel_array
    except Exception as exc:  # decoders raise many types
        raise FileFormatError(
            f"{header.path}: cannot decode pixel data ({_first_line(exc)})"
        ) from None
    if pix.shape != (header.rows, header.columns):
        raise FileFormatError(f"{header.path}: pixel data shape {pix.shape} is not Rows x Columns")
    slope = _rescale(ds, "RescaleSlope", 1.0, header.path)
    intercept = _rescale(ds, "RescaleIntercept", 0.0, header.path)
    if slope == 0.0:
        raise FileFormatError(f"{header.path}: RescaleSlope is 0")
    return pix.astype(np.float64) * slope + intercept, pix, slope, intercept


def series_geometry(headers: list[DicomSliceHeader], where: Path) -> tuple[Grid, list[int]]:
    """The grid of a regular series, and the order of ``headers`` from inferior to superior.

    An uneven or sheared series is an error here (see :func:`series_layout` to regularise).
    """
    layout = series_layout(headers, where)
    return layout.grid, layout.order


def dicom_series_grid(path: str | Path, *, series_uid: str | None = None) -> Grid:
    """The grid of a DICOM series (or single file) from its headers only, without pixels."""
    p = Path(path)
    slices = _load_headers(p, series_uid)
    grid, _ = series_geometry([h for h, _ in slices], p)
    return grid


def read_dicom_series(
    path: str | Path,
    *,
    series_uid: str | None = None,
    regularize: bool = False,
    notes: list[str] | None = None,
) -> Volume:
    """Read a DICOM series (a folder) or one DICOM image into a :class:`Volume`.

    Slices are sorted by their position along the slice normal, never by file
    name. Rescale slope and intercept are applied (CT gives HU). The series
    must be regular: one orientation, one pixel spacing, evenly spaced slices
    along the normal. With ``regularize``, missing slices (up to two in a row), mixed
    spacing and a gantry tilt are put on an even grid along the normal instead
    (:mod:`ioplan.imaging._regularize`; float32 values) and what was done is appended to
    ``notes``.

    Raises
    ------
    ioplan.errors.DicomSeriesError
        Missing slice, mixed spacing, orientations or sizes, duplicate
        positions, several series without ``series_uid``.
    ioplan.errors.FileFormatError
        No DICOM image found, or pixel data that cannot be decoded.
    """
    p = Path(path)
    slices = _load_headers(p, series_uid)
    layout = series_layout([h for h, _ in slices], p, regularize=regularize)
    grid, order = layout.grid, layout.order
    planes = []
    slopes_intercepts = []
    for i in order:
        _, pix, slope, intercept = read_dicom_pixels(slices[i][0])
        slopes_intercepts.append((slope, intercept))
        planes.append(pix)
    raw = np.stack(planes)
    if all(s == 1.0 and b == 0.0 for s, b in slopes_intercepts):
        array = raw
    else:
        integral = all(
            float(s).is_integer() and float(b).is_integer() for s, b in slopes_intercepts
        )
        dtype = np.int32 if integral else np.float32
        array = np.empty(raw.shape, dtype=dtype)
        for k, (s, b) in enumerate(slopes_intercepts):
            array[k] = raw[k].astype(np.float64) * s + b
        if integral and array.min() >= -32768 and array.max() <= 32767:
            array = array.astype(np.int16)
    if layout.note is not None:
        array = resample_planes(array, layout)
        if notes is not None:
            notes.append(layout.note)
    return Volume(array, grid)


def _flip_to_dicom_order(volume: Volume) -> Volume:
    """Make array axis 0 point along cross(row, column), as readers sort slices."""
    d = volume.grid.direction_matrix
    if float(d[:, 0] @ np.cross(d[:, 2], d[:, 1])) > 0:
        return volume
    g = volume.grid
    last = g.index_to_lps((g.shape[0] - 1, 0, 0))
    d2 = d.copy()
    d2[:, 0] = -d2[:, 0]
    grid = Grid(g.shape, g.spacing_mm, tuple(last), tuple(map(tuple, d2)))
    return Volume(np.ascontiguousarray(volume.array[::-1]), grid)


def _quantise(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Stored int16 values, slope and intercept that represent ``array``."""
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        a = array.astype(np.int64)
        if a.size == 0 or (a.min() >= -32768 and a.max() <= 32767):
            return a.astype(np.int16), 1.0, 0.0
    a = array.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if hi == lo:
        return np.zeros(a.shape, np.int16), 1.0, lo
    slope = (hi - lo) / 65534.0
    intercept = (hi + lo) / 2.0
    stored = np.rint((a - intercept) / slope)
    return np.clip(stored, -32767, 32767).astype(np.int16), slope, intercept


def write_dicom_series(
    volume: Volume,
    folder: str | Path,
    *,
    modality: str = "CT",
    series_description: str = "ioplan",
    patient_id: str = "ANONYMOUS",
    overwrite: bool = False,
) -> Path:
    """Write a volume as an anonymous single-frame DICOM series, one file per slice.

    Integer data within int16 is stored exactly; other data is quantised to
    int16 with a rescale slope (error at most half the slope, plus float32
    rounding: :func:`read_dicom_series` returns rescaled data as float32). File names are
    ``IM00001.dcm`` ... in slice order, but readers must sort by position.
    With ``overwrite``, only ``IM*.dcm`` files are replaced; other files in
    the folder are left alone.
    The only patient identifier written is ``patient_id`` (default
    ``"ANONYMOUS"``); the patient name is left empty.
    """
    from ioplan.imaging._io import check_output_folder

    folder = check_output_folder(folder, overwrite=overwrite)
    check_finite(volume.array, what="volume to write as DICOM")
    if modality not in ("CT", "MR"):
        raise FileFormatError(f"modality must be 'CT' or 'MR', got {modality!r}")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("IM*.dcm"):
        old.unlink()
    vol = _flip_to_dicom_order(volume)
    g = vol.grid
    d = g.direction_matrix
    stored, slope, intercept = _quantise(vol.array)
    study_uid, series_uid, for_uid = generate_uid(), generate_uid(), generate_uid()
    sop_class = _CT_IMAGE_STORAGE if modality == "CT" else _MR_IMAGE_STORAGE
    today = _dt.date.today().strftime("%Y%m%d")
    row_cos, col_cos = d[:, 2], d[:, 1]
    for k in range(g.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        sop_uid = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = for_uid
        ds.Modality = modality
        ds.PatientName = ""
        ds.PatientID = patient_id
        ds.StudyDate = ds.SeriesDate = today
        ds.SeriesDescription = series_description
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [f"{v:.10g}" for v in (*row_cos, *col_cos)]
        ds.ImagePositionPatient = [f"{v:.10g}" for v in g.index_to_lps((k, 0, 0))]
        ds.PixelSpacing = [f"{g.spacing_mm[1]:.10g}", f"{g.spacing_mm[2]:.10g}"]
        ds.SliceThickness = f"{g.spacing_mm[0]:.10g}"
        ds.SpacingBetweenSlices = f"{g.spacing_mm[0]:.10g}"
        ds.Rows, ds.Columns = g.shape[1], g.shape[2]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = f"{intercept:.10g}"
        ds.PixelData = np.ascontiguousarray(stored[k]).astype("<i2").tobytes()
        ds.save_as(folder / f"IM{k + 1:05d}.dcm", enforce_file_format=True)
    return folder
