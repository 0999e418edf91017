"""The ``ioplan`` command: a thin layer over the library.

User errors (:class:`~ioplan.errors.IoplanError`) print one line,
``error: <message>``, on standard error and exit with code 2. Set
``IOPLAN_DEBUG=1`` to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import json
import math
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
from ioplan.errors import InputError, IoplanError, OutputExistsError
from ioplan.registry._cli import app as registry_app

app = typer.Typer(
    name="ioplan",
    help="Interventional oncology planning: phantom cases, imaging, planning, simulation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _warn(message: str) -> None:
    """One warning line on stderr (never on stdout, which may carry JSON)."""
    err_console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)


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


_MODALITY = Annotated[str, typer.Option(help="mwa (microwave), rfa (radiofrequency) or cryo.")]


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("ioplan-demo"),
    modality: _MODALITY = "mwa",
    seed: _SEED = 0,
    spacing_mm: Annotated[
        float, typer.Option("--spacing-mm", help="Voxel size of the case and the plan (mm).")
    ] = 2.0,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print plan.json.")] = False,
    quiet: _QUIET = False,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Instead: play the synthetic MR scanner through the live thermometry loop "
            "(as `ioplan monitor --demo`; mwa or rfa).",
        ),
    ] = False,
    live_frames: Annotated[
        int, typer.Option(help="With --live: heating frames streamed (1 s apart in scan time).")
    ] = 60,
    baseline_frames: Annotated[int, typer.Option(help="With --live: baseline frames.")] = 10,
    interval_s: Annotated[
        float, typer.Option(help="With --live: wall-clock seconds between frames sent.")
    ] = 0.2,
    igtl_port: Annotated[
        int, typer.Option(help="With --live: serve the maps to 3D Slicer on this port (0: off).")
    ] = 18944,
) -> None:
    """The main job on the built-in demo case: plan an ablation, verify it, report.

    Generates a phantom with a 28 mm tumour 2 mm from a 5-6 mm hepatic vein branch
    (so that the heat sink matters), plans the ablation with a 5 mm margin, verifies
    it by full simulation, and writes the case, its overview and the plan report in OUT.

    With --live, plays the synthetic MR scanner (a heating hot spot, 3 T, TE 10 ms,
    SNR 50, 4 x 64 x 64 voxels) over OpenIGTLink loopback through the live
    thermometry loop instead, and prints its summary; nothing is written.
    """
    if live:
        _demo_live(modality, seed=seed, frames=live_frames, baseline_frames=baseline_frames,
                   interval_s=interval_s, igtl_port=igtl_port, as_json=as_json)  # fmt: skip
        return
    from ioplan.anatomy import save_case
    from ioplan.imaging import check_output_folder
    from ioplan.planning import PlanConfig, demo_case, plan_ablation, write_plan
    from ioplan.report import write_case_overview

    check_output_folder(out, overwrite=overwrite)  # fail before the work, not after
    cfg = PlanConfig(modality=modality, spacing_mm=min(max(spacing_mm, 1.0), 4.0), seed=seed)
    cfg.applicator()  # a bad modality fails now
    log = None if (quiet or as_json) else (lambda m: err_console.print(m, markup=False))
    with _progress(_PHANTOM_STEPS + 2, enabled=not quiet and not as_json) as advance:
        case, info = demo_case(seed=seed, spacing_mm=spacing_mm, progress=advance)
        advance("saving case")
        save_case(case, out, overwrite=overwrite)
        write_case_overview(case, out)
        advance("planning")
        plan = plan_ablation(case, cfg, log=log)
    report = write_plan(plan, case, out / "plan", overwrite=True)
    doc = plan.to_dict()
    doc["demo"] = info
    (out / "plan" / "plan.json").write_text(json.dumps(doc, indent=2) + "\n")
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    _print_plan_summary(plan)
    # paths on lines of their own, never wrapped (people and tools copy them)
    typer.echo(f"case: {out} (overview: {out / 'index.html'})")
    typer.echo(f"report: {report}")


def _demo_live(modality: str, *, seed: int, frames: int, baseline_frames: int,
               interval_s: float, igtl_port: int, as_json: bool) -> None:  # fmt: skip
    """``ioplan demo --live``: the synthetic scanner through the live loop."""
    from ioplan.monitoring import ThermometryConfig

    if modality not in ("mwa", "rfa"):
        raise InputError(
            f"--live plays a heating series (mwa or rfa), got --modality {modality!r}; cryo on "
            "MR is measured with `ioplan thermometry --probe`"
        )
    if frames < 1:
        raise InputError(f"--live-frames must be >= 1, got {frames}")
    if not 0 <= interval_s <= 10:
        raise InputError(f"--interval-s must be in 0-10 s, got {interval_s}")
    cfg = ThermometryConfig(b0_t=3.0, te_ms=10.0, baseline_frames=baseline_frames)
    # the stream is over once no frame came for a few intervals (at least 1 s)
    _live_loop(cfg, folder=None, frame_s=1.0, igtl_input=None, igtl_port=igtl_port,
               demo={"frames": frames, "interval_s": interval_s, "seed": seed},
               idle_timeout_s=max(1.0, 5 * interval_s), as_json=as_json)  # fmt: skip


def _print_plan_summary(plan) -> None:
    verdict = "covers" if plan.covered else "does NOT cover"
    for a in plan.applicators:
        setting = (
            f"protocol {a['protocol']}"
            if a.get("protocol")
            else f"{a['power_w']:g} W for {a['duration_s']:g} s"
        )
        console.print(
            f"{escape(a['id'])}: {setting}, entry "
            f"{a['entry_mm']} -> tip {a['tip_mm']} mm (LPS), depth {a['insertion_depth_mm']} mm"
        )
    console.print(
        f"plan {verdict} the {plan.tumour_diameter_mm:.0f} mm tumour + {plan.margin_mm:g} mm "
        f"margin: tumour {plan.coverage_percent:.1f} %, tumour + margin "
        f"{plan.margin_coverage_percent:.1f} %, minimal margin {plan.minimal_margin_mm:.1f} mm, "
        f"normal liver ablated {plan.ablated_liver_ml:.1f} mL (verified by simulation; "
        f"{plan.runtime_s:.1f} s)"
    )
    for r in plan.at_risk[:3]:
        extreme = (
            f"min {r['min_temperature_c']:.1f}"
            if plan.modality == "cryo"
            else f"max {r['max_temperature_c']:.1f}"
        )
        console.print(
            f"  {r['structure']}: {r['closest_distance_mm']:.1f} mm from the zone, {extreme} degC"
        )
    for sug in plan.suggestions:
        console.print(f"  suggestion: {escape(sug)}")
    for note in plan.notes:
        console.print(f"  note: {escape(note)}")


@app.command()
def select(
    case: Annotated[Path, typer.Argument(help="Case folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Recommend a treatment (ablation, which modality, TACE/TARE, referral), with sources."""
    from ioplan.anatomy import load_case
    from ioplan.planning import select_treatment

    sel = select_treatment(load_case(case))
    if as_json:
        sys.stdout.write(json.dumps(sel.to_dict(), indent=2) + "\n")
        return
    typer.echo(f"recommendation: {sel.recommendation}")
    for r in sel.reasons:
        typer.echo(f"  - {r['reason']} [{r['source']}]")
    typer.echo(f"({sel.disclaimer})")


