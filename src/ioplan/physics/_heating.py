"""The heat sources of a simulation as pure ``(init, step)`` pairs over frozen states.

Like jax-md's integrators (``simulate.nve`` returns ``(init_fn, step_fn)``), each
source is a :class:`~ioplan.physics.Source`: ``init(problem)`` gives its state and
``step(state, temperature_c, time_s)`` the power density and a new state. Nothing is
cached in closures or mutable objects between calls: the microwave pattern, the RF
potential with its multigrid hierarchy, the generator's pause and the passive
cryoprobe's temperature live in frozen states that the time loop threads through.
The pairs close over their settings only (placements, applicator, power).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.devices import Applicator
from ioplan.errors import InputError
from ioplan.imaging import Grid
from ioplan.physics._materials import FIRST_EXTRA_ID
from ioplan.physics._solver import Source, ThermalProblem
from ioplan.physics._sources import (
    CryoProtocol,
    GeneratorState,
    Placement,
    RfGenerator,
    cryo_power_limited_c,
    microwave_geometry,
    microwave_source,
    rf_conductivity_map,
    rf_generator_step,
    rf_potential,
)
from ioplan.physics._subvoxel import cylinder_surfaces

__all__ = [
    "MW_UPDATE_S",
    "RF_RESOLVE_CHANGE",
    "RF_SKIP_SOLVES_IN_PULSES",
    "RF_SOLVE_TOL",
    "CryoState",
    "MicrowaveState",
    "RfState",
    "boiling_limit",
    "cryo_pair",
    "far_boundary_ground",
    "microwave_pair",
    "rf_pair",
]

#: Re-solve the RF potential when conductivity has changed by more than this fraction
#: somewhere, and solve to this relative residual (the map is then scaled to the
#: generator's power, so its absolute level needs no more accuracy). 1e-5: the RF demo
#: verification (12 min, 2 mm, 126 solves) gives the same zone voxel for voxel at 1e-6,
#: 1e-5 and 1e-4, with 5.3, 4.3 and 3.2 CG iterations per solve.
RF_RESOLVE_CHANGE = 0.03
#: How often (s) the microwave pattern is re-evaluated.
MW_UPDATE_S = 10.0
RF_SOLVE_TOL = 1e-5
#: During an impedance-control pulse with the output off, skip the potential solve (the
#: power is 0 whatever the conductivity); False re-solves at every call (the reference in
#: tests/physics/test_rf_generator.py and bench/rf.py).
RF_SKIP_SOLVES_IN_PULSES = True


# -- microwave ---------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class MicrowaveState:
    """The grid and the antennas' temperature-independent pattern."""

    grid: Grid
    material: np.ndarray
    geometry: tuple


def microwave_pair(
    placements: list[Placement], app: Applicator, power_w: float, tissue_mask: np.ndarray
) -> Source:
    """Microwave antennas as a source pair: the lumped pattern or the computed field.

    ``app.mw_model == "field"``: the antennas' computed r-z field
    (:func:`~ioplan.physics.microwave_field_pair`); ``"lumped"``: the cylindrical-wave
    pattern with a fitted axial profile (:func:`~ioplan.physics.microwave_source`).

    Parameters
    ----------
    placements : list of Placement
        Antenna tips (LPS mm) and directions.
    app : Applicator
        The microwave applicator.
    power_w : float
        Generator power (W).
    tissue_mask : ndarray of bool
        Voxels that absorb; the problem's grid shape.
    """
    if app.mw_model == "field":
        from ioplan.physics._mw_field import microwave_field_pair

        return microwave_field_pair(placements, app, power_w, tissue_mask)

    def init(problem: ThermalProblem) -> MicrowaveState:
        # the engine holds a cooled antenna's shaft at the coolant's temperature (cut faces)
        shaft = app.cooled and problem.surfaces is not None and problem.surfaces.size > 0
        geo = microwave_geometry(problem.grid, placements, app, problem.material, tissue_mask,
                                 label_tissues=problem.materials.label_tissues,
                                 cooled_shaft=shaft)  # fmt: skip
        return MicrowaveState(problem.grid, problem.material, tuple(geo))

    def step(state: MicrowaveState, temperature_c: np.ndarray, time_s: float):
        q = microwave_source(
            state.grid, placements, app, power_w, state.material, temperature_c, tissue_mask,
            geometry=list(state.geometry),
        )  # fmt: skip
        return q, state

    # The pattern follows the tissue's dielectric properties, which change over tens of
    # seconds: every 10 s changes the 10-min zone by +0.1 % in volume against every 5 s
    # (bench/engine.py, ``accuracy``).
    return Source(init, step, update_s=MW_UPDATE_S)


