"""Axisymmetric frequency-domain Maxwell solve around a coaxial microwave antenna.

The field is time-harmonic (``exp(j omega t)``) and transverse magnetic about the antenna
axis: ``E_r``, ``E_z`` and ``H_phi`` in the r-z half-plane. The unknown is ``H_phi``,

    -d/dr((1/(eps_c r)) d(r H)/dr) - d/dz((1/eps_c) dH/dz) - k0^2 H = 0,
    eps_c = eps_r - j sigma / (omega eps0),

the standard formulation of microwave-ablation models (perfect conductors are its natural
boundary, the axis carries ``H = 0``).

Discretisation: the finite integration technique (FIT; Weiland 1977, Yee's staggering) on
a graded tensor r-z grid whose lines pass through every material interface. ``H_phi`` lives
on the nodes (a circulation around a ring); the current through each annulus (E_z) and
each cylinder (E_r) between nodes is Ampere's law exactly; the voltage along the dual edge
assumes D continuous across an interface (harmonic averaging, the right one for the normal
component) and, radially, the 1/r dependence of a coaxial field (``ln(r2/r1)`` weights). A
coaxial line's TEM mode is then exact in r, and the discrete Poynting theorem holds exactly:
power in = absorbed + radiated to round-off, per cell. A perfect conductor is a cell with
``1/eps_c = 0``. We chose FIT over scikit-fem's elements because the antenna is a stack of
rectangles (a tensor grid fits it exactly with ~10^4-10^5 unknowns, solved in well under a
second), the per-cell absorbed power falls out of the scheme, and it needs no r-weighted
quadrature near the axis.

The feed is a TEM port on the lower z boundary inside the coaxial dielectric (incident
wave of 1 W forward power, the 1/r profile); S11 and the input impedance come from the
TEM content of the field on the port. Other open boundaries carry a first-order absorbing
condition: ``E_t = -eta n x H`` on the z boundaries and the cylindrical-wave impedance
``eta (1 - 1 / (2 gamma R))`` on the outer radius.

Coordinates: z (mm) along the antenna axis from the applicator tip, > 0 beyond the tip
(the ``along`` of :func:`~ioplan.physics.axial_radial`), r (mm) from the axis.

References
----------
Weiland T. A discretization method for the solution of Maxwell's equations for
six-component fields. AEU 1977;31:116-120.
Saito K, Hayashi Y, Yoshimura H, Ito K. Heating characteristics of array applicator
composed of two coaxial-slot antennas for microwave coagulation therapy. IEEE Trans MTT
2000;48:1800-1806. DOI 10.1109/22.883858
Ji Z, Brace CL. Expanded modeling of temperature-dependent dielectric properties for
microwave thermal ablation. Phys Med Biol 2011;56:5249. DOI 10.1088/0031-9155/56/16/011
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import ndimage

from ioplan.errors import InputError
from ioplan.imaging import Grid
from ioplan.physics._sources import _EPS0, _MU0, Placement

__all__ = [
    "AntennaGeometry",
    "AntennaSolution",
    "SolverOptions",
    "TissueMap",
    "map_axisymmetric",
    "rz_average",
    "solve_antenna",
    "tissue_map_from_temperature",
]

# cell labels
TISSUE, CATHETER, COOLANT, COAX_DIELECTRIC, CONDUCTOR = 0, 1, 2, 3, 4
_LABEL_NAMES = ("tissue", "catheter", "coolant", "coax dielectric", "conductor")

# Deionised water near 20 degC at 2.45 GHz from Kaatze's Debye fit (eps_s 80.2,
# eps_inf 5.2, tau 9.36 ps; Kaatze U, J Chem Eng Data 1989;34:371, DOI 10.1021/je00058a001):
# omega tau = 0.144, eps' = 5.2 + 75 / (1 + 0.144^2) = 78.7, eps'' = 75 * 0.144 / 1.021
# = 10.6, sigma_eff = omega eps0 eps'' = 1.44 S/m.
_WATER_EPS_R, _WATER_SIGMA_S_M = 78.7, 1.44


@dataclass(frozen=True)
class AntennaGeometry:
    """A coaxial slot antenna in a catheter, optionally water-cooled and choked (mm).

    Defaults: a generic cooled 2.45 GHz 13 G antenna. The coaxial cable is UT-047 semi-rigid
    (centre conductor 0.287 mm, PTFE 0.94 mm, outer conductor 1.19 mm diameters; Micro-Coax
    data sheet), the cable of Saito et al.'s coaxial-slot antenna (IEEE MTT 2000) and of
    COMSOL's "Microwave heating of a cancer tumor" model built on it. The slot is 1 mm
    wide (Saito). The coolant layer, catheter wall and the slot-to-short distance are
    assumptions: a 2.4 mm (13 G) outer diameter as ``generic-mw-2450`` in the device
    registry, a 0.2 mm wall and water filling the rest; the slot centre ~10 mm behind the
    tip as that registry entry's feed offset (Emprint-like).

    Parameters
    ----------
    inner_radius_mm, dielectric_radius_mm, outer_radius_mm : float
        Radii of the centre conductor, the coaxial dielectric and the outer conductor.
    dielectric_eps_r : float
        Relative permittivity of the coaxial dielectric (PTFE 2.03, UT-047 data sheet).
    slot_width_mm : float
        Axial width of the ring slot cut in the outer conductor (filled by the dielectric).
    slot_to_short_mm : float
        From the slot's distal edge to the short circuit at the cable's end.
    short_thickness_mm : float
        Thickness of the conductor disk that shorts the cable's end (assumption).
    cap_length_mm : float
        Catheter (solid) beyond the cable's end, up to the applicator tip (assumption).
    coolant_thickness_mm : float
        Water layer outside the outer conductor, up to the cable's end; 0: none.
    catheter_thickness_mm, catheter_eps_r : float
        Catheter wall; eps_r 2.6 as in the COMSOL model (assumption for a generic catheter).
    choke_length_mm : float or None
        A choke: a conducting sleeve on the inside of the catheter, shorted to the outer
        conductor at its proximal end, open at its distal end. None: no choke.
    choke_offset_mm : float
        From the slot's proximal edge back to the choke's open (distal) end.
    """

    inner_radius_mm: float = 0.1435  # UT-047: 0.287 mm diameter
    dielectric_radius_mm: float = 0.47  # UT-047: 0.94 mm PTFE
    dielectric_eps_r: float = 2.03  # PTFE, UT-047 data sheet
    outer_radius_mm: float = 0.595  # UT-047: 1.19 mm
    slot_width_mm: float = 1.0  # Saito et al. 2000
    slot_to_short_mm: float = 9.0  # assumption: slot centre 10 mm behind the tip
    short_thickness_mm: float = 0.1  # assumption
    cap_length_mm: float = 0.5  # assumption
    coolant_thickness_mm: float = 0.405  # assumption: water up to a 2.0 mm bore
    catheter_thickness_mm: float = 0.2  # assumption: 2.4 mm (13 G) outer diameter
    catheter_eps_r: float = 2.6  # COMSOL model's catheter (assumption)
    coolant_eps_r: float = _WATER_EPS_R
    coolant_sigma_s_m: float = _WATER_SIGMA_S_M
    choke_length_mm: float | None = None
    choke_offset_mm: float = 5.0  # assumption, only with a choke

    def __post_init__(self) -> None:
        for name in ("inner_radius_mm", "dielectric_radius_mm", "outer_radius_mm",
                     "slot_width_mm", "slot_to_short_mm", "short_thickness_mm",
                     "catheter_thickness_mm"):  # fmt: skip
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"{name} must be a positive finite number, got {v}")
        for name in ("cap_length_mm", "coolant_thickness_mm", "coolant_sigma_s_m",
                     "choke_offset_mm"):  # fmt: skip
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"{name} must be a finite number >= 0, got {v}")
        for name in ("dielectric_eps_r", "catheter_eps_r", "coolant_eps_r"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 1):
                raise InputError(f"{name} must be >= 1, got {v}")
        if not self.inner_radius_mm < self.dielectric_radius_mm < self.outer_radius_mm:
            raise InputError(
                "radii must satisfy inner < dielectric < outer, got "
                f"{self.inner_radius_mm}, {self.dielectric_radius_mm}, {self.outer_radius_mm}"
            )
        if self.choke_length_mm is not None:
            if not (math.isfinite(self.choke_length_mm) and self.choke_length_mm > 0):
                raise InputError(f"choke_length_mm must be > 0, got {self.choke_length_mm}")
            if self.coolant_thickness_mm < 0.1:
                raise InputError("a choke needs a coolant (gap) layer of at least 0.1 mm")

    @property
    def catheter_radius_mm(self) -> float:
        """Outer radius of the applicator (mm)."""
        return self.outer_radius_mm + self.coolant_thickness_mm + self.catheter_thickness_mm

    @property
    def short_z_mm(self) -> float:
        """Axial position of the cable's end (mm, < 0: behind the tip)."""
        return -self.cap_length_mm

    @property
    def slot_z_mm(self) -> tuple[float, float]:
        """Axial positions of the slot's proximal and distal edges (mm)."""
        hi = self.short_z_mm - self.slot_to_short_mm
        return hi - self.slot_width_mm, hi

    @property
    def slot_centre_z_mm(self) -> float:
        """Axial position of the slot's centre (mm)."""
        lo, hi = self.slot_z_mm
        return 0.5 * (lo + hi)

    def _choke_z_mm(self) -> tuple[float, float]:
        hi = self.slot_z_mm[0] - self.choke_offset_mm
        return hi - float(self.choke_length_mm or 0.0), hi


