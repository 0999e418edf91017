"""Export of the registry as CSV files, one per table (the import format, see ``_schema``)."""

from __future__ import annotations

import csv
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ioplan.errors import InputError, OutputExistsError
from ioplan.registry._models import FollowUp, Lesion, Patient, Procedure
from ioplan.registry._schema import MODELS, TABLES, format_cell

__all__ = ["check_export_folder", "export_csv", "table_rows", "write_tables"]


def table_rows(session: Session) -> dict[str, list[dict]]:
    """Every table of the registry as rows keyed by the CSV columns, sorted by key."""
    pkey = dict(session.execute(sa.select(Patient.id, Patient.patient_key)).all())
    lkey = dict(session.execute(sa.select(Lesion.id, Lesion.lesion_key)).all())
    prkey = dict(session.execute(sa.select(Procedure.id, Procedure.procedure_key)).all())
    fkey = dict(session.execute(sa.select(FollowUp.id, FollowUp.followup_key)).all())
    back = {"patient_id": pkey, "lesion_id": lkey, "procedure_id": prkey, "followup_id": fkey}
    out: dict[str, list[dict]] = {}
    for fname, model in MODELS.items():
        cols = TABLES[fname]
        rows = []
        for obj in session.execute(sa.select(model.__table__)).mappings():
            row = {}
            for col in cols:
                if col.kind == "ref":
                    id_col = col.name.replace("_key", "_id")
                    row[col.name] = back[id_col][obj[id_col]]
                else:
                    row[col.name] = obj[col.name]
            rows.append(row)
        names = [c.name for c in cols]
        rows.sort(key=lambda r: tuple(format_cell(r[n]) for n in names[:2]))
        out[fname] = rows
    return out


def check_export_folder(folder: Path, overwrite: bool = False, names=tuple(TABLES)) -> None:
    """Refuse an output folder that is a file, or holds registry files unless ``overwrite``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file: give a folder to write the CSV files into")
    clash = [folder / n for n in names if (folder / n).exists()]
    if clash and not overwrite:
        raise OutputExistsError(
            f"{clash[0]} exists ({len(clash)} registry file(s) in {folder}); "
            "pass --overwrite to replace them"
        )


def write_tables(rows: dict[str, list[dict]], folder: Path, overwrite: bool = False) -> list[Path]:
    """Write rows (as from :func:`table_rows`) as the documented CSV files; returns the paths.

    Text that a spreadsheet would run as a formula is written with a leading quote (see
    :func:`~ioplan.registry.format_cell`). Refuses to replace registry files in ``folder``
    unless ``overwrite``.
    """
    folder = Path(folder)
    check_export_folder(folder, overwrite, [name for name in TABLES if name in rows])
    targets = [folder / name for name in TABLES if name in rows]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path in targets:
            names = [c.name for c in TABLES[path.name]]
            tmp = path.with_suffix(".csv.tmp")
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(names)
                for row in rows[path.name]:
                    w.writerow([format_cell(row.get(n)) for n in names])
            tmp.replace(path)
    except OSError as exc:
        raise InputError(f"cannot write the CSV files into {folder}: {exc.strerror}") from None
    return targets


def export_csv(session: Session, folder: Path, overwrite: bool = False) -> dict[str, int]:
    """Write the whole registry to ``folder`` as CSV files; returns rows per file."""
    check_export_folder(folder, overwrite)
    rows = table_rows(session)
    write_tables(rows, folder, overwrite=overwrite)
    return {k: len(v) for k, v in rows.items()}
