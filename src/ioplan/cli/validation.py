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
from ioplan.errors import InputError

# The ranges are the engine's (ioplan.physics.SimulationConfig): stated here, checked first.
_SPACING_RANGE_MM = (0.25, 5.0)
_INITIAL_TEMPERATURE_RANGE_C = (0.0, 45.0)
_MAX_EVALUATIONS = 1000
_VALIDATE_SPACING = Annotated[
    float,
    typer.Option(
        "--spacing-mm",
        help="Voxel size of the simulated block in mm, 0.25-5 (finer is slower: about 8 min "
        "for every chart row at 1 mm).",
    ),
]
_ERROR_NORM = Annotated[
    int | None,
    typer.Option(
        help="What a microwave fit minimises: the sum of |error|^N over the rows' lengths, "
        "widths and half-weighted centre offsets, N one of 2 (least squares), 4, 8, 16; "
        "default the calibration's own (ioplan.validation.DEFAULT_ERROR_NORM: 2).",
    ),
]
_ERROR_BOUND_HELP = (
    "a soft bound (mm) on the fit's largest error: each error's excess over it counts 100 "
    "times an error's own square; 0 for none; default the calibration's own "
    "(ioplan.validation.DEFAULT_ERROR_BOUND_MM: 3.8 mm, the acceptance bounds the largest "
    "error at 4 mm)."
)
_FIX_HELP = (
    "hold this parameter of the lumped model at its start value instead of fitting it "
    "(repeat for several; e.g. feed_offset_mm, which the rows do not separate from "
    "axial_sigma_forward_mm: --identifiability)."
)
_INITIAL_TEMPERATURE = Annotated[
    float | None,
    typer.Option(help="Ex vivo start temperature of the block in degC, 0-45 (default: 20)."),
]


def _check_block_options(spacing_mm: float, initial_temperature_c: float | None) -> None:
    """The ex vivo block's options, checked before any table is read or model run."""
    lo, hi = _SPACING_RANGE_MM
    if not math.isfinite(spacing_mm) or not lo <= spacing_mm <= hi:
        raise InputError(f"--spacing-mm must be {lo:g}-{hi:g} mm, got {spacing_mm:g}")
    lo, hi = _INITIAL_TEMPERATURE_RANGE_C
    t0 = initial_temperature_c
    if t0 is not None and (not math.isfinite(t0) or not lo <= t0 <= hi):
        raise InputError(f"--initial-temperature-c must be {lo:g}-{hi:g} degC, got {t0:g}")


