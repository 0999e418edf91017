"""Y-90 activity planning: lung shunt, MIRD single compartment, partition, BSA; TACE dosing.

Formulas: shared/validation/README.md section 7. Constants, limits and their sources:
``embolization/data/y90.toml``. Every result carries the dose constant used and the
limits it was checked against, as warnings with their source.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from ioplan.errors import InputError

__all__ = [
    "SirtResult",
    "bsa_activity",
    "constants",
    "decay_factor",
    "lung_mass_kg_from_ct",
    "lung_shunt_fraction",
    "lung_shunt_fraction_planar",
    "partition",
    "single_compartment",
    "tace_dose",
    "territories",
    "tn_ratio",
]


@lru_cache(maxsize=1)
def constants() -> dict[str, Any]:
    """The Y-90 table (constants, limits, sources)."""
    text = resources.files("ioplan.embolization").joinpath("data/y90.toml").read_text()
    return tomllib.loads(text)


def _cf(cf: float | None) -> float:
    c = constants()["dose_constant"]
    v = c["default"] if cf is None else float(cf)
    if not any(abs(v - x) < 1e-9 for x in c["choices"]):
        raise InputError(f"dose constant must be one of {c['choices']} Gy kg/GBq, got {v:g}")
    return v


def _positive(name: str, v: float, unit: str) -> float:
    if v is None or not np.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a positive number of {unit}, got {v}")
    return float(v)


def check_lsf(lsf: float) -> float:
    """A lung shunt fraction in 0-1; a value that looks like a percentage is refused."""
    if lsf is None or not np.isfinite(lsf):
        raise InputError(f"lung shunt fraction must be a number in 0-1, got {lsf}")
    if 1.0 < lsf <= 100.0:
        raise InputError(
            f"lung shunt fraction {lsf:g} looks like a percentage: give it as a fraction "
            f"(--lsf {lsf / 100:g} for {lsf:g} %)"
        )
    if not 0.0 <= lsf < 1.0:
        raise InputError(f"lung shunt fraction must be in 0-1, got {lsf:g}")
    return float(lsf)


def lung_shunt_fraction(lung_counts: float, liver_counts: float) -> float:
    """LSF = lung / (lung + liver) counts (geometric means of planar views, or SPECT)."""
    if lung_counts < 0 or liver_counts < 0:
        raise InputError("counts must not be negative")
    total = lung_counts + liver_counts
    if total <= 0:
        raise InputError("no counts: the lung shunt fraction is undefined")
    return float(lung_counts) / float(total)


def lung_shunt_fraction_planar(
    lung_anterior: float, lung_posterior: float, liver_anterior: float, liver_posterior: float
) -> float:
    """LSF from planar MAA views (conjugate views; EANM 2022).

    The geometric means of the anterior and posterior counts of lung and liver.
    """
    vals = (lung_anterior, lung_posterior, liver_anterior, liver_posterior)
    if any(v is None or not np.isfinite(v) or v < 0 for v in vals):
        raise InputError("planar counts must be numbers >= 0")
    return lung_shunt_fraction(
        math.sqrt(lung_anterior * lung_posterior), math.sqrt(liver_anterior * liver_posterior)
    )


def tn_ratio(tumour_counts: float, tumour_ml: float, normal_counts: float,
             normal_ml: float) -> float:  # fmt: skip
    """Tumour-to-normal ratio from MAA counts: (C_T / V_T) / (C_N / V_N)."""
    for name, v in (("tumour counts", tumour_counts), ("normal counts", normal_counts)):
        if v is None or not np.isfinite(v) or v < 0:
            raise InputError(f"{name} must be >= 0, got {v}")
    vt = _positive("tumour volume", tumour_ml, "mL")
    vn = _positive("normal liver volume", normal_ml, "mL")
    if normal_counts <= 0:
        raise InputError("no counts in the normal liver: the T/N ratio is undefined")
    return (tumour_counts / vt) / (normal_counts / vn)


def territories(
    items: list[dict[str, float]], lsf: float, *, cf: float | None = None,
    lung_mass_kg: float | None = None, sphere: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Several perfused territories (lobar, segmental), each by the partition model.

    Each item: ``name``, ``tumor_kg``, ``normal_kg``, ``tn`` and one of ``activity_gbq``,
    ``normal_dose_gy``, ``tumor_dose_gy``. The lung receives the shunted part of every
    territory's activity, so the lung dose is checked on the sum.
    """
    if not items:
        raise InputError("give at least one territory")
    rows, total = [], 0.0
    for it in items:
        kw = {k: it[k] for k in ("activity_gbq", "normal_dose_gy", "tumor_dose_gy") if k in it}
        if "tumor_dose_gy" in kw:
            kw["tumour_dose_gy"] = kw.pop("tumor_dose_gy")
        r = partition(it["tumor_kg"], it["normal_kg"], it["tn"], lsf, cf=cf,
                      lung_mass_kg=lung_mass_kg, sphere=sphere, **kw)  # fmt: skip
        total += r.activity_gbq
        rows.append({"name": it.get("name", f"territory {len(rows) + 1}")} | r.to_dict())
    c = _cf(cf)
    ml = lung_mass_kg or constants()["constants"]["lung_mass_kg"]
    lung = c * total * check_lsf(lsf) / ml
    warnings = _checks({"lung_dose_gy": lung}, lsf, None)
    return {
        "model": "partition, per territory",
        "activity_gbq": round(total, 5),
        "cf_gy_kg_per_gbq": c,
        "lung_dose_gy": round(lung, 4),
        "territories": rows,
        "warnings": warnings,
        "limits_source": constants()["limits"]["source"],
    }


