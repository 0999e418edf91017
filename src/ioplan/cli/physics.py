"""``ioplan applicators`` and ``simulate``: the catalogue and the physics engine."""

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
    _QUIET,
    _parse_point,
    _progress,
    _refuse_unused,
    _warn,
    app,
    console,
)
from ioplan.errors import InputError


@app.command()
def applicators(
    as_json: Annotated[bool, typer.Option("--json", help="Full records as JSON.")] = False,
) -> None:
    """List the applicators of the built-in catalogue."""
    from ioplan.devices import list_applicators

    apps = list_applicators()
    if as_json:
        # mr_conditional (true/false/null: unknown) and mr_conditions (text with its
        # source) are issue 22's contract; to_dict carries them
        recs = [a.to_dict() for a in apps]
        for a, r in zip(apps, recs, strict=True):
            r["mr_conditional"], r["mr_conditions"] = a.mr_conditional, a.mr_conditions
        sys.stdout.write(json.dumps(recs, indent=2) + "\n")
        return
    table = Table("id", "modality", "MHz", "diameter (mm)", "chart rows", "calibrated", "MR")
    table.columns[0].no_wrap = True
    for a in apps:
        mr = {True: "conditional " + "/".join(f"{f:g}" for f in a.mr_fields_t) + " T",
              False: "no", None: "unknown"}[a.mr_conditional]  # fmt: skip
        table.add_row(
            a.id,
            a.modality,
            f"{a.frequency_mhz:g}" if a.modality != "cryo" else "-",
            f"{a.diameter_mm:g}",
            str(len(a.zone_chart)),
            "yes" if a.calibration else "no",
            mr,
        )
    console.print(table)


def _parse_triplet(text: str | None, what: str) -> tuple[float, float, float] | None:
    return None if text is None else _parse_point(text, what)


