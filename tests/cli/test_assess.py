"""``ioplan margin`` and ``ioplan response`` under careless and hostile input (issue 15).

Every bad input ends in exit code 2 and one line ``error: ...`` naming the option or file;
corrupt files of every format the commands read; property-based tests of the numeric
options on tiny (20^3 voxel) masks so that they stay fast.
"""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_one_line_error, run_cli
from ioplan.imaging import Grid, Volume, write_dicom_series, write_image, write_nifti

G = Grid((20, 20, 20), (1.0, 1.0, 1.0), (-9.5, -9.5, -9.5))
_R = np.linalg.norm(np.indices(G.shape) - 9.5, axis=0)  # mm from the grid's centre
#: An MR-like magnitude image: thousands of distinct values, none negative.
_MR = (1000 + 800 * np.cos(_R / 3) + np.random.default_rng(0).normal(0, 50, G.shape)).astype(
    np.uint16
)


def _ball(radius_mm: float, value: int = 1, dtype=np.uint8) -> np.ndarray:
    return ((_R <= radius_mm) * value).astype(dtype)


@pytest.fixture(scope="module")
def masks(tmp_path_factory):
    """Tumour ball r 3 mm, zone ball r 7 mm (margin 4 mm), liver r 9 mm, a 3-label map."""
    d = tmp_path_factory.mktemp("masks")
    write_nifti(Volume(_ball(3), G), d / "t.nii.gz")
    write_nifti(Volume(_ball(7), G), d / "z.nii.gz")
    write_nifti(Volume(_ball(9), G), d / "liver.nii.gz")
    write_nifti(Volume(np.zeros(G.shape, np.uint8), G), d / "empty.nii.gz")
    labels = _ball(9, 1) + _ball(7, 1) + _ball(3, 1)  # 3 inside, 2 shell, 1 outer shell
    write_nifti(Volume(labels.astype(np.uint8), G), d / "labels.nii.gz")
    # response: a 16 mm ball at baseline, 12 mm at follow-up
    write_nifti(Volume(_ball(8), G), d / "b.nii.gz")
    write_nifti(Volume(_ball(6), G), d / "f.nii.gz")
    return d


def _margin(capsys, d, *args):
    return run_cli(capsys, "margin", "--tumor", d / "t.nii.gz", "--zone", d / "z.nii.gz", *args)


# -- defects of issue 15, each reproduced --------------------------------------


def test_zero_voxel_spacing_is_refused_not_read_as_1_mm(capsys, masks, tmp_path):
    """nibabel turned pixdim 0 into 1 mm; the margin came out as nonsense (-34.7 mm)."""
    img = bytearray((masks / "t.nii.gz").read_bytes())
    raw = bytearray(gzip.decompress(bytes(img)))
    struct.pack_into("<f", raw, 76 + 4 * 3, 0.0)  # pixdim[3]
    struct.pack_into("<h", raw, 254, 0)  # sform_code 0: the qform (pixdim) is the geometry
    (tmp_path / "t0.nii").write_bytes(bytes(raw))
    code, out, err = run_cli(
        capsys, "margin", "--tumor", tmp_path / "t0.nii", "--zone", masks / "z.nii.gz"
    )
    assert_one_line_error(code, err, "t0.nii", "pixdim", "must be > 0 mm")
    assert out == ""


@pytest.mark.parametrize(
    "image, fragment",
    [
        (((_R * 100) - 1000).astype(np.int16), "negative"),  # CT in HU: -1000 to ~600
        (_MR, "distinct values"),  # MR-like magnitudes, no negatives
        (((_R * 100) - 1000).astype(np.float32), "outside 0-1"),  # CT as floats
    ],
)
def test_an_image_given_as_a_response_mask_is_refused(capsys, masks, tmp_path, image, fragment):
    """A CT image was accepted as a mask: every non-zero voxel became 'tumour'."""
    write_nifti(Volume(image, G), tmp_path / "ct.nii.gz")
    code, _, err = run_cli(
        capsys, "response", "--baseline", tmp_path / "ct.nii.gz", "--followup", masks / "f.nii.gz"
    )
    assert_one_line_error(code, err, "--baseline", fragment, "not a mask", "--label")


