"""``ioplan arteries``: hepatic arterial tree, tumour feeders, catheter positions, territories."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ioplan.cli._common import _OVERWRITE, _refuse_unused, app
from ioplan.errors import InputError


@app.command()
def arteries(
    ctx: typer.Context,
    case: Annotated[Path, typer.Argument(help="Case folder (case.toml, labels, vessels.csv).")],
    out: Annotated[
        Path,
        typer.Option(help="Output folder: arteries.json, territories.nii.gz, segments.nii.gz."),
    ],
    tumour: Annotated[
        int | None,
        typer.Option("--tumour", "--tumor", help="Which tumour, 0 first (default: all)."),
    ] = None,
    from_image: Annotated[
        bool,
        typer.Option(
            "--from-image",
            help="Find the arteries in the image (arterial-phase CT, cone-beam CT): "
            "Frangi vesselness and --min-hu.",
        ),
    ] = False,
    min_hu: Annotated[
        float,
        typer.Option(help="With --from-image: vessels are at least this, -100-3000 HU."),
    ] = 180.0,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Transarterial planning: feeders of the tumour, ranked catheter positions, territories.

    The arterial tree comes from the case's centrelines (a phantom made with the arterial
    tree) or is skeletonised from its hepatic artery label. Each liver voxel is supplied by
    the nearest terminal branch; territories.nii.gz holds one label per candidate position's
    exclusive territory (a position's whole territory is its territory_labels).
    """
    from ioplan.anatomy import load_case
    from ioplan.embolization import arterial_plan, check_arteries_folder, write_arterial_plan

    if not from_image:
        _refuse_unused(ctx, ("min_hu",), "without --from-image")
    if tumour is not None and tumour < 0:
        raise InputError(f"--tumour must be 0 or more (0 is the first tumour), got {tumour}")
    if not -100.0 <= min_hu <= 3000.0:
        raise InputError(f"--min-hu must be -100-3000 HU, got {min_hu:g}")
    check_arteries_folder(out, overwrite=overwrite)
    case_obj = load_case(case)
    plan = arterial_plan(case_obj, tumour=tumour, from_image=from_image, min_hu=min_hu)
    write_arterial_plan(plan, case_obj.labels, out, overwrite=overwrite)
    if as_json:
        sys.stdout.write(json.dumps(plan.doc, indent=2) + "\n")
        return
    d = plan.doc
    typer.echo(
        f"arterial tree ({d['tree']['source']}): {d['tree']['segments']} segments, "
        f"{d['tree']['liver_terminals']} terminals in the liver; tumour {d['tumour']['ml']} mL"
    )
    for f in d["feeders"][:5]:
        nt = ", ".join(
            f"{n['branch']} {n['distance_mm']:g} mm "
            + ("downstream" if n["downstream"] else "upstream")
            for n in f["non_target"][:3]
        ) + (f" (+{len(f['non_target']) - 3} more)" if len(f["non_target"]) > 3 else "")
        typer.echo(
            f"  branch {f['branch_id']} ({f['branch']}): "
            f"tumour {f['tumour_covered_percent']:.1f} %,"
            f" territory {f['territory_ml']:.0f} mL, normal liver {f['normal_liver_ml']:.0f} mL"
            + (f"; non-target: {nt}" if nt else "")
        )
    typer.echo(f"territories: {out / 'territories.nii.gz'}")