def lung_mass_kg_from_ct(hu: np.ndarray, lung_mask: np.ndarray, voxel_ml: float) -> float:
    """Lung mass from CT: density (HU + 1000) / 1000 g/mL (Kao et al., EJNMMI Res 2014)."""
    m = np.asarray(lung_mask, bool)
    if not m.any():
        raise InputError("the lung mask is empty")
    dens = np.clip((np.asarray(hu, float)[m] + 1000.0) / 1000.0, 0.0, None)
    return float(dens.sum() * voxel_ml / 1000.0)


def decay_factor(hours: float) -> float:
    """Fraction of Y-90 activity left after ``hours`` (half-life from the table)."""
    if not np.isfinite(hours) or hours < 0:
        raise InputError(f"decay time must be >= 0 h, got {hours}")
    return 0.5 ** (hours / constants()["constants"]["half_life_h"])


@dataclass(frozen=True)
class SirtResult:
    """One activity calculation (JSON: :meth:`to_dict`)."""

    model: str
    activity_gbq: float
    cf_gy_kg_per_gbq: float
    doses_gy: dict[str, float]
    inputs: dict[str, Any]
    order_activity_gbq: float | None = None
    calibration_activity_gbq: float | None = None
    warnings: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "model": self.model,
            "activity_gbq": round(self.activity_gbq, 5),
            "cf_gy_kg_per_gbq": self.cf_gy_kg_per_gbq,
            **{k: round(v, 4) for k, v in self.doses_gy.items()},
            "inputs": self.inputs,
            "warnings": list(self.warnings),
            "limits_source": constants()["limits"]["source"],
        }
        if self.order_activity_gbq is not None:
            d["order_activity_gbq"] = round(self.order_activity_gbq, 5)
        if self.calibration_activity_gbq is not None:
            d["calibration_activity_gbq"] = round(self.calibration_activity_gbq, 5)
        return d | self.extra


def _checks(doses: dict[str, float], lsf: float, sphere: str | None,
            previous_lung_gy: float = 0.0) -> list[str]:  # fmt: skip
    lim = constants()["limits"]
    src = "EANM 2022 (Weber et al.)"
    out = []
    lung = doses.get("lung_dose_gy", 0.0)
    if lung > lim["lung_single_gy"]:
        out.append(
            f"lung dose {lung:.1f} Gy exceeds {lim['lung_single_gy']:g} Gy per treatment [{src}]"
        )
    if lung + previous_lung_gy > lim["lung_cumulative_gy"]:
        out.append(
            f"cumulative lung dose {lung + previous_lung_gy:.1f} Gy exceeds "
            f"{lim['lung_cumulative_gy']:g} Gy [{src}]"
        )
    if lsf > lim["lung_shunt_warning_fraction"]:
        out.append(f"lung shunt {100 * lsf:.1f} % is above 20 % [{src}; resin IFU]")
    normal = doses.get("normal_dose_gy", doses.get("dose_gy"))
    if sphere in ("glass", "resin") and normal is not None:
        cap = lim[f"normal_liver_{sphere}_gy"]
        if normal > cap:
            out.append(
                f"normal liver {normal:.1f} Gy exceeds {cap:g} Gy for {sphere} spheres [{src}]"
            )
    tumour = doses.get("tumor_dose_gy")
    if sphere in ("glass", "resin") and tumour is not None:
        target = lim[f"tumour_target_{sphere}_gy"]
        if tumour < target:
            out.append(
                f"tumour dose {tumour:.1f} Gy is below the {target:g} Gy target for {sphere} "
                f"spheres [{src}]"
            )
    return out


