"""Benchmark of the main job: `ioplan demo` end to end (phantom, plan, verification, report).

Each demo runs as its own process, as a user would run it, side by side in one run:

* ``first``: the very first run after installing (numba compiles the engine's kernel
  into an empty cache, and the planner's surrogate tables are computed), microwave only;
* ``cold``: the kernel is compiled already, the surrogate tables are not (a modality
  used for the first time on this machine);
* ``warm``: both cached (every later plan with that applicator).

Prints a table and writes bench/results/demo.json.

``--organs lung kidney bone`` times ``ioplan demo --organ ORGAN`` instead (issue 21: each under
60 s; the kernel and tables cached, as a user's second run), written to demo_organs.json.

Usage: python bench/demo.py [--modalities mwa rfa cryo] [--spacing-mm 2] [--out FILE]
       python bench/demo.py --organs lung kidney bone [--spacing-mm 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import machine, write_result


def run_demo(modality: str, spacing_mm: float, env: dict[str, str], organ: str = "") -> float:
    exe = str(Path(sys.executable).with_name("ioplan"))
    with tempfile.TemporaryDirectory() as tmp:
        what = ["--organ", organ] if organ else ["--modality", modality]
        cmd = [exe, "demo", "--out", f"{tmp}/d", *what,
               "--spacing-mm", str(spacing_mm), "--quiet", "--json"]  # fmt: skip
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
        dt = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"demo {modality} failed: {done.stderr.strip()[-400:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modalities", nargs="+", default=["mwa", "rfa", "cryo"])
    ap.add_argument("--spacing-mm", type=float, default=2.0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--organs", nargs="*", default=None)
    args = ap.parse_args()
    if args.organs:
        organs(args)
        return
    args.out = args.out or "bench/results/demo.json"
    with tempfile.TemporaryDirectory() as numba_dir, tempfile.TemporaryDirectory() as c0:
        first = run_demo(
            "mwa", args.spacing_mm, {"NUMBA_CACHE_DIR": numba_dir, "IOPLAN_CACHE_DIR": c0}
        )
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {"IOPLAN_CACHE_DIR": cache}
        for m in args.modalities:
            cold = run_demo(m, args.spacing_mm, env)
            warm = run_demo(m, args.spacing_mm, env)
            rows.append({"modality": m, "cold_s": cold, "warm_s": warm})
    result = {
        "machine": machine(),
        "spacing_mm": args.spacing_mm,
        "first_run_after_install_mwa_s": first,
        "demo": rows,
        "goal_s": 60.0,
    }
    print(f"first run after install (mwa, kernel compiled): {first:.1f} s; goal < 60 s")
    print(f"{'modality':>9} {'cold (s)':>9} {'warm (s)':>9}")
    for r in rows:
        print(f"{r['modality']:>9} {r['cold_s']:>9.1f} {r['warm_s']:>9.1f}")
    write_result(result, args.out)


def organs(args) -> None:
    """Time ``ioplan demo --organ`` per organ: a warm-up run (caches), then the timed run."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {"IOPLAN_CACHE_DIR": cache}
        for organ in args.organs:
            cold = run_demo("", args.spacing_mm, env, organ)
            warm = run_demo("", args.spacing_mm, env, organ)
            rows.append({"organ": organ, "cold_s": cold, "warm_s": warm})
            print(f"{organ:>7}: cold {cold:6.1f} s, warm {warm:6.1f} s (goal < 60 s)")
    write_result({"machine": machine(), "spacing_mm": args.spacing_mm, "demo": rows,
                  "goal_s": 60.0}, args.out or "bench/results/demo_organs.json")  # fmt: skip


if __name__ == "__main__":
    main()
