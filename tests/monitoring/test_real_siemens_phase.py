"""A real Siemens phase image (3 T field map, heudiconv's test data) read with the vendor scale.

The file (``../shared/data/real/siemens_phase/fieldmap_phase.dcm``) is a single 64 x 64 PHASE
image (ImageType ORIGINAL/PRIMARY/P/ND), RescaleSlope 2, RescaleIntercept -4096, TE 7.38 ms.
The reader needs a magnitude to pair it with: the test writes one (constant 1000) from the
phase file's own header, so the complex frame's angle is the phase the reader computed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ioplan.errors import InputError
from ioplan.monitoring import read_dicom_complex_series, read_series

pydicom = pytest.importorskip("pydicom")

PHASE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "siemens_phase"
PHASE_FILE = PHASE / "fieldmap_phase.dcm"

pytestmark = pytest.mark.skipif(
    not PHASE_FILE.exists(), reason=f"real data not present ({PHASE_FILE}); see shared/data/real"
)

MAGNITUDE = 1000.0


@pytest.fixture
def magnitude_folder(tmp_path):
    """A magnitude image on the phase image's grid (same header, ImageType M, value 1000)."""
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(PHASE_FILE)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.RescaleSlope = 1
    ds.RescaleIntercept = 0
    ds.PixelData = np.full((ds.Rows, ds.Columns), int(MAGNITUDE), np.uint16).tobytes()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    folder = tmp_path / "magnitude"
    folder.mkdir()
    ds.save_as(folder / "mag.dcm")
    return folder


def _expected_phase() -> np.ndarray:
    """Siemens 12-bit phase, computed here from the raw stored values.

    Rescaled value = stored * RescaleSlope + RescaleIntercept = stored * 2 - 4096, which runs
    -4096..4094 for stored 0..4095; Siemens maps -4096..4096 onto -pi..pi, so radians =
    rescaled / 4096 * pi.
    """
    ds = pydicom.dcmread(PHASE_FILE)
    assert float(ds.RescaleSlope) == 2.0 and float(ds.RescaleIntercept) == -4096.0
    stored = ds.pixel_array.astype(np.float64)
    return (stored * 2.0 - 4096.0) / 4096.0 * math.pi


def _wrapped(a: np.ndarray) -> np.ndarray:
    return (a + math.pi) % (2 * math.pi) - math.pi


def test_siemens_phase_auto_scale(magnitude_folder):
    series = read_series(magnitude=magnitude_folder, phase=PHASE_FILE, phase_scale="auto")
    assert series.read_as["format"] == "dicom"
    assert series.read_as["phase_scale"] == "siemens"  # chosen from Manufacturer SIEMENS
    assert series.te_ms == pytest.approx(7.38, abs=1e-9)
    assert series.b0_t == pytest.approx(3.0)
    assert series.frames.shape == (1, 1, 64, 64)
    z = series.frames[0, 0]
    expected = _expected_phase()
    # the independent phases span the Siemens range and lie in [-pi, pi]
    assert expected.min() >= -math.pi and expected.max() <= math.pi
    assert expected.max() - expected.min() > 0.9 * 2 * math.pi  # a field map wraps
    # The frame is complex64 (about 7 significant digits): its angle matches the independent
    # phase to 1e-5 rad, compared modulo 2 pi (+pi and -pi are the same phase).
    assert np.abs(z) == pytest.approx(MAGNITUDE, rel=1e-6)
    got = np.angle(z.astype(np.complex128))
    assert got.min() >= -math.pi and got.max() <= math.pi
    assert np.max(np.abs(_wrapped(got - expected))) < 1e-5


def test_siemens_phase_explicit_scale_same(magnitude_folder):
    auto = read_dicom_complex_series(magnitude=magnitude_folder, phase=PHASE_FILE)
    explicit = read_dicom_complex_series(
        magnitude=magnitude_folder, phase=PHASE_FILE, phase_scale="siemens"
    )
    assert np.array_equal(auto.frames, explicit.frames)


def test_siemens_phase_as_radians_refused(magnitude_folder):
    # rescaled values reach thousands: read as radians they leave -pi..pi, a clear refusal
    with pytest.raises(InputError, match=r"outside -pi\.\.pi"):
        read_series(magnitude=magnitude_folder, phase=PHASE_FILE, phase_scale="radians")
