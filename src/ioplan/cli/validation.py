"""``ioplan validate`` and ``calibrate``: published zones and device calibration."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ioplan.cli._common import (
    _OVERWRITE,
    _QUIET,
    _progress,
    app,
    console,
    err_console,
)
from ioplan.errors import InputError, OutputExistsError


@app.command()
def validate(
    table: Annotated[
        Path | None,
        typer.Option(help="Zone table CSV (mwa_zones.csv format); default: every catalogue chart."),
    ] = None,
    device: Annotated[list[str] | None, typer.Option(help="Only these devices (repeat).")] = None,
    rows: Annotated[
        int, typer.Option(help="Only the first N rows (0: all), e.g. a quick smoke run.")
    ] = 0,
    checks: Annotated[
        str | None,
        typer.Option(
            help="Instead of a table, the other published figures: cryo, rf, heat-sink or all "
            "(comma-separated)."
        ),
    ] = None,
    spacing_mm: Annotated[float, typer.Option("--spacing-mm", help="Voxel size in mm.")] = 1.0,
    initial_temperature_c: Annotated[
        float | None,
        typer.Option(help="Ex vivo start temperature of the block in degC (default: 20)."),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write an HTML report (plot + a picture per row) here.")
    ] = None,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: _QUIET = False,
) -> None:
    """Simulate every row of a published zone table and compare length and width."""
    from ioplan.devices import list_applicators
    from ioplan.imaging import check_output_folder
    from ioplan.report import write_validation_report
    from ioplan.validation import predict_zones, read_zone_table, rows_from_chart, summarise

    if not math.isfinite(spacing_mm) or not 0.25 <= spacing_mm <= 5.0:
        raise InputError(f"spacing_mm must be 0.25-5 mm, got {spacing_mm}")
    if rows < 0:
        raise InputError(f"--rows must be >= 0, got {rows}")
    if report is not None:
        check_output_folder(report, overwrite=overwrite)
    if checks is not None:
        _validate_checks(checks, spacing_mm, report, as_json, quiet)
        return
    if table is not None:
        todo = read_zone_table(table)
        title = f"ioplan validation: {table.name}"
    else:
        todo = [r for a in list_applicators() if a.zone_chart for r in rows_from_chart(a)]
        title = "ioplan validation: catalogue zone charts"
    if device:
        known = {r.device for r in todo}
        for d in device:
            if d not in known:
                raise InputError(f"--device {d}: no row of the table is for it")
        todo = [r for r in todo if r.device in set(device)]
    if rows:
        todo = todo[:rows]
    groups = len({(r.device, r.power_w) for r in todo})
    with _progress(groups, enabled=not quiet and not as_json) as advance:
        preds = predict_zones(
            todo,
            spacing_mm=spacing_mm,
            keep_sections=report is not None,
            initial_temperature_c=initial_temperature_c,
            progress=advance,
        )
        advance("done")
    doc = summarise(preds)
    if report is not None:
        index = write_validation_report(report, preds, doc, title=title)
        if not as_json:
            console.print(f"report written to [bold]{escape(str(index))}[/]")
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    t = Table(
        "device", "W", "s", "length", "predicted", "error", "width", "predicted", "error",
        title=f"predicted vs published zones ({spacing_mm:g} mm voxels, ex vivo block)",
    )  # fmt: skip
    for p in preds:
        el, ew = p.errors_mm
        r = p.row
        t.add_row(
            r.device, f"{r.power_w:g}", f"{r.duration_s:g}", f"{r.length_mm:g}",
            f"{p.predicted_length_mm:.1f}", f"{el:+.1f}", f"{r.width_mm:g}",
            f"{p.predicted_width_mm:.1f}", f"{ew:+.1f}",
        )  # fmt: skip
    console.print(t)
    console.print(
        f"mean |error| {doc['mean_abs_error_mm']:.2f} mm, max {doc['max_abs_error_mm']:.2f} mm "
        f"(length and width, {doc['n_rows']} rows); mean error: length "
        f"{doc['length_mean_error_mm']:+.2f} mm, width {doc['width_mean_error_mm']:+.2f} mm"
    )


def _validate_checks(
    names: str, spacing_mm: float, report: Path | None, as_json: bool, quiet: bool
) -> None:
    from ioplan.validation import CHECKS, run_checks

    wanted = list(CHECKS) if names.strip() == "all" else [n.strip() for n in names.split(",")]
    for n in wanted:
        if n not in CHECKS:
            raise InputError(f"--checks: unknown {n!r}; known: {', '.join(CHECKS)}, all")
    log = None if (quiet or as_json) else (lambda m: err_console.print(m, markup=False))
    results = run_checks(wanted, spacing_mm=spacing_mm, log=log)
    doc = {
        "checks": [r.to_dict() for r in results],
        "met": sum(r.met for r in results),
        "total": len(results),
        "spacing_mm": spacing_mm,
    }
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
        (report / "checks.json").write_text(json.dumps(doc, indent=2) + "\n")
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    t = Table("check", "measured", "published", "unit", "goal", "met", title="published figures")
    for r in results:
        t.add_row(
            r.name, f"{r.measured:.2f}", f"{r.reference:g}", r.unit, r.goal,
            "yes" if r.met else "NO",
        )  # fmt: skip
    console.print(t)
    console.print(f"{doc['met']} of {doc['total']} goals met ({spacing_mm:g} mm voxels)")


@app.command()
def calibrate(
    device: Annotated[str, typer.Argument(help="Microwave applicator id with a zone chart.")],
    table: Annotated[
        Path | None, typer.Option(help="Fit to this zone table's rows instead of the chart.")
    ] = None,
    spacing_mm: Annotated[float, typer.Option("--spacing-mm", help="Voxel size in mm.")] = 2.0,
    max_evaluations: Annotated[int, typer.Option(help="Most model evaluations.")] = 60,
    initial_temperature_c: Annotated[
        float | None,
        typer.Option(help="Ex vivo start temperature of the block in degC (default: 20)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Calibration TOML to update (default: the package's calibration.toml)."),
    ] = None,
    overwrite: _OVERWRITE = False,
    quiet: _QUIET = False,
) -> None:
    """Fit an antenna's efficiency and SAR shape to its published zones (run once, stored)."""
    from importlib import resources

    from ioplan.devices import applicator as get_applicator
    from ioplan.devices import calibration_record
    from ioplan.validation import (
        calibrate_microwave,
        read_zone_table,
        rows_from_chart,
        write_calibration,
    )

    app_obj = get_applicator(device)
    if max_evaluations < 1:
        raise InputError(f"--max-evaluations must be >= 1, got {max_evaluations}")
    target = output
    if target is None:
        target = Path(str(resources.files("ioplan.devices").joinpath("data/calibration.toml")))
    existing = calibration_record(device) if output is None else None
    if output is not None and output.exists():
        import tomllib

        try:
            existing = tomllib.loads(output.read_text()).get(device)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{output}: not a TOML file ({exc})") from None
    if existing is not None and not overwrite:
        raise OutputExistsError(
            f"{target} already holds a calibration of {device}; pass --overwrite to replace it"
        )
    if app_obj.modality == "cryo":
        _calibrate_cryo(app_obj, target, spacing_mm, quiet)
        return
    fit_rows = read_zone_table(table) if table is not None else rows_from_chart(app_obj)
    result = calibrate_microwave(
        app_obj,
        fit_rows,
        spacing_mm=spacing_mm,
        max_evaluations=max_evaluations,
        initial_temperature_c=initial_temperature_c,
        log=None if quiet else (lambda m: console.print(m, markup=False, highlight=False)),
    )
    command = f"ioplan calibrate {device} --spacing-mm {spacing_mm:g}"
    write_calibration(target, device, result.record(command))
    vals = ", ".join(f"{k} {v:.4g}" for k, v in result.values.items())
    console.print(
        f"{device}: {vals}; mean |error| {result.summary['mean_abs_error_mm']} mm, "
        f"max {result.summary['max_abs_error_mm']} mm at {spacing_mm:g} mm "
        f"({result.evaluations} evaluations); written to {escape(str(target))}"
    )


