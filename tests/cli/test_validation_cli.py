"""``ioplan validate`` and ``ioplan calibrate``: refusals before any simulation, corrupt zone
tables, where a calibration is written, and property-based tests over the numeric options.

Simulations are replaced by a stub that fails the test when called, so that a check that
comes too late is caught without timing; the one real run is ``validate --rows 1`` at 5 mm.
"""

from __future__ import annotations

import json
import math
import tomllib
from importlib import resources as importlib_resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_one_line_error, run_cli
from ioplan.validation import REQUIRED_COLUMNS, _calibrate, _zones

HEADER = (
    "device,frequency_mhz,power_w,duration_s,length_mm,width_mm,centre_offset_mm,basis,source\n"
)
ROW = "covidien-emprint,2450,45,150,24,23,11,chart,Emprint chart\n"
#: capsys is reset by each example itself (readouterr)
_FIXTURES = [HealthCheck.function_scoped_fixture]


def _no_simulation(*_a, **_k):
    raise AssertionError("a simulation started: a cheap check came too late")


@pytest.fixture
def no_simulation(monkeypatch):
    import ioplan.physics

    monkeypatch.setattr(ioplan.physics, "simulate", _no_simulation)
    monkeypatch.setattr(_calibrate, "predict_zones", _no_simulation)


def _package_calibration() -> Path:
    return Path(str(importlib_resources.files("ioplan.devices").joinpath("data/calibration.toml")))


# -- validate -------------------------------------------------------------------------
def test_table_help_says_what_is_true(capsys):
    """Defect: the help pointed to a file that is not in the checkout."""
    code, out, _ = run_cli(capsys, "validate", "--help")
    assert code == 0
    text = "".join(out.replace("│", " ").split())  # rich wraps anywhere: compare unspaced
    assert "mwa_zones.csvin../shared/validation/wheretheshareddataarepresent" in text
    assert "packagedwiththeapplicatorcatalogue" in text
    for col in REQUIRED_COLUMNS:
        assert col in text
    assert "0.25-5" in text


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (b"\xff\xfe\x00garbage\x80\x81", ["not a UTF-8", *REQUIRED_COLUMNS]),
        (b"", ["missing column", *REQUIRED_COLUMNS]),
        (b"a,b,c\n1,2,3\n", ["missing column", *REQUIRED_COLUMNS]),
        (b"device,power_w\ncovidien-emprint,45\n", ["frequency_mhz", *REQUIRED_COLUMNS]),
        (HEADER.encode() + b"covidien-emprint,2450,forty,150,24,23,11,chart,x\n", ["power_w"]),
        (HEADER.encode() + b"covidien-emprint,2450,45,nan,24,23,11,chart,x\n", ["duration_s"]),
        (HEADER.encode() + b"covidien-emprint,2450,45\x00,150,24,23,11,c,x\n", ["power_w"]),
        (HEADER.encode(), ["no rows"]),
        # over the engine's limits (power 300 W, 3600 s): refused before any simulation
        (HEADER.encode() + b"covidien-emprint,2450,45,99999,24,23,11,chart,x\n", ["3600"]),
        (HEADER.encode() + b"covidien-emprint,2450,900,150,24,23,11,chart,x\n", ["300"]),
    ],
)
def test_corrupt_zone_table_is_one_line_before_any_simulation(
    tmp_path, capsys, no_simulation, content, fragments
):
    f = tmp_path / "t.csv"
    f.write_bytes(content)
    code, _, err = run_cli(capsys, "validate", "--table", f, "--quiet")
    assert_one_line_error(code, err, *fragments)


def test_a_folder_as_table(tmp_path, capsys, no_simulation):
    code, _, err = run_cli(capsys, "validate", "--table", tmp_path)
    assert_one_line_error(code, err, "folder")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [  # each was accepted and the option silently ignored (--checks ran without the table)
        (("--checks", "cryo", "--table", "t.csv"), ("--table", "not used with --checks")),
        (("--checks", "cryo", "--initial-temperature-c", "30"), ("--initial-temperature-c",)),
        (("--organs", "--device", "amica"), ("--device", "not used with --organs")),
        (("--cross-validate", "--report", "r"), ("--report", "--cross-validate")),
        (("--max-evaluations", "3",), ("--max-evaluations", "without --cross-validate")),
        (("--cv-start", "generic",), ("--cv-start",)),
        (("--checks", "cryo", "--organs"), ("--checks and --organs", "choose one")),
    ],
)
def test_validate_refuses_options_its_mode_ignores(capsys, no_simulation, args, fragments):
    code, _, err = run_cli(capsys, "validate", *args)
    assert_one_line_error(code, err, *fragments)


