"""Benchmark of HiGHS presolve on the planner's integer programs, solved side by side.

The planner chooses applicators with `ioplan.planning._setcover`, whose stages are MILPs
solved by `scipy.optimize.milp` (HiGHS) in `_setcover._run`: the "min count" and
"max coverage" stages (mip_rel_gap 0, presolve on) and the "min cost" stage (count fixed,
mip_rel_gap = the planner's cost_gap > 0, presolve off). This script measures what presolve
does on exactly the models the planner builds:

1. Each case (one row) is planned with `plan_ablation` while `_setcover._run` is replaced
   by a wrapper that records every (model, objective, gap) it is given, then calls the
   original (so the plans are the planner's own). Cases:

   * ``liver-4``, ``liver-3``: the liver demo (`demo_case(spacing_mm=S)`) at S = 4 and 3 mm,
     `PlanConfig(spacing_mm=S, robust_samples=10)`;
   * ``lung-3``, ``kidney-3``: the organ demos (`organ_demo_case(name, spacing_mm=3.0)`)
     with their modality, `PlanConfig(spacing_mm=3.0, robust_samples=10, modality=...)`.

2. Every recorded model is then solved again twice, one after the other in this process:
   presolve on and presolve off (options mip_rel_gap = the recorded gap, time_limit 60 s;
   the integrality, bounds and constraints `_run` uses). The order alternates (on/off,
   off/on) between the models of each stage kind, so neither side always meets the
   warmer caches. Measured per solve: wall time (perf_counter) and CPU time
   (process_time) of the `milp` call, HiGHS status and objective. The two agree when
   both objectives are within a relative 1e-6 (or both have none); a flagged case is one
   side returning status 2 (infeasible) while the other found a solution. Side by side
   because another process may share the CPU: a slow spell then hits both sides of a
   pair, not one configuration's run.

3. Totals per stage kind: the cost stage (gap > 0) and the other stages (gap 0), per case
   and over all cases: seconds with and without presolve, their ratio (on/off), number of
   solves, disagreements.

Prints a table and writes bench/results/setcover.json.

Usage: python bench/setcover.py [--cases liver-4,liver-3,lung-3,kidney-3] [--out FILE]
       python bench/setcover.py --smoke   (a seeded random cover problem, seconds)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

import numpy as np
from _results import machine, write_result
from scipy.optimize import milp

import ioplan.planning._setcover as setcover
from ioplan.planning import PlanConfig, demo_case, plan_ablation
from ioplan.planning._demo import ORGAN_DEMOS, organ_demo_case

ALL_CASES = ("liver-4", "liver-3", "lung-3", "kidney-3")
#: time limit (s) of each re-solve
TIME_LIMIT_S = 60.0
#: relative tolerance under which two objectives agree
REL_TOL = 1e-6
#: HiGHS status codes of scipy.optimize.milp
STATUS = {0: "optimal", 1: "limit", 2: "infeasible", 3: "unbounded", 4: "other"}


def _spacing(name: str) -> tuple[str, float]:
    """The organ and spacing (mm) of a case name such as ``liver-4``."""
    if name == "synthetic":
        return name, 0.0
    organ, _, spacing = name.partition("-")
    try:
        s = float(spacing)
    except ValueError:
        s = None
    if organ not in ("liver", *ORGAN_DEMOS) or s is None or not 1.0 <= s <= 4.0:
        print(f"error: unknown case {name!r}; choose from {', '.join(ALL_CASES)} (or "
              "ORGAN-SPACING with 1-4 mm, e.g. bone-3, or synthetic)", file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    return organ, s


def make_case(name: str):
    """The case and the planner configuration of one row."""
    organ, s = _spacing(name)
    if organ == "liver":
        case, _info = demo_case(spacing_mm=s)
        return case, PlanConfig(spacing_mm=s, robust_samples=10)
    case, _info = organ_demo_case(organ, spacing_mm=s)
    return case, PlanConfig(spacing_mm=s, robust_samples=10,
                            modality=ORGAN_DEMOS[organ]["modality"])  # fmt: skip


def _synthetic():
    """A seeded random cover problem (the smoke test's case: seconds, not a plan).

    300 points (the first 60 must), 120 candidates in 60 trajectories, each covering a
    ball of points around a random centre on a line; costs random.
    """
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, 300)
    centres = rng.uniform(0, 1, 120)
    covers = np.abs(pts[:, None] - centres[None, :]) < rng.uniform(0.08, 0.3, 120)[None, :]
    must = np.zeros(300, bool)
    must[np.argsort(pts)[120:180]] = True  # a middle stretch: coverable
    return setcover.CoverProblem(covers=covers, must=must, cost=rng.uniform(1, 5, 120),
                                 group=np.arange(120) // 2, max_selected=6)  # fmt: skip


def plan_recording(name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Plan one case, recording every model `_setcover._run` solves."""
    if name == "synthetic":
        case = cfg = None
    else:
        case, cfg = make_case(name)
    calls: list[dict[str, Any]] = []
    original = setcover._run

    def recording_run(model, objective, time_limit_s, gap=0.0, presolve=True):
        t0 = time.perf_counter()
        stage = original(model, objective, time_limit_s, gap=gap, presolve=presolve)
        calls.append({"model": model, "objective": np.array(objective, copy=True),
                      "gap": float(gap), "planner_presolve": bool(presolve),
                      "planner_s": time.perf_counter() - t0,
                      "planner_optimal": stage.optimal})  # fmt: skip
        return stage

    setcover._run = recording_run
    try:
        t0 = time.perf_counter()
        if name == "synthetic":
            sol = setcover.solve_cover(_synthetic(), cost_gap=0.01)
            plan_s = time.perf_counter() - t0
            milp_s = round(sum(c["planner_s"] for c in calls), 3)
            return calls, {"case": name, "modality": "-", "spacing_mm": None,
                           "plan_s": round(plan_s, 2), "applicators": sol.count,
                           "goal_met": sol.feasible_goal, "milp_calls": len(calls),
                           "planner_milp_s": milp_s}  # fmt: skip
        plan = plan_ablation(case, cfg)
        plan_s = time.perf_counter() - t0
    finally:
        setcover._run = original
    info = {
        "case": name,
        "modality": cfg.modality,
        "spacing_mm": cfg.spacing_mm,
        "plan_s": round(plan_s, 2),
        "applicators": len(plan.applicators),
        "goal_met": plan.goal_met,
        "milp_calls": len(calls),
        "planner_milp_s": round(sum(c["planner_s"] for c in calls), 3),
    }
    return calls, info


def solve_once(call: dict[str, Any], presolve: bool) -> dict[str, Any]:
    """One `milp` solve of a recorded model: wall and CPU seconds, status, objective."""
    model = call["model"]
    w0, c0 = time.perf_counter(), time.process_time()
    res = milp(
        call["objective"],
        integrality=model.integrality,
        bounds=model.bounds,
        constraints=model.constraint,
        options={"mip_rel_gap": call["gap"], "presolve": presolve, "time_limit": TIME_LIMIT_S},
    )
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    fun = None if res.x is None or res.fun is None else float(res.fun)
    return {"s": wall, "cpu_s": cpu, "status": int(res.status), "objective": fun}


def compare(on: dict[str, Any], off: dict[str, Any], gap: float) -> dict[str, Any]:
    """Whether the two solves agree, and which kind of disagreement it is."""
    a, b = on["objective"], off["objective"]
    if a is None and b is None:
        agree = True
    elif a is None or b is None:
        agree = False
    else:
        agree = math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-9)
    infeasible_vs_found = None
    if a is None and b is not None and on["status"] == 2:
        infeasible_vs_found = "presolve on: infeasible; off: found"
    elif b is None and a is not None and off["status"] == 2:
        infeasible_vs_found = "presolve off: infeasible; on: found"
    within_gap = None
    if a is not None and b is not None:
        within_gap = abs(a - b) <= gap * max(abs(a), abs(b)) + 1e-9
    return {"agree": agree, "infeasible_vs_found": infeasible_vs_found,
            "within_gap": within_gap}  # fmt: skip


