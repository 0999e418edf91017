"""Geometry and images: :class:`Grid`, :class:`Volume`, file input and output, resampling.

Arrays are indexed ``(z, y, x)``; physical points are ``(x, y, z)`` in patient
LPS millimetres. NIfTI (RAS on disk) is converted to LPS when read and back
when written, in :mod:`ioplan.imaging._io` only.
"""

from ioplan.imaging._atomic import (
    COMPLETION_RECORD,
    atomic_output_folder,
    check_mergeable,
    check_replaceable,
    write_completion_record,
)
from ioplan.imaging._dicom import (
    DicomSliceHeader,
    dicom_images,
    dicom_series_grid,
    read_dicom_pixels,
    read_dicom_series,
    series_geometry,
    write_dicom_series,
)
from ioplan.imaging._grid import AXIAL_DIRECTION, Grid
from ioplan.imaging._io import (
    OutputNotWritableError,
    check_output_folder,
    check_writable,
    image_format,
    nifti_description,
    read_image,
    read_nifti,
    read_nifti_series,
    read_sitk,
    staged_output_folder,
    write_image,
    write_nifti,
    write_nifti_series,
    write_sitk,
)
from ioplan.imaging._markups import markups_lines, read_points, write_markups_lines
from ioplan.imaging._orient import axial_volume, signed_permutation
from ioplan.imaging._segmentations import (
    Segmentation,
    check_volume_3d,
    label_integers,
    labels_on_grid,
    read_segmentation,
)
from ioplan.imaging._sitk import (
    Interpolation,
    from_sitk,
    resample,
    resample_to_spacing,
    to_sitk,
)
from ioplan.imaging._volume import Volume, check_finite

__all__ = [
    "AXIAL_DIRECTION",
    "COMPLETION_RECORD",
    "DicomSliceHeader",
    "Grid",
    "Interpolation",
    "OutputNotWritableError",
    "Segmentation",
    "Volume",
    "atomic_output_folder",
    "axial_volume",
    "check_finite",
    "check_mergeable",
    "check_output_folder",
    "check_replaceable",
    "check_volume_3d",
    "check_writable",
    "dicom_images",
    "dicom_series_grid",
    "from_sitk",
    "image_format",
    "label_integers",
    "labels_on_grid",
    "markups_lines",
    "nifti_description",
    "read_dicom_pixels",
    "read_dicom_series",
    "read_image",
    "read_nifti",
    "read_nifti_series",
    "read_points",
    "read_segmentation",
    "read_sitk",
    "resample",
    "resample_to_spacing",
    "series_geometry",
    "signed_permutation",
    "staged_output_folder",
    "to_sitk",
    "write_completion_record",
    "write_dicom_series",
    "write_image",
    "write_markups_lines",
    "write_nifti",
    "write_nifti_series",
    "write_sitk",
]
