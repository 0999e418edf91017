"""Reading the applicator catalogue and user-defined applicator files."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.errors import FileFormatError, InputError, InputFileNotFoundError

__all__ = ["Applicator", "applicator", "list_applicators", "load_applicator_file"]

_MODALITIES = ("mw", "rf", "cryo")
# Physical ranges of the numeric fields (units in the names).
_RANGES = {
    "diameter_mm": (0.2, 10.0),
    "frequency_mhz": (0.0, 10000.0),
    "cooling_temperature_c": (0.0, 40.0),
    "feed_offset_mm": (0.0, 50.0),
    "axial_sigma_forward_mm": (0.5, 100.0),
    "axial_sigma_backward_mm": (0.5, 100.0),
    "efficiency": (0.01, 1.0),
    "active_length_mm": (1.0, 100.0),
    "freeze_zone_length_mm": (1.0, 150.0),
    "tip_offset_mm": (0.0, 30.0),
    "probe_temperature_c": (-196.0, 0.0),
    "cooldown_s": (1.0, 600.0),
    "thaw_temperature_c": (-20.0, 60.0),
}


@dataclass(frozen=True)
class Applicator:
    """One applicator: geometry (mm), frequency (MHz) and source-model parameters."""

    id: str
    name: str
    modality: str
    diameter_mm: float
    source: str
    model_source: str = ""
    frequency_mhz: float = 0.0
    gauge: int = 0
    cooled: bool = False
    cooling_temperature_c: float = 20.0
    feed_offset_mm: float = 10.0
    axial_sigma_forward_mm: float = 5.0
    axial_sigma_backward_mm: float = 9.0
    efficiency: float = 1.0
    active_length_mm: float = 30.0
    freeze_zone_length_mm: float = 40.0
    tip_offset_mm: float = 4.0
    probe_temperature_c: float = -150.0
    cooldown_s: float = 30.0
    thaw_temperature_c: float = 20.0

    def __post_init__(self) -> None:
        for name, (lo, hi) in _RANGES.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
                raise InputError(f"applicator {self.id}: {name} must be a finite number, got {v!r}")
            if not lo <= v <= hi:
                raise InputError(f"applicator {self.id}: {name} must be {lo:g}-{hi:g}, got {v}")
        if self.modality not in _MODALITIES:
            raise InputError(
                f"applicator {self.id}: modality must be mw, rf or cryo, got {self.modality!r}"
            )
        if not 0.2 <= self.diameter_mm <= 10.0:
            raise InputError(
                f"applicator {self.id}: diameter_mm must be 0.2-10, got {self.diameter_mm}"
            )
        if not 0.0 < self.efficiency <= 1.0:
            raise InputError(
                f"applicator {self.id}: efficiency must be in (0, 1], got {self.efficiency}"
            )
        if self.modality == "mw" and self.frequency_mhz not in (915.0, 2450.0):
            raise InputError(
                f"applicator {self.id}: microwave frequency_mhz must be 915 or 2450, "
                f"got {self.frequency_mhz}"
            )
        for name in (
            "active_length_mm",
            "freeze_zone_length_mm",
            "axial_sigma_forward_mm",
            "axial_sigma_backward_mm",
        ):
            if getattr(self, name) <= 0:
                raise InputError(f"applicator {self.id}: {name} must be > 0")
        if not -196.0 <= self.probe_temperature_c <= 0.0:
            raise InputError(
                f"applicator {self.id}: probe_temperature_c must be -196-0, "
                f"got {self.probe_temperature_c}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record."""
        return asdict(self)


def _from_table(app_id: str, table: dict[str, Any], where: str) -> Applicator:
    if not isinstance(table, dict):
        raise FileFormatError(f"{where}: applicator {app_id!r} must be a table")
    known = set(Applicator.__dataclass_fields__) - {"id"}
    unknown = set(table) - known
    if unknown:
        raise FileFormatError(
            f"{where}: applicator {app_id!r} has unknown fields {sorted(unknown)}"
        )
    try:
        return Applicator(id=app_id, **table)
    except TypeError as exc:
        raise FileFormatError(f"{where}: applicator {app_id!r}: {exc}") from None


@cache
def _catalogue() -> dict[str, Applicator]:
    text = resources.files("ioplan.devices").joinpath("data/applicators.toml").read_text()
    raw = tomllib.loads(text)
    return {
        k: _from_table(k, v, "applicators.toml") for k, v in raw.items() if k != "schema_version"
    }


def list_applicators() -> list[Applicator]:
    """Every applicator in the built-in catalogue."""
    return list(_catalogue().values())


def applicator(app_id: str) -> Applicator:
    """The catalogue entry ``app_id``."""
    cat = _catalogue()
    if app_id not in cat:
        raise InputError(f"unknown applicator {app_id!r}; known: {', '.join(cat)}")
    return cat[app_id]


def load_applicator_file(path: str | Path) -> Applicator:
    """A user-defined applicator from a JSON file with the catalogue's fields (and ``id``)."""
    p = Path(path)
    if not p.exists():
        raise InputFileNotFoundError(f"{p}: no such applicator file")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{p}: invalid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise FileFormatError(f"{p}: needs an object with a string 'id'")
    app_id = data.pop("id")
    return _from_table(app_id, data, str(p))
