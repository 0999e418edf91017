"""What a microwave calibration minimises: the sum of |error|^p (``error_norm``).

The engine is replaced by a stub whose zone length is linear in the antenna's efficiency,
so the optimum of each norm is known in closed form.
"""

from __future__ import annotations

import pytest

from ioplan.cli import main
from ioplan.devices import applicator
from ioplan.errors import InputError
from ioplan.validation import DEFAULT_ERROR_NORM, ERROR_NORMS, ZonePrediction, ZoneRow, _calibrate


def _rows(lengths_mm):
    return [ZoneRow(device="amica", frequency_mhz=2450.0, power_w=40.0, duration_s=60.0 * (i + 1),
                    length_mm=length, width_mm=20.0, line=i + 2)
            for i, length in enumerate(lengths_mm)]  # fmt: skip


def _stub_engine(monkeypatch):
    """Every row's predicted length is 10 mm x efficiency; widths are exact."""

    def predict(rows, *, spacing_mm, applicators, initial_temperature_c=None):
        app = applicators["amica"]
        return [ZonePrediction(r, 10.0 * app.efficiency, r.width_mm, 0.0, r.length_mm,
                               r.width_mm, spacing_mm) for r in rows]  # fmt: skip

    monkeypatch.setattr(_calibrate, "predict_zones", predict)


@pytest.mark.parametrize("norm", [2, 16])
def test_the_fit_minimises_the_sum_of_errors_to_the_chosen_power(monkeypatch, norm):
    """Lengths 5, 5 and 8 mm against a prediction of y = 10 x efficiency. Least squares: y is
    their mean, 6 mm (largest error 2 mm). Norm p: d/dy [2 (y - 5)^p + (8 - y)^p] = 0 gives
    y - 5 = c (8 - y), c = 2^(-1/(p-1)): y = (5 + 8c) / (1 + c), 6.465 mm for p = 16 (largest
    error 1.535 mm, close to the minimax 1.5)."""
    _stub_engine(monkeypatch)
    c = 2.0 ** (-1.0 / (norm - 1))
    expected_y = (5.0 + 8.0 * c) / (1.0 + c)
    res = _calibrate.calibrate_microwave(applicator("amica"), _rows([5.0, 5.0, 8.0]),
                                         max_evaluations=300, error_norm=norm,
                                         error_bound_mm=None)  # fmt: skip
    # 0.1 mm: the solver's finite-difference step (2 % of the log range) is coarse for a
    # degree-16 cost; from eight starts (0.3-0.95 efficiency, staged or not) it settled at
    # y = 6.395-6.462 mm against 6.465. The two optima are 0.47 mm apart, so a fit of the
    # wrong norm still fails
    assert 10.0 * res.values["efficiency"] == pytest.approx(expected_y, abs=0.1)
    assert res.error_norm == norm
    assert res.record("x")["error_norm"] == norm
    worst = {2: 2.0, 16: 8.0 - expected_y}[norm]
    assert res.summary["max_abs_error_mm"] == pytest.approx(worst, abs=0.1)


@pytest.mark.parametrize("staged", [True, False])
def test_a_high_norm_fit_begins_with_least_squares_unless_told_not_to(monkeypatch, staged):
    """Staged: the first stage minimises sum |e|^2 with at most half the budget, the rest
    sum |e|^16, and the result is still the p = 16 optimum (closed form as above); not
    staged: every evaluation is of the norm. The log line names each evaluation's norm."""
    _stub_engine(monkeypatch)
    lines: list[str] = []
    res = _calibrate.calibrate_microwave(applicator("amica"), _rows([5.0, 5.0, 8.0]),
                                         max_evaluations=300, error_norm=16, staged=staged,
                                         error_bound_mm=None, log=lines.append)  # fmt: skip
    norms = [int(line.split("sum |e|^")[1].split(":")[0]) for line in lines]
    assert len(norms) == res.evaluations <= 300
    if staged:
        first = norms.index(16)
        assert 0 < first <= 150 and set(norms[:first]) == {2} and set(norms[first:]) == {16}
    else:
        assert set(norms) == {16}
    c = 2.0 ** (-1.0 / 15)
    # 0.1 mm: as in the test above (the solver's finite-difference step)
    assert 10.0 * res.values["efficiency"] == pytest.approx((5 + 8 * c) / (1 + c), abs=0.1)


