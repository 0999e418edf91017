"""MRI-guided monitoring: PRF thermometry, thermal dose, alerts; a synthetic scanner.

Series in from 4D NIfTI, DICOM (magnitude + phase or real + imaginary, vendor phase
scaling) and ISMRMRD image files (:func:`read_series`).
"""

from ioplan.monitoring._cryo import IceBall, isotherm_depths, measure_ice
from ioplan.monitoring._dicom_series import read_dicom_complex_series
from ioplan.monitoring._ismrmrd import read_ismrmrd_series
from ioplan.monitoring._learn import (
    ZonePrediction,
    pennes_point_rise,
    predict_zone,
    predict_zone_engine,
)
from ioplan.monitoring._live import demo_scanner, folder_frames, igtl_frames, run_live
from ioplan.monitoring._prf import (
    FrameResult,
    Thermometry,
    ThermometryConfig,
    arrhenius_increment,
    cem43_increment,
    prf_constants,
    warm_up,
)
from ioplan.monitoring._series import (
    ComplexSeries,
    read_complex_series,
    read_series,
    run_thermometry,
    zone_overlap,
)
from ioplan.monitoring._synthetic import ScannerConfig, gaussian_heating, synthetic_frames

__all__ = [
    "ComplexSeries",
    "FrameResult",
    "IceBall",
    "ScannerConfig",
    "Thermometry",
    "ThermometryConfig",
    "ZonePrediction",
    "arrhenius_increment",
    "cem43_increment",
    "demo_scanner",
    "folder_frames",
    "gaussian_heating",
    "igtl_frames",
    "isotherm_depths",
    "measure_ice",
    "pennes_point_rise",
    "predict_zone",
    "predict_zone_engine",
    "prf_constants",
    "read_complex_series",
    "read_dicom_complex_series",
    "read_ismrmrd_series",
    "read_series",
    "run_live",
    "run_thermometry",
    "synthetic_frames",
    "warm_up",
    "zone_overlap",
]
