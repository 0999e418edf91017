"""Predicted vs published ablation zones: reading zone tables, simulating every row."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.devices import Applicator, applicator
from ioplan.errors import FileFormatError, InputError, InputFileNotFoundError

__all__ = [
    "REQUIRED_COLUMNS",
    "ZonePrediction",
    "ZoneRow",
    "predict_zones",
    "read_zone_table",
    "rows_from_chart",
    "scaling_rows",
    "size_scaling",
    "summarise",
]

#: Columns a zone table must have (shared/validation/mwa_zones.csv format).
REQUIRED_COLUMNS = ("device", "frequency_mhz", "power_w", "duration_s", "length_mm", "width_mm")
_NUMERIC = ("frequency_mhz", "power_w", "duration_s", "length_mm", "width_mm", "centre_offset_mm")


@dataclass(frozen=True)
class ZoneRow:
    """One published zone: device, settings and the zone's length and width (mm).

    ``line`` is the row's line number in its file (the header is line 1), 0 for rows
    that come from the catalogue's chart.
    """

    device: str
    frequency_mhz: float
    power_w: float
    duration_s: float
    length_mm: float
    width_mm: float
    centre_offset_mm: float | None = None
    basis: str = ""
    source: str = ""
    line: int = 0


def read_zone_table(path: str | Path) -> list[ZoneRow]:
    """Read a zone table (CSV, UTF-8) in the ``mwa_zones.csv`` format.

    Parameters
    ----------
    path : path
        A CSV file with a header row naming at least :data:`REQUIRED_COLUMNS`
        (``device, frequency_mhz, power_w, duration_s, length_mm, width_mm``);
        optional columns are ``centre_offset_mm``, ``basis`` and ``source``.
        ``../shared/validation/mwa_zones.csv`` (when the shared data are present) is
        one.

    Returns
    -------
    list of ZoneRow
        The rows, each with its line number in the file.

    Raises
    ------
    ioplan.errors.InputFileNotFoundError
        No such file.
    ioplan.errors.FileFormatError
        Not UTF-8 text, not CSV, columns missing (the message names the expected
        ones), a value that is not a positive finite number, an unknown device, a
        frequency that is not the device's, or no rows; with the line and column.
    """
    p = Path(path)
    if p.is_dir():
        raise FileFormatError(f"{p} is a folder, not a zone table (CSV file)")
    if not p.is_file():
        raise InputFileNotFoundError(f"{p}: no such zone table")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise FileFormatError(
            f"{p}: not a UTF-8 text (CSV) file; a zone table has the columns "
            f"{', '.join(REQUIRED_COLUMNS)}"
        ) from None
    try:
        return _parse_zone_rows(p, text)
    except csv.Error as exc:
        raise FileFormatError(f"{p}: not a readable CSV file ({exc})") from None


def _parse_zone_rows(p: Path, text: str) -> list[ZoneRow]:
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise FileFormatError(
            f"{p}: missing column(s) {', '.join(missing)}; a zone table's header names "
            f"{', '.join(REQUIRED_COLUMNS)} (optional: centre_offset_mm, basis, source)"
        )
    rows = []
    for n, raw in enumerate(reader, start=2):
        rec = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(rec.values()):
            continue
        vals: dict[str, Any] = {}
        for col in _NUMERIC:
            s = rec.get(col, "")
            if s == "" and col == "centre_offset_mm":
                vals[col] = None
                continue
            try:
                v = float(s)
            except ValueError:
                raise FileFormatError(f"{p} row {n}, column {col}: {s!r} is not a number") from None
            if not math.isfinite(v) or (v <= 0 and col != "centre_offset_mm"):
                raise FileFormatError(f"{p} row {n}, column {col}: {s} must be a positive number")
            vals[col] = v
        device = rec.get("device", "")
        if not device:
            raise FileFormatError(f"{p} row {n}, column device: empty")
        try:
            app = applicator(device)
        except InputError as exc:
            raise FileFormatError(f"{p} row {n}, column device: {exc}") from None
        if app.modality in ("mw", "rf") and abs(app.frequency_mhz - vals["frequency_mhz"]) > 1e-6:
            raise FileFormatError(
                f"{p} row {n}, column frequency_mhz: {vals['frequency_mhz']:g} MHz, but "
                f"{device} runs at {app.frequency_mhz:g} MHz"
            )
        rows.append(
            ZoneRow(
                device=device,
                basis=rec.get("basis", ""),
                source=rec.get("source", ""),
                line=n,
                **vals,
            )
        )
    if not rows:
        raise FileFormatError(f"{p}: no rows")
    return rows


def rows_from_chart(app: Applicator) -> list[ZoneRow]:
    """The applicator's own zone chart as rows."""
    if not app.zone_chart:
        raise InputError(f"{app.id} has no zone chart to fit or validate against")
    return [
        ZoneRow(
            device=app.id,
            frequency_mhz=app.frequency_mhz,
            basis="chart",
            source=app.zone_chart_source,
            **r,
        )
        for r in app.chart_rows()
    ]


