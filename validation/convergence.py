"""Grid convergence of cryo and microwave zones (issue 19, "Grid independence first").

Runs one 2.4 mm cryoprobe (15 min freeze, no perfusion) and one cooled microwave antenna
(Covidien Emprint, 60 W, 10 min, default perfusion) in a block of liver at several voxel
sizes and prints a markdown table of the isotherm widths and the zone's length, width and
volume; ``--out FILE`` also writes it (never over an existing file without
``--overwrite``; ``validation/convergence.md`` holds the recorded tables, written by hand
from these runs). ``--runs`` adds the catalogue cryoprobe limited by its cooling power
(``cryo-limited``) and a cooled RF electrode (``rf``: Cool-tip 200 W, 12 min, Huang 2012's
lowest flow; ``rf-short``: the same for 4 min, the coarse test's setting), and two in
perfused liver at its default flow (0.018 1/s) measured below the voxel size (sub-voxel
widths: isotherms by ``_iso_width``, the zone by ``axial_zone`` on ln Omega):
``cryo-vivo`` (one probe, 10 min freeze, margin 25 mm; 0 / -20 / -40 degC) and ``rf-vivo``
(Cool-tip 200 W, 12 min; the Omega = 1 width, energy and pulses).

Usage::

    python validation/convergence.py                      # 2, 1.5, 1 and 0.5 mm
    python validation/convergence.py --spacings 3 2 1.5   # a quicker subset
    python validation/convergence.py --runs rf cryo-limited --spacings 2 1.5 1 --out FILE
    python validation/convergence.py --runs cryo-vivo rf-vivo --spacings 2 1.5 1 0.5

Bad arguments give one line and exit 2; Ctrl-C stops with exit 130 and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from ioplan.devices import applicator
from ioplan.physics._simulate import SimulationConfig, simulate
from ioplan.physics._sources import CryoProtocol

#: The same runs before the sub-voxel surfaces (commit 2252541: applicator voxels within
#: ``max(a, 0.71 h)`` of the axis fixed at the probe or coolant temperature), for the record.
BEFORE = """
Before (staircase applicators, commit 2252541; same commands):

| run | voxel (mm) | 0 | -30 | -40 | zone length (mm) | zone width (mm) | zone volume (ml) |
|---|---|---|---|---|---|---|---|
| cryo | 2 | 31.11 | 14.14 | 10.20 | 42.0 | 10.20 | 1.696 |
| cryo | 1.5 | 28.85 | 11.42 | 8.75 | 40.5 | 8.75 | 1.472 |
| cryo | 1 | 34.77 | 17.49 | 13.93 | 43.0 | 13.93 | 4.060 |