@dataclass(frozen=True)
class TissueMap:
    """Tissue permittivity and conductivity around the antenna axis.

    Either scalars (homogeneous tissue) or 2D arrays of shape ``(nz, nr)`` sampled at
    ``r = i * step_mm`` and ``z = z0_mm + j * step_mm`` (mm; z from the applicator tip, > 0
    beyond it). The solver interpolates bilinearly and holds the edge values beyond.

    Parameters
    ----------
    eps_r : float or ndarray
        Relative permittivity (>= 1).
    sigma_s_m : float or ndarray
        Electrical conductivity (S/m, >= 0) at the solve's frequency.
    step_mm : float
        Sample spacing of the arrays (mm).
    z0_mm : float
        z of the first row (mm).
    """

    eps_r: float | np.ndarray = 43.0
    sigma_s_m: float | np.ndarray = 1.69
    step_mm: float = 0.5
    z0_mm: float = 0.0

    def __post_init__(self) -> None:
        e = np.asarray(self.eps_r, float)
        s = np.asarray(self.sigma_s_m, float)
        if e.ndim not in (0, 2) or s.ndim not in (0, 2):
            raise InputError(f"eps_r and sigma_s_m must be scalars or 2D, got {e.shape}, {s.shape}")
        if e.ndim == 2 and s.ndim == 2 and e.shape != s.shape:
            raise InputError(f"eps_r and sigma_s_m shapes differ: {e.shape} vs {s.shape}")
        if not (np.all(np.isfinite(e)) and np.all(e >= 1.0)):
            raise InputError("eps_r must be finite and >= 1")
        if not (np.all(np.isfinite(s)) and np.all(s >= 0.0)):
            raise InputError("sigma_s_m must be finite and >= 0")
        if not (math.isfinite(self.step_mm) and self.step_mm > 0):
            raise InputError(f"step_mm must be > 0, got {self.step_mm}")
        if not math.isfinite(self.z0_mm):
            raise InputError(f"z0_mm must be finite, got {self.z0_mm}")

    def sample(self, r_mm: np.ndarray, z_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """eps_r and sigma (S/m) at points ``(r_mm, z_mm)`` (same shape)."""
        out = []
        for v in (self.eps_r, self.sigma_s_m):
            a = np.asarray(v, float)
            if a.ndim == 0:
                out.append(np.full(np.shape(r_mm), float(a)))
            else:
                coords = [(z_mm - self.z0_mm) / self.step_mm, r_mm / self.step_mm]
                out.append(ndimage.map_coordinates(a, coords, order=1, mode="nearest"))
        return out[0], out[1]


def tissue_map_from_temperature(
    temperature_c: np.ndarray, *, step_mm: float, z0_mm: float
) -> TissueMap:
    """Liver at 2.45 GHz from an r-z temperature map (degC), Ji & Brace's curves.

    ``temperature_c`` has shape ``(nz, nr)`` on the :class:`TissueMap` sampling.
    """
    from ioplan.tissue import dielectric_ji_brace_2450

    eps, sig = dielectric_ji_brace_2450(np.asarray(temperature_c, float))
    return TissueMap(np.maximum(eps, 1.0), np.maximum(sig, 0.0), step_mm, z0_mm)


@dataclass(frozen=True)
class SolverOptions:
    """Domain, grid and output sampling of :func:`solve_antenna` (mm unless stated).

    Parameters
    ----------
    frequency_mhz : float
        Source frequency (MHz).
    radius_mm : float
        Outer radius of the domain (absorbing boundary).
    z_min_mm, z_max_mm : float
        Axial extent of the domain (the port sits at ``z_min_mm`` inside the cable).
    h_fine_mm : float
        Grid spacing at material interfaces (the antenna's radii and ends).
    h_max_mm : float
        Largest grid spacing, far from the antenna.
    growth : float
        Largest ratio of neighbouring spacings.
    refine : float
        Divides ``h_fine_mm`` and ``h_max_mm`` (convergence studies: 2 halves both).
    sar_step_mm, sar_radius_mm, sar_z_mm : float
        The regular r-z grid of the output SAR: cells of ``sar_step_mm`` from the axis to
        ``sar_radius_mm`` and over ``sar_z_mm = (lo, hi)``.
    """

    frequency_mhz: float = 2450.0
    radius_mm: float = 40.0
    z_min_mm: float = -90.0
    z_max_mm: float = 30.0
    h_fine_mm: float = 0.05
    h_max_mm: float = 0.5
    growth: float = 1.15
    refine: float = 1.0
    sar_step_mm: float = 0.25
    sar_radius_mm: float = 30.0
    sar_z_mm: tuple[float, float] = (-60.0, 20.0)

    def __post_init__(self) -> None:
        for name in ("frequency_mhz", "radius_mm", "h_fine_mm", "h_max_mm", "refine",
                     "sar_step_mm", "sar_radius_mm"):  # fmt: skip
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"{name} must be positive and finite, got {v}")
        if not 1.0 < self.growth <= 2.0:
            raise InputError(f"growth must be in (1, 2], got {self.growth}")
        lo, hi = self.sar_z_mm
        if not (self.z_min_mm < lo < hi <= self.z_max_mm and self.sar_radius_mm <= self.radius_mm):
            raise InputError(
                f"the SAR window r <= {self.sar_radius_mm}, z in {self.sar_z_mm} must lie in "
                f"the domain r <= {self.radius_mm}, z in ({self.z_min_mm}, {self.z_max_mm})"
            )


