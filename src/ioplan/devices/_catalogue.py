"""Reading the applicator catalogue and user-defined applicator files."""

from __future__ import annotations

import json
import tomllib
from dataclasses import MISSING, asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.errors import FileFormatError, InputError, InputFileNotFoundError

__all__ = [
    "CHART_FIELDS",
    "COAX_CABLES",
    "MR_MATERIALS",
    "MW_MODELS",
    "Applicator",
    "applicator",
    "calibration_record",
    "check_mr_guidance",
    "list_applicators",
    "load_applicator_file",
    "mr_conditional_applicators",
    "rf_generator_record",
]

#: Columns of a zone-chart row (mm, W, s).
CHART_FIELDS = ("power_w", "duration_s", "length_mm", "width_mm", "centre_offset_mm")

_MODALITIES = ("mw", "rf", "cryo")
#: Shaft materials the MR needle-artefact model knows (``ioplan.planning`` needle artefact).
MR_MATERIALS = ("titanium", "nitinol", "inconel", "stainless_steel")
#: Microwave source models: ``lumped`` (cylindrical-wave SAR with a fitted axial profile and
#: detuning, ``ioplan.physics.microwave_source``) or ``field`` (the antenna's computed r-z
#: field, ``ioplan.physics.microwave_field_pair``; issue 19).
MW_MODELS = ("lumped", "field")
#: Semi-rigid coaxial cables of microwave antennas: radii (mm) of the centre conductor, the
#: PTFE dielectric and the outer conductor, and the dielectric's eps_r. Micro-Coax data
#: sheets: UT-047 0.287 / 0.94 / 1.19 mm diameters; UT-034 0.203 / 0.66 / 0.864 mm; PTFE 2.03.
COAX_CABLES: dict[str, tuple[float, float, float, float]] = {
    "UT-047": (0.1435, 0.47, 0.595, 2.03),
    "UT-034": (0.1015, 0.33, 0.432, 2.03),
}
# Physical ranges of the numeric fields (units in the names).
_RANGES = {
    "diameter_mm": (0.2, 10.0),
    "frequency_mhz": (0.0, 10000.0),
    "cooling_temperature_c": (0.0, 40.0),
    "feed_offset_mm": (0.0, 50.0),
    "axial_sigma_forward_mm": (0.5, 100.0),
    "axial_sigma_backward_mm": (0.5, 100.0),
    "efficiency": (0.01, 1.0),
    "detuning_exponent": (0.0, 10.0),
    "backward_spread_exponent": (0.0, 10.0),
    "active_length_mm": (1.0, 100.0),
    "freeze_zone_length_mm": (1.0, 150.0),
    "tip_offset_mm": (0.0, 30.0),
    "probe_temperature_c": (-196.0, 0.0),
    "cooldown_s": (1.0, 600.0),
    "thaw_temperature_c": (-20.0, 60.0),
    "electrode_spacing_mm": (1.0, 50.0),
    "feed_efficiency": (0.05, 1.0),
    "slot_to_short_mm": (0.5, 40.0),
    "catheter_wall_mm": (0.05, 1.0),
    "catheter_wall_k_w_m_k": (0.0, 50.0),
    "choke_length_mm": (0.0, 40.0),
    "choke_offset_mm": (0.0, 40.0),
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
    detuning_exponent: float = 0.0
    #: MW lumped model: the backward axial spread grows as (sigma37 / sigma)^q of the tissue
    #: by the feed (0: fixed; :func:`ioplan.physics.microwave_source`)
    backward_spread_exponent: float = 0.0
    active_length_mm: float = 30.0
    freeze_zone_length_mm: float = 40.0
    tip_offset_mm: float = 4.0
    probe_temperature_c: float = -150.0
    cooldown_s: float = 30.0
    thaw_temperature_c: float = 20.0
    electrodes: int = 1
    electrode_spacing_mm: float = 5.0
    power_range_w: tuple[float, float] = (0.0, 300.0)
    duration_range_s: tuple[float, float] = (0.0, 3600.0)
    zone_chart: tuple[tuple[float, ...], ...] = ()
    zone_chart_source: str = ""
    calibration: str = ""
    #: RF: the generator's parameter set in ``rf_generators.toml`` (empty: none)
    generator: str = ""
    #: MW: the source model (:data:`MW_MODELS`)
    mw_model: str = "lumped"
    #: MW field model: fraction of the generator's power that reaches the antenna's feed
    #: (cable and connector loss); reflection and coolant loss come from the field solve
    feed_efficiency: float = 1.0
    #: MW field model: the antenna's coaxial cable (:data:`COAX_CABLES`)
    cable: str = "UT-047"
    #: MW field model: from the ring slot's distal edge to the cable's shorted end (mm)
    slot_to_short_mm: float = 9.0
    #: MW field model: catheter wall thickness (mm); water fills the catheter's bore
    catheter_wall_mm: float = 0.2
    #: cooled MW antennas: the catheter wall's thermal conductivity (W/m/K). With it, the
    #: wall and the coolant's film conduct in series with the tissue
    #: (``cooled_catheter.toml``; :func:`ioplan.physics.cooled_shaft_radius_mm`); 0: the
    #: catheter's outer surface is held at the coolant's temperature (no wall, no film)
    catheter_wall_k_w_m_k: float = 0.0
    #: MW field model: choke sleeve length (mm; 0: no choke) and its open end's distance
    #: behind the slot (mm)
    choke_length_mm: float = 0.0
    choke_offset_mm: float = 5.0
    #: MR conditionality from the manufacturer's labelling (ASTM F2503 terms): True (MR
    #: Conditional, under ``mr_conditions``), False (not for use in the scanner room's
    #: bore), None (unknown: not established from a source we hold)
    mr_conditional: bool | None = None
    #: the conditions as text with their source: field strength, spatial field gradient,
    #: SAR mode, which parts may enter the bore; for False/None, why
    mr_conditions: str = ""
    #: field strengths (T) the MR Conditional labelling allows (empty: none)
    mr_fields_t: tuple[float, ...] = ()
    #: shaft material for the MR needle artefact (:data:`MR_MATERIALS`; empty: unknown)
    mr_material: str = ""

    def __post_init__(self) -> None:
        self._check_mr()
        for name in ("power_range_w", "duration_range_s"):
            v = getattr(self, name)
            try:
                lo, hi = (float(x) for x in v)
            except (TypeError, ValueError):
                raise InputError(f"applicator {self.id}: {name} must be [min, max]") from None
            if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo <= hi):
                raise InputError(f"applicator {self.id}: {name} must be 0 <= min <= max, got {v}")
            object.__setattr__(self, name, (lo, hi))
        if isinstance(self.electrodes, bool) or self.electrodes not in (1, 2, 3, 4):
            raise InputError(f"applicator {self.id}: electrodes must be 1-4, got {self.electrodes}")
        rows = []
        for i, row in enumerate(self.zone_chart):
            if isinstance(row, list | tuple) and len(row) == len(CHART_FIELDS):
                row = dict(zip(CHART_FIELDS, row, strict=True))
            if not isinstance(row, dict) or set(row) != set(CHART_FIELDS):
                raise InputError(
                    f"applicator {self.id}: zone_chart row {i + 1} needs exactly "
                    f"{', '.join(CHART_FIELDS)}"
                )
            vals = {k: float(row[k]) for k in CHART_FIELDS}
            if not all(np.isfinite(v) and v >= 0 for v in vals.values()):
                raise InputError(f"applicator {self.id}: zone_chart row {i + 1} has a bad value")
            rows.append(tuple(vals[k] for k in CHART_FIELDS))
        object.__setattr__(self, "zone_chart", tuple(rows))
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
        if self.mw_model not in MW_MODELS:
            raise InputError(
                f"applicator {self.id}: mw_model must be one of {', '.join(MW_MODELS)}, "
                f"got {self.mw_model!r}"
            )
        if self.cable not in COAX_CABLES:
            raise InputError(
                f"applicator {self.id}: cable must be one of {', '.join(COAX_CABLES)}, "
                f"got {self.cable!r}"
            )
        if self.modality == "mw" and self.mw_model == "field":
            gap = self.coolant_thickness_mm
            if gap < (0.1 if self.choke_length_mm > 0 else 0.0):
                raise InputError(
                    f"applicator {self.id}: diameter_mm {self.diameter_mm} leaves no room for "
                    f"the {self.cable} cable, a {self.catheter_wall_mm} mm wall"
                    + (" and a choke gap of 0.1 mm" if self.choke_length_mm > 0 else "")
                )
        if self.catheter_wall_k_w_m_k > 0 and self.coolant_thickness_mm <= 0:
            raise InputError(
                f"applicator {self.id}: catheter_wall_k_w_m_k needs a water gap between the "
                f"{self.cable} cable and a {self.catheter_wall_mm} mm wall"
            )
        if self.generator and self.generator not in _rf_generators():
            raise InputError(
                f"applicator {self.id}: unknown RF generator {self.generator!r} "
                f"(known: {', '.join(_rf_generators())})"
            )
        if not -196.0 <= self.probe_temperature_c <= 0.0:
            raise InputError(
                f"applicator {self.id}: probe_temperature_c must be -196-0, "
                f"got {self.probe_temperature_c}"
            )

    def _check_mr(self) -> None:
        if self.mr_conditional not in (True, False, None):
            raise InputError(
                f"applicator {self.id}: mr_conditional must be true, false or absent (unknown), "
                f"got {self.mr_conditional!r}"
            )
        if not isinstance(self.mr_conditions, str):
            raise InputError(f"applicator {self.id}: mr_conditions must be text")
        try:
            fields = tuple(float(f) for f in self.mr_fields_t)
        except (TypeError, ValueError):
            raise InputError(
                f"applicator {self.id}: mr_fields_t must be a list of field strengths in T, "
                f"got {self.mr_fields_t!r}"
            ) from None
        if not all(np.isfinite(f) and 0.1 <= f <= 12.0 for f in fields):
            raise InputError(f"applicator {self.id}: mr_fields_t must be 0.1-12 T, got {fields}")
        object.__setattr__(self, "mr_fields_t", fields)
        if self.mr_conditional is True and not (fields and self.mr_conditions.strip()):
            raise InputError(
                f"applicator {self.id}: an MR Conditional device needs mr_fields_t and "
                "mr_conditions (the labelled conditions with their source)"
            )
        if self.mr_conditional is not True and fields:
            raise InputError(
                f"applicator {self.id}: mr_fields_t is only for MR Conditional devices"
            )
        if self.mr_material and self.mr_material not in MR_MATERIALS:
            raise InputError(
                f"applicator {self.id}: mr_material must be one of {', '.join(MR_MATERIALS)}, "
                f"got {self.mr_material!r}"
            )

    @property
    def coolant_thickness_mm(self) -> float:
        """MW field model: the water layer between the cable and the catheter wall (mm)."""
        return 0.5 * self.diameter_mm - COAX_CABLES[self.cable][2] - self.catheter_wall_mm

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record."""
        d = asdict(self)
        d["power_range_w"] = list(self.power_range_w)
        d["duration_range_s"] = list(self.duration_range_s)
        d["zone_chart"] = self.chart_rows()
        d["mr_fields_t"] = list(self.mr_fields_t)
        return d

    def chart_rows(self) -> list[dict[str, float]]:
        """The manufacturer's zone chart as records with :data:`CHART_FIELDS` keys."""
        return [dict(zip(CHART_FIELDS, r, strict=True)) for r in self.zone_chart]

    def setting_warnings(self, power_w: float | None, duration_s: float | None) -> list[str]:
        """Warnings for settings outside the range the manufacturer charts (never a clamp)."""
        out = []
        lo, hi = self.power_range_w
        if power_w is not None and power_w > 0 and not lo <= power_w <= hi:
            out.append(
                f"{self.id}: power {power_w:g} W is outside the charted range {lo:g}-{hi:g} W; "
                "the model extrapolates"
            )
        lo, hi = self.duration_range_s
        if duration_s is not None and duration_s > 0 and not lo <= duration_s <= hi:
            out.append(
                f"{self.id}: duration {duration_s:g} s is outside the charted range "
                f"{lo:g}-{hi:g} s; the model extrapolates"
            )
        return out


