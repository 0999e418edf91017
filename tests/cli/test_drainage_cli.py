"""``ioplan drainage`` (issue 22): a phantom with a collection, then the plan folder and JSON;
bad input is one line, exit 2, before any work."""

from __future__ import annotations

import json
import tomllib

import pytest

from conftest import assert_one_line_error, run_cli
from ioplan.planning import _drainage

KEYS = {"collection", "catheter_fr", "technique", "entry_mm", "target_mm", "path_length_mm",
        "depth_mm", "dependent", "avoided", "notes"}  # fmt: skip


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from ioplan.cli import main

    out = tmp_path_factory.mktemp("drain") / "case"
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        code = main(["phantom", "--out", str(out), "--spacing-mm", "3", "-q",
                     "--collection", "60", "--collection-site", "perihepatic",
                     "--collection-content", "abscess", "--necrosis-mm", "12"])  # fmt: skip
    assert code == 0
    return out


def test_phantom_records_its_collection(case_dir):
    src = tomllib.loads((case_dir / "case.toml").read_text())["source"]
    assert src["collection_site"] == "perihepatic"
    assert src["collection_content"] == "abscess"
    assert src["collection_mm"] == 60.0
    assert src["necrosis_mm"] == 12.0


def test_drainage_writes_its_folder_and_json(case_dir, tmp_path, capsys):
    out = tmp_path / "d"
    code, stdout, err = run_cli(
        capsys, "drainage", case_dir, "--collection-label", "fluid_collection",
        "--out", out, "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(stdout)
    assert KEYS <= set(doc)
    assert {"volume_ml", "size_mm", "content", "source"} <= set(doc["collection"])
    assert doc["collection"]["content"] == "abscess"  # auto: from case.toml
    assert doc["collection"]["source"] == "label"
    assert doc["technique"] in ("seldinger", "trocar")
    assert json.loads((out / "drainage.json").read_text())["entry_mm"] == doc["entry_mm"]
    mrk = json.loads((out / "drainage.mrk.json").read_text())
    pts = mrk["markups"][0]["controlPoints"]
    assert pts[0]["position"] == pytest.approx(doc["entry_mm"], abs=0.01)
    assert pts[1]["position"] == pytest.approx(doc["target_mm"], abs=0.01)
    html = (out / "report.html").read_text()
    assert "figures/path.png" in html and (out / "figures" / "path.png").stat().st_size > 5000
    assert (out / "collection.nii.gz").is_file()
    # run again: refused without --force, replaced with it
    code, _, err = run_cli(capsys, "drainage", case_dir, "--collection-label",
                           "fluid_collection", "--out", out)  # fmt: skip
    assert_one_line_error(code, err, "--overwrite")
    code, _, err = run_cli(capsys, "drainage", case_dir, "--collection-label",
                           "fluid_collection", "--out", out, "--force")  # fmt: skip
    assert code == 0, err


def _no_plan(*_a, **_k):
    raise AssertionError("planning started: a cheap check came too late")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--collection-label", "cyst"], ["unknown label name", "cyst"]),
        ([], ["exactly one of --collection-label"]),
        (["--collection-label", "fluid_collection", "--seed-mm", "0,0,0"], ["exactly one"]),
        (["--seed-mm", "1,2"], ["--seed-mm"]),
        (["--collection-label", "fluid_collection", "--content", "pus"], ["--content"]),
        (["--collection-label", "fluid_collection", "--guidance", "MR"], ["--guidance"]),
    ],
)
def test_bad_options_fail_before_work(case_dir, tmp_path, capsys, monkeypatch, args, fragments):
    import ioplan.planning

    monkeypatch.setattr(ioplan.planning, "plan_drainage", _no_plan)
    monkeypatch.setattr(_drainage, "plan_drainage", _no_plan)
    code, _, err = run_cli(capsys, "drainage", case_dir, "--out", tmp_path / "d", *args)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "d").exists()


def test_foreign_folder_is_not_overwritten(case_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "drainage", case_dir, "--collection-label",
                           "fluid_collection", "--out", out, "--force")  # fmt: skip
    assert code == 2, err
    assert (out / "notes.txt").read_text() == "keep me"


def test_seed_outside_fluid_is_one_line_error(case_dir, tmp_path, capsys):
    # the body's centre at the hilum level is enhanced vessel/soft tissue, not 0-30 HU fluid
    code, _, err = run_cli(capsys, "drainage", case_dir, "--seed-mm", "-150,0,0",
                           "--out", tmp_path / "d")  # fmt: skip
    assert_one_line_error(code, err, "--seed-mm")


@pytest.mark.parametrize("label", ["liver", "tumor", "kidney"])
def test_a_solid_structure_is_not_a_collection(capsys, case_dir, tmp_path, label):
    """`--collection-label liver` planned a drain of 1584 mL of solid liver (105 HU) as an
    abscess; only fluid-filled structures are drainage targets."""
    code, _, err = run_cli(capsys, "drainage", case_dir, "--collection-label", label,
                           "--out", tmp_path / "d")  # fmt: skip
    assert_one_line_error(code, err, "not a fluid-filled structure", label)
    assert not (tmp_path / "d").exists()
