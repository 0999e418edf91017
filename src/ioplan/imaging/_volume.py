"""A voxel array together with its geometry."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ioplan.errors import InputError, InvalidImageError
from ioplan.imaging._grid import Grid

__all__ = ["Volume", "check_finite"]


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D array indexed ``(z, y, x)`` and the :class:`Grid` that places it in LPS mm.

    Parameters
    ----------
    array : ndarray, shape ``grid.shape``
        Voxel values (HU, labels, °C, ...). Not copied.
    grid : Grid
        Geometry of ``array``.

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.zeros((2, 3, 4)), Grid((2, 3, 4), (2.0, 1.0, 1.0)))
    >>> v.grid.voxel_volume_ml
    0.002
    """

    array: np.ndarray
    grid: Grid

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise InputError(f"array must be 3D (z, y, x), got shape {arr.shape}")
        if not isinstance(self.grid, Grid):
            raise InputError(f"grid must be a Grid, got {type(self.grid).__name__}")
        if arr.shape != self.grid.shape:
            raise InputError(f"array shape {arr.shape} does not match grid shape {self.grid.shape}")
        object.__setattr__(self, "array", arr)

    @classmethod
    def from_affine(cls, array: Any, affine: Any) -> Volume:
        """Build from an array and a 4x4 ``(z, y, x)`` index to LPS affine."""
        arr = np.asarray(array)
        return cls(arr, Grid.from_affine(arr.shape, affine))

    def with_array(self, array: Any) -> Volume:
        """A new volume with the same grid and another array."""
        return replace(self, array=np.asarray(array))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return self.grid.shape

    def value_at_lps(self, point_mm: Any) -> np.ndarray:
        """Nearest-voxel value at LPS points ``(..., 3)``; raises outside the grid."""
        idx = np.rint(self.grid.lps_to_index(point_mm)).astype(int)
        inside = np.all((idx >= 0) & (idx < np.asarray(self.shape)), axis=-1)
        if not np.all(inside):
            raise InputError(f"point_mm {np.asarray(point_mm).tolist()} lies outside the grid")
        return self.array[idx[..., 0], idx[..., 1], idx[..., 2]]


def check_finite(array: np.ndarray, *, what: str) -> None:
    """Raise :class:`~ioplan.errors.InvalidImageError` if ``array`` holds NaN or inf values."""
    arr = np.asarray(array)
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(
        arr.dtype, np.complexfloating
    ):
        return
    bad = ~np.isfinite(arr)
    n_bad = int(np.count_nonzero(bad))
    if n_bad:
        frac = 100.0 * n_bad / arr.size
        raise InvalidImageError(
            f"{what} has {n_bad} NaN or infinite voxels ({frac:.1f} % of {arr.size})"
        )
