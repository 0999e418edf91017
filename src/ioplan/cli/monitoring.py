"""``ioplan thermometry`` and ``monitor``: MR thermometry of stored and live series."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ioplan.cli._common import (
    _OVERWRITE,
    _parse_point,
    _refuse_unused,
    _warn,
    app,
    err_console,
)
from ioplan.errors import InputError


@app.command()
def thermometry(
    ctx: typer.Context,
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
        float | None,
        typer.Option("--b0-t", help="Field strength (T, 0.1-12; default: the header's)."),
    ] = None,
    te_ms: Annotated[
        float | None,
        typer.Option("--te-ms", help="Echo time (ms, 0.5-200; default: the header's)."),
    ] = None,
    baseline_frames: Annotated[
        int, typer.Option(help="Frames averaged as baseline (>= 1, fewer than the series').")
    ] = 1,
    out: Annotated[Path | None, typer.Option(help="Output folder for the maps.")] = None,
    phase_scale: Annotated[
        str,
        typer.Option(
            help="Stored phase to radians: auto (Siemens by Manufacturer, else radians or "
            "milliradians by range; radians for NIfTI), radians, milliradians, siemens (12-bit)."
        ),
    ] = "auto",
    frame_s: Annotated[
        float | None,
        typer.Option(help="Seconds between frames (> 0, at most 3600; default: the headers')."),
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
        float | None,
        typer.Option(help="Alert above this temperature in --protected (degC; default 45)."),
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
        float | None, typer.Option(help="When heating started (s, with --source; default 0).")
    ] = None,
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
    from ioplan.imaging import check_mergeable
    from ioplan.monitoring import (
        HeatSource,
        SeriesOptions,
        read_series,
        thermometry_from_series,
        write_thermometry_outputs,
    )

    if protected is None:
        _refuse_unused(ctx, ("alert_c",), "without --protected (the structures it watches)")
    if out is not None:  # before any work: a folder that exists or cannot be written
        # --overwrite replaces an earlier thermometry output's maps, never another
        # command's (a simulation's temperature.nii.gz)
        check_mergeable(out, command="thermometry", own_json="thermometry.json",
                        overwrite=overwrite)
    heat = None
    if source is not None:
        heat = HeatSource(
            tip_lps=_parse_point(source, "--source"), end_s=end_s,
            heat_on_s=0.0 if heat_on_s is None else heat_on_s,
            applicator_id=applicator_id, power_w=power_w,
            direction=None if direction is None else _parse_point(direction, "--direction"),
        )  # fmt: skip
    elif any(v is not None for v in (end_s, heat_on_s, applicator_id, power_w, direction)):
        raise InputError(
            "--end-s, --heat-on-s, --applicator, --power-w and --direction go with --source"
        )
    opts = SeriesOptions(
        b0_t=b0_t, te_ms=te_ms, frame_s=frame_s, baseline_frames=baseline_frames,
        baseline_temperature_c=baseline_temperature_c, alpha_ppm_per_c=alpha_ppm_per_c,
        multi_baseline=multi_baseline, drift_order=drift_order, referenceless=referenceless,
        alert_temperature_c=alert_c, reference=reference, protected=protected,
        planned_zone=planned_zone, source=heat,
        probes_lps=tuple(_parse_point(p_, "--probe") for p_ in probe) if probe else None,
    )  # fmt: skip
    ser = read_series(magnitude=magnitude, phase=phase, real=real, imaginary=imaginary,
                      series=series, phase_scale=phase_scale)  # fmt: skip
    result = thermometry_from_series(ser, opts)
    summary = result.summary
    for a in summary["alerts"][:5]:
        _warn(
            f"frame {a['frame']}: {a['temperature_c']} degC in a protected structure at "
            f"voxel {a['voxel']} (limit {a['limit_c']})"
        )
    for note in summary["notes"]:
        _warn(note)
    if out is not None:
        write_thermometry_outputs(result, out, overwrite=overwrite)
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
    b0_t: Annotated[float, typer.Option("--b0-t", help="Field strength (T, 0.1-12).")] = 3.0,
    te_ms: Annotated[float, typer.Option("--te-ms", help="Echo time (ms, 0.5-200).")] = 10.0,
    baseline_frames: Annotated[
        int, typer.Option(help="Frames averaged as baseline (1-1000).")
    ] = 10,
    folder: Annotated[
        Path | None, typer.Option(help="Folder the scanner writes NNNN_magnitude/_phase into.")
    ] = None,
    frame_s: Annotated[
        float, typer.Option(help="Seconds between frames (folder input; > 0, at most 3600 s).")
    ] = 1.0,
    igtl_input: Annotated[
        str | None, typer.Option(help="Scanner's OpenIGTLink server, host:port.")
    ] = None,
    igtl_port: Annotated[
        int, typer.Option(help="Serve the maps to 3D Slicer on this TCP port (0-65535; 0: off).")
    ] = 18944,
    demo: Annotated[bool, typer.Option(help="Play the synthetic scanner (loopback).")] = False,
    multi_baseline: Annotated[bool, typer.Option(help="Multi-baseline library.")] = False,
    idle_timeout_s: Annotated[
        float, typer.Option(help="Stop after this long without a frame (s; > 0, at most 3600).")
    ] = 5.0,
    start_timeout_s: Annotated[
        float,
        typer.Option(
            help="Wait this long for the first frame (s; > 0, at most 3600); none: an error."
        ),
    ] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Live MR thermometry: frames in (folder or OpenIGTLink), maps out to 3D Slicer."""
    from ioplan.monitoring import ThermometryConfig

    cfg = ThermometryConfig(b0_t=b0_t, te_ms=te_ms, baseline_frames=baseline_frames,
                            multi_baseline=multi_baseline)  # fmt: skip
    _live_loop(cfg, folder=folder, frame_s=frame_s, igtl_input=igtl_input, igtl_port=igtl_port,
               demo={} if demo else None, idle_timeout_s=idle_timeout_s,
               start_timeout_s=start_timeout_s, as_json=as_json)  # fmt: skip


