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
from ioplan.devices._chart import (
    ChartZone,
    chart_comparison,
    chart_fit_residual,
    chart_range,
    chart_zone,
)

__all__ = [
    "CHART_FIELDS",
    "COAX_CABLES",
    "MR_MATERIALS",
    "MW_MODELS",
    "Applicator",
    "ChartZone",
    "applicator",
    "calibration_record",
    "chart_comparison",
    "chart_fit_residual",
    "chart_range",
    "chart_zone",
    "check_mr_guidance",
    "list_applicators",
    "load_applicator_file",
    "mr_conditional_applicators",
    "rf_generator_record",
    "sourced_data",
]
