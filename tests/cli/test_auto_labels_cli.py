"""import-case --auto-labels on real images (skipped when ../shared/data/real is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from conftest import run_cli

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
CHEST = REAL / "pyradiomics"
ABDOMEN = REAL / "totalsegmentator"

needs_real = pytest.mark.skipif(
    not (CHEST / "lung1_image.nrrd").is_file() or not (ABDOMEN / "example_ct_sm.nii.gz").is_file(),
    reason=f"real data not present ({REAL}); see shared/data/real/README.md",
)


def _volumes(capsys, case: Path) -> dict[str, float]:
    code, out, err = run_cli(capsys, "info", case, "--json")
    assert code == 0, err
    return {d["label"]: d["volume_ml"] for d in json.loads(out)["labels"]}


@needs_real
def test_chest_ct_with_only_its_tumour_gets_lungs_bone_and_body(capsys, tmp_path):
    import SimpleITK as sitk

    code, _, err = run_cli(
        capsys, "import-case", "--image", CHEST / "lung1_image.nrrd", "--labels",
        CHEST / "lung1_label.nrrd", "--label", "tumor=1", "--auto-labels", "--name", "lung1",
        "--out", tmp_path / "chest",
    )  # fmt: skip
    assert code == 0, err
    vols = _volumes(capsys, tmp_path / "chest")
    # independent HU count with SimpleITK and scipy: air inside the body (body = largest
    # component above -500 HU with its holes filled slice by slice), and bone > 200 HU
    img = sitk.ReadImage(str(CHEST / "lung1_image.nrrd"))
    hu = sitk.GetArrayFromImage(img).astype(float)
    voxel_ml = float(np.prod(img.GetSpacing())) / 1000.0
    comp, _ = ndimage.label(hu > -500)
    body = comp == (np.argmax(np.bincount(comp.ravel())[1:]) + 1)
    body = np.stack([ndimage.binary_fill_holes(s) for s in body])
    air_ml = np.count_nonzero(body & (hu < -400)) * voxel_ml
    bone_ml = np.count_nonzero(body & (hu > 200)) * voxel_ml
    # lung (lung + airways) within 10 % of the air count: the auto method uses its own
    # thresholds and removes outside air and bowel gas, the reference is a plain count
    assert vols["lung"] == pytest.approx(air_ml, rel=0.10)
    # bone keeps the large connected components only: within 25 % of every voxel > 200 HU
    assert vols["rib"] == pytest.approx(bone_ml, rel=0.25)
    body_ml = np.count_nonzero(body) * voxel_ml
    labelled_ml = sum(vols.values())
    assert labelled_ml == pytest.approx(body_ml, rel=0.05)  # the body is filled by labels
    doc = (tmp_path / "chest" / "case.toml").read_text()
    assert 'source = "auto"' in doc  # provenance recorded


@needs_real
def test_totalsegmentator_case_with_auto_labels_keeps_the_labels(capsys, tmp_path):
    import nibabel as nib

    code, _, err = run_cli(
        capsys, "import-case", "--image", ABDOMEN / "example_ct_sm.nii.gz", "--labels",
        ABDOMEN / "example_seg.nii.gz", "--label-map", "totalsegmentator", "--auto-labels",
        "--name", "ts-example", "--out", tmp_path / "abd",
    )  # fmt: skip
    assert code == 0, err
    vols = _volumes(capsys, tmp_path / "abd")
    seg = nib.load(ABDOMEN / "example_seg.nii.gz")
    voxel_ml = float(np.prod(seg.header.get_zooms()[:3])) / 1000.0
    liver_ml = np.count_nonzero(np.asarray(seg.dataobj) == 5) * voxel_ml  # label 5 = liver
    # the labels win: the liver is exactly TotalSegmentator's (float rounding of 0.1 mL)
    assert vols["liver"] == pytest.approx(liver_ml, abs=0.1)
    assert vols["skin"] > 0 and vols["fat"] > 0  # the body around the organs now exists
