"""The case folder: an image, its label map, and ``case.toml``.

Layout::

    CASE/
      case.toml          label meanings and patient-free metadata
      image.nii.gz       CT or MR image (any format read_image reads)
      labels.nii.gz      label map on the same grid
      vessels.csv        optional vessel centrelines (the phantom writes them)

``case.toml``::

    format = "ioplan-case"
    format_version = 1
    name = "phantom-seed1"
    modality = "CT"
    image = "image.nii.gz"
    labels = "labels.nii.gz"

    [[tumors]]          # optional: what is known of each tumour
    centre_mm = [-85.0, 25.0, 15.0]
    diameter_mm = 30.0
    histology = "hcc"

    [source]            # free, patient-free provenance (generator, seed, ...)

    [label_values]      # label name -> value used in the labels file
    liver = 7
    tumor = 8

A real case may use its own label values (for example from a segmentation tool):
``[label_values]`` says what each means; :func:`load_case` maps them to ``Label`` values.

Structures of another tool with no ioplan meaning (TotalSegmentator's scapula, femur, ...)
are kept under their own names, values 100-255 of the labels file, each in ``case.toml``::

    [[extra_classes]]
    name = "scapula_left"
    value = 100
    role = "avoid"       # needle paths keep their safety distance ("pass": they may cross)
    source = "labels"
    classes = ["scapula_left"]

In memory they are :attr:`Case.extra_labels` (their values) and, in :attr:`Case.labels`,
:data:`EXTRA_STAND_IN` (muscle: soft tissue for the physics and the body outline).
``[structures]`` records each ioplan label's source (``liver = {source = "labels", ...}``).
"""

from __future__ import annotations

import csv
import os
import re
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from ioplan.anatomy._case_parts import (
    _VESSEL_COLUMNS,
    _check_ct_plausible,
    _check_no_derived_outputs,
    _check_tumour_entry,
    _read_vessels,
    check_anatomy_plausible,
    read_case_image,
    read_case_modality,
)
from ioplan.anatomy._collection import phantom_source_extras
from ioplan.anatomy._label_maps import (
    ClassMap,
    ExtraClass,
    class_map,
    clean_class_name,
    ioplan_label_for,
)
from ioplan.anatomy._labels import Label, label_from_name
from ioplan.anatomy._phantom import Phantom
from ioplan.anatomy._vessels import VesselSegment
from ioplan.errors import (
    FileFormatError,
    GeometryMismatchError,
    InputError,
    InputFileNotFoundError,
    InvalidImageError,
)
from ioplan.imaging import (
    Volume,
    check_output_folder,
    check_volume_3d,
    label_integers,
    labels_on_grid,
    read_image,
    read_segmentation,
    staged_output_folder,
    write_image,
)

__all__ = [
    "CASE_FORMAT_VERSION",
    "EXTRA_FIRST_VALUE",
    "EXTRA_STAND_IN",
    "Case",
    "LabelStats",
    "case_from_images",
    "check_case_name",
    "extra_class_statistics",
    "label_statistics",
    "load_case",
    "save_case",
]

CASE_FORMAT_VERSION = 1
#: First value of an extra class in a case's labels file (values below are ioplan labels).
EXTRA_FIRST_VALUE = 100
_EXTRA_LAST_VALUE = 255
#: The ioplan label that stands for an extra class in :attr:`Case.labels` (its tissue).
EXTRA_STAND_IN = Label.MUSCLE


#: A pseudonymous identifier: letters, digits and ``._-``, at most 64 characters. The same
#: rule as the registry's keys (``ioplan.registry`` ``KEY_PATTERN``), mirrored here so that
#: anatomy does not depend on the registry.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_LONG_DIGITS = re.compile(r"\d{6,}")
_DATE = re.compile(r"(\d{4}[._-]\d{1,2}[._-]\d{1,2})|(\d{1,2}[._-]\d{1,2}[._-]\d{2,4})")
_PERSON = re.compile(r"^[A-Z][a-z]+([._-][A-Z][a-z]*)*[._-][A-Z][a-z]+$")
_IDENTIFIER_WORDS = re.compile(r"(?i)(^|[._-])(mrn|dob|ssn|nhs|birth)(?=[._\d-]|$)")


