"""NIfTI and NRRD input/output, the RAS <-> LPS conversion, resampling, error cases."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from conftest import flipped_copy, permuted_copy
from ioplan.errors import (
    FileFormatError,
    InputError,
    InputFileNotFoundError,
    InvalidImageError,
    OutputExistsError,
)
from ioplan.imaging import (
    Grid,
    Volume,
    read_image,
    read_nifti,
    resample,
    resample_to_spacing,
    write_image,
    write_nifti,
)


def _oblique_grid(seed: int = 5) -> Grid:
    """A random oblique grid whose slice axis follows DICOM's cross(row, column) order."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    d = q * np.sign(np.diag(r))
    if d[:, 0] @ np.cross(d[:, 2], d[:, 1]) < 0:
        d[:, 0] = -d[:, 0]
    return Grid((5, 7, 9), (2.5, 0.9, 1.1), (-33.0, 12.5, 80.0), tuple(map(tuple, d)))


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_nifti_round_trip_keeps_values_and_geometry(tmp_path, dtype):
    g = _oblique_grid()
    arr = (np.random.default_rng(0).normal(size=g.shape) * 100).astype(dtype)
    v = Volume(arr, g)
    back = read_nifti(write_nifti(v, tmp_path / "v.nii.gz"))
    np.testing.assert_array_equal(back.array, arr)
    assert back.array.dtype == arr.dtype
    # NIfTI stores the sform in float32: ~1e-5 relative on ~100 mm values.
    assert back.grid.mismatch(g, tol_mm=1e-3) is None


def test_nifti_is_ras_on_disk(tmp_path):
    """The file holds RAS: nibabel's own affine must send voxel (i,j,k) to (-x, -y, z) LPS."""
    g = _oblique_grid(2)
    write_nifti(Volume(np.zeros(g.shape, np.int16), g), tmp_path / "v.nii")
    img = nib.load(tmp_path / "v.nii")
    assert img.shape == (g.shape[2], g.shape[1], g.shape[0])  # (i, j, k) = (x, y, z)
    ijk = np.array([4.0, 2.0, 3.0])  # = our (z, y, x) = (3, 2, 4)
    ras = img.affine @ np.append(ijk, 1.0)
    lps = g.index_to_lps((3.0, 2.0, 4.0))
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-3)
    assert int(img.header["sform_code"]) == 1


def test_nifti_geometry_matches_simpleitk(tmp_path):
    """SimpleITK converts NIfTI to LPS itself: an independent reader of the same file."""
    g = _oblique_grid(9)
    arr = np.arange(np.prod(g.shape), dtype=np.int16).reshape(g.shape)
    path = write_nifti(Volume(arr, g), tmp_path / "v.nii.gz")
    ref = sitk.ReadImage(str(path))
    ours = read_nifti(path)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ref), ours.array)
    ref_grid = Grid.from_sitk_geometry(
        ref.GetSize(), ref.GetSpacing(), ref.GetOrigin(), ref.GetDirection()
    )
    # ITK re-orthonormalises the float32 sform; both agree well below 1e-3 mm.
    assert ours.grid.mismatch(ref_grid, tol_mm=1e-3) is None


def test_nifti_written_by_nibabel_in_ras_reads_correctly(tmp_path):
    """A plain RAS-oriented file: voxel (i, j, k) at RAS (i, j, k) mm -> LPS (-i, -j, k)."""
    data = np.zeros((4, 5, 6), np.int16)
    data[1, 2, 3] = 7
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "ras.nii.gz")
    v = read_nifti(tmp_path / "ras.nii.gz")
    assert v.array.shape == (6, 5, 4)
    assert v.array[3, 2, 1] == 7
    np.testing.assert_allclose(v.grid.index_to_lps((3, 2, 1)), [-1.0, -2.0, 3.0])


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_itk_formats_round_trip(tmp_path, suffix):
    g = _oblique_grid(4)
    arr = np.random.default_rng(1).integers(-1000, 2000, size=g.shape).astype(np.int16)
    back = read_image(write_image(Volume(arr, g), tmp_path / f"v{suffix}"))
    np.testing.assert_array_equal(back.array, arr)
    assert back.grid.mismatch(g) is None


