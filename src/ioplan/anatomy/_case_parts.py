"""The parts of a case folder that ``case.toml`` names, read and checked.

The vessel centre-line CSV and the ``[[tumors]]`` entries: a file edited by hand gives a
one-line error naming what is wrong, never a crash or a NaN passed on.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.anatomy._vessels import VesselSegment
from ioplan.errors import FileFormatError

_VESSEL_COLUMNS = (
    "tree",
    "index",
    "parent",
    "x0_mm",
    "y0_mm",
    "z0_mm",
    "x1_mm",
    "y1_mm",
    "z1_mm",
    "radius_mm",
)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and bool(np.isfinite(v))


def _check_tumour_entry(t: dict[str, Any], where: str) -> None:
    """A ``[[tumors]]`` entry's centre (3 finite mm) and diameter (> 0 mm), where given."""
    if "centre_mm" in t:
        c = t["centre_mm"]
        if not (isinstance(c, list) and len(c) == 3 and all(_number(v) for v in c)):
            raise FileFormatError(f"{where}: centre_mm must be 3 finite numbers (mm), got {c!r}")
    if "diameter_mm" in t:
        d = t["diameter_mm"]
        if not (_number(d) and d > 0):
            raise FileFormatError(f"{where}: diameter_mm must be a number > 0 (mm), got {d!r}")


def _read_vessels(path: Path) -> tuple[VesselSegment, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FileFormatError(f"{path}: not a text (UTF-8 CSV) file") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path}: is a folder, not the vessel CSV file") from None
    out = []
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != _VESSEL_COLUMNS:
            raise FileFormatError(f"{path}: columns must be {', '.join(_VESSEL_COLUMNS)}")
        for i, row in enumerate(reader, start=2):
            try:
                out.append(
                    VesselSegment(
                        row["tree"],
                        int(row["index"]),
                        int(row["parent"]),
                        (float(row["x0_mm"]), float(row["y0_mm"]), float(row["z0_mm"])),
                        (float(row["x1_mm"]), float(row["y1_mm"]), float(row["z1_mm"])),
                        float(row["radius_mm"]),
                    )
                )
            except (TypeError, ValueError):
                raise FileFormatError(f"{path}: row {i} has a non-numeric value") from None
            seg = out[-1]
            if (
                not (np.all(np.isfinite(seg.start_mm + seg.end_mm)) and np.isfinite(seg.radius_mm))
                or seg.radius_mm <= 0
            ):
                raise FileFormatError(f"{path}: row {i} has a non-finite value or radius <= 0")
    return tuple(out)


#: The files of a case folder; with ``overwrite`` these are replaced, others kept.
CASE_FILES = frozenset({"case.toml", "image.nii.gz", "labels.nii.gz", "vessels.csv"})


def _check_no_derived_outputs(folder: Path) -> None:
    """Refuse to replace a case beside results that were made from it.

    A case folder may hold the user's own files, which an overwrite keeps; but an
    ioplan output made from the earlier case (the demo's ``plan/`` and report, or
    any subfolder that an ioplan command finished) would then describe another
    case. Such outputs carry a completion record (:data:`ioplan.imaging.COMPLETION_RECORD`).
    """
    from ioplan.errors import OutputExistsError
    from ioplan.imaging import COMPLETION_RECORD

    derived: list[str] = []
    top = folder / COMPLETION_RECORD
    if top.is_file():
        try:
            doc = json.loads(top.read_text())
            entries = doc.get("entries", []) if isinstance(doc, dict) else []
        except (OSError, ValueError):
            entries = []
        derived += sorted(str(e) for e in entries if str(e) not in CASE_FILES) or [top.name]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (sub / COMPLETION_RECORD).is_file() and sub.name not in derived:
            derived.append(sub.name)
    if derived:
        more = f" and {len(derived) - 3} more" if len(derived) > 3 else ""
        shown = ", ".join(derived[:3]) + more
        raise OutputExistsError(
            f"{folder} holds ioplan results made from the case there ({shown}): a new case "
            "would leave them describing another one; choose another folder or move them"
        )


def _check_ct_plausible(image: np.ndarray, labels: np.ndarray, image_path, labels_path) -> None:
    """Refuse an import whose image is not CT, or whose labels lie on other anatomy.

    A CT of the body holds air or fat (below the adipose window's upper bound, -30 HU, and
    in practice well below -100 HU); an MR read as CT has none. Labelled lung must be
    aerated (median below the aerated-lung bound, -400 HU); a labelled liver's median
    must be a liver's (-100 to 300 HU: steatosis to contrast and iron overload). The bounds
    come from ``anatomy/data/auto_labels.toml`` with their sources; -100 HU lies inside the
    adipose window there (-190 to -30 HU).
    """
    from ioplan.anatomy._auto import auto_label_parameters
    from ioplan.anatomy._labels import Label
    from ioplan.errors import InvalidImageError

    ct = auto_label_parameters()["ct"]
    low = float(np.min(image)) if image.size else 0.0
    if low > -100.0:
        raise InvalidImageError(
            f"--image {image_path} has no value below -100 HU (lowest {low:.4g}): no air and "
            "no fat, so it is not a CT in Hounsfield units; if it is MR, give --modality MR"
        )
    liver = labels == int(Label.LIVER)
    if np.count_nonzero(liver) >= 50:
        med = float(np.median(image[liver]))
        if not ct["liver_median_min_hu"] <= med <= ct["liver_median_max_hu"]:
            raise InvalidImageError(
                f"{labels_path}: the liver label's median is {med:.0f} HU on this CT, not "
                f"liver ({ct['liver_median_min_hu']:g} to {ct['liver_median_max_hu']:g} HU): "
                "the labels do not lie on this image's anatomy (check that they belong to "
                "it, and its position)"
            )
    lung = labels == int(Label.LUNG)
    if np.count_nonzero(lung) >= 50:
        med = float(np.median(image[lung]))
        if med > ct["lung_max_hu"]:
            raise InvalidImageError(
                f"{labels_path}: the lung label's median is {med:.0f} HU on this CT, not "
                f"aerated lung (below {ct['lung_max_hu']:g} HU): the labels do not lie on "
                "this image's anatomy (check that they belong to it, and its position)"
            )


