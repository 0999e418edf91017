"""Leave-one-setting-out cross-validation (issue 19): the folds and the pooling, recounted.

The fit and the prediction are replaced by stubs that record what they were given, so
that the tests check the procedure itself: no held-out row is ever in its own fold's
fit, every row is held out exactly once, and the pooled errors are those of the held-out
predictions (recounted here from the stub's known offsets).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ioplan.cli import main
from ioplan.devices import applicator
from ioplan.errors import InputError
from ioplan.validation import (
    MW_PARAMETERS,
    ZonePrediction,
    ZoneRow,
    cross_validate,
    rows_from_chart,
    settings_folds,
)


def _row(device, power, duration, length=30.0, width=25.0, line=0):
    return ZoneRow(
        device=device, frequency_mhz=2450.0, power_w=power, duration_s=duration,
        length_mm=length, width_mm=width, line=line,
    )  # fmt: skip


def test_every_row_is_held_out_once_and_never_fitted_on():
    rows = rows_from_chart(applicator("covidien-emprint")) + rows_from_chart(applicator("amica"))
    folds = settings_folds(rows)
    held_ids = [id(r) for _, _, held, _ in folds for r in held]
    assert sorted(held_ids) == sorted(id(r) for r in rows)  # each exactly once
    for device, setting, held, train in folds:
        assert all(r.device == device for r in held + train)
        assert all((r.power_w, r.duration_s) == setting for r in held)
        assert all((r.power_w, r.duration_s) != setting for r in train)
        assert len(held) + len(train) == sum(r.device == device for r in rows)


@pytest.mark.parametrize("hold", ["power", "duration"])
def test_a_power_or_a_duration_is_held_out_whole(hold):
    # recounted from the charts: Emprint 3 powers x 5 durations, Amica 3 x 3
    rows = rows_from_chart(applicator("covidien-emprint")) + rows_from_chart(applicator("amica"))
    folds = settings_folds(rows, hold)
    held_ids = [id(r) for _, _, held, _ in folds for r in held]
    assert sorted(held_ids) == sorted(id(r) for r in rows)  # each row exactly once
    by = (lambda r: r.power_w) if hold == "power" else (lambda r: r.duration_s)
    for device, (power, duration), held, train in folds:
        value = power if hold == "power" else duration
        assert (duration if hold == "power" else power) is None
        assert all(r.device == device and by(r) == value for r in held)
        # the fit never sees the held-out power (or duration) at any other setting
        assert all(r.device == device and by(r) != value for r in train)
        assert len(held) == {("covidien-emprint", "power"): 5, ("covidien-emprint", "duration"): 3,
                             ("amica", "power"): 3, ("amica", "duration"): 3}[device, hold]
    assert len(folds) == {"power": 3 + 3, "duration": 5 + 3}[hold]


def test_an_unknown_hold_is_refused():
    with pytest.raises(InputError, match="hold must be one of"):
        settings_folds([_row("amica", 20, 180)], "row")


@dataclass(frozen=True)
class _Fit:
    values: dict
    summary: dict


def test_pooled_errors_are_the_held_out_predictions():
    rows = [_row("amica", p, t, line=i) for i, (p, t) in enumerate(
        [(20, 180), (20, 300), (40, 180), (40, 300), (60, 600)])]  # fmt: skip
    offsets = {r.line: (0.5 * r.line, -0.25 * r.line) for r in rows}  # known stub errors
    seen_train = []

    def fit(app, train, **kw):
        seen_train.append([r.line for r in train])
        return _Fit({k: getattr(app, k) for k in MW_PARAMETERS}, {"mean_abs_error_mm": 0.0})

    def predict(held, spacing_mm, applicators, initial_temperature_c):
        assert set(applicators) == {"amica"}
        out = []
        for r in held:
            dl, dw = offsets[r.line]
            out.append(ZonePrediction(r, r.length_mm + dl, r.width_mm + dw, 0.0,
                                      r.length_mm, r.width_mm, spacing_mm))  # fmt: skip
        return out

    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1)
    # five settings, each fitted on the other four rows (never on itself)
    assert len(seen_train) == 5
    for i, train in enumerate(seen_train):
        assert len(train) == 4 and i not in train
    both = np.abs([v for r in rows for v in offsets[r.line]])
    assert doc["mean_abs_error_mm"] == pytest.approx(both.mean(), abs=1e-3)
    assert doc["max_abs_error_mm"] == pytest.approx(both.max(), abs=1e-3)
    assert doc["n_rows"] == 5 and doc["skipped"] == 0


def test_settings_without_enough_training_rows_are_skipped_not_guessed():
    rows = [_row("amica", 20, 180), _row("amica", 40, 180), _row("amica", 60, 180)]

    def fit(*a, **k):  # must never be called: 2 training rows per fold
        raise AssertionError("fitted on too few rows")

    with pytest.raises(InputError, match="no setting could be held out"):
        cross_validate(rows, fit=fit, predict=None)


def test_cli_refuses_bad_budget_and_non_microwave_tables(tmp_path, capsys):
    code = main(["validate", "--cross-validate", "--max-evaluations", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "--max-evaluations" in err and len(err.strip().splitlines()) == 1
    csv = tmp_path / "rf.csv"
    csv.write_text(
        "device,frequency_mhz,power_w,duration_s,length_mm,width_mm\n"
        "cooled-rf-3cm,0.48,200,720,40,30\n"
    )
    code = main(["validate", "--cross-validate", "--table", str(csv)])
    assert code == 2 and "no microwave rows" in capsys.readouterr().err


def test_field_model_folds_refit_its_own_parameters():
    """A device on the computed field (issue 19) is refitted on feed efficiency and slot
    position only, and the held-out prediction uses the fold's fitted values."""
    from dataclasses import replace

    from ioplan.validation._calibrate import MW_FIELD_PARAMETERS, fitted_parameters

    app = replace(applicator("amica"), mw_model="field")
    assert fitted_parameters(app) is MW_FIELD_PARAMETERS
    rows = _four_amica_rows()
    used = []

    def fit(app, train, **kw):
        return _Fit({"feed_efficiency": 0.5, "slot_to_short_mm": 7.0}, {"mean_abs_error_mm": 0})

    def predict(held, spacing_mm, applicators, initial_temperature_c):
        a = applicators["amica"]
        used.append((a.feed_efficiency, a.slot_to_short_mm, a.efficiency))
        return [ZonePrediction(r, r.length_mm, r.width_mm, 0.0, r.length_mm, r.width_mm,
                               spacing_mm) for r in held]  # fmt: skip

    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1,
                         applicators={"amica": app})  # fmt: skip
    assert doc["mean_abs_error_mm"] == 0.0
    assert used and all(u[:2] == (0.5, 7.0) for u in used)
    assert all(u[2] == app.efficiency for u in used)  # the lumped model's values untouched


