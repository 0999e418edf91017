"""Tissue table: completeness, sources, published values, temperature dependence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ioplan.anatomy import LABEL_INFO, Label
from ioplan.tissue import (
    arrhenius_parameters,
    dielectric_ji_brace_2450,
    label_property_map,
    phase_change,
    rf_conductivity,
    source_of,
    specific_heat_liver,
    tissue,
    tissue_names,
)

REQUIRED = (
    "liver",
    "tumor",
    "blood",
    "fat",
    "muscle",
    "bone",
    "lung",
    "kidney",
    "bowel_wall",
    "gallbladder_bile",
)


def test_required_tissues_have_positive_values_and_sources():
    assert set(REQUIRED) <= set(tissue_names())
    for name in REQUIRED:
        t = tissue(name)
        for field in (
            "density_kg_m3",
            "specific_heat_j_kg_k",
            "thermal_conductivity_w_m_k",
            "electrical_conductivity_480khz_s_m",
            "relative_permittivity_915mhz",
            "conductivity_915mhz_s_m",
            "relative_permittivity_2450mhz",
            "conductivity_2450mhz_s_m",
        ):
            assert getattr(t, field) > 0, (name, field)
            assert len(source_of(f"{name}.{field}")) > 5
        assert t.perfusion_1_per_s >= 0


def test_every_label_maps_to_a_tissue():
    for lbl, info in LABEL_INFO.items():
        if lbl == Label.BACKGROUND:
            continue
        assert info.tissue in tissue_names(), lbl


def test_liver_matches_the_shared_validation_table():
    """../shared/validation/README.md section 5 (IT'IS; Ji & Brace 2011)."""
    liver = tissue("liver")
    assert liver.density_kg_m3 == 1079.0
    assert liver.specific_heat_j_kg_k == 3540.0
    assert liver.thermal_conductivity_w_m_k == 0.52
    assert 0.0036 <= liver.perfusion_1_per_s <= 0.02
    # the physiological hepatic blood flow, 100 mL/min per 100 g (tissues.toml's source),
    # per volume of liver at its density: 100 / 100 * 1079 / 1000 / 60 = 0.01798 1/s
    # (the table rounds to 0.018: 0.1 %)
    assert liver.perfusion_1_per_s == pytest.approx(100 / 100 * 1079 / 1000 / 60, rel=2e-3)
    assert liver.relative_permittivity_2450mhz == 43.0
    assert liver.conductivity_2450mhz_s_m == 1.69
    # README section 2: liver 0.12-0.2 S/m at 480-500 kHz, tumour about 0.4
    assert 0.12 <= liver.electrical_conductivity_480khz_s_m <= 0.2
    assert tissue("tumor").electrical_conductivity_480khz_s_m == pytest.approx(0.4)


def test_ji_brace_curves_follow_the_published_formula():
    """Ji & Brace, Phys Med Biol 2011;56:5249 (coefficients as in shared README section 5)."""
    for t in (20.0, 37.0, 60.0, 90.0, 110.0):
        eps_ref = 48.391 * (1 - 1 / (1 + math.exp(6.286 - 0.0764 * t))) + 1
        sig_ref = 2.173 * (1 - 1 / (1 + math.exp(5.951 - 0.0697 * t)))
        eps, sig = dielectric_ji_brace_2450(t)
        assert float(eps) == pytest.approx(eps_ref, rel=1e-12)
        assert float(sig) == pytest.approx(sig_ref, rel=1e-12)
    eps, sig = dielectric_ji_brace_2450(np.linspace(20, 120, 50))
    assert np.all(np.diff(eps) < 0) and np.all(np.diff(sig) < 0)  # tissue dries out


def test_rf_conductivity_and_specific_heat():
    # 1.5 %/degC above 37 degC (shared README section 2)
    assert float(rf_conductivity(0.2, 47.0)) == pytest.approx(0.2 * 1.15)
    # Haemmerich 2006: 3411 at 25 degC, 4187 at 83.5 degC, linear between
    assert float(specific_heat_liver(25.0)) == 3411.0
    assert float(specific_heat_liver((25.0 + 83.5) / 2)) == pytest.approx((3411 + 4187) / 2)
    assert float(specific_heat_liver(100.0)) == 4187.0


def test_phase_change_constants_are_physically_consistent():
    """Checks against physics, not against the file's own numbers.

    - Latent heat of tissue = water mass fraction x latent heat of fusion of water
      (333.55 kJ/kg at 0 degC, IAPWS); liver holds 70-80 % water (ICRU Report 46): the
      ratio must lie in 0.65-0.85.
    - Tissue water freezes a little below 0 degC (freezing-point depression; isotonic
      saline at -0.56 degC): liquidus in -2..0 degC, solidus below it.
    - Frozen tissue conducts better than unfrozen tissue but not better than ice
      (2.22 W/m/K at 0 degC), and stores less heat per kelvin than unfrozen tissue
      (ice 2.05 kJ/kg/K against water 4.18).
    """
    pc = phase_change()
    liver = tissue("liver")
    assert 0.65 <= pc["latent_heat_j_kg"] / 333.55e3 <= 0.85
    assert -2.0 <= pc["liquidus_c"] < 0.0
    assert pc["solidus_c"] < pc["liquidus_c"]
    k_f, k_m = pc["thermal_conductivity_frozen_w_m_k"], pc["thermal_conductivity_mushy_w_m_k"]
    assert liver.thermal_conductivity_w_m_k < k_m < k_f <= 2.22
    assert pc["specific_heat_frozen_j_kg_k"] < pc["specific_heat_mushy_j_kg_k"]
    assert pc["specific_heat_mushy_j_kg_k"] < liver.specific_heat_j_kg_k


def test_arrhenius_constants_give_plausible_coagulation_times():
    """Omega = 1 (coagulation) after 1/rate at a constant temperature, rate A exp(-Ea/RT).

    Plausibility against clinical experience, not against the file: at 60 degC tissue
    coagulates within seconds (the usual 'instant death' isotherm of ablation; Goldberg
    et al., AJR 2000, DOI 10.2214/ajr.174.2.1740323), while at 45 degC it survives for
    minutes. 1-20 s at 60 degC, > 100 s at 45 degC.
    """
    p = arrhenius_parameters()

    def seconds_to_omega_1(t_c):
        rate = p["frequency_factor_1_per_s"] * math.exp(
            -p["activation_energy_j_mol"] / (p["gas_constant_j_mol_k"] * (t_c + 273.15))
        )
        return 1.0 / rate

    assert 1.0 <= seconds_to_omega_1(60.0) <= 20.0
    assert seconds_to_omega_1(45.0) > 100.0
    assert p["gas_constant_j_mol_k"] == pytest.approx(8.314462618, rel=1e-12)  # CODATA 2018


def test_label_property_map():
    lab = np.array([[[Label.LIVER, Label.FAT, Label.BACKGROUND]]], np.uint8)
    k = label_property_map(lab, "thermal_conductivity_w_m_k")
    assert k[0, 0, 0] == tissue("liver").thermal_conductivity_w_m_k
    assert k[0, 0, 1] == tissue("fat").thermal_conductivity_w_m_k
    assert np.isnan(k[0, 0, 2])
