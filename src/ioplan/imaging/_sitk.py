"""Conversion between :class:`Volume` and SimpleITK images, and resampling."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np
import SimpleITK as sitk

from ioplan.errors import InputError
from ioplan.imaging._grid import Grid
from ioplan.imaging._volume import Volume

__all__ = ["Interpolation", "from_sitk", "resample", "resample_to_spacing", "to_sitk"]


class Interpolation(StrEnum):
    """Interpolation used by :func:`resample`; plain strings are accepted too."""

    NEAREST = "nearest"
    LINEAR = "linear"
    BSPLINE = "bspline"
    LABEL_GAUSSIAN = "label_gaussian"


_SITK_INTERPOLATORS = {
    Interpolation.NEAREST: sitk.sitkNearestNeighbor,
    Interpolation.LINEAR: sitk.sitkLinear,
    Interpolation.BSPLINE: sitk.sitkBSpline,
    Interpolation.LABEL_GAUSSIAN: sitk.sitkLabelGaussian,
}


def to_sitk(volume: Volume) -> sitk.Image:
    """A SimpleITK image with the volume's values and geometry (booleans become uint8)."""
    arr = volume.array
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    geom = volume.grid.to_sitk_geometry()
    img.SetSpacing(geom["spacing"])
    img.SetOrigin(geom["origin"])
    img.SetDirection(geom["direction"])
    return img


def from_sitk(image: sitk.Image) -> Volume:
    """A :class:`Volume` from a 3D scalar SimpleITK image (a 2D image becomes one slice)."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"expected a scalar image, got {image.GetNumberOfComponentsPerPixel()} components"
        )
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3:
        raise InputError(f"expected a 3D image, got {image.GetDimension()}D")
    grid = Grid.from_sitk_geometry(
        image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()
    )
    return Volume(sitk.GetArrayFromImage(image), grid)


def _reference_image(grid: Grid) -> sitk.Image:
    geom = grid.to_sitk_geometry()
    ref = sitk.Image([int(s) for s in geom["size"]], sitk.sitkUInt8)
    ref.SetSpacing(geom["spacing"])
    ref.SetOrigin(geom["origin"])
    ref.SetDirection(geom["direction"])
    return ref


def resample(
    volume: Volume,
    grid: Grid,
    *,
    interpolation: Interpolation | str = Interpolation.LINEAR,
    default_value: float = 0.0,
) -> Volume:
    """Resample ``volume`` onto ``grid`` (same patient space, no transform).

    Parameters
    ----------
    volume : Volume
        Image to resample.
    grid : Grid
        Target geometry.
    interpolation : {"linear", "nearest", "bspline", "label_gaussian"}
        Use ``"nearest"`` or ``"label_gaussian"`` for label maps; these keep the
        input dtype. The others return float64.
    default_value : float
        Value of target voxels that fall outside ``volume``.

    Returns
    -------
    Volume
        Values on ``grid``.
    """
    try:
        interp = Interpolation(interpolation)
    except ValueError:
        choices = ", ".join(i.value for i in Interpolation)
        raise InputError(f"interpolation must be one of {choices}; got {interpolation!r}") from None
    dtype = volume.array.dtype
    keeps_dtype = interp in (Interpolation.NEAREST, Interpolation.LABEL_GAUSSIAN)
    if keeps_dtype and (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        info = np.iinfo(np.uint8 if dtype == np.bool_ else dtype)
        if not (np.isfinite(default_value) and float(default_value).is_integer()) or not (
            info.min <= default_value <= info.max
        ):
            raise InputError(
                f"default_value {default_value} does not fit the volume's {dtype} values"
            )
    src = volume
    if interp in (Interpolation.LINEAR, Interpolation.BSPLINE):
        src = volume.with_array(volume.array.astype(np.float64))
    image = to_sitk(src)
    out = sitk.Resample(
        image,
        _reference_image(grid),
        sitk.Transform(),
        _SITK_INTERPOLATORS[interp],
        float(default_value),
        image.GetPixelID(),
    )
    res = from_sitk(out)
    if volume.array.dtype == np.bool_:
        return Volume(res.array.astype(bool), grid)
    return Volume(res.array, grid)


def resample_to_spacing(
    volume: Volume,
    spacing_mm: Any,
    *,
    interpolation: Interpolation | str = Interpolation.LINEAR,
) -> Volume:
    """Resample onto a grid with ``spacing_mm`` (``(z, y, x)``) covering the same extent.

    The new grid is centred on the old one: its voxel centres are the same points in
    space whatever the order and the sense of the array's axes (a flipped or permuted copy
    of an image gives the same samples). Nearest-neighbour ties (a new centre exactly
    halfway between two old ones) are broken the same way for every axis order too: the
    samples are taken 1e-4 mm (far below any voxel) towards +x, +y and +z (LPS).
    """
    g = volume.grid
    new_spacing = Grid((1, 1, 1), spacing_mm).spacing_mm  # validates
    shape = tuple(
        max(1, round(n * s / ns))
        for n, s, ns in zip(g.shape, g.spacing_mm, new_spacing, strict=True)
    )
    # the same centre: the first new centre lies ((n - 1) s - (m - 1) ns) / 2 from the
    # first old one (half the spacing difference when the extents match exactly)
    shift_idx = [
        ((n - 1) - (m - 1) * ns / s) / 2.0
        for n, m, s, ns in zip(g.shape, shape, g.spacing_mm, new_spacing, strict=True)
    ]
    origin = tuple(g.index_to_lps(shift_idx))
    target = Grid(shape, new_spacing, origin, g.direction)
    if Interpolation(interpolation) is not Interpolation.NEAREST:
        return resample(volume, target, interpolation=interpolation)
    nudged = Grid(shape, new_spacing, tuple(np.add(origin, _TIE_BREAK_MM)), g.direction)
    return Volume(resample(volume, nudged, interpolation=interpolation).array, target)


# where nearest-neighbour resampling samples, relative to the voxel centres (mm, LPS x y z):
# a fixed direction in space, so that ties between two source voxels do not depend on the
# array's axis order (SimpleITK rounds the continuous index, which follows the array)
_TIE_BREAK_MM = (1e-4, 1e-4, 1e-4)
