"""Benchmark of Y-90 voxel dosimetry on a 256^3 volume (goal: < 5 s on the 2-core machine).

Local deposition and S-value kernel (FFT) side by side, at the kernel's 4.8 mm voxels and
at 3 mm (the activity rebinned to 4.8 mm and the dose interpolated back). Prints a table
and writes bench/results/sirt.json.

Usage: python bench/sirt.py [--n 256] [--out bench/results/sirt.json]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _results import machine, write_result

from ioplan.anatomy import Label
from ioplan.embolization import synthetic_spect, voxel_dose
from ioplan.imaging import Grid, Volume


def case(n: int, spacing: float):
    g = Grid((n, n, n), (spacing,) * 3)
    c = (np.arange(n) - n / 2) * spacing
    zz, yy, xx = np.meshgrid(c, c, c, indexing="ij")
    r_liver = (xx / (0.3 * n * spacing)) ** 2 + (yy / (0.25 * n * spacing)) ** 2 + (
        zz / (0.25 * n * spacing)
    ) ** 2  # fmt: skip
    lab = np.where(r_liver <= 1, int(Label.LIVER), 0).astype(np.uint8)
    lab[(xx**2 + yy**2 + zz**2) <= (0.06 * n * spacing) ** 2] = int(Label.TUMOR)
    ct = np.full(g.shape, 40.0, np.float32)
    labels = Volume(lab, g)
    return synthetic_spect(labels, tn=4.0, lsf=0.0, fwhm_mm=12.0), Volume(ct, g), labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--out", default="bench/results/sirt.json")
    args = ap.parse_args()
    rows = []
    for spacing in (4.8, 3.0):
        spect, ct, labels = case(args.n, spacing)
        for method in ("ldm", "kernel"):
            t0 = time.perf_counter()
            voxel_dose(spect, ct, labels, 2.0, method=method)
            rows.append({"spacing_mm": spacing, "method": method,
                         "seconds": time.perf_counter() - t0})  # fmt: skip
    result = {
        "machine": machine(),
        "n": args.n,
        "rows": rows,
        "goal_s": 5.0,
    }
    print(f"{'voxel':>6} {'method':>7} {'seconds':>8}  ({args.n}^3; goal < 5 s)")
    for r in rows:
        print(f"{r['spacing_mm']:>6} {r['method']:>7} {r['seconds']:>8.2f}")
    write_result(result, args.out)


if __name__ == "__main__":
    main()