def test_generic_start_is_untouched_by_the_held_out_rows():
    """``start="generic"``: every fold's fit starts from the bound centres (log scale) and
    its own training rows' mean centre offset, never from the calibration (which saw the
    held-out rows); recounted here from MW_PARAMETERS and the rows."""
    import math

    rows = [
        replace_offset(_row("amica", p, t, line=i), off)
        for i, ((p, t), off) in enumerate(
            [((20, 180), 10.0), ((20, 300), 11.0), ((40, 180), 14.0), ((40, 300), 17.0)]
        )
    ]
    starts = []

    def fit(app, train, **kw):
        starts.append(({k: getattr(app, k) for k in MW_PARAMETERS}, train))
        return _Fit({"efficiency": 0.5}, {"mean_abs_error_mm": 0})

    def predict(held, spacing_mm, applicators, initial_temperature_c):
        return [ZonePrediction(r, r.length_mm, r.width_mm, 0.0, r.length_mm, r.width_mm,
                               spacing_mm) for r in held]  # fmt: skip

    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, start="generic")
    assert doc["start"] == "generic" and "generic start" in doc["method"]
    assert len(starts) == 4
    for values, train in starts:
        for k in ("efficiency", "detuning_exponent", "axial_sigma_forward_mm",
                  "axial_sigma_backward_mm"):  # fmt: skip
            lo, hi = MW_PARAMETERS[k]
            assert values[k] == pytest.approx(math.sqrt(lo * hi), rel=1e-12)
        own = [r.centre_offset_mm for r in train]
        assert values["feed_offset_mm"] == pytest.approx(sum(own) / len(own), rel=1e-12)
    # the held-out row's own offset is never in its fold's start: the four starts differ
    assert len({round(v["feed_offset_mm"], 9) for v, _ in starts}) == 4
    with pytest.raises(InputError, match="start must be one of"):
        cross_validate(rows, fit=fit, predict=predict, start="best")


