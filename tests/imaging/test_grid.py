"""Grid geometry: index <-> LPS mapping, SimpleITK order, affines."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from ioplan.errors import GeometryMismatchError, InputError
from ioplan.imaging import AXIAL_DIRECTION, Grid, Volume, from_sitk, to_sitk


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def test_axial_grid_maps_axes_to_lps():
    g = Grid((5, 6, 7), (3.0, 2.0, 1.0), (10.0, 20.0, 30.0))
    # one step along array axis x -> +1 mm along patient x (left), etc.
    assert g.index_to_lps((0, 0, 1)).tolist() == [11.0, 20.0, 30.0]
    assert g.index_to_lps((0, 1, 0)).tolist() == [10.0, 22.0, 30.0]
    assert g.index_to_lps((1, 0, 0)).tolist() == [10.0, 20.0, 33.0]
    assert g.voxel_volume_ml == pytest.approx(6.0 / 1000.0)


def test_grid_matches_simpleitk_physical_points():
    """ITK's TransformContinuousIndexToPhysicalPoint is the independent reference."""
    rng = np.random.default_rng(7)
    d = _rotation(rng)
    g = Grid((4, 5, 6), (2.5, 0.7, 1.3), (-12.0, 40.0, 7.5), tuple(map(tuple, d)))
    img = to_sitk(Volume(np.zeros(g.shape, np.float32), g))
    for idx_zyx in [(0, 0, 0), (1, 2, 3), (3, 4, 5), (0.5, 1.25, 2.75)]:
        ours = g.index_to_lps(idx_zyx)
        ref = img.TransformContinuousIndexToPhysicalPoint([float(v) for v in idx_zyx[::-1]])
        # float64 arithmetic on values of order 100 mm: 1e-9 mm is rounding only.
        np.testing.assert_allclose(ours, ref, atol=1e-9)
    back = from_sitk(img).grid
    assert back.mismatch(g) is None


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0.1, 5.0), min_size=3, max_size=3),
    st.lists(st.floats(-500, 500), min_size=3, max_size=3),
    st.integers(0, 2**31 - 1),
    st.lists(st.floats(-50, 50), min_size=3, max_size=3),
)
def test_index_lps_round_trip(spacing, origin, seed, idx):
    d = _rotation(np.random.default_rng(seed))
    g = Grid((3, 3, 3), spacing, origin, tuple(map(tuple, d)))
    back = g.lps_to_index(g.index_to_lps(idx))
    # inverse via the transposed direction: error is float64 rounding of ~1e3 mm values
    np.testing.assert_allclose(back, idx, atol=1e-8)


def test_affine_round_trip_and_shear_rejected():
    d = _rotation(np.random.default_rng(1))
    g = Grid((2, 3, 4), (1.5, 0.8, 0.8), (1.0, 2.0, 3.0), tuple(map(tuple, d)))
    assert Grid.from_affine(g.shape, g.affine).mismatch(g) is None
    sheared = g.affine.copy()
    sheared[0, 1] += 0.3
    with pytest.raises(InputError, match="sheared"):
        Grid.from_affine(g.shape, sheared)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (0, 2, 2)}, "shape"),
        ({"shape": (2, 2)}, "shape"),
        ({"shape": (2, 2, 2), "spacing_mm": (1, -1, 1)}, "spacing_mm"),
        ({"shape": (2, 2, 2), "spacing_mm": (1, np.nan, 1)}, "spacing_mm"),
        ({"shape": (2, 2, 2), "direction": ((1, 0, 0), (1, 0, 0), (0, 0, 1))}, "orthonormal"),
    ],
)
def test_invalid_grids_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        Grid(**kwargs)


def test_volume_shape_must_match_grid():
    with pytest.raises(InputError, match="does not match"):
        Volume(np.zeros((2, 3, 4)), Grid((2, 3, 5)))


def test_require_same_reports_the_difference():
    a = Grid((2, 3, 4), (1.0, 1.0, 1.0))
    b = Grid((2, 3, 4), (1.0, 1.0, 1.0), origin_mm=(0.0, 0.0, 1.0))
    with pytest.raises(GeometryMismatchError, match="origin_mm"):
        a.require_same(b)


def test_axis_coordinates_follow_index_to_lps():
    g = Grid((3, 4, 5), (2.0, 1.5, 0.5), (-1.0, -2.0, -3.0), AXIAL_DIRECTION)
    z, y, x = g.axis_coordinates_mm()
    pts = g.voxel_centres_lps()
    np.testing.assert_allclose(pts[:, 0, 0, 2], z)
    np.testing.assert_allclose(pts[0, :, 0, 1], y)
    np.testing.assert_allclose(pts[0, 0, :, 0], x)


def test_sitk_array_order_is_zyx():
    """SimpleITK's GetArrayFromImage is the reference for the (z, y, x) index order."""
    arr = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    v = Volume(arr, Grid(arr.shape, (3.0, 2.0, 1.0)))
    img = to_sitk(v)
    assert img.GetSize() == (4, 3, 2)
    assert img.GetSpacing() == (1.0, 2.0, 3.0)
    assert img.GetPixel(3, 2, 1) == arr[1, 2, 3]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), arr)
