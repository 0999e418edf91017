"""Grid convergence of cryo and microwave zones (issue 19, "Grid independence first").

Runs one 2.4 mm cryoprobe (15 min freeze, no perfusion) and one cooled microwave antenna
(Covidien Emprint, 60 W, 10 min, default perfusion) in a block of liver at several voxel
sizes, prints a markdown table of the isotherm widths and the zone's length, width and
volume, and writes it to ``validation/convergence.md``.

Usage::

    python validation/convergence.py                      # 2, 1.5, 1 and 0.5 mm
    python validation/convergence.py --spacings 3 2 1.5   # a quicker subset
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

OUT = Path(__file__).with_name("convergence.md")

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
        perfusion_per_s=0.0, spacing_mm=h, margin_mm=20.0,
    ))  # fmt: skip


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
        rows.append(f"| {kind} | {h:g} | {widths} | {z.length_mm:.1f} | {z.width_mm:.2f} | "
                    f"{z.volume_ml:.3f} | {wall:.0f} |")  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    """Run the table and write ``validation/convergence.md``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spacings", type=float, nargs="+", default=[2.0, 1.5, 1.0, 0.5])
    ap.add_argument("--mw-spacings", type=float, nargs="+", default=None)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    mw_sp = args.mw_spacings or args.spacings
    lines = [
        "Cryo: cryo-2.4mm, freeze:900, no perfusion, margin 20 mm; isotherm widths (mm) "
        "at 0, -30 and -40 degC; zone = -40 degC.",
        "",
        "| run | voxel (mm) | 0 | -30 | -40 | zone length (mm) | zone width (mm) | "
        "zone volume (ml) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    lines += _rows("cryo", args.spacings, _cryo, ("0", "-30", "-40"))
    mw_head = [
        "",
        "MW: covidien-emprint, 60 W, 600 s, default perfusion; isotherm widths (mm) at 50 "
        "and 60 degC; zone = Arrhenius Omega >= 1.",
        "",
        "| run | voxel (mm) | 50 | 60 | zone length (mm) | zone width (mm) | zone volume (ml) "
        "| wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(mw_head), flush=True)
    lines += mw_head + _rows("mw", mw_sp, _mw, ("50", "60"))
    cmd = "python validation/convergence.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines += ["", f"Command: `{cmd.strip()}`", BEFORE]
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
