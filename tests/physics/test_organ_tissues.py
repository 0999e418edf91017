"""The engine simulates with the organ's tissues (issue 21).

The tumour label takes the organ's tumour tissue (lung_tumor, renal_tumor, bone_tumor) through
a per-simulation label -> tissue override carried by the material table; blocks can be made of
any tissue of the table. References are read independently from ``tissues.toml`` (tomllib).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest

from ioplan.anatomy import Case, Label, PhantomConfig, TumorSpec, generate_phantom
from ioplan.cli import main
from ioplan.devices import applicator
from ioplan.physics import SimulationConfig, microwave_field_pair, simulate
from ioplan.physics._domain import label_tissue_overrides, make_domain
from ioplan.physics._materials import tissue_dielectric, tissue_material_table
from ioplan.physics._simulate import _materials
from ioplan.physics._sources import microwave_geometry

EMPRINT = applicator("covidien-emprint")
RF = applicator("cooled-rf-3cm")


def _toml() -> dict:
    text = resources.files("ioplan.tissue").joinpath("data/tissues.toml").read_text()
    return tomllib.loads(text)


def _value(tissue: str, key: str) -> float:
    return float(_toml()[tissue][key]["value"])


@pytest.fixture(scope="module")
def lung_case() -> Case:
    ph = generate_phantom(
        PhantomConfig(spacing_mm=3.0, noise_hu=0.0, organ="lung", tumors=(TumorSpec(),))
    )
    return Case.from_phantom(ph)


@pytest.mark.parametrize(
    ("organ", "tumour"),
    [("lung", "lung_tumor"), ("kidney", "renal_tumor"), ("bone", "bone_tumor"), ("liver", "tumor")],
)
def test_tumour_row_is_the_organs_tumour_tissue(organ, tumour):
    """The TUMOR row of the table equals tissues.toml's values of the organ's tumour tissue."""
    cfg = SimulationConfig(EMPRINT, power_w=60.0, duration_s=60.0, tissue="liver", organ=organ)
    table = tissue_material_table(label_tissues=label_tissue_overrides(cfg))
    row = table.row(int(Label.TUMOR))
    rho, c = _value(tumour, "density_kg_m3"), _value(tumour, "specific_heat_j_kg_k")
    c_blood = _value("blood", "density_kg_m3") * _value("blood", "specific_heat_j_kg_k")
    # the table stores these products of the toml values: float64 rounding only
    assert row["k_w_m_k"] == pytest.approx(_value(tumour, "thermal_conductivity_w_m_k"), rel=1e-12)
    assert row["c_vol_j_m3_k"] == pytest.approx(rho * c, rel=1e-12)
    assert row["perfusion_w_m3_k"] == pytest.approx(
        _value(tumour, "perfusion_1_per_s") * c_blood, rel=1e-12
    )
    assert row["rf_sigma_s_m"] == pytest.approx(
        _value(tumour, "electrical_conductivity_480khz_s_m"), rel=1e-12
    )
    # the liver row is never touched, and liver needs no override at all
    liver = table.row(int(Label.LIVER))
    assert liver["c_vol_j_m3_k"] == pytest.approx(
        _value("liver", "density_kg_m3") * _value("liver", "specific_heat_j_kg_k"), rel=1e-12
    )
    assert (organ == "liver") == (table.label_tissues == ())


def test_lung_case_dielectric_map_in_tumour_voxels(lung_case):
    """Tumour voxels of a lung case carry lung_tumor's 2450 MHz values in every MW path."""
    cfg = SimulationConfig(EMPRINT, power_w=60.0, duration_s=60.0, case=lung_case, tissue=None,
                           spacing_mm=3.0)  # fmt: skip
    assert cfg.organ == "lung"  # from the case (the phantom's organ)
    domain = make_domain(cfg)
    model = _materials(cfg, domain)
    problem = model.problem
    tumour = problem.material == Label.TUMOR
    lung = problem.material == Label.LUNG
    assert tumour.sum() > 20 and lung.sum() > 20
    eps, sig = tissue_dielectric(
        problem.material, 2450.0, label_tissues=problem.materials.label_tissues
    )
    ref_eps = _value("lung_tumor", "relative_permittivity_2450mhz")
    ref_sig = _value("lung_tumor", "conductivity_2450mhz_s_m")
    assert np.all(eps[tumour] == ref_eps) and np.all(sig[tumour] == ref_sig)
    assert np.all(sig[lung] == _value("lung", "conductivity_2450mhz_s_m"))
    # the lumped pattern's per-voxel conductivity (the engine's own threading)
    geo = microwave_geometry(domain.grid, domain.placements, EMPRINT, problem.material,
                             model.tissue_mask,
                             label_tissues=problem.materials.label_tissues)  # fmt: skip
    idx, s37 = geo[0][0], geo[0][3]
    in_tumour = tumour.reshape(-1)[idx]
    assert in_tumour.any() and np.all(s37[in_tumour] == ref_sig)
    # the computed-field source reads the problem's table
    pair = microwave_field_pair(domain.placements, replace(EMPRINT, mw_model="field"), 60.0,
                                model.tissue_mask)  # fmt: skip
    state = pair.init(problem)
    t_field = tumour.reshape(-1)[state.idx]
    assert t_field.any() and np.all(state.sig37[t_field] == ref_sig)
    assert np.all(state.eps37[t_field] == ref_eps)


