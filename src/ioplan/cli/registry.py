"""``ioplan registry ...``: a thin command-line layer over :mod:`ioplan.registry`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ioplan.cli._common import app
from ioplan.errors import InputError

registry_app = typer.Typer(
    help="Registry of patients, lesions, procedures, follow-ups; outcome reports.",
    no_args_is_help=True,
)
app.add_typer(registry_app, name="registry")

_DB = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="IOPLAN_REGISTRY_DB",
        help="Database: a SQLite file path (default ioplan-registry.sqlite) or postgresql://...",
    ),
]
_JSON = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _say(text: str) -> None:
    typer.echo(text, err=False)


@registry_app.command("init")
def init(db: _DB = None) -> None:
    """Create the registry schema (or upgrade an older one) to the current revision."""
    from ioplan.registry import current_revision, init_db, normalise_url

    engine = init_db(db)
    _say(f"registry ready at revision {current_revision(engine)}: {_shown(normalise_url(db))}")


@registry_app.command("import")
def import_(
    folder: Annotated[Path, typer.Argument(help="Folder with patients.csv, lesions.csv, ...")],
    db: _DB = None,
    as_json: _JSON = False,
) -> None:
    """Import CSV files (validated whole; one transaction: all rows or none)."""
    from ioplan.registry import import_csv, open_db, session_scope

    engine = open_db(db)
    with session_scope(engine) as session:
        report = import_csv(session, folder)
    _out(
        report.to_dict(),
        as_json,
        lambda d: (
            f"imported {d['total']} rows: " + ", ".join(f"{k} {n}" for k, n in d["rows"].items())
        ),
    )


@registry_app.command("export")
def export(
    folder: Annotated[Path, typer.Argument(help="Folder to write the CSV files into.")],
    db: _DB = None,
    overwrite: Annotated[bool, typer.Option(help="Replace registry CSV files there.")] = False,
    as_json: _JSON = False,
) -> None:
    """Export the whole registry as CSV files (one per table, the import format)."""
    from ioplan.registry import export_csv, open_db, session_scope

    engine = open_db(db, create=False)
    with session_scope(engine) as session:
        counts = export_csv(session, folder, overwrite=overwrite)
    _out(
        {"folder": str(folder), "rows": counts},
        as_json,
        lambda d: f"exported {sum(counts.values())} rows to {folder}",
    )


def _parse_months(text: str) -> tuple[float, ...]:
    from ioplan.registry import check_times

    try:
        return tuple(check_times(float(x) for x in text.split(",") if x.strip()))
    except ValueError as exc:
        if "between" in str(exc):
            raise
        raise InputError(
            f"--at-months {text!r}: give months separated by commas, e.g. 3,6,12"
        ) from None


@registry_app.command("report")
def report(
    db: _DB = None,
    out: Annotated[
        Path | None, typer.Option(help="Write report.html, report.json and figures here.")
    ] = None,
    as_json: _JSON = False,
    at_months: Annotated[
        str, typer.Option(help="Times for rates and survival, months.")
    ] = "3,6,12",
    overwrite: Annotated[bool, typer.Option(help="Replace a report in --out.")] = False,
) -> None:
    """Outcomes: technical success, technique efficacy, LTP, recurrence, survival, Cox model."""
    from ioplan.registry import analyse, load_cohort, open_db, session_scope, write_report

    times = _parse_months(at_months)
    engine = open_db(db, create=False)
    with session_scope(engine) as session:
        cohort = load_cohort(session)
    if cohort.patients.empty:
        raise InputError(
            "the registry holds no patient: import data first (ioplan registry import)"
        )
    result = analyse(cohort, times)
    if out is not None:
        write_report(result, out, overwrite=overwrite)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    _print_summary(result.to_dict())
    if out is not None:
        _say(f"report: {out / 'report.html'}")


def _print_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    def pct(r):
        if not r or r.get("estimate") is None:
            return "n/a"
        return f"{100 * r['estimate']:.1f} % ({100 * r['ci_low']:.1f}-{100 * r['ci_high']:.1f})"

    t = Table(title=f"{s['patients']} patients, {s['ablated_lesions']} ablated lesions")
    t.add_column("outcome")
    t.add_column("per patient")
    t.add_column("per tumour")
    ts, te = s["technical_success"], s["technique_efficacy"]
    t.add_row("technical success", pct(ts["per_patient"]), pct(ts["per_tumor"]))
    t.add_row(
        "primary technique efficacy",
        pct(te["primary"]["per_patient"]),
        pct(te["primary"]["per_tumor"]),
    )
    for key, label in (
        ("ltp_rate", "LTP"),
        ("distant_recurrence_rate", "distant recurrence"),
        ("survival", "overall survival"),
    ):
        for m, r in s.get(key, {}).items():
            col = (pct(r), "") if key != "ltp_rate" else ("", pct(r))
            t.add_row(f"{label} at {m} months", *col)
    Console().print(t)
    for n in s["notes"]:
        typer.echo(f"note: {n}")


@registry_app.command("demo")
def demo(
    db: _DB = None,
    out: Annotated[Path, typer.Option(help="Folder for the cohort's CSV files.")] = Path(
        "ioplan-registry-demo"
    ),
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same cohort).")] = 7,
    patients: Annotated[int, typer.Option(help="Number of patients.")] = 60,
    overwrite: Annotated[bool, typer.Option(help="Replace CSV files in --out.")] = False,
) -> None:
    """Write a synthetic cohort as CSV files and import it into the registry."""
    import sqlalchemy as sa

    from ioplan.registry import Patient, import_csv, open_db, session_scope, write_demo_cohort

    engine = open_db(db)
    with session_scope(engine) as session:
        held = session.scalar(sa.select(sa.func.count()).select_from(Patient))
    if held:
        raise InputError(
            f"the registry already holds {held} patient(s); give the demo its own database "
            "(--db ioplan-demo.sqlite)"
        )
    write_demo_cohort(out, seed=seed, n_patients=patients, overwrite=overwrite)
    with session_scope(engine) as session:
        rep = import_csv(session, out)
    total = rep.to_dict()["total"]
    _say(f"synthetic cohort (seed {seed}) written to {out} and imported: {total} rows")


@registry_app.command("link-margin")
def link_margin_cmd(
    procedure_key: Annotated[str, typer.Argument(help="Procedure key.")],
    lesion_key: Annotated[str, typer.Argument(help="Lesion key (treated in that procedure).")],
    margin_json: Annotated[Path, typer.Argument(help="margin.json written by ioplan margin.")],
    plan_json: Annotated[Path | None, typer.Option(help="plan.json of the procedure.")] = None,
    db: _DB = None,
    as_json: _JSON = False,
) -> None:
    """Record an ioplan margin result (minimal margin, technical success) for a treated lesion."""
    from ioplan.registry import link_margin, open_db, session_scope

    engine = open_db(db, create=False)
    with session_scope(engine) as session:
        doc = link_margin(session, procedure_key, lesion_key, margin_json, plan_json)
    _out(
        doc,
        as_json,
        lambda d: (
            f"{lesion_key} in {procedure_key}: minimal margin "
            f"{d['minimal_margin_mm']:.2f} mm, technical success {d['technical_success']}"
        ),
    )


@registry_app.command("delete-patient")
def delete_patient(
    patient_key: Annotated[str, typer.Argument(help="Pseudonymous key of the patient.")],
    db: _DB = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a patient and everything linked to them (lesions, procedures, follow-ups, ...)."""
    import sqlalchemy as sa

    from ioplan.registry import Patient, open_db, session_scope

    engine = open_db(db, create=False)
    with session_scope(engine) as session:
        patient = session.scalar(sa.select(Patient).where(Patient.patient_key == patient_key))
        if patient is None:
            raise InputError(f"no patient {patient_key!r} in the registry")
        n = (len(patient.lesions), len(patient.procedures), len(patient.followups))
        what = (
            f"patient {patient_key} with {n[0]} lesion(s), {n[1]} procedure(s), {n[2]} follow-up(s)"
        )
        if not yes and not typer.confirm(f"Delete {what}?", default=False):
            raise typer.Exit(1)
        session.delete(patient)
    _say(f"deleted {what}")


@registry_app.command("columns")
def columns() -> None:
    """Print the documented CSV columns of every file (Markdown)."""
    from ioplan.registry import columns_markdown

    _say(columns_markdown())


def _shown(url: str) -> str:
    from ioplan.registry import redact_url

    return redact_url(url)


def _out(doc: dict, as_json: bool, line) -> None:
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _say(line(doc))
