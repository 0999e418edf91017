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
    _OVERWRITE,
    _PHANTOM_STEPS,
    _QUIET,
    _parse_point,
    _progress,
    _refuse_unused,
    app,
    console,
)
from ioplan.errors import InputError

# The ranges in these helps are the library's (ioplan.anatomy SPACING_RANGE_MM, ...), written
# out so that ``ioplan --help`` does not import the anatomy; a test compares them.
_SPACING = Annotated[
    float,
    typer.Option(
        "--spacing-mm",
        help="Isotropic voxel spacing in mm, 0.5-5 (finer needs more memory: about 2 GB "
        "at 1 mm, checked before the work).",
    ),
]
_DIAMETERS = Annotated[
    list[float] | None,
    typer.Option(
        "--tumor-diameter-mm",
        help="Tumour diameter in mm, 3-120 and at least two voxels; repeat for more tumours "
        "(1-8; default: one of 30 mm).",
    ),
]
_CENTRES = Annotated[
    list[str] | None,
    typer.Option(
        "--tumor-centre-mm",
        "--tumor-center-mm",
        help="Tumour centre 'x,y,z' in LPS mm, inside the organ, one per diameter "
        "(default: built-in sites, up to four liver tumours; the --site of other organs).",
    ),
]
_IRREG = Annotated[
    float,
    typer.Option("--irregularity", help="Tumour shape irregularity, 0 (sphere) to 0.5."),
]
_HISTOLOGY = Annotated[
    str | None,
    typer.Option(
        help="hcc, colorectal_metastasis, other_metastasis or cholangiocarcinoma (default: "
        "hcc for the liver, other_metastasis for the other organs)."
    ),
]
_ORGAN = Annotated[
    str,
    typer.Option(
        help="Organ of the tumour: liver (abdomen), lung (chest), kidney or bone "
        "(retroperitoneum and lumbar spine), soft_tissue (thigh: sciatic nerve, femur, "
        "femoral vessels); written to case.toml."
    ),
]
_SITE = Annotated[
    str | None,
    typer.Option(
        help="Tumour site: lung peripheral|central, kidney exophytic|central (next to the "
        "collecting system), bone vertebra|rib, soft_tissue thigh|adductor (by the sciatic "
        "nerve | the femoral vessels) (default: the first). Not for the liver."
    ),
]
_SIDE = Annotated[
    str | None,
    typer.Option(
        help="right|left (default right); lung, kidney, bone rib and soft_tissue only "
        "(a vertebral tumour is on the midline)."
    ),
]
_PHANTOM_SEED = Annotated[
    int,
    typer.Option(help="Seed of every random choice (same seed, same case), 0-4294967295."),
]


_COLLECTION = Annotated[
    float | None,
    typer.Option(
        "--collection",
        help="Add a fluid collection of this largest diameter in mm, 15-150 (label "
        "fluid_collection).",
    ),
]
_COLLECTION_SITE = Annotated[
    str,
    typer.Option(
        help="perihepatic|subphrenic|pelvic|intrahepatic|pleural (pleural also on --organ "
        "lung; the others need the liver)."
    ),
]
_COLLECTION_CONTENT = Annotated[
    str,
    typer.Option(
        help="abscess (20 HU, enhancing wall)|biloma (8 HU)|ascites (5 HU)|effusion (10 HU)."
    ),
]
_NECROSIS = Annotated[
    float | None,
    typer.Option(
        "--necrosis-mm",
        help="Necrotic centre (15 HU) of this diameter in mm in the first tumour, up to 0.8 x "
        "its diameter (the label stays tumour).",
    ),
]


_ARTERIAL = Annotated[
    bool,
    typer.Option(
        "--arterial-tree",
        help="The hepatic arterial tree (common/proper hepatic, gastroduodenal, right gastric, "
        "cystic; one artery along each portal branch) for `ioplan arteries` (liver only).",
    ),
]
_VARIANT = Annotated[
    str | None,
    typer.Option(
        "--artery-variant",
        help="standard|replaced_right|replaced_left (default: drawn from the seed with the "
        "frequencies of Hiatt 1994); with --arterial-tree.",
    ),
]