# -- radiofrequency ----------------------------------------------------------------
def far_boundary_ground(shape: tuple[int, int, int]) -> np.ndarray:
    """The six faces of the grid as the return electrode (a block without a body).

    In a block the dispersive pads, far away on the skin, are modelled as a ground on
    every face of the block (at least the domain margin, 40 mm by default, from the
    electrode): the potential of a line electrode falls as 1/r beyond a few electrode
    lengths, so the far faces are close to an equipotential and the resistance left
    beyond them (1 / (4 pi sigma R), about 10 ohm for R = 40 mm, sigma 0.2 S/m) is small
    against the tissue's near the electrode, where the heating happens.
    """
    ground = np.zeros(shape, bool)
    ground[0, :, :] = ground[-1, :, :] = True
    ground[:, 0, :] = ground[:, -1, :] = True
    ground[:, :, 0] = ground[:, :, -1] = True
    return ground


@dataclass(frozen=True, eq=False)
class RfState:
    """The RF source between calls: conductivities, last solution, generator state.

    Attributes
    ----------
    grid : Grid
        The simulation grid.
    ground, tissue_mask : ndarray of bool
        The return electrode (dispersive pads: see :func:`rf_pair`) and the voxels that
        take power.
    sigma37 : ndarray
        Conductivity at 37 degC (S/m), 0 for insulation.
    probe : ndarray of bool
        Tissue voxels touching the electrode (the temperature sensor, temperature mode).
    surfaces : Surfaces or None
        The electrode's cut faces (its true cylinder, :func:`rf_pair`); None: staircase.
    last_sigma, q_unit : ndarray or None
        Conductivity at the last solve and the power density at 1 V (W/m^3/V^2).
    p_unit : float
        Total power at 1 V (W/V^2), 1 / impedance.
    z_initial_ohm, z_last_ohm : float
        Impedance at the first and the latest call.
    pause_until_s : float
        The generator is off (or low) until this time (impedance control).
    generator : GeneratorState or None
        The generator's state: baseline, pulses, delivered energy, impedance curve (None
        before the first call).
    solver : dict
        The multigrid hierarchy and the last potential, for the next solve (read only).
    materials : MaterialTable or None
        The problem's materials (their boiling enthalpies, :func:`boiling_limit`).
    boiling_limited_j : float
        Energy (J) the generator did not deliver because the tissue would have boiled dry
        within an interval (the series path's share of it included).
    series_j : float
        Energy (J) of the output dissipated in the series path (``rf_pair``'s
        ``series_ohm``: the body to the pads, or the medium beyond a block).
    """

    grid: Grid
    material: np.ndarray
    ground: np.ndarray
    tissue_mask: np.ndarray
    sigma37: np.ndarray
    probe: np.ndarray | None = None
    surfaces: Any = None
    last_sigma: np.ndarray | None = None
    q_unit: np.ndarray | None = None
    p_unit: float = 0.0
    z_initial_ohm: float = float("nan")
    z_last_ohm: float = float("nan")
    pause_until_s: float = -1.0
    generator: GeneratorState | None = None
    solver: Any = None
    materials: Any = None
    boiling_limited_j: float = 0.0
    series_j: float = 0.0


