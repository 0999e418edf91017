"""DICOM series: geometry and values against SimpleITK/GDCM and the headers, errors, anonymity.

Every reference value comes from outside the code under test: the decimal
strings written in DICOM headers, pydicom's decoded pixels, or SimpleITK
(ITK's GDCM reader), which sorts and places slices with its own code.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from ioplan.errors import (
    DicomSeriesError,
    FileFormatError,
    InputFileNotFoundError,
    InvalidImageError,
    OutputExistsError,
)
from ioplan.imaging import (
    Grid,
    Volume,
    dicom_series_grid,
    read_dicom_series,
    read_nifti,
    write_dicom_series,
    write_nifti,
)

CT_SMALL = "CT_small.dcm"
MR_SMALL = "MR_small.dcm"
J2K_OBLIQUE = "J2K_pixelrep_mismatch.dcm"

# Both ioplan and SimpleITK parse the same decimal strings into float64 and
# at most normalise the cosines: any difference beyond float64 rounding of
# values of order 100 mm (~1e-13) is a real disagreement. 1e-6 leaves room
# for GDCM's own normalisation/orthogonalisation without hiding errors.
HEADER_ATOL = 1e-6
# Geometry rebuilt from positions (series spacing, oblique cosines written
# with 10 significant digits): the brief's 1e-4 mm, far below a voxel.
SERIES_ATOL = 1e-4


def _fmt(v: float) -> str:
    """A DICOM DS string (at most 16 characters: 10 significant digits fit)."""
    s = f"{float(v):.10g}"
    assert len(s) <= 16
    return s


def _sitk_direction(direction) -> np.ndarray:
    """SimpleITK's row-major direction: column i is the LPS vector of sitk index axis i."""
    return np.asarray(direction, dtype=float).reshape(3, 3)


def _assert_grid_matches_sitk(
    grid: Grid, size, spacing, origin, direction, *, atol: float, slice_spacing: bool = True
) -> None:
    """Compare column by column with SimpleITK's (x, y, z)-ordered geometry."""
    d = _sitk_direction(direction)
    assert grid.shape == (size[2], size[1], size[0])
    np.testing.assert_allclose(grid.origin_mm, origin, atol=atol, rtol=0)
    # array axis x (2) <-> sitk axis 0, array y (1) <-> sitk 1, array z (0) <-> sitk 2
    np.testing.assert_allclose(grid.spacing_mm[2], spacing[0], atol=atol, rtol=0)
    np.testing.assert_allclose(grid.spacing_mm[1], spacing[1], atol=atol, rtol=0)
    if slice_spacing:
        np.testing.assert_allclose(grid.spacing_mm[0], spacing[2], atol=atol, rtol=0)
    dm = grid.direction_matrix
    np.testing.assert_allclose(dm[:, 2], d[:, 0], atol=atol, rtol=0)
    np.testing.assert_allclose(dm[:, 1], d[:, 1], atol=atol, rtol=0)
    np.testing.assert_allclose(dm[:, 0], d[:, 2], atol=atol, rtol=0)


def _sitk_series(folder: Path) -> sitk.Image:
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    return reader.Execute()


def _assert_volume_matches_sitk(vol: Volume, image: sitk.Image, *, atol: float) -> None:
    _assert_grid_matches_sitk(
        vol.grid,
        image.GetSize(),
        image.GetSpacing(),
        image.GetOrigin(),
        image.GetDirection(),
        atol=atol,
    )


