"""MRI-guided monitoring: PRF thermometry, thermal dose, alerts; a synthetic scanner.

Series in from 4D NIfTI, DICOM (magnitude + phase or real + imaginary, vendor phase
scaling) and ISMRMRD image files (:func:`read_series`). A stored series end to end:
:func:`thermometry_from_series` then :func:`write_thermometry_outputs` (``ioplan
thermometry``); a live session: :func:`monitor_live` (``ioplan monitor``).
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
from ioplan.monitoring._live import (
    MAX_BASELINE_FRAMES,
    MAX_DEMO_FRAMES,
    MAX_WAIT_S,
    Frame,
    check_port,
    check_wait,
    connect_tcp,
    demo_scanner,
    folder_frames,
    igtl_frames,
    live_summary,
    monitor_live,
    parse_host_port,
    run_live,
)
from ioplan.monitoring._prf import (
    FrameResult,
    Thermometry,
    ThermometryConfig,
    arrhenius_increment,
    cem43_increment,
    prf_constants,
    temperature_sigma_c,
    warm_up,
)
from ioplan.monitoring._series import (
    ComplexSeries,
    read_complex_series,
    read_series,
    run_thermometry,
    zone_overlap,
)
from ioplan.monitoring._stored import (
    THERMOMETRY_FILES,
    HeatSource,
    SeriesOptions,
    ThermometryResult,
    thermometry_from_series,
    write_thermometry_outputs,
)
from ioplan.monitoring._synthetic import (
    ScannerConfig,
    engine_temperatures,
    gaussian_heating,
    synthetic_frames,
)

__all__ = [
    "MAX_BASELINE_FRAMES",
    "MAX_DEMO_FRAMES",
    "MAX_WAIT_S",
    "THERMOMETRY_FILES",
    "ComplexSeries",
    "Frame",
    "FrameResult",
    "HeatSource",
    "IceBall",
    "ScannerConfig",
    "SeriesOptions",
    "Thermometry",
    "ThermometryConfig",
    "ThermometryResult",
    "ZonePrediction",
    "arrhenius_increment",
    "cem43_increment",
    "check_port",
    "check_wait",
    "connect_tcp",
    "demo_scanner",
    "engine_temperatures",
    "folder_frames",
    "gaussian_heating",
    "igtl_frames",
    "isotherm_depths",
    "live_summary",
    "measure_ice",
    "monitor_live",
    "parse_host_port",
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
    "temperature_sigma_c",
    "thermometry_from_series",
    "warm_up",
    "write_thermometry_outputs",
    "zone_overlap",
]
