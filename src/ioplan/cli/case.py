"""``ioplan phantom``, ``info`` and ``import-case``: case folders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ioplan.cli._common import (
    _CENTRES,
    _DIAMETERS,
    _HISTOLOGY,
    _IRREG,
    _OVERWRITE,
    _PHANTOM_STEPS,
    _QUIET,
    _SEED,
    _SPACING,
    _parse_point,
    _progress,
    app,
    console,
)
from ioplan.errors import InputError


def _build_phantom(
    out: Path,
    *,
    seed: int,
    spacing_mm: float,
    diameters: list[float],
    centres: list[str],
    irregularity: float,
    histology: str,
    overwrite: bool,
    quiet: bool,
):
    from ioplan.anatomy import Case, PhantomConfig, TumorSpec, generate_phantom, save_case
    from ioplan.imaging import check_output_folder

    check_output_folder(out, overwrite=overwrite)  # fail before the work, not after
    if centres and len(centres) != len(diameters):
        raise InputError(
            f"give one --tumor-centre-mm per --tumor-diameter-mm ({len(diameters)} diameters, "
            f"{len(centres)} centres)"
        )
    tumors = tuple(
        TumorSpec(
            diameter_mm=d,
            centre_mm=_parse_point(centres[i], "--tumor-centre-mm") if centres else None,
            irregularity=irregularity,
            histology=histology,
        )
        for i, d in enumerate(diameters)
    )
    config = PhantomConfig(spacing_mm=spacing_mm, seed=seed, tumors=tumors)
    with _progress(_PHANTOM_STEPS, enabled=not quiet) as advance:
        phantom = generate_phantom(config, progress=advance)
        advance("saving case")
        case = Case.from_phantom(phantom)
        save_case(case, out, overwrite=overwrite)
    return case


@app.command()
def phantom(
    out: Annotated[Path, typer.Option(help="Case folder to write.")],
    tumor_diameter_mm: _DIAMETERS = None,
    tumor_centre_mm: _CENTRES = None,
    irregularity: _IRREG = 0.15,
    histology: _HISTOLOGY = "hcc",
    seed: _SEED = 0,
    spacing_mm: _SPACING = 1.0,
    report: Annotated[bool, typer.Option(help="Also write OUT/index.html.")] = False,
    overwrite: _OVERWRITE = False,
    quiet: _QUIET = False,
) -> None:
    """Generate a synthetic abdominal CT case (image, labels, case.toml) in OUT."""
    case = _build_phantom(
        out,
        seed=seed,
        spacing_mm=spacing_mm,
        diameters=tumor_diameter_mm or [30.0],
        centres=tumor_centre_mm or [],
        irregularity=irregularity,
        histology=histology,
        overwrite=overwrite,
        quiet=quiet,
    )
    if report:
        from ioplan.report import write_case_overview

        write_case_overview(case, out)
    console.print(f"case written to [bold]{escape(str(out))}[/]")


@app.command()
def info(
    case: Annotated[Path, typer.Argument(help="Case folder (with case.toml).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a case's grid, labels and their volumes (mL)."""
    from ioplan.anatomy import label_statistics, load_case

    c = load_case(case)
    g = c.image.grid
    stats = label_statistics(c)
    tumour_stats = [s for s in stats if s.label == "tumor"]
    if as_json:
        doc = {
            "name": c.name,
            "modality": c.modality,
            "grid": g.to_dict(),
            "voxel_volume_ml": g.voxel_volume_ml,
            "labels": [
                {"label": s.label, "value": s.value, "voxels": s.voxels, "volume_ml": s.volume_ml}
                for s in stats
            ],
            "tumor_components": tumour_stats[0].components if tumour_stats else 0,
            "tumors": list(c.tumors),
            "vessel_segments": len(c.vessels),
            "source": c.source,
        }
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        return
    console.print(f"[bold]{escape(c.name)}[/] ({escape(c.modality)})")
    console.print(
        f"grid: {g.shape[2]} x {g.shape[1]} x {g.shape[0]} voxels (x, y, z), spacing "
        f"{g.spacing_mm[2]:g} x {g.spacing_mm[1]:g} x {g.spacing_mm[0]:g} mm, origin LPS "
        f"({', '.join(f'{v:.1f}' for v in g.origin_mm)}) mm"
    )
    table = Table("label", "value", "voxels", "volume (mL)")
    for s in stats:
        table.add_row(s.label, str(s.value), str(s.voxels), f"{s.volume_ml:.1f}")
    console.print(table)
    if tumour_stats:
        console.print(f"tumour components: {tumour_stats[0].components}")


@app.command("import-case")
def import_case(
    image: Annotated[Path, typer.Option(help="CT or MR: DICOM folder, NIfTI or NRRD file.")],
    labels: Annotated[Path, typer.Option(help="Segmentation on the same grid (NIfTI, NRRD).")],
    label: Annotated[
        list[str],
        typer.Option(help="What a label value means, NAME=VALUE (e.g. liver=1); repeat."),
    ],
    out: Annotated[Path, typer.Option(help="Case folder to write.")],
    name: Annotated[str, typer.Option(help="Case name (no patient identifiers).")] = "case",
    modality: Annotated[str, typer.Option(help="CT or MR.")] = "CT",
    series_uid: Annotated[
        str | None, typer.Option(help="DICOM series to read when the folder holds several.")
    ] = None,
    overwrite: _OVERWRITE = False,
) -> None:
    """Make a case folder from a real image and its segmentation."""
    from ioplan.anatomy import case_from_images, save_case

    table: dict[str, int] = {}
    for item in label:
        key, sep, value = item.partition("=")
        if key.strip() in table:
            raise InputError(f"--label {key.strip()} is given twice")
        try:
            table[key.strip()] = int(value)
        except ValueError:
            raise InputError(
                f"--label must be NAME=VALUE with an integer VALUE, got {item!r}"
            ) from None
        if not sep:
            raise InputError(f"--label must be NAME=VALUE, got {item!r}")
    if modality not in ("CT", "MR"):
        raise InputError(f"--modality must be CT or MR, got {modality!r}")
    case = case_from_images(
        image, labels, table, name=name, modality=modality, series_uid=series_uid
    )
    save_case(case, out, overwrite=overwrite)
    console.print(f"case written to [bold]{escape(str(out))}[/]")