def _assert_files_in_dicom_order(folder: Path) -> list[np.ndarray]:
    """Header check: IM00001.dcm ... and InstanceNumber run along cross(row, col).

    Returns the ImagePositionPatient of each file, in file-name order.
    """
    files = sorted(folder.glob("IM*.dcm"))
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert [int(h.InstanceNumber) for h in headers] == list(range(1, len(files) + 1))
    iop = np.array([float(v) for v in headers[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    ipps = [np.array([float(v) for v in h.ImagePositionPatient]) for h in headers]
    along = np.array([ipp @ normal for ipp in ipps])
    assert np.all(np.diff(along) > 0), along
    return ipps


def _rodrigues(axis, angle_deg: float) -> np.ndarray:
    """Rotation matrix about ``axis`` (written out here, independent of ioplan)."""
    k = np.asarray(axis, dtype=float)
    k = k / np.linalg.norm(k)
    t = np.deg2rad(angle_deg)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * (kx @ kx)


def _random_rotation(seed: int) -> np.ndarray:
    """A proper rotation (det +1): columns are SimpleITK's x, y, z axes in LPS."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _ioplan_direction(rot_xyz: np.ndarray) -> tuple[tuple[float, ...], ...]:
    """ioplan's (z, y, x) column order of a SimpleITK-order direction."""
    return tuple(map(tuple, rot_xyz[:, ::-1]))


def _write_ct_series(
    folder: Path,
    positions,
    *,
    row=(1.0, 0.0, 0.0),
    col=(0.0, 1.0, 0.0),
    names=None,
    offsets=None,
    series_uid: str | None = None,
    pixel_spacing=None,
    patient_name: str | None = None,
) -> list[Path]:
    """Copies of CT_small.dcm at ``positions``; slice k stores CT_small's pixels + offsets[k]."""
    template = pydicom.dcmread(get_testdata_file(CT_SMALL))
    stored = template.pixel_array.astype(np.int32)
    folder.mkdir(parents=True, exist_ok=True)
    n = len(positions)
    names = names or [f"IM{k:03d}.dcm" for k in range(n)]
    offsets = [10 * k for k in range(n)] if offsets is None else offsets
    paths = []
    for k, pos in enumerate(positions):
        ds = copy.deepcopy(template)
        ds.ImageOrientationPatient = [_fmt(v) for v in (*row, *col)]
        ds.ImagePositionPatient = [_fmt(v) for v in pos]
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = n - k  # misleading on purpose: reversed
        if series_uid is not None:
            ds.SeriesInstanceUID = series_uid
        if pixel_spacing is not None and pixel_spacing[k] is not None:
            ds.PixelSpacing = [_fmt(v) for v in pixel_spacing[k]]
        if patient_name is not None:
            ds.PatientName = patient_name
        ds.PixelData = (stored + offsets[k]).astype("<i2").tobytes()
        p = folder / names[k]
        ds.save_as(p)
        paths.append(p)
    return paths


def _positions(ipp0, normal, gaps_mm) -> list[np.ndarray]:
    along = np.concatenate([[0.0], np.cumsum(gaps_mm)])
    return [np.asarray(ipp0, dtype=float) + a * np.asarray(normal, dtype=float) for a in along]


def _ct_header():
    ds = pydicom.dcmread(get_testdata_file(CT_SMALL), stop_before_pixels=True)
    return [float(v) for v in ds.ImagePositionPatient], [float(v) for v in ds.PixelSpacing]


# -- 1. pydicom's real test files ------------------------------------------------
@pytest.mark.parametrize("name", [CT_SMALL, MR_SMALL, J2K_OBLIQUE])
def test_single_file_geometry_matches_simpleitk_and_header(name):
    path = get_testdata_file(name)
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    grid = dicom_series_grid(path)
    # A single file has no slice gap; readers fall back to different tags, so
    # only the in-plane spacing is compared.
    _assert_grid_matches_sitk(
        grid,
        reader.GetSize(),
        reader.GetSpacing(),
        reader.GetOrigin(),
        reader.GetDirection(),
        atol=HEADER_ATOL,
        slice_spacing=False,
    )
    # And against the header strings themselves.
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    row, col = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    np.testing.assert_allclose(grid.origin_mm, [float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_allclose(grid.spacing_mm[1:], [float(v) for v in ds.PixelSpacing])
    np.testing.assert_allclose(grid.direction_matrix[:, 2], row, atol=HEADER_ATOL)
    np.testing.assert_allclose(grid.direction_matrix[:, 1], col, atol=HEADER_ATOL)
    np.testing.assert_allclose(grid.direction_matrix[:, 0], np.cross(row, col), atol=HEADER_ATOL)
    assert grid.shape == (1, int(ds.Rows), int(ds.Columns))
    if name == J2K_OBLIQUE:
        assert not grid.is_axis_aligned()


@pytest.mark.parametrize("name", [CT_SMALL, MR_SMALL])
def test_single_file_values_match_simpleitk_and_pydicom(name):
    path = get_testdata_file(name)
    vol = read_dicom_series(path)
    assert vol.grid.mismatch(dicom_series_grid(path)) is None
    image = sitk.ReadImage(path)
    _assert_grid_matches_sitk(
        vol.grid,
        image.GetSize(),
        image.GetSpacing(),
        image.GetOrigin(),
        image.GetDirection(),
        atol=HEADER_ATOL,
        slice_spacing=False,
    )
    ref = sitk.GetArrayFromImage(image)
    assert ref.shape == vol.array.shape
    np.testing.assert_array_equal(vol.array, ref)  # integers: exact
    ds = pydicom.dcmread(path)
    slope = float(ds.get("RescaleSlope", 1))
    intercept = float(ds.get("RescaleIntercept", 0))
    np.testing.assert_array_equal(vol.array[0], ds.pixel_array * slope + intercept)
    if name == CT_SMALL:
        assert intercept == -1024.0  # HU, so the rescale was really exercised
        assert vol.array.min() < 0


# -- 2./3. multi-slice series with misleading file names ---------------------------
MISLEADING_NAMES = ["z9.dcm", "a1.dcm", "IM10.dcm", "IM2.dcm", "b.dcm", "00.dcm"]


@pytest.mark.parametrize("oblique", [False, True], ids=["axial", "oblique30"])
def test_series_sorted_by_position_and_matches_simpleitk(tmp_path, oblique):
    ipp0, _ = _ct_header()
    if oblique:
        rot = _rodrigues((1.0, 2.0, 3.0), 30.0)
        row, col = rot @ [1.0, 0.0, 0.0], rot @ [0.0, 1.0, 0.0]
    else:
        row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    normal = np.cross(row, col)
    n, gap = 6, 2.5
    positions = _positions(ipp0, normal, [gap] * (n - 1))
    # Alphabetical order of the names is not the position order.
    assert sorted(MISLEADING_NAMES) != MISLEADING_NAMES
    folder = tmp_path / "series"
    _write_ct_series(folder, positions, row=row, col=col, names=MISLEADING_NAMES)

    vol = read_dicom_series(folder)
    base = pydicom.dcmread(get_testdata_file(CT_SMALL)).pixel_array.astype(np.int32) - 1024
    assert vol.shape == (n, 128, 128)
    for k in range(n):
        np.testing.assert_array_equal(vol.array[k], base + 10 * k)
    # Against the values written in the headers (positions rounded to 10 digits).
    np.testing.assert_allclose(vol.grid.spacing_mm[0], gap, atol=SERIES_ATOL)
    np.testing.assert_allclose(vol.grid.origin_mm, positions[0], atol=SERIES_ATOL)
    np.testing.assert_allclose(vol.grid.direction_matrix[:, 0], normal, atol=SERIES_ATOL)
    np.testing.assert_allclose(vol.grid.direction_matrix[:, 1], col, atol=SERIES_ATOL)
    np.testing.assert_allclose(vol.grid.direction_matrix[:, 2], row, atol=SERIES_ATOL)
    assert vol.grid.mismatch(dicom_series_grid(folder)) is None

    image = _sitk_series(folder)
    _assert_volume_matches_sitk(vol, image, atol=SERIES_ATOL)
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(image))


# -- 4. round trips ----------------------------------------------------------------
def _oblique_grid(shape=(5, 7, 9), seed=11, *, flip_slices=False) -> Grid:
    d = np.array(_ioplan_direction(_random_rotation(seed)))
    if flip_slices:
        d[:, 0] = -d[:, 0]  # first column = -cross(row, col)
    return Grid(shape, (2.5, 0.8, 1.3), (-12.3, 45.6, 78.9), tuple(map(tuple, d)))


def test_int16_round_trip_oblique_matches_and_simpleitk_agrees(tmp_path):
    grid = _oblique_grid()
    assert not grid.is_axis_aligned()
    rng = np.random.default_rng(5)
    arr = rng.integers(-1024, 3072, size=grid.shape).astype(np.int16)
    arr[0, 0, 0], arr[-1, -1, -1] = -32768, 32767  # int16 extremes stay exact
    original = Volume(arr, grid)
    folder = write_dicom_series(original, tmp_path / "out")
    back = read_dicom_series(folder)
    np.testing.assert_array_equal(back.array, arr)
    assert back.grid.mismatch(grid, tol_mm=SERIES_ATOL) is None
    ipps = _assert_files_in_dicom_order(folder)
    for k, ipp in enumerate(ipps):
        np.testing.assert_allclose(ipp, grid.index_to_lps((k, 0, 0)), atol=SERIES_ATOL, rtol=0)

    image = _sitk_series(folder)
    _assert_grid_matches_sitk(
        grid,
        image.GetSize(),
        image.GetSpacing(),
        image.GetOrigin(),
        image.GetDirection(),
        atol=SERIES_ATOL,
    )
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), arr)


def test_float_round_trip_within_half_the_rescale_slope(tmp_path):
    grid = _oblique_grid(seed=23)
    rng = np.random.default_rng(8)
    arr = rng.normal(37.0, 20.0, size=grid.shape)
    folder = write_dicom_series(Volume(arr, grid), tmp_path / "out")
    back = read_dicom_series(folder)
    # Quantisation to int16 over the data range: at most half a step, plus the
    # float32 rounding of the returned values (a few ulps at the largest |value|)
    # and the 10-digit rounding of slope/intercept (~1e-10 relative).
    bound = (arr.max() - arr.min()) / 65534 / 2 + 4 * np.finfo(np.float32).eps * np.abs(arr).max()
    assert np.abs(back.array - arr).max() <= bound
    assert back.grid.mismatch(grid, tol_mm=SERIES_ATOL) is None

    image = _sitk_series(folder)
    _assert_volume_matches_sitk(back, image, atol=SERIES_ATOL)
    assert np.abs(sitk.GetArrayFromImage(image) - arr).max() <= bound


def test_nifti_to_dicom_round_trip(tmp_path):
    grid = _oblique_grid(shape=(4, 6, 5), seed=3)
    arr = np.random.default_rng(1).integers(-500, 1500, size=grid.shape).astype(np.int16)
    original = Volume(arr, grid)
    nii = write_nifti(original, tmp_path / "img.nii.gz")
    from_nii = read_nifti(nii)
    # NIfTI stores the sform as float32: ~1e-5 mm at 100 mm, inside 1e-4.
    assert from_nii.grid.mismatch(grid, tol_mm=SERIES_ATOL) is None
    np.testing.assert_array_equal(from_nii.array, arr)
    # SimpleITK's NIfTI reader (RAS -> LPS on its own) agrees.
    ref = sitk.ReadImage(str(nii))
    _assert_grid_matches_sitk(
        grid, ref.GetSize(), ref.GetSpacing(), ref.GetOrigin(), ref.GetDirection(), atol=1e-4
    )
    folder = write_dicom_series(from_nii, tmp_path / "dcm")
    back = read_dicom_series(folder)
    np.testing.assert_array_equal(back.array, arr)
    assert back.grid.mismatch(grid, tol_mm=SERIES_ATOL) is None


def test_flipped_slice_axis_reads_back_as_same_physical_image(tmp_path):
    grid = _oblique_grid(seed=17, flip_slices=True)
    d = grid.direction_matrix
    # The slice axis points against cross(row, col): DICOM readers sort the other way.
    assert d[:, 0] @ np.cross(d[:, 2], d[:, 1]) < -0.999
    arr = np.random.default_rng(2).integers(-100, 100, size=grid.shape).astype(np.int16)
    original = Volume(arr, grid)
    folder = write_dicom_series(original, tmp_path / "out")
    # Written in DICOM order: the first file holds the original's last slice.
    nz = grid.shape[0]
    ipps = _assert_files_in_dicom_order(folder)
    for k, ipp in enumerate(ipps):
        np.testing.assert_allclose(
            ipp, grid.index_to_lps((nz - 1 - k, 0, 0)), atol=SERIES_ATOL, rtol=0
        )
    back = read_dicom_series(folder)
    np.testing.assert_array_equal(back.array, arr[::-1])
    idx = np.stack(np.meshgrid(*(np.arange(s) for s in grid.shape), indexing="ij"), axis=-1)
    idx_back = idx.copy()
    idx_back[..., 0] = nz - 1 - idx[..., 0]
    np.testing.assert_allclose(
        back.grid.index_to_lps(idx_back), grid.index_to_lps(idx), atol=SERIES_ATOL, rtol=0
    )
    np.testing.assert_allclose(back.grid.direction_matrix[:, 0], -d[:, 0], atol=SERIES_ATOL)
    # Independent reader: SimpleITK sees the same geometry and values.
    image = _sitk_series(folder)
    _assert_volume_matches_sitk(back, image, atol=SERIES_ATOL)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), arr[::-1])