def check_case_name(name: str) -> str:
    """Return ``name`` if it is a pseudonymous case identifier, else refuse it.

    Allowed: letters, digits and ``._-``, starting with a letter or digit, at most
    64 characters (the registry's key rule). Refused as likely patient identifiers:
    spaces, commas and ``^`` (names such as ``"John Smith"`` or DICOM's
    ``"Smith^John"``), two or more capitalised words (``"John_Smith"``), a date
    (``"1961-04-12"``, ``"12.04.61"``), a run of six or more digits (a record
    number or a compact date), and the words MRN, DOB, SSN, NHS, birth.

    Raises
    ------
    ioplan.errors.InputError
        Naming ``--name`` and the reason (the value itself is not repeated when it
        looks like an identifier).

    Examples
    --------
    >>> check_case_name("liver-017")
    'liver-017'
    >>> check_case_name("MRN 1234567")
    Traceback (most recent call last):
    ...
    ioplan.errors.InputError: --name must be a pseudonymous identifier ...
    """
    hint = (
        "--name must be a pseudonymous identifier (letters, digits and . _ -, no spaces, "
        "at most 64 characters, e.g. liver-017)"
    )
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        reason = "it has a space, a comma or another character outside letters, digits, . _ -"
        if not isinstance(name, str) or not name:
            reason = "it is empty"
        elif len(name) > 64:
            reason = f"it has {len(name)} characters"
        elif name[0] in ".-_":
            reason = "it must start with a letter or a digit"
        raise InputError(f"{hint}; {reason}: a case holds no patient names or record numbers")
    for pattern, what in (
        (_DATE, "a date"),
        (_LONG_DIGITS, "a record number or a date (six or more digits in a row)"),
        (_PERSON, "a person's name (capitalised words)"),
        (_IDENTIFIER_WORDS, "a patient identifier (MRN, DOB, SSN, NHS, birth)"),
    ):
        if pattern.search(name):
            raise InputError(f"{hint}; this one looks like {what}")
    return name


@dataclass(frozen=True, eq=False)
class Case:
    """An image with its label map (ioplan :class:`Label` values) and metadata.

    ``extra_classes`` and ``extra_labels`` hold the structures with no ioplan label (their
    voxels are :data:`EXTRA_STAND_IN` in ``labels``); ``structures`` says where each ioplan
    label came from (``{"liver": {"source": "labels", "classes": ["liver"]}}``).
    """

    image: Volume
    labels: Volume
    name: str = "case"
    modality: str = "CT"
    tumors: tuple[dict[str, Any], ...] = ()
    source: dict[str, Any] = field(default_factory=dict)
    vessels: tuple[VesselSegment, ...] = ()
    extra_classes: tuple[ExtraClass, ...] = ()
    extra_labels: Volume | None = None
    structures: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The organ the tumour lies in (``case.toml`` ``organ``); None: inferred when needed
    #: (:func:`ioplan.anatomy.organ_of`).
    organ: str | None = None

    def __post_init__(self) -> None:
        self.image.grid.require_same(self.labels.grid, what="label map")
        if self.organ is not None:
            from ioplan.anatomy._organ import check_organ

            object.__setattr__(self, "organ", check_organ(self.organ))
        if not np.issubdtype(self.labels.array.dtype, np.integer):
            raise InputError(f"labels must be integers, got dtype {self.labels.array.dtype}")
        if self.extra_labels is not None:
            self.image.grid.require_same(self.extra_labels.grid, what="extra label map")
            known = {0} | {c.value for c in self.extra_classes}
            present = {int(v) for v in np.unique(self.extra_labels.array)}
            if not present <= known:
                raise InputError(f"extra label values {sorted(present - known)} are not declared")

    def extra_mask(self, role: str | None = None) -> np.ndarray:
        """Voxels of the extra classes (of one ``role`` when given), shape of the grid."""
        if self.extra_labels is None:
            return np.zeros(self.labels.grid.shape, bool)
        values = [c.value for c in self.extra_classes if role is None or c.role == role]
        return np.isin(np.asarray(self.extra_labels.array), values)

    @classmethod
    def from_phantom(cls, phantom: Phantom, name: str | None = None) -> Case:
        """Wrap a generated phantom as a case."""
        from ioplan import __version__

        cfg = phantom.config
        keys = ("diameter_mm", "irregularity", "histology")
        tumors = tuple(
            {"centre_mm": list(t.centre_mm)} | {k: getattr(t, k) for k in keys}
            for t in phantom.tumors
        )
        source = {
            "kind": "phantom",
            "generator": "ioplan.anatomy.generate_phantom",
            "ioplan_version": __version__,
            "seed": cfg.seed,
            "spacing_mm": list(cfg.spacing_mm),
            "noise_hu": cfg.noise_hu,
        }
        source |= phantom_source_extras(phantom)
        return cls(
            phantom.image,
            phantom.labels,
            name=name or f"phantom-seed{cfg.seed}",
            modality="CT",
            tumors=tumors,
            source=source,
            vessels=phantom.vessels,
            organ=getattr(cfg, "organ", None),
        )


