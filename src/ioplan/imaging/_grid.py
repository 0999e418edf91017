"""Voxel grids in patient LPS millimetres."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ioplan.errors import GeometryMismatchError, InputError

__all__ = ["AXIAL_DIRECTION", "Grid"]

#: Direction of an axial image whose first array axis (z) points to patient
#: superior, the second (y) to posterior and the third (x) to the patient's
#: left: column ``j`` is the LPS unit vector of array axis ``j``. This is what
#: SimpleITK calls the identity direction.
AXIAL_DIRECTION: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 1.0),
    (0.0, 1.0, 0.0),
    (1.0, 0.0, 0.0),
)

# Geometry read from files is stored with float32 or printed with 6 digits:
# 1e-4 mm and 1e-5 in direction cosines are far below any clinical relevance
# and above the rounding of those formats.
_ORTHO_TOL = 1e-4
_MM_TOL = 1e-4


def _as_triplet(value: Any, name: str, *, positive: bool = False) -> tuple[float, float, float]:
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.shape != (3,):
        raise InputError(f"{name} must have 3 values, got {value!r}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be finite, got {value!r}")
    if positive and np.any(arr <= 0):
        raise InputError(f"{name} must be > 0, got {value!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True)
class Grid:
    """Geometry of a 3D voxel array in patient LPS millimetres.

    Arrays are indexed ``(z, y, x)``, as SimpleITK returns them. Physical
    points are ``(x, y, z)`` in the patient LPS frame (DICOM): +x towards the
    patient's left, +y posterior, +z superior.

    Parameters
    ----------
    shape : tuple of 3 int
        Number of voxels along array axes ``(z, y, x)``.
    spacing_mm : tuple of 3 float
        Voxel spacing along array axes ``(z, y, x)``, in mm. This is the order
        ``scipy.ndimage`` (``sampling=``) and ``skimage`` (``spacing=``) take.
    origin_mm : tuple of 3 float
        LPS position ``(x, y, z)`` in mm of the centre of voxel ``(0, 0, 0)``.
    direction : 3x3 nested tuple of float
        Column ``j`` is the LPS unit vector along array axis ``j``. Must be
        orthonormal. Default :data:`AXIAL_DIRECTION`.

    Examples
    --------
    >>> g = Grid((10, 20, 30), (2.0, 1.0, 1.0), origin_mm=(-15.0, -10.0, 0.0))
    >>> g.index_to_lps((1, 0, 0)).tolist()   # one slice up: 2 mm superior
    [-15.0, -10.0, 2.0]
    >>> g.lps_to_index((-14.0, -10.0, 0.0)).tolist()
    [0.0, 0.0, 1.0]
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[tuple[float, float, float], ...] = AXIAL_DIRECTION

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in np.asarray(self.shape).reshape(-1))
        if len(shape) != 3 or any(s < 1 for s in shape):
            raise InputError(f"shape must be 3 positive integers, got {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(
            self, "spacing_mm", _as_triplet(self.spacing_mm, "spacing_mm", positive=True)
        )
        object.__setattr__(self, "origin_mm", _as_triplet(self.origin_mm, "origin_mm"))
        d = np.asarray(self.direction, dtype=float)
        if d.shape != (3, 3) or not np.all(np.isfinite(d)):
            raise InputError(f"direction must be a finite 3x3 matrix, got {self.direction!r}")
        if not np.allclose(d.T @ d, np.eye(3), atol=_ORTHO_TOL):
            raise InputError(f"direction must be orthonormal, got {d.tolist()!r}")
        object.__setattr__(self, "direction", tuple(tuple(float(v) for v in row) for row in d))

    # -- derived ---------------------------------------------------------
    @property
    def direction_matrix(self) -> np.ndarray:
        """The 3x3 direction as an array; column ``j`` is array axis ``j`` in LPS."""
        return np.array(self.direction, dtype=float)

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix mapping homogeneous ``(z, y, x, 1)`` indices to ``(x, y, z, 1)`` LPS mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * np.asarray(self.spacing_mm)[None, :]
        a[:3, 3] = self.origin_mm
        return a

    @property
    def size(self) -> int:
        """Number of voxels."""
        return math.prod(self.shape)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (1 mL = 1000 mm^3)."""
        return math.prod(self.spacing_mm) / 1000.0

    @property
    def spacing_m(self) -> tuple[float, float, float]:
        """Voxel spacing along array axes ``(z, y, x)`` in metres (SI, for the physics)."""
        return tuple(s * 1e-3 for s in self.spacing_mm)

    @property
    def voxel_volume_m3(self) -> float:
        """Volume of one voxel in m^3 (SI)."""
        return math.prod(self.spacing_mm) * 1e-9

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Physical size along array axes ``(z, y, x)`` in mm (voxel edges included)."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing_mm, strict=True))

    # -- mapping ---------------------------------------------------------
    def index_to_lps(self, index: Any) -> np.ndarray:
        """Map (continuous) voxel indices ``(..., 3)`` in ``(z, y, x)`` to LPS mm ``(..., 3)``."""
        idx = np.asarray(index, dtype=float)
        if idx.shape[-1:] != (3,):
            raise InputError(f"index must have a last axis of length 3, got shape {idx.shape}")
        m = self.direction_matrix * np.asarray(self.spacing_mm)[None, :]
        return idx @ m.T + np.asarray(self.origin_mm)

    def lps_to_index(self, point_mm: Any) -> np.ndarray:
        """Map LPS points ``(..., 3)`` in mm to continuous ``(z, y, x)`` indices ``(..., 3)``."""
        p = np.asarray(point_mm, dtype=float)
        if p.shape[-1:] != (3,):
            raise InputError(f"point_mm must have a last axis of length 3, got shape {p.shape}")
        # direction is orthonormal, so its inverse is its transpose.
        rel = p - np.asarray(self.origin_mm)
        return (rel @ self.direction_matrix) / np.asarray(self.spacing_mm)

    def contains_lps(self, point_mm: Any) -> np.ndarray:
        """Whether LPS points fall inside the grid (voxel edges included)."""
        idx = self.lps_to_index(point_mm)
        upper = np.asarray(self.shape) - 0.5
        return np.all((idx >= -0.5) & (idx <= upper), axis=-1)

    def bounds_lps(self) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest LPS coordinates (mm) of the grid's box, voxel edges included."""
        corners = np.array(
            [[i, j, k] for i in (-0.5, self.shape[0] - 0.5) for j in (-0.5, self.shape[1] - 0.5)
             for k in (-0.5, self.shape[2] - 0.5)]
        )  # fmt: skip
        pts = self.index_to_lps(corners)
        return pts.min(axis=0), pts.max(axis=0)

    def overlaps(self, other: Grid) -> bool:
        """Whether the two grids' boxes (in patient LPS mm) share any volume.

        >>> Grid((2, 2, 2)).overlaps(Grid((2, 2, 2), origin_mm=(500.0, 0.0, 0.0)))
        False
        """
        lo1, hi1 = self.bounds_lps()
        lo2, hi2 = other.bounds_lps()
        return bool(np.all(np.minimum(hi1, hi2) > np.maximum(lo1, lo2)))

    def voxel_centres_lps(self) -> np.ndarray:
        """LPS coordinates of every voxel centre, shape ``shape + (3,)``.

        Uses ``8 * 3 * size`` bytes; prefer :meth:`axis_coordinates_mm` for
        axis-aligned grids.
        """
        zz, yy, xx = np.meshgrid(*(np.arange(n) for n in self.shape), indexing="ij")
        return self.index_to_lps(np.stack([zz, yy, xx], axis=-1))

    def is_axis_aligned(self) -> bool:
        """True when the direction is :data:`AXIAL_DIRECTION` (within rounding)."""
        return bool(np.allclose(self.direction_matrix, np.array(AXIAL_DIRECTION), atol=_ORTHO_TOL))

    def axis_coordinates_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For an axis-aligned grid, the LPS ``z``, ``y`` and ``x`` of each array index.

        Returns
        -------
        z_mm, y_mm, x_mm : ndarray
            1D arrays of length ``shape[0]``, ``shape[1]`` and ``shape[2]``.
        """
        if not self.is_axis_aligned():
            raise InputError("axis_coordinates_mm needs an axis-aligned grid (AXIAL_DIRECTION)")
        ox, oy, oz = self.origin_mm
        sz, sy, sx = self.spacing_mm
        nz, ny, nx = self.shape
        return (oz + sz * np.arange(nz), oy + sy * np.arange(ny), ox + sx * np.arange(nx))

    # -- comparison ------------------------------------------------------
    def mismatch(self, other: Grid, *, tol_mm: float = _MM_TOL) -> str | None:
        """Describe how ``other`` differs from this grid, or ``None`` when they match."""
        if self.shape != other.shape:
            return f"shape {other.shape} != {self.shape}"
        if not np.allclose(self.spacing_mm, other.spacing_mm, atol=tol_mm):
            return f"spacing_mm {other.spacing_mm} != {self.spacing_mm}"
        if not np.allclose(self.origin_mm, other.origin_mm, atol=tol_mm):
            return f"origin_mm {other.origin_mm} != {self.origin_mm}"
        if not np.allclose(self.direction_matrix, other.direction_matrix, atol=_ORTHO_TOL):
            return f"direction {other.direction} != {self.direction}"
        return None

    def require_same(self, other: Grid, *, what: str = "volume") -> None:
        """Raise :class:`~ioplan.errors.GeometryMismatchError` unless ``other`` matches."""
        diff = self.mismatch(other)
        if diff is not None:
            raise GeometryMismatchError(f"{what} grid does not match: {diff}")

    # -- SimpleITK order ---------------------------------------------------
    def to_sitk_geometry(self) -> dict[str, tuple[float, ...]]:
        """Spacing, origin and row-major direction in SimpleITK's ``(x, y, z)`` index order."""
        d_sitk = self.direction_matrix[:, ::-1]
        return {
            "size": tuple(reversed(self.shape)),
            "spacing": tuple(reversed(self.spacing_mm)),
            "origin": self.origin_mm,
            "direction": tuple(float(v) for v in d_sitk.reshape(-1)),
        }

    @classmethod
    def from_sitk_geometry(
        cls,
        size: Any,
        spacing: Any,
        origin: Any,
        direction: Any,
    ) -> Grid:
        """Build a grid from SimpleITK's ``(x, y, z)``-ordered size, spacing, origin, direction."""
        d_sitk = np.asarray(direction, dtype=float).reshape(3, 3)
        return cls(
            shape=tuple(int(s) for s in reversed(tuple(size))),
            spacing_mm=tuple(float(s) for s in reversed(tuple(spacing))),
            origin_mm=tuple(float(o) for o in origin),
            direction=tuple(map(tuple, d_sitk[:, ::-1])),
        )

    @classmethod
    def from_affine(cls, shape: Any, affine: Any) -> Grid:
        """Build a grid from a 4x4 ``(z, y, x)`` index to LPS affine (no shear allowed)."""
        a = np.asarray(affine, dtype=float)
        if a.shape != (4, 4) or not np.all(np.isfinite(a)):
            raise InputError(f"affine must be a finite 4x4 matrix, got {a.tolist()!r}")
        m = a[:3, :3]
        spacing = np.linalg.norm(m, axis=0)
        if np.any(spacing <= 0):
            raise InputError(f"affine has a zero-length axis: {a.tolist()!r}")
        d = m / spacing[None, :]
        if not np.allclose(d.T @ d, np.eye(3), atol=_ORTHO_TOL * 10):
            raise InputError(
                "affine is sheared (axes not orthogonal); ioplan needs orthogonal grids"
            )
        # Re-orthonormalise (polar decomposition) to remove float32 rounding.
        u, _, vt = np.linalg.svd(d)
        return cls(tuple(shape), tuple(spacing), tuple(a[:3, 3]), tuple(map(tuple, u @ vt)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary.

        ``shape``, ``spacing_mm`` and ``direction``'s columns follow the array axes
        ``(z, y, x)``; ``origin_mm`` is an LPS point ``(x, y, z)``. The same values in
        the image's own order (x, y, z, as DICOM and NIfTI readers show them) are added
        as ``size_xyz`` and ``spacing_xyz_mm``, and ``axes`` says which is which.

        >>> d = Grid((4, 5, 6), (5.0, 0.5, 0.5)).to_dict()
        >>> d["shape"], d["size_xyz"], d["spacing_xyz_mm"]
        ([4, 5, 6], [6, 5, 4], [0.5, 0.5, 5.0])
        """
        return {
            "shape": list(self.shape),
            "spacing_mm": list(self.spacing_mm),
            "origin_mm": list(self.origin_mm),
            "direction": [list(r) for r in self.direction],
            "size_xyz": list(self.shape[::-1]),
            "spacing_xyz_mm": list(self.spacing_mm[::-1]),
            "axes": "shape, spacing_mm and the columns of direction are along the array axes "
            "(z, y, x); origin_mm is the LPS point (x, y, z) of voxel (0, 0, 0); size_xyz and "
            "spacing_xyz_mm are in the image's x, y, z order",
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grid:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                tuple(d["shape"]),
                tuple(d["spacing_mm"]),
                tuple(d["origin_mm"]),
                tuple(map(tuple, d.get("direction", AXIAL_DIRECTION))),
            )
        except KeyError as exc:
            raise InputError(f"grid description lacks {exc.args[0]!r}") from None