@dataclass(frozen=True)
class AntennaSolution:
    """The solved field's outputs, per watt of forward power.

    ``sar_w_m3_per_w[j, i]`` is the power density (W/m^3 per W forward, sigma |E|^2 / 2,
    tissue only) averaged over the ring cell centred on ``z_mm[j]``, ``r_mm[i]``.
    Powers are fractions of the forward power (W per W). ``balance_error`` is
    ``(forward - reflected - absorbed - radiated) / forward``. ``s11`` and ``z_in_ohm``
    are referred to the feed plane, the slot's proximal edge (the cable between the port
    and the slot is lossless: its phase, ``exp(2 j beta L)``, is removed).
    """

    r_mm: np.ndarray
    z_mm: np.ndarray
    sar_w_m3_per_w: np.ndarray
    s11: complex
    s11_db: float
    reflected: float
    absorbed_tissue: float
    absorbed_tissue_window: float
    absorbed_antenna: float
    radiated: float
    balance_error: float
    z_in_ohm: complex
    z0_ohm: float
    n_unknowns: int
    solve_s: float
    absorbed_by_label: dict = field(default_factory=dict)

    def sar_weighted_radius_mm(self) -> float:
        """SAR-weighted mean distance from the axis (mm)."""
        w = self.sar_w_m3_per_w * self.r_mm[None, :]
        return float(np.sum(w * self.r_mm[None, :]) / np.sum(w))

    def sar_weighted_z_mm(self) -> tuple[float, float]:
        """SAR-weighted mean z and standard deviation along the axis (mm)."""
        w = self.sar_w_m3_per_w * self.r_mm[None, :]
        wz = w.sum(axis=1)
        m = float(np.sum(wz * self.z_mm) / wz.sum())
        return m, float(np.sqrt(np.sum(wz * (self.z_mm - m) ** 2) / wz.sum()))

    def contour_extent_mm(self, fraction: float = 0.5) -> tuple[float, float]:
        """Largest radius and axial length (mm) of the region where SAR >= fraction * max."""
        on = self.sar_w_m3_per_w >= fraction * self.sar_w_m3_per_w.max()
        rows = np.flatnonzero(on.any(axis=1))
        cols = np.flatnonzero(on.any(axis=0))
        h = float(self.r_mm[1] - self.r_mm[0])
        return float(self.r_mm[cols[-1]] + 0.5 * h), float((rows[-1] - rows[0] + 1) * h)


