"""Zero, negative or NaN voxel spacing is refused when read, in every format.

Readers repair such headers silently (nibabel sets a zero ``pixdim`` to 1 and a negative
one to its absolute value), and a 1 mm voxel where the file says 0 gave a margin of
-34.7 mm (issue 15). Each case below hand-edits one header field of a valid file.
"""

from __future__ import annotations

import struct

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from ioplan.errors import FileFormatError
from ioplan.imaging import Grid, Volume, read_image, write_dicom_series

BAD = [0.0, -2.0, float("nan")]
_PIXDIM_Z = 76 + 4 * 3  # NIfTI-1: pixdim[3] (float32) at byte 88
_QFORM_CODE, _SFORM_CODE = 252, 254


def _nifti_bytes(endian: str = "<") -> bytearray:
    """A valid 6x5x4 NIfTI-1 (1 mm voxels, qform and sform code 1)."""
    a = np.zeros((6, 5, 4), np.uint8)
    img = nib.Nifti1Image(a, np.eye(4))
    img.set_sform(np.eye(4), 1)
    img.set_qform(np.eye(4), 1)
    if endian == ">":
        img = nib.Nifti1Image(a, np.eye(4), header=img.header.as_byteswapped(">"))
    return bytearray(img.to_bytes())


@pytest.mark.parametrize("z", BAD)
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_pixdim_is_refused_not_repaired(tmp_path, z, suffix):
    """qform only: nibabel would read pixdim 0 as 1 mm and -2 as 2 mm."""
    import gzip

    b = _nifti_bytes()
    struct.pack_into("<f", b, _PIXDIM_Z, z)
    struct.pack_into("<h", b, _SFORM_CODE, 0)
    path = tmp_path / f"z{suffix}"
    path.write_bytes(gzip.compress(bytes(b)) if suffix.endswith(".gz") else b)
    with pytest.raises(FileFormatError, match=r"voxel spacing \(pixdim\) must be > 0 mm") as e:
        read_image(path)
    assert f"{z:g}" in str(e.value) and path.name in str(e.value)


def test_a_big_endian_nifti_with_good_spacing_still_reads(tmp_path):
    """The raw header check must follow the file's byte order, not refuse a valid file."""
    b = _nifti_bytes(">")
    struct.pack_into(">f", b, _PIXDIM_Z, 2.5)
    struct.pack_into(">h", b, _SFORM_CODE, 0)
    (tmp_path / "be.nii").write_bytes(b)
    assert read_image(tmp_path / "be.nii").grid.spacing_mm[0] == pytest.approx(2.5)


def _itk_file(tmp_path, ext: str, old: bytes, new: bytes):
    a = np.zeros((4, 5, 6), np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(a), str(tmp_path / f"ok.{ext}"))
    text = (tmp_path / f"ok.{ext}").read_bytes()
    assert old in text  # the field this test edits is where SimpleITK writes it
    path = tmp_path / f"bad.{ext}"
    path.write_bytes(text.replace(old, new))
    return path


@pytest.mark.parametrize("z", BAD)
def test_metaimage_element_spacing_is_refused(tmp_path, z):
    path = _itk_file(
        tmp_path, "mha", b"ElementSpacing = 1 1 1", f"ElementSpacing = 1 1 {z}".encode()
    )
    with pytest.raises(FileFormatError, match=r"ElementSpacing\) must be > 0 mm"):
        read_image(path)


@pytest.mark.parametrize("z", [0.0, float("nan")])
def test_nrrd_zero_or_nan_space_direction_is_refused(tmp_path, z):
    old = b"space directions: (1,0,0) (0,1,0) (0,0,1)"
    path = _itk_file(tmp_path, "nrrd", old, f"space directions: (1,0,0) (0,1,0) (0,0,{z})".encode())
    with pytest.raises(FileFormatError, match="space directions"):
        read_image(path)


def test_nrrd_negative_space_direction_is_an_orientation_not_an_error(tmp_path):
    """NRRD ``space directions`` carry spacing and orientation: (0,0,-2) is 2 mm towards -z."""
    old = b"space directions: (1,0,0) (0,1,0) (0,0,1)"
    path = _itk_file(tmp_path, "nrrd", old, b"space directions: (1, 0, 0) (0,1,0) (0,0,-2)")
    g = read_image(path).grid
    assert g.spacing_mm == pytest.approx((2.0, 1.0, 1.0))
    assert np.asarray(g.direction)[:, 0] == pytest.approx((0.0, 0.0, -1.0))


@pytest.mark.parametrize("tag", ["SliceThickness", "SpacingBetweenSlices"])
@pytest.mark.parametrize("z", [0.0, -2.0])
def test_single_slice_dicom_with_zero_or_negative_thickness_is_refused(tmp_path, tag, z):
    """A single slice takes its depth from these tags; 0 used to become 1 mm silently."""
    vol = Volume(np.zeros((1, 4, 4), np.int16), Grid((1, 4, 4), (3.0, 1.0, 1.0)))
    folder = write_dicom_series(vol, tmp_path / "dcm")
    (f,) = sorted(folder.iterdir())
    ds = pydicom.dcmread(f)
    if tag == "SliceThickness":
        del ds.SpacingBetweenSlices  # SliceThickness is then the one used
    setattr(ds, tag, f"{z:g}")
    ds.save_as(f)
    with pytest.raises(FileFormatError, match=f"{tag} must be > 0 mm"):
        read_image(folder)
