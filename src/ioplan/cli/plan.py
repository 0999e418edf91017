"""``ioplan demo``, ``select`` and ``plan``: treatment selection and ablation planning."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ioplan.cli._common import (
    _MODALITY,
    _OVERWRITE,
    _PHANTOM_STEPS,
    _QUIET,
    _SEED,
    _progress,
    _refuse_unused,
    app,
    console,
    err_console,
)
from ioplan.errors import InputError
from ioplan.planning import (
    GOAL_MARGIN_COVERAGE_PERCENT,
    MARGIN_RANGE_MM,
    PROTECT_RANGE_MM,
    SAFETY_RANGE_MM,
    SPACING_RANGE_MM,
    check_in_range,
    goal_verdict,
)

#: Exit status of ``plan`` and ``demo --strict`` when the plan is made but misses its goal.
GOAL_MISSED_EXIT = 3

_GOAL_HELP = (
    "Exit status: 0 when the plan is made, whether or not it meets its goal (the verified "
    "zone covers >= 99 % of the tumour plus its margin and spares the protected "
    "structures; `goal_met` in the JSON and plan.json says which); with --strict, "
    f"{GOAL_MISSED_EXIT} when the plan is made and written but misses its goal; 2 on a user "
    "error (one line `error: ...`), nothing written."
)
_STRICT = Annotated[
    bool,
    typer.Option(
        "--strict",
        help=f"Exit with status {GOAL_MISSED_EXIT} when the plan misses its goal "
        "(`goal_met` false); the files are written either way.",
    ),
]
_SPACING_HELP = (
    f"Simulation voxel size, {SPACING_RANGE_MM[0]:g}-{SPACING_RANGE_MM[1]:g} mm "
    "(finer: slower and more memory)."
)


def _goal_exit(goal_met: bool, strict: bool) -> None:
    if strict and not goal_met:
        raise typer.Exit(GOAL_MISSED_EXIT)


@app.command(epilog=_GOAL_HELP)
def demo(
    ctx: typer.Context,
    out: Annotated[
        Path,
        typer.Option(help="Output folder (written whole at the end; --overwrite replaces it)."),
    ] = Path("ioplan-demo"),
    modality: Annotated[
        str | None,
        typer.Option(
            help="mwa (microwave), rfa (radiofrequency) or cryo (default: mwa; cryo for "
            "--organ kidney and soft_tissue)."
        ),
    ] = None,
    organ: Annotated[
        str,
        typer.Option(
            "--organ",
            help="liver (a tumour by a hepatic vein), lung (peripheral metastasis, MWA), "
            "kidney (exophytic renal cell carcinoma, cryo), bone (vertebral metastasis, "
            "MWA) or soft_tissue (thigh metastasis by the sciatic nerve, cryo): the organ "
            "phantom and the planner's rules for that organ.",
        ),
    ] = "liver",
    seed: _SEED = 0,
    spacing_mm: Annotated[
        float,
        typer.Option(
            "--spacing-mm",
            help="Voxel size of the case and the plan, "
            f"{SPACING_RANGE_MM[0]:g}-{SPACING_RANGE_MM[1]:g} mm.",
        ),
    ] = 2.0,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print plan.json.")] = False,
    quiet: _QUIET = False,
    strict: _STRICT = False,
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
    The demo's plan meets its coverage goal (99 % of the tumour + margin) with antennas
    on separate paths; its minimal margin is short of 5 mm where the tumour touches the
    veins, which the report says. A plan that misses its goal still exits 0; --strict
    exits 3 then.

    With --organ lung|kidney|bone|soft_tissue, the organ phantom's tumour is planned with
    that organ's rules (pleural crossings and pneumothorax risk; collecting system,
    hydrodissection and the cryo ice margin; the cord's temperature limits; the sciatic
    nerve's limits, the skin and the femoral vessels), verified and reported the same way.

    With --live, plays the synthetic MR scanner (a heating hot spot, 3 T, TE 10 ms,
    SNR 50, 4 x 64 x 64 voxels) over OpenIGTLink loopback through the live
    thermometry loop instead, and prints its summary; nothing is written.
    """
    from ioplan.anatomy import check_organ

    organ = check_organ(organ)
    if organ not in ("liver", "lung", "kidney", "bone", "soft_tissue"):
        raise InputError(f"--organ must be liver, lung, kidney, bone or soft_tissue, got {organ!r}")
    if modality is None:
        modality = "cryo" if organ in ("kidney", "soft_tissue") else "mwa"
    if live:
        _refuse_unused(ctx, ("out", "organ", "spacing_mm", "overwrite", "strict", "quiet"),
                       "with --live (it writes nothing and plays an MR hot spot)")  # fmt: skip
    else:
        _refuse_unused(ctx, ("live_frames", "baseline_frames", "interval_s", "igtl_port"),
                       "without --live")  # fmt: skip
    if live:
        _demo_live(modality, seed=seed, frames=live_frames, baseline_frames=baseline_frames,
                   interval_s=interval_s, igtl_port=igtl_port, as_json=as_json)  # fmt: skip
        return
    from ioplan.anatomy import phantom_grid
    from ioplan.planning import (
        DEMO_FOLDER_ENTRIES,
        ORGAN_DEMOS,
        PlanConfig,
        check_replaceable,
        demo_case,
        organ_demo_case,
        plan_ablation,
        plan_memory_bytes,
        write_demo,
    )
    from ioplan.resources import check_memory

    # every check that needs no work first: options, output folder, memory
    check_in_range(spacing_mm, *SPACING_RANGE_MM, "--spacing-mm")
    budget = ORGAN_DEMOS[organ]["time_budget_s"] if organ != "liver" else None
    cfg = PlanConfig(modality=modality, spacing_mm=spacing_mm, seed=seed,
                     organ=None if organ == "liver" else organ,
                     time_budget_s=budget)  # fmt: skip
    cfg.applicator()
    check_replaceable(out, command="demo", names=DEMO_FOLDER_ENTRIES, overwrite=overwrite)
    g = phantom_grid((spacing_mm,) * 3)
    check_memory(
        plan_memory_bytes(g, spacing_mm),
        f"the demo at {spacing_mm:g} mm ({' x '.join(map(str, g.shape))} voxels)",
        hint="use a coarser --spacing-mm",
    )
    log = None if (quiet or as_json) else (lambda m: err_console.print(m, markup=False))
    with _progress(_PHANTOM_STEPS + 2, enabled=not quiet and not as_json) as advance:
        if organ == "liver":
            case, info = demo_case(seed=seed, spacing_mm=spacing_mm, progress=advance)
        else:
            case, info = organ_demo_case(organ, seed=seed, spacing_mm=spacing_mm,
                                         progress=advance)  # fmt: skip
        advance("planning")
        plan = plan_ablation(case, cfg, log=log)
        advance("writing")
        doc = write_demo(case, info, plan, out, overwrite=overwrite)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _print_plan_summary(plan)
        # paths on lines of their own, never wrapped (people and tools copy them)
        typer.echo(f"case: {out} (overview: {out / 'index.html'})")
        typer.echo(f"report: {out / 'plan' / 'report.html'}")
    _goal_exit(plan.goal_met, strict)


