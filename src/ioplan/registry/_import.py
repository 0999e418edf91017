"""Import of registry CSV files: streamed, validated row by row, written in one transaction.

The files are read in chunks of rows (memory stays bounded by the chunk and by the keys the
checks must remember, never by the whole file). Every problem (bad value, unknown key,
duplicate key, a follow-up dated before the procedure it follows, ...) is reported with its
file, row and field. Valid rows are sent to the database as they are read, inside the
caller's transaction; the first problem stops the writing, the rest of the files are still
checked so that every problem is reported, and the caller's transaction is rolled back: an
import is all rows or none, and a crash or a killed process leaves the database as before.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ioplan.errors import FileFormatError, InputError, InputFileNotFoundError
from ioplan.privacy import identifying_field
from ioplan.registry._models import (
    Complication,
    Death,
    FollowUp,
    Lesion,
    LesionResponse,
    Patient,
    Procedure,
    TreatedLesion,
)
from ioplan.registry._schema import (
    IDENTIFYING_ADVICE,
    MODELS,
    TABLES,
    IdentifyingFieldError,
    ImportReport,
    RegistryImportError,
    RowError,
    couinaud_problem,
    parse_cell,
)

__all__ = ["Progress", "import_csv", "read_tables"]

#: ``progress(file, rows_done, rows_total)``: called as the import advances.
Progress = Callable[[str, int, int], None]

_CHUNK_ROWS = 5000  # rows parsed, checked and inserted together
_KEEP_ERRORS = 100  # problems kept per file (all are counted)
_BOOL_DEFAULT_FALSE = ("intrahepatic_distant_recurrence", "extrahepatic_disease", "ltp")
#: Key column of the files whose rows others refer to.
_KEYS = {
    "patients.csv": "patient_key",
    "lesions.csv": "lesion_key",
    "procedures.csv": "procedure_key",
    "followups.csv": "followup_key",
    "complications.csv": "complication_key",
}


# --------------------------------------------------------------------------- reading


class _Errors:
    """Problems found, kept per file up to a bound (the first rows), and all counted."""

    def __init__(self) -> None:
        self.total = 0
        self.by_file: dict[str, list[RowError]] = {}

    def add(self, e: RowError) -> None:
        self.total += 1
        kept = self.by_file.setdefault(e.file, [])
        kept.append(e)
        if len(kept) > 2 * _KEEP_ERRORS:
            kept.sort(key=lambda x: x.row)
            del kept[_KEEP_ERRORS:]

    def sorted(self) -> list[RowError]:
        out = []
        for name in TABLES:
            out += sorted(self.by_file.get(name, []), key=lambda x: x.row)[:_KEEP_ERRORS]
        return out


def _scan(path: Path) -> int:
    """Data rows of a CSV file (lines after the header), checking that it is UTF-8 text.

    Cheap (one binary pass): a file that is not UTF-8 is refused before any row is imported.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line = lines + chunk[: exc.start].count(b"\n") + 1
                raise FileFormatError(
                    f"{path}: not UTF-8 text (byte 0x{chunk[exc.start]:02x} on line {line}); "
                    "save it as UTF-8 CSV"
                ) from None
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise FileFormatError(f"{path}: not UTF-8 text (it ends inside a character)") from None
    return max(lines - 1, 0)


def _header(path: Path, name: str, errors: _Errors) -> list[str] | None:
    """The checked header of a file (None, with the problems, when it cannot be used)."""
    cols = {c.name: c for c in TABLES[name]}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = [h.strip() for h in next(csv.reader(fh), [])]
    named = [repr(h) for h in header if identifying_field(h)]
    if named:  # refused outright, before any row is read or written
        what = f"column {named[0]}" if len(named) == 1 else f"columns {', '.join(named)}: each"
        raise IdentifyingFieldError(f"{name}, {what} {IDENTIFYING_ADVICE}; nothing imported")
    unknown = [h for h in header if h not in cols]
    missing = [c.name for c in cols.values() if c.required and c.name not in header]
    for h in unknown:
        errors.add(RowError(name, 1, h, f"unknown column (expected: {', '.join(cols)})"))
    for m in missing:
        errors.add(RowError(name, 1, m, "required column is missing"))
    if len(set(header)) != len(header):
        errors.add(RowError(name, 1, "", "a column name appears twice"))
    return None if errors.by_file.get(name) else header


