"""Benchmark of the RF source: potential solves skipped during pulses, side by side.

Also, side by side: the multigrid's coarse operators recomputed at every solve against
kept until CG slows (``physics._amg.STALE_MAX_ITERATIONS``; the finest level always takes
the new matrix), with the pulses skipped in both.

A cooled RF electrode under impedance control spends most of a run in pulses with the
output off (33 pulses of 15 s in a 12-min Cool-tip run). During a pulse the power is 0
whatever the tissue's conductivity, so the potential need not be re-solved
(``physics._heating.RF_SKIP_SOLVES_IN_PULSES``). This runs the same simulation with the
skip on and off, alternately, in one process, and records the wall time, the number of
potential solves and the zone of each: the speed-up is their ratio, and the zones must
agree (the temperature fields differ only by the warm start of the next solve).

Usage::

    python bench/rf.py [--spacing-mm 1 2] [--repeats 2] [--smoke] [--out bench/results/rf.json]

``--smoke``: one 3 mm, 4-min run each way (a test of the machinery; the figures mean little).
"""

from __future__ import annotations

import argparse
import statistics
import time

from _results import machine, write_result

from ioplan.devices import applicator
from ioplan.physics import SimulationConfig, _amg, _heating, simulate

#: Huang et al. 2012's lowest flow, 10 mL/min/100 g, as a Pennes perfusion (1/s), as in
#: validation/convergence.py's RF runs (liver density 1.079 g/mL)
PERFUSION_PER_S = 10.0 / 100.0 * 1.079 / 60.0


def _one(spacing_mm: float, duration_s: float, skip: bool, coarse_every_solve=False) -> dict:
    solves = [0]
    original = _heating.rf_potential

    def counted(*args, **kwargs):
        solves[0] += 1
        return original(*args, **kwargs)

    _heating.RF_SKIP_SOLVES_IN_PULSES = skip
    _heating.rf_potential = counted
    kept = _amg.STALE_MAX_ITERATIONS
    if coarse_every_solve:
        _amg.STALE_MAX_ITERATIONS = -1  # every solve "slowed": recomputed each time
    try:
        cfg = SimulationConfig(applicator("cooled-rf-3cm"), power_w=200.0,
                               duration_s=duration_s, tissue="liver",
                               perfusion_per_s=PERFUSION_PER_S, spacing_mm=spacing_mm)  # fmt: skip
        t0 = time.perf_counter()
        r = simulate(cfg)
        wall = time.perf_counter() - t0
    finally:
        _heating.rf_potential = original
        _heating.RF_SKIP_SOLVES_IN_PULSES = True
        _amg.STALE_MAX_ITERATIONS = kept
    return {
        "wall_s": wall,
        "solves": solves[0],
        "source_s": r.engine.get("source_s"),
        "zone_volume_ml": r.zone.volume_ml,
        "zone_width_mm": r.zone.width_mm,
        "zone_length_mm": r.zone.length_mm,
        "energy_j": r.energy_j,
        "pulses": r.settings["rf_pulses"],
    }