def _demo_live(modality: str, *, seed: int, frames: int, baseline_frames: int,
               interval_s: float, igtl_port: int, as_json: bool) -> None:  # fmt: skip
    """``ioplan demo --live``: the synthetic scanner through the live loop."""
    from ioplan.cli.monitoring import _live_loop
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
    # a plan that covers its target but passes too near a structure misses its goal, not
    # the tumour
    kind, short = goal_verdict(plan.covered, plan.coverage_percent,
                               plan.margin_coverage_percent, plan.at_risk, plan.protect_mm,
                               GOAL_MARGIN_COVERAGE_PERCENT)  # fmt: skip
    verdict = "does NOT cover" if kind == "misses the target" else "covers"
    but = " but does NOT meet its goal" if kind == "misses the goal" else ""
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
        why = (a.get("covers") or {}).get("why")
        path = a.get("trajectory_id")
        if path is not None or why:
            parts = [f"path {path}"] if path is not None else []
            if why:
                parts.append(str(why))
            console.print(f"  {escape(': '.join(parts))}")
        chart = (a.get("chart") or {}).get("zone")
        if chart is not None:  # what the clinician would read off the manufacturer's chart
            console.print(
                f"  manufacturer chart (ex vivo) at this setting: {chart['length_mm']:.1f} x "
                f"{chart['width_mm']:.1f} mm; predicted for this patient "
                f"{a['predicted_length_mm']:.1f} x {a['predicted_width_mm']:.1f} mm"
            )
    console.print(
        f"plan {verdict} the {plan.tumour_diameter_mm:.0f} mm tumour + {plan.margin_mm:g} mm "
        f"margin{but}: tumour {plan.coverage_percent:.1f} %, tumour + margin "
        f"{plan.margin_coverage_percent:.1f} %, minimal margin {plan.minimal_margin_mm:.1f} mm, "
        f"{_normal_ablated(plan)} (verified by simulation; "
        f"{plan.runtime_s:.1f} s)"
    )
    if short:
        console.print(f"  goal not met: {escape('; '.join(short))}")
    if plan.covered and not plan.minimal_margin_mm >= plan.margin_mm:
        # two criteria grade the same zone: say both (the margin page uses the stricter)
        console.print(
            f"  (goal: {GOAL_MARGIN_COVERAGE_PERCENT:g} % of the tumour + margin; the minimal "
            f"margin, {plan.minimal_margin_mm:.1f} mm, is below {plan.margin_mm:g} mm: no "
            "technical success by the minimal-margin rule of `ioplan margin`)"
        )
    if plan.robust_coverage is not None:
        console.print(_robust_line(plan))
    peri = plan.perivascular or {}
    if peri.get("perivascular"):
        from ioplan.planning import describe_perivascular as describe

        console.print(f"perivascular: {escape(describe(peri))}")
    for r in plan.at_risk[:3]:
        extreme = (
            f"min {r['min_temperature_c']:.1f}"
            if plan.modality == "cryo"
            else f"max {r['max_temperature_c']:.1f}"
        )
        console.print(
            f"  {r['structure']}: {r['closest_distance_mm']:.1f} mm from the zone, {extreme} degC"
        )
    for line in _organ_lines(plan):
        console.print(escape(line))
    for sug in plan.suggestions:
        console.print(f"  suggestion: {escape(sug)}")
    for note in plan.notes:
        console.print(f"  note: {escape(note)}")