def _rows(
    path: Path, name: str, header: list[str], errors: _Errors, chunk: int
) -> Iterator[list[tuple[int, dict]]]:
    """Parsed rows of a file in chunks: (row number, values); bad cells go to ``errors``."""
    cols = [next(c for c in TABLES[name] if c.name == h) for h in header]
    absent = [c.name for c in TABLES[name] if c.name not in header]
    today = dt.date.today()
    out: list[tuple[int, dict]] = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        try:
            for rownum, cells in enumerate(reader, start=2):
                if not any(c.strip() for c in cells):
                    continue  # blank line
                if len(cells) != len(header):
                    msg = f"{len(cells)} cells, the header has {len(header)}"
                    errors.add(RowError(name, rownum, "", msg))
                    continue
                values, ok = dict.fromkeys(absent), True
                for col, cell in zip(cols, cells, strict=True):
                    try:
                        values[col.name] = parse_cell(col, cell, today)
                    except IdentifyingFieldError as exc:  # the row's values stay unprinted
                        raise IdentifyingFieldError(
                            f"{name} row {rownum}, field {col.name}: {exc}; nothing imported"
                        ) from None
                    except ValueError as exc:
                        errors.add(RowError(name, rownum, col.name, str(exc)))
                        values[col.name], ok = None, False
                out.append((rownum, values) if ok else (-rownum, values))
                if len(out) >= chunk:
                    yield out
                    out = []
        except csv.Error as exc:
            raise FileFormatError(f"{path}: not a readable CSV file ({exc})") from None
    if out:
        yield out


def _files(folder: Path) -> list[str]:
    folder = Path(folder)
    if not folder.exists():
        raise InputFileNotFoundError(f"import folder {folder} does not exist")
    if not folder.is_dir():
        raise InputError(f"{folder} is a file: give the folder that holds the CSV files")
    present = [name for name in TABLES if (folder / name).is_file()]
    if not present:
        raise InputError(f"{folder} holds none of the registry files ({', '.join(TABLES)})")
    return present


def read_tables(folder: Path) -> tuple[dict[str, list[tuple[int, dict]]], list[RowError]]:
    """Parsed rows of every known CSV file in ``folder`` (row number, values) and the errors.

    Reads everything into memory (for small files and tests); :func:`import_csv` streams.
    Rows with a bad cell are left out; their problems are in the errors.
    """
    folder = Path(folder)
    errors = _Errors()
    tables = {}
    for name in _files(folder):
        _scan(folder / name)
        header = _header(folder / name, name, errors)
        if header is not None:
            rows = _rows(folder / name, name, header, errors, _CHUNK_ROWS)
            tables[name] = [r for part in rows for r in part if r[0] > 0]
    return tables, errors.sorted()


# --------------------------------------------------------------------------- checking


@dataclass
class _Known:
    """Keys known before the import (in the database) and added by it, with what checks need."""

    patients: set[str] = field(default_factory=set)
    lesions: dict[str, str] = field(default_factory=dict)  # key -> patient
    procedures: dict[str, tuple[str, dt.date]] = field(default_factory=dict)  # patient, date
    followups: dict[str, tuple[str, dt.date]] = field(default_factory=dict)
    complications: set[str] = field(default_factory=set)
    deaths: set[str] = field(default_factory=set)
    treated: set[tuple[str, str]] = field(default_factory=set)
    responses: set[tuple[str, str]] = field(default_factory=set)


