"""``ioplan registry ...``: a thin command-line layer over :mod:`ioplan.registry`."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from ioplan.cli._common import _OVERWRITE, _QUIET, app, err_console
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


@contextmanager
def _import_errors(as_json: bool = False):
    """A refused import: ``error: ...`` with the count, then one problem per line; exit 2.

    With ``as_json`` the error is the one line on stderr, and the problems go to stdout as
    JSON (``error``, ``problems``, ``total_problems``) for a program to read.
    """
    from ioplan.registry import RegistryImportError

    try:
        yield
    except RegistryImportError as exc:
        err_console.print(f"error: {exc.summary}", markup=False, highlight=False, soft_wrap=True)
        if as_json:
            doc = {"error": exc.summary, "problems": [str(e) for e in exc.errors],
                   "total_problems": exc.total}  # fmt: skip
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        else:
            for line in exc.lines:
                err_console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@contextmanager
def _row_progress(quiet: bool):
    """Progress of an import on stderr (rows); off with --quiet or when stderr is no terminal."""
    if quiet or not err_console.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("reading", total=None)

        def advance(name: str, done: int, total: int) -> None:
            bar.update(task, description=name, completed=done, total=total)

        yield advance


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
    quiet: _QUIET = False,
) -> None:
    """Import CSV files (streamed, checked row by row; one transaction: all rows or none)."""
    from ioplan.registry import import_files

    with _import_errors(as_json), _row_progress(quiet) as progress:
        report = import_files(folder, db, progress=progress)
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
    overwrite: _OVERWRITE = False,
    as_json: _JSON = False,
) -> None:
    """Export the whole registry as CSV files (one per table, the import format)."""
    from ioplan.registry import export_files

    counts = export_files(folder, db, overwrite=overwrite)
    _out(
        {"folder": str(folder), "rows": counts},
        as_json,
        lambda d: f"exported {sum(counts.values())} rows to {folder}",
    )


@registry_app.command("report")
def report(
    db: _DB = None,
    out: Annotated[
        Path | None, typer.Option(help="Write report.html, report.json and figures here.")
    ] = None,
    as_json: _JSON = False,
    at_months: Annotated[
        str,
        typer.Option(
            help="Times for rates and survival, months (above 0, at most 240, comma-separated)."
        ),
    ] = "3,6,12",
    overwrite: _OVERWRITE = False,
) -> None:
    """Outcomes: technical success, technique efficacy, LTP, recurrence, survival, Cox model."""
    from ioplan.registry import outcome_report, parse_months

    result = outcome_report(db, parse_months(at_months), out=out, overwrite=overwrite)
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
    seed: Annotated[int, typer.Option(help="Random seed, 0 or more (same seed, same cohort).")] = 7,
    patients: Annotated[int, typer.Option(help="Number of patients, 1 to 100000.")] = 60,
    overwrite: _OVERWRITE = False,
    quiet: _QUIET = False,
) -> None:
    """Write a synthetic cohort as CSV files and import it into an empty registry."""
    from ioplan.registry import run_demo

    with _import_errors(), _row_progress(quiet) as progress:
        rep = run_demo(out, db, seed=seed, n_patients=patients, overwrite=overwrite,
                       progress=progress)  # fmt: skip
    total = rep.to_dict()["total"]
    _say(f"synthetic cohort (seed {seed}) written to {out} and imported: {total} rows")


@registry_app.command("link-margin")
def link_margin_cmd(
    procedure_key: Annotated[str, typer.Argument(help="Procedure key.")],
    lesion_key: Annotated[str, typer.Argument(help="Lesion key (treated in that procedure).")],
    margin_json: Annotated[Path, typer.Argument(help="margin.json written by ioplan margin.")],
    plan_json: Annotated[Path | None, typer.Option(help="plan.json of the procedure.")] = None,
    db: _DB = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace a margin already recorded for the lesion."),
    ] = False,
    as_json: _JSON = False,
) -> None:
    """Record an ioplan margin result (minimal margin, technical success) for a treated lesion."""
    from ioplan.registry import record_margin

    doc = record_margin(
        procedure_key, lesion_key, margin_json, plan_json, db=db, overwrite=overwrite
    )
    _out(
        doc,
        as_json,
        lambda d: (
            f"{lesion_key} in {procedure_key}: minimal margin "
            f"{d['minimal_margin_mm']:.2f} mm, technical success "
            f"{'yes' if d['technical_success'] else 'no'}"
        ),
    )


@registry_app.command("delete-patient")
def delete_patient(
    patient_key: Annotated[str, typer.Argument(help="Pseudonymous key of the patient.")],
    db: _DB = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a patient and everything linked to them (lesions, procedures, follow-ups, ...)."""
    from ioplan.registry import remove_patient

    def ask(what: str) -> bool:
        try:
            return typer.confirm(f"Delete {what}?", default=False)
        except typer.Abort:
            if sys.stdin.isatty():
                raise  # Ctrl-C at the prompt
            # no answer on a non-terminal input (end of file): refused, not taken as Ctrl-C
            raise InputError(f"deleting {what} needs a confirmation: answer at a terminal "
                             "or pass --yes") from None  # fmt: skip

    what = remove_patient(patient_key, db, confirm=None if yes else ask)
    if what is None:
        raise typer.Exit(1)
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
