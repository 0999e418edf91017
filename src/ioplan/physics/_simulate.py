"""One ablation simulation, end to end: domain, applicators, sources, time loop, zone.

The CLI's ``ioplan simulate`` is a thin layer over :func:`simulate`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ioplan.anatomy import Case
from ioplan.devices import Applicator, chart_comparison
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume, axial_volume
from ioplan.physics._catheter import cooled_shaft_radius_mm
from ioplan.physics._domain import (
    COOLED_SHAFT,
    FIRST_VESSEL,
    INSULATED_SHAFT,
    Domain,
    active_extent_mm,
    label_tissue_overrides,
    make_domain,
    past_scan_warning,
    tissue_label,
    vessel_materials,
    zone_past_scan,
)
from ioplan.physics._heating import RfState, cryo_pair, microwave_pair, rf_pair
from ioplan.physics._materials import _COLUMNS as MATERIAL_COLUMNS
from ioplan.physics._materials import (
    FIRST_EXTRA_ID,
    MaterialTable,
    blood_properties,
    label_tissue_names,
    tissue_material_table,
    tissue_specific_heat,
)
from ioplan.physics._mw_field import microwave_field_report
from ioplan.physics._result import SimulationResult
from ioplan.physics._rf_body import PAD_PLACEMENTS, crop_return
from ioplan.physics._solver import Source, ThermalProblem, ThermalState, integrate
from ioplan.physics._sources import (
    CryoProtocol,
    GeneratorState,
    Placement,
    RfGenerator,
    axial_radial,
    nusselt_wall_h,
)
from ioplan.physics._subvoxel import (
    Cylinder,
    covering_radius_mm,
    cryo_resolution_warning,
    cylinder_surfaces,
    inside_cylinders,
    near_field_lethal,
)
from ioplan.physics._zone import ZoneMetrics, boundary_change_c, boundary_warning, zone_metrics

__all__ = ["SimulationConfig", "SimulationResult", "VesselSpec", "simulate"]


@dataclass(frozen=True)
class VesselSpec:
    """A straight vessel parallel to the applicator (ex vivo-style experiments).

    A perfused tube's lumen is held at the perfusate's temperature behind a wall heat
    transfer coefficient (a Nusselt correlation of the flow). A tube without flow
    (``flow_ml_min`` 0) takes no heat away: its stagnant blood or saline conducts about as
    the tissue around it (k about 0.5 W/m/K either way), so it is left as that tissue, the
    non-perfused reference of Ringe et al. 2015.
    """

    diameter_mm: float
    distance_mm: float
    flow_ml_min: float

    def __post_init__(self) -> None:
        for name, lo, hi in (
            ("diameter_mm", 0.5, 40.0),
            ("distance_mm", 0.0, 100.0),
            ("flow_ml_min", 0.0, 5000.0),
        ):
            v = getattr(self, name)
            if not np.isfinite(v) or not lo <= v <= hi:
                raise InputError(f"vessel {name} must be {lo:g}-{hi:g}, got {v}")
        if self.distance_mm < 0.5 * self.diameter_mm + 1.0:
            raise InputError(
                f"vessel distance_mm {self.distance_mm} leaves no tissue between the vessel "
                f"(diameter {self.diameter_mm} mm) and the applicator axis"
            )

    @classmethod
    def parse(cls, text: str) -> VesselSpec:
        """Parse ``diameter_mm=5,distance_mm=10,flow_ml_min=700``."""
        vals: dict[str, float] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in ("diameter_mm", "distance_mm", "flow_ml_min"):
                raise InputError(
                    f"--vessel must be diameter_mm=D,distance_mm=X,flow_ml_min=F; got {text!r}"
                )
            try:
                vals[key] = float(value)
            except ValueError:
                raise InputError(f"--vessel {key} must be a number, got {value!r}") from None
        missing = {"diameter_mm", "distance_mm", "flow_ml_min"} - set(vals)
        if missing:
            raise InputError(f"--vessel lacks {', '.join(sorted(missing))}")
        return cls(**vals)


@dataclass(frozen=True, eq=False)
class SimulationConfig:
    """Everything one simulation needs (validated here, before any work).

    Exactly one domain: ``case`` (a case, cropped around the applicators), or a
    homogeneous block of ``tissue``. A ``power_density_w_m3`` or ``sar_w_kg``
    volume replaces the applicator's own source and sets the block's grid; it may
    be on any axis-aligned grid (axes flipped or permuted, as NIfTI files in RAS are)
    and needs no applicator.

    Attributes
    ----------
    applicator : Applicator or None
        The applicator; None only with an external map.
    power_w : float or None
        Generator power (W), 0-300: required for MW and RF, not for cryo.
    duration_s : float or None
        Heating time (s), 0-3600: required for MW, RF and external maps.
    cooldown_s : float
        Time with the power off after the heating (s), 0-3600; not for cryo. The zone is
        measured at its end; the zone at power off becomes a snapshot.
    protocol : CryoProtocol or None
        Freeze-thaw protocol: required for cryo.
    spacing_mm : float
        Isotropic voxel size (mm), 0.25-5.
    margin_mm : float
        Domain margin around the applicators (mm), 10-100 (``--domain-margin-mm``).
    dtype : {"float32", "float64"}
        State precision (float32 in production).
    placements : tuple of Placement
        Applicators on independent paths (1-8), all on at once, each with its own tip
        (LPS mm) and direction; empty: ``tip_mm``, ``direction`` and ``array`` place them.
        With placements ``tip_mm`` must be None and ``array`` 1; not for cluster
        applicators or external maps. The zone metrics (length, width, tip extent) are
        measured along the first placement's axis; the zone volume counts every zone.
    organ : str or None
        The organ (:data:`~ioplan.anatomy.ORGANS`): the tumour label takes its tumour
        tissue (``lung_tumor``, ``renal_tumor``, ``bone_tumor``; liver keeps ``tumor``).
        For a case None becomes :func:`~ioplan.anatomy.organ_of` (the case's organ, else
        the one its tumour lies in); for a block None leaves the labels' own tissues.
    """

    applicator: Applicator | None
    power_w: float | None = None
    duration_s: float | None = None
    protocol: CryoProtocol | None = None
    tissue: str | None = "liver"
    case: Case | None = None
    tip_mm: tuple[float, float, float] | None = None
    direction: tuple[float, float, float] = (0.0, 0.0, -1.0)
    array: int = 1
    spacing_between_mm: float = 15.0
    spacing_mm: float = 1.0
    margin_mm: float = 40.0
    perfusion_per_s: float | None = None
    constant_properties: bool = False
    vessels: tuple[VesselSpec, ...] = ()
    rf_mode: str = "impedance"
    power_density_w_m3: Volume | None = None
    sar_w_kg: Volume | None = None
    lethal_temperature_c: float = -40.0
    backend: str = "cpu"
    dtype: str = "float32"
    snapshot_times_s: tuple[float, ...] = ()
    #: ex vivo experiments: the block's starting (and far-boundary) temperature; None: 37 degC
    initial_temperature_c: float | None = None
    #: applicators on independent paths (each its own tip and direction); empty: tip_mm/array
    placements: tuple[Placement, ...] = ()
    #: phantom experiments: (column, value) pairs replacing the block tissue's row of the
    #: material table (:class:`MaterialTable` column names, SI units), e.g. an agar gel
    tissue_properties: tuple[tuple[str, float], ...] = ()
    #: cryoprobes: each probe's cooling power (W, its gas's heat extraction); None: the
    #: device's calibrated value (calibration.toml ``cooling_power_w``), inf: no limit
    cryo_cooling_power_w: float | None = None
    organ: str | None = None
    #: RF on a case: the return pads (:mod:`ioplan.physics._rf_body`; "far": none)
    rf_pads: str = "back"
    #: heating (MW, RF, an external map): time after ``duration_s`` with the power off (s,
    #: 0-3600; coolant still on, perfusion on). The tissue cools and damage keeps
    #: accruing: the zone is measured at the end, as a pathologist sees it; a snapshot at
    #: the power-off time is added. Cryo: its protocol's thaw phases do this.
    cooldown_s: float = 0.0

    def __post_init__(self) -> None:
        from ioplan.anatomy import check_organ, organ_of

        if self.case is not None:
            object.__setattr__(self, "organ", organ_of(self.case, self.organ))
        elif self.organ is not None:
            object.__setattr__(self, "organ", check_organ(self.organ))
        app = self.applicator
        external = self.power_density_w_m3 is not None or self.sar_w_kg is not None
        if self.power_density_w_m3 is not None and self.sar_w_kg is not None:
            raise InputError("give --power-density-map or --sar-map, not both")
        if app is None and not external:
            raise InputError("give --applicator (or an external --power-density-map or --sar-map)")
        cryo = app is not None and app.modality == "cryo"
        if not cryo and self.protocol is not None:
            what = app.modality if app is not None else "an external map"
            raise InputError(f"--protocol is for cryoprobes, not {what}")
        if cryo and (self.power_w is not None or self.duration_s is not None):
            raise InputError("a cryoprobe takes --protocol, not --power-w or --duration-s")
        if cryo and self.protocol is None:
            raise InputError("a cryoprobe needs --protocol, e.g. freeze:600,thaw:300,freeze:600")
        if not cryo and not external:
            if self.power_w is None:
                raise InputError(f"{app.id} is {app.modality}: give --power-w (W, 0-300)")
            _check("--power-w", "W", self.power_w, 0.0, 300.0, open_low=True)
        elif external and self.power_w is not None:
            raise InputError("an external map sets the power: leave out --power-w")
        if not cryo:
            if self.duration_s is None:
                raise InputError("give --duration-s (s, 0-3600)")
            _check("--duration-s", "s", self.duration_s, 0.0, 3600.0, open_low=True)
        _check("--cooldown-s", "s", self.cooldown_s, 0.0, 3600.0)
        if cryo and self.cooldown_s > 0:
            raise InputError(
                "--cooldown-s is for heating; a cryoprobe's --protocol ends with thaw:S"
            )
        _check("--spacing-mm", "mm", self.spacing_mm, 0.25, 5.0)
        _check("--domain-margin-mm", "mm", self.margin_mm, 10.0, 100.0)
        if self.perfusion_per_s is not None:
            _check("--perfusion-per-s", "1/s", self.perfusion_per_s, 0.0, 0.1)
        if self.initial_temperature_c is not None:
            _check("--initial-temperature-c", "degC", self.initial_temperature_c, 0.0, 45.0)
        _check("--lethal-temperature-c", "degC", self.lethal_temperature_c, -80.0, 0.0)
        _check("--spacing-between-mm", "mm", self.spacing_between_mm, 3.0, 60.0)
        if isinstance(self.array, bool) or self.array not in range(1, 9):
            raise InputError(f"--array must be 1-8, got {self.array}")
        for t in self.snapshot_times_s:
            if not np.isfinite(t) or not 0 < t <= self.total_duration_s:
                raise InputError(
                    f"snapshot time {t} s must lie in (0, {self.total_duration_s:g}] s"
                )
        if (self.case is None) == (self.tissue is None):
            raise InputError("give either a case or a tissue block")
        self._check_tissue_properties()
        q = self.cryo_cooling_power_w
        if q is not None and not (isinstance(q, int | float) and q > 0 and not np.isnan(q)):
            raise InputError(f"cryo_cooling_power_w must be > 0 W (inf: no limit), got {q!r}")
        if self.rf_pads not in PAD_PLACEMENTS:
            raise InputError(f"--rf-pads must be one of {'/'.join(PAD_PLACEMENTS)}")
        if app is not None and app.electrodes > 1 and self.array != 1:
            raise InputError(f"{app.id} is a cluster; --array needs a single applicator")
        self._check_placements(external)
        if self.case is not None and external:
            raise InputError("external power maps are for homogeneous blocks (--tissue)")
        RfGenerator(1.0, self.rf_mode)  # validates the mode
        for name in ("power_density_w_m3", "sar_w_kg"):
            vol = getattr(self, name)
            if vol is not None:
                # onto the axial grid the engine runs on (flips and permutations only)
                object.__setattr__(self, name, axial_volume(vol, oblique="refuse"))

    def _check_tissue_properties(self) -> None:
        """Validate ``tissue_properties`` (a dict becomes a tuple of pairs)."""
        props = self.tissue_properties
        if isinstance(props, dict):
            props = tuple(props.items())
            object.__setattr__(self, "tissue_properties", props)
        if not props:
            return
        if self.tissue is None:
            raise InputError("tissue_properties are for a homogeneous block (--tissue)")
        for item in props:
            name, value = item if len(item) == 2 else (item, None)
            if name not in MATERIAL_COLUMNS or name == "fixed_group":
                raise InputError(
                    f"tissue_properties: unknown material property {name!r}; known: "
                    f"{', '.join(c for c in MATERIAL_COLUMNS if c != 'fixed_group')}"
                )
            if not isinstance(value, int | float) or not np.isfinite(value) or value < -273.15:
                raise InputError(f"tissue_properties: {name} must be a number, got {value!r}")

    def _check_placements(self, external: bool) -> None:
        """Validate ``placements`` (a list becomes a tuple)."""
        pls = self.placements
        if isinstance(pls, list):
            pls = tuple(pls)
            object.__setattr__(self, "placements", pls)
        if not isinstance(pls, tuple):
            raise InputError(f"placements must be a tuple of Placement, got {type(pls).__name__}")
        for i, pl in enumerate(pls):
            if not isinstance(pl, Placement):
                raise InputError(
                    f"placements[{i}] must be a Placement (tip_mm, direction), "
                    f"got {type(pl).__name__}"
                )
        if not pls:
            return
        if len(pls) > 8:
            raise InputError(f"at most 8 placements, got {len(pls)}")
        if self.tip_mm is not None or self.array != 1:
            raise InputError("give placements or tip_mm/array, not both")
        app = self.applicator
        if app is not None and app.electrodes > 1:
            raise InputError(f"{app.id} is a cluster; placements need single applicators")
        if external:
            raise InputError("an external power or SAR map takes no placements")

    @property
    def heating_duration_s(self) -> float:
        """Time with the applicator on (s): ``duration_s``, or the cryo protocol's length."""
        if self.protocol is not None:
            return self.protocol.duration_s
        return float(self.duration_s or 0.0)

    @property
    def total_duration_s(self) -> float:
        """Simulated time (s): the heating and then ``cooldown_s`` with the power off."""
        return self.heating_duration_s + float(self.cooldown_s)


