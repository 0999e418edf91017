"""Microwave heating from the antenna's computed field, as a source pair (issue 19).

Per antenna, the axisymmetric Maxwell solve (:func:`~ioplan.physics.solve_antenna`) gives
the SAR of the tissue around its axis, per watt forward, and the reflected and
coolant-absorbed power; the SAR is mapped onto the 3D grid around the antenna's axis and
scaled to the power that reaches the feed (generator power times the device's
``feed_efficiency``, the cable's loss). The tissue the solve sees is the 3D state averaged
over rings about the axis: permittivity and conductivity from Ji & Brace's temperature
curves mixed with dried tissue's values by the water left
(:func:`~ioplan.tissue.dielectric_water_2450`), the water from the highest temperature each
voxel has reached (:func:`~ioplan.tissue.water_remaining`: dried tissue stays dry).

Between solves the field's shape is held: ``SAR = sigma |E|^2 / 2`` changes with the local
conductivity, ``q ~ q_solve * sigma / sigma_solve``, and the map is scaled back to the power
the tissue absorbed at the last solve (the generator's power, the reflection and the
coolant's share are those of the last solve). Holding E alone would lose power where sigma
falls, yet the antenna still delivers it: for a uniform 10 % drop of sigma a fresh solve
keeps 98.4 % of the absorbed power, E held alone gives 90 % and differs from the fresh map by
8.5 % (power-weighted L1), the rescaled map by 6.3 % (tests/physics/test_mw_field.py).
The field is solved again when the
power-weighted mean relative change of sigma since the last solve exceeds
:data:`MW_RESOLVE_SIGMA_CHANGE`, or :data:`MW_RESOLVE_MAX_S` after the last solve.

Several antennas: each antenna's own solution is superposed (power densities add). This
neglects mutual coupling (each antenna's field scattered by the others' metal, and the
interference of their fields); a limitation of the model.

The state is a frozen dataclass (:class:`MicrowaveFieldState`) that carries the
precomputed ring bins and the r-z -> voxel interpolation matrices (read only) and the
solve's results; the pair closes over its settings only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

from ioplan.devices import COAX_CABLES, Applicator
from ioplan.errors import InputError
from ioplan.imaging import Grid
from ioplan.physics._catheter import cooled_shaft_radius_mm, wall_kept_fraction
from ioplan.physics._maxwell import (
    AntennaGeometry,
    AntennaSolution,
    SolverOptions,
    TissueMap,
    solve_antenna,
)
from ioplan.physics._solver import Source, ThermalProblem
from ioplan.physics._sources import Placement, axial_radial

__all__ = [
    "MW_FIELD_UPDATE_S",
    "MW_RESOLVE_MAX_S",
    "MW_RESOLVE_SIGMA_CHANGE",
    "MicrowaveFieldState",
    "antenna_geometry",
    "field_solver_options",
    "microwave_field_pair",
    "microwave_field_report",
    "wall_kept_fraction",
]

#: How often (s) the source is evaluated: sigma-scaled SAR, water and the re-solve test
#: (10 s against 5 s: zones within 0.06 mm, validation/maxwell.md "Engine integration").
MW_FIELD_UPDATE_S = 10.0
#: Re-solve the field when the SAR-weighted mean relative change of sigma since the last
#: solve exceeds this fraction (convergence check: validation/maxwell.md, "Engine
#: integration").
MW_RESOLVE_SIGMA_CHANGE = 0.10
#: ... and at least this often (s).
MW_RESOLVE_MAX_S = 120.0
#: Sample points per mm and axis when the r-z SAR is averaged over a voxel (2 mm voxels:
#: 2^3 points; validation/maxwell.md, "Mapping onto the 3D grid").
MAP_POINTS_PER_MM = 1.0
#: Step (mm) of the r-z rings the 3D tissue is averaged over for a solve.
RZ_STEP_MM = 1.0


def antenna_geometry(app: Applicator) -> AntennaGeometry:
    """The coaxial slot antenna of a microwave applicator (its catalogue fields).

    The catheter's outer radius is half ``diameter_mm``; the cable (``cable``), the wall
    (``catheter_wall_mm``) and water between them; the slot ``slot_to_short_mm`` behind
    the cable's shorted end, which sits 0.5 mm behind the tip (the solver's cap); a choke
    of ``choke_length_mm`` (0: none) whose open end is ``choke_offset_mm`` behind the slot.
    """
    inner, diel, outer, eps = COAX_CABLES[app.cable]
    return AntennaGeometry(
        inner_radius_mm=inner,
        dielectric_radius_mm=diel,
        dielectric_eps_r=eps,
        outer_radius_mm=outer,
        slot_to_short_mm=float(app.slot_to_short_mm),
        coolant_thickness_mm=max(0.0, float(app.coolant_thickness_mm)),
        catheter_thickness_mm=float(app.catheter_wall_mm),
        choke_length_mm=float(app.choke_length_mm) if app.choke_length_mm > 0 else None,
        choke_offset_mm=float(app.choke_offset_mm),
    )


def field_solver_options(frequency_mhz: float) -> SolverOptions:
    """The solve the engine uses: the solver's ``refine=0.35`` grid, SAR on 0.5 mm cells.

    About 0.1 s CPU (10^4 unknowns). Zones of a 10-min 75 W Emprint run at 2 mm voxels
    (150, 300, 600 s) differ by at most 0.15 mm from those with ``refine=1`` (the
    solver's default grid) and ``refine=0.5``; S11 by 0.12 dB (validation/maxwell.md,
    "Engine integration").
    """
    return SolverOptions(frequency_mhz=float(frequency_mhz), refine=0.35, sar_step_mm=0.5)


# -- the precomputed geometry of one antenna on the grid ----------------------------
@dataclass(frozen=True, eq=False)
class _AntennaMap:
    """Ring bins (3D -> r-z) and the interpolation matrix (r-z SAR -> voxels) of one antenna.

    ``cells``: for the window voxels ``vox`` (indices into the state's ``idx``), the r-z
    node each falls on (``-1``: outside the r-z window); ``fill``: for each node, the
    node whose mean it takes (itself, or the nearest filled node); ``matrix``
    ``(len(idx), nz_sar * nr_sar)``: the mean over ``supersample^3`` points per voxel of
    the bilinear SAR, less the coolant's share next to a cooled shaft
    (:func:`wall_kept_fraction`); ``share_vol``: each SAR node's ring volume (m^3) times
    the share of its ring inside the grid's box.
    """

    cells: np.ndarray
    counts: np.ndarray
    fill: np.ndarray
    rz_shape: tuple[int, int]
    z0_mm: float
    matrix: sp.csr_matrix
    share_vol: np.ndarray
    #: column sums of the map before the coolant's share is taken (a voxel's whole
    #: power, for the scaling to the solve's absorbed power); None: the same as ``matrix``
    col_total: np.ndarray | None = None


def _sar_axes(opt: SolverOptions) -> tuple[np.ndarray, np.ndarray, float]:
    """Cell centres (r, z; mm) of the solver's output SAR grid, and its step."""
    s = opt.sar_step_mm
    r_out = np.arange(0.0, opt.sar_radius_mm + 0.5 * s, s)
    z_out = opt.sar_z_mm[0] + s * np.arange(round((opt.sar_z_mm[1] - opt.sar_z_mm[0]) / s) + 1)
    return 0.5 * (r_out[1:] + r_out[:-1]), 0.5 * (z_out[1:] + z_out[:-1]), s


def _ring_share(grid: Grid, placement: Placement, r_c: np.ndarray, z_c: np.ndarray) -> np.ndarray:
    """(nz, nr) fraction of each ring inside the grid's box (64 points per ring)."""
    d = np.asarray(placement.direction, float)
    e = np.eye(3)[int(np.argmin(np.abs(d)))]
    u = np.cross(d, e)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    phi = (np.arange(64) + 0.5) * (2 * math.pi / 64)
    ring = np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v
    z, y, x = grid.axis_coordinates_mm()
    sz, sy, sx = grid.spacing_mm
    lo = np.array([x[0] - 0.5 * sx, y[0] - 0.5 * sy, z[0] - 0.5 * sz])
    hi = np.array([x[-1] + 0.5 * sx, y[-1] + 0.5 * sy, z[-1] + 0.5 * sz])
    tip = np.asarray(placement.tip_mm, float)
    out = np.empty((z_c.size, r_c.size))
    for j, zj in enumerate(z_c):
        p = tip + zj * d + r_c[:, None, None] * ring[None]
        out[j] = np.all((p >= lo) & (p <= hi), axis=2).mean(axis=1)
    return out


def _voxel_points(grid: Grid, idx: np.ndarray) -> np.ndarray:
    """(n, 3) LPS (x, y, z) mm of the voxel centres ``idx`` (flat, C order of (z, y, x))."""
    z, y, x = grid.axis_coordinates_mm()
    k, j, i = np.unravel_index(idx, grid.shape)
    return np.stack([x[i], y[j], z[k]], axis=1)


def _antenna_map(
    grid: Grid, placement: Placement, idx: np.ndarray, opt: SolverOptions, supersample: int,
    near_wall: np.ndarray | None = None, wall_radius_mm: float | None = None,
    wall_equivalent_mm: float | None = None,
) -> _AntennaMap:  # fmt: skip
    along, radial = axial_radial(grid, placement)
    along, radial = along.reshape(-1)[idx], radial.reshape(-1)[idx]
    # ring bins of the r-z tissue map (rz_average's sampling)
    nr = round(opt.radius_mm / RZ_STEP_MM) + 1
    z0 = float(opt.z_min_mm)
    nz = round((opt.z_max_mm - z0) / RZ_STEP_MM) + 1
    i = np.rint(radial / RZ_STEP_MM).astype(np.int64)
    j = np.rint((along - z0) / RZ_STEP_MM).astype(np.int64)
    use = (i < nr) & (j >= 0) & (j < nz)
    cells = np.where(use, j * nr + i, -1)
    counts = np.bincount(cells[use], None, nr * nz)
    empty = (counts == 0).reshape(nz, nr)
    if empty.all():
        raise InputError("no tissue voxel of the grid lies in the r-z window around the antenna")
    near = ndimage.distance_transform_edt(empty, return_distances=False, return_indices=True)
    fill = (near[0] * nr + near[1]).reshape(-1)
    # interpolation of the output SAR (bilinear, supersampled), as map_axisymmetric
    r_c, z_c, step = _sar_axes(opt)
    n_z, n_r = z_c.size, r_c.size
    z_lo = float(z_c[0]) - 0.5 * step
    pts = _voxel_points(grid, idx)
    tip = np.asarray(placement.tip_mm, float)
    d = np.asarray(placement.direction, float)
    spacing = np.asarray(grid.spacing_mm, float)
    axes = (n_r, n_z, step, z_lo)
    if near_wall is None or wall_radius_mm is None:
        near = np.zeros(idx.size, bool)
    else:
        # the cut voxels beside this antenna's cooled shaft (along <= 0)
        h = float(spacing.max())
        near = near_wall & (radial <= wall_radius_mm + 2.0 * h) & (along <= h)
    far = np.flatnonzero(~near)
    rows, cols, vals = _sample(pts[far], far, tip, d, spacing, supersample, axes)
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(idx.size, n_z * n_r))
    col_total = None
    if near.any():
        # finer points (<= 0.25 mm apart) resolve the thin layer of power at the catheter
        nn = np.flatnonzero(near)
        fine = max(supersample, math.ceil(4.0 * float(spacing.max()) - 1e-9))
        r1, c1, v1 = _sample(pts[nn], nn, tip, d, spacing, fine, axes)
        whole = sp.csr_matrix((v1, (r1, c1)), shape=matrix.shape)
        r1, c1, v1 = _sample(pts[nn], nn, tip, d, spacing, fine, axes,
                             wall=(wall_radius_mm, radial[nn], wall_equivalent_mm))  # fmt: skip
        kept = sp.csr_matrix((v1, (r1, c1)), shape=matrix.shape)
        col_total = np.asarray((matrix + whole).sum(axis=0)).ravel()
        matrix = matrix + kept
    vol = 2 * math.pi * r_c * step * step * 1e-9
    share_vol = (_ring_share(grid, placement, r_c, z_c) * vol[None, :]).reshape(-1)
    return _AntennaMap(cells, counts, fill, (nz, nr), z0, matrix.tocsr(), share_vol, col_total)


