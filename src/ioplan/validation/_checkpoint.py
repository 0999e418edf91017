"""A cross-validation's finished folds on disk, so that an interrupted run continues.

A leave-one-out run at the calibration's 1 mm takes hours (session 54: about 3.5 h on two
cores for the three charts), and its document was written only at the end: stopped at
three quarters, nothing was kept. With a checkpoint file each finished fold is appended
as one JSON line (its key, the fitted values and the held-out predictions), and a rerun
with the same file reuses every fold whose key matches: the device, the held-out and
training rows, where its fit starts (the start values themselves, so a new calibration
refits), the voxel sizes, the evaluation budget and the block's temperature. The file is
only ever appended to.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ioplan.errors import InputError
from ioplan.validation._zones import ZonePrediction, ZoneRow

__all__ = ["append_fold", "fold_key", "read_checkpoint"]

_FORMAT = "ioplan-cv-fold"
_SKIP = ("section", "section_extent_mm")  # the zone's picture: not needed to pool errors


def fold_key(item: tuple, shared: dict[str, Any], start_values: dict[str, float],
             hold: str, start: str) -> str:  # fmt: skip
    """What makes a fold's result reusable, as one canonical JSON string."""
    device, _app, held, train = item
    return json.dumps(
        {
            "device": device,
            "hold": hold,
            "start": start,
            "start_values": {k: round(float(v), 9) for k, v in sorted(start_values.items())},
            "fit_spacing_mm": float(shared["fit_spacing_mm"]),
            "spacing_mm": float(shared["spacing_mm"]),
            "max_evaluations": int(shared["max_evaluations"]),
            "initial_temperature_c": shared["initial_temperature_c"],
            "error_norm": int(shared.get("error_norm", 2)),
            "staged": bool(shared.get("staged", False)),
            # only when set, so that the keys of runs without a bound stay as they were
            **({} if shared.get("error_bound_mm") is None
               else {"error_bound_mm": float(shared["error_bound_mm"])}),
            **({"fixed": sorted(shared["fixed"])} if shared.get("fixed") else {}),
            "held": [asdict(r) for r in held],
            "train": [asdict(r) for r in train],
        },
        sort_keys=True,
    )


def read_checkpoint(path: Path) -> dict[str, tuple[dict[str, Any], list[ZonePrediction]]]:
    """``{key: (fitted record fields, held-out predictions)}`` from ``path`` (none yet: {}).

    The last line may be cut short (the run was killed while writing it) and is then left
    out; any other line that is not a fold record means the file is something else, which
    is refused rather than appended to.
    """
    if path.is_dir():
        raise InputError(f"--checkpoint {path}: is a folder, not a file")
    if not path.parent.is_dir():  # found now, not when the first fold ends hours later
        raise InputError(f"--checkpoint {path}: its folder {path.parent} does not exist")
    if path.exists() and not path.is_file():
        raise InputError(f"--checkpoint {path}: not a regular file")
    if not path.exists():
        try:  # writable? found now, not after the first fold; nothing is left behind
            path.touch()
            path.unlink()
        except OSError as exc:
            raise InputError(f"--checkpoint {path}: cannot write it ({exc.strerror})") from None
        return {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--checkpoint {path}: cannot read it ({exc})") from None
    out: dict[str, tuple[dict[str, Any], list[ZonePrediction]]] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if rec.get("format") != _FORMAT:
                raise ValueError("not a fold record")
            preds = [_prediction(p) for p in rec["predictions"]]
            out[rec["key"]] = (dict(rec["fitted"]), preds)
        except (ValueError, KeyError, TypeError, AttributeError):
            if n == len(lines) or _cut_short(line):
                continue  # a line cut short by an interrupted write: that fold runs again
            raise InputError(
                f"--checkpoint {path}: line {n} is not a cross-validation fold record; "
                "name a new file or one an earlier run wrote"
            ) from None
    return out


def _cut_short(line: str) -> bool:
    """A fold record's beginning whose end never reached the file (the run was killed)."""
    head = json.dumps({"format": _FORMAT})[:-1]  # '{"format": "ioplan-cv-fold"'
    return line.startswith(head) and not line.rstrip().endswith("}")


def append_fold(path: Path, key: str, fitted: dict[str, Any],
                preds: list[ZonePrediction]) -> None:  # fmt: skip
    """Append one finished fold (a whole line, flushed)."""
    rec = {"format": _FORMAT, "key": key, "fitted": fitted,
           "predictions": [_prediction_dict(p) for p in preds]}  # fmt: skip
    text = json.dumps(rec) + "\n"
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as f:
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                text = "\n" + text  # after a line cut short: start a fresh one
    with path.open("a", encoding="utf-8") as f:
        f.write(text)
        f.flush()


def _prediction_dict(p: ZonePrediction) -> dict[str, Any]:
    d = {f.name: getattr(p, f.name) for f in fields(p) if f.name not in _SKIP}
    d["row"] = asdict(p.row)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def _prediction(d: dict[str, Any]) -> ZonePrediction:
    d = dict(d)
    row = ZoneRow(**d.pop("row"))
    for k in ("energy_absorbed_j", "max_temperature_c"):
        if d.get(k) is None:
            d[k] = float("nan")
    return ZonePrediction(row=row, **d)