def _normal_ablated(plan) -> str:
    """``normal liver ablated 3.1 mL`` (the tumour's organ: kidney, lung, bone)."""
    organ = getattr(plan, "organ", "liver")
    if organ == "liver" or plan.ablated_host_ml is None:
        return f"normal liver ablated {plan.ablated_liver_ml:.1f} mL"
    return f"normal {organ} ablated {plan.ablated_host_ml:.1f} mL"


def _organ_lines(plan) -> list[str]:
    """The organ's findings (lung: pleura and pneumothorax; kidney: cryo ice margin)."""
    rec = getattr(plan, "organ_rules", None) or {}
    organ = getattr(plan, "organ", "liver")
    out = []
    if organ == "lung" and "pleural_crossings" in rec:
        risk = rec["pneumothorax_risk"]
        out.append(
            f"lung: {rec['pleural_crossings']} pleural crossing(s) per path, "
            f"{rec['lung_path_mm']:.0f} mm of aerated lung traversed, pneumothorax risk "
            f"{100 * risk['probability']:.0f} % (Huo et al. 2020 odds ratios)"
        )
    if organ in ("kidney", "soft_tissue") and "cryo" in rec:
        c = rec["cryo"]
        out.append(
            f"{organ.replace('_', ' ')} cryo: {c['freeze_cycles']} freeze cycles, ice edge "
            f"{c['ice_margin_mm']:.1f} mm beyond the tumour (>= "
            f"{c['ice_margin_required_mm']:g} mm), tumour within "
            f"-20/-40 degC {c['tumour_within_20c_percent']:.0f}/"
            f"{c['tumour_within_40c_percent']:.0f} %: {'met' if c['ok'] else 'NOT met'}"
        )
    for name, lim in (rec.get("temperature_limits") or {}).items():
        out.append(
            f"{name}: {lim['min_temperature_c']:.1f} to {lim['max_temperature_c']:.1f} degC "
            f"(limits {lim['min_limit_c']:g} / {lim['max_limit_c']:g} degC"
            f"{', EXCEEDED' if lim['limit_exceeded'] else ''})"
        )
    return out


def _robust_line(plan) -> str:
    """``robust coverage 0.83 (95 % CI 0.78-0.87) under 2 mm / 3 deg placement error``."""
    rob = plan.robustness or {}
    line = f"robust coverage {plan.robust_coverage:.2f}"
    ci = rob.get("ci95")
    if ci and len(ci) == 2 and None not in ci:
        line += f" (95 % CI {ci[0]:.2f}-{ci[1]:.2f})"
    mm, deg = rob.get("placement_error_mm"), rob.get("angle_error_deg")
    if mm is not None and deg is not None:
        line += f" under {mm:g} mm / {deg:g} deg placement error"
    return line


