"""The ``ioplan`` command: demo, phantom, info, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from ioplan.cli import main
from ioplan.imaging import Grid, Volume, write_nifti


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) >= 1 and lines[0].startswith("error: ")
    assert "Traceback" not in err
    text = " ".join(ln.strip() for ln in lines)  # rich may wrap a long line
    for f in fragments:
        assert f in text, (f, text)


@pytest.mark.slow
def test_demo_writes_case_and_overview(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, _ = _run(capsys, "demo", "--out", str(out), "--spacing-mm", "4", "--quiet")
    assert code == 0
    for name in (
        "case.toml",
        "image.nii.gz",
        "labels.nii.gz",
        "index.html",
        "figures/overview.png",
        "plan/plan.json",
        "plan/report.html",
        "plan/zone.nii.gz",
        "plan/trajectories.mrk.json",
    ):
        assert (out / name).exists(), name
    plan = json.loads((out / "plan" / "plan.json").read_text())
    # the demo's tumour sits next to a 5-6 mm hepatic vein branch (the heat sink matters)
    assert 5.0 <= plan["demo"]["vessel_diameter_mm"] <= 6.0
    assert plan["verified_by_simulation"] and plan["applicators"]
    assert "report.html" in stdout
    html = (out / "index.html").read_text()
    assert "figures/overview.png" in html and "liver" in html
    assert "index.html" in stdout
    # PNG signature: the figure is a real image
    assert (out / "figures" / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # goal status: plain `ioplan demo` exits 0 whether or not the plan meets its goal (README,
    # CI); plan.json says which, by the documented rule (covered: >= 99 % of tumour + margin)
    assert plan["goal_met"] == plan["covered"] == (plan["margin_coverage_percent"] >= 99.0)
    # --overwrite replaces the whole older demo folder; --strict exits 3 iff the goal is missed
    (out / "figures" / "old.png").write_bytes(b"old")
    (out / "plan" / "figures" / "old.png").write_bytes(b"old")
    code, stdout, _ = _run(
        capsys, "demo", "--out", str(out), "--spacing-mm", "4", "--quiet", "--overwrite",
        "--strict", "--json",
    )  # fmt: skip
    doc = json.loads(stdout)
    assert code == (0 if doc["goal_met"] else 3)
    assert doc["demo"] == plan["demo"]
    assert not (out / "figures" / "old.png").exists()
    assert not (out / "plan" / "figures" / "old.png").exists()
    assert json.loads((out / "ioplan-complete.json").read_text())["command"] == "demo"
    assert [p.name for p in out.parent.iterdir()] == ["demo"]  # no temporary folder left


def test_demo_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    code, _, err = _run(capsys, "demo", "--out", str(out), "--spacing-mm", "4", "--quiet")
    _assert_one_line_error(code, err, "--overwrite")
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_phantom_and_info_json(tmp_path, capsys):
    out = tmp_path / "case"
    code, _, _ = _run(
        capsys,
        "phantom",
        "--out",
        str(out),
        "--tumor-diameter-mm",
        "30",
        "--seed",
        "1",
        "--spacing-mm",
        "4",
        "--quiet",
    )
    assert code == 0
    code, stdout, _ = _run(capsys, "info", str(out), "--json")
    assert code == 0
    doc = json.loads(stdout)
    assert doc["grid"]["spacing_mm"] == [4.0, 4.0, 4.0]
    assert doc["tumors"][0]["diameter_mm"] == 30.0
    assert doc["source"]["seed"] == 1
    assert doc["tumor_components"] == 1
    # independent count with nibabel
    img = nib.load(out / "labels.nii.gz")
    n_liver = int(np.count_nonzero(np.asanyarray(img.dataobj) == 7))
    vols = {d["label"]: d for d in doc["labels"]}
    assert vols["liver"]["voxels"] == n_liver
    assert vols["liver"]["volume_ml"] == pytest.approx(n_liver * 64 / 1000)
    code, stdout, _ = _run(capsys, "info", str(out))
    assert code == 0 and "liver" in stdout and "volume (mL)" in stdout


def test_two_tumours_with_centres(tmp_path, capsys):
    out = tmp_path / "case"
    code, _, err = _run(
        capsys,
        "phantom",
        "--out",
        str(out),
        "--spacing-mm",
        "4",
        "--quiet",
        "--tumor-diameter-mm",
        "20",
        "--tumor-centre-mm",
        "-85,25,15",
        "--tumor-diameter-mm",
        "15",
        "--tumor-centre-mm",
        "-45,-45,20",
    )
    assert code == 0, err
    code, stdout, _ = _run(capsys, "info", str(out), "--json")
    assert json.loads(stdout)["tumor_components"] == 2


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["phantom", "--out", "{tmp}/x", "--spacing-mm", "-1"], ["--spacing-mm", "-1"]),
        (
            ["phantom", "--out", "{tmp}/x", "--tumor-diameter-mm", "500"],
            ["--tumor-diameter-mm", "500"],
        ),
        (["phantom", "--out", "{tmp}/x", "--tumor-centre-mm", "1,2"], ["--tumor-centre-mm"]),
        (
            [
                "phantom",
                "--out",
                "{tmp}/x",
                "--spacing-mm",
                "4",
                "--quiet",
                "--tumor-diameter-mm",
                "20",
                "--tumor-centre-mm",
                "150,0,-60",
            ],
            ["outside the liver"],
        ),
        (["info", "{tmp}/does-not-exist"], ["no such case folder"]),
    ],
)
def test_user_errors_are_one_line(tmp_path, capsys, args, fragments):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, _, err = _run(capsys, *args)
    _assert_one_line_error(code, err, *fragments)


def test_info_on_broken_cases(tmp_path, capsys):
    g = Grid((3, 3, 3))
    folder = tmp_path / "c"
    folder.mkdir()
    write_nifti(Volume(np.full(g.shape, np.nan, np.float32), g), folder / "image.nii.gz")
    write_nifti(Volume(np.zeros((3, 3, 4), np.uint8), Grid((3, 3, 4))), folder / "labels.nii.gz")
    (folder / "case.toml").write_text(
        'format = "ioplan-case"\nformat_version = 1\nimage = "image.nii.gz"\n'
        'labels = "labels.nii.gz"\n[label_values]\nliver = 7\n'
    )
    code, _, err = _run(capsys, "info", str(folder))
    _assert_one_line_error(code, err, "NaN")
    write_nifti(Volume(np.zeros(g.shape, np.int16), g), folder / "image.nii.gz", overwrite=True)
    code, _, err = _run(capsys, "info", str(folder))
    _assert_one_line_error(code, err, "label map", "shape")


def test_console_script_exit_code_and_no_traceback(tmp_path):
    """The real process: python -m ioplan, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "ioplan", "info", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "ioplan", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and "ioplan" in proc.stdout


