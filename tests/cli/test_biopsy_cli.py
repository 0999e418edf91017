"""``ioplan biopsy``: the JSON contract, the files, and one-line refusals (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from ioplan.anatomy import Case, Label, save_case
from ioplan.imaging import Grid, Volume

#: The keys issue 22 names for biopsy.json (a contract).
CONTRACT = ("entry_mm", "target_mm", "needle", "throw_mm", "cores", "path_length_mm", "risks")


@pytest.fixture(scope="module")
def case_dir(small_case, tmp_path_factory) -> Path:
    return save_case(small_case, tmp_path_factory.mktemp("biopsy-cli") / "case")


@pytest.fixture(scope="module")
def walled_dir(tmp_path_factory) -> Path:
    """A lesion inside liver walled in by bone on every side: no safe path exists."""
    lab = np.full((24, 24, 24), int(Label.FAT), np.int16)
    lab[0] = int(Label.BACKGROUND)
    lab[4:20, 4:20, 4:20] = int(Label.RIB)
    lab[7:17, 7:17, 7:17] = int(Label.LIVER)
    lab[10:14, 10:14, 10:14] = int(Label.TUMOR)
    g = Grid(shape=lab.shape, spacing_mm=(3.0, 3.0, 3.0))
    img = np.where(lab == int(Label.TUMOR), 55.0, 100.0).astype(np.float32)
    centre = [float(v) for v in g.index_to_lps([11.5, 11.5, 11.5])]
    case = Case(Volume(img, g), Volume(lab, g), organ="liver",
                tumors=({"centre_mm": centre, "histology": "hcc"},))  # fmt: skip
    return save_case(case, tmp_path_factory.mktemp("biopsy-walled") / "case")


def test_json_contract_and_files(capsys, case_dir, tmp_path):
    out = tmp_path / "bx"
    code, stdout, err = run_cli(capsys, "biopsy", case_dir, "--out", out, "--json",
                                "--histology", "rcc", "--throw-mm", "10")  # fmt: skip
    assert code == 0, err
    doc = json.loads(stdout)
    for key in CONTRACT:
        assert key in doc, key
    assert doc["needle"] == "18G" and doc["throw_mm"] == 10.0
    assert doc["cores"] == 2  # EAU RCC guideline: at least two cores (biopsy.toml)
    assert "bleeding" in doc["risks"] and doc["risks"]["bleeding"]["source"]
    # the path length is the distance from the entry to the tip (analytic)
    e, t = np.asarray(doc["entry_mm"]), np.asarray(doc["target_mm"])
    assert doc["path_length_mm"] == pytest.approx(float(np.linalg.norm(t - e)), abs=0.1)
    assert json.loads((out / "biopsy.json").read_text()) == doc
    marks = json.loads((out / "biopsy.mrk.json").read_text())["markups"]
    pts = marks[0]["controlPoints"]
    # the JSON rounds positions to 0.01 mm, the markups keep them whole
    assert np.allclose(pts[0]["position"], doc["entry_mm"], atol=0.006, rtol=0)
    assert np.allclose(pts[1]["position"], doc["target_mm"], atol=0.006, rtol=0)
    for f in ("report.html", "figures/needle_plane.png", "figures/path_slices.png"):
        assert (out / f).stat().st_size > 0, f
    # an earlier biopsy folder is refused without --force, replaced with it
    code, _, err = run_cli(capsys, "biopsy", case_dir, "--out", out)
    assert_one_line_error(code, err, str(out))
    code, stdout, err = run_cli(capsys, "biopsy", case_dir, "--out", out, "--force")
    assert code == 0, err
    assert "report:" in stdout
    # the printed summary says why the throw is where it is (biopsy.json's aim_reason)
    reason = json.loads((out / "biopsy.json").read_text())["viable_target"]["aim_reason"]
    assert f"aim: {reason}" in stdout.splitlines() and "throw is centred" in reason


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--needle", "11G"), "--needle"),
        (("--throw-mm", "15"), "--throw-mm"),
        (("--tumour", "3"), "--tumour 3"),
        (("--guidance", "US"), "--guidance"),
        (("--histology", "bogus"), "--histology"),
        (("--target-label", "nosuch"), "nosuch"),
        # label 0 and a label the case lacks: one line naming the labels it has
        (("--target-label", "background"), "background, not a structure; labels present: skin"),
        (("--target-label", "pancreas"), "no pancreas voxels; labels present: skin"),
    ],
)
def test_bad_options_one_line(capsys, case_dir, tmp_path, args, fragment):
    code, stdout, err = run_cli(capsys, "biopsy", case_dir, "--out", tmp_path / "o", *args)
    assert_one_line_error(code, err, fragment)
    assert stdout == "" and not (tmp_path / "o").exists()


def test_missing_case_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "biopsy", tmp_path / "nope", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "nope")


def test_no_safe_path_one_line(capsys, walled_dir, tmp_path):
    code, _, err = run_cli(capsys, "biopsy", walled_dir, "--out", tmp_path / "o",
                           "--throw-mm", "10")  # fmt: skip
    assert_one_line_error(code, err, "no safe biopsy path")
    assert not (tmp_path / "o").exists()


def test_foreign_folder_refused(capsys, case_dir, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "biopsy", case_dir, "--out", out, "--force")
    assert_one_line_error(code, err, "notes.txt")
    assert (out / "notes.txt").read_text() == "keep me"


def test_an_organ_without_bleeding_figures_is_one_line(capsys, tmp_path):
    """A soft-tissue (thigh) case ended in "internal error: KeyError: 'soft_tissue'" (exit 1)
    after the whole search: biopsy.toml holds no bleeding rate for it."""
    case = tmp_path / "thigh"
    assert run_cli(capsys, "phantom", "--out", case, "--organ", "soft_tissue", "--spacing-mm",
                   "4", "-q")[0] == 0  # fmt: skip
    code, _, err = run_cli(capsys, "biopsy", case, "--out", tmp_path / "b")
    assert_one_line_error(code, err, "not soft_tissue")
    assert not (tmp_path / "b").exists()


def test_the_scaled_bleeding_rate_is_not_printed_as_the_published_one(capsys, tmp_path):
    """A 14G lung biopsy printed "48.3 % (pulmonary haemorrhage ... after CT-guided core
    lung biopsy)": ioplan's cross-section scaling of the 18G study's 18 %, read as the
    study's figure. Both are printed, the scaled one marked as an assumption."""
    case = tmp_path / "lung"
    assert run_cli(capsys, "phantom", "--out", case, "--organ", "lung", "--spacing-mm", "4",
                   "-q")[0] == 0  # fmt: skip
    code, out, err = run_cli(capsys, "biopsy", case, "--out", tmp_path / "b", "--needle", "14G")
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("bleeding:"))
    assert "published at 18G" in line and "an assumption, not a published figure" in line
