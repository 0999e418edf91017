"""Exceptions raised by ioplan.

Every error ioplan raises on purpose derives from :class:`IoplanError`, and
also from the built-in exception it means, so that callers may catch either
(``except ValueError`` keeps working). The command line turns any
:class:`IoplanError` into one line, ``error: <message>``, and exit code 2.

Messages name the parameter or file and the value received.
"""

from __future__ import annotations

__all__ = [
    "DicomSeriesError",
    "FileFormatError",
    "GeometryMismatchError",
    "InputError",
    "InputFileNotFoundError",
    "InvalidImageError",
    "IoplanError",
    "IrregularSeriesError",
    "OutputExistsError",
    "OutputNotWritableError",
]


class IoplanError(Exception):
    """Base class of every error ioplan raises on purpose."""


class InputError(IoplanError, ValueError):
    """A parameter or input value is invalid (out of range, wrong shape, ...)."""


class InputFileNotFoundError(IoplanError, FileNotFoundError):
    """An input file or folder does not exist."""


class FileFormatError(IoplanError, ValueError):
    """A file is not of the expected format, or is corrupt."""


class DicomSeriesError(FileFormatError):
    """A DICOM series is inconsistent (missing slice, mixed spacing or orientation)."""


class IrregularSeriesError(DicomSeriesError):
    """A DICOM series is unevenly stacked: lost slices, mixed spacing, a gantry tilt.

    The kind an importer can put on an even grid by interpolation, when asked.
    """


class GeometryMismatchError(InputError):
    """Two volumes that must share a grid do not (shape, spacing, origin or direction)."""


class InvalidImageError(InputError):
    """Image values are unusable (NaN or infinite voxels, empty mask, ...)."""


class OutputExistsError(IoplanError, FileExistsError):
    """An output would overwrite something the user saved (``--overwrite`` allows it)."""


class OutputNotWritableError(IoplanError, PermissionError):
    """An output folder or file cannot be written (no permission, read-only, a file in the way)."""