@app.command()
def validate(
    table: Annotated[
        Path | None,
        typer.Option(
            help="Zone table CSV (UTF-8) with the columns device, frequency_mhz, power_w, "
            "duration_s, length_mm, width_mm (optional centre_offset_mm, basis, source), such "
            "as mwa_zones.csv in ../shared/validation/ where the shared data are present. "
            "Default: the zone charts packaged with the applicator catalogue."
        ),
    ] = None,
    device: Annotated[list[str] | None, typer.Option(help="Only these devices (repeat).")] = None,
    rows: Annotated[
        int, typer.Option(help="Only the first N rows (>= 0; 0: all), e.g. a quick smoke run.")
    ] = 0,
    checks: Annotated[
        str | None,
        typer.Option(
            help="Instead of a table, the other published figures: cryo, rf, rf-vessel, "
            "heat-sink, clinical (in vivo liver vs patients) or all "
            "(comma-separated)."
        ),
    ] = None,
    spacing_mm: _VALIDATE_SPACING = 1.0,
    initial_temperature_c: _INITIAL_TEMPERATURE = None,
    report: Annotated[
        Path | None, typer.Option(help="Write an HTML report (plot + a picture per row) here.")
    ] = None,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: _QUIET = False,
    cross_validate: Annotated[
        bool,
        typer.Option(
            "--cross-validate",
            help="Instead: leave-one-setting-out cross-validation of each microwave device's "
            "calibration (fit on the other settings at --cv-fit-spacing-mm, predict the "
            "held-out rows at --spacing-mm).",
        ),
    ] = False,
    max_evaluations: Annotated[
        int,
        typer.Option(help="With --cross-validate: model evaluations per fold's fit, 1-1000."),
    ] = 20,
    cv_start: Annotated[
        str,
        typer.Option(
            help="With --cross-validate: where each fold's fit starts, 'calibration' (the "
            "device's current fit, which saw the held-out rows too) or 'generic' (bound "
            "centres and the training rows' mean centre offset; lumped model only).",
        ),
    ] = "calibration",
    cv_hold: Annotated[
        str,
        typer.Option(
            help="With --cross-validate: what each fold holds out, 'setting' (one power and "
            "duration), 'power' (every duration of one power: a power the fit never saw) or "
            "'duration' (every power at one duration).",
        ),
    ] = "setting",
    cv_fit_spacing_mm: Annotated[
        float,
        typer.Option(
            help="With --cross-validate: voxel size (mm) of each fold's fit; default 1 mm, the "
            "voxel the calibration is made at (calibration.toml spacing_mm).",
        ),
    ] = 1.0,
    cv_error_norm: Annotated[
        int | None,
        typer.Option(
            help="With --cross-validate: what each fold's fit minimises, the sum of "
            "|error|^N (N one of 2, 4, 8, 16); default the calibration's own.",
        ),
    ] = None,
    cv_error_bound_mm: Annotated[
        float | None,
        typer.Option("--cv-error-bound-mm", help="With --cross-validate: " + _ERROR_BOUND_HELP),
    ] = None,
    cv_fix: Annotated[
        list[str] | None,
        typer.Option("--cv-fix", help="With --cross-validate: " + _FIX_HELP),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="With --cross-validate: append each finished fold to this file (JSON lines) "
            "and reuse the folds already in it with the same rows, start values and settings, "
            "so that an interrupted run continues where it stopped.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="With --cross-validate: fit the folds at once on a local Dask cluster of this "
            "many worker processes, 1-1024 (default: one fold after another here)."
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="With --cross-validate: fit the folds on a running Dask scheduler "
            "(tcp://host:port)."
        ),
    ] = None,
    organs: Annotated[
        bool,
        typer.Option(
            "--organs",
            help="Instead: the published lung, kidney and liver zones (organ_zones.csv) against "
            "the engine in blocks of those organs, uncalibrated for them; --report FOLDER writes "
            "summary.txt and organ_zones.json.",
        ),
    ] = False,
) -> None:
    """Simulate every row of a published zone table and compare length and width."""
    from ioplan.devices import list_applicators
    from ioplan.imaging import check_mergeable
    from ioplan.report import write_validation_report
    from ioplan.validation import (
        predict_zones,
        read_zone_table,
        rows_from_chart,
        scaling_rows,
        summarise,
    )

    _check_block_options(spacing_mm, initial_temperature_c)
    _refuse_unused(checks=checks is not None, organs=organs, cross_validate=cross_validate,
                   given={"--table": table is not None, "--device": bool(device),
                          "--rows": rows != 0,
                          "--initial-temperature-c": initial_temperature_c is not None,
                          "--report": report is not None,
                          "--max-evaluations": max_evaluations != 20,
                          "--cv-start": cv_start != "calibration",
                          "--cv-hold": cv_hold != "setting",
                          "--cv-fit-spacing-mm": cv_fit_spacing_mm != 1.0,
                          "--cv-error-norm": cv_error_norm is not None,
                          "--cv-error-bound-mm": cv_error_bound_mm is not None,
                          "--cv-fix": bool(cv_fix),
                          "--checkpoint": checkpoint is not None,
                          "--workers": workers is not None,
                          "--scheduler": scheduler is not None})  # fmt: skip
    if rows < 0:
        raise InputError(f"--rows must be >= 0, got {rows}")
    if report is not None:
        # --overwrite replaces an earlier report of the same kind, never another output
        own = ("checks.json" if checks is not None else "organ_zones.json" if organs
               else "validation.json")  # fmt: skip
        check_mergeable(report, command="validate", own_json=own, overwrite=overwrite)
    if checks is not None:
        _validate_checks(checks, spacing_mm, report, as_json, quiet)
        return
    if organs:
        _validate_organs(spacing_mm, rows, report, as_json, quiet)
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
    if cross_validate:
        _cross_validate(todo, spacing_mm, initial_temperature_c, max_evaluations, as_json, quiet,
                        cv_start, cv_hold, workers, scheduler, cv_fit_spacing_mm,
                        checkpoint, cv_error_norm, cv_error_bound_mm, cv_fix)  # fmt: skip
        return
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
        "absorbed %", "Tmax degC",
        title=f"predicted vs published zones ({spacing_mm:g} mm voxels, ex vivo block)",
        caption="absorbed: the tissue's share of the generator's power x time; Tmax: the "
        "highest tissue temperature by then",
    )  # fmt: skip
    for p in preds:
        el, ew = p.errors_mm
        r = p.row
        t.add_row(
            r.device, f"{r.power_w:g}", f"{r.duration_s:g}", f"{r.length_mm:g}",
            f"{p.predicted_length_mm:.1f}", f"{el:+.1f}", f"{r.width_mm:g}",
            f"{p.predicted_width_mm:.1f}", f"{ew:+.1f}",
            f"{100 * p.energy_absorbed_j / (r.power_w * r.duration_s):.0f}",
            f"{p.max_temperature_c:.0f}",
        )  # fmt: skip
    console.print(t)
    console.print(
        f"mean |error| {doc['mean_abs_error_mm']:.2f} mm, max {doc['max_abs_error_mm']:.2f} mm "
        f"(length and width, {doc['n_rows']} rows); mean error: length "
        f"{doc['length_mean_error_mm']:+.2f} mm, width {doc['width_mean_error_mm']:+.2f} mm"
    )
    rows = scaling_rows(doc["size_scaling"])
    if rows:
        sc = Table("device", "size", "published P^a t^b", "predicted P^a t^b",
                   "published scatter mm",
                   title="growth with power and time (least squares on ln size)",
                   caption="scatter: the largest departure of the published sizes from their own "
                   "power law (three parameters per size and device)")  # fmt: skip
        for r in rows:
            sc.add_row(*r)
        console.print(sc)


