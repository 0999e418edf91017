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
    _warn,
    app,
    err_console,
)
from ioplan.errors import InputError


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

    from ioplan.monitoring import (
        Thermometry,
        demo_scanner,
        folder_frames,
        igtl_frames,
        run_live,
        warm_up,
    )

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
