"""`ioplan protocol` (issue 22): the document for MWA at 1.5 T and cryo at 3 T, refusals."""

from __future__ import annotations

import json

from conftest import assert_one_line_error, run_cli

REQUIRED = ("steps", "sequences", "thermometry", "devices")


def _protocol(capsys, out, *args):
    return run_cli(capsys, "protocol", *args, "--out", out)


def test_mwa_at_1p5t_writes_json_and_html(capsys, tmp_path):
    out = tmp_path / "mwa"
    code, stdout, err = _protocol(
        capsys, out, "--modality", "mwa", "--guidance", "mr", "--field-t", "1.5", "--json"
    )
    assert code == 0, err
    doc = json.loads(stdout)
    assert json.loads((out / "protocol.json").read_text()) == doc
    for k in REQUIRED:
        assert doc[k], k
    for s in doc["sequences"]:
        assert {"name", "purpose", "te_ms", "tr_ms"} <= set(s)
    assert {"te_ms", "snr", "expected_precision_c"} <= set(doc["thermometry"])
    assert doc["field_t"] == 1.5 and doc["modality"] == "mwa"
    html = (out / "protocol.html").read_text()
    for text in (
        "Needle artefact",
        "PRF thermometry",
        "Team and roles",
        "mr-mw-1.5t",
        "MR Conditional at 1.5 T",
    ):
        assert text in html
    assert "<script" not in html
    # an earlier output of this command is replaced only with --force
    code, _, err = _protocol(capsys, out, "--modality", "mwa", "--field-t", "1.5")
    assert_one_line_error(code, err, "not empty")
    code, stdout, err = _protocol(capsys, out, "--modality", "mwa", "--field-t", "1.5", "--force")
    assert code == 0, err
    assert "precision" in stdout


def test_cryo_at_3t_with_the_mr_needle(capsys, tmp_path):
    out = tmp_path / "cryo"
    code, stdout, err = _protocol(
        capsys,
        out,
        "--modality",
        "cryo",
        "--guidance",
        "mr",
        "--field-t",
        "3",
        "--applicator",
        "icerod-1.5-mri",
        "--tissue",
        "kidney",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(stdout)
    for k in REQUIRED:
        assert doc[k], k
    assert doc["devices"][0]["id"] == "icerod-1.5-mri"
    assert doc["tissue"] == "kidney" and doc["field_t"] == 3.0
    assert any(s["id"] == "ice_ball_imaging" for s in doc["steps"])
    assert (out / "protocol.html").is_file()


def test_non_mr_device_is_refused_before_any_work(capsys, tmp_path):
    out = tmp_path / "x"
    code, stdout, err = _protocol(
        capsys,
        out,
        "--modality",
        "mwa",
        "--guidance",
        "mr",
        "--field-t",
        "1.5",
        "--applicator",
        "covidien-emprint",
    )
    assert_one_line_error(
        code, err, "covidien-emprint is not MR Conditional", "refused for MR guidance", "CT-guided"
    )
    assert stdout == "" and not out.exists()
    # a device MR Conditional at 1.5 T only is refused at 3 T
    code, _, err = _protocol(
        capsys, out, "--modality", "mwa", "--field-t", "3", "--applicator", "mr-mw-1.5t"
    )
    assert_one_line_error(code, err, "only at 1.5 T, not at 3 T")
    assert not out.exists()


def test_bad_options_are_one_line_errors(capsys, tmp_path):
    out = tmp_path / "x"
    for args, frag in (
        (("--modality", "mwa", "--field-t", "2"), "--field-t must be 1.5 or 3"),
        (("--modality", "hifu", "--field-t", "1.5"), "--modality"),
        (("--modality", "mwa", "--field-t", "1.5", "--guidance", "ct"), "--guidance must be mr"),
        (("--modality", "mwa", "--field-t", "1.5", "--tissue", "brain"), "--tissue"),
        (("--modality", "mwa", "--field-t", "1.5", "--applicator", "nope"), "unknown applicator"),
    ):
        code, _, err = _protocol(capsys, out, *args)
        assert_one_line_error(code, err, frag)
        assert not out.exists()


def test_a_foreign_folder_is_never_overwritten(capsys, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    for extra in ((), ("--force",)):
        code, _, err = _protocol(capsys, out, "--modality", "cryo", "--field-t", "1.5", *extra)
        assert code == 2, err
        assert (out / "notes.txt").read_text() == "keep"
        assert not (out / "protocol.json").exists()
