"""Files a user edited by hand or mixed up: one line and exit 2, never an internal error.

Each case here came from a careless-user sweep of the command line (session 45) that found
an ``internal error`` (exit 1), a hang, or a wrong answer with exit 0.
"""

from __future__ import annotations

import io
import json
import shutil

import pytest

from conftest import assert_one_line_error, run_cli
from ioplan.anatomy import save_case

_APP = {"id": "mine", "name": "my antenna", "modality": "microwave", "diameter_mm": 1.8,
        "source": "test", "frequency_mhz": 2450.0, "cooled": True}  # fmt: skip


@pytest.fixture(scope="module")
def case_dir(small_case, tmp_path_factory):
    folder = tmp_path_factory.mktemp("damaged") / "case"
    save_case(small_case, folder)
    return folder


def _copy(case_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(case_dir, out)
    return out


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"cooled": "false"}, "cooled must be true or false"),  # a truthy string
        ({"gauge": 1.5}, "gauge must be a whole number"),
        ({"diameter_mm": "2"}, "diameter_mm must be a number"),
        ({"name": 5}, "name must be text"),
        ({"modality": None}, "modality must be text"),
    ],
)
def test_applicator_file_fields_of_the_wrong_type(capsys, tmp_path, change, fragment):
    """A JSON "false" is a true string in Python: it used to run as a cooled antenna."""
    f = tmp_path / "app.json"
    f.write_text(json.dumps(_APP | change))
    code, _, err = run_cli(capsys, "simulate", "--applicator-file", f, "--power-w", 60,
                           "--duration-s", 60, "--tissue", "liver", "--spacing-mm", 4)  # fmt: skip
    assert_one_line_error(code, err, fragment)


def test_applicator_file_missing_field_or_a_folder(capsys, tmp_path):
    f = tmp_path / "app.json"
    f.write_text(json.dumps({k: v for k, v in _APP.items() if k != "modality"}))
    args = ("--power-w", 60, "--duration-s", 60, "--tissue", "liver", "--spacing-mm", 4)
    code, _, err = run_cli(capsys, "simulate", "--applicator-file", f, *args)
    assert_one_line_error(code, err, "lacks the fields ['modality']")
    assert "__init__" not in err
    code, _, err = run_cli(capsys, "simulate", "--applicator-file", tmp_path, *args)
    assert_one_line_error(code, err, "is not a file")


def test_case_with_a_binary_vessel_file(capsys, case_dir, tmp_path):
    case = _copy(case_dir, tmp_path)
    doc = (case / "case.toml").read_text()
    if 'vessels = "vessels.csv"' not in doc:
        doc += '\nvessels = "vessels.csv"\n'
        (case / "case.toml").write_text(doc)
    (case / "vessels.csv").write_bytes(bytes(range(256)) * 4)
    code, _, err = run_cli(capsys, "info", case)
    assert_one_line_error(code, err, "vessels.csv", "not a text")


@pytest.mark.parametrize(
    "old, new, fragment",
    [
        ("diameter_mm = ", "diameter_mm = -30.0 #", "diameter_mm must be a number > 0"),
        ("diameter_mm = ", "diameter_mm = nan #", "diameter_mm must be a number > 0"),
        ("centre_mm = [", "centre_mm = [nan, ", "centre_mm must be 3 finite numbers"),
        ('histology = "', 'histology = "nonsense" #"', "histology 'nonsense' is not one of"),
    ],
)
def test_case_toml_tumour_entries_are_checked(capsys, case_dir, tmp_path, old, new, fragment):
    """A NaN centre made `ioplan info --json` print a bare NaN (not JSON) and the planner
    plan anyway; an unknown histology chose a margin "for nonsense"."""
    case = _copy(case_dir, tmp_path)
    doc = (case / "case.toml").read_text()
    assert old in doc
    (case / "case.toml").write_text(doc.replace(old, new, 1))
    cmd = ("select", case) if "histology" in old else ("info", case, "--json")
    code, out, err = run_cli(capsys, *cmd)
    assert_one_line_error(code, err, fragment)
    assert out == ""


