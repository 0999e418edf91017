"""ioplan: planning, simulation, monitoring and confirmation for interventional oncology.

Subpackages
-----------
imaging
    ``Grid`` and ``Volume`` (arrays with patient LPS geometry); DICOM, NIfTI and
    NRRD input and output; resampling.
anatomy
    Label conventions, the synthetic abdominal phantom and the case folder format.
tissue
    Tissue property tables with their sources, and temperature dependence.
errors
    The ``IoplanError`` hierarchy.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ioplan")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