# -- the FIT solve on a tensor grid --------------------------------------------------
@dataclass(frozen=True)
class _RzField:
    """Raw solution on the tensor grid (SI units; powers per the port's forward power)."""

    r_m: np.ndarray
    z_m: np.ndarray
    h: np.ndarray  # (nz, nr) complex H_phi at the nodes (A/m)
    cell_power_w: np.ndarray  # (nz-1, nr-1) absorbed power per ring cell (W)
    radiated_w: float
    port_in_w: float  # net power into the domain through the port (W)
    forward_w: float
    s11: complex
    z0_ohm: float
    n_unknowns: int


def _logs(r_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ln(r_mid / r_lo) and ln(r_hi / r_mid) per radial cell (the first cell's inner: 0)."""
    rh = 0.5 * (r_m[:-1] + r_m[1:])
    lin = np.zeros_like(rh)
    lin[1:] = np.log(rh[1:] / r_m[1:-1])
    if r_m[0] > 0:
        lin[0] = math.log(rh[0] / r_m[0])
    return lin, np.log(r_m[1:] / rh)


def _cbincount(idx: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """np.bincount for complex weights."""
    return np.bincount(idx, weights.real, n) + 1j * np.bincount(idx, weights.imag, n)


def _sparse_solve(a: sp.csc_matrix, b: np.ndarray) -> np.ndarray:
    """Solve the complex symmetric system: symmetric-mode LU, pivoting LU if it is inaccurate.

    Diagonal pivots with a minimum-degree ordering of A + A^T keep the fill 2-3x below
    SuperLU's default on these grids; the residual check guards the skipped pivoting.
    """
    lu = spla.splu(a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                   options={"SymmetricMode": True})  # fmt: skip
    x = lu.solve(b)
    if np.linalg.norm(a @ x - b) > 1e-9 * np.linalg.norm(b):
        x = spla.splu(a, permc_spec="COLAMD").solve(b)
    return x


def _solve_rz(
    r_m: np.ndarray,
    z_m: np.ndarray,
    eps_c: np.ndarray,
    frequency_hz: float,
    *,
    port_r_m: tuple[float, float] | None = None,
    dipole: tuple[int, complex] | None = None,
) -> _RzField:
    """Solve for H_phi on the grid ``r_m`` x ``z_m`` with complex eps per cell.

    ``eps_c`` has shape ``(nz-1, nr-1)``; ``inf`` marks a perfect conductor. The port (1 W
    forward TEM) covers the lower boundary's cells with ``port_r_m[0] < r < port_r_m[1]``;
    every other non-conducting boundary cell absorbs. ``dipole = (j, I)``: an impressed
    current ``I`` (A) along the axis through the annulus 0 < r < r[1] at ``z_m[j]``.
    """
    w = 2.0 * math.pi * frequency_hz
    nr, nz = r_m.size, z_m.size
    dz = np.diff(z_m)
    pec = np.isinf(eps_c)
    ie = np.where(pec, 0.0, 1.0 / (_EPS0 * np.where(pec, 1.0, eps_c)))  # 1/eps per cell
    lin, lout = _logs(r_m)
    node = np.arange(nr * nz).reshape(nz, nr)

    # z-facets (annuli at z_j between r_i and r_i+1): kappa halves below and above
    kz_lo = np.zeros((nz, nr - 1), complex)
    kz_hi = np.zeros((nz, nr - 1), complex)
    area = math.pi * (r_m[1:] ** 2 - r_m[:-1] ** 2)
    kz_lo[1:] = 0.5 * dz[:, None] * ie / area
    kz_hi[:-1] = 0.5 * dz[:, None] * ie / area
    jj, ii = np.meshgrid(np.arange(nz), np.arange(nr - 1), indexing="ij")
    nzf = jj.size
    rows_z = np.arange(nzf)
    cz = sp.csr_matrix(
        (np.concatenate([2 * math.pi * r_m[ii + 1].ravel(), -2 * math.pi * r_m[ii].ravel()]),
         (np.concatenate([rows_z, rows_z]),
          np.concatenate([node[jj, ii + 1].ravel(), node[jj, ii].ravel()]))),
        shape=(nzf, nr * nz),
    )  # fmt: skip
    # r-facets (cylinders at r_i between z_j and z_j+1), i >= 1
    kr_in = np.zeros((nz - 1, nr), complex)
    kr_out = np.zeros((nz - 1, nr), complex)
    kr_in[:, 1:] = lout[None, :] * ie / (2 * math.pi * dz[:, None])
    kr_out[:, 1:-1] = lin[None, 1:] * ie[:, 1:] / (2 * math.pi * dz[:, None])
    jr, ir = np.meshgrid(np.arange(nz - 1), np.arange(1, nr), indexing="ij")
    nrf = jr.size
    rows_r = np.arange(nrf)
    cr = sp.csr_matrix(
        (np.concatenate([2 * math.pi * r_m[ir].ravel(), -2 * math.pi * r_m[ir].ravel()]),
         (np.concatenate([rows_r, rows_r]),
          np.concatenate([node[jr, ir].ravel(), node[jr + 1, ir].ravel()]))),
        shape=(nrf, nr * nz),
    )  # fmt: skip
    c = sp.vstack([cz, cr]).tocsr()
    kappa = np.concatenate([(kz_lo + kz_hi).ravel(), (kr_in[:, 1:] + kr_out[:, 1:]).ravel()])

    # magnetic flux through the dual cell, log-weighted in r (H ~ 1/r), none in conductors
    q = ~pec * 1.0
    mflux = np.zeros((nz, nr))
    mflux[:-1, :-1] += q * lin[None, :] * 0.5 * dz[:, None]
    mflux[1:, :-1] += q * lin[None, :] * 0.5 * dz[:, None]
    mflux[:-1, 1:] += q * lout[None, :] * 0.5 * dz[:, None]
    mflux[1:, 1:] += q * lout[None, :] * 0.5 * dz[:, None]
    mflux[:, 0] = 0.0
    mass = 2 * math.pi * r_m[None, :] ** 2 * mflux

    # boundaries: per half cell, (node, L = integral of H over the edge / H_node, Z, kind)
    eta = np.sqrt(_MU0 / (_EPS0 * np.where(pec, 1.0, eps_c)))
    gamma = 1j * w * np.sqrt(_MU0 * _EPS0 * np.where(pec, 1.0, eps_c))
    bnodes, bl, bz, bport = [], [], [], []
    rc = 0.5 * (r_m[:-1] + r_m[1:])
    for jc, jn in ((0, 0), (nz - 2, nz - 1)):  # lower and upper z boundary
        for inode, lg in ((np.arange(nr - 1), lin), (np.arange(1, nr), lout)):
            ok = ~pec[jc] & (inode > 0)
            is_port = np.zeros(nr - 1, bool)
            if jc == 0 and port_r_m is not None:
                is_port = (rc > port_r_m[0]) & (rc < port_r_m[1])
            bnodes.append(node[jn, inode][ok])
            bl.append((r_m[inode] * lg)[ok])
            bz.append(eta[jc][ok])
            bport.append(is_port[ok])
    for half in (0, 1):  # outer radius: cylindrical-wave impedance
        jcell = np.arange(nz - 1)
        ok = ~pec[:, -1]
        rmax = r_m[-1]
        zw = eta[:, -1] * (1.0 - 1.0 / (2.0 * gamma[:, -1] * rmax))
        bnodes.append(node[jcell + half, nr - 1][ok])
        bl.append(0.5 * dz[ok])
        bz.append(zw[ok])
        bport.append(np.zeros(int(ok.sum()), bool))
    bnodes = np.concatenate(bnodes)
    bl, bz, bport = np.concatenate(bl), np.concatenate(bz), np.concatenate(bport)
    rb = r_m[bnodes % nr]
    diag_b = _cbincount(bnodes, 1j * w * 2 * math.pi * rb * bz * bl, nr * nz)
    a = (c.T @ sp.diags(kappa) @ c).tocsr() + sp.diags(-(w**2) * _MU0 * mass.ravel() + diag_b)
    rhs = np.zeros(nr * nz, complex)

    forward, z0, i0 = 0.0, 0.0, 0.0
    if port_r_m is not None:
        ed = complex(eps_c[0, (rc > port_r_m[0]).argmax()])
        eta_d = np.sqrt(_MU0 / (_EPS0 * ed))
        z0 = float(np.real(eta_d)) * math.log(port_r_m[1] / port_r_m[0]) / (2 * math.pi)
        i0 = math.sqrt(2.0 / z0)  # 1 W forward: P = |I0|^2 Z0 / 2
        pn = bnodes[bport]
        rhs += _cbincount(pn, 1j * w * 2 * eta_d * bl[bport] * i0, nr * nz)
        forward = 1.0
    src = np.zeros(c.shape[0], complex)
    if dipole is not None:
        src[dipole[0] * (nr - 1)] = dipole[1]
        rhs += c.T @ (kappa * src)

    active = mass.ravel() > 0
    idx = np.flatnonzero(active)
    h = np.zeros(nr * nz, complex)
    h[idx] = _sparse_solve(a[idx][:, idx].tocsc(), rhs[idx])

    # absorbed power per cell: (1/2) |Psi|^2 Im(kappa_half) / omega for each facet half
    psi = c @ h - src
    pz = 0.5 * np.abs(psi[:nzf].reshape(nz, nr - 1)) ** 2 / w
    pr = 0.5 * np.abs(psi[nzf:].reshape(nz - 1, nr - 1)) ** 2 / w
    cell = pz[:-1] * kz_hi[:-1].imag + pz[1:] * kz_lo[1:].imag
    cell[:, 1:] += pr[:, :-1] * kr_out[:, 1:-1].imag
    cell += pr * kr_in[:, 1:].imag
    hb = h[bnodes]
    rad = 0.5 * 2 * math.pi * rb * bl * np.real(bz) * np.abs(hb) ** 2
    radiated = float(rad[~bport].sum())
    s11, port_in = 0j, 0.0
    if port_r_m is not None:
        rp, lp = rb[bport], bl[bport]
        hinc = i0 / (2 * math.pi * rp)
        wts = lp / rp  # ln weights; sum ln(b/a)
        iref = np.sum(wts * 2 * math.pi * rp * (hb[bport] - hinc))
        s11 = complex(-iref / wts.sum() / i0)
        e_r = eta_d * (2 * hinc - hb[bport])
        port_in = float(np.sum(0.5 * np.real(e_r * lp * np.conj(hb[bport])) * 2 * math.pi * rp))
    return _RzField(r_m, z_m, h.reshape(nz, nr), cell, radiated, port_in, forward, s11, z0,
                    int(idx.size))  # fmt: skip


# -- the antenna on a graded grid ------------------------------------------------------
def _graded(breaks: list[float], h_fine: float, h_max: float, growth: float) -> np.ndarray:
    """Grid lines through every break, spacing h_fine at breaks growing to h_max between."""
    b = np.unique(np.round(np.asarray(breaks, float), 9))
    lines = [b[:1]]
    g = growth - 1.0
    for lo, hi in itertools.pairwise(b):
        x = np.linspace(lo, hi, 2001)
        d = np.minimum(x - lo, hi - x)
        dens = 1.0 / np.minimum(h_max, h_fine + g * d)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(x))])
        n = max(1, math.ceil(cum[-1] - 1e-9))
        lines.append(np.interp(np.linspace(0, cum[-1], n + 1)[1:], cum, x))
    return np.concatenate(lines)