def _from_table(app_id: str, table: dict[str, Any], where: str) -> Applicator:
    if not isinstance(table, dict):
        raise FileFormatError(f"{where}: applicator {app_id!r} must be a table")
    known = set(Applicator.__dataclass_fields__) - {"id"}
    unknown = set(table) - known
    if unknown:
        raise FileFormatError(
            f"{where}: applicator {app_id!r} has unknown fields {sorted(unknown)}"
        )
    fields = Applicator.__dataclass_fields__
    missing = sorted(n for n, f in fields.items() if n != "id" and n not in table
                     and f.default is MISSING and f.default_factory is MISSING)  # fmt: skip
    if missing:
        raise FileFormatError(f"{where}: applicator {app_id!r} lacks the fields {missing}")
    for name, value in table.items():
        kind = fields[name].type
        # a JSON "false" string is truthy, an int gauge of 1.5 is no gauge: types are checked
        if kind == "bool" and not isinstance(value, bool):
            raise FileFormatError(
                f"{where}: applicator {app_id!r}: {name} must be true or false, got {value!r}"
            )
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise FileFormatError(
                f"{where}: applicator {app_id!r}: {name} must be a whole number, got {value!r}"
            )
        if kind == "str" and not isinstance(value, str):
            raise FileFormatError(
                f"{where}: applicator {app_id!r}: {name} must be text, got {value!r}"
            )
        if kind == "float" and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise FileFormatError(
                f"{where}: applicator {app_id!r}: {name} must be a number, got {value!r}"
            )
    try:
        return Applicator(id=app_id, **table)
    except TypeError as exc:
        raise FileFormatError(f"{where}: applicator {app_id!r}: {exc}") from None


