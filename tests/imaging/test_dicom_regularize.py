"""Irregular DICOM series put on an even grid: missing slices, mixed spacing, gantry tilt.

Reference: each slice stores a linear field of the patient coordinates, f(p) = a . p + b,
sampled at its pixels' true positions. Bilinear in-plane shifts and linear interpolation
between slices reproduce a linear field exactly, so every regularised voxel must hold f at
the position the returned grid gives it (an independent recount from the grid), to the
int16 rescale's rounding: half a slope, range / 65534 (about 0.01 here; 0.05 allowed).
"""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest

from ioplan.errors import DicomSeriesError
from ioplan.imaging import Grid, Volume, read_dicom_series, read_image, write_dicom_series

A = np.array([2.0, 3.0, 5.0])  # field gradient per LPS mm
B = 100.0
TOL = 0.05  # int16 rescale rounding, see the module docstring
DZ = 2.5


def _f(points_mm: np.ndarray) -> np.ndarray:
    return points_mm @ A + B


def _series(folder, origins, shape=(24, 30), spacing=(1.0, 1.0)):
    """Axial slices (row +x, column +y) with corners at ``origins``, storing f."""
    rows, cols = shape
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    planes = []
    for o in origins:
        pts = np.stack([o[0] + c * spacing[1], o[1] + r * spacing[0], np.full(r.shape, o[2])], -1)
        planes.append(_f(pts))
    g = Grid((len(origins), rows, cols), (DZ, *spacing), tuple(origins[0]))
    folder = write_dicom_series(Volume(np.array(planes, np.float32), g), folder)
    files = sorted(folder.iterdir())
    for f, o in zip(files, origins, strict=True):  # the true corners, tilted or gapped
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [f"{v:.4f}" for v in o]
        ds.save_as(f)
    return files


def _recount(vol: Volume, margin_px: int = 0) -> float:
    """Largest |voxel - f(voxel's position)| away from ``margin_px`` in-plane edge pixels."""
    g = vol.grid
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in g.shape], indexing="ij"), -1)
    pts = np.asarray(g.origin_mm) + (idx * np.asarray(g.spacing_mm)) @ g.direction_matrix.T
    diff = np.abs(np.asarray(vol.array, float) - _f(pts))
    m = margin_px
    return float(diff[:, m : g.shape[1] - m, m : g.shape[2] - m].max())


def _origins(along_mm, shift_per_mm=(0.0, 0.0)):
    return [np.array([10.0 + a * shift_per_mm[0], -20.0 + a * shift_per_mm[1], 5.0 + a])
            for a in along_mm]  # fmt: skip


@pytest.mark.parametrize("dropped", [(3,), (3, 4)])
def test_missing_slices_are_interpolated_with_a_note(tmp_path, dropped):
    files = _series(tmp_path / "s", _origins(np.arange(8) * DZ))
    for k in dropped:
        files[k].unlink()
    with pytest.raises(DicomSeriesError, match="missing"):
        read_dicom_series(tmp_path / "s")  # strict by default
    notes: list[str] = []
    vol = read_image(tmp_path / "s", regularize=True, notes=notes)
    assert vol.grid.shape == (8, 24, 30) and vol.grid.spacing_mm[0] == pytest.approx(DZ)
    assert _recount(vol) < TOL
    assert len(notes) == 1 and f"{len(dropped)} missing slice(s)" in notes[0]


def test_three_missing_in_a_row_are_refused(tmp_path):
    files = _series(tmp_path / "s", _origins(np.arange(8) * DZ))
    for k in (2, 3, 4):
        files[k].unlink()
    with pytest.raises(DicomSeriesError, match="more than 2 slices missing"):
        read_dicom_series(tmp_path / "s", regularize=True)


def test_mixed_spacing_goes_to_the_finest(tmp_path):
    """Gaps of 2.5 and 4 mm (not whole multiples: not missing slices): 2.5 mm slices up to
    the last one, never beyond it (12.5 mm of the 13 mm stack; no extrapolation)."""
    along = np.cumsum([0.0, DZ, DZ, 4.0, 4.0])  # 0, 2.5, 5, 9, 13 mm
    _series(tmp_path / "s", _origins(along))
    notes: list[str] = []
    vol = read_dicom_series(tmp_path / "s", regularize=True, notes=notes)
    assert vol.grid.shape[0] == 6  # 0 ... 12.5 mm
    assert _recount(vol) < TOL
    assert "mixed slice spacing" in notes[0]


@pytest.mark.parametrize("tilt_deg", [15.0, -20.0])
def test_gantry_tilt_is_sheared_back_onto_the_normal(tmp_path, tilt_deg):
    """Each slice's corner moves along the column (y) by its height times tan(tilt)."""
    t = math.tan(math.radians(tilt_deg))
    _series(tmp_path / "s", _origins(np.arange(6) * DZ, (0.0, t)))
    with pytest.raises(DicomSeriesError, match="gantry tilt"):
        read_dicom_series(tmp_path / "s")
    notes: list[str] = []
    vol = read_dicom_series(tmp_path / "s", regularize=True, notes=notes)
    assert vol.grid.shape == (6, 24, 30)
    # the grid is the slices' own axes (an orthonormal one), not the sheared stack
    np.testing.assert_allclose(vol.grid.direction_matrix @ vol.grid.direction_matrix.T,
                               np.eye(3), atol=1e-9)  # fmt: skip
    # rows shifted in from outside a slice's view (up to 12.5 mm x tan: 3.4 / 4.6 px) are
    # filled, not data: the recount leaves 5 edge pixels out
    assert _recount(vol, margin_px=5) < TOL
    assert "gantry tilt" in notes[0]
    assert f"{abs(tilt_deg):.1f} degrees" in notes[0]


def test_regular_series_is_read_as_it_is(tmp_path):
    """No note, no resampling: the stored values come back bit for bit (int16 stays)."""
    _series(tmp_path / "s", _origins(np.arange(4) * DZ))
    notes: list[str] = []
    strict = read_dicom_series(tmp_path / "s")
    vol = read_dicom_series(tmp_path / "s", regularize=True, notes=notes)
    assert notes == []
    assert vol.array.dtype == strict.array.dtype
    np.testing.assert_array_equal(vol.array, strict.array)


def test_regularize_is_refused_for_an_image_already_on_a_grid(tmp_path):
    """A NIfTI has one grid by construction: the option would do nothing, so it is refused
    (as --series-uid is), not silently ignored."""
    from ioplan.errors import InputError
    from ioplan.imaging import write_nifti

    g = Grid((3, 4, 5), (2.0, 1.0, 1.0))
    path = write_nifti(Volume(np.zeros(g.shape, np.int16), g), tmp_path / "ct.nii.gz")
    with pytest.raises(InputError, match="leave --regularize out"):
        read_image(path, regularize=True)
