"""Orientation: bring any volume to the axial array order without losing a voxel.

A grid is axis-aligned when each array axis runs along a patient axis, in either sense: a
NIfTI file in the usual RAS orientation read into LPS has its x and y axes reversed, and
some files store the axes in another order. Such a volume is re-indexed exactly (flips and
a transpose, as nibabel's ``as_reoriented`` and highdicom's ``flip_spatial`` do); an
oblique one is resampled, or refused where exactness matters.
"""

from __future__ import annotations

import numpy as np

from ioplan.errors import InputError
from ioplan.imaging._grid import Grid
from ioplan.imaging._sitk import resample
from ioplan.imaging._volume import Volume

__all__ = ["axial_volume", "signed_permutation"]

_TOL = 1e-4  # direction cosines within this of 0 or +-1 count as axis-aligned


def signed_permutation(grid: Grid) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]] | None:
    """How the array axes map onto the patient axes, when they do exactly.

    Returns ``(lps_axis, flipped)``: array axis ``j`` runs along LPS axis
    ``lps_axis[j]`` (0 = x/L, 1 = y/P, 2 = z/S), towards decreasing LPS when
    ``flipped[j]``. None for an oblique grid.

    Examples
    --------
    >>> g = Grid((2, 3, 4), (1, 1, 1), (0, 0, 0), ((0, 0, -1), (0, -1, 0), (1, 0, 0)))
    >>> signed_permutation(g)  # RAS-like: x and y run the other way
    ((2, 1, 0), (False, True, True))
    """
    d = grid.direction_matrix
    axes, flips = [], []
    for j in range(3):
        col = d[:, j]
        a = int(np.argmax(np.abs(col)))
        if abs(abs(col[a]) - 1.0) > _TOL or np.abs(np.delete(col, a)).max() > _TOL:
            return None
        axes.append(a)
        flips.append(bool(col[a] < 0))
    if sorted(axes) != [0, 1, 2]:
        return None
    return tuple(axes), tuple(flips)  # type: ignore[return-value]


def axial_volume(
    volume: Volume, *, labels: bool = False, fill: float = 0.0, oblique: str = "resample"
) -> Volume:
    """``volume`` with the axial direction: array ``(z, y, x)`` along increasing L, P, S.

    Parameters
    ----------
    volume : Volume
        Any volume.
    labels : bool
        Nearest-neighbour instead of linear interpolation (oblique grids only).
    fill : float
        Value outside the image (oblique grids only).
    oblique : {"resample", "refuse"}
        An oblique grid is resampled onto an axis-aligned grid at its finest spacing
        (isotropic, at most ~20 M voxels), or refused with :class:`InputError`.

    Returns
    -------
    Volume
        Exact for axis-aligned grids (the same voxels re-indexed, the same LPS points);
        the input itself when it already has the axial direction.

    Examples
    --------
    >>> flipped_x = ((0.0, 0.0, -1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))
    >>> v = Volume(np.arange(8.0).reshape(2, 2, 2), Grid((2, 2, 2), direction=flipped_x))
    >>> a = axial_volume(v)
    >>> a.grid.is_axis_aligned(), a.grid.origin_mm
    (True, (-1.0, 0.0, 0.0))
    >>> bool(np.all(a.array == v.array[:, :, ::-1]))
    True
    """
    grid = volume.grid
    if grid.is_axis_aligned():
        return volume
    sp = signed_permutation(grid)
    if sp is not None:
        axes, flips = sp
        arr = np.asarray(volume.array)
        for j in range(3):
            if flips[j]:
                arr = np.flip(arr, axis=j)
        # new array axis (2 - lps axis) takes old axis j
        order = [axes.index(a) for a in (2, 1, 0)]
        arr = np.transpose(arr, order)
        corner = [0 if not flips[j] else grid.shape[j] - 1 for j in range(3)]
        origin = grid.index_to_lps(np.asarray(corner, float))
        spacing = tuple(grid.spacing_mm[j] for j in order)
        return Volume(
            np.ascontiguousarray(arr), Grid(arr.shape, spacing, tuple(float(v) for v in origin))
        )
    if oblique != "resample":
        raise InputError(
            "the image must be on an axis-aligned grid (axes along the patient axes, in any "
            "order or sense); resample an oblique image first"
        )
    corners = np.array(
        [[a, b, c] for a in (0, grid.shape[0] - 1) for b in (0, grid.shape[1] - 1)
         for c in (0, grid.shape[2] - 1)],
        float,
    )  # fmt: skip
    lps = grid.index_to_lps(corners)
    lo, hi = lps.min(axis=0), lps.max(axis=0)
    spacing = max(min(grid.spacing_mm), float(np.prod(hi - lo + 1.0) / 20e6) ** (1 / 3))
    shape = tuple(int(np.floor((hi[k] - lo[k]) / spacing)) + 1 for k in (2, 1, 0))
    target = Grid(shape, (spacing,) * 3, tuple(float(v) for v in lo))
    return resample(
        volume, target, interpolation="nearest" if labels else "linear", default_value=fill
    )
