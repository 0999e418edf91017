"""The planner's fast surrogate: each applicator's zone size from block simulations.

One row per setting: ``(power_w, duration_s, length_mm, width_mm, centre_offset_mm, n)``
(``n`` applicators in parallel). The rows come from the engine itself (uniform perfused
liver, no vessels), so they change whenever the engine, the tissue tables or the
applicator's calibration change. They are kept in memory and on disk: the disk copy is
keyed by a hash of everything that shapes them (the applicator's record, the grid, the
engine's source and the data files), so a stale table can never be read back.

The cache folder is ``$IOPLAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/ioplan``, else
``~/.cache/ioplan``. If it cannot be written the tables are simply recomputed. Processes
that need the same table at once (two plans, a web job beside the command line) compute
it once: the first holds a lock file beside the table, the others wait and read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import numpy as np

from ioplan.devices import Applicator
from ioplan.errors import InputError

__all__ = [
    "CRYO_LETHAL_C",
    "CRYO_MIN_SPACING_MM",
    "CRYO_PROTOCOL",
    "CRYO_SPACING_MM",
    "MAX_CRYOPROBES",
    "zone_table",
]

#: Cryo protocol planned: double freeze (10 min, 5 min active thaw, 10 min), the common
#: clinical protocol; probes 1.5 cm apart (optimum 1.5-2 cm, PMC4850244).
CRYO_PROTOCOL = "freeze:600,thaw:300,freeze:600"
CRYO_SPACING_MM = 15.0
CRYO_LETHAL_C = -40.0
#: Cryo zones are computed (surrogate) and verified (planner) on voxels of at least this
#: size (mm): a double freeze of 25 min at 2 mm costs ~10x the 3 mm run, and at 3 mm one
#: probe's -40 degC zone is 1.1 mm wider and its ice edge 0.3 mm wider than at 1 mm
#: (perfused liver, session 44: validation/convergence.md), close enough for the price.
CRYO_MIN_SPACING_MM = 3.0
#: Most cryoprobes planned at once (the issue's clinical range: up to 8).
MAX_CRYOPROBES = 8

Row = tuple[float, float, float, float, float, int]


def cache_dir() -> Path:
    """Where computed tables are kept between runs."""
    env = os.environ.get("IOPLAN_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ioplan"


@lru_cache(maxsize=1)
def _source_digest() -> str:
    """Hash of the engine's and the planner's source and of the data files they read."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    # the data of the engine, the tissues and the devices shape the zones; the planner's own
    # settings (planning/data/planner.toml) and the other packages' data do not
    tomls = [f for f in root.glob("*/data/*.toml")
             if f.parent.parent.name in ("physics", "tissue", "devices")]  # fmt: skip
    files = sorted([*root.glob("physics/*.py"), *tomls, Path(__file__).resolve()])
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _key(app: Applicator, spacing_mm: float, tissue: str = "liver") -> str:
    from ioplan import __version__

    doc = {
        "applicator": asdict(app),
        "spacing_mm": spacing_mm,
        "version": __version__,
        "source": _source_digest(),
    }
    if tissue != "liver":  # the liver's tables keep their earlier keys
        doc["tissue"] = tissue
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _read(path: Path) -> tuple[Row, ...] | None:
    try:
        doc = json.loads(path.read_text())
        return tuple(
            (float(p), float(t), float(ln), float(w), float(o), int(n))
            for p, t, ln, w, o, n in doc["rows"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(path: Path, app: Applicator, rows: tuple[Row, ...]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return  # the folder cannot be written: the table is simply recomputed next time
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"applicator": app.id, "rows": [list(r) for r in rows]}, f)
        os.replace(tmp, path)  # atomic: a reader never sees half a table
    except BaseException as exc:  # a full disk or Ctrl-C: no half-written file left behind
        Path(tmp).unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise


def zone_table(app: Applicator, spacing_mm: float, tissue: str = "liver",
               max_probes: int = MAX_CRYOPROBES) -> tuple[Row, ...]:  # fmt: skip
    """The surrogate rows for ``app`` (MW/RF at ``spacing_mm``; cryo at >= 3 mm).

    Simulated in a uniform block of ``tissue`` (the liver, or an organ's: planner.toml).
    Cryo: the arrays of 1 to ``max_probes`` probes, each array's row computed (and kept)
    on its own, so that a plan that needs small arrays only never pays for large ones.
    """
    if app.modality == "cryo":
        spacing_mm = max(spacing_mm, CRYO_MIN_SPACING_MM)
        if not 1 <= max_probes <= MAX_CRYOPROBES:
            raise InputError(f"cryo arrays have 1-{MAX_CRYOPROBES} probes, got {max_probes}")
        return tuple(_cryo_row(app, spacing_mm, tissue, n) for n in range(1, max_probes + 1))
    return _heat_table(app, spacing_mm, tissue)


@lru_cache(maxsize=16)
def _heat_table(app: Applicator, spacing_mm: float, tissue: str) -> tuple[Row, ...]:
    path = cache_dir() / "zone-tables" / f"{app.id}-{_key(app, spacing_mm, tissue)}.json"
    return _cached(path, app, lambda: _heat_rows(app, spacing_mm, tissue))


@lru_cache(maxsize=64)
def _cryo_row(app: Applicator, spacing_mm: float, tissue: str, n: int) -> Row:
    key = _key(app, spacing_mm, tissue)
    path = cache_dir() / "zone-tables" / f"{app.id}-{key}-array{n}.json"
    (row,) = _cached(path, app, lambda: _cryo_rows(app, spacing_mm, tissue, (n,)),
                     valid=lambda rows: len(rows) == 1 and rows[0][5] == n)  # fmt: skip
    return row


def _clear_tables() -> None:
    """Forget the tables held in memory (the disk copies stay)."""
    _heat_table.cache_clear()
    _cryo_row.cache_clear()


zone_table.cache_clear = _clear_tables  # type: ignore[attr-defined]


def _cached(path: Path, app: Applicator, compute, valid=lambda rows: True) -> tuple[Row, ...]:
    """The rows kept at ``path``, else ``compute()``'s, written there (one process at once).

    A file that cannot be read, or whose rows ``valid`` refuses, is computed again.
    """
    rows = _read(path)
    if rows is not None and valid(rows):
        return rows
    with _computing(path):
        rows = _read(path)  # another process may have written it while this one waited
        if rows is None or not valid(rows):
            rows = compute()
            _write(path, app, rows)
    return rows


@contextmanager
def _computing(path: Path) -> Iterator[None]:
    """Hold ``path``'s lock file while its table is computed (nothing where locks fail).

    An advisory ``flock``: the kernel drops it when its holder exits, so a killed run
    never leaves the others waiting. Where the folder cannot be written, or the system
    has no ``fcntl``, each process simply computes the table itself.
    """
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path.with_suffix(".lock"), "a")  # held until the table is written
    except (ImportError, OSError):
        yield
        return
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError:
            pass
        yield  # the lock goes with the file's closing


