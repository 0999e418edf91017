"""Cohorts: plan, simulate or measure margins for every case of a folder, on Dask.

One task per case. A case's row (``case``, ``status``, key figures, ``runtime_s``,
``error``) is written to ``OUT/cases/<case>.json`` as soon as it finishes; at the end
the rows are gathered into ``OUT/results.parquet`` and ``OUT/results.csv``. A failed
case never stops the others (its row says why). Running again skips the cases whose
row says ``ok`` and retries the others. ``OUT/batch.json`` records the action and its
options: a folder made by another action, or holding other things, is refused.

A case's files (``plan``: the plan folder) go under ``OUT/cases/<case>/``, written by
the worker: on a cluster, OUT must be on storage the workers share.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.batch._cluster import describe, run_tasks
from ioplan.errors import InputError

__all__ = [
    "BATCH_ACTIONS",
    "BatchOptions",
    "check_batch_output",
    "find_cases",
    "run_batch",
    "run_case",
]

BATCH_ACTIONS = ("plan", "simulate", "margin")
BATCH_SCHEMA_VERSION = 1
#: columns every results table has, in this order (then the action's figures)
BASE_COLUMNS = ("case", "status", "runtime_s", "error")


@dataclass(frozen=True)
class BatchOptions:
    """The action and the options of its command (those it takes in a batch).

    ``plan``: modality, margin_mm, spacing_mm, time_budget_s, seed (``ioplan plan``).
    ``simulate``: applicator_id, power_w, duration_s, direction, spacing_mm: one
    applicator with its tip at the case's first tumour centre (``ioplan simulate
    --case``); the zone's size and its tumour (+ margin) coverage. ``margin``: the
    follow-up zone ``zone_file`` (a mask in each case folder, on the case grid) against
    the case's tumour (``ioplan margin``) with ``margin_mm``.
    """

    action: str
    modality: str = "mwa"
    margin_mm: float | None = None
    spacing_mm: float = 4.0
    time_budget_s: float | None = None
    seed: int = 0
    applicator_id: str | None = None
    power_w: float | None = None
    duration_s: float | None = None
    direction: tuple[float, float, float] = (0.0, 0.0, -1.0)
    #: simulate, cryoprobes: the freeze-thaw protocol (``freeze:600,thaw:300,freeze:600``)
    protocol: str | None = None
    zone_file: str = "followup_zone.nii.gz"
    #: margin: a registry (URL or SQLite path) where each case's margin is recorded for
    #: the treated lesion named by the case's ``registry.json`` (procedure_key, lesion_key)
    registry: str | None = None
    #: replace a margin the registry already holds for that lesion
    registry_overwrite: bool = False

    def __post_init__(self) -> None:
        from ioplan.planning import MARGIN_RANGE_MM, SPACING_RANGE_MM, check_in_range

        if self.action not in BATCH_ACTIONS:
            raise InputError(f"batch action must be plan, simulate or margin, got {self.action!r}")
        check_in_range(self.spacing_mm, *SPACING_RANGE_MM, "--spacing-mm")
        if self.margin_mm is not None:
            check_in_range(self.margin_mm, *MARGIN_RANGE_MM, "--margin-mm")
        if self.action == "plan":
            self.plan_config().applicator()
        if self.action == "simulate":
            from ioplan.devices import applicator

            if self.applicator_id is None:
                raise InputError("batch simulate needs --applicator (see `ioplan applicators`)")
            app = applicator(self.applicator_id)
            if app.modality != "cryo" and (self.power_w is None or self.duration_s is None):
                raise InputError(f"{app.id} is {app.modality}: give --power-w and --duration-s")
            d = np.asarray(self.direction, float)
            if d.shape != (3,) or not np.all(np.isfinite(d)) or np.linalg.norm(d) == 0:
                raise InputError(f"--direction must be 'x,y,z', not zero, got {self.direction}")
            # every setting checked here, once, before any case is read: a bad power or a
            # cryoprobe without its protocol would otherwise fail every case alike
            self.simulation_config(app, tissue="liver")
        if self.action == "margin" and (
            not self.zone_file or "/" in self.zone_file or self.zone_file.startswith(".")
        ):
            raise InputError(
                f"--zone-file must be a file name in each case, got {self.zone_file!r}"
            )

        if self.registry is not None and self.action != "margin":
            raise InputError("--registry records margins: it is for batch margin")

    def simulation_config(self, app, **where):
        """The simulation of one case (``where``: ``case=...`` or ``tissue=...``, tip)."""
        from ioplan.physics import CryoProtocol, SimulationConfig

        d = np.asarray(self.direction, float)
        protocol = CryoProtocol.parse(self.protocol) if self.protocol is not None else None
        return SimulationConfig(applicator=app, power_w=self.power_w,
                                duration_s=self.duration_s, protocol=protocol,
                                direction=tuple(d / np.linalg.norm(d)),
                                spacing_mm=self.spacing_mm, **where)  # fmt: skip

    def plan_config(self):
        from ioplan.planning import PlanConfig

        return PlanConfig(modality=self.modality, margin_mm=self.margin_mm,
                          spacing_mm=self.spacing_mm, time_budget_s=self.time_budget_s,
                          seed=self.seed)  # fmt: skip


def find_cases(cases_dir: str | Path) -> list[Path]:
    """The case folders (holding ``case.toml``) directly under ``cases_dir``, by name."""
    root = Path(cases_dir)
    if not root.is_dir():
        raise InputError(f"CASES_DIR {cases_dir} is not a folder")
    found = sorted(p for p in root.iterdir() if (p / "case.toml").is_file())
    if not found:
        raise InputError(f"CASES_DIR {cases_dir} holds no case folder (a folder with case.toml)")
    return found


def _coverage(case, zone: np.ndarray, margin_mm: float) -> dict[str, float]:
    from scipy import ndimage

    from ioplan.planning import tumour_mask

    tum, _ = tumour_mask(case)
    g = case.labels.grid
    target = ndimage.distance_transform_edt(~tum, sampling=g.spacing_mm) <= margin_mm
    return {
        "tumour_coverage_percent": round(100 * float(zone[tum].mean()), 3),
        "margin_coverage_percent": round(100 * float(zone[target].mean()), 3),
    }


def _which_tumour(case) -> dict[str, Any]:
    """Which tumour a batch row is about: the first of ``case.toml``, said when there are more.

    ``tumours_in_case`` counts the listed tumours (or, without a list, the separate parts of
    the tumour label); with more than one, ``note`` says the others were left out.
    """
    from scipy import ndimage

    from ioplan.anatomy import Label

    n = len(case.tumors)
    if n == 0:
        n = int(ndimage.label(np.asarray(case.labels.array) == int(Label.TUMOR))[1])
    row: dict[str, Any] = {"tumour_index": 0, "tumours_in_case": n}
    if n > 1:
        row["note"] = (f"the case holds {n} tumours: only tumour 0 (the first of case.toml) "
                       "is in this row; the others were not planned or measured")  # fmt: skip
    return row


def _plan_case(opts: BatchOptions, case_dir: Path, out_dir: Path) -> dict[str, Any]:
    from ioplan.anatomy import load_case
    from ioplan.planning import plan_ablation, write_plan

    case = load_case(case_dir)
    plan = plan_ablation(case, opts.plan_config())
    write_plan(plan, case, out_dir / "plan", overwrite=True)
    return {
        "coverage_percent": plan.coverage_percent,
        "margin_coverage_percent": plan.margin_coverage_percent,
        "minimal_margin_mm": plan.minimal_margin_mm,
        "goal_met": plan.goal_met,
        "applicators": len(plan.applicators),
        "zone_volume_ml": plan.zone_volume_ml,
        **_which_tumour(case),
    }


def _simulate_case(opts: BatchOptions, case_dir: Path, out_dir: Path) -> dict[str, Any]:
    from ioplan.anatomy import load_case
    from ioplan.devices import applicator
    from ioplan.imaging import Volume, resample
    from ioplan.physics import simulate

    case = load_case(case_dir)
    if not case.tumors or "centre_mm" not in case.tumors[0]:
        raise InputError("case.toml lists no tumour centre to aim at")
    tip = tuple(float(v) for v in case.tumors[0]["centre_mm"])
    cfg = opts.simulation_config(applicator(opts.applicator_id), case=case, tissue=None,
                                 tip_mm=tip)  # fmt: skip
    res = simulate(cfg)
    zone = resample(Volume(res.zone_mask.astype(np.uint8), res.grid), case.labels.grid,
                    interpolation="nearest")  # fmt: skip
    margin = 5.0 if opts.margin_mm is None else opts.margin_mm
    return {
        "zone_volume_ml": round(res.zone.volume_ml, 3),
        "zone_length_mm": round(res.zone.length_mm, 3),
        "zone_width_mm": round(res.zone.width_mm, 3),
        "max_temperature_c": round(res.max_temperature_c, 3),
        **_coverage(case, np.asarray(zone.array) > 0, margin),
        **_which_tumour(case),
    }


def _margin_case(opts: BatchOptions, case_dir: Path, out_dir: Path) -> dict[str, Any]:
    from ioplan.anatomy import load_case
    from ioplan.assessment import measure_margin
    from ioplan.imaging import Volume, read_nifti
    from ioplan.planning import tumour_mask

    zone_path = case_dir / opts.zone_file
    if not zone_path.is_file():
        raise InputError(f"no follow-up zone {opts.zone_file} in the case folder")
    case = load_case(case_dir)
    tum, _ = tumour_mask(case)
    zone = read_nifti(zone_path)
    margin = 5.0 if opts.margin_mm is None else opts.margin_mm
    r = measure_margin(Volume(tum.astype(np.uint8), case.labels.grid), zone, margin_mm=margin)
    row = {
        "minimal_margin_mm": round(float(r.minimal_margin_mm), 3),
        "coverage_percent": round(float(r.coverage_percent), 3),
        "technical_success": bool(r.technical_success),
        "complete_ablation": bool(r.complete_ablation),
        "tumour_volume_ml": round(float(r.tumour_volume_ml), 3),
        "zone_volume_ml": round(float(r.zone_volume_ml), 3),
        **_which_tumour(case),
    }
    # the figures the registry takes (ioplan.registry.link_margin reads a margin.json)
    _write_json(out_dir / "margin.json", row | {"margin_mm": margin})
    return row


_ACTION = {"plan": _plan_case, "simulate": _simulate_case, "margin": _margin_case}


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


def run_case(opts: BatchOptions, item: tuple[str, str]) -> dict[str, Any]:
    """One case's row (runs on a worker); an error becomes ``status: failed``."""
    case_dir, out_dir = Path(item[0]), Path(item[1])
    t0 = time.perf_counter()
    row: dict[str, Any] = {"case": case_dir.name, "status": "ok", "error": None}
    try:
        (out_dir).mkdir(parents=True, exist_ok=True)
        row |= _ACTION[opts.action](opts, case_dir, out_dir)
    except Exception as exc:  # a failed case never stops the others
        row |= {"status": "failed", "error": _one_line(exc)}
        if os.environ.get("IOPLAN_DEBUG"):
            row["traceback"] = traceback.format_exc()
    row["runtime_s"] = round(time.perf_counter() - t0, 3)
    return row


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=_plain) + "\n")
    os.replace(tmp, path)