@settings(max_examples=20, deadline=None, suppress_health_check=_FIXTURES)
@given(
    spacing=st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 0.25 <= v <= 5.0),
    t0=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    rows=st.integers(-(2**40), 2**40),
)
def test_validate_numeric_refusals_property(capsys, no_simulation, spacing, t0, rows):
    """A spacing outside 0.25-5 mm is refused by name before any simulation, whatever the
    other options are."""
    args = ["validate", "--spacing-mm", repr(spacing), "--rows", rows, "--quiet"]
    if t0 is not None:
        args += ["--initial-temperature-c", repr(t0)]
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, "--spacing-mm")


@settings(max_examples=20, deadline=None, suppress_health_check=_FIXTURES)
@given(
    t0=st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 0.0 <= v <= 45.0),
    rows=st.integers(-(2**40), -1),
)
def test_validate_temperature_and_rows_refusals_property(capsys, no_simulation, t0, rows):
    code, _, err = run_cli(capsys, "validate", "--initial-temperature-c", repr(t0), "--quiet")
    assert_one_line_error(code, err, "--initial-temperature-c", "0-45")
    code, _, err = run_cli(capsys, "validate", "--rows", rows, "--quiet")
    assert_one_line_error(code, err, "--rows")


def test_validate_one_row_at_5_mm(tmp_path, capsys):
    """The smallest real run: the first chart row (Emprint 45 W, 150 s: 24 x 23 mm).

    At 5 mm the sub-voxel zone is within one voxel (5 mm) of the chart; the measured
    error is printed with the contract keys.
    """
    f = tmp_path / "t.csv"
    f.write_text(HEADER + ROW)
    code, out, err = run_cli(
        capsys, "validate", "--table", f, "--rows", "1", "--spacing-mm", "5", "--json", "-q"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["n_rows"] == 1 and doc["spacing_mm"] == 5.0
    row = doc["rows"][0]
    assert row["line"] == 2
    assert abs(row["predicted_length_mm"] - 24.0) < 5.0
    assert abs(row["predicted_width_mm"] - 23.0) < 5.0
    assert row["length_error_mm"] == pytest.approx(row["predicted_length_mm"] - 24.0, abs=0.01)


@pytest.mark.parametrize("mode", [[], ["--checks", "cryo"], ["--organs"]])
def test_report_overwrite_does_not_replace_another_output(tmp_path, capsys, no_simulation,
                                                          mode):  # fmt: skip
    """``--report FOLDER --overwrite`` on a phantom's folder (its index.html would be
    replaced) is refused before any simulation, every file as it was (sweep, session 51)."""
    out = tmp_path / "phantom"
    out.mkdir()
    mine = {"index.html": "<p>phantom</p>", "case.toml": "name = 'p'\n"}
    for name, text in mine.items():
        (out / name).write_text(text)
    code, _, err = run_cli(capsys, "validate", *mode, "--report", out, "--overwrite", "-q")
    assert_one_line_error(code, err, "not an earlier output of `ioplan validate`")
    assert {p.name: p.read_text() for p in out.iterdir()} == mine


def test_a_check_named_twice_runs_once(capsys, monkeypatch):
    from ioplan.validation import _checks

    ran = []

    def run_checks(names, **_k):
        ran.append(list(names))
        return []

    monkeypatch.setattr(_checks, "run_checks", run_checks)
    import ioplan.validation

    monkeypatch.setattr(ioplan.validation, "run_checks", run_checks)
    code, _, err = run_cli(capsys, "validate", "--checks", "cryo,rf,cryo", "--json")
    assert code == 0, err
    assert ran == [["cryo", "rf"]]


# -- calibrate ------------------------------------------------------------------------
class _FakeCalibration:
    """What ``calibrate_microwave`` returns, for tests of the command around it."""

    def __init__(self):
        self.values = {"efficiency": 0.5}
        self.summary = {"mean_abs_error_mm": 1.0, "max_abs_error_mm": 2.0}
        self.evaluations = 1

    def record(self, command):
        return {"efficiency": 0.5, "command": command}


def test_calibrate_defaults_to_the_current_folder(tmp_path, capsys, monkeypatch):
    """Defect: without --output, calibrate wrote into the installed package. Now the record
    goes to ./calibration-DEVICE.toml and the package's file is untouched."""
    monkeypatch.chdir(tmp_path)
    package_file = _package_calibration()
    before = package_file.read_bytes()

    import ioplan.validation

    monkeypatch.setattr(ioplan.validation, "calibrate_microwave",
                        lambda *a, **k: _FakeCalibration())  # fmt: skip
    code, out, err = run_cli(capsys, "calibrate", "covidien-emprint", "--quiet")
    assert code == 0, err
    written = tmp_path / "calibration-covidien-emprint.toml"
    rec = tomllib.loads(written.read_text())["covidien-emprint"]
    assert rec["efficiency"] == 0.5 and rec["command"].startswith("ioplan calibrate")
    assert package_file.read_bytes() == before
    assert "calibration-covidien-emprint.toml" in out and str(package_file) in out
    # a second run does not replace the record without --overwrite
    code, _, err = run_cli(capsys, "calibrate", "covidien-emprint", "--quiet")
    assert_one_line_error(code, err, "--overwrite")


@pytest.mark.parametrize(("given", "expected"), [([], 3.8), (["--error-bound-mm", "0"], None),
                                                (["--error-bound-mm", "2.5"], 2.5)])
def test_calibrate_passes_the_soft_bound_to_the_fit(tmp_path, capsys, monkeypatch, given,
                                                    expected):  # fmt: skip
    """Default: the calibration's bound (DEFAULT_ERROR_BOUND_MM, 3.8 mm); 0 is none; the
    recorded command says which, so that the record can be reproduced."""
    import ioplan.validation
    from ioplan.validation import DEFAULT_ERROR_BOUND_MM

    monkeypatch.chdir(tmp_path)
    seen = []

    def fit(*a, **k):
        seen.append(k["error_bound_mm"])
        return _FakeCalibration()

    monkeypatch.setattr(ioplan.validation, "calibrate_microwave", fit)
    code, _, err = run_cli(capsys, "calibrate", "amica", "--quiet", *given)
    assert code == 0, err
    assert DEFAULT_ERROR_BOUND_MM == 3.8 and seen == [expected]
    rec = tomllib.loads((tmp_path / "calibration-amica.toml").read_text())["amica"]
    assert rec["command"].endswith(f"--error-bound-mm {0 if expected is None else expected:g}")


def test_calibrate_passes_fixed_parameters_to_the_fit_and_records_them(tmp_path, capsys,
                                                                        monkeypatch):
    """--fix (repeatable, a name given twice counts once) reaches the fit, and the recorded
    command names it so that the record can be reproduced; --cv-fix reaches the folds."""
    import ioplan.validation

    monkeypatch.chdir(tmp_path)
    seen = []

    def fit(*a, **k):
        seen.append(k["fixed"])
        return _FakeCalibration()

    monkeypatch.setattr(ioplan.validation, "calibrate_microwave", fit)
    code, _, err = run_cli(capsys, "calibrate", "amica", "-q", "--fix", "feed_offset_mm",
                           "--fix", "detuning_exponent", "--fix", "feed_offset_mm")  # fmt: skip
    assert code == 0, err
    assert seen == [("feed_offset_mm", "detuning_exponent")]
    rec = tomllib.loads((tmp_path / "calibration-amica.toml").read_text())["amica"]
    assert rec["command"].endswith("--fix feed_offset_mm --fix detuning_exponent")
    cv = []
    monkeypatch.setattr(ioplan.validation, "cross_validate",
                        lambda rows, **k: cv.append(k["fixed"]) or {"folds": []})  # fmt: skip
    run_cli(capsys, "validate", "--cross-validate", "--device", "amica", "--json",
            "--cv-fix", "feed_offset_mm")  # fmt: skip
    assert cv == [("feed_offset_mm",)]


def test_calibrate_never_writes_over_a_file_that_is_not_a_calibration(
    tmp_path, capsys, no_simulation
):
    precious = tmp_path / "pyproject.toml"
    precious.write_text('name = "mine"\n[tool]\nx = 1\n')
    before = precious.read_bytes()
    code, _, err = run_cli(
        capsys, "calibrate", "covidien-emprint", "--output", precious, "--overwrite", "-q"
    )
    assert_one_line_error(code, err, "--output", "not a calibration")
    assert precious.read_bytes() == before
    (tmp_path / "bin.toml").write_bytes(b"\xff\x00\x81")
    code, _, err = run_cli(
        capsys, "calibrate", "covidien-emprint", "--output", tmp_path / "bin.toml", "-q"
    )
    assert_one_line_error(code, err, "not a calibration TOML")


def test_calibrate_unwritable_output_before_fitting(tmp_path, capsys, no_simulation):
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(
        capsys, "calibrate", "covidien-emprint", "--output", tmp_path / "afile" / "cal.toml"
    )
    assert_one_line_error(code, err, "cannot write")


def test_identifiability_fits_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """A stub engine whose zone length follows the efficiency only (10 mm per e-fold) and
    whose widths are 1 mm off: the efficiency is determined, the five others move nothing
    (unbounded intervals), nothing is written, and the JSON names every parameter."""
    from ioplan.devices import applicator
    from ioplan.validation import MW_PARAMETERS, ZonePrediction

    eff0 = applicator("amica").efficiency

    def predict(rows, *, spacing_mm, applicators, initial_temperature_c=None):
        app = applicators["amica"]
        return [ZonePrediction(r, r.length_mm + 10.0 * math.log(app.efficiency / eff0) + 0.5,
                               r.width_mm + 1.0, 0.0, r.length_mm, r.width_mm, spacing_mm)
                for r in rows]  # fmt: skip

    monkeypatch.setattr(_calibrate, "predict_zones", predict)
    monkeypatch.chdir(tmp_path)
    before = _package_calibration().read_bytes()
    code, out, err = run_cli(capsys, "calibrate", "amica", "--identifiability", "--json")
    assert code == 0, err
    doc = json.loads(out)
    # what the stored fit held (its record's fixed_parameters) is reported, not estimated
    from ioplan.devices import calibration_record

    held = set(calibration_record("amica").get("fixed_parameters", ()))
    assert set(doc["parameters"]) == set(MW_PARAMETERS) - held
    assert set(doc["held_parameters"]) == held
    eff = doc["parameters"]["efficiency"]
    # sensitivity: 10 mm per e-fold on the lengths (half the errors), none on the widths and
    # offsets: rms over the errors = ln(1.1) x 10 x sqrt(lengths / errors)
    n_len = doc["rows"]
    assert eff["sensitivity_mm_per_10_percent"] == pytest.approx(
        math.log(1.1) * 10.0 * math.sqrt(n_len / doc["errors_weighed"]), rel=1e-3)
    assert eff["identified"] is True
    others = [v for k, v in doc["parameters"].items() if k != "efficiency"]
    assert all(v["identified"] is False and v["interval_95"][1] is None for v in others)
    assert list(tmp_path.iterdir()) == [] and _package_calibration().read_bytes() == before
    code, out, err = run_cli(capsys, "calibrate", "amica", "--identifiability", "-q")
    assert code == 0, err
    assert "efficiency" in out and "unbounded" in out


@pytest.mark.parametrize(("args", "fragment"), [
    (["amica", "--identifiability", "--output", "x.toml"], "drop --output"),
    (["amica", "--identifiability", "--error-norm", "2"], "drop --error-norm"),
    (["cryo-2.4mm", "--identifiability"], "microwave"),
    (["amica", "--json"], "--json is for --identifiability"),
])  # fmt: skip
def test_identifiability_refusals(tmp_path, capsys, monkeypatch, no_simulation, args, fragment):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "calibrate", *args)
    assert_one_line_error(code, err, fragment)
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=20, deadline=None, suppress_health_check=_FIXTURES)
@given(
    spacing=st.floats(allow_nan=True, allow_infinity=True),
    evaluations=st.integers(-(2**40), 2**40),
    t0=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_calibrate_numeric_refusals_property(capsys, no_simulation, spacing, evaluations, t0):
    """Refusals only (calibrating is slow): whenever an option is out of its stated range
    (spacing 0.25-5 mm, evaluations 1-1000, start temperature 0-45 degC), one line names
    it before any model runs. In-range draws are not run."""
    bad_spacing = not (math.isfinite(spacing) and 0.25 <= spacing <= 5.0)
    bad_t0 = t0 is not None and not (math.isfinite(t0) and 0.0 <= t0 <= 45.0)
    bad_evals = not 1 <= evaluations <= 1000
    if not (bad_spacing or bad_t0 or bad_evals):
        return
    args = ["calibrate", "covidien-emprint", "--spacing-mm", repr(spacing),
            "--max-evaluations", evaluations, "--output", "/nonexistent/x.toml", "-q"]  # fmt: skip
    if t0 is not None:
        args += ["--initial-temperature-c", repr(t0)]
    code, _, err = run_cli(capsys, *args)
    expected = (
        "--spacing-mm" if bad_spacing else "--initial-temperature-c" if bad_t0 else "evaluations"
    )
    assert_one_line_error(code, err, expected)


def test_predict_zones_checks_every_row_before_the_first_simulation(monkeypatch):
    """A later group with an impossible setting is refused before the first group runs."""
    monkeypatch.setattr("ioplan.physics.simulate", _no_simulation)
    rows = [
        _zones.ZoneRow("covidien-emprint", 2450.0, 45.0, 150.0, 24.0, 23.0, line=2),
        _zones.ZoneRow("covidien-emprint", 2450.0, 500.0, 150.0, 24.0, 23.0, line=3),
    ]
    with pytest.raises(ValueError, match="line 3"):
        _zones.predict_zones(rows, spacing_mm=5.0)