# -- 5. errors ---------------------------------------------------------------------
def test_text_file_is_not_dicom(tmp_path):
    p = tmp_path / "x.dcm"
    p.write_text("this is not a DICOM file\n")
    with pytest.raises(FileFormatError, match=re.escape(str(p))):
        read_dicom_series(p)
    with pytest.raises(FileFormatError, match=re.escape(str(p))):
        dicom_series_grid(p)


def test_empty_folder(tmp_path):
    folder = tmp_path / "empty_dir"
    folder.mkdir()
    with pytest.raises(FileFormatError, match="empty_dir"):
        read_dicom_series(folder)


def test_missing_path(tmp_path):
    p = tmp_path / "nowhere"
    with pytest.raises(InputFileNotFoundError, match="nowhere"):
        read_dicom_series(p)
    with pytest.raises(FileNotFoundError):
        dicom_series_grid(p)


def test_missing_middle_slice(tmp_path):
    ipp0, _ = _ct_header()
    paths = _write_ct_series(tmp_path / "s", _positions(ipp0, (0, 0, 1), [2.5] * 5))
    paths[3].unlink()
    with pytest.raises(DicomSeriesError, match="missing"):
        read_dicom_series(tmp_path / "s")


def test_mixed_slice_spacing(tmp_path):
    ipp0, _ = _ct_header()
    _write_ct_series(tmp_path / "s", _positions(ipp0, (0, 0, 1), [2.5, 2.5, 4.0, 4.0]))
    with pytest.raises(DicomSeriesError, match="spacing"):
        read_dicom_series(tmp_path / "s")


