"""Tissue property tables (``data/tissues.toml``) and their temperature dependence.

Every number in the data file is stored with its source; :func:`source_of`
returns it. Values are SI, with the unit in the key name.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from ioplan.errors import FileFormatError, InputError

__all__ = [
    "TissueProperties",
    "arrhenius_parameters",
    "blood_flow_parameters",
    "cem43_parameters",
    "constants",
    "dielectric_ji_brace_2450",
    "dielectric_water_2450",
    "gabriel_cole_cole",
    "gabriel_parameters",
    "label_property_map",
    "organ_tissues",
    "organ_zones",
    "phase_change",
    "rf_conductivity",
    "rf_desiccation_parameters",
    "source_of",
    "specific_heat_liver",
    "tissue",
    "tissue_names",
    "water_remaining",
]


@dataclass(frozen=True)
class TissueProperties:
    """Properties of one tissue at 37 °C (SI units).

    Attributes
    ----------
    density_kg_m3, specific_heat_j_kg_k, thermal_conductivity_w_m_k : float
        Thermal properties.
    perfusion_1_per_s : float
        Volumetric blood perfusion (m^3 blood per m^3 tissue per s). The Pennes
        term is ``rho_b * c_b * perfusion_1_per_s * (T_a - T)``.
    electrical_conductivity_480khz_s_m : float
        Conductivity at radiofrequency ablation frequencies.
    relative_permittivity_915mhz, conductivity_915mhz_s_m : float
        Dielectric properties at 915 MHz.
    relative_permittivity_2450mhz, conductivity_2450mhz_s_m : float
        Dielectric properties at 2450 MHz.
    """

    name: str
    description: str
    density_kg_m3: float
    specific_heat_j_kg_k: float
    thermal_conductivity_w_m_k: float
    perfusion_1_per_s: float
    electrical_conductivity_480khz_s_m: float
    relative_permittivity_915mhz: float
    conductivity_915mhz_s_m: float
    relative_permittivity_2450mhz: float
    conductivity_2450mhz_s_m: float

    @property
    def thermal_diffusivity_m2_s(self) -> float:
        """K / (rho c), m^2/s."""
        return self.thermal_conductivity_w_m_k / (self.density_kg_m3 * self.specific_heat_j_kg_k)


_NUMERIC_FIELDS = tuple(
    f.name for f in fields(TissueProperties) if f.name not in ("name", "description")
)
_NON_TISSUE_TABLES = (
    "constants",
    "temperature_dependence",
    "phase_change",
    "damage",
    "vaporisation",
    "blood_flow",
    "gabriel_1996",
)

#: Vacuum permittivity (F/m), CODATA 2018.
EPS0_F_M = 8.8541878128e-12
#: Order of the 14 Gabriel 1996 parameters, as in the report's Appendix C table.
GABRIEL_COLUMNS = (
    "ef",
    "del1",
    "tau1_ps",
    "alf1",
    "del2",
    "tau2_ns",
    "alf2",
    "sig_s_m",
    "del3",
    "tau3_us",
    "alf3",
    "del4",
    "tau4_ms",
    "alf4",
)


@cache
def _raw() -> dict[str, Any]:
    text = resources.files("ioplan.tissue").joinpath("data/tissues.toml").read_text()
    data = tomllib.loads(text)
    _check_sources(data, "")
    return data


def _check_sources(node: Any, path: str) -> None:
    """Every numeric entry must be ``{value, source}`` with a non-empty source."""
    if isinstance(node, dict):
        if "value" in node:
            if set(node) != {"value", "source"} or not str(node["source"]).strip():
                raise FileFormatError(f"tissues.toml: {path} must be {{value, source}}")
            return
        for k, v in node.items():
            _check_sources(v, f"{path}.{k}" if path else k)
    elif isinstance(node, int | float) and path != "schema_version":
        raise FileFormatError(f"tissues.toml: {path} has a value without a source")


def _value(table: dict[str, Any], key: str, where: str) -> float:
    try:
        return float(table[key]["value"])
    except KeyError:
        raise FileFormatError(f"tissues.toml: {where} lacks {key}") from None


def tissue_names() -> tuple[str, ...]:
    """Names of the tissues in the table."""
    return tuple(k for k in _raw() if k not in _NON_TISSUE_TABLES and k != "schema_version")


@cache
def tissue(name: str) -> TissueProperties:
    """Properties of tissue ``name`` (``"liver"``, ``"tumor"``, ``"blood"``, ...)."""
    raw = _raw()
    if name not in tissue_names():
        raise InputError(f"unknown tissue {name!r}; known: {', '.join(tissue_names())}")
    t = raw[name]
    return TissueProperties(
        name=name,
        description=str(t.get("description", "")),
        **{f: _value(t, f, name) for f in _NUMERIC_FIELDS},
    )


def source_of(path: str) -> str:
    """The source of a value, for example ``source_of("liver.density_kg_m3")``."""
    node: Any = _raw()
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise InputError(f"no value {path!r} in the tissue table")
        node = node[part]
    if not isinstance(node, dict) or "source" not in node:
        raise InputError(f"{path!r} is a table, not a value")
    return str(node["source"])


def _table(path: str) -> dict[str, float]:
    node: Any = _raw()
    for part in path.split("."):
        node = node[part]
    return {k: float(v["value"]) for k, v in node.items()}


def vaporisation() -> dict[str, float]:
    """Water vaporisation constants of tissue (SI; each with its source in tissues.toml)."""
    return _table("vaporisation")


def constants() -> dict[str, float]:
    """Blood, body and ex vivo start temperatures (°C) and the gas constant (J/mol/K)."""
    return _table("constants")


def phase_change() -> dict[str, float]:
    """Freezing model: solidus and liquidus (°C), latent heat, frozen and mushy properties."""
    return _table("phase_change")


def arrhenius_parameters() -> dict[str, float]:
    """Arrhenius damage parameters for liver: A (1/s), Ea (J/mol), R, necrosis Omega."""
    return _table("damage.arrhenius_liver")


def cem43_parameters() -> dict[str, float]:
    """Sapareto-Dewey thermal dose parameters."""
    return _table("damage.cem43")


def blood_flow_parameters() -> dict[str, float]:
    """Blood viscosity and the Nusselt correlations used for vessel wall heat transfer."""
    return _table("blood_flow")


def rf_desiccation_parameters() -> dict[str, float]:
    """Where and how much RF conductivity falls as tissue water boils off."""
    return _table("temperature_dependence.rf_desiccation")


def dielectric_ji_brace_2450(temperature_c: Any) -> tuple[np.ndarray, np.ndarray]:
    """Relative permittivity and conductivity (S/m) of liver at 2450 MHz versus temperature.

    ``eps_r(T) = a (1 - 1/(1 + exp(b - c T))) + 1`` and
    ``sigma(T) = a' (1 - 1/(1 + exp(b' - c' T)))``, T in °C.

    References
    ----------
    Ji Z, Brace CL. Expanded modeling of temperature-dependent dielectric
    properties for microwave thermal ablation. Phys Med Biol 2011;56:5249.
    DOI 10.1088/0031-9155/56/16/011
    """
    p = _table("temperature_dependence.ji_brace_2450mhz")
    t = np.asarray(temperature_c, dtype=float)
    eps = p["a_eps"] * (1.0 - 1.0 / (1.0 + np.exp(p["b_eps"] - p["c_eps"] * t))) + 1.0
    sig = p["a_sig"] * (1.0 - 1.0 / (1.0 + np.exp(p["b_sig"] - p["c_sig"] * t)))
    return eps, sig


#: Parenchyma and tumour tissue keys per organ (issue 21). Bone: the vertebral body is mostly
#: cancellous bone; ribs and the cortical shell are ``"bone"`` (cortical).
_ORGAN_TISSUES = {
    "liver": ("liver", "tumor"),
    "lung": ("lung", "lung_tumor"),
    "kidney": ("kidney", "renal_tumor"),
    "bone": ("bone_cancellous", "bone_tumor"),
}


def organ_tissues(organ: str) -> dict[str, str]:
    """Tissue keys for an organ: ``{"parenchyma": ..., "tumor": ...}``.

    Examples
    --------
    >>> organ_tissues("lung")
    {'parenchyma': 'lung', 'tumor': 'lung_tumor'}
    """
    key = organ.strip().lower()
    if key not in _ORGAN_TISSUES:
        raise InputError(f"unknown organ {organ!r}; known: {', '.join(_ORGAN_TISSUES)}")
    parenchyma, tumor = _ORGAN_TISSUES[key]
    return {"parenchyma": parenchyma, "tumor": tumor}


_ZONE_NUMERIC = (
    "frequency_mhz",
    "power_w",
    "duration_s",
    "n",
    "length_mm",
    "width_mm",
    "area_cm2",
)


@cache
def organ_zones() -> tuple[dict[str, Any], ...]:
    """Published lung, kidney and liver ablation zones (``data/organ_zones.csv``), one per row.

    Numeric columns (``power_w``, ``duration_s``, ``length_mm``, ``width_mm``, ``area_cm2``, ...)
    are floats, or ``None`` where the source does not report them. ``state`` is ``"ex_vivo"`` or
    ``"in_vivo"``; every row has its ``source``.
    """
    import csv

    text = resources.files("ioplan.tissue").joinpath("data/organ_zones.csv").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    rows = []
    for raw in csv.DictReader(lines):
        row: dict[str, Any] = dict(raw)
        for key in _ZONE_NUMERIC:
            row[key] = float(raw[key]) if raw[key].strip() else None
        if row["state"] not in ("ex_vivo", "in_vivo") or not row["source"].strip():
            raise FileFormatError(f"organ_zones.csv: bad row {raw}")
        rows.append(row)
    return tuple(rows)


def gabriel_parameters(name: str) -> tuple[float, ...]:
    """The 14 Gabriel 1996 Cole-Cole parameters of ``name`` (``[gabriel_1996]`` in the table).

    Order: :data:`GABRIEL_COLUMNS` (eps_inf, then (delta, tau, alpha) of the first two
    dispersions, the ionic conductivity in S/m, then the last two dispersions; tau in ps, ns,
    us and ms). Keys are ``lung_inflated``, ``lung_deflated``, ``kidney``, ``muscle``, ...
    """
    table = _raw()["gabriel_1996"]
    if name not in table:
        raise InputError(f"no Gabriel 1996 parameters for {name!r}; known: {', '.join(table)}")
    values = tuple(float(v) for v in table[name]["value"])
    if len(values) != len(GABRIEL_COLUMNS):
        raise FileFormatError(f"tissues.toml: gabriel_1996.{name} needs 14 values")
    return values


def gabriel_cole_cole(params: Any, f_hz: Any) -> tuple[np.ndarray, np.ndarray]:
    """Relative permittivity and conductivity (S/m) from Gabriel's 4-term Cole-Cole model.

    ``eps*(w) = eps_inf + sum_n delta_n / (1 + (j w tau_n)^(1 - alpha_n)) + sigma_i / (j w eps0)``,
    ``eps_r = Re(eps*)`` and ``sigma = -Im(eps*) w eps0``.

    Parameters
    ----------
    params : sequence of 14 floats
        In the order of :data:`GABRIEL_COLUMNS` (the Appendix C table), e.g.
        :func:`gabriel_parameters`.
    f_hz : array_like
        Frequency (Hz), > 0.

    Returns
    -------
    eps_r, sigma_s_m : ndarray
        Shape of ``f_hz``.

    References
    ----------
    Gabriel S, Lau RW, Gabriel C. The dielectric properties of biological tissues: III.
    Parametric models for the dielectric spectrum of tissues. Phys Med Biol 1996;41:2271.
    DOI 10.1088/0031-9155/41/11/003

    Examples
    --------
    >>> eps, sig = gabriel_cole_cole(gabriel_parameters("kidney"), 480e3)
    >>> round(float(sig), 3)  # Go-Smart constants-kidney.xml: 0.226 S/m at 480 kHz
    0.226
    """
    p = [float(v) for v in params]
    if len(p) != len(GABRIEL_COLUMNS):
        raise InputError(f"Gabriel parameters need 14 values, got {len(p)}")
    f = np.asarray(f_hz, dtype=float)
    if np.any(f <= 0):
        raise InputError("frequency must be > 0 Hz")
    w = 2.0 * np.pi * f
    ef, sig = p[0], p[7]
    eps = ef + sig / (1j * w * EPS0_F_M)
    for delta, tau_s, alpha in (
        (p[1], p[2] * 1e-12, p[3]),
        (p[4], p[5] * 1e-9, p[6]),
        (p[8], p[9] * 1e-6, p[10]),
        (p[11], p[12] * 1e-3, p[13]),
    ):
        eps = eps + delta / (1.0 + (1j * w * tau_s) ** (1.0 - alpha))
    return np.real(eps), -np.imag(eps) * w * EPS0_F_M


def water_remaining(max_temperature_c: Any) -> np.ndarray:
    """Fraction of the tissue's water left (1 wet, 0 dry) from the highest temperature reached.

    The enthalpy model boils the tissue's water off over the latent-heat window
    ``[vaporisation] start_c..end_c`` (99-100 degC, Yang et al. 2007), its latent heat spread
    evenly over it: a voxel that has reached ``T`` has lost ``(T - start) / (end - start)`` of
    its water. Taken at the maximum temperature, the loss is irreversible (dried tissue stays
    dry when it cools).

    Examples
    --------
    >>> [float(w) for w in water_remaining([37.0, 99.5, 105.0])]
    [1.0, 0.5, 0.0]
    """
    v = vaporisation()
    t = np.asarray(max_temperature_c, dtype=float)
    return 1.0 - np.clip((t - v["start_c"]) / (v["end_c"] - v["start_c"]), 0.0, 1.0)


def dielectric_water_2450(temperature_c: Any, water: Any) -> tuple[np.ndarray, np.ndarray]:
    """Relative permittivity and conductivity (S/m) at 2450 MHz versus temperature and water.

    ``eps(T, W) = W eps_JB(T) + (1 - W) min(eps_dry, eps_JB(T))`` and the same for sigma:
    Ji & Brace's curve (:func:`dielectric_ji_brace_2450`) for tissue with its water
    (``W = 1``), mixed linearly with dried tissue's values as the water boils off (Schepps &
    Foster 1980: at microwave frequencies the properties follow the water content nearly
    linearly). Monotone non-decreasing in ``W``. Constants and sources:
    ``temperature_dependence.water_content_2450mhz`` in ``tissues.toml``.

    Parameters
    ----------
    temperature_c : array_like
        Temperature (degC).
    water : array_like
        Fraction of the water left, in [0, 1] (:func:`water_remaining`).

    Returns
    -------
    eps_r, sigma_s_m : ndarray
        Broadcast shape of the inputs.

    References
    ----------
    Schepps JL, Foster KR. The UHF and microwave dielectric properties of normal and tumour
    tissues: variation in dielectric properties with tissue water content. Phys Med Biol
    1980;25:1149. DOI 10.1088/0031-9155/25/6/012

    Examples
    --------
    >>> e, s = dielectric_water_2450(37.0, 1.0)
    >>> bool(np.allclose((e, s), dielectric_ji_brace_2450(37.0)))
    True
    >>> [round(float(x), 3) for x in dielectric_water_2450(100.0, 0.0)]
    [5.28, 0.105]
    """
    p = _table("temperature_dependence.water_content_2450mhz")
    w = np.clip(np.asarray(water, dtype=float), 0.0, 1.0)
    eps, sig = dielectric_ji_brace_2450(temperature_c)
    eps_d = np.minimum(p["eps_dry"], eps)
    sig_d = np.minimum(p["sigma_dry_s_m"], sig)
    return w * eps + (1.0 - w) * eps_d, w * sig + (1.0 - w) * sig_d


def rf_conductivity(sigma_ref_s_m: Any, temperature_c: Any) -> np.ndarray:
    """Electrical conductivity at RF versus temperature: linear rise per °C above 37 °C.

    Valid below the vaporisation roll-off near 100 °C (the engine handles that).
    """
    p = _table("temperature_dependence.rf_conductivity")
    t = np.asarray(temperature_c, dtype=float)
    return np.asarray(sigma_ref_s_m, float) * (
        1.0 + p["coefficient_per_k"] * (t - p["reference_temperature_c"])
    )


def specific_heat_liver(temperature_c: Any) -> np.ndarray:
    """Specific heat of liver (J/kg/K) versus temperature (Haemmerich et al. 2006).

    Linear between the two measured points, constant outside them.
    """
    p = _table("temperature_dependence.specific_heat_liver")
    t = np.asarray(temperature_c, dtype=float)
    return np.interp(t, [p["t1_c"], p["t2_c"]], [p["c1_j_kg_k"], p["c2_j_kg_k"]])


def label_property_map(labels: np.ndarray, prop: str, *, background: float = np.nan) -> np.ndarray:
    """Per-voxel values of a tissue property for a label map (via ``LABEL_INFO[label].tissue``).

    Parameters
    ----------
    labels : ndarray of int
        ioplan :class:`~ioplan.anatomy.Label` values.
    prop : str
        A :class:`TissueProperties` field, e.g. ``"thermal_conductivity_w_m_k"``.
    background : float
        Value for labels with no tissue (air outside the body).
    """
    from ioplan.anatomy import LABEL_INFO

    if prop not in _NUMERIC_FIELDS:
        raise InputError(f"unknown tissue property {prop!r}; known: {', '.join(_NUMERIC_FIELDS)}")
    lut = np.full(256, background, dtype=float)
    for lbl, info in LABEL_INFO.items():
        if info.tissue in tissue_names():
            lut[int(lbl)] = getattr(tissue(info.tissue), prop)
    arr = np.asarray(labels)
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise InputError(f"label values must be 0-255, got {arr.min()}..{arr.max()}")
    return lut[arr]