def run(spacings: list[float], duration_s: float, repeats: int) -> dict:
    rows = []
    for h in spacings:
        on, off, every = [], [], []
        for _ in range(repeats):  # alternate, so that drifts in the machine's load cancel
            on.append(_one(h, duration_s, True))
            off.append(_one(h, duration_s, False))
            every.append(_one(h, duration_s, True, coarse_every_solve=True))
        wall_every = statistics.median(x["wall_s"] for x in every)
        c = every[0]
        wall_on = statistics.median(x["wall_s"] for x in on)
        wall_off = statistics.median(x["wall_s"] for x in off)
        a, b = on[0], off[0]
        rows.append({
            "spacing_mm": h, "duration_s": duration_s, "repeats": repeats,
            "wall_s_skip": wall_on, "wall_s_every_call": wall_off,
            "speedup": wall_off / wall_on,
            "solves_skip": a["solves"], "solves_every_call": b["solves"],
            "zone_volume_ml_skip": a["zone_volume_ml"],
            "zone_volume_ml_every_call": b["zone_volume_ml"],
            "zone_width_difference_mm": a["zone_width_mm"] - b["zone_width_mm"],
            "zone_length_difference_mm": a["zone_length_mm"] - b["zone_length_mm"],
            "energy_relative_difference": a["energy_j"] / b["energy_j"] - 1.0,
            "pulses": [a["pulses"], b["pulses"]],
            "runs_skip": on, "runs_every_call": off,
            "wall_s_coarse_every_solve": wall_every,
            "amg_speedup": wall_every / wall_on,
            "zone_volume_ml_coarse_every_solve": c["zone_volume_ml"],
            "amg_zone_width_difference_mm": a["zone_width_mm"] - c["zone_width_mm"],
            "amg_zone_length_difference_mm": a["zone_length_mm"] - c["zone_length_mm"],
            "amg_energy_relative_difference": a["energy_j"] / c["energy_j"] - 1.0,
            "runs_coarse_every_solve": every,
        })  # fmt: skip
    return {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "rows": rows}


def markdown(result: dict) -> str:
    lines = [
        "# RF source benchmark (`python bench/rf.py`)",
        "",
        "Cooled 3 cm electrode, Cool-tip generator 200 W, liver at 10 mL/min/100 g; the same "
        "run with the potential solve skipped during pulses (output off) and re-solved at "
        "every call, alternately in one process (median wall time).",
        "",
        "| voxel (mm) | time (s) | wall skip / every call (s) | speed-up | solves | "
        "zone volume (mL) | width / length difference (mm) | energy difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['spacing_mm']:g} | {r['duration_s']:g} | {r['wall_s_skip']:.1f} / "
            f"{r['wall_s_every_call']:.1f} | {r['speedup']:.2f} | {r['solves_skip']} / "
            f"{r['solves_every_call']} | {r['zone_volume_ml_skip']:.3f} / "
            f"{r['zone_volume_ml_every_call']:.3f} | {r['zone_width_difference_mm']:+.3f} / "
            f"{r['zone_length_difference_mm']:+.3f} | "
            f"{100 * r['energy_relative_difference']:+.4f} % |"
        )
    lines += [
        "",
        "Multigrid coarse operators kept until CG slows (shipped) against recomputed at "
        "every solve (pulses skipped in both):",
        "",
        "| voxel (mm) | wall kept / every solve (s) | speed-up | zone volume (mL) | "
        "width / length difference (mm) | energy difference |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['spacing_mm']:g} | {r['wall_s_skip']:.1f} / "
            f"{r['wall_s_coarse_every_solve']:.1f} | {r['amg_speedup']:.2f} | "
            f"{r['zone_volume_ml_skip']:.3f} / {r['zone_volume_ml_coarse_every_solve']:.3f} | "
            f"{r['amg_zone_width_difference_mm']:+.3f} / "
            f"{r['amg_zone_length_difference_mm']:+.3f} | "
            f"{100 * r['amg_energy_relative_difference']:+.4f} % |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spacing-mm", type=float, nargs="+", default=[2.0, 1.0])
    ap.add_argument("--duration-s", type=float, default=720.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="one 3 mm 4-min run each way")
    ap.add_argument("--out", default="bench/results/rf.json")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    if not all(0.25 <= h <= 5.0 for h in args.spacing_mm):
        ap.error(f"--spacing-mm must be 0.25-5 mm, got {args.spacing_mm}")
    if not 0 < args.duration_s <= 3600:
        ap.error(f"--duration-s must be (0, 3600] s, got {args.duration_s}")
    if args.smoke:
        result = run([3.0], 240.0, 1)
    else:
        result = run(args.spacing_mm, args.duration_s, args.repeats)
    write_result(result, args.out, markdown(result))


if __name__ == "__main__":
    main()
