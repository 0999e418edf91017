"""The wall and the coolant film of an internally cooled antenna, in series with the tissue.

A cooled microwave antenna is a coaxial cable inside a catheter through which water flows.
Heat leaves the tissue through the catheter's wall (thickness ``t``, conductivity
``k_w``) and then through the coolant's film (coefficient ``h``) into water at the
coolant's temperature. Per metre of shaft the two resistances are

    R' = ln(a / a_i) / (2 pi k_w) + 1 / (2 pi a_i h)        (K m / W)

with ``a`` the catheter's outer and ``a_i = a - t`` its inner radius. Holding the outer
surface at the coolant's temperature (``R' = 0``) takes the most heat a cooled shaft can:
the tissue beside it is held 20 degC colder than it would be. Steady radial conduction
from tissue at radius ``rho`` to the coolant then has the resistance
``ln(rho / a) / (2 pi k) + R'``, which equals that of an ideal cold cylinder of radius

    a_eq = a exp(-2 pi k R')

(``k`` the tissue's conductivity). The engine's cut-cell shaft
(:mod:`ioplan.physics._subvoxel`) takes ``a_eq`` as the radius its lateral faces conduct
to (the same log near-field correction it applies to a cylinder widened on a coarse grid),
so the wall and film cost no extra unknowns. ``k`` is the tissue table's value at 37 degC:
the tissue beside the shaft stays near the coolant's temperature.

The film: fully developed laminar flow in the annulus between the cable and the
catheter's bore, the cable taken as insulated: ``h = Nu_o k_water / (D_o - D_i)``, with
``Nu_o`` from the annulus table (``devices/data/cooled_catheter.toml``) at ``D_i / D_o``.
The coolant's warming along the shaft is not modelled (its flow rate is not published).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ioplan.devices import COAX_CABLES, sourced_data
from ioplan.errors import InputError

__all__ = [
    "annulus_film_h_w_m2_k",
    "catheter_equivalent_radius_mm",
    "cooled_catheter_constants",
    "cooled_shaft_radius_mm",
    "lumped_shaft_layer",
    "shaft_layer_factors",
    "wall_kept_fraction",
]


def cooled_catheter_constants() -> dict[str, Any]:
    """``cooled_catheter.toml``: values (``{value, source}`` reduced) and ``sources``."""
    return sourced_data("cooled_catheter.toml")


def annulus_film_h_w_m2_k(inner_radius_mm: float, outer_radius_mm: float) -> float:
    """Coolant film coefficient (W/m^2/K) at the outer wall of a water-filled annulus.

    Fully developed laminar flow, inner surface insulated: ``Nu_o k_water / D_h`` with the
    hydraulic diameter ``D_h = D_o - D_i`` and ``Nu_o`` interpolated in the table of
    ``cooled_catheter.toml`` at ``D_i / D_o``.

    >>> round(annulus_film_h_w_m2_k(0.0, 1.0))  # a plain tube: Nu 3.66, D_h 2 mm
    1094
    """
    ri, ro = float(inner_radius_mm), float(outer_radius_mm)
    if not (np.isfinite(ri) and np.isfinite(ro) and 0.0 <= ri < ro):
        raise InputError(f"annulus radii must satisfy 0 <= inner < outer, got {ri}, {ro} mm")
    c = cooled_catheter_constants()
    nu = float(np.interp(ri / ro, c["annulus_nusselt"]["inner_outer_ratio"],
                         c["annulus_nusselt"]["nusselt_outer"]))  # fmt: skip
    return nu * c["coolant"]["k_w_m_k"] / (2.0 * (ro - ri) * 1e-3)


def catheter_equivalent_radius_mm(
    outer_radius_mm: float, wall_mm: float, wall_k_w_m_k: float, film_h_w_m2_k: float,
    tissue_k_w_m_k: float,
) -> float:  # fmt: skip
    """Radius of the ideal cold cylinder that conducts as the catheter wall and film do.

    ``a exp(-2 pi k R')`` with ``R' = ln(a / a_i) / (2 pi k_w) + 1 / (2 pi a_i h)`` (module
    docstring). An infinite ``film_h_w_m2_k`` leaves the wall alone.

    >>> a = catheter_equivalent_radius_mm(1.0, 0.2, 0.52, math.inf, 0.52)
    >>> round(a, 6)  # a wall as conductive as the tissue: the bore's radius
    0.8
    """
    a, t = float(outer_radius_mm), float(wall_mm)
    kw, h, k = float(wall_k_w_m_k), float(film_h_w_m2_k), float(tissue_k_w_m_k)
    if not (np.isfinite(a) and a > 0 and np.isfinite(t) and 0 <= t < a):
        raise InputError(f"catheter radius {a} mm and wall {t} mm: need 0 <= wall < radius")
    if not (kw > 0 and h > 0 and np.isfinite(k) and k > 0):
        raise InputError("catheter wall and film conductances and the tissue's k must be > 0")
    ai = a - t
    r_wall = math.log(a / ai) / (2.0 * math.pi * kw)
    r_film = 1.0 / (2.0 * math.pi * ai * 1e-3 * h)
    return a * math.exp(-2.0 * math.pi * k * (r_wall + r_film))


def cooled_shaft_radius_mm(app: Any, tissue_name: str | None = None) -> float:
    """The radius a cooled MW antenna's shaft conducts to (mm): ``a_eq`` or its own radius.

    ``app.catheter_wall_k_w_m_k`` 0 (the default) holds the catheter's outer surface at the
    coolant's temperature: the radius is half ``diameter_mm``. Otherwise the wall
    (``catheter_wall_mm``) and the film of the water gap between the cable
    (``app.cable``) and the bore conduct in series (:func:`catheter_equivalent_radius_mm`),
    with the conductivity of ``tissue_name`` (None: liver, the tissue the devices'
    calibrations were made in) at 37 degC. The engine uses liver's for every block and
    case, so that the cut-cell shaft and the lumped pattern's coolant share
    (:func:`lumped_shaft_layer`) take the same radius.
    """
    from ioplan.tissue import tissue

    a = 0.5 * float(app.diameter_mm)
    if app.modality != "mw" or not app.cooled or app.catheter_wall_k_w_m_k <= 0:
        return a
    ai = a - float(app.catheter_wall_mm)
    h = annulus_film_h_w_m2_k(COAX_CABLES[app.cable][2], ai)
    k = tissue(tissue_name or "liver").thermal_conductivity_w_m_k
    return catheter_equivalent_radius_mm(a, app.catheter_wall_mm, app.catheter_wall_k_w_m_k,
                                         h, k)  # fmt: skip


def wall_kept_fraction(rho_mm: np.ndarray, centre_rho_mm: np.ndarray, wall_mm: float,
                       equivalent_mm: float | None = None) -> np.ndarray:  # fmt: skip
    """Share of power deposited at radius ``rho`` that a cut voxel's centre receives.

    A cut voxel's node (at ``centre_rho`` from the axis) exchanges heat with the cooled
    shaft (radius ``wall_mm``, held at the coolant's temperature) through the cut face's
    log profile (:mod:`ioplan.physics._subvoxel`). Power deposited between the wall and
    the node splits, in steady radial conduction, as the two conductances do: the node
    receives ``ln(rho / a) / ln(rho_c / a)``, the coolant the rest (the Green's function of
    the annulus ``a < rho < rho_c`` with both ends held). Power at or beyond the node's
    radius is the node's (1); inside the catheter, none (0). Without this the whole layer of
    power the computed field puts at the catheter lands 1-2 mm from the cold wall on 2 mm
    voxels, and the zone grows backwards along the shaft (validation/convergence.md).
    With the catheter's wall and coolant film in series (``equivalent_mm``, the radius of
    the ideal cold cylinder that conducts as they do, :mod:`ioplan.physics._catheter`)
    the logs are taken from that radius: ``ln(rho / a_eq) / ln(rho_c / a_eq)``.
    """
    rho = np.asarray(rho_mm, float)
    rc = np.asarray(centre_rho_mm, float)
    a = float(wall_mm)
    ae = a if equivalent_mm is None else float(equivalent_mm)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.log(np.maximum(rho, a) / ae) / np.log(rc / ae)
    f = np.where(rc > a, f, 1.0)
    return np.clip(np.where(rho < a, 0.0, np.where(rho >= rc, 1.0, f)), 0.0, 1.0)


def shaft_layer_factors(
    rho_mm: np.ndarray, along_mm: np.ndarray, weight: np.ndarray, centre_rho_mm: np.ndarray,
    wall_mm: float, equivalent_mm: float,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per voxel beside a cooled shaft: the pattern's whole and kept mean over sub-points.

    ``rho_mm``, ``along_mm`` and ``weight`` ``(n, m)``: ``m`` sub-points of ``n`` voxels
    (radius, position along the axis from the tip, the pattern's value there);
    ``centre_rho_mm`` ``(n,)`` the voxels' centres. Points inside the catheter behind the
    tip hold no tissue (0 in both); the others count whole, and behind the tip the node
    keeps :func:`wall_kept_fraction` of theirs (the coolant takes the rest through the
    wall and film).
    """
    w = np.asarray(weight, float)
    rho, along = np.asarray(rho_mm, float), np.asarray(along_mm, float)
    behind = along <= 0.0
    tissue = ~(behind & (rho < wall_mm))
    whole = np.where(tissue, w, 0.0)
    kept = wall_kept_fraction(rho, np.asarray(centre_rho_mm, float)[:, None], wall_mm,
                              equivalent_mm)  # fmt: skip
    kept = np.where(behind, kept, 1.0) * whole
    return whole.mean(axis=1), kept.mean(axis=1)


def lumped_shaft_layer(
    grid: Any,
    pl: Any,
    app: Any,
    idx: np.ndarray,
    along: np.ndarray,
    rad: np.ndarray,
    w0: np.ndarray,
    alpha: float,
) -> tuple[np.ndarray, float]:
    """The lumped pattern's weights beside a cooled shaft, and the share of power kept.

    ``grid`` (:class:`~ioplan.imaging.Grid`), ``pl`` (a placement), ``app`` (a cooled MW
    applicator); ``idx``, ``along``, ``rad`` and ``w0``: the pattern's voxels, their
    position from the tip and radius (mm) and weights (:func:`ioplan.physics.
    microwave_geometry`); ``alpha`` the field's attenuation (1/m). The voxels whose
    centres lie within two spacings of the shaft (behind the tip) hold tissue between the
    catheter and their centre; the pattern is steep there (1/rho), and of the power
    deposited inside a voxel's centre radius its node keeps only its share of the steady
    radial conduction, the coolant the rest (:func:`wall_kept_fraction`, the rule the
    computed field uses; through the wall and film where the device has them). Each such
    voxel's weight becomes its mean over sub-points at most 0.25 mm apart, times the kept
    share; ``kept`` is the pattern's total after over before (the engine scales the
    pattern to ``kept`` times the absorbed power).
    """
    h = float(max(grid.spacing_mm))
    a = 0.5 * float(app.diameter_mm)
    sel = np.flatnonzero((along <= h) & (rad <= a + 2.0 * h))
    if sel.size == 0:
        return w0, 1.0
    n = max(1, math.ceil(4.0 * h - 1e-9))
    off = (np.arange(n) + 0.5) / n - 0.5
    sub = np.stack(np.meshgrid(off, off, off, indexing="ij"), axis=-1).reshape(-1, 3)
    centre = np.stack(np.unravel_index(idx[sel], grid.shape), axis=1).astype(float)
    rel = grid.index_to_lps(centre[:, None, :] + sub[None, :, :]) - np.asarray(pl.tip_mm)
    d = np.asarray(pl.direction, float)
    al = rel @ d
    rr = np.sqrt(np.maximum(np.einsum("nmk,nmk->nm", rel, rel) - al * al, 0.0))

    def shape(along_mm, rho_mm):
        zf = along_mm + app.feed_offset_mm
        sp = np.where(zf > 0, app.axial_sigma_forward_mm, app.axial_sigma_backward_mm)
        r = np.maximum(rho_mm, a)
        return np.exp(-0.5 * (zf / sp) ** 2 - 2.0 * alpha * r * 1e-3) / r

    whole, kept = shaft_layer_factors(rr, al, shape(al, rr), rad[sel], a,
                                      cooled_shaft_radius_mm(app))  # fmt: skip
    at_centre = shape(along[sel], rad[sel])
    w = np.array(w0, float)
    before = float(w.sum() - w[sel].sum() + np.sum(w[sel] * whole / at_centre))
    w[sel] *= kept / at_centre
    return w, float(w.sum()) / before
