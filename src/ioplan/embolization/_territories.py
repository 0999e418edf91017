"""Several perfused territories (lobar, segmental) by the partition model; their CSV table."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ioplan.embolization._checks import Sphere, check_lsf, in_range, range_text
from ioplan.embolization._models import (
    _cf,
    _lung_mass,
    constants,
    limit_warnings,
    partition,
)
from ioplan.errors import FileFormatError, InputError, InputFileNotFoundError

__all__ = [
    "TERRITORY_COLUMNS",
    "read_territories",
    "tace_territory",
    "territories",
    "territory_inputs",
]

#: Required columns, then the target columns (exactly one per row holds a value).
TERRITORY_COLUMNS = ("name", "tumor_kg", "normal_kg", "tn")
_TARGETS = ("activity_gbq", "normal_dose_gy", "tumor_dose_gy")
#: A territory table is a few lines; anything this large is not one.
_MAX_BYTES = 1_000_000


def read_territories(path: str | Path) -> list[dict[str, Any]]:
    r"""Read a territory table (CSV, UTF-8): one row per perfused territory.

    Columns: ``name``, ``tumor_kg``, ``normal_kg``, ``tn`` and one of ``activity_gbq``,
    ``normal_dose_gy``, ``tumor_dose_gy`` (a column may be present and left empty on rows
    that use another target). Names must be unique. Every number is checked against the
    ranges of the partition model.

    Returns
    -------
    list of dict
        The items :func:`territories` takes.

    Raises
    ------
    InputFileNotFoundError
        No such file.
    FileFormatError
        Not UTF-8 text, not CSV, a missing or unknown column; row-level problems as
        ``"FILE row N, column C: ..."`` (row 1 is the header).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("name,tumor_kg,normal_kg,tn,normal_dose_gy\nright,0.15,1.35,4,40\n")
    >>> read_territories(p)
    [{'name': 'right', 'tumor_kg': 0.15, 'normal_kg': 1.35, 'tn': 4.0, 'normal_dose_gy': 40.0}]
    """
    path = Path(path)
    if not path.exists():
        raise InputFileNotFoundError(f"{path}: no such territory file")
    if not path.is_file():
        raise FileFormatError(f"{path}: is a folder, not a territory table (CSV)")
    raw = path.read_bytes()
    if len(raw) > _MAX_BYTES:
        raise FileFormatError(f"{path}: {len(raw)} bytes is too large for a territory table")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save the table as CSV UTF-8"
        ) from None
    if "\x00" in text:
        raise FileFormatError(f"{path}: holds NUL bytes; not a CSV text file")
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise FileFormatError(f"{path}: not a readable CSV file ({exc})") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise FileFormatError(f"{path}: empty; expected a header {','.join(TERRITORY_COLUMNS)},...")
    header = [h.strip() for h in rows[0]]
    allowed = TERRITORY_COLUMNS + _TARGETS
    unknown = [h for h in header if h not in allowed]
    if unknown:
        raise FileFormatError(
            f"{path}: unknown column {unknown[0]!r}; columns are {', '.join(allowed)}"
        )
    missing = [c for c in TERRITORY_COLUMNS if c not in header]
    if missing:
        raise FileFormatError(f"{path}: missing column {', '.join(missing)}")
    if len(set(header)) != len(header):
        raise FileFormatError(f"{path}: a column appears twice in the header")
    if not any(t in header for t in _TARGETS):
        raise FileFormatError(f"{path}: needs a column {', '.join(_TARGETS)} (one target)")
    if len(rows) < 2:
        raise FileFormatError(f"{path}: no territory rows below the header")
    items: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise FileFormatError(f"{path} row {n}: {len(row)} values for {len(header)} columns")
        cells = {h: c.strip() for h, c in zip(header, row, strict=True)}
        name = cells["name"] or f"territory {n - 1}"
        if name in seen:
            raise FileFormatError(
                f"{path} row {n}, column name: {name!r} is already the name of row {seen[name]}"
            )
        seen[name] = n
        item: dict[str, Any] = {"name": name}
        for col in header:
            if col == "name" or (col in _TARGETS and not cells[col]):
                continue
            item[col] = _number(path, n, col, cells[col])
        targets = [t for t in _TARGETS if t in item]
        if len(targets) != 1:
            got = ", ".join(targets) or "none"
            raise FileFormatError(
                f"{path} row {n}: give exactly one of {', '.join(_TARGETS)} (got {got})"
            )
        items.append(item)
    return items


def _number(path: Path, row: int, col: str, text: str) -> float:
    where = f"{path} row {row}, column {col}"
    if not text:
        raise FileFormatError(f"{where}: empty; a number is needed")
    try:
        v = float(text)
    except ValueError:
        raise FileFormatError(f"{where}: not a number: {text!r}") from None
    key = "dose_gy" if col.endswith("dose_gy") else col
    if not in_range(key, v):
        raise FileFormatError(f"{where}: must be {range_text(key)}, got {text}")
    return v


def territories(
    items: list[dict[str, Any]], lsf: float, *, cf: float | None = None,
    lung_mass_kg: float | None = None, sphere: str | Sphere | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Several perfused territories (lobar, segmental), each by the partition model.

    The lung receives the shunted part of every territory's activity, so the lung dose
    is ``CF LSF sum(A_i) / M_lung`` and is checked on the sum.

    Parameters
    ----------
    items : list of dict
        Each: ``name``, ``tumor_kg``, ``normal_kg`` (kg), ``tn`` and one of
        ``activity_gbq`` (GBq), ``normal_dose_gy``, ``tumor_dose_gy`` (Gy); see
        :func:`read_territories`.
    lsf : float
        Lung shunt fraction, in [0, 1).
    cf, lung_mass_kg, sphere
        As in :func:`ioplan.embolization.partition`.

    Returns
    -------
    dict
        ``activity_gbq`` (total), ``lung_dose_gy``, ``territories`` (one partition result
        each), ``warnings`` and ``limits_source``.

    References
    ----------
    Ho et al., Eur J Nucl Med 1996;23(8):947-952; EANM 2022 (Weber et al.),
    doi:10.1007/s00259-021-05600-z.

    Examples
    --------
    >>> items = [{"name": "right", "tumor_kg": 0.15, "normal_kg": 1.35, "tn": 4.0,
    ...           "normal_dose_gy": 40.0}]
    >>> territories(items, 0.05)["activity_gbq"]
    1.65302
    """
    if not items:
        raise InputError("give at least one territory")
    c = _cf(cf)
    f = check_lsf(lsf)
    ml = _lung_mass(lung_mass_kg)
    names = [str(it.get("name", f"territory {i + 1}")) for i, it in enumerate(items)]
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if dup is not None:
        raise InputError(f"two territories are named {dup!r}; names must be unique")
    rows, total = [], 0.0
    for name, it in zip(names, items, strict=True):
        kw = {k: it[k] for k in _TARGETS if k in it}
        if "tumor_dose_gy" in kw:
            kw["tumour_dose_gy"] = kw.pop("tumor_dose_gy")
        try:
            r = partition(it.get("tumor_kg"), it.get("normal_kg"), it.get("tn"), f, cf=c,  # type: ignore[arg-type]
                          lung_mass_kg=lung_mass_kg, sphere=sphere, **kw)  # fmt: skip
        except InputError as exc:
            raise InputError(f"territory {name!r}: {exc}") from None
        total += r.activity_gbq
        rows.append({"name": name} | r.to_dict())
    lung = c * total * f / ml
    return {
        "model": "partition, per territory",
        "activity_gbq": round(total, 5),
        "cf_gy_kg_per_gbq": c,
        "lung_dose_gy": round(lung, 4),
        "territories": rows,
        # the territories' sum: the activity of the whole session, from one vial or more
        "warnings": limit_warnings({"lung_dose_gy": lung}, f, None, activity_gbq=total),
        "limits_source": constants()["limits"]["source"],
    }


