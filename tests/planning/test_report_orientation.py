"""Plan figures show the patient in the radiological convention whatever the file's axes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from conftest import flipped_copy
from ioplan.anatomy import Case, Label
from ioplan.imaging import Volume, axial_volume
from ioplan.planning import display_volumes


def _fake_plan(case: Case) -> SimpleNamespace:
    lab = np.asarray(case.labels.array)
    zone = Volume((lab == Label.TUMOR).astype(np.uint8), case.labels.grid)
    tmax = Volume(np.where(lab == Label.TUMOR, 70.0, 37.0), case.labels.grid)
    return SimpleNamespace(modality="mwa", zone=zone, tmax=tmax, tmin=None)


def test_ras_and_lps_copies_give_the_same_pictures_with_the_liver_on_the_image_left(small_case):
    ras = Case(flipped_copy(small_case.image), flipped_copy(small_case.labels), name="ras",
               modality="CT", tumors=small_case.tumors)  # fmt: skip
    shown = []
    for case in (small_case, ras):
        lab = np.asarray(case.labels.array)
        mask = lab == Label.TUMOR
        grid, arrays = display_volumes(case, _fake_plan(case), mask, mask)
        shown.append((grid, arrays))
    (g1, a1), (g2, a2) = shown
    assert g1.mismatch(g2) is None
    for key in a1:
        assert np.array_equal(a1[key], a2[key]), key
    # anatomy, not code: the liver lies on the patient's right, i.e. in the left half of a
    # radiological axial slice, also when the file was stored RAS (x reversed on disk)
    shown_labels = np.asarray(axial_volume(ras.labels, labels=True).array)
    assert np.nonzero(shown_labels == Label.LIVER)[2].mean() < shown_labels.shape[2] / 2
    stored = np.asarray(ras.labels.array)
    assert np.nonzero(stored == Label.LIVER)[2].mean() > stored.shape[2] / 2  # on disk: right


def test_mr_slices_get_a_window_from_their_own_signal():
    from ioplan.planning._outputs import display_window
    from ioplan.report import CT_WINDOW_HU

    mr = np.concatenate([np.zeros(100), np.linspace(100.0, 1100.0, 1001)])  # arbitrary units
    lo, hi = display_window(mr, "MR")
    # 1st and 99th percentiles of the non-zero signal, computed by hand: 100 + 10 and 1090
    assert lo == pytest.approx(110.0) and hi == pytest.approx(1090.0)
    assert display_window(mr, "CT") == CT_WINDOW_HU
