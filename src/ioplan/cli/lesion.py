"""``ioplan add-lesion``: a virtual tumour written into a copy of a case."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ioplan.cli._common import _OVERWRITE, _parse_point, app, console
from ioplan.errors import InputError

# The ranges in these helps are the library's (ioplan.anatomy DIAMETER_RANGE_MM,
# IRREGULARITY_RANGE, SEED_RANGE, CT_CONTRAST_RANGE_HU, ...), written out so that
# ``ioplan --help`` does not import the anatomy.


@app.command("add-lesion")
def add_lesion(
    case: Annotated[Path, typer.Argument(help="Case folder (with case.toml) to copy.")],
    centre_mm: Annotated[
        str,
        typer.Option(
            "--centre-mm",
            "--center-mm",
            help="Lesion centre 'x,y,z' in LPS mm, inside the liver, a kidney or a lung.",
        ),
    ],
    diameter_mm: Annotated[float, typer.Option("--diameter-mm", help="Diameter, 3-120 mm.")],
    out: Annotated[Path, typer.Option(help="New case folder to write (a copy with the lesion).")],
    irregularity: Annotated[
        float, typer.Option(help="Shape irregularity, 0 (sphere) to 0.5 (lobulated).")
    ] = 0.0,
    hu_contrast: Annotated[
        float | None,
        typer.Option(
            "--hu-contrast",
            help="CT: HU added inside the lesion, -500 to 500 (default -30: hypodense). MR: "
            "percent of the organ's local signal, -90 to 300 (default -30).",
        ),
    ] = None,
    histology: Annotated[
        str,
        typer.Option(help="hcc, colorectal_metastasis, other_metastasis or cholangiocarcinoma."),
    ] = "hcc",
    seed: Annotated[
        int, typer.Option(help="Seed of the lesion's shape, 0-4294967295 (same seed, same case).")
    ] = 0,
    overwrite: _OVERWRITE = False,
) -> None:
    """Write a virtual lesion into a copy of CASE's image and labels (OUT).

    The lesion is a sphere or a lobulated blob (the phantom's tumour shape), labelled
    tumor inside its organ; the image gets the contrast added (its own texture and
    noise kept) with a one-voxel partial-volume edge; case.toml lists it with
    source = "virtual". The same seed gives the same case.
    """
    from ioplan.anatomy import add_lesion as _add_lesion
    from ioplan.anatomy import load_case, save_case
    from ioplan.imaging import check_output_folder

    centre = _parse_point(centre_mm, "--centre-mm")
    check_output_folder(out, overwrite=overwrite)  # fail before reading, not after
    if out.exists() and case.exists() and out.resolve() == case.resolve():
        raise InputError(f"--out {out} is the case folder itself: add-lesion writes a copy")
    source = load_case(case)
    new = _add_lesion(
        source,
        centre,
        diameter_mm,
        irregularity=irregularity,
        hu_contrast=hu_contrast,
        histology=histology,
        seed=seed,
    )
    save_case(new, out, overwrite=overwrite)
    rec = new.tumors[-1]
    unit = " HU" if rec["contrast_unit"] == "HU" else " %"
    console.print(
        f"lesion of {rec['diameter_mm']:g} mm ({rec['volume_ml']:.2f} mL, "
        f"{rec['contrast']:+g}{unit}) in the {rec['organ']} at "
        f"({', '.join(f'{v:g}' for v in rec['centre_mm'])}) mm; "
        f"case written to [bold]{escape(str(out))}[/]"
    )