@pytest.mark.parametrize(
    "text, suffix",
    [("liver = 1e400\n", ".toml"), ('{"liver": 5.5}', ".json"), ('{"liver": true}', ".json")],
)
def test_label_map_values_must_be_whole_numbers(capsys, tmp_path, text, suffix):
    """1e400 (inf) was an internal error; 5.5 was silently read as 5."""
    from ioplan.anatomy import read_class_file
    from ioplan.errors import IoplanError

    f = tmp_path / f"map{suffix}"
    f.write_text(text)
    with pytest.raises(IoplanError, match="values must be integers"):
        read_class_file(f)
    (tmp_path / "ok.toml").write_text('liver = 5\ntumor = "6"\nkidney = 7.0\n')
    assert read_class_file(tmp_path / "ok.toml").classes == {5: "liver", 6: "tumor", 7: "kidney"}


@pytest.mark.parametrize("end_s", [1e7, 1e308])
def test_thermometry_planned_end_is_bounded(end_s):
    """--end-s 1e7 simulated 1e7 s (a hang); 1e308 overflowed. An hour of heating at most,
    as `ioplan simulate`'s --duration-s."""
    from ioplan.errors import InputError
    from ioplan.monitoring import HeatSource

    with pytest.raises(InputError, match="at most 3600 s of heating"):
        HeatSource(tip_lps=(0.0, 0.0, 0.0), end_s=end_s)
    HeatSource(tip_lps=(0.0, 0.0, 0.0), end_s=3600.0)  # an hour is accepted


def test_delete_patient_without_an_answer_is_refused_not_interrupted(capsys, tmp_path,
                                                                     monkeypatch):  # fmt: skip
    """No terminal and no answer (end of input): exit 2 and how to confirm, not 130
    ("interrupted", as Ctrl-C); an answer 'n' on the same input still keeps the patient."""
    db = str(tmp_path / "reg.sqlite")
    code, _, err = run_cli(capsys, "registry", "demo", "--db", db, "--out", tmp_path / "d",
                           "--patients", 3, "--quiet")  # fmt: skip
    assert code == 0, err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run_cli(capsys, "registry", "delete-patient", "P0001", "--db", db)
    assert_one_line_error(code, err, "needs a confirmation", "--yes")
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, _, err = run_cli(capsys, "registry", "delete-patient", "P0001", "--db", db)
    assert code == 1


def test_overwrite_keeps_a_users_namesake_without_the_commands_json(tmp_path):
    """`plan --overwrite` and `biopsy` replaced a user's own report.html (the same name as
    an output): without a completion record a folder passes for an older output only if it
    holds the command's JSON too."""
    from ioplan.errors import OutputExistsError
    from ioplan.imaging import check_replaceable
    from ioplan.planning import PLAN_FOLDER_ENTRIES

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.html").write_text("MY OWN REPORT")
    with pytest.raises(OutputExistsError, match=r"report\.html"):
        check_replaceable(mine, command="plan", names=PLAN_FOLDER_ENTRIES, overwrite=True)
    older = tmp_path / "older"  # a plan folder from before completion records
    older.mkdir()
    (older / "report.html").write_text("old plan report")
    (older / "plan.json").write_text("{}")
    assert check_replaceable(older, command="plan", names=PLAN_FOLDER_ENTRIES, overwrite=True)


def test_a_batch_resumed_with_other_options_is_refused(tmp_path):
    """Resuming `batch simulate` at 80 W skipped the cases done at 60 W and wrote
    power_w 80 into batch.json over them; now the options that change a case's result must
    match (the registry that `batch margin` records into may change)."""
    from dataclasses import asdict, replace

    from ioplan.batch import BatchOptions, check_batch_output
    from ioplan.errors import InputError

    opts = BatchOptions(action="simulate", applicator_id="covidien-emprint", power_w=60.0,
                        duration_s=150.0)  # fmt: skip
    out = tmp_path / "b"
    out.mkdir()
    (out / "batch.json").write_text(json.dumps({"schema_version": 1, "action": "simulate",
                                                "options": asdict(opts)}))  # fmt: skip
    assert check_batch_output(out, "simulate", opts) == out
    assert check_batch_output(out, "simulate", replace(opts, seed=0)) == out
    with pytest.raises(InputError, match=r"power_w 60\.0 -> 80\.0"):
        check_batch_output(out, "simulate", replace(opts, power_w=80.0))
    with pytest.raises(InputError, match="direction"):
        check_batch_output(out, "simulate", replace(opts, direction=(0.0, 0.0, 1.0)))