def _check(option: str, unit: str, value: Any, lo: float, hi: float, *,
           open_low: bool = False) -> None:  # fmt: skip
    """Refuse a value outside ``[lo, hi]`` (``(lo, hi]`` with ``open_low``), naming the option."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{option} must be a number in {unit}, got {value!r}") from None
    bad = not np.isfinite(v) or v > hi or (v <= lo if open_low else v < lo)
    if bad:
        span = f"({lo:g}, {hi:g}]" if open_low else f"{lo:g}-{hi:g}"
        raise InputError(f"{option} must be {span} {unit}, got {value}")


#: Largest temperature change (degC) allowed next to the far boundary before the
#: domain is grown: the boundary is then too far to change the zone.
BOUNDARY_RISE_LIMIT_C = 1.0


def simulate(cfg: SimulationConfig, *, progress=None) -> SimulationResult:
    """Run one ablation simulation (MW, RF, cryo or an external map) and measure its zone.

    The steps: the domain (a block of tissue or a crop of a case, ``margin_mm`` beyond
    the applicators, its memory checked first), the materials (tissue table, vessels,
    applicator voxels), the sources (pure ``(init, step)`` pairs), the time loop
    (:func:`integrate`, to each snapshot time in turn) and the measurements (zone,
    isotherms, extremes). If the temperature next to the far boundary has changed by
    more than :data:`BOUNDARY_RISE_LIMIT_C` degC, the margin is grown by half and the
    run repeated (up to 100 mm), so that the boundary does not shape the zone.

    Parameters
    ----------
    cfg : SimulationConfig
        What to simulate (validated when it was made).
    progress : callable, optional
        Called with the simulated time (s) as the run advances.

    Returns
    -------
    SimulationResult
        Zone (``length_mm``, ``width_mm``, ``volume_ml``, ``tip_extent_mm``; Arrhenius
        Omega >= 1 for heat, the lethal isotherm for cryo), isotherms, temperatures
        (degC), delivered energy (J), timing, the final :class:`ThermalState` on
        ``grid`` (arrays ``(z, y, x)``) and the settings used.

    Raises
    ------
    InputError
        A domain that cannot fit in memory, an applicator outside the tissue, a power
        that drives the temperature beyond the model's range, ...

    References
    ----------
    Pennes HH. J Appl Physiol 1948;1:93-122. DOI 10.1152/jappl.1948.1.2.93 (bioheat).
    Henriques FC. Arch Pathol 1947;43:489-502 (Arrhenius damage); Sapareto SA, Dewey WC.
    Int J Radiat Oncol Biol Phys 1984;10:787. DOI 10.1016/0360-3016(84)90379-1 (CEM43).

    Examples
    --------
    A 40 W microwave ablation for 60 s in a block of ex vivo liver, 4 mm voxels:

    >>> from ioplan.devices import applicator
    >>> cfg = SimulationConfig(applicator("generic-mw-2450"), power_w=40.0, duration_s=60.0,
    ...                        spacing_mm=4.0, perfusion_per_s=0.0)
    >>> result = simulate(cfg)
    >>> result.modality, result.zone.volume_ml > 0, result.max_temperature_c > 50
    ('mw', True, True)
    """
    while True:
        result = _simulate_once(cfg, progress)
        change = result.settings["boundary_change_c"]
        external = cfg.power_density_w_m3 is not None or cfg.sar_w_kg is not None
        if change <= BOUNDARY_RISE_LIMIT_C:
            return result
        if external or cfg.margin_mm >= 100.0:  # a map fixes the grid; 100 mm is the most
            result.settings["warnings"].append(boundary_warning(change, external, _cold(cfg)))
            return result
        cfg = replace(cfg, margin_mm=min(100.0, 1.5 * cfg.margin_mm))


@dataclass(frozen=True, eq=False)
class _Model:
    """Step 2: the thermal problem and the masks the sources and the zone need."""

    problem: ThermalProblem
    tissue_mask: np.ndarray
    free: np.ndarray
    electrode: np.ndarray
    cold: np.ndarray
    electrode_cylinders: tuple = ()
    cold_cylinders: tuple = ()  # a cryoprobe's freeze segments (cut-cell cylinders)


def _simulate_once(cfg: SimulationConfig, progress=None) -> SimulationResult:
    """One run on one domain: domain, materials, sources, run, measure."""
    domain = make_domain(cfg)
    model = _materials(cfg, domain)
    source, groups, settings = _sources(cfg, domain, model)
    if domain.past_scan_mm:
        settings["extends_past_scan_mm"] = dict(domain.past_scan_mm)
        settings["warnings"].append(past_scan_warning(domain.past_scan_mm, "simulation domain"))
    final, src_state, stats, snaps = _run(cfg, domain, model, source, groups, progress)
    if cfg.cooldown_s > 0:
        # the growth after power off happens at 40-55 degC, where the liver Arrhenius
        # constants and the thermal dose disagree tenfold: report the dose's zone beside it
        from ioplan.physics._damage import CEM43_NECROSIS_MIN

        dose = (final.cem43_min >= CEM43_NECROSIS_MIN) & model.free
        c = domain.centre
        dose_zone = zone_metrics(dose, domain.grid, c.tip_mm, c.direction)
        settings["thermal_dose_zone"] = dose_zone.to_dict()
    mw_report = microwave_field_report(src_state)
    if mw_report is not None:
        settings["microwave"] = mw_report  # return loss of the computed field (issue 19)
    if isinstance(src_state, RfState):
        settings["rf_impedance_ohm_initial"] = src_state.z_initial_ohm
        settings["rf_impedance_ohm_final"] = src_state.z_last_ohm
        gs = src_state.generator or GeneratorState()
        settings["rf_impedance_ohm_baseline"] = gs.baseline_ohm
        settings["rf_pulses"] = gs.pulses
        settings["rf_energy_delivered_j"] = gs.energy_until(cfg.heating_duration_s)
        settings["rf_mean_power_w"] = settings["rf_energy_delivered_j"] / cfg.heating_duration_s
        settings["rf_boiling_limited_j"] = src_state.boiling_limited_j
        # the output's share beyond the grid (body to the pads, or the medium past a block)
        settings["rf_series_energy_j"] = src_state.series_j
        settings["rf_impedance_curve"] = {
            "time_s": list(gs.times_s), "impedance_ohm": [round(z, 3) for z in gs.impedance_ohm],
            "power_w": [round(p, 3) for p in gs.power_w],
            "note": "impedance during a pulse with the output off: the last value measured "
                    "before it (not re-solved); power: the mean over each interval",
        }  # fmt: skip
    result = _measure(cfg, domain, model, final, stats, snaps, settings, src_state)
    if domain.past_scan_mm and cfg.case is not None:
        reach, ml = zone_past_scan(cfg.case.labels.grid, domain.grid, result.zone_mask)
        if reach:
            settings["zone_extends_past_scan_mm"] = reach
            settings["zone_past_scan_ml"] = round(ml, 3)
            settings["warnings"].append(past_scan_warning(reach, "ablation zone", ml))
    return result


def _materials(cfg: SimulationConfig, domain: Domain) -> _Model:
    """Tissue table, vessels, applicator voxels and the :class:`ThermalProblem`."""
    app = cfg.applicator
    grid, material = domain.grid, domain.material
    override = None
    if cfg.perfusion_per_s is not None:
        from ioplan.tissue import tissue_names

        override = {name: cfg.perfusion_per_s for name in tissue_names() if name != "blood"}
    table = tissue_material_table(
        perfusion_override_1_per_s=override, label_tissues=label_tissue_overrides(cfg)
    )
    if cfg.tissue_properties:
        lbl = int(tissue_label(cfg.tissue))
        table = table.with_material(lbl, table.names[lbl], **dict(cfg.tissue_properties))
    if cfg.case is not None:
        table = vessel_materials(grid, material, table, active_extent_mm(app), cfg.organ)
    shaft = np.zeros(grid.shape, bool)
    cold = np.zeros(grid.shape, bool)
    cylinders: list[Cylinder] = []
    # surfaces held at a temperature as cut-cell cylinders: the cryoprobe's freeze segment,
    # the cooled RF electrode with its shaft (the RF electrode is also a cut-cell
    # potential boundary) and the cooled MW shaft (issue 19: as staircase voxels the MW
    # shaft was one voxel line at 2 and 1.5 mm but a five-voxel cross at 1 mm, and the
    # zone's length moved with it by up to 12 mm; validation/convergence.md)
    held = app is not None and (app.modality == "cryo" or app.cooled)
    electrode_cyls: list[Cylinder] = []
    if app is not None:
        # the staircase radius: at least half a voxel diagonal, so that an axis between
        # voxel centres still marks one voxel per slice (the nearest lattice point is at
        # most h / sqrt 2 away); kept for the cryoprobe's passive (insulated) shaft.
        # The cut-cell radius: the true one, but at least just over half a voxel, so that
        # every cross-section cuts a lattice segment wherever the axis lies (below that, an
        # axis midway between lattice lines would touch no face: 3 mm voxels, 2.4 mm probe)
        a_mm = max(0.5 * app.diameter_mm, 0.51 * max(grid.spacing_mm))
        r_app = max(0.5 * app.diameter_mm, 0.71 * max(grid.spacing_mm))
        # a widened cut-cell cylinder conducts as the true one (log near-field correction)
        r_true, r_shaft = 0.5 * app.diameter_mm, cooled_shaft_radius_mm(app)
        for pl in domain.placements:
            along, radial = axial_radial(grid, pl)
            if app.modality == "rf":
                # the RF electrode (a potential boundary) and its cooled shaft (a heat
                # boundary): one true cylinder, widened only where the grid would miss it
                ecyl = Cylinder(pl.tip_mm, pl.direction, 0.5 * app.diameter_mm,
                                -app.active_length_mm, 0.0)  # fmt: skip
                a_mm = covering_radius_mm(grid, ecyl)
                electrode_cyls.append(replace(ecyl, radius_mm=a_mm))
            stair = radial <= r_app
            true = radial <= a_mm
            shaft |= (true if held else stair) & (along <= 0.0)
            if app.modality == "cryo":
                lo, hi = -(app.tip_offset_mm + app.freeze_zone_length_mm), -app.tip_offset_mm
                cold |= stair & (along >= lo) & (along <= hi)
                cylinders.append(Cylinder(pl.tip_mm, pl.direction, a_mm, lo, hi,
                                          true_radius_mm=r_true))  # fmt: skip
            elif held:  # a MW catheter's wall and coolant film in series (_catheter.py)
                cylinders.append(Cylinder(pl.tip_mm, pl.direction, a_mm, -np.inf, 0.0,
                                          true_radius_mm=r_shaft))  # fmt: skip
    k_blood = blood_properties()["k_w_m_k"]
    fixed_cyl = inside_cylinders(grid, cylinders)
    electrode = inside_cylinders(grid, electrode_cyls)
    if app is not None and app.modality in ("mw", "rf") and app.cooled:
        table = table.with_material(
            COOLED_SHAFT, "cooled applicator", fixed_group=1, k_w_m_k=k_blood
        )
        material[shaft] = COOLED_SHAFT
    if app is not None and app.modality == "cryo":
        table = table.with_material(
            COOLED_SHAFT, "cryoprobe cold segment", fixed_group=1, k_w_m_k=k_blood
        )
        table = table.with_material(
            INSULATED_SHAFT,
            "insulated shaft",
            k_w_m_k=0.0,
            k_frozen_w_m_k=0.0,
            k_mushy_w_m_k=0.0,
            perfusion_w_m3_k=0.0,
        )
        material[shaft & ~fixed_cyl] = INSULATED_SHAFT
        material[fixed_cyl] = COOLED_SHAFT
    table = _parallel_vessels(cfg, domain, material, table, k_blood)
    outer = np.ones(grid.shape, bool)
    outer[1:-1, 1:-1, 1:-1] = False
    not_free = (table.fixed_group[material] >= 0) | (table.k_w_m_k[material] <= 0) | outer
    problem = ThermalProblem(
        grid,
        material,
        table,
        surfaces=cylinder_surfaces(grid, cylinders, not_free),
        constant_properties=cfg.constant_properties,
        dtype=cfg.dtype,
        **(
            {"body_temperature_c": float(cfg.initial_temperature_c)}
            if cfg.initial_temperature_c is not None
            else {}
        ),
    )
    tissue_mask = (problem.material < FIRST_EXTRA_ID) & (table.fixed_group[problem.material] < 0)
    free = table.fixed_group[problem.material] < 0
    cold_cyls = tuple(cylinders) if app is not None and app.modality == "cryo" else ()
    return _Model(problem, tissue_mask, free, electrode, cold, tuple(electrode_cyls), cold_cyls)


def _parallel_vessels(
    cfg: SimulationConfig, domain: Domain, material: np.ndarray, table: MaterialTable,
    k_blood: float,
) -> MaterialTable:  # fmt: skip
    """Ex vivo vessels parallel to the applicator (``cfg.vessels``), marked in ``material``."""
    centre = domain.centre
    d = np.asarray(centre.direction)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    side = np.cross(d, np.cross(helper, d))
    side /= np.linalg.norm(side)
    for i, v in enumerate(cfg.vessels):
        if v.flow_ml_min == 0.0:  # stagnant: no heat sink, conducts as the tissue
            continue
        axis = Placement(tuple(np.asarray(centre.tip_mm) + side * v.distance_mm), centre.direction)
        _, radial = axial_radial(domain.grid, axis)
        vid = FIRST_VESSEL + i
        heated = active_extent_mm(cfg.applicator) if cfg.applicator is not None else 30.0
        h = nusselt_wall_h(v.diameter_mm, v.flow_ml_min, heated)
        table = table.with_material(
            vid, f"vessel {i + 1}", fixed_group=0, wall_h_w_m2_k=h, k_w_m_k=k_blood
        )
        material[(radial <= 0.5 * v.diameter_mm) & (material != COOLED_SHAFT)] = vid
    return table


def _sources(cfg: SimulationConfig, domain: Domain, model: _Model) -> tuple[Any, Any, dict]:
    """The heat source (a map or a :class:`Source` pair), fixed groups and settings."""
    app = cfg.applicator
    problem = model.problem
    centre, placements = domain.centre, domain.placements
    settings: dict[str, Any] = {
        "applicator": app.id if app is not None else "", "array": cfg.array,
        "spacing_between_mm": cfg.spacing_between_mm,
        "spacing_mm": cfg.spacing_mm, "margin_mm": cfg.margin_mm,
        "tips_mm": [list(p.tip_mm) for p in placements], "direction": list(centre.direction),
        "directions": [list(p.direction) for p in placements],
        "constant_properties": cfg.constant_properties,
        "vessels": [vars(v) for v in cfg.vessels],
        "organ": cfg.organ, "tissues": _tissues_used(model),
        "warnings": app.setting_warnings(
            cfg.power_w if app.modality != "cryo" else None, cfg.heating_duration_s
        ) if app is not None else [],
        "cooldown_s": float(cfg.cooldown_s),
    }  # fmt: skip
    if app is not None and app.modality == "cryo":
        coarse = cryo_resolution_warning(app.diameter_mm, max(domain.grid.spacing_mm))
        if coarse:
            settings["warnings"].append(coarse)
    groups: Any = [problem.body_temperature_c]
    if app is not None:
        groups.append(app.cooling_temperature_c)
    if cfg.power_density_w_m3 is not None or cfg.sar_w_kg is not None:
        settings["external_source"] = True
        if app is None:
            settings["duration_s"] = cfg.duration_s
        return _external_source(cfg, model), groups, settings
    assert app is not None  # SimulationConfig refuses no applicator without a map
    if app.modality == "mw":
        settings.update(power_w=cfg.power_w, duration_s=cfg.duration_s)
        if len(placements) == 1:  # the manufacturer's chart, for one antenna (not arrays)
            settings["chart"] = chart_comparison(app, cfg.power_w, cfg.heating_duration_s)
        return microwave_pair(placements, app, cfg.power_w, model.tissue_mask), groups, settings
    if app.modality == "rf":
        settings.update(power_w=cfg.power_w, duration_s=cfg.duration_s, rf_mode=cfg.rf_mode)
        if app.generator and cfg.rf_mode != "power":
            # the device's generator: its limits and its own control (rf_generators.toml)
            gen = RfGenerator.from_catalogue(app.generator, cfg.power_w, cfg.rf_mode)
        else:  # an ideal constant-power source (or a device without a generator set)
            gen = RfGenerator(cfg.power_w, cfg.rf_mode)
        ground, ground_note = _rf_ground(cfg, domain, model)
        mats = model.problem.materials
        block_sigma = float(mats.rf_sigma_s_m[model.problem.material[1, 1, 1]])  # a corner
        body = crop_return(cfg.case, cfg.rf_pads, domain.grid, model.electrode,
                           model.electrode_cylinders, [pl.tip_mm for pl in domain.placements],
                           mats.rf_sigma_s_m, block_sigma)  # fmt: skip
        settings["rf_return"] = body.to_dict()
        from dataclasses import asdict

        gen_settings = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                        for k, v in asdict(gen).items()}  # fmt: skip
        settings.update(rf_generator=gen.name or "ideal", rf_generator_settings=gen_settings,
                        rf_ground=ground_note)  # fmt: skip
        pair = rf_pair(model.electrode, gen, model.tissue_mask, ground,
                       cylinders=model.electrode_cylinders,
                       series_ohm=body.series_ohm)  # fmt: skip
        return pair, groups, settings
    assert cfg.protocol is not None
    settings["protocol"] = [list(p) for p in cfg.protocol.phases]
    # the cryoprobe drives the cold segments (fixed group 1) itself
    q = _cryo_cooling_power_w(cfg)
    settings["cryo_cooling_power_w"] = q
    return cryo_pair(cfg.protocol, app, model.cold, model.tissue_mask, q), None, settings


def _tissues_used(model: _Model) -> dict[str, str]:
    """Label name -> tissue of every label material on the domain (overrides applied)."""
    table = model.problem.materials
    names = label_tissue_names(table.label_tissues)
    present = np.unique(model.problem.material)
    return {table.names[m]: names[int(m)] for m in present if int(m) in names}


def _cryo_cooling_power_w(cfg: SimulationConfig) -> float | None:
    """All probes' cooling power (W): per probe times the number of probes; None: no limit."""
    from ioplan.devices import calibration_record

    app = cfg.applicator
    q = cfg.cryo_cooling_power_w
    if q is None:
        q = (calibration_record(app.id) or {}).get("cooling_power_w")
    if q is None or not np.isfinite(q):
        return None
    n = len(cfg.placements) if cfg.placements else cfg.array
    return float(q) * n


