"""Benchmark of `ioplan uncertainty`: samples per minute, and scaling from 1 to 2 workers.

One case (a phantom with one tumour, `ioplan phantom --tumor-diameter-mm D --seed 1`),
planned once (not timed); then the same Monte Carlo sweep (same seed, so the same
samples) on a LocalCluster of 1 worker, then of 2 workers (one process, one thread
each). The wall time of `run_uncertainty` is measured (the cluster's start is not);
`mean_sample_runtime_s` is one sample's time inside its worker (its simulations), so
`workers x 60 / mean_sample_runtime_s` is the rate with no overhead at all.

Prints a table and writes bench/results/uncertainty.json.

Usage: python bench/uncertainty.py [--samples 24] [--spacing-mm 3] [--diameter-mm 20]
                                   [--workers 1,2] [--out FILE] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import machine, write_result

from ioplan.anatomy import load_case, write_phantom_case
from ioplan.batch import UncertaintySpec, dask_client, engine_model_from_plan, run_uncertainty
from ioplan.planning import PlanConfig, plan_ablation, write_plan


def make_plan(folder: Path, diameter_mm: float, spacing_mm: float) -> tuple[Path, Path, float]:
    """A phantom case and its plan in ``folder``; returns their paths and the planning time."""
    case_dir = folder / "case"
    write_phantom_case(case_dir, tumor_diameters_mm=(diameter_mm,), spacing_mm=spacing_mm,
                       seed=1)  # fmt: skip
    case = load_case(case_dir)
    t0 = time.perf_counter()
    plan = plan_ablation(case, PlanConfig(spacing_mm=spacing_mm, margin_mm=5.0,
                                          robust_samples=10, time_budget_s=60.0))  # fmt: skip
    planning_s = time.perf_counter() - t0
    write_plan(plan, case, folder / "plan")
    return case_dir, folder / "plan", planning_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--spacing-mm", type=float, default=3.0)
    ap.add_argument("--diameter-mm", type=float, default=20.0)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "uncertainty.json"))
    ap.add_argument("--smoke", action="store_true", help="4 mm, 15 mm tumour, 4 samples.")
    a = ap.parse_args()
    if a.smoke:
        a.samples, a.spacing_mm, a.diameter_mm = 4, 4.0, 15.0
    counts = [int(v) for v in a.workers.split(",")]
    spec = UncertaintySpec()
    with tempfile.TemporaryDirectory() as tmp:
        case_dir, plan_dir, planning_s = make_plan(Path(tmp), a.diameter_mm, a.spacing_mm)
        model, info = engine_model_from_plan(plan_dir, case_dir)
        rows = []
        first = None
        for n in counts:
            load = os.getloadavg()[0]
            with dask_client(workers=n) as c:
                res = run_uncertainty(model, spec, samples=a.samples, seed=a.seed, client=c)
            if first is None:
                first = res
            rows.append({
                "workers": n,
                "samples": a.samples,
                "runtime_s": round(res.runtime_s, 3),
                "samples_per_minute": round(60 * a.samples / res.runtime_s, 2),
                "mean_sample_runtime_s": round(res.sample_runtime_s, 4),
                "ideal_samples_per_minute": round(60 * n / res.sample_runtime_s, 2),
                "coverage_probability": res.coverage_probability,
                "same_numbers_as_first": bool(
                    res.per_sample_coverage == first.per_sample_coverage
                    and np.array_equal(np.asarray(res.map.array), np.asarray(first.map.array))
                ),
                "load_average_1min_before": round(load, 2),
            })  # fmt: skip
    base = rows[0]["samples_per_minute"]
    for r in rows:
        r["speedup"] = round(r["samples_per_minute"] / base, 3)
    doc = {
        "benchmark": "uncertainty",
        "machine": machine(),
        "case": {
            "tumour_diameter_mm": a.diameter_mm,
            "spacing_mm": a.spacing_mm,
            "voxels": int(np.prod(model.grid.shape)),
            "applicators": len(model.needles),
            "planning_s": round(planning_s, 2),
        },
        "error_model": {
            "placement_error_mm": spec.placement_error_mm,
            "angle_error_deg": spec.angle_error_deg,
            "perfusion_cv": spec.perfusion_cv,
            "property_cv": spec.property_cv,
        },
        "model": info,
        "rows": rows,
    }
    print(f"{'workers':>7} {'samples':>7} {'runtime_s':>9} {'samples/min':>11} "
          f"{'s/sample':>8} {'speedup':>7} {'same':>5} {'load':>5}")  # fmt: skip
    for r in rows:
        print(f"{r['workers']:>7} {r['samples']:>7} {r['runtime_s']:>9.2f} "
              f"{r['samples_per_minute']:>11.1f} {r['mean_sample_runtime_s']:>8.3f} "
              f"{r['speedup']:>7.2f} {r['same_numbers_as_first']!s:>5} "
              f"{r['load_average_1min_before']:>5.2f}")  # fmt: skip
    write_result(doc, a.out)


if __name__ == "__main__":
    main()