def test_an_image_given_as_the_margin_tumour_is_refused(capsys, masks, tmp_path):
    write_nifti(Volume(_MR, G), tmp_path / "mr.nii.gz")
    code, _, err = run_cli(
        capsys, "margin", "--tumor", tmp_path / "mr.nii.gz", "--zone", masks / "z.nii.gz"
    )
    assert_one_line_error(code, err, "--tumor", "not a mask", "--tumor-label")


@pytest.mark.parametrize("stages", ["elastic", "rigid,affine,elastix", ",", "rigid;affine"])
def test_an_unknown_registration_stage_is_refused_before_any_file_is_read(
    capsys, masks, tmp_path, stages
):
    """Unknown stages were silently ignored when no images were given."""
    missing = tmp_path / "missing.nii.gz"  # the stage must be refused before this is read
    code, _, err = run_cli(
        capsys, "margin", "--tumor", missing, "--zone", missing, "--registration", stages
    )
    assert_one_line_error(code, err, "--registration", "rigid, affine, bspline")


def test_an_empty_liver_mask_is_refused(capsys, masks):
    code, _, err = _margin(capsys, masks, "--liver", masks / "empty.nii.gz")
    assert_one_line_error(code, err, "liver mask (--liver) is empty")


def test_masks_whose_images_do_not_overlap_are_refused(capsys, masks, tmp_path):
    """Masks of two scans 500 mm apart (margin -79 mm without a word before)."""
    far = Grid(G.shape, G.spacing_mm, (490.5, -9.5, -9.5))
    write_nifti(Volume(_ball(7), far), tmp_path / "zfar.nii.gz")
    code, _, err = run_cli(
        capsys, "margin", "--tumor", masks / "t.nii.gz", "--zone", tmp_path / "zfar.nii.gz"
    )
    assert_one_line_error(code, err, "do not overlap in space", "--pre-image")


def test_a_tumour_entirely_outside_the_zone_is_said(capsys, tmp_path):
    """Same grid, tumour ball (r 3 at x=-5) beside the zone ball (r 3 at x=+5): a note."""
    x = np.indices(G.shape)[2] - 9.5
    yz = np.linalg.norm(np.indices(G.shape)[:2] - 9.5, axis=0)
    write_nifti(Volume((np.hypot(x + 5, yz) <= 3).astype(np.uint8), G), tmp_path / "t.nii.gz")
    write_nifti(Volume((np.hypot(x - 5, yz) <= 3).astype(np.uint8), G), tmp_path / "z.nii.gz")
    code, out, err = run_cli(
        capsys, "margin", "--tumor", tmp_path / "t.nii.gz", "--zone", tmp_path / "z.nii.gz"
    )
    assert code == 0, err
    assert "note: the tumour lies entirely outside the ablation zone" in out
    # the farthest tumour point (x = -8) from the zone's edge (x = 2): 10 mm outside; the
    # bounds of the analytic tests at 1 mm voxels: 0.45 mm below, 0.2 mm above the truth
    got = float(out.split("minimal ablative margin ")[1].split()[0])
    assert -10.45 <= got <= -9.8


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("--tumor-label", "0"), ("--tumor-label", ">= 1", "got 0")),
        (("--tumor-label", "-3"), ("--tumor-label", "got -3")),
        (("--zone-label", "9"), ("--zone-label", "label 9", "labels present: 1")),
        (("--liver-label", "2"), ("--liver-label", "--liver")),
        (("--capsule-exclusion-mm", "2"), ("--capsule-exclusion-mm", "--liver")),
        (("--landmarks-pre", "a.csv"), ("--landmarks-pre", "--landmarks-post")),
    ],
)
def test_option_errors_name_the_option(capsys, masks, args, fragments):
    code, _, err = _margin(capsys, masks, *args)
    assert_one_line_error(code, err, *fragments)


