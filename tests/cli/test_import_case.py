"""``ioplan import-case`` with the segmentations people already have.

Real data (TotalSegmentator's example CT and MR with their labels) is read in place from
``../shared/data/real``; those tests skip with a message when it is absent. Expected
values are counted here with nibabel/numpy from the files, never taken from ioplan.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli, write_test_dicom_seg
from ioplan.anatomy import EXTRA_STAND_IN, Label, load_case, totalsegmentator_map
from ioplan.imaging import Grid, Volume, write_nifti

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "totalsegmentator"
needs_real = pytest.mark.skipif(
    not REAL.is_dir(), reason=f"real images not found at {REAL} (../shared absent)"
)


def _info(capsys, case):
    code, out, err = run_cli(capsys, "info", case, "--json")
    assert code == 0, err
    return json.loads(out)


def _voxel_count(path: Path, value: int) -> tuple[int, float]:
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    return int(np.count_nonzero(data == value)), float(np.prod(img.header.get_zooms()[:3]))


@needs_real
@pytest.mark.parametrize(
    ("image", "seg", "extra"),
    [
        ("example_ct_sm.nii.gz", "example_seg.nii.gz", ()),
        ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz", ("--modality", "MR")),
    ],
)
def test_totalsegmentator_real_case(tmp_path, capsys, image, seg, extra):
    """Every value named; the liver volume is the file's label-5 count x voxel volume; every
    labelled voxel is in an ioplan label or an extra class."""
    out = tmp_path / "case"
    code, stdout, err = run_cli(
        capsys, "import-case", "--image", REAL / image, "--labels", REAL / seg,
        "--label-map", "totalsegmentator", "--out", out, "--name", "ts-1", "--no-auto-labels",
        *extra,
    )  # fmt: skip
    assert code == 0, err
    assert "kept under their own names" in stdout
    info = _info(capsys, out)
    n_liver, voxel_mm3 = _voxel_count(REAL / seg, 5)
    liver = next(x for x in info["labels"] if x["label"] == "liver")
    assert liver["voxels"] == n_liver
    # exact up to float rounding of the spacing read back from the files
    assert liver["volume_ml"] == pytest.approx(n_liver * voxel_mm3 / 1000.0, rel=1e-6)
    data = np.asanyarray(nib.load(str(REAL / seg)).dataobj)
    total = sum(x["voxels"] for x in info["labels"]) + sum(
        x["voxels"] for x in info["extra_classes"]
    )
    assert total == int(np.count_nonzero(data))
    task = "total_mr" if extra else "total"
    assert info["source"]["label_map"]["task"] == task
    assert info["structures"]["liver"] == {"source": "labels", "classes": ["liver"]}
    assert all(x["role"] == "avoid" for x in info["extra_classes"])
    if not extra:
        # by default the body outline is found from the image: TotalSegmentator's deep
        # muscles are no outline (without it, a biopsy's "entry" lay inside the liver)
        code, stdout, err = run_cli(
            capsys, "import-case", "--image", REAL / image, "--labels", REAL / seg,
            "--label-map", "totalsegmentator", "--out", tmp_path / "auto",
        )  # fmt: skip
        assert code == 0, err
        assert "no body outline" in stdout
        assert any(x["label"] == "skin" for x in _info(capsys, tmp_path / "auto")["labels"])


@needs_real
def test_real_ct_merges_lobes_ribs_and_kidneys(tmp_path, capsys):
    """Merged classes: each ioplan label holds the sum of its TotalSegmentator classes
    (ids of class_map["total"]: lobes 10-14, kidneys 2-3, ribs 92-115 + 117)."""
    out = tmp_path / "case"
    code, _, err = run_cli(
        capsys, "import-case", "--image", REAL / "example_ct_sm.nii.gz", "--labels",
        REAL / "example_seg.nii.gz", "--label-map", "totalsegmentator", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    data = np.asanyarray(nib.load(str(REAL / "example_seg.nii.gz")).dataobj)
    case = load_case(out)
    lab = case.labels.array
    assert np.count_nonzero(lab == Label.LUNG) == np.isin(data, range(10, 15)).sum()
    assert np.count_nonzero(lab == Label.KIDNEY) == np.isin(data, [2, 3, 23, 24]).sum()
    assert np.count_nonzero(lab == Label.RIB) == np.isin(data, [*range(92, 116), 117]).sum()
    # pancreas has its own label (issue 21); classes with none are extra classes, each its own
    assert np.count_nonzero(lab == Label.PANCREAS) == (data == 7).sum()
    ids = {n: v for v, n in totalsegmentator_map("total").classes.items()}
    assert case.extra_classes
    for extra in case.extra_classes:
        n = np.count_nonzero(case.extra_labels.array == extra.value)
        assert n == (data == ids[extra.name]).sum(), extra.name
    assert np.all(lab[case.extra_mask()] == EXTRA_STAND_IN)


@needs_real
def test_real_ct_cropped_below_the_labelled_scan(tmp_path, capsys):
    """TotalSegmentator ran on the whole scan, the image given is a crop (its 5 lowest
    slices cut away, as a liver-only reconstruction): the liver and the other structures
    that go on below are kept inside the image, with a note (it was refused: "crop the
    labels to the image first"). Expected counts: the label file's, slices 5 on (nibabel)."""
    ct = nib.load(str(REAL / "example_ct_sm.nii.gz"))
    nib.save(ct.slicer[:, :, 5:], str(tmp_path / "crop.nii.gz"))
    out = tmp_path / "case"
    code, stdout, err = run_cli(
        capsys, "import-case", "--image", tmp_path / "crop.nii.gz", "--labels",
        REAL / "example_seg.nii.gz", "--label-map", "totalsegmentator", "--out", out,
        "--no-auto-labels",
    )  # fmt: skip
    assert code == 0, err
    data = np.asanyarray(nib.load(str(REAL / "example_seg.nii.gz")).dataobj)
    below = int(np.count_nonzero(data[:, :, :5]))
    assert f"{below} labelled voxels outside it were left out" in stdout
    case = load_case(out)
    assert np.count_nonzero(case.labels.array == Label.LIVER) == (data[:, :, 5:] == 5).sum()


# -- synthetic ----------------------------------------------------------------------
G = Grid((6, 8, 10), (2.0, 1.5, 1.0), (-5.0, 3.0, 40.0))


@pytest.fixture
def images(tmp_path):
    seg = np.zeros(G.shape, np.uint8)
    seg[1:5, 1:7, 1:9] = 5  # liver (TotalSegmentator "total" id 5): 4 * 6 * 8 = 192
    seg[2:4, 2:4, 2:4] = 71  # scapula_left: 8
    seg[5, 0:2, 0:3] = 92  # rib_left_1: 6
    ct = np.where(seg == 0, -1000, 40).astype(np.int16)  # air around (a CT in HU)
    write_nifti(Volume(ct, G), tmp_path / "ct.nii.gz")
    write_nifti(Volume(seg, G), tmp_path / "seg.nii.gz")
    return tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz", seg


def _import(capsys, ct, seg, out, *extra):
    return run_cli(capsys, "import-case", "--image", ct, "--labels", seg, "--out", out, *extra)


def test_extra_classes_round_trip_and_are_counted(tmp_path, capsys, images):
    ct, seg_path, _ = images
    code, _, err = _import(capsys, ct, seg_path, tmp_path / "c", "--label-map", "totalsegmentator",
                           "--no-auto-labels")  # fmt: skip
    assert code == 0, err
    case = load_case(tmp_path / "c")
    assert np.count_nonzero(case.labels.array == Label.LIVER) == 192 - 8
    assert np.count_nonzero(case.labels.array == Label.RIB) == 6
    assert [(c.name, c.role) for c in case.extra_classes] == [("scapula_left", "avoid")]
    assert np.count_nonzero(case.extra_mask("avoid")) == 8
    info = _info(capsys, tmp_path / "c")
    assert info["extra_classes"][0]["voxels"] == 8
    assert not [x for x in info["labels"] if x["label"] == "muscle"]  # the stand-in is not counted


def test_a_user_class_file_merges_and_keeps(tmp_path, capsys, images):
    ct, seg_path, _ = images
    f = tmp_path / "classes.toml"
    f.write_text('[classes]\n5 = "liver"\n71 = "my_bone"\n92 = "rib"\n[roles]\nmy_bone = "pass"\n')
    code, _, err = _import(capsys, ct, seg_path, tmp_path / "c", "--label-map", f)
    assert code == 0, err
    case = load_case(tmp_path / "c")
    assert [(c.name, c.role) for c in case.extra_classes] == [("my_bone", "pass")]
    assert np.count_nonzero(case.extra_mask("avoid")) == 0


def test_flipped_and_permuted_labels_give_the_same_case(tmp_path, capsys, images):
    ct, seg_path, seg = images
    arr = np.ascontiguousarray(seg.transpose(1, 0, 2)[:, ::-1])  # axes (y, z reversed, x)
    nz, ny, nx = G.shape
    sz, sy, sx = G.spacing_mm
    ox, oy, oz = G.origin_mm
    direction = ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0))  # columns: +y, -z, +x
    g2 = Grid((ny, nz, nx), (sy, sz, sx), (ox, oy, oz + (nz - 1) * sz), direction)
    write_nifti(Volume(arr, g2), tmp_path / "seg2.nii.gz")
    code, out, err = _import(
        capsys, ct, tmp_path / "seg2.nii.gz", tmp_path / "c2", "--label-map", "totalsegmentator"
    )
    assert code == 0, err
    assert "resampled onto the image grid" in out
    code, _, err = _import(capsys, ct, seg_path, tmp_path / "c1", "--label-map", "totalsegmentator")
    assert code == 0, err
    a, b = load_case(tmp_path / "c1"), load_case(tmp_path / "c2")
    np.testing.assert_array_equal(a.labels.array, b.labels.array)
    np.testing.assert_array_equal(a.extra_labels.array, b.extra_labels.array)
    assert "resampled" in " ".join(b.source["notes"])