@app.command()
def simulate(
    ctx: typer.Context,
    applicator: Annotated[
        str,
        typer.Option(
            help="Applicator id (see `ioplan applicators`); not needed with "
            "--power-density-map or --sar-map."
        ),
    ] = "",
    applicator_file: Annotated[
        Path | None,
        typer.Option(help="A user-defined applicator (JSON with the catalogue fields)."),
    ] = None,
    mw_model: Annotated[
        str | None,
        typer.Option(
            help="Microwave source model: lumped (the calibrated default) or field (the "
            "computed axisymmetric Maxwell field, issue 19)."
        ),
    ] = None,
    power_w: Annotated[
        float | None,
        typer.Option(help="Generator power in W, 0-300 (required for MW and RF)."),
    ] = None,
    duration_s: Annotated[
        float | None,
        typer.Option(help="Heating time in s, 0-3600 (required for MW, RF and external maps)."),
    ] = None,
    cooldown_s: Annotated[
        float,
        typer.Option(
            help="Time after the heating with the power off, in s, 0-3600: the tissue cools, "
            "damage keeps accruing, and the zone is measured at the end (the zone at power "
            "off is reported too). MW, RF and external maps."
        ),
    ] = 0.0,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="Cryo protocol, e.g. freeze:600,thaw:300,freeze:600 (each phase 0-7200 s)."
        ),
    ] = None,
    case: Annotated[
        Path | None, typer.Option(help="Case folder (default: the built-in phantom).")
    ] = None,
    tissue: Annotated[
        str | None,
        typer.Option(
            help="Homogeneous block of this tissue instead of a case (any tissue of the "
            "table: liver, lung, lung_tumor, kidney_cortex, bone_cancellous, pancreas, ...)."
        ),
    ] = None,
    tip_mm: Annotated[
        str | None, typer.Option(help="Tip 'x,y,z' in LPS mm (default: block centre / tumour).")
    ] = None,
    direction: Annotated[
        str, typer.Option(help="Insertion direction 'x,y,z' (towards the tip).")
    ] = "0,0,-1",
    perfusion_per_s: Annotated[
        float | None,
        typer.Option(help="Perfusion rate in 1/s for every tissue, 0-0.1 (0: ex vivo)."),
    ] = None,
    spacing_mm: Annotated[
        float, typer.Option("--spacing-mm", help="Voxel size in mm, 0.25-5.")
    ] = 1.0,
    domain_margin_mm: Annotated[
        float,
        typer.Option(
            "--domain-margin-mm",
            help="Margin of the simulated domain around the applicators in mm, 10-100 "
            "(grown automatically while the far boundary still warms).",
        ),
    ] = 40.0,
    margin_mm_alias: Annotated[
        float | None, typer.Option("--margin-mm", hidden=True, help="Old name.")
    ] = None,
    array: Annotated[
        int,
        typer.Option(
            help="Identical applicators: 1-4 (line, triangle, square), "
            "5-8 (one on the axis, the rest on a ring)."
        ),
    ] = 1,
    spacing_between_mm: Annotated[
        float, typer.Option(help="Distance between applicators in mm, 3-60.")
    ] = 15.0,
    vessel: Annotated[
        list[str] | None,
        typer.Option(
            help="Straight vessel: diameter_mm=D,distance_mm=X,flow_ml_min=F "
            "(D 0.5-40 mm, X 0-100 mm, F 0-5000 mL/min); repeat."
        ),
    ] = None,
    power_density_map: Annotated[
        Path | None,
        typer.Option(
            help="External power density (W/m^3, 0-1e9), NIfTI/NRRD on an axis-aligned grid "
            "(any axis order or flip); replaces the applicator's source."
        ),
    ] = None,
    sar_map: Annotated[
        Path | None,
        typer.Option(help="External SAR (W/kg), NIfTI/NRRD; as --power-density-map."),
    ] = None,
    rf_mode: Annotated[
        str | None,
        typer.Option(
            help="RF generator: impedance (the default: the device's own control, e.g. "
            "Cool-tip pulsing, with its power limits), temperature, or power (an ideal "
            "constant-power source)."
        ),
    ] = None,
    rf_pads: Annotated[
        str | None,
        typer.Option(
            help="RF on a case: the return pads, back (the default: posterior skin at the "
            "electrode's level), thighs (below the image) or far (none: the crop's faces only)."
        ),
    ] = None,
    lethal_temperature_c: Annotated[
        float | None,
        typer.Option(
            help="Cryo zone: lowest temperature reached at or below this, -80-0 degC "
            "(default -40)."
        ),
    ] = None,
    constant_properties: Annotated[
        bool, typer.Option(help="No temperature dependence or perfusion shutdown (verification).")
    ] = False,
    initial_temperature_c: Annotated[
        float | None,
        typer.Option(help="Start (and far-boundary) temperature in degC, 0-45, e.g. 20 ex vivo."),
    ] = None,
    organ: Annotated[
        str | None,
        typer.Option(
            help="Organ (liver, lung, kidney, bone, soft_tissue): the tumour label takes its "
            "tumour tissue (default for a case: case.toml's organ, else where the tumour lies)."
        ),
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
    from ioplan.imaging import read_image
    from ioplan.physics import CryoProtocol, SimulationConfig, VesselSpec, write_simulation_outputs
    from ioplan.physics import simulate as run_simulation

    # cheap checks first: the output folder, then the inputs, then the work
    if output_dir is not None:
        from ioplan.physics import check_simulation_folder

        check_simulation_folder(output_dir, overwrite=overwrite)
    if margin_mm_alias is not None:
        domain_margin_mm = margin_mm_alias
    external = power_density_map is not None or sar_map is not None
    if organ is not None:  # an unknown organ is named first, whatever else is wrong
        from ioplan.anatomy import check_organ

        organ = check_organ(organ)
    if case is None:  # a block has no tumour label for --organ to give its tissue
        _refuse_unused(ctx, ("organ",), "without --case")
    if output_dir is None:
        _refuse_unused(ctx, ("overwrite",), "without --output-dir (nothing is written)")
    if external:  # the map sets the grid, the domain and the one source
        _refuse_unused(ctx, ("spacing_mm", "domain_margin_mm", "margin_mm_alias", "array",
                             "spacing_between_mm"),
                       "with --power-density-map or --sar-map (the map's grid is the domain, "
                       "the map the source)")  # fmt: skip
    if applicator and applicator_file is not None:
        raise InputError("give --applicator or --applicator-file, not both")
    if applicator_file is not None:
        app_obj = load_applicator_file(applicator_file)
    elif applicator:
        app_obj = get_applicator(applicator)
    elif external:
        app_obj = None
    else:
        raise InputError("give --applicator ID or --applicator-file FILE")
    if mw_model is not None:
        from dataclasses import replace as _replace

        from ioplan.devices import MW_MODELS

        if mw_model not in MW_MODELS:
            raise InputError(f"--mw-model must be one of {', '.join(MW_MODELS)}, got {mw_model!r}")
        if app_obj is None or app_obj.modality != "mw":
            raise InputError("--mw-model is for a microwave applicator")
        app_obj = _replace(app_obj, mw_model=mw_model)
    # options of another modality are refused, not ignored
    modality = app_obj.modality if app_obj is not None else None
    if modality != "rf" and (rf_mode is not None or rf_pads is not None):
        raise InputError("--rf-mode and --rf-pads are for an RF electrode")
    if modality != "cryo" and lethal_temperature_c is not None:
        raise InputError("--lethal-temperature-c is for a cryoprobe")
    if case is None:  # a block has no body surface: its return current leaves at the boundary
        _refuse_unused(ctx, ("rf_pads",), "without --case (pads lie on a case's skin)")
    rf_mode = "impedance" if rf_mode is None else rf_mode
    rf_pads = "back" if rf_pads is None else rf_pads
    lethal_temperature_c = -40.0 if lethal_temperature_c is None else lethal_temperature_c
    case_obj = None
    if case is not None and tissue is not None:
        raise InputError("give --case or --tissue, not both")
    if external and tissue is None:
        if case is not None:
            raise InputError("--power-density-map and --sar-map are for a block (--tissue)")
        tissue = "liver"
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
        cooldown_s=cooldown_s,
        protocol=CryoProtocol.parse(protocol) if protocol is not None else None,
        tissue=tissue,
        case=case_obj,
        tip_mm=_parse_triplet(tip_mm, "--tip-mm"),
        direction=_parse_point(direction, "--direction"),
        array=array,
        spacing_between_mm=spacing_between_mm,
        spacing_mm=spacing_mm,
        margin_mm=domain_margin_mm,
        perfusion_per_s=perfusion_per_s,
        constant_properties=constant_properties,
        vessels=tuple(VesselSpec.parse(v) for v in (vessel or [])),
        rf_mode=rf_mode,
        rf_pads=rf_pads,
        power_density_w_m3=pd_map,
        sar_w_kg=sar,
        lethal_temperature_c=lethal_temperature_c,
        backend="gpu" if gpu else "cpu",
        initial_temperature_c=initial_temperature_c,
        organ=organ,
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
        write_simulation_outputs(result, output_dir, overwrite=overwrite)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    z = result.zone
    name = app_obj.id if app_obj is not None else "external source"
    console.print(
        f"[bold]{escape(name)}[/] zone: length {z.length_mm:.1f} mm, "
        f"width {z.width_mm:.1f} mm, volume {z.volume_ml:.2f} mL, "
        f"beyond tip {z.tip_extent_mm:.1f} mm"
    )
    off = result.snapshots.get(f"{cfg.heating_duration_s:g}") if cfg.cooldown_s > 0 else None
    if off is not None:
        console.print(
            f"  at power off ({cfg.heating_duration_s:g} s): length {off.length_mm:.1f} mm, "
            f"width {off.width_mm:.1f} mm, volume {off.volume_ml:.2f} mL; the zone above is "
            f"after {cfg.cooldown_s:g} s with the power off"
        )
        dose = result.settings.get("thermal_dose_zone")
        if dose is not None:
            console.print(
                f"  by thermal dose (CEM43 >= 240 min) after it: length {dose['length_mm']:.1f} "
                f"mm, width {dose['width_mm']:.1f} mm, volume {dose['volume_ml']:.2f} mL "
                "(growth after power off happens at 40-55 degC, where Arrhenius and thermal "
                "dose disagree)"
            )
    for key, iso in result.isotherms.items():
        console.print(
            f"  isotherm {key} degC: length {iso.length_mm:.1f} mm, width {iso.width_mm:.1f} mm, "
            f"volume {iso.volume_ml:.2f} mL"
        )
    share = ""
    tips = result.settings.get("tips_mm", [])
    if app_obj is not None and app_obj.modality == "mw" and len(tips) == 1 and power_w:
        # one antenna at a constant power: how much of the generator's output the tissue took
        out_j = float(power_w) * float(cfg.heating_duration_s)
        share = f" ({100 * result.energy_j / out_j:.0f} % of the generator's {out_j:.0f} J)"
    console.print(
        f"  temperature {result.min_temperature_c:.1f} to {result.max_temperature_c:.1f} degC, "
        f"energy {result.energy_j:.0f} J{share}, {result.steps} steps of {result.dt_s:.3f} s in "
        f"{result.runtime_s:.1f} s ({result.voxel_updates_per_s / 1e6:.1f} M voxel updates/s)"
    )
    s = result.settings
    _print_chart(s.get("chart"))
    if "rf_pulses" in s:  # RF: what the generator did
        withheld = float(s.get("rf_boiling_limited_j", 0.0))
        dried = f"; {withheld:.0f} J not taken by tissue that boiled dry" if withheld >= 1 else ""
        series = float(s.get("rf_series_energy_j", 0.0))
        ret = s.get("rf_return") or {}
        where = "the body to the pads" if ret.get("pads") not in (None, "far") else (
            "the medium beyond the block" if series > 0 else "")
        beyond = (f"; {series:.0f} J in {where} ({ret.get('series_ohm', 0):.1f} ohm in series)"
                  if series >= 1 else "")  # fmt: skip
        console.print(
            f"  RF generator: {s['rf_pulses']} pulses, mean {s['rf_mean_power_w']:.1f} W, "
            f"impedance {s['rf_impedance_ohm_initial']:.0f} -> {s['rf_impedance_ohm_final']:.0f}"
            f" ohm{dried}{beyond}"
        )
    if output_dir is not None:
        console.print(f"  maps written to [bold]{escape(str(output_dir))}[/]")


def _print_chart(chart: dict | None) -> None:
    """The manufacturer's chart at this setting, and the model's fit to that chart."""
    if not chart:
        return
    z = chart["zone"]
    if z is None:
        console.print(f"  manufacturer chart: this setting is outside it ({chart['range']})")
    else:
        how = "interpolated" if z["interpolated"] else "a chart row"
        console.print(
            f"  manufacturer chart (ex vivo) at {z['power_w']:g} W, {z['duration_s']:g} s: "
            f"length {z['length_mm']:.1f} mm, width {z['width_mm']:.1f} mm ({how})"
        )
    fit = chart["model_fit"]
    if fit is not None:
        console.print(
            f"  this model on that chart: mean |error| {fit['mean_abs_error_mm']:.2f} mm, max "
            f"{fit['max_abs_error_mm']:.2f} mm over {fit['rows']} rows ({fit['spacing_mm']:g} "
            "mm voxels, ex vivo block)"
        )


def _phantom_case(spacing_mm: float):
    """The built-in phantom at a spacing no finer than 1 mm (cropped later)."""
    from ioplan.anatomy import Case, PhantomConfig, generate_phantom

    sp = min(max(spacing_mm, 1.0), 5.0)
    return Case.from_phantom(generate_phantom(PhantomConfig(spacing_mm=sp, noise_hu=0.0)))
