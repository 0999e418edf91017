"""One ablation simulation, end to end: domain, applicators, sources, time loop, zone.

The CLI's ``ioplan simulate`` is a thin layer over :func:`simulate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ioplan.anatomy import LABEL_INFO, VESSEL_LABELS, Case, Label, local_radius_mm
from ioplan.devices import Applicator
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume, resample
from ioplan.physics._materials import (
    FIRST_EXTRA_ID,
    MaterialTable,
    blood_properties,
    tissue_material_table,
)
from ioplan.physics._solver import ThermalProblem, ThermalState, run
from ioplan.physics._sources import (
    CryoProtocol,
    Placement,
    RfGenerator,
    array_placements,
    axial_radial,
    microwave_source,
    nusselt_wall_h,
    rf_conductivity_map,
    rf_potential,
)
from ioplan.physics._zone import ZoneMetrics, zone_metrics

__all__ = ["SimulationConfig", "SimulationResult", "VesselSpec", "simulate"]

RESULT_SCHEMA_VERSION = 1

# Extra materials (ids from FIRST_EXTRA_ID).
_COOLED_SHAFT = FIRST_EXTRA_ID  # applicator held at its cooling (or probe) temperature
_INSULATED_SHAFT = FIRST_EXTRA_ID + 1  # vacuum-insulated cryo shaft: no heat flow
_FIRST_VESSEL = FIRST_EXTRA_ID + 8  # vessel classes with their wall coefficient
# Typical mean blood velocities (m/s) used to estimate the flow of label-map vessels.
# Portal vein ~0.15-0.2 m/s and hepatic veins ~0.2 m/s on Doppler ultrasound; hepatic
# artery ~0.3 m/s; IVC ~0.2 m/s; aorta ~0.4 m/s (textbook Doppler ranges, e.g. Zwiebel
# & Pellerito, Introduction to Vascular Ultrasonography).
_TYPICAL_VELOCITY_M_S = {
    Label.PORTAL_VEIN: 0.15,
    Label.HEPATIC_VEIN: 0.2,
    Label.IVC: 0.2,
    Label.AORTA: 0.4,
    Label.HEPATIC_ARTERY: 0.3,
}


@dataclass(frozen=True)
class VesselSpec:
    """A straight vessel parallel to the applicator (ex vivo-style experiments)."""

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
    """Everything one simulation needs.

    Exactly one domain: ``case`` (a case, cropped around the applicators), or a
    homogeneous block of ``tissue``. A ``power_density_w_m3`` or ``sar_w_kg``
    volume replaces the applicator's own source and sets the block's grid.
    """

    applicator: Applicator
    power_w: float = 0.0
    duration_s: float = 0.0
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

    def __post_init__(self) -> None:
        app = self.applicator
        if app.modality != "cryo" and self.protocol is not None:
            raise InputError(f"--protocol is for cryoprobes; {app.id} is {app.modality}")
        if app.modality == "cryo" and (self.power_w or self.duration_s):
            raise InputError("a cryoprobe takes --protocol, not --power-w or --duration-s")
        if app.modality == "cryo":
            if self.protocol is None:
                raise InputError(
                    "a cryoprobe needs --protocol, e.g. freeze:600,thaw:300,freeze:600"
                )
        elif self.power_density_w_m3 is None and self.sar_w_kg is None:
            if not np.isfinite(self.power_w) or not 0 < self.power_w <= 300:
                raise InputError(f"power_w must be in (0, 300] W, got {self.power_w}")
        if app.modality != "cryo" and (
            not np.isfinite(self.duration_s) or not 0 < self.duration_s <= 3600
        ):
            raise InputError(f"duration_s must be in (0, 3600] s, got {self.duration_s}")
        if not np.isfinite(self.spacing_mm) or not 0.25 <= self.spacing_mm <= 5.0:
            raise InputError(f"spacing_mm must be 0.25-5 mm, got {self.spacing_mm}")
        if not np.isfinite(self.margin_mm) or not 10.0 <= self.margin_mm <= 100.0:
            raise InputError(f"margin_mm must be 10-100 mm, got {self.margin_mm}")
        if self.perfusion_per_s is not None and (
            not np.isfinite(self.perfusion_per_s) or not 0 <= self.perfusion_per_s <= 0.1
        ):
            raise InputError(f"perfusion_per_s must be 0-0.1 1/s, got {self.perfusion_per_s}")
        t0 = self.initial_temperature_c
        if t0 is not None and (not np.isfinite(t0) or not 0.0 <= t0 <= 45.0):
            raise InputError(f"initial temperature must be 0-45 degC, got {t0}")
        for t in self.snapshot_times_s:
            if not np.isfinite(t) or not 0 < t <= self.total_duration_s:
                raise InputError(
                    f"snapshot time {t} s must lie in (0, {self.total_duration_s:g}] s"
                )
        if (self.case is None) == (self.tissue is None):
            raise InputError("give either a case or a tissue block")
        if self.power_density_w_m3 is not None and self.sar_w_kg is not None:
            raise InputError("give a power-density map or a SAR map, not both")
        if self.applicator.electrodes > 1 and self.array != 1:
            raise InputError(
                f"{self.applicator.id} is a cluster; --array needs a single applicator"
            )
        if self.case is not None and (
            self.power_density_w_m3 is not None or self.sar_w_kg is not None
        ):
            raise InputError("external power maps are for homogeneous blocks (--tissue)")
        if not -80.0 <= self.lethal_temperature_c <= 0.0:
            raise InputError(f"lethal_temperature_c must be -80-0, got {self.lethal_temperature_c}")
        RfGenerator(1.0, self.rf_mode)  # validates the mode

    @property
    def total_duration_s(self) -> float:
        """Simulated time (s)."""
        return self.protocol.duration_s if self.protocol is not None else self.duration_s


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Zone, isotherms, extremes, energy and timing of one simulation, plus its final state."""

    zone: ZoneMetrics
    isotherms: dict[str, ZoneMetrics]
    max_temperature_c: float
    min_temperature_c: float
    energy_j: float
    runtime_s: float
    voxel_updates_per_s: float
    steps: int
    dt_s: float
    grid: Grid
    state: ThermalState = field(repr=False)
    zone_mask: np.ndarray = field(repr=False)
    applicator: str = ""
    modality: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    tissue_used: dict[str, float | str] | None = None
    snapshots: dict[str, ZoneMetrics] = field(default_factory=dict)
    #: at each snapshot time, a field that is >= 0 exactly inside the zone (ln Omega for
    #: heat, lethal temperature minus the minimum temperature for cryo), for sub-voxel sizing
    snapshot_fields: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: the temperature field (degC) at each snapshot time, on ``grid``
    snapshot_temperatures_c: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of ``ioplan simulate --json`` (keys are never renamed)."""
        doc: dict[str, Any] = {
            "schema_version": RESULT_SCHEMA_VERSION,
            "applicator": self.applicator,
            "modality": self.modality,
            "zone": self.zone.to_dict(),
            "isotherms": {k: v.to_dict() for k, v in self.isotherms.items()},
            "max_temperature_c": round(self.max_temperature_c, 3),
            "min_temperature_c": round(self.min_temperature_c, 3),
            "energy_j": round(self.energy_j, 3),
            "runtime_s": round(self.runtime_s, 4),
            "voxel_updates_per_s": round(self.voxel_updates_per_s, 1),
            "steps": self.steps,
            "dt_s": round(self.dt_s, 6),
            "grid": self.grid.to_dict(),
            "settings": self.settings,
            "warnings": list(self.settings.get("warnings", [])),
        }
        if self.tissue_used is not None:
            doc["tissue"] = self.tissue_used
        if self.snapshots:
            doc["snapshots"] = {k: v.to_dict() for k, v in self.snapshots.items()}
        return doc


def _tissue_label(name: str) -> Label:
    for lbl, info in LABEL_INFO.items():
        if info.tissue == name and lbl != Label.BACKGROUND:
            return lbl
    from ioplan.tissue import tissue_names

    raise InputError(f"unknown tissue {name!r} for a block; known: {', '.join(tissue_names())}")


def _active_extent_mm(app: Applicator) -> float:
    if app.modality == "mw":
        return app.feed_offset_mm + 3.0 * app.axial_sigma_backward_mm
    if app.modality == "rf":
        return app.active_length_mm
    return app.tip_offset_mm + app.freeze_zone_length_mm


def _zone_centre_offset_mm(app: Applicator) -> float:
    """How far behind the tip the zone is centred (first guess, before calibration)."""
    if app.modality == "mw":
        return app.feed_offset_mm
    if app.modality == "rf":
        return 0.5 * app.active_length_mm
    return app.tip_offset_mm + 0.5 * app.freeze_zone_length_mm


def _block_domain(cfg: SimulationConfig) -> tuple[Grid, np.ndarray, Placement]:
    lbl = _tissue_label(cfg.tissue or "liver")
    ext_map = cfg.power_density_w_m3 if cfg.power_density_w_m3 is not None else cfg.sar_w_kg
    if ext_map is not None:
        grid = ext_map.grid
        if not grid.is_axis_aligned():
            raise InputError("a power or SAR map must be on an axis-aligned grid")
        if min(grid.spacing_mm) < 0.25 or max(grid.spacing_mm) > 5.0 or min(grid.shape) < 8:
            raise InputError(
                f"a power or SAR map needs 0.25-5 mm voxels and >= 8 voxels per axis, got "
                f"spacing {grid.spacing_mm} mm, shape {grid.shape}"
            )
        centre = grid.index_to_lps((np.asarray(grid.shape) - 1) / 2.0)
        tip = tuple(centre) if cfg.tip_mm is None else cfg.tip_mm
    else:
        h = cfg.spacing_mm
        extent = _active_extent_mm(cfg.applicator)
        spread = 0.0 if cfg.array == 1 else cfg.spacing_between_mm
        half_xy = (
            cfg.margin_mm
            + spread
            + max((v.distance_mm + v.diameter_mm for v in cfg.vessels), default=0)
        )
        half_z = cfg.margin_mm + extent
        n_xy = 2 * math.ceil(half_xy / h) + 1
        n_z = 2 * math.ceil(half_z / h) + 1
        shape = (n_z, n_xy, n_xy)
        origin = (-(n_xy // 2) * h, -(n_xy // 2) * h, -(n_z // 2) * h)
        grid = Grid(shape, (h, h, h), origin)
        tip = (0.0, 0.0, 0.0) if cfg.tip_mm is None else cfg.tip_mm
    material = np.full(grid.shape, int(lbl), np.uint8)
    return grid, material, Placement(tip, cfg.direction)


def _case_domain(cfg: SimulationConfig) -> tuple[Grid, np.ndarray, Placement]:
    case = cfg.case
    assert case is not None
    if cfg.tip_mm is None:
        if case.tumors and "centre_mm" in case.tumors[0]:
            # the tip goes beyond the tumour centre so that the zone's centre lands on it
            tip_np = np.asarray(case.tumors[0]["centre_mm"], float) + np.asarray(
                Placement((0.0, 0.0, 0.0), cfg.direction).direction
            ) * _zone_centre_offset_mm(cfg.applicator)
        else:
            raise InputError("give --tip-mm: the case lists no tumour to aim at")
        tip = tuple(float(v) for v in tip_np)
    else:
        tip = cfg.tip_mm
    pl = Placement(tip, cfg.direction)
    if not case.labels.grid.contains_lps(pl.tip_mm):
        raise InputError(f"applicator tip {pl.tip_mm} mm lies outside the case grid")
    d = np.asarray(pl.direction)
    extent = _active_extent_mm(cfg.applicator)
    spread = 0.0 if cfg.array == 1 else cfg.spacing_between_mm
    pts = [np.asarray(pl.tip_mm) - d * extent, np.asarray(pl.tip_mm)]
    lo = np.min(pts, axis=0) - cfg.margin_mm - spread
    hi = np.max(pts, axis=0) + cfg.margin_mm + spread
    h = cfg.spacing_mm
    shape = tuple(math.ceil((hi[a] - lo[a]) / h) + 1 for a in (2, 1, 0))
    grid = Grid(shape, (h, h, h), tuple(lo))
    labels = resample(case.labels, grid, interpolation="nearest", default_value=int(Label.FAT))
    material = np.asarray(labels.array, np.uint8).copy()
    if not np.isin(material, [Label.LIVER, Label.TUMOR]).any():
        raise InputError("the case has no liver or tumor label around the applicator")
    tip_idx = tuple(np.clip(np.rint(grid.lps_to_index(pl.tip_mm)).astype(int), 0,
                            np.asarray(grid.shape) - 1))  # fmt: skip
    if material[tip_idx] == Label.BACKGROUND:
        raise InputError(f"applicator tip {pl.tip_mm} mm lies outside the body (in air)")
    # air inside the crop (outside the body) conducts like fat but is never heated
    material[material == Label.BACKGROUND] = Label.FAT
    return grid, material, pl


def _vessel_materials(
    grid: Grid, material: np.ndarray, table: MaterialTable, heated_length_mm: float
) -> MaterialTable:
    """Label-map vessels: >= 3 mm diameter become fixed at blood temperature with a wall h."""
    from ioplan.tissue import blood_flow_parameters

    r_small = blood_flow_parameters()["small_vessel_radius_mm"]
    next_id = _FIRST_VESSEL + 8
    for lbl in VESSEL_LABELS:
        mask = material == lbl
        if not mask.any():
            continue
        radius = local_radius_mm(mask, grid.spacing_mm)
        small = mask & (radius < r_small)
        material[small] = Label.LIVER  # small vessels count through perfusion
        big = mask & ~small
        if not big.any():
            continue
        for r_lo, r_hi in ((r_small, 2.5), (2.5, 4.0), (4.0, 6.0), (6.0, 9.0), (9.0, 100.0)):
            sel = big & (radius >= r_lo) & (radius < r_hi)
            if not sel.any():
                continue
            r_mm = float(np.median(radius[sel]))
            d_mm = 2.0 * r_mm
            flow = _TYPICAL_VELOCITY_M_S[lbl] * math.pi * (d_mm * 1e-3) ** 2 / 4 * 6e7
            h = nusselt_wall_h(min(d_mm, 40.0), min(flow, 5000.0), heated_length_mm)
            if next_id > 250:
                raise InputError("too many vessel classes")
            table = table.with_material(
                next_id,
                f"{lbl.name.lower()} r~{r_mm:.1f}mm",
                fixed_group=0,
                wall_h_w_m2_k=h,
                k_w_m_k=blood_properties()["k_w_m_k"],
            )
            material[sel] = next_id
            next_id += 1
    return table


#: Largest temperature change (degC) allowed next to the far boundary before the
#: domain is grown: the boundary is then too far to change the zone.
BOUNDARY_RISE_LIMIT_C = 1.0


def simulate(cfg: SimulationConfig, *, progress=None) -> SimulationResult:
    """Run one simulation and measure its zone.

    The domain extends ``margin_mm`` beyond the applicators. If the temperature
    next to the far boundary has changed by more than
    :data:`BOUNDARY_RISE_LIMIT_C`, the margin is grown by half and the run
    repeated (up to 100 mm), so that the boundary does not shape the zone.
    """
    while True:
        result = _simulate_once(cfg, progress)
        if result.settings["boundary_change_c"] <= BOUNDARY_RISE_LIMIT_C or cfg.margin_mm >= 100.0:
            return result
        if cfg.power_density_w_m3 is not None or cfg.sar_w_kg is not None:
            return result  # the map fixes the grid
        cfg = replace(cfg, margin_mm=min(100.0, 1.5 * cfg.margin_mm))


def _boundary_change(state: ThermalState, body_c: float, cold: bool) -> float:
    """Largest heating (or, for cryo, cooling) on the layer inside the far boundary.

    Only the direction the ablation acts in counts: cooled applicator shafts
    that cross the boundary cool tissue there without touching the zone.
    """
    arr = state.tmin_c if cold else state.tmax_c
    layer = np.concatenate(
        [arr[1].ravel(), arr[-2].ravel(), arr[:, 1].ravel(), arr[:, -2].ravel(),
         arr[:, :, 1].ravel(), arr[:, :, -2].ravel()]
    )  # fmt: skip
    change = (body_c - layer) if cold else (layer - body_c)
    return max(0.0, float(np.max(change)))


def _simulate_once(cfg: SimulationConfig, progress=None) -> SimulationResult:
    app = cfg.applicator
    if cfg.case is not None:
        grid, material, centre = _case_domain(cfg)
    else:
        grid, material, centre = _block_domain(cfg)
    if app.electrodes > 1:
        # a cluster applicator: its electrodes around the axis, driven together
        placements = array_placements(centre, app.electrodes, app.electrode_spacing_mm)
    else:
        placements = array_placements(centre, cfg.array, cfg.spacing_between_mm)
    for pl in placements:
        if not grid.contains_lps(pl.tip_mm):
            raise InputError(f"applicator tip {pl.tip_mm} mm lies outside the grid")
    override = None
    if cfg.perfusion_per_s is not None:
        from ioplan.tissue import tissue_names

        override = {name: cfg.perfusion_per_s for name in tissue_names() if name != "blood"}
    table = tissue_material_table(perfusion_override_1_per_s=override)
    if cfg.case is not None:
        table = _vessel_materials(grid, material, table, _active_extent_mm(app))
    # applicator voxels
    # at least half a voxel diagonal, so that an axis between voxel centres still
    # marks one voxel per slice (the nearest lattice point is at most h / sqrt 2 away)
    r_app = max(0.5 * app.diameter_mm, 0.71 * max(grid.spacing_mm))
    shaft = np.zeros(grid.shape, bool)
    electrode = np.zeros(grid.shape, bool)
    cold = np.zeros(grid.shape, bool)
    for pl in placements:
        along, radial = axial_radial(grid, pl)
        inside = radial <= r_app
        shaft |= inside & (along <= 0.0)
        if app.modality == "rf":
            electrode |= inside & (along <= 0.0) & (along >= -app.active_length_mm)
        if app.modality == "cryo":
            seg = (along <= -app.tip_offset_mm) & (
                along >= -(app.tip_offset_mm + app.freeze_zone_length_mm)
            )
            cold |= inside & seg
    k_blood = blood_properties()["k_w_m_k"]
    if app.modality in ("mw", "rf") and app.cooled:
        table = table.with_material(
            _COOLED_SHAFT, "cooled applicator", fixed_group=1, k_w_m_k=k_blood
        )
        material[shaft] = _COOLED_SHAFT
    if app.modality == "cryo":
        table = table.with_material(
            _COOLED_SHAFT, "cryoprobe cold segment", fixed_group=1, k_w_m_k=k_blood
        )
        table = table.with_material(
            _INSULATED_SHAFT,
            "insulated shaft",
            k_w_m_k=0.0,
            k_frozen_w_m_k=0.0,
            k_mushy_w_m_k=0.0,
            perfusion_w_m3_k=0.0,
        )
        material[shaft & ~cold] = _INSULATED_SHAFT
        material[cold] = _COOLED_SHAFT
    # ex vivo vessels parallel to the applicator
    d = np.asarray(centre.direction)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    side = np.cross(d, np.cross(helper, d))
    side /= np.linalg.norm(side)
    for i, v in enumerate(cfg.vessels):
        axis = Placement(tuple(np.asarray(centre.tip_mm) + side * v.distance_mm), centre.direction)
        _, radial = axial_radial(grid, axis)
        vid = _FIRST_VESSEL + i
        h = nusselt_wall_h(v.diameter_mm, v.flow_ml_min, _active_extent_mm(app))
        table = table.with_material(
            vid, f"vessel {i + 1}", fixed_group=0, wall_h_w_m2_k=h, k_w_m_k=k_blood
        )
        material[(radial <= 0.5 * v.diameter_mm) & (material != _COOLED_SHAFT)] = vid
    problem = ThermalProblem(
        grid,
        material,
        table,
        constant_properties=cfg.constant_properties,
        dtype=cfg.dtype,
        **(
            {"body_temperature_c": float(cfg.initial_temperature_c)}
            if cfg.initial_temperature_c is not None
            else {}
        ),
    )
    tissue_mask = (problem.material < FIRST_EXTRA_ID) & (table.fixed_group[problem.material] < 0)
    cooling = app.cooling_temperature_c
    settings: dict[str, Any] = {
        "applicator": app.id, "array": cfg.array, "spacing_between_mm": cfg.spacing_between_mm,
        "spacing_mm": cfg.spacing_mm, "margin_mm": cfg.margin_mm,
        "tips_mm": [list(p.tip_mm) for p in placements], "direction": list(centre.direction),
        "constant_properties": cfg.constant_properties,
        "vessels": [vars(v) for v in cfg.vessels],
        "warnings": app.setting_warnings(
            cfg.power_w if app.modality != "cryo" else None, cfg.total_duration_s
        ),
    }  # fmt: skip
    source: Any = None
    groups: Any = [problem.body_temperature_c, cooling]
    if cfg.power_density_w_m3 is not None or cfg.sar_w_kg is not None:
        if cfg.power_density_w_m3 is not None:
            q = np.asarray(cfg.power_density_w_m3.array, float)
        else:
            rho = table.c_vol_j_m3_k[problem.material] / _specific_heat(problem.material)
            q = np.asarray(cfg.sar_w_kg.array, float) * rho  # type: ignore[union-attr]
        if not np.all(np.isfinite(q)) or np.any(q < 0):
            raise InputError("power or SAR map must be finite and >= 0")
        if float(q.max()) > 1e9:
            raise InputError(
                f"power density {float(q.max()):.3g} W/m^3 is beyond 1e9 (check units)"
            )
        source = np.where(tissue_mask, q, 0.0)
        lost = 1.0 - float(source.sum()) / max(float(q.sum()), 1e-300)
        if lost > 0.01:
            raise InputError(
                f"{100 * lost:.1f} % of the map's power falls on the applicator or the far "
                "boundary, not on tissue; use a larger map or another applicator position"
            )
        settings["external_source"] = True
    elif app.modality == "mw":
        settings.update(power_w=cfg.power_w, duration_s=cfg.duration_s)

        mw_cache: dict = {}

        def source(state: ThermalState) -> np.ndarray:
            return microwave_source(
                grid,
                placements,
                app,
                cfg.power_w,
                problem.material,
                state.temperature_c,
                tissue_mask,
                cache=mw_cache,
            )
    elif app.modality == "rf":
        settings.update(power_w=cfg.power_w, duration_s=cfg.duration_s, rf_mode=cfg.rf_mode)
        source = _RfSource(problem, electrode, RfGenerator(cfg.power_w, cfg.rf_mode), tissue_mask)
    else:
        assert cfg.protocol is not None
        from scipy import ndimage

        protocol = cfg.protocol
        settings["protocol"] = [list(p) for p in protocol.phases]
        # tissue touching the cold segments: a passive probe follows its temperature
        ring = ndimage.binary_dilation(cold) & ~cold & tissue_mask
        around = {"t": problem.body_temperature_c}

        def source(state: ThermalState) -> None:
            if ring.any():
                around["t"] = float(np.mean(state.temperature_c[ring]))
            return None

        def groups(t: float) -> list[float]:
            probe = protocol.probe_temperature(t, app, passive_c=around["t"])
            return [problem.body_temperature_c, probe]

    free = table.fixed_group[problem.material] < 0

    def zone_of(state: ThermalState) -> np.ndarray:
        if app.modality == "cryo":
            return (state.tmin_c <= cfg.lethal_temperature_c) & free
        return (state.omega >= 1.0) & free

    def level_field(state: ThermalState) -> np.ndarray:
        if app.modality == "cryo":
            f = cfg.lethal_temperature_c - state.tmin_c.astype(np.float32)
        else:
            f = np.log(np.maximum(state.omega.astype(np.float32), np.float32(1e-30)))
        return np.where(free, f, np.float32(-70.0)).astype(np.float32)

    # run to each snapshot time in turn (the state carries over), measuring the zone there
    total = cfg.total_duration_s
    stops = sorted({float(t) for t in cfg.snapshot_times_s} | {float(total)})
    final: ThermalState | None = None
    stats = {"steps": 0.0, "runtime_s": 0.0, "energy_deposited_j": 0.0, "dt_s": 0.0}
    snapshots: dict[str, ZoneMetrics] = {}
    snapshot_fields: dict[str, np.ndarray] = {}
    snapshot_temps: dict[str, np.ndarray] = {}
    for t_stop in stops:
        t_start = 0.0 if final is None else final.time_s
        final, part = run(
            problem, t_stop - t_start, source=source, group_temperatures=groups,
            backend=cfg.backend, progress=progress, state=final,
        )  # fmt: skip
        for key in ("steps", "runtime_s", "energy_deposited_j"):
            stats[key] += part[key]
        stats["dt_s"] = max(stats["dt_s"], part["dt_s"])
        if cfg.snapshot_times_s:
            snapshots[f"{t_stop:g}"] = zone_metrics(
                zone_of(final), grid, centre.tip_mm, centre.direction
            )
            snapshot_fields[f"{t_stop:g}"] = level_field(final)
            snapshot_temps[f"{t_stop:g}"] = np.array(final.temperature_c, np.float32)
    assert final is not None
    interior = max(0, int(np.prod([n - 2 for n in grid.shape])))
    stats["voxel_updates_per_s"] = (
        interior * stats["steps"] / stats["runtime_s"] if stats["runtime_s"] > 0 else 0.0
    )
    if isinstance(source, _RfSource):
        settings["rf_impedance_ohm_initial"] = source.z_initial
        settings["rf_impedance_ohm_final"] = source.z_last
    settings["boundary_change_c"] = round(
        _boundary_change(final, problem.body_temperature_c, app.modality == "cryo"), 4
    )
    zone_mask = zone_of(final)
    if app.modality == "cryo":
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
        t = table.row(int(_tissue_label(cfg.tissue or "liver")))
        blood = blood_properties()
        c_spec = _specific_heat(np.array([int(_tissue_label(cfg.tissue or "liver"))]))[0]
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
    energy = stats["energy_deposited_j"]
    return SimulationResult(
        zone=zone,
        isotherms=iso,
        max_temperature_c=float(final.tmax_c[free].max()),
        min_temperature_c=float(final.tmin_c[free].min()),
        energy_j=energy,
        runtime_s=stats["runtime_s"],
        voxel_updates_per_s=stats["voxel_updates_per_s"],
        steps=int(stats["steps"]),
        dt_s=stats["dt_s"],
        grid=grid,
        state=final,
        zone_mask=zone_mask,
        applicator=app.id,
        modality=app.modality,
        settings=settings,
        tissue_used=tissue_used,
        snapshots=snapshots,
        snapshot_fields=snapshot_fields,
        snapshot_temperatures_c=snapshot_temps,
    )


def _specific_heat(material: np.ndarray) -> np.ndarray:
    """Specific heat (J/kg/K) of label materials (liver's for others)."""
    from ioplan.tissue import tissue, tissue_names

    c = np.full(256, tissue("liver").specific_heat_j_kg_k)
    for lbl, info in LABEL_INFO.items():
        if info.tissue in tissue_names():
            c[int(lbl)] = tissue(info.tissue).specific_heat_j_kg_k
    return c[np.asarray(material)]


#: Re-solve the RF potential when conductivity has changed by more than this fraction
#: somewhere, and solve to this relative residual (the map is then scaled to the
#: generator's power, so its absolute level needs no more accuracy).
RF_RESOLVE_CHANGE = 0.03
RF_SOLVE_TOL = 1e-6


class _RfSource:
    """RF power density: re-solves the potential as conductivity changes; generator control."""

    def __init__(self, problem: ThermalProblem, electrode: np.ndarray, gen: RfGenerator,
                 tissue_mask: np.ndarray) -> None:  # fmt: skip
        self.problem = problem
        self.electrode = electrode
        self.gen = gen
        ground = np.zeros(problem.grid.shape, bool)
        ground[0, :, :] = ground[-1, :, :] = True
        ground[:, 0, :] = ground[:, -1, :] = True
        ground[:, :, 0] = ground[:, :, -1] = True
        self.ground = ground & ~electrode
        # The return current really leaves through large skin pads, where it heats
        # little. Here the ground is the far boundary, and where a conductive structure
        # (a vessel, bowel content) meets it the current crowds into a few voxels: that
        # heating is an artefact of the grounding model, so the two layers next to the
        # ground receive none (the generator's power goes to the rest of the tissue).
        inner = np.zeros(problem.grid.shape, bool)
        inner[3:-3, 3:-3, 3:-3] = True
        self.tissue_mask = tissue_mask & inner
        self.sigma37 = problem.materials.rf_sigma_s_m[problem.material]
        # insulation: the shaft behind the exposed tip and other applicator metal
        self.sigma37 = np.where(
            (problem.material >= FIRST_EXTRA_ID) & ~electrode & (problem.material < 255),
            0.0, self.sigma37,
        )  # fmt: skip
        self.last_sigma: np.ndarray | None = None
        self.q_unit: np.ndarray | None = None
        self.p_unit = 0.0
        self.z_initial = float("nan")
        self.z_last = float("nan")
        self.pause_until = -1.0
        self.cache: dict = {}

    def __call__(self, state: ThermalState) -> np.ndarray:
        sigma = rf_conductivity_map(self.problem.material, state.temperature_c, self.sigma37)
        sigma = np.where(self.sigma37 > 0, sigma, 0.0)
        # re-solve when the conductivity has changed where the power goes: the
        # power-weighted mean relative change is the first-order change of the map
        changed = self.last_sigma is None or self.q_unit is None
        if not changed:
            rel = np.abs(sigma - self.last_sigma) / np.maximum(self.last_sigma, 1e-12)
            changed = float(np.sum(rel * self.q_unit) / np.sum(self.q_unit)) > RF_RESOLVE_CHANGE
        if changed:
            _, self.q_unit, self.p_unit = rf_potential(
                self.problem.grid,
                sigma,
                self.electrode,
                self.ground,
                tol=RF_SOLVE_TOL,
                cache=self.cache,
            )
            self.last_sigma = sigma
        z = 1.0 / self.p_unit if self.p_unit > 0 else float("inf")
        if not np.isfinite(self.z_initial):
            self.z_initial = z
        self.z_last = z
        power = self.gen.power_w
        if self.gen.mode == "impedance":
            if state.time_s < self.pause_until:
                power = 0.0
            elif z > self.z_initial + self.gen.rolloff_ohm:
                self.pause_until = state.time_s + self.gen.pause_s
                power = 0.0
        assert self.q_unit is not None
        q = np.where(self.tissue_mask, self.q_unit, 0.0)
        in_tissue = float(q.sum()) * float(np.prod(self.problem.spacing_m))
        # the generator's power is all dissipated in tissue (half-faces next to the
        # metal included), so the map is scaled to hold exactly that power
        return q * (power / in_tissue) if in_tissue > 0 else q