def resolve_all(case: str, calls: list[dict[str, Any]], turns: dict[str, int]) -> list[dict]:
    """Solve each recorded model with presolve on and off, alternating the order.

    The order alternates within each stage kind (``turns`` counts the solves of each kind so
    far, over all cases): the stages come in (count, cost) pairs, so alternating over all
    models would put one side first on nearly every cost stage.
    """
    rows = []
    for i, call in enumerate(calls):
        model, gap = call["model"], call["gap"]
        kind = "cost" if gap > 0 else "other"
        order = (True, False) if turns[kind] % 2 == 0 else (False, True)
        turns[kind] += 1
        got = {p: solve_once(call, p) for p in order}
        a = model.constraint.A
        rows.append({
            "case": case,
            "index": i,
            "kind": kind,
            "coverage_objective": bool(np.any(call["objective"] < 0)),
            "gap": gap,
            "n_var": int(model.n_var),
            "n_int": int(np.sum(model.integrality)),
            "n_rows": int(a.shape[0]),
            "nnz": int(a.nnz),
            "first": "on" if order[0] else "off",
            "planner_presolve": call["planner_presolve"],
            "planner_s": round(call["planner_s"], 4),
            "on": {k: round(v, 4) if k.endswith("s") else v for k, v in got[True].items()},
            "off": {k: round(v, 4) if k.endswith("s") else v for k, v in got[False].items()},
            **compare(got[True], got[False], gap),
        })  # fmt: skip
    return rows


