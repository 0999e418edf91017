"""Y-90 radioembolization: the worked examples of shared/validation/README.md section 7
(to 0.1 %), kernel closure, uniform-activity kernel = local deposition, forward-inverse
consistency, checks with sources, bad input, the CLI contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ioplan.anatomy import Label
from ioplan.cli import main
from ioplan.embolization import (
    bsa_activity,
    kernel_energy_mev,
    lung_shunt_fraction,
    partition,
    single_compartment,
    synthetic_spect,
    tace_dose,
    voxel_dose,
)
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume, write_nifti

#: The issue's tolerance for the worked examples.
REL = 1e-3


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_worked_example_s1_single_compartment():
    r = single_compartment(1000 * 1.03 / 1000, 0.10, dose_gy=100.0, residual=0.10)
    assert r.activity_gbq == pytest.approx(2.30410, rel=REL)
    assert r.doses_gy["lung_dose_gy"] == pytest.approx(11.44, rel=REL)
    assert r.order_activity_gbq == pytest.approx(2.5601, rel=REL)
    assert r.cf_gy_kg_per_gbq == 49.67


def test_worked_example_s2_partition_capped_normal_liver():
    r = partition(0.150, 1.350, 4.0, 0.05, normal_dose_gy=40.0)
    assert r.activity_gbq == pytest.approx(1.6530, rel=REL)
    assert r.doses_gy["tumor_dose_gy"] == pytest.approx(160.0, rel=REL)
    assert r.doses_gy["lung_dose_gy"] == pytest.approx(4.11, abs=0.005)  # table: 2 decimals


def test_worked_examples_s3_bsa_and_s4_lung_shunt():
    r = bsa_activity(175.0, 80.0, 300.0, 1500.0)
    assert r.extra["bsa_m2"] == pytest.approx(1.9561, rel=REL)
    assert r.activity_gbq == pytest.approx(1.9227, rel=REL)
    assert 100 * lung_shunt_fraction(40, 720) == pytest.approx(5.263, rel=REL)


def test_forward_and_inverse_agree_and_the_dose_constant_is_a_setting():
    for cf in (49.67, 50.0, 49.38):
        inv = single_compartment(1.6, 0.07, dose_gy=120.0, cf=cf)
        fwd = single_compartment(1.6, 0.07, activity_gbq=inv.activity_gbq, cf=cf)
        assert fwd.doses_gy["dose_gy"] == pytest.approx(120.0, rel=1e-12)
        assert fwd.to_dict()["cf_gy_kg_per_gbq"] == cf
        p = partition(0.2, 1.2, 3.0, 0.04, tumour_dose_gy=205.0, cf=cf)
        q = partition(0.2, 1.2, 3.0, 0.04, activity_gbq=p.activity_gbq, cf=cf)
        assert q.doses_gy["tumor_dose_gy"] == pytest.approx(205.0, rel=1e-12)
    with pytest.raises(InputError, match="dose constant"):
        single_compartment(1.0, 0.1, dose_gy=100, cf=48.0)


def test_limits_are_warnings_with_their_source():
    r = single_compartment(1.0, 0.25, dose_gy=150.0, sphere="resin")
    text = " ".join(r.warnings)
    assert "lung dose" in text and "30 Gy" in text and "above 20 %" in text
    assert "40 Gy for resin" in text and all("[" in w for w in r.warnings)
    # BSA: shunt 12 % -> 20 % less activity (resin IFU); 25 % -> do not treat
    a0 = bsa_activity(175, 80, 300, 1500, 0.0).activity_gbq
    assert bsa_activity(175, 80, 300, 1500, 0.12).activity_gbq == pytest.approx(0.8 * a0)
    assert bsa_activity(175, 80, 300, 1500, 0.25).activity_gbq == 0.0


def test_bad_input():
    with pytest.raises(InputError, match="percentage"):
        single_compartment(1.0, 12.0, dose_gy=100)
    with pytest.raises(InputError, match="mass"):
        single_compartment(-1.0, 0.1, dose_gy=100)
    with pytest.raises(InputError, match="either"):
        single_compartment(1.0, 0.1)
    with pytest.raises(InputError, match=r"lung counts .* >= 0"):
        lung_shunt_fraction(-3, 100)


def test_tace_doxorubicin_by_body_surface_area():
    r = tace_dose(175, 80, 50.0)
    assert r["doxorubicin_mg"] == pytest.approx(50.0 * 1.9561, rel=REL)
    assert r["deb_volume_ml"] == pytest.approx(r["doxorubicin_mg"] / 37.5, rel=1e-3)
    assert tace_dose(200, 150, 75.0)["capped_at_max"] is True


def test_kernel_closure_gives_back_the_mean_beta_energy():
    """Sum of the S-values x voxel mass (1.04 g/mL) = energy per decay; Y-90 mean beta
    energy 0.9267 MeV (ICRP 107). The tabulated kernel is truncated at 5 voxels and rounded
    to 3 digits: 1 % is the tolerance (shared/validation/README.md: about 0.93 MeV)."""
    assert kernel_energy_mev() == pytest.approx(0.9267, rel=0.01)


def _box_case(spacing=4.8, n=24):
    g = Grid((n, n, n), (spacing,) * 3)
    lab = np.zeros(g.shape, np.uint8)
    lab[2:-2, 2:-2, 2:-2] = int(Label.LIVER)
    ct = np.full(g.shape, 40.0, np.float32)  # 1.04 g/mL, the kernel's density
    return g, lab, ct


@pytest.mark.parametrize("spacing", [4.8, 3.0])
def test_uniform_activity_kernel_equals_local_deposition_inside(spacing):
    """Uniform activity in a large block: away from its edges the kernel dose equals the
    local deposition dose. They differ by the kernel's energy per decay against the one
    implied by CF 49.67 (0.9353 vs 0.931 MeV: 0.5 %) and, at 3 mm voxels, by the
    activity's resampling to 4.8 mm: 1.5 %."""
    g, lab, ct = _box_case(spacing, n=int(24 * 4.8 / spacing))
    spect = Volume(np.ones(g.shape, np.float32), g)
    args = (spect, Volume(ct, g), Volume(lab, g), 2.0)
    ldm = voxel_dose(*args, method="ldm")
    ker = voxel_dose(*args, method="kernel")
    core = np.zeros(g.shape, bool)
    m = int(np.ceil(20.0 / spacing))
    core[m:-m, m:-m, m:-m] = True
    d_l = np.asarray(ldm.dose.array)[core]
    d_k = np.asarray(ker.dose.array)[core]
    assert np.allclose(d_k, d_l, rtol=0.015)
    # the mean liver dose of LDM is CF A / M exactly
    mass = (lab > 0).sum() * g.voxel_volume_ml * 1.04 / 1000
    assert ldm.structures["normal_liver"]["mean_gy"] == pytest.approx(49.67 * 2.0 / mass, 1e-3)