def replace_offset(row, offset_mm):
    from dataclasses import replace

    return replace(row, centre_offset_mm=offset_mm)


def test_cli_refuses_an_unknown_start(capsys):
    code = main(["validate", "--cross-validate", "--cv-start", "best"])
    err = capsys.readouterr().err
    assert code == 2 and "--cv-start" in err and len(err.strip().splitlines()) == 1


def test_leave_one_power_out_fits_on_the_other_powers_and_says_so():
    rows = [_row("amica", p, t, line=i) for i, (p, t) in enumerate(
        [(20, 180), (20, 300), (40, 180), (40, 300), (60, 180), (60, 300)])]  # fmt: skip
    seen = []

    def fit(app, train, **kw):
        seen.append(sorted({r.power_w for r in train}))
        return _Fit({"efficiency": 0.5}, {"mean_abs_error_mm": 0})

    def predict(held, spacing_mm, applicators, initial_temperature_c):
        return [ZonePrediction(r, r.length_mm + 1.0, r.width_mm, 0.0, r.length_mm, r.width_mm,
                               spacing_mm) for r in held]  # fmt: skip

    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, hold="power")
    assert seen == [[40, 60], [20, 60], [20, 40]]  # each power fitted without itself
    assert doc["hold"] == "power" and doc["method"].startswith("leave-one-power-out")
    assert [(f["power_w"], f["duration_s"], f["held_out_rows"]) for f in doc["folds"]] == [
        (20, None, 2), (40, None, 2), (60, None, 2)]
    assert doc["mean_abs_error_mm"] == pytest.approx(0.5)  # +1 mm length, 0 width


@pytest.mark.parametrize(("option", "bad", "good"),
                         [("--cv-hold", "row", "power"), ("--cv-fit-spacing-mm", "0.1", "2")])
def test_cli_cv_options_are_checked_and_need_cross_validate(capsys, option, bad, good):
    code = main(["validate", "--cross-validate", option, bad])
    err = capsys.readouterr().err
    assert code == 2 and option in err and len(err.strip().splitlines()) == 1
    code = main(["validate", option, good])
    err = capsys.readouterr().err
    assert code == 2 and option in err and "not used" in err


def test_folds_mapped_elsewhere_give_the_serial_document():
    """``map_folds`` (a cluster's map) may run the folds in any order: the document is the
    serial run's, fold for fold (the stub errors are known offsets, as above)."""
    rows = [_row("amica", p, t, line=i) for i, (p, t) in enumerate(
        [(20, 180), (20, 300), (40, 180), (40, 300), (60, 600)])]  # fmt: skip

    def fit(app, train, **kw):
        return _Fit({k: getattr(app, k) for k in MW_PARAMETERS},
                    {"mean_abs_error_mm": float(len(train))})  # fmt: skip

    def predict(held, spacing_mm, applicators, initial_temperature_c):
        return [ZonePrediction(r, r.length_mm + r.line, r.width_mm - r.line, 0.0,
                               r.length_mm, r.width_mm, spacing_mm) for r in held]  # fmt: skip

    calls = []

    def backwards(fn, shared, items):  # last fold first, results handed back in order
        calls.append(len(items))
        return [fn(shared, it) for it in items[::-1]][::-1]

    serial = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1)
    mapped = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1,
                            map_folds=backwards)  # fmt: skip
    assert calls == [5]  # every fold through the map, once
    assert mapped == serial