def _order(activity: float, residual: float, decay_hours: float) -> tuple[float, float]:
    """Activity to order (vial residual) and to calibrate (decay to treatment time)."""
    if not 0.0 <= residual < 1.0:
        raise InputError(f"residual fraction must be in 0-1, got {residual}")
    order = activity / (1.0 - residual)
    return order, order / decay_factor(decay_hours)


def single_compartment(
    mass_kg: float, lsf: float, *, dose_gy: float | None = None,
    activity_gbq: float | None = None, cf: float | None = None, residual: float = 0.0,
    lung_mass_kg: float | None = None, sphere: str | None = None, decay_hours: float = 0.0,
    previous_lung_dose_gy: float = 0.0,
) -> SirtResult:  # fmt: skip
    """MIRD single compartment: D = CF A (1 - LSF) / M; lung D = CF A LSF / M_lung."""
    c = _cf(cf)
    m = _positive("mass", mass_kg, "kg")
    f = check_lsf(lsf)
    ml = _positive("lung mass", lung_mass_kg or constants()["constants"]["lung_mass_kg"], "kg")
    if (dose_gy is None) == (activity_gbq is None):
        raise InputError("give either a dose (--dose-gy) or an activity (--activity-gbq)")
    if dose_gy is not None:
        a = _positive("dose", dose_gy, "Gy") * m / (c * (1.0 - f))
    else:
        a = _positive("activity", activity_gbq, "GBq")  # type: ignore[arg-type]
    doses = {"dose_gy": c * a * (1.0 - f) / m, "lung_dose_gy": c * a * f / ml}
    order, calib = _order(a, residual, decay_hours)
    return SirtResult(
        model="single compartment (MIRD)",
        activity_gbq=a,
        cf_gy_kg_per_gbq=c,
        doses_gy=doses,
        inputs={"mass_kg": m, "lsf": f, "lung_mass_kg": ml, "residual": residual},
        order_activity_gbq=order,
        calibration_activity_gbq=calib,
        warnings=tuple(_checks(doses, f, sphere, previous_lung_dose_gy)),
    )


def partition(
    tumour_kg: float, normal_kg: float, tn: float, lsf: float, *,
    activity_gbq: float | None = None, normal_dose_gy: float | None = None,
    tumour_dose_gy: float | None = None, cf: float | None = None, residual: float = 0.0,
    lung_mass_kg: float | None = None, sphere: str | None = None, decay_hours: float = 0.0,
    previous_lung_dose_gy: float = 0.0,
) -> SirtResult:  # fmt: skip
    """Partition model: D_N = CF A (1 - LSF) / (T/N M_T + M_N), D_T = T/N D_N."""
    c = _cf(cf)
    mt = _positive("tumour mass", tumour_kg, "kg")
    mn = _positive("normal liver mass", normal_kg, "kg")
    r = _positive("tumour-to-normal ratio", tn, "(ratio)")
    f = check_lsf(lsf)
    ml = _positive("lung mass", lung_mass_kg or constants()["constants"]["lung_mass_kg"], "kg")
    given = [x is not None for x in (activity_gbq, normal_dose_gy, tumour_dose_gy)]
    if sum(given) != 1:
        raise InputError("give one of --activity-gbq, --normal-dose-gy or --tumor-dose-gy")
    denom = r * mt + mn
    if activity_gbq is not None:
        a = _positive("activity", activity_gbq, "GBq")
    elif normal_dose_gy is not None:
        a = _positive("normal dose", normal_dose_gy, "Gy") * denom / (c * (1.0 - f))
    else:
        a = _positive("tumour dose", tumour_dose_gy, "Gy") / r * denom / (c * (1.0 - f))  # type: ignore[operator]
    dn = c * a * (1.0 - f) / denom
    doses = {"normal_dose_gy": dn, "tumor_dose_gy": r * dn, "lung_dose_gy": c * a * f / ml}
    order, calib = _order(a, residual, decay_hours)
    return SirtResult(
        model="partition",
        activity_gbq=a,
        cf_gy_kg_per_gbq=c,
        doses_gy=doses,
        inputs={
            "tumor_kg": mt,
            "normal_kg": mn,
            "tn": r,
            "lsf": f,
            "lung_mass_kg": ml,
            "residual": residual,
        },
        order_activity_gbq=order,
        calibration_activity_gbq=calib,
        warnings=tuple(_checks(doses, f, sphere, previous_lung_dose_gy)),
    )


