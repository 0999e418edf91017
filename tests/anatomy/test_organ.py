"""The tumour's organ: given, stored in case.toml, or inferred from the labels around it."""

from __future__ import annotations

import numpy as np
import pytest

from ioplan.anatomy import Case, Label, infer_organ, load_case, organ_of, save_case
from ioplan.errors import FileFormatError, InputError
from ioplan.imaging import Grid, Volume


def _block(host: Label, *, shape=(30, 30, 30), spacing=(1.0, 1.0, 1.0), touch_fat=False):
    """A host block (fat around it) with a 6 mm cube tumour inside it, or at its edge."""
    lab = np.full(shape, int(Label.FAT), np.uint8)
    lab[5:25, 5:25, 5:25] = int(host)
    if touch_fat:
        lab[4:10, 12:18, 12:18] = int(Label.TUMOR)  # sticks out of the host into fat
    else:
        lab[12:18, 12:18, 12:18] = int(Label.TUMOR)
    return lab, spacing


@pytest.mark.parametrize(
    ("host", "organ"),
    [
        (Label.LIVER, "liver"),
        (Label.LUNG, "lung"),
        (Label.KIDNEY, "kidney"),
        (Label.KIDNEY_MEDULLA, "kidney"),
        (Label.VERTEBRA, "bone"),
        (Label.RIB, "bone"),
        (Label.MUSCLE, "soft_tissue"),
    ],
)
def test_the_host_label_gives_the_organ(host, organ):
    lab, sp = _block(host)
    assert infer_organ(lab, sp) == organ


def test_an_organ_wins_over_the_fat_it_borders():
    # a subcapsular tumour: its shell touches fat (soft tissue) and liver; the organ counts
    lab, sp = _block(Label.LIVER, touch_fat=True)
    assert infer_organ(lab, sp) == "liver"


def test_no_tumour_no_organ_and_default_liver():
    lab = np.full((8, 8, 8), int(Label.LIVER), np.uint8)
    assert infer_organ(lab, (1, 1, 1)) is None
    g = Grid((8, 8, 8), (1.0, 1.0, 1.0))
    case = Case(Volume(np.zeros((8, 8, 8), np.float32), g), Volume(lab, g))
    assert organ_of(case) == "liver"
    assert organ_of(case, "Lung") == "lung"
    with pytest.raises(InputError, match="unknown organ"):
        organ_of(case, "brain")


def test_organ_survives_case_toml_and_a_bad_one_is_refused(tmp_path):
    lab, sp = _block(Label.LIVER)
    g = Grid(lab.shape, sp)
    case = Case(
        Volume(np.zeros(lab.shape, np.float32), g), Volume(lab, g), name="c1", organ="kidney"
    )
    save_case(case, tmp_path / "c1")
    again = load_case(tmp_path / "c1")
    assert again.organ == "kidney" and organ_of(again) == "kidney"  # given beats inferred
    toml = tmp_path / "c1" / "case.toml"
    toml.write_text(toml.read_text().replace('organ = "kidney"', 'organ = "brain"'))
    with pytest.raises(FileFormatError, match="organ"):
        load_case(tmp_path / "c1")


def test_a_tumour_at_the_volume_edge_and_anisotropic_voxels():
    # the shell is cropped around the tumour: at the array's border the crop is clipped
    lab = np.full((20, 20, 20), int(Label.LUNG), np.uint8)
    lab[:4, :4, :4] = int(Label.TUMOR)
    lab[:, :, 10:] = int(Label.RIB)  # far (> 3 mm) from the tumour: no vote
    assert infer_organ(lab, (5.0, 0.8, 0.8)) == "lung"
    # rib from x = 4 on (touching the tumour): per slice the 3 mm shell (y, x within 3.75
    # columns of 0.8 mm) holds 20 rib voxels (x 4-6) and 12 lung voxels (y 4-6, x 0-3); the
    # next slice is 5 mm away, outside the shell: bone wins
    lab[:, :, 4:] = int(Label.RIB)
    assert infer_organ(lab, (5.0, 0.8, 0.8)) == "bone"


def test_coarse_grids_still_find_the_host():
    # 4 mm voxels: the 3 mm shell would hold no voxel; one voxel step is taken instead
    lab, _ = _block(Label.KIDNEY)
    assert infer_organ(lab, (4.0, 4.0, 4.0)) == "kidney"
