"""``ioplan phantom``, ``info`` and ``import-case``: cheap refusals first, ranges, names,
corrupt files, whole-folder writes, and property-based tests over the numeric options.

The refusals must come before any work: the phantom generator is replaced by a stub that
fails the test if it is called, so a check that comes too late is caught without timing.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import assert_one_line_error, run_cli
from ioplan import resources
from ioplan.anatomy import (
    DIAMETER_RANGE_MM,
    IRREGULARITY_RANGE,
    SEED_RANGE,
    SPACING_RANGE_MM,
    Label,
    _phantom_case,
    check_case_name,
    load_case,
    save_case,
)
from ioplan.imaging import Grid, Volume, write_nifti

#: capsys and the case folders are reset by each example itself (readouterr, new folders)
_FIXTURES = [HealthCheck.function_scoped_fixture]


def _no_phantom(*_a, **_k):
    raise AssertionError("the phantom generator started: a cheap check came too late")


@pytest.fixture
def no_generation(monkeypatch):
    monkeypatch.setattr(_phantom_case, "generate_phantom", _no_phantom)


# -- phantom ------------------------------------------------------------------
def test_unwritable_output_is_refused_before_the_phantom(tmp_path, capsys, no_generation):
    """Defect: an output folder that cannot be written was found after the whole phantom."""
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(capsys, "phantom", "--out", tmp_path / "afile" / "case", "-q")
    assert_one_line_error(code, err, "cannot write", "afile")


def test_existing_output_is_refused_before_the_phantom(tmp_path, capsys, no_generation):
    out = tmp_path / "case"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    code, _, err = run_cli(capsys, "phantom", "--out", out, "-q")
    assert_one_line_error(code, err, "--overwrite")
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--spacing-mm", "0.1"], ["--spacing-mm", "0.5-5", "0.1"]),
        (["--spacing-mm", "nan"], ["--spacing-mm", "nan"]),
        (["--spacing-mm", "inf"], ["--spacing-mm", "inf"]),
        (["--tumor-diameter-mm", "0"], ["--tumor-diameter-mm", "3-120"]),
        (["--tumor-diameter-mm", "nan"], ["--tumor-diameter-mm", "nan"]),
        (["--tumor-diameter-mm", "6", "--spacing-mm", "4"], ["two voxels", "--spacing-mm"]),
        (["--irregularity", "-0.1"], ["--irregularity", "0-0.5", "-0.1"]),
        (["--irregularity", "nan"], ["--irregularity", "nan"]),
        (["--seed", "-1"], ["--seed", "0-4294967295", "-1"]),
        (["--seed", str(2**32)], ["--seed", str(2**32)]),
        (["--histology", "banana"], ["--histology", "banana"]),
        (["--tumor-centre-mm", "1,2,nan"], ["--tumor-centre-mm"]),
        (["--tumor-diameter-mm", "20"] * 5, ["--tumor-centre-mm", "5 tumours"]),
        (
            [
                "--tumor-diameter-mm",
                "20",
                "--tumor-centre-mm",
                "1,2,3",
                "--tumor-centre-mm",
                "4,5,6",
            ],
            ["one --tumor-centre-mm per --tumor-diameter-mm"],
        ),
    ],
)
def test_out_of_range_options_are_refused_before_the_phantom(
    tmp_path, capsys, no_generation, args, fragments
):
    code, _, err = run_cli(capsys, "phantom", "--out", tmp_path / "c", "-q", *args)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "c").exists()


def test_a_grid_too_large_for_memory_is_refused_before_allocating(
    tmp_path, capsys, no_generation, monkeypatch
):
    """Defect: no memory estimate before the grid. At 0.5 mm the phantom has
    360 x 520 x 680 = 127 million voxels (> 10 GiB at ~100 bytes each); 1 GiB is too little."""
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 1024**3)
    code, _, err = run_cli(capsys, "phantom", "--out", tmp_path / "c", "--spacing-mm", "0.5")
    assert_one_line_error(code, err, "GiB", "--spacing-mm")
    assert not (tmp_path / "c").exists()


def test_help_states_the_ranges_the_library_enforces(capsys):
    """The help text is written out (no heavy import for --help): it must match the library."""
    code, out, _ = run_cli(capsys, "phantom", "--help")
    assert code == 0
    text = " ".join(out.replace("│", " ").split())
    assert f"{SPACING_RANGE_MM[0]:g}-{SPACING_RANGE_MM[1]:g}" in text
    assert f"{DIAMETER_RANGE_MM[0]:g}-{DIAMETER_RANGE_MM[1]:g}" in text
    assert f"{IRREGULARITY_RANGE[0]:g} (sphere) to {IRREGULARITY_RANGE[1]:g}" in text
    assert f"{SEED_RANGE[0]}-{SEED_RANGE[1]}" in text


def test_interrupted_save_leaves_nothing(tmp_path, small_case, monkeypatch):
    """An interruption while writing leaves neither the folder nor a hidden partial one."""
    from ioplan.anatomy import _case

    calls = {"n": 0}
    real = _case.write_image

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(_case, "write_image", failing)
    with pytest.raises(KeyboardInterrupt):
        save_case(small_case, tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_overwrite_leaves_no_case_toml_beside_mixed_files(
    tmp_path, small_case, monkeypatch
):
    """Over an existing case, case.toml goes first and comes back last."""
    from ioplan.anatomy import _case

    save_case(small_case, tmp_path / "c")
    real_replace = _case.os.replace

    def failing_replace(src, dst):
        if Path(dst).name == "labels.nii.gz":
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(_case.os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        save_case(small_case, tmp_path / "c", overwrite=True)
    assert not (tmp_path / "c" / "case.toml").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no partial sibling left


def test_overwrite_keeps_the_users_other_files(tmp_path, capsys):
    out = tmp_path / "c"
    code, _, err = run_cli(capsys, "phantom", "--out", out, "--spacing-mm", "5", "-q")
    assert code == 0, err
    (out / "notes.txt").write_text("mine")
    code, _, err = run_cli(
        capsys, "phantom", "--out", out, "--spacing-mm", "5", "--seed", "2", "-q", "--overwrite"
    )
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine"
    assert load_case(out).source["seed"] == 2


_SPACING_OK = st.floats(4.0, 5.0)
_ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    spacing=st.one_of(_SPACING_OK, _ANY_FLOAT.filter(lambda v: not 0.5 <= v <= 5.0)),
    diameter=st.one_of(st.floats(10.0, 40.0), _ANY_FLOAT),
    irregularity=st.one_of(st.floats(0.0, 0.5), _ANY_FLOAT),
    seed=st.one_of(st.integers(0, 50), st.integers(-(2**40), 2**40)),
)
def test_phantom_numeric_options_property(capsys, spacing, diameter, irregularity, seed):
    """Any numbers: either a case exactly as asked, or one line naming the first bad option.

    The reference is the documented ranges, applied here independently: spacing 0.5-5 mm,
    diameter 3-120 mm and at least two voxels, irregularity 0-0.5, seed 0-2**32-1. Valid
    spacings are drawn at 4-5 mm only, to keep each generation under a second.
    """
    ok = (
        math.isfinite(spacing)
        and 0.5 <= spacing <= 5.0
        and math.isfinite(diameter)
        and 3.0 <= diameter <= 120.0
        and diameter >= 2 * spacing
        and math.isfinite(irregularity)
        and 0.0 <= irregularity <= 0.5
        and 0 <= seed <= 2**32 - 1
    )
    out = Path(tempfile.mkdtemp()) / "c"
    code, _, err = run_cli(
        capsys, "phantom", "--out", out, "-q", "--spacing-mm", repr(spacing),
        "--tumor-diameter-mm", repr(diameter), "--irregularity", repr(irregularity),
        "--seed", seed,
    )  # fmt: skip
    if not ok:
        assert_one_line_error(code, err)
        assert re.search(r"--(spacing-mm|tumor-diameter-mm|irregularity|seed)", err), err
        assert not out.exists()
        return
    assert code == 0, err
    case = load_case(out)
    assert case.image.grid.spacing_mm == pytest.approx((spacing,) * 3)
    assert case.source["seed"] == seed
    assert case.tumors[0]["diameter_mm"] == diameter
    assert np.any(case.labels.array == Label.TUMOR)


# -- import-case ----------------------------------------------------------------
@pytest.fixture
def images(tmp_path):
    """A 6 x 6 x 6 image, and a segmentation with liver = 1 and tumour = 2."""
    g = Grid((6, 6, 6), (2.0, 2.0, 2.0))
    seg = np.zeros(g.shape, np.uint8)
    seg[1:5, 1:5, 1:5] = 1
    seg[2:4, 2:4, 2:4] = 2
    ct = np.where(seg == 0, -1000, 40).astype(np.int16)  # air around (a CT in HU)
    write_nifti(Volume(ct, g), tmp_path / "ct.nii.gz")
    write_nifti(Volume(seg, g), tmp_path / "seg.nii.gz")
    return tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz"


def _import(capsys, images, out, *extra):
    ct, seg = images
    return run_cli(capsys, "import-case", "--image", ct, "--labels", seg, "--out", out, *extra)


def test_import_case_writes_a_case(tmp_path, capsys, images):
    code, _, err = _import(
        capsys, images, tmp_path / "c", "--label", "liver=1", "--label", "tumor=2",
        "--name", "liver-017",
    )  # fmt: skip
    assert code == 0, err
    case = load_case(tmp_path / "c")
    assert case.name == "liver-017"
    # hand count: 4^3 liver block minus the 2^3 tumour
    assert np.count_nonzero(case.labels.array == Label.LIVER) == 64 - 8
    assert np.count_nonzero(case.labels.array == Label.TUMOR) == 8


def test_import_case_refuses_an_mr_read_as_ct_and_labels_off_the_anatomy(tmp_path, capsys):
    """An MR imported with the default --modality CT was read as HU (2.3 L of "bone" from
    bright MR signal); labels placed on other slices put "lung" on soft tissue (+1 HU)."""
    g = Grid((8, 12, 12), (3.0, 3.0, 3.0))
    seg = np.zeros(g.shape, np.uint8)
    seg[1:7, 2:10, 2:6] = 1  # liver
    seg[1:7, 2:10, 7:11] = 2  # "lung"
    mr = np.where(seg == 0, 5.0, 300.0).astype(np.float32)  # MR signal: no negative values
    write_nifti(Volume(mr, g), tmp_path / "mr.nii.gz")
    write_nifti(Volume(seg, g), tmp_path / "seg.nii.gz")
    args = ("import-case", "--image", tmp_path / "mr.nii.gz", "--labels", tmp_path / "seg.nii.gz",
            "--label", "liver=1", "--label", "lung=2", "--no-auto-labels")  # fmt: skip
    code, _, err = run_cli(capsys, *args, "--out", tmp_path / "a")
    assert_one_line_error(code, err, "not a CT", "--modality MR")
    assert not (tmp_path / "a").exists()
    code, _, err = run_cli(capsys, *args, "--out", tmp_path / "b", "--modality", "MR")
    assert code == 0, err
    # a CT (air around) whose lung label lies on soft tissue (40 HU)
    ct = np.where(seg == 0, -1000, 40).astype(np.int16)
    write_nifti(Volume(ct, g), tmp_path / "ct.nii.gz")
    code, _, err = run_cli(capsys, "import-case", "--image", tmp_path / "ct.nii.gz", *args[3:],
                           "--out", tmp_path / "c")  # fmt: skip
    assert_one_line_error(code, err, "lung label's median is 40 HU", "aerated")
    ct[seg == 2] = -850  # aerated lung (-850 to -910 HU in inspiration)
    write_nifti(Volume(ct, g), tmp_path / "ct.nii.gz", overwrite=True)
    code, _, err = run_cli(capsys, "import-case", "--image", tmp_path / "ct.nii.gz", *args[3:],
                           "--out", tmp_path / "c")  # fmt: skip
    assert code == 0, err
    # a liver label on fat (-120 HU, inside the adipose window -190 to -30 HU) or on bone
    # (700 HU, cortical bone 700-3000 HU): outside any liver's range (severe steatosis about
    # -40 HU, Kodama et al. AJR 2007; enhanced or iron-loaded liver up to about 140 HU)
    for hu, out in ((-120, "d"), (700, "e")):
        ct[seg == 1] = hu
        write_nifti(Volume(ct, g), tmp_path / "ct.nii.gz", overwrite=True)
        code, _, err = run_cli(capsys, "import-case", "--image", tmp_path / "ct.nii.gz",
                               *args[3:], "--out", tmp_path / out)  # fmt: skip
        assert_one_line_error(code, err, f"liver label's median is {hu} HU", "not liver")
        assert not (tmp_path / out).exists()
    ct[seg == 1] = -30  # a fatty liver (severe steatosis) is still a liver
    write_nifti(Volume(ct, g), tmp_path / "ct.nii.gz", overwrite=True)
    code, _, err = run_cli(capsys, "import-case", "--image", tmp_path / "ct.nii.gz", *args[3:],
                           "--out", tmp_path / "f")  # fmt: skip
    assert code == 0, err


@pytest.mark.parametrize(
    "name",
    ["John Smith", "MRN 1234567", "MRN1234567", "1961-04-12", "12.04.1961", "19610412",
     "Smith^John", "John_Smith", "Smith, John", "dob-1961", "", "-case", "x" * 65],
)  # fmt: skip
def test_import_case_refuses_names_that_look_like_patient_identifiers(
    tmp_path, capsys, images, name
):
    """Defect: --name accepted a patient's name and record number. The message names
    --name and does not repeat the value (it may be an identifier)."""
    code, _, err = _import(capsys, images, tmp_path / "c", "--label", "liver=1", "--name", name)
    assert_one_line_error(code, err, "--name", "pseudonymous")
    if len(name) > 3:
        assert name not in err
    assert not (tmp_path / "c").exists()


@given(name=st.text(max_size=70))
@example(name="0\n")  # session 54: "$" matched before a trailing newline, which was accepted
@settings(max_examples=20, deadline=None)
def test_case_name_rule_property(name):
    """Accepted names satisfy the registry's key rule and hold no six-digit run."""
    try:
        check_case_name(name)
    except ValueError as exc:
        assert "--name" in str(exc)
        return
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name)
    assert not re.search(r"\d{6}", name)