@app.command()
def select(
    case: Annotated[Path, typer.Argument(help="Case folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    organ: Annotated[
        str | None,
        typer.Option(
            help="Organ whose rules apply: liver, lung, kidney, bone, soft_tissue (default: "
            "case.toml's organ, else inferred from the labels around the tumour, else liver)."
        ),
    ] = None,
    histology: Annotated[
        str | None,
        typer.Option(
            help="Tumour histology, overriding case.toml: hcc, crc-metastasis, metastasis, "
            "nsclc, rcc, sarcoma, unknown."
        ),
    ] = None,
) -> None:
    """Recommend a treatment (ablation, which modality, TACE/TARE, referral), with sources.

    The organ's own rules apply (liver, lung, kidney, bone, soft tissue); a tumour beyond the cited
    guidance is named (e.g. "larger than 3 cm"). --json adds `organ`, `organ_source`,
    `organ_given`, `ablation_within_guidelines` and `outside_guidelines`.
    """
    from ioplan.anatomy import check_organ, load_case
    from ioplan.planning import select_treatment

    if organ is not None:
        organ = check_organ(organ)  # a bad value fails before the case is read
    sel = select_treatment(load_case(case), organ, histology=histology)
    if as_json:
        sys.stdout.write(json.dumps(sel.to_dict(), indent=2) + "\n")
        return
    how = "given" if sel.organ_given else sel.organ_source
    typer.echo(f"organ: {sel.organ} ({how})")
    for note in sel.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"recommendation: {sel.recommendation}")
    for text in sel.outside_guidelines:
        typer.echo(f"outside the guidance: {text}")
    for r in sel.reasons:
        typer.echo(f"  - {r['reason']} [{r['source']}]")
    typer.echo(f"({sel.disclaimer})")


