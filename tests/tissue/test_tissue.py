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


def test_cryo_and_damage_constants():
    pc = phase_change()
    assert pc["solidus_c"] == -8.0 and pc["liquidus_c"] == -1.0
    assert pc["latent_heat_j_kg"] == 250e3
    arr = arrhenius_parameters()
    assert arr["frequency_factor_1_per_s"] == 7.39e39
    assert arr["activation_energy_j_mol"] == 2.577e5


def test_label_property_map():
    lab = np.array([[[Label.LIVER, Label.FAT, Label.BACKGROUND]]], np.uint8)
    k = label_property_map(lab, "thermal_conductivity_w_m_k")
    assert k[0, 0, 0] == tissue("liver").thermal_conductivity_w_m_k
    assert k[0, 0, 1] == tissue("fat").thermal_conductivity_w_m_k
    assert np.isnan(k[0, 0, 2])
