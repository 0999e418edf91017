"""``ioplan biopsy``: a core-needle biopsy path to the viable part of a lesion (issue 22)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ioplan.cli._common import app


@app.command()
def biopsy(
    case: Annotated[Path, typer.Argument(help="Case folder (see `ioplan phantom`).")],
    out: Annotated[
        Path,
        typer.Option(
            help="Output folder: biopsy.json, biopsy.mrk.json, report.html, figures/ "
            "(written whole at the end; --force replaces an earlier biopsy folder)."
        ),
    ],
    target_label: Annotated[
        str, typer.Option("--target-label", help="Label to biopsy (default: the tumour).")
    ] = "tumor",
    tumour: Annotated[
        int,
        typer.Option(
            "--tumour", "--tumor", help="Which lesion of that label: 0 (the first), 1, ..."
        ),
    ] = 0,
    needle: Annotated[
        str, typer.Option(help="Core needle gauge: 14G, 16G, 18G or 20G (coaxial).")
    ] = "18G",
    throw_mm: Annotated[
        float, typer.Option("--throw-mm", help="Throw of the biopsy gun: 10 or 20 mm.")
    ] = 20.0,
    needle_type: Annotated[
        str,
        typer.Option("--needle-type", help="side-notch (Tru-Cut type) or end-cut (full core)."),
    ] = "side-notch",
    histology: Annotated[
        str | None,
        typer.Option(
            help="Histology need, for the cores: hcc, metastasis, rcc, nsclc, lymphoma, "
            "sarcoma, molecular (profiling), default (default: the case's tumour record)."
        ),
    ] = None,
    organ: Annotated[
        str | None,
        typer.Option(
            help="liver, lung, kidney or bone (default: case.toml's organ, else inferred)."
        ),
    ] = None,
    guidance: Annotated[str, typer.Option(help="CT or MR (angle or bore limits).")] = "CT",
    as_json: Annotated[bool, typer.Option("--json", help="Print biopsy.json.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            "--overwrite",
            help="Replace an earlier biopsy folder at --out (never other files).",
        ),
    ] = False,
) -> None:
    """Plan a percutaneous core-needle biopsy: the viable target, the throw, a safe path.

    Aims the throw at the enhancing rim when the lesion has a necrotic centre (else at
    its centre), keeps the whole throw in viable lesion, and takes the shortest path that
    passes the trajectory engine and the biopsy rules (normal liver before a liver
    lesion, vessels clear of the throw and beyond the tip, one pleural crossing and no
    fissure in the lung, the renal hilum avoided). Prints the cores by histology and the
    bleeding (and pneumothorax) risk with their sources. Exit 2 on a user error or when
    no safe path exists (one line `error: ...`), nothing written.
    """
    from ioplan.anatomy import check_organ, load_case
    from ioplan.planning import (
        BIOPSY_FOLDER_ENTRIES,
        BiopsyConfig,
        check_replaceable,
        plan_biopsy,
        write_biopsy,
    )

    # every check that needs no work first
    if organ is not None:
        organ = check_organ(organ)
    cfg = BiopsyConfig(
        needle=needle,
        throw_mm=throw_mm,
        needle_type=needle_type,
        histology=histology,
        guidance=guidance,
        target_label=target_label,
        tumour_index=tumour,
        organ=organ,
    )
    check_replaceable(out, command="biopsy", names=BIOPSY_FOLDER_ENTRIES, overwrite=force)
    case_obj = load_case(case)
    result = plan_biopsy(case_obj, cfg)
    report = write_biopsy(result, case_obj, out, overwrite=force, cfg=cfg)
    doc = result.to_dict()
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    bleed = doc["risks"]["bleeding"]
    typer.echo(
        f"biopsy of {doc['target_label']} {doc['tumour_index']} ({doc['organ']}): "
        f"{doc['viable_target']['aim']}, necrotic fraction "
        f"{100 * doc['necrotic_fraction']:.0f} %"
    )
    typer.echo(f"aim: {doc['viable_target']['aim_reason']}")
    typer.echo(
        f"entry {doc['entry_mm']} -> tip {doc['target_mm']} mm (LPS), path "
        f"{doc['path_length_mm']:.1f} mm, {doc['needle']} through a "
        f"{doc['needle_detail']['introducer_gauge']}G introducer, throw {doc['throw_mm']:g} mm"
    )
    c = doc["cores_detail"]
    typer.echo(f"cores: {doc['cores']} ({c['range'][0]}-{c['range'][1]}, {c['histology']})")
    scaled = bleed["rate_percent"] != bleed["published_rate_percent"]
    typer.echo(
        f"bleeding: SIR 2019 {bleed['category']} risk, {bleed['published_rate_percent']:g} % "
        f"published at {bleed['reference_gauge']}G ({bleed['what']})"
        + (f"; {bleed['rate_percent']:g} % for this introducer by ioplan's tract "
           "cross-section scaling (an assumption, not a published figure)" if scaled else "")
    )  # fmt: skip
    ptx = doc["risks"].get("pneumothorax")
    if ptx:
        typer.echo(
            f"pneumothorax: {100 * ptx['probability']:.0f} % "
            f"({doc['path']['pleural_crossings']} pleural crossing, "
            f"{doc['path']['lung_path_mm']:.0f} mm of aerated lung)"
        )
    typer.echo(f"report: {report}")
