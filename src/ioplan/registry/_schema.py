"""The documented CSV format of the registry: columns, and reading and writing one cell.

Each file has a header row with the documented columns (:data:`TABLES`); rows refer to each
other by their text keys (``patient_key``, ``lesion_key``, ...), never by database ids. Dates
are ISO 8601 (``2024-03-01``), from 1900 to today; booleans ``yes``/``no``
(``true``/``false``/``1``/``0`` are read too); an empty cell is "not recorded"; no cell may
hold a control character (NUL, line feed, ...). Row numbers in messages are line numbers of
the file: the header is row 1, the first record row 2.

Text cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) are written with a leading single quote, as the OWASP
guidance on CSV injection advises; reading removes exactly that quote, so that an export
read back and exported again is identical byte for byte.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field, replace

from ioplan.errors import InputError
from ioplan.privacy import identifying_field
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
    "EARLIEST_DATE",
    "IDENTIFYING_ADVICE",
    "KEY_PATTERN",
    "MODELS",
    "TABLES",
    "Column",
    "IdentifyingFieldError",
    "ImportReport",
    "RegistryImportError",
    "RowError",
    "columns_markdown",
    "format_cell",
    "identifying_key",
    "parse_cell",
]

#: Pseudonymous keys: letters, digits and ``._-`` only (a name with a space is refused).
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
#: The earliest date a registry cell may hold (a later one than today is refused too).
EARLIEST_DATE = dt.date(1900, 1, 1)
_TRUE = {"yes", "y", "true", "t", "1"}
_FALSE = {"no", "n", "false", "f", "0"}
#: First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: Why a field that identifies a patient (:func:`ioplan.privacy.identifying_field`) is
#: refused, and what to do instead. There is no opt-in: the registry has nowhere to keep it.
IDENTIFYING_ADVICE = (
    "identifies a patient; the registry keeps pseudonymised data only: leave it out and "
    "pseudonymise (a study ID in patient_key)"
)


class IdentifyingFieldError(InputError):
    """A column or JSON key that would store patient-identifying data.

    Refused outright, in one line: the import stops and nothing is written.
    """


def identifying_key(value: object) -> str | None:
    """The first key, at any depth of a JSON value, that names identifying data; else None.

    Examples
    --------
    >>> identifying_key({"power_w": 100, "operator": {"PatientName": "x"}})
    'PatientName'
    >>> identifying_key({"power_w": 100, "time_s": [300, {"name": "Emprint"}]}) is None
    True
    """
    stack = [value]  # not recursive: json.loads accepts nesting deeper than Python's stack
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            for k in v:
                if identifying_field(k):
                    return k
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, list):
            stack.extend(reversed(v))
    return None


@dataclass(frozen=True)
class Column:
    """One documented CSV column.

    ``kind`` is one of key, ref, str, int, float, date, bool, json, enum; ``ref`` names the
    file a ref column points into; ``lo``/``hi`` bound numbers (inclusive); ``max_len`` is the
    longest text the database column holds (characters).
    """

    name: str
    kind: str
    help: str
    required: bool = False
    ref: str | None = None
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    max_len: int | None = None


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

#: The database model of each file.
MODELS = {
    "patients.csv": Patient,
    "lesions.csv": Lesion,
    "procedures.csv": Procedure,
    "treated_lesions.csv": TreatedLesion,
    "followups.csv": FollowUp,
    "lesion_responses.csv": LesionResponse,
    "complications.csv": Complication,
    "deaths.csv": Death,
}


def _with_lengths(cols: tuple[Column, ...], model) -> tuple[Column, ...]:
    """The columns with the text length their database column holds (one source: the model)."""
    out = []
    for c in cols:
        db_col = model.__table__.c.get(c.name)
        length = getattr(getattr(db_col, "type", None), "length", None)
        out.append(replace(c, max_len=length) if c.kind == "str" and length else c)
    return tuple(out)


TABLES = {name: _with_lengths(cols, MODELS[name]) for name, cols in TABLES.items()}


_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6", "vii": "7", "viii": "8"}
_COUINAUD_SEPARATORS = re.compile(r"[/,+&;\s]+|(?<=[0-9a-z])-(?=\s*[sS0-9ivxIVX])")


def couinaud_problem(text: str) -> str | None:
    """Why ``text`` is not a liver segment (Couinaud I-VIII; IVa/IVb), or None.

    Arabic or Roman numerals, an optional ``S`` or ``segment`` before each,
    ``caudate`` for I, and several segments separated by ``/``, ``,``, ``+``, ``&``
    or ``-`` for a lesion across segments (Couinaud C, Le foie, 1957: eight segments;
    segment IV divided into IVa and IVb in later usage).

    Examples
    --------
    >>> [couinaud_problem(t) for t in ("7", "S4a", "IVb/V", "5-6", "segment 8")]
    [None, None, None, None, None]
    >>> couinaud_problem("99")
    "'99' is not a liver segment (Couinaud 1-8 or I-VIII; 4a/4b; e.g. 5/6 across two)"
    """
    words = re.sub(r"\bsegments?\b|\bseg\b\.?", " ", text.strip().lower())
    words = re.sub(r"\bs\s+(?=[0-9ivx])", "s", words.replace("caudate", "1"))
    parts = [p for p in _COUINAUD_SEPARATORS.split(words) if p]
    ok = bool(parts)
    for p in parts:
        p = p.removeprefix("seg").removeprefix("s").strip()
        sub = p[-1] if p[-1:] in ("a", "b") and p[:-1] in ("4", "iv") else ""
        num = _ROMAN.get(p[: len(p) - len(sub)], p[: len(p) - len(sub)])
        if num not in {str(i) for i in range(1, 9)}:
            ok = False
    if ok:
        return None
    return f"{text!r} is not a liver segment (Couinaud 1-8 or I-VIII; 4a/4b; e.g. 5/6 across two)"


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
    """An import was refused; ``errors`` lists the problems found (nothing was written).

    ``summary`` is one line with the count; ``str()`` is that line followed by one problem per
    line (the first ``limit``). ``total`` counts every problem, also those not kept in
    ``errors`` (an import keeps the first problems of each file only).
    """

    def __init__(self, errors: list[RowError], limit: int = 20, total: int | None = None):
        self.errors = list(errors)
        self.total = len(self.errors) if total is None else total
        shown = [str(e) for e in self.errors[:limit]]
        more = self.total - len(shown)
        self.summary = f"import refused, nothing written: {self.total} problem(s) in the CSV files"
        self.lines = [*shown, *([f"... and {more} more"] if more > 0 else [])]
        super().__init__("\n".join([self.summary, *self.lines]))


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote: rows per file."""

    rows: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {"rows": dict(self.rows), "total": sum(self.rows.values())}


