"""Applicator catalogue: microwave antennas, RF electrodes, cryoprobes (data with sources)."""

from ioplan.devices._catalogue import (
    CHART_FIELDS,
    COAX_CABLES,
    MR_MATERIALS,
    MW_MODELS,
    Applicator,
    applicator,
    calibration_record,
    check_mr_guidance,
    list_applicators,
    load_applicator_file,
    mr_conditional_applicators,
    rf_generator_record,
    sourced_data,
)

__all__ = [
    "CHART_FIELDS",
    "COAX_CABLES",
    "MR_MATERIALS",
    "MW_MODELS",
    "Applicator",
    "applicator",
    "calibration_record",
    "check_mr_guidance",
    "list_applicators",
    "load_applicator_file",
    "mr_conditional_applicators",
    "rf_generator_record",
    "sourced_data",
]
