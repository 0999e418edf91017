"""``ioplan uncertainty`` and ``ioplan batch``: Monte Carlo and cohorts on Dask (issue 23)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ioplan.cli._common import _OVERWRITE, _QUIET, _progress, _refuse_unused, app
from ioplan.errors import InputError

_SCHEDULER = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Address of a running Dask scheduler (tcp://host:port); default: a local "
        "cluster, one worker process per core.",
    ),
]
_WORKERS = Annotated[
    int | None,
    typer.Option("--workers", help="Workers of the local cluster, 1-1024 (default: one per core)."),
]


@app.command()
def uncertainty(
    plan_dir: Annotated[Path, typer.Argument(help="Plan folder (see `ioplan plan`).")],
    out: Annotated[
        Path,
        typer.Option(help="Output folder (written whole at the end; --overwrite replaces it)."),
    ],
    case: Annotated[
        Path | None,
        typer.Option(
            "--case", help="The case the plan was made for (default: named by plan.json)."
        ),
    ] = None,
    samples: Annotated[int, typer.Option(help="Monte Carlo samples, 1-100000.")] = 100,
    placement_error_mm: Annotated[
        float,
        typer.Option(
            "--placement-error-mm",
            help="RMS 3-D tip error (mm, 0-20; each axis N(0, (e/sqrt3)^2)).",
        ),
    ] = 2.0,
    angle_error_deg: Annotated[
        float,
        typer.Option("--angle-error-deg", help="RMS needle tilt about the skin entry (deg, 0-30)."),
    ] = 3.0,
    perfusion_cv: Annotated[
        float, typer.Option("--perfusion-cv", help="CV of the perfusion factor (lognormal), 0-2.")
    ] = 0.3,
    property_cv: Annotated[
        float,
        typer.Option(
            "--property-cv",
            help="CV of the property factor (lognormal, 0-2): scales the delivered power "
            "(a cryoprobe's cooling power).",
        ),
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed: the same numbers on any number of workers.")] = 0,
    spacing_mm: Annotated[
        float | None,
        typer.Option(
            "--spacing-mm", help="Engine voxel size (mm): the plan's (default) or coarser."
        ),
    ] = None,
    scheduler: _SCHEDULER = None,
    workers: _WORKERS = None,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print uncertainty.json.")] = False,
    quiet: _QUIET = False,
) -> None:
    """Monte Carlo of a plan over placement error, perfusion and properties, on Dask.

    Each sample perturbs the applicators and the tissue, simulates, and measures the
    tumour + margin coverage. Writes coverage_probability.nii.gz (per voxel, 0-1) and
    uncertainty.json (coverage_probability and its 95 % interval, per-sample coverage,
    dominant factors, samples, scheduler, workers, seed, runtime_s).
    """
    from ioplan.batch import (
        UNCERTAINTY_FOLDER_ENTRIES,
        UncertaintySpec,
        check_cluster_options,
        dask_client,
        engine_model_from_plan,
        run_uncertainty,
        write_uncertainty,
    )
    from ioplan.imaging import check_replaceable

    # every check that needs no work first
    if not 1 <= samples <= 100000:
        raise InputError(f"--samples must be 1-100000, got {samples}")
    if not 0 <= seed <= 2**32 - 1:
        raise InputError(f"--seed must be 0-4294967295, got {seed}")
    scheduler = check_cluster_options(workers, scheduler)
    spec = UncertaintySpec(placement_error_mm, angle_error_deg, perfusion_cv, property_cv)
    check_replaceable(out, command="uncertainty", names=UNCERTAINTY_FOLDER_ENTRIES,
                      overwrite=overwrite)  # fmt: skip
    model, info = engine_model_from_plan(plan_dir, case, spacing_mm=spacing_mm,
                                         perfusion_varies=perfusion_cv > 0)  # fmt: skip
    show = not quiet and not as_json
    with _progress(samples, enabled=show) as advance, dask_client(scheduler, workers=workers) as c:
        result = run_uncertainty(
            model, spec, samples=samples, seed=seed, client=c,
            progress=lambda done, total: advance(f"sample {done}/{total}"), extra=info,
        )  # fmt: skip
    doc = write_uncertainty(result, out, overwrite=overwrite)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    lo, hi = doc["coverage_probability_interval_95"]
    typer.echo(
        f"complete coverage probability {doc['coverage_probability']:.3f} "
        f"(95 % CI {lo:.3f}-{hi:.3f}) over {samples} samples; mean coverage "
        f"{100 * doc['mean_coverage']:.1f} %"
    )
    if doc["sensitivity"].get("reliable", True):
        for f in doc["dominant_factors"][:3]:
            typer.echo(f"  {f['input']}: first-order index {f['first_order_index']:.2f}")
    else:
        typer.echo(f"  dominant factors: {doc['sensitivity']['note']}")
    typer.echo(
        f"{doc['workers']} workers ({doc['scheduler']}), {doc['runtime_s']:.1f} s, "
        f"{doc['samples_per_minute']:.0f} samples/min"
    )
    typer.echo(f"map: {out / 'coverage_probability.nii.gz'}")


#: The options each batch action reads (as the help says); the others are refused.
_ACTION_OPTIONS = {
    "plan": ("modality", "margin_mm", "spacing_mm", "time_budget_s", "seed"),
    "simulate": ("margin_mm", "spacing_mm", "applicator", "power_w", "duration_s", "direction",
                 "protocol"),
    "margin": ("margin_mm", "zone_file", "registry", "registry_overwrite"),
}


@app.command()
def batch(
    ctx: typer.Context,
    action: Annotated[str, typer.Argument(help="plan, simulate or margin.")],
    cases_dir: Annotated[Path, typer.Argument(help="Folder of case folders (with case.toml).")],
    out: Annotated[
        Path,
        typer.Option(
            help="Output folder: cases/<case>.json as each finishes, results.parquet and "
            "results.csv at the end; run again to resume (cases done are skipped)."
        ),
    ],
    modality: Annotated[str, typer.Option(help="plan: mwa, rfa or cryo.")] = "mwa",
    margin_mm: Annotated[
        float | None,
        typer.Option(help="plan, simulate, margin: ablative margin (mm; default 5)."),
    ] = None,
    spacing_mm: Annotated[
        float, typer.Option("--spacing-mm", help="plan, simulate: voxel size (mm).")
    ] = 4.0,
    time_budget_s: Annotated[
        float | None, typer.Option("--time-budget-s", help="plan: seconds of search per case.")
    ] = None,
    seed: Annotated[int, typer.Option(help="plan: seed.")] = 0,
    applicator: Annotated[
        str | None, typer.Option(help="simulate: applicator id (see `ioplan applicators`).")
    ] = None,
    power_w: Annotated[float | None, typer.Option("--power-w", help="simulate: W.")] = None,
    duration_s: Annotated[
        float | None, typer.Option("--duration-s", help="simulate: heating time (s).")
    ] = None,
    direction: Annotated[
        str,
        typer.Option(help="simulate: insertion direction 'x,y,z'; the tip at the tumour centre."),
    ] = "0,0,-1",
    protocol: Annotated[
        str | None,
        typer.Option(help="simulate, cryoprobes: freeze-thaw protocol, e.g. "
                     "freeze:600,thaw:300,freeze:600 (each phase 0-7200 s)."),
    ] = None,
    zone_file: Annotated[
        str,
        typer.Option(help="margin: the follow-up zone mask in each case folder (case grid)."),
    ] = "followup_zone.nii.gz",
    registry: Annotated[
        str | None,
        typer.Option(
            help="margin: record each case's margin in this registry (URL or SQLite file) "
            "for the treated lesion named by the case's registry.json (procedure_key, "
            "lesion_key)."
        ),
    ] = None,
    registry_overwrite: Annotated[
        bool,
        typer.Option("--registry-overwrite", help="margin: replace margins already recorded."),
    ] = False,
    scheduler: _SCHEDULER = None,
    workers: _WORKERS = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: _QUIET = False,
) -> None:
    """One task per case on Dask: plan, simulate or measure margins for a whole cohort.

    A failed case never stops the others (its row has status failed and the error).
    Rows: case, status, runtime_s, error and the action's key figures.
    """
    from ioplan.batch import (
        BatchOptions,
        check_batch_output,
        check_cluster_options,
        dask_client,
        find_cases,
        run_batch,
    )

    if action in _ACTION_OPTIONS:  # (an unknown action is refused by BatchOptions below)
        others = tuple(k for a, ks in _ACTION_OPTIONS.items() if a != action for k in ks
                       if k not in _ACTION_OPTIONS[action])  # fmt: skip
        _refuse_unused(ctx, others, f"by batch {action}")
    try:
        d = tuple(float(v) for v in direction.split(","))
    except ValueError:
        raise InputError(f"--direction must be 'x,y,z', got {direction!r}") from None
    if len(d) != 3:
        raise InputError(f"--direction must be 'x,y,z', got {direction!r}")
    scheduler = check_cluster_options(workers, scheduler)
    opts = BatchOptions(action=action, modality=modality, margin_mm=margin_mm,
                        spacing_mm=spacing_mm, time_budget_s=time_budget_s, seed=seed,
                        applicator_id=applicator, power_w=power_w, duration_s=duration_s,
                        direction=d, protocol=protocol, zone_file=zone_file,
                        registry=registry,
                        registry_overwrite=registry_overwrite)  # fmt: skip
    cases = find_cases(cases_dir)
    check_batch_output(out, action, opts)
    if registry is not None:
        from ioplan.registry import open_db

        open_db(registry, create=False).dispose()  # exists, at the head revision
    show = not quiet and not as_json
    with (
        _progress(len(cases), enabled=show) as advance,
        dask_client(scheduler, workers=workers) as c,
    ):
        doc = run_batch(opts, cases_dir, out, client=c,
                        progress=lambda done, total: advance(f"case {done}/{total}"))  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    typer.echo(
        f"{doc['cases']} cases: {doc['ok']} ok, {doc['failed']} failed "
        f"({doc['skipped']} done before, skipped); {doc['workers']} workers "
        f"({doc['scheduler']}), {doc['runtime_s']:.1f} s"
    )
    for r in doc["rows"]:
        if r.get("status") != "ok":
            typer.echo(f"  {r['case']}: {r.get('error')}")
    for note in doc.get("notes", []):
        typer.echo(f"note: {note}")
    typer.echo(f"results: {out / 'results.parquet'} ({out / 'results.csv'})")
