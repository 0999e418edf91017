"""``ioplan margin`` and ``response``: ablation confirmation and tumour response."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ioplan.cli._common import (
    _OVERWRITE,
    _warn,
    app,
)
from ioplan.errors import InputError


def _label_mask(vol, label: int | None, what: str):
    """One label of a label map as a 0/1 mask (unchanged when ``label`` is None)."""
    import numpy as np

    from ioplan.imaging import Volume

    if label is None:
        return vol
    m = np.asarray(vol.array) == label
    if not m.any():
        raise InputError(f"{what} holds no voxel of label {label}")
    return Volume(m.astype(np.uint8), vol.grid)


@app.command()
def margin(
    tumor: Annotated[Path, typer.Option(help="Tumour mask (labels or probabilities).")],
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
        str, typer.Option(help="Stages: rigid, rigid,affine or rigid,affine,bspline.")
    ] = "rigid",
    landmarks_pre: Annotated[
        Path | None, typer.Option(help="Landmarks on the pre image (CSV x,y,z or .mrk.json).")
    ] = None,
    landmarks_post: Annotated[
        Path | None, typer.Option(help="The same landmarks on the post image.")
    ] = None,
    tumor_label: Annotated[
        int | None, typer.Option(help="Take this label of --tumor (default: every non-zero).")
    ] = None,
    zone_label: Annotated[
        int | None, typer.Option(help="Take this label of --zone (default: every non-zero).")
    ] = None,
    liver_label: Annotated[
        int | None, typer.Option(help="Take this label of --liver (default: every non-zero).")
    ] = None,
    margin_mm: Annotated[float, typer.Option(help="Margin wanted (technical success).")] = 5.0,
    capsule_exclusion_mm: Annotated[
        float, typer.Option(help="Leave out tumour surface this close to the liver capsule.")
    ] = 0.0,
    out: Annotated[Path | None, typer.Option(help="Output folder (report, maps).")] = None,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Minimal ablative margin (sub-voxel), coverage, VIC and technical success."""
    import time

    from ioplan.assessment import measure_margin, register_images, register_landmarks, warp
    from ioplan.imaging import check_output_folder, read_image, read_points

    t0 = time.perf_counter()
    if out is not None:
        check_output_folder(out, overwrite=overwrite)
    tum = _label_mask(read_image(tumor), tumor_label, "--tumor")
    zon = _label_mask(read_image(zone), zone_label, "--zone")
    liv = _label_mask(read_image(liver), liver_label, "--liver") if liver is not None else None
    reg_doc: dict = {"performed": False}
    if (landmarks_pre is None) != (landmarks_post is None):
        raise InputError("give both --landmarks-pre and --landmarks-post")
    if (pre_image is None) != (post_image is None) and landmarks_pre is None:
        raise InputError("give both --pre-image and --post-image to register")
    reg = None
    if landmarks_pre is not None and landmarks_post is not None:
        reg = register_landmarks(
            read_points(landmarks_post), read_points(landmarks_pre), margin_mm=margin_mm
        )
    elif pre_image is not None and post_image is not None:
        stages = tuple(x.strip() for x in registration.split(",") if x.strip())
        reg = register_images(
            read_image(post_image),
            read_image(pre_image),
            liver_post=liv,
            zone_post=zon,
            stages=stages,
            liver_pre=read_image(pre_liver) if pre_liver is not None else None,
            margin_mm=margin_mm,
        )
    if reg is not None:
        tum = warp(tum, reg, zon)
        reg_doc = reg.to_dict()
        for w in reg.warnings:
            _warn(w)
    res = measure_margin(
        tum, zon, margin_mm=margin_mm, liver=liv, capsule_exclusion_mm=capsule_exclusion_mm
    )
    doc = res.to_dict() | {"registration": reg_doc, "runtime_s": time.perf_counter() - t0}
    doc["runtime_s"] = round(doc["runtime_s"], 3)
    report = None
    if out is not None:
        from ioplan.assessment import write_margin_outputs

        report = write_margin_outputs(res, tum, out, doc, overwrite=overwrite, zone=zon)
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
    baseline: Annotated[Path, typer.Option(help="Tumour mask at baseline.")],
    followup: Annotated[list[Path], typer.Option(help="Tumour mask at a follow-up; repeat.")],
    viable_baseline: Annotated[
        Path | None, typer.Option(help="Viable (enhancing) tumour at baseline (mRECIST, EASL).")
    ] = None,
    viable_followup: Annotated[
        list[Path] | None, typer.Option(help="Viable tumour at each follow-up; repeat.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Tumour response (RECIST 1.1, mRECIST, EASL) from masks on follow-up images."""
    from ioplan.assessment import response as assess
    from ioplan.imaging import read_image

    res = assess(
        read_image(baseline),
        [read_image(f) for f in followup],
        viable_baseline=read_image(viable_baseline) if viable_baseline else None,
        viable_followups=[read_image(f) for f in viable_followup] if viable_followup else None,
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
    for k, c in res["criteria"].items():
        typer.echo(f"  [{k}] {c['source']}")
