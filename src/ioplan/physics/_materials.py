"""Material tables for the bioheat engine: one row per material, indexed by a uint8 id.

Tissue materials use the label value as their id (``Label.LIVER`` is material 7),
so a label map is already a material map. Extra materials (the far boundary,
probes, vessel classes with their wall heat transfer) take ids from
:data:`FIRST_EXTRA_ID` up.

Enthalpy per volume ``E`` (J/m^3) is measured from 37 °C:

* ``T >= T_l``: ``E = C (T - 37)``
* ``T_s <= T < T_l`` (mushy): ``E = E_l - (L + C_m (T_l - T))`` spread linearly
* ``T < T_s`` (frozen): ``E = E_s - C_f (T_s - T)``

with ``C = rho c`` unfrozen, ``C_m``/``C_f`` the mushy/frozen volumetric heat
capacities and ``L = rho * latent heat``. Latent heat is thus conserved exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ioplan.errors import InputError

__all__ = [
    "BOUNDARY_ID",
    "FIRST_EXTRA_ID",
    "T_REF_C",
    "MaterialTable",
    "blood_properties",
    "label_tissue_names",
    "tissue_dielectric",
    "tissue_material_table",
    "tissue_specific_heat",
]

#: Enthalpy reference temperature (°C): E = 0 at body temperature.
T_REF_C = 37.0
#: First material id not used by a :class:`~ioplan.anatomy.Label`.
FIRST_EXTRA_ID = 64
#: Material of the far boundary layer (fixed at body temperature, group 0).
BOUNDARY_ID = 255
_N = 256


@dataclass(frozen=True, eq=False)
class MaterialTable:
    """Thermal properties of up to 256 materials (arrays of length 256, SI units).

    Attributes
    ----------
    names : tuple of str
        Material names ("" for unused ids).
    k_w_m_k, k_frozen_w_m_k, k_mushy_w_m_k : ndarray
        Thermal conductivity unfrozen, frozen, mushy.
    c_vol_j_m3_k, c_vol_frozen_j_m3_k, c_vol_mushy_j_m3_k : ndarray
        Volumetric heat capacity ``rho c`` unfrozen, frozen, mushy (sensible part).
    latent_j_m3 : ndarray
        Latent heat of fusion per volume (``rho * L``).
    solidus_c, liquidus_c : ndarray
        Mushy zone limits.
    perfusion_w_m3_k : ndarray
        Pennes coefficient ``w_b rho_b c_b`` (W/m^3/K): perfusion rate (1/s) times
        blood ``rho c``.
    fixed_group : ndarray of int
        -1 for free voxels; otherwise the index into the group temperatures that
        holds the voxel's temperature (0: body temperature / blood).
    wall_h_w_m2_k : ndarray
        For fixed materials: wall heat-transfer coefficient to the neighbouring
        tissue (0: ideal contact through the tissue's conductivity).
    rf_sigma_s_m : ndarray
        Electrical conductivity at 480 kHz (37 °C).
    vapor_start_c, vapor_end_c, vapor_latent_j_m3 : ndarray
        Tissue water boils between these temperatures, absorbing this latent
        heat per volume (water fraction x latent heat of water x density).
    """

    names: tuple[str, ...]
    k_w_m_k: np.ndarray
    k_frozen_w_m_k: np.ndarray
    k_mushy_w_m_k: np.ndarray
    c_vol_j_m3_k: np.ndarray
    c_vol_frozen_j_m3_k: np.ndarray
    c_vol_mushy_j_m3_k: np.ndarray
    latent_j_m3: np.ndarray
    solidus_c: np.ndarray
    liquidus_c: np.ndarray
    perfusion_w_m3_k: np.ndarray
    fixed_group: np.ndarray
    wall_h_w_m2_k: np.ndarray
    rf_sigma_s_m: np.ndarray
    vapor_start_c: np.ndarray
    vapor_end_c: np.ndarray
    vapor_latent_j_m3: np.ndarray
    sources: dict[str, str] = field(default_factory=dict)
    label_tissues: tuple[tuple[int, str], ...] = ()

    def with_material(self, material_id: int, name: str, **values: float) -> MaterialTable:
        """A copy with row ``material_id`` set (unnamed columns copied from row 0 or given)."""
        if not 0 <= material_id < _N:
            raise InputError(f"material_id must be 0-255, got {material_id}")
        new: dict[str, Any] = {}
        for col in _COLUMNS:
            arr = getattr(self, col).copy()
            if col in values:
                arr[material_id] = values[col]
            new[col] = arr
        unknown = set(values) - set(_COLUMNS)
        if unknown:
            raise InputError(f"unknown material properties: {sorted(unknown)}")
        names = list(self.names)
        names[material_id] = name
        return replace(self, names=tuple(names), **new)

    def row(self, material_id: int) -> dict[str, float]:
        """All properties of one material."""
        return {col: float(getattr(self, col)[material_id]) for col in _COLUMNS}

    def enthalpy_breakpoints(self) -> tuple[np.ndarray, np.ndarray]:
        """``E_l`` and ``E_s``: enthalpy (J/m^3) at the liquidus and the solidus."""
        e_l = self.c_vol_j_m3_k * (self.liquidus_c - T_REF_C)
        e_s = e_l - self.latent_j_m3 - self.c_vol_mushy_j_m3_k * (self.liquidus_c - self.solidus_c)
        return e_l, e_s

    def vapor_breakpoints(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Enthalpy at the start and end of boiling, and the apparent heat capacity between."""
        e_v1 = self.c_vol_j_m3_k * (self.vapor_start_c - T_REF_C)
        width = np.maximum(self.vapor_end_c - self.vapor_start_c, 1e-6)
        c_app = self.vapor_latent_j_m3 / width + self.c_vol_j_m3_k
        e_v2 = e_v1 + c_app * width
        return e_v1, e_v2, c_app

    def enthalpy(self, material: np.ndarray, temperature_c: np.ndarray) -> np.ndarray:
        """Enthalpy per volume (J/m^3, from 37 °C) of ``material`` at ``temperature_c``."""
        m = np.asarray(material)
        t = np.asarray(temperature_c, dtype=float)
        e_l, e_s = self.enthalpy_breakpoints()
        c = self.c_vol_j_m3_k[m]
        tl, ts = self.liquidus_c[m], self.solidus_c[m]
        c_app = self.latent_j_m3[m] / (tl - ts) + self.c_vol_mushy_j_m3_k[m]
        e_v1, e_v2, c_v = self.vapor_breakpoints()
        tv1, tv2 = self.vapor_start_c[m], self.vapor_end_c[m]
        hot = np.where(
            t < tv1,
            c * (t - T_REF_C),
            np.where(t < tv2, e_v1[m] + c_v[m] * (t - tv1), e_v2[m] + c * (t - tv2)),
        )
        return np.where(
            t >= tl,
            hot,
            np.where(
                t >= ts, e_l[m] - c_app * (tl - t), e_s[m] - self.c_vol_frozen_j_m3_k[m] * (ts - t)
            ),
        )

    def temperature(self, material: np.ndarray, enthalpy_j_m3: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`enthalpy`."""
        m = np.asarray(material)
        e = np.asarray(enthalpy_j_m3, dtype=float)
        e_l, e_s = self.enthalpy_breakpoints()
        tl, ts = self.liquidus_c[m], self.solidus_c[m]
        c_app = self.latent_j_m3[m] / (tl - ts) + self.c_vol_mushy_j_m3_k[m]
        e_v1, e_v2, c_v = self.vapor_breakpoints()
        c = self.c_vol_j_m3_k[m]
        hot = np.where(
            e < e_v1[m],
            T_REF_C + e / c,
            np.where(
                e < e_v2[m],
                self.vapor_start_c[m] + (e - e_v1[m]) / c_v[m],
                self.vapor_end_c[m] + (e - e_v2[m]) / c,
            ),
        )
        return np.where(
            e >= e_l[m],
            hot,
            np.where(
                e >= e_s[m],
                tl - (e_l[m] - e) / c_app,
                ts - (e_s[m] - e) / self.c_vol_frozen_j_m3_k[m],
            ),
        )


_COLUMNS = (
    "k_w_m_k",
    "k_frozen_w_m_k",
    "k_mushy_w_m_k",
    "c_vol_j_m3_k",
    "c_vol_frozen_j_m3_k",
    "c_vol_mushy_j_m3_k",
    "latent_j_m3",
    "solidus_c",
    "liquidus_c",
    "perfusion_w_m3_k",
    "fixed_group",
    "wall_h_w_m2_k",
    "rf_sigma_s_m",
    "vapor_start_c",
    "vapor_end_c",
    "vapor_latent_j_m3",
)


def _vaporisation() -> dict[str, float]:
    from ioplan.tissue import vaporisation

    return vaporisation()


def blood_properties() -> dict[str, float]:
    """Blood density (kg/m^3), specific heat (J/kg/K) and temperature (°C) from the tissue table."""
    from ioplan.tissue import constants, tissue

    b = tissue("blood")
    return {
        "rho_kg_m3": b.density_kg_m3,
        "c_j_kg_k": b.specific_heat_j_kg_k,
        "k_w_m_k": b.thermal_conductivity_w_m_k,
        "temperature_c": constants()["blood_temperature_c"],
    }


def tissue_material_table(
    *,
    perfusion_scale: float = 1.0,
    perfusion_override_1_per_s: dict[str, float] | None = None,
    label_tissues: dict[int, str] | None = None,
) -> MaterialTable:
    """The material table of every label (id = label value), from :mod:`ioplan.tissue`.

    Frozen and mushy properties and latent heat come from the cryo table
    (``[phase_change]``, measured for liver) and are applied to every tissue.
    Background air is given the properties of fat and no perfusion: the
    engine runs inside the body, and the far boundary is fixed anyway.

    Parameters
    ----------
    perfusion_scale : float
        Multiplies every perfusion rate (0 for ex vivo).
    perfusion_override_1_per_s : dict, optional
        Perfusion rate (1/s) per tissue name, replacing the table's value.
    label_tissues : dict, optional
        Label value -> tissue name for this simulation, replacing
        :data:`~ioplan.anatomy.LABEL_INFO`'s tissue (``{8: "lung_tumor"}``: the tumour
        label of a lung case). Kept in the table (:attr:`MaterialTable.label_tissues`).

    Examples
    --------
    >>> from ioplan.anatomy import Label
    >>> t = tissue_material_table(label_tissues={int(Label.TUMOR): "lung_tumor"})
    >>> round(float(t.c_vol_j_m3_k[Label.TUMOR]) / 1e6, 4)  # 1050 kg/m^3 x 3750 J/kg/K
    3.9375
    """
    from ioplan.tissue import phase_change, tissue

    if not np.isfinite(perfusion_scale) or perfusion_scale < 0:
        raise InputError(f"perfusion_scale must be >= 0, got {perfusion_scale}")
    override = dict(perfusion_override_1_per_s or {})
    for name, value in override.items():
        if not np.isfinite(value) or not 0 <= value <= 0.1:
            raise InputError(f"perfusion for {name!r} must be 0-0.1 1/s, got {value}")
    pc = phase_change()
    blood = blood_properties()
    c_blood = blood["rho_kg_m3"] * blood["c_j_kg_k"]
    cols = {c: np.zeros(_N) for c in _COLUMNS}
    cols["fixed_group"] = np.full(_N, -1.0)
    names = [""] * _N
    # unused ids: harmless defaults (liver-like) so that no division by zero can occur
    default = tissue("liver")
    rho = np.full(_N, default.density_kg_m3)
    for mid in range(_N):
        cols["k_w_m_k"][mid] = default.thermal_conductivity_w_m_k
        cols["c_vol_j_m3_k"][mid] = default.density_kg_m3 * default.specific_heat_j_kg_k
    cols["k_frozen_w_m_k"][:] = pc["thermal_conductivity_frozen_w_m_k"]
    cols["k_mushy_w_m_k"][:] = pc["thermal_conductivity_mushy_w_m_k"]
    cols["solidus_c"][:] = pc["solidus_c"]
    cols["liquidus_c"][:] = pc["liquidus_c"]
    overrides = _check_label_tissues(label_tissues)
    for mid, (label_name, raw, tname) in _label_tissues(overrides).items():
        t = tissue(tname)
        names[mid] = label_name
        rho[mid] = t.density_kg_m3
        cols["k_w_m_k"][mid] = t.thermal_conductivity_w_m_k
        cols["c_vol_j_m3_k"][mid] = rho[mid] * t.specific_heat_j_kg_k
        perf = override.get(tname, t.perfusion_1_per_s) if raw != "air" else 0.0
        cols["perfusion_w_m3_k"][mid] = perfusion_scale * perf * c_blood
        cols["rf_sigma_s_m"][mid] = t.electrical_conductivity_480khz_s_m
    cols["c_vol_frozen_j_m3_k"][:] = rho * pc["specific_heat_frozen_j_kg_k"]
    cols["c_vol_mushy_j_m3_k"][:] = rho * pc["specific_heat_mushy_j_kg_k"]
    cols["latent_j_m3"][:] = rho * pc["latent_heat_j_kg"]
    vap = _vaporisation()
    cols["vapor_start_c"][:] = vap["start_c"]
    cols["vapor_end_c"][:] = vap["end_c"]
    cols["vapor_latent_j_m3"][:] = rho * vap["water_fraction"] * vap["latent_heat_water_j_kg"]
    names[BOUNDARY_ID] = "far_boundary"
    cols["fixed_group"][BOUNDARY_ID] = 0
    return MaterialTable(
        names=tuple(names),
        sources={
            "tissue": "ioplan.tissue (tissues.toml)",
            "phase_change": "tissues.toml [phase_change]",
        },
        label_tissues=tuple(sorted(overrides.items())),
        **cols,
    )


def _check_label_tissues(label_tissues: Any) -> dict[int, str]:
    """``label_tissues`` as ``{label value: tissue name}``, each checked (a one-line error)."""
    from ioplan.anatomy import LABEL_INFO
    from ioplan.tissue import tissue_names

    items = label_tissues.items() if isinstance(label_tissues, dict) else (label_tissues or ())
    out: dict[int, str] = {}
    labels = {int(lbl) for lbl in LABEL_INFO}
    for lbl, name in items:
        if int(lbl) not in labels:
            raise InputError(f"label_tissues: {lbl} is not a label value")
        if name not in tissue_names():
            raise InputError(
                f"label_tissues: unknown tissue {name!r}; known: {', '.join(tissue_names())}"
            )
        out[int(lbl)] = str(name)
    return out


def _label_tissues(overrides: dict[int, str]) -> dict[int, tuple[str, str, str]]:
    """Per label value: (label name, its tissue as given, the tissue table key used).

    The tissue as given is LABEL_INFO's unless overridden; a tissue the table lacks
    (air) is given fat's properties.
    """
    from ioplan.anatomy import LABEL_INFO
    from ioplan.tissue import tissue_names

    out = {}
    for lbl, info in LABEL_INFO.items():
        raw = overrides.get(int(lbl), info.tissue)
        out[int(lbl)] = (lbl.name.lower(), raw, raw if raw in tissue_names() else "fat")
    return out


def label_tissue_names(label_tissues: Any = ()) -> dict[int, str]:
    """Label value -> tissue name (LABEL_INFO's, with the overrides ``label_tissues``)."""
    rows = _label_tissues(_check_label_tissues(label_tissues))
    return {mid: raw for mid, (_, raw, _) in rows.items()}


def tissue_dielectric(
    material: np.ndarray, frequency_mhz: float, *, label_tissues: Any = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Relative permittivity and conductivity (S/m) at 37 degC per voxel (915 or 2450 MHz).

    Materials that are not labels (ids from :data:`FIRST_EXTRA_ID`) get liver's values.
    ``label_tissues`` (label value -> tissue name, a dict or the pairs of
    :attr:`MaterialTable.label_tissues`) replaces LABEL_INFO's tissue of those labels.
    """
    from ioplan.tissue import tissue, tissue_names

    if frequency_mhz not in (915.0, 2450.0):
        raise InputError(f"dielectric data exist for 915 and 2450 MHz, got {frequency_mhz}")
    suffix = "915mhz" if frequency_mhz == 915.0 else "2450mhz"
    liver = tissue("liver")
    eps = np.full(_N, getattr(liver, f"relative_permittivity_{suffix}"))
    sig = np.full(_N, getattr(liver, f"conductivity_{suffix}_s_m"))
    for mid, name in label_tissue_names(label_tissues).items():
        if name in tissue_names():
            t = tissue(name)
            eps[mid] = getattr(t, f"relative_permittivity_{suffix}")
            sig[mid] = getattr(t, f"conductivity_{suffix}_s_m")
    m = np.asarray(material)
    return eps[m], sig[m]


def tissue_specific_heat(material: np.ndarray, *, label_tissues: Any = ()) -> np.ndarray:
    """Specific heat (J/kg/K) per voxel of label materials (liver's for the others)."""
    from ioplan.tissue import tissue, tissue_names

    c = np.full(_N, tissue("liver").specific_heat_j_kg_k)
    for mid, name in label_tissue_names(label_tissues).items():
        if name in tissue_names():
            c[mid] = tissue(name).specific_heat_j_kg_k
    return c[np.asarray(material)]