#: Fitted parameters an entry of calibration.toml may set.
CALIBRATED_FIELDS = (
    "efficiency",
    "detuning_exponent",
    "backward_spread_exponent",
    "axial_sigma_forward_mm",
    "axial_sigma_backward_mm",
    "feed_offset_mm",
    "probe_temperature_c",
    "feed_efficiency",
    "slot_to_short_mm",
)


@cache
def _calibration() -> dict[str, dict[str, Any]]:
    f = resources.files("ioplan.devices").joinpath("data/calibration.toml")
    if not f.is_file():
        return {}
    raw = tomllib.loads(f.read_text())
    return {k: v for k, v in raw.items() if isinstance(v, dict)}


def calibration_record(app_id: str) -> dict[str, Any] | None:
    """The calibration.toml entry of ``app_id`` (fitted values, residuals, command), if any."""
    return _calibration().get(app_id)


def _summary(rec: dict[str, Any]) -> str:
    held = set(rec.get("fixed_parameters", ()))
    fitted = ", ".join(f"{k} {rec[k]:.4g}" for k in CALIBRATED_FIELDS if k in rec and k not in held)
    kept = ", ".join(f"{k} {rec[k]:.4g}" for k in CALIBRATED_FIELDS if k in rec and k in held)
    held_text = f" (held, not fitted: {kept})" if kept else ""
    return (
        f"fitted {fitted}{held_text} on {rec.get('rows', '?')} published rows at "
        f"{rec.get('spacing_mm', '?')} mm (mean |error| {rec.get('mean_abs_error_mm', '?')} mm; "
        f"`{rec.get('command', 'ioplan calibrate')}`, {rec.get('date', '?')})"
    )


