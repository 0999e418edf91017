"""Benchmark of the inverse planner: time and coverage of `plan_ablation` on standard cases.

Cases (one row each), all planned in this one process with the caches as they are:

* ``demo-mwa``, ``demo-rfa``, ``demo-cryo``: the demo case (`ioplan.planning.demo_case`,
  a 28 mm tumour 2 mm from a 5-6 mm hepatic vein) with each modality; goal < 60 s;
* ``t45``: a 45 mm tumour, the phantom of `ioplan phantom --tumor-diameter-mm 45`
  (1 mm voxels, seed 0), microwave; goal < 300 s.

The runtime is the wall time of the whole `plan_ablation` call (making the case is not
counted). Coverage, margin and harm come from the plan and its chosen verification run.

Prints a table and writes bench/results/plan.json.

Usage: python bench/plan.py [--cases demo-mwa,demo-rfa,demo-cryo,t45] [--out FILE]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from _results import machine, write_result

from ioplan.anatomy import Case, PhantomConfig, TumorSpec, generate_phantom
from ioplan.planning import PlanConfig, demo_case, plan_ablation, tumour_mask

#: Runtime goals of issue 17 (s).
GOALS_S = {"demo-mwa": 60.0, "demo-rfa": 60.0, "demo-cryo": 60.0, "t45": 300.0, "smoke": None}
ALL_CASES = ("demo-mwa", "demo-rfa", "demo-cryo", "t45")


def make_case(name: str, t45_spacing_mm: float) -> tuple[Case, str, PlanConfig]:
    """The case, its modality and the planner configuration of one row."""
    if name.startswith("demo-"):
        case, _info = demo_case()
        modality = name.split("-", 1)[1]
        return case, modality, PlanConfig(modality=modality)
    if name == "t45":
        tumours = (TumorSpec(diameter_mm=45.0),)
        cfg = PhantomConfig(spacing_mm=t45_spacing_mm, seed=0, tumors=tumours)
        return Case.from_phantom(generate_phantom(cfg)), "mwa", PlanConfig()
    if name == "smoke":  # the smallest case that plans: a 4 mm phantom, 4 mm planning grid
        case = Case.from_phantom(generate_phantom(PhantomConfig(spacing_mm=4.0, seed=3)))
        return case, "mwa", PlanConfig(spacing_mm=4.0, robust_samples=20, time_budget_s=5.0)
    raise SystemExit(f"unknown case {name!r}; choose from {', '.join(ALL_CASES)}")


def _tumour_covered_percent(plan, case: Case) -> float | None:
    """Share of the tumour's voxels inside the zone: the chosen verification run's, else
    recomputed from the zone and the tumour mask."""
    chosen = [r for r in plan.verification_runs if r.get("chosen")]
    if chosen and chosen[-1].get("tumour_voxels_covered_percent") is not None:
        return float(chosen[-1]["tumour_voxels_covered_percent"])
    if plan.zone is None:
        return None
    mask, _ = tumour_mask(case, plan.tumour_index)
    zone = np.asarray(plan.zone.array).astype(bool)
    if zone.shape != mask.shape or not mask.any():
        return None
    return round(100.0 * float(np.sum(zone & mask)) / float(mask.sum()), 2)


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 3)


def run_case(name: str, t45_spacing_mm: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    case, modality, cfg = make_case(name, t45_spacing_mm)
    case_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = plan_ablation(case, cfg)
    runtime = time.perf_counter() - t0
    goal = GOALS_S.get(name)
    harmed = [
        str(r.get("structure", r.get("name", "?")))
        for r in plan.at_risk
        if r.get("lethal_damage") or r.get("within_protect_distance")
    ]
    return {
        "case": name,
        "modality": modality,
        "tumour_diameter_mm": round(float(plan.tumour_diameter_mm), 1),
        "runtime_s": round(runtime, 2),
        "case_s": round(case_s, 2),
        "goal_met": plan.goal_met,
        "applicators": len(plan.applicators),
        "tumour_voxels_covered_percent": _tumour_covered_percent(plan, case),
        "margin_coverage_percent": _finite(plan.margin_coverage_percent),
        "minimal_margin_mm": _finite(plan.minimal_margin_mm),
        "robust_coverage": plan.robust_coverage,
        "verification_runs": len(plan.verification_runs),
        "candidates_considered": plan.candidates_considered,
        "harmed": harmed,
        "time_goal_s": goal,
        "within_time_goal": None if goal is None else runtime < goal,
    }


def _fmt(x: Any, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'case':>9} {'mod':>4} {'d mm':>5} {'time s':>7} {'goal s':>6} {'in time':>7} "
            f"{'met':>4} {'n':>2} {'tum %':>6} {'marg %':>6} {'min mm':>6} {'robust':>6} "
            f"{'runs':>4} {'cands':>6}  harmed")  # fmt: skip
    print(head)
    for r in rows:
        print(f"{r['case']:>9} {r['modality']:>4} {r['tumour_diameter_mm']:>5.0f} "
              f"{r['runtime_s']:>7.1f} {_fmt(r['time_goal_s'], '6.0f'):>6} "
              f"{_fmt(r['within_time_goal'], ''):>7} {'yes' if r['goal_met'] else 'no':>4} "
              f"{r['applicators']:>2} {_fmt(r['tumour_voxels_covered_percent'], '6.1f'):>6} "
              f"{_fmt(r['margin_coverage_percent'], '6.1f'):>6} "
              f"{_fmt(r['minimal_margin_mm'], '6.1f'):>6} {_fmt(r['robust_coverage'], '6.2f'):>6} "
              f"{r['verification_runs']:>4} {r['candidates_considered']:>6}  "
              f"{', '.join(r['harmed']) or '-'}")  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(ALL_CASES),
                    help="comma-separated rows: " + ",".join(ALL_CASES))  # fmt: skip
    ap.add_argument("--t45-spacing-mm", type=float, default=1.0,
                    help="voxel size of the 45 mm phantom (as `ioplan phantom`: 1 mm)")  # fmt: skip
    ap.add_argument("--out", default="bench/results/plan.json")
    ap.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    names = ["smoke"] if args.smoke else [c.strip() for c in args.cases.split(",") if c.strip()]
    rows = []
    for name in names:
        rows.append(run_case(name, args.t45_spacing_mm))
        print(f"{name}: {rows[-1]['runtime_s']:.1f} s", flush=True)
    result = {
        "machine": machine(),
        "t45_spacing_mm": args.t45_spacing_mm,
        "note": "runtime_s: wall time of plan_ablation, caches (numba kernel, surrogate "
        "tables) as found; case_s: making the case, not counted",
        "goals_s": {k: v for k, v in GOALS_S.items() if v is not None},
        "plans": rows,
    }
    print_table(rows)
    write_result(result, args.out)
    return result


if __name__ == "__main__":
    main()