def test_two_series_in_one_folder(tmp_path):
    ipp0, _ = _ct_header()
    uid_a, uid_b = generate_uid(), generate_uid()
    folder = tmp_path / "s"
    pos = _positions(ipp0, (0, 0, 1), [2.5, 2.5])
    _write_ct_series(folder, pos, series_uid=uid_a, names=["a0.dcm", "a1.dcm", "a2.dcm"])
    pos_b = _positions(ipp0, (0, 0, 1), [3.0, 3.0, 3.0])
    _write_ct_series(
        folder,
        pos_b,
        series_uid=uid_b,
        names=["b0.dcm", "b1.dcm", "b2.dcm", "b3.dcm"],
        offsets=[500, 600, 700, 800],
    )
    with pytest.raises(DicomSeriesError) as info:
        read_dicom_series(folder)
    # The listing names each series by number and size, never by UID (PS3.15).
    msg = str(info.value)
    assert "3 images" in msg and "4 images" in msg
    assert uid_a not in msg and uid_b not in msg
    a = read_dicom_series(folder, series_uid=uid_a)
    b = read_dicom_series(folder, series_uid=uid_b)
    assert a.shape[0] == 3 and b.shape[0] == 4
    by_number = {read_dicom_series(folder, series_uid=f"#{k}").shape[0] for k in (1, 2)}
    assert by_number == {3, 4}
    with pytest.raises(DicomSeriesError, match="#3 does not exist"):
        read_dicom_series(folder, series_uid="#3")
    base = pydicom.dcmread(get_testdata_file(CT_SMALL)).pixel_array.astype(np.int32) - 1024
    np.testing.assert_array_equal(b.array[2], base + 700)
    np.testing.assert_allclose(b.grid.spacing_mm[0], 3.0, atol=SERIES_ATOL)
    np.testing.assert_allclose(a.grid.spacing_mm[0], 2.5, atol=SERIES_ATOL)


