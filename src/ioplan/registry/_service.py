"""One function per registry command, over a database given by path or URL.

``ioplan registry ...`` and the web app call these; each checks what is cheap (folders,
options) before it opens the database, and does its work in one transaction. Only
:func:`import_files` and :func:`run_demo` (and :func:`~ioplan.registry.init_db`) create a
registry; the others refuse a database that does not exist.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ioplan.errors import InputError
from ioplan.registry._csv import check_export_folder, export_csv
from ioplan.registry._db import open_db, session_scope
from ioplan.registry._demo import check_demo, write_demo_cohort
from ioplan.registry._import import Progress, _files, import_csv
from ioplan.registry._outcomes import OutcomeReport, analyse, check_times, load_cohort
from ioplan.registry._records import count_patients, delete_patient, link_margin
from ioplan.registry._report import check_report_folder, write_report
from ioplan.registry._schema import ImportReport

__all__ = [
    "export_files",
    "import_files",
    "outcome_report",
    "record_margin",
    "remove_patient",
    "run_demo",
]

Db = str | os.PathLike | None


def import_files(folder: Path, db: Db = None, progress: Progress | None = None) -> ImportReport:
    """Import the CSV files of ``folder`` into the registry (created if needed): all or none."""
    _files(Path(folder))  # a missing or empty folder is refused before the database is made
    engine = open_db(db)
    with session_scope(engine) as session:
        return import_csv(session, folder, progress=progress)


def export_files(folder: Path, db: Db = None, overwrite: bool = False) -> dict[str, int]:
    """Write the registry as CSV files into ``folder``; returns rows per file."""
    check_export_folder(folder, overwrite)  # before reading the database
    engine = open_db(db, create=False)
    with session_scope(engine) as session:
        return export_csv(session, folder, overwrite=overwrite)


def outcome_report(
    db: Db = None,
    at_months: tuple[float, ...] = (3, 6, 12),
    out: Path | None = None,
    overwrite: bool = False,
) -> OutcomeReport:
    """Outcomes of the whole registry at the given times; the report files too with ``out``."""
    times = check_times(at_months)
    if out is not None:
        check_report_folder(Path(out), overwrite)
    engine = open_db(db, create=False)
    with session_scope(engine) as session:
        cohort = load_cohort(session)
    if cohort.patients.empty:
        raise InputError(
            "the registry holds no patient: import data first (ioplan registry import)"
        )
    result = analyse(cohort, tuple(times))
    if out is not None:
        write_report(result, Path(out), overwrite=overwrite)
    return result


def run_demo(
    folder: Path,
    db: Db = None,
    seed: int = 7,
    n_patients: int = 60,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Write the synthetic cohort into ``folder`` and import it into an empty registry."""
    check_demo(seed, n_patients)
    check_export_folder(folder, overwrite)
    engine = open_db(db)
    with session_scope(engine) as session:
        held = count_patients(session)
    if held:
        raise InputError(
            f"the registry already holds {held} patient(s); give the demo its own database "
            "(--db ioplan-demo.sqlite)"
        )
    write_demo_cohort(folder, seed=seed, n_patients=n_patients, overwrite=overwrite)
    with session_scope(engine) as session:
        return import_csv(session, folder, progress=progress)


def record_margin(
    procedure_key: str,
    lesion_key: str,
    margin_json: Path,
    plan_json: Path | None = None,
    db: Db = None,
    overwrite: bool = False,
) -> dict:
    """Record an ``ioplan margin`` result for a treated lesion (see :func:`link_margin`)."""
    engine = open_db(db, create=False)
    with session_scope(engine) as session:
        return link_margin(
            session, procedure_key, lesion_key, margin_json, plan_json, overwrite=overwrite
        )


def remove_patient(
    patient_key: str, db: Db = None, confirm: Callable[[str], bool] | None = None
) -> str | None:
    """Delete a patient and everything linked to them (see :func:`delete_patient`)."""
    engine = open_db(db, create=False)
    with session_scope(engine) as session:
        return delete_patient(session, patient_key, confirm)
