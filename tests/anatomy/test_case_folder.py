"""Case folders: save, load, label remapping, and the errors of bad cases."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from ioplan.anatomy import Case, Label, label_statistics, load_case, save_case
from ioplan.errors import (
    FileFormatError,
    GeometryMismatchError,
    InputError,
    InputFileNotFoundError,
    InvalidImageError,
    OutputExistsError,
)
from ioplan.imaging import Grid, Volume, write_nifti


def test_round_trip(tmp_path, small_case):
    save_case(small_case, tmp_path / "c")
    back = load_case(tmp_path / "c")
    np.testing.assert_array_equal(back.labels.array, small_case.labels.array)
    np.testing.assert_array_equal(back.image.array, small_case.image.array)
    assert back.tumors[0]["centre_mm"] == list(small_case.tumors[0]["centre_mm"])
    assert back.source["seed"] == 3
    assert len(back.vessels) == len(small_case.vessels)
    assert back.vessels[5].radius_mm == pytest.approx(small_case.vessels[5].radius_mm, abs=1e-3)


def test_label_volumes_match_an_independent_count(tmp_path, small_case):
    """Count liver voxels with nibabel straight from the file, times the header's voxel size."""
    save_case(small_case, tmp_path / "c")
    img = nib.load(tmp_path / "c" / "labels.nii.gz")
    n = int(np.count_nonzero(np.asanyarray(img.dataobj) == 7))
    ml = n * float(np.prod(img.header.get_zooms()[:3])) / 1000.0
    stats = {s.label: s for s in label_statistics(load_case(tmp_path / "c"))}
    assert stats["liver"].volume_ml == pytest.approx(ml, rel=1e-12)


def test_real_case_with_its_own_label_values(tmp_path):
    """A segmentation with other label values: case.toml maps them to ioplan's."""
    g = Grid((4, 5, 6), (2.0, 1.0, 1.0))
    image = np.zeros(g.shape, np.int16)
    lab = np.zeros(g.shape, np.uint8)
    lab[1:3, 1:4, 1:5] = 1  # liver in that tool's convention
    lab[2, 2, 2] = 2  # tumour
    write_nifti(Volume(image, g), tmp_path / "ct.nii.gz")
    write_nifti(Volume(lab, g), tmp_path / "seg.nii.gz")
    (tmp_path / "case.toml").write_text(
        'format = "ioplan-case"\nformat_version = 1\nimage = "ct.nii.gz"\nlabels = "seg.nii.gz"\n'
        "[label_values]\nliver = 1\ntumor = 2\n"
    )
    case = load_case(tmp_path)
    assert case.labels.array[2, 2, 2] == Label.TUMOR
    assert case.labels.array[1, 1, 1] == Label.LIVER
    assert np.count_nonzero(case.labels.array == Label.LIVER) == 2 * 3 * 4 - 1


def _write_case(folder, image, labels, extra=""):
    folder.mkdir(parents=True, exist_ok=True)
    write_nifti(image, folder / "image.nii.gz", overwrite=True)
    write_nifti(labels, folder / "labels.nii.gz", overwrite=True)
    (folder / "case.toml").write_text(
        'format = "ioplan-case"\nformat_version = 1\nimage = "image.nii.gz"\n'
        f'labels = "labels.nii.gz"\n[label_values]\nliver = 7\n{extra}'
    )


def test_labels_on_another_grid_are_refused(tmp_path):
    g = Grid((4, 5, 6), (2.0, 1.0, 1.0))
    shifted = Grid((4, 5, 6), (2.0, 1.0, 1.0), origin_mm=(0.0, 0.0, 3.0))
    _write_case(
        tmp_path / "c",
        Volume(np.zeros(g.shape, np.int16), g),
        Volume(np.zeros(g.shape, np.uint8), shifted),
    )
    with pytest.raises(GeometryMismatchError, match="origin_mm"):
        load_case(tmp_path / "c")
    other_shape = Grid((4, 5, 7), (2.0, 1.0, 1.0))
    _write_case(
        tmp_path / "d",
        Volume(np.zeros(g.shape, np.int16), g),
        Volume(np.zeros(other_shape.shape, np.uint8), other_shape),
    )
    with pytest.raises(GeometryMismatchError, match="shape"):
        load_case(tmp_path / "d")


def test_undeclared_label_values_and_nan_images_are_refused(tmp_path):
    g = Grid((3, 3, 3))
    lab = np.zeros(g.shape, np.uint8)
    lab[1, 1, 1] = 42
    _write_case(tmp_path / "c", Volume(np.zeros(g.shape, np.int16), g), Volume(lab, g))
    with pytest.raises(FileFormatError, match=r"\[42\]"):
        load_case(tmp_path / "c")
    nan_img = Volume(np.full(g.shape, np.nan, np.float32), g)
    _write_case(tmp_path / "n", nan_img, Volume(np.zeros(g.shape, np.uint8), g))
    with pytest.raises(InvalidImageError, match="NaN"):
        load_case(tmp_path / "n")


