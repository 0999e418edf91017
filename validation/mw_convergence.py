"""Grid convergence of microwave chart zones (issue 19; validation/convergence.md).

One power per catalogue device (Amica 40 W, Emprint 75 W, Acculis 60 W), every chart time,
the default (lumped) model with the catalogue's calibration, ex vivo liver block at 20 degC,
sub-voxel zone length and width at each voxel size. Prints a Markdown table and writes the
numbers as JSON.

    python validation/mw_convergence.py 2,1.5,1,0.5 /tmp/mw_convergence.json
    python validation/mw_convergence.py 2,1.5,1,0.5 /tmp/mw_field.json --mw-model field

About 3 min on 2 cores (0.5 mm: 36-69 s per setting). ``--mw-model field`` runs the
computed-field model (its catalogue geometry and calibration) instead of the lumped one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from ioplan.devices import applicator
from ioplan.validation._zones import predict_zones, rows_from_chart

SETTINGS = {"amica": 40.0, "covidien-emprint": 75.0, "angiodynamics-acculis": 60.0}


def main(argv: list[str]) -> None:
    """Run every setting at every spacing; print the table, write the JSON."""
    model = "lumped"
    if "--mw-model" in argv:
        k = argv.index("--mw-model")
        model = argv[k + 1] if k + 1 < len(argv) else ""
        argv = argv[:k] + argv[k + 2 :]
        if model not in ("lumped", "field"):
            print(f"--mw-model must be lumped or field, got {model!r}", file=sys.stderr)
            raise SystemExit(2)
    try:
        spacings = [float(x) for x in argv[0].split(",")]
        if not spacings or not all(0.25 <= h <= 5.0 for h in spacings):
            raise ValueError
    except (IndexError, ValueError):
        print("usage: mw_convergence.py SPACINGS_MM [OUT.json] [--mw-model lumped|field]"
              "  (e.g. 2,1.5,1,0.5; each 0.25-5)", file=sys.stderr)  # fmt: skip
        raise SystemExit(2) from None
    out_path = argv[1] if len(argv) > 1 else "mw_convergence.json"
    if Path(out_path).exists():
        print(f"{out_path} exists: name a new file (it is not overwritten)", file=sys.stderr)
        raise SystemExit(2)
    folder = Path(out_path).resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        # checked before the runs (minutes at 0.5 mm), not after them
        print(f"{out_path}: its folder {folder} does not exist or cannot be written",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    out: dict[str, dict] = {}
    for dev, power in SETTINGS.items():
        app = replace(applicator(dev), mw_model=model)
        rows = [r for r in rows_from_chart(app) if r.power_w == power]
        for h in spacings:
            tic = time.perf_counter()
            preds = predict_zones(rows, spacing_mm=h, applicators={dev: app})
            out[f"{dev} {h}"] = {
                "wall_s": time.perf_counter() - tic,
                "mw_model": model,
                "rows": [
                    (p.row.duration_s, p.predicted_length_mm, p.predicted_width_mm) for p in preds
                ],
            }
            print(f"{dev} {power:g} W, {h:g} mm: {out[f'{dev} {h}']['wall_s']:.1f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)
    head = " | ".join(f"{h:g} mm" for h in spacings)
    print(f"| device, setting | {head} | spread (length / width) |")
    print("|---|" + "---|" * (len(spacings) + 1))
    for dev, power in SETTINGS.items():
        for i, (dur, *_) in enumerate(out[f"{dev} {spacings[0]}"]["rows"]):
            vals = [out[f"{dev} {h}"]["rows"][i] for h in spacings]
            lengths, widths = [v[1] for v in vals], [v[2] for v in vals]
            cells = " | ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(lengths, widths, strict=True))
            spread = f"{max(lengths) - min(lengths):.1f} / {max(widths) - min(widths):.1f}"
            print(f"| {dev} {power:g} W {dur:g} s | {cells} | {spread} |")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        raise SystemExit(130) from None