def _sample(pts, row_ids, tip, d, spacing, supersample: int, axes, wall=None):
    """(rows, cols, values) of the mean bilinear r-z SAR over ``supersample^3`` points.

    ``pts`` (n, 3) voxel centres (LPS mm), ``row_ids`` their rows; ``axes`` = (n_r, n_z,
    step, z_lo) of the SAR grid. ``wall`` = (radius_mm, centre radii (n,), equivalent
    radius_mm): each point behind the tip (along <= 0) weighted by
    :func:`wall_kept_fraction`.
    """
    n_r, n_z, step, z_lo = axes
    sz, sy, sx = spacing
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    rows, cols, vals = [], [], []
    w_pt = 1.0 / supersample**3
    for oz in offsets:
        for oy in offsets:
            for ox in offsets:
                rel = pts + np.array([ox * sx, oy * sy, oz * sz]) - tip
                al = rel @ d
                rad = np.sqrt(np.maximum(np.sum(rel * rel, axis=1) - al * al, 0.0))
                fr = rad / step - 0.5
                fz = (al - z_lo) / step - 0.5
                inside = (rad < n_r * step) & (fz > -0.5) & (fz < n_z - 0.5)
                w = np.full(int(inside.sum()), w_pt)
                if wall is not None:
                    kept = wall_kept_fraction(rad[inside], wall[1][inside], wall[0], wall[2])
                    w = w * np.where(al[inside] <= 0.0, kept, 1.0)
                fr = np.clip(fr[inside], 0, n_r - 1)
                fz = np.clip(fz[inside], 0, n_z - 1)
                r0 = np.minimum(np.floor(fr).astype(np.int64), n_r - 2)
                z0i = np.minimum(np.floor(fz).astype(np.int64), n_z - 2)
                tr, tz = fr - r0, fz - z0i
                rid = row_ids[inside]
                for dz_, wz in ((0, 1.0 - tz), (1, tz)):
                    for dr_, wr in ((0, 1.0 - tr), (1, tr)):
                        rows.append(rid)
                        cols.append((z0i + dz_) * n_r + r0 + dr_)
                        vals.append(w * wz * wr)
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def _rz_mean(amap: _AntennaMap, values: np.ndarray) -> np.ndarray:
    """Ring means of ``values`` (on the state's window voxels), empty nodes filled."""
    use = amap.cells >= 0
    total = np.bincount(amap.cells[use], values[use], amap.counts.size)
    mean = np.divide(total, amap.counts, out=np.zeros_like(total), where=amap.counts > 0)
    return mean[amap.fill].reshape(amap.rz_shape)


