"""A label file whose structures lie where no anatomy has them is refused at import.

Two rules (anatomy/data/plausibility.toml, positions only, any modality): classes that
never share the liver's axial levels (cervical spine, sacrum, femora, ...), and NAME_left
lying on the patient's left (+x in LPS) of NAME_right. The real case: TotalSegmentator's MR
labels ("total_mr") read with its CT class map name the portal vein (25) "sacrum" and the
autochthon and iliopsoas muscles (46-49) "vertebrae_C5".."vertebrae_C2" (the two tables of
TotalSegmentator's map_to_binary.py, tests/anatomy/test_label_maps.py), all at the liver's
levels; without this check the case imported with the portal vein as bone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, flipped_copy, run_cli
from ioplan.anatomy._case_parts import check_anatomy_plausible
from ioplan.errors import InvalidImageError
from ioplan.imaging import Grid

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "totalsegmentator"
needs_real = pytest.mark.skipif(
    not (REAL / "example_mr_sm.nii.gz").is_file(),
    reason=f"real images absent ({REAL}): see ../shared/data/real/README.md",
)

#: 40 slices of 5 mm along LPS z (array axis 0 = z: identity direction), 30 x 30 x 4 mm
GRID = Grid((40, 30, 30), (5.0, 4.0, 4.0), (0.0, 0.0, 0.0))
NAMES = {1: "liver", 2: "vertebrae_C3", 3: "kidney_left", 4: "kidney_right", 5: "sacrum"}


def _body(c3_slices=slice(34, 38), left_x=slice(20, 26), right_x=slice(4, 10)) -> np.ndarray:
    a = np.zeros(GRID.shape, np.uint8)
    a[14:26, 8:22, 4:16] = 1  # the liver: z 70-125 mm, on the patient's right (small x)
    a[c3_slices, 12:16, 12:16] = 2
    a[8:14, 20:26, left_x] = 3
    a[8:14, 20:26, right_x] = 4
    return a


def test_plausible_anatomy_passes():
    # the cervical vertebra above the liver, the left kidney at larger x than the right
    check_anatomy_plausible(_body(), GRID, NAMES, {1}, "seg.nii.gz")


def test_a_cervical_vertebra_at_the_liver_s_levels_is_refused():
    with pytest.raises(InvalidImageError, match="'vertebrae_C3' \\(value 2\\) lies at the liver"):
        check_anatomy_plausible(_body(c3_slices=slice(16, 22)), GRID, NAMES, {1}, "seg.nii.gz")
    # half of it inside the liver's levels (slices 24-27 against the liver's 14-25): the rule's
    # share (0.5) must be exceeded
    check_anatomy_plausible(_body(c3_slices=slice(24, 28)), GRID, NAMES, {1}, "seg.nii.gz")
    # fewer voxels than the rule's minimum (20) are not judged
    a = _body()
    a[20, 10, 10:12] = 5  # two stray "sacrum" voxels inside the liver's levels
    check_anatomy_plausible(a, GRID, NAMES, {1}, "seg.nii.gz")
    # without a liver in the file the level rule has nothing to measure against
    check_anatomy_plausible(_body(c3_slices=slice(16, 22)), GRID, NAMES, set(), "seg.nii.gz")


def test_left_and_right_swapped_are_refused_also_on_a_flipped_lattice():
    swapped = _body(left_x=slice(4, 10), right_x=slice(20, 26))
    with pytest.raises(InvalidImageError, match="flipped left-right"):
        check_anatomy_plausible(swapped, GRID, NAMES, {1}, "seg.nii.gz")
    # the same anatomy stored as RAS (x and y reversed, direction and origin to match): the
    # world positions are the same, so the plausible file stays plausible and the swapped
    # one stays refused
    from ioplan.imaging import Volume

    for arr, ok in ((_body(), True), (swapped, False)):
        v = flipped_copy(Volume(arr, GRID))
        if ok:
            check_anatomy_plausible(np.asarray(v.array), v.grid, NAMES, {1}, "seg.nii.gz")
        else:
            with pytest.raises(InvalidImageError, match="flipped left-right"):
                check_anatomy_plausible(np.asarray(v.array), v.grid, NAMES, {1}, "seg.nii.gz")


@needs_real
def test_real_mr_labels_read_with_the_ct_map_are_refused(capsys, tmp_path):
    code, _, err = run_cli(
        capsys, "import-case", "--image", REAL / "example_mr_sm.nii.gz", "--labels",
        REAL / "example_seg_mr.nii.gz", "--label-map", "totalsegmentator-ct", "--modality", "MR",
        "--out", tmp_path / "mr",
    )  # fmt: skip
    assert_one_line_error(code, err, "lies at the liver's levels", "totalsegmentator-mr")
    assert not (tmp_path / "mr").exists()


@needs_real
def test_real_ct_labels_mirrored_left_right_are_refused(capsys, tmp_path):
    import nibabel as nib

    seg = nib.load(REAL / "example_seg.nii.gz")
    # the label array mirrored along its first (RAS x) axis, the header kept: the kidneys,
    # adrenals and lung lobes swap sides in the world, as in a file whose header lost a flip
    arr = np.asarray(seg.dataobj)[::-1].copy()
    mirrored = tmp_path / "mirrored.nii.gz"
    nib.save(nib.Nifti1Image(arr, seg.affine, seg.header), mirrored)
    code, _, err = run_cli(
        capsys, "import-case", "--image", REAL / "example_ct_sm.nii.gz", "--labels", mirrored,
        "--label-map", "totalsegmentator", "--out", tmp_path / "ct",
    )  # fmt: skip
    assert_one_line_error(code, err, "flipped left-right")


def test_large_files_are_judged_on_a_subsample_the_same_way():
    """Past about 4 million voxels every 2nd (3rd, ...) voxel along each axis is looked at;
    the verdicts do not change: the same body at 1 mm voxels (5.8 million, stride 2)."""
    fine = Grid((180, 180, 180), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    a = np.zeros(fine.shape, np.uint8)
    a[70:125, 40:110, 20:80] = 1  # liver: z 70-124 mm, on the right (small x)
    a[170:178, 60:76, 60:76] = 2  # a cervical vertebra far above
    a[40:70, 100:130, 110:140] = 3  # left kidney at larger x
    a[40:70, 100:130, 20:50] = 4  # right kidney
    check_anatomy_plausible(a, fine, NAMES, {1}, "seg.nii.gz")
    low = a.copy()
    low[170:178] = 0
    low[90:98, 60:76, 60:76] = 2  # the vertebra moved to the liver's levels
    with pytest.raises(InvalidImageError, match="vertebrae_C3"):
        check_anatomy_plausible(low, fine, NAMES, {1}, "seg.nii.gz")
    swapped = np.where(a == 3, 4, np.where(a == 4, 3, a)).astype(np.uint8)
    with pytest.raises(InvalidImageError, match="flipped left-right"):
        check_anatomy_plausible(swapped, fine, NAMES, {1}, "seg.nii.gz")