@dataclass(frozen=True)
class LabelStats:
    """Voxel count and volume of one label."""

    label: str
    value: int
    voxels: int
    volume_ml: float
    components: int


def label_statistics(case: Case) -> list[LabelStats]:
    """Voxels, volume (mL) and connected components of every label present."""
    from scipy import ndimage

    arr = case.labels.array
    if case.extra_labels is not None:  # the stand-in's voxels of extra classes are theirs
        arr = np.where(case.extra_mask(), int(Label.BACKGROUND), arr)
    counts = np.bincount(arr.reshape(-1).astype(np.int64), minlength=len(Label))
    out = []
    vml = case.labels.grid.voxel_volume_ml
    for lbl in Label:
        n = int(counts[int(lbl)]) if int(lbl) < len(counts) else 0
        if n == 0 or lbl == Label.BACKGROUND:
            continue
        comps = int(ndimage.label(arr == lbl)[1]) if lbl == Label.TUMOR else 0
        out.append(LabelStats(lbl.name.lower(), int(lbl), n, n * vml, comps))
    return out


def extra_class_statistics(case: Case) -> list[LabelStats]:
    """Voxels and volume (mL) of every extra class (``value``: its value in the labels file)."""
    if case.extra_labels is None or not case.extra_classes:
        return []
    counts = np.bincount(
        np.asarray(case.extra_labels.array).reshape(-1).astype(np.int64),
        minlength=_EXTRA_LAST_VALUE + 1,
    )
    vml = case.labels.grid.voxel_volume_ml
    return [
        LabelStats(c.name, c.value, int(counts[c.value]), int(counts[c.value]) * vml, 0)
        for c in case.extra_classes
    ]


def _organ_doc(case: Case) -> dict[str, Any]:
    """The case's organ and whether it was given (``case.toml``) or inferred from the labels."""
    from ioplan.anatomy._organ import infer_organ

    if case.organ:
        return {"name": case.organ, "given": True}
    found = infer_organ(case.labels.array, case.labels.grid.spacing_mm)
    return {"name": found, "given": False}


def case_info(case: Case) -> dict[str, Any]:
    """The ``ioplan info --json`` document of a loaded case (CLI and web share it).

    Keys: ``name``, ``modality``, ``grid``, ``voxel_volume_ml``, ``labels`` (label, value,
    voxels, volume_ml), ``tumor_components``, ``tumors``, ``vessel_segments``, ``source``,
    ``extra_classes`` (name, value, role, voxels, volume_ml), ``structures``. The case name
    is pseudonymous (:func:`check_case_name`); no DICOM identifier is included.
    """
    g = case.image.grid
    stats = label_statistics(case)
    roles = {x.name: x.role for x in case.extra_classes}
    tumour_stats = [s for s in stats if s.label == "tumor"]
    return {
        "name": case.name,
        "modality": case.modality,
        "organ": _organ_doc(case),
        "grid": g.to_dict(),
        "voxel_volume_ml": g.voxel_volume_ml,
        "labels": [
            {"label": s.label, "value": s.value, "voxels": s.voxels, "volume_ml": s.volume_ml}
            for s in stats
        ],
        "tumor_components": tumour_stats[0].components if tumour_stats else 0,
        "tumors": list(case.tumors),
        "vessel_segments": len(case.vessels),
        "source": case.source,
        "extra_classes": [
            {
                "name": s.label,
                "value": s.value,
                "role": roles[s.label],
                "voxels": s.voxels,
                "volume_ml": s.volume_ml,
            }
            for s in extra_class_statistics(case)
        ],
        "structures": case.structures,
    }


def _default_label_table() -> dict[str, int]:
    return {lbl.name.lower(): int(lbl) for lbl in Label if lbl != Label.BACKGROUND}