def _calibrate_cryo(app_obj, target: Path, spacing_mm: float, quiet: bool) -> None:
    """Fit a cryoprobe's temperature to Littrup 2009's lethal-ice diameter."""
    import datetime

    from ioplan.validation import (
        LITTRUP_DIAMETER_MM,
        LITTRUP_SMALL_PROBE_RATIO,
        calibrate_cryo_probe,
        write_calibration,
    )

    # 2.4 mm probes: 12 mm; 1.5-1.7 mm probes: 84 % of that (same paper)
    goal = LITTRUP_DIAMETER_MM[1] * (
        1.0 if app_obj.diameter_mm >= 2.0 else LITTRUP_SMALL_PROBE_RATIO
    )
    t, d = calibrate_cryo_probe(
        app_obj,
        goal,
        spacing_mm=spacing_mm,
        log=None if quiet else (lambda m: console.print(m, markup=False, highlight=False)),
    )
    rec = {
        "probe_temperature_c": round(t, 2),
        "rows": 1,
        "spacing_mm": spacing_mm,
        "target": f"lethal (-30 degC) diameter {goal:.1f} mm after 15 min in 39 degC agar "
        "(Littrup et al., JVIR 2009, PMC2762356)",
        "mean_abs_error_mm": round(abs(d - goal), 2),
        "max_abs_error_mm": round(abs(d - goal), 2),
        "command": f"ioplan calibrate {app_obj.id} --spacing-mm {spacing_mm:g}",
        "date": datetime.date.today().isoformat(),
    }
    write_calibration(target, app_obj.id, rec)
    console.print(
        f"{app_obj.id}: probe temperature {t:.1f} degC gives {d:.2f} mm (goal {goal:.1f} mm); "
        f"written to {escape(str(target))}"
    )