def test_a_folder_of_masks_by_name(tmp_path, capsys, images):
    ct, _, seg = images
    folder = tmp_path / "masks"
    folder.mkdir()
    for name, v in (("liver", 5), ("scapula_left", 71), ("rib_left_1", 92)):
        write_nifti(Volume((seg == v).astype(np.uint8), G), folder / f"{name}.nii.gz")
    code, _, err = _import(capsys, ct, folder, tmp_path / "c", "--label-map", "totalsegmentator")
    assert code == 0, err
    case = load_case(tmp_path / "c")
    assert np.count_nonzero(case.labels.array == Label.LIVER) == 192 - 8
    assert np.count_nonzero(case.labels.array == Label.RIB) == 6
    assert case.structures["rib"]["classes"] == ["rib_left_1"]
    # without a map TotalSegmentator's own file names are still understood (its default
    # output is such a folder; rib_left_1 was kept as an extra class and the ribs lost),
    # and a name that is no ioplan structure stays an extra class
    code, _, err = _import(capsys, ct, folder, tmp_path / "c2")
    assert code == 0, err
    c2 = load_case(tmp_path / "c2")
    assert {c.name for c in c2.extra_classes} == {"scapula_left"}
    assert np.count_nonzero(c2.labels.array == Label.RIB) == 6


