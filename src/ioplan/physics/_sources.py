"""Applicator geometry on the grid, and the heat sources: microwave, radiofrequency, cryo.

Geometry helpers take an axis-aligned :class:`~ioplan.imaging.Grid` and a
:class:`Placement` (tip in LPS mm, insertion direction). Sources return power
density maps in W/m^3 on that grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numba
import numpy as np
from scipy.optimize import brentq

from ioplan.devices import Applicator
from ioplan.errors import InputError
from ioplan.imaging import Grid
from ioplan.physics import _amg
from ioplan.physics._mw_spread import MW_BACKWARD_SPREAD_MAX, widened_weights
from ioplan.physics._rf_generator import (
    RF_MODES,
    GeneratorState,
    RfGenerator,
    rf_generator_step,
)
from ioplan.physics._subvoxel import kirchhoff_phi

__all__ = [
    "RF_MODES",
    "CryoProtocol",
    "GeneratorState",
    "Placement",
    "RfGenerator",
    "array_placements",
    "attenuation_per_m",
    "axial_radial",
    "cryo_power_limited_c",
    "microwave_geometry",
    "microwave_source",
    "nusselt_wall_h",
    "rf_conductivity_map",
    "rf_generator_step",
    "rf_potential",
    "rf_terminal_currents",
]

_EPS0 = 8.8541878128e-12  # F/m, CODATA 2018
_MU0 = 1.25663706212e-6  # H/m, CODATA 2018
# Beyond 40 mm the cylindrical wave has lost > 98 % of its power density in liver
# (exp(-2 * 48 /m * 0.04 m) = 0.02): the pattern stops there.
_MW_CUTOFF_RADIUS_MM = 40.0
# The pattern's radial factor exp(-2 alpha rho) is interpolated in a table over rho with
# this step: relative error (2 alpha h)^2 / 8 < 3e-6 for alpha <= 100 /m (liver ~48 /m).
_RHO_STEP_MM = 0.02
# The conductivity's temperature factor (Ji & Brace) is interpolated in a table over
# -60..250 degC with this step (a logistic in T: relative error < 1e-7); constant beyond.
_SIG_T0_C, _SIG_STEP_C, _SIG_N = -60.0, 0.01, 31001


@dataclass(frozen=True)
class Placement:
    """Where an applicator sits: tip (LPS mm) and unit insertion direction (towards the tip)."""

    tip_mm: tuple[float, float, float]
    direction: tuple[float, float, float] = (0.0, 0.0, -1.0)

    def __post_init__(self) -> None:
        tip = np.asarray(self.tip_mm, float).reshape(-1)
        d = np.asarray(self.direction, float).reshape(-1)
        if tip.shape != (3,) or not np.all(np.isfinite(tip)):
            raise InputError(f"tip_mm must be 3 finite numbers, got {self.tip_mm}")
        scale = float(np.max(np.abs(d))) if d.shape == (3,) else 0.0
        if not np.isfinite(scale) or scale == 0:
            raise InputError(f"direction must be a non-zero 3-vector, got {self.direction}")
        d = d / scale  # no overflow in the norm of a huge (finite) vector
        n = float(np.linalg.norm(d))
        object.__setattr__(self, "tip_mm", tuple(float(v) for v in tip))
        object.__setattr__(self, "direction", tuple(float(v) for v in d / n))


def array_placements(centre: Placement, n: int, spacing_mm: float,
                     roll_deg: float = 0.0) -> list[Placement]:  # fmt: skip
    """``n`` parallel applicators around ``centre``'s axis.

    1 (on the axis), 2 (line), 3 (triangle), 4 (square): a regular polygon whose side is
    ``spacing_mm``. 5-8 (cryoprobe arrays): one probe on the axis and ``n - 1`` on a
    ring of radius ``spacing_mm`` around it. ``roll_deg`` turns the pattern about the
    axis (degrees, from the first probe's default position), so that every probe's own
    path can miss a vessel or a rib that the default pattern would cross.
    """
    if n == 1:
        return [centre]
    if n not in range(2, 9):
        raise InputError(f"--array must be 1-8, got {n}")
    if not np.isfinite(spacing_mm) or not 3.0 <= spacing_mm <= 60.0:
        raise InputError(f"spacing between applicators must be 3-60 mm, got {spacing_mm}")
    if not np.isfinite(roll_deg):
        raise InputError(f"array roll must be a finite angle in degrees, got {roll_deg}")
    d = np.asarray(centre.direction)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d, e1)
    out = []
    if n >= 5:
        out.append(centre)
        ring, radius = n - 1, spacing_mm
    else:
        # circumradius of the regular polygon with side spacing_mm
        ring, radius = n, spacing_mm / (2.0 * math.sin(math.pi / n))
    for i in range(ring):
        a = 2.0 * math.pi * i / ring + math.radians(roll_deg)
        off = radius * (math.cos(a) * e1 + math.sin(a) * e2)
        out.append(Placement(tuple(np.asarray(centre.tip_mm) + off), centre.direction))
    return out


def axial_radial(grid: Grid, placement: Placement) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance along the axis from the tip (mm, > 0 beyond the tip) and radial distance."""
    z, y, x = grid.axis_coordinates_mm()
    tip = np.asarray(placement.tip_mm)
    d = np.asarray(placement.direction)
    rx = x[None, None, :] - tip[0]
    ry = y[None, :, None] - tip[1]
    rz = z[:, None, None] - tip[2]
    along = rx * d[0] + ry * d[1] + rz * d[2]
    r2 = rx * rx + ry * ry + rz * rz - along * along
    return along, np.sqrt(np.maximum(r2, 0.0))


def attenuation_per_m(frequency_mhz: float, eps_r: float, sigma_s_m: float) -> float:
    """Field attenuation constant alpha (1/m) of a lossy dielectric (plane wave).

    alpha = omega sqrt(mu eps / 2) sqrt(sqrt(1 + (sigma / omega eps)^2) - 1).
    Liver at 2450 MHz (eps_r 43, sigma 1.69 S/m) gives about 48 1/m.
    """
    w = 2 * math.pi * frequency_mhz * 1e6
    eps = eps_r * _EPS0
    loss = sigma_s_m / (w * eps)
    return w * math.sqrt(_MU0 * eps / 2.0) * math.sqrt(math.sqrt(1.0 + loss * loss) - 1.0)


@cache
def _sigma_scale_table() -> np.ndarray:
    """sigma(T) / sigma(37) at 2450 MHz (Ji & Brace) on ``_SIG_T0_C + i * _SIG_STEP_C``."""
    t = _SIG_T0_C + _SIG_STEP_C * np.arange(_SIG_N)
    return np.ascontiguousarray(_dielectric_scale(t)[1], dtype=np.float64)


@numba.njit(inline="always")
def _lerp(tab, x):
    n = tab.shape[0] - 1
    if x <= 0.0:
        return tab[0]
    if x >= n:
        return tab[n]
    i = int(x)
    return tab[i] + (x - i) * (tab[i + 1] - tab[i])


@numba.njit(parallel=True, cache=True)
def _mw_pattern(idx, w0, rho_pos, t_flat, sig_tab, exp_tab, out_flat, factor):
    """The pattern's sum, ``s = w0 sigma_scale(T) exp(-2 alpha rho)`` over ``idx``.

    ``factor > 0``: also adds ``factor * s`` to ``out_flat[idx]``; ``factor < 0``: writes
    ``s`` there (to be scaled by :func:`_scale_at` once the sum is known).
    """
    inv = 1.0 / _SIG_STEP_C
    size = idx.size
    n_chunks = max(1, min(1024, size // 256))
    part = np.zeros(n_chunks)  # per-chunk sums: no scalar reduction across the parallel
    # loop (numba's reduction analysis rejects some loop shapes under Python 3.12)
    for c in numba.prange(n_chunks):
        total = 0.0
        for n in range(c * size // n_chunks, (c + 1) * size // n_chunks):
            v = idx[n]
            x = (float(t_flat[v]) - _SIG_T0_C) * inv
            s = w0[n] * _lerp(sig_tab, x) * _lerp(exp_tab, rho_pos[n])
            total += s
            if factor > 0.0:
                out_flat[v] += factor * s
            elif factor < 0.0:
                out_flat[v] = s
        part[c] = total
    return part.sum()


@numba.njit(parallel=True, cache=True)
def _scale_at(out_flat, idx, factor):
    for n in numba.prange(idx.size):
        out_flat[idx[n]] *= factor


def _dielectric_scale(temperature_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """eps_r(T)/eps_r(37) and sigma(T)/sigma(37) from Ji & Brace (2450 MHz)."""
    from ioplan.tissue import dielectric_ji_brace_2450

    eps, sig = dielectric_ji_brace_2450(temperature_c)
    eps37, sig37 = dielectric_ji_brace_2450(37.0)
    return eps / eps37, sig / sig37


def microwave_source(
    grid: Grid,
    placements: list[Placement],
    app: Applicator,
    power_w: float,
    material: np.ndarray,
    temperature_c: np.ndarray,
    tissue_mask: np.ndarray,
    *,
    cache: dict | None = None,
    geometry: list[tuple] | None = None,
    label_tissues: tuple[tuple[int, str], ...] = (),
    cooled_shaft: bool = False,
) -> np.ndarray:
    """Microwave power density (W/m^3): a cylindrical wave around each antenna.

    For each antenna, ``S = sigma(T) exp(-2 alpha rho) / rho * f(z)``, with rho
    the distance from the axis (at least the antenna radius), alpha the
    attenuation of the tissue near the feed at its current temperature (Ji &
    Brace), sigma(T) the local conductivity (drying tissue absorbs less), and f
    a Gaussian axial profile centred on the feed gap (``feed_offset_mm`` behind
    the tip) with different spreads towards the tip and along the shaft. The
    temperature dependence is Ji & Brace's 2450 MHz curve, also used (relative
    to 37 degC) at 915 MHz for want of a published 915 MHz curve. Each
    antenna's pattern is normalised so that the power absorbed in tissue is
    ``power_w * efficiency``, times ``(sigma_near(T) / sigma_near(37))^p`` with
    ``p = detuning_exponent``: as the tissue around the feed dries, the antenna
    detunes and reflects more of the power (a lumped model, fitted to published
    zones; p = 0 switches it off). As it dries, the heating also creeps back along the
    shaft (the computed field shows it: ``validation/maxwell.md``; currents on the outer
    conductor of a detuned antenna heat along it, the "comet tail" of microwave zones):
    the backward spread grows by ``(sigma_near(37) / sigma_near(T))^q``, ``q =
    backward_spread_exponent`` (fitted; 0 switches it off), at most
    :data:`MW_BACKWARD_SPREAD_MAX`-fold.

    ``geometry`` (from :func:`microwave_geometry` for the same grid, material,
    applicator and placements) saves recomputing it, so that a call only evaluates the
    temperature-dependent factors; ``cache`` (a dict the caller keeps between calls)
    does the same by storing it.

    Parameters
    ----------
    grid : Grid
        Axis-aligned simulation grid (mm).
    placements : list of Placement
        Antenna tips (LPS mm) and insertion directions.
    app : Applicator
        A microwave applicator (frequency, efficiency, feed offset, axial spreads).
    power_w : float
        Generator power (W).
    material : ndarray of uint8, shape ``grid.shape``
        Material (label) per voxel.
    temperature_c : ndarray, shape ``grid.shape``
        Current temperature (degC).
    tissue_mask : ndarray of bool, shape ``grid.shape``
        Voxels that absorb (tissue, not applicator or boundary).
    label_tissues : tuple of (int, str)
        Label -> tissue overrides (:attr:`MaterialTable.label_tissues`) for the
        dielectric properties, when ``geometry`` is computed here.
    cooled_shaft : bool
        The grid holds the antenna's cooled shaft at the coolant's temperature: the
        coolant then takes its share of the power beside it
        (:func:`~ioplan.physics._catheter.lumped_shaft_layer`), when ``geometry`` is
        computed here.

    Returns
    -------
    ndarray of float32, shape ``grid.shape``
        Power density (W/m^3); its sum times the voxel volume is the absorbed power.

    References
    ----------
    Ji Z, Brace CL. Expanded modeling of temperature-dependent dielectric properties for
    microwave thermal ablation. Phys Med Biol 2011;56:5249. DOI 10.1088/0031-9155/56/16/011

    Examples
    --------
    >>> import numpy as np
    >>> from ioplan.devices import applicator
    >>> from ioplan.imaging import Grid
    >>> g = Grid((41, 21, 21), (2.0, 2.0, 2.0), (-20.0, -20.0, -40.0))
    >>> app = applicator("generic-mw-2450")
    >>> mat = np.full(g.shape, 1, np.uint8)
    >>> pl, t, tissue = [Placement((0.0, 0.0, 0.0))], np.full(g.shape, 37.0), np.ones(g.shape, bool)
    >>> q = microwave_source(g, pl, app, 40.0, mat, t, tissue)
    >>> absorbed_w = float(q.sum(dtype=np.float64)) * g.voxel_volume_m3
    >>> round(absorbed_w / (40.0 * app.efficiency), 6)
    1.0
    """
    geo = geometry if geometry is not None else None if cache is None else cache.get("mw_geometry")
    if geo is None:
        geo = microwave_geometry(grid, placements, app, material, tissue_mask,
                                 label_tissues=label_tissues,
                                 cooled_shaft=cooled_shaft)  # fmt: skip
        if cache is not None:
            cache["mw_geometry"] = geo
    t_flat = np.ascontiguousarray(temperature_c).reshape(-1)
    # float32 (relative rounding 6e-8): half the memory a full-grid map costs per update
    q = np.zeros(grid.shape, np.float32)
    q_flat = q.reshape(-1)
    voxel_m3 = grid.voxel_volume_m3
    sig_tab = _sigma_scale_table()
    rho_nodes_m = np.arange(round(_MW_CUTOFF_RADIUS_MM * 1.8 / _RHO_STEP_MM) + 2) * (
        _RHO_STEP_MM * 1e-3
    )
    for n_antenna, geo_n in enumerate(geo):
        idx, _, _, sig37, eps37_near, near, w0, rho_pos, kept, back, log_back, memo = geo_n
        if near.size:
            t = t_flat[idx[near]].astype(np.float64)
            t_near = float(np.mean(t))
            e_near = eps37_near * float(_dielectric_scale(np.array(t_near))[0])
            s_near = float(np.mean(sig37[near] * _dielectric_scale(t)[1]))
            if app.backward_spread_exponent > 0:  # drying spreads the heating back
                dried = float(np.mean(sig37[near])) / max(s_near, 1e-9)
                w0 = widened_weights(w0, back, log_back, memo, dried,
                                     app.backward_spread_exponent)  # fmt: skip
        else:
            e_near, s_near = 43.0, 1.69
        alpha = attenuation_per_m(app.frequency_mhz, e_near, s_near)
        exp_tab = np.exp(-2.0 * alpha * rho_nodes_m)
        # the first antenna writes its pattern and scales it (one pass over the look-ups);
        # the others sum first, then add (their pattern overlaps the first's)
        first = n_antenna == 0
        mode = -1.0 if first else 0.0
        total = _mw_pattern(idx, w0, rho_pos, t_flat, sig_tab, exp_tab, q_flat, mode) * voxel_m3
        if total <= 0:
            raise InputError("the microwave antenna is not surrounded by tissue on the grid")
        # next to a cooled shaft the coolant takes part of the power absorbed there
        absorbed = power_w * app.efficiency * kept
        if app.detuning_exponent > 0 and near.size:
            # drying tissue around the feed detunes the antenna: less of the power is
            # absorbed (more is reflected) as the near-feed conductivity falls
            s37_near = float(np.mean(sig37[near]))
            absorbed *= min(1.0, s_near / s37_near) ** app.detuning_exponent
        if first:
            _scale_at(q_flat, idx, absorbed / total)
        else:
            _mw_pattern(idx, w0, rho_pos, t_flat, sig_tab, exp_tab, q_flat, absorbed / total)
    return q


#: Half-size (mm) of the cylinder around the feed (|z| and radius below it) whose tissue
#: loads the antenna: its mean conductivity drives the detuning and the backward spread,
#: its permittivity and conductivity the attenuation. About a wavelength in liver at 2450
#: MHz (18.7 mm at eps_r 43, Ji & Brace 2011) and a little less; chosen (session 53) from 5,
#: 10, 15, 20 and 25 mm by refitting Emprint at 2 mm (mean / max 2.50 / 6.18, 2.01 / 4.61,
#: 1.87 / 4.00, 2.23 / 6.20, 2.81 / 6.49 mm; validation/maxwell.md, "Session 53"). Was 10.
_NEAR_FEED_MM = 15.0


def microwave_geometry(
    grid: Grid,
    placements: list[Placement],
    app: Applicator,
    material: np.ndarray,
    tissue_mask: np.ndarray,
    *,
    label_tissues: tuple[tuple[int, str], ...] = (),
    cooled_shaft: bool = False,
) -> list[tuple]:
    """Per antenna: pattern voxels, rho (m), axial profile, sigma37, near-feed data, weights.

    The last element, ``kept``: the share of the absorbed power the tissue keeps once the
    coolant has taken its part next to a cooled shaft (1 without ``cooled_shaft``, which
    the engine sets where it holds a cooled antenna's shaft at the coolant's temperature;
    :func:`~ioplan.physics._catheter.lumped_shaft_layer`).

    The temperature-independent part of :func:`microwave_source`, computed once. The
    dielectric properties are the tissue table's per label, with ``label_tissues``
    (label -> tissue overrides, :attr:`MaterialTable.label_tissues`) applied.
    """
    from ioplan.physics._catheter import lumped_shaft_layer
    from ioplan.physics._materials import tissue_dielectric

    eps37, sig37 = tissue_dielectric(material, app.frequency_mhz, label_tissues=label_tissues)
    r_app = 0.5 * app.diameter_mm
    out = []
    for pl in placements:
        along, radial = axial_radial(grid, pl)
        zf = along + app.feed_offset_mm  # from the feed gap, > 0 towards the tip
        spread = np.where(zf > 0, app.axial_sigma_forward_mm, app.axial_sigma_backward_mm)
        # The pattern is cut at a fixed cylinder (radius 40 mm, +-4 axial spreads, the
        # backward one at its widest) so that its normalisation does not depend on the size
        # of the simulation domain.
        grow = MW_BACKWARD_SPREAD_MAX if app.backward_spread_exponent > 0 else 1.0
        reach = np.where(zf > 0, 4.0, 4.0 * grow) * spread
        keep = tissue_mask & (radial <= _MW_CUTOFF_RADIUS_MM) & (np.abs(zf) <= reach)
        idx = np.flatnonzero(keep)
        if idx.size == 0:
            raise InputError("the microwave antenna is not surrounded by tissue on the grid")
        rad = radial.reshape(-1)[idx]
        z = zf.reshape(-1)[idx]
        sp = spread.reshape(-1)[idx]
        rho_m = np.maximum(rad, max(r_app, 0.5 * min(grid.spacing_mm))) * 1e-3
        profile = np.exp(-0.5 * (z / sp) ** 2)
        near = np.flatnonzero((np.abs(z) < _NEAR_FEED_MM) & (rad < _NEAR_FEED_MM))
        eps_near = float(np.mean(eps37.reshape(-1)[idx][near])) if near.size else 43.0
        s37 = sig37.reshape(-1)[idx]
        w0 = s37 / rho_m * profile
        kept = 1.0
        if app.cooled and cooled_shaft:
            s_near = float(np.mean(s37[near])) if near.size else 1.69
            alpha = attenuation_per_m(app.frequency_mhz, eps_near, s_near)
            w0, kept = lumped_shaft_layer(grid, pl, app, idx, z - app.feed_offset_mm, rad, w0,
                                          alpha)  # fmt: skip
        w0 = np.ascontiguousarray(w0, dtype=np.float64)
        rho_pos = np.ascontiguousarray(rho_m * 1e3 / _RHO_STEP_MM, dtype=np.float64)
        back = np.flatnonzero(z < 0)  # behind the feed: where the spread may grow
        log_back = -0.5 * (z[back] / sp[back]) ** 2  # ln of the profile there
        out.append((idx.astype(np.int64), rho_m, profile, s37, eps_near, near, w0, rho_pos, kept,
                    back, log_back, {}))  # fmt: skip
    # load the compiled evaluation now (numba's cache), not in the first time step
    empty = np.zeros(0)
    out32 = np.zeros(0, np.float32)
    for t_dtype in (np.float32, np.float64):
        t_empty = np.zeros(0, t_dtype)
        _mw_pattern(np.zeros(0, np.int64), empty, empty, t_empty, _sigma_scale_table(), empty,
                    out32, 0.0)  # fmt: skip
    _scale_at(out32, np.zeros(0, np.int64), 1.0)
    return out


# -- radiofrequency -------------------------------------------------------------
def rf_conductivity_map(
    material: np.ndarray, temperature_c: np.ndarray, sigma37: np.ndarray
) -> np.ndarray:
    """RF conductivity per voxel: +1.5 %/degC, then a log-linear drop as tissue desiccates."""
    from ioplan.tissue import rf_conductivity, rf_desiccation_parameters

    d = rf_desiccation_parameters()
    t = np.asarray(temperature_c, float)
    s = rf_conductivity(sigma37, np.minimum(t, d["start_c"]))
    frac = np.clip((t - d["start_c"]) / d["width_k"], 0.0, 1.0)
    return s * np.power(d["factor_at_end"], frac)


def _cut_face_ids(grid: Grid, surfaces: Any) -> list[np.ndarray]:
    """Per axis (z, y, x), the lower voxel id of every face that ``surfaces`` cut."""
    out = [np.zeros(0, np.int64)] * 3
    if surfaces is None or surfaces.size == 0:
        return out
    strides = (grid.shape[1] * grid.shape[2], grid.shape[2], 1)
    idx = np.asarray(surfaces.index, np.int64)
    bits = np.asarray(surfaces.faces, np.int64)
    for axis in range(3):
        lower = idx[(bits & (1 << (2 * axis))) != 0] - strides[axis]  # face toward -axis
        upper = idx[(bits & (1 << (2 * axis + 1))) != 0]  # face toward +axis
        out[axis] = np.unique(np.concatenate([lower, upper]))
    return out


def _cut_conductance(grid: Grid, sig: np.ndarray, surfaces: Any) -> tuple[np.ndarray, np.ndarray]:
    """Cut voxels (flat ids) and their conductance to the electrode's surface (S).

    ``G_i = sigma_i V sum 1/(delta d^2) = sum sigma_i A / (delta d)``: the tissue between
    the voxel's centre and the true surface is the voxel's own (Shortley-Weller).
    """
    if surfaces is None or surfaces.size == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    idx = np.asarray(surfaces.index, np.int64)
    g = np.asarray(sig, float).reshape(-1)[idx] * surfaces.coefficient_m2 * grid.voxel_volume_m3
    return idx, g


def _faces(grid: Grid, sig: np.ndarray, fixed: np.ndarray, surfaces: Any = None) -> list[tuple]:
    """Conducting faces per axis: ``(a_ids, b_ids, G)``, flat voxel ids and conductance (S).

    Harmonic mean of the two voxels' conductivities; a face between a fixed-potential
    voxel (metal: electrode or ground) and tissue uses the tissue's conductivity. Faces
    that ``surfaces`` cut (the electrode's true cylinder) are left out: they are the cut
    voxels' conductance to the surface (:func:`_cut_conductance`).
    """
    cut = _cut_face_ids(grid, surfaces)
    shape = grid.shape
    spacing_m = grid.spacing_m
    flat_sig = np.asarray(sig, float).reshape(-1)
    fixed_flat = fixed.reshape(-1)
    ids = np.arange(int(np.prod(shape))).reshape(shape)
    faces = []
    for axis in range(3):
        d = spacing_m[axis]
        area = float(np.prod([spacing_m[a] for a in range(3) if a != axis]))
        a_ids = np.take(ids, range(shape[axis] - 1), axis=axis).reshape(-1)
        b_ids = np.take(ids, range(1, shape[axis]), axis=axis).reshape(-1)
        sa, sb = flat_sig[a_ids], flat_sig[b_ids]
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where((sa > 0) & (sb > 0), 2 * sa * sb / (sa + sb), 0.0) * area / d
        g = np.where(fixed_flat[a_ids] & (sb > 0), sb * area / d, g)
        g = np.where(fixed_flat[b_ids] & (sa > 0), sa * area / d, g)
        keep = g > 0
        if cut[axis].size:
            keep &= ~np.isin(a_ids, cut[axis])
        faces.append((a_ids[keep], b_ids[keep], g[keep]))
    return faces


def rf_terminal_currents(
    grid: Grid,
    sigma: np.ndarray,
    phi: np.ndarray,
    electrode: np.ndarray,
    ground: np.ndarray,
    surfaces: Any = None,
) -> tuple[float, float]:
    """Current (A) into the tissue at the electrode and out of it through the ground.

    Summed over the faces between each terminal and the voxels that are neither, with
    the conductances :func:`rf_potential` uses (with ``surfaces``: the cut faces to the
    electrode's true cylinder, at 1 V, included); for a converged solution the two agree
    (charge conservation) and, at 1 V, equal the total power (W/V^2).

    Parameters
    ----------
    grid : Grid
        The grid (spacing in mm).
    sigma : ndarray
        Conductivity (S/m).
    phi : ndarray
        Potential (V), e.g. from :func:`rf_potential`.
    electrode, ground : ndarray of bool
        The terminals.
    surfaces : Surfaces, optional
        The electrode's cut faces (:func:`~ioplan.physics.rf_electrode_surfaces`).

    Returns
    -------
    current_in_a, current_out_a : float
    """
    fixed = electrode | ground
    e_flat, g_flat, f_flat = electrode.reshape(-1), ground.reshape(-1), fixed.reshape(-1)
    p = np.asarray(phi, float).reshape(-1)
    cut_ids, cut_g = _cut_conductance(grid, sigma, surfaces)
    i_in = float(np.sum(cut_g * (1.0 - p[cut_ids])))
    i_out = 0.0
    for a_ids, b_ids, g in _faces(grid, sigma, fixed, surfaces):
        cur = g * (p[a_ids] - p[b_ids])  # from a to b
        i_in += float(np.sum(cur[e_flat[a_ids] & ~f_flat[b_ids]]))
        i_in -= float(np.sum(cur[e_flat[b_ids] & ~f_flat[a_ids]]))
        i_out += float(np.sum(cur[g_flat[b_ids] & ~f_flat[a_ids]]))
        i_out -= float(np.sum(cur[g_flat[a_ids] & ~f_flat[b_ids]]))
    return i_in, i_out


def rf_potential(
    grid: Grid,
    sigma: np.ndarray,
    electrode: np.ndarray,
    ground: np.ndarray,
    *,
    tol: float = 1e-8,
    cache: dict | None = None,
    surfaces: Any = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Solve div(sigma grad phi) = 0 with phi = 1 V on the electrode, 0 on the ground.

    Finite volumes on the voxel grid (harmonic-mean face conductances), solved
    with conjugate gradients preconditioned by classical (Ruge-Stuben) algebraic
    multigrid (pyamg). Voxels with zero conductivity (insulation) carry no current.

    With ``surfaces`` the electrode is its true cylinder (issue 19): ``electrode`` holds
    only the voxels whose centres lie inside it, and a face from a free voxel ``i``
    whose segment to the neighbour enters the cylinder at ``delta d`` is replaced by the
    conductance ``sigma_i A / (delta d)`` to the surface at 1 V (Shortley-Weller, the
    cut cell of :mod:`ioplan.physics._subvoxel`). The power dissipated on such a face,
    between the voxel's centre and the surface, belongs to voxel ``i``.

    Parameters
    ----------
    grid : Grid
        The grid (spacing in mm); arrays are ``grid.shape``, ``(z, y, x)``.
    sigma : ndarray
        Electrical conductivity (S/m) per voxel.
    electrode, ground : ndarray of bool
        Voxels held at 1 V and at 0 V.
    tol : float
        Relative residual of the CG solve.
    cache : dict, optional
        Keeps the multigrid hierarchy and the last solution between calls with the
        same unknowns (updated in place; the hierarchy it held is not modified): the
        finest level takes the new matrix, the coarse operators are recomputed only
        after a solve that needed more than ``STALE_MAX_ITERATIONS`` (ioplan.physics._amg).
    surfaces : Surfaces, optional
        The electrode's cut faces (:func:`~ioplan.physics.rf_electrode_surfaces`); None:
        the electrode is the staircase of ``electrode`` voxels.

    Returns
    -------
    phi : ndarray
        Potential for 1 V.
    q_per_v2 : ndarray
        Dissipated power density (W/m^3) at 1 V: half of each face's
        ``G dphi^2`` goes to each of its two tissue voxels, all of it to the
        tissue voxel next to the electrode or ground, so that the map sums
        exactly to the total power.
    power_per_v2 : float
        Total power at 1 V (W/V^2) = 1 / impedance.

    Examples
    --------
    A slab of 0.2 S/m between two plates: R = L / (sigma A), exact on the grid.

    >>> import numpy as np
    >>> from ioplan.imaging import Grid
    >>> g = Grid((12, 5, 6), (2.0, 1.0, 1.5))
    >>> plate0, plate1 = np.zeros(g.shape, bool), np.zeros(g.shape, bool)
    >>> plate0[0], plate1[-1] = True, True
    >>> _, q, p = rf_potential(g, np.full(g.shape, 0.2), plate0, plate1)
    >>> round(1.0 / p, 3)  # ohm: 22 mm / (0.2 S/m x 5 mm x 9 mm)
    2444.444
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    shape = grid.shape
    n = int(np.prod(shape))
    sig = np.asarray(sigma, float)
    phi = np.zeros(shape)
    phi[electrode] = 1.0
    fixed = electrode | ground
    unknown = (~fixed) & (sig > 0)
    index = -np.ones(n, np.int64)
    unk_flat = np.flatnonzero(unknown.reshape(-1))
    index[unk_flat] = np.arange(unk_flat.size)
    rows, cols, vals = [], [], []
    rhs = np.zeros(unk_flat.size)
    diag = np.zeros(unk_flat.size)
    flat_phi_fixed = phi.reshape(-1)
    fixed_flat = fixed.reshape(-1)
    faces = _faces(grid, sig, fixed, surfaces)
    cut_ids, cut_g = _cut_conductance(grid, sig, surfaces)
    cut_unk = index[cut_ids]
    if np.any(cut_unk < 0):
        raise InputError("an RF cut face starts from a voxel that is not an unknown")
    diag += np.bincount(cut_unk, cut_g, minlength=unk_flat.size)
    rhs += np.bincount(cut_unk, cut_g * 1.0, minlength=unk_flat.size)  # surface at 1 V
    for a_ids, b_ids, g in faces:
        ia, ib = index[a_ids], index[b_ids]
        both = (ia >= 0) & (ib >= 0)
        rows += [ia[both], ib[both]]
        cols += [ib[both], ia[both]]
        vals += [-g[both], -g[both]]
        m = unk_flat.size
        diag += np.bincount(ia[ia >= 0], g[ia >= 0], minlength=m)
        diag += np.bincount(ib[ib >= 0], g[ib >= 0], minlength=m)
        # neighbours with a fixed potential go to the right-hand side
        sel = (ia >= 0) & fixed_flat[b_ids]
        rhs += np.bincount(ia[sel], g[sel] * flat_phi_fixed[b_ids[sel]], minlength=m)
        sel = (ib >= 0) & fixed_flat[a_ids]
        rhs += np.bincount(ib[sel], g[sel] * flat_phi_fixed[a_ids[sel]], minlength=m)
    rows.append(np.arange(unk_flat.size))
    cols.append(np.arange(unk_flat.size))
    vals.append(diag)
    mat = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(unk_flat.size, unk_flat.size),
    )
    # isolated unknowns (no conducting neighbour) would make the matrix singular
    isolated = diag == 0
    if np.any(isolated):
        mat = mat + sp.diags(isolated.astype(float))
    # ``cache`` keeps the multigrid hierarchy and the last solution between calls: the
    # finest level takes the new matrix (the coarse operators only when CG slowed), and
    # the old potential is a close first guess.
    x0 = None
    ml = None
    if cache is not None and cache.get("n") == unk_flat.size:
        ml = _amg.amg_update(cache["ml"], mat, coarse=cache.get("refresh", True))
        x0 = cache["x"]
    if ml is None:
        ml = _amg.amg_hierarchy(mat)
    its = [0]

    def count(_):
        its[0] += 1

    x, info = spla.cg(mat, rhs, x0=x0, rtol=tol, maxiter=500, M=ml.aspreconditioner(),
                      callback=count)  # fmt: skip
    if info != 0:  # the kept interpolation no longer suits the matrix: a fresh hierarchy
        ml = _amg.amg_hierarchy(mat)
        x, info = spla.cg(mat, rhs, x0=x, rtol=tol, maxiter=500, M=ml.aspreconditioner())
    if info != 0:
        raise InputError("the RF potential solve did not converge (check the conductivities)")
    if cache is not None:  # coarse operators recomputed next time only where CG slowed
        cache.update(n=unk_flat.size, ml=ml, x=x, refresh=its[0] > _amg.STALE_MAX_ITERATIONS)
    flat_phi = phi.reshape(-1)
    flat_phi[unk_flat] = x
    # the cut faces: all their power (centre to surface) belongs to the cut voxel
    p_cut = cut_g * (1.0 - flat_phi[cut_ids]) ** 2
    q = np.bincount(cut_ids, p_cut, minlength=n).astype(float)
    total = float(p_cut.sum())
    voxel_m3 = grid.voxel_volume_m3
    fixed_flat = fixed.reshape(-1)
    for a_ids, b_ids, g in faces:
        p = g * (flat_phi[a_ids] - flat_phi[b_ids]) ** 2
        total += float(p.sum())
        # between two tissue voxels the face's power is shared; next to metal (a
        # fixed-potential voxel, whose conductance is the tissue's alone) it all
        # belongs to the tissue voxel
        wa = np.where(fixed_flat[a_ids], 0.0, np.where(fixed_flat[b_ids], 1.0, 0.5))
        q += np.bincount(a_ids, wa * p, minlength=n)
        q += np.bincount(b_ids, (1.0 - wa) * np.where(fixed_flat[b_ids], 0.0, 1.0) * p, minlength=n)
    q /= voxel_m3
    return phi, q.reshape(shape), total


@dataclass(frozen=True)
class CryoProtocol:
    """Freeze and thaw phases, e.g. ``freeze:600,thaw:300,freeze:600`` (seconds).

    ``thaw`` is an active thaw (the probe driven to ``thaw_temperature_c``, as
    helium or electrically heated systems do); ``passive`` leaves the probe
    undriven, following the tissue around it.
    """

    phases: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, text: str) -> CryoProtocol:
        """Parse ``"freeze:600,thaw:300,freeze:600"``."""
        phases = []
        for part in str(text).split(","):
            kind, sep, dur = part.strip().partition(":")
            kind = kind.strip().lower()
            try:
                seconds = float(dur)
            except ValueError:
                raise InputError(
                    f"--protocol phase {part!r} must be freeze:SECONDS, thaw:SECONDS "
                    "or passive:SECONDS"
                ) from None
            if not sep or kind not in ("freeze", "thaw", "passive"):
                raise InputError(
                    f"--protocol phase {part!r} must be freeze:SECONDS, thaw:SECONDS "
                    "or passive:SECONDS"
                )
            if not np.isfinite(seconds) or not 0 < seconds <= 7200:
                raise InputError(
                    "--protocol phase duration must be more than 0 and at most 7200 s, "
                    f"got {seconds:g}"
                )
            phases.append((kind, seconds))
        if not phases or phases[0][0] != "freeze":
            raise InputError("--protocol must start with a freeze phase")
        return cls(tuple(phases))

    @property
    def duration_s(self) -> float:
        """Total duration (s)."""
        return float(sum(d for _, d in self.phases))

    def phase_at(self, t_s: float) -> str:
        """The phase (``freeze``, ``thaw``, ``passive``) at time ``t_s``; the last after the end."""
        start = 0.0
        for kind, dur in self.phases:
            if t_s < start + dur:
                return kind
            start += dur
        return self.phases[-1][0]

    def probe_temperature(
        self, t_s: float, app: Applicator, body_c: float = 37.0, passive_c: float | None = None
    ) -> float:
        """Cold-segment temperature at time ``t_s``: exponential approach to the set point.

        Freezing approaches ``probe_temperature_c`` with time constant
        ``cooldown_s / 3`` (95 % reached after ``cooldown_s``); active thaw
        approaches ``thaw_temperature_c`` the same way. In a passive phase the
        probe takes ``passive_c``, the temperature of the tissue around it
        (the probe's own heat capacity neglected); without it, it holds.
        """
        temp = body_c
        start = 0.0
        tau = max(app.cooldown_s / 3.0, 1e-6)
        for kind, dur in self.phases:
            if kind == "passive":
                temp = temp if passive_c is None else passive_c
                if t_s < start + dur:
                    return temp
                start += dur
                continue
            target = app.probe_temperature_c if kind == "freeze" else app.thaw_temperature_c
            elapsed = min(max(t_s - start, 0.0), dur)
            temp = target + (temp - target) * math.exp(-elapsed / tau)
            if t_s < start + dur:
                return temp
            start += dur
        return temp


def cryo_power_limited_c(
    temperature_c: np.ndarray,
    material: np.ndarray,
    table: Any,
    surfaces: Any,
    grid: Grid,
    cooling_power_w: float,
) -> float:
    """The coldest the probes can hold (degC) when their gas takes ``cooling_power_w``.

    The probes take heat from the tissue only through their cut faces
    (:class:`~ioplan.physics._subvoxel.Surfaces`, group 1): voxel ``n`` gives
    ``c_n V (Phi(T_n) - Phi(T_p))`` watts (its cut-face coefficient, its volume and the
    Kirchhoff potential ``Phi``, the integral of k(T): the tissue between the voxel's
    centre and the probe conducts in whatever phase it is in, as the engine's cut faces
    do). A probe whose gas extracts at most ``Q`` watts (a Joule-Thomson probe's cooling
    power) cannot be colder than the ``T_p`` at which that sum is ``Q`` (in closed form
    when the cut voxels are one tissue, else by Brent's method). -inf without cut faces.

    Parameters
    ----------
    temperature_c, material : ndarray
        Temperature (degC) and material ids on the grid.
    table : MaterialTable
        Conductivities (unfrozen, mushy, frozen) and the mushy-zone limits.
    surfaces : Surfaces
        The cut faces of the grid.
    grid : Grid
        The grid (voxel volume).
    cooling_power_w : float
        The probes' cooling power together (W).
    """
    if surfaces is None or surfaces.size == 0:
        return float("-inf")
    sel = surfaces.group == 1
    idx = surfaces.index[sel]
    if idx.size == 0:
        return float("-inf")
    t = np.asarray(temperature_c, float).reshape(-1)[idx]
    m = np.asarray(material).reshape(-1)[idx]
    w = surfaces.coefficient_m2[sel] * grid.voxel_volume_m3  # m
    if float(w.sum()) <= 0:
        return float("-inf")
    phi_t = kirchhoff_phi(table, m, t)
    m0 = int(m[0])
    k, km, kf = (float(a[m0]) for a in (table.k_w_m_k, table.k_mushy_w_m_k, table.k_frozen_w_m_k))
    if np.all(m == m0) and min(k, km, kf) > 0:  # one tissue: invert its piecewise-linear Phi
        phi_p = (float(np.sum(w * phi_t)) - cooling_power_w) / float(w.sum())
        tl, ts = float(table.liquidus_c[m0]), float(table.solidus_c[m0])
        if phi_p >= 0.0:
            return tl + phi_p / k
        if phi_p >= km * (ts - tl):
            return tl + phi_p / km
        return ts + (phi_p - km * (ts - tl)) / kf

    def excess_w(tp: float) -> float:  # rises as the probe gets colder; < 0 at t.max()
        phi_p = kirchhoff_phi(table, m, np.full(t.shape, tp))
        return float(np.sum(w * (phi_t - phi_p))) - cooling_power_w

    hi = float(t.max())
    lo = hi - 50.0
    while excess_w(lo) < 0.0:
        lo -= 2.0 * (hi - lo)
        if lo < -1e6:
            return float("-inf")
    return float(brentq(excess_w, lo, hi, xtol=1e-6))


def nusselt_wall_h(diameter_mm: float, flow_ml_min: float, heated_length_mm: float = 30.0) -> float:
    """Wall heat-transfer coefficient (W/m^2/K) of a vessel from a Nusselt correlation.

    Laminar (Re < 2300): Hausen's developing-flow correlation over the heated
    length; turbulent: Dittus-Boelter. Blood properties from the tissue table.
    """
    from ioplan.physics._materials import blood_properties
    from ioplan.tissue import blood_flow_parameters

    if not np.isfinite(diameter_mm) or not 0.5 <= diameter_mm <= 40.0:
        raise InputError(f"vessel diameter_mm must be 0.5-40 mm, got {diameter_mm}")
    if not np.isfinite(flow_ml_min) or not 0.0 <= flow_ml_min <= 5000.0:
        raise InputError(f"vessel flow_ml_min must be 0-5000 mL/min, got {flow_ml_min}")
    bf = blood_flow_parameters()
    blood = blood_properties()
    d = diameter_mm * 1e-3
    k, rho, c, mu = blood["k_w_m_k"], blood["rho_kg_m3"], blood["c_j_kg_k"], bf["viscosity_pa_s"]
    v = flow_ml_min * 1e-6 / 60.0 / (math.pi * d * d / 4.0)
    re = rho * v * d / mu
    pr = mu * c / k
    if re < bf["laminar_reynolds_limit"]:
        gz = re * pr * d / (heated_length_mm * 1e-3)
        nu = bf["nusselt_fully_developed"] + bf["hausen_a"] * gz / (
            1.0 + bf["hausen_b"] * gz ** (2 / 3)
        )
    else:
        nu = bf["dittus_boelter_c"] * re**0.8 * pr**0.4
    return nu * k / d
