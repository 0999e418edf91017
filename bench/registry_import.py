"""Benchmark of the registry CSV import: time and peak memory of ``import_csv``.

A synthetic cohort (``ioplan.registry.write_demo_cohort``, about 21 rows per patient over the
eight files) is written once into a cache folder; then a fresh child process opens an empty
SQLite registry and imports it in one transaction, and reports its wall time and its peak
resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, measured in the child so that
the generation of the cohort does not count). Prints a table and writes
bench/results/registry_import.json.

Usage: python bench/registry_import.py [--rows 1000000] [--out bench/results/registry_import.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import machine, write_result

#: The child: import the folder into a new SQLite file, print seconds, peak RSS and rows.
_CHILD = """
import json, resource, sys, time
from ioplan.registry import import_csv, open_db, session_scope
folder, db = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
with session_scope(open_db(db)) as s:
    rep = import_csv(s, folder)
seconds = time.perf_counter() - t0
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_kib / 1024,
                  "rows": rep.to_dict()["total"]}))
"""

ROWS_PER_PATIENT = 21.1  # of the demo cohort (measured: 84,146 rows for 3,991 patients)


def cohort(folder: Path, patients: int, seed: int) -> int:
    """Write the demo cohort into ``folder`` (kept between runs); returns its data rows."""
    from ioplan.registry import write_demo_cohort

    stamp = folder / "cohort.json"
    want = {"patients": patients, "seed": seed}
    if not stamp.exists() or json.loads(stamp.read_text())["cohort"] != want:
        write_demo_cohort(folder, seed=seed, n_patients=patients, overwrite=True)
        rows = sum(len(p.read_text().splitlines()) - 1 for p in folder.glob("*.csv"))
        stamp.write_text(json.dumps({"cohort": want, "rows": rows}))
    return json.loads(stamp.read_text())["rows"]


def measure(folder: Path) -> dict:
    """Import ``folder`` into a new registry in a child process; its time and peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(folder), str(Path(tmp) / "bench.sqlite")],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(f"the import failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, default=1e6, help="about this many CSV rows")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", default=None, help="folder for the cohort (default: temp)")
    ap.add_argument("--out", default="bench/results/registry_import.json")
    args = ap.parse_args()
    patients = max(1, round(args.rows / ROWS_PER_PATIENT))
    cache = Path(args.cache or Path(tempfile.gettempdir()) / f"ioplan-bench-registry-{patients}")
    t0 = time.perf_counter()
    rows = cohort(cache, patients, args.seed)
    generate_s = time.perf_counter() - t0
    csv_mib = sum(p.stat().st_size for p in cache.glob("*.csv")) / 2**20
    run = measure(cache)
    result = {
        "machine": machine(),
        "patients": patients,
        "rows": rows,
        "csv_mib": csv_mib,
        "generate_s": generate_s,
        "import_s": run["seconds"],
        "rows_per_s": rows / run["seconds"],
        "peak_rss_mib": run["peak_rss_mib"],
    }
    assert run["rows"] == rows, (run["rows"], rows)
    heads = ("patients", "rows", "CSV MiB", "import s", "rows/s", "peak MiB")
    print(" ".join(f"{h:>10}" for h in heads))
    print(
        f"{patients:>10} {rows:>10} {csv_mib:>10.1f} {run['seconds']:>10.1f} "
        f"{rows / run['seconds']:>10.0f} {run['peak_rss_mib']:>10.0f}"
    )
    write_result(result, args.out)


if __name__ == "__main__":
    main()
