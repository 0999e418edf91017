"""Options that only act with a partner option: alone they were accepted and ignored (exit 0).

Each is now a one-line error before any work (the sweep of session 46).
"""

from __future__ import annotations

import time

import pytest

from conftest import assert_one_line_error, run_cli


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["arteries", "nocase", "--out", "o", "--min-hu", "300"],
         ["--min-hu", "without --from-image"]),
        (["phantom", "--out", "p", "--collection-site", "subphrenic"],
         ["--collection-site", "without --collection"]),
        (["phantom", "--out", "p", "--collection-content", "ascites"],
         ["--collection-content", "without --collection"]),
        (["response", "--baseline", "b.nii.gz", "--followup", "f.nii.gz", "--viable-label", "3"],
         ["--viable-label", "without --viable-baseline"]),
        (["thermometry", "--magnitude", "m", "--phase", "p", "--alert-c", "50"],
         ["--alert-c", "without --protected"]),
        (["simulate", "--tissue", "liver", "--organ", "lung", "--applicator", "amica",
          "--power-w", "60", "--duration-s", "300"], ["--organ", "without --case"]),
        (["simulate", "--power-density-map", "pd.nii.gz", "--duration-s", "300", "--tissue",
          "liver", "--spacing-mm", "4"], ["--spacing-mm", "--power-density-map"]),
        # the sweep of session 51
        (["simulate", "--power-density-map", "pd.nii.gz", "--duration-s", "300", "--tissue",
          "liver", "--array", "3"], ["--array", "--power-density-map"]),
        (["thermometry", "--magnitude", "m", "--phase", "p", "--reference", "r.nii.gz"],
         ["--reference", "without --drift-order"]),
    ],
)  # fmt: skip
def test_an_option_without_its_partner_is_refused(capsys, tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, *fragments)
    assert time.monotonic() - t0 < 5.0  # refused before any work
    assert list(tmp_path.iterdir()) == []


def test_a_cluster_applicator_is_refused_by_the_planner_at_once(capsys, tmp_path):
    """`plan --applicator cooled-rf-cluster` failed after the search ("axial_zone needs the
    tip on a voxel centre"): the planner places single applicators."""
    from ioplan.errors import InputError
    from ioplan.planning import PlanConfig

    with pytest.raises(InputError, match="cluster of 3 electrodes"):
        PlanConfig(modality="rfa", applicator_id="cooled-rf-cluster").applicator()


def test_series_uid_is_for_a_dicom_folder(capsys, tmp_path):
    """`import-case --image CT.nii.gz --series-uid 1.2.3` was accepted and the UID ignored
    (sweep of session 51)."""
    import numpy as np

    from ioplan.imaging import Grid, Volume, write_nifti

    g = Grid((4, 4, 4), (1.0, 1.0, 1.0))
    write_nifti(Volume(np.zeros(g.shape, np.int16), g), tmp_path / "ct.nii.gz")
    write_nifti(Volume(np.ones(g.shape, np.uint8), g), tmp_path / "lab.nii.gz")
    code, _, err = run_cli(capsys, "import-case", "--image", tmp_path / "ct.nii.gz", "--labels",
                           tmp_path / "lab.nii.gz", "--series-uid", "1.2.3", "--out",
                           tmp_path / "case")  # fmt: skip
    assert_one_line_error(code, err, "--series-uid", "not one")
    assert not (tmp_path / "case").exists()