def test_lung_case_reports_its_tissues(lung_case):
    res = simulate(SimulationConfig(EMPRINT, power_w=60.0, duration_s=30.0, case=lung_case,
                                    tissue=None, spacing_mm=3.0))  # fmt: skip
    assert res.settings["organ"] == "lung"
    assert res.settings["tissues"]["tumor"] == "lung_tumor"
    assert res.settings["tissues"]["lung"] == "lung"
    liver = simulate(SimulationConfig(EMPRINT, power_w=60.0, duration_s=30.0, case=lung_case,
                                      tissue=None, spacing_mm=3.0, organ="liver"))  # fmt: skip
    assert liver.settings["tissues"]["tumor"] == "tumor"


def test_liver_case_unchanged_by_organ_liver():
    """organ=None (inferred: liver) and organ="liver" give bit-identical results."""
    case = Case.from_phantom(generate_phantom(PhantomConfig(spacing_mm=4.0, noise_hu=0.0)))
    kw = dict(power_w=60.0, duration_s=60.0, case=case, tissue=None, spacing_mm=4.0)
    a = simulate(SimulationConfig(EMPRINT, **kw))
    b = simulate(SimulationConfig(EMPRINT, organ="liver", **kw))
    assert a.settings["organ"] == "liver" and a.settings["tissues"]["tumor"] == "tumor"
    assert np.array_equal(a.state.temperature_c, b.state.temperature_c)
    assert np.array_equal(a.zone_mask, b.zone_mask) and a.zone_mask.any()


@pytest.mark.parametrize(
    "name", ["lung_tumor", "kidney_cortex", "bone_cancellous", "pancreas", "renal_tumor"]
)
def test_block_of_any_tissue(name):
    res = simulate(SimulationConfig(EMPRINT, power_w=60.0, duration_s=60.0, tissue=name,
                                    spacing_mm=4.0))  # fmt: skip
    z = res.zone
    assert math.isfinite(z.length_mm) and z.length_mm > 0 and z.volume_ml > 0
    assert res.tissue_used["name"] == name
    assert res.tissue_used["rho_kg_m3"] == pytest.approx(_value(name, "density_kg_m3"), rel=1e-9)
    assert res.tissue_used["c_j_kg_k"] == pytest.approx(
        _value(name, "specific_heat_j_kg_k"), rel=1e-9
    )
    assert name in res.settings["tissues"].values()