def test_import_case_unwritable_output_is_refused_before_reading(tmp_path, capsys):
    """The images do not exist: the output error comes first, so it was checked first."""
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(
        capsys, "import-case", "--image", tmp_path / "none.nii.gz", "--labels",
        tmp_path / "none2.nii.gz", "--label", "liver=1", "--out", tmp_path / "afile" / "c",
    )  # fmt: skip
    assert_one_line_error(code, err, "cannot write", "afile")


def test_import_case_without_a_liver_is_refused(tmp_path, capsys, images):
    """Defect: labels with no liver, or an empty liver mask, were accepted."""
    code, _, err = _import(capsys, images, tmp_path / "c", "--label", "tumor=2")
    assert_one_line_error(code, err, "liver", "--label")
    # liver declared as 3, but no voxel holds 3 (the file's values 1 and 2 are declared too)
    code, _, err = _import(
        capsys, images, tmp_path / "c", "--label", "liver=3", "--label", "tumor=2",
        "--label", "spleen=1",
    )  # fmt: skip
    assert_one_line_error(code, err, "liver mask is empty", "3")
    assert not (tmp_path / "c").exists()


@given(value=st.integers(-(2**40), 2**40))
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_import_case_label_value_property(capsys, images, value):
    """Any integer VALUE in --label liver=VALUE --label tumor=2: the case is made when VALUE
    is 1, the liver's value in the file; otherwise one line (out of range, or undeclared 1)."""
    out = Path(tempfile.mkdtemp()) / "c"
    code, _, err = _import(capsys, images, out, "--label", f"liver={value}", "--label", "tumor=2")
    if value == 1:
        assert code == 0, err
        assert np.count_nonzero(load_case(out).labels.array == Label.LIVER) == 56
    else:
        assert_one_line_error(code, err)
        assert not out.exists()