@cache
def _rf_generators() -> dict[str, dict[str, Any]]:
    text = resources.files("ioplan.devices").joinpath("data/rf_generators.toml").read_text()
    raw = tomllib.loads(text)
    return {k: v for k, v in raw.items() if isinstance(v, dict)}


@cache
def sourced_data(filename: str) -> dict[str, Any]:
    """A ``devices/data`` TOML of ``{value, source}`` entries, section by section.

    Returns ``{section: {key: value}}`` plus ``sources`` (``"section.key"`` -> source);
    an entry that is not ``{value, source}`` is kept as it is, top-level scalars
    (``schema_version``) are left out. Shared and cached: do not modify it.
    """
    text = resources.files("ioplan.devices").joinpath(f"data/{filename}").read_text()
    out: dict[str, Any] = {"sources": {}}
    for section, entries in tomllib.loads(text).items():
        if not isinstance(entries, dict):
            continue
        out[section] = {}
        for k, v in entries.items():
            if isinstance(v, dict) and "value" in v:
                out[section][k] = v["value"]
                out["sources"][f"{section}.{k}"] = v.get("source", "")
            else:
                out[section][k] = v
    return out


def rf_generator_record(name: str) -> dict[str, Any]:
    """An RF generator's parameter set from ``rf_generators.toml``: values and sources.

    Returns a dict of the values (``{value, source}`` entries reduced to the value, "inf"
    to infinity) plus ``sources`` (name -> source) and ``name``.
    """
    gens = _rf_generators()
    if name not in gens:
        raise InputError(f"unknown RF generator {name!r} (known: {', '.join(gens)})")
    out: dict[str, Any] = {"name": name, "sources": {}}
    for k, v in gens[name].items():
        if isinstance(v, dict) and "value" in v:
            val = v["value"]
            out[k] = float("inf") if val == "inf" else val
            out["sources"][k] = v.get("source", "")
        else:
            out[k] = v
    return out