def test_class_names_are_matched_without_case():
    # names are kept lower case in a case ("vertebrae_l1" from a file vertebrae_L1.nii.gz),
    # while TotalSegmentator's map spells vertebrae_L1: it was kept as an extra class
    from ioplan.anatomy import ioplan_label_for, totalsegmentator_map

    ts = totalsegmentator_map("total")
    assert "vertebrae_L1" in ts.targets  # the map's own spelling
    assert ioplan_label_for("vertebrae_l1", ts) == Label.VERTEBRA
    # a segment editor's names: a numbered tumour, a lesion, a side before the organ
    assert ioplan_label_for("tumor_1") == Label.TUMOR
    assert ioplan_label_for("lesion") == Label.TUMOR
    assert ioplan_label_for("right_kidney") == Label.KIDNEY
    assert ioplan_label_for("scapula_left") is None


def test_bad_inputs_are_one_line_errors(tmp_path, capsys, images):
    ct, seg_path, seg = images
    far = Grid(G.shape, G.spacing_mm, (900.0, 3.0, 40.0))
    write_nifti(Volume(seg, far), tmp_path / "other_patient.nii.gz")
    code, _, err = _import(
        capsys, ct, tmp_path / "other_patient.nii.gz", tmp_path / "c", "--label-map",
        "totalsegmentator",
    )  # fmt: skip
    assert_one_line_error(code, err, "do not overlap")
    code, _, err = _import(capsys, ct, seg_path, tmp_path / "c", "--label-map", "totalsegmentor")
    assert_one_line_error(code, err, "unknown --label-map", "totalsegmentor")
    dup = tmp_path / "dup.toml"
    dup.write_text("liver = 5\nscapula = 5\n")
    code, _, err = _import(capsys, ct, seg_path, tmp_path / "c", "--label-map", dup)
    assert_one_line_error(code, err, "dup.toml", "value 5")
    flat = Grid((1, 8, 10), (2.0, 1.5, 1.0))
    write_nifti(Volume(np.zeros(flat.shape, np.int16), flat), tmp_path / "flat.nii.gz")
    code, _, err = _import(
        capsys, tmp_path / "flat.nii.gz", seg_path, tmp_path / "c", "--label-map",
        "totalsegmentator",
    )  # fmt: skip
    assert_one_line_error(code, err, "2D")
    code, _, err = _import(capsys, ct, seg_path, tmp_path / "c")
    assert_one_line_error(code, err, "--label", "--label-map")
    code, _, err = _import(
        capsys, ct, seg_path, tmp_path / "c", "--label", "liver=5", "--label-map",
        "totalsegmentator",
    )  # fmt: skip
    assert_one_line_error(code, err, "not both")
    code, _, err = _import(capsys, ct, seg_path, tmp_path / "c", "--label", "liver=5")
    assert_one_line_error(code, err, "[71, 92]", "not declared")
    # an MR map on CT ids: values beyond total_mr's 50 classes are unnamed
    code, _, err = _import(
        capsys, ct, seg_path, tmp_path / "c", "--label-map", "totalsegmentator-mr"
    )
    assert_one_line_error(code, err, "[71, 92]", "total_mr")
    assert not (tmp_path / "c").exists()


