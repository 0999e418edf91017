"""The physics engine: Pennes bioheat with phase change, sources, vessels and cell death."""

from ioplan.physics._kernel import RATE_STEP_C, RATE_T0_C, rate_table
from ioplan.physics._materials import (
    BOUNDARY_ID,
    FIRST_EXTRA_ID,
    T_REF_C,
    MaterialTable,
    blood_properties,
    tissue_material_table,
)
from ioplan.physics._outputs import write_simulation_outputs
from ioplan.physics._simulate import SimulationConfig, SimulationResult, VesselSpec, simulate
from ioplan.physics._solver import (
    ThermalProblem,
    ThermalState,
    init_state,
    run,
    stable_time_step,
    step,
)
from ioplan.physics._sources import (
    CryoProtocol,
    Placement,
    RfGenerator,
    array_placements,
    attenuation_per_m,
    microwave_source,
    nusselt_wall_h,
    rf_potential,
)
from ioplan.physics._zone import ZoneMetrics, axial_zone, zone_metrics

__all__ = [
    "BOUNDARY_ID",
    "FIRST_EXTRA_ID",
    "RATE_STEP_C",
    "RATE_T0_C",
    "T_REF_C",
    "CryoProtocol",
    "MaterialTable",
    "Placement",
    "RfGenerator",
    "SimulationConfig",
    "SimulationResult",
    "ThermalProblem",
    "ThermalState",
    "VesselSpec",
    "ZoneMetrics",
    "array_placements",
    "attenuation_per_m",
    "axial_zone",
    "blood_properties",
    "init_state",
    "microwave_source",
    "nusselt_wall_h",
    "rate_table",
    "rf_potential",
    "run",
    "simulate",
    "stable_time_step",
    "step",
    "tissue_material_table",
    "write_simulation_outputs",
    "zone_metrics",
]