@dataclass(frozen=True)
class ZonePrediction:
    """A row with the simulated zone: sub-voxel length, width and centre offset (mm)."""

    row: ZoneRow
    predicted_length_mm: float
    predicted_width_mm: float
    predicted_centre_offset_mm: float
    voxel_length_mm: float
    voxel_width_mm: float
    spacing_mm: float
    initial_temperature_c: float = 37.0
    #: the zone field (>= 0 inside) on the plane through the axis, and its extent (mm)
    section: np.ndarray | None = field(default=None, repr=False, compare=False)
    section_extent_mm: tuple[float, float, float, float] | None = None
    #: energy absorbed by the tissue up to the row's time (J) and the highest tissue
    #: temperature reached by then (degC); NaN where not recorded
    energy_absorbed_j: float = float("nan")
    max_temperature_c: float = float("nan")

    @property
    def errors_mm(self) -> tuple[float, float]:
        """Predicted minus published length and width."""
        return (
            self.predicted_length_mm - self.row.length_mm,
            self.predicted_width_mm - self.row.width_mm,
        )

    def to_dict(self) -> dict[str, Any]:
        """The row record of ``ioplan validate --json`` (contract keys first)."""
        r = self.row
        el, ew = self.errors_mm
        return {
            "device": r.device,
            "power_w": r.power_w,
            "duration_s": r.duration_s,
            "length_mm": r.length_mm,
            "width_mm": r.width_mm,
            "predicted_length_mm": round(self.predicted_length_mm, 2),
            "predicted_width_mm": round(self.predicted_width_mm, 2),
            "length_error_mm": round(el, 2),
            "width_error_mm": round(ew, 2),
            "centre_offset_mm": r.centre_offset_mm,
            "predicted_centre_offset_mm": round(self.predicted_centre_offset_mm, 2),
            "voxel_length_mm": round(self.voxel_length_mm, 2),
            "voxel_width_mm": round(self.voxel_width_mm, 2),
            "frequency_mhz": r.frequency_mhz,
            "line": r.line,
            # how the model made the zone: the energy the tissue absorbed, as a share of
            # the generator's output (power x time), and the highest tissue temperature
            "energy_absorbed_j": _rounded(self.energy_absorbed_j, 1),
            "energy_absorbed_fraction": _rounded(
                self.energy_absorbed_j / (r.power_w * r.duration_s), 4
            ),
            "max_temperature_c": _rounded(self.max_temperature_c, 2),
        }


def _rounded(x: float, digits: int) -> float | None:
    """``round(x, digits)``, or None (JSON null) for a value not recorded."""
    return round(float(x), digits) if np.isfinite(x) else None