def test_cli_folds_on_a_local_dask_cluster_match_the_serial_run(tmp_path, capsys):
    """Two Dask worker processes fit the folds of a tiny table (one evaluation each): the
    held-out predictions and the folds' fits are the serial run's (the same deterministic
    fits, run elsewhere)."""
    import json

    csv = tmp_path / "t.csv"
    csv.write_text("device,frequency_mhz,power_w,duration_s,length_mm,width_mm\n"
                   + "".join(f"amica,2450,{p},{t},30,25\n"
                             for p, t in ((40, 30), (40, 45), (60, 30), (60, 45))))  # fmt: skip
    args = ["validate", "--cross-validate", "--table", str(csv), "--max-evaluations", "1",
            "--spacing-mm", "4", "--json", "--quiet"]  # fmt: skip
    docs = []
    for extra in ([], ["--workers", "2"]):
        assert main([*args, *extra]) == 0
        docs.append(json.loads(capsys.readouterr().out))
    serial, dask = docs
    assert [f["fitted"] for f in dask["folds"]] == [f["fitted"] for f in serial["folds"]]
    for a, b in zip(dask["rows"], serial["rows"], strict=True):
        # one thread per process on both sides; 1e-9 mm leaves room for nothing but the
        # float formatting of the same numbers
        assert a["predicted_length_mm"] == pytest.approx(b["predicted_length_mm"], abs=1e-9)
        assert a["predicted_width_mm"] == pytest.approx(b["predicted_width_mm"], abs=1e-9)
    assert main([*args, "--workers", "0"]) == 2
    assert main([*args, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert main(["validate", "--workers", "2"]) == 2  # without --cross-validate: not used


def test_the_folds_are_fitted_at_the_voxel_the_calibration_was_made_at():
    """Each fold refits what the calibration fitted; fitted at another voxel size its values
    would move by the grid's own error (session 53: 2 mm fits judged at 1 mm added 1-1.4 mm to
    the worst rows), so the default fold fit uses calibration.toml's spacing_mm."""
    import tomllib
    from importlib import resources

    cal = tomllib.loads(resources.files("ioplan.devices").joinpath("data/calibration.toml")
                        .read_text())  # fmt: skip
    rows = _four_amica_rows()
    seen = []

    def fit(app, train, **kw):
        seen.append(kw["spacing_mm"])
        return _Fit({"efficiency": 0.5}, {"mean_abs_error_mm": 0})

    def predict(held, spacing_mm, applicators, initial_temperature_c):
        return [ZonePrediction(r, r.length_mm, r.width_mm, 0.0, r.length_mm, r.width_mm,
                               spacing_mm) for r in held]  # fmt: skip

    cross_validate(rows, fit=fit, predict=predict, max_evaluations=1)
    assert seen == [cal["amica"]["spacing_mm"]] * 4


def _four_amica_rows():
    """Two powers by two durations of one antenna: four folds of three training rows."""
    return [_row("amica", p, t, line=i) for i, (p, t) in enumerate(
        [(20, 180), (20, 300), (40, 180), (40, 300)])]  # fmt: skip


def _recording_fit(seen, what):
    """A fit stub that records ``what(kwargs)`` of each call."""

    def fit(app, train, **kw):
        seen.append(what(kw))
        return _Fit({"efficiency": 0.5}, {"mean_abs_error_mm": 0.1})

    return fit


def _counting_stubs(calls):
    def fit(app, train, **kw):
        calls.append(len(train))
        return _Fit({"efficiency": 0.5}, {"mean_abs_error_mm": 0.1})

    def predict(held, spacing_mm, applicators, initial_temperature_c):
        return [ZonePrediction(r, r.length_mm + 1.0, r.width_mm - 0.5, 0.0, r.length_mm,
                               r.width_mm, spacing_mm) for r in held]  # fmt: skip

    return fit, predict


def test_a_checkpoint_reuses_finished_folds_and_refits_when_the_start_changes(tmp_path):
    """An interrupted run continues: the second run with the same file fits nothing and gives
    the same document; a new calibration (another start value) refits every fold; a line cut
    short by a kill is refitted, not trusted."""
    rows = _four_amica_rows()
    ckpt = tmp_path / "folds.jsonl"
    calls: list[int] = []
    fit, predict = _counting_stubs(calls)
    first = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt)
    assert len(calls) == 4 and first["reused_folds"] == 0
    assert len(ckpt.read_text().splitlines()) == 4  # one line per finished fold

    second = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt)
    assert len(calls) == 4 and second["reused_folds"] == 4  # nothing fitted again
    drop = ("reused_folds",)
    assert {k: v for k, v in second.items() if k not in drop} == {
        k: v for k, v in first.items() if k not in drop}  # fmt: skip

    from dataclasses import replace

    other = {"amica": replace(applicator("amica"), efficiency=0.5)}  # another calibration
    cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt,
                   applicators=other)  # fmt: skip
    assert len(calls) == 8

    lines = ckpt.read_text().splitlines()
    ckpt.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])  # killed
    third = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt)
    assert len(calls) == 9 and third["reused_folds"] == 3
    fourth = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt)
    assert len(calls) == 9 and fourth["reused_folds"] == 4  # the cut line did not spoil the file