def test_a_label_of_a_label_map_is_selected(capsys, masks):
    """Label 3 of the map is the r 3 ball: the same margin as the 0/1 tumour mask (4 mm)."""
    ref = json.loads(_margin(capsys, masks, "--json")[1])
    code, out, err = run_cli(
        capsys, "margin", "--tumor", masks / "labels.nii.gz", "--tumor-label", "3",
        "--zone", masks / "z.nii.gz", "--json",
    )  # fmt: skip
    assert code == 0, err
    # the same voxels, so the same surfaces and the same number to rounding
    assert json.loads(out)["minimal_margin_mm"] == pytest.approx(ref["minimal_margin_mm"])
    assert ref["minimal_margin_mm"] == pytest.approx(4.0, abs=0.45)  # 1 mm voxels bound


def test_an_unwritable_output_folder_is_refused_before_the_work(capsys, masks, tmp_path):
    (tmp_path / "file").write_text("x")
    code, out, err = _margin(capsys, masks, "--out", tmp_path / "file" / "m")
    assert_one_line_error(code, err, "cannot write", "file")
    assert out == "" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_margin_outputs_appear_whole_and_respect_overwrite(capsys, masks, tmp_path):
    code, _, err = _margin(capsys, masks, "--out", tmp_path / "m")
    assert code == 0, err
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert "margin.json" in files and "report.html" in files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left
    (tmp_path / "m" / "mine.txt").write_text("keep")
    code, _, err = _margin(capsys, masks, "--out", tmp_path / "m")
    assert_one_line_error(code, err, "--overwrite")
    code, _, err = _margin(capsys, masks, "--out", tmp_path / "m", "--overwrite")
    assert code == 0, err
    assert (tmp_path / "m" / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.mark.parametrize("others", [
    {"biopsy.json": '{"target": 1}', "report.html": "<p>the biopsy's report</p>"},
    {"case.toml": "name = 'c'\n", "margin.json": '{"my": "notes"}'},
])  # fmt: skip
def test_overwrite_does_not_replace_another_commands_files(capsys, masks, tmp_path, others):
    """A careless --overwrite into a biopsy's folder (whose report.html margin would
    replace), or into a case folder holding the user's own margin.json: refused, each
    file as it was (sweep of session 51)."""
    out = tmp_path / "other"
    out.mkdir()
    for name, text in others.items():
        (out / name).write_text(text)
    code, _, err = _margin(capsys, masks, "--out", out, "--overwrite")
    assert_one_line_error(code, err, "not an earlier output of `ioplan margin`")
    assert {p.name: p.read_text() for p in out.iterdir()} == others


# -- corrupt files, one per format the commands read ----------------------------


def _corrupt(tmp_path, kind: str):
    """A corrupt file (or folder) of ``kind``; returns its path."""
    vol = Volume(_ball(3), G)
    if kind == "nii-truncated":
        p = write_nifti(vol, tmp_path / "x.nii")
        p.write_bytes(p.read_bytes()[:400])  # header (348 bytes) and a few voxels
    elif kind == "nii-garbage":
        p = tmp_path / "x.nii"
        p.write_bytes(b"\x00garbage" * 100)
    elif kind == "niigz-truncated":
        p = write_nifti(vol, tmp_path / "x.nii.gz")
        p.write_bytes(p.read_bytes()[:200])
    elif kind == "niigz-garbage":
        p = tmp_path / "x.nii.gz"
        p.write_bytes(gzip.compress(b"not a nifti" * 50))
    elif kind == "nrrd-truncated":
        p = write_image(vol, tmp_path / "x.nrrd")
        p.write_bytes(p.read_bytes()[:-40])
    elif kind == "nrrd-garbage":
        p = tmp_path / "x.nrrd"
        p.write_text("NRRD0004\ntype: what\ndimension: -3\n\n")
    elif kind == "mha-truncated":
        p = write_image(vol, tmp_path / "x.mha")
        p.write_bytes(p.read_bytes()[:-40])
    elif kind == "mha-garbage":
        p = tmp_path / "x.mha"
        p.write_bytes(b"\xff\xfe binary nonsense \x00" * 20)
    elif kind == "dicom-file":
        p = tmp_path / "x.dcm"
        p.write_bytes(b"DICM" + b"\x00" * 50)
    elif kind == "dicom-folder":
        p = write_dicom_series(vol, tmp_path / "dcm")
        first = sorted(p.iterdir())[0]
        first.write_bytes(first.read_bytes()[:300])  # one slice cut short
    else:  # pragma: no cover - the parametrisation lists every kind
        raise AssertionError(kind)
    return p


CORRUPT = [
    "nii-truncated", "nii-garbage", "niigz-truncated", "niigz-garbage", "nrrd-truncated",
    "nrrd-garbage", "mha-truncated", "mha-garbage", "dicom-file", "dicom-folder",
]  # fmt: skip


@pytest.mark.parametrize("kind", CORRUPT)
def test_a_corrupt_image_is_one_line_through_margin(capfd, masks, tmp_path, kind):
    """capfd: what C++ readers print on file descriptor 2 counts too (MetaIO did)."""
    bad = _corrupt(tmp_path, kind)
    code, out, err = run_cli(capfd, "margin", "--tumor", bad, "--zone", masks / "z.nii.gz")
    assert_one_line_error(code, err, bad.name)
    assert out == ""


@pytest.mark.parametrize("kind", ["nii-truncated", "niigz-garbage", "nrrd-garbage", "dicom-file"])
def test_a_corrupt_image_is_one_line_through_response(capsys, masks, tmp_path, kind):
    bad = _corrupt(tmp_path, kind)
    code, _, err = run_cli(capsys, "response", "--baseline", masks / "b.nii.gz", "--followup", bad)
    assert_one_line_error(code, err, bad.name)


@pytest.mark.parametrize(
    "name, text",
    [
        ("p.mrk.json", "{ not json"),
        ("p.mrk.json", '{"markups": [{"controlPoints": [{"position": "abc"}]}]}'),
        ("p.fcsv", "# CoordinateSystem = LPS\nF-1,ten,20,30\n"),
        ("p.csv", "1,2\n3,4,5\n"),
        ("p.csv", "1,2,nan\n3,4,5\n5,6,7\n"),
        ("p.csv", b"\xff\xfe\x00 binary"),
    ],
)
def test_corrupt_landmark_files_are_one_line(capsys, masks, tmp_path, name, text):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    good = tmp_path / "good.csv"
    good.write_text("0,0,0\n10,0,0\n0,10,0\n0,0,10\n")
    code, _, err = _margin(capsys, masks, "--landmarks-pre", p, "--landmarks-post", good)
    assert_one_line_error(code, err)


@pytest.mark.parametrize("text", [
    "1,2,3\n1,2,3\n1,2,3\n",                 # one point three times
    "0,0,0\n10,0,0\n20,0,0\n",               # on one line
    "0,0,0\n10,0,0\n20,0,0\n30,0.2,0\n",    # 0.1 mm off the line: rotation undetermined
])  # fmt: skip
def test_degenerate_landmarks_are_refused_not_measured(capsys, masks, tmp_path, text):
    """Coincident or collinear landmarks leave the rotation about their line free; the
    margin came out as -168 mm (sweep of session 51). The same files shifted by a known
    rigid move of a triangle are measured (the margin of the unregistered pair: 4 mm)."""
    p = tmp_path / "p.csv"
    p.write_text(text)
    code, _, err = _margin(capsys, masks, "--landmarks-pre", p, "--landmarks-post", p)
    assert_one_line_error(code, err, "coincident or on one line")
    tri = tmp_path / "tri.csv"
    tri.write_text("0,0,0\n10,0,0\n0,10,0\n")
    code, out, err = _margin(capsys, masks, "--landmarks-pre", tri, "--landmarks-post", tri,
                             "--json")  # fmt: skip
    assert code == 0, err
    # identity registration: the 3 mm ball in the 7 mm ball, 4 mm apart (sub-voxel
    # surfaces of 1 mm voxels: within half a voxel)
    assert json.loads(out)["minimal_margin_mm"] == pytest.approx(4.0, abs=0.5)


def test_response_refuses_a_followup_in_another_frame_and_swapped_viable_masks(
    capsys, masks, tmp_path
):
    """Sweep of session 51: a follow-up whose image lies 1000 mm away was read as
    progression with a new lesion; a viable mask larger than the whole tumour passed."""
    far = Grid(G.shape, G.spacing_mm, (1000.0, -9.5, -9.5))
    write_nifti(Volume(_ball(6), far), tmp_path / "far.nii.gz")
    code, _, err = run_cli(capsys, "response", "--baseline", masks / "b.nii.gz",
                           "--followup", tmp_path / "far.nii.gz")  # fmt: skip
    assert_one_line_error(code, err, "does not overlap the baseline")
    # whole tumour r 6 mm at follow-up, "viable" r 8 mm (2.4x its volume): swapped
    code, _, err = run_cli(capsys, "response", "--baseline", masks / "b.nii.gz", "--followup",
                           masks / "f.nii.gz", "--viable-baseline", masks / "f.nii.gz",
                           "--viable-followup", masks / "b.nii.gz")  # fmt: skip
    assert_one_line_error(code, err, "viable tumour at follow-up 1", "larger than the whole")
    # viable inside the whole tumour at both times: measured
    code, out, err = run_cli(capsys, "response", "--baseline", masks / "b.nii.gz", "--followup",
                             masks / "f.nii.gz", "--viable-baseline", masks / "f.nii.gz",
                             "--viable-followup", masks / "t.nii.gz", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["followups"][0]["viable"]["sum_longest_diameter_mm"] > 0


# -- property-based: numeric options -------------------------------------------

_ANY_FLOAT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1.0, max_value=40.0),
)
_SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _ok_or_one_line(code, out, err):
    """Exit 0 with output, or a one-line error with exit 2; never anything else."""
    if code == 0:
        assert out.strip(), err
    else:
        assert_one_line_error(code, err)


