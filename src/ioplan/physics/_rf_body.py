"""The RF return path outside the simulated crop: dispersive pads on the skin (issue 19).

An RF simulation on a case solves the potential on a crop around the electrode with the
crop's six faces as the ground (:func:`~ioplan.physics.far_boundary_ground`; the near
field, and so the zone, hardly depends on what lies beyond: ``physics._simulate._rf_ground``).
The current then crosses the rest of the body to the pads, a resistance in series with the
crop that the generator sees and that takes its share of the generator's power. This module
computes that resistance from a coarse potential solve over the whole case: conductivity
per label at 37 degC (air none), the electrode at 1 V, the pads at 0 V, and

    R_series = (mean potential on the crop's faces) / (electrode current),

the potential the crop's faces really sit at, per ampere. The generator then sees
``Z_crop + R_series`` and the crop receives ``Z_crop / (Z_crop + R_series)`` of the output
(:func:`ioplan.physics.rf_pair`, ``series_ohm``).

Pads (``rf_return_pads.toml``): ``"back"``, the posterior skin around the electrode's level;
``"thighs"``, below the image, taken as the body's inferior cross-section in the image (a
lower bound: the body between there and the thighs is left out); ``"far"``, the previous
model (no series resistance).

A block of tissue (no case) stands for an unbounded medium of that tissue: beyond its
faces the current still spreads to infinity, through
:func:`infinite_medium_ohm` (session 44: without it the block's impedance, and with the
generator's voltage limit its output, depended on the domain margin: 99.4 / 108.9 / 114.2
ohm at 20 / 40 / 80 mm, 2 mm voxels; with it 113.3 / 117.0 / 118.6 ohm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.devices import sourced_data
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume

PAD_PLACEMENTS = ("back", "thighs", "far")


def pad_record() -> dict[str, Any]:
    """``rf_return_pads.toml``: values (``{value, source}`` reduced) and ``sources``."""
    return sourced_data("rf_return_pads.toml")


@dataclass(frozen=True)
class BodyReturn:
    """The return path from the crop's faces to the pads.

    Attributes
    ----------
    pads : str
        Where the pads are (``PAD_PLACEMENTS``).
    series_ohm : float
        Resistance between the crop's faces and the pads (ohm); 0 for ``"far"``.
    pad_area_cm2 : float
        Skin (or cross-section) area held at 0 V on the coarse grid (cm^2).
    spacing_mm : float
        Voxel size of the whole-body solve (mm).
    body_ohm : float
        Resistance electrode to pads on the coarse grid (ohm): the crop's part there is
        coarse, only ``series_ohm`` is used.
    path : str
        What ``series_ohm`` stands for: the body to the pads, the unbounded tissue beyond
        a block, or nothing.
    """

    pads: str
    series_ohm: float
    pad_area_cm2: float = 0.0
    spacing_mm: float = 0.0
    body_ohm: float = 0.0
    path: str = "none"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "pads": self.pads,
            "series_ohm": round(self.series_ohm, 3),
            "path": self.path,
            "pad_area_cm2": round(self.pad_area_cm2, 1),
            "spacing_mm": self.spacing_mm,
            "body_ohm": round(self.body_ohm, 3),
        }


def series_resistance(
    grid: Grid,
    sigma: np.ndarray,
    electrode: np.ndarray,
    ground: np.ndarray,
    faces: np.ndarray,
) -> tuple[float, float]:
    """Resistance from ``faces`` to ``ground`` per ampere leaving ``electrode`` (ohm).

    Solves the potential with the electrode at 1 V and the ground at 0 V
    (:func:`~ioplan.physics.rf_potential`) on the conductive voxels connected to the
    electrode, and returns ``(mean phi on the conductive faces voxels / I, 1 / I)``.

    Raises
    ------
    InputError
        When no conductive path joins the electrode to the ground, or no faces voxel
        conducts.
    """
    from ioplan.physics._sources import rf_potential

    conductive = (np.asarray(sigma) > 0) | electrode
    comp, _ = ndimage.label(conductive)
    ids = np.unique(comp[electrode])
    ids = ids[ids > 0]
    connected = np.isin(comp, ids)
    gnd = ground & connected & ~electrode
    if not gnd.any():
        raise InputError("the RF return pads touch no tissue joined to the electrode")
    sig = np.where(connected, sigma, 0.0)
    phi, _, power_per_v2 = rf_potential(grid, sig, electrode, gnd, tol=1e-9)
    on_faces = faces & connected & ~electrode & ~gnd
    if not on_faces.any() or power_per_v2 <= 0:
        raise InputError("the crop's faces hold no conductive tissue for the RF return path")
    current_a = power_per_v2  # at 1 V the power is the current
    return float(phi[on_faces].mean()) / current_a, 1.0 / current_a


def _back_pads(grid: Grid, body: np.ndarray, centre_lps: np.ndarray,
               half_width_mm: float) -> np.ndarray:  # fmt: skip
    """Posterior skin voxels within ``half_width_mm`` of the centre (superior-inferior, L-R)."""
    centres = grid.voxel_centres_lps().reshape(*grid.shape, 3)
    # the most posterior body voxel of each line along the patient's posterior (+y LPS)
    # column j of the direction is array axis j in LPS: the axis nearest +y (posterior)
    arr_axis = int(np.argmax(np.abs(grid.direction_matrix[1, :])))
    sign = np.sign(grid.direction_matrix[1, arr_axis])
    b = np.moveaxis(body, arr_axis, -1)
    if sign < 0:
        b = b[..., ::-1]
    n = b.shape[-1]
    last = n - 1 - np.argmax(b[..., ::-1], axis=-1)  # last True along the axis
    has = b.any(axis=-1)
    skin = np.zeros_like(b)
    i0, i1 = np.nonzero(has)
    skin[i0, i1, last[i0, i1]] = True
    if sign < 0:
        skin = skin[..., ::-1]
    skin = np.moveaxis(skin, -1, arr_axis)
    d = np.abs(centres - centre_lps)
    near = (d[..., 0] <= half_width_mm) & (d[..., 2] <= half_width_mm)
    return skin & near


def _thigh_pads(body: np.ndarray, grid: Grid) -> np.ndarray:
    """The body's cross-section on the image's most inferior slice (pads below the image)."""
    arr_axis = int(np.argmax(np.abs(grid.direction_matrix[2, :])))  # nearest +z (superior)
    sign = np.sign(grid.direction_matrix[2, arr_axis])
    b = np.moveaxis(body, arr_axis, 0)
    pads = np.zeros_like(b)
    slices = np.flatnonzero(b.any(axis=(1, 2)))
    if slices.size:
        k = slices[0] if sign > 0 else slices[-1]
        pads[k] = b[k]
    return np.moveaxis(pads, 0, arr_axis)


def body_return(
    labels: Volume,
    sigma_by_label: np.ndarray,
    crop: Grid,
    electrode_lps: np.ndarray,
    pads: str,
    *,
    background: int = 0,
    spacing_mm: float | None = None,
) -> BodyReturn:
    """The series resistance between a crop and pads on the case's skin.

    Parameters
    ----------
    labels : Volume
        The case's whole label map.
    sigma_by_label : ndarray
        Electrical conductivity at 37 degC (S/m) per label value (index).
    crop : Grid
        The simulated crop (its six faces are the crop model's ground).
    electrode_lps : ndarray, shape (n, 3)
        Points of the exposed electrode (mm, LPS).
    pads : str
        ``"back"``, ``"thighs"`` or ``"far"`` (no series resistance).
    background : int
        The label of air (no conduction).
    spacing_mm : float, optional
        Voxel size of the whole-body solve; default from ``rf_return_pads.toml``.
    """
    from ioplan.imaging import resample_to_spacing

    if pads not in PAD_PLACEMENTS:
        raise InputError(f"--rf-pads must be one of {', '.join(PAD_PLACEMENTS)}, got {pads!r}")
    if pads == "far":
        return BodyReturn("far", 0.0)
    rec = pad_record()
    h = float(spacing_mm if spacing_mm is not None else rec["body_solve"]["spacing_mm"])
    coarse = resample_to_spacing(labels, (h, h, h), interpolation="nearest")
    lab = np.asarray(coarse.array).astype(np.int64)
    g = coarse.grid
    table = np.asarray(sigma_by_label, float)
    sigma = table[np.clip(lab, 0, table.size - 1)]
    sigma[lab == background] = 0.0
    body = sigma > 0
    pts = np.atleast_2d(np.asarray(electrode_lps, float))
    idx = np.rint(g.lps_to_index(pts)).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.array(g.shape)), axis=1)
    if not inside.any():
        raise InputError("the RF electrode lies outside the case's image")
    electrode = np.zeros(g.shape, bool)
    electrode[tuple(idx[inside].T)] = True
    in_crop = crop.contains_lps(g.voxel_centres_lps()).reshape(g.shape)
    faces = in_crop & ~ndimage.binary_erosion(in_crop)
    if pads == "back":
        ground = _back_pads(g, body, pts.mean(axis=0), rec["back"]["half_width_mm"])
    else:
        ground = _thigh_pads(body, g)
    ground &= ~in_crop  # a pad inside the crop would short the crop's own model
    series, total = series_resistance(g, sigma, electrode, ground, faces)
    area = float(ground.sum()) * h * h / 100.0
    return BodyReturn(pads, max(series, 0.0), area, h, total, "the body to the pads")


def infinite_medium_ohm(grid: Grid, sigma_s_m: float) -> float:
    """Resistance (ohm) from a grounded box (the grid's outer voxel centres) to infinity.

    A current leaving a box in an unbounded medium of conductivity ``sigma_s_m`` sees, past
    the box, the resistance ``1 / (4 pi sigma C')`` of a conductor of the box's shape, with
    ``C'`` its capacitance over 4 pi eps. For a convex body ``C'`` lies within a few percent
    of the radius of the sphere of the same surface area, ``sqrt(A / 4 pi)`` (Chow YL,
    Yovanovich MM, The shape factor of the capacitance of a conductor, J Appl Phys
    1982;53:8470, DOI 10.1063/1.330495); for a cube ``sqrt(6 / 4 pi) s = 0.691 s`` against the
    computed 0.6607 s (Read FH, J Comput Phys 1997;133:1), 4.6 % high.

    >>> round(infinite_medium_ohm(Grid((71, 41, 41), (2.0, 2.0, 2.0)), 0.146), 2)
    8.05
    """
    if not (np.isfinite(sigma_s_m) and sigma_s_m > 0):
        raise InputError(f"the block's conductivity must be > 0 S/m, got {sigma_s_m!r}")
    ext = [(n - 1) * h * 1e-3 for n, h in zip(grid.shape, grid.spacing_mm, strict=True)]
    area = 2.0 * (ext[0] * ext[1] + ext[1] * ext[2] + ext[0] * ext[2])
    radius = float(np.sqrt(area / (4.0 * np.pi)))
    return 1.0 / (4.0 * np.pi * sigma_s_m * radius)


def crop_return(
    case: Any,
    pads: str,
    crop: Grid,
    electrode: np.ndarray,
    cylinders: tuple,
    tips_mm: list,
    sigma_by_label: np.ndarray,
    block_sigma_s_m: float = float("nan"),
) -> BodyReturn:
    """:func:`body_return` for a simulation's crop (``"far"``: none).

    The electrode's points are the crop's electrode voxels and, for an electrode on its
    true cylinder (no voxel centre may lie inside it), points along each cylinder's axis;
    the tips where there is neither. Without a case (a block of one tissue) the return is
    the unbounded medium beyond the block (:func:`infinite_medium_ohm`, the conductivity of
    the block's tissue at 37 degC), ``pads`` "far".
    """
    from ioplan.anatomy import Label

    if case is None:
        return BodyReturn("far", infinite_medium_ohm(crop, block_sigma_s_m),
                          path="the unbounded tissue beyond the block")
    if pads == "far":
        return BodyReturn("far", 0.0)
    pts = crop.index_to_lps(np.argwhere(electrode)).reshape(-1, 3)
    for cyl in cylinders:
        lo = cyl.along_min_mm if np.isfinite(cyl.along_min_mm) else 0.0
        hi = cyl.along_max_mm if np.isfinite(cyl.along_max_mm) else lo
        along = np.linspace(lo, hi, 9)
        axis = np.asarray(cyl.tip_mm) + along[:, None] * np.asarray(cyl.direction)
        pts = np.vstack([pts, axis])
    if len(pts) == 0:
        pts = np.asarray(tips_mm, float).reshape(-1, 3)
    return body_return(case.labels, sigma_by_label, crop, pts, pads,
                       background=int(Label.BACKGROUND))  # fmt: skip