def _label_tissues(problem) -> tuple[tuple[int, str], ...]:
    """The problem's label -> tissue overrides (none for a problem without a table)."""
    return getattr(getattr(problem, "materials", None), "label_tissues", ())


# -- the state and the pair ---------------------------------------------------------
@dataclass(frozen=True, eq=False)
class MicrowaveFieldState:
    """The computed-field microwave source between calls.

    Attributes
    ----------
    grid : Grid
        The simulation grid.
    idx : ndarray of int64
        Flat indices of the tissue voxels within any antenna's SAR window.
    eps37, sig37 : ndarray
        Each window voxel's eps_r and sigma (S/m) at 37 degC and the applicator's
        frequency (the tissue table; ``tissue_dielectric``).
    maps : tuple of _AntennaMap
        Per antenna: ring bins and interpolation matrix (read only).
    tmax_c : ndarray
        Highest temperature (degC) each window voxel has reached at an evaluation.
    sigma_solve, q_solve : ndarray or None
        Conductivity (S/m) and power density (W/m^3) of the window voxels at the last
        solve.
    last_solve_s : float
        Time (s) of the last solve.
    history : tuple
        Per solve: ``(time_s, reflected, coolant, tissue_window, wall)``, each the mean
        over the antennas (fractions of the forward power); ``wall``: the part of
        ``tissue_window`` deposited between the cooled shaft and the cut voxels' centres that
        the shaft takes (:func:`wall_kept_fraction`).
    """

    grid: Grid
    idx: np.ndarray
    eps37: np.ndarray
    sig37: np.ndarray
    maps: tuple
    tmax_c: np.ndarray
    sigma_solve: np.ndarray | None = None
    q_solve: np.ndarray | None = None
    last_solve_s: float = -math.inf
    history: tuple = ()