def _control_character(text: str) -> str | None:
    """The first control character of ``text`` (NUL, line feed, DEL, ...), if any."""
    for ch in text:
        if unicodedata.category(ch) == "Cc":
            return ch
    return None


def parse_cell(col: Column, text: str, today: dt.date | None = None) -> object:
    """Value of one cell (None when empty); raises ValueError with the reason.

    Examples
    --------
    >>> parse_cell(TABLES["patients.csv"][3], "'=HYPERLINK(1)")  # the quote of an export
    '=HYPERLINK(1)'
    >>> parse_cell(TABLES["lesions.csv"][4], "2.5")
    2.5
    """
    text = text.strip()
    if text.isascii() and text.isprintable():
        bad = None
    else:
        bad = _control_character(text)
    if bad is not None:
        raise ValueError(f"holds the control character U+{ord(bad):04X}: remove it")
    if text == "":
        if col.required:
            raise ValueError("is required")
        return None
    if col.kind in ("key", "ref"):
        if not KEY_PATTERN.match(text):
            raise ValueError(f"{text!r} is not a key (letters, digits, '.', '_', '-'; max 64)")
        return text
    if col.kind == "str":
        if text.startswith("'") and text.lstrip("'").startswith(_FORMULA_START):
            text = text[1:]  # the quote that export puts before a formula-like text
        if col.max_len is not None and len(text) > col.max_len:
            raise ValueError(f"has {len(text)} characters, at most {col.max_len} are kept")
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
            date = dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a date YYYY-MM-DD") from None
        today = today or dt.date.today()
        if date > today:
            raise ValueError(f"{text} is after today ({today})")
        if date < EARLIEST_DATE:
            raise ValueError(f"{text} is before {EARLIEST_DATE}")
        return date
    if col.kind == "json":

        def _no_constant(name: str):
            # Python's json reads NaN and Infinity, which are not JSON (RFC 8259) and
            # would be exported back as such
            raise ValueError(f"{name} is not a JSON number")

        try:
            value = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object")
        key = identifying_key(value)
        if key is not None:
            raise IdentifyingFieldError(f"key {key!r} {IDENTIFYING_ADVICE}")
        return json.dumps(value, sort_keys=True, allow_nan=False)
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


def format_cell(value: object) -> str:
    """Text of one value in a CSV cell; text that looks like a formula gets a leading quote.

    Examples
    --------
    >>> format_cell("=HYPERLINK(1)"), format_cell("'=x"), format_cell(-1.5)
    ("'=HYPERLINK(1)", "''=x", '-1.5')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    if isinstance(value, str) and text.lstrip("'").startswith(_FORMULA_START):
        return "'" + text
    return text


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
