"""Segmentations as other tools write them: label maps, mask folders, DICOM-SEG, Slicer.

Every reader returns a :class:`Segmentation`: an integer label array on its own grid (any
index order; the grid says where each voxel is) and, when the file names its segments, a
``{name: value}`` table. :func:`labels_on_grid` brings the array onto an image's grid.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ioplan.errors import FileFormatError, GeometryMismatchError, InputError
from ioplan.imaging._grid import Grid
from ioplan.imaging._io import _c_stderr_captured, _require_exists, image_format, read_image
from ioplan.imaging._sitk import resample
from ioplan.imaging._volume import Volume

__all__ = ["Segmentation", "check_volume_3d", "labels_on_grid", "read_segmentation"]

_MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
_MAX_VALUE = 65535


@dataclass(frozen=True)
class Segmentation:
    """A label array with its grid and, when the source names them, its segments.

    Attributes
    ----------
    labels : Volume
        Integer values (0 is the background) on the segmentation's own grid.
    names : dict of str to int
        Segment name -> value in ``labels``; empty for a plain label map (its values
        are named by the caller: ``--label`` or a class map).
    kind : str
        ``"label map"``, ``"mask folder"``, ``"dicom-seg"`` or ``"slicer seg.nrrd"``.
    notes : tuple of str
        What the reader did that a user should know (overlapping masks, ...).
    """

    labels: Volume
    names: dict[str, int] = field(default_factory=dict)
    kind: str = "label map"
    notes: tuple[str, ...] = ()


def label_integers(arr: np.ndarray, where: str) -> np.ndarray:
    """``arr`` as integer label values 0-65535 (integral floats accepted), or a one-line error."""
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        out = arr
    elif (
        np.issubdtype(arr.dtype, np.floating)
        and np.all(np.isfinite(arr))
        and np.all(arr == np.rint(arr))
    ):
        out = arr.astype(np.int64)
    else:
        raise FileFormatError(f"{where}: a label map must hold integers, got {arr.dtype} values")
    if out.size and (out.min() < 0 or out.max() > _MAX_VALUE):
        raise FileFormatError(
            f"{where}: label values must be 0-{_MAX_VALUE}, got {out.min()}..{out.max()}"
        )
    return out.astype(np.uint16 if out.size and out.max() > 255 else np.uint8)


def read_segmentation(path: str | Path) -> Segmentation:
    """Read a segmentation in any of the forms other tools write.

    Parameters
    ----------
    path : path
        A label map (NIfTI, NRRD, MetaImage); a folder of one mask per structure
        (TotalSegmentator's default output: ``liver.nii.gz`` is the liver); a DICOM-SEG
        file (segment labels as names); a 3D Slicer ``.seg.nrrd`` (names from its
        ``SegmentN_Name``, ``SegmentN_LabelValue`` and ``SegmentN_Layer`` header fields).

    Returns
    -------
    Segmentation

    Raises
    ------
    ioplan.errors.FileFormatError
        Unreadable files, non-integer labels, masks of a folder on different grids,
        duplicate segment names.
    """
    path = Path(path)
    _require_exists(path)
    name = path.name.lower()
    if path.is_dir():
        masks = sorted(p for p in path.iterdir() if p.name.lower().endswith(_MASK_SUFFIXES))
        if masks:
            return _read_mask_folder(path, masks)
        return _read_dicom_seg(_single_dicom(path))
    if name.endswith(".seg.nrrd"):
        return _read_slicer_seg(path)
    if name.endswith(".dcm") and _is_dicom_seg(path):
        return _read_dicom_seg(path)
    if image_format(path) == "dicom":
        if _is_dicom_seg(path):
            return _read_dicom_seg(path)
        raise FileFormatError(f"{path}: a DICOM file given as labels must be a DICOM-SEG")
    vol = read_image(path)
    return Segmentation(vol.with_array(label_integers(vol.array, str(path))))


def _single_dicom(folder: Path) -> Path:
    files = [p for p in folder.iterdir() if p.is_file() and _is_dicom_seg(p)]
    if len(files) != 1:
        raise FileFormatError(
            f"{folder}: a labels folder must hold masks (.nii.gz, .nrrd) or one DICOM-SEG "
            f"file; found {len(files)} DICOM-SEG files"
        )
    return files[0]


def _is_dicom_seg(path: Path) -> bool:
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # not DICOM at all
        return False
    return str(ds.get("SOPClassUID", "")) == "1.2.840.10008.5.1.4.1.1.66.4"


def _mask_name(p: Path) -> str:
    n = p.name
    for s in _MASK_SUFFIXES:
        if n.lower().endswith(s):
            return n[: -len(s)]
    return n


def _read_mask_folder(folder: Path, masks: list[Path]) -> Segmentation:
    """One binary mask per file; values 1..N in the files' name order (empty masks skipped)."""
    grid: Grid | None = None
    out: np.ndarray | None = None
    names: dict[str, int] = {}
    overlaps: list[str] = []
    value = 0
    for p in masks:
        vol = read_image(p)
        arr = label_integers(vol.array, str(p))
        if grid is None:
            grid, out = vol.grid, np.zeros(vol.grid.shape, np.uint16)
        elif (diff := grid.mismatch(vol.grid)) is not None:
            raise FileFormatError(f"{p}: mask grid differs from {masks[0].name}'s: {diff}")
        assert out is not None  # set with grid
        if np.any((arr != 0) & (arr != 1)):
            raise FileFormatError(f"{p}: a mask must hold 0 and 1, got values up to {arr.max()}")
        m = arr.astype(bool)
        if not m.any():
            continue
        value += 1
        if np.any(out[m] != 0):
            overlaps.append(_mask_name(p))
        out[m] = value
        names[_mask_name(p)] = value
    assert grid is not None and out is not None
    notes = ()
    if overlaps:
        notes = (f"masks overlap; the later file (by name) wins for: {', '.join(overlaps[:8])}",)
    arr8 = out.astype(np.uint8) if value <= 255 else out
    return Segmentation(Volume(arr8, grid), names, "mask folder", notes)


def _read_dicom_seg(path: Path) -> Segmentation:
    import highdicom as hd

    try:
        seg = hd.seg.segread(str(path))
        numbers = [int(n) for n in seg.segment_numbers]
        vol = seg.get_volume(combine_segments=True, relabel=False, dtype=np.uint16)
    except Exception as exc:  # highdicom and pydicom raise many types
        raise FileFormatError(f"{path}: not a readable DICOM-SEG ({exc})") from None
    names: dict[str, int] = {}
    for n in numbers:
        label = str(seg.get_segment_description(n).segment_label).strip() or f"segment_{n}"
        if label in names:
            raise FileFormatError(f"{path}: segment label {label!r} is used twice")
        names[label] = n
    arr = np.asarray(vol.array)
    if arr.ndim != 3:
        raise FileFormatError(f"{path}: expected a 3D segmentation, got shape {arr.shape}")
    # highdicom's affine maps the array's indices to LPS mm, whatever their order
    grid = Grid.from_affine(arr.shape, np.asarray(vol.affine))
    return Segmentation(Volume(label_integers(arr, str(path)), grid), names, "dicom-seg")


def _read_slicer_seg(path: Path) -> Segmentation:
    """A Slicer segmentation: one or more layers, segments named in the NRRD header."""
    import SimpleITK as sitk

    with _c_stderr_captured():
        try:
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            image = reader.Execute()
        except RuntimeError as exc:
            raise FileFormatError(f"{path}: not a readable NRRD ({exc})") from None
    meta = {k: image.GetMetaData(k) for k in image.GetMetaDataKeys()}
    segs: dict[int, dict[str, str]] = {}
    for key, value in meta.items():
        m = re.fullmatch(r"Segment(\d+)_(Name|LabelValue|Layer)", key)
        if m:
            segs.setdefault(int(m.group(1)), {})[m.group(2)] = value.strip()
    if not segs:
        raise FileFormatError(f"{path}: no SegmentN_Name fields; not a Slicer segmentation")
    n_layers = image.GetNumberOfComponentsPerPixel()
    if n_layers > 1:
        layers = [sitk.VectorIndexSelectionCast(image, k) for k in range(n_layers)]
    else:
        layers = [image]
    vols = []
    for layer in layers:
        if layer.GetDimension() != 3:
            raise FileFormatError(f"{path}: expected 3D layers, got {layer.GetDimension()}D")
        grid = Grid.from_sitk_geometry(
            layer.GetSize(), layer.GetSpacing(), layer.GetOrigin(), layer.GetDirection()
        )
        vols.append(Volume(sitk.GetArrayFromImage(layer), grid))
    out = np.zeros(vols[0].grid.shape, np.uint16)
    names: dict[str, int] = {}
    for pos, k in enumerate(sorted(segs)):
        s = segs[k]
        try:
            name = s["Name"]
            value = int(s.get("LabelValue", "1"))
            # older Slicer files: no Layer field, one binary layer per segment, in order
            default_layer = str(pos) if len(vols) == len(segs) and len(vols) > 1 else "0"
            layer = int(s.get("Layer", default_layer))
        except (KeyError, ValueError):
            raise FileFormatError(
                f"{path}: Segment{k} has no name or a non-integer value"
            ) from None
        if not 0 <= layer < len(vols) or not 1 <= value <= _MAX_VALUE:
            raise FileFormatError(
                f"{path}: Segment{k} has layer {layer} or value {value} out of range"
            )
        if name in names:
            raise FileFormatError(f"{path}: segment name {name!r} is used twice")
        names[name] = k + 1
        out[np.asarray(vols[layer].array) == value] = k + 1
    arr = out.astype(np.uint8) if len(names) <= 255 else out
    return Segmentation(Volume(arr, vols[0].grid), names, "slicer seg.nrrd")


def labels_on_grid(
    labels: Volume, grid: Grid, *, what: str = "labels",
    may_cut: Callable[[int], str | None] | None = None,
    name_of: Callable[[int], str] | None = None,
) -> tuple[Volume, str | None]:
    """``labels`` on ``grid``: as they are when the grids match, else resampled.

    Nearest-neighbour resampling through patient coordinates (:func:`resample`): flipped
    or permuted axes, another origin or spacing, a sub-volume. The two arrays' index
    orders are never assumed to agree.

    ``may_cut`` gives, for a label value, its name when the image may cut that structure
    (an image cropped from the scan that was segmented: the liver or a vessel going on
    beyond the image), or None when it must lie wholly inside (a tumour). It applies only
    when the image lies within the labels' grid (a crop of the labelled scan). Without it
    no labelled voxel may fall outside the grid. ``name_of`` names a value in the message
    that refuses a structure that must lie wholly inside.

    Returns
    -------
    labels : Volume
        On ``grid``.
    note : str or None
        What was done, for the user (None when nothing was).

    Raises
    ------
    ioplan.errors.GeometryMismatchError
        The labels do not overlap the grid, none of their labelled voxels falls in it,
        or labelled voxels that may not be cut would fall outside it (they would be lost).
    """
    diff = grid.mismatch(labels.grid)
    if diff is None:
        return Volume(np.asarray(labels.array), grid), None
    if not grid.overlaps(labels.grid):
        lo, hi = labels.grid.bounds_lps()
        ilo, ihi = grid.bounds_lps()
        raise GeometryMismatchError(
            f"{what} do not overlap the image in space (labels x,y,z "
            f"{_box(lo, hi)} mm, image {_box(ilo, ihi)} mm): labels of another patient or scan?"
        )
    arr = np.asarray(labels.array)
    n_src = int(np.count_nonzero(arr))
    out = resample(labels, grid, interpolation="nearest", default_value=0)
    n_out = _labelled_outside(arr, labels.grid, grid)
    if n_src and n_out == n_src:
        raise GeometryMismatchError(
            f"{what} do not overlap the image: none of their {n_src} labelled voxels lies in "
            "the image grid (labels of another patient or scan?)"
        )
    cut = ""
    if n_out:
        outside = _labelled_outside_by_value(arr, labels.grid, grid)
        # a crop: every voxel centre of the image within the labelled scan (its corners
        # suffice, both boxes being convex); otherwise the labels are of another scan
        corners = np.array([[i, j, k] for i in (0, grid.shape[0] - 1)
                            for j in (0, grid.shape[1] - 1) for k in (0, grid.shape[2] - 1)],
                           float)  # fmt: skip
        crop = bool(np.all(labels.grid.contains_lps(grid.index_to_lps(corners))))
        names = {v: may_cut(v) if may_cut is not None and crop else None for v in outside}
        whole = [v for v, name in names.items() if name is None]
        if whole:
            raise GeometryMismatchError(
                f"{what} grid does not match the image grid ({diff}) and {n_out} of {n_src} "
                "labelled voxels lie outside the image"
                + (f" ({name_of(whole[0]) if name_of else f'value {whole[0]}'}, which must "
                   "lie wholly inside the image)"
                   if may_cut is not None and crop else "")
                + "; crop the labels to the image first, or give an image that holds them"
            )
        cut = (
            f"; the image is a part of the labelled scan: {n_out} labelled voxels outside it "
            "were left out ("
            + ", ".join(f"{names[v]} {n}" for v, n in sorted(outside.items(), key=lambda x: -x[1]))
            + ")"
        )
    note = (
        f"{what} resampled onto the image grid by nearest neighbour ({diff}; labels: shape "
        f"{labels.grid.shape}, spacing {_fmt(labels.grid.spacing_mm)} mm, origin "
        f"{_fmt(labels.grid.origin_mm)} mm; image: shape {grid.shape}, spacing "
        f"{_fmt(grid.spacing_mm)} mm, origin {_fmt(grid.origin_mm)} mm){cut}"
    )
    return out, note


def _labelled_outside_by_value(arr: np.ndarray, src: Grid, grid: Grid) -> dict[int, int]:
    """Labelled voxels of ``arr`` (on ``src``) whose centres lie outside ``grid``, per value."""
    counts: dict[int, int] = {}
    for k in range(arr.shape[0]):  # slice by slice, to bound the memory
        idx = np.argwhere(arr[k] != 0)
        if idx.size:
            full = np.column_stack([np.full(len(idx), k), idx])
            out = ~grid.contains_lps(src.index_to_lps(full))
            vals, n = np.unique(arr[k][tuple(idx[out].T)], return_counts=True)
            for v, c in zip(vals.tolist(), n.tolist(), strict=True):
                counts[int(v)] = counts.get(int(v), 0) + int(c)
    return counts


def _labelled_outside(arr: np.ndarray, src: Grid, grid: Grid) -> int:
    """How many labelled voxels of ``arr`` (on ``src``) have their centres outside ``grid``."""
    nz = [np.flatnonzero(np.any(arr != 0, axis=tuple(a for a in range(3) if a != k)))
          for k in range(3)]  # fmt: skip
    if any(v.size == 0 for v in nz):
        return 0
    corners = np.array([[a, b, c] for a in (nz[0][0], nz[0][-1]) for b in (nz[1][0], nz[1][-1])
                        for c in (nz[2][0], nz[2][-1])], float)  # fmt: skip
    if np.all(grid.contains_lps(src.index_to_lps(corners))):
        return 0  # the image's box is convex: every labelled voxel lies inside it
    n_out = 0
    for k in range(arr.shape[0]):  # slice by slice, to bound the memory
        idx = np.argwhere(arr[k] != 0)
        if idx.size:
            full = np.column_stack([np.full(len(idx), k), idx])
            n_out += int(np.count_nonzero(~grid.contains_lps(src.index_to_lps(full))))
    return n_out


def _fmt(v: tuple[float, ...]) -> str:
    return " x ".join(f"{x:g}" for x in v)


def _box(lo: np.ndarray, hi: np.ndarray) -> str:
    return "[" + ", ".join(f"{a:.0f}..{b:.0f}" for a, b in zip(lo, hi, strict=True)) + "]"


def check_volume_3d(volume: Volume, what: str) -> None:
    """Refuse a 2D image (one slice along an axis): ioplan plans in 3D."""
    if min(volume.grid.shape) < 2:
        raise InputError(
            f"{what} is 2D (shape {volume.grid.shape}); ioplan needs a 3D volume (a series)"
        )