def test_missing_and_malformed_cases(tmp_path):
    with pytest.raises(InputFileNotFoundError):
        load_case(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileFormatError, match=r"case\.toml"):
        load_case(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "case.toml").write_text("format = [unclosed")
    with pytest.raises(FileFormatError, match="invalid TOML"):
        load_case(tmp_path / "bad")
    (tmp_path / "future").mkdir()
    (tmp_path / "future" / "case.toml").write_text('format = "ioplan-case"\nformat_version = 99\n')
    with pytest.raises(FileFormatError, match="format_version"):
        load_case(tmp_path / "future")


def test_save_does_not_overwrite_without_permission(tmp_path, small_case):
    folder = tmp_path / "c"
    folder.mkdir()
    keep = folder / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(OutputExistsError, match="overwrite"):
        save_case(small_case, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    save_case(small_case, folder, overwrite=True)
    assert keep.read_text() == "mine"  # only the case's own files are replaced


def test_case_requires_matching_grids():
    g = Grid((2, 2, 2))
    with pytest.raises(GeometryMismatchError):
        Case(Volume(np.zeros((2, 2, 2)), g), Volume(np.zeros((2, 2, 3), np.uint8), Grid((2, 2, 3))))


def _seg_case(tmp_path, seg, table_lines):
    g = Grid(seg.shape, (2.0, 1.0, 1.0))
    write_nifti(Volume(np.zeros(g.shape, np.int16), g), tmp_path / "ct.nii.gz", overwrite=True)
    write_nifti(Volume(seg, g), tmp_path / "seg.nii.gz", overwrite=True)
    (tmp_path / "case.toml").write_text(
        'format = "ioplan-case"\nformat_version = 1\nimage = "ct.nii.gz"\nlabels = "seg.nii.gz"\n'
        "[label_values]\n" + table_lines
    )
    return tmp_path


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ("liver = 0\n", "background"),
        ("liver = 1\ntumor = 1\n", "both"),
        ("liver = true\n", "integer"),
        ("spleeen = 1\n", "unknown label name"),
    ],
)
def test_ambiguous_label_tables_are_refused(tmp_path, table, match):
    seg = np.zeros((3, 3, 3), np.uint8)
    seg[1, 1, 1] = 1
    with pytest.raises((InputError, FileFormatError), match=match):
        load_case(_seg_case(tmp_path, seg, table))


def test_empty_label_map_is_refused(tmp_path):
    with pytest.raises(InvalidImageError, match="empty"):
        load_case(_seg_case(tmp_path, np.zeros((3, 3, 3), np.uint8), "liver = 1\n"))


def test_wrong_metadata_types_are_refused(tmp_path):
    seg = np.zeros((3, 3, 3), np.uint8)
    seg[1, 1, 1] = 1
    folder = _seg_case(tmp_path, seg, "liver = 1\n")
    text = (folder / "case.toml").read_text()
    (folder / "case.toml").write_text(text.replace("format_version = 1", "format_version = true"))
    with pytest.raises(FileFormatError, match="format_version"):
        load_case(folder)
    (folder / "case.toml").write_text("tumors = 5\n" + text)
    with pytest.raises(FileFormatError, match="tumors"):
        load_case(folder)


@pytest.mark.parametrize("modality", ["PET", "ct", 3])
def test_a_modality_ioplan_does_not_plan_on_is_refused(tmp_path, modality):
    """Sweep of session 51: `modality = "PET"` was loaded and planned on as a CT."""
    seg = np.zeros((3, 3, 3), np.uint8)
    seg[1, 1, 1] = 1
    folder = _seg_case(tmp_path, seg, "liver = 1\n")
    text = (folder / "case.toml").read_text()
    value = f'"{modality}"' if isinstance(modality, str) else str(modality)
    (folder / "case.toml").write_text(f"modality = {value}\n" + text)
    with pytest.raises(FileFormatError, match="modality must be"):
        load_case(folder)
    (folder / "case.toml").write_text('modality = "MR"\n' + text)
    assert load_case(folder).modality == "MR"


def test_save_refuses_to_orphan_results_made_from_the_earlier_case(tmp_path, small_case):
    """A plan (any finished ioplan output) beside a case would describe another case."""
    from ioplan.imaging import COMPLETION_RECORD

    folder = save_case(small_case, tmp_path / "c")
    plan = folder / "plan"
    plan.mkdir()
    (plan / "plan.json").write_text("{}")
    (plan / COMPLETION_RECORD).write_text('{"command": "plan"}')
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(OutputExistsError, match="results made from the case there \\(plan\\)"):
        save_case(small_case, folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == before
    # the demo's folder: its own record lists the report beside the case files
    demo = save_case(small_case, tmp_path / "d")
    (demo / "index.html").write_text("<html></html>")
    (demo / COMPLETION_RECORD).write_text(
        '{"command": "demo", "entries": ["case.toml", "image.nii.gz", "index.html"]}'
    )
    with pytest.raises(OutputExistsError, match=r"index\.html"):
        save_case(small_case, demo, overwrite=True)
    # a folder of the user's own files is still written into (kept beside the case)
    (plan / COMPLETION_RECORD).unlink()
    save_case(small_case, folder, overwrite=True)
    assert (plan / "plan.json").exists()