def test_nifti_to_dicom_to_nifti(tmp_path):
    g = _oblique_grid(11)
    arr = np.random.default_rng(2).integers(-1000, 1500, size=g.shape).astype(np.int16)
    n1 = read_image(write_image(Volume(arr, g), tmp_path / "a.nii.gz"))
    d = read_image(write_image(n1, tmp_path / "dicom"))
    n2 = read_image(write_image(d, tmp_path / "b.nii.gz"))
    np.testing.assert_array_equal(n2.array, arr)
    # float32 sform twice and 10-digit DICOM strings: well below 1e-3 mm.
    assert n2.grid.mismatch(g, tol_mm=1e-3) is None


def test_linear_resampling_is_exact_on_linear_fields():
    """Trilinear interpolation reproduces any linear function exactly (analytic reference)."""
    src_grid = Grid((20, 22, 24), (2.0, 2.0, 2.0), (-20.0, -20.0, -20.0))
    pts = src_grid.voxel_centres_lps()
    coeff = np.array([0.5, -1.5, 2.0])
    field = pts @ coeff + 3.0
    q, r = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))
    dst = Grid(
        (6, 7, 8), (1.3, 1.7, 0.9), (2.0, 1.0, -1.0), tuple(map(tuple, q * np.sign(np.diag(r))))
    )
    out = resample(Volume(field, src_grid), dst, interpolation="linear", default_value=np.nan)
    expected = dst.voxel_centres_lps() @ coeff + 3.0
    assert np.all(np.isfinite(out.array)), "target must lie inside the source"
    np.testing.assert_allclose(out.array, expected, atol=1e-6)


def test_nearest_resampling_keeps_labels_and_dtype():
    g = Grid((10, 10, 10), (1.0, 1.0, 1.0))
    lab = np.zeros(g.shape, np.uint8)
    lab[3:7, 3:7, 3:7] = 7
    out = resample_to_spacing(Volume(lab, g), (2.0, 2.0, 2.0), interpolation="nearest")
    assert out.array.dtype == np.uint8
    assert out.array.shape == (5, 5, 5)
    assert set(np.unique(out.array)) == {0, 7}
    # Nearest neighbour without ties: target centres at 1, 3, 5, 7, 9 mm fall exactly on
    # source voxels; the block covers source voxels 3-6, so target voxels 1 and 2 (3, 5 mm).
    target = Grid((5, 5, 5), (2.0, 2.0, 2.0), (1.0, 1.0, 1.0))
    exact = resample(Volume(lab, g), target, interpolation="nearest")
    expected = np.zeros((5, 5, 5), np.uint8)
    expected[1:3, 1:3, 1:3] = 7
    np.testing.assert_array_equal(exact.array, expected)
    # the outer voxel edges stay where they were: first centre moves by 0.5 mm
    np.testing.assert_allclose(out.grid.origin_mm, (0.5, 0.5, 0.5))
    with pytest.raises(InputError, match="interpolation"):
        resample(Volume(lab, g), g, interpolation="cubic-ish")


def test_reading_errors_are_clear(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="no such file"):
        read_image(tmp_path / "missing.nii.gz")
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(gzip.compress(b"not a nifti at all" * 10))
    with pytest.raises(FileFormatError, match=r"bad\.nii\.gz"):
        read_image(bad)
    junk = tmp_path / "x.nrrd"
    junk.write_text("garbage")
    with pytest.raises(FileFormatError, match=r"x\.nrrd"):
        read_image(junk)
    txt = tmp_path / "a.txt"
    txt.write_text("x")
    with pytest.raises(FileFormatError, match="unknown image format"):
        read_image(txt)


def test_nan_image_is_refused(tmp_path):
    g = Grid((3, 3, 3))
    arr = np.full(g.shape, np.nan, np.float32)
    path = write_nifti(Volume(arr, g), tmp_path / "nan.nii.gz")
    with pytest.raises(InvalidImageError, match="27 NaN"):
        read_image(path)
    assert np.isnan(read_image(path, allow_nan=True).array).all()


def test_writers_do_not_overwrite_without_permission(tmp_path):
    v = Volume(np.ones((2, 2, 2), np.int16), Grid((2, 2, 2)))
    p = write_nifti(v, tmp_path / "v.nii.gz")
    before = p.read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_nifti(v.with_array(np.zeros((2, 2, 2), np.int16)), p)
    assert p.read_bytes() == before
    write_nifti(v.with_array(np.zeros((2, 2, 2), np.int16)), p, overwrite=True)
    assert read_image(p).array.sum() == 0