def predict_zones(
    rows: Sequence[ZoneRow],
    *,
    spacing_mm: float = 1.0,
    applicators: Mapping[str, Applicator] | None = None,
    keep_sections: bool = False,
    initial_temperature_c: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[ZonePrediction]:
    """Simulate every row on an ex vivo (non-perfused) liver block and size the zone.

    The block starts at ``initial_temperature_c`` (default: the ex vivo start
    temperature of tissues.toml, 20 degC).

    Rows of one device and power share one simulation to their longest duration,
    with the zone measured at each row's time (snapshots). ``applicators`` overrides
    catalogue entries (the calibration uses it to try parameter values).
    """
    from ioplan.physics import SimulationConfig, axial_zone, simulate

    if initial_temperature_c is None:
        initial_temperature_c = ex_vivo_start_c()
    groups: dict[tuple[str, float], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r.device, r.power_w), []).append(i)
    # Every simulation is configured (and so checked) before the first one runs.
    configs = []
    for (device, power), idx in groups.items():
        app = (applicators or {}).get(device) or applicator(device)
        times = tuple(sorted({rows[i].duration_s for i in idx}))
        try:
            cfg = SimulationConfig(
                applicator=app,
                power_w=power,
                duration_s=times[-1],
                tissue="liver",
                perfusion_per_s=0.0,
                spacing_mm=spacing_mm,
                snapshot_times_s=times,
                initial_temperature_c=initial_temperature_c,
            )
        except InputError as exc:
            r = max((rows[i] for i in idx), key=lambda row: row.duration_s)
            where = f"line {r.line}" if r.line else "chart row"
            raise InputError(
                f"zone table {where} ({device}, {power:g} W, {times[-1]:g} s): {exc}"
            ) from None
        configs.append((idx, cfg))
    out: list[ZonePrediction | None] = [None] * len(rows)
    for idx, cfg in configs:
        if progress is not None:
            progress(f"{cfg.applicator.id} {cfg.power_w:g} W, {cfg.duration_s:g} s")
        res = simulate(cfg)
        tip = tuple(res.settings["tips_mm"][0])
        direction = tuple(res.settings["direction"])
        for i in idx:
            key = f"{rows[i].duration_s:g}"
            f = res.snapshot_fields[key]
            z = axial_zone(f, res.grid, tip, direction, 0.0)
            vox = res.snapshots[key]
            section = extent = None
            if keep_sections:
                section, extent = _axial_section(f, res.grid)
            out[i] = ZonePrediction(
                row=rows[i],
                predicted_length_mm=z.length_mm,
                predicted_width_mm=z.width_mm,
                predicted_centre_offset_mm=z.centre_offset_mm,
                voxel_length_mm=vox.length_mm,
                voxel_width_mm=vox.width_mm,
                spacing_mm=spacing_mm,
                initial_temperature_c=initial_temperature_c,
                section=section,
                section_extent_mm=extent,
                energy_absorbed_j=res.snapshot_energy_j.get(key, float("nan")),
                max_temperature_c=res.snapshot_max_temperature_c.get(key, float("nan")),
            )
    return [p for p in out if p is not None]


def _axial_section(f: np.ndarray, grid) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The (z, x) plane through the block's centre; extent (x0, x1, z0, z1) in mm."""
    j = f.shape[1] // 2
    z, _, x = grid.axis_coordinates_mm()
    h = grid.spacing_mm
    ext = (x[0] - h[2] / 2, x[-1] + h[2] / 2, z[0] - h[0] / 2, z[-1] + h[0] / 2)
    return np.asarray(f[:, j, :], np.float32), tuple(float(v) for v in ext)


def ex_vivo_start_c() -> float:
    """The ex vivo start temperature (degC) of tissues.toml (a documented assumption)."""
    from ioplan.tissue import constants

    return float(constants()["ex_vivo_start_temperature_c"])


def summarise(preds: Sequence[ZonePrediction]) -> dict[str, Any]:
    """The JSON document of ``ioplan validate --json``: rows and the error summary.

    ``mean_abs_error_mm`` and ``max_abs_error_mm`` cover length and width together.
    """
    if not preds:
        raise InputError("no rows to summarise")
    el = np.array([p.errors_mm[0] for p in preds])
    ew = np.array([p.errors_mm[1] for p in preds])
    both = np.abs(np.concatenate([el, ew]))
    return {
        "rows": [p.to_dict() for p in preds],
        "mean_abs_error_mm": round(float(both.mean()), 3),
        "max_abs_error_mm": round(float(both.max()), 3),
        "length_mean_abs_error_mm": round(float(np.abs(el).mean()), 3),
        "width_mean_abs_error_mm": round(float(np.abs(ew).mean()), 3),
        "length_mean_error_mm": round(float(el.mean()), 3),
        "width_mean_error_mm": round(float(ew.mean()), 3),
        "n_rows": len(preds),
        "spacing_mm": preds[0].spacing_mm,
        "measure": "sub-voxel: Omega = 1 crossings interpolated between voxel centres on ln Omega",
        "conditions": (
            f"ex vivo: liver block starting at {preds[0].initial_temperature_c:g} degC, "
            "no perfusion"
        ),
        "initial_temperature_c": preds[0].initial_temperature_c,
        "size_scaling": scaling_by_device(preds),
    }