def test_an_unknown_norm_is_refused():
    with pytest.raises(InputError, match="error_norm must be one of"):
        _calibrate.calibrate_microwave(applicator("amica"), _rows([5.0, 5.0, 8.0]), error_norm=3)
    assert DEFAULT_ERROR_NORM in ERROR_NORMS


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["calibrate", "amica", "--error-norm", "3"], "--error-norm must be one of 2, 4, 8, 16"),
        (["calibrate", "cryo-2.4mm", "--error-norm", "2"], "--error-norm is for microwave"),
        (["validate", "--cv-error-norm", "2"], "--cv-error-norm is not used without"),
        (["validate", "--cross-validate", "--cv-error-norm", "5"], "must be one of"),
        (["calibrate", "amica", "--error-bound-mm", "-1"], "--error-bound-mm must be 0 (none)"),
        (["calibrate", "amica", "--error-bound-mm", "nan"], "--error-bound-mm must be 0 (none)"),
        (["calibrate", "cryo-2.4mm", "--error-bound-mm", "3"], "--error-bound-mm is for micro"),
        (["validate", "--cv-error-bound-mm", "3"], "--cv-error-bound-mm is not used without"),
        (["validate", "--cross-validate", "--cv-error-bound-mm", "-2"], "must be 0 (none)"),
    ],
)
def test_bad_norm_options_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)  # calibrate's default output is ./calibration-DEVICE.toml
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(("bound_mm", "expected_y"), [
    # inside the bound the least-squares optimum (the mean, 6 mm; largest error 2 mm) stands,
    # where the norm 16 would move to 6.465 mm
    (3.0, 6.0),
    # a bound of 1.5 mm binds on the 8 mm row: d/dy [2 (y - 5)^2 + (8 - y)^2
    # + W^2 (8 - y - 1.5)^2] = 0 gives y = (36 + 13 W^2) / (6 + 2 W^2), 6.485 mm for W = 10
    (1.5, (36.0 + 13.0 * _calibrate.BOUND_WEIGHT**2) / (6.0 + 2.0 * _calibrate.BOUND_WEIGHT**2)),
])
def test_a_soft_bound_moves_least_squares_only_as_far_as_the_rows_beyond_it(
    monkeypatch, bound_mm, expected_y
):
    _stub_engine(monkeypatch)
    lines: list[str] = []
    res = _calibrate.calibrate_microwave(applicator("amica"), _rows([5.0, 5.0, 8.0]),
                                         max_evaluations=300, error_norm=2,
                                         error_bound_mm=bound_mm, log=lines.append)  # fmt: skip
    # 0.1 mm: the solver's finite-difference step (2 % of the log range); the two expected
    # values are 0.49 mm apart, so a fit that ignored the bound (or always applied it) fails
    assert 10.0 * res.values["efficiency"] == pytest.approx(expected_y, abs=0.1)
    assert res.record("x")["error_bound_mm"] == bound_mm
    # not staged: every evaluation is of least squares with the bound
    assert lines and all(f"sum |e|^2 + bound {bound_mm:g} mm" in line for line in lines)


def test_a_bound_that_is_not_a_positive_number_is_refused():
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError, match="error_bound_mm must be a positive number"):
            _calibrate.calibrate_microwave(applicator("amica"), _rows([5.0, 5.0, 8.0]),
                                           error_bound_mm=bad)  # fmt: skip


def test_the_cost_is_the_norm_plus_the_weighted_excess():
    """Independent recount: errors 1, -3, 5 mm, norm 2, bound 4: 1 + 9 + 25 + W^2 x 1^2."""
    got = _calibrate.fit_cost([1.0, -3.0, 5.0], 2, 4.0)
    assert got == pytest.approx(35.0 + _calibrate.BOUND_WEIGHT**2)
    assert _calibrate.fit_cost([1.0, -3.0, 5.0], 4) == pytest.approx(1 + 81 + 625)


def test_with_a_high_norm_the_bound_joins_the_norms_stage(monkeypatch):
    """Staged: the least-squares stage has no bound, the norm's stage has it."""
    _stub_engine(monkeypatch)
    lines: list[str] = []
    _calibrate.calibrate_microwave(applicator("amica"), _rows([5.0, 5.0, 8.0]),
                                   max_evaluations=300, error_norm=16, error_bound_mm=1.5,
                                   log=lines.append)  # fmt: skip
    stages = ["sum |e|^16 + bound 1.5 mm" in line for line in lines]
    assert not stages[0] and any(stages) and stages == sorted(stages)
    assert all("+ bound" not in line for line, st in zip(lines, stages, strict=True) if not st)


def test_a_fixed_parameter_keeps_its_value_and_the_others_are_fitted(monkeypatch):
    """Fixing the detuning exponent leaves it where it was in every evaluation while the
    efficiency still reaches the least-squares optimum (y = 6 mm, as above); fixing the
    efficiency, the only parameter the stub's zones follow, leaves the zones where they were.
    The record names what was fixed."""
    seen: list = []

    def predict(rows, *, spacing_mm, applicators, initial_temperature_c=None):
        app = applicators["amica"]
        seen.append((app.efficiency, app.detuning_exponent))
        return [ZonePrediction(r, 10.0 * app.efficiency, r.width_mm, 0.0, r.length_mm,
                               r.width_mm, spacing_mm) for r in rows]  # fmt: skip

    monkeypatch.setattr(_calibrate, "predict_zones", predict)
    app = applicator("amica")
    res = _calibrate.calibrate_microwave(app, _rows([5.0, 5.0, 8.0]), max_evaluations=100,
                                         error_bound_mm=None,
                                         fixed=("detuning_exponent",))  # fmt: skip
    assert {d for _, d in seen} == {app.detuning_exponent}
    # 0.05 mm: the solver's finite-difference step on a linear cost
    assert 10.0 * res.values["efficiency"] == pytest.approx(6.0, abs=0.05)
    assert res.values["detuning_exponent"] == app.detuning_exponent
    assert res.fixed == ("detuning_exponent",)
    assert res.record("x")["fixed_parameters"] == ["detuning_exponent"]
    seen.clear()
    res = _calibrate.calibrate_microwave(app, _rows([5.0, 5.0, 8.0]), max_evaluations=30,
                                         error_bound_mm=None, fixed=("efficiency",))  # fmt: skip
    assert {e for e, _ in seen} == {app.efficiency} and res.values["efficiency"] == app.efficiency
    assert "fixed_parameters" not in _calibrate.calibrate_microwave(
        app, _rows([5.0, 5.0, 8.0]), max_evaluations=3, error_bound_mm=None).record("x")
    with pytest.raises(InputError, match="cannot fix"):
        _calibrate.calibrate_microwave(app, _rows([5.0, 5.0, 8.0]), fixed=("bogus",))
    with pytest.raises(InputError, match="every parameter is fixed"):
        _calibrate.calibrate_microwave(app, _rows([5.0, 5.0, 8.0]),
                                       fixed=tuple(_calibrate.MW_PARAMETERS))  # fmt: skip