def test_voxel_dose_takes_the_shunt_from_the_spects_lung_counts():
    """Without --lsf the lung counts were ignored: lung 0 Gy and all the activity in the
    liver, with a note that the lung dose "reads high". A SPECT with exactly 10 % of its
    counts in the lung label: LSF 0.1, lung dose CF A LSF / M_lung, liver CF A 0.9 / M."""
    g = Grid((10, 10, 20), (4.8, 4.8, 4.8))
    lab = np.zeros(g.shape, np.uint8)
    lab[:, :, :10] = int(Label.LIVER)
    lab[:, :, 12:] = int(Label.LUNG)
    ct = np.where(lab == int(Label.LUNG), -700.0, 40.0).astype(np.float32)
    counts = np.where(lab == int(Label.LIVER), 1.0, 0.0)
    n_liver, n_lung = (lab == int(Label.LIVER)).sum(), (lab == int(Label.LUNG)).sum()
    counts[lab == int(Label.LUNG)] = (n_liver / 9.0) / n_lung  # a ninth of the liver's: 10 %
    res = voxel_dose(Volume(counts.astype(np.float32), g), Volume(ct, g), Volume(lab, g), 2.0,
                     lsf=None)  # fmt: skip
    assert res.lsf == pytest.approx(0.1, rel=1e-6) and res.lsf_from == "spect"
    lung_kg = n_lung * g.voxel_volume_ml * 0.3 / 1000
    liver_kg = n_liver * g.voxel_volume_ml * 1.04 / 1000
    assert res.lung_dose_gy == pytest.approx(49.67 * 2.0 * 0.1 / lung_kg, rel=1e-3)
    assert res.structures["normal_liver"]["mean_gy"] == pytest.approx(
        49.67 * 2.0 * 0.9 / liver_kg, rel=1e-3
    )
    # no lung counts: 0, said; and no "reads high" note for a 0 Gy lung
    counts[lab == int(Label.LUNG)] = 0.0
    res = voxel_dose(Volume(counts.astype(np.float32), g), Volume(ct, g), Volume(lab, g), 2.0,
                     lsf=None)  # fmt: skip
    assert res.lsf == 0.0 and res.lsf_from == "none"
    assert any("taken as 0" in n for n in res.notes)
    assert not any("reads high" in n for n in res.notes)