def _known_from_db(session: Session) -> _Known:
    k = _Known()
    pkey = dict(session.execute(sa.select(Patient.id, Patient.patient_key)).all())
    k.patients = set(pkey.values())
    les_by_id = {}
    for i, key, pid in session.execute(sa.select(Lesion.id, Lesion.lesion_key, Lesion.patient_id)):
        k.lesions[key] = pkey[pid]
        les_by_id[i] = key
    q = sa.select(Procedure.id, Procedure.procedure_key, Procedure.patient_id, Procedure.date)
    proc_by_id = {}
    for i, key, pid, date in session.execute(q):
        k.procedures[key] = (pkey[pid], date)
        proc_by_id[i] = key
    q = sa.select(FollowUp.id, FollowUp.followup_key, FollowUp.patient_id, FollowUp.date)
    fu_by_id = {}
    for i, key, pid, date in session.execute(q):
        k.followups[key] = (pkey[pid], date)
        fu_by_id[i] = key
    k.complications = set(session.scalars(sa.select(Complication.complication_key)))
    k.deaths = {pkey[pid] for pid in session.scalars(sa.select(Death.patient_id))}
    for pr, le in session.execute(sa.select(TreatedLesion.procedure_id, TreatedLesion.lesion_id)):
        k.treated.add((proc_by_id[pr], les_by_id[le]))
    for fu, le in session.execute(sa.select(LesionResponse.followup_id, LesionResponse.lesion_id)):
        k.responses.add((fu_by_id[fu], les_by_id[le]))
    return k


