"""Class maps of other tools: TotalSegmentator's tables as published, user class files."""

from __future__ import annotations

import pytest

from ioplan.anatomy import Label, class_map, ioplan_label_for, read_class_file, totalsegmentator_map
from ioplan.errors import FileFormatError, InputError

# Ids and names copied by hand from TotalSegmentator's totalsegmentator/map_to_binary.py
# (commit 0275d3046117a9615a9876e6e4eefd5156843f1c), independently of the data file.
TOTAL_SAMPLES = {
    1: "spleen", 5: "liver", 7: "pancreas", 10: "lung_upper_lobe_left", 26: "vertebrae_S1",
    51: "heart", 52: "aorta", 63: "inferior_vena_cava", 64: "portal_vein_and_splenic_vein",
    71: "scapula_left", 79: "spinal_cord", 92: "rib_left_1", 104: "rib_right_1",
    115: "rib_right_12", 116: "sternum", 117: "costal_cartilages",
}  # fmt: skip
TOTAL_MR_SAMPLES = {
    5: "liver", 10: "lung_left", 11: "lung_right", 19: "vertebrae", 20: "intervertebral_discs",
    21: "spinal_cord", 24: "inferior_vena_cava", 25: "portal_vein_and_splenic_vein",
    50: "brain",
}  # fmt: skip


def test_totalsegmentator_tables_match_the_published_ids():
    total, mr = totalsegmentator_map("total"), totalsegmentator_map("total_mr")
    assert sorted(total.classes) == list(range(1, 118))
    assert sorted(mr.classes) == list(range(1, 51))
    for v, n in TOTAL_SAMPLES.items():
        assert total.classes[v] == n
    for v, n in TOTAL_MR_SAMPLES.items():
        assert mr.classes[v] == n
    for m in (total, mr):
        assert len(set(m.classes.values())) == len(m.classes)  # names unique
        assert m.source["commit"] == "0275d3046117a9615a9876e6e4eefd5156843f1c"


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("liver", Label.LIVER), ("kidney_left", Label.KIDNEY), ("kidney_right", Label.KIDNEY),
        ("lung_middle_lobe_right", Label.LUNG), ("lung_left", Label.LUNG),
        ("rib_left_7", Label.RIB), ("costal_cartilages", Label.RIB),
        ("vertebrae_T12", Label.VERTEBRA), ("vertebrae", Label.VERTEBRA),
        ("spinal_cord", Label.SPINAL_CORD), ("inferior_vena_cava", Label.IVC),
        ("portal_vein_and_splenic_vein", Label.PORTAL_VEIN), ("duodenum", Label.BOWEL_WALL),
        ("small_bowel", Label.BOWEL_WALL), ("colon", Label.BOWEL_WALL),
        ("gallbladder", Label.GALLBLADDER), ("heart", Label.HEART), ("aorta", Label.AORTA),
        ("scapula_left", None), ("femur_right", None), ("autochthon_left", None),
        ("pancreas", Label.PANCREAS), ("adrenal_gland_left", Label.ADRENAL),
        ("pulmonary_vein", Label.PULMONARY_VESSEL), ("trachea", Label.BRONCHUS),
        ("esophagus", None),
    ],
)  # fmt: skip
def test_totalsegmentator_classes_map_onto_ioplan_labels(name, label):
    for task in ("total", "total_mr"):
        m = totalsegmentator_map(task)
        if name in m.classes.values():
            assert ioplan_label_for(name, m) == label


def test_modality_picks_the_map():
    assert class_map("totalsegmentator", modality="CT").source["task"] == "total"
    assert class_map("totalsegmentator", modality="MR").source["task"] == "total_mr"
    assert class_map("totalsegmentator-mr", modality="CT").source["task"] == "total_mr"
    with pytest.raises(InputError, match="unknown --label-map"):
        class_map("totalsegmentor")


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".toml", 'liver = 3\nmy_muscle = 4\n[roles]\nmy_muscle = "pass"\n'),
        (".toml", '[classes]\n3 = "liver"\n4 = "my_muscle"\n[roles]\nmy_muscle = "pass"\n'),
        (".json", '{"liver": 3, "my_muscle": 4, "roles": {"my_muscle": "pass"}}'),
        (".json", '{"classes": {"3": "liver", "4": "my_muscle"}, "roles": {"my_muscle": "pass"}}'),
    ],
)
def test_user_class_files(tmp_path, suffix, text):
    p = tmp_path / f"classes{suffix}"
    p.write_text(text)
    m = read_class_file(p)
    assert m.classes == {3: "liver", 4: "my_muscle"}
    assert m.roles == {"my_muscle": "pass"}


@pytest.mark.parametrize(
    ("suffix", "text", "fragment"),
    [
        (".toml", "liver = 3\nspleen = 3\n", "value 3"),
        (".toml", '[classes]\n3 = "liver"\n4 = "liver"\n', "'liver'"),
        (".json", '{"liver": 3, "liver": 4}', "'liver'"),
        (".toml", "liver = 0\n", "1-65535"),
        (".toml", 'liver = "x"\n', "1-65535"),
        (".toml", "liver = [\n", "TOML"),
    ],
)
def test_bad_user_class_files(tmp_path, suffix, text, fragment):
    p = tmp_path / f"classes{suffix}"
    p.write_text(text)
    with pytest.raises(FileFormatError, match="label-map") as exc:
        read_class_file(p)
    assert fragment in str(exc.value)