def territory_inputs(case_dir: str | Path, arteries_dir: str | Path, feeder: int) -> dict[str, Any]:
    """Tumour and normal-liver masses of one catheter position's territory.

    Parameters
    ----------
    case_dir : path
        The case folder ``ioplan arteries`` read.
    arteries_dir : path
        Its output folder (``arteries.json``, ``territories.nii.gz``).
    feeder : int
        The ``branch_id`` of a candidate position (``feeders`` in ``arteries.json``).

    Returns
    -------
    dict
        ``tumor_kg`` and ``normal_kg`` (tumour and liver labels inside the territory, at the
        liver density of the constants table, 1.03 g/mL), ``tumour_ml``, ``normal_ml``,
        ``liver_ml`` (the whole liver with tumour), ``branch_id``,
        ``tumour_covered_percent``, the territory ``mask`` (not JSON) and the case ``grid``.
    """
    import numpy as np

    from ioplan.anatomy import Label, load_case
    from ioplan.embolization._arteries import read_territory

    case = load_case(case_dir)
    grid = case.labels.grid
    mask, entry = read_territory(arteries_dir, int(feeder), grid, labels_volume=case.labels)
    lab = np.asarray(case.labels.array)
    vml = grid.voxel_volume_ml
    tumour_ml = float(((lab == Label.TUMOR) & mask).sum()) * vml
    normal_ml = float(((lab == Label.LIVER) & mask).sum()) * vml
    liver_ml = float(np.isin(lab, [Label.LIVER, Label.TUMOR]).sum()) * vml
    if tumour_ml <= 0:
        raise InputError(f"the territory of branch {feeder} holds no tumour")
    rho = constants()["constants"]["liver_density_g_ml"]
    return {
        "branch_id": int(feeder),
        "tumour_covered_percent": entry.get("tumour_covered_percent"),
        "tumour_ml": round(tumour_ml, 2),
        "normal_ml": round(normal_ml, 2),
        "liver_ml": round(liver_ml, 2),
        "tumor_kg": tumour_ml * rho / 1000.0,
        "normal_kg": normal_ml * rho / 1000.0,
        "mask": mask,
        "grid": grid,
    }


def tace_territory(dose: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """TACE dosing for one territory: the BSA dose scaled by the treated share of the liver.

    ``doxorubicin_territory_mg`` = ``doxorubicin_mg`` x (territory volume / liver volume):
    a proportional convention for selective (lobar, segmental) TACE, not a guideline
    figure; the per-procedure cap stays that of :func:`tace_dose`. The bead volume follows
    at the same loading.
    """
    terr_ml = inputs["tumour_ml"] + inputs["normal_ml"]
    share = terr_ml / inputs["liver_ml"]
    mg = dose["doxorubicin_mg"] * share
    loading = dose["doxorubicin_mg"] / dose["deb_volume_ml"] if dose["deb_volume_ml"] else None
    return dose | {
        "branch_id": inputs["branch_id"],
        "territory_ml": round(terr_ml, 1),
        "liver_ml": round(inputs["liver_ml"], 1),
        "territory_share": round(share, 4),
        "doxorubicin_territory_mg": round(mg, 1),
        "deb_territory_volume_ml": None if loading is None else round(mg / loading, 2),
        "territory_rule": "BSA dose x territory volume / liver volume (proportional convention)",
    }