def test_a_localizer_in_the_series_is_left_out(tmp_path):
    """A scout (ImageType ORIGINAL\\PRIMARY\\LOCALIZER, coronal) stored in the series of
    three axial slices: the volume is the axial slices, as without it (it was refused with
    'slices have different orientations'). A series of localizers alone is still read."""
    ipp0, _ = _ct_header()
    uid = generate_uid()
    folder = tmp_path / "s"
    pos = _positions(ipp0, (0, 0, 1), [2.5, 2.5])
    _write_ct_series(folder, pos, series_uid=uid)
    alone = read_dicom_series(folder)
    (scout,) = _write_ct_series(tmp_path / "scout", [np.add(ipp0, (0.0, 40.0, 0.0))],
                                row=(1.0, 0.0, 0.0), col=(0.0, 0.0, -1.0), series_uid=uid,
                                names=["scout.dcm"])  # fmt: skip
    ds = pydicom.dcmread(scout)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.save_as(folder / "scout.dcm")
    vol = read_dicom_series(folder)
    assert vol.grid == alone.grid
    np.testing.assert_array_equal(vol.array, alone.array)
    # without the ImageType it is an image of the series: refused, not guessed away
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.save_as(folder / "scout.dcm")
    with pytest.raises(DicomSeriesError, match="different orientations"):
        read_dicom_series(folder)
    # the localizer alone (its own folder) is an image like any other
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.save_as(scout)
    assert read_dicom_series(scout.parent).shape[0] == 1