def test_dicom_series_with_a_dicom_seg(tmp_path, capsys, images):
    """A DICOM CT folder and a DICOM-SEG made on it with highdicom: segment labels name the
    structures ("Liver", "Tumour" -> liver, tumor)."""
    import pydicom

    from ioplan.imaging import write_dicom_series

    _, _, seg = images
    write_dicom_series(Volume(np.where(seg == 0, -1000, 40).astype(np.int16), G),
                       tmp_path / "ct")  # fmt: skip
    sources = sorted(
        (pydicom.dcmread(p) for p in (tmp_path / "ct").iterdir()),
        key=lambda d: float(d.ImagePositionPatient[2]),
    )
    for d in sources:  # ioplan writes no patient or study details; highdicom copies them
        for key in ("PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "AccessionNumber", "StudyID"):  # fmt: skip
            if key not in d:
                setattr(d, key, "")
    tumour = np.zeros(G.shape, bool)
    tumour[2:4, 3:5, 5:7] = True  # 8 voxels inside the liver block, clear of the scapula
    liver = (seg == 5) & ~tumour
    masks = np.stack([liver, tumour], axis=-1).astype(np.uint8)
    write_test_dicom_seg(sources, masks, ["Liver", "Tumour"], tmp_path / "seg.dcm")
    code, _, err = _import(capsys, tmp_path / "ct", tmp_path / "seg.dcm", tmp_path / "c")
    assert code == 0, err
    case = load_case(tmp_path / "c")
    assert np.count_nonzero(case.labels.array == Label.LIVER) == int(liver.sum())
    assert np.count_nonzero(case.labels.array == Label.TUMOR) == 8
    assert case.structures["tumor"] == {"source": "labels", "classes": ["tumour"]}
    assert case.extra_classes == ()


def test_a_tumour_cut_by_a_cropped_image_is_refused_by_name(tmp_path, capsys):
    """A crop of the labelled scan that cuts the tumour (its 4 lowest slices hold 2 of the
    tumour's 6): one line naming the tumour, exit 2, no case written."""
    g = Grid((20, 20, 20), (2.0, 2.0, 2.0))
    seg = np.zeros(g.shape, np.uint8)
    seg[2:18, 2:18, 2:18] = 1
    seg[0:6, 8:12, 8:12] = 2
    ct = np.where(seg == 0, -1000, 40).astype(np.int16)
    write_nifti(Volume(seg, g), tmp_path / "seg.nii.gz")
    crop = Grid((16, 20, 20), g.spacing_mm, (0.0, 0.0, 8.0))  # slices 4-19
    write_nifti(Volume(ct[4:], crop), tmp_path / "ct.nii.gz")
    code, _, err = _import(capsys, tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz",
                           tmp_path / "c", "--label", "liver=1", "--label", "tumor=2")  # fmt: skip
    assert_one_line_error(code, err, "tumor, which must lie wholly inside the image")
    assert not (tmp_path / "c").exists()


def test_a_dicom_series_with_a_lost_slice_is_regularised_on_request(tmp_path, capsys):
    """A CT exported with one slice lost (the PACS dropped it) is, with --regularize,
    imported on the even grid the other slices define, the lost slice interpolated from its
    neighbours, and the import says so (on screen and in case.toml's notes). Reference: the
    slices around the loss and their mean, counted here with numpy from what was written."""
    from ioplan.imaging import write_dicom_series

    g = Grid((5, 6, 8), (2.5, 0.8, 0.8), (-10.0, 20.0, 30.0))
    ct = np.random.default_rng(0).integers(-200, 300, size=g.shape).astype(np.int16)
    seg = np.zeros(g.shape, np.uint8)
    seg[1:4, 2:5, 2:6] = 1
    folder = write_dicom_series(Volume(ct, g), tmp_path / "dicom")
    sorted(folder.iterdir())[2].unlink()  # the middle slice
    write_nifti(Volume(seg, g), tmp_path / "seg.nii.gz")
    args = ["import-case", "--image", tmp_path / "dicom", "--labels", tmp_path / "seg.nii.gz",
            "--label", "liver=1", "--out", tmp_path / "case", "--no-auto-labels"]  # fmt: skip
    # by default a lost slice is refused (issue 2's error case), and the message says how
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, "1 slice(s) missing", "--regularize")
    assert not (tmp_path / "case").exists()
    code, out, err = run_cli(capsys, *args, "--regularize")
    assert code == 0, err
    assert "DICOM series regularised: 1 missing slice(s)" in out + err
    case = load_case(tmp_path / "case")
    assert case.image.grid.shape == g.shape
    np.testing.assert_allclose(case.image.grid.spacing_mm, g.spacing_mm)
    img = np.asarray(case.image.array, float)
    # the kept slices as written (int16 HU, exact in float32); the lost one their mean
    np.testing.assert_array_equal(img[[0, 1, 3, 4]], ct[[0, 1, 3, 4]])
    # half-integers are exact in float32: any tolerance above 0 is only for the file format
    np.testing.assert_allclose(img[2], (ct[1] + ct[3].astype(float)) / 2, atol=1e-3)
    assert any("missing slice" in n for n in case.source["notes"])