def _antenna_grid(geo: AntennaGeometry, opt: SolverOptions) -> tuple[np.ndarray, np.ndarray]:
    """Grid lines (mm): r from the axis, z from the tip."""
    a, b, c = geo.inner_radius_mm, geo.dielectric_radius_mm, geo.outer_radius_mm
    r_cool = c + geo.coolant_thickness_mm
    r_cat = geo.catheter_radius_mm
    rb = [0.0, a, b, c, r_cool, r_cat, opt.radius_mm]
    zs = geo.short_z_mm
    zb = [opt.z_min_mm, *geo.slot_z_mm, zs - geo.short_thickness_mm, zs, 0.0, opt.z_max_mm]
    if geo.choke_length_mm is not None:
        rb.append(r_cool - 0.05)  # the sleeve: 0.05 mm wall inside the catheter
        zb.extend(geo._choke_z_mm())
        zb.append(geo._choke_z_mm()[0] + 0.05)  # the shorting ring: 0.05 mm thick
    hf, hm = opt.h_fine_mm / opt.refine, opt.h_max_mm / opt.refine
    return _graded(rb, hf, hm, opt.growth), _graded(zb, hf, hm, opt.growth)


def _paint(geo: AntennaGeometry, rc: np.ndarray, zc: np.ndarray) -> np.ndarray:
    """Label per cell from the cell centres (mm); every interface is a grid line."""
    R, Z = np.meshgrid(rc, zc)
    lab = np.full(R.shape, TISSUE, np.int8)
    zs = geo.short_z_mm
    r_cool = geo.outer_radius_mm + geo.coolant_thickness_mm
    lab[(Z < 0) & (R < geo.catheter_radius_mm)] = CATHETER
    if geo.coolant_thickness_mm > 0:
        lab[(Z < zs) & (R < r_cool)] = COOLANT
    cable = Z < zs - geo.short_thickness_mm
    lab[(Z < zs) & (R < geo.outer_radius_mm)] = CONDUCTOR
    lab[cable & (R < geo.dielectric_radius_mm)] = COAX_DIELECTRIC
    lo, hi = geo.slot_z_mm
    lab[(Z > lo) & (Z < hi) & (R > geo.dielectric_radius_mm) & (R < geo.outer_radius_mm)] = (
        COAX_DIELECTRIC
    )
    lab[cable & (R < geo.inner_radius_mm)] = CONDUCTOR
    if geo.choke_length_mm is not None:
        c0, c1 = geo._choke_z_mm()
        sleeve = (R > r_cool - 0.05) & (R < r_cool) & (Z > c0) & (Z < c1)
        ring = (R > geo.outer_radius_mm) & (R < r_cool) & (Z > c0) & (Z < c0 + 0.05)
        lab[sleeve | ring] = CONDUCTOR
    return lab