def test_series_uid_ignores_other_series_without_geometry(tmp_path):
    ipp0, _ = _ct_header()
    uid = generate_uid()
    folder = tmp_path / "s"
    _write_ct_series(folder, _positions(ipp0, (0, 0, 1), [2.5, 2.5]), series_uid=uid)
    (p,) = _write_ct_series(folder, [ipp0], series_uid=generate_uid(), names=["screenshot.dcm"])
    ds = pydicom.dcmread(p)
    del ds.ImageOrientationPatient
    del ds.ImagePositionPatient
    ds.save_as(p)
    assert read_dicom_series(folder, series_uid=uid).shape == (3, 128, 128)


def test_duplicate_position(tmp_path):
    ipp0, _ = _ct_header()
    _write_ct_series(tmp_path / "s", _positions(ipp0, (0, 0, 1), [2.5, 0.0, 2.5]))
    with pytest.raises(DicomSeriesError, match="same position"):
        read_dicom_series(tmp_path / "s")


def test_mixed_pixel_spacing(tmp_path):
    ipp0, ps = _ct_header()
    _write_ct_series(
        tmp_path / "s",
        _positions(ipp0, (0, 0, 1), [2.5, 2.5]),
        pixel_spacing=[None, (0.7, 0.7), None],
    )
    assert ps != [0.7, 0.7]
    with pytest.raises(DicomSeriesError, match="pixel spacing"):
        read_dicom_series(tmp_path / "s")