#: The options each of validate's modes reads (the rest would be silently ignored).
_MODE_OPTIONS = {
    "--checks": {"--report"},
    "--organs": {"--rows", "--report"},
    "--cross-validate": {"--table", "--device", "--rows", "--initial-temperature-c",
                         "--max-evaluations", "--cv-start", "--cv-hold", "--workers",
                         "--scheduler", "--cv-fit-spacing-mm", "--checkpoint",
                         "--cv-error-norm", "--cv-error-bound-mm", "--cv-fix"},
    "": {"--table", "--device", "--rows", "--initial-temperature-c", "--report"},
}


def _refuse_unused(*, checks: bool, organs: bool, cross_validate: bool,
                   given: dict[str, bool]) -> None:  # fmt: skip
    """One mode at a time, and no option that the chosen mode would ignore."""
    modes = [m for m, on in (("--checks", checks), ("--organs", organs),
                             ("--cross-validate", cross_validate)) if on]  # fmt: skip
    if len(modes) > 1:
        raise InputError(f"{' and '.join(modes)} are separate runs: choose one")
    mode = modes[0] if modes else ""
    unused = [o for o, on in given.items() if on and o not in _MODE_OPTIONS[mode]]
    if unused:
        what = f"with {mode}" if mode else "without --cross-validate"
        raise InputError(f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used "
                         f"{what}: leave {'it' if len(unused) == 1 else 'them'} out")  # fmt: skip