def test_synthetic_spect_dvh_and_cli(tmp_path, capsys):
    """A tumour at T/N 4 in liver with a lung: the tumour's mean dose over the normal
    liver's approaches T/N (blur lowers it); the lung gets CF A LSF / M_lung."""
    g = Grid((30, 40, 40), (4.0, 4.0, 4.0))
    lab = np.zeros(g.shape, np.uint8)
    lab[5:25, 5:35, 5:30] = int(Label.LIVER)
    lab[10:20, 15:25, 10:20] = int(Label.TUMOR)
    lab[5:25, 5:35, 32:38] = int(Label.LUNG)
    ct = np.where(lab == int(Label.LUNG), -700.0, 40.0).astype(np.float32)
    spect = synthetic_spect(Volume(lab, g), tn=4.0, lsf=0.05, fwhm_mm=8.0, seed=1)
    assert float(np.asarray(spect.array).min()) >= 0
    res = voxel_dose(spect, Volume(ct, g), Volume(lab, g), 2.0, lsf=0.05)
    s = res.structures
    ratio = s["tumor"]["mean_gy"] / s["normal_liver"]["mean_gy"]
    assert 2.5 < ratio < 4.0  # blur spills tumour counts into the liver: below 4
    lung_kg = (lab == int(Label.LUNG)).sum() * g.voxel_volume_ml * 0.3 / 1000
    assert s["lung"]["mean_gy"] == pytest.approx(49.67 * 2.0 * 0.05 / lung_kg, rel=1e-3)
    assert s["tumor"]["d98_gy"] <= s["tumor"]["d70_gy"] <= s["tumor"]["d50_gy"]
    for name, arr in (("s", spect), ("c", Volume(ct, g)), ("l", Volume(lab, g))):
        write_nifti(arr, tmp_path / f"{name}.nii.gz")
    code, out, err = _run(
        capsys, "sirt", "voxel", "--spect", str(tmp_path / "s.nii.gz"), "--ct",
        str(tmp_path / "c.nii.gz"), "--labels", str(tmp_path / "l.nii.gz"), "--activity-gbq",
        "2", "--lsf", "0.05", "--out", str(tmp_path / "v"), "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["cf_gy_kg_per_gbq"] == 49.67 and "tumor" in doc["structures"]
    for f in ("dose.nii.gz", "dvh.png", "report.html", "dosimetry.json"):
        assert (tmp_path / "v" / f).is_file()
    # negative counts are refused with one line
    bad = np.asarray(spect.array).copy()
    bad[0, 0, 0] = -5
    write_nifti(Volume(bad, g), tmp_path / "bad.nii.gz")
    code, out, err = _run(
        capsys, "sirt", "voxel", "--spect", str(tmp_path / "bad.nii.gz"), "--ct",
        str(tmp_path / "c.nii.gz"), "--labels", str(tmp_path / "l.nii.gz"), "--activity-gbq",
        "2", "--out", str(tmp_path / "v2"),
    )  # fmt: skip
    assert code == 2 and "negative counts" in err


def test_sirt_cli_json_contracts(capsys, tmp_path):
    code, out, _ = _run(capsys, "sirt", "single", "--mass-kg", "1.03", "--dose-gy", "100",
                        "--lsf", "0.1", "--json")  # fmt: skip
    doc = json.loads(out)
    assert code == 0 and {"activity_gbq", "lung_dose_gy"} <= set(doc)
    code, out, _ = _run(capsys, "sirt", "single", "--mass-kg", "1.03", "--activity-gbq", "2.3041",
                        "--lsf", "0.1", "--json")  # fmt: skip
    assert json.loads(out)["dose_gy"] == pytest.approx(100.0, rel=1e-4)
    args = ["--tumor-kg", "0.15", "--normal-kg", "1.35", "--tn", "4", "--lsf", "0.05"]
    code, out, _ = _run(capsys, "sirt", "partition", *args, "--activity-gbq", "1.653", "--json")
    doc = json.loads(out)
    assert {"tumor_dose_gy", "normal_dose_gy", "lung_dose_gy"} <= set(doc)
    code, out, _ = _run(capsys, "sirt", "bsa", "--height-cm", "175", "--weight-kg", "80",
                        "--tumor-ml", "300", "--normal-ml", "1500", "--json",
                        "--report", str(tmp_path / "r"))  # fmt: skip
    doc = json.loads(out)
    assert {"bsa_m2", "activity_gbq"} <= set(doc) and (tmp_path / "r" / "report.html").is_file()
    code, out, err = _run(capsys, "sirt", "single", "--mass-kg", "1", "--dose-gy", "100",
                          "--lsf", "12")  # fmt: skip
    assert code == 2 and "percentage" in err and len(err.strip().splitlines()) == 1


def test_planar_shunt_counts_tn_and_territories(tmp_path, capsys):
    """Conjugate views: geometric means (lung 40 x 40 -> 40, liver 800 x 648 -> 720) give
    the S4 shunt; T/N from MAA counts per mass; two territories add their activities and
    their shunted activity adds in the lung."""
    from ioplan.embolization import lung_shunt_fraction_planar, territories, tn_ratio

    assert 100 * lung_shunt_fraction_planar(40, 40, 800, 648) == pytest.approx(5.263, rel=REL)
    assert tn_ratio(600, 0.15, 1350, 1.35) == pytest.approx(4.0)
    items = [
        {"name": "right", "tumor_kg": 0.15, "normal_kg": 1.35, "tn": 4.0, "normal_dose_gy": 40},
        {"name": "left", "tumor_kg": 0.05, "normal_kg": 0.45, "tn": 4.0, "normal_dose_gy": 40},
    ]
    doc = territories(items, 0.05)
    # the left territory is a third of the right in every mass: a third of its activity
    a_right, a_left = (t["activity_gbq"] for t in doc["territories"])
    assert a_left == pytest.approx(a_right / 3, rel=1e-4)
    assert doc["activity_gbq"] == pytest.approx(a_right + a_left, rel=1e-4)
    assert doc["lung_dose_gy"] == pytest.approx(49.67 * doc["activity_gbq"] * 0.05, rel=1e-4)
    f = tmp_path / "t.csv"
    f.write_text(
        "name,tumor_kg,normal_kg,tn,normal_dose_gy\nright,0.15,1.35,4,40\nleft,0.05,0.45,4,x\n"
    )
    code, out, err = _run(capsys, "sirt", "territories", str(f), "--lsf", "0.05")
    assert code == 2 and "row 3" in err and "normal_dose_gy" in err
    code, out, _ = _run(capsys, "sirt", "lsf", "--planar", "40,40,800,648", "--json")
    assert json.loads(out)["lsf_percent"] == pytest.approx(5.263, rel=REL)


def test_absolute_activity_image():
    """An image in Bq/mL: the liver activity is read from it, and the LDM dose of a
    uniform concentration c is CF c / rho (independent of the voxel size)."""
    g, lab, ct = _box_case(4.0, n=20)
    conc = np.where(lab > 0, 1.0e6, 0.0).astype(np.float32)  # 1 MBq/mL
    res = voxel_dose(Volume(conc, g), Volume(ct, g), Volume(lab, g), None, absolute=True)
    # CF (Gy kg/GBq) x 1e-3 GBq/mL / 1.04e-3 kg/mL
    assert res.structures["normal_liver"]["mean_gy"] == pytest.approx(49.67 / 1.04, rel=1e-4)
    with pytest.raises(InputError, match="not both"):
        voxel_dose(Volume(conc, g), Volume(ct, g), Volume(lab, g), 2.0, absolute=True)
    # recount: 1 MBq/mL over the box's liver voxels (4 mm: 0.064 mL each)
    held = 1e6 * float((lab > 0).sum()) * g.voxel_volume_ml * 1e-9
    assert res.activity_gbq == pytest.approx(held, rel=1e-6)
    counts_like = held < 0.3  # a tenth of the smallest vial (3 GBq) or less
    assert counts_like == any("in counts, not Bq/mL" in w for w in res.warnings)
    # a counts image read as Bq/mL (sweep of session 51: every dose 0.0 Gy, no word)
    counts = np.where(lab > 0, 50.0, 0.0).astype(np.float32)
    low = voxel_dose(Volume(counts, g), Volume(ct, g), Volume(lab, g), None, absolute=True)
    assert any("in counts, not Bq/mL" in w for w in low.warnings)


def test_a_mask_read_as_the_spect_is_said():
    """Sweep of session 51: a 0/1 tumour mask given as the SPECT put all of 3 GBq in the
    tumour, a mean dose of thousands of Gy, without a word."""
    g, lab, ct = _box_case(4.0, n=20)
    lab[8:12, 8:12, 8:12] = int(Label.TUMOR)  # 64 voxels of 0.064 mL: 4.1 mL
    mask = (lab == int(Label.TUMOR)).astype(np.float32)
    res = voxel_dose(Volume(mask, g), Volume(ct, g), Volume(lab, g), 3.0, method="ldm")
    # recount (LDM): CF x 3 GBq / (4.096 mL x 1.04 g/mL) = 34,980 Gy
    assert res.structures["tumor"]["mean_gy"] == pytest.approx(
        49.67 * 3.0 / (64 * 0.064 * 1.04e-3), rel=1e-3)
    assert any("beyond any published target" in w and "tumor" in w for w in res.warnings)
    spread = voxel_dose(Volume(np.ones(g.shape, np.float32), g), Volume(ct, g),
                        Volume(lab, g), 3.0, method="ldm")  # fmt: skip
    assert not any("beyond any published target" in w for w in spread.warnings)


def test_an_activity_beyond_the_largest_vial_is_said():
    """500 Gy to 5 kg asks CF-inverse x 500 x 5 / 0.95 = 53 GBq: returned without a word,
    though --activity-gbq itself stops at 20 GBq (the largest single vial)."""
    big = single_compartment(dose_gy=500.0, mass_kg=5.0, lsf=0.05)
    assert big.activity_gbq == pytest.approx(500.0 * 5.0 / (49.67 * 0.95), rel=1e-9)
    assert any("largest single vial" in w for w in big.warnings)
    usual = single_compartment(dose_gy=120.0, mass_kg=1.5, lsf=0.05)
    assert usual.activity_gbq < 20 and not any("vial" in w for w in usual.warnings)


def test_the_normal_liver_dose_is_checked_without_a_sphere_kind():
    """20 GBq to 1.5 kg (662 Gy to the whole normal liver) passed without a word unless
    --sphere was given; EANM 2022's limits are 40 Gy (resin) and 75 Gy (glass)."""
    big = single_compartment(mass_kg=1.5, lsf=0.0, activity_gbq=20.0)
    assert big.doses_gy["dose_gy"] == pytest.approx(49.67 * 20.0 / 1.5, rel=1e-9)
    assert any("both sphere kinds" in w for w in big.warnings)
    mid = single_compartment(mass_kg=1.5, lsf=0.0, activity_gbq=1.5)  # 49.7 Gy
    assert any("exceeds resin spheres' 40 Gy" in w for w in mid.warnings)
    low = single_compartment(mass_kg=1.5, lsf=0.0, activity_gbq=1.0)  # 33.1 Gy
    assert not any("normal liver" in w for w in low.warnings)


def test_voxel_dosimetry_needs_a_liver():
    """A thigh case (tumour, no liver) gave a tumour mean of 6511 Gy with exit 0."""
    g = Grid((10, 10, 10), (4.8, 4.8, 4.8))
    lab = np.zeros(g.shape, np.uint8)
    lab[3:7, 3:7, 3:7] = int(Label.TUMOR)
    ct = np.full(g.shape, 40.0, np.float32)
    with pytest.raises(InputError, match="no liver"):
        voxel_dose(Volume(np.ones(g.shape, np.float32), g), Volume(ct, g), Volume(lab, g), 2.0)


def test_activities_no_vial_holds_are_said():
    """Sweep of session 51: a 30-day decay asked a 4589 GBq vial without a word, and three
    territories summing to 30 GBq passed without the largest-vial warning (20 GBq,
    TheraSphere and SIR-Spheres instructions for use, y90.toml)."""
    from ioplan.embolization import decay_factor, territories

    r = single_compartment(1.0, 0.05, activity_gbq=3.0, decay_hours=720.0)
    # recounted: 3 GBq / 2^(-720 / 64.1) = 3 x 2^11.23
    assert r.calibration_activity_gbq == pytest.approx(3.0 / decay_factor(720.0), rel=1e-9)
    assert r.calibration_activity_gbq > 20.0
    assert any("at calibration" in w and "largest vial" in w for w in r.warnings)
    near = single_compartment(1.0, 0.05, activity_gbq=3.0, decay_hours=24.0)  # 3 x 1.30 GBq
    assert not any("at calibration" in w for w in near.warnings)
    items = [{"name": f"s{i}", "tumor_kg": 0.1, "normal_kg": 0.5, "tn": 3.0,
              "activity_gbq": 10.0} for i in range(3)]  # fmt: skip
    doc = territories(items, 0.02)
    assert doc["activity_gbq"] == pytest.approx(30.0)
    assert any("largest single vial" in w for w in doc["warnings"])
    doc = territories(items[:1], 0.02)
    assert not any("largest single vial" in w for w in doc["warnings"])
