"""Benchmark of the main job: `ioplan demo` end to end (phantom, plan, verification, report).

Times each modality's demo in one run on this machine (a first call compiles the numba
kernel; it is timed separately as the warm-up). Prints a table and writes
bench/results/demo.json.

Usage: python bench/demo.py [--modalities mwa cryo] [--spacing-mm 2] [--out bench/results/demo.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from ioplan.cli import main as ioplan


def run_demo(modality: str, spacing_mm: float) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = ioplan(
                ["demo", "--out", f"{tmp}/d", "--modality", modality,
                 "--spacing-mm", str(spacing_mm), "--quiet", "--json"]
            )  # fmt: skip
        dt = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"demo {modality} failed with exit code {code}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modalities", nargs="+", default=["mwa", "cryo"])
    ap.add_argument("--spacing-mm", type=float, default=2.0)
    ap.add_argument("--out", default="bench/results/demo.json")
    args = ap.parse_args()
    warm = run_demo("mwa", 4.0)  # compiles the kernels
    rows = [{"modality": m, "seconds": run_demo(m, args.spacing_mm)} for m in args.modalities]
    result = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "spacing_mm": args.spacing_mm,
        "warm_up_s": warm,
        "demo": rows,
        "goal_s": 60.0,
    }
    print(f"{'modality':>9} {'seconds':>8}  (goal < 60 s; warm-up {warm:.1f} s)")
    for r in rows:
        print(f"{r['modality']:>9} {r['seconds']:>8.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