def save_case(case: Case, folder: str | Path, *, overwrite: bool = False) -> Path:
    """Write a case folder: ``case.toml``, ``image.nii.gz``, ``labels.nii.gz``, ``vessels.csv``.

    Parameters
    ----------
    case : Case
        The image, its label map (written as uint8 :class:`~ioplan.anatomy.Label`
        values) and metadata.
    folder : path
        The case folder. It must not exist or be empty, unless ``overwrite``.
    overwrite : bool
        Replace the case's own files in a folder that holds them; other files in
        the folder are kept (a ``vessels.csv`` of an earlier case is removed when
        this case has none). A folder holding ioplan results made from the earlier
        case (a finished ioplan output: the demo's, or a plan folder inside) is
        refused, since they would describe another case.

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    ioplan.errors.OutputExistsError
        ``folder`` is a file, or holds anything and ``overwrite`` is false, or holds
        ioplan results made from an earlier case.
    ioplan.errors.OutputNotWritableError
        ``folder`` cannot be created or written (checked before anything is written).

    Notes
    -----
    The files are written into a hidden sibling folder first
    (:func:`ioplan.imaging.staged_output_folder`) and renamed into place; over an
    existing case its ``case.toml`` is removed first, and the new ``case.toml`` comes
    last. An interrupted save therefore never leaves a ``case.toml`` beside files it
    does not describe.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ioplan.anatomy import PhantomConfig, generate_phantom
    >>> case = Case.from_phantom(generate_phantom(PhantomConfig(spacing_mm=5.0)))
    >>> out = save_case(case, pathlib.Path(tempfile.mkdtemp()) / "case")
    >>> sorted(p.name for p in out.iterdir())
    ['case.toml', 'image.nii.gz', 'labels.nii.gz', 'vessels.csv']
    """
    folder = check_output_folder(folder, overwrite=overwrite)
    if folder.is_dir():
        _check_no_derived_outputs(folder)
    if folder.is_dir():  # an earlier case: it stops being one until the new case.toml is in
        (folder / "case.toml").unlink(missing_ok=True)
        if not case.vessels:
            (folder / "vessels.csv").unlink(missing_ok=True)
    with staged_output_folder(folder, overwrite=overwrite) as tmp:
        _write_case_data(case, tmp)
    # case.toml last, by an atomic rename: it marks the folder as a whole case
    staged = folder / f".case.toml.partial-{uuid.uuid4().hex[:12]}"
    try:
        staged.write_text(_case_toml(case))
        os.replace(staged, folder / "case.toml")
    finally:
        staged.unlink(missing_ok=True)
    return folder