def _rf_ground(cfg: SimulationConfig, domain: Domain, model: _Model) -> tuple[Any, str]:
    """The RF return electrode on the grid, and a note on the choice.

    The crop's six faces, on a block and on a case alike
    (:func:`~ioplan.physics.far_boundary_ground`): the near field, and so the zone, hardly
    depends on what lies beyond (40 and 60 mm margins within 0.7 mm; a single inferior
    face as the ground distorted the zone: validation/convergence.md). On a case the body
    between the faces and the pads on the skin is a series resistance
    (:func:`ioplan.physics._rf_body.crop_return`); on a block, the unbounded tissue beyond
    its faces (:func:`ioplan.physics._rf_body.infinite_medium_ohm`).
    """
    del cfg, domain, model  # the same far ground everywhere
    return None, "the domain's six faces (the pads' far ground, outside the crop)"


def _external_source(cfg: SimulationConfig, model: _Model) -> np.ndarray:
    """A power-density (W/m^3) or SAR (W/kg) map on the grid, restricted to tissue."""
    problem = model.problem
    table = problem.materials
    if cfg.power_density_w_m3 is not None:
        q = np.asarray(cfg.power_density_w_m3.array, float)
    else:
        c = tissue_specific_heat(problem.material, label_tissues=table.label_tissues)
        rho = table.c_vol_j_m3_k[problem.material] / c
        q = np.asarray(cfg.sar_w_kg.array, float) * rho  # type: ignore[union-attr]
    if not np.all(np.isfinite(q)) or np.any(q < 0):
        raise InputError("a power or SAR map must be finite and >= 0 everywhere")
    if float(q.max()) > 1e9:
        what = "--power-density-map" if cfg.power_density_w_m3 is not None else "--sar-map"
        raise InputError(
            f"{what}: power density {float(q.max()):.3g} W/m^3 is beyond 1e9 (check the "
            "units: W/m^3 for a power density, W/kg for SAR)"
        )
    source = np.where(model.tissue_mask, q, 0.0)
    lost = 1.0 - float(source.sum()) / max(float(q.sum()), 1e-300)
    if lost > 0.01:
        raise InputError(
            f"{100 * lost:.1f} % of the map's power falls on the applicator or the far "
            "boundary, not on tissue; use a larger map or another applicator position"
        )
    return source