class _Checker:
    """Cross-row checks, file by file in import order.

    Keys unique, references known, lesions of the right patient, dates in order.
    ``check(name, rows)`` returns the rows that pass.
    """

    def __init__(self, known: _Known, errors: _Errors):
        self.k, self.errors = known, errors
        self.seen: dict[str, dict[str, int]] = {}  # file -> key -> first row
        self.pairs: dict[tuple[str, str], int] = {}  # (procedure|follow-up, lesion) -> row
        self.first_proc: dict[str, dt.date] = {}
        self.first_treat: dict[str, dt.date] = {}
        self.last_event: dict[str, dt.date] = {}
        self.last_contact: list[tuple[int, str, dt.date]] = []
        self.dead: dict[str, int] = {}

    def err(self, f: str, r: int, c: str, m: str) -> bool:
        self.errors.add(RowError(f, r, c, m))
        return False

    def _unique(self, f: str, r: int, v: dict, existing) -> bool:
        col = _KEYS[f]
        key, seen = v[col], self.seen.setdefault(f, {})
        if key is None:
            return True
        if key in seen:  # (keys of this file join ``existing`` as they are read)
            return self.err(f, r, col, f"duplicate key {key!r}: also on row {seen[key]}")
        if key in existing:
            return self.err(f, r, col, f"duplicate key {key!r}: already in the registry")
        seen[key] = r
        return True

    def _ref(self, f: str, r: int, col: str, key, pool, what: str) -> bool:
        if key is not None and key not in pool:
            return self.err(f, r, col, f"unknown {what} {key!r}")
        return key is not None

    def start(self, name: str) -> None:
        """Summaries that the checks of ``name`` need from the files before it."""
        k, order = self.k, list(TABLES)
        after = order.index(name)
        if after > order.index("procedures.csv") and not self.first_proc:
            for pat, date in k.procedures.values():
                self.first_proc[pat] = min(date, self.first_proc.get(pat, date))
            for pr, le in k.treated:
                date = k.procedures[pr][1]
                self.first_treat[le] = min(date, self.first_treat.get(le, date))
        if after > order.index("followups.csv") and not self.last_event:
            for pat, date in [*k.procedures.values(), *k.followups.values()]:
                self.last_event[pat] = max(date, self.last_event.get(pat, date))

    def check(self, f: str, rows: list[tuple[int, dict]]) -> list[dict]:
        good = []
        for r, v in rows:
            if r > 0 and getattr(self, "_" + f.removesuffix(".csv"))(f, r, v):
                good.append(v)
            elif r < 0:  # a bad cell: still check what can be, for the other problems
                getattr(self, "_" + f.removesuffix(".csv"))(f, -r, v)
        return good

    def _patients(self, f, r, v) -> bool:
        ok = self._unique(f, r, v, self.k.patients)
        if v["patient_key"] is not None:
            self.k.patients.add(v["patient_key"])
        if v["last_contact_on"] is not None:
            self.last_contact.append((r, v["patient_key"], v["last_contact_on"]))
        return ok

    def _lesions(self, f, r, v) -> bool:
        ok = self._unique(f, r, v, self.k.lesions)
        organ, segment = (v.get("organ") or "").strip().lower(), v.get("segment")
        if organ == "liver" and segment is not None:
            problem = couinaud_problem(segment)
            if problem is not None:
                ok = self.err(f, r, "segment", problem)
        if not self._ref(f, r, "patient_key", v["patient_key"], self.k.patients, "patient"):
            return False
        self.k.lesions.setdefault(v["lesion_key"], v["patient_key"])
        return ok

    def _procedures(self, f, r, v) -> bool:
        ok = self._unique(f, r, v, self.k.procedures)
        if not self._ref(f, r, "patient_key", v["patient_key"], self.k.patients, "patient"):
            return False
        if v["date"] is not None:
            self.k.procedures.setdefault(v["procedure_key"], (v["patient_key"], v["date"]))
        return ok

    def _treated_lesions(self, f, r, v) -> bool:
        k = self.k
        okp = self._ref(f, r, "procedure_key", v["procedure_key"], k.procedures, "procedure")
        okl = self._ref(f, r, "lesion_key", v["lesion_key"], k.lesions, "lesion")
        if not (okp and okl):
            return False
        pair = (v["procedure_key"], v["lesion_key"])
        ppat, pdate = k.procedures[pair[0]]
        lpat = k.lesions[pair[1]]
        if ppat != lpat:
            return self.err(
                f, r, "lesion_key",
                f"lesion {pair[1]!r} is of patient {lpat!r}, "
                f"procedure {pair[0]!r} of patient {ppat!r}",
            )  # fmt: skip
        if pair in k.treated:
            return self.err(
                f, r, "lesion_key", f"lesion {pair[1]!r} already recorded for {pair[0]!r}"
            )
        if pair in self.pairs:
            return self.err(
                f, r, "lesion_key", f"same procedure and lesion as row {self.pairs[pair]}"
            )
        self.pairs[pair] = r
        self.first_treat[pair[1]] = min(pdate, self.first_treat.get(pair[1], pdate))
        return True

    def _followups(self, f, r, v) -> bool:
        ok = self._unique(f, r, v, self.k.followups)
        if not self._ref(f, r, "patient_key", v["patient_key"], self.k.patients, "patient"):
            return False
        pat, date = v["patient_key"], v["date"]
        if date is None:
            return False
        first = self.first_proc.get(pat)
        if first is None:
            ok = self.err(f, r, "patient_key", f"patient {pat!r} has no procedure to follow up")
        elif date < first:
            ok = self.err(
                f, r, "date",
                f"follow-up on {date} is before the patient's first procedure ({first})",
            )  # fmt: skip
        self.k.followups.setdefault(v["followup_key"], (pat, date))
        return ok

    def _lesion_responses(self, f, r, v) -> bool:
        k = self.k
        okf = self._ref(f, r, "followup_key", v["followup_key"], k.followups, "follow-up")
        okl = self._ref(f, r, "lesion_key", v["lesion_key"], k.lesions, "lesion")
        if not (okf and okl):
            return False
        fkey, lkey = v["followup_key"], v["lesion_key"]
        fpat, fdate = k.followups[fkey]
        lpat = k.lesions[lkey]
        if fpat != lpat:
            return self.err(
                f, r, "lesion_key",
                f"lesion {lkey!r} is of patient {lpat!r}, follow-up {fkey!r} of patient {fpat!r}",
            )  # fmt: skip
        if lkey not in self.first_treat:
            return self.err(f, r, "lesion_key", f"lesion {lkey!r} has no treatment to follow up")
        if fdate < self.first_treat[lkey]:
            return self.err(
                f, r, "followup_key",
                f"follow-up {fkey!r} on {fdate} is before the first "
                f"procedure on lesion {lkey!r} ({self.first_treat[lkey]})",
            )  # fmt: skip
        if (fkey, lkey) in k.responses or (fkey, lkey) in self.pairs:
            return self.err(
                f, r, "lesion_key", f"lesion {lkey!r} already has a response at {fkey!r}"
            )
        self.pairs[(fkey, lkey)] = r
        return True

    def _complications(self, f, r, v) -> bool:
        ok = self._unique(f, r, v, self.k.complications)
        key = v["procedure_key"]
        if not self._ref(f, r, "procedure_key", key, self.k.procedures, "procedure"):
            return False
        pdate = self.k.procedures[key][1]
        if v["date"] is not None and v["date"] < pdate:
            return self.err(
                f, r, "date", f"complication on {v['date']} is before its procedure ({pdate})"
            )
        return ok

    def _deaths(self, f, r, v) -> bool:
        pat = v["patient_key"]
        if not self._ref(f, r, "patient_key", pat, self.k.patients, "patient"):
            return False
        ok = True
        if pat in self.k.deaths or pat in self.dead:
            ok = self.err(f, r, "patient_key", f"patient {pat!r} already has a death recorded")
        elif v["date"] is not None and pat in self.last_event and v["date"] < self.last_event[pat]:
            ok = self.err(
                f, r, "date",
                f"death on {v['date']} is before the patient's last procedure or "
                f"follow-up ({self.last_event[pat]})",
            )  # fmt: skip
        self.dead[pat] = r
        return ok

    def finish(self) -> None:
        """Checks of earlier files that need the later ones: last contact after last event."""
        self.start("deaths.csv")
        for r, pat, lc in self.last_contact:
            last = self.last_event.get(pat)
            if last is not None and lc < last:
                self.err(
                    "patients.csv", r, "last_contact_on",
                    f"{lc} is before the patient's last procedure or follow-up ({last})",
                )  # fmt: skip