def test_a_file_that_is_not_a_checkpoint_is_refused_and_left_alone(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\nline two\n")
    calls: list[int] = []
    fit, predict = _counting_stubs(calls)
    rows = _four_amica_rows()
    with pytest.raises(InputError, match="line 1 is not a cross-validation fold record"):
        cross_validate(rows, fit=fit, predict=predict, checkpoint=notes)
    assert calls == [] and notes.read_text() == "my notes\nline two\n"
    code = main(["validate", "--cross-validate", "--checkpoint", str(notes)])
    err = capsys.readouterr().err
    assert code == 2 and "--checkpoint" in err and len(err.strip().splitlines()) == 1
    code = main(["validate", "--checkpoint", str(tmp_path / "new.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "--checkpoint" in err and "not used" in err
    bad_paths = [(tmp_path, "is a folder"), (tmp_path / "no" / "f.jsonl", "does not exist")]
    if Path("/dev/null").exists():  # would silently keep nothing
        bad_paths.append((Path("/dev/null"), "not a regular file"))
    if Path("/proc/self").is_dir():  # no file can be made there, even as root
        bad_paths.append((Path("/proc/ioplan-checkpoint.jsonl"), "cannot write it"))
    for bad, says in bad_paths:
        code = main(["validate", "--cross-validate", "--checkpoint", str(bad)])
        err = capsys.readouterr().err
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1


def test_each_fold_is_fitted_with_the_chosen_norm_and_the_norm_is_in_its_key(tmp_path):
    """The folds minimise what the calibration minimised (DEFAULT_ERROR_NORM unless told), the
    document says which, and a checkpoint made with another norm is not reused."""
    from ioplan.validation import DEFAULT_ERROR_NORM

    rows = _four_amica_rows()
    seen: list[int] = []
    fit = _recording_fit(seen, lambda kw: kw["error_norm"])

    _, predict = _counting_stubs([])
    ckpt = tmp_path / "folds.jsonl"
    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt)
    assert seen == [DEFAULT_ERROR_NORM] * 4 and doc["error_norm"] == DEFAULT_ERROR_NORM
    assert f"|error|^{DEFAULT_ERROR_NORM}" in doc["method"]
    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt,
                         error_norm=16)  # fmt: skip
    assert seen[4:] == [16] * 4 and doc["reused_folds"] == 0  # another norm: refitted
    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt,
                         error_norm=16)  # fmt: skip
    assert len(seen) == 8 and doc["reused_folds"] == 4
    with pytest.raises(InputError, match="error_norm must be one of"):
        cross_validate(rows, fit=fit, predict=predict, error_norm=3)


def test_from_a_generic_start_a_high_norm_fit_begins_with_least_squares():
    """A generic start is far from any fit, where sum |e|^16 barely moves: its folds ask the
    fit for a least-squares stage first (calibrate_microwave's ``staged``); from the
    calibration, already a fit of the norm, they do not. The whole budget goes to the fit."""
    rows = _four_amica_rows()
    calls: list[tuple[int, int, bool]] = []

    def fit(app, train, **kw):
        calls.append((kw["error_norm"], kw["max_evaluations"], kw["staged"]))
        return _Fit({"efficiency": 0.5}, {"mean_abs_error_mm": 0.1})

    _, predict = _counting_stubs([])
    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=60, start="generic",
                         error_norm=16)  # fmt: skip
    assert calls == [(16, 60, True)] * 4
    assert "least squares first" in doc["method"]
    calls.clear()
    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=60, error_norm=16)
    assert calls == [(16, 60, False)] * 4 and "least squares first" not in doc["method"]
    calls.clear()
    cross_validate(rows, fit=fit, predict=predict, max_evaluations=60, start="generic",
                   error_norm=2, error_bound_mm=None)  # fmt: skip
    assert calls == [(2, 60, False)] * 4  # plain least squares: nothing to stage
    calls.clear()
    cross_validate(rows, fit=fit, predict=predict, max_evaluations=60, start="generic",
                   error_norm=2, error_bound_mm=3.8)  # fmt: skip
    assert calls == [(2, 60, False)] * 4  # least squares with a bound: not staged either


