"""``ioplan phantom --organ ...`` (issue 21): the organ reaches case.toml and ``info --json``;
bad organs, sites and sides are one-line errors (exit 2) before any work."""

from __future__ import annotations

import json
import tomllib

import pytest

from conftest import assert_one_line_error, run_cli
from ioplan.anatomy import _phantom_case, load_case


def _no_phantom(*_a, **_k):
    raise AssertionError("the phantom generator started: a cheap check came too late")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--organ", "brain"], ["unknown organ", "brain"]),
        (["--organ", "lung", "--site", "exophytic"], ["peripheral or central", "exophytic"]),
        (["--organ", "kidney", "--site", "peripheral"], ["exophytic or central"]),
        (["--organ", "bone", "--side", "up"], ["right or left"]),
        (["--site", "central"], ["--site and --side apply"]),
        # the vertebral tumour sits on the midline: --side was accepted and changed nothing
        (
            ["--organ", "bone", "--site", "vertebra", "--side", "left"],
            ["--side does not apply", "vertebra"],
        ),
        (["--organ", "bone", "--side", "right"], ["--side does not apply", "vertebra"]),
        # the kidney's side only places the tumour: with its centre given it changed nothing
        (
            ["--organ", "kidney", "--side", "left", "--tumor-diameter-mm", "20",
             "--tumor-centre-mm=60,30,-10"],
            ["--side places the tumour", "no effect"],
        ),
    ],
)
def test_bad_organ_options_are_one_line_errors_before_work(
    tmp_path, capsys, monkeypatch, args, fragments
):
    monkeypatch.setattr(_phantom_case, "generate_phantom", _no_phantom)
    code, _, err = run_cli(capsys, "phantom", "--out", tmp_path / "c", "-q", *args)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "c" / "case.toml").exists()


def test_lung_phantom_case_carries_its_organ(tmp_path, capsys):
    out = tmp_path / "lung"
    code, _, err = run_cli(
        capsys, "phantom", "--organ", "lung", "--site", "peripheral", "--side", "left",
        "--tumor-diameter-mm", "20", "--spacing-mm", "4", "--out", out, "-q",
    )  # fmt: skip
    assert code == 0, err
    meta = tomllib.loads((out / "case.toml").read_text())
    assert meta["organ"] == "lung"
    assert meta["source"]["site"] == "peripheral" and meta["source"]["side"] == "left"
    assert meta["tumors"][0]["histology"] == "other_metastasis"  # not a liver default
    assert meta["tumors"][0]["centre_mm"][0] > 0  # left lung: +x
    code, text, _ = run_cli(capsys, "info", out, "--json")
    assert code == 0
    doc = json.loads(text)
    assert doc["organ"] == {"name": "lung", "given": True}
    names = {row["label"] for row in doc["labels"]}
    assert {"lung", "fissure", "bronchus", "pulmonary_vessel", "tumor"} <= names
    assert load_case(out).organ == "lung"


def test_liver_phantom_keeps_its_options(tmp_path, capsys, monkeypatch):
    """The liver phantom's options pass through unchanged, with organ "liver" added."""
    seen = {}

    def fake(config, progress=None):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(_phantom_case, "generate_phantom", fake)
    run_cli(
        capsys, "phantom", "--tumor-diameter-mm", "25", "--tumor-centre-mm", "-85,25,15",
        "--histology", "colorectal_metastasis", "--seed", "7", "--spacing-mm", "4",
        "--out", tmp_path / "liver", "-q",
    )  # fmt: skip
    cfg = seen["config"]
    assert cfg.organ == "liver" and cfg.site is None and cfg.side is None
    assert cfg.seed == 7 and cfg.spacing_mm == (4.0, 4.0, 4.0)
    t = cfg.tumors[0]
    assert (t.diameter_mm, t.centre_mm, t.histology) == (
        25.0, (-85.0, 25.0, 15.0), "colorectal_metastasis"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("organ", "site", "labels"),
    [
        ("kidney", "central", {"kidney", "kidney_medulla", "collecting_system", "ureter"}),
        ("bone", "vertebra", {"vertebra", "spinal_canal", "spinal_cord", "nerve_root"}),
    ],
)
def test_kidney_and_bone_cases(tmp_path, capsys, organ, site, labels):
    out = tmp_path / organ
    code, _, err = run_cli(
        capsys, "phantom", "--organ", organ, "--site", site, "--tumor-diameter-mm", "20",
        "--spacing-mm", "4", "--out", out, "-q",
    )  # fmt: skip
    assert code == 0, err
    code, text, _ = run_cli(capsys, "info", out, "--json")
    doc = json.loads(text)
    assert doc["organ"]["name"] == organ
    assert labels | {"tumor"} <= {row["label"] for row in doc["labels"]}