def test_write_refuses_non_empty_folder(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    (folder / "IM00001.dcm").write_bytes(b"precious")
    vol = Volume(np.zeros((2, 3, 4), np.int16), Grid((2, 3, 4)))
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_dicom_series(vol, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["IM00001.dcm", "notes.txt"]
    assert (folder / "notes.txt").read_text() == "keep me"
    assert (folder / "IM00001.dcm").read_bytes() == b"precious"


# -- 6. patient data -----------------------------------------------------------------
@pytest.mark.parametrize("patient_id", [None, "CASE-007"])
def test_written_series_is_anonymous(tmp_path, patient_id):
    vol = Volume(np.zeros((3, 4, 5), np.int16), Grid((3, 4, 5)))
    kwargs = {} if patient_id is None else {"patient_id": patient_id}
    folder = write_dicom_series(vol, tmp_path / "out", **kwargs)
    files = sorted(folder.iterdir())
    assert len(files) == 3
    for f in files:
        ds = pydicom.dcmread(f)
        assert "PatientName" not in ds or str(ds.PatientName) == ""
        assert ds.PatientID == (patient_id or "ANONYMOUS")


def test_error_messages_hide_patient_name(tmp_path):
    ipp0, _ = _ct_header()
    name = "Doe^John"
    messages = []

    def _msg(folder: Path, **kw) -> str:
        with pytest.raises(FileFormatError) as info:
            read_dicom_series(folder, **kw)
        return str(info.value)

    # missing slice
    paths = _write_ct_series(
        tmp_path / "gap", _positions(ipp0, (0, 0, 1), [2.5] * 3), patient_name=name
    )
    paths[1].unlink()
    messages.append(_msg(tmp_path / "gap"))
    # duplicate position
    _write_ct_series(tmp_path / "dup", _positions(ipp0, (0, 0, 1), [0.0]), patient_name=name)
    messages.append(_msg(tmp_path / "dup"))
    # undecodable pixel data (truncated)
    (p,) = _write_ct_series(tmp_path / "bad", [ipp0], patient_name=name)
    ds = pydicom.dcmread(p)
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(p)
    messages.append(_msg(tmp_path / "bad"))
    # unknown series uid
    messages.append(_msg(tmp_path / "dup", series_uid="1.2.3"))
    assert pydicom.dcmread(p).PatientName == name  # the name really is in the files
    for m in messages:
        assert "Doe" not in m and "John" not in m, m


def test_truncated_pixel_data_is_a_clear_error():
    """pydicom ships MR_truncated.dcm: pixel data shorter than Rows x Columns."""
    path = get_testdata_file("MR_truncated.dcm")
    with pytest.raises(FileFormatError, match="cannot decode pixel data"):
        read_dicom_series(path)


def test_multiframe_is_refused_with_a_reason():
    """rtdose.dcm (pydicom test data) holds 15 frames in one file."""
    with pytest.raises(FileFormatError, match="multi-frame"):
        read_dicom_series(get_testdata_file("rtdose.dcm"))


@pytest.mark.parametrize("keep_bytes", [150, 600, 900])
def test_corrupt_slice_is_not_silently_dropped(tmp_path, keep_bytes):
    """A slice cut short (in the file meta, in the dataset before Rows, in the pixel data)
    must stop the read: skipping it would shift the origin or leave a gap unnoticed."""
    g = Grid((4, 3, 3), (2.0, 1.0, 1.0))
    folder = write_dicom_series(Volume(np.zeros(g.shape, np.int16), g), tmp_path / "s")
    first = folder / "IM00001.dcm"
    first.write_bytes(first.read_bytes()[:keep_bytes])
    with pytest.raises(FileFormatError, match=r"IM00001\.dcm"):
        read_dicom_series(folder)


def test_nan_volume_is_not_written_as_dicom(tmp_path):
    g = Grid((2, 2, 2))
    arr = np.zeros(g.shape, np.float32)
    arr[0, 0, 0] = np.nan
    with pytest.raises(InvalidImageError, match="NaN"):
        write_dicom_series(Volume(arr, g), tmp_path / "s")
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())