# --------------------------------------------------------------------------- writing

#: For each file: its reference columns -> (database column, file whose ids it takes).
_REFS = {
    name: {c.name: (c.name.replace("_key", "_id"), c.ref) for c in cols if c.kind == "ref"}
    for name, cols in TABLES.items()
}


class _Writer:
    """Inserts checked rows, chunk by chunk, turning keys into database ids."""

    def __init__(self, session: Session):
        self.session = session
        self.ids: dict[str, dict[str, int]] = {}
        self.counts: dict[str, int] = {}

    def _ids(self, name: str) -> dict[str, int]:
        if name not in self.ids:
            model = MODELS[name]
            key = getattr(model, _KEYS[name])
            self.ids[name] = dict(self.session.execute(sa.select(key, model.id)).all())
        return self.ids[name]

    def insert(self, name: str, rows: list[dict]) -> None:
        self.counts[name] = self.counts.get(name, 0) + len(rows)
        if not rows:
            return
        refs = {col: (id_col, self._ids(target)) for col, (id_col, target) in _REFS[name].items()}
        for v in rows:
            for col, (id_col, lookup) in refs.items():
                v[id_col] = lookup[v.pop(col)]
            for flag in _BOOL_DEFAULT_FALSE:
                if flag in v and v[flag] is None:
                    v[flag] = False
        self.session.execute(sa.insert(MODELS[name].__table__), rows)

    def finish(self, name: str) -> None:
        self.session.flush()
        self.ids.pop(name, None)  # keys added by this file: read again when referred to


def import_csv(
    session: Session, folder: Path, progress: Progress | None = None, chunk_rows: int = _CHUNK_ROWS
) -> ImportReport:
    """Validate the CSV files in ``folder`` and add their rows to the registry.

    The files are streamed in chunks of ``chunk_rows`` rows; ``progress(file, done, total)``
    is called after each chunk (rows of all files). The caller owns the transaction (see
    :func:`ioplan.registry.session_scope`): on any error nothing of this import is kept.
    Raises :class:`RegistryImportError` listing the problems (with file, row and field),
    :class:`~ioplan.errors.FileFormatError` for a file that is not UTF-8 CSV text.
    """
    folder = Path(folder)
    present = _files(folder)
    totals = {name: _scan(folder / name) for name in present}  # cheap: refuse non-UTF-8 first
    errors = _Errors()
    headers = {name: _header(folder / name, name, errors) for name in present}
    checker = _Checker(_known_from_db(session), errors)
    writer = _Writer(session)
    total, done = sum(totals.values()), 0
    for name in present:
        checker.start(name)
        if headers[name] is None:
            continue
        for chunk in _rows(folder / name, name, headers[name], errors, chunk_rows):
            good = checker.check(name, chunk)
            if not errors.total:  # after the first problem, only check (nothing is kept)
                writer.insert(name, good)
            done += len(chunk)
            if progress is not None:
                progress(name, min(done, total), total)
        writer.finish(name)
    checker.finish()
    if errors.total:
        raise RegistryImportError(errors.sorted(), total=errors.total)
    if progress is not None:
        progress(present[-1], total, total)
    return ImportReport({k: writer.counts.get(k, 0) for k in present if headers[k] is not None})