def _live_loop(cfg, *, folder: Path | None, frame_s: float, igtl_input: str | None,
               igtl_port: int, demo: dict | None, idle_timeout_s: float,
               as_json: bool, start_timeout_s: float = 30.0) -> None:  # fmt: skip
    """``monitor`` and ``demo --live``: the live session with a table on stderr.

    :func:`ioplan.monitoring.monitor_live` runs the session. ``demo``: play the synthetic
    scanner over loopback (keyword arguments of :func:`ioplan.monitoring.demo_scanner`);
    None for a real input. The table is cleared before an error is printed, so that the
    error stays one line.
    """
    from rich.live import Live

    from ioplan.monitoring import monitor_live

    state = {"n": 0, "ms": 0.0, "tmax": float("nan"), "nec": 0.0, "alerts": 0}

    def table() -> Table:
        t = Table(title="ioplan monitor")
        for k in ("frame", "latency ms", "max degC", "necrosis mL", "alerts"):
            t.add_column(k)
        t.add_row(str(state["n"]), f"{state['ms']:.1f}", f"{state['tmax']:.1f}",
                  f"{state['nec']:.2f}", str(state["alerts"]))  # fmt: skip
        return t

    live = Live(table(), console=err_console, refresh_per_second=4, transient=as_json)

    def on_frame(f, r) -> None:
        if not live.is_started:
            live.start()
        state["n"] = f.index
        if r is not None:
            state.update(ms=r.ms, tmax=r.max_temperature_c, nec=r.necrosis_volume_ml)
            state["alerts"] += len(r.alerts)
        live.update(table())

    try:
        summary = monitor_live(cfg, folder=folder, igtl_input=igtl_input, demo=demo,
                               frame_s=frame_s, igtl_port=igtl_port,
                               idle_timeout_s=idle_timeout_s, start_timeout_s=start_timeout_s,
                               on_frame=on_frame)  # fmt: skip
    except BaseException:
        live.transient = True  # cleared, not left above the error line
        live.stop()
        raise
    live.stop()
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        for note in summary["notes"]:
            _warn(note)
        typer.echo(
            f"{summary['frames']} frames: max {summary['max_temperature_c']} degC, necrosis "
            f"{summary['necrosis_volume_ml']} mL, {summary['ms_per_frame']} ms per frame"
        )