def _cold(cfg: SimulationConfig) -> bool:
    return cfg.applicator is not None and cfg.applicator.modality == "cryo"


def _zone_mask(cfg: SimulationConfig, model: _Model, state: ThermalState,
               src_state: Any = None) -> np.ndarray:  # fmt: skip
    """The ablation zone: Omega >= 1 (heat) or the lethal isotherm reached (cryo).

    Cryo adds the voxels next to the probe that its near field makes at least half lethal.
    """
    if _cold(cfg):
        zone = (state.tmin_c <= cfg.lethal_temperature_c) & model.free
        p = model.problem
        return zone | near_field_lethal(
            p.grid, model.cold_cylinders, p.surfaces, state.tmin_c, p.material, p.materials,
            cfg.lethal_temperature_c, getattr(src_state, "coldest_c", np.inf), model.free)
    return (state.omega >= 1.0) & model.free


def _level_field(cfg: SimulationConfig, model: _Model, state: ThermalState) -> np.ndarray:
    """A field >= 0 exactly inside the zone (ln Omega, or lethal minus lowest temperature)."""
    if _cold(cfg):
        f = cfg.lethal_temperature_c - state.tmin_c.astype(np.float32)
    else:
        f = np.log(np.maximum(state.omega.astype(np.float32), np.float32(1e-30)))
    return np.where(model.free, f, np.float32(-70.0)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class _Snapshots:
    metrics: dict[str, ZoneMetrics]
    fields: dict[str, np.ndarray]
    temperatures_c: dict[str, np.ndarray]
    energy_j: dict[str, float]
    max_temperature_c: dict[str, float]


def _run(cfg: SimulationConfig, domain: Domain, model: _Model, source: Any, groups: Any,
         progress) -> tuple[ThermalState, Any, dict[str, float], _Snapshots]:  # fmt: skip
    """Run to each snapshot time in turn (state and source state carry over), then the end."""
    problem, centre = model.problem, domain.centre
    total, heat_end = cfg.total_duration_s, cfg.heating_duration_s
    # with a cool-down, the zone at power off is a snapshot too
    shots = {float(t) for t in cfg.snapshot_times_s}
    if cfg.cooldown_s > 0:
        shots.add(float(heat_end))
    stops = sorted(shots | {float(total), float(heat_end)})
    final: ThermalState | None = None
    src_state = source.init(problem) if isinstance(source, Source) else None
    summed = ("steps", "runtime_s", "energy_deposited_j", "kernel_s", "damage_s", "source_s",
              "general_updates")  # fmt: skip
    stats = dict.fromkeys((*summed, "dt_s"), 0.0)
    snaps = _Snapshots({}, {}, {}, {}, {})
    for t_stop in stops:
        t_start = 0.0 if final is None else final.time_s
        on = t_start < heat_end - 1e-9  # after the heating the power is off
        final, part_state, part = integrate(
            problem, t_stop - t_start, source=source if on else None,
            source_state=src_state, group_temperatures=groups, backend=cfg.backend,
            progress=progress, state=final,
        )  # fmt: skip
        if on:
            src_state = part_state
        for key in summed:
            stats[key] += part[key]
        stats["dt_s"] = max(stats["dt_s"], part["dt_s"])
        if shots:  # every stop, the end included, once any snapshot is asked for
            key = f"{t_stop:g}"
            snaps.metrics[key] = zone_metrics(
                _zone_mask(cfg, model, final, src_state), domain.grid, centre.tip_mm,
                centre.direction
            )
            snaps.fields[key] = _level_field(cfg, model, final)
            snaps.temperatures_c[key] = np.array(final.temperature_c, np.float32)
            snaps.energy_j[key] = float(stats["energy_deposited_j"])
            snaps.max_temperature_c[key] = float(final.tmax_c[model.free].max())
    assert final is not None
    interior = max(0, int(np.prod([n - 2 for n in domain.grid.shape])))
    stats["voxel_updates_per_s"] = (
        interior * stats["steps"] / stats["runtime_s"] if stats["runtime_s"] > 0 else 0.0
    )
    return final, src_state, stats, snaps


def _measure(cfg: SimulationConfig, domain: Domain, model: _Model, final: ThermalState,
             stats: dict[str, float], snaps: _Snapshots, settings: dict[str, Any],
             src_state: Any = None) -> SimulationResult:  # fmt: skip
    """Zone, isotherms, extremes and the tissue used: the :class:`SimulationResult`."""
    app = cfg.applicator
    grid, centre, free = domain.grid, domain.centre, model.free
    problem = model.problem
    cold = _cold(cfg)
    settings["boundary_change_c"] = round(
        boundary_change_c(final, problem.body_temperature_c, cold), 4
    )
    zone_mask = _zone_mask(cfg, model, final, src_state)
    if cold:
        iso_temps = sorted({0.0, -20.0, -30.0, -40.0, cfg.lethal_temperature_c}, reverse=True)
        isotherms = {f"{t:g}": final.tmin_c <= t for t in iso_temps}
    else:
        isotherms = {f"{t:g}": final.tmax_c >= t for t in (50.0, 60.0)}
    zone = zone_metrics(zone_mask, grid, centre.tip_mm, centre.direction)
    iso = {
        k: zone_metrics(m & free, grid, centre.tip_mm, centre.direction)
        for k, m in isotherms.items()
    }
    tissue_used = None
    if cfg.case is None:
        lbl = int(tissue_label(cfg.tissue or "liver"))
        t_tab = problem.materials
        t = t_tab.row(lbl)
        blood = blood_properties()
        c_spec = tissue_specific_heat(np.array([lbl]), label_tissues=t_tab.label_tissues)[0]
        tissue_used = {
            "name": cfg.tissue or "liver",
            "k_w_m_k": t["k_w_m_k"],
            "rho_kg_m3": t["c_vol_j_m3_k"] / c_spec,
            "c_j_kg_k": c_spec,
            "perfusion_per_s": t["perfusion_w_m3_k"] / (blood["rho_kg_m3"] * blood["c_j_kg_k"]),
            "blood_rho_kg_m3": blood["rho_kg_m3"],
            "blood_c_j_kg_k": blood["c_j_kg_k"],
            "blood_temperature_c": problem.blood_temperature_c,
        }
    return SimulationResult(
        zone=zone,
        isotherms=iso,
        max_temperature_c=float(final.tmax_c[free].max()),
        min_temperature_c=float(final.tmin_c[free].min()),
        energy_j=stats["energy_deposited_j"],
        runtime_s=stats["runtime_s"],
        voxel_updates_per_s=stats["voxel_updates_per_s"],
        steps=int(stats["steps"]),
        dt_s=stats["dt_s"],
        grid=grid,
        state=final,
        zone_mask=zone_mask,
        applicator=app.id if app is not None else "",
        modality=app.modality if app is not None else "external",
        settings=settings,
        tissue_used=tissue_used,
        snapshots=snaps.metrics,
        snapshot_fields=snaps.fields,
        snapshot_temperatures_c=snaps.temperatures_c,
        snapshot_energy_j=snaps.energy_j,
        snapshot_max_temperature_c=snaps.max_temperature_c,
        engine={
            "kernel_s": stats["kernel_s"],
            "damage_s": stats["damage_s"],
            "source_s": stats["source_s"],
            "kernel_voxel_updates_per_s": (
                interior_updates(grid) * stats["steps"] / stats["kernel_s"]
                if stats["kernel_s"] > 0
                else 0.0
            ),
            "general_update_fraction": (
                stats["general_updates"] / (interior_updates(grid) * stats["steps"])
                if stats["steps"] > 0
                else 0.0
            ),
        },
    )


def interior_updates(grid: Grid) -> int:
    """Voxels one step updates (all but the outer layer)."""
    return max(0, int(np.prod([n - 2 for n in grid.shape])))