@app.command()
def plan(
    case: Annotated[Path, typer.Argument(help="Case folder (see `ioplan phantom`).")],
    out: Annotated[Path, typer.Option(help="Output folder for the plan.")],
    modality: _MODALITY = "mwa",
    applicator: Annotated[
        str | None, typer.Option(help="Applicator id (default: one per modality).")
    ] = None,
    margin_mm: Annotated[
        float | None,
        typer.Option(help="Margin around the tumour (default 5; 10 for colorectal metastases)."),
    ] = None,
    protect_mm: Annotated[
        float, typer.Option(help="Keep lethal damage this far from protected structures.")
    ] = 3.0,
    tumour: Annotated[int, typer.Option(help="Which tumour of the case (0: the first).")] = 0,
    spacing_mm: Annotated[
        float, typer.Option("--spacing-mm", help="Simulation voxel size (mm).")
    ] = 2.0,
    guidance: Annotated[str, typer.Option(help="CT or MR (angle or bore limits).")] = "CT",
    safety_mm: Annotated[
        float, typer.Option(help="Smallest distance from a path to a forbidden structure.")
    ] = 5.0,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print plan.json.")] = False,
    quiet: _QUIET = False,
) -> None:
    """Plan an ablation: safe paths, placement and energy, verified by simulation."""
    from ioplan.anatomy import load_case
    from ioplan.imaging import check_output_folder
    from ioplan.planning import PlanConfig, TrajectoryConfig, plan_ablation, write_plan

    check_output_folder(out, overwrite=overwrite)
    cfg = PlanConfig(
        modality=modality,
        applicator_id=applicator,
        margin_mm=margin_mm,
        protect_mm=protect_mm,
        tumour_index=tumour,
        spacing_mm=spacing_mm,
        trajectories=TrajectoryConfig(modality=guidance.upper(), safety_mm=safety_mm),
    )
    cfg.applicator()
    case_obj = load_case(case)
    log = None if (quiet or as_json) else (lambda m: err_console.print(m, markup=False))
    result = plan_ablation(case_obj, cfg, log=log)
    report = write_plan(result, case_obj, out, overwrite=overwrite)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    _print_plan_summary(result)
    typer.echo(f"report: {report}")


def _read_points(path: Path) -> list[tuple[float, float, float]]:
    """Landmarks: a CSV of x,y,z (LPS mm), one per line, or a 3D Slicer .mrk.json/.fcsv."""
    if not path.is_file():
        raise InputError(f"landmark file not found: {path}")
    text = path.read_text()
    if path.suffix == ".json":
        try:
            doc = json.loads(text)
            pts = [p["position"] for m in doc["markups"] for p in m["controlPoints"]]
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{path}: not a Slicer markups file") from None
        return [tuple(float(v) for v in p) for p in pts]
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#") or line[0].isalpha():
            continue
        parts = line.split(",")
        try:
            out.append(tuple(float(v) for v in parts[:3]) if path.suffix != ".fcsv"
                       else tuple(float(v) for v in parts[1:4]))  # fmt: skip
        except ValueError:
            raise InputError(f"{path}, line {i}: expected x,y,z in mm") from None
    return out


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

    from ioplan.assessment import measure_margin
    from ioplan.assessment._register import register_images, register_landmarks, warp
    from ioplan.imaging import check_output_folder, read_image

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
            _read_points(landmarks_post), _read_points(landmarks_pre), margin_mm=margin_mm
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
        from ioplan.assessment._outputs import write_margin_outputs

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