def test_each_fold_is_fitted_with_the_chosen_bound_and_the_bound_is_in_its_key(tmp_path):
    """The folds get the calibration's soft bound unless told (None: none, and then the fit
    is not given one at all, so a run without a bound keeps the keys of earlier runs); a
    checkpoint made with another bound is not reused."""
    from ioplan.validation import DEFAULT_ERROR_BOUND_MM

    rows = _four_amica_rows()
    seen: list = []
    fit = _recording_fit(seen, lambda kw: kw.get("error_bound_mm", "absent"))

    _, predict = _counting_stubs([])
    ckpt = tmp_path / "folds.jsonl"
    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt)
    assert seen == [DEFAULT_ERROR_BOUND_MM] * 4 and doc["error_bound_mm"] == DEFAULT_ERROR_BOUND_MM
    assert f"soft bound at {DEFAULT_ERROR_BOUND_MM:g} mm" in doc["method"]
    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt,
                         error_bound_mm=None)  # fmt: skip
    assert seen[4:] == ["absent"] * 4 and doc["reused_folds"] == 0
    assert "error_bound_mm" not in doc and "soft bound" not in doc["method"]
    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt,
                         error_bound_mm=3.0)  # fmt: skip
    assert seen[8:] == [3.0] * 4 and doc["reused_folds"] == 0
    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt,
                         error_bound_mm=3.0)  # fmt: skip
    assert len(seen) == 12 and doc["reused_folds"] == 4


def test_fixed_parameters_reach_each_fold_and_its_key(tmp_path):
    """Parameters held fixed are passed to every fold's fit and named in the document;
    without any the fit is not given the argument (earlier checkpoints keep their keys);
    a checkpoint made with other fixed parameters is not reused."""
    rows = _four_amica_rows()
    seen: list = []
    fit = _recording_fit(seen, lambda kw: kw.get("fixed", "absent"))
    _, predict = _counting_stubs([])
    ckpt = tmp_path / "folds.jsonl"
    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt)
    assert seen == ["absent"] * 4 and "fixed_parameters" not in doc
    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt,
                         fixed=("feed_offset_mm",))  # fmt: skip
    assert seen[4:] == [("feed_offset_mm",)] * 4 and doc["reused_folds"] == 0
    assert doc["fixed_parameters"] == ["feed_offset_mm"] and "holding feed_offset_mm" in doc[
        "method"]
    doc = cross_validate(rows, fit=fit, predict=predict, max_evaluations=1, checkpoint=ckpt,
                         fixed=("feed_offset_mm",))  # fmt: skip
    assert len(seen) == 8 and doc["reused_folds"] == 4
    with pytest.raises(InputError, match="cannot fix"):
        cross_validate(rows, fit=fit, predict=predict, fixed=("bogus",))
