"""Leave-one-setting-out cross-validation of a microwave antenna's calibration.

A calibration that fits every published row can fit noise. Here each setting (power and
duration) of a device is held out in turn: the source model is fitted
(:func:`~ioplan.validation.calibrate_microwave`) on the device's other rows only, then
the held-out rows are predicted. The errors of the held-out predictions, pooled over
every fold, say how the model predicts settings it was not fitted to (issue 19's goal:
mean <= 3 mm).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ioplan.devices import Applicator, applicator
from ioplan.errors import InputError
from ioplan.validation._calibrate import (
    DEFAULT_ERROR_BOUND_MM,
    DEFAULT_ERROR_NORM,
    ERROR_NORMS,
    MW_PARAMETERS,
    calibrate_microwave,
    fitted_parameters,
)
from ioplan.validation._checkpoint import append_fold, fold_key, read_checkpoint
from ioplan.validation._zones import ZoneRow, predict_zones, summarise

__all__ = [
    "CV_HOLDS",
    "CV_STARTS",
    "cross_validate",
    "generic_start",
    "run_fold",
    "settings_folds",
]

#: Where each fold's fit starts: the device's current calibration (fitted on every row,
#: held-out ones included), or a generic start that no published row has touched.
CV_STARTS = ("calibration", "generic")

#: Fewest rows a fold may be fitted on (the fit has five parameters; below this the
#: held-out setting is reported as skipped, not predicted from an unfitted model).
MIN_TRAINING_ROWS = 3


#: What a fold holds out: one setting (power and duration), every duration of one power
#: (the model predicts a power it was not fitted at: rows above, below or between the
#: fitted powers), or every power at one duration (a time it was not fitted at).
CV_HOLDS = ("setting", "power", "duration")


def settings_folds(
    rows: Sequence[ZoneRow], hold: str = "setting"
) -> list[tuple[str, tuple[float | None, float | None], list, list]]:
    """The folds: ``(device, (power_w, duration_s), held_out_rows, training_rows)``.

    Every row is held out exactly once; a fold's training rows are the same device's
    other rows. ``hold`` (:data:`CV_HOLDS`) says what a fold holds out: a setting, a power
    (then the fold's duration is None) or a duration (then its power is None).
    """
    if hold not in CV_HOLDS:
        raise InputError(f"hold must be one of {', '.join(CV_HOLDS)}, got {hold!r}")

    def key(r: ZoneRow) -> tuple[float | None, float | None]:
        return (None if hold == "duration" else r.power_w,
                None if hold == "power" else r.duration_s)  # fmt: skip

    folds = []
    devices = sorted({r.device for r in rows})
    for device in devices:
        mine = [r for r in rows if r.device == device]
        for setting in sorted({key(r) for r in mine}, key=lambda k: (k[0] or 0.0, k[1] or 0.0)):
            held = [r for r in mine if key(r) == setting]
            train = [r for r in mine if key(r) != setting]
            folds.append((device, setting, held, train))
    return folds


def generic_start(train: Sequence[ZoneRow]) -> dict[str, float]:
    """A fold's start that no held-out row informs.

    The lumped parameters at the log-centre of their bounds (:data:`MW_PARAMETERS`), the
    feed offset at the mean chart centre offset of the fold's own training rows (the
    bound centre if none gives one).
    """
    start = {k: math.sqrt(lo * hi) for k, (lo, hi) in MW_PARAMETERS.items()}
    offsets = [r.centre_offset_mm for r in train if r.centre_offset_mm is not None]
    if offsets:
        lo, hi = MW_PARAMETERS["feed_offset_mm"]
        start["feed_offset_mm"] = min(hi, max(lo, sum(offsets) / len(offsets)))
    return start


def cross_validate(
    rows: Sequence[ZoneRow],
    *,
    start: str = "calibration",
    hold: str = "setting",
    spacing_mm: float = 1.0,
    fit_spacing_mm: float = 1.0,
    max_evaluations: int = 20,
    initial_temperature_c: float | None = None,
    applicators: dict[str, Applicator] | None = None,
    fit: Callable[..., Any] = calibrate_microwave,
    predict: Callable[..., Any] = predict_zones,
    progress: Callable[[str], None] | None = None,
    map_folds: Callable[..., list] | None = None,
    checkpoint: str | Path | None = None,
    error_norm: int = DEFAULT_ERROR_NORM,
    error_bound_mm: float | None = DEFAULT_ERROR_BOUND_MM,
    fixed: Sequence[str] = (),
) -> dict[str, Any]:
    """Leave-one-setting-out cross-validation; the JSON document of the result.

    Parameters
    ----------
    rows : sequence of ZoneRow
        Published rows (several devices allowed; each is cross-validated on its own).
    spacing_mm : float
        Voxel size (mm) of the held-out predictions (the validation's, default 1 mm).
    fit_spacing_mm : float
        Voxel size (mm) of each fold's fit (the calibration's, default 1 mm since session 54).
    start : {"calibration", "generic"}
        Where each fold's fit starts: the device's current calibration (which saw every
        row, the held-out ones too, so the figure leans toward the in-sample one), or
        :func:`generic_start` (bound centres and the training rows' mean centre offset).
    hold : {"setting", "power", "duration"}
        What each fold holds out (:data:`CV_HOLDS`): one setting, every duration of one
        power, or every power at one duration.
    max_evaluations : int
        Model evaluations per fold's fit (each simulates the fold's training rows).
    initial_temperature_c : float, optional
        Ex vivo start temperature (degC); default the tissue table's.
    applicators : dict, optional
        Catalogue overrides by device id.
    fit, predict : callable
        The calibration and the prediction (replaceable in tests).
    progress : callable, optional
        Called with a line per fold (serial runs).
    map_folds : callable, optional
        ``map_folds(fn, shared, items)`` returns ``[fn(shared, item) for item in items]``
        in order, e.g. on a Dask cluster (:func:`ioplan.batch.run_tasks`): the folds are
        independent fits. Default: one after another here. With ``checkpoint`` it is called
        with ``on_result=callback(index, result)`` too, to be called as each fold finishes.
    checkpoint : path, optional
        A JSON-lines file (:mod:`ioplan.validation._checkpoint`): each finished fold is
        appended to it, and the folds already there with the same key (rows, start values,
        voxel sizes, budget) are reused instead of fitted again, so that an interrupted run
        continues where it stopped. ``reused_folds`` in the result counts them.
    error_norm : int
        What each fold's fit minimises (:data:`~ioplan.validation.ERROR_NORMS`): the
        calibration's criterion by default, so that a fold is fitted as the calibration was.
        From a generic start a norm other than 2 is reached in two stages
        (``calibrate_microwave(staged=True)``: least squares with at most half of
        ``max_evaluations``, then the norm); from the calibration in one.
    error_bound_mm : float, optional
        A soft bound on each fold's largest training error (``calibrate_microwave``'s
        ``error_bound_mm``; the calibration's by default, None for none).
    fixed : sequence of str
        Parameters each fold holds at its start value instead of fitting
        (``calibrate_microwave``'s ``fixed``; from a generic start the feed offset's start is
        the training rows' mean centre offset, :func:`generic_start`).

    Returns
    -------
    dict
        :func:`~ioplan.validation.summarise` of the held-out predictions (``rows``,
        ``mean_abs_error_mm``, ...), plus ``method``, ``folds`` (one record per setting:
        device, power, duration, training rows, fitted values, held-out errors or the
        reason it was skipped) and ``skipped``.
    """
    if max_evaluations < 1:
        raise InputError(f"max_evaluations must be >= 1, got {max_evaluations}")
    if error_norm not in ERROR_NORMS:
        raise InputError(f"error_norm must be one of {ERROR_NORMS}, got {error_norm!r}")
    if start not in CV_STARTS:
        raise InputError(f"start must be one of {', '.join(CV_STARTS)}, got {start!r}")
    folds = settings_folds(rows, hold)
    if not folds:
        raise InputError("no rows to cross-validate")
    if start == "generic":
        for device in sorted({r.device for r in rows}):
            app = (applicators or {}).get(device) or applicator(device)
            if app.mw_model != "lumped":
                raise InputError(f"{device}: the generic start is for the lumped model only")
    shared = {"fit": fit, "predict": predict, "fit_spacing_mm": fit_spacing_mm,
              "spacing_mm": spacing_mm, "max_evaluations": max_evaluations,
              "initial_temperature_c": initial_temperature_c,
              "error_norm": error_norm,
              "staged": start == "generic" and error_norm != 2}  # fmt: skip
    if error_bound_mm is not None:  # absent otherwise: earlier checkpoints' keys stay valid
        shared["error_bound_mm"] = float(error_bound_mm)
    if fixed:  # likewise
        unknown = sorted(set(fixed) - set(MW_PARAMETERS))
        if unknown:
            raise InputError(f"cannot fix {', '.join(unknown)}: the fitted parameters are "
                             f"{', '.join(MW_PARAMETERS)}")  # fmt: skip
        if set(fixed) >= set(MW_PARAMETERS):
            raise InputError("every parameter is fixed: nothing to fit")
        shared["fixed"] = sorted(set(fixed))
    records: list[dict[str, Any]] = []
    todo: list[tuple[int, Any]] = []  # (index in records, fold to fit)
    for device, (power, duration), held, train in folds:
        rec: dict[str, Any] = {
            "device": device,
            "power_w": power,
            "duration_s": duration,
            "held_out_rows": len(held),
            "training_rows": len(train),
        }
        records.append(rec)
        if len(train) < MIN_TRAINING_ROWS:
            rec["skipped"] = f"only {len(train)} training rows (< {MIN_TRAINING_ROWS})"
            continue
        app = (applicators or {}).get(device) or applicator(device)
        if start == "generic":
            app = replace(app, **generic_start(train))
        todo.append((len(records) - 1, (device, app, held, train)))
    path = None if checkpoint is None else Path(checkpoint)
    done = read_checkpoint(path) if path is not None else {}
    keys = [fold_key(item, shared, {k: getattr(item[1], k) for k in fitted_parameters(item[1])},
                     hold, start) for _, item in todo]  # fmt: skip
    results: list[Any] = [done.get(key) for key in keys]
    run = [j for j, r in enumerate(results) if r is None]

    def save(j: int, result: tuple) -> None:
        if path is not None:
            append_fold(path, keys[j], *result)

    if map_folds is None:
        for k, j in enumerate(run, start=1):
            if progress is not None:
                r = records[todo[j][0]]
                progress(f"fold {k}/{len(run)}: {r['device']} "
                         f"{_setting_text(r['power_w'], r['duration_s'])}")  # fmt: skip
            results[j] = run_fold(shared, todo[j][1])
            save(j, results[j])
    elif run:
        extra = {} if path is None else {"on_result": lambda n, res: save(run[n], res)}
        for j, res in zip(run, map_folds(run_fold, shared, [todo[j][1] for j in run], **extra),
                          strict=True):  # fmt: skip
            results[j] = res
    held_preds = []
    for (i, _), (fitted, preds) in zip(todo, results, strict=True):
        held_preds += preds
        records[i].update(fitted)
        records[i]["held_out_errors_mm"] = [
            {"length": round(p.errors_mm[0], 2), "width": round(p.errors_mm[1], 2)} for p in preds
        ]
    if not held_preds:
        raise InputError(
            f"no setting could be held out: each device needs >= {MIN_TRAINING_ROWS + 1} rows"
        )
    doc = summarise(held_preds)
    held_out = {"setting": "each (power, duration) of a device held out",
                "power": "each power of a device held out with all its durations",
                "duration": "each duration of a device held out with all its powers"}[hold]
    held = "" if not fixed else f", holding {', '.join(shared['fixed'])} at the fold's start"
    doc["method"] = (
        f"leave-one-{hold}-out: {held_out}, the source "
        f"model fitted on the device's other rows ({fit_spacing_mm:g} mm, "
        f"{max_evaluations} evaluations minimising sum |error|^{error_norm}"
        f"{'' if error_bound_mm is None else f' with a soft bound at {error_bound_mm:g} mm'}"
        f"{held}"
        f"{', least squares first' if shared['staged'] else ''}, from "
        f"{'the current calibration' if start == 'calibration' else 'a generic start'}), "
        "the held-out rows "
        f"predicted at {spacing_mm:g} mm"
    )
    doc["start"] = start
    doc["error_norm"] = error_norm
    if error_bound_mm is not None:
        doc["error_bound_mm"] = float(error_bound_mm)
    if fixed:
        doc["fixed_parameters"] = list(shared["fixed"])
    doc["hold"] = hold
    doc["folds"] = records
    doc["skipped"] = sum(1 for r in records if "skipped" in r)
    doc["reused_folds"] = len(todo) - len(run)
    return doc


def run_fold(shared: dict[str, Any], item: tuple) -> tuple[dict[str, Any], list]:
    """One fold: fit ``app`` on ``train``, predict ``held``; ``(record fields, predictions)``.

    A function of its arguments only (``shared``: the fit, the prediction and their
    settings; ``item``: ``(device, app, held, train)``), so that a cluster's workers can run
    it.
    """
    device, app, held, train = item
    extra = {} if shared.get("error_bound_mm") is None else {
        "error_bound_mm": shared["error_bound_mm"]}
    if shared.get("fixed"):
        extra["fixed"] = tuple(shared["fixed"])
    result = shared["fit"](
        app,
        train,
        spacing_mm=shared["fit_spacing_mm"],
        max_evaluations=shared["max_evaluations"],
        initial_temperature_c=shared["initial_temperature_c"],
        error_norm=shared.get("error_norm", 2),
        # from the calibration the start is already a fit of this norm: no least-squares
        # stage (calibrate_microwave's ``staged``); from a generic start it is needed
        staged=bool(shared.get("staged", False)),
        **extra,
    )
    fitted = replace(app, **dict(result.values))
    preds = shared["predict"](
        held,
        spacing_mm=shared["spacing_mm"],
        applicators={device: fitted},
        initial_temperature_c=shared["initial_temperature_c"],
    )
    return {
        "fitted": {k: round(float(v), 4) for k, v in result.values.items()},
        "training_mean_abs_error_mm": result.summary["mean_abs_error_mm"],
    }, list(preds)


def _setting_text(power: float | None, duration: float | None) -> str:
    """``"45 W 150 s"``, ``"45 W, every duration"`` or ``"150 s, every power"``."""
    if duration is None:
        return f"{power:g} W, every duration"
    if power is None:
        return f"{duration:g} s, every power"
    return f"{power:g} W {duration:g} s"
