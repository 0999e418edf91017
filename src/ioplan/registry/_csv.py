"""Import and export of the registry as CSV files, one per table.

Each file has a header row with the documented columns (:data:`TABLES`); rows refer to each
other by their text keys (``patient_key``, ``lesion_key``, ...), never by database ids. Dates
are ISO 8601 (``2024-03-01``), booleans ``yes``/``no`` (``true``/``false``/``1``/``0`` are
read too), an empty cell is "not recorded". Row numbers in messages are line numbers of the
file: the header is row 1, the first record row 2.

An import is validated whole before anything is written: every problem (bad value, unknown
key, duplicate key, a follow-up dated before the procedure it follows, ...) is reported with
its file, row and field, and nothing is written. A valid import is written in one transaction,
so a crash or a killed process leaves the database as it was before.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ioplan.errors import FileFormatError, InputError, InputFileNotFoundError, OutputExistsError
from ioplan.registry._models import (
    CRITERIA,
    GUIDANCE,
    IMAGING,
    MODALITIES,
    RESPONSES,
    Complication,
    Death,
    FollowUp,
    Lesion,
    LesionResponse,
    Patient,
    Procedure,
    TreatedLesion,
)

__all__ = [
    "TABLES",
    "Column",
    "ImportReport",
    "RegistryImportError",
    "RowError",
    "export_csv",
    "import_csv",
    "link_margin",
    "read_tables",
    "write_tables",
]

#: Pseudonymous keys: letters, digits and ``._-`` only (a name with a space is refused).
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TRUE = {"yes", "y", "true", "t", "1"}
_FALSE = {"no", "n", "false", "f", "0"}


@dataclass(frozen=True)
class Column:
    """One documented CSV column.

    ``kind`` is one of key, ref, str, int, float, date, bool, json, enum; ``ref`` names the
    file a ref column points into; ``lo``/``hi`` bound numbers (inclusive).
    """

    name: str
    kind: str
    help: str
    required: bool = False
    ref: str | None = None
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None


def _c(name, kind, help, **kw) -> Column:  # short rows in the spec below
    return Column(name, kind, help, **kw)


_YEAR_NOW = dt.date.today().year

#: Files in import order, with their columns (the documented CSV format).
TABLES: dict[str, tuple[Column, ...]] = {
    "patients.csv": (
        _c("patient_key", "key", "pseudonymous patient key (no names)", required=True),
        _c("sex", "enum", "M, F or X", choices=("M", "F", "X")),
        _c("birth_year", "int", "year of birth", lo=1900, hi=_YEAR_NOW),
        _c("diagnosis", "str", "primary diagnosis (e.g. HCC, CRLM)"),
        _c("last_contact_on", "date", "last date known alive (censoring)"),
    ),
    "lesions.csv": (
        _c("lesion_key", "key", "lesion key", required=True),
        _c("patient_key", "ref", "patient", required=True, ref="patients.csv"),
        _c("organ", "str", "organ (liver, kidney, lung, ...)", required=True),
        _c("segment", "str", "segment (Couinaud for the liver)"),
        _c("size_mm", "float", "largest diameter, mm", required=True, lo=0.5, hi=300),
        _c("histology", "str", "histology"),
        _c("vessel_distance_mm", "float", "distance to the nearest vessel >= 3 mm", lo=0, hi=300),
    ),
    "procedures.csv": (
        _c("procedure_key", "key", "procedure key", required=True),
        _c("patient_key", "ref", "patient", required=True, ref="patients.csv"),
        _c("date", "date", "date of the procedure", required=True),
        _c("modality", "enum", "/".join(MODALITIES), required=True, choices=MODALITIES),
        _c("guidance", "enum", "/".join(GUIDANCE), choices=GUIDANCE),
        _c("applicators", "str", "applicators used (free text or catalogue ids)"),
        _c("settings", "json", 'settings as a JSON object, e.g. {"power_w": 100}'),
        _c("plan_json", "str", "path or URI of the stored plan.json"),
        _c("margin_json", "str", "path or URI of the stored margin.json"),
    ),
    "treated_lesions.csv": (
        _c("procedure_key", "ref", "procedure", required=True, ref="procedures.csv"),
        _c("lesion_key", "ref", "lesion treated", required=True, ref="lesions.csv"),
        _c("technical_success", "bool", "complete coverage per protocol at the end"),
        _c("minimal_margin_mm", "float", "minimal ablative margin, mm", lo=-50, hi=50),
    ),
    "followups.csv": (
        _c("followup_key", "key", "follow-up key", required=True),
        _c("patient_key", "ref", "patient", required=True, ref="patients.csv"),
        _c("date", "date", "date of the imaging", required=True),
        _c("imaging", "enum", "/".join(IMAGING), required=True, choices=IMAGING),
        _c("intrahepatic_distant_recurrence", "bool", "new tumour away from ablation zones"),
        _c("extrahepatic_disease", "bool", "disease outside the liver"),
    ),
    "lesion_responses.csv": (
        _c("followup_key", "ref", "follow-up", required=True, ref="followups.csv"),
        _c("lesion_key", "ref", "lesion", required=True, ref="lesions.csv"),
        _c("criteria", "enum", "/".join(CRITERIA), choices=CRITERIA),
        _c("response", "enum", "/".join(RESPONSES), choices=RESPONSES),
        _c("complete_ablation", "bool", "no residual enhancing tumour at the zone"),
        _c("ltp", "bool", "local tumour progression at the zone edge"),
    ),
    "complications.csv": (
        _c("complication_key", "key", "complication key", required=True),
        _c("procedure_key", "ref", "procedure", required=True, ref="procedures.csv"),
        _c("date", "date", "date of onset"),
        _c("cirse_grade", "int", "CIRSE grade 1-6", required=True, lo=1, hi=6),
        _c("description", "str", "description"),
    ),
    "deaths.csv": (
        _c("patient_key", "ref", "patient", required=True, ref="patients.csv"),
        _c("date", "date", "date of death", required=True),
        _c("cause", "str", "cause, if known"),
    ),
}

_KEYED = {
    "patients.csv": (Patient, "patient_key"),
    "lesions.csv": (Lesion, "lesion_key"),
    "procedures.csv": (Procedure, "procedure_key"),
    "followups.csv": (FollowUp, "followup_key"),
    "complications.csv": (Complication, "complication_key"),
}


@dataclass(frozen=True)
class RowError:
    """A problem in one field of one row of one file."""

    file: str
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file} row {self.row}" if self.row else self.file
        return (
            f"{where}, field {self.field}: {self.message}"
            if self.field
            else f"{where}: {self.message}"
        )


class RegistryImportError(InputError):
    """An import was refused; ``errors`` lists every problem found (nothing was written)."""

    def __init__(self, errors: list[RowError], limit: int = 20):
        self.errors = list(errors)
        shown = [str(e) for e in self.errors[:limit]]
        more = len(self.errors) - len(shown)
        tail = [f"... and {more} more"] if more > 0 else []
        head = f"import refused, nothing written ({len(self.errors)} problem(s)):"
        super().__init__("\n".join([head, *shown, *tail]))


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote: rows per file."""

    rows: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {"rows": dict(self.rows), "total": sum(self.rows.values())}