@app.command()
def phantom(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Case folder to write.")],
    tumor_diameter_mm: _DIAMETERS = None,
    tumor_centre_mm: _CENTRES = None,
    irregularity: _IRREG = 0.15,
    histology: _HISTOLOGY = None,
    seed: _PHANTOM_SEED = 0,
    spacing_mm: _SPACING = 1.0,
    organ: _ORGAN = "liver",
    site: _SITE = None,
    side: _SIDE = None,
    collection: _COLLECTION = None,
    collection_site: _COLLECTION_SITE = "perihepatic",
    collection_content: _COLLECTION_CONTENT = "abscess",
    necrosis_mm: _NECROSIS = None,
    arterial_tree: _ARTERIAL = False,
    artery_variant: _VARIANT = None,
    report: Annotated[bool, typer.Option(help="Also write OUT/index.html.")] = False,
    overwrite: _OVERWRITE = False,
    quiet: _QUIET = False,
) -> None:
    """Generate a synthetic CT case (image, labels, case.toml) in OUT: abdomen, chest or spine."""
    from ioplan.anatomy import check_organ, write_phantom_case

    organ = check_organ(organ)
    if collection is None:
        _refuse_unused(ctx, ("collection_site", "collection_content"), "without --collection")
    if histology is None:
        histology = "hcc" if organ == "liver" else "other_metastasis"
    centres = [_parse_point(c, "--tumor-centre-mm") for c in tumor_centre_mm or []]
    with _progress(_PHANTOM_STEPS, enabled=not quiet) as advance:
        case = write_phantom_case(
            out,
            tumor_diameters_mm=tumor_diameter_mm or [30.0],
            tumor_centres_mm=centres,
            irregularity=irregularity,
            histology=histology,
            seed=seed,
            spacing_mm=spacing_mm,
            overwrite=overwrite,
            progress=advance,
            organ=organ,
            site=site,
            side=side,
            collection_mm=collection,
            collection_site=collection_site,
            collection_content=collection_content,
            necrosis_mm=necrosis_mm,
            arterial_tree=arterial_tree,
            artery_variant=artery_variant,
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
    from ioplan.anatomy import case_info, extra_class_statistics, label_statistics, load_case

    c = load_case(case)
    g = c.image.grid
    stats = label_statistics(c)
    extra_stats = extra_class_statistics(c)
    roles = {x.name: x.role for x in c.extra_classes}
    tumour_stats = [s for s in stats if s.label == "tumor"]
    if as_json:
        doc = case_info(c)
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
    if extra_stats:
        extra = Table("extra class", "value", "role", "voxels", "volume (mL)")
        for s in extra_stats:
            extra.add_row(escape(s.label), str(s.value), roles[s.label], str(s.voxels),
                          f"{s.volume_ml:.1f}")  # fmt: skip
        console.print(extra)
    if tumour_stats:
        console.print(f"tumour components: {tumour_stats[0].components}")


@app.command("import-case")
def import_case(
    image: Annotated[
        Path, typer.Option(help="CT or MR: DICOM folder, NIfTI, NRRD or MetaImage file (3D).")
    ],
    labels: Annotated[
        Path,
        typer.Option(
            help="Segmentation: a label map (NIfTI, NRRD), a folder of one mask per structure "
            "(TotalSegmentator's output; liver.nii.gz is the liver), a DICOM-SEG or a Slicer "
            ".seg.nrrd. On another grid it is resampled onto the image's (nearest neighbour)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Case folder to write.")],
    label: Annotated[
        list[str] | None,
        typer.Option(
            help="What a label value means, NAME=VALUE with VALUE 1-65535 (e.g. liver=1); "
            "repeat. liver is required. Or --label-map."
        ),
    ] = None,
    label_map: Annotated[
        str | None,
        typer.Option(
            "--label-map",
            help="Names of the label values: totalsegmentator (its 'total' map for CT, "
            "'total_mr' for MR), totalsegmentator-ct, totalsegmentator-mr, or a TOML/JSON file "
            "of name = value pairs. Classes with no ioplan label are kept under their own "
            "names and avoided by needle paths. Not needed for masks, DICOM-SEG or Slicer.",
        ),
    ] = None,
    name: Annotated[
        str,
        typer.Option(
            help="Pseudonymous case identifier: letters, digits and . _ -, no spaces, at most "
            "64 characters (e.g. liver-017); never a patient's name, record number or date."
        ),
    ] = "case",
    modality: Annotated[str, typer.Option(help="CT or MR.")] = "CT",
    series_uid: Annotated[
        str | None, typer.Option(help="DICOM series to read when the folder holds several.")
    ] = None,
    regularize: Annotated[
        bool,
        typer.Option(
            help="A DICOM series with lost slices (up to two in a row), mixed slice spacing "
            "or a gantry tilt: interpolate it onto an even grid along the slice normal, with "
            "a note, instead of refusing it. Interpolated slices are not imaged anatomy."
        ),
    ] = False,
    auto: Annotated[
        bool | None,
        typer.Option(
            "--auto-labels/--no-auto-labels",
            help="Find what the labels lack from the image: body, skin, fat, lung and "
            "airways, bone (CT HU), liver vessels in contrast CT (vesselness); MR: body and "
            "lung. The labels win where given; case.toml records what came from where. "
            "Default: on when the labels hold no body outline (skin or fat), so that "
            "needle paths start at the real skin. With --auto-labels the liver is not "
            "required (cases for other organs).",
            show_default=False,
        ),
    ] = None,
    overwrite: _OVERWRITE = False,
) -> None:
    """Make a case folder from a real image and its segmentation."""
    from ioplan.anatomy import case_from_images, save_case
    from ioplan.imaging import check_output_folder

    check_output_folder(out, overwrite=overwrite)  # fail before reading, not after
    if label and label_map is not None:
        raise InputError("give --label NAME=VALUE or --label-map, not both")
    table: dict[str, int] = {}
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--label must be NAME=VALUE, got {item!r}")
        if key.strip() in table:
            raise InputError(f"--label {key.strip()} is given twice")
        try:
            table[key.strip()] = int(value)
        except ValueError:
            raise InputError(
                f"--label must be NAME=VALUE with an integer VALUE, got {item!r}"
            ) from None
        if not 1 <= table[key.strip()] <= 65535:
            raise InputError(f"--label VALUE must be 1-65535 (0 is the background), got {item!r}")
    case = case_from_images(
        image,
        labels,
        table or None,
        label_map=label_map,
        name=name,
        modality=modality,
        series_uid=series_uid,
        require_liver=not auto,
        regularize=regularize,
    )
    if auto is None:  # by default, when the labels leave the body around the organs empty
        from ioplan.anatomy import lacks_body_outline

        auto = lacks_body_outline(case)
        if auto:
            console.print(
                "note: the labels hold no body outline (skin or fat): finding it from "
                "the image (--no-auto-labels to keep the labels as they are)",
                markup=False,
            )
    if auto:
        from ioplan.anatomy import with_auto_labels

        case = with_auto_labels(case)
    for note in case.source.get("notes", []):
        console.print(f"note: {escape(str(note))}")
    save_case(case, out, overwrite=overwrite)
    console.print(f"case written to [bold]{escape(str(out))}[/]")
