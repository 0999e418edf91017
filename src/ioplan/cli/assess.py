"""``ioplan margin`` and ``response``: ablation confirmation and tumour response."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ioplan.cli._common import (
    _OVERWRITE,
    _refuse_unused,
    _warn,
    app,
)


@app.command()
def margin(
    tumor: Annotated[Path, typer.Option(help="Tumour mask: 0/1, labels or probabilities 0-1.")],
    zone: Annotated[Path, typer.Option(help="Ablation zone mask (on the post image).")],
    pre_image: Annotated[
        Path | None, typer.Option(help="Pre-procedure image the tumour was drawn on.")
    ] = None,
    post_image: Annotated[
        Path | None, typer.Option(help="Post-procedure image the zone was drawn on.")
    ] = None,
    liver: Annotated[
        Path | None, typer.Option(help="Liver mask on the post image (registration, capsule).")
    ] = None,
    pre_liver: Annotated[
        Path | None, typer.Option(help="Liver mask on the pre image (registration quality).")
    ] = None,
    registration: Annotated[
        str | None,
        typer.Option(
            help="Registration stages, comma-separated: rigid, rigid,affine or "
            "rigid,affine,bspline (with --pre-image and --post-image; default rigid)."
        ),
    ] = None,
    landmarks_pre: Annotated[
        Path | None, typer.Option(help="Landmarks on the pre image (CSV x,y,z or .mrk.json).")
    ] = None,
    landmarks_post: Annotated[
        Path | None, typer.Option(help="The same landmarks on the post image.")
    ] = None,
    tumor_label: Annotated[
        int | None,
        typer.Option(help="Take this label (>= 1) of --tumor (default: every non-zero)."),
    ] = None,
    zone_label: Annotated[
        int | None, typer.Option(help="Take this label (>= 1) of --zone (default: every non-zero).")
    ] = None,
    liver_label: Annotated[
        int | None,
        typer.Option(help="Take this label (>= 1) of --liver (default: every non-zero)."),
    ] = None,
    margin_mm: Annotated[
        float, typer.Option(help="Margin wanted for technical success, in mm (0-30).")
    ] = 5.0,
    capsule_exclusion_mm: Annotated[
        float,
        typer.Option(
            help="Leave out tumour surface this close to the liver capsule, in mm (0-30; "
            "needs --liver)."
        ),
    ] = 0.0,
    out: Annotated[Path | None, typer.Option(help="Output folder (report, maps).")] = None,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Minimal ablative margin (sub-voxel), coverage, VIC and technical success."""
    from ioplan.assessment import confirm_margin

    c = confirm_margin(
        tumor,
        zone,
        margin_mm=margin_mm,
        liver=liver,
        capsule_exclusion_mm=capsule_exclusion_mm,
        tumour_label=tumor_label,
        zone_label=zone_label,
        liver_label=liver_label,
        pre_image=pre_image,
        post_image=post_image,
        pre_liver=pre_liver,
        registration=registration,
        landmarks_pre=landmarks_pre,
        landmarks_post=landmarks_post,
        out=out,
        overwrite=overwrite,
    )
    for w in c.warnings:
        _warn(w)
    res, doc, report = c.result, c.document, c.report
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    verdict = "achieved" if res.technical_success else "NOT achieved"
    typer.echo(
        f"minimal ablative margin {res.minimal_margin_mm:.2f} mm (sub-voxel); technical "
        f"success at {margin_mm:g} mm: {verdict}; tumour covered {res.coverage_percent:.1f} %"
    )
    f = res.surface_fraction
    typer.echo(
        f"tumour surface: < 0 mm {f['lt0']:.1f} %, 0-5 mm {f['0to5']:.1f} %, "
        f"5-10 mm {f['5to10']:.1f} %, >= 10 mm {f['ge10']:.1f} %"
    )
    v = res.vic_ml
    typer.echo(
        f"insufficient coverage: {v['0']:.2f} / {v['5']:.2f} / {v['10']:.2f} mL at 0/5/10 mm"
    )
    for note in res.notes:
        typer.echo(f"note: {note}")
    if report is not None:
        typer.echo(f"report: {report}")


@app.command()
def response(
    ctx: typer.Context,
    baseline: Annotated[Path, typer.Option(help="Tumour mask at baseline.")],
    followup: Annotated[list[Path], typer.Option(help="Tumour mask at a follow-up; repeat.")],
    viable_baseline: Annotated[
        Path | None, typer.Option(help="Viable (enhancing) tumour at baseline (mRECIST, EASL).")
    ] = None,
    viable_followup: Annotated[
        list[Path] | None, typer.Option(help="Viable tumour at each follow-up; repeat.")
    ] = None,
    label: Annotated[
        int | None,
        typer.Option(help="Take this label (>= 1) of the tumour masks (default: every non-zero)."),
    ] = None,
    viable_label: Annotated[
        int | None,
        typer.Option(help="Take this label (>= 1) of the viable masks (default: every non-zero)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Tumour response (RECIST 1.1, mRECIST, EASL) from masks on follow-up images."""
    from ioplan.assessment import response as assess

    if viable_baseline is None and not viable_followup:
        _refuse_unused(ctx, ("viable_label",), "without --viable-baseline and --viable-followup")
    res = assess(
        baseline,
        followup,
        viable_baseline=viable_baseline,
        viable_followups=viable_followup or None,
        label=label,
        viable_label=viable_label,
    )
    if as_json:
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
        return
    b = res["baseline"]
    typer.echo(f"baseline: sum of longest diameters {b['sum_longest_diameter_mm']:.1f} mm")
    for row in res["followups"]:
        cats = ", ".join(f"{k} {v}" for k, v in row["category"].items())
        typer.echo(
            f"follow-up {row['index'] + 1}: {row['sum_longest_diameter_mm']:.1f} mm -> {cats}"
        )
    for note in res.get("notes", []):
        typer.echo(f"note: {note}")
    for k, c in res["criteria"].items():
        typer.echo(f"  [{k}] {c['source']}")