def boiling_limit(
    q_w_m3: np.ndarray,
    temperature_c: np.ndarray,
    material: np.ndarray,
    materials: Any,
    interval_s: float,
    dry_fraction: float,
) -> np.ndarray:
    """The power density a voxel can draw for ``interval_s`` before it boils dry.

    Tissue water boils between ``vapor_start_c`` and ``vapor_end_c``, and the dried
    tissue conducts ``dry_fraction`` of what it did (``rf_desiccation``). A source held
    for a whole interval would keep driving a voxel after it dried, far above 100 °C,
    until the next call. Here a voxel that would dry at ``tau = need / q`` (``need``:
    the enthalpy (J/m^3) still missing to the end of boiling, heat conduction ignored)
    draws ``q`` until ``tau`` and ``dry_fraction * q`` after it (at a fixed field, as an
    element in parallel with the rest of the tissue), averaged over the interval:
    ``(need + dry_fraction * q * (interval - tau)) / interval``. Voxels that are dry
    already, or will not dry in time, keep ``q``. Returns a new array.
    """
    q = np.asarray(q_w_m3)
    if not interval_s > 0:
        return q
    t = np.asarray(temperature_c)
    present = np.unique(material[q > 0])
    if present.size == 0:
        return q
    start_min = float(np.min(materials.vapor_start_c[present]))
    latent_min = float(np.min(materials.vapor_latent_j_m3[present]))
    # a voxel below boiling needs at least the latent heat to dry: only these can
    idx = np.flatnonzero((q > 0) & ((t >= start_min) | (q * interval_s >= latent_min)))
    if idx.size == 0:
        return q
    m = material.reshape(-1)[idx]
    qi = q.reshape(-1)[idx].astype(float)
    e_now = materials.enthalpy(m, t.reshape(-1)[idx])
    need = materials.vapor_breakpoints()[1][m] - e_now
    dries = (need > 0) & (qi * interval_s > need)
    tau = need[dries] / qi[dries]
    limited = qi.copy()
    limited[dries] = (need[dries] + dry_fraction * qi[dries] * (interval_s - tau)) / interval_s
    out = q.copy()
    out.reshape(-1)[idx] = limited
    return out


