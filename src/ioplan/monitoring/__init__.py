"""MRI-guided monitoring: PRF thermometry, thermal dose, alerts; a synthetic scanner."""

from ioplan.monitoring._cryo import IceBall, isotherm_depths, measure_ice
from ioplan.monitoring._learn import ZonePrediction, pennes_point_rise, predict_zone
from ioplan.monitoring._prf import (
    FrameResult,
    Thermometry,
    ThermometryConfig,
    arrhenius_increment,
    cem43_increment,
    prf_constants,
)
from ioplan.monitoring._series import read_complex_series, run_thermometry
from ioplan.monitoring._synthetic import ScannerConfig, gaussian_heating, synthetic_frames

__all__ = [
    "FrameResult",
    "IceBall",
    "ScannerConfig",
    "Thermometry",
    "ThermometryConfig",
    "ZonePrediction",
    "arrhenius_increment",
    "cem43_increment",
    "gaussian_heating",
    "isotherm_depths",
    "measure_ice",
    "pennes_point_rise",
    "predict_zone",
    "prf_constants",
    "read_complex_series",
    "run_thermometry",
    "synthetic_frames",
]