def _write_case_data(case: Case, folder: Path) -> None:
    """Write the image, the labels (uint8) and, if any, the vessel centrelines into ``folder``."""
    write_image(case.image, folder / "image.nii.gz", overwrite=True)
    arr = case.labels.array.astype(np.uint8)
    if case.extra_labels is not None:
        extra = np.asarray(case.extra_labels.array)
        arr = np.where(extra > 0, extra, arr).astype(np.uint8)
    write_image(case.labels.with_array(arr), folder / "labels.nii.gz", overwrite=True)
    if case.vessels:
        with open(folder / "vessels.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(_VESSEL_COLUMNS)
            for s in case.vessels:
                w.writerow(
                    [
                        s.tree,
                        s.index,
                        s.parent,
                        *(f"{v:.3f}" for v in s.start_mm),
                        *(f"{v:.3f}" for v in s.end_mm),
                        f"{s.radius_mm:.3f}",
                    ]
                )


def _case_toml(case: Case) -> str:
    """The text of ``case.toml``."""
    doc: dict[str, Any] = {
        "format": "ioplan-case",
        "format_version": CASE_FORMAT_VERSION,
        "name": case.name,
        "modality": case.modality,
        "image": "image.nii.gz",
        "labels": "labels.nii.gz",
    }
    if case.vessels:
        doc["vessels"] = "vessels.csv"
    if case.organ:
        doc["organ"] = case.organ
    doc["tumors"] = [dict(t) for t in case.tumors]
    doc["source"] = dict(case.source)
    doc["label_values"] = _default_label_table()
    if case.extra_classes:
        doc["extra_classes"] = [c.to_dict() for c in case.extra_classes]
    if case.structures:
        doc["structures"] = {k: dict(v) for k, v in case.structures.items()}
    return _header_comment() + tomli_w.dumps(doc)


def _header_comment() -> str:
    return (
        "# ioplan case folder (see ioplan.anatomy._case). No patient identifiers belong here.\n"
        "# [label_values] maps label names to the values used in the labels file.\n"
    )


def _read_meta(folder: Path) -> dict[str, Any]:
    if not folder.exists():
        raise InputFileNotFoundError(f"{folder}: no such case folder")
    toml_path = folder / "case.toml" if folder.is_dir() else folder
    if not folder.is_dir() and folder.suffix.lower() != ".toml":
        raise FileFormatError(
            f"{folder} is a file, not a case folder: give the folder that holds case.toml"
        )
    if not toml_path.exists():
        raise FileFormatError(f"{folder}: not a case folder (no case.toml)")
    try:
        meta = tomllib.loads(toml_path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{toml_path}: invalid TOML ({exc})") from None
    if meta.get("format") != "ioplan-case":
        raise FileFormatError(
            f"{toml_path}: format must be 'ioplan-case', got {meta.get('format')!r}"
        )
    version = meta.get("format_version")
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or not (1 <= version <= CASE_FORMAT_VERSION)
    ):
        raise FileFormatError(
            f"{toml_path}: format_version {version!r} is not supported (this ioplan reads "
            f"up to {CASE_FORMAT_VERSION})"
        )
    return meta


def _map_labels(raw: np.ndarray, table: dict[str, Any], where: Path) -> np.ndarray:
    """Map the file's label values to ioplan Label values using ``[label_values]``."""
    raw = label_integers(raw, str(where))
    lut: dict[int, int] = {0: int(Label.BACKGROUND)}
    owner: dict[int, str] = {}
    for name, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise FileFormatError(f"{where}: label value for {name!r} must be an integer 0-65535")
        lbl = label_from_name(name)
        if value == 0 and lbl != Label.BACKGROUND:
            raise InputError(f"{where}: value 0 is the background; it cannot mean {name!r}")
        if value in owner:
            raise InputError(
                f"{where}: value {value} is given to both {owner[value]!r} and {name!r}"
            )
        owner[value] = name
        lut[value] = int(lbl)
    present = np.unique(raw)
    unknown = [int(v) for v in present if int(v) not in lut]
    if unknown:
        raise FileFormatError(
            f"{where}: label values {unknown[:10]} are not declared "
            "(case.toml [label_values], or --label)"
        )
    if len(present) == 1 and present[0] == 0:
        raise InvalidImageError(f"{where}: label map is empty (background only)")
    if all(k == v for k, v in lut.items()):
        return raw.astype(np.uint8)
    table_arr = np.zeros(int(present.max()) + 1, np.uint8)
    for k, v in lut.items():
        if k < len(table_arr):
            table_arr[k] = v
    return table_arr[raw]


def _read_image_and_labels(
    image_path: Path,
    labels_path: Path,
    table: dict[str, Any],
    series_uid: str | None = None,
    *,
    extras: tuple[ExtraClass, ...] = (),
) -> tuple[Volume, Volume, Volume | None]:
    image = read_image(image_path, series_uid=series_uid)
    labels_vol = read_image(labels_path)
    diff = image.grid.mismatch(labels_vol.grid)
    if diff is not None:
        raise GeometryMismatchError(
            f"{labels_path}: label map grid does not match the image: {diff}"
        )
    raw = np.asarray(labels_vol.array)
    extra_vol = None
    if extras:
        values = [c.value for c in extras]
        if not np.issubdtype(raw.dtype, np.integer):
            raw = raw.astype(np.int64)  # _map_labels refuses non-integral values below
        is_extra = np.isin(raw, values)
        extra_vol = Volume(np.where(is_extra, raw, 0).astype(np.uint8), image.grid)
        mapped = _map_labels(np.where(is_extra, 0, raw), table, labels_path)
        mapped[is_extra] = int(EXTRA_STAND_IN)
        return image, Volume(mapped, image.grid), extra_vol
    return image, Volume(_map_labels(raw, table, labels_path), image.grid), None


def case_from_images(
    image_path: str | Path,
    labels_path: str | Path,
    label_values: dict[str, int] | None = None,
    *,
    label_map: str | Path | None = None,
    name: str = "case",
    modality: str = "CT",
    series_uid: str | None = None,
    require_liver: bool = True,
    regularize: bool = False,
) -> Case:
    """Build a case from a real image and the segmentation people already have.

    Parameters
    ----------
    image_path : path
        CT or MR image: a DICOM series folder, a NIfTI, NRRD or MetaImage file (3D).
    labels_path : path
        Its segmentation: a label map (NIfTI, NRRD), a folder of one mask per structure
        (TotalSegmentator's default output), a DICOM-SEG or a Slicer ``.seg.nrrd``
        (:func:`ioplan.imaging.read_segmentation`). On the image's grid or on another
        one (flipped, permuted, shifted, another spacing, a sub-volume): then resampled
        onto the image grid by nearest neighbour, with a note in ``source["notes"]``.
    label_values : dict of str to int, optional
        What each value of a label map means, e.g. ``{"liver": 1, "tumor": 2}``;
        names are :class:`~ioplan.anatomy.Label` names (case-insensitive); values are
        1-65535 (0 is the background).
    label_map : str or path, optional
        Instead of ``label_values``: ``"totalsegmentator"`` ("total" for CT, "total_mr"
        for MR), ``"totalsegmentator-ct"``, ``"totalsegmentator-mr"``, or a TOML/JSON
        file of ``name = value`` pairs (:func:`ioplan.anatomy.class_map`). Classes with
        no ioplan label are kept under their own names (extra classes, avoided).
        Neither is needed when the segmentation names its segments (mask folder,
        DICOM-SEG, Slicer): its names are used (ioplan label names, else extra classes).
    name : str
        A pseudonymous case identifier (see :func:`check_case_name`).
    modality : {"CT", "MR"}
        The image's modality.
    series_uid : str, optional
        The DICOM series to read when the folder holds several.
    regularize : bool
        Put a DICOM series with lost slices, mixed spacing or a tilt on an even grid (noted).
    require_liver : bool
        Refuse labels without a liver.

    Returns
    -------
    Case
        The image, the labels mapped to ioplan's values, the extra classes, where each
        structure came from, ``source = {"kind": "imported", ...}``.

    Raises
    ------
    ioplan.errors.InputError
        A name that looks like a patient identifier, an unknown modality, label name or
        map, both ``label_values`` and ``label_map``, no ``liver`` label, an empty liver,
        a 2D image.
    ioplan.errors.GeometryMismatchError
        The labels do not overlap the image, or some of their voxels lie outside it.
    ioplan.errors.FileFormatError
        Unnamed segmentation values; unreadable files; a class file with duplicate entries.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from ioplan.imaging import Grid, Volume, write_nifti
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> g = Grid((4, 4, 4), (2.0, 2.0, 2.0))
    >>> seg = np.zeros(g.shape, np.uint8); seg[1:3, 1:3, 1:3] = 1
    >>> ct = np.where(seg == 0, -1000, 40).astype(np.int16)  # HU: air around the liver
    >>> _ = write_nifti(Volume(ct, g), d / "ct.nii.gz")
    >>> _ = write_nifti(Volume(seg, g), d / "seg.nii.gz")
    >>> case = case_from_images(d / "ct.nii.gz", d / "seg.nii.gz", {"liver": 1}, name="demo-1")
    >>> int((case.labels.array == Label.LIVER).sum())
    8
    """
    check_case_name(name)
    if modality not in ("CT", "MR"):
        raise InputError(f"--modality must be CT or MR, got {modality!r}")
    table = dict(label_values or {})
    if table and label_map is not None:
        raise InputError("give --label NAME=VALUE or --label-map, not both")
    for key, value in table.items():
        label_from_name(key)  # an unknown name is refused before any reading
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise InputError(f"--label {key}: VALUE must be 1-65535, got {value!r}")
    if table and require_liver and not any(label_from_name(k) == Label.LIVER for k in table):
        raise InputError(
            "--label must say which value is the liver (e.g. --label liver=1); "
            f"got {', '.join(f'{k}={v}' for k, v in table.items())}"
        )
    cmap = class_map(label_map, modality=modality) if label_map is not None else None
    image, image_notes = read_case_image(image_path, series_uid, regularize=regularize)
    check_volume_3d(image, f"--image {image_path}")
    seg = read_segmentation(labels_path)
    names, how = _value_names(seg.names, table, cmap, labels_path)
    arr = np.asarray(seg.labels.array)
    present = [int(v) for v in np.unique(arr) if v != 0]
    if not present:
        raise InvalidImageError(f"{labels_path}: label map is empty (background only)")
    unnamed = [v for v in present if v not in names]
    if unnamed:
        raise FileFormatError(
            f"{labels_path}: label values {unnamed[:10]} are not declared by {how} "
            f"({len(unnamed)} unnamed; --label NAME=VALUE, or --label-map)"
        )
    lut, extras, structures = _classes_to_case_values(present, names, cmap, bool(table))
    check_anatomy_plausible(arr, seg.labels.grid, names,
                            {v for v in present if lut[v] == int(Label.LIVER)}, labels_path)
    file_values = lut[arr]
    extra_names = {c.value: c.name for c in extras}

    def name_of(value: int) -> str:
        if value in extra_names:
            return extra_names[value]
        try:
            return Label(value).name.lower()
        except ValueError:
            return f"value {value}"

    def may_cut(value: int) -> str | None:
        """The structure's name if a cropped image may cut it; None for a target."""
        if value in (int(Label.TUMOR), int(Label.FLUID_COLLECTION)):
            return None  # a target cut by the image's edge would be planned wrong
        return name_of(value)

    on_grid, note = labels_on_grid(Volume(file_values, seg.labels.grid), image.grid,
                                   may_cut=may_cut, name_of=name_of)  # fmt: skip
    values = np.asarray(on_grid.array)
    extra_arr = np.where(values >= EXTRA_FIRST_VALUE, values, 0).astype(np.uint8)
    labels = np.where(values >= EXTRA_FIRST_VALUE, int(EXTRA_STAND_IN), values).astype(np.uint8)
    if require_liver and not np.any(labels == Label.LIVER):
        if table:
            value = next(v for k, v in table.items() if label_from_name(k) == Label.LIVER)
            raise InvalidImageError(
                f"{labels_path}: the liver mask is empty (no voxel has the liver's value {value})"
            )
        raise InvalidImageError(
            f"{labels_path}: no class means the liver (named: "
            f"{', '.join(sorted(set(names[v] for v in present))[:12])})"
        )
    if modality == "CT":
        _check_ct_plausible(np.asarray(image.array), labels, image_path, labels_path)
    notes = image_notes + list(seg.notes) + ([note] if note else [])
    avoided = [c.name for c in extras if c.role == "avoid"]
    if extras:
        notes.append(
            f"{len(extras)} classes with no ioplan label kept under their own names"
            + (f" and avoided by needle paths: {', '.join(avoided[:12])}" if avoided else "")
            + (" ..." if len(avoided) > 12 else "")
        )
    source: dict[str, Any] = {"kind": "imported", "labels_kind": seg.kind, "labels_named_by": how}
    if cmap is not None:
        source["label_map"] = dict(cmap.source, name=cmap.name)
    if notes:
        source["notes"] = notes
    extra_vol = Volume(extra_arr, image.grid) if extras else None
    return Case(
        image,
        Volume(labels, image.grid),
        name=name,
        modality=modality,
        source=source,
        extra_classes=tuple(extras),
        extra_labels=extra_vol,
        structures=structures,
    )


def _value_names(
    seg_names: dict[str, int],
    table: dict[str, int],
    cmap: ClassMap | None,
    labels_path: str | Path,
) -> tuple[dict[int, str], str]:
    """Value -> class name of a segmentation, and what named them."""
    if table:
        owner: dict[int, str] = {}
        for k, v in table.items():
            if v in owner:
                raise InputError(f"--label: value {v} is given to both {owner[v]!r} and {k!r}")
            owner[v] = k
        return owner, "--label"
    if seg_names:
        where = f"{labels_path}"
        return {v: clean_class_name(n, where) for n, v in seg_names.items()}, "its own names"
    if cmap is not None and cmap.classes:
        return dict(cmap.classes), cmap.name
    raise InputError(
        f"--labels {labels_path} is a label map without names: say what its values mean with "
        "--label NAME=VALUE (e.g. --label liver=1) or --label-map (totalsegmentator, or a file)"
    )


def _classes_to_case_values(
    present: list[int], names: dict[int, str], cmap: ClassMap | None, from_table: bool
) -> tuple[np.ndarray, list[ExtraClass], dict[str, dict[str, Any]]]:
    """A lookup table from segmentation values to case file values, the extras, provenance."""
    lut = np.zeros(max(present) + 1, np.uint8)
    extras: dict[str, ExtraClass] = {}
    structures: dict[str, dict[str, Any]] = {}
    for v in present:
        cname = names[v]
        lbl = label_from_name(cname) if from_table else ioplan_label_for(cname, cmap)
        if lbl is not None:
            lut[v] = int(lbl)
            entry = structures.setdefault(lbl.name.lower(), {"source": "labels", "classes": []})
            if cname not in entry["classes"]:
                entry["classes"].append(cname)
            continue
        if cname not in extras:
            value = EXTRA_FIRST_VALUE + len(extras)
            if value > _EXTRA_LAST_VALUE:
                raise InputError(
                    f"more than {_EXTRA_LAST_VALUE - EXTRA_FIRST_VALUE + 1} classes with no "
                    "ioplan label; map some of them to ioplan labels with a --label-map file"
                )
            roles = {k.lower(): r for k, r in cmap.roles.items()} if cmap is not None else {}
            role = roles.get(cname.lower(), "avoid")
            extras[cname] = ExtraClass(cname, value, role, "labels", (cname,))
        lut[v] = extras[cname].value
    return lut, list(extras.values()), structures


def load_case(folder: str | Path) -> Case:
    """Read a case folder; check that the labels match the image grid and are declared.

    Raises
    ------
    ioplan.errors.GeometryMismatchError
        The label map's grid differs from the image's.
    ioplan.errors.InvalidImageError
        NaN or infinite image voxels, non-integer labels.
    ioplan.errors.FileFormatError
        Missing or invalid ``case.toml``, undeclared label values.
    """
    folder = Path(folder)
    meta = _read_meta(folder)
    base = folder if folder.is_dir() else folder.parent
    for key in ("image", "labels"):
        if not isinstance(meta.get(key), str):
            raise FileFormatError(f'{base / "case.toml"}: needs {key} = "<file name>"')
    table = meta.get("label_values", {})
    if not isinstance(table, dict) or not table:
        raise FileFormatError(f"{base / 'case.toml'}: needs a [label_values] table")
    tumors = meta.get("tumors", [])
    if not isinstance(tumors, list) or not all(isinstance(t, dict) for t in tumors):
        raise FileFormatError(f"{base / 'case.toml'}: tumors must be a list of tables [[tumors]]")
    for i, t in enumerate(tumors, start=1):
        _check_tumour_entry(t, f"{base / 'case.toml'}: tumour {i}")
    if not isinstance(meta.get("source", {}), dict):
        raise FileFormatError(f"{base / 'case.toml'}: source must be a table [source]")
    extras = _read_extra_classes(meta.get("extra_classes", []), base / "case.toml")
    image, labels, extra_vol = _read_image_and_labels(
        base / meta["image"], base / meta["labels"], table, extras=extras
    )
    structures = meta.get("structures", {})
    if not isinstance(structures, dict) or not all(
        isinstance(v, dict) for v in structures.values()
    ):
        raise FileFormatError(f"{base / 'case.toml'}: structures must be a table of tables")
    vessels: tuple[VesselSegment, ...] = ()
    if isinstance(meta.get("vessels"), str) and (base / meta["vessels"]).exists():
        vessels = _read_vessels(base / meta["vessels"])
    return Case(
        image,
        labels,
        name=str(meta.get("name", base.name)),
        modality=read_case_modality(meta.get("modality", "CT"), base / "case.toml"),
        tumors=tuple(tumors),
        source=dict(meta.get("source", {})),
        vessels=vessels,
        extra_classes=extras,
        extra_labels=extra_vol,
        structures={k: dict(v) for k, v in structures.items()},
        organ=_read_organ(meta.get("organ"), base / "case.toml"),
    )


def _read_organ(value: Any, where: Path) -> str | None:
    if value is None:
        return None
    from ioplan.anatomy._organ import check_organ

    try:
        return check_organ(str(value))
    except InputError as exc:
        raise FileFormatError(f"{where}: organ: {exc}") from None


def _read_extra_classes(items: Any, where: Path) -> tuple[ExtraClass, ...]:
    if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
        raise FileFormatError(f"{where}: extra_classes must be a list of tables [[extra_classes]]")
    out: list[ExtraClass] = []
    seen: set[Any] = set()
    for t in items:
        value, cname = t.get("value"), t.get("name")
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not EXTRA_FIRST_VALUE <= value <= _EXTRA_LAST_VALUE
            or not isinstance(cname, str)
        ):
            raise FileFormatError(
                f"{where}: each [[extra_classes]] needs a name and a value "
                f"{EXTRA_FIRST_VALUE}-{_EXTRA_LAST_VALUE}, got {cname!r} = {value!r}"
            )
        if value in seen or cname in seen:
            raise FileFormatError(f"{where}: extra class {cname!r} or value {value} is repeated")
        seen |= {value, cname}
        try:
            out.append(
                ExtraClass(
                    clean_class_name(cname, str(where)),
                    value,
                    str(t.get("role", "avoid")),
                    str(t.get("source", "labels")),
                    tuple(str(c) for c in t.get("classes", [])),
                )
            )
        except InputError as exc:
            raise FileFormatError(f"{where}: {exc}") from None
    return tuple(out)
