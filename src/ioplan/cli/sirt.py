"""``ioplan sirt ...``: Y-90 radioembolization and TACE dosing.

Parse, call one library function (:mod:`ioplan.embolization`), print. The ranges stated in
the help are those of :data:`ioplan.embolization.RANGES` (a test holds them together).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
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


class _Sphere(StrEnum):  # the choices of ioplan.embolization.Sphere (a test holds them equal)
    glass = "glass"
    resin = "resin"


class _Method(StrEnum):
    ldm = "ldm"
    kernel = "kernel"


_CF = Annotated[
    float | None,
    typer.Option("--cf", help="Dose constant (Gy kg/GBq): 49.67 (EANM, default), 50 or 49.38."),
]
_LSF_HELP = "Lung shunt fraction, >= 0 and < 1 (0.05 for 5 %)."
_LSF = Annotated[float, typer.Option("--lsf", help=_LSF_HELP)]
_REPORT = Annotated[
    Path | None,
    typer.Option(
        help="Folder for a one-page HTML report (report.html); refused if it holds one "
        "unless --overwrite."
    ),
]
_SPHERE = Annotated[
    _Sphere | None,
    typer.Option(case_sensitive=False, help="Sphere type: check its dose limits (EANM 2022)."),
]
_JSON = Annotated[bool, typer.Option("--json", help="Print the result as JSON on standard output.")]
_RESIDUAL = Annotated[
    float,
    typer.Option(help="Fraction of the activity left in the vial and lines, >= 0 and < 1."),
]
_LUNG_MASS = Annotated[
    float | None,
    typer.Option(help="Lung mass in kg, 0.1-3 (default: the 1 kg convention)."),
]
_DECAY = Annotated[
    float,
    typer.Option(help="Hours from the vial's calibration to the treatment, 0-720 h."),
]
_ACTIVITY = Annotated[
    float | None, typer.Option(help="Activity in GBq, > 0 and <= 20: run the model forward.")
]
_HEIGHT = Annotated[float, typer.Option(help="Height in cm, 100-250.")]
_WEIGHT = Annotated[float, typer.Option(help="Weight in kg, 20-300.")]


def _sirt_out(result: dict, as_json: bool, report: Path | None, title: str,
              overwrite: bool = False) -> None:  # fmt: skip
    if report is not None:
        from ioplan.embolization import write_sirt_report

        write_sirt_report(result, report, title, overwrite=overwrite)
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


def _check_report(report: Path | None, overwrite: bool) -> None:
    """Refuse an unusable report folder before any work."""
    if report is not None:
        from ioplan.embolization import check_report_folder

        check_report_folder(report, overwrite=overwrite)


def _sphere(sphere: _Sphere | None) -> str | None:
    return None if sphere is None else sphere.value


@sirt_app.command("single")
def sirt_single(
    mass_kg: Annotated[float, typer.Option(help="Perfused liver mass in kg, > 0 and <= 5.")],
    lsf: _LSF,
    dose_gy: Annotated[
        float | None, typer.Option(help="Wanted mean dose in Gy, > 0 and <= 1000.")
    ] = None,
    activity_gbq: _ACTIVITY = None,
    cf: _CF = None,
    residual: _RESIDUAL = 0.0,
    lung_mass_kg: _LUNG_MASS = None,
    decay_hours: _DECAY = 0.0,
    sphere: _SPHERE = None,
    report: _REPORT = None,
    overwrite: _OVERWRITE = False,
    as_json: _JSON = False,
) -> None:
    """MIRD single compartment: activity for a dose, or the dose of an activity."""
    from ioplan.embolization import single_compartment

    _check_report(report, overwrite)
    r = single_compartment(
        mass_kg, lsf, dose_gy=dose_gy, activity_gbq=activity_gbq, cf=cf, residual=residual,
        lung_mass_kg=lung_mass_kg, sphere=_sphere(sphere), decay_hours=decay_hours,
    )  # fmt: skip
    _sirt_out(r.to_dict(), as_json, report, "Y-90 single compartment", overwrite)


_CASE = Annotated[
    Path | None,
    typer.Option("--case", help="Case folder that 'ioplan arteries' read (with --territory-from)."),
]
_TERRITORY_FROM = Annotated[
    Path | None,
    typer.Option(
        "--territory-from",
        help="Output folder of 'ioplan arteries': the perfused volume is --feeder's territory.",
    ),
]
_FEEDER = Annotated[
    int | None,
    typer.Option(
        "--feeder", help="branch_id (an integer >= 0) of a candidate position (arteries.json)."
    ),
]


def _territory(case: Path | None, territory_from: Path | None, feeder: int | None):
    """The territory inputs of --case/--territory-from/--feeder, or None when none is given."""
    if case is None and territory_from is None and feeder is None:
        return None
    if case is None or territory_from is None or feeder is None:
        raise InputError("--territory-from needs --case and --feeder (all three together)")
    from ioplan.embolization import territory_inputs

    return territory_inputs(case, territory_from, feeder)


def _territory_doc(t: dict) -> dict:
    keep = ("branch_id", "tumour_covered_percent", "tumour_ml", "normal_ml", "liver_ml")
    return {"territory": {k: t[k] for k in keep}}


@sirt_app.command("partition")
def sirt_partition(
    lsf: _LSF,
    tumor_kg: Annotated[
        float | None,
        typer.Option(help="Tumour mass in kg, > 0 and <= 5 (or from --territory-from)."),
    ] = None,
    normal_kg: Annotated[
        float | None,
        typer.Option(
            help="Normal perfused liver mass in kg, > 0 and <= 5 (or from --territory-from)."
        ),
    ] = None,
    case: _CASE = None,
    territory_from: _TERRITORY_FROM = None,
    feeder: _FEEDER = None,
    tn: Annotated[
        float | None,
        typer.Option(help="Tumour-to-normal uptake ratio (MAA), > 0 and <= 100; or counts."),
    ] = None,
    tumor_counts: Annotated[
        float | None,
        typer.Option(help="MAA counts in the tumour, >= 0 (T/N from counts per kg)."),
    ] = None,
    normal_counts: Annotated[
        float | None, typer.Option(help="MAA counts in the normal liver, > 0.")
    ] = None,
    activity_gbq: _ACTIVITY = None,
    normal_dose_gy: Annotated[
        float | None, typer.Option(help="Normal-liver dose target in Gy, > 0 and <= 1000.")
    ] = None,
    tumor_dose_gy: Annotated[
        float | None, typer.Option(help="Tumour dose target in Gy, > 0 and <= 1000.")
    ] = None,
    cf: _CF = None,
    residual: _RESIDUAL = 0.0,
    lung_mass_kg: _LUNG_MASS = None,
    decay_hours: _DECAY = 0.0,
    sphere: _SPHERE = None,
    report: _REPORT = None,
    overwrite: _OVERWRITE = False,
    as_json: _JSON = False,
) -> None:
    """Partition model: tumour and normal-liver doses, or the activity for a target.

    With --case, --territory-from (an 'ioplan arteries' output) and --feeder, the tumour
    and normal-liver masses are those inside that catheter position's territory.
    """
    from ioplan.embolization import partition, tn_from_inputs

    _check_report(report, overwrite)
    if territory_from is not None and (tumor_kg is not None or normal_kg is not None):
        raise InputError("give --tumor-kg/--normal-kg or --territory-from, not both")
    if territory_from is None and (tumor_kg is None or normal_kg is None):
        raise InputError("give --tumor-kg and --normal-kg, or --case, --territory-from, --feeder")
    terr = _territory(case, territory_from, feeder)
    if terr is not None:
        tumor_kg, normal_kg = terr["tumor_kg"], terr["normal_kg"]
    ratio = tn_from_inputs(tn, tumor_counts, normal_counts, tumor_kg, normal_kg)
    r = partition(
        tumor_kg, normal_kg, ratio, lsf, activity_gbq=activity_gbq,
        normal_dose_gy=normal_dose_gy, tumour_dose_gy=tumor_dose_gy, cf=cf, residual=residual,
        lung_mass_kg=lung_mass_kg, sphere=_sphere(sphere), decay_hours=decay_hours,
    )  # fmt: skip
    doc = r.to_dict() if terr is None else r.to_dict() | _territory_doc(terr)
    _sirt_out(doc, as_json, report, "Y-90 partition model", overwrite)


@sirt_app.command("territories")
def sirt_territories(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV (UTF-8): name,tumor_kg,normal_kg,tn and one of activity_gbq, "
            "normal_dose_gy, tumor_dose_gy per row; unique names."
        ),
    ],
    lsf: _LSF,
    cf: _CF = None,
    lung_mass_kg: _LUNG_MASS = None,
    sphere: _SPHERE = None,
    report: _REPORT = None,
    overwrite: _OVERWRITE = False,
    as_json: _JSON = False,
) -> None:
    """Several perfused territories (lobar, segmental) by the partition model."""
    from ioplan.embolization import read_territories, territories

    _check_report(report, overwrite)
    doc = territories(read_territories(file), lsf, cf=cf, lung_mass_kg=lung_mass_kg,
                      sphere=_sphere(sphere))  # fmt: skip
    _sirt_out(doc, as_json, report, "Y-90 partition by territory", overwrite)


@sirt_app.command("bsa")
def sirt_bsa(
    height_cm: _HEIGHT,
    weight_kg: _WEIGHT,
    tumor_ml: Annotated[float, typer.Option(help="Tumour volume in mL, > 0 and <= 5000.")],
    normal_ml: Annotated[float, typer.Option(help="Normal liver volume in mL, > 0 and <= 5000.")],
    lsf: _LSF = 0.0,
    cf: _CF = None,
    report: _REPORT = None,
    overwrite: _OVERWRITE = False,
    as_json: _JSON = False,
) -> None:
    """Resin BSA method, with the lung-shunt reductions of the instructions for use."""
    from ioplan.embolization import bsa_activity

    _check_report(report, overwrite)
    r = bsa_activity(height_cm, weight_kg, tumor_ml, normal_ml, lsf, cf=cf)
    _sirt_out(r.to_dict(), as_json, report, "Y-90 BSA (resin)", overwrite)


@sirt_app.command("lsf")
def sirt_lsf(
    lung_counts: Annotated[float | None, typer.Option(help="Lung counts (SPECT/CT), >= 0.")] = None,
    liver_counts: Annotated[
        float | None, typer.Option(help="Liver counts (SPECT/CT), >= 0.")
    ] = None,
    planar: Annotated[
        str | None,
        typer.Option(
            help="Planar counts, each >= 0: lung_ant,lung_post,liver_ant,liver_post "
            "(instead of SPECT counts)."
        ),
    ] = None,
    as_json: _JSON = False,
) -> None:
    """Lung shunt fraction from counts (SPECT/CT, or planar conjugate views)."""
    from ioplan.embolization import lsf_from_counts

    views = None
    if planar is not None:
        try:
            views = tuple(float(v) for v in planar.split(","))
        except ValueError:
            raise InputError(
                f"--planar needs four numbers lung_ant,lung_post,liver_ant,liver_post, "
                f"got {planar!r}"
            ) from None
    f = lsf_from_counts(lung_counts=lung_counts, liver_counts=liver_counts, planar=views)  # type: ignore[arg-type]
    _sirt_out({"lsf": round(f, 6), "lsf_percent": round(100 * f, 4)}, as_json, None, "LSF")


@sirt_app.command("tace")
def sirt_tace(
    height_cm: _HEIGHT,
    weight_kg: _WEIGHT,
    mg_m2: Annotated[
        float, typer.Option(help="Doxorubicin per body surface area in mg/m2, 50-75.")
    ] = 50.0,
    case: _CASE = None,
    territory_from: _TERRITORY_FROM = None,
    feeder: _FEEDER = None,
    as_json: _JSON = False,
) -> None:
    """TACE: doxorubicin by body surface area and the drug-eluting bead volume.

    With --case, --territory-from and --feeder: also the dose for that territory (the BSA
    dose x the territory's share of the liver volume, a proportional convention).
    """
    from ioplan.embolization import tace_dose, tace_territory

    dose = tace_dose(height_cm, weight_kg, mg_m2)
    terr = _territory(case, territory_from, feeder)
    if terr is not None:
        dose = tace_territory(dose, terr)
    _sirt_out(dose, as_json, None, "TACE")


@sirt_app.command("synthetic-spect")
def sirt_synthetic_spect(
    case: Annotated[Path, typer.Argument(help="Case folder (case.toml, labels).")],
    out: Annotated[Path, typer.Option(help="SPECT file to write (.nii or .nii.gz).")],
    tn: Annotated[float, typer.Option(help="Tumour-to-normal uptake ratio, > 0 and <= 100.")] = 4.0,
    lsf: _LSF = 0.05,
    fwhm_mm: Annotated[float, typer.Option(help="Resolution (FWHM) in mm, > 0 and <= 100.")] = 12.0,
    total_counts: Annotated[float, typer.Option(help="Expected total counts, 1 to 1e10.")] = 2e6,
    seed: Annotated[int, typer.Option(help="Seed of the Poisson noise, >= 0.")] = 0,
    overwrite: _OVERWRITE = False,
) -> None:
    """A synthetic SPECT of a case: uptake at T/N, a lung shunt, blur, Poisson noise."""
    from ioplan.embolization import write_synthetic_spect

    path = write_synthetic_spect(case, out, tn=tn, lsf=lsf, fwhm_mm=fwhm_mm,
                                 total_counts=total_counts, seed=seed,
                                 overwrite=overwrite)  # fmt: skip
    typer.echo(f"SPECT written to {path}")


@sirt_app.command("voxel")
def sirt_voxel(
    spect: Annotated[
        Path, typer.Option(help="SPECT (counts) or, with --absolute, Y-90 PET (Bq/mL).")
    ],
    ct: Annotated[Path, typer.Option(help="CT (HU) on the label grid.")],
    labels: Annotated[Path, typer.Option(help="ioplan label map (liver 7, tumour 8, lung 21).")],
    out: Annotated[Path, typer.Option(help="Output folder: dose.nii.gz, dvh.png, report.")],
    activity_gbq: Annotated[
        float | None,
        typer.Option(help="Injected activity in GBq, > 0 and <= 20 (patient-relative)."),
    ] = None,
    absolute: Annotated[
        bool, typer.Option("--absolute", help="The image is activity in Bq/mL (Y-90 PET).")
    ] = False,
    method: Annotated[
        _Method, typer.Option(help="ldm (local deposition) or kernel (S-value kernel).")
    ] = _Method.ldm,
    lsf: Annotated[
        float | None,
        typer.Option(
            "--lsf",
            help=_LSF_HELP + " Default: from the SPECT's counts in the lung label (0 when "
            "the label map has no lung, said in a note).",
        ),
    ] = None,
    lung_mass_kg: Annotated[
        float | None,
        typer.Option(help="Lung mass in kg, 0.1-3, instead of the CT lung label's."),
    ] = None,
    cf: _CF = None,
    case: _CASE = None,
    territory_from: _TERRITORY_FROM = None,
    feeder: _FEEDER = None,
    overwrite: _OVERWRITE = False,
    as_json: _JSON = False,
) -> None:
    """Voxel dosimetry (local deposition or S-value kernel) with DVHs per structure.

    With --case, --territory-from and --feeder, the perfused volume is that catheter
    position's territory (the label map must be on the case grid).
    """
    from ioplan.embolization import check_report_folder, voxel_dose, write_voxel_outputs
    from ioplan.imaging import read_image

    check_report_folder(out, overwrite=overwrite, voxel=True)
    terr = _territory(case, territory_from, feeder)
    label_vol = read_image(labels)
    if terr is not None:
        diff = terr["grid"].mismatch(label_vol.grid)
        if diff is not None:
            raise InputError(f"--labels is not on the case grid of --territory-from: {diff}")
    res = voxel_dose(
        read_image(spect), read_image(ct), label_vol, activity_gbq, lsf=lsf,
        method=method.value, cf=cf, lung_mass_kg=lung_mass_kg, absolute=absolute,
        territory=None if terr is None else terr["mask"],
    )  # fmt: skip
    doc = res.to_dict() | {"activity_gbq": activity_gbq, "lsf": res.lsf,
                           "lsf_from": "given" if lsf is not None else res.lsf_from}  # fmt: skip
    if terr is not None:
        doc |= _territory_doc(terr)
    write_voxel_outputs(res, doc, out, overwrite=overwrite)
    for w in res.warnings:
        _warn(w)
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