def rf_pair(
    electrode: np.ndarray,
    gen: RfGenerator,
    tissue_mask: np.ndarray,
    ground: np.ndarray | None = None,
    cylinders: tuple = (),
    series_ohm: float = 0.0,
) -> Source:
    """An RF electrode driven by a generator, as a source pair.

    The potential (:func:`~ioplan.physics.rf_potential`, electrode at 1 V, the return
    pads at 0 V) is re-solved when the power-weighted mean relative change of the
    conductivity exceeds :data:`RF_RESOLVE_CHANGE`; the generator
    (:func:`~ioplan.physics.rf_generator_step`) sets the output from the impedance
    (1 / the power at 1 V) and, in temperature mode, the hottest tissue voxel touching
    the electrode; the map is scaled so that tissue absorbs that output. In every mode a
    voxel that boils dry within the time the map is held takes power only until then
    (:func:`boiling_limit`): that energy is not delivered (``boiling_limited_j``), and the
    generator's log shows the interval's mean power.

    Parameters
    ----------
    electrode : ndarray of bool
        The exposed electrode voxels; the problem's grid shape.
    gen : RfGenerator
        Power (W), limits and control.
    tissue_mask : ndarray of bool
        Voxels that take power.
    ground : ndarray of bool, optional
        The return electrode (dispersive pads); None: every face of the grid
        (:func:`far_boundary_ground`).
    cylinders : tuple of Cylinder
        The electrodes' true cylinders (``ioplan.physics._subvoxel.Cylinder``): their
        cut faces join the potential solve (Shortley-Weller, at 1 V) and ``electrode``
        holds the voxels whose centres lie inside them. Empty: ``electrode`` is a
        staircase.
    series_ohm : float
        Resistance between the grid's ground and the real return pads (ohm; the body
        outside a case's crop, :func:`ioplan.physics._rf_body.body_return`). The
        generator sees ``Z + series_ohm`` and the grid's tissue receives the share
        ``Z / (Z + series_ohm)`` of its output; the rest heats the body on the way to
        the pads, spread too thin to matter.
    """
    if not (np.isfinite(series_ohm) and series_ohm >= 0):
        raise InputError(f"series_ohm must be a finite resistance >= 0, got {series_ohm!r}")

    def init(problem: ThermalProblem) -> RfState:
        gnd = far_boundary_ground(problem.grid.shape) if ground is None else ground
        # The return current really leaves through large skin pads, where it heats
        # little. Where the ground cuts a conductive structure (a vessel, bowel content)
        # the current crowds into a few voxels: that heating is an artefact of the
        # grounding model, so the two layers next to the grid's faces receive none (the
        # generator's power goes to the rest of the tissue).
        inner = np.zeros(problem.grid.shape, bool)
        inner[3:-3, 3:-3, 3:-3] = True
        sigma37 = problem.materials.rf_sigma_s_m[problem.material]
        # insulation: the shaft behind the exposed tip and other applicator metal
        sigma37 = np.where(
            (problem.material >= FIRST_EXTRA_ID) & ~electrode & (problem.material < 255),
            0.0, sigma37,
        )  # fmt: skip
        probe = ndimage.binary_dilation(electrode) & ~electrode & tissue_mask
        surfaces = None
        if cylinders:
            # cut faces from the voxels that carry a potential to the true cylinders
            surfaces = cylinder_surfaces(problem.grid, cylinders,
                                         electrode | gnd | (sigma37 <= 0))  # fmt: skip
            probe.reshape(-1)[surfaces.index] = True  # the voxels touching the surface
            probe &= tissue_mask
        return RfState(problem.grid, problem.material, gnd & ~electrode,
                       tissue_mask & inner, sigma37, probe, surfaces,
                       materials=problem.materials)  # fmt: skip

    def step(state: RfState, temperature_c: np.ndarray, time_s: float,
             interval_s: float = 0.0):  # fmt: skip
        g = state.generator
        if (
            RF_SKIP_SOLVES_IN_PULSES
            and gen.mode == "impedance"
            and gen.pulse_power_w == 0.0
            and g is not None
            and state.q_unit is not None
            and time_s < g.pause_until_s
        ):
            # a pulse: the output is off whatever the tissue does, so the potential is
            # not re-solved (two thirds of a 12-min Cool-tip run); the log holds the
            # impedance measured last
            _, g = rf_generator_step(gen, g, time_s, state.z_last_ohm)
            return None, replace(state, generator=g, pause_until_s=g.pause_until_s)
        sigma = rf_conductivity_map(state.material, temperature_c, state.sigma37)
        sigma = np.where(state.sigma37 > 0, sigma, 0.0)
        # re-solve when the conductivity has changed where the power goes: the
        # power-weighted mean relative change is the first-order change of the map
        changed = state.last_sigma is None or state.q_unit is None
        if not changed:
            rel = np.abs(sigma - state.last_sigma) / np.maximum(state.last_sigma, 1e-12)
            weighted = float(np.sum(rel * state.q_unit) / np.sum(state.q_unit))
            changed = weighted > RF_RESOLVE_CHANGE
        if changed:
            solver = dict(state.solver or {})  # rf_potential updates the copy only
            _, q_unit, p_unit = rf_potential(
                state.grid,
                sigma,
                electrode,
                state.ground,
                tol=RF_SOLVE_TOL,
                cache=solver,
                surfaces=state.surfaces,
            )
            state = replace(state, last_sigma=sigma, q_unit=q_unit, p_unit=p_unit,
                            solver=solver)  # fmt: skip
        z_grid = 1.0 / state.p_unit if state.p_unit > 0 else float("inf")
        z = z_grid + series_ohm
        z_initial = z if not np.isfinite(state.z_initial_ohm) else state.z_initial_ohm
        probe_c = float("nan")
        if gen.mode == "temperature" and state.probe is not None and state.probe.any():
            probe_c = float(np.max(temperature_c[state.probe]))
        power, gstate = rf_generator_step(
            gen, state.generator or GeneratorState(), time_s, z, probe_c
        )
        state = replace(state, z_initial_ohm=z_initial, z_last_ohm=z,
                        pause_until_s=gstate.pause_until_s, generator=gstate)  # fmt: skip
        q = np.where(state.tissue_mask, state.q_unit, 0.0)
        in_tissue = float(q.sum()) * state.grid.voxel_volume_m3
        # the grid's share of the generator's power (all of it without a series path) is
        # dissipated in its tissue (half-faces next to the metal included), so the map is
        # scaled to hold exactly that power
        output_w = power  # the generator's output (W)
        if series_ohm > 0 and np.isfinite(z_grid):
            power = power * z_grid / z
        q = q * (power / in_tissue) if in_tissue > 0 else q
        if interval_s > 0 and power > 0 and state.materials is not None:
            # tissue that boils dry within the interval stops drawing power: the
            # generator delivers that much less (its curve shows the interval's mean)
            limited = boiling_limit(q, temperature_c, state.material, state.materials,
                                    interval_s, _dry_fraction())  # fmt: skip
            kept = float(limited.sum()) * state.grid.voxel_volume_m3 / power
            if kept < 1.0 - 1e-9:  # not rounding noise
                g = state.generator
                g = replace(g, last_power_w=g.last_power_w * kept,
                            power_w=(*g.power_w[:-1], g.power_w[-1] * kept))  # fmt: skip
                # what the generator did not deliver (the series path's share included)
                state = replace(state, generator=g, boiling_limited_j=state.boiling_limited_j
                                + output_w * (1.0 - kept) * interval_s)  # fmt: skip
                q = limited
        if series_ohm > 0 and interval_s > 0 and np.isfinite(z):
            # the output's share dissipated between the grid's ground and the pads (or
            # infinity): the interval's mean output times R / (Z + R). (The time loop may
            # shorten only an interval in which a pulse begins, whose output is the pulse's,
            # 0 for every catalogue generator.)
            g = state.generator
            state = replace(state, series_j=state.series_j
                            + g.last_power_w * series_ohm / z * interval_s)  # fmt: skip
        return q, state

    def next_event(state: RfState) -> float:
        """The end of the generator's pulse: the output comes back then."""
        return state.pause_until_s if gen.mode == "impedance" else math.inf

    return Source(init, step, takes_interval=True, next_event_s=next_event)