@app.command(epilog=_GOAL_HELP)
def plan(
    case: Annotated[Path, typer.Argument(help="Case folder (see `ioplan phantom`).")],
    out: Annotated[
        Path,
        typer.Option(
            help="Output folder for the plan (written whole at the end; --overwrite replaces "
            "an earlier plan folder, never a folder holding other files)."
        ),
    ],
    modality: _MODALITY = "mwa",
    applicator: Annotated[
        str | None, typer.Option(help="Applicator id (default: one per modality).")
    ] = None,
    margin_mm: Annotated[
        float | None,
        typer.Option(
            help="Ablative margin around the tumour, "
            f"{MARGIN_RANGE_MM[0]:g}-{MARGIN_RANGE_MM[1]:g} mm (default 5; 10 for colorectal "
            "metastases)."
        ),
    ] = None,
    protect_mm: Annotated[
        float,
        typer.Option(
            help="Keep lethal damage this far from protected structures, "
            f"{PROTECT_RANGE_MM[0]:g}-{PROTECT_RANGE_MM[1]:g} mm."
        ),
    ] = 3.0,
    tumor: Annotated[
        int,
        typer.Option(
            "--tumor",
            help="Which tumour of the case: 0 (the first) to the number of tumours minus 1.",
        ),
    ] = 0,
    tumour_alias: Annotated[
        int | None, typer.Option("--tumour", hidden=True, help="Alias of --tumor.")
    ] = None,
    spacing_mm: Annotated[float, typer.Option("--spacing-mm", help=_SPACING_HELP)] = 2.0,
    guidance: Annotated[str, typer.Option(help="CT or MR (angle or bore limits).")] = "CT",
    field_t: Annotated[
        float | None,
        typer.Option(
            "--field-t",
            help="MR guidance: the scanner's field in T (1.5 or 3; default 1.5); the "
            "applicator must be MR Conditional there (default applicator: the catalogue's "
            "first that is).",
        ),
    ] = None,
    safety_mm: Annotated[
        float,
        typer.Option(
            help="Smallest distance from a path to a forbidden structure, "
            f"{SAFETY_RANGE_MM[0]:g}-{SAFETY_RANGE_MM[1]:g} mm."
        ),
    ] = 5.0,
    max_applicators: Annotated[
        int | None,
        typer.Option(
            "--max-applicators",
            help="Most applicators the plan may use, 1-8 (default: per modality).",
        ),
    ] = None,
    delivery: Annotated[
        str | None,
        typer.Option(
            help="sequential (one applicator after the other) or simultaneous "
            "(default: what the applicator allows).",
        ),
    ] = None,
    placement_error_mm: Annotated[
        float,
        typer.Option(
            "--placement-error-mm",
            help="Tip placement error (mm, 0-20) of the robustness estimate.",
        ),
    ] = 2.0,
    angle_error_deg: Annotated[
        float,
        typer.Option(
            "--angle-error-deg", help="Angle error (deg, 0-30) of the robustness estimate."
        ),
    ] = 3.0,
    robust_samples: Annotated[
        int,
        typer.Option(
            "--robust-samples",
            help="Monte Carlo samples of the robustness estimate, 10-100000.",
        ),
    ] = 200,
    time_budget_s: Annotated[
        float | None,
        typer.Option(
            "--time-budget-s",
            help="Seconds of search after which no new verification starts, 0-3600 "
            "(default: 45, or 200 for tumours over 35 mm).",
        ),
    ] = None,
    organ: Annotated[
        str | None,
        typer.Option(
            "--organ",
            help="The tumour's organ: liver, lung, kidney, bone or soft_tissue (default: "
            "case.toml's organ, else inferred from the labels around the tumour, else liver); its "
            "planning rules apply.",
        ),
    ] = None,
    overwrite: _OVERWRITE = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print plan.json.")] = False,
    quiet: _QUIET = False,
    strict: _STRICT = False,
) -> None:
    """Plan an ablation: safe paths, placement and energy, verified by simulation.

    Checks everything that needs no simulation first (options, output folder, tumour,
    applicator, memory), then writes OUT whole at the end: an interrupted plan leaves
    OUT as it was.
    """
    from ioplan.anatomy import load_case
    from ioplan.planning import (
        PLAN_FOLDER_ENTRIES,
        PlanConfig,
        TrajectoryConfig,
        check_plan_request,
        check_replaceable,
        plan_ablation,
        write_plan,
    )

    if tumour_alias is not None:
        if tumor not in (0, tumour_alias):
            raise InputError(f"--tumor {tumor} and --tumour {tumour_alias} disagree: give one")
        tumor = tumour_alias
    if tumor < 0:
        raise InputError(f"--tumor must be 0 or more (0 is the first tumour), got {tumor}")
    check_in_range(spacing_mm, *SPACING_RANGE_MM, "--spacing-mm")
    if margin_mm is not None:
        check_in_range(margin_mm, *MARGIN_RANGE_MM, "--margin-mm")
    check_in_range(protect_mm, *PROTECT_RANGE_MM, "--protect-mm")
    check_in_range(safety_mm, *SAFETY_RANGE_MM, "--safety-mm")
    if guidance.upper() not in ("CT", "MR"):
        raise InputError(f"--guidance must be CT or MR, got {guidance!r}")
    if max_applicators is not None and not 1 <= max_applicators <= 8:
        raise InputError(f"--max-applicators must be 1-8, got {max_applicators}")
    if delivery is not None:
        delivery = delivery.lower()
        if delivery not in ("sequential", "simultaneous"):
            raise InputError(f"--delivery must be sequential or simultaneous, got {delivery!r}")
    check_in_range(placement_error_mm, 0.0, 20.0, "--placement-error-mm")
    check_in_range(angle_error_deg, 0.0, 30.0, "--angle-error-deg", unit="deg")
    if not 10 <= robust_samples <= 100000:
        raise InputError(f"--robust-samples must be 10-100000, got {robust_samples}")
    if time_budget_s is not None:
        check_in_range(time_budget_s, 0.0, 3600.0, "--time-budget-s", unit="s")
    if field_t is not None and guidance.upper() != "MR":
        raise InputError("--field-t is for MR guidance (--guidance MR)")  # was ignored
    field_t = 1.5 if field_t is None else field_t
    check_in_range(field_t, 0.1, 12.0, "--field-t", unit="T")
    cfg = PlanConfig(
        modality=modality,
        applicator_id=applicator,
        margin_mm=margin_mm,
        protect_mm=protect_mm,
        tumour_index=tumor,
        spacing_mm=spacing_mm,
        trajectories=TrajectoryConfig(
            modality=guidance.upper(), safety_mm=safety_mm, field_t=field_t
        ),
        max_applicators=max_applicators,
        delivery=delivery,
        placement_error_mm=placement_error_mm,
        angle_error_deg=angle_error_deg,
        robust_samples=robust_samples,
        time_budget_s=time_budget_s,
        organ=organ,
    )
    cfg.applicator()
    check_replaceable(out, command="plan", names=PLAN_FOLDER_ENTRIES, overwrite=overwrite)
    case_obj = load_case(case)
    check_plan_request(case_obj, cfg, tumour_name="--tumor", spacing_name="--spacing-mm")
    log = None if (quiet or as_json) else (lambda m: err_console.print(m, markup=False))
    result = plan_ablation(case_obj, cfg, log=log)
    # the case it was planned on (`ioplan uncertainty PLAN_DIR` re-simulates on it)
    report = write_plan(result, case_obj, out, overwrite=overwrite,
                        extra={"case_path": str(Path(case).resolve())})  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        _print_plan_summary(result)
        typer.echo(f"report: {report}")
    _goal_exit(result.goal_met, strict)
