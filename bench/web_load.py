"""Load test of `ioplan serve`: concurrent viewers of one case on loopback.

Starts `ioplan serve` in its own process on a free loopback port, then lets N viewers
(threads, one HTTP connection each) do what the viewer's plan page does, R times each:
the case list, the case document, the plan document, then every volume the page shows
(CT, labels, margin shell, zone, needles; the plan's only when the case has one). Reports
the latency of each request kind (median, 95th percentile, max) and the throughput, prints a
table, writes bench/results/web_load.json and .md.

The case: `--cases DIR` (a folder of case folders; the first with a plan is used), or by
default the demo case and its plan made here (`demo_case` + `plan_ablation` at
`--spacing-mm`, about a minute at 2 mm). The committed results used the folder that
`ioplan demo --out DIR/demo` writes (2 mm).

Usage: python bench/web_load.py [--viewers 20] [--rounds 3] [--cases DIR] [--spacing-mm 2]
       [--out bench/results/web_load.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _results import machine, write_result

JSON_KINDS = ("cases", "case", "plan")
VOLUME_KINDS = ("image", "labels", "margin_shell", "zone", "trajectories")


def make_cases(spacing_mm: float, folder: Path) -> Path:
    """The demo case and its plan, written as `ioplan demo` does, into ``folder/demo``."""
    from ioplan.planning import PlanConfig, demo_case, plan_ablation, write_demo

    case, info = demo_case(spacing_mm=spacing_mm)
    plan = plan_ablation(case, PlanConfig(spacing_mm=spacing_mm, robust_samples=10))
    write_demo(case, info, plan, folder / "demo")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cases: Path, port: int, timeout_s: float = 180.0) -> subprocess.Popen:
    """`ioplan serve` in its own process, once it answers (its start imports the engine)."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ioplan", "serve", "--cases", str(cases), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"ioplan serve exited: {log.read().decode(errors='replace')[-500:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"ioplan serve did not answer within {timeout_s:g} s")


def viewer_requests(name: str, has_plan: bool) -> list[tuple[str, str]]:
    """(kind, path) of one page load, in the page's order."""
    reqs = [("cases", "/api/cases"), ("case", f"/api/cases/{name}")]
    if has_plan:
        reqs.append(("plan", f"/api/cases/{name}/plan"))
    for kind in VOLUME_KINDS:
        if kind in ("image", "labels"):
            reqs.append((kind, f"/api/cases/{name}/volumes/{kind}.nii.gz"))
        elif has_plan:
            reqs.append((kind, f"/api/cases/{name}/plan/volumes/{kind}.nii.gz"))
    return reqs


def run_viewers(port: int, reqs, viewers: int, rounds: int):
    """Latencies (s) by kind, bytes moved, errors, wall time."""
    lat: dict[str, list[float]] = {k: [] for k, _ in reqs}
    moved = [0]
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(viewers)

    def viewer():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        start.wait()
        for _ in range(rounds):
            for kind, path in reqs:
                t0 = time.perf_counter()
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                dt = time.perf_counter() - t0
                with lock:
                    lat[kind].append(dt)
                    moved[0] += len(body)
                    if resp.status != 200:
                        errors.append(f"{path}: {resp.status}")
        conn.close()

    threads = [threading.Thread(target=viewer) for _ in range(viewers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, moved[0], errors, time.perf_counter() - t0


def summarise(lat: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    out = {}
    for kind, values in lat.items():
        a = np.asarray(values) * 1000.0
        out[kind] = {
            "n": int(a.size),
            "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p95_ms": round(float(np.percentile(a, 95)), 1),
            "max_ms": round(float(a.max()), 1),
        }
    groups = {
        "json": [v for k, v in lat.items() if k in JSON_KINDS],
        "volume": [v for k, v in lat.items() if k not in JSON_KINDS],
    }
    for group, lists in groups.items():
        a = np.concatenate([np.asarray(v) for v in lists]) * 1000.0
        out[f"all {group}"] = {
            "n": int(a.size),
            "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p95_ms": round(float(np.percentile(a, 95)), 1),
            "max_ms": round(float(a.max()), 1),
        }
    return out


def markdown(doc) -> str:
    lines = [
        "# Web load benchmark",
        "",
        f"`{doc['command']}`: "
        f"{doc['viewers']} concurrent viewers of case `{doc['case']}` "
        f"(grid {' x '.join(map(str, doc['grid_shape']))}), each loading the plan page's "
        f"requests {doc['rounds']} times over loopback; `ioplan serve` in its own process, "
        f"{doc['machine']['cpu_count']} cores.",
        "",
        "| request | n | bytes | p50 (ms) | p95 (ms) | max (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for kind, s in doc["latency"].items():
        size = doc["bytes"].get(kind, "")
        lines.append(
            f"| {kind} | {s['n']} | {size} | {s['p50_ms']} | {s['p95_ms']} | {s['max_ms']} |"
        )
    lines += [
        "",
        f"{doc['requests']} requests in {doc['wall_s']} s ({doc['requests_per_s']} requests/s, "
        f"{doc['mb_per_s']} MB/s); errors: {len(doc['errors'])}. Volumes are written once "
        "per case and then served from the server's cache (the first request of each is "
        f"made before the timing). Load average of the machine after the run: "
        f"{', '.join(map(str, doc['load_average']))} (other work shares the cores).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", type=Path, default=None)
    ap.add_argument("--spacing-mm", type=float, default=2.0)
    ap.add_argument("--out", default="bench/results/web_load.json")
    args = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    cases = args.cases or make_cases(args.spacing_mm, Path(tmp.name))
    port = free_port()
    proc = start_server(cases, port)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("GET", "/api/cases")
        listed = json.loads(conn.getresponse().read())
        chosen = next((c for c in listed if c.get("has_plan")), listed[0])
        name = chosen["name"]
        reqs = viewer_requests(name, chosen.get("has_plan", False))
        sizes = {}
        for kind, path in reqs:  # warm: volumes written into the cache once, before timing
            conn.request("GET", path)
            resp = conn.getresponse()
            sizes[kind] = len(resp.read())
            if resp.status != 200:
                raise SystemExit(f"{path}: HTTP {resp.status}")
        conn.request("GET", f"/api/cases/{name}")
        info = json.loads(conn.getresponse().read())
        conn.close()
        lat, moved, errors, wall = run_viewers(port, reqs, args.viewers, args.rounds)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        tmp.cleanup()
    n = sum(len(v) for v in lat.values())
    doc = {
        "command": "python bench/web_load.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "viewers": args.viewers,
        "rounds": args.rounds,
        "case": name,
        "grid_shape": info["grid"]["shape"],
        "latency": summarise(lat),
        "bytes": sizes,
        "requests": n,
        "wall_s": round(wall, 2),
        "requests_per_s": round(n / wall, 1),
        "mb_per_s": round(moved / wall / 1e6, 1),
        "errors": errors[:20],
        "machine": machine(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    print(markdown(doc))
    write_result(doc, args.out)
    Path(args.out).with_suffix(".md").write_text(markdown(doc))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