def test_import_case_from_a_dicom_series(tmp_path, capsys):
    """A real-style case: a DICOM CT series plus a NIfTI segmentation with its own values."""
    from ioplan.imaging import write_dicom_series

    g = Grid((4, 6, 8), (2.5, 0.8, 0.8), (-10.0, 20.0, 30.0))
    ct = np.random.default_rng(0).integers(-200, 300, size=g.shape).astype(np.int16)
    seg = np.zeros(g.shape, np.uint8)
    seg[1:3, 2:5, 2:6] = 1
    seg[2, 3, 3] = 2
    write_dicom_series(Volume(ct, g), tmp_path / "dicom")
    write_nifti(Volume(seg, g), tmp_path / "seg.nii.gz")
    g2 = Grid((4, 6, 8), (2.5, 0.8, 0.8), (-10.0, 20.0, 33.0))
    write_nifti(Volume(seg, g2), tmp_path / "seg2.nii.gz")
    g3 = Grid((4, 6, 8), (2.5, 0.8, 0.8), (500.0, 20.0, 30.0))  # another patient's position
    write_nifti(Volume(seg, g3), tmp_path / "seg3.nii.gz")

    def run_import(seg_name, out_name, *labels, extra=()):
        args = ["import-case", "--image", str(tmp_path / "dicom")]
        args += ["--labels", str(tmp_path / seg_name), "--out", str(tmp_path / out_name)]
        for lab in labels:
            args += ["--label", lab]
        return _run(capsys, *args, *extra)

    code, _, err = run_import(
        "seg.nii.gz", "case", "liver=1", "tumor=2", extra=("--name", "t-1", "--no-auto-labels")
    )
    assert code == 0, err
    code, stdout, _ = _run(capsys, "info", str(tmp_path / "case"), "--json")
    doc = json.loads(stdout)
    vols = {d["label"]: d["voxels"] for d in doc["labels"]}
    assert vols == {"liver": 2 * 3 * 4 - 1, "tumor": 1}
    assert doc["name"] == "t-1"
    # by default, labels without a body outline get one found from the image, with a note
    code, out, err = run_import("seg.nii.gz", "auto", "liver=1", "tumor=2")
    assert code == 0 and "no body outline" in out + err, err
    code, stdout, _ = _run(capsys, "info", str(tmp_path / "auto"), "--json")
    auto = {d["label"]: d["voxels"] for d in json.loads(stdout)["labels"]}
    assert auto["liver"] == vols["liver"] and auto["tumor"] == 1  # the labels win
    assert set(auto) - {"liver", "tumor"}  # and the rest of the body is labelled
    # an undeclared value, labels on another grid, a malformed --label: one-line errors
    code, _, err = run_import("seg.nii.gz", "c2", "liver=1")
    _assert_one_line_error(code, err, "[2]", "not declared")
    # labels 3 mm off the image grid are resampled onto it (nearest neighbour) with a note
    code, out, err = run_import("seg2.nii.gz", "c3", "liver=1", "tumor=2")
    assert code == 0, err
    assert "resampled" in out + err
    # labels that do not overlap the image at all: one line
    code, _, err = run_import("seg3.nii.gz", "c5", "liver=1", "tumor=2")
    _assert_one_line_error(code, err, "overlap")
    code, _, err = run_import("seg.nii.gz", "c4", "liver")
    _assert_one_line_error(code, err, "NAME=VALUE")


