"""Validation against published data: zone tables, calibration of applicator models, organs."""

from ioplan.validation._calibrate import (
    MW_PARAMETERS,
    CalibrationResult,
    calibrate_microwave,
    check_calibration_output,
    default_calibration_path,
    write_calibration,
)
from ioplan.validation._checkpoint import read_checkpoint as read_cv_checkpoint
from ioplan.validation._checks import (
    CHECKS,
    LITTRUP_DIAMETER_MM,
    LITTRUP_SMALL_PROBE_RATIO,
    CheckResult,
    calibrate_cryo_cooling_power,
    cryo_lethal_diameter_mm,
    run_checks,
)
from ioplan.validation._crossval import (
    CV_HOLDS,
    CV_STARTS,
    cross_validate,
    generic_start,
    settings_folds,
)
from ioplan.validation._organs import (
    ORGAN_ZONE_SCHEMA_VERSION,
    OrganZoneSetup,
    organ_zone_lines,
    organ_zone_setups,
    predict_organ_zones,
    write_organ_zone_report,
)
from ioplan.validation._zones import (
    REQUIRED_COLUMNS,
    ZonePrediction,
    ZoneRow,
    predict_zones,
    read_zone_table,
    rows_from_chart,
    scaling_rows,
    size_scaling,
    summarise,
)

__all__ = [
    "CHECKS",
    "CV_HOLDS",
    "CV_STARTS",
    "LITTRUP_DIAMETER_MM",
    "LITTRUP_SMALL_PROBE_RATIO",
    "MW_PARAMETERS",
    "ORGAN_ZONE_SCHEMA_VERSION",
    "REQUIRED_COLUMNS",
    "CalibrationResult",
    "CheckResult",
    "OrganZoneSetup",
    "ZonePrediction",
    "ZoneRow",
    "calibrate_cryo_cooling_power",
    "calibrate_microwave",
    "check_calibration_output",
    "cross_validate",
    "cryo_lethal_diameter_mm",
    "default_calibration_path",
    "generic_start",
    "organ_zone_lines",
    "organ_zone_setups",
    "predict_organ_zones",
    "predict_zones",
    "read_cv_checkpoint",
    "read_zone_table",
    "rows_from_chart",
    "run_checks",
    "scaling_rows",
    "settings_folds",
    "size_scaling",
    "summarise",
    "write_calibration",
    "write_organ_zone_report",
]
