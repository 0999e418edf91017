"""Radioembolization (Y-90 SIRT/TARE): activity planning, voxel dosimetry, checks; TACE dosing."""

from ioplan.embolization._models import (
    SirtResult,
    bsa_activity,
    bsa_m2,
    check_lsf,
    constants,
    decay_factor,
    lung_mass_kg_from_ct,
    lung_shunt_fraction,
    lung_shunt_fraction_planar,
    partition,
    single_compartment,
    tace_dose,
    territories,
    tn_ratio,
)
from ioplan.embolization._report import write_sirt_report, write_voxel_outputs
from ioplan.embolization._voxel import (
    KERNEL_VOXEL_MM,
    VoxelDose,
    dvh_statistics,
    kernel_energy_mev,
    s_value_kernel,
    synthetic_spect,
    voxel_dose,
)

__all__ = [
    "KERNEL_VOXEL_MM",
    "SirtResult",
    "VoxelDose",
    "bsa_activity",
    "bsa_m2",
    "check_lsf",
    "constants",
    "decay_factor",
    "dvh_statistics",
    "kernel_energy_mev",
    "lung_mass_kg_from_ct",
    "lung_shunt_fraction",
    "lung_shunt_fraction_planar",
    "partition",
    "s_value_kernel",
    "single_compartment",
    "synthetic_spect",
    "tace_dose",
    "territories",
    "tn_ratio",
    "voxel_dose",
    "write_sirt_report",
    "write_voxel_outputs",
]