def test_bad_dicom_through_the_cli(tmp_path, capsys):
    """The issue's error cases, as a user meets them: one line, exit code 2."""
    from ioplan.imaging import write_dicom_series

    g = Grid((5, 4, 4), (2.0, 1.0, 1.0))
    seg = np.ones(g.shape, np.uint8)
    write_nifti(Volume(seg, g), tmp_path / "seg.nii.gz")
    series = write_dicom_series(Volume(np.zeros(g.shape, np.int16), g), tmp_path / "dicom")
    (series / "IM00003.dcm").unlink()  # a slice missing in the middle
    not_dicom = tmp_path / "notes.dcm"
    not_dicom.write_text("this is not DICOM")
    cases = [(series, ["missing"]), (not_dicom, ["not a DICOM image file"])]
    for image, fragments in cases:
        code, _, err = _run(
            capsys,
            "import-case",
            "--image",
            str(image),
            "--labels",
            str(tmp_path / "seg.nii.gz"),
            "--label",
            "liver=1",
            "--out",
            str(tmp_path / "out"),
        )
        _assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "out").exists()


def test_user_text_is_printed_verbatim(tmp_path, capsys):
    """Rich markup in a path or a case name must be printed as typed, not interpreted."""
    out = tmp_path / "q[x]"
    code, stdout, err = _run(capsys, "phantom", "--out", str(out), "--spacing-mm", "4", "--quiet")
    assert code == 0, err
    assert "q[x]" in stdout
    text = (out / "case.toml").read_text().replace('name = "phantom-seed0"', 'name = "a[/b]"')
    (out / "case.toml").write_text(text + "\n[source.extra]\nwhen = 2026-11-21\n")
    code, stdout, err = _run(capsys, "info", str(out))
    assert code == 0, err
    assert "a[/b]" in stdout
    code, stdout, err = _run(capsys, "info", str(out), "--json")
    assert code == 0, err
    assert json.loads(stdout)["source"]["extra"]["when"] == "2026-11-21"  # a TOML date