| run | voxel (mm) | 50 | 60 | zone length (mm) | zone width (mm) | zone volume (ml) |
|---|---|---|---|---|---|---|
| mw | 2 | 42.76 | 33.11 | 42.0 | 48.39 | 46.336 |
| mw | 1.5 | 42.23 | 32.93 | 43.5 | 47.67 | 46.271 |
| mw | 1 | 42.64 | 33.14 | 42.0 | 48.27 | 47.873 |
"""


#: The probe temperature (degC) fitted before issue 19 (staircase, 2 mm), held fixed so that
#: the before and after tables differ only in the probe's representation.
CRYO_PROBE_C = -117.96


def _cryo(h: float):
    app = replace(applicator("cryo-2.4mm"), probe_temperature_c=CRYO_PROBE_C)
    return simulate(SimulationConfig(
        app, protocol=CryoProtocol.parse("freeze:900"),
        perfusion_per_s=0.0, spacing_mm=h, margin_mm=20.0, cryo_cooling_power_w=float("inf"),
    ))  # fmt: skip


def _cryo_limited(h: float):
    """The catalogue probe: limited by its cooling power (calibration.toml, issue 19)."""
    return simulate(SimulationConfig(
        applicator("cryo-2.4mm"), protocol=CryoProtocol.parse("freeze:900"),
        perfusion_per_s=0.0, spacing_mm=h, margin_mm=20.0,
    ))  # fmt: skip


#: Huang et al. 2012's lowest flow, 10 mL/min/100 g, as a Pennes perfusion (1/s)
RF_PERFUSION_PER_S = 10.0 / 100.0 * 1.079 / 60.0


def _rf(h: float):
    """Cooled 3 cm RF electrode, Cool-tip generator 200 W, 12 min, 10 mL/min/100 g."""
    return simulate(SimulationConfig(
        applicator("cooled-rf-3cm"), power_w=200.0, duration_s=720.0, tissue="liver",
        perfusion_per_s=RF_PERFUSION_PER_S, spacing_mm=h,
    ))  # fmt: skip


def _rf_short(h: float):
    """Cooled 3 cm RF, Cool-tip 200 W, 4 min, 10 mL/min/100 g, the default 40 mm margin.

    The setting of tests/physics/test_rf_cut_cell.py::test_rf_zone_grid_independent_coarse
    (25 mm before session 44: the domain then grew on some grids and not on others).
    """
    return simulate(SimulationConfig(
        applicator("cooled-rf-3cm"), power_w=200.0, duration_s=240.0, tissue="liver",
        perfusion_per_s=RF_PERFUSION_PER_S, spacing_mm=h,
    ))  # fmt: skip


def _cryo_vivo(h: float):
    """One catalogue probe, 10 min freeze, liver at its default perfusion, margin 25 mm."""
    return simulate(SimulationConfig(
        applicator("cryo-2.4mm"), protocol=CryoProtocol.parse("freeze:600"), tissue="liver",
        spacing_mm=h, margin_mm=25.0,
    ))  # fmt: skip


def _rf_vivo(h: float):
    """Cooled 3 cm RF, Cool-tip 200 W, 12 min, liver at its default perfusion."""
    return simulate(SimulationConfig(
        applicator("cooled-rf-3cm"), power_w=200.0, duration_s=720.0, tissue="liver",
        spacing_mm=h,
    ))  # fmt: skip


def _subvoxel_rows(kind: str, spacings, run) -> list[str]:
    """Rows of sub-voxel widths (mm): isotherms for cryo, the Omega = 1 zone for RF."""
    import numpy as np

    from ioplan.physics import axial_zone
    from ioplan.validation._checks import _iso_width

    rows = []
    for h in spacings:
        tic = time.perf_counter()
        r = run(h)
        wall = time.perf_counter() - tic
        if kind == "cryo-vivo":
            cells = " | ".join(f"{_iso_width(r, c):.2f}" for c in (0.0, -20.0, -40.0))
        else:
            tip, d = tuple(r.settings["tips_mm"][0]), tuple(r.settings["direction"])
            ln_om = np.log(np.maximum(r.state.omega.astype(np.float32), np.float32(1e-30)))
            z = axial_zone(ln_om, r.grid, tip, d, 0.0)
            s = r.settings
            cells = (f"{z.length_mm:.2f} | {z.width_mm:.2f} | "
                     f"{s['rf_energy_delivered_j'] / 1e3:.2f} | {s['rf_pulses']}")  # fmt: skip
        rows.append(f"| {kind} | {h:g} | {cells} | {wall:.0f} |")
        print(rows[-1], flush=True)
    return rows


def _mw(h: float):
    return simulate(SimulationConfig(
        applicator("covidien-emprint"), power_w=60.0, duration_s=600.0, spacing_mm=h,
    ))  # fmt: skip


def _rows(kind: str, spacings, run, isos) -> list[str]:
    rows = []
    for h in spacings:
        tic = time.perf_counter()
        r = run(h)
        wall = time.perf_counter() - tic
        widths = " | ".join(f"{r.isotherms[k].width_mm:.2f}" for k in isos)
        z = r.zone
        extra = ""
        if "rf_energy_delivered_j" in r.settings:  # RF: what the generator delivered
            s = r.settings
            extra = (f" {s['rf_energy_delivered_j'] / 1e3:.1f} | {s['rf_pulses']} |"
                     f" {s['rf_impedance_ohm_initial']:.1f} |")  # fmt: skip
        rows.append(f"| {kind} | {h:g} | {widths} | {z.length_mm:.1f} | {z.width_mm:.2f} | "
                    f"{z.volume_ml:.3f} | {wall:.0f} |{extra}")  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    """Run the tables; print them (and write ``--out``). Returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])

    def one_line(message: str) -> None:
        print(f"error: {message}", file=sys.stderr)  # one line, not argparse's usage block
        raise SystemExit(2)

    ap.error = one_line  # type: ignore[method-assign]
    ap.add_argument("--spacings", type=float, nargs="+", default=[2.0, 1.5, 1.0, 0.5])
    ap.add_argument("--mw-spacings", type=float, nargs="+", default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    ap.add_argument(
        "--runs", nargs="+", default=["cryo", "mw"],
        choices=["cryo", "cryo-limited", "mw", "rf", "rf-short", "cryo-vivo", "rf-vivo"],
    )  # fmt: skip
    args = ap.parse_args(argv)
    mw_sp = args.mw_spacings or args.spacings
    for h in (*args.spacings, *mw_sp):
        if not 0.25 <= h <= 5.0:
            print(f"error: voxel sizes must be 0.25-5 mm, got {h:g}", file=sys.stderr)
            return 2
    if args.out is not None and args.out.exists() and not args.overwrite:
        print(f"error: {args.out} exists (add --overwrite to replace it)", file=sys.stderr)
        return 2
    if args.out is not None and not args.out.parent.is_dir():
        print(f"error: {args.out.parent} is not a folder", file=sys.stderr)
        return 2
    try:
        lines = _tables(args, mw_sp)
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    cmd = "python validation/convergence.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines += ["", f"Command: `{cmd.strip()}`", BEFORE]
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


def _tables(args, mw_sp) -> list[str]:
    lines = [
        "Cryo: cryo-2.4mm, freeze:900, no perfusion, margin 20 mm; isotherm widths (mm) "
        "at 0, -30 and -40 degC; zone = -40 degC.",
        "",
        "| run | voxel (mm) | 0 | -30 | -40 | zone length (mm) | zone width (mm) | "
        "zone volume (ml) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for run, fn in (("cryo", _cryo), ("cryo-limited", _cryo_limited)):
        if run in args.runs:
            lines += _rows(run, args.spacings, fn, ("0", "-30", "-40"))
    mw_head = [
        "",
        "MW: covidien-emprint, 60 W, 600 s, default perfusion; isotherm widths (mm) at 50 "
        "and 60 degC; zone = Arrhenius Omega >= 1.",
        "",
        "| run | voxel (mm) | 50 | 60 | zone length (mm) | zone width (mm) | zone volume (ml) "
        "| wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    if "mw" in args.runs:
        print("\n".join(mw_head), flush=True)
        lines += mw_head + _rows("mw", mw_sp, _mw, ("50", "60"))
    for run, fn, minutes in (("rf", _rf, 12), ("rf-short", _rf_short, 4)):
        if run not in args.runs:
            continue
        rf_head = [
            "",
            f"RF: cooled-rf-3cm, Cool-tip generator 200 W, {minutes} min, 10 mL/min/100 g; "
            "isotherm widths (mm) at 50 and 60 degC; zone = Arrhenius Omega >= 1; energy "
            "delivered, pulses and the initial impedance.",
            "",
            mw_head[3] + " energy (kJ) | pulses | impedance (ohm) |",
            mw_head[4] + "---|---|---|",
        ]
        print("\n".join(rf_head), flush=True)
        lines += rf_head + _rows(run, args.spacings, fn, ("50", "60"))
    heads = {
        "cryo-vivo": ("Cryo in perfused liver (0.018 1/s): cryo-2.4mm, freeze:600, margin 25 mm; "
                      "sub-voxel isotherm widths (mm).",
                      "| run | voxel (mm) | 0 | -20 | -40 | wall (s) |",
                      "|---|---|---|---|---|---|"),
        "rf-vivo": ("RF in perfused liver (0.018 1/s): cooled-rf-3cm, Cool-tip 200 W, 12 min; "
                    "sub-voxel Omega = 1 zone, energy delivered and pulses.",
                    "| run | voxel (mm) | length (mm) | width (mm) | energy (kJ) | pulses "
                    "| wall (s) |", "|---|---|---|---|---|---|---|"),
    }  # fmt: skip
    for run, fn in (("cryo-vivo", _cryo_vivo), ("rf-vivo", _rf_vivo)):
        if run in args.runs:
            head = ["", *heads[run][:1], "", *heads[run][1:]]
            print("\n".join(head), flush=True)
            lines += head + _subvoxel_rows(run, args.spacings, fn)
    return lines


if __name__ == "__main__":
    sys.exit(main())