def _dielectric(state: MicrowaveFieldState, t: np.ndarray, tmax: np.ndarray):
    """eps_r and sigma of the window voxels at temperature ``t`` with water from ``tmax``."""
    from ioplan.tissue import dielectric_ji_brace_2450, dielectric_water_2450, water_remaining

    e, s = dielectric_water_2450(t, water_remaining(tmax))
    e37, s37 = dielectric_ji_brace_2450(37.0)
    # Ji & Brace's eps_r tends to 1 when hot; scaled to the table's 37 degC value it could
    # fall below vacuum's, so it is held at >= 1
    return np.maximum(state.eps37 * (e / e37), 1.0), state.sig37 * (s / s37)


@lru_cache(maxsize=64)
def _solve_uniform(geo: AntennaGeometry, opt: SolverOptions, eps: float, sig: float):
    """A solve in uniform tissue (the first one of an ex vivo block), kept by its inputs."""
    return solve_antenna(geo, TissueMap(eps, sig), opt)


def _solve(geo: AntennaGeometry, opt: SolverOptions, eps_rz: np.ndarray, sig_rz: np.ndarray,
           z0_mm: float) -> AntennaSolution:  # fmt: skip
    if np.ptp(eps_rz) < 1e-9 * eps_rz.max() and np.ptp(sig_rz) < 1e-9 * max(sig_rz.max(), 1e-30):
        return _solve_uniform(geo, opt, round(float(eps_rz.flat[0]), 9),
                              round(float(sig_rz.flat[0]), 9))  # fmt: skip
    return solve_antenna(geo, TissueMap(eps_rz, sig_rz, RZ_STEP_MM, z0_mm), opt)


