"""``ioplan sirt ...``: Y-90 radioembolization and TACE dosing."""

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

sirt_app = typer.Typer(help="Y-90 radioembolization: activity, dose, checks; TACE dosing.",
                       no_args_is_help=True)  # fmt: skip
app.add_typer(sirt_app, name="sirt")
_CF = Annotated[
    float | None, typer.Option("--cf", help="Dose constant, Gy kg/GBq: 49.67 (default), 50, 49.38.")
]
_LSF = Annotated[float, typer.Option("--lsf", help="Lung shunt fraction, 0-1.")]
_REPORT = Annotated[Path | None, typer.Option(help="Write a one-page HTML report here.")]
_SPHERE = Annotated[
    str | None, typer.Option(help="glass or resin: check that sphere type's limits.")
]


def _sirt_out(result: dict, as_json: bool, report: Path | None, title: str) -> None:
    if report is not None:
        from ioplan.embolization import write_sirt_report

        write_sirt_report(result, report, title)
    for w in result.get("warnings", []):
        _warn(w)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    for k, v in result.items():
        if isinstance(v, int | float | str) and k != "limits_source":
            typer.echo(f"{k}: {v}")
    if report is not None:
        typer.echo(f"report: {report / 'report.html'}")


@sirt_app.command("single")
def sirt_single(
    mass_kg: Annotated[float, typer.Option(help="Perfused liver mass (kg).")],
    lsf: _LSF,
    dose_gy: Annotated[float | None, typer.Option(help="Wanted mean dose (Gy).")] = None,
    activity_gbq: Annotated[float | None, typer.Option(help="Activity (GBq): forward.")] = None,
    cf: _CF = None,
    residual: Annotated[float, typer.Option(help="Fraction left in the vial, 0-1.")] = 0.0,
    lung_mass_kg: Annotated[float | None, typer.Option(help="Lung mass (default 1 kg).")] = None,
    decay_hours: Annotated[float, typer.Option(help="Hours from calibration to treatment.")] = 0.0,
    sphere: _SPHERE = None,
    report: _REPORT = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """MIRD single compartment: activity for a dose, or the dose of an activity."""
    from ioplan.embolization import single_compartment

    r = single_compartment(
        mass_kg, lsf, dose_gy=dose_gy, activity_gbq=activity_gbq, cf=cf, residual=residual,
        lung_mass_kg=lung_mass_kg, sphere=sphere, decay_hours=decay_hours,
    )  # fmt: skip
    _sirt_out(r.to_dict(), as_json, report, "Y-90 single compartment")


@sirt_app.command("partition")
def sirt_partition(
    tumor_kg: Annotated[float, typer.Option(help="Tumour mass (kg).")],
    normal_kg: Annotated[float, typer.Option(help="Normal perfused liver mass (kg).")],
    lsf: _LSF,
    tn: Annotated[float | None, typer.Option(help="Tumour-to-normal uptake ratio (MAA).")] = None,
    tumor_counts: Annotated[
        float | None, typer.Option(help="MAA counts in the tumour (T/N from counts).")
    ] = None,
    normal_counts: Annotated[
        float | None, typer.Option(help="MAA counts in the normal liver.")
    ] = None,
    activity_gbq: Annotated[float | None, typer.Option(help="Activity (GBq): forward.")] = None,
    normal_dose_gy: Annotated[float | None, typer.Option(help="Normal-liver dose target.")] = None,
    tumor_dose_gy: Annotated[float | None, typer.Option(help="Tumour dose target.")] = None,
    cf: _CF = None,
    residual: Annotated[float, typer.Option(help="Fraction left in the vial, 0-1.")] = 0.0,
    lung_mass_kg: Annotated[float | None, typer.Option(help="Lung mass (default 1 kg).")] = None,
    sphere: _SPHERE = None,
    report: _REPORT = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Partition model: tumour and normal-liver doses, or the activity for a target."""
    from ioplan.embolization import partition, tn_ratio

    if tn is None:
        if tumor_counts is None or normal_counts is None:
            raise InputError("give --tn, or --tumor-counts and --normal-counts")
        # counts per kg: the ratio of concentrations (equal densities)
        tn = tn_ratio(tumor_counts, tumor_kg, normal_counts, normal_kg)
    r = partition(
        tumor_kg, normal_kg, tn, lsf, activity_gbq=activity_gbq, normal_dose_gy=normal_dose_gy,
        tumour_dose_gy=tumor_dose_gy, cf=cf, residual=residual, lung_mass_kg=lung_mass_kg,
        sphere=sphere,
    )  # fmt: skip
    _sirt_out(r.to_dict(), as_json, report, "Y-90 partition model")


@sirt_app.command("territories")
def sirt_territories(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV: name,tumor_kg,normal_kg,tn and one of "
            "activity_gbq, normal_dose_gy, tumor_dose_gy."
        ),
    ],
    lsf: _LSF,
    cf: _CF = None,
    lung_mass_kg: Annotated[float | None, typer.Option(help="Lung mass (default 1 kg).")] = None,
    sphere: _SPHERE = None,
    report: _REPORT = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Several perfused territories (lobar, segmental) by the partition model."""
    import csv

    from ioplan.embolization import territories

    if not file.is_file():
        raise InputError(f"territory file not found: {file}")
    items = []
    with file.open(newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh), start=2):
            item: dict = {"name": row.get("name") or f"territory {i - 1}"}
            for key, val in row.items():
                if key in ("name", None) or val in (None, ""):
                    continue
                try:
                    item[key.strip()] = float(val)
                except ValueError:
                    raise InputError(
                        f"{file}, row {i}, column {key}: not a number: {val!r}"
                    ) from None
            missing = {"tumor_kg", "normal_kg", "tn"} - set(item)
            if missing:
                raise InputError(f"{file}, row {i}: missing {', '.join(sorted(missing))}")
            items.append(item)
    doc = territories(items, lsf, cf=cf, lung_mass_kg=lung_mass_kg, sphere=sphere)
    _sirt_out(doc, as_json, report, "Y-90 partition by territory")


@sirt_app.command("bsa")
def sirt_bsa(
    height_cm: Annotated[float, typer.Option(help="Height (cm).")],
    weight_kg: Annotated[float, typer.Option(help="Weight (kg).")],
    tumor_ml: Annotated[float, typer.Option(help="Tumour volume (mL).")],
    normal_ml: Annotated[float, typer.Option(help="Normal liver volume (mL).")],
    lsf: Annotated[float, typer.Option("--lsf", help="Lung shunt fraction, 0-1.")] = 0.0,
    cf: _CF = None,
    report: _REPORT = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Resin BSA method, with the lung-shunt reductions of the instructions for use."""
    from ioplan.embolization import bsa_activity

    r = bsa_activity(height_cm, weight_kg, tumor_ml, normal_ml, lsf, cf=cf)
    _sirt_out(r.to_dict(), as_json, report, "Y-90 BSA (resin)")


@sirt_app.command("lsf")
def sirt_lsf(
    lung_counts: Annotated[float | None, typer.Option(help="Lung counts (SPECT/CT).")] = None,
    liver_counts: Annotated[float | None, typer.Option(help="Liver counts (SPECT/CT).")] = None,
    planar: Annotated[
        str | None,
        typer.Option(help="Planar counts: lung_ant,lung_post,liver_ant,liver_post."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Lung shunt fraction from counts (SPECT/CT, or planar conjugate views)."""
    from ioplan.embolization import lung_shunt_fraction, lung_shunt_fraction_planar

    if planar is not None:
        try:
            la, lp, va, vp = (float(v) for v in planar.split(","))
        except ValueError:
            raise InputError(
                "--planar needs four numbers: lung_ant,lung_post,liver_ant,liver_post"
            ) from None
        f = lung_shunt_fraction_planar(la, lp, va, vp)
    elif lung_counts is None or liver_counts is None:
        raise InputError("give --lung-counts and --liver-counts, or --planar")
    else:
        f = lung_shunt_fraction(lung_counts, liver_counts)
    _sirt_out({"lsf": round(f, 6), "lsf_percent": round(100 * f, 4)}, as_json, None, "LSF")


@sirt_app.command("tace")
def sirt_tace(
    height_cm: Annotated[float, typer.Option(help="Height (cm).")],
    weight_kg: Annotated[float, typer.Option(help="Weight (kg).")],
    mg_m2: Annotated[float, typer.Option(help="Doxorubicin dose, 50-75 mg/m2.")] = 50.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """TACE: doxorubicin by body surface area and the drug-eluting bead volume."""
    from ioplan.embolization import tace_dose

    _sirt_out(tace_dose(height_cm, weight_kg, mg_m2), as_json, None, "TACE")


@sirt_app.command("synthetic-spect")
def sirt_synthetic_spect(
    case: Annotated[Path, typer.Argument(help="Case folder (labels.nii.gz).")],
    out: Annotated[Path, typer.Option(help="SPECT file to write (NIfTI).")],
    tn: Annotated[float, typer.Option(help="Tumour-to-normal uptake ratio.")] = 4.0,
    lsf: Annotated[float, typer.Option("--lsf", help="Lung shunt fraction, 0-1.")] = 0.05,
    fwhm_mm: Annotated[float, typer.Option(help="Resolution (FWHM, mm).")] = 12.0,
    total_counts: Annotated[float, typer.Option(help="Expected total counts.")] = 2e6,
    seed: Annotated[int, typer.Option(help="Random seed (Poisson noise).")] = 0,
    overwrite: _OVERWRITE = False,
) -> None:
    """A synthetic SPECT of a case: uptake at T/N, a lung shunt, blur, Poisson noise."""
    from ioplan.anatomy import load_case
    from ioplan.embolization import check_lsf, synthetic_spect
    from ioplan.imaging import write_nifti

    c = load_case(case)
    spect = synthetic_spect(c.labels, tn=tn, lsf=check_lsf(lsf), fwhm_mm=fwhm_mm,
                            total_counts=total_counts, seed=seed)  # fmt: skip
    write_nifti(spect, out, overwrite=overwrite)
    typer.echo(f"SPECT written to {out}")


@sirt_app.command("voxel")
def sirt_voxel(
    spect: Annotated[Path, typer.Option(help="SPECT or Y-90 PET (counts).")],
    ct: Annotated[Path, typer.Option(help="CT on the label grid (HU).")],
    labels: Annotated[Path, typer.Option(help="ioplan label map (liver 7, tumour 8, lung).")],
    out: Annotated[Path, typer.Option(help="Output folder: dose.nii.gz, dvh.png, report.")],
    activity_gbq: Annotated[
        float | None, typer.Option(help="Injected activity (GBq): patient-relative.")
    ] = None,
    absolute: Annotated[
        bool, typer.Option("--absolute", help="The image is activity in Bq/mL (Y-90 PET).")
    ] = False,
    method: Annotated[str, typer.Option(help="ldm or kernel.")] = "ldm",
    lsf: Annotated[float, typer.Option("--lsf", help="Lung shunt fraction, 0-1.")] = 0.0,
    lung_mass_kg: Annotated[
        float | None, typer.Option(help="Lung mass (kg) instead of the CT lung label's.")
    ] = None,
    cf: _CF = None,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Voxel dosimetry (local deposition or S-value kernel) with DVHs per structure."""
    from ioplan.embolization import voxel_dose, write_voxel_outputs
    from ioplan.imaging import check_output_folder, read_image

    check_output_folder(out, overwrite=overwrite)
    res = voxel_dose(
        read_image(spect), read_image(ct), read_image(labels), activity_gbq, lsf=lsf,
        method=method, cf=cf, lung_mass_kg=lung_mass_kg, absolute=absolute,
    )  # fmt: skip
    doc = res.to_dict() | {"activity_gbq": activity_gbq, "lsf": lsf}
    write_voxel_outputs(res, doc, out, overwrite=overwrite)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    typer.echo(f"method {res.method}, CF {res.cf_gy_kg_per_gbq} Gy kg/GBq")
    for name, st in res.structures.items():
        typer.echo(
            f"  {name}: mean {st['mean_gy']:.1f} Gy, D70 {st['d70_gy']:.1f} Gy, "
            f"V100 {st['v100_percent']:.1f} %"
        )
    for note in res.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"report: {out / 'report.html'}")
