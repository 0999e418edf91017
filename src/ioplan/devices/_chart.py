"""The manufacturer's zone chart at a power and duration, next to the model's zone.

Interventional radiologists plan today with the manufacturer's zone charts: an ellipsoid
(length x width) per power and time, measured ex vivo. :func:`chart_zone` reads such a
chart at any power and duration inside it, so that a simulated zone can be shown beside
the chart's, with the model's own residual on that chart (:func:`chart_fit_residual`).

Interpolation: linear in power and linear in the logarithm of the duration, between the
chart's neighbouring rows; no extrapolation (outside the chart: ``None``). Why the
logarithm of time: ablation zones grow quickly and then slowly, and predicting each
chart's interior rows from their neighbours in time (a leave-one-out recount over the
packaged charts, ``tests/devices/test_chart.py``) errs less in ln t than linearly in t:
mean |error| 0.19 vs 0.34 mm (Emprint, 18 sizes), 1.64 vs 2.90 mm (Amica, 6), 1.37 vs
2.88 mm (Acculis, 4). In power, linear interpolation recounts the Emprint chart's 45-100 W
middle row better than ln P (0.42 vs 1.01 mm) and Amica's about as well (2.25 vs 2.37 mm).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ioplan.devices._catalogue import CALIBRATED_FIELDS, Applicator, calibration_record
from ioplan.errors import InputError

__all__ = ["ChartZone", "chart_comparison", "chart_fit_residual", "chart_range", "chart_zone"]

#: What the packaged charts were measured in (shared/validation/README.md section 1).
CHART_CONDITIONS = (
    "ex vivo bovine liver (manufacturer charts; start temperature not stated): a run in "
    "perfused tissue at 37 degC is not expected to match it"
)
#: Settings closer than this to a chart row's setting count as that row (no interpolation).
_SAME = 1e-9


@dataclass(frozen=True)
class ChartZone:
    """The chart's zone at one setting: read off a row or interpolated between rows."""

    device: str
    power_w: float
    duration_s: float
    length_mm: float
    width_mm: float
    #: how far behind the tip the chart's ellipsoid is centred (mm)
    centre_offset_mm: float
    #: False when the setting is one of the chart's rows
    interpolated: bool
    method: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record (sizes rounded to 0.1 mm)."""
        d = asdict(self)
        for k in ("length_mm", "width_mm", "centre_offset_mm"):
            d[k] = round(d[k], 1)
        return d


def chart_range(app: Applicator) -> str:
    """The powers and durations a chart covers, e.g. ``45-100 W, 150-600 s``."""
    rows = app.chart_rows()
    if not rows:
        return "no chart"
    p = [r["power_w"] for r in rows]
    t = [r["duration_s"] for r in rows]
    return f"{min(p):g}-{max(p):g} W, {min(t):g}-{max(t):g} s"


def _at_power(rows: list[dict[str, float]], duration_s: float) -> np.ndarray | None:
    """Length, width, centre offset at ``duration_s`` from one power's rows (ln t)."""
    rows = sorted(rows, key=lambda r: r["duration_s"])
    ts = np.array([r["duration_s"] for r in rows])
    vals = np.array([[r["length_mm"], r["width_mm"], r["centre_offset_mm"]] for r in rows])
    if duration_s < ts[0] - _SAME or duration_s > ts[-1] + _SAME:
        return None
    exact = np.flatnonzero(np.abs(ts - duration_s) <= _SAME)
    if exact.size:
        return vals[exact[0]]
    j = int(np.searchsorted(ts, duration_s))
    t0, t1 = ts[j - 1], ts[j]
    w = (math.log(duration_s) - math.log(t0)) / (math.log(t1) - math.log(t0))
    return (1.0 - w) * vals[j - 1] + w * vals[j]