def test_import_case_on_another_grid_and_corrupt_labels(tmp_path, capsys, images):
    ct, _ = images
    # one column more in x, one row fewer in y: the image is no crop of this labelled grid
    # (a crop, the image inside the labels' grid, is imported: test_segmentations)
    other = Grid((6, 5, 7), (2.0, 2.0, 2.0))
    write_nifti(Volume(np.ones(other.shape, np.uint8), other), tmp_path / "other.nii.gz")
    code, _, err = run_cli(
        capsys, "import-case", "--image", ct, "--labels", tmp_path / "other.nii.gz",
        "--label", "liver=1", "--out", tmp_path / "c",
    )  # fmt: skip
    assert_one_line_error(code, err, "grid")
    assert not (tmp_path / "c").exists()


# -- info on corrupt cases --------------------------------------------------------
@pytest.fixture
def case_dir(tmp_path, images):
    ct, seg = images
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "image.nii.gz").write_bytes(ct.read_bytes())
    (folder / "labels.nii.gz").write_bytes(seg.read_bytes())
    (folder / "case.toml").write_text(
        'format = "ioplan-case"\nformat_version = 1\nimage = "image.nii.gz"\n'
        'labels = "labels.nii.gz"\n[label_values]\nliver = 1\ntumor = 2\n'
    )
    return folder