def _heat_rows(app: Applicator, spacing_mm: float, tissue: str = "liver") -> tuple[Row, ...]:
    """MW/RF: one block simulation per power, the zone measured at every candidate time."""
    from ioplan.physics import SimulationConfig, axial_zone, simulate

    if app.modality == "mw":
        lo, hi = app.power_range_w
        powers = sorted({round(v) for v in np.linspace(lo, hi, 3)})
        tlo, thi = app.duration_range_s
        times = tuple(sorted({round(v / 30) * 30 for v in np.linspace(max(tlo, 120), thi, 6)}))
    elif app.modality == "rf":
        powers = [200.0]
        times = (360.0, 540.0, 720.0)
    else:
        raise InputError("the zone surrogate is for MW, RF and cryo applicators")
    rows: list[Row] = []
    for p in powers:
        res = simulate(
            SimulationConfig(
                applicator=app,
                power_w=float(p),
                duration_s=float(max(times)),
                tissue=tissue,
                spacing_mm=spacing_mm,
                snapshot_times_s=times,
            )
        )
        tip = tuple(res.settings["tips_mm"][0])
        d = tuple(res.settings["direction"])
        for t in times:
            z = axial_zone(res.snapshot_fields[f"{t:g}"], res.grid, tip, d, 0.0)
            rows.append((float(p), float(t), z.length_mm, z.width_mm, z.centre_offset_mm, 1))
    return tuple(rows)


def _cryo_rows(app: Applicator, spacing_mm: float, tissue: str = "liver",
               counts: tuple[int, ...] = tuple(range(1, MAX_CRYOPROBES + 1))
               ) -> tuple[Row, ...]:  # fmt: skip
    """Cryo: the -40 degC zone of ``counts`` probes, 15 mm apart, after the double freeze."""
    from ioplan.physics import CryoProtocol, SimulationConfig, axial_zone, simulate

    proto = CryoProtocol.parse(CRYO_PROTOCOL)
    rows: list[Row] = []
    for n in counts:
        res = simulate(
            SimulationConfig(
                applicator=app,
                protocol=proto,
                tissue=tissue,
                spacing_mm=spacing_mm,
                array=n,
                spacing_between_mm=CRYO_SPACING_MM,
                lethal_temperature_c=CRYO_LETHAL_C,
                snapshot_times_s=(proto.duration_s,),
            )
        )
        f = res.snapshot_fields[f"{proto.duration_s:g}"]
        z = axial_zone(f, res.grid, (0.0, 0.0, 0.0), tuple(res.settings["direction"]), 0.0)
        rows.append((0.0, proto.duration_s, z.length_mm, z.width_mm, z.centre_offset_mm, n))
    return tuple(rows)
