"""The manufacturer's zone chart read at any setting inside it (ioplan.devices._chart).

References: the published chart rows themselves, read here straight from the packaged
``applicators.toml`` (not through the catalogue), and interpolation formulas written out
in the tests. The leave-one-out recount (each interior chart row predicted from its
neighbours) is what justifies interpolating in ln(duration) rather than in duration.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest

from ioplan.devices import (
    applicator,
    calibration_record,
    chart_comparison,
    chart_fit_residual,
    chart_range,
    chart_zone,
)
from ioplan.errors import InputError

CHARTED = ("covidien-emprint", "amica", "angiodynamics-acculis")


def _raw_rows(device: str) -> list[dict]:
    text = resources.files("ioplan.devices").joinpath("data/applicators.toml").read_text()
    return tomllib.loads(text)[device]["zone_chart"]


@pytest.mark.parametrize("device", CHARTED)
def test_every_published_row_is_read_back_exactly(device):
    rows = _raw_rows(device)
    assert rows
    for r in rows:
        z = chart_zone(applicator(device), float(r["power_w"]), float(r["duration_s"]))
        assert z is not None and not z.interpolated and z.method == "chart row"
        # exact: a row is returned, not recomputed
        assert (z.length_mm, z.width_mm, z.centre_offset_mm) == (
            r["length_mm"], r["width_mm"], r["centre_offset_mm"],
        )  # fmt: skip


def _loo_errors(device: str) -> tuple[list[float], list[float]]:
    """Each interior duration of each power held out, predicted from its neighbours.

    Returns the absolute errors (length and width) of ``chart_zone`` on the chart without
    that row, and of plain linear-in-time interpolation written out here.
    """
    app = applicator(device)
    rows = _raw_rows(device)
    keys = ("power_w", "duration_s", "length_mm", "width_mm", "centre_offset_mm")
    err_log, err_lin = [], []
    for p in sorted({r["power_w"] for r in rows}):
        mine = sorted((r for r in rows if r["power_w"] == p), key=lambda r: r["duration_s"])
        for i in range(1, len(mine) - 1):
            lo, mid, hi = mine[i - 1], mine[i], mine[i + 1]
            kept = tuple(tuple(float(r[k]) for k in keys) for r in rows if r is not mid)
            z = chart_zone(replace(app, zone_chart=kept), float(p), float(mid["duration_s"]))
            assert z is not None and z.interpolated
            w_log = math.log(mid["duration_s"] / lo["duration_s"]) / math.log(
                hi["duration_s"] / lo["duration_s"]
            )
            w_lin = (mid["duration_s"] - lo["duration_s"]) / (hi["duration_s"] - lo["duration_s"])
            for k, got in (("length_mm", z.length_mm), ("width_mm", z.width_mm)):
                # the recount: chart_zone is ln-t interpolation between the neighbours
                expect = (1 - w_log) * lo[k] + w_log * hi[k]
                assert got == pytest.approx(expect, abs=1e-9)
                err_log.append(abs(got - mid[k]))
                err_lin.append(abs((1 - w_lin) * lo[k] + w_lin * hi[k] - mid[k]))
    return err_log, err_lin


@pytest.mark.parametrize(
    ("device", "mean_log", "mean_lin"),
    # the figures quoted in ioplan/devices/_chart.py's docstring (rounded to 0.01 mm)
    [
        ("covidien-emprint", 0.19, 0.34),
        ("amica", 1.64, 2.90),
        ("angiodynamics-acculis", 1.37, 2.88),
    ],
)
def test_ln_time_interpolation_predicts_held_out_rows_better(device, mean_log, mean_lin):
    err_log, err_lin = _loo_errors(device)
    assert np.mean(err_log) < np.mean(err_lin)
    assert np.mean(err_log) == pytest.approx(mean_log, abs=0.006)
    assert np.mean(err_lin) == pytest.approx(mean_lin, abs=0.006)


def test_halfway_in_power_is_the_mean_of_the_two_rows():
    rows = {(r["power_w"], r["duration_s"]): r for r in _raw_rows("covidien-emprint")}
    z = chart_zone(applicator("covidien-emprint"), 60.0, 300.0)  # halfway between 45 and 75
    a, b = rows[(45, 300)], rows[(75, 300)]
    assert z.interpolated
    # numpy scalars (a planner's settings table) read the same
    assert chart_zone(applicator("covidien-emprint"), np.int64(60), np.float32(300.0)) == z
    assert z.length_mm == pytest.approx(0.5 * (a["length_mm"] + b["length_mm"]), abs=1e-12)
    assert z.width_mm == pytest.approx(0.5 * (a["width_mm"] + b["width_mm"]), abs=1e-12)


def test_outside_the_chart_there_is_no_zone_and_bad_settings_are_refused():
    app = applicator("covidien-emprint")  # 45-100 W, 150-600 s
    assert chart_range(app) == "45-100 W, 150-600 s"
    for p, t in ((44.0, 300.0), (101.0, 300.0), (75.0, 149.0), (75.0, 601.0)):
        assert chart_zone(app, p, t) is None
    assert chart_zone(applicator("generic-mw-2450"), 60.0, 300.0) is None
    assert chart_comparison(applicator("generic-mw-2450"), 60.0, 300.0) is None
    out = chart_comparison(app, 120.0, 300.0)
    assert out["zone"] is None and out["range"] == "45-100 W, 150-600 s"
    for bad in (0.0, -5.0, float("nan"), float("inf"), True):
        with pytest.raises(InputError, match="finite number > 0"):
            chart_zone(app, bad, 300.0)
        with pytest.raises(InputError, match="finite number > 0"):
            chart_zone(app, 60.0, bad)


def test_a_chart_that_is_not_a_full_grid_interpolates_where_both_powers_reach():
    """Rows at 40 W up to 300 s, at 80 W up to 600 s: 60 W at 450 s has no lower row."""
    rows = (
        (40.0, 150.0, 20.0, 16.0, 10.0), (40.0, 300.0, 26.0, 20.0, 11.0),
        (80.0, 150.0, 30.0, 24.0, 12.0), (80.0, 600.0, 42.0, 34.0, 14.0),
    )  # fmt: skip
    app = replace(applicator("covidien-emprint"), zone_chart=rows)
    assert chart_zone(app, 60.0, 450.0) is None
    z = chart_zone(app, 60.0, 150.0)
    assert (z.length_mm, z.width_mm) == pytest.approx((25.0, 20.0))
    z = chart_zone(app, 80.0, 300.0)  # on the 80 W rows, halfway in ln t
    assert z.length_mm == pytest.approx(36.0) and z.interpolated
    # a row at zero time (an applicator file may hold one) is left out, not a math error
    zero = replace(app, zone_chart=((40.0, 0.0, 0.0, 0.0, 0.0), *rows))
    assert chart_zone(zero, 40.0, 200.0) == chart_zone(app, 40.0, 200.0)


@pytest.mark.parametrize("device", CHARTED)
def test_the_fit_residual_is_the_calibration_record_of_the_model_in_use(device):
    rec = calibration_record(device)
    app = applicator(device)
    fit = chart_fit_residual(app)
    assert fit["model"] == app.mw_model == "lumped"
    assert fit["mean_abs_error_mm"] == rec["mean_abs_error_mm"]
    assert fit["max_abs_error_mm"] == rec["max_abs_error_mm"]
    assert fit["rows"] == len(_raw_rows(device))
    field = chart_fit_residual(replace(app, mw_model="field"))
    assert field["mean_abs_error_mm"] == rec["field_mean_abs_error_mm"]
    # parameters that are not the record's: its residual would describe another model
    assert chart_fit_residual(replace(app, efficiency=app.efficiency * 0.9)) is None
    assert chart_fit_residual(applicator("cryo-2.4mm")) is None


def test_the_provenance_line_says_which_parameters_were_held_not_fitted():
    """A record whose fit held a parameter (``fixed_parameters``) must not call it fitted."""
    from ioplan.devices._catalogue import _summary

    rec = {"efficiency": 0.7, "axial_sigma_forward_mm": 5.4772, "feed_offset_mm": 8.0,
           "fixed_parameters": ["axial_sigma_forward_mm"], "rows": 15, "spacing_mm": 1.0}
    text = _summary(rec)
    fitted, held = text.split(" (held, not fitted: ")
    assert "efficiency 0.7" in fitted and "feed_offset_mm 8" in fitted
    assert "axial_sigma_forward_mm" not in fitted
    assert held.startswith("axial_sigma_forward_mm 5.477")
    assert "held" not in _summary({k: v for k, v in rec.items() if k != "fixed_parameters"})