def test_info_reads_the_hand_made_case(capsys, case_dir):
    code, out, err = run_cli(capsys, "info", case_dir, "--json")
    assert code == 0, err
    assert '"tumor_components": 1' in out


@given(garbage=st.binary(max_size=300))
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_info_on_garbage_case_toml_is_one_line(capsys, case_dir, garbage):
    (case_dir / "case.toml").write_bytes(garbage)
    code, _, err = run_cli(capsys, "info", case_dir)
    assert_one_line_error(code, err, "case.toml")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('format = "ioplan-case"\nformat_version = 99\n', "format_version"),
        ('format = "ioplan-case"\nformat_version = 1\nimage = 3\n', "image"),
        (
            'format = "ioplan-case"\nformat_version = 1\nimage = "image.nii.gz"\n'
            'labels = "labels.nii.gz"\n[label_values]\nliver = 70000\n',
            "0-65535",
        ),
        (
            'format = "ioplan-case"\nformat_version = 1\nimage = "image.nii.gz"\n'
            'labels = "labels.nii.gz"\n[label_values]\nbanana = 1\n',
            "banana",
        ),
    ],
)
def test_info_on_malformed_case_toml(capsys, case_dir, text, fragment):
    (case_dir / "case.toml").write_text(text)
    code, _, err = run_cli(capsys, "info", case_dir)
    assert_one_line_error(code, err, fragment)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a nifti at all",
        bytes(348),
        # a gzip stream that breaks off or is corrupt (zlib.error, EOFError were let through)
        pytest.param(b"\x1f\x8b\x08\x00garbage", id="gzip-cut"),
        pytest.param(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4, id="gzip-bad"),
    ],
)
def test_info_on_corrupt_labels_nifti(capsys, case_dir, content):
    (case_dir / "labels.nii.gz").write_bytes(content)
    code, _, err = run_cli(capsys, "info", case_dir)
    assert_one_line_error(code, err, "labels.nii.gz")


def test_info_on_image_and_labels_of_different_grids(capsys, case_dir):
    g = Grid((6, 6, 6), (2.0, 2.0, 2.5))
    write_nifti(Volume(np.ones(g.shape, np.uint8), g), case_dir / "labels.nii.gz", overwrite=True)
    code, _, err = run_cli(capsys, "info", case_dir)
    assert_one_line_error(code, err, "label map", "spacing")


def test_info_counts_match_nibabel(capsys, case_dir):
    """The liver volume of info --json against an independent count from the file."""
    import json

    code, out, err = run_cli(capsys, "info", case_dir, "--json")
    assert code == 0, err
    doc = json.loads(out)
    img = nib.load(case_dir / "labels.nii.gz")
    n = int(np.count_nonzero(np.asanyarray(img.dataobj) == 1))
    liver = next(d for d in doc["labels"] if d["label"] == "liver")
    assert liver["voxels"] == n and liver["volume_ml"] == pytest.approx(n * 8 / 1000)