#: Fewest rows, and distinct powers and durations, for a device's power-law fit.
MIN_SCALING_ROWS = 4


def size_scaling(
    powers_w: Sequence[float], durations_s: Sequence[float], sizes_mm: Sequence[float]
) -> dict[str, float] | None:
    """Exponents of ``size = c P^a t^b`` by least squares on ``ln size``.

    How a zone's length or width grows with the generator's power (``a``) and with time
    (``b``): a zone that grows by heat conduction at a steady power keeps growing about as
    the diffusion length does (``b`` of 0.3-0.5), a zone that plateaus has a smaller ``b``.
    None when the rows cannot fix both exponents (fewer than :data:`MIN_SCALING_ROWS`, one
    power or one duration only) or a size is not positive (no zone).

    Examples
    --------
    >>> p, t = [40, 40, 80, 80], [100, 400, 100, 400]
    >>> s = size_scaling(p, t, [10 * pi ** 0.4 * ti ** 0.2 for pi, ti in zip(p, t)])
    >>> round(s["power_exponent"], 6), round(s["time_exponent"], 6)
    (0.4, 0.2)
    """
    p = np.asarray(powers_w, float)
    t = np.asarray(durations_s, float)
    y = np.asarray(sizes_mm, float)
    if (len(y) < MIN_SCALING_ROWS or len(set(p)) < 2 or len(set(t)) < 2
            or not np.all(y > 0) or not np.all(p > 0) or not np.all(t > 0)):  # fmt: skip
        return None
    a = np.stack([np.ones_like(p), np.log(p), np.log(t)], axis=1)
    coef, *_ = np.linalg.lstsq(a, np.log(y), rcond=None)
    fitted = np.exp(a @ coef)
    return {
        "power_exponent": round(float(coef[1]), 4),
        "time_exponent": round(float(coef[2]), 4),
        "max_abs_residual_mm": round(float(np.abs(fitted - y).max()), 3),
    }


def scaling_by_device(preds: Sequence[ZonePrediction]) -> dict[str, Any]:
    """Per device: :func:`size_scaling` of the published and the predicted lengths and widths.

    The residual of the published sizes about their own power law (``max_abs_residual_mm``)
    is the chart's scatter about a smooth trend in power and time.
    """
    out: dict[str, Any] = {}
    for device in sorted({p.row.device for p in preds}):
        mine = [p for p in preds if p.row.device == device]
        pw = [p.row.power_w for p in mine]
        ts = [p.row.duration_s for p in mine]
        out[device] = {"rows": len(mine), **{
            dim: {"published": size_scaling(pw, ts, [getattr(p.row, f"{dim}_mm") for p in mine]),
                  "predicted": size_scaling(pw, ts, [getattr(p, f"predicted_{dim}_mm")
                                                      for p in mine])}
            for dim in ("length", "width")}}  # fmt: skip
    return out


def scaling_rows(scaling: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Table rows of :func:`scaling_by_device`'s document.

    Each row: device, size, published and predicted laws, published scatter (mm). Sizes
    whose published rows fix no exponent are left out.
    """

    def law(s: Mapping[str, float] | None) -> str:
        return "-" if s is None else f"P^{s['power_exponent']:.2f} t^{s['time_exponent']:.2f}"

    out = []
    for device, d in scaling.items():
        for dim in ("length", "width"):
            pub = d[dim]["published"]
            if pub is not None:
                out.append((device, dim, law(pub), law(d[dim]["predicted"]),
                            f"{pub['max_abs_residual_mm']:.1f}"))  # fmt: skip
    return out