def aggregate(solves: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals of a set of solves: seconds on and off, ratio, count, disagreements."""
    on = sum(s["on"]["s"] for s in solves)
    off = sum(s["off"]["s"] for s in solves)
    return {
        "solves": len(solves),
        "on_s": round(on, 3),
        "off_s": round(off, 3),
        "on_over_off": round(on / off, 3) if off > 0 else None,
        "on_cpu_s": round(sum(s["on"]["cpu_s"] for s in solves), 3),
        "off_cpu_s": round(sum(s["off"]["cpu_s"] for s in solves), 3),
        "on_slower_count": sum(s["on"]["s"] > s["off"]["s"] for s in solves),
        "on_limit": sum(s["on"]["status"] == 1 for s in solves),
        "off_limit": sum(s["off"]["status"] == 1 for s in solves),
        "disagree": sum(not s["agree"] for s in solves),
        "infeasible_vs_found": sum(s["infeasible_vs_found"] is not None for s in solves),
        "outside_gap": sum(s["within_gap"] is False for s in solves),
    }


def summary(solves: list[dict[str, Any]], cases: list[str]) -> list[dict[str, Any]]:
    out = []
    for case in [*cases, "all"] if len(cases) > 1 else cases:
        for kind in ("cost", "other"):
            sel = [s for s in solves if s["kind"] == kind and case in ("all", s["case"])]
            out.append({"case": case, "stage": kind, **aggregate(sel)})
    return out


def _fmt(x: Any, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_table(plans: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    print(f"{'case':>9} {'mod':>4} {'plan s':>7} {'n':>2} {'met':>4} {'milps':>5} "
          f"{'milp s':>7}")  # fmt: skip
    for p in plans:
        print(f"{p['case']:>9} {p['modality']:>4} {p['plan_s']:>7.1f} {p['applicators']:>2} "
              f"{'yes' if p['goal_met'] else 'no':>4} {p['milp_calls']:>5} "
              f"{p['planner_milp_s']:>7.2f}")  # fmt: skip
    print()
    print(f"{'case':>9} {'stage':>5} {'solves':>6} {'on s':>8} {'off s':>8} {'on/off':>6} "
          f"{'on cpu':>8} {'off cpu':>8} {'on>off':>6} {'limit':>5} {'differ':>6} "
          f"{'inf/found':>9} {'>gap':>4}")  # fmt: skip
    for r in rows:
        print(f"{r['case']:>9} {r['stage']:>5} {r['solves']:>6} {r['on_s']:>8.2f} "
              f"{r['off_s']:>8.2f} {_fmt(r['on_over_off'], '6.2f'):>6} {r['on_cpu_s']:>8.2f} "
              f"{r['off_cpu_s']:>8.2f} {r['on_slower_count']:>6} "
              f"{str(r['on_limit']) + '/' + str(r['off_limit']):>5} {r['disagree']:>6} "
              f"{r['infeasible_vs_found']:>9} {r['outside_gap']:>4}")  # fmt: skip


def print_disagreements(solves: list[dict[str, Any]]) -> None:
    bad = [s for s in solves if not s["agree"]]
    if not bad:
        print("\nno disagreements")
        return
    print("\ndisagreements (objective: presolve on vs off):")
    for s in bad:
        on, off = s["on"], s["off"]
        print(f"  {s['case']} #{s['index']} {s['kind']} gap {s['gap']:g}: "
              f"on {STATUS.get(on['status'])} {_fmt(on['objective'], '.6g')} "
              f"({on['s']:.2f} s), off {STATUS.get(off['status'])} "
              f"{_fmt(off['objective'], '.6g')} ({off['s']:.2f} s)"
              f"{'; ' + s['infeasible_vs_found'] if s['infeasible_vs_found'] else ''}")  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(ALL_CASES),
                    help="comma-separated rows: " + ",".join(ALL_CASES))  # fmt: skip
    ap.add_argument("--out", default="bench/results/setcover.json")
    ap.add_argument("--smoke", action="store_true",
                    help="a seeded random cover problem only (a quick check)")  # fmt: skip
    args = ap.parse_args(argv)
    names = ["synthetic"] if args.smoke else [c.strip() for c in args.cases.split(",") if c.strip()]
    for name in names:  # refuse an unknown name before planning any case
        _spacing(name)
    t_start = time.perf_counter()
    plans, solves = [], []
    turns = {"cost": 0, "other": 0}
    for name in names:
        calls, info = plan_recording(name)
        plans.append(info)
        print(f"{name}: planned in {info['plan_s']:.1f} s, {len(calls)} MILPs", flush=True)
        t0 = time.perf_counter()
        solves.extend(resolve_all(name, calls, turns))
        print(f"{name}: re-solved in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = summary(solves, names)
    total_s = time.perf_counter() - t_start
    result = {
        "machine": machine(),
        "scipy": __import__("scipy").__version__,
        "note": "each recorded model solved twice in this process, presolve on and off, "
        "order alternating; s: wall time of milp, cpu_s: process time; kind cost: gap > 0 "
        "(min cost stage), other: gap 0 (min count / max coverage); on_over_off: on_s / "
        "off_s; disagree: objectives differ by more than relative 1e-6 or one side has none; "
        "infeasible_vs_found: one side status 2 while the other found a solution; "
        "outside_gap: objectives differ by more than the solve's mip_rel_gap",
        "time_limit_s": TIME_LIMIT_S,
        "total_s": round(total_s, 1),
        "plans": plans,
        "summary": rows,
        "solves": solves,
    }
    print()
    print_table(plans, rows)
    print_disagreements(solves)
    print(f"\ntotal {total_s:.1f} s")
    write_result(result, args.out)
    return result


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        raise SystemExit(130) from None
