"""Make the README's engine-thermometry example: a synthetic MR thermometry series.

A microwave heating, imaged, to learn the power and perfusion back with ``ioplan thermometry``.

    python validation/thermometry_engine.py OUT_DIR

The truth is the engine itself on a finer grid than the fit's (1.5 against 2 mm): a
Covidien Emprint at 80 W (the fit is told 100 W nominal), perfusion 0.012 1/s, tip at
(10, -20, 30) mm LPS, an oblique axis, heat on at 10 s, treatment ending at 300 s. The
synthetic scanner (3 T, TE 10 ms, SNR 50, seed 3) images it every 5 s for the first 100 s.
Writes ``OUT_DIR/emag.nii.gz``, ``OUT_DIR/ephase.nii.gz`` and ``OUT_DIR/truth.json`` (the
true final zone), and prints the ``ioplan thermometry`` command that learns from them. The
same case is the slow test ``test_engine_learns_power_and_perfusion_from_thermometry``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ioplan.devices import applicator
from ioplan.imaging import Grid, write_nifti_series
from ioplan.monitoring import ScannerConfig, engine_temperatures, synthetic_frames
from ioplan.physics import SimulationConfig, simulate

TIP_LPS = np.array([10.0, -20.0, 30.0])
DIRECTION = np.array([0.3, 0.2, -1.0]) / np.linalg.norm([0.3, 0.2, -1.0])
TRUE_POWER_W, NOMINAL_POWER_W, TRUE_PERFUSION_PER_S = 80.0, 100.0, 0.012
HEAT_ON_S, END_S, FRAME_S, LAST_FRAME_S = 10.0, 300.0, 5.0, 100.0


def _fail(message: str) -> None:
    """One line on stderr, exit code 2 (the project's convention for bad input)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(out: Path) -> None:
    """Write the series and the truth into ``out`` (refused if any of them is there)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"cannot make the folder {out}: {exc.strerror or exc}")
    for name in ("emag.nii.gz", "ephase.nii.gz", "truth.json"):
        if (out / name).exists():
            _fail(f"{out / name} exists; choose an empty folder")
    app = applicator("covidien-emprint")
    times = np.arange(0.0, LAST_FRAME_S + 0.1, FRAME_S)
    rel = [float(t - HEAT_ON_S) for t in times if t > HEAT_ON_S]
    truth = simulate(
        SimulationConfig(
            applicator=app, power_w=TRUE_POWER_W, duration_s=END_S - HEAT_ON_S,
            spacing_mm=1.5, margin_mm=35, perfusion_per_s=TRUE_PERFUSION_PER_S,
            snapshot_times_s=tuple(rel),
        )
    )  # fmt: skip
    # the imaged slab: 8 x 28 x 28 voxels of 2 mm around the tip, in patient space
    g = Grid((8, 28, 28), (2.0, 2.0, 2.0), tuple(TIP_LPS - [27.0, 27.0, 7.0]))
    temp = engine_temperatures(truth, times, HEAT_ON_S, g, TIP_LPS, DIRECTION)
    frames = synthetic_frames(temp, times, ScannerConfig(snr=50, spacing_mm=2.0, seed=3))
    write_nifti_series(np.abs(frames), g, out / "emag.nii.gz", frame_s=FRAME_S)
    write_nifti_series(np.angle(frames), g, out / "ephase.nii.gz", frame_s=FRAME_S)
    doc = {
        "power_w": TRUE_POWER_W,
        "perfusion_1_per_s": TRUE_PERFUSION_PER_S,
        "necrosis_volume_ml": round(truth.zone.volume_ml, 4),
        "zone_length_mm": round(truth.zone.length_mm, 2),
        "zone_width_mm": round(truth.zone.width_mm, 2),
        "engine_spacing_mm": 1.5,
    }
    (out / "truth.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc))
    tip = ",".join(f"{v:g}" for v in TIP_LPS)
    d = ",".join(f"{v:.5f}" for v in DIRECTION)
    print(
        f"ioplan thermometry --magnitude {out / 'emag.nii.gz'} --phase {out / 'ephase.nii.gz'} "
        f"--b0-t 3 --te-ms 10 --baseline-frames 2 --source {tip} --heat-on-s {HEAT_ON_S:g} "
        f"--end-s {END_S:g} --applicator {app.id} --power-w {NOMINAL_POWER_W:g} "
        f"--direction {d} --json"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        _fail("usage: python validation/thermometry_engine.py OUT_DIR")
    main(Path(sys.argv[1]))