def _resolve(state: MicrowaveFieldState, geo, opt, eps, sig, forward_w, time_s):
    q = np.zeros(state.idx.size)
    refl = cool = win = wall = 0.0
    vm3 = state.grid.voxel_volume_m3
    for amap in state.maps:
        sol = _solve(geo, opt, _rz_mean(amap, eps), _rz_mean(amap, sig), amap.z0_mm)
        sar = sol.sar_w_m3_per_w.reshape(-1)
        qa = amap.matrix @ sar
        # scaled so that the voxels' whole power is the solve's tissue power; the
        # coolant's share next to a cooled shaft (wall_kept_fraction) then leaves the tissue
        total = float(qa.sum() if amap.col_total is None else amap.col_total @ sar) * vm3
        target = float(sar @ amap.share_vol)
        if total > 0:
            q += qa * (forward_w * target / total)
            # the share of the window's power the cooled shaft takes next to the catheter
            wall += sol.absorbed_tissue_window * (1.0 - float(qa.sum()) * vm3 / total)
        refl += sol.reflected
        cool += sol.absorbed_antenna
        win += sol.absorbed_tissue_window
    n = len(state.maps)
    hist = (*state.history, (float(time_s), refl / n, cool / n, win / n, wall / n))
    return replace(state, sigma_solve=sig, q_solve=q, last_solve_s=float(time_s), history=hist)