def chart_zone(app: Applicator, power_w: float, duration_s: float) -> ChartZone | None:
    """The chart's zone at ``power_w`` and ``duration_s``, or None outside the chart.

    Parameters
    ----------
    app : Applicator
        An applicator with a ``zone_chart`` (others give None).
    power_w, duration_s : float
        The setting (W, s), finite and positive.

    Returns
    -------
    ChartZone or None
        None when the applicator has no chart or the setting lies outside it (in power,
        or in duration at either bracketing power).

    Raises
    ------
    InputError
        A power or duration that is not a finite positive number.

    Examples
    --------
    >>> from ioplan.devices import applicator
    >>> z = chart_zone(applicator("covidien-emprint"), 75.0, 300.0)  # a row of the chart
    >>> (z.length_mm, z.width_mm, z.interpolated)
    (33.0, 30.0, False)
    >>> chart_zone(applicator("covidien-emprint"), 150.0, 300.0) is None  # above 100 W
    True
    """
    for name, v in (("power_w", power_w), ("duration_s", duration_s)):
        # numbers.Real: numpy scalars too (a planner's settings table holds them)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
            raise InputError(f"{name} must be a finite number > 0, got {v!r}")
    # a row at zero power or time (an applicator file may hold one) has no place in ln t
    rows = [r for r in app.chart_rows() if r["power_w"] > 0 and r["duration_s"] > 0]
    if not rows:
        return None
    by_power: dict[float, list[dict[str, float]]] = {}
    for r in rows:
        by_power.setdefault(r["power_w"], []).append(r)
    powers = np.array(sorted(by_power))
    p = float(power_w)
    if p < powers[0] - _SAME or p > powers[-1] + _SAME:
        return None
    exact = np.flatnonzero(np.abs(powers - p) <= _SAME)
    if exact.size:
        v = _at_power(by_power[float(powers[exact[0]])], float(duration_s))
        on_row = v is not None and any(
            abs(r["duration_s"] - duration_s) <= _SAME for r in by_power[float(powers[exact[0]])]
        )
    else:
        j = int(np.searchsorted(powers, p))
        p0, p1 = float(powers[j - 1]), float(powers[j])
        v0, v1 = _at_power(by_power[p0], duration_s), _at_power(by_power[p1], duration_s)
        if v0 is None or v1 is None:
            return None
        w = (p - p0) / (p1 - p0)
        v, on_row = (1.0 - w) * v0 + w * v1, False
    if v is None:
        return None
    return ChartZone(
        device=app.id,
        power_w=p,
        duration_s=float(duration_s),
        length_mm=float(v[0]),
        width_mm=float(v[1]),
        centre_offset_mm=float(v[2]),
        interpolated=not on_row,
        method="chart row" if on_row else "linear in power, linear in ln(duration)",
        source=app.zone_chart_source,
    )


def chart_fit_residual(app: Applicator) -> dict[str, Any] | None:
    """The model's residual on its chart, from calibration.toml, if that fit is in use.

    None when the applicator has no calibration record, or when its source-model
    parameters are not the record's (an applicator file that changed them, or the other
    microwave model: the record's residual would then describe another model).
    """
    if app.modality != "mw":
        return None
    rec = calibration_record(app.id)
    if not rec or "mean_abs_error_mm" not in rec:
        return None
    if app.mw_model == "field":
        keys = [k for k in ("feed_efficiency", "slot_to_short_mm") if k in rec]
        mean, worst = rec.get("field_mean_abs_error_mm"), rec.get("field_max_abs_error_mm")
    else:
        keys = [k for k in CALIBRATED_FIELDS if k in rec and k not in
                ("feed_efficiency", "slot_to_short_mm")]  # fmt: skip
        mean, worst = rec.get("mean_abs_error_mm"), rec.get("max_abs_error_mm")
    if not keys or mean is None:
        return None
    for k in keys:
        if not math.isclose(float(getattr(app, k)), float(rec[k]), rel_tol=1e-6, abs_tol=1e-9):
            return None
    return {
        "model": app.mw_model,
        "mean_abs_error_mm": float(mean),
        "max_abs_error_mm": float(worst) if worst is not None else None,
        "rows": int(rec.get("rows", 0)),
        "spacing_mm": float(rec.get("spacing_mm", float("nan"))),
        "command": rec.get("command", ""),
        "date": rec.get("date", ""),
    }


def chart_comparison(app: Applicator, power_w: float, duration_s: float) -> dict[str, Any] | None:
    """What a simulation's settings carry: the chart's zone and the model's fit to the chart.

    None for an applicator without a chart. Outside the chart, ``zone`` is None and
    ``range`` says what the chart covers.
    """
    if not app.zone_chart:
        return None
    z = chart_zone(app, power_w, duration_s)
    return {
        "zone": z.to_dict() if z is not None else None,
        "range": chart_range(app),
        "conditions": CHART_CONDITIONS,
        "model_fit": chart_fit_residual(app),
    }