def test_a_lesion_under_two_voxels_is_refused(small_case):
    """`add-lesion --diameter-mm 3` on 4 mm voxels wrote a one-voxel lesion without a word;
    `ioplan phantom` already refuses a tumour under two voxels."""
    import numpy as np
    from scipy import ndimage

    from ioplan.anatomy import Label, add_lesion
    from ioplan.errors import InputError

    liver = np.asarray(small_case.labels.array) == int(Label.LIVER)
    deep = np.argwhere(ndimage.distance_transform_edt(liver) == ndimage.distance_transform_edt(
        liver).max())[0]  # fmt: skip
    centre = tuple(float(v) for v in small_case.labels.grid.index_to_lps(deep))
    with pytest.raises(InputError, match="under two voxels"):
        add_lesion(small_case, centre, 7.9)  # 4 mm voxels: 8 mm is two


@pytest.mark.parametrize("text", ['{"power_w": NaN}', '{"power_w": Infinity}', '{"a": -Infinity}'])
def test_registry_settings_refuse_nan_and_infinity(text):
    """Python's json reads NaN and Infinity (not JSON, RFC 8259): the registry stored them
    and `registry export` wrote them back."""
    from ioplan.registry._schema import TABLES, parse_cell

    col = next(c for c in TABLES["procedures.csv"] if c.name == "settings")
    assert parse_cell(col, '{"power_w": 100}') == '{"power_w": 100}'
    with pytest.raises(ValueError, match="not a JSON number"):
        parse_cell(col, text)


def test_a_zone_padded_by_whole_slices_measures_as_the_zone(small_case):
    """The same zone mask padded with zero slices (another crop of the same voxels) read
    4.79 mm and failed technical success where the mask itself read 5.11 mm and passed
    (the sweep's phantom tumour, its zone the tumour dilated by two 4 mm voxels): it was
    resampled into a fraction, which takes the probability path (on this phantom 5.14
    against 5.33 mm). Now it is placed as it is, and the two agree exactly."""
    import numpy as np
    from scipy import ndimage

    from ioplan.anatomy import Label
    from ioplan.assessment import measure_margin
    from ioplan.imaging import Grid, Volume

    g = small_case.labels.grid
    tum = np.asarray(small_case.labels.array) == int(Label.TUMOR)
    tumour = Volume(tum.astype(np.uint8), g)
    zone = ndimage.binary_dilation(tum, iterations=2).astype(np.uint8)
    same = measure_margin(tumour, Volume(zone, g), margin_mm=5.0)
    for start in (0, 4):  # padded after, and before (the origin moves by 4 voxels)
        shape = (*g.shape[:2], g.shape[2] + 4)
        padded_grid = Grid(shape, g.spacing_mm, tuple(g.index_to_lps((0, 0, -start))),
                           g.direction)  # fmt: skip
        arr = np.zeros(shape, np.uint8)
        arr[:, :, start:start + g.shape[2]] = zone
        padded = measure_margin(tumour, Volume(arr, padded_grid), margin_mm=5.0)
        assert padded.minimal_margin_mm == pytest.approx(same.minimal_margin_mm, abs=1e-9)


@pytest.mark.parametrize(
    "app, extra, fragment",
    [
        (("--applicator", "covidien-emprint", "--power-w", 60, "--duration-s", 60),
         ("--rf-mode", "temperature"), "--rf-mode and --rf-pads are for an RF electrode"),
        (("--applicator", "covidien-emprint", "--power-w", 60, "--duration-s", 60),
         ("--rf-pads", "thighs"), "--rf-mode and --rf-pads are for an RF electrode"),
        (("--applicator", "cooled-rf-3cm", "--power-w", 60, "--duration-s", 60),
         ("--lethal-temperature-c", -20), "--lethal-temperature-c is for a cryoprobe"),
        # sweep of session 51: accepted and ignored on a block
        (("--applicator", "cooled-rf-3cm", "--power-w", 60, "--duration-s", 60),
         ("--rf-pads", "thighs"), "--rf-pads is not used without --case"),
        (("--applicator", "covidien-emprint", "--power-w", 60, "--duration-s", 60),
         ("--overwrite",), "--overwrite is not used without --output-dir"),
    ],
)  # fmt: skip
def test_simulate_refuses_options_of_another_modality(capsys, app, extra, fragment):
    """They were accepted and ignored (while --protocol with a heat source was refused)."""
    code, _, err = run_cli(capsys, "simulate", *app, "--tissue", "liver", "--spacing-mm", 4,
                           *extra)  # fmt: skip
    assert_one_line_error(code, err, fragment)
