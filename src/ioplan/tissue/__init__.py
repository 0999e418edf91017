"""Tissue properties with their sources, and their temperature dependence."""

from ioplan.tissue._properties import (
    TissueProperties,
    arrhenius_parameters,
    blood_flow_parameters,
    cem43_parameters,
    constants,
    dielectric_ji_brace_2450,
    label_property_map,
    phase_change,
    rf_conductivity,
    rf_desiccation_parameters,
    source_of,
    specific_heat_liver,
    tissue,
    tissue_names,
    vaporisation,
)

__all__ = [
    "TissueProperties",
    "arrhenius_parameters",
    "blood_flow_parameters",
    "cem43_parameters",
    "constants",
    "dielectric_ji_brace_2450",
    "label_property_map",
    "phase_change",
    "rf_conductivity",
    "rf_desiccation_parameters",
    "source_of",
    "specific_heat_liver",
    "tissue",
    "tissue_names",
    "vaporisation",
]