def _cross_validate(todo, spacing_mm, initial_temperature_c, max_evaluations, as_json, quiet,
                    start="calibration", hold="setting", workers=None, scheduler=None,
                    fit_spacing_mm=1.0, checkpoint=None, error_norm=None,
                    error_bound_mm=None, fix=None):  # fmt: skip
    from contextlib import nullcontext

    from ioplan.batch import check_cluster_options, dask_client, run_tasks
    from ioplan.devices import applicator
    from ioplan.validation import CV_HOLDS, CV_STARTS, cross_validate

    if start not in CV_STARTS:
        raise InputError(f"--cv-start must be one of {', '.join(CV_STARTS)}, got {start!r}")
    if hold not in CV_HOLDS:
        raise InputError(f"--cv-hold must be one of {', '.join(CV_HOLDS)}, got {hold!r}")
    lo, hi = _SPACING_RANGE_MM
    if not math.isfinite(fit_spacing_mm) or not lo <= fit_spacing_mm <= hi:
        raise InputError(f"--cv-fit-spacing-mm must be {lo:g}-{hi:g} mm, got {fit_spacing_mm:g}")
    if not 1 <= max_evaluations <= _MAX_EVALUATIONS:
        raise InputError(f"--max-evaluations must be 1-{_MAX_EVALUATIONS}, got {max_evaluations}")
    scheduler = check_cluster_options(workers, scheduler)
    norm = _check_error_norm(error_norm)
    bound = _check_error_bound(error_bound_mm, "--cv-error-bound-mm")
    fixed = _check_fix(fix, "--cv-fix")
    if checkpoint is not None:
        from ioplan.validation import read_cv_checkpoint

        read_cv_checkpoint(checkpoint)  # a file that is not one is refused before any fit
    todo = [r for r in todo if applicator(r.device).modality == "mw"]
    if not todo:
        raise InputError("--cross-validate: no microwave rows in the table")
    log = None if (quiet or as_json) else (lambda m: err_console.print(m, markup=False))
    on_cluster = workers is not None or scheduler is not None
    with dask_client(scheduler, workers=workers) if on_cluster else nullcontext() as client:

        def on_cluster_map(fn, shared, items, on_result=None):
            done = (lambda k, n: log(f"fold {k}/{n} done")) if log else None
            return run_tasks(client, fn, items, shared=shared, progress=done,
                             on_result=on_result)  # fmt: skip

        doc = cross_validate(
            todo,
            spacing_mm=spacing_mm,
            fit_spacing_mm=fit_spacing_mm,
            max_evaluations=max_evaluations,
            checkpoint=checkpoint,
            initial_temperature_c=initial_temperature_c,
            error_norm=norm,
            error_bound_mm=bound,
            fixed=fixed,
            start=start,
            hold=hold,
            progress=log,
            map_folds=on_cluster_map if on_cluster else None,
        )
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    t = Table("device", "W", "s", "training rows", "held-out errors (length, width mm)",
              title=f"leave-one-{hold}-out cross-validation")  # fmt: skip
    for f in doc["folds"]:
        errs = f.get("skipped") or ", ".join(
            f"{e['length']:+.1f}/{e['width']:+.1f}" for e in f["held_out_errors_mm"]
        )
        t.add_row(f["device"], "all" if f["power_w"] is None else f"{f['power_w']:g}",
                  "all" if f["duration_s"] is None else f"{f['duration_s']:g}",
                  str(f["training_rows"]), errs)  # fmt: skip
    console.print(t)
    console.print(
        f"held-out mean |error| {doc['mean_abs_error_mm']:.2f} mm, max "
        f"{doc['max_abs_error_mm']:.2f} mm ({doc['n_rows']} rows; {doc['skipped']} "
        f"{'settings' if hold == 'setting' else 'folds'} skipped)"
    )


def _validate_organs(
    spacing_mm: float, rows: int, report: Path | None, as_json: bool, quiet: bool
) -> None:
    from ioplan.validation import organ_zone_lines, predict_organ_zones, write_organ_zone_report

    log = None if (quiet or as_json) else (lambda m: err_console.print(m, markup=False))
    doc = predict_organ_zones(spacing_mm=spacing_mm, rows=rows, log=log)
    if report is not None:
        paths = write_organ_zone_report(doc, report)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    sys.stdout.write("\n".join(organ_zone_lines(doc)) + "\n")
    if report is not None:
        console.print(f"report written to [bold]{escape(str(paths[0]))}[/]")


