"""Changes to recorded rows.

Linking an ``ioplan margin`` result to a treated lesion; deleting a patient with everything
linked to them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ioplan.errors import FileFormatError, InputError, InputFileNotFoundError, OutputExistsError
from ioplan.registry._models import Lesion, Patient, Procedure, TreatedLesion
from ioplan.registry._schema import TABLES

__all__ = ["count_patients", "delete_patient", "link_margin"]


def _yes_no(value: bool | None) -> str:
    return "not recorded" if value is None else ("yes" if value else "no")


def _json_object(path: Path, what: str, keys: tuple[str, ...]) -> dict:
    """The JSON object in ``path`` holding ``keys``; else a one-line error naming ``what``."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FileFormatError(f"{what} (not JSON text)") from None
    if not isinstance(doc, dict):
        raise FileFormatError(f"{what} (not a JSON object)")
    missing = [k for k in keys if k not in doc]
    if missing:
        raise FileFormatError(f"{what} (it has no {' and no '.join(missing)})")
    return doc


def _read_margin(path: Path) -> tuple[float, bool]:
    """Minimal margin (mm) and technical success of a margin.json, checked."""
    doc = _json_object(path, f"{path}: not a margin.json of ioplan margin",
                       ("minimal_margin_mm", "technical_success"))  # fmt: skip
    mam, success = doc["minimal_margin_mm"], doc["technical_success"]
    if isinstance(mam, bool) or not isinstance(mam, int | float) or not math.isfinite(mam):
        raise FileFormatError(f"{path}: minimal_margin_mm is {json.dumps(mam)}, not a number")
    col = next(c for c in TABLES["treated_lesions.csv"] if c.name == "minimal_margin_mm")
    if not col.lo <= mam <= col.hi:
        raise FileFormatError(
            f"{path}: minimal_margin_mm {mam:g} is outside {col.lo:g}..{col.hi:g} mm"
        )
    if not isinstance(success, bool):
        raise FileFormatError(
            f"{path}: technical_success is {json.dumps(success)}, not true or false"
        )
    return float(mam), success


#: plan.json's modality -> the registry's procedure modality.
_PLAN_MODALITY = {"mwa": "MWA", "rfa": "RFA", "cryo": "cryo"}


def _check_plan(path: Path, procedure_modality: str | None) -> None:
    """Refuse a file that is not an ``ioplan plan`` plan.json, or one of another modality."""
    what = f"{path}: not a plan.json of ioplan plan"
    doc = _json_object(path, what, ("modality", "applicators", "margin_coverage_percent"))
    if not isinstance(doc["applicators"], list):
        raise FileFormatError(f"{what} (its applicators are not a list)")
    planned = _PLAN_MODALITY.get(str(doc["modality"]).lower())
    if procedure_modality is not None and planned is not None and planned != procedure_modality:
        raise InputError(
            f"{path} plans a {planned} ablation, but the procedure is {procedure_modality}: "
            "give the plan of this procedure"
        )


def link_margin(
    session: Session,
    procedure_key: str,
    lesion_key: str,
    margin_json: Path,
    plan_json: Path | None = None,
    overwrite: bool = False,
) -> dict:
    """Record an ``ioplan margin`` result (margin.json) for a treated lesion.

    Sets the lesion's minimal margin and technical success from the file (the file's set
    margin decides success), and stores the paths of margin.json (and plan.json) on the
    procedure. A margin already recorded for that lesion (a different one) is kept, with an
    :class:`~ioplan.errors.OutputExistsError`, unless ``overwrite``. Returns what was recorded.
    """
    path = Path(margin_json)
    if not path.is_file():
        raise InputFileNotFoundError(f"margin file {path} does not exist")
    mam, success = _read_margin(path)
    if plan_json is not None and not Path(plan_json).is_file():
        raise InputFileNotFoundError(f"plan file {plan_json} does not exist")
    row = session.execute(
        sa.select(TreatedLesion, Procedure)
        .join(Procedure, TreatedLesion.procedure_id == Procedure.id)
        .join(Lesion, TreatedLesion.lesion_id == Lesion.id)
        .where(Procedure.procedure_key == procedure_key, Lesion.lesion_key == lesion_key)
    ).first()
    if row is None:
        raise InputError(
            f"no treatment of lesion {lesion_key!r} in procedure {procedure_key!r} in the registry"
        )
    treated, procedure = row
    if plan_json is not None:
        _check_plan(Path(plan_json), procedure.modality)
    stored = (treated.minimal_margin_mm, treated.technical_success)
    if not overwrite and stored != (None, None) and stored != (mam, success):
        was = "not recorded" if stored[0] is None else f"{stored[0]:g} mm"
        raise OutputExistsError(
            f"lesion {lesion_key} in procedure {procedure_key} already has a minimal margin "
            f"({was}, technical success {_yes_no(stored[1])}); pass --overwrite to replace it "
            f"with {mam:g} mm from {path}"
        )
    treated.minimal_margin_mm = mam
    treated.technical_success = success
    procedure.margin_json = str(path.resolve())
    if plan_json is not None:
        procedure.plan_json = str(Path(plan_json).resolve())
    return {
        "procedure_key": procedure_key,
        "lesion_key": lesion_key,
        "minimal_margin_mm": mam,
        "technical_success": success,
        "margin_json": procedure.margin_json,
        "plan_json": procedure.plan_json,
    }


def count_patients(session: Session) -> int:
    """Patients held by the registry."""
    return session.scalar(sa.select(sa.func.count()).select_from(Patient))


def delete_patient(
    session: Session, patient_key: str, confirm: Callable[[str], bool] | None = None
) -> str | None:
    """Delete a patient and every row linked to them; returns what was deleted.

    ``confirm(description)`` is asked first (None: no question); when it answers False nothing
    is deleted and None is returned.
    """
    patient = session.scalar(sa.select(Patient).where(Patient.patient_key == patient_key))
    if patient is None:
        raise InputError(f"no patient {patient_key!r} in the registry")
    n = (len(patient.lesions), len(patient.procedures), len(patient.followups))
    what = f"patient {patient_key} with {n[0]} lesion(s), {n[1]} procedure(s), {n[2]} follow-up(s)"
    if confirm is not None and not confirm(what):
        return None
    session.delete(patient)
    return what
