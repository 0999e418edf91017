"""Input checks of the Y-90 models: one table of allowed ranges, closed vocabularies.

Every numeric input of :mod:`ioplan.embolization` is checked against :data:`RANGES`
(the command help states the same ranges; a test holds them together). The bounds are
plausibility limits, wide enough for any adult patient and any commercial vial:

- masses: a whole liver weighs about 1.5 kg (up to 5 kg with hepatomegaly or a large
  tumour burden); lungs about 1 kg (0.1-3 kg covers small adults to oedema);
- activity: the largest commercial vial holds 20 GBq (glass, TheraSphere);
- dose: targets reach 400 Gy (glass radiation segmentectomy); 1000 Gy is the ceiling;
- decay: up to 720 h (30 days, 7.8 half-lives) between calibration and treatment;
- T/N ratios of MAA: typically 1-20; 100 is the ceiling;
- height 100-250 cm and weight 20-300 kg (the BSA formula's plausible domain).
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

from ioplan.errors import InputError

__all__ = ["RANGES", "Sphere", "check_lsf", "check_range", "check_sphere", "range_text"]


class Sphere(StrEnum):
    """Microsphere type, whose dose limits differ (EANM 2022, Tables 2 and 3)."""

    GLASS = "glass"
    RESIN = "resin"


#: key -> (low, high, low included, high included, unit, what the user calls it)
RANGES: dict[str, tuple[float, float, bool, bool, str, str]] = {
    "mass_kg": (0.0, 5.0, False, True, "kg", "perfused liver mass (--mass-kg)"),
    "tumor_kg": (0.0, 5.0, False, True, "kg", "tumour mass (--tumor-kg)"),
    "normal_kg": (0.0, 5.0, False, True, "kg", "normal liver mass (--normal-kg)"),
    "lung_mass_kg": (0.1, 3.0, True, True, "kg", "lung mass (--lung-mass-kg)"),
    "activity_gbq": (0.0, 20.0, False, True, "GBq", "activity (--activity-gbq)"),
    "dose_gy": (0.0, 1000.0, False, True, "Gy", "dose (--dose-gy)"),
    "normal_dose_gy": (0.0, 1000.0, False, True, "Gy", "normal liver dose (--normal-dose-gy)"),
    "tumor_dose_gy": (0.0, 1000.0, False, True, "Gy", "tumour dose (--tumor-dose-gy)"),
    "previous_lung_dose_gy": (0.0, 1000.0, True, True, "Gy", "previous lung dose"),
    "residual": (0.0, 1.0, True, False, "", "vial residual fraction (--residual)"),
    "decay_hours": (0.0, 720.0, True, True, "h", "decay time (--decay-hours)"),
    "tn": (0.0, 100.0, False, True, "", "tumour-to-normal ratio (--tn)"),
    "counts": (0.0, 1e15, True, True, "", "counts"),
    "height_cm": (100.0, 250.0, True, True, "cm", "height (--height-cm)"),
    "weight_kg": (20.0, 300.0, True, True, "kg", "weight (--weight-kg)"),
    "tumor_ml": (0.0, 5000.0, False, True, "mL", "tumour volume (--tumor-ml)"),
    "normal_ml": (0.0, 5000.0, False, True, "mL", "normal liver volume (--normal-ml)"),
    "fwhm_mm": (0.0, 100.0, False, True, "mm", "resolution (--fwhm-mm)"),
    "total_counts": (1.0, 1e10, True, True, "", "total counts (--total-counts)"),
}


def range_text(key: str) -> str:
    """The allowed range of ``key`` in words, e.g. ``'> 0 and <= 5 kg'``."""
    lo, hi, lo_in, hi_in, unit, _ = RANGES[key]
    u = f" {unit}" if unit else ""
    return f"{'>=' if lo_in else '>'} {lo:g} and {'<=' if hi_in else '<'} {hi:g}{u}"


def in_range(key: str, value: Any) -> bool:
    """True when ``value`` is a finite number within the range of ``key``."""
    lo, hi, lo_in, hi_in, *_ = RANGES[key]
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    if not math.isfinite(v):
        return False
    return (v >= lo if lo_in else v > lo) and (v <= hi if hi_in else v < hi)


def check_range(key: str, value: Any, what: str | None = None) -> float:
    """``value`` as a float, or :class:`InputError` naming ``what`` (default: the table's words).

    Examples
    --------
    >>> check_range("mass_kg", 1.5)
    1.5
    >>> check_range("mass_kg", 0)
    Traceback (most recent call last):
    ...
    ioplan.errors.InputError: perfused liver mass (--mass-kg) must be > 0 and <= 5 kg, got 0
    """
    if not in_range(key, value):
        got = f"{value:g}" if isinstance(value, float) else value
        raise InputError(f"{what or RANGES[key][5]} must be {range_text(key)}, got {got}")
    return float(value)


def check_lsf(lsf: float) -> float:
    """A lung shunt fraction in [0, 1); a value that looks like a percentage is refused.

    Examples
    --------
    >>> check_lsf(0.05)
    0.05
    >>> check_lsf(5)
    Traceback (most recent call last):
    ...
    ioplan.errors.InputError: lung shunt fraction 5 looks like a percentage: ...
    """
    try:
        f = float(lsf)
    except (TypeError, ValueError):
        raise InputError(
            f"lung shunt fraction (--lsf) must be a number in 0-1, got {lsf}"
        ) from None
    if not math.isfinite(f):
        raise InputError(f"lung shunt fraction (--lsf) must be a number in 0-1, got {lsf}")
    if 1.0 < f <= 100.0:
        raise InputError(
            f"lung shunt fraction {f:g} looks like a percentage: give it as a fraction "
            f"(--lsf {f / 100:g} for {f:g} %)"
        )
    if not 0.0 <= f < 1.0:
        raise InputError(f"lung shunt fraction (--lsf) must be >= 0 and < 1, got {f:g}")
    return f


def check_sphere(sphere: str | Sphere | None) -> Sphere | None:
    """``None`` or a :class:`Sphere`; anything else is refused with the choices.

    Examples
    --------
    >>> check_sphere("glass")
    <Sphere.GLASS: 'glass'>
    >>> check_sphere("gold")
    Traceback (most recent call last):
    ...
    ioplan.errors.InputError: sphere type (--sphere) must be glass or resin, got 'gold'
    """
    if sphere is None or isinstance(sphere, Sphere):
        return sphere
    try:
        return Sphere(str(sphere).strip().lower())
    except ValueError:
        names = " or ".join(s.value for s in Sphere)
        raise InputError(f"sphere type (--sphere) must be {names}, got {sphere!r}") from None