def _validate_checks(
    names: str, spacing_mm: float, report: Path | None, as_json: bool, quiet: bool
) -> None:
    from ioplan.validation import CHECKS, run_checks

    wanted = list(CHECKS) if names.strip() == "all" else [n.strip() for n in names.split(",")]
    wanted = list(dict.fromkeys(wanted))  # a check named twice runs once
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
        Path | None,
        typer.Option(
            help="Fit to this zone table's rows (CSV, the columns of `ioplan validate --table`) "
            "instead of the packaged chart."
        ),
    ] = None,
    spacing_mm: Annotated[
        float, typer.Option("--spacing-mm", help="Voxel size in mm, 0.25-5.")
    ] = 2.0,
    max_evaluations: Annotated[
        int, typer.Option(help=f"Most model evaluations, 1-{_MAX_EVALUATIONS}.")
    ] = 60,
    initial_temperature_c: _INITIAL_TEMPERATURE = None,
    error_norm: _ERROR_NORM = None,
    error_bound_mm: Annotated[
        float | None, typer.Option("--error-bound-mm", help="What a microwave fit adds: "
                                   + _ERROR_BOUND_HELP)
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Calibration TOML to write or update (other devices' records are kept). "
            "Default: ./calibration-DEVICE.toml in the current folder; the installed package's "
            "devices/data/calibration.toml, which the catalogue reads, changes only when "
            "--output names it."
        ),
    ] = None,
    overwrite: _OVERWRITE = False,
    identifiability: Annotated[
        bool,
        typer.Option(
            "--identifiability",
            help="Fit nothing, write nothing: how well the rows determine each parameter of "
            "the antenna's current calibration (sensitivity, approximate 95 % intervals, "
            "correlations; 2 x parameters + 1 model runs).",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --identifiability: print JSON.")
    ] = False,
    fix: Annotated[
        list[str] | None, typer.Option("--fix", help="What a microwave fit adds: " + _FIX_HELP)
    ] = None,
    quiet: _QUIET = False,
) -> None:
    """Fit an antenna to its published zones, a cryoprobe to Littrup 2009 (run once, stored).

    Microwave antennas: the source model's parameters; cryoprobes: the cooling power per probe.
    """
    from ioplan.devices import applicator as get_applicator
    from ioplan.validation import (
        calibrate_microwave,
        check_calibration_output,
        default_calibration_path,
        read_zone_table,
        rows_from_chart,
        write_calibration,
    )

    _check_block_options(spacing_mm, initial_temperature_c)
    if not 1 <= max_evaluations <= _MAX_EVALUATIONS:
        raise InputError(f"--max-evaluations must be 1-{_MAX_EVALUATIONS}, got {max_evaluations}")
    if as_json and not identifiability:
        raise InputError("--json is for --identifiability; a fit prints its result and writes "
                         "the calibration file")  # fmt: skip
    app_obj = get_applicator(device)
    if identifiability:
        for given, name in ((output, "--output"), (error_norm, "--error-norm"),
                            (error_bound_mm, "--error-bound-mm"),
                            (fix or None, "--fix")):  # fmt: skip
            if given is not None:
                raise InputError(f"--identifiability fits nothing and writes nothing; drop {name}")
        if app_obj.modality != "mw":
            raise InputError(f"--identifiability is for microwave antennas; {device} is "
                             f"{app_obj.modality}")  # fmt: skip
        rows = read_zone_table(table) if table is not None else rows_from_chart(app_obj)
        _identifiability(app_obj, rows, spacing_mm, initial_temperature_c, as_json, quiet)
        return
    target = check_calibration_output(
        output if output is not None else default_calibration_path(device),
        device,
        overwrite=overwrite,
    )
    if app_obj.modality == "cryo":
        if table is not None:
            raise InputError("--table holds microwave zones; a cryoprobe is fitted to Littrup 2009")
        if error_norm is not None:
            raise InputError("--error-norm is for microwave fits; a cryoprobe fits one power")
        if error_bound_mm is not None:
            raise InputError("--error-bound-mm is for microwave fits; a cryoprobe fits one power")
        if fix:
            raise InputError("--fix is for microwave fits; a cryoprobe fits one power")
        _calibrate_cryo(app_obj, target, spacing_mm, quiet)
        return
    fit_rows = read_zone_table(table) if table is not None else rows_from_chart(app_obj)
    norm = _check_error_norm(error_norm)
    bound = _check_error_bound(error_bound_mm, "--error-bound-mm")
    fixed = _check_fix(fix, "--fix")
    result = calibrate_microwave(
        app_obj,
        fit_rows,
        spacing_mm=spacing_mm,
        max_evaluations=max_evaluations,
        initial_temperature_c=initial_temperature_c,
        error_norm=norm,
        error_bound_mm=bound,
        fixed=fixed,
        log=None if quiet else (lambda m: console.print(m, markup=False, highlight=False)),
    )
    command = (f"ioplan calibrate {device} --spacing-mm {spacing_mm:g} --error-norm {norm} "
               f"--error-bound-mm {0 if bound is None else bound:g}"
               + "".join(f" --fix {k}" for k in fixed))  # fmt: skip
    write_calibration(target, device, result.record(command))
    vals = ", ".join(f"{k} {v:.4g}" for k, v in result.values.items())
    console.print(
        f"{device}: {vals}; mean |error| {result.summary['mean_abs_error_mm']} mm, "
        f"max {result.summary['max_abs_error_mm']} mm at {spacing_mm:g} mm "
        f"({result.evaluations} evaluations)",
        markup=False,
        highlight=False,
    )
    _print_where(target, device)


