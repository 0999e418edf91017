"""Applicator catalogue: microwave antennas, RF electrodes, cryoprobes (data with sources)."""

from ioplan.devices._catalogue import (
    CHART_FIELDS,
    COAX_CABLES,
    MW_MODELS,
    Applicator,
    applicator,
    calibration_record,
    list_applicators,
    load_applicator_file,
    rf_generator_record,
)

__all__ = [
    "CHART_FIELDS",
    "COAX_CABLES",
    "MW_MODELS",
    "Applicator",
    "applicator",
    "calibration_record",
    "list_applicators",
    "load_applicator_file",
    "rf_generator_record",
]
