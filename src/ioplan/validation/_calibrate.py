"""Fitting an applicator's source-model parameters to its published zones, once.

The model stays physical: a cylindrical-wave SAR pattern whose axial profile
(feed position, forward and backward spreads) and antenna efficiency are fitted
to the chart's lengths, widths and (with half weight) centre offsets by least squares
with a soft bound on the largest error (the acceptance bounds it; other norms, sum
|error|^p, and no bound on request). The fitted values are written to
``devices/data/calibration.toml`` with the residuals and the command, so the fit can be
run again.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.devices import Applicator
from ioplan.errors import FileFormatError, InputError, OutputExistsError
from ioplan.validation._zones import ZoneRow, predict_zones, summarise

__all__ = [
    "DEFAULT_ERROR_BOUND_MM",
    "DEFAULT_ERROR_NORM",
    "ERROR_NORMS",
    "MW_FIELD_PARAMETERS",
    "MW_PARAMETERS",
    "CalibrationResult",
    "calibrate_microwave",
    "check_calibration_output",
    "default_calibration_path",
    "fitted_parameters",
    "write_calibration",
]

#: Fitted microwave parameters and their physical bounds.
MW_PARAMETERS: dict[str, tuple[float, float]] = {
    "efficiency": (0.05, 1.0),
    # 10, not 6 (session 53): with the 15 mm near-feed region the Emprint fit ran into 6;
    # 10 is the most an applicator file may hold (devices._catalogue)
    "detuning_exponent": (0.01, 10.0),
    "axial_sigma_forward_mm": (1.0, 30.0),
    "axial_sigma_backward_mm": (1.0, 40.0),
    "feed_offset_mm": (2.0, 30.0),
    # log-uniform between the bounds like the others: 0.01 is "no growth" (a factor of
    # 1.005 at the strongest drying the lumped fits reach, sigma / sigma37 = 0.6)
    "backward_spread_exponent": (0.01, 4.0),
}
#: Fitted parameters of the computed-field model (``mw_model = "field"``) and their bounds:
#: the power that reaches the feed (cable and connector loss: 5-100 %) and the slot's
#: distance from the cable's shorted end, which sets where along the antenna the field
#: leaves it (2-20 mm: the zone centres of the charts lie 10-22 mm behind the tips). Nothing
#: else is fitted: reflection and coolant loss come from the field solve, the temperature
#: and water dependence from the tissue table.
MW_FIELD_PARAMETERS: dict[str, tuple[float, float]] = {
    "feed_efficiency": (0.05, 1.0),
    "slot_to_short_mm": (2.0, 20.0),
}
#: Weight of the centre-offset residuals (the charts do not document the reference
#: point the offset is measured from, so it counts half).
OFFSET_WEIGHT = 0.5
#: Norms a fit may minimise (sum of |error|^p over the rows; 2 is least squares).
ERROR_NORMS = (2, 4, 8, 16)
#: What a calibration minimises by default (session 57): least squares, with a soft bound
#: on the largest error (:data:`DEFAULT_ERROR_BOUND_MM`). Session 55 chose sum |error|^16,
#: because the acceptance (issue 19) bounds the largest error (4 mm) as well as the mean
#: (2 mm), and only p = 16 brought the 30 given rows under 4 mm (p = 2 / 4 / 8 / 16: max
#: 4.17 / 4.12 / 4.02 / 3.92 mm); session 56 measured its cost on powers the fit did not see
#: (leave-one-power-out 3.81 mm against 2.69 by least squares): the high norm bends every
#: parameter to the worst rows. The bound moves least squares only as far as the rows beyond
#: it need (validation/maxwell.md "Session 57").
DEFAULT_ERROR_NORM = 2
#: The soft bound (mm) a default calibration puts on its largest error: the acceptance's
#: 4 mm less 0.2 mm, because the penalty (:data:`BOUND_WEIGHT`) leaves a row a few hundredths
#: of a millimetre beyond the bound, and the 1 mm fit's errors are the 1 mm validation's
#: (the same engine at the same voxel).
DEFAULT_ERROR_BOUND_MM = 3.8
#: Weight of an error's excess over ``error_bound_mm`` (a soft bound on the largest error):
#: the excess's square counts this squared times an error's own, so 0.1 mm beyond the bound
#: costs as much as a 1 mm error inside it.
BOUND_WEIGHT = 10.0


@dataclass(frozen=True)
class CalibrationResult:
    """Fitted values, the residual summary at the fitting spacing, and the cost."""

    device: str
    values: dict[str, float]
    summary: dict[str, Any]
    evaluations: int
    spacing_mm: float
    rows: int
    #: what the fit minimised: sum |error|^error_norm
    error_norm: int = 2
    #: other calibrated values the record keeps (the lumped model's, when the field
    #: model is fitted), so that either model stays usable
    kept: dict[str, float] = field(default_factory=dict)
    #: the soft bound on the largest error (mm) the fit added, if any
    error_bound_mm: float | None = None
    #: parameters held at their start values, not fitted (in ``values`` all the same)
    fixed: tuple[str, ...] = ()

    def record(self, command: str) -> dict[str, Any]:
        """The calibration.toml entry."""
        return {
            **{k: round(v, 4) for k, v in self.kept.items()},
            **{k: round(v, 4) for k, v in self.values.items()},
            "rows": self.rows,
            "spacing_mm": self.spacing_mm,
            "mean_abs_error_mm": self.summary["mean_abs_error_mm"],
            "max_abs_error_mm": self.summary["max_abs_error_mm"],
            "evaluations": self.evaluations,
            "error_norm": self.error_norm,
            **({} if self.error_bound_mm is None else {"error_bound_mm": self.error_bound_mm}),
            **({"fixed_parameters": list(self.fixed)} if self.fixed else {}),
            "initial_temperature_c": self.summary["initial_temperature_c"],
            "command": command,
            "date": _dt.date.today().isoformat(),
        }


class _BudgetSpent(Exception):
    """Raised inside the optimiser when the evaluation budget is used up."""


def _transformed(errors: np.ndarray, norm: int, bound_mm: float | None = None) -> np.ndarray:
    """Residuals whose sum of squares is the fit's cost.

    ``sign(e) |e| ** (norm / 2)`` (sum of squares: sum |e|^norm), and with ``bound_mm``
    also :data:`BOUND_WEIGHT` x each error's excess over the bound (zero inside it).
    """
    out = errors * np.abs(errors) ** (norm / 2 - 1)
    if bound_mm is None:
        return out
    excess = np.sign(errors) * np.maximum(np.abs(errors) - bound_mm, 0.0)
    return np.concatenate([out, BOUND_WEIGHT * excess])


def fit_cost(errors: np.ndarray, norm: int, bound_mm: float | None = None) -> float:
    """What a fit minimises for ``errors`` (mm): the sum of squares of :func:`_transformed`."""
    r = _transformed(np.asarray(errors, float), norm, bound_mm)
    return float(np.sum(r * r))


def fit_errors(
    app: Applicator,
    rows: Sequence[ZoneRow],
    spacing_mm: float,
    initial_temperature_c: float | None = None,
) -> np.ndarray:
    """The errors (mm) a fit weighs, predicted minus published, row by row.

    Length, width and, where the row has one, :data:`OFFSET_WEIGHT` x the centre offset's.
    """
    preds = predict_zones(
        rows,
        spacing_mm=spacing_mm,
        applicators={app.id: app},
        initial_temperature_c=initial_temperature_c,
    )
    res = []
    for p in preds:
        res += [p.predicted_length_mm - p.row.length_mm, p.predicted_width_mm - p.row.width_mm]
        if p.row.centre_offset_mm is not None:
            res.append(OFFSET_WEIGHT * (p.predicted_centre_offset_mm - p.row.centre_offset_mm))
    return np.array(res, float)


def fitted_parameters(app: Applicator) -> dict[str, tuple[float, float]]:
    """The parameters a calibration of ``app`` fits, with bounds (by its ``mw_model``)."""
    return MW_FIELD_PARAMETERS if app.mw_model == "field" else MW_PARAMETERS


def free_parameters(app: Applicator, fixed: Sequence[str] = ()) -> dict[str, tuple[float, float]]:
    """The parameters a fit of ``app`` estimates, with their bounds.

    :func:`fitted_parameters` less ``fixed``; an unknown name, or every one, is refused.
    """
    every = fitted_parameters(app)
    unknown = sorted(set(fixed) - set(every))
    if unknown:
        raise InputError(f"cannot fix {', '.join(unknown)}: {app.id}'s fitted parameters are "
                         f"{', '.join(every)}")  # fmt: skip
    params = {k: b for k, b in every.items() if k not in set(fixed)}
    if not params:
        raise InputError("every parameter is fixed: nothing to fit")
    return params


def _with(app: Applicator, names: Sequence[str], x: np.ndarray) -> Applicator:
    vals = {k: float(v) for k, v in zip(names, x, strict=True)}
    return replace(app, **vals)


def calibrate_microwave(
    app: Applicator,
    rows: Sequence[ZoneRow],
    *,
    spacing_mm: float = 2.0,
    max_evaluations: int = 60,
    initial_temperature_c: float | None = None,
    log: Callable[[str], None] | None = None,
    error_norm: int = DEFAULT_ERROR_NORM,
    staged: bool = True,
    error_bound_mm: float | None = DEFAULT_ERROR_BOUND_MM,
    fixed: Sequence[str] = (),
) -> CalibrationResult:
    """Fit the model's parameters to ``rows`` (ex vivo block, no perfusion).

    :data:`MW_PARAMETERS` for the lumped model, :data:`MW_FIELD_PARAMETERS` for the
    computed field (:func:`fitted_parameters`). The fit minimises the sum of
    ``|error| ** error_norm`` over the lengths, widths and (half-weighted) centre offsets
    (:data:`ERROR_NORMS`; 2 is least squares, :data:`DEFAULT_ERROR_NORM` the default),
    with scipy's trust-region least squares on ``sign(e) |e| ** (error_norm / 2)``.

    Far from a fit a high norm moves slowly (its gradient is the worst row's; session 55:
    sum |e|^16 from the bounds' centres left cross-validation folds 4-14 mm off their own
    training rows after 60 evaluations). With ``staged`` (the default) and a norm other
    than 2, least squares runs first with at most half of ``max_evaluations``, then the
    norm from the best point seen by the norm's own measure, so a start that is already a
    fit is never left for a worse one. ``staged=False`` spends the whole budget on the norm
    (a start that is already a fit of the same norm).

    ``error_bound_mm`` (None: none; default :data:`DEFAULT_ERROR_BOUND_MM`) adds a soft
    bound on the largest error: each error's excess over it
    counts :data:`BOUND_WEIGHT` squared times an error's own square. With least squares
    (``error_norm=2``) this is the least-squares fit wherever every row is inside the
    bound, and otherwise moves the fit only as far as the rows beyond it need (session 57:
    the high norm's alternative, which bends every parameter to the worst rows). A bound
    with least squares is not staged: its cost is a weighted sum of squares, which the
    solver handles from any start, and halving its budget left fits short of their own
    rows (session 57: three Amica cross-validation folds from a generic start, 60
    evaluations, training mean 2.9 / 3.4 / 2.4 mm staged against 2.2 / 2.1 / 2.1 not).
    With a norm other than 2 the bound joins the norm's stage.

    ``fixed`` names parameters held at ``app``'s values instead of fitted (fewer
    parameters; session 58: the rows do not separate the feed offset from the forward
    spread, ``ioplan calibrate --identifiability``).
    """
    from scipy.optimize import least_squares

    if app.modality != "mw":
        raise InputError(f"{app.id} is {app.modality}; only microwave antennas are fitted here")
    rows = [r for r in rows if r.device == app.id]
    every = fitted_parameters(app)
    params = free_parameters(app, fixed)
    for k in fixed:
        lo_k, hi_k = every[k]
        if not lo_k <= getattr(app, k) <= hi_k:
            raise InputError(f"{app.id}: fixed {k} = {getattr(app, k):g} is outside its bounds "
                             f"{lo_k:g}-{hi_k:g}")  # fmt: skip
    if len(rows) < 3:
        raise InputError(f"{app.id}: need at least 3 published rows to fit the model")
    if error_norm not in ERROR_NORMS:
        raise InputError(f"error_norm must be one of {ERROR_NORMS}, got {error_norm!r}")
    if error_bound_mm is not None and not (math.isfinite(error_bound_mm) and error_bound_mm > 0):
        raise InputError(f"error_bound_mm must be a positive number, got {error_bound_mm!r}")
    lo = np.array([b[0] for b in params.values()])
    hi = np.array([b[1] for b in params.values()])
    x0 = np.clip(np.array([getattr(app, k) for k in params]), lo, hi)
    count = {"n": 0, "limit": max_evaluations}
    cache: dict[tuple, np.ndarray] = {}  # the errors (mm) at each point evaluated
    best: dict[str, Any] = {"cost": math.inf, "u": None}  # by the fit's own cost
    stage: dict[str, Any] = {"norm": error_norm, "bound": error_bound_mm}

    def residuals(u: np.ndarray) -> np.ndarray:
        x = lo * np.exp(u * np.log(hi / lo))  # u in [0, 1]: log-uniform between the bounds
        key = tuple(np.round(x, 6))
        if key in cache:
            return _transformed(cache[key], stage["norm"], stage["bound"])
        if count["n"] >= count["limit"]:
            raise _BudgetSpent
        count["n"] += 1
        errors = fit_errors(_with(app, params, x), rows, spacing_mm, initial_temperature_c)
        cost = fit_cost(errors, error_norm, error_bound_mm)
        if cost < best["cost"]:
            best.update(cost=cost, u=np.array(u, float))
        if log is not None:
            vals = ", ".join(f"{k} {v:.4g}" for k, v in zip(params, x, strict=True))
            rms = math.sqrt(float(np.mean(errors * errors)))
            what = f"sum |e|^{stage['norm']}" + (
                "" if stage["bound"] is None else f" + bound {stage['bound']:g} mm")
            log(f"[{count['n']}] {what}: {vals}: rms {rms:.2f} mm, "
                f"max {np.max(np.abs(errors)):.2f} mm")  # fmt: skip
        cache[key] = errors
        return _transformed(errors, stage["norm"], stage["bound"])

    u0 = np.clip(np.log(x0 / lo) / np.log(hi / lo), 0.0, 1.0)
    final = (error_norm, error_bound_mm)
    stages = [(2, None), final] if staged and error_norm != 2 and max_evaluations >= 2 else [final]
    for i, (norm, bound) in enumerate(stages):
        stage.update(norm=norm, bound=bound)
        count["limit"] = max_evaluations // 2 if i + 1 < len(stages) else max_evaluations
        start = u0 if best["u"] is None else best["u"]
        try:
            least_squares(residuals, start, bounds=(0.0, 1.0), diff_step=0.02, x_scale=0.1)
        except _BudgetSpent:
            pass  # this stage's evaluation budget is spent: keep the best point seen
    x = lo * np.exp(best["u"] * np.log(hi / lo))
    best = _with(app, params, x)
    preds = predict_zones(
        rows,
        spacing_mm=spacing_mm,
        applicators={app.id: best},
        initial_temperature_c=initial_temperature_c,
    )
    kept = {} if every is MW_PARAMETERS else {k: float(getattr(app, k)) for k in MW_PARAMETERS}
    return CalibrationResult(
        device=app.id,
        values={k: float(getattr(best, k)) for k in every},
        summary=summarise(preds),
        evaluations=count["n"],
        spacing_mm=spacing_mm,
        rows=len(rows),
        error_norm=error_norm,
        kept=kept,
        error_bound_mm=error_bound_mm,
        fixed=tuple(k for k in every if k in set(fixed)),
    )


def default_calibration_path(device: str) -> Path:
    """Where ``ioplan calibrate DEVICE`` writes without ``--output``: the current folder.

    The package's own ``devices/data/calibration.toml`` is changed only when
    ``--output`` names it.
    """
    return Path(f"calibration-{device}.toml")


def check_calibration_output(path: str | Path, device: str, *, overwrite: bool) -> Path:
    """Refuse, before any fitting, an output the calibration could not or should not write.

    Raises
    ------
    ioplan.errors.FileFormatError
        ``path`` exists but is not a calibration TOML file (every top-level entry a
        table), so writing would destroy it.
    ioplan.errors.OutputExistsError
        ``path`` already holds a record of ``device`` and ``overwrite`` is false, or
        ``path`` is a folder.
    ioplan.errors.OutputNotWritableError
        Its folder cannot be written.
    """
    import tomllib

    from ioplan.imaging import check_writable

    p = Path(path)
    if p.is_dir():
        raise OutputExistsError(f"--output {p} is a folder; give a calibration TOML file")
    if p.exists():
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
            raise FileFormatError(
                f"--output {p} exists and is not a calibration TOML file ({exc}); "
                "give a new file name"
            ) from None
        if any(not isinstance(v, dict) for v in data.values()):
            raise FileFormatError(
                f"--output {p} exists and is not a calibration file (it has top-level "
                "values, not only [device] tables); give a new file name"
            )
        if device in data and not overwrite:
            raise OutputExistsError(
                f"{p} already holds a calibration of {device}; pass --overwrite to replace it"
            )
    check_writable(p.parent if str(p.parent) else Path("."))
    return p


def write_calibration(path: str | Path, device: str, record: dict[str, Any]) -> None:
    """Insert or replace ``device``'s entry in a calibration TOML file (others kept).

    The file is written to a temporary sibling and renamed into place, so an
    interrupted write leaves the old file whole.
    """
    import os
    import tomllib

    import tomli_w

    p = Path(path)
    data: dict[str, Any] = tomllib.loads(p.read_text()) if p.exists() else {}
    data.setdefault(
        "about",
        {
            "note": "Fitted source-model parameters, written by `ioplan calibrate DEVICE`; "
            "they override applicators.toml. Errors are at the fitting spacing, sub-voxel "
            "zone size, ex vivo liver block (no perfusion)."
        },
    )
    data[device] = record
    tmp = p.with_name(f".{p.name}.partial-{os.getpid()}")
    try:
        tmp.write_text(tomli_w.dumps(data))
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
