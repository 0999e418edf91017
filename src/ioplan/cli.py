"""The ``ioplan`` command: a thin layer over the library.

User errors (:class:`~ioplan.errors.IoplanError`) print one line,
``error: <message>``, on standard error and exit with code 2. Set
``IOPLAN_DEBUG=1`` to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ioplan import __version__
from ioplan.errors import InputError, IoplanError

app = typer.Typer(
    name="ioplan",
    help="Interventional oncology planning: phantom cases, imaging, planning, simulation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

_PHANTOM_STEPS = 11  # generate_phantom reports 10 steps; saving is the 11th


@contextmanager
def _progress(total: int, enabled: bool = True):
    """A rich progress bar; ``advance(name)`` moves it one step."""
    if not enabled:
        yield lambda _name: None
        return
    with Progress(
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as prog:
        task = prog.add_task("starting", total=total)
        state = {"first": True}

        def advance(name: str) -> None:
            if state["first"]:
                state["first"] = False
            else:
                prog.advance(task)
            prog.update(task, description=name)

        yield advance
        prog.update(task, completed=total)


def _parse_point(text: str, what: str) -> tuple[float, float, float]:
    parts = [p for p in text.replace(";", ",").split(",") if p.strip()]
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(f"{what} must be three numbers 'x,y,z' in mm, got {text!r}") from None
    if len(vals) != 3:
        raise InputError(f"{what} must be three numbers 'x,y,z' in mm, got {text!r}")
    return vals  # type: ignore[return-value]


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


_SEED = Annotated[int, typer.Option(help="Seed of every random choice (same seed, same case).")]
_SPACING = Annotated[float, typer.Option("--spacing-mm", help="Isotropic voxel spacing in mm.")]
_OVERWRITE = Annotated[
    bool, typer.Option("--overwrite", help="Replace the case files if OUT is not empty.")
]
_DIAMETERS = Annotated[
    list[float] | None,
    typer.Option("--tumor-diameter-mm", help="Tumour diameter in mm; repeat for more tumours."),
]
_CENTRES = Annotated[
    list[str] | None,
    typer.Option(
        "--tumor-centre-mm",
        "--tumor-center-mm",
        help="Tumour centre 'x,y,z' in LPS mm, one per diameter (default: built-in sites).",
    ),
]
_IRREG = Annotated[
    float, typer.Option("--irregularity", help="Tumour shape irregularity, 0 (sphere) to 0.5.")
]
_HISTOLOGY = Annotated[
    str,
    typer.Option(help="hcc, colorectal_metastasis, other_metastasis or cholangiocarcinoma."),
]
_QUIET = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("ioplan-demo"),
    seed: _SEED = 0,
    spacing_mm: _SPACING = 1.0,
    overwrite: _OVERWRITE = False,
    quiet: _QUIET = False,
) -> None:
    """Run the main job on the built-in demo case.

    Until planning exists, this generates the phantom case (image, labels,
    case.toml) and an HTML overview with labelled slices in OUT.
    """
    from ioplan.report import write_case_overview

    case = _build_phantom(
        out,
        seed=seed,
        spacing_mm=spacing_mm,
        diameters=[30.0],
        centres=[],
        irregularity=0.15,
        histology="hcc",
        overwrite=overwrite,
        quiet=quiet,
    )
    page = write_case_overview(case, out)
    console.print(
        f"case written to [bold]{escape(str(out))}[/] (case.toml, image.nii.gz, labels.nii.gz)"
    )
    console.print(f"overview: [bold]{escape(str(page))}[/]")


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


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"ioplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print version."),
    ] = False,
) -> None:
    """Interventional oncology planning."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ioplan`` console script; returns the exit code."""
    try:
        app(args=argv, prog_name="ioplan")  # standalone mode: always raises SystemExit
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except IoplanError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        return 130
    except Exception as exc:  # an ioplan bug, not a user error
        if os.environ.get("IOPLAN_DEBUG"):
            raise
        err_console.print(
            f"internal error: {type(exc).__name__}: {exc} (set IOPLAN_DEBUG=1 for the traceback)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