def test_resample_default_value_must_fit_the_labels():
    g = Grid((4, 4, 4))
    lab = Volume(np.ones(g.shape, np.uint8), g)
    with pytest.raises(InputError, match="default_value"):
        resample(lab, g, interpolation="nearest", default_value=300)
    with pytest.raises(InputError, match="default_value"):
        resample(lab, g, interpolation="nearest", default_value=float("nan"))


def test_nifti_units_are_applied(tmp_path):
    """A header in metres or microns: the affine is scaled to mm (NIfTI-1 xyzt_units)."""
    data = np.zeros((2, 3, 4), np.int16)
    img = nib.Nifti1Image(data, np.diag([0.002, 0.002, 0.003, 1.0]))
    img.header.set_xyzt_units("meter")
    nib.save(img, tmp_path / "m.nii.gz")
    np.testing.assert_allclose(read_nifti(tmp_path / "m.nii.gz").grid.spacing_mm, (3.0, 2.0, 2.0))
    img = nib.Nifti1Image(data, np.diag([500.0, 500.0, 800.0, 1.0]))
    img.header.set_xyzt_units("micron")
    nib.save(img, tmp_path / "u.nii.gz")
    np.testing.assert_allclose(read_nifti(tmp_path / "u.nii.gz").grid.spacing_mm, (0.8, 0.5, 0.5))


def test_nifti_without_orientation_is_refused(tmp_path):
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
    img.set_sform(None, code=0)
    img.set_qform(None, code=0)
    nib.save(img, tmp_path / "none.nii")
    with pytest.raises(FileFormatError, match="no orientation"):
        read_nifti(tmp_path / "none.nii")


@pytest.mark.parametrize("interpolation", ["nearest", "linear"])
def test_resampling_to_a_spacing_does_not_depend_on_the_axis_order(interpolation):
    """Thick slices (5 mm) of 0.7 mm pixels, extents that are no multiple of 2 mm, resampled
    to 2 mm cubes: a copy stored with its axes flipped and permuted gives the same values at
    the same points. The grid used to start at array voxel 0, so a flipped copy's samples
    lay up to a voxel away from the original's (the anisotropic planner's grid, and so its
    plan, depended on how the file stored its axes); nearest-neighbour ties (here a new
    centre falls exactly halfway between two slices) were broken along the array."""
    rng = np.random.default_rng(5)
    g = Grid((8, 23, 19), (5.0, 0.7, 0.7), (-3.1, 4.2, -7.7))
    vol = Volume(rng.integers(0, 4, g.shape).astype(np.uint8), g)
    if interpolation == "linear":
        vol = vol.with_array(rng.normal(size=g.shape))
    copy = permuted_copy(flipped_copy(vol, (0, 2)), (2, 0, 1))
    a = resample_to_spacing(vol, (2.0, 2.0, 2.0), interpolation=interpolation)
    b = resample_to_spacing(copy, (2.0, 2.0, 2.0), interpolation=interpolation)
    # the same points: b's voxel centres are a's, at whole indices of a's grid
    idx_b = np.argwhere(np.ones(b.grid.shape, bool))
    pos = a.grid.lps_to_index(b.grid.index_to_lps(idx_b.astype(float)))
    ij = np.rint(pos).astype(int)
    np.testing.assert_allclose(pos, ij, atol=1e-9)  # rounding of the mm arithmetic only
    assert sorted(a.grid.shape) == sorted(b.grid.shape)
    got = np.asarray(b.array)[tuple(idx_b.T)]
    want = np.asarray(a.array)[tuple(ij.T)]
    if interpolation == "nearest":
        np.testing.assert_array_equal(got, want)
    else:  # linear: the same weights in another order (float64 rounding)
        np.testing.assert_allclose(got, want, atol=1e-12)
    # the case holds ties: 20 new slices over 8 old ones, the third new centre halfway
    # between old slices 0 and 1
    z_old = g.lps_to_index(a.grid.index_to_lps(np.argwhere(np.ones(a.grid.shape, bool))))[:, 0]
    assert np.any(np.abs(z_old - np.floor(z_old) - 0.5) < 1e-9)
    # the new grid is centred on the old one
    centre = g.index_to_lps((np.asarray(g.shape) - 1) / 2.0)
    np.testing.assert_allclose(a.grid.index_to_lps((np.asarray(a.grid.shape) - 1) / 2.0),
                               centre, atol=1e-9)  # fmt: skip