def _identifiability(app_obj, rows, spacing_mm, initial_temperature_c, as_json, quiet) -> None:
    """Print how well ``rows`` determine the antenna's calibrated parameters."""
    from ioplan.devices import calibration_record
    from ioplan.validation import IDENTIFIED_FACTOR, parameter_identifiability

    # what the stored fit held is not estimated from the rows: left out
    held = tuple((calibration_record(app_obj.id) or {}).get("fixed_parameters", ()))
    if app_obj.mw_model == "field":
        held = ()
    res = parameter_identifiability(
        app_obj, rows, spacing_mm=spacing_mm, initial_temperature_c=initial_temperature_c,
        fixed=held,
        log=None if quiet or as_json else (
            lambda m: console.print(m, markup=False, highlight=False)),
    )  # fmt: skip
    doc = res.to_dict()
    doc["held_parameters"] = {k: round(float(getattr(app_obj, k)), 4) for k in held}
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    t = Table(title=f"{app_obj.id}: identifiability at {spacing_mm:g} mm ({res.rows} rows)")
    t.add_column("parameter", no_wrap=True)
    for c in ("value", "95 % interval", "identified", "mm per +10 %"):
        t.add_column(c)
    for name, p in doc["parameters"].items():
        lo, hi = p["interval_95"]
        span = "unbounded" if hi is None else f"{lo:.3g}-{hi:.3g}"
        t.add_row(name, f"{p['value']:.4g}", span, "yes" if p["identified"] else "NO",
                  f"{p['sensitivity_mm_per_10_percent']:.2f}")  # fmt: skip
    console.print(t)
    names = list(doc["parameters"])
    strong = [
        f"{a} / {b} {doc['correlation'][a][b]:+.2f}"
        for i, a in enumerate(names) for b in names[i + 1:]
        if doc["correlation"][a][b] is not None and abs(doc["correlation"][a][b]) >= 0.9
    ]
    console.print(
        f"residual SD {doc['residual_sd_mm']} mm; condition number {doc['condition_number']}; "
        f"identified: 95 % interval within a factor {IDENTIFIED_FACTOR:g} of the value; "
        f"correlations of 0.9 or more: {', '.join(strong) if strong else 'none'}"
        + "".join(f"; held, not fitted: {k} {v:g}" for k, v in doc["held_parameters"].items()),
        markup=False, highlight=False,
    )  # fmt: skip


def _check_fix(fix: list[str] | None, option: str) -> tuple[str, ...]:
    """The parameters a fit holds at their start values (each a lumped model parameter)."""
    from ioplan.validation import MW_PARAMETERS

    names = tuple(dict.fromkeys(fix or ()))
    unknown = [k for k in names if k not in MW_PARAMETERS]
    if unknown:
        raise InputError(f"{option} {unknown[0]}: not a fitted parameter (one of "
                         f"{', '.join(MW_PARAMETERS)})")  # fmt: skip
    if len(names) >= len(MW_PARAMETERS):
        raise InputError(f"{option}: every parameter is fixed, nothing is left to fit")
    return names