def test_unknown_tissue_and_organ_are_one_line_exit_2(capsys):
    common = ["simulate", "--applicator", "covidien-emprint", "--power-w", "60",
              "--duration-s", "30", "--spacing-mm", "4", "--quiet"]  # fmt: skip
    assert main([*common, "--tissue", "granite"]) == 2
    err = capsys.readouterr().err.strip()
    assert "granite" in err and "lung_tumor" in err and len(err.splitlines()) == 1
    assert main([*common, "--tissue", "liver", "--organ", "brain"]) == 2
    err = capsys.readouterr().err.strip()
    assert "brain" in err and "kidney" in err and len(err.splitlines()) == 1


def test_rf_impedance_scales_inversely_with_480khz_conductivity():
    """Same electrode, same block: the initial impedance is proportional to 1/sigma.

    In a homogeneous block the potential problem is linear in sigma with fixed electrode and
    ground geometry (the coaxial closed form R = ln(R2/a) / (2 pi sigma L) is one case of it),
    so Z_a / Z_b = sigma_b / sigma_a exactly, up to the solver's relative tolerance (1e-6);
    1e-4 leaves room for it. lung_tumor and kidney_cortex reach the engine only through the
    tumour label's override, lung through its own label.
    """
    z = {}
    for name in ("liver", "lung", "lung_tumor", "kidney_cortex"):
        res = simulate(SimulationConfig(RF, power_w=50.0, duration_s=2.0, tissue=name,
                                        spacing_mm=3.0, perfusion_per_s=0.0))  # fmt: skip
        z[name] = res.settings["rf_impedance_ohm_initial"]
    sigma = {n: _value(n, "electrical_conductivity_480khz_s_m") for n in z}
    for name in ("lung", "lung_tumor", "kidney_cortex"):
        assert z[name] / z["liver"] == pytest.approx(sigma["liver"] / sigma[name], rel=1e-4)
    # aerated lung conducts least (0.12 S/m): the highest impedance at the same electrode
    assert z["lung"] > z["liver"] > z["kidney_cortex"] > z["lung_tumor"]


def test_aerated_lung_heats_a_larger_zone_than_liver_at_the_same_power():
    """Same antenna, power and time, ex vivo: the aerated lung's zone contains more tissue.

    The engine deposits the same absorbed power in either block. Its cylindrical pattern,
    normalised, is q(rho) = P 2 alpha exp(-2 alpha rho) / (2 pi rho L): the lung's lower loss
    (2450 MHz: sigma 0.80 vs 1.69 S/m, eps 20.5 vs 43, so alpha about 0.69 of liver's) gives
    q_lung / q_liver = (a_l / a_v) exp(2 (a_v - a_l) rho) >= 0.69 everywhere. In a short run
    heating is near adiabatic, dT = q t / (rho c), and the lung's volumetric heat capacity is
    0.40 of liver's (394 x 3886 vs 1079 x 3540 J/m^3/K): its temperature rise is at least
    0.69 / 0.40 = 1.7 times liver's at every radius, so its 60 degC isotherm and its zone
    hold more tissue. (Lower conductivity, 0.39 vs 0.52 W/m/K, keeps the heat there too.)
    A lung table that did not reach the engine (liver's values) would give equal zones.
    """
    out = {}
    for name in ("liver", "lung"):
        out[name] = simulate(SimulationConfig(EMPRINT, power_w=60.0, duration_s=30.0,
                                              tissue=name, spacing_mm=3.0,
                                              perfusion_per_s=0.0))  # fmt: skip
    # 3 mm voxels (27 uL): a 20 % margin is tens of voxels on these 2-5 mL volumes
    assert out["lung"].isotherms["60"].volume_ml > 1.2 * out["liver"].isotherms["60"].volume_ml
    assert out["lung"].zone.volume_ml > 1.2 * out["liver"].zone.volume_ml
    assert out["lung"].max_temperature_c > out["liver"].max_temperature_c
