"""PRF thermometry settings of an MR-guided protocol: TE from T2*, SNR, expected precision.

TE = min(T2*, TE_max) (the phase SNR ``TE exp(-TE/T2*)`` peaks at TE = T2*; Rieke & Butts
Pauly 2008), SNR(TE) = SNR0(1.5 T) (B0 / 1.5 T)^p exp(-TE / T2*), and the precision is the
formula :mod:`ioplan.monitoring` uses for its uncertainty maps,

    sigma_T = sqrt(1 + 1/N) / (|alpha| gamma B0 TE SNR),

with ``alpha gamma B0 TE`` taken from :class:`ioplan.monitoring.ThermometryConfig`
(``rad_per_c``) so the constants are ioplan's own.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any

from ioplan.errors import InputError
from ioplan.monitoring import ThermometryConfig, prf_constants, temperature_sigma_c

__all__ = [
    "FIELDS_T",
    "TISSUES",
    "ThermometryPlan",
    "prf_precision_c",
    "thermometry_plan",
]

#: Field strengths (T) the protocol data cover.
FIELDS_T = (1.5, 3.0)


@cache
def _data(name: str) -> dict[str, Any]:
    text = resources.files("ioplan.protocol").joinpath(f"data/{name}").read_text()
    return tomllib.loads(text)


def _value(entry: dict[str, Any]) -> Any:
    return entry["value"]


#: Tissues with T2* and T1 in thermometry.toml.
TISSUES = tuple(_data("thermometry.toml")["tissues"])


def field_key(field_t: float) -> str:
    """The data files' key of a field strength: "1.5" or "3"."""
    for f in FIELDS_T:
        if abs(field_t - f) < 1e-9:
            return f"{f:g}"
    raise InputError(f"--field-t must be 1.5 or 3 (T), got {field_t:g}")


def prf_precision_c(*, field_t: float, te_ms: float, snr: float, baseline_frames: int) -> float:
    """Expected temperature precision (degC, one standard deviation) of one PRF frame.

    ``sqrt(1 + 1/N) / (|alpha gamma B0 TE| SNR)``, alpha gamma B0 TE from
    :attr:`ioplan.monitoring.ThermometryConfig.rad_per_c`, by
    :func:`ioplan.monitoring.temperature_sigma_c` (the map ioplan's thermometry computes).
    """
    if not (math.isfinite(snr) and snr > 0):
        raise InputError(f"SNR must be > 0, got {snr}")
    cfg = ThermometryConfig(b0_t=field_t, te_ms=te_ms, baseline_frames=baseline_frames)
    return float(temperature_sigma_c(cfg, snr))


@dataclass(frozen=True)
class ThermometryPlan:
    """PRF thermometry settings for one tissue at one field (units in the names)."""

    tissue: str
    field_t: float
    t2star_ms: float
    t1_ms: float
    te_ms: float
    te_limited_by: str
    tr_ms: float
    flip_deg: float
    frame_s: float
    resolution_mm: str
    baseline_frames: int
    snr: float
    expected_precision_c: float
    alpha_ppm_per_c: float
    gyromagnetic_ratio_mhz_per_t: float
    formula: str
    sources: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record (numbers rounded for reading)."""
        d = asdict(self)
        for k in ("te_ms", "tr_ms", "frame_s"):
            d[k] = round(d[k], 2)
        d["flip_deg"] = round(d["flip_deg"], 1)
        d["snr"] = round(d["snr"], 2)
        d["expected_precision_c"] = round(d["expected_precision_c"], 3)
        return d


def thermometry_plan(tissue: str, field_t: float) -> ThermometryPlan:
    """TE, TR, flip angle, SNR and expected precision of PRF thermometry in ``tissue``."""
    data = _data("thermometry.toml")
    if tissue not in data["tissues"]:
        raise InputError(f"--tissue must be one of {', '.join(TISSUES)}, got {tissue!r}")
    key = field_key(field_t)
    t = data["tissues"][tissue]
    t2s, t1 = float(t["t2star_ms"][key]), float(t["t1_ms"][key])
    te_max = float(_value(data["te_max_ms"]))
    te = min(t2s, te_max)
    tr = te + float(_value(data["tr_overhead_ms"]))
    flip = math.degrees(math.acos(math.exp(-tr / t1)))  # Ernst angle
    n = int(_value(data["baseline_frames"]))
    snr0 = float(_value(data["snr_1p5t_te0"])) * (field_t / 1.5) ** float(
        _value(data["snr_field_exponent"])
    )
    snr = snr0 * math.exp(-te / t2s)
    consts = prf_constants()
    sources = {k: v["source"] for k, v in data.items() if isinstance(v, dict) and "source" in v}
    sources["t2star_ms"] = t["t2star_ms"]["source"]
    sources["t1_ms"] = t["t1_ms"]["source"]
    sources["flip_deg"] = "Ernst angle acos(exp(-TR/T1)) with the tissue's T1"
    sources["alpha_ppm_per_c"] = (
        "ioplan.monitoring prf.toml: Rieke & Butts Pauly 2008; Ishihara Y et al., Magn Reson "
        "Med 1995;34:814 (-0.01 ppm/degC)"
    )
    sources["expected_precision_c"] = (
        "sqrt(1 + 1/N) / (|alpha| gamma B0 TE SNR): the uncertainty ioplan.monitoring maps "
        "(Rieke & Butts Pauly 2008)"
    )
    return ThermometryPlan(
        tissue=tissue,
        field_t=field_t,
        t2star_ms=t2s,
        t1_ms=t1,
        te_ms=te,
        te_limited_by="T2*" if te == t2s else f"frame time: te_max_ms {te_max:g}",
        tr_ms=tr,
        flip_deg=flip,
        frame_s=tr * 1e-3 * int(_value(data["phase_lines"])),
        resolution_mm=str(_value(data["resolution_mm"])),
        baseline_frames=n,
        snr=snr,
        expected_precision_c=prf_precision_c(field_t=field_t, te_ms=te, snr=snr, baseline_frames=n),
        alpha_ppm_per_c=float(consts["alpha_ppm_per_c"]),
        gyromagnetic_ratio_mhz_per_t=float(consts["gyromagnetic_ratio_mhz_per_t"]),
        formula="sigma_T = sqrt(1 + 1/N) / (|alpha| gamma B0 TE SNR); "
        "SNR = SNR0(1.5 T) (B0/1.5 T)^p exp(-TE/T2*); TE = min(T2*, te_max_ms)",
        sources=sources,
    )