def _plain(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    raise TypeError(f"not JSON: {type(x).__name__}")


#: Options that do not change a case's result: a resumed batch may change them.
_RESUMABLE_OPTIONS = frozenset({"registry", "registry_overwrite"})


def check_batch_output(out: str | Path, action: str, options: BatchOptions | None = None) -> Path:
    """Refuse an output folder that is not an earlier batch of ``action`` (or empty/new).

    With ``options``, an earlier batch must also have been run with the same options
    (those that change a case's result): resuming it would otherwise mix rows computed
    with the old settings and the new ones under a batch.json that names only the new.
    """
    from ioplan.imaging import check_writable

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        manifest = out / "batch.json"
        if not manifest.is_file():
            raise InputError(f"--out {out} holds other files (no batch.json): choose a new folder")
        try:
            doc = json.loads(manifest.read_text())
            was = doc.get("action")
        except (OSError, ValueError, AttributeError):
            raise InputError(f"--out {out}: unreadable batch.json") from None
        if was != action:
            raise InputError(f"--out {out} holds a batch {was!r}, not {action!r}: choose another")
        old = doc.get("options")
        if options is not None and isinstance(old, dict):
            new = json.loads(json.dumps(asdict(options)))  # tuples as lists, as stored
            changed = sorted(k for k in new if k not in _RESUMABLE_OPTIONS
                             and k in old and old[k] != new[k])  # fmt: skip
            if changed:
                shown = ", ".join(f"{k} {old[k]!r} -> {new[k]!r}" for k in changed[:3])
                raise InputError(
                    f"--out {out} holds a batch run with other options ({shown}): resuming "
                    "would mix the two; choose another folder"
                )
    check_writable(out if out.is_dir() else out.absolute().parent)
    return out


def _registry_keys(case_dir: Path) -> tuple[str, str] | None:
    path = case_dir / "registry.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        return str(doc["procedure_key"]), str(doc["lesion_key"])
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError("registry.json must hold procedure_key and lesion_key") from None


def _record_in_registry(opts: BatchOptions, cases: list[Path], rows_dir: Path) -> None:
    """Record each measured margin for its treated lesion (one transaction per case).

    The row says ``registry_linked`` (true, false) and why not (``registry_error``, the
    error's kind and message with the registry's keys left out).
    """
    from ioplan.registry import link_margin, open_db, session_scope

    engine = open_db(opts.registry, create=False)
    try:
        for c in cases:
            path = rows_dir / f"{c.name}.json"
            row = json.loads(path.read_text()) if path.is_file() else None
            if not row or row.get("status") != "ok" or row.get("registry_linked"):
                continue
            keys = None
            try:
                keys = _registry_keys(c)
                if keys is None:
                    row |= {"registry_linked": False, "registry_error": "no registry.json"}
                else:
                    with session_scope(engine) as s:
                        link_margin(s, *keys, rows_dir / c.name / "margin.json",
                                    overwrite=opts.registry_overwrite)  # fmt: skip
                    row |= {"registry_linked": True, "registry_error": None}
            except Exception as exc:  # one case's refusal never stops the others
                msg = str(exc)
                for k in keys or ():
                    msg = msg.replace(k, "<key>")
                row |= {"registry_linked": False, "registry_error": f"{type(exc).__name__}: "
                        f"{' '.join(msg.split())[:300]}"}  # fmt: skip
            _write_json(path, row)
    finally:
        engine.dispose()


def run_batch(opts: BatchOptions, cases_dir: str | Path, out: str | Path, *, client,
              progress=None) -> dict[str, Any]:  # fmt: skip
    """Run ``opts.action`` over every case of ``cases_dir``; return the summary document.

    Cases whose ``OUT/cases/<case>.json`` says ``ok`` are skipped (resumed).
    """
    import pandas as pd

    t0 = time.perf_counter()
    cases = find_cases(cases_dir)
    out = check_batch_output(out, opts.action, opts)
    rows_dir = out / "cases"
    rows_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out / "batch.json", {"schema_version": BATCH_SCHEMA_VERSION,
                                      "action": opts.action, "options": asdict(opts),
                                      "cases_dir": str(cases_dir)})  # fmt: skip
    todo, skipped = [], 0
    for c in cases:
        row_path = rows_dir / f"{c.name}.json"
        if row_path.is_file():
            try:
                if json.loads(row_path.read_text()).get("status") == "ok":
                    skipped += 1
                    continue
            except (OSError, ValueError, AttributeError):
                pass
        todo.append((str(c.absolute()), str((rows_dir / c.name).absolute())))

    def save(_i: int, row: dict[str, Any]) -> None:
        _write_json(rows_dir / f"{row['case']}.json", row)

    run_tasks(client, run_case, todo, shared=opts, progress=progress, on_result=save)
    scheduler, workers = describe(client)
    if opts.registry is not None:
        _record_in_registry(opts, cases, rows_dir)
    rows = []
    for c in cases:
        p = rows_dir / f"{c.name}.json"
        rows.append(json.loads(p.read_text()) if p.is_file() else
                    {"case": c.name, "status": "missing", "error": "no result"})  # fmt: skip
    rows = [{k: v for k, v in r.items() if k != "traceback"} for r in rows]
    cols = list(BASE_COLUMNS) + sorted({k for r in rows for k in r} - set(BASE_COLUMNS))
    table = pd.DataFrame(rows, columns=cols)
    table.to_parquet(out / "results.parquet", index=False)
    table.to_csv(out / "results.csv", index=False)
    summary = {
        "schema_version": BATCH_SCHEMA_VERSION,
        "action": opts.action,
        "cases": len(cases),
        "ok": sum(r.get("status") == "ok" for r in rows),
        "failed": sum(r.get("status") == "failed" for r in rows),
        "skipped": skipped,
        "ran": len(todo),
        "progress": {"done": len(todo), "total": len(todo)},
        "scheduler": scheduler,
        "workers": workers,
        "runtime_s": round(time.perf_counter() - t0, 3),
        "results": str(out / "results.parquet"),
        "notes": [f"{r['case']}: {r['note']}" for r in rows if r.get("note")],
        "rows": rows,
    }
    _write_json(out / "summary.json", summary)
    return summary