def _check_error_norm(error_norm: int | None) -> int:
    """The fit's norm: the given one if allowed, else the calibration's default."""
    from ioplan.validation import DEFAULT_ERROR_NORM, ERROR_NORMS

    if error_norm is None:
        return DEFAULT_ERROR_NORM
    if error_norm not in ERROR_NORMS:
        allowed = ", ".join(str(n) for n in ERROR_NORMS)
        raise InputError(f"--error-norm must be one of {allowed}, got {error_norm}")
    return error_norm


def _check_error_bound(bound_mm: float | None, option: str) -> float | None:
    """The fit's soft bound (mm): the given one (0: none), else the calibration's default."""
    from ioplan.validation import DEFAULT_ERROR_BOUND_MM

    if bound_mm is None:
        return DEFAULT_ERROR_BOUND_MM
    if not math.isfinite(bound_mm) or bound_mm < 0:
        raise InputError(f"{option} must be 0 (none) or a positive number of mm, got {bound_mm:g}")
    return None if bound_mm == 0 else float(bound_mm)


def _print_where(target: Path, device: str) -> None:
    """Where the record went, and how the catalogue comes to use it (paths on their own line)."""
    from importlib import resources

    package_file = Path(str(resources.files("ioplan.devices").joinpath("data/calibration.toml")))
    typer.echo(f"written to {target}")
    if target.resolve() != package_file.resolve():
        typer.echo(
            f"the catalogue reads {package_file}: to use this fit, copy the [{device}] table "
            "there, or run again with --output naming that file (and --overwrite)"
        )


def _calibrate_cryo(app_obj, target: Path, spacing_mm: float, quiet: bool) -> None:
    """Fit a cryoprobe's cooling power (W per probe) to Littrup 2009's lethal-ice diameter.

    The engine's cryoprobe is limited by its gas's cooling power above a temperature floor
    (the catalogue's ``probe_temperature_c``, argon's boiling point): the power is the one
    fitted number; the floor is kept and written beside it.
    """
    import datetime

    from ioplan.validation import (
        LITTRUP_DIAMETER_MM,
        LITTRUP_SMALL_PROBE_RATIO,
        calibrate_cryo_cooling_power,
        write_calibration,
    )

    # 2.4 mm probes: 12 mm; 1.5-1.7 mm probes: 84 % of that (same paper)
    goal = LITTRUP_DIAMETER_MM[1] * (
        1.0 if app_obj.diameter_mm >= 2.0 else LITTRUP_SMALL_PROBE_RATIO
    )
    q, d = calibrate_cryo_cooling_power(
        app_obj,
        goal,
        spacing_mm=spacing_mm,
        log=None if quiet else (lambda m: console.print(m, markup=False, highlight=False)),
    )
    rec = {
        "probe_temperature_c": round(app_obj.probe_temperature_c, 2),
        "cooling_power_w": round(q, 2),
        "rows": 1,
        "spacing_mm": spacing_mm,
        "target": f"lethal (-30 degC) diameter {goal:.1f} mm after 15 min in 39 degC water-agar "
        "gel (Littrup et al., JVIR 2009, PMC2762356)",
        "mean_abs_error_mm": round(abs(d - goal), 2),
        "max_abs_error_mm": round(abs(d - goal), 2),
        "command": f"ioplan calibrate {app_obj.id} --spacing-mm {spacing_mm:g}",
        "date": datetime.date.today().isoformat(),
    }
    write_calibration(target, app_obj.id, rec)
    console.print(
        f"{app_obj.id}: cooling power {q:.2f} W per probe (floor {app_obj.probe_temperature_c:g} "
        f"degC) gives {d:.2f} mm (goal {goal:.1f} mm)",
        markup=False,
        highlight=False,
    )
    _print_where(target, app_obj.id)
