"""Reading and writing volumes: NIfTI, NRRD (and other ITK formats), DICOM series.

NIfTI stores RAS coordinates; ioplan works in LPS. The conversion happens in
:func:`_nifti_affine_to_lps` and nowhere else.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from ioplan.errors import (
    FileFormatError,
    InputError,
    InputFileNotFoundError,
    OutputExistsError,
    OutputNotWritableError,
)
from ioplan.imaging._grid import Grid
from ioplan.imaging._volume import Volume, check_finite

__all__ = [
    "OutputNotWritableError",
    "check_output_folder",
    "check_writable",
    "image_format",
    "read_image",
    "read_nifti",
    "read_sitk",
    "staged_output_folder",
    "write_image",
    "write_nifti",
    "write_sitk",
]

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")

# (z, y, x, 1) index -> (i, j, k, 1) = (x, y, z, 1): nibabel's axis order is
# the reverse of ours. RAS <-> LPS: negate the first two coordinates. Both
# matrices are their own inverse.
_ZYX_TO_IJK = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


# NIfTI xyz units ("unknown" is read as mm, the NIfTI-1 convention in practice).
_NIFTI_UNIT_TO_MM = {"mm": 1.0, "unknown": 1.0, "meter": 1000.0, "micron": 0.001}


def _nifti_affine_to_lps(affine_ras_ijk: np.ndarray) -> np.ndarray:
    """NIfTI ``(i, j, k) -> RAS`` affine to ioplan ``(z, y, x) -> LPS`` (and back)."""
    return _RAS_TO_LPS @ np.asarray(affine_ras_ijk, dtype=float) @ _ZYX_TO_IJK


def image_format(path: str | Path) -> str:
    """``"nifti"``, ``"sitk"`` (NRRD, MetaImage) or ``"dicom"`` from a path's name."""
    name = str(path).lower()
    if name.endswith(_NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(_SITK_SUFFIXES):
        return "sitk"
    if Path(path).is_dir() or name.endswith(".dcm"):
        return "dicom"
    raise FileFormatError(
        f"{path}: unknown image format (expected .nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd, "
        "a .dcm file or a DICOM folder)"
    )


def _require_exists(path: Path) -> None:
    if not path.exists():
        raise InputFileNotFoundError(f"{path}: no such file or folder")


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (``Path.exists`` is False under a file)."""
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(folder: str | Path) -> Path:
    """Refuse a folder that could not be created or written into; create nothing.

    The folder itself when it exists, else its nearest existing ancestor, must be a
    folder in which a probe folder can be made (and is removed at once): this finds a
    missing permission, a read-only file system and a file where a folder should be.

    Raises
    ------
    OutputNotWritableError
        Naming the folder and the reason.
    """
    folder = Path(folder)
    base = _nearest_existing(folder)
    if not base.is_dir():
        where = "is a file" if base == folder.absolute() else f"lies under the file {base}"
        raise OutputNotWritableError(f"cannot write to {folder}: it {where}, not a folder")
    try:
        probe = tempfile.mkdtemp(prefix=".ioplan-write-test-", dir=base)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        where = "" if base == folder.absolute() else f" (in {base})"
        raise OutputNotWritableError(f"cannot write to {folder}{where}: {reason}") from None
    Path(probe).rmdir()
    return folder


def check_output_folder(folder: str | Path, *, overwrite: bool) -> Path:
    """Refuse an output folder that cannot be written, or that holds anything unless ``overwrite``.

    Cheap: call it before any work. Creates nothing and leaves nothing behind.

    Raises
    ------
    OutputExistsError
        The path is a file, or a folder that is not empty and ``overwrite`` is False.
    OutputNotWritableError
        The folder (or the nearest existing folder above it) cannot be written: no
        permission, a read-only file system, or a file in the path.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{folder} exists and is not a folder")
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise OutputExistsError(f"{folder} exists and is not empty (--overwrite replaces it)")
    return check_writable(folder)


@contextmanager
def staged_output_folder(folder: str | Path, *, overwrite: bool) -> Iterator[Path]:
    """Write a command's outputs into a temporary sibling folder, then move them in place.

    Yields the temporary folder to write into. When the block ends without an error, a
    new ``folder`` appears whole by one rename; into an existing folder (``overwrite``)
    each output replaces its namesake by an atomic rename, and other files there are
    kept. On an error, or an interruption, the temporary folder is removed and
    ``folder`` is left as it was: nothing is ever half-written.

    Raises
    ------
    OutputExistsError, OutputNotWritableError
        As :func:`check_output_folder`, before anything is written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> with staged_output_folder(base / "out", overwrite=False) as tmp:
    ...     _ = (tmp / "a.txt").write_text("a")
    >>> sorted(p.name for p in base.iterdir()), (base / "out" / "a.txt").read_text()
    (['out'], 'a')
    """
    folder = check_output_folder(folder, overwrite=overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()  # not mkdtemp: the folder keeps the permissions the umask gives
    try:
        yield tmp
        if folder.is_dir():
            for item in tmp.iterdir():
                dest = folder / item.name
                if item.is_dir() and dest.is_dir():
                    shutil.rmtree(dest)
                os.replace(item, dest)
            tmp.rmdir()
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _check_output(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists (--overwrite replaces it)")
    check_writable(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)


# -- voxel spacing in the headers -------------------------------------------
def _refuse_spacing(path: Path, field: str, values: Any) -> None:
    """Refuse voxel spacings that are not finite and > 0 (readers would repair them silently)."""
    vals = np.asarray(values, dtype=float)
    if vals.size and not (np.all(np.isfinite(vals)) and np.all(vals > 0)):
        shown = " ".join(f"{v:g}" for v in vals)
        raise FileFormatError(f"{path}: voxel spacing ({field}) must be > 0 mm, got {shown}")


def _check_nifti_spacing(path: Path) -> None:
    """Refuse zero, negative or NaN ``pixdim[1..3]`` before nibabel replaces them by 1 or abs."""
    import gzip
    import zlib

    try:
        opener = gzip.open if str(path).lower().endswith(".gz") else open
        with opener(path, "rb") as f:
            block = f.read(540)
    except (OSError, EOFError, zlib.error) as exc:  # truncated or corrupt gzip too
        raise FileFormatError(f"{path}: not a readable NIfTI file ({exc})") from None
    for header_class in (nib.Nifti1Header, nib.Nifti2Header):
        n = header_class.sizeof_hdr
        if len(block) < n:
            continue
        try:
            hdr = header_class(block[:n], check=False)
            if int(hdr["sizeof_hdr"]) != n:
                continue
            ndim = int(hdr["dim"][0])
            pixdim = np.asarray(hdr["pixdim"][1 : 1 + min(max(ndim, 0), 3)], float)
        except Exception:  # not this header kind: nib.load reports the file
            continue
        _refuse_spacing(path, "pixdim", pixdim)
        return


def _sitk_header_lines(path: Path) -> list[str]:
    """The text header lines of a NRRD or MetaImage file (empty when unreadable)."""
    try:
        with open(path, "rb") as f:
            text = f.read(65536).decode("latin-1")
    except OSError:
        return []
    lines = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("ElementDataFile"):
            break  # NRRD: a blank line ends the header; MetaImage: the data file entry
        lines.append(line)
    return lines


def _check_sitk_spacing(path: Path) -> None:
    """Refuse zero, negative or NaN spacing in NRRD and MetaImage headers.

    ``spacings`` (NRRD) and ``ElementSpacing`` (MetaImage) must be > 0; a NRRD ``space
    directions`` vector may point anywhere (its sign is the orientation) but must have a
    finite, non-zero length.
    """
    for line in _sitk_header_lines(path):
        key, sep, value = line.partition(":" if ":" in line.split("=")[0] else "=")
        key = key.strip().lower()
        if not sep:
            continue
        try:
            if key in ("spacings", "elementspacing"):
                vals = [float(v) for v in value.split()]
                _refuse_spacing(path, "spacings" if key == "spacings" else "ElementSpacing", vals)
            elif key == "space directions":
                vecs = re.findall(r"\(([^)]*)\)", value)
                lengths = [float(np.linalg.norm([float(c) for c in v.split(",")])) for v in vecs]
                _refuse_spacing(path, "space directions, vector lengths", lengths)
        except FileFormatError:
            raise
        except ValueError:
            continue  # not numbers: SimpleITK reports the file as unreadable


# -- NIfTI -----------------------------------------------------------------
def read_nifti(path: str | Path) -> Volume:
    """Read a 3D NIfTI-1/2 file into a :class:`Volume` in LPS.

    The sform is used when set, else the qform (nibabel's ``affine``). A
    trailing singleton 4th dimension is dropped. ``scl_slope``/``scl_inter``
    are applied.
    """
    path = Path(path)
    _require_exists(path)
    _check_nifti_spacing(path)
    try:
        # nibabel logs (to stderr) the header fields it repairs; the checks above refuse
        # the repairs that would change the geometry, the rest must not clutter the output
        with nib.imageglobals.LoggingOutputSuppressor():
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise FileFormatError(f"{path}: not a readable NIfTI file ({exc})") from None
    hdr = img.header
    if int(hdr.get("sform_code", 0)) == 0 and int(hdr.get("qform_code", 0)) == 0:
        raise FileFormatError(
            f"{path}: NIfTI file has no orientation (qform and sform codes are 0); "
            "tools disagree on its geometry, so ioplan refuses to guess"
        )
    unit = hdr.get_xyzt_units()[0]
    scale = _NIFTI_UNIT_TO_MM.get(unit)
    if scale is None:
        raise FileFormatError(f"{path}: unknown NIfTI spatial unit {unit!r}")
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise FileFormatError(f"{path}: expected a 3D image, got shape {data.shape}")
    array = np.ascontiguousarray(data.transpose(2, 1, 0))
    try:
        affine = _nifti_affine_to_lps(img.affine)
        affine[:3, :] *= scale
        return Volume.from_affine(array, affine)
    except InputError as exc:
        raise FileFormatError(f"{path}: {exc}") from None


def write_nifti(
    volume: Volume, path: str | Path, *, overwrite: bool = False, description: str | None = None
) -> Path:
    """Write a volume as NIfTI-1 (RAS on disk, sform and qform code 1, mm units).

    ``description`` goes into the header's ``descrip`` field (ASCII, at most 80 bytes).
    """
    path = Path(path)
    _check_output(path, overwrite)
    arr = volume.array
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    affine = _nifti_affine_to_lps(volume.grid.affine)  # the map is its own inverse
    img = nib.Nifti1Image(np.ascontiguousarray(arr.transpose(2, 1, 0)), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    if description is not None:
        img.header["descrip"] = description.encode("ascii", "replace")[:80]
    nib.save(img, str(path))
    return path


def nifti_description(path: str | Path) -> str:
    """The header's ``descrip`` field of a NIfTI file ("" when unreadable or empty)."""
    try:
        raw = nib.load(str(path)).header["descrip"]
    except Exception:  # any unreadable file simply has no description
        return ""
    return bytes(np.asarray(raw).tobytes()).split(b"\0")[0].decode("ascii", "replace").strip()


def write_nifti_series(
    frames: np.ndarray, grid: Grid, path: str | Path, *, frame_s: float = 1.0,
    overwrite: bool = False,
) -> Path:  # fmt: skip
    """Write frames ``(n, z, y, x)`` on ``grid`` as a 4D NIfTI-1 (RAS, mm, s)."""
    path = Path(path)
    _check_output(path, overwrite)
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[1:] != tuple(grid.shape):
        raise InputError(f"frames {arr.shape} do not match the grid {grid.shape}")
    affine = _nifti_affine_to_lps(grid.affine)
    img = nib.Nifti1Image(np.ascontiguousarray(arr.transpose(3, 2, 1, 0)), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = float(frame_s)
    nib.save(img, str(path))
    return path


def read_nifti_series(path: str | Path, *, what: str = "image") -> tuple[np.ndarray, Grid, float]:
    """Read a 4D NIfTI: frames ``(n, z, y, x)`` (float32), the 3D grid, the frame time (s).

    A 3D file is one frame. NaN or infinite values are refused.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"{what} file not found: {path}")
    _check_nifti_spacing(path)
    try:
        with nib.imageglobals.LoggingOutputSuppressor():
            img = nib.load(str(path))
            data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises several kinds for corrupt files
        raise FileFormatError(f"cannot read {what} {path}: {exc}") from None
    if data.ndim == 3:
        data = data[..., None]
    if data.ndim != 4:
        raise FileFormatError(f"{what} must be a 4D image (x, y, z, frame), got {data.ndim}D")
    if not np.all(np.isfinite(data)):
        raise FileFormatError(f"{what} holds NaN or infinite values")
    grid = Grid.from_affine(data.shape[2::-1], _nifti_affine_to_lps(img.affine))
    zooms = img.header.get_zooms()
    frame_s = float(zooms[3]) if len(zooms) > 3 else 0.0
    return data.transpose(3, 2, 1, 0), grid, frame_s


# -- NRRD and MetaImage through SimpleITK ------------------------------------
def read_sitk(path: str | Path) -> Volume:
    """Read NRRD, MetaImage or another ITK format (SimpleITK reports LPS)."""
    from ioplan.imaging._sitk import from_sitk

    path = Path(path)
    _require_exists(path)
    _check_sitk_spacing(path)
    with _c_stderr_captured() as said:
        try:
            image = sitk.ReadImage(str(path))
            exc_text = None
        except RuntimeError as exc:
            exc_text = str(exc)
    if exc_text is not None:
        raise FileFormatError(f"{path}: not a readable image ({_itk_reason(exc_text, said())})")
    try:
        return from_sitk(image)
    except InputError as exc:
        raise FileFormatError(f"{path}: {exc}") from None


@contextmanager
def _c_stderr_captured() -> Iterator[Any]:
    """Catch what C++ libraries write to file descriptor 2 (MetaIO prints its errors there).

    Yields a function returning the text caught. Those lines would otherwise reach the
    terminal around the command's one-line error; the reader puts them in its message.
    """
    text: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor (embedded interpreter): nothing to catch
        yield lambda: ""
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: "".join(text)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read().decode("utf-8", "replace"))


def _itk_reason(exc_text: str, said: str) -> str:
    """The informative part of an ITK read error (what MetaIO printed comes first)."""
    lines = [" ".join(x.split()) for x in (said + "\n" + exc_text).splitlines() if x.strip()]
    useful = [x for x in lines if not x.startswith(("Exception thrown in", "Reason:", "/"))]
    return "; ".join(useful[:2] if said.strip() else useful[-1:]) or "unreadable"


def write_sitk(volume: Volume, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write NRRD or MetaImage (compressed) through SimpleITK."""
    from ioplan.imaging._sitk import to_sitk

    path = Path(path)
    _check_output(path, overwrite)
    sitk.WriteImage(to_sitk(volume), str(path), useCompression=True)
    return path


# -- dispatch ----------------------------------------------------------------
def read_image(
    path: str | Path,
    *,
    allow_nan: bool = False,
    series_uid: str | None = None,
    regularize: bool = False,
    notes: list[str] | None = None,
) -> Volume:
    """Read a volume from NIfTI, NRRD, MetaImage, a DICOM file or a DICOM series folder.

    Parameters
    ----------
    path : str or Path
        File, or folder of DICOM files.
    allow_nan : bool
        Accept NaN or infinite voxels (default: raise
        :class:`~ioplan.errors.FileFormatError`).
    series_uid : str, optional
        For a DICOM folder holding several series, the one to read.
    regularize : bool
        A DICOM series with missing slices (up to two in a row), mixed spacing or a
        gantry tilt is put on an even grid (:func:`~ioplan.imaging.read_dicom_series`)
        instead of refused; what was done is appended to ``notes``.
    notes : list of str, optional
        Receives the regularisation's note.

    Returns
    -------
    Volume
        Array ``(z, y, x)`` with its LPS geometry.
    """
    from ioplan.imaging._dicom import read_dicom_series

    path = Path(path)
    _require_exists(path)
    kind = image_format(path)
    if series_uid is not None and kind != "dicom":
        raise InputError(
            f"--series-uid picks a series of a DICOM folder; {path} is not one (a single "
            "image file): leave --series-uid out"
        )
    if regularize and kind != "dicom":
        raise InputError(
            f"--regularize puts an unevenly stacked DICOM series on an even grid; {path} is "
            "an image file already on one: leave --regularize out"
        )
    if kind == "nifti":
        vol = read_nifti(path)
    elif kind == "sitk":
        vol = read_sitk(path)
    else:
        vol = read_dicom_series(path, series_uid=series_uid, regularize=regularize, notes=notes)
    if not allow_nan:
        check_finite(vol.array, what=str(path))
    return vol


def write_image(
    volume: Volume,
    path: str | Path,
    *,
    overwrite: bool = False,
    **dicom_options: Any,
) -> Path:
    """Write a volume; the format follows the name (a folder or ``.dcm`` means DICOM series)."""
    from ioplan.imaging._dicom import write_dicom_series

    path = Path(path)
    name = str(path).lower()
    if name.endswith(_NIFTI_SUFFIXES):
        return write_nifti(volume, path, overwrite=overwrite)
    if name.endswith(_SITK_SUFFIXES):
        return write_sitk(volume, path, overwrite=overwrite)
    if not path.suffix or path.is_dir():
        return write_dicom_series(volume, path, overwrite=overwrite, **dicom_options)
    raise FileFormatError(f"{path}: unknown output format (use .nii.gz, .nrrd, .mha or a folder)")
