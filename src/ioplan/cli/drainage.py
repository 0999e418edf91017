"""``ioplan drainage``: a percutaneous drainage plan for a fluid collection (issue 22)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ioplan.cli._common import _OVERWRITE, _parse_point, app
from ioplan.errors import InputError


@app.command()
def drainage(
    case: Annotated[Path, typer.Argument(help="Case folder (with case.toml).")],
    out: Annotated[Path, typer.Option(help="Folder to write (drainage.json, report.html).")],
    collection_label: Annotated[
        str | None,
        typer.Option(help="Label of the collection, e.g. fluid_collection (ioplan label names)."),
    ] = None,
    seed_mm: Annotated[
        str | None,
        typer.Option(help="'x,y,z' LPS mm inside the collection: found by attenuation, 0-30 HU."),
    ] = None,
    content: Annotated[
        str, typer.Option(help="auto|abscess|biloma|ascites|effusion (auto: case.toml, else HU).")
    ] = "auto",
    guidance: Annotated[str, typer.Option(help="CT (30 deg limit) or US (any angle).")] = "CT",
    safety_mm: Annotated[
        float, typer.Option(help="Distance kept from bowel, vessels, lung, bone (mm), 0-30.")
    ] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    overwrite: _OVERWRITE = False,
    force: Annotated[bool, typer.Option("--force", help="Same as --overwrite.")] = False,
) -> None:
    """Plan a drainage: catheter (Fr), Seldinger or trocar, dependent tip, safe path."""
    from ioplan.anatomy import load_case
    from ioplan.planning import (
        DrainageConfig,
        check_drainage_output,
        check_drainage_request,
        plan_drainage,
        write_drainage,
    )

    seed = _parse_point(seed_mm, "--seed-mm") if seed_mm is not None else None
    cfg = check_drainage_request(
        DrainageConfig(collection_label, seed, content, guidance, safety_mm)
    )
    overwrite = overwrite or force
    check_drainage_output(out, overwrite=overwrite)
    if not (Path(case) / "case.toml").is_file():
        raise InputError(f"{case}: not a case folder (no case.toml)")
    case_obj = load_case(case)
    plan = plan_drainage(case_obj, cfg)
    report = write_drainage(plan, case_obj, out, overwrite=overwrite)
    if as_json:
        sys.stdout.write(json.dumps(plan.to_dict(), indent=2) + "\n")
    else:
        c = plan.collection
        typer.echo(
            f"collection {c['volume_ml']:.1f} mL, {c['size_mm']:.0f} mm, {c['content']}: "
            f"{plan.catheter_fr} Fr {plan.technique}; path {plan.path_length_mm:.0f} mm "
            f"(depth {plan.depth_mm:.0f} mm)"
        )
        typer.echo(f"report: {report}")