def bsa_m2(height_cm: float, weight_kg: float) -> float:
    """Body surface area, DuBois & DuBois (1916), as in the resin IFU: 0.20247 H^0.725 W^0.425."""
    h = _positive("height", height_cm, "cm") / 100.0
    w = _positive("weight", weight_kg, "kg")
    if not 1.0 <= h <= 2.5 or not 20 <= w <= 300:
        raise InputError(f"height {height_cm} cm or weight {weight_kg} kg is implausible")
    return 0.20247 * h**0.725 * w**0.425


def bsa_activity(
    height_cm: float, weight_kg: float, tumour_ml: float, normal_ml: float, lsf: float = 0.0,
    *, cf: float | None = None,
) -> SirtResult:  # fmt: skip
    """Resin BSA method: A = BSA - 0.2 + V_T / (V_T + V_N), reduced for the lung shunt."""
    c = _cf(cf)
    b = bsa_m2(height_cm, weight_kg)
    vt = _positive("tumour volume", tumour_ml, "mL")
    vn = _positive("normal liver volume", normal_ml, "mL")
    f = check_lsf(lsf)
    a0 = b - 0.2 + vt / (vt + vn)
    t = constants()["bsa_resin"]
    bounds, cuts = t["reduction_bounds"], t["reduction_fractions"]
    warnings = []
    if f > bounds[-1]:
        reduction = 1.0
        warnings.append(
            f"lung shunt {100 * f:.1f} % > 20 %: the resin IFU advises against treatment"
        )
    else:
        reduction = next((cuts[i] for i in range(len(cuts)) if f < bounds[i]), cuts[-1])
    a = a0 * (1.0 - reduction)
    return SirtResult(
        model="BSA (resin)",
        activity_gbq=a,
        cf_gy_kg_per_gbq=c,
        doses_gy={"lung_dose_gy": c * a * f / constants()["constants"]["lung_mass_kg"]},
        inputs={
            "height_cm": height_cm,
            "weight_kg": weight_kg,
            "tumor_ml": vt,
            "normal_ml": vn,
            "lsf": f,
        },
        warnings=tuple(warnings),
        extra={
            "bsa_m2": round(b, 5),
            "activity_before_shunt_reduction_gbq": round(a0, 5),
            "shunt_reduction_fraction": reduction,
            "source": t["source"],
        },
    )


def tace_dose(height_cm: float, weight_kg: float, mg_m2: float = 50.0) -> dict[str, Any]:
    """Doxorubicin for TACE by body surface area, and the drug-eluting bead volume."""
    t = constants()["tace"]
    lo, hi = t["doxorubicin_mg_m2"]
    if not lo <= mg_m2 <= hi:
        raise InputError(f"doxorubicin dose must be {lo:g}-{hi:g} mg/m2, got {mg_m2:g}")
    b = bsa_m2(height_cm, weight_kg)
    mg = b * mg_m2
    capped = min(mg, t["max_doxorubicin_mg"])
    return {
        "bsa_m2": round(b, 4),
        "doxorubicin_mg": round(capped, 1),
        "doxorubicin_uncapped_mg": round(mg, 1),
        "capped_at_max": mg > t["max_doxorubicin_mg"],
        "deb_volume_ml": round(capped / t["deb_loading_mg_per_ml"], 2),
        "sources": [t["source_dose"], t["source_beads"]],
    }


def mean_life_s() -> float:
    """Y-90 mean life (s): the cumulated activity of 1 MBq fully decayed is this many MBq s."""
    return constants()["constants"]["half_life_h"] * 3600.0 / math.log(2.0)
