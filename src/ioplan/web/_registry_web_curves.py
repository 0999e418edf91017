"""The registry dashboard's curves: step functions of the report's fits, as JSON.

``ioplan registry report --json`` gives the estimates at a few times only; the page draws the
whole curves, so this module turns the report's lifelines fits (Kaplan-Meier, Aalen-Johansen)
into plain lists: the step times and values (right-continuous: the value at ``time_months[i]``
holds until the next time), the 95 % band, the censoring times with the curve's value there
(the ticks), and the numbers at risk at the axis ticks. Nothing but times in months from
treatment and counts: no key, no date.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["axis_ticks_months", "curves_document"]

#: Curves drawn, in order: (report fit, key, label, unit).
SURVIVAL_CURVES = (
    ("os", "os", "overall survival", "per patient"),
    ("ltp_free", "ltp_free", "LTP-free survival", "per tumour"),
)
INCIDENCE_CURVES = (
    ("ltp_cif", "ltp", "local tumour progression", "per tumour"),
    ("distant_cif", "distant", "distant intrahepatic recurrence", "per patient"),
)


def _floats(values) -> list[float | None]:
    """JSON-ready floats: NaN and infinities (undefined bands) become None."""
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values, float)]


def axis_ticks_months(longest_months: float) -> list[float]:
    """Ticks of a time axis from 0 past the longest follow-up, every 3, 6, 12 or 24 months.

    Examples
    --------
    >>> axis_ticks_months(40.2)
    [0.0, 6.0, 12.0, 18.0, 24.0, 30.0, 36.0, 42.0]
    >>> axis_ticks_months(0.0)
    [0.0, 3.0]
    """
    longest = max(float(longest_months), 0.0)
    step = next((s for s, limit in ((3, 12), (6, 48), (12, 120)) if longest <= limit), 24)
    count = max(math.ceil(longest / step), 1)
    return [float(step * i) for i in range(count + 1)]


def _at_risk(durations: np.ndarray, ticks: list[float]) -> list[int]:
    """Number still followed at each tick (time >= tick), as the report counts them."""
    return [int(np.sum(durations >= t)) for t in ticks]


def _kaplan_meier(kmf, key: str, label: str, unit: str) -> dict[str, Any]:
    sf = kmf.survival_function_
    ci = kmf.confidence_interval_survival_function_
    table = kmf.event_table
    censored = table.index[table["censored"].to_numpy() > 0].to_numpy(float)
    return {
        "key": key,
        "label": label,
        "unit": unit,
        "n": len(kmf.durations),
        "events": int(np.sum(kmf.event_observed)),
        "time_months": _floats(sf.index),
        "estimate": _floats(sf.iloc[:, 0]),
        "ci_low": _floats(ci.iloc[:, 0]),
        "ci_high": _floats(ci.iloc[:, 1]),
        "censored_months": _floats(censored),
        "censored_estimate": _floats(sf.iloc[:, 0].reindex(censored)),
    }


def _aalen_johansen(ajf, durations, events, key: str, label: str, unit: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key": key,
        "label": label,
        "unit": unit,
        "n": len(durations),
        "events": int(np.sum(events == 1)),
        "competing_events": int(np.sum(events == 2)),
        "competing": "death",
    }
    if ajf is None:  # no event of interest: the incidence stays 0 over the follow-up
        end = float(np.max(durations)) if len(durations) else 0.0
        return doc | {"time_months": [0.0, end], "estimate": [0.0, 0.0],
                      "ci_low": [0.0, 0.0], "ci_high": [0.0, 0.0]}  # fmt: skip
    cif = ajf.cumulative_density_
    # lifelines names the bounds the other way round: sort each row (low, high)
    band = np.sort(ajf.confidence_interval_.reindex(cif.index).to_numpy(float), axis=1)
    return doc | {
        "time_months": _floats(cif.index),
        "estimate": _floats(cif.iloc[:, 0]),
        "ci_low": _floats(band[:, 0]),
        "ci_high": _floats(band[:, 1]),
    }


def curves_document(report) -> dict[str, Any]:
    """The survival and incidence curves of an :class:`ioplan.registry.OutcomeReport`.

    Parameters
    ----------
    report : ioplan.registry.OutcomeReport
        The result of :func:`ioplan.registry.outcome_report` (its ``fits``, ``patients`` and
        ``lesions`` tables).

    Returns
    -------
    dict
        ``{"units", "survival": {"ticks_months", "curves"}, "incidence": {...}}``; each
        curve has ``key``, ``label``, ``unit``, ``n``, ``events``, ``time_months``,
        ``estimate``, ``ci_low``, ``ci_high`` (None where undefined) and ``at_risk`` (at the
        ticks); Kaplan-Meier curves also ``censored_months`` and ``censored_estimate``.
    """
    fits = report.fits
    pts, les = report.patients, report.lesions
    durations: dict[str, np.ndarray] = {}
    events: dict[str, np.ndarray] = {}
    if len(pts):
        durations["distant_cif"] = pts["distant_months"].to_numpy(float)
        events["distant_cif"] = pts["distant_event"].to_numpy(int)
    if len(les) and les["ltp_months"].notna().any():
        at_risk = les[les["ltp_months"].notna()]
        durations["ltp_cif"] = at_risk["ltp_months"].to_numpy(float)
        events["ltp_cif"] = at_risk["ltp_event"].to_numpy(int)

    survival = [
        _kaplan_meier(fits[fit], key, label, unit)
        for fit, key, label, unit in SURVIVAL_CURVES
        if fits.get(fit) is not None
    ]
    incidence = [
        _aalen_johansen(fits.get(fit), durations[fit], events[fit], key, label, unit)
        for fit, key, label, unit in INCIDENCE_CURVES
        if fit in durations
    ]
    figures = {}
    for name, curves, fit_durations in (
        ("survival", survival, [np.asarray(fits[f].durations, float)
                                for f, *_ in SURVIVAL_CURVES if fits.get(f) is not None]),
        ("incidence", incidence, [durations[f] for f, *_ in INCIDENCE_CURVES if f in durations]),
    ):  # fmt: skip
        longest = max((float(d.max()) for d in fit_durations if len(d)), default=0.0)
        ticks = axis_ticks_months(longest)
        for curve, d in zip(curves, fit_durations, strict=True):
            curve["at_risk"] = _at_risk(d, ticks)
        figures[name] = {"ticks_months": ticks, "curves": curves}
    return {
        "units": {"time": "months (30.4375 days)", "estimate": "fraction 0-1"},
        "survival": figures["survival"],
        "incidence": figures["incidence"],
        "definitions": {
            "survival": "Kaplan-Meier, log(-log) 95 % band (lifelines); ticks: censored",
            "incidence": "Aalen-Johansen cumulative incidence, death competing (lifelines)",
            "steps": "right-continuous: each value holds from its time to the next",
        },
    }