@app.command()
def thermometry(
    magnitude: Annotated[
        Path | None, typer.Option(help="Magnitude: 4D NIfTI file or DICOM folder.")
    ] = None,
    phase: Annotated[
        Path | None, typer.Option(help="Phase: 4D NIfTI file or DICOM folder (see --phase-scale).")
    ] = None,
    real: Annotated[
        Path | None, typer.Option(help="Real part (with --imaginary): 4D NIfTI or DICOM folder.")
    ] = None,
    imaginary: Annotated[
        Path | None, typer.Option(help="Imaginary part: 4D NIfTI file or DICOM folder.")
    ] = None,
    series: Annotated[
        Path | None,
        typer.Option(
            help="One DICOM folder with both components (split by ImageType M/P/R/I), or an "
            "ISMRMRD image file (.h5)."
        ),
    ] = None,
    b0_t: Annotated[
        float | None, typer.Option("--b0-t", help="Field strength (T; default: the header's).")
    ] = None,
    te_ms: Annotated[
        float | None, typer.Option("--te-ms", help="Echo time (ms; default: the header's).")
    ] = None,
    baseline_frames: Annotated[int, typer.Option(help="Frames averaged as baseline.")] = 1,
    out: Annotated[Path | None, typer.Option(help="Output folder for the maps.")] = None,
    phase_scale: Annotated[
        str,
        typer.Option(
            help="Stored phase to radians: auto (Siemens by Manufacturer, else radians or "
            "milliradians by range; radians for NIfTI), radians, milliradians, siemens (12-bit)."
        ),
    ] = "auto",
    frame_s: Annotated[
        float | None, typer.Option(help="Seconds between frames (default: the headers').")
    ] = None,
    baseline_temperature_c: Annotated[
        float, typer.Option(help="Tissue temperature at baseline (degC).")
    ] = 37.0,
    alpha_ppm_per_c: Annotated[
        float | None, typer.Option(help="PRF coefficient (default -0.01 ppm/degC).")
    ] = None,
    multi_baseline: Annotated[
        bool, typer.Option(help="Match each frame to its closest baseline (breathing).")
    ] = False,
    drift_order: Annotated[
        int, typer.Option(help="Drift correction polynomial order (-1 off, 0-2).")
    ] = -1,
    referenceless: Annotated[
        bool, typer.Option(help="Referenceless: background fitted in --reference each frame.")
    ] = False,
    reference: Annotated[
        Path | None, typer.Option(help="Mask of unheated voxels (drift reference).")
    ] = None,
    protected: Annotated[Path | None, typer.Option(help="Mask of protected structures.")] = None,
    planned_zone: Annotated[
        Path | None,
        typer.Option(help="Planned ablation zone (mask, any grid): overlap with the necrosis."),
    ] = None,
    alert_c: Annotated[
        float | None, typer.Option(help="Alert above this temperature (default 45 degC).")
    ] = None,
    probe: Annotated[
        list[str] | None,
        typer.Option(help="Cryoprobe tip x,y,z (LPS mm); repeat: segment the ice ball."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Heat source x,y,z (LPS mm): fit power and perfusion, predict the zone."),
    ] = None,
    heat_on_s: Annotated[
        float, typer.Option(help="When heating started (s, with --source).")
    ] = 0.0,
    end_s: Annotated[
        float | None, typer.Option(help="Planned end of heating (s, with --source).")
    ] = None,
    applicator_id: Annotated[
        str | None,
        typer.Option(
            "--applicator",
            help="With --source (the tip): learn with the full engine and this catalogue "
            "applicator instead of a point source; needs --power-w and --direction.",
        ),
    ] = None,
    power_w: Annotated[
        float | None, typer.Option(help="Generator power (W, with --applicator).")
    ] = None,
    direction: Annotated[
        str | None,
        typer.Option(help="Applicator direction dx,dy,dz, entry towards tip (with --applicator)."),
    ] = None,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """PRF-shift thermometry of a stored series: temperature, CEM43, necrosis, uncertainty."""
    import numpy as np

    from ioplan.imaging import (
        Volume,
        check_output_folder,
        read_image,
        write_nifti,
        write_nifti_series,
    )
    from ioplan.monitoring import ThermometryConfig, read_series, run_thermometry

    if out is not None:
        check_output_folder(out, overwrite=overwrite)
    if frame_s is not None and not frame_s > 0:
        raise InputError(f"--frame-s must be > 0, got {frame_s}")
    ser = read_series(magnitude=magnitude, phase=phase, real=real, imaginary=imaginary,
                      series=series, phase_scale=phase_scale)  # fmt: skip
    acquisition = dict(ser.read_as)
    for name, opt, given, header, unit in (("B0", "--b0-t", b0_t, ser.b0_t, "T"),
                                           ("TE", "--te-ms", te_ms, ser.te_ms, "ms")):  # fmt: skip
        if given is not None and header is not None and abs(given - header) > 1e-6:
            _warn(f"{opt} {given:g} overrides the header's {name} of {header:g} {unit}")
        acquisition[f"{name.lower()}_from"] = "command line" if given is not None else "header"
    b0_t = b0_t if b0_t is not None else ser.b0_t
    te_ms = te_ms if te_ms is not None else ser.te_ms
    missing = [f"{n} ({o})" for n, o, v in (("B0", "--b0-t", b0_t), ("TE", "--te-ms", te_ms))
               if v is None]  # fmt: skip
    if missing:
        raise InputError(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} needed: the "
            f"headers do not give {'it' if len(missing) == 1 else 'them'}"
        )
    acquisition |= {"b0_t": b0_t, "te_ms": te_ms}
    cfg = ThermometryConfig(
        b0_t=b0_t, te_ms=te_ms, baseline_frames=baseline_frames,
        baseline_temperature_c=baseline_temperature_c, alpha_ppm_per_c=alpha_ppm_per_c,
        multi_baseline=multi_baseline, drift_order=drift_order, alert_temperature_c=alert_c,
        referenceless=referenceless,
    )  # fmt: skip
    frames, grid = ser.frames, ser.grid
    if frame_s is not None:
        times = [i * frame_s for i in range(len(frames))]
        acquisition["frame_times"] = "--frame-s"
    elif ser.times_s is not None:
        times = [float(t) for t in ser.times_s]
    else:
        raise InputError("the headers give no frame times: pass --frame-s")
    step = float(np.median(np.diff(times))) if len(times) > 1 else (frame_s or 1.0)

    def mask(path):
        if path is None:
            return None
        v = read_image(path)
        v.grid.require_same(grid, what=f"mask {path}")
        return np.asarray(v.array) > 0

    if (drift_order >= 0 or referenceless) and reference is None:
        raise InputError("drift correction and referenceless need --reference (unheated voxels)")
    res = run_thermometry(
        frames, times, cfg, grid=grid,
        protected=mask(protected), reference=mask(reference),
        probes_lps=[_parse_point(p_, "--probe") for p_ in probe] if probe else None,
    )  # fmt: skip
    summary = res["summary"]
    summary["acquisition"] = acquisition
    if planned_zone is not None:
        from ioplan.imaging import resample
        from ioplan.monitoring import zone_overlap

        zone = read_image(planned_zone)
        if not zone.grid.overlaps(grid):
            raise InputError(f"--planned-zone {planned_zone} does not overlap the thermometry")
        # as a fraction, linearly: a voxel is in the zone when more than half of it is
        frac = resample(Volume(np.asarray(zone.array > 0, np.float32), zone.grid), grid)
        summary["planned_zone"] = zone_overlap(
            res["necrosis"], np.asarray(frac.array) > 0.5, grid.voxel_volume_ml
        )
    if source is not None:
        from ioplan.monitoring import predict_zone

        if end_s is None:
            raise InputError("--source needs --end-s (the planned end of heating)")
        src = np.asarray(_parse_point(source, "--source"))
        if applicator_id is not None:
            from ioplan.monitoring import predict_zone_engine

            if power_w is None or direction is None:
                raise InputError("--applicator needs --power-w and --direction dx,dy,dz")
            pred = predict_zone_engine(
                list(res["temperature"]), res["frame_times_s"], grid.voxel_centres_lps(),
                applicator_id=applicator_id, tip_lps=src,
                direction=_parse_point(direction, "--direction"), nominal_power_w=power_w,
                t_on_s=heat_on_s, end_time_s=end_s, valid=res["valid"],
                body_c=baseline_temperature_c,
            )  # fmt: skip
        else:
            r_mm = np.linalg.norm(grid.voxel_centres_lps() - src, axis=-1)
            pred = predict_zone(
                list(res["temperature"]), res["frame_times_s"], r_mm, t_on_s=heat_on_s,
                end_time_s=end_s, voxel_ml=grid.voxel_volume_ml, valid=res["valid"],
                body_c=baseline_temperature_c,
            )  # fmt: skip
        summary["prediction"] = pred.to_dict()
    for a in summary["alerts"][:5]:
        _warn(
            f"frame {a['frame']}: {a['temperature_c']} degC in a protected structure at "
            f"voxel {a['voxel']} (limit {a['limit_c']})"
        )
    for note in summary["notes"]:
        _warn(note)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_nifti_series(res["temperature"], grid, out / "temperature.nii.gz", frame_s=step,
                           overwrite=True)  # fmt: skip
        write_nifti(Volume(res["cem43"].astype(np.float32), grid), out / "cem43.nii.gz",
                    overwrite=True)  # fmt: skip
        write_nifti(Volume(res["necrosis"].astype(np.uint8), grid), out / "necrosis.nii.gz",
                    overwrite=True)  # fmt: skip
        write_nifti(Volume(res["uncertainty"].astype(np.float32), grid),
                    out / "uncertainty.nii.gz", overwrite=True)  # fmt: skip
        if res["ice_mask"] is not None:
            write_nifti(Volume(res["ice_mask"].astype(np.uint8), grid), out / "ice.nii.gz",
                        overwrite=True)  # fmt: skip
            write_nifti(Volume(res["lethal_mask"].astype(np.uint8), grid),
                        out / "lethal_minus40.nii.gz", overwrite=True)  # fmt: skip
        (out / "thermometry.json").write_text(json.dumps(summary, indent=2) + "\n")
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    typer.echo(
        f"{summary['frames']} frames after {baseline_frames} baseline: max "
        f"{summary['max_temperature_c']} degC, necrosis {summary['necrosis_volume_ml']} mL, "
        f"{summary['ms_per_frame']} ms per frame, {len(summary['alerts'])} alerts"
    )
    if out is not None:
        typer.echo(f"maps: {out}")


@app.command()
def monitor(
    b0_t: Annotated[float, typer.Option("--b0-t", help="Field strength (T).")] = 3.0,
    te_ms: Annotated[float, typer.Option("--te-ms", help="Echo time (ms).")] = 10.0,
    baseline_frames: Annotated[int, typer.Option(help="Frames averaged as baseline.")] = 10,
    folder: Annotated[
        Path | None, typer.Option(help="Folder the scanner writes NNNN_magnitude/_phase into.")
    ] = None,
    frame_s: Annotated[float, typer.Option(help="Seconds between frames (folder input).")] = 1.0,
    igtl_input: Annotated[
        str | None, typer.Option(help="Scanner's OpenIGTLink server, host:port.")
    ] = None,
    igtl_port: Annotated[
        int, typer.Option(help="Serve the maps to 3D Slicer on this port (0: off).")
    ] = 18944,
    demo: Annotated[bool, typer.Option(help="Play the synthetic scanner (loopback).")] = False,
    multi_baseline: Annotated[bool, typer.Option(help="Multi-baseline library.")] = False,
    idle_timeout_s: Annotated[
        float, typer.Option(help="Stop after this long without a frame.")
    ] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Live MR thermometry: frames in (folder or OpenIGTLink), maps out to 3D Slicer."""
    from ioplan.monitoring import ThermometryConfig

    sources = sum(x is not None and x is not False for x in (folder, igtl_input, demo or None))
    if sources != 1:
        raise InputError("give one input: --folder, --igtl-input host:port, or --demo")
    cfg = ThermometryConfig(b0_t=b0_t, te_ms=te_ms, baseline_frames=baseline_frames,
                            multi_baseline=multi_baseline)  # fmt: skip
    _live_loop(cfg, folder=folder, frame_s=frame_s, igtl_input=igtl_input, igtl_port=igtl_port,
               demo={} if demo else None, idle_timeout_s=idle_timeout_s,
               as_json=as_json)  # fmt: skip


def _live_loop(cfg, *, folder: Path | None, frame_s: float, igtl_input: str | None,
               igtl_port: int, demo: dict | None, idle_timeout_s: float,
               as_json: bool) -> None:  # fmt: skip
    """The live loop of ``monitor`` and ``demo --live``: frames in, table, maps out, summary.

    ``demo``: play the synthetic scanner over loopback (keyword arguments of
    :func:`ioplan.monitoring._live.demo_scanner`); None for a real input.
    """
    import numpy as np
    import pyigtl
    from rich.live import Live

    from ioplan.monitoring import Thermometry, warm_up
    from ioplan.monitoring._live import demo_scanner, folder_frames, igtl_frames, run_live

    warm_up()  # before frames arrive: the first frame must not wait for the kernels
    th = Thermometry(cfg)
    closers = []
    try:
        out_server = pyigtl.OpenIGTLinkServer(port=igtl_port) if igtl_port else None
    except OSError as exc:
        raise InputError(f"cannot serve OpenIGTLink on port {igtl_port}: {exc.strerror}") from None
    if out_server is not None:
        closers.append(out_server)
    if demo is not None:
        scanner, _ = demo_scanner(0, baseline=cfg.baseline_frames, **demo)
        closers.append(scanner)
        igtl_input = f"127.0.0.1:{scanner.port}"
    try:
        if folder is not None:
            frames = folder_frames(folder, frame_s=frame_s, idle_timeout_s=idle_timeout_s)
        else:
            host, _, port = str(igtl_input).rpartition(":")
            if not port.isdigit():
                raise InputError(f"--igtl-input must be host:port, got {igtl_input!r}")
            client = pyigtl.OpenIGTLinkClient(host=host or "127.0.0.1", port=int(port))
            closers.append(client)
            frames = igtl_frames(client, idle_timeout_s=idle_timeout_s, notes=th.notes)
        state = {"n": 0, "ms": 0.0, "tmax": float("nan"), "nec": 0.0, "alerts": 0}

        def table():
            t = Table(title="ioplan monitor")
            for k in ("frame", "latency ms", "max degC", "necrosis mL", "alerts"):
                t.add_column(k)
            t.add_row(str(state["n"]), f"{state['ms']:.1f}", f"{state['tmax']:.1f}",
                      f"{state['nec']:.2f}", str(state["alerts"]))  # fmt: skip
            return t

        live = Live(table(), console=err_console, refresh_per_second=4, transient=as_json)

        def on_frame(f, r):
            state["n"] = f.index
            if r is not None:
                state.update(ms=r.ms, tmax=r.max_temperature_c, nec=r.necrosis_volume_ml)
                state["alerts"] += len(r.alerts)
            live.update(table())

        with live:
            results = run_live(frames, th, server=out_server, on_frame=on_frame)
    finally:
        for c in closers:
            c.stop()
    summary = {
        "frames": len(results),
        "max_temperature_c": round(
            max((r.max_temperature_c for r in results), default=float("nan")), 3
        ),
        "necrosis_volume_ml": round(results[-1].necrosis_volume_ml, 4) if results else 0.0,
        "ms_per_frame": round(float(np.median([r.ms for r in results])), 3) if results else None,
        "alerts": [a for r in results for a in r.alerts],
        "notes": list(th.notes),
    }
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        for note in summary["notes"]:
            _warn(note)
        typer.echo(
            f"{summary['frames']} frames: max {summary['max_temperature_c']} degC, necrosis "
            f"{summary['necrosis_volume_ml']} mL, {summary['ms_per_frame']} ms per frame"
        )


sirt_app = typer.Typer(help="Y-90 radioembolization: activity, dose, checks; TACE dosing.",
                       no_args_is_help=True)  # fmt: skip
app.add_typer(sirt_app, name="sirt")
app.add_typer(registry_app, name="registry")
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
        from ioplan.embolization._report import write_sirt_report

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
    from ioplan.embolization import voxel_dose
    from ioplan.embolization._report import write_voxel_outputs
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


@app.command()
def applicators(
    as_json: Annotated[bool, typer.Option("--json", help="Full records as JSON.")] = False,
) -> None:
    """List the applicators of the built-in catalogue."""
    from ioplan.devices import list_applicators

    apps = list_applicators()
    if as_json:
        sys.stdout.write(json.dumps([a.to_dict() for a in apps], indent=2) + "\n")
        return
    table = Table("id", "modality", "MHz", "diameter (mm)", "chart rows", "calibrated")
    table.columns[0].no_wrap = True
    for a in apps:
        table.add_row(
            a.id,
            a.modality,
            f"{a.frequency_mhz:g}" if a.modality != "cryo" else "-",
            f"{a.diameter_mm:g}",
            str(len(a.zone_chart)),
            "yes" if a.calibration else "no",
        )
    console.print(table)


def _parse_triplet(text: str | None, what: str) -> tuple[float, float, float] | None:
    return None if text is None else _parse_point(text, what)


@app.command()
def simulate(
    applicator: Annotated[str, typer.Option(help="Applicator id (see `ioplan applicators`).")] = "",
    applicator_file: Annotated[
        Path | None,
        typer.Option(help="A user-defined applicator (JSON with the catalogue fields)."),
    ] = None,
    power_w: Annotated[float, typer.Option(help="Generator power in W (MW, RF).")] = 0.0,
    duration_s: Annotated[float, typer.Option(help="Heating time in s (MW, RF).")] = 0.0,
    protocol: Annotated[
        str | None, typer.Option(help="Cryo protocol, e.g. freeze:600,thaw:300,freeze:600.")
    ] = None,
    case: Annotated[
        Path | None, typer.Option(help="Case folder (default: the built-in phantom).")
    ] = None,
    tissue: Annotated[
        str | None, typer.Option(help="Homogeneous block of this tissue instead of a case.")
    ] = None,
    tip_mm: Annotated[
        str | None, typer.Option(help="Tip 'x,y,z' in LPS mm (default: block centre / tumour).")
    ] = None,
    direction: Annotated[
        str, typer.Option(help="Insertion direction 'x,y,z' (towards the tip).")
    ] = "0,0,-1",
    perfusion_per_s: Annotated[
        float | None, typer.Option(help="Perfusion rate in 1/s for every tissue (0: ex vivo).")
    ] = None,
    spacing_mm: Annotated[float, typer.Option("--spacing-mm", help="Voxel size in mm.")] = 1.0,
    margin_mm: Annotated[float, typer.Option(help="Domain margin around the applicators.")] = 40.0,
    array: Annotated[
        int,
        typer.Option(
            help="Identical applicators: 1-4 (line, triangle, square), "
            "5-8 (one on the axis, the rest on a ring)."
        ),
    ] = 1,
    spacing_between_mm: Annotated[float, typer.Option(help="Distance between applicators.")] = 15.0,
    vessel: Annotated[
        list[str] | None,
        typer.Option(help="Straight vessel: diameter_mm=D,distance_mm=X,flow_ml_min=F; repeat."),
    ] = None,
    power_density_map: Annotated[
        Path | None, typer.Option(help="External power density (W/m^3), NIfTI/NRRD.")
    ] = None,
    sar_map: Annotated[Path | None, typer.Option(help="External SAR (W/kg), NIfTI/NRRD.")] = None,
    rf_mode: Annotated[str, typer.Option(help="RF generator: impedance or power.")] = "impedance",
    lethal_temperature_c: Annotated[
        float, typer.Option(help="Cryo zone: lowest temperature reached at or below this.")
    ] = -40.0,
    constant_properties: Annotated[
        bool, typer.Option(help="No temperature dependence or perfusion shutdown (verification).")
    ] = False,
    initial_temperature_c: Annotated[
        float | None,
        typer.Option(help="Start (and far-boundary) temperature in degC, e.g. 20 ex vivo."),
    ] = None,
    gpu: Annotated[bool, typer.Option(help="Run the CUDA kernel.")] = False,
    output_dir: Annotated[
        Path | None, typer.Option(help="Write NIfTI maps and result.json.")
    ] = None,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: _QUIET = False,
) -> None:
    """Simulate one ablation (MW, RF or cryo) and report its zone."""
    from ioplan.devices import applicator as get_applicator
    from ioplan.devices import load_applicator_file
    from ioplan.imaging import check_output_folder, read_image
    from ioplan.physics import CryoProtocol, SimulationConfig, VesselSpec, write_simulation_outputs
    from ioplan.physics import simulate as run_simulation

    if applicator_file is not None:
        app_obj = load_applicator_file(applicator_file)
    elif applicator:
        app_obj = get_applicator(applicator)
    else:
        raise InputError("give --applicator ID or --applicator-file FILE")
    if output_dir is not None:
        check_output_folder(output_dir, overwrite=overwrite)
    case_obj = None
    if case is not None and tissue is not None:
        raise InputError("give --case or --tissue, not both")
    if tissue is None:
        from ioplan.anatomy import load_case

        if case is not None:
            case_obj = load_case(case)
        else:
            case_obj = _phantom_case(spacing_mm)
    pd_map = read_image(power_density_map) if power_density_map is not None else None
    sar = read_image(sar_map) if sar_map is not None else None
    cfg = SimulationConfig(
        applicator=app_obj,
        power_w=power_w,
        duration_s=duration_s,
        protocol=CryoProtocol.parse(protocol) if protocol is not None else None,
        tissue=tissue,
        case=case_obj,
        tip_mm=_parse_triplet(tip_mm, "--tip-mm"),
        direction=_parse_point(direction, "--direction"),
        array=array,
        spacing_between_mm=spacing_between_mm,
        spacing_mm=spacing_mm,
        margin_mm=margin_mm,
        perfusion_per_s=perfusion_per_s,
        constant_properties=constant_properties,
        vessels=tuple(VesselSpec.parse(v) for v in (vessel or [])),
        rf_mode=rf_mode,
        power_density_w_m3=pd_map,
        sar_w_kg=sar,
        lethal_temperature_c=lethal_temperature_c,
        backend="gpu" if gpu else "cpu",
        initial_temperature_c=initial_temperature_c,
    )
    total = cfg.total_duration_s
    with _progress(100, enabled=not quiet and not as_json) as advance:
        last = {"pct": 0}

        def on_progress(t_s: float) -> None:
            pct = int(100 * t_s / total) if total > 0 else 100
            while last["pct"] < pct:
                last["pct"] += 1
                advance(f"simulating {t_s:.0f}/{total:.0f} s")

        result = run_simulation(cfg, progress=on_progress)
    for w in result.settings.get("warnings", []):
        _warn(w)
    doc = result.to_dict()
    if output_dir is not None:
        write_simulation_outputs(result, output_dir, overwrite=True)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    z = result.zone
    console.print(
        f"[bold]{escape(app_obj.id)}[/] zone: length {z.length_mm:.1f} mm, "
        f"width {z.width_mm:.1f} mm, volume {z.volume_ml:.2f} mL, "
        f"beyond tip {z.tip_extent_mm:.1f} mm"
    )
    for key, iso in result.isotherms.items():
        console.print(
            f"  isotherm {key} degC: length {iso.length_mm:.1f} mm, width {iso.width_mm:.1f} mm, "
            f"volume {iso.volume_ml:.2f} mL"
        )
    console.print(
        f"  temperature {result.min_temperature_c:.1f} to {result.max_temperature_c:.1f} degC, "
        f"energy {result.energy_j:.0f} J, {result.steps} steps of {result.dt_s:.3f} s in "
        f"{result.runtime_s:.1f} s ({result.voxel_updates_per_s / 1e6:.1f} M voxel updates/s)"
    )
    if output_dir is not None:
        console.print(f"  maps written to [bold]{escape(str(output_dir))}[/]")


@app.command()
def validate(
    table: Annotated[
        Path | None,
        typer.Option(help="Zone table CSV (mwa_zones.csv format); default: every catalogue chart."),
    ] = None,
    device: Annotated[list[str] | None, typer.Option(help="Only these devices (repeat).")] = None,
    rows: Annotated[
        int, typer.Option(help="Only the first N rows (0: all), e.g. a quick smoke run.")
    ] = 0,
    checks: Annotated[
        str | None,
        typer.Option(
            help="Instead of a table, the other published figures: cryo, rf, heat-sink or all "
            "(comma-separated)."
        ),
    ] = None,
    spacing_mm: Annotated[float, typer.Option("--spacing-mm", help="Voxel size in mm.")] = 1.0,
    initial_temperature_c: Annotated[
        float | None,
        typer.Option(help="Ex vivo start temperature of the block in degC (default: 20)."),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write an HTML report (plot + a picture per row) here.")
    ] = None,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: _QUIET = False,
) -> None:
    """Simulate every row of a published zone table and compare length and width."""
    from ioplan.devices import list_applicators
    from ioplan.imaging import check_output_folder
    from ioplan.report import write_validation_report
    from ioplan.validation import predict_zones, read_zone_table, rows_from_chart, summarise

    if not math.isfinite(spacing_mm) or not 0.25 <= spacing_mm <= 5.0:
        raise InputError(f"spacing_mm must be 0.25-5 mm, got {spacing_mm}")
    if rows < 0:
        raise InputError(f"--rows must be >= 0, got {rows}")
    if report is not None:
        check_output_folder(report, overwrite=overwrite)
    if checks is not None:
        _validate_checks(checks, spacing_mm, report, as_json, quiet)
        return
    if table is not None:
        todo = read_zone_table(table)
        title = f"ioplan validation: {table.name}"
    else:
        todo = [r for a in list_applicators() if a.zone_chart for r in rows_from_chart(a)]
        title = "ioplan validation: catalogue zone charts"
    if device:
        known = {r.device for r in todo}
        for d in device:
            if d not in known:
                raise InputError(f"--device {d}: no row of the table is for it")
        todo = [r for r in todo if r.device in set(device)]
    if rows:
        todo = todo[:rows]
    groups = len({(r.device, r.power_w) for r in todo})
    with _progress(groups, enabled=not quiet and not as_json) as advance:
        preds = predict_zones(
            todo,
            spacing_mm=spacing_mm,
            keep_sections=report is not None,
            initial_temperature_c=initial_temperature_c,
            progress=advance,
        )
        advance("done")
    doc = summarise(preds)
    if report is not None:
        index = write_validation_report(report, preds, doc, title=title)
        if not as_json:
            console.print(f"report written to [bold]{escape(str(index))}[/]")
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    t = Table(
        "device", "W", "s", "length", "predicted", "error", "width", "predicted", "error",
        title=f"predicted vs published zones ({spacing_mm:g} mm voxels, ex vivo block)",
    )  # fmt: skip
    for p in preds:
        el, ew = p.errors_mm
        r = p.row
        t.add_row(
            r.device, f"{r.power_w:g}", f"{r.duration_s:g}", f"{r.length_mm:g}",
            f"{p.predicted_length_mm:.1f}", f"{el:+.1f}", f"{r.width_mm:g}",
            f"{p.predicted_width_mm:.1f}", f"{ew:+.1f}",
        )  # fmt: skip
    console.print(t)
    console.print(
        f"mean |error| {doc['mean_abs_error_mm']:.2f} mm, max {doc['max_abs_error_mm']:.2f} mm "
        f"(length and width, {doc['n_rows']} rows); mean error: length "
        f"{doc['length_mean_error_mm']:+.2f} mm, width {doc['width_mean_error_mm']:+.2f} mm"
    )


def _validate_checks(
    names: str, spacing_mm: float, report: Path | None, as_json: bool, quiet: bool
) -> None:
    from ioplan.validation import CHECKS, run_checks

    wanted = list(CHECKS) if names.strip() == "all" else [n.strip() for n in names.split(",")]
    for n in wanted:
        if n not in CHECKS:
            raise InputError(f"--checks: unknown {n!r}; known: {', '.join(CHECKS)}, all")
    log = None if (quiet or as_json) else (lambda m: err_console.print(m, markup=False))
    results = run_checks(wanted, spacing_mm=spacing_mm, log=log)
    doc = {
        "checks": [r.to_dict() for r in results],
        "met": sum(r.met for r in results),
        "total": len(results),
        "spacing_mm": spacing_mm,
    }
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
        (report / "checks.json").write_text(json.dumps(doc, indent=2) + "\n")
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    t = Table("check", "measured", "published", "unit", "goal", "met", title="published figures")
    for r in results:
        t.add_row(
            r.name, f"{r.measured:.2f}", f"{r.reference:g}", r.unit, r.goal,
            "yes" if r.met else "NO",
        )  # fmt: skip
    console.print(t)
    console.print(f"{doc['met']} of {doc['total']} goals met ({spacing_mm:g} mm voxels)")


@app.command()
def calibrate(
    device: Annotated[str, typer.Argument(help="Microwave applicator id with a zone chart.")],
    table: Annotated[
        Path | None, typer.Option(help="Fit to this zone table's rows instead of the chart.")
    ] = None,
    spacing_mm: Annotated[float, typer.Option("--spacing-mm", help="Voxel size in mm.")] = 2.0,
    max_evaluations: Annotated[int, typer.Option(help="Most model evaluations.")] = 60,
    initial_temperature_c: Annotated[
        float | None,
        typer.Option(help="Ex vivo start temperature of the block in degC (default: 20)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Calibration TOML to update (default: the package's calibration.toml)."),
    ] = None,
    overwrite: _OVERWRITE = False,
    quiet: _QUIET = False,
) -> None:
    """Fit an antenna's efficiency and SAR shape to its published zones (run once, stored)."""
    from importlib import resources

    from ioplan.devices import applicator as get_applicator
    from ioplan.devices import calibration_record
    from ioplan.validation import (
        calibrate_microwave,
        read_zone_table,
        rows_from_chart,
        write_calibration,
    )

    app_obj = get_applicator(device)
    if max_evaluations < 1:
        raise InputError(f"--max-evaluations must be >= 1, got {max_evaluations}")
    target = output
    if target is None:
        target = Path(str(resources.files("ioplan.devices").joinpath("data/calibration.toml")))
    existing = calibration_record(device) if output is None else None
    if output is not None and output.exists():
        import tomllib

        try:
            existing = tomllib.loads(output.read_text()).get(device)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{output}: not a TOML file ({exc})") from None
    if existing is not None and not overwrite:
        raise OutputExistsError(
            f"{target} already holds a calibration of {device}; pass --overwrite to replace it"
        )
    if app_obj.modality == "cryo":
        _calibrate_cryo(app_obj, target, spacing_mm, quiet)
        return
    fit_rows = read_zone_table(table) if table is not None else rows_from_chart(app_obj)
    result = calibrate_microwave(
        app_obj,
        fit_rows,
        spacing_mm=spacing_mm,
        max_evaluations=max_evaluations,
        initial_temperature_c=initial_temperature_c,
        log=None if quiet else (lambda m: console.print(m, markup=False, highlight=False)),
    )
    command = f"ioplan calibrate {device} --spacing-mm {spacing_mm:g}"
    write_calibration(target, device, result.record(command))
    vals = ", ".join(f"{k} {v:.4g}" for k, v in result.values.items())
    console.print(
        f"{device}: {vals}; mean |error| {result.summary['mean_abs_error_mm']} mm, "
        f"max {result.summary['max_abs_error_mm']} mm at {spacing_mm:g} mm "
        f"({result.evaluations} evaluations); written to {escape(str(target))}"
    )


def _calibrate_cryo(app_obj, target: Path, spacing_mm: float, quiet: bool) -> None:
    """Fit a cryoprobe's temperature to Littrup 2009's lethal-ice diameter."""
    import datetime

    from ioplan.validation import (
        LITTRUP_DIAMETER_MM,
        LITTRUP_SMALL_PROBE_RATIO,
        calibrate_cryo_probe,
        write_calibration,
    )

    # 2.4 mm probes: 12 mm; 1.5-1.7 mm probes: 84 % of that (same paper)
    goal = LITTRUP_DIAMETER_MM[1] * (
        1.0 if app_obj.diameter_mm >= 2.0 else LITTRUP_SMALL_PROBE_RATIO
    )
    t, d = calibrate_cryo_probe(
        app_obj,
        goal,
        spacing_mm=spacing_mm,
        log=None if quiet else (lambda m: console.print(m, markup=False, highlight=False)),
    )
    rec = {
        "probe_temperature_c": round(t, 2),
        "rows": 1,
        "spacing_mm": spacing_mm,
        "target": f"lethal (-30 degC) diameter {goal:.1f} mm after 15 min in 39 degC agar "
        "(Littrup et al., JVIR 2009, PMC2762356)",
        "mean_abs_error_mm": round(abs(d - goal), 2),
        "max_abs_error_mm": round(abs(d - goal), 2),
        "command": f"ioplan calibrate {app_obj.id} --spacing-mm {spacing_mm:g}",
        "date": datetime.date.today().isoformat(),
    }
    write_calibration(target, app_obj.id, rec)
    console.print(
        f"{app_obj.id}: probe temperature {t:.1f} degC gives {d:.2f} mm (goal {goal:.1f} mm); "
        f"written to {escape(str(target))}"
    )


def _phantom_case(spacing_mm: float):
    """The built-in phantom at a spacing no finer than 1 mm (cropped later)."""
    from ioplan.anatomy import Case, PhantomConfig, generate_phantom

    sp = min(max(spacing_mm, 1.0), 5.0)
    return Case.from_phantom(generate_phantom(PhantomConfig(spacing_mm=sp, noise_hu=0.0)))


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