@cache
def _catalogue() -> dict[str, Applicator]:
    text = resources.files("ioplan.devices").joinpath("data/applicators.toml").read_text()
    raw = tomllib.loads(text)
    out = {}
    for k, v in raw.items():
        if k == "schema_version":
            continue
        rec = _calibration().get(k)
        if rec is not None:
            v = dict(v)
            v.update({f: rec[f] for f in CALIBRATED_FIELDS if f in rec})
            v["calibration"] = _summary(rec)
        out[k] = _from_table(k, v, "applicators.toml")
    return out


def list_applicators() -> list[Applicator]:
    """Every applicator in the built-in catalogue."""
    return list(_catalogue().values())


def applicator(app_id: str) -> Applicator:
    """The catalogue entry ``app_id``."""
    cat = _catalogue()
    if app_id not in cat:
        import difflib

        close = difflib.get_close_matches(app_id, list(cat), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError(f"unknown applicator {app_id!r}{hint} (known: {', '.join(cat)})")
    return cat[app_id]


def load_applicator_file(path: str | Path) -> Applicator:
    """A user-defined applicator from a JSON file with the catalogue's fields (and ``id``)."""
    p = Path(path)
    if not p.exists():
        raise InputFileNotFoundError(f"{p}: no such applicator file")
    if not p.is_file():
        raise FileFormatError(f"{p}: is not a file (an applicator JSON file is expected)")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{p}: invalid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise FileFormatError(f"{p}: needs an object with a string 'id'")
    app_id = data.pop("id")
    return _from_table(app_id, data, str(p))


def _field_text(fields: tuple[float, ...]) -> str:
    return " and ".join(f"{f:g} T" for f in fields)


def check_mr_guidance(app: Applicator, field_t: float) -> None:
    """Refuse an applicator for MR guidance at ``field_t`` unless it is labelled for it.

    Raises
    ------
    InputError
        The device is not MR Conditional (False), its conditionality is unknown (None), or
        its labelling does not cover ``field_t``; the message gives the reason and source.
    """
    if app.mr_conditional is True:
        if any(abs(field_t - f) < 1e-6 for f in app.mr_fields_t):
            return
        raise InputError(
            f"applicator {app.id} is MR Conditional only at {_field_text(app.mr_fields_t)}, "
            f"not at {field_t:g} T (see its mr_conditions)"
        )
    why = app.mr_conditions or "no MR labelling recorded"
    state = "not MR Conditional" if app.mr_conditional is False else "of unknown MR conditionality"
    raise InputError(f"applicator {app.id} is {state}, refused for MR guidance: {why}")


def mr_conditional_applicators(modality: str | None = None,
                               field_t: float | None = None) -> list[Applicator]:  # fmt: skip
    """Catalogue devices labelled MR Conditional (of ``modality``, at ``field_t`` if given)."""
    out = []
    for a in list_applicators():
        if a.mr_conditional is not True or (modality is not None and a.modality != modality):
            continue
        if field_t is not None and not any(abs(field_t - f) < 1e-6 for f in a.mr_fields_t):
            continue
        out.append(a)
    return out