# --------------------------------------------------------------------------- parsing


def _parse(col: Column, text: str) -> object:
    """Value of one cell (None when empty); raises ValueError with the reason."""
    text = text.strip()
    if text == "":
        if col.required:
            raise ValueError("is required")
        return None
    if col.kind in ("key", "ref"):
        if not KEY_PATTERN.match(text):
            raise ValueError(f"{text!r} is not a key (letters, digits, '.', '_', '-'; max 64)")
        return text
    if col.kind == "str":
        return text
    if col.kind == "enum":
        for c in col.choices:
            if text.lower() == c.lower():
                return c
        raise ValueError(f"{text!r} is not one of {', '.join(col.choices)}")
    if col.kind == "bool":
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"{text!r} is not yes or no")
    if col.kind == "date":
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a date YYYY-MM-DD") from None
    if col.kind == "json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object")
        return json.dumps(value, sort_keys=True)
    if col.kind in ("int", "float"):
        try:
            number = int(text) if col.kind == "int" else float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{text!r} is not a finite number")
        if (col.lo is not None and number < col.lo) or (col.hi is not None and number > col.hi):
            raise ValueError(f"{text} is outside {col.lo:g}..{col.hi:g}")
        return number
    raise AssertionError(col.kind)  # pragma: no cover


def read_tables(folder: Path) -> tuple[dict[str, list[tuple[int, dict]]], list[RowError]]:
    """Parsed rows of every known CSV file in ``folder`` (row number, values) and the errors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileNotFoundError(f"import folder {folder} does not exist")
    present = [name for name in TABLES if (folder / name).is_file()]
    if not present:
        raise InputError(f"{folder} holds none of the registry files ({', '.join(TABLES)})")
    tables: dict[str, list[tuple[int, dict]]] = {}
    errors: list[RowError] = []
    for name in present:
        cols = {c.name: c for c in TABLES[name]}
        try:
            with open(folder / name, newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh)
                header = [h.strip() for h in next(reader, [])]
                body = list(enumerate(reader, start=2))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise FileFormatError(
                f"{folder / name}: not a readable UTF-8 CSV file ({exc})"
            ) from None
        unknown = [h for h in header if h not in cols]
        missing = [c.name for c in cols.values() if c.required and c.name not in header]
        for h in unknown:
            errors.append(RowError(name, 1, h, f"unknown column (expected: {', '.join(cols)})"))
        for m in missing:
            errors.append(RowError(name, 1, m, "required column is missing"))
        if unknown or missing or len(set(header)) != len(header):
            if len(set(header)) != len(header):
                errors.append(RowError(name, 1, "", "a column name appears twice"))
            continue
        rows = []
        for rownum, cells in body:
            if not any(c.strip() for c in cells):
                continue  # blank line
            if len(cells) != len(header):
                errors.append(
                    RowError(name, rownum, "", f"{len(cells)} cells, the header has {len(header)}")
                )
                continue
            values = {}
            for h, cell in zip(header, cells, strict=True):
                try:
                    values[h] = _parse(cols[h], cell)
                except ValueError as exc:
                    errors.append(RowError(name, rownum, h, str(exc)))
            for c in cols.values():
                values.setdefault(c.name, None)
            rows.append((rownum, values))
        tables[name] = rows
    return tables, errors


# --------------------------------------------------------------------------- validation


@dataclass
class _Known:
    """Keys known before the import (in the database) and added by it, with what checks need."""

    patients: dict[str, int | None] = field(default_factory=dict)  # key -> db id
    lesions: dict[str, tuple[int | None, str]] = field(default_factory=dict)  # (id, patient)
    procedures: dict[str, tuple[int | None, str, dt.date]] = field(default_factory=dict)
    followups: dict[str, tuple[int | None, str, dt.date]] = field(default_factory=dict)
    complications: set[str] = field(default_factory=set)
    deaths: dict[str, dt.date] = field(default_factory=dict)
    treated: set[tuple[str, str]] = field(default_factory=set)
    responses: set[tuple[str, str]] = field(default_factory=set)


def _known_from_db(session: Session) -> _Known:
    k = _Known()
    pkey = dict(session.execute(sa.select(Patient.id, Patient.patient_key)).all())
    k.patients = {v: i for i, v in pkey.items()}
    for i, key, pid in session.execute(sa.select(Lesion.id, Lesion.lesion_key, Lesion.patient_id)):
        k.lesions[key] = (i, pkey[pid])
    q = sa.select(Procedure.id, Procedure.procedure_key, Procedure.patient_id, Procedure.date)
    proc_by_id = {}
    for i, key, pid, date in session.execute(q):
        k.procedures[key] = (i, pkey[pid], date)
        proc_by_id[i] = key
    q = sa.select(FollowUp.id, FollowUp.followup_key, FollowUp.patient_id, FollowUp.date)
    fu_by_id = {}
    for i, key, pid, date in session.execute(q):
        k.followups[key] = (i, pkey[pid], date)
        fu_by_id[i] = key
    k.complications = set(session.scalars(sa.select(Complication.complication_key)))
    for pid, date in session.execute(sa.select(Death.patient_id, Death.date)):
        k.deaths[pkey[pid]] = date
    les_by_id = {v[0]: key for key, v in k.lesions.items()}
    for pr, le in session.execute(sa.select(TreatedLesion.procedure_id, TreatedLesion.lesion_id)):
        k.treated.add((proc_by_id[pr], les_by_id[le]))
    for fu, le in session.execute(sa.select(LesionResponse.followup_id, LesionResponse.lesion_id)):
        k.responses.add((fu_by_id[fu], les_by_id[le]))
    return k


def _validate(tables: dict, known: _Known) -> list[RowError]:
    """Cross-row checks: keys unique, references known, lesions of the right patient, dates."""
    errs: list[RowError] = []

    def err(f, r, c, m):
        errs.append(RowError(f, r, c, m))

    def unique(fname, keycol, existing):
        seen: dict[str, int] = {}
        for r, v in tables.get(fname, []):
            key = v[keycol]
            if key is None:
                continue
            if key in existing:
                err(fname, r, keycol, f"duplicate key {key!r}: already in the registry")
            elif key in seen:
                err(fname, r, keycol, f"duplicate key {key!r}: also on row {seen[key]}")
            seen[key] = r

    def ref(fname, r, col, key, pool, what):
        if key is not None and key not in pool:
            err(fname, r, col, f"unknown {what} {key!r}")
            return False
        return key is not None

    unique("patients.csv", "patient_key", known.patients)
    for _, v in tables.get("patients.csv", []):
        known.patients.setdefault(v["patient_key"], None)

    unique("lesions.csv", "lesion_key", known.lesions)
    for r, v in tables.get("lesions.csv", []):
        if ref("lesions.csv", r, "patient_key", v["patient_key"], known.patients, "patient"):
            known.lesions.setdefault(v["lesion_key"], (None, v["patient_key"]))

    unique("procedures.csv", "procedure_key", known.procedures)
    for r, v in tables.get("procedures.csv", []):
        ok = ref("procedures.csv", r, "patient_key", v["patient_key"], known.patients, "patient")
        if ok and v["date"] is not None:
            known.procedures.setdefault(v["procedure_key"], (None, v["patient_key"], v["date"]))

    first_proc: dict[str, dt.date] = {}
    for _, pat, date in known.procedures.values():
        first_proc[pat] = min(date, first_proc.get(pat, date))

    first_treat: dict[str, dt.date] = {}
    for pr, le in known.treated:
        date = known.procedures[pr][2]
        first_treat[le] = min(date, first_treat.get(le, date))
    seen_pairs: dict[tuple[str, str], int] = {}
    for r, v in tables.get("treated_lesions.csv", []):
        f = "treated_lesions.csv"
        okp = ref(f, r, "procedure_key", v["procedure_key"], known.procedures, "procedure")
        okl = ref(f, r, "lesion_key", v["lesion_key"], known.lesions, "lesion")
        if not (okp and okl):
            continue
        pair = (v["procedure_key"], v["lesion_key"])
        _, ppat, pdate = known.procedures[pair[0]]
        lpat = known.lesions[pair[1]][1]
        if ppat != lpat:
            err(
                f,
                r,
                "lesion_key",
                f"lesion {pair[1]!r} is of patient {lpat!r}, "
                f"procedure {pair[0]!r} of patient {ppat!r}",
            )
        elif pair in known.treated:
            err(f, r, "lesion_key", f"lesion {pair[1]!r} already recorded for {pair[0]!r}")
        elif pair in seen_pairs:
            err(f, r, "lesion_key", f"same procedure and lesion as row {seen_pairs[pair]}")
        else:
            seen_pairs[pair] = r
            first_treat[pair[1]] = min(pdate, first_treat.get(pair[1], pdate))

    unique("followups.csv", "followup_key", known.followups)
    for r, v in tables.get("followups.csv", []):
        f = "followups.csv"
        if not ref(f, r, "patient_key", v["patient_key"], known.patients, "patient"):
            continue
        pat, date = v["patient_key"], v["date"]
        if date is None:
            continue
        if pat in first_proc and date < first_proc[pat]:
            err(
                f,
                r,
                "date",
                f"follow-up on {date} is before the patient's first procedure ({first_proc[pat]})",
            )
        elif pat not in first_proc:
            err(f, r, "patient_key", f"patient {pat!r} has no procedure to follow up")
        known.followups.setdefault(v["followup_key"], (None, pat, date))

    seen_resp: dict[tuple[str, str], int] = {}
    for r, v in tables.get("lesion_responses.csv", []):
        f = "lesion_responses.csv"
        okf = ref(f, r, "followup_key", v["followup_key"], known.followups, "follow-up")
        okl = ref(f, r, "lesion_key", v["lesion_key"], known.lesions, "lesion")
        if not (okf and okl):
            continue
        fkey, lkey = v["followup_key"], v["lesion_key"]
        _, fpat, fdate = known.followups[fkey]
        lpat = known.lesions[lkey][1]
        if fpat != lpat:
            err(
                f,
                r,
                "lesion_key",
                f"lesion {lkey!r} is of patient {lpat!r}, follow-up {fkey!r} of patient {fpat!r}",
            )
        elif lkey not in first_treat:
            err(f, r, "lesion_key", f"lesion {lkey!r} has no treatment to follow up")
        elif fdate < first_treat[lkey]:
            err(
                f,
                r,
                "followup_key",
                f"follow-up {fkey!r} on {fdate} is before the first "
                f"procedure on lesion {lkey!r} ({first_treat[lkey]})",
            )
        elif (fkey, lkey) in known.responses or (fkey, lkey) in seen_resp:
            err(f, r, "lesion_key", f"lesion {lkey!r} already has a response at {fkey!r}")
        else:
            seen_resp[(fkey, lkey)] = r

    unique("complications.csv", "complication_key", known.complications)
    for r, v in tables.get("complications.csv", []):
        f = "complications.csv"
        if not ref(f, r, "procedure_key", v["procedure_key"], known.procedures, "procedure"):
            continue
        pdate = known.procedures[v["procedure_key"]][2]
        if v["date"] is not None and v["date"] < pdate:
            err(f, r, "date", f"complication on {v['date']} is before its procedure ({pdate})")

    last_event: dict[str, dt.date] = {}
    for _, pat, date in [*known.procedures.values(), *known.followups.values()]:
        last_event[pat] = max(date, last_event.get(pat, date))
    seen_death: dict[str, int] = {}
    for r, v in tables.get("deaths.csv", []):
        f = "deaths.csv"
        pat = v["patient_key"]
        if not ref(f, r, "patient_key", pat, known.patients, "patient"):
            continue
        if pat in known.deaths or pat in seen_death:
            err(f, r, "patient_key", f"patient {pat!r} already has a death recorded")
        elif v["date"] is not None and pat in last_event and v["date"] < last_event[pat]:
            err(
                f,
                r,
                "date",
                f"death on {v['date']} is before the patient's last procedure or "
                f"follow-up ({last_event[pat]})",
            )
        seen_death[pat] = r
    for r, v in tables.get("patients.csv", []):
        lc = v["last_contact_on"]
        if lc is not None and v["patient_key"] in last_event and lc < last_event[v["patient_key"]]:
            err(
                "patients.csv",
                r,
                "last_contact_on",
                f"{lc} is before the patient's last "
                f"procedure or follow-up ({last_event[v['patient_key']]})",
            )
    return sorted(errs, key=lambda e: (list(TABLES).index(e.file), e.row, e.field))


# --------------------------------------------------------------------------- writing


def import_csv(session: Session, folder: Path) -> ImportReport:
    """Validate the CSV files in ``folder`` and add their rows to the registry.

    The caller owns the transaction (see :func:`ioplan.registry.session_scope`): on any error
    nothing of this import is kept. Raises :class:`RegistryImportError` listing every problem.
    """
    tables, errors = read_tables(folder)
    known = _known_from_db(session)
    errors += _validate(tables, known)
    if errors:
        raise RegistryImportError(sorted(errors, key=lambda e: (list(TABLES).index(e.file), e.row)))

    def ids(model, keycol) -> dict[str, int]:
        col = getattr(model, keycol)
        return dict(session.execute(sa.select(col, model.id)).all())

    counts: dict[str, int] = {}

    def add(fname: str, build: Callable[[dict], object]) -> None:
        rows = tables.get(fname, [])
        session.add_all([build(v) for _, v in rows])
        session.flush()
        counts[fname] = len(rows)

    add("patients.csv", lambda v: Patient(**v))
    pid = ids(Patient, "patient_key")
    add("lesions.csv", lambda v: Lesion(**_swap(v, "patient_key", "patient_id", pid)))
    add("procedures.csv", lambda v: Procedure(**_swap(v, "patient_key", "patient_id", pid)))
    prid, lid = ids(Procedure, "procedure_key"), ids(Lesion, "lesion_key")
    add(
        "treated_lesions.csv",
        lambda v: TreatedLesion(
            **_swap(_swap(v, "procedure_key", "procedure_id", prid), "lesion_key", "lesion_id", lid)
        ),
    )
    add("followups.csv", lambda v: FollowUp(**_swap(v, "patient_key", "patient_id", pid)))
    fid = ids(FollowUp, "followup_key")
    add(
        "lesion_responses.csv",
        lambda v: LesionResponse(
            **_swap(_swap(v, "followup_key", "followup_id", fid), "lesion_key", "lesion_id", lid)
        ),
    )
    add(
        "complications.csv",
        lambda v: Complication(**_swap(v, "procedure_key", "procedure_id", prid)),
    )
    add("deaths.csv", lambda v: Death(**_swap(v, "patient_key", "patient_id", pid)))
    return ImportReport({k: n for k, n in counts.items() if k in tables})


def link_margin(
    session: Session,
    procedure_key: str,
    lesion_key: str,
    margin_json: Path,
    plan_json: Path | None = None,
) -> dict:
    """Record an ``ioplan margin`` result (margin.json) for a treated lesion.

    Sets the lesion's minimal margin and technical success from the file (the file's set
    margin decides success), and stores the paths of margin.json (and plan.json) on the
    procedure. Returns what was recorded.
    """
    path = Path(margin_json)
    if not path.is_file():
        raise InputFileNotFoundError(f"margin file {path} does not exist")
    try:
        doc = json.loads(path.read_text())
        mam = float(doc["minimal_margin_mm"])
        success = bool(doc["technical_success"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise FileFormatError(
            f"{path}: not a margin.json of ioplan margin (needs minimal_margin_mm and "
            f"technical_success): {exc}"
        ) from None
    if not math.isfinite(mam):
        raise FileFormatError(f"{path}: minimal_margin_mm is {mam}")
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


def _swap(values: dict, key_col: str, id_col: str, lookup: dict[str, int]) -> dict:
    out = dict(values)
    out[id_col] = lookup[out.pop(key_col)]
    for flag in ("intrahepatic_distant_recurrence", "extrahepatic_disease", "ltp"):
        if flag in out and out[flag] is None:
            out[flag] = False
    return out


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def table_rows(session: Session) -> dict[str, list[dict]]:
    """Every table of the registry as rows keyed by the CSV columns, sorted by key."""
    pkey = dict(session.execute(sa.select(Patient.id, Patient.patient_key)).all())
    lkey = dict(session.execute(sa.select(Lesion.id, Lesion.lesion_key)).all())
    prkey = dict(session.execute(sa.select(Procedure.id, Procedure.procedure_key)).all())
    fkey = dict(session.execute(sa.select(FollowUp.id, FollowUp.followup_key)).all())
    back = {"patient_id": pkey, "lesion_id": lkey, "procedure_id": prkey, "followup_id": fkey}
    models = {
        "patients.csv": Patient,
        "lesions.csv": Lesion,
        "procedures.csv": Procedure,
        "treated_lesions.csv": TreatedLesion,
        "followups.csv": FollowUp,
        "lesion_responses.csv": LesionResponse,
        "complications.csv": Complication,
        "deaths.csv": Death,
    }
    out: dict[str, list[dict]] = {}
    for fname, model in models.items():
        rows = []
        for obj in session.scalars(sa.select(model)):
            row = {}
            for col in TABLES[fname]:
                if col.kind == "ref":
                    id_col = col.name.replace("_key", "_id")
                    row[col.name] = back[id_col][getattr(obj, id_col)]
                else:
                    row[col.name] = getattr(obj, col.name)
            rows.append(row)
        names = [c.name for c in TABLES[fname]]
        rows.sort(key=lambda r: tuple(_cell(r[n]) for n in names[:2]))
        out[fname] = rows
    return out


def write_tables(rows: dict[str, list[dict]], folder: Path, overwrite: bool = False) -> list[Path]:
    """Write rows (as from :func:`table_rows`) as the documented CSV files; returns the paths."""
    folder = Path(folder)
    targets = [folder / name for name in TABLES if name in rows]
    clash = [p for p in targets if p.exists()]
    if clash and not overwrite:
        raise OutputExistsError(
            f"{clash[0]} exists ({len(clash)} registry file(s) in {folder}); "
            "pass --overwrite to replace them"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for path in targets:
        names = [c.name for c in TABLES[path.name]]
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(names)
            for row in rows[path.name]:
                w.writerow([_cell(row.get(n)) for n in names])
        tmp.replace(path)
    return targets


def export_csv(session: Session, folder: Path, overwrite: bool = False) -> dict[str, int]:
    """Write the whole registry to ``folder`` as CSV files; returns rows per file."""
    rows = table_rows(session)
    write_tables(rows, folder, overwrite=overwrite)
    return {k: len(v) for k, v in rows.items()}


def columns_markdown() -> str:
    """The documented CSV format as a Markdown table (for the README and ``--help``)."""
    lines = ["| file | column | type | required | meaning |", "|---|---|---|---|---|"]
    for fname, cols in TABLES.items():
        for c in cols:
            kind = f"ref → {c.ref}" if c.ref else c.kind
            if c.lo is not None:
                kind += f" [{c.lo:g}, {c.hi:g}]"
            lines.append(
                f"| {fname} | {c.name} | {kind} | {'yes' if c.required else ''} | {c.help} |"
            )
    return "\n".join(lines)