def _dry_fraction() -> float:
    """Conductivity of boiled-dry tissue over its value before (``rf_desiccation``)."""
    from ioplan.tissue import rf_desiccation_parameters

    return float(rf_desiccation_parameters()["factor_at_end"])


# -- cryo --------------------------------------------------------------------------
@dataclass(frozen=True)
class CryoState:
    """Body temperature and that of the tissue around the cold segments (degC).

    ``limit_c``: the coldest the probes can hold at their cooling power (-inf: no limit;
    ``ioplan.physics._sources.cryo_power_limited_c``); ``surfaces``: what that limit
    reads (material ids, material table, the cut faces, grid); ``coldest_c``: the coldest
    the probes have been (the near-field lethal radius, ``_subvoxel.near_field_lethal``).
    """

    body_c: float
    around_c: float
    limit_c: float = float("-inf")
    surfaces: Any = None
    coldest_c: float = float("inf")


def cryo_pair(
    protocol: CryoProtocol,
    app: Applicator,
    cold: np.ndarray,
    tissue_mask: np.ndarray,
    cooling_power_w: float | None = None,
) -> Source:
    """Cryoprobes following a freeze-thaw protocol, as a source pair.

    Cryoprobes deposit no power: they drive the temperature of the cold segments
    (fixed group 1). In a passive phase the probe follows the tissue touching its cold
    segments, measured at each call. With ``cooling_power_w`` (all probes together) a
    freezing probe takes at most that heat from the tissue through its cut faces: it is
    no colder than ``ioplan.physics._sources.cryo_power_limited_c`` allows.

    Parameters
    ----------
    protocol : CryoProtocol
        Phases and durations.
    app : Applicator
        The cryoprobe (set point, thaw temperature, cool-down time).
    cold : ndarray of bool
        The cold-segment voxels.
    tissue_mask : ndarray of bool
        Tissue voxels.
    """
    ring = ndimage.binary_dilation(cold) & ~cold & tissue_mask

    def init(problem: ThermalProblem) -> CryoState:
        body = problem.body_temperature_c
        return CryoState(body, body, surfaces=(problem.material, problem.materials,
                                               problem.surfaces, problem.grid))  # fmt: skip

    def step(state: CryoState, temperature_c: np.ndarray, time_s: float):
        if ring.any():
            state = replace(state, around_c=float(np.mean(temperature_c[ring])))
        if cooling_power_w is not None and state.surfaces is not None:
            lim = cryo_power_limited_c(temperature_c, *state.surfaces, cooling_power_w)
            state = replace(state, limit_c=lim)
        probe = fixed_temperatures(state, time_s)[1]
        return None, replace(state, coldest_c=min(state.coldest_c, probe))

    def fixed_temperatures(state: CryoState, time_s: float) -> list[float]:
        probe = protocol.probe_temperature(time_s, app, passive_c=state.around_c)
        if protocol.phase_at(time_s) == "freeze":
            probe = max(probe, state.limit_c)
        return [state.body_c, probe]

    return Source(init, step, fixed_temperatures)
