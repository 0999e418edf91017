"""Y-90 activity planning: lung shunt, MIRD single compartment, partition, BSA; TACE dosing.

Formulas: shared/validation/README.md section 7. Constants, limits and their sources:
``embolization/data/y90.toml``. Every result carries the dose constant used and the
limits it was checked against, as warnings with their source. Allowed input ranges:
:data:`ioplan.embolization.RANGES`.

References
----------
.. [EANM] Weber M, Lam M, Chiesa C, et al. EANM procedure guideline for the treatment of
   liver cancer and liver metastases with intra-arterial radioactive compounds. Eur J
   Nucl Med Mol Imaging 2022;49:1682-1699. doi:10.1007/s00259-021-05600-z
.. [Ho] Ho S, Lau WY, Leung TWT, et al. Partition model for estimating radiation doses
   from yttrium-90 microspheres in treating hepatic tumours. Eur J Nucl Med
   1996;23(8):947-952.
.. [Kao] Kao YH, Magsombol BM, Toh Y, et al. Personalized predictive lung dosimetry by
   technetium-99m macroaggregated albumin SPECT/CT for yttrium-90 radioembolization.
   EJNMMI Res 2014;4:33. doi:10.1186/s13550-014-0033-7
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from ioplan.embolization._checks import Sphere, check_lsf, check_range, check_sphere
from ioplan.errors import InputError

__all__ = [
    "SirtResult",
    "bsa_activity",
    "bsa_m2",
    "constants",
    "decay_factor",
    "limit_warnings",
    "lsf_from_counts",
    "lung_mass_kg_from_ct",
    "lung_shunt_fraction",
    "lung_shunt_fraction_planar",
    "partition",
    "single_compartment",
    "tace_dose",
    "tn_from_inputs",
    "tn_ratio",
]


@lru_cache(maxsize=1)
def constants() -> dict[str, Any]:
    """The Y-90 table (constants, limits, sources) of ``embolization/data/y90.toml``."""
    text = resources.files("ioplan.embolization").joinpath("data/y90.toml").read_text()
    return tomllib.loads(text)


def _cf(cf: float | None) -> float:
    c = constants()["dose_constant"]
    v = c["default"] if cf is None else float(cf)
    if not any(abs(v - x) < 1e-9 for x in c["choices"]):
        choices = ", ".join(f"{x:g}" for x in c["choices"])
        raise InputError(f"dose constant (--cf) must be one of {choices} Gy kg/GBq, got {v:g}")
    return v


def _lung_mass(lung_mass_kg: float | None) -> float:
    """The given lung mass (checked), or the 1 kg convention when none is given."""
    if lung_mass_kg is None:
        return float(constants()["constants"]["lung_mass_kg"])
    return check_range("lung_mass_kg", lung_mass_kg)


def _count(name: str, v: float) -> float:
    return check_range("counts", v, name)


def lung_shunt_fraction(lung_counts: float, liver_counts: float) -> float:
    """Lung shunt fraction from counts: LSF = C_lung / (C_lung + C_liver).

    Parameters
    ----------
    lung_counts, liver_counts : float
        Counts (>= 0) of Tc-99m MAA in the lungs and the liver: SPECT/CT counts, or the
        geometric means of conjugate planar views.

    Returns
    -------
    float
        The fraction in [0, 1].

    References
    ----------
    EANM 2022 (Weber et al.), doi:10.1007/s00259-021-05600-z.

    Examples
    --------
    Worked example S4 (shared/validation/README.md section 7):

    >>> round(100 * lung_shunt_fraction(40, 720), 3)
    5.263
    """
    lung = _count("lung counts (--lung-counts)", lung_counts)
    liver = _count("liver counts (--liver-counts)", liver_counts)
    if lung + liver <= 0:
        raise InputError(
            "no counts in the lungs or the liver: the lung shunt fraction is undefined"
        )
    return lung / (lung + liver)


def lung_shunt_fraction_planar(
    lung_anterior: float, lung_posterior: float, liver_anterior: float, liver_posterior: float
) -> float:
    """Lung shunt fraction from planar MAA views (conjugate views, geometric means).

    Parameters
    ----------
    lung_anterior, lung_posterior, liver_anterior, liver_posterior : float
        Counts (>= 0) of the anterior and posterior views of the lungs and the liver.

    Returns
    -------
    float
        ``sqrt(La Lp) / (sqrt(La Lp) + sqrt(Va Vp))`` in [0, 1].

    References
    ----------
    EANM 2022 (Weber et al.), doi:10.1007/s00259-021-05600-z.

    Examples
    --------
    >>> round(100 * lung_shunt_fraction_planar(40, 40, 800, 648), 3)
    5.263
    """
    names = ("lung anterior", "lung posterior", "liver anterior", "liver posterior")
    la, lp, va, vp = (
        _count(f"planar {n} counts (--planar)", v)
        for n, v in zip(names, (lung_anterior, lung_posterior, liver_anterior, liver_posterior),
                        strict=True)
    )  # fmt: skip
    return lung_shunt_fraction(math.sqrt(la * lp), math.sqrt(va * vp))


def lsf_from_counts(
    *, lung_counts: float | None = None, liver_counts: float | None = None,
    planar: tuple[float, float, float, float] | None = None,
) -> float:  # fmt: skip
    """The lung shunt fraction from SPECT counts or from planar views, never both.

    Parameters
    ----------
    lung_counts, liver_counts : float, optional
        SPECT/CT counts (both or neither).
    planar : tuple of 4 float, optional
        Planar counts ``(lung_ant, lung_post, liver_ant, liver_post)``.

    Examples
    --------
    >>> round(lsf_from_counts(lung_counts=40, liver_counts=720), 5)
    0.05263
    >>> lsf_from_counts(lung_counts=40, liver_counts=720, planar=(40, 40, 800, 648))
    Traceback (most recent call last):
    ...
    ioplan.errors.InputError: give SPECT counts (--lung-counts, --liver-counts) or planar ...
    """
    spect = lung_counts is not None or liver_counts is not None
    if spect and planar is not None:
        raise InputError(
            "give SPECT counts (--lung-counts, --liver-counts) or planar views (--planar), not both"
        )
    if planar is not None:
        if len(planar) != 4:
            raise InputError(
                "--planar needs four numbers lung_ant,lung_post,liver_ant,liver_post, "
                f"got {len(planar)}"
            )
        return lung_shunt_fraction_planar(*planar)
    if lung_counts is None or liver_counts is None:
        raise InputError("give --lung-counts and --liver-counts, or --planar")
    return lung_shunt_fraction(lung_counts, liver_counts)


def tn_ratio(tumour_counts: float, tumour_ml: float, normal_counts: float,
             normal_ml: float) -> float:  # fmt: skip
    """Tumour-to-normal ratio from MAA counts: (C_T / V_T) / (C_N / V_N).

    Parameters
    ----------
    tumour_counts, normal_counts : float
        MAA counts (>= 0) in the tumour and the normal perfused liver.
    tumour_ml, normal_ml : float
        Their volumes (mL; masses in kg give the same ratio at equal densities).

    References
    ----------
    Ho et al. 1996, Eur J Nucl Med 23(8):947-952 (the partition model).

    Examples
    --------
    >>> tn_ratio(600, 150, 1350, 1350)
    4.0
    """
    ct = _count("tumour counts (--tumor-counts)", tumour_counts)
    cn = _count("normal liver counts (--normal-counts)", normal_counts)
    for name, v in (("tumour volume", tumour_ml), ("normal liver volume", normal_ml)):
        if v is None or not np.isfinite(v) or v <= 0:
            raise InputError(f"{name} must be > 0, got {v}")
    if cn <= 0:
        raise InputError("no counts in the normal liver (--normal-counts 0): T/N is undefined")
    return (ct / tumour_ml) / (cn / normal_ml)


def tn_from_inputs(
    tn: float | None, tumour_counts: float | None, normal_counts: float | None,
    tumour_kg: float, normal_kg: float,
) -> float:  # fmt: skip
    """The T/N ratio given, or the one of MAA counts per kg; never both, never half of counts.

    Examples
    --------
    >>> round(tn_from_inputs(None, 600, 1350, 0.15, 1.35), 9)
    4.0
    >>> tn_from_inputs(4.0, 600, 1350, 0.15, 1.35)
    Traceback (most recent call last):
    ...
    ioplan.errors.InputError: give --tn or MAA counts (--tumor-counts, --normal-counts), not both
    """
    counts = (tumour_counts, normal_counts)
    if tn is not None:
        if any(c is not None for c in counts):
            raise InputError("give --tn or MAA counts (--tumor-counts, --normal-counts), not both")
        return check_range("tn", tn)
    if any(c is None for c in counts):
        raise InputError("give --tn, or both --tumor-counts and --normal-counts")
    mt = check_range("tumor_kg", tumour_kg)
    mn = check_range("normal_kg", normal_kg)
    return check_range("tn", tn_ratio(tumour_counts, mt, normal_counts, mn),  # type: ignore[arg-type]
                       "tumour-to-normal ratio from the counts")  # fmt: skip


def lung_mass_kg_from_ct(hu: np.ndarray, lung_mask: np.ndarray, voxel_ml: float) -> float:
    """Lung mass (kg) from CT: density (HU + 1000) / 1000 g/mL summed over the mask.

    Parameters
    ----------
    hu : numpy.ndarray
        CT in Hounsfield units, any shape.
    lung_mask : numpy.ndarray
        Lung voxels (same shape).
    voxel_ml : float
        Voxel volume (mL).

    References
    ----------
    Kao et al., EJNMMI Res 2014;4:33, doi:10.1186/s13550-014-0033-7.

    Examples
    --------
    >>> lung_mass_kg_from_ct(np.full(1000, -700.0), np.ones(1000, bool), 1.0)
    0.3
    """
    m = np.asarray(lung_mask, bool)
    if not m.any():
        raise InputError("the lung mask is empty")
    dens = np.clip((np.asarray(hu, float)[m] + 1000.0) / 1000.0, 0.0, None)
    return round(float(dens.sum() * voxel_ml / 1000.0), 12)


def decay_factor(hours: float) -> float:
    """Fraction of Y-90 activity left after ``hours`` (h; half-life 64.1 h, ICRP 107).

    Examples
    --------
    >>> decay_factor(64.1)
    0.5
    """
    h = check_range("decay_hours", hours)
    return 0.5 ** (h / constants()["constants"]["half_life_h"])


@dataclass(frozen=True)
class SirtResult:
    """One activity calculation (JSON: :meth:`to_dict`); activities GBq, doses Gy."""

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


def limit_warnings(doses: dict[str, float], lsf: float, sphere: str | Sphere | None,
                   previous_lung_gy: float = 0.0,
                   activity_gbq: float | None = None) -> list[str]:  # fmt: skip
    """Warnings, with their source, for doses beyond the EANM 2022 limits.

    EANM 2022 Tables 2 and 3; and an activity (computed for a dose) beyond the largest
    single vial.
    """
    lim = constants()["limits"]
    kind = None if sphere is None else check_sphere(sphere).value
    src = "EANM 2022 (Weber et al.)"
    out = []
    if activity_gbq is not None and activity_gbq > lim["largest_vial_gbq"]:
        out.append(
            f"activity {activity_gbq:.1f} GBq is beyond the largest single vial "
            f"({lim['largest_vial_gbq']:g} GBq): no single treatment delivers this dose "
            "[TheraSphere and SIR-Spheres instructions for use]"
        )
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
    if kind is not None and normal is not None:
        cap = lim[f"normal_liver_{kind}_gy"]
        if normal > cap:
            out.append(
                f"normal liver {normal:.1f} Gy exceeds {cap:g} Gy for {kind} spheres [{src}]"
            )
    elif normal is not None:  # no sphere given: against both limits, never silent
        glass, resin = lim["normal_liver_glass_gy"], lim["normal_liver_resin_gy"]
        if normal > glass:
            out.append(f"normal liver {normal:.1f} Gy exceeds the limits of both sphere kinds "
                       f"(glass {glass:g} Gy, resin {resin:g} Gy) [{src}]")  # fmt: skip
        elif normal > resin:
            out.append(f"normal liver {normal:.1f} Gy exceeds resin spheres' {resin:g} Gy "
                       f"(glass: {glass:g} Gy); --sphere checks one kind [{src}]")  # fmt: skip
    tumour = doses.get("tumor_dose_gy")
    if kind is not None and tumour is not None:
        target = lim[f"tumour_target_{kind}_gy"]
        if tumour < target:
            out.append(
                f"tumour dose {tumour:.1f} Gy is below the {target:g} Gy target for {kind} "
                f"spheres [{src}]"
            )
    return out


def _order(activity: float, residual: float, decay_hours: float) -> tuple[float, float]:
    """Activity to order (vial residual) and to calibrate (decay to treatment time)."""
    order = activity / (1.0 - residual)
    return order, order / decay_factor(decay_hours)


def _vial_warnings(activity: float, calibration: float, decay_hours: float) -> list[str]:
    """A calibration activity no vial holds: the decay to treatment is too long for it.

    Only when the treatment activity itself fits a vial (else :func:`limit_warnings` says
    so already).
    """
    vial = constants()["limits"]["largest_vial_gbq"]
    if activity > vial or calibration <= vial:
        return []
    return [
        f"the vial must hold {calibration:.1f} GBq at calibration to give {activity:.2f} GBq "
        f"after {decay_hours:g} h of decay, beyond the largest vial ({vial:g} GBq): treat "
        "closer to the calibration time [TheraSphere and SIR-Spheres instructions for use]"
    ]


def single_compartment(
    mass_kg: float, lsf: float, *, dose_gy: float | None = None,
    activity_gbq: float | None = None, cf: float | None = None, residual: float = 0.0,
    lung_mass_kg: float | None = None, sphere: str | Sphere | None = None,
    decay_hours: float = 0.0, previous_lung_dose_gy: float = 0.0,
) -> SirtResult:  # fmt: skip
    """MIRD single compartment: the activity for a mean dose, or the dose of an activity.

    ``D = CF A (1 - LSF) / M`` in the perfused liver and ``D_lung = CF A LSF / M_lung``.
    The activity to order is ``A / (1 - residual)``; the activity at calibration is that
    divided by the decay factor ``2^(-t / 64.1 h)``.

    Parameters
    ----------
    mass_kg : float
        Perfused liver mass (kg), > 0 and <= 5.
    lsf : float
        Lung shunt fraction, in [0, 1).
    dose_gy, activity_gbq : float, optional
        Exactly one: the wanted mean dose (Gy, > 0 and <= 1000) or the activity
        delivered (GBq, > 0 and <= 20).
    cf : float, optional
        Dose constant (Gy kg/GBq): 49.67 (EANM, default), 50 or 49.38.
    residual : float
        Fraction of the activity left in the vial and lines, in [0, 1).
    lung_mass_kg : float, optional
        Lung mass (kg, 0.1-3); the 1 kg convention when not given.
    sphere : {"glass", "resin"}, optional
        Check the dose limits of that sphere type.
    decay_hours : float
        Hours (0-720) from the vial's calibration to the treatment.
    previous_lung_dose_gy : float
        Lung dose (Gy) of earlier treatments, for the cumulative limit.

    Returns
    -------
    SirtResult
        ``activity_gbq``, ``doses_gy`` (``dose_gy``, ``lung_dose_gy``),
        ``order_activity_gbq``, ``calibration_activity_gbq`` and the warnings.

    References
    ----------
    EANM 2022 (Weber et al.), doi:10.1007/s00259-021-05600-z, with the dose constants of
    ``embolization/data/y90.toml``.

    Examples
    --------
    Worked example S1 (1000 mL at 1.03 g/mL, 100 Gy, LSF 0.10, 10 % vial residual):

    >>> r = single_compartment(1.03, 0.10, dose_gy=100.0, residual=0.10)
    >>> round(r.activity_gbq, 4), round(r.doses_gy["lung_dose_gy"], 2)
    (2.3041, 11.44)
    >>> round(r.order_activity_gbq, 4)
    2.5601
    """
    c = _cf(cf)
    m = check_range("mass_kg", mass_kg)
    f = check_lsf(lsf)
    ml = _lung_mass(lung_mass_kg)
    res = check_range("residual", residual)
    check_range("decay_hours", decay_hours)
    prev = check_range("previous_lung_dose_gy", previous_lung_dose_gy)
    sph = check_sphere(sphere)
    if (dose_gy is None) == (activity_gbq is None):
        raise InputError("give either a dose (--dose-gy) or an activity (--activity-gbq)")
    if dose_gy is not None:
        a = check_range("dose_gy", dose_gy) * m / (c * (1.0 - f))
    else:
        a = check_range("activity_gbq", activity_gbq)
    doses = {"dose_gy": c * a * (1.0 - f) / m, "lung_dose_gy": c * a * f / ml}
    order, calib = _order(a, res, decay_hours)
    return SirtResult(
        model="single compartment (MIRD)",
        activity_gbq=a,
        cf_gy_kg_per_gbq=c,
        doses_gy=doses,
        inputs={"mass_kg": m, "lsf": f, "lung_mass_kg": ml, "residual": res,
                "decay_hours": float(decay_hours), "sphere": None if sph is None else sph.value,
                "previous_lung_dose_gy": prev},
        order_activity_gbq=order,
        calibration_activity_gbq=calib,
        warnings=tuple(limit_warnings(doses, f, sph, prev, activity_gbq=a)
                       + _vial_warnings(a, calib, decay_hours)),
    )


def partition(
    tumour_kg: float, normal_kg: float, tn: float, lsf: float, *,
    activity_gbq: float | None = None, normal_dose_gy: float | None = None,
    tumour_dose_gy: float | None = None, cf: float | None = None, residual: float = 0.0,
    lung_mass_kg: float | None = None, sphere: str | Sphere | None = None,
    decay_hours: float = 0.0, previous_lung_dose_gy: float = 0.0,
) -> SirtResult:  # fmt: skip
    """Partition model: tumour, normal-liver and lung doses, or the activity for a target.

    ``D_N = CF A (1 - LSF) / (T/N M_T + M_N)``, ``D_T = T/N D_N`` and
    ``D_lung = CF A LSF / M_lung``.

    Parameters
    ----------
    tumour_kg, normal_kg : float
        Tumour and normal perfused liver masses (kg), each > 0 and <= 5.
    tn : float
        Tumour-to-normal uptake ratio (MAA), > 0 and <= 100.
    lsf : float
        Lung shunt fraction, in [0, 1).
    activity_gbq, normal_dose_gy, tumour_dose_gy : float, optional
        Exactly one: the activity (GBq, <= 20), or the normal-liver or tumour dose
        target (Gy, <= 1000).
    cf, residual, lung_mass_kg, sphere, decay_hours, previous_lung_dose_gy
        As in :func:`single_compartment`.

    Returns
    -------
    SirtResult
        ``doses_gy`` holds ``normal_dose_gy``, ``tumor_dose_gy``, ``lung_dose_gy``.

    References
    ----------
    Ho et al., Eur J Nucl Med 1996;23(8):947-952; EANM 2022 (Weber et al.),
    doi:10.1007/s00259-021-05600-z.

    Examples
    --------
    Worked example S2 (normal liver capped at 40 Gy):

    >>> r = partition(0.150, 1.350, 4.0, 0.05, normal_dose_gy=40.0)
    >>> round(r.activity_gbq, 4), round(r.doses_gy["tumor_dose_gy"], 1)
    (1.653, 160.0)
    """
    c = _cf(cf)
    mt = check_range("tumor_kg", tumour_kg)
    mn = check_range("normal_kg", normal_kg)
    r = check_range("tn", tn)
    f = check_lsf(lsf)
    ml = _lung_mass(lung_mass_kg)
    res = check_range("residual", residual)
    check_range("decay_hours", decay_hours)
    prev = check_range("previous_lung_dose_gy", previous_lung_dose_gy)
    sph = check_sphere(sphere)
    given = [x is not None for x in (activity_gbq, normal_dose_gy, tumour_dose_gy)]
    if sum(given) != 1:
        raise InputError("give one of --activity-gbq, --normal-dose-gy or --tumor-dose-gy")
    denom = r * mt + mn
    if activity_gbq is not None:
        a = check_range("activity_gbq", activity_gbq)
    elif normal_dose_gy is not None:
        a = check_range("normal_dose_gy", normal_dose_gy) * denom / (c * (1.0 - f))
    else:
        a = check_range("tumor_dose_gy", tumour_dose_gy) / r * denom / (c * (1.0 - f))
    dn = c * a * (1.0 - f) / denom
    doses = {"normal_dose_gy": dn, "tumor_dose_gy": r * dn, "lung_dose_gy": c * a * f / ml}
    order, calib = _order(a, res, decay_hours)
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
            "residual": res,
            "decay_hours": float(decay_hours),
            "sphere": None if sph is None else sph.value,
            "previous_lung_dose_gy": prev,
        },
        order_activity_gbq=order,
        calibration_activity_gbq=calib,
        warnings=tuple(limit_warnings(doses, f, sph, prev, activity_gbq=a)
                       + _vial_warnings(a, calib, decay_hours)),
    )


def bsa_m2(height_cm: float, weight_kg: float) -> float:
    """Body surface area (m2), DuBois & DuBois (1916): 0.20247 H(m)^0.725 W(kg)^0.425.

    Parameters
    ----------
    height_cm : float
        Height (cm), 100-250.
    weight_kg : float
        Weight (kg), 20-300.

    References
    ----------
    DuBois D, DuBois EF. A formula to estimate the approximate surface area if height and
    weight be known. Arch Intern Med 1916;17:863-871; as used in the SIR-Spheres
    Instructions for Use.

    Examples
    --------
    Worked example S3:

    >>> round(bsa_m2(175, 80), 3)
    1.956
    """
    h = check_range("height_cm", height_cm) / 100.0
    w = check_range("weight_kg", weight_kg)
    return 0.20247 * h**0.725 * w**0.425


def bsa_activity(
    height_cm: float, weight_kg: float, tumour_ml: float, normal_ml: float, lsf: float = 0.0,
    *, cf: float | None = None,
) -> SirtResult:  # fmt: skip
    """Resin BSA method: ``A = BSA - 0.2 + V_T / (V_T + V_N)`` (GBq), reduced for the shunt.

    The activity is reduced by 20 % for a lung shunt of 10-15 %, by 40 % for 15-20 %, and
    is 0 (do not treat) above 20 % (SIR-Spheres Instructions for Use).

    Parameters
    ----------
    height_cm, weight_kg : float
        Height (cm, 100-250) and weight (kg, 20-300).
    tumour_ml, normal_ml : float
        Tumour and normal liver volumes (mL), each > 0 and <= 5000.
    lsf : float
        Lung shunt fraction, in [0, 1).
    cf : float, optional
        Dose constant (Gy kg/GBq) for the lung dose at 1 kg.

    References
    ----------
    SIR-Spheres Y-90 resin microspheres Instructions for Use (Sirtex Medical); BSA of
    DuBois & DuBois, Arch Intern Med 1916;17:863-871.

    Examples
    --------
    Worked example S3:

    >>> round(bsa_activity(175.0, 80.0, 300.0, 1500.0).activity_gbq, 4)
    1.9227
    """
    c = _cf(cf)
    b = bsa_m2(height_cm, weight_kg)
    vt = check_range("tumor_ml", tumour_ml)
    vn = check_range("normal_ml", normal_ml)
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
            "height_cm": float(height_cm),
            "weight_kg": float(weight_kg),
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
    """Doxorubicin for TACE by body surface area (mg), and the drug-eluting bead volume (mL).

    Parameters
    ----------
    height_cm, weight_kg : float
        Height (cm, 100-250) and weight (kg, 20-300).
    mg_m2 : float
        Doxorubicin per body surface area (mg/m2), 50-75.

    Returns
    -------
    dict
        ``bsa_m2``, ``doxorubicin_mg`` (capped at 150 mg per procedure),
        ``doxorubicin_uncapped_mg``, ``capped_at_max``, ``deb_volume_ml`` (at 37.5 mg/mL
        of beads) and ``sources``.

    References
    ----------
    The sources of ``embolization/data/y90.toml`` [tace]: de Baere T et al., Cardiovasc
    Intervent Radiol 2016;39:334-343 (conventional TACE, 50-75 mg/m2); DC Bead
    Instructions for Use; Lammer J et al. (PRECISION V), Cardiovasc Intervent Radiol
    2010;33:41-52.

    Examples
    --------
    >>> tace_dose(175, 80, 50.0)["doxorubicin_mg"]
    97.8
    """
    t = constants()["tace"]
    lo, hi = t["doxorubicin_mg_m2"]
    try:
        dose = float(mg_m2)
    except (TypeError, ValueError):
        dose = math.nan
    if not lo <= dose <= hi:
        raise InputError(f"doxorubicin dose (--mg-m2) must be {lo:g}-{hi:g} mg/m2, got {mg_m2}")
    b = bsa_m2(height_cm, weight_kg)
    mg = b * dose
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