def microwave_field_pair(
    placements: list[Placement], app: Applicator, power_w: float, tissue_mask: np.ndarray
) -> Source:
    """Microwave antennas on their computed field, as a source pair.

    Parameters
    ----------
    placements : list of Placement
        Antenna tips (LPS mm) and directions.
    app : Applicator
        A microwave applicator with ``mw_model = "field"`` geometry fields
        (:func:`antenna_geometry`).
    power_w : float
        Generator power per antenna (W); ``power_w * app.feed_efficiency`` reaches the feed.
    tissue_mask : ndarray of bool
        Voxels that absorb; the problem's grid shape.

    """
    if app.modality != "mw":
        raise InputError(f"{app.id} is {app.modality}, not a microwave antenna")
    if not (math.isfinite(power_w) and power_w >= 0):
        raise InputError(f"power_w must be finite and >= 0, got {power_w}")
    geo = antenna_geometry(app)
    opt = field_solver_options(app.frequency_mhz)
    forward_w = float(power_w) * float(app.feed_efficiency)

    def init(problem: ThermalProblem) -> MicrowaveFieldState:
        from ioplan.physics._materials import tissue_dielectric

        grid = problem.grid
        mask = np.asarray(tissue_mask, bool).reshape(-1)
        r_c = _sar_axes(opt)[0]
        pad = 0.5 * math.sqrt(sum(s * s for s in grid.spacing_mm))
        keep = np.zeros(grid.size, bool)
        for pl in placements:
            along, radial = axial_radial(grid, pl)
            keep |= (
                (radial.reshape(-1) <= max(opt.radius_mm, r_c[-1] + pad))
                & (along.reshape(-1) >= opt.z_min_mm)
                & (along.reshape(-1) <= opt.z_max_mm)
            )
        idx = np.flatnonzero(keep & mask)
        if idx.size == 0:
            raise InputError("the microwave antenna is not surrounded by tissue on the grid")
        supersample = max(1, math.ceil(MAP_POINTS_PER_MM * max(grid.spacing_mm) - 1e-9))
        surfaces = getattr(problem, "surfaces", None)
        wall = 0.5 * float(app.diameter_mm) if app.cooled else None
        near_wall = None
        if wall is not None and surfaces is not None and surfaces.size:
            near_wall = np.isin(idx, surfaces.index)
        eq = cooled_shaft_radius_mm(app) if app.cooled else None
        maps = tuple(_antenna_map(grid, pl, idx, opt, supersample, near_wall, wall, eq)
                     for pl in placements)  # fmt: skip
        eps37, sig37 = tissue_dielectric(problem.material.reshape(-1)[idx], app.frequency_mhz,
                                         label_tissues=_label_tissues(problem))  # fmt: skip
        tmax = np.full(idx.size, -math.inf)
        return MicrowaveFieldState(grid, idx, eps37.astype(float), sig37.astype(float), maps,
                                   tmax)  # fmt: skip

    def step(state: MicrowaveFieldState, temperature_c: np.ndarray, time_s: float):
        t = np.asarray(temperature_c).reshape(-1)[state.idx].astype(float)
        tmax = np.maximum(state.tmax_c, t)
        eps, sig = _dielectric(state, t, tmax)
        state = replace(state, tmax_c=tmax)
        due = state.q_solve is None or time_s - state.last_solve_s >= MW_RESOLVE_MAX_S - 1e-9
        if not due:
            w = state.q_solve
            rel = np.abs(sig - state.sigma_solve) / np.maximum(state.sigma_solve, 1e-12)
            due = float(np.sum(rel * w) / max(float(np.sum(w)), 1e-300)) > MW_RESOLVE_SIGMA_CHANGE
        if due:
            state = _resolve(state, geo, opt, eps, sig, forward_w, time_s)
        ratio = np.divide(sig, state.sigma_solve, out=np.ones_like(sig),
                          where=state.sigma_solve > 0)  # fmt: skip
        q_held = state.q_solve * ratio
        # the forward power and the last solve's reflection and coolant loss are held, so
        # the tissue keeps absorbing the last solve's power (see the module's notes)
        held_w, solved_w = float(q_held.sum()), float(state.q_solve.sum())
        if held_w > 0:
            q_held *= solved_w / held_w
        q = np.zeros(state.grid.size, np.float32)
        q[state.idx] = q_held
        return q.reshape(state.grid.shape), state

    return Source(init, step, update_s=MW_FIELD_UPDATE_S)


def microwave_field_report(state: Any) -> dict[str, Any] | None:
    """The return loss of a run, for ``ioplan simulate --json`` (None if not a field run).

    Keys: ``solves``; ``s11_db_initial``, ``s11_db_final`` (dB, ``10 log10`` of the
    reflected fraction at the first and the last solve); ``reflected_fraction_initial``,
    ``reflected_fraction_final``, ``reflected_fraction_mean`` (time-weighted over the
    run's solves); ``coolant_fraction_final``, ``tissue_fraction_final`` (of the forward
    power); ``shaft_layer_fraction_final`` (the part of the tissue's power, deposited
    between the cooled shaft and the nearest voxel centres, that the shaft takes);
    ``solve_times_s``.
    """
    if not isinstance(state, MicrowaveFieldState) or not state.history:
        return None
    h = np.array(state.history, float)
    times = h[:, 0]
    # each solve's reflection holds until the next solve (the last one's span is unknown)
    w = np.diff(times)
    mean = float(np.sum(h[:-1, 1] * w) / w.sum()) if w.size and w.sum() > 0 else float(h[-1, 1])

    def db(x: float) -> float:
        return round(10 * math.log10(max(x, 1e-12)), 3)

    return {
        "model": "field",
        "solves": len(h),
        "s11_db_initial": db(h[0, 1]),
        "s11_db_final": db(h[-1, 1]),
        "reflected_fraction_initial": round(float(h[0, 1]), 5),
        "reflected_fraction_final": round(float(h[-1, 1]), 5),
        "reflected_fraction_mean": round(mean, 5),
        "coolant_fraction_final": round(float(h[-1, 2]), 5),
        "tissue_fraction_final": round(float(h[-1, 3]), 5),
        "shaft_layer_fraction_final": round(float(h[-1, 4]), 5),
        "solve_times_s": [round(float(t), 3) for t in times],
    }