@_SETTINGS
@given(margin=_ANY_FLOAT, capsule=_ANY_FLOAT, with_liver=st.booleans())
def test_margin_numeric_options(capsys, masks, margin, capsule, with_liver):
    liver = ("--liver", masks / "liver.nii.gz") if with_liver else ()
    code, out, err = _margin(
        capsys, masks, "--margin-mm", repr(margin), "--capsule-exclusion-mm", repr(capsule),
        *liver, "--json",
    )  # fmt: skip
    _ok_or_one_line(code, out, err)
    in_range = 0 <= margin <= 30 and 0 <= capsule <= 30 and (capsule == 0 or with_liver)
    if not in_range:
        assert code == 2
    if code == 0:
        doc = json.loads(out)
        # the 4 mm margin of the balls decides technical success (1 mm voxel bound 0.45 mm)
        if abs(margin - 4.0) > 0.5 and capsule == 0:
            assert doc["technical_success"] is (margin < 4.0)


@settings(_SETTINGS, max_examples=12)
@given(
    tumour=st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1), st.integers(-2, 5)),
    zone=st.one_of(st.none(), st.integers(-2, 5)),
)
def test_margin_label_options(capsys, masks, tumour, zone):
    args = ["margin", "--tumor", masks / "labels.nii.gz", "--zone", masks / "labels.nii.gz"]
    if tumour is not None:
        args += ["--tumor-label", str(tumour)]
    if zone is not None:
        args += ["--zone-label", str(zone)]
    code, out, err = run_cli(capsys, *args)
    _ok_or_one_line(code, out, err)
    if (tumour is not None and tumour not in (1, 2, 3)) or (zone is not None and zone < 1):
        assert code == 2


@settings(_SETTINGS, max_examples=12)
@given(
    label=st.one_of(st.none(), st.integers(-3, 4), st.integers(-(2**40), 2**40)),
    viable=st.one_of(st.none(), st.integers(-3, 4)),
)
def test_response_label_options(capsys, masks, label, viable):
    args = ["response", "--baseline", masks / "labels.nii.gz", "--followup", masks / "f.nii.gz"]
    if label is not None:
        args += ["--label", str(label)]
    if viable is not None:
        args += ["--viable-baseline", masks / "labels.nii.gz", "--viable-followup",
                 masks / "f.nii.gz", "--viable-label", str(viable)]  # fmt: skip
    code, out, err = run_cli(capsys, *args)
    _ok_or_one_line(code, out, err)
    if label is not None and label < 1:
        assert code == 2