def _plausibility_rules() -> dict:
    import tomllib
    from importlib import resources

    text = resources.files("ioplan.anatomy").joinpath("data/plausibility.toml").read_text()
    return tomllib.loads(text)


def check_anatomy_plausible(values: np.ndarray, grid, names: dict[int, str],
                            liver_values: set[int], labels_path) -> None:  # fmt: skip
    """Refuse a label file whose named structures lie where no anatomy has them.

    ``values``: the file's label values on its own ``grid``; ``names``: value -> class
    name; ``liver_values``: the values that mean the liver. Two rules of
    ``anatomy/data/plausibility.toml``, on positions only (any modality): classes that
    never share the liver's axial levels (the cervical spine, the sacrum, ...) and
    NAME_left lying left of NAME_right. A label file read with another tool's class map
    (TotalSegmentator's MR task with the CT map) or flipped left-right breaks them.

    One pass over the voxels (per-class sums by ``np.bincount``), on every ``stride``-th
    voxel along each axis for large files (at most about 4 million voxels are looked at:
    centroids and shares move by well under a voxel of the full grid).
    """
    import fnmatch

    from ioplan.errors import InvalidImageError

    rules = _plausibility_rules()
    far, lr = rules["far_from_liver"], rules["left_right"]
    arr = np.asarray(values)
    stride = max(1, int(np.ceil((arr.size / 4e6) ** (1 / 3))))
    sub = arr[::stride, ::stride, ::stride]
    present = [int(v) for v in np.unique(sub) if v != 0]
    if not present:
        return
    # world (LPS mm) x and z of each kept voxel: +x = patient's left, +z = superior
    m = grid.direction_matrix * (np.asarray(grid.spacing_mm) * stride)[None, :]
    idx = np.indices(sub.shape, dtype=np.float64).reshape(3, -1)
    x = m[0] @ idx + grid.origin_mm[0]
    z = m[2] @ idx + grid.origin_mm[2]
    flat = sub.reshape(-1).astype(np.int64)
    size = int(flat.max()) + 1
    count = np.bincount(flat, minlength=size).astype(float)
    min_count = float(far["min_voxels"]["value"]) / stride**3  # the full grid's minimum
    judged = {v for v in present if count[v] >= min_count}
    x_mean = np.bincount(flat, weights=x, minlength=size) / np.maximum(count, 1.0)
    liver = np.isin(flat, list(liver_values)) if liver_values else np.zeros(flat.size, bool)
    if np.count_nonzero(liver) >= min_count:
        lo, hi = float(z[liver].min()), float(z[liver].max())
        level = (z >= lo) & (z <= hi)
        share = np.bincount(flat, weights=level, minlength=size) / np.maximum(count, 1.0)
        for v in sorted(judged):
            name = str(names.get(v, "")).lower()
            if not any(fnmatch.fnmatchcase(name, p) for p in far["classes"]):
                continue
            if share[v] > float(far["share"]["value"]):
                raise InvalidImageError(
                    f"{labels_path}: class {names[v]!r} (value {v}) lies at the liver's levels "
                    f"({100 * share[v]:.0f} % of it), where no anatomy has it: the label values "
                    "are probably read with another class map (e.g. TotalSegmentator's MR "
                    "task with the CT map: give --label-map totalsegmentator-mr)"
                )
    tol = float(lr["tolerance_mm"]["value"])
    by_name = {str(names.get(v, "")).lower(): v for v in judged}
    for name, v_left in sorted(by_name.items()):
        v_right = by_name.get(name[:-5] + "_right") if name.endswith("_left") else None
        if v_right is None:
            continue
        if x_mean[v_left] < x_mean[v_right] - tol:
            raise InvalidImageError(
                f"{labels_path}: {names[v_left]!r} lies {x_mean[v_right] - x_mean[v_left]:.0f} "
                f"mm to the patient's right of {names[v_right]!r}: the labels or the image are "
                "flipped left-right, or the label values are read with another class map"
            )


def read_case_modality(value, where) -> str:
    """The image modality a case.toml names: CT or MR (what ioplan plans on and imports).

    A hand-edited ``modality = "PET"`` was loaded and planned on as if CT (sweep of session
    51); import-case refuses it, and so does loading now.
    """
    from ioplan.errors import FileFormatError

    if value not in ("CT", "MR"):
        raise FileFormatError(f"{where}: modality must be \"CT\" or \"MR\", got {value!r}")
    return str(value)


def read_case_image(path: Any, series_uid: str | None, *, regularize: bool) -> tuple[Any, list]:
    """A case's image and the notes of its reading.

    With ``regularize`` a DICOM series with lost slices (up to two in a row), mixed
    spacing or a gantry tilt is put on an even grid, and the note says so; without, it is
    refused (one line), and the message says how to accept it.
    """
    from ioplan.errors import IrregularSeriesError
    from ioplan.imaging import read_image

    notes: list[str] = []
    try:
        image = read_image(path, series_uid=series_uid, regularize=regularize, notes=notes)
    except IrregularSeriesError as exc:  # only raised without regularize
        raise IrregularSeriesError(
            f"{exc} (--regularize interpolates it onto an even grid: up to two missing slices "
            "in a row, mixed spacing, a gantry tilt)"
        ) from None
    return image, notes
