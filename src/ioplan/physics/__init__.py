"""The physics engine: Pennes bioheat with phase change, sources, vessels and cell death."""

from ioplan.physics._materials import (
    BOUNDARY_ID,
    FIRST_EXTRA_ID,
    T_REF_C,
    MaterialTable,
    blood_properties,
    tissue_material_table,
)
from ioplan.physics._solver import (
    ThermalProblem,
    ThermalState,
    init_state,
    run,
    stable_time_step,
    step,
)

__all__ = [
    "BOUNDARY_ID",
    "FIRST_EXTRA_ID",
    "T_REF_C",
    "MaterialTable",
    "ThermalProblem",
    "ThermalState",
    "blood_properties",
    "init_state",
    "run",
    "stable_time_step",
    "step",
    "tissue_material_table",
]