def _overlap(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(n_dst, n_src) fraction of each destination bin covered by each source bin."""
    lo = np.maximum(dst[:-1, None], src[None, :-1])
    hi = np.minimum(dst[1:, None], src[None, 1:])
    return np.maximum(hi - lo, 0.0) / np.diff(dst)[:, None]


def solve_antenna(
    geometry: AntennaGeometry | None = None,
    tissue: TissueMap | None = None,
    options: SolverOptions | None = None,
) -> AntennaSolution:
    """Solve the antenna's field in tissue; SAR and return loss per watt forward.

    Parameters
    ----------
    geometry : AntennaGeometry, optional
        The antenna (default: the generic cooled 2.45 GHz 13 G antenna).
    tissue : TissueMap, optional
        eps_r and sigma (S/m) of the tissue around it (default: liver at 37 degC, 2.45 GHz:
        eps_r 43.0, sigma 1.69 S/m; Gabriel 1996 / Ji & Brace 2011).
    options : SolverOptions, optional
        Domain, grid and output sampling.

    Returns
    -------
    AntennaSolution
        SAR (W/m^3 per W forward) on the regular r-z grid, S11, powers, balance.

    Examples
    --------
    >>> sol = solve_antenna(options=SolverOptions(refine=0.5))
    >>> -40.0 < sol.s11_db < -3.0 and abs(sol.balance_error) < 1e-6
    True
    """
    geo = geometry or AntennaGeometry()
    tis = tissue or TissueMap()
    opt = options or SolverOptions()
    t0 = time.perf_counter()
    r_mm, z_mm = _antenna_grid(geo, opt)
    rc, zc = 0.5 * (r_mm[1:] + r_mm[:-1]), 0.5 * (z_mm[1:] + z_mm[:-1])
    lab = _paint(geo, rc, zc)
    w = 2 * math.pi * opt.frequency_mhz * 1e6
    R, Z = np.meshgrid(rc, zc)
    eps_t, sig_t = tis.sample(R, Z)
    eps_c = np.where(lab == TISSUE, eps_t - 1j * sig_t / (w * _EPS0), 0j)
    eps_c[lab == CATHETER] = geo.catheter_eps_r
    eps_c[lab == COAX_DIELECTRIC] = geo.dielectric_eps_r
    eps_c[lab == COOLANT] = geo.coolant_eps_r - 1j * geo.coolant_sigma_s_m / (w * _EPS0)
    eps_c[lab == CONDUCTOR] = np.inf
    port = (geo.inner_radius_mm * 1e-3, geo.dielectric_radius_mm * 1e-3)
    f = _solve_rz(r_mm * 1e-3, z_mm * 1e-3, eps_c, opt.frequency_mhz * 1e6, port_r_m=port)
    by_label = {
        _LABEL_NAMES[k]: float(f.cell_power_w[lab == k].sum()) for k in range(len(_LABEL_NAMES))
    }
    tissue_w = by_label["tissue"]
    antenna_w = float(f.cell_power_w[lab != TISSUE].sum())
    refl = abs(f.s11) ** 2
    # SAR of tissue on the regular grid: conservative (volume-weighted) remap
    s = opt.sar_step_mm
    r_out = np.arange(0.0, opt.sar_radius_mm + 0.5 * s, s)
    z_out = opt.sar_z_mm[0] + s * np.arange(round((opt.sar_z_mm[1] - opt.sar_z_mm[0]) / s) + 1)
    vol = math.pi * np.diff(r_mm**2)[None, :] * np.diff(z_mm)[:, None] * 1e-9
    q_cell = np.where(lab == TISSUE, f.cell_power_w / vol, 0.0)
    wr = _overlap(r_mm**2, r_out**2)
    wz = _overlap(z_mm, z_out)
    sar = wz @ q_cell @ wr.T
    vol_out = math.pi * np.diff(r_out**2)[None, :] * np.diff(z_out)[:, None] * 1e-9
    s11_db = 20 * math.log10(max(abs(f.s11), 1e-12))
    beta = w * math.sqrt(_MU0 * _EPS0 * geo.dielectric_eps_r)
    s11 = f.s11 * complex(np.exp(2j * beta * (geo.slot_z_mm[0] - opt.z_min_mm) * 1e-3))
    zin = f.z0_ohm * (1 + s11) / (1 - s11)
    balance = (f.forward_w - refl - tissue_w - antenna_w - f.radiated_w) / f.forward_w
    return AntennaSolution(
        r_mm=0.5 * (r_out[1:] + r_out[:-1]),
        z_mm=0.5 * (z_out[1:] + z_out[:-1]),
        sar_w_m3_per_w=sar,
        s11=s11,
        s11_db=s11_db,
        reflected=refl,
        absorbed_tissue=tissue_w,
        absorbed_tissue_window=float(np.sum(sar * vol_out)),
        absorbed_antenna=antenna_w,
        radiated=f.radiated_w,
        balance_error=balance,
        z_in_ohm=complex(zin),
        z0_ohm=f.z0_ohm,
        n_unknowns=f.n_unknowns,
        solve_s=time.perf_counter() - t0,
        absorbed_by_label=by_label,
    )


def _window_power_inside(grid: Grid, placement: Placement, solution: AntennaSolution) -> float:
    """Absorbed power (W per W) of the r-z window's rings, counting each ring's share in the box."""
    d = np.asarray(placement.direction)
    e = np.eye(3)[int(np.argmin(np.abs(d)))]
    u = np.cross(d, e)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    phi = (np.arange(64) + 0.5) * (2 * math.pi / 64)
    ring = np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v  # (64, 3)
    z, y, x = grid.axis_coordinates_mm()
    sz, sy, sx = grid.spacing_mm
    lo = np.array([x[0] - 0.5 * sx, y[0] - 0.5 * sy, z[0] - 0.5 * sz])
    hi = np.array([x[-1] + 0.5 * sx, y[-1] + 0.5 * sy, z[-1] + 0.5 * sz])
    tip = np.asarray(placement.tip_mm)
    step = float(solution.r_mm[1] - solution.r_mm[0])
    vol = 2 * math.pi * solution.r_mm * step * step * 1e-9  # ring cell volumes (m^3)
    total = 0.0
    for j, zj in enumerate(solution.z_mm):
        row = solution.sar_w_m3_per_w[j]
        keep = np.flatnonzero(row > 0)
        if keep.size == 0:
            continue
        p = tip + zj * d + solution.r_mm[keep, None, None] * ring[None]  # (k, 64, 3)
        share = np.all((p >= lo) & (p <= hi), axis=2).mean(axis=1)
        total += float(np.sum(row[keep] * vol[keep] * share))
    return total


def map_axisymmetric(
    grid: Grid,
    placement: Placement,
    solution: AntennaSolution,
    power_w: float,
    *,
    tissue_mask: np.ndarray | None = None,
    supersample: int = 1,
) -> tuple[np.ndarray, float]:
    """The r-z SAR around one antenna on an axis-aligned 3D grid, in W/m^3.

    Each voxel takes the SAR at its (along, radial) position from the placement (bilinear
    in the r-z grid, averaged over ``supersample^3`` points per voxel; zero outside the r-z
    window and outside ``tissue_mask``); the map is then scaled so that its integral is
    ``power_w`` times the window's absorbed power that falls inside the grid's box (each
    ring's share inside it, from 64 points per ring). The factor is returned: far from 1,
    the grid is too coarse for the SAR near the catheter.

    Parameters
    ----------
    grid : Grid
        Axis-aligned grid (mm).
    placement : Placement
        Antenna tip (LPS mm) and insertion direction; ``along > 0`` beyond the tip.
    solution : AntennaSolution
        From :func:`solve_antenna`.
    power_w : float
        Forward power (W).
    tissue_mask : ndarray of bool, shape ``grid.shape``, optional
        Voxels that absorb (default: all).
    supersample : int
        Sample points per voxel and axis (1: the centre).

    Returns
    -------
    q_w_m3 : ndarray of float64, shape ``grid.shape``
        Power density (W/m^3).
    scale : float
        The renormalisation factor applied (1: interpolation kept the power).

    Examples
    --------
    >>> from ioplan.imaging import Grid
    >>> sol = solve_antenna(options=SolverOptions(refine=0.5, sar_radius_mm=20.0,
    ...                                           sar_z_mm=(-40.0, 10.0)))
    >>> g = Grid((61, 45, 45), (1.0, 1.0, 1.0), (-22.0, -22.0, -45.0))
    >>> q, scale = map_axisymmetric(g, Placement((0.0, 0.0, 0.0), (0.0, 0.0, 1.0)), sol, 1.0,
    ...                             supersample=2)
    >>> round(float(q.sum()) * g.voxel_volume_m3 / sol.absorbed_tissue_window, 6)
    1.0
    """
    if not (math.isfinite(power_w) and power_w >= 0):
        raise InputError(f"power_w must be finite and >= 0, got {power_w}")
    if int(supersample) != supersample or supersample < 1:
        raise InputError(f"supersample must be a positive integer, got {supersample}")
    if tissue_mask is not None and np.shape(tissue_mask) != grid.shape:
        raise InputError(f"tissue_mask shape {np.shape(tissue_mask)} != grid {grid.shape}")
    z, y, x = grid.axis_coordinates_mm()
    tip = np.asarray(placement.tip_mm)
    d = np.asarray(placement.direction)
    step = float(solution.r_mm[1] - solution.r_mm[0])
    z_lo = float(solution.z_mm[0]) - 0.5 * step
    n_z, n_r = solution.sar_w_m3_per_w.shape
    sar = solution.sar_w_m3_per_w
    q = np.zeros(grid.shape)
    sz, sy, sx = grid.spacing_mm
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    for oz in offsets:
        rz = (z + oz * sz - tip[2])[:, None, None]
        for oy in offsets:
            ry = (y + oy * sy - tip[1])[None, :, None]
            for ox in offsets:
                rx = (x + ox * sx - tip[0])[None, None, :]
                along = rx * d[0] + ry * d[1] + rz * d[2]
                radial = np.sqrt(np.maximum(rx * rx + ry * ry + rz * rz - along * along, 0.0))
                fr = radial / step - 0.5
                fz = (along - z_lo) / step - 0.5
                inside = (radial < n_r * step) & (fz > -0.5) & (fz < n_z - 0.5)
                v = ndimage.map_coordinates(
                    sar, [np.clip(fz, 0, n_z - 1).ravel(), np.clip(fr, 0, n_r - 1).ravel()],
                    order=1, mode="nearest",
                ).reshape(q.shape)  # fmt: skip
                q += np.where(inside, v, 0.0)
    q /= supersample**3
    if tissue_mask is not None:
        q[~np.asarray(tissue_mask, bool)] = 0.0
    total = float(q.sum()) * grid.voxel_volume_m3
    target = _window_power_inside(grid, placement, solution)
    scale = target / total if total > 0 else 1.0
    return q * (scale * power_w), scale


def rz_average(
    grid: Grid,
    placement: Placement,
    values: np.ndarray,
    *,
    step_mm: float = 1.0,
    radius_mm: float = 40.0,
    z_range_mm: tuple[float, float] = (-90.0, 30.0),
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Average a 3D map over rings around the antenna axis: the r-z input of a re-solve.

    Voxel centres are binned by (along, radial) from the placement to the nearest node
    ``(z0_mm + j * step_mm, i * step_mm)``, the sampling of :class:`TissueMap`, and each
    node takes its voxels' mean; nodes no voxel falls on take the nearest filled node's
    value. ``TissueMap(eps, sigma, step_mm, z0_mm)`` or
    :func:`tissue_map_from_temperature` then takes the result.

    Parameters
    ----------
    grid : Grid
        Axis-aligned grid (mm).
    placement : Placement
        Antenna tip (LPS mm) and direction.
    values : ndarray, shape ``grid.shape``
        E.g. temperature (degC), or eps_r or sigma per voxel.
    step_mm, radius_mm, z_range_mm : float
        The r-z sampling (mm).
    mask : ndarray of bool, optional
        Voxels to use (e.g. tissue only).

    Returns
    -------
    rz : ndarray, shape ``(nz, nr)``
        Ring means; row ``j`` at ``z0_mm + j * step_mm``, column ``i`` at ``i * step_mm``.
    z0_mm : float
        z of row 0 (mm).
    """
    if np.shape(values) != grid.shape:
        raise InputError(f"values shape {np.shape(values)} != grid {grid.shape}")
    if not (math.isfinite(step_mm) and step_mm > 0):
        raise InputError(f"step_mm must be > 0, got {step_mm}")
    from ioplan.physics._sources import axial_radial

    along, radial = axial_radial(grid, placement)
    nr = round(radius_mm / step_mm) + 1
    z0 = float(z_range_mm[0])
    nz = round((z_range_mm[1] - z0) / step_mm) + 1
    i = np.rint(radial / step_mm).astype(np.int64)
    j = np.rint((along - z0) / step_mm).astype(np.int64)
    use = (i < nr) & (j >= 0) & (j < nz)
    if mask is not None:
        use &= np.asarray(mask, bool)
    if not use.any():
        raise InputError("no voxel of the grid lies in the r-z window around the antenna")
    cell = (j * nr + i)[use]
    total = np.bincount(cell, np.asarray(values, float)[use], nr * nz).reshape(nz, nr)
    count = np.bincount(cell, None, nr * nz).reshape(nz, nr)
    empty = count == 0
    rz = np.divide(total, count, out=np.zeros_like(total), where=~empty)
    if empty.any():
        near = ndimage.distance_transform_edt(empty, return_distances=False, return_indices=True)
        rz = rz[near[0], near[1]]
    return rz, z0
