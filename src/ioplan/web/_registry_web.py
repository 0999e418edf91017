"""The registry dashboard: ``GET /registry``, ``/api/registry/report`` and ``/curves``.

The server reads the registry that ``ioplan registry`` commands use: the database given to
:func:`~ioplan.web.create_app` (``app.state.registry_db``) or else ``$IOPLAN_REGISTRY_DB``
or else ``ioplan-registry.sqlite`` in the server's working folder (a file path or a
``postgresql://`` URL). It only reads: a missing database is never created, nothing is
written. The report is :func:`ioplan.registry.outcome_report`, the same function and keys as
``ioplan registry report --json``; its figures are aggregates (counts, rates, times in
months from treatment), and the curves add only times and counts: no patient key or date
reaches a page or a response.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from html import escape
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from ioplan.errors import InputError, InputFileNotFoundError, IoplanError
from ioplan.web._pages import page
from ioplan.web._registry_web_curves import curves_document

__all__ = ["MAX_TIMES", "REGISTRY_ENV", "registry_db", "router"]

router = APIRouter()

#: The environment variable of ``ioplan registry --db`` (read when the app names no registry).
REGISTRY_ENV = "IOPLAN_REGISTRY_DB"
#: Most report times one request may ask for.
MAX_TIMES = 24
#: Reports kept in memory (a SQLite registry is read again when its file changes).
REPORTS_KEPT = 8
_DEFAULT_TIMES = "3,6,12"
_MAKE_ONE = (
    "make one with: ioplan registry demo --db ioplan-registry.sqlite (in the folder where "
    f"ioplan serve runs), or point {REGISTRY_ENV} at a registry file or postgresql:// URL"
)

_AtMonths = Annotated[
    str,
    Query(
        max_length=200,
        description="Times for rates and survival, months (above 0, at most 240, "
        "comma-separated), as `ioplan registry report --at-months`.",
    ),
]


class _NoRegistry(Exception):
    """No registry to report on (404), or one that cannot be read (503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def registry_db(request: Request) -> str:
    """The registry this app reads: the app's setting, ``$IOPLAN_REGISTRY_DB``, the default."""
    from ioplan.registry import DEFAULT_DB

    return (
        getattr(request.app.state, "registry_db", None)
        or os.environ.get(REGISTRY_ENV)
        or DEFAULT_DB
    )


def _times(text: str) -> tuple[float, ...]:
    from ioplan.registry import parse_months

    try:
        times = parse_months(text)
    except InputError as exc:
        raise InputError(str(exc).replace("--at-months", "at_months")) from None
    if len(times) > MAX_TIMES:
        raise InputError(f"at_months: give at most {MAX_TIMES} times, got {len(times)}")
    return times


def _sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    if not url.startswith("sqlite"):
        return None
    name = make_url(url).database
    return Path(name).expanduser() if name else None


def _shown(url: str) -> str:
    """How the registry is named in pages and errors: a file's name, a server's database."""
    from sqlalchemy.engine import make_url

    file = _sqlite_file(url)
    if file is not None:
        return file.name
    try:
        return f"{make_url(url).get_backend_name()} database {make_url(url).database or ''}"
    except Exception:  # normalise_url accepted it; a name is only for the message
        return "the configured database"


def _scrub(message: str, db: str, url: str) -> str:
    """A library message without the server's folders or the URL (it may hold a password)."""
    from ioplan.registry import redact_url

    file = _sqlite_file(url)
    for text in (url, redact_url(url), db, *([str(file), str(file.resolve())] if file else [])):
        if text:
            message = message.replace(text, _shown(url))
    return " ".join(message.replace("--db ", "").split())


_lock = threading.Lock()
_reports: OrderedDict[Any, Any] = OrderedDict()


def _stamp(url: str) -> tuple | None:
    """What changes when a SQLite registry changes (None: not cached, e.g. PostgreSQL)."""
    file = _sqlite_file(url)
    if file is None:
        return None
    try:
        return tuple(
            (s.st_mtime_ns, s.st_size) if (s := _stat(p)) else None
            for p in (file, file.with_name(file.name + "-wal"))
        )
    except OSError:
        return None


def _stat(path: Path):
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _report(db: str, times: tuple[float, ...]):
    """:func:`ioplan.registry.outcome_report` of ``db`` (read only), or :class:`_NoRegistry`."""
    from sqlalchemy.exc import SQLAlchemyError

    from ioplan.registry import (
        RegistryError,
        count_patients,
        normalise_url,
        open_db,
        outcome_report,
        session_scope,
    )

    try:
        url = normalise_url(db)
    except InputError as exc:
        raise _NoRegistry(503, f"the registry setting is not usable: {exc}") from None
    stamp = _stamp(url)
    key = (url, times, stamp)
    if stamp is not None and stamp[0] is not None:
        with _lock:
            if key in _reports:
                _reports.move_to_end(key)
                return _reports[key]
    shown = _shown(url)
    file = _sqlite_file(url)
    try:
        with session_scope(open_db(db, create=False)) as session:
            held = count_patients(session)
        if not held:
            raise _NoRegistry(
                404,
                f"the registry {shown} holds no patient: import CSV files into it (ioplan "
                f"registry import FOLDER) or {_MAKE_ONE}",
            )
        result = outcome_report(db, times)
    except InputFileNotFoundError:
        raise _NoRegistry(404, f"no registry ({shown} does not exist): {_MAKE_ONE}") from None
    except (RegistryError, IoplanError, SQLAlchemyError) as exc:
        if file is not None and file.is_file() and file.stat().st_size == 0:
            raise _NoRegistry(404, f"the registry {shown} is empty: {_MAKE_ONE}") from None
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise _NoRegistry(503, _scrub(first, db, url)) from None
    if stamp is not None and stamp[0] is not None:
        with _lock:
            _reports[key] = result
            while len(_reports) > REPORTS_KEPT:
                _reports.popitem(last=False)
    return result


def _clean(value: Any) -> Any:
    """JSON for the web: NaN and infinities become null (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _api_report(request: Request, at_months: str):
    try:
        return _report(registry_db(request), _times(at_months))
    except _NoRegistry as exc:
        raise HTTPException(exc.status, str(exc)) from None


@router.get(
    "/api/registry/report",
    summary="Outcomes of the registry (`ioplan registry report --json`)",
    responses={404: {"description": "No registry, or an empty one"}},
)
def registry_report(request: Request, at_months: _AtMonths = _DEFAULT_TIMES) -> dict[str, Any]:
    """Technical success, technique efficacy, LTP, recurrence, survival, the Cox model.

    The keys of ``ioplan registry report --json`` (aggregates only: counts, rates with 95 %
    intervals, times in months); NaN is given as null.
    """
    return _clean(_api_report(request, at_months).to_dict())


@router.get(
    "/api/registry/curves",
    summary="Survival and cumulative incidence curves of the registry (step functions)",
    responses={404: {"description": "No registry, or an empty one"}},
)
def registry_curves(request: Request) -> dict[str, Any]:
    """Kaplan-Meier (overall, LTP-free) and Aalen-Johansen (LTP, distant) step functions.

    Times in months from treatment, values, 95 % bands, censoring times and the numbers at
    risk at the axis ticks: what the dashboard draws.
    """
    return _clean(curves_document(_api_report(request, _DEFAULT_TIMES)))


# -- the page ----------------------------------------------------------------------------------


def _pct(r: dict | None) -> str:
    if not r or r.get("estimate") is None:
        return "n/a"
    return f"{100 * r['estimate']:.1f} % ({100 * r['ci_low']:.1f}-{100 * r['ci_high']:.1f})"


def _frac(r: dict | None) -> str:
    return f"{r['successes']}/{r['n']}" if r and r.get("n") else "0/0"


def _num(value: float | None, unit: str = "") -> str:
    return "not reached" if value is None else f"{value:.1f}{unit}"


def _table(table_id: str, headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table id="{escape(table_id)}"><tr>{head}</tr>{body}</table>'


def _tables(s: dict) -> str:
    ts, te = s["technical_success"], s["technique_efficacy"]
    cohort = _table(
        "cohort",
        ["cohort", "value"],
        [
            ["patients (treated)", f"{s['patients']} ({s['treated_patients']})"],
            ["lesions (ablated)", f"{s['lesions']} ({s['ablated_lesions']})"],
            ["procedures", s["procedures"]],
            ["deaths", s.get("deaths", 0)],
            ["median follow-up (reverse KM)", _num(s.get("median_follow_up_months"), " months")],
            ["median overall survival", _num(s.get("median_survival_months"), " months")],
        ],
    )
    rates = _table(
        "technical-success",
        ["outcome", "per patient", "n", "per tumour", "n"],
        [
            [label, _pct(r["per_patient"]), _frac(r["per_patient"]),
             _pct(r["per_tumor"]), _frac(r["per_tumor"])]
            for label, r in (
                ("technical success", ts),
                ("primary technique efficacy", te["primary"]),
                ("secondary technique efficacy", te["secondary"]),
            )
        ],
    )  # fmt: skip
    times = [f"{t:g}" for t in s["at_months"]]
    timed = _table(
        "at-times",
        ["estimate (95 % CI), at risk", *[f"{t} months" for t in times]],
        [
            [label, *[f"{_pct(s[key].get(t))}, {s[key].get(t, {}).get('at_risk', 0)}"
                      for t in times]]
            for key, label in (
                ("survival", "overall survival"),
                ("ltp_free_survival", "LTP-free survival (per tumour)"),
                ("ltp_rate", "LTP cumulative incidence (per tumour)"),
                ("distant_recurrence_rate", "distant intrahepatic recurrence (per patient)"),
            )
            if s.get(key)
        ],
    )  # fmt: skip
    return (
        f"<h2>Cohort</h2>{cohort}<h2>Technical success and technique efficacy</h2>{rates}"
        f"<h2>Outcomes at {escape(', '.join(times))} months</h2>{timed}"
        f"<p>LTP: {s.get('ltp_events', 0)} events in {s.get('ltp_at_risk', 0)} tumours "
        "documented completely ablated (at risk).</p>"
    )


def _cox(s: dict) -> str:
    cox = s["cox_ltp"]
    if not cox.get("fitted"):
        return f'<p id="cox-ltp">Not fitted: {escape(str(cox.get("reason", "")))}</p>'
    rows = [
        [name, f"{t['hazard_ratio']:.2f}", f"{t['ci_low']:.2f}-{t['ci_high']:.2f}",
         f"{t['p']:.3f}", cox["units"].get(name, f"vs {cox.get('reference_modality')}")]
        for name, t in cox["terms"].items()
    ]  # fmt: skip
    return _table("cox-ltp", ["covariate", "hazard ratio", "95 % CI", "p", "unit"], rows) + (
        f"<p>{cox['n']} tumours, {cox['events']} LTP events, {cox['clusters']} patients "
        f"(clusters, robust errors); concordance {cox['concordance']:.2f}; "
        f"{escape(str(cox['hazard']))}.</p>"
    )


def _others(s: dict) -> str:
    modality = _table(
        "by-modality",
        ["modality", "lesions", "technical success", "n", "LTP events"],
        [
            [m, d["lesions"], _pct(d["technical_success"]), _frac(d["technical_success"]),
             d["ltp_events"]]
            for m, d in s["by_modality"].items()
        ],
    )  # fmt: skip
    comp = s["complications"]
    complications = _table(
        "complications",
        ["CIRSE grade", *comp["by_cirse_grade"]],
        [["complications", *comp["by_cirse_grade"].values()]],
    )
    notes = "".join(f"<li>{escape(str(n))}</li>" for n in s["notes"])
    defs = "".join(f"<li>{escape(k)}: {escape(str(v))}</li>" for k, v in s["definitions"].items())
    return (
        f"<h2>By modality</h2>{modality}<h2>Complications</h2>{complications}"
        f"<p>Major ({escape(comp['major_definition'])}): "
        f"{_pct(comp['major_per_procedure'])} of procedures.</p>"
        f"<h2>Notes</h2><ul id='notes'>{notes or '<li>none</li>'}</ul>"
        f"<h2>Definitions</h2><ul>{defs}</ul>"
    )


_STYLE = """<style>
main.registry{display:block;max-width:1500px}.registry .figs{display:flex;flex-wrap:wrap;gap:16px}
.registry figure{margin:0;background:#181818;padding:8px;border:1px solid #333}
.registry figcaption{font-size:13px;color:#bbb}.registry td,.registry th{font-size:13px}
.registry .cols{display:flex;flex-wrap:wrap;gap:24px}.registry input{width:120px}
</style>"""


def _figures() -> str:
    return (
        '<div class="figs"><figure id="survival-figure"><figcaption>Kaplan-Meier survival '
        "(95 % band; ticks: censored; numbers at risk under the axis)</figcaption>"
        '<div class="plot" id="survival-plot"></div></figure>'
        '<figure id="incidence-figure"><figcaption>Cumulative incidence, death as a competing '
        "event (Aalen-Johansen, 95 % band)</figcaption>"
        '<div class="plot" id="incidence-plot"></div></figure></div>'
        '<p id="plot-status"></p>'
    )


def _page_response(title: str, body: str, config: dict, status: int = 200) -> HTMLResponse:
    from ioplan.web._app import STATIC_DIR

    built = (STATIC_DIR / "registry.js").is_file()
    response = page(title, _STYLE + body, config, built, script="registry.js")
    response.status_code = status
    return response


@router.get("/registry", response_class=HTMLResponse, include_in_schema=False)
def registry_page(request: Request, at_months: _AtMonths = _DEFAULT_TIMES) -> HTMLResponse:
    """The dashboard: survival and incidence curves (drawn by ``registry.js``) and tables."""
    form = (
        '<form id="times" method="get" action="/registry">times (months): '
        f'<input name="at_months" value="{escape(at_months)}"> <button>update</button></form>'
    )
    try:
        report = _report(registry_db(request), _times(at_months))
    except (_NoRegistry, InputError) as exc:
        status = exc.status if isinstance(exc, _NoRegistry) else 400
        body = (
            f'<main class="registry"><h2>Registry outcomes</h2>{form}'
            f'<p class="note" id="registry-missing">{escape(str(exc))}</p></main>'
        )
        return _page_response("registry", body, {"page": "registry", "error": str(exc)},
                              status=200 if status == 404 else status)  # fmt: skip
    s = _clean(report.to_dict())
    body = (
        f'<main class="registry"><h2>Registry outcomes</h2>{form}'
        f"<p>{s['patients']} patients, {s['ablated_lesions']} ablated lesions; terms of "
        f"{escape(s['definitions']['source'])}. Times in months from the first ablation (per "
        "tumour) or the first therapeutic procedure (per patient). Synthetic or pseudonymised "
        f"data only; aggregates only.</p>{_figures()}"
        f'<div class="cols"><div>{_tables(s)}</div><div><h2>Cox model of local tumour '
        f"progression (per tumour)</h2>{_cox(s)}{_others(s)}</div></div></main>"
    )
    config = {"page": "registry", "curves": _clean(curves_document(report))}
    return _page_response("registry", body, config)
