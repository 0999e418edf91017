"""``ioplan arteries`` (issue 24): outputs, JSON contract, bad input, the SIRT link."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from ioplan.anatomy import Case, Label, PhantomConfig, generate_phantom, save_case


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    """A 3 mm liver phantom with the arterial tree, as a case folder."""
    ph = generate_phantom(PhantomConfig(spacing_mm=3.0, arterial_tree=True, noise_hu=0.0))
    folder = tmp_path_factory.mktemp("arteries") / "case"
    save_case(Case.from_phantom(ph, name="arteries"), folder)
    return folder


@pytest.fixture(scope="module")
def result(case_dir, tmp_path_factory):
    """``ioplan arteries CASE --out OUT --json``, run once."""
    from ioplan.cli import main

    out = tmp_path_factory.mktemp("arteries_out") / "out"
    code = main(["arteries", str(case_dir), "--out", str(out), "--json"])
    assert code in (0, None)
    return out, json.loads((out / "arteries.json").read_text())


def _territory(out, feeder):
    from ioplan.imaging import read_image

    terr = np.asarray(read_image(out / "territories.nii.gz").array)
    return np.isin(terr, feeder["territory_labels"])


def test_outputs_and_json_contract(case_dir, result):
    from ioplan.anatomy import load_case
    from ioplan.imaging import read_image

    out, doc = result
    assert {"arteries.json", "territories.nii.gz", "segments.nii.gz", "tree.csv"} <= {
        p.name for p in out.iterdir()
    }
    assert doc["territories"] == "territories.nii.gz" and doc["segments"] == "segments.nii.gz"
    # the picture: a PNG with more than one colour (territories drawn, not a blank canvas)
    from PIL import Image

    png = np.asarray(Image.open(out / "figures" / "territories.png").convert("RGB"))
    assert len(np.unique(png.reshape(-1, 3), axis=0)) > 8
    keys = {"branch_id", "catheter_tip_mm", "territory_label", "territory_ml",
            "tumour_covered_percent", "normal_liver_ml", "non_target"}  # fmt: skip
    assert doc["feeders"] and all(keys <= set(f) for f in doc["feeders"])
    case = load_case(case_dir)
    terr = read_image(out / "territories.nii.gz")
    assert terr.grid.mismatch(case.labels.grid) is None
    lab = np.asarray(case.labels.array)
    liver = np.isin(lab, [Label.LIVER, Label.TUMOR])
    t = np.asarray(terr.array)
    assert np.all(t[liver] > 0) and np.all(t[~liver] == 0)  # an exact partition of the liver
    labels_in_json = {e["territory_label"] for e in doc["territory_labels"]}
    assert set(np.unique(t[liver]).tolist()) <= labels_in_json
    best = doc["feeders"][0]
    tum = lab == Label.TUMOR
    assert np.isin(t[tum], best["territory_labels"]).mean() >= 0.95
    names = {n["branch"] for f in doc["feeders"] for n in f["non_target"]}
    assert names & {"gastroduodenal", "right_gastric", "cystic"}


def test_text_output_names_positions_and_refuses_a_foreign_folder(capsys, case_dir, tmp_path):
    code, out, err = run_cli(capsys, "arteries", case_dir, "--out", tmp_path / "a")
    assert code == 0, err
    assert "tumour 100.0 %" in out and "territories:" in out
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "arteries", case_dir, "--out", foreign, "--overwrite")
    assert code == 2 and (foreign / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(("--tumour", "-1"), "--tumour"), (("--tumour", "7"), "--tumour")],
)
def test_bad_input_one_line_exit_2(capsys, case_dir, tmp_path, args, fragment):
    code, _, err = run_cli(capsys, "arteries", case_dir, "--out", tmp_path / "o", *args)
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "o").exists()


def test_missing_case_is_a_one_line_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "arteries", tmp_path / "none", "--out", tmp_path / "o")
    assert code == 2 and len([x for x in err.splitlines() if x.strip()]) == 1


def test_sirt_partition_from_the_chosen_territory(capsys, case_dir, result):
    """The masses are those of the territory recounted on territories.nii.gz (1.03 g/mL),
    and the activity is the partition model's for them (normal dose 40 Gy, T/N 4, LSF 5 %):
    A = (D_N M_N + D_T M_T) / CF / (1 - LSF), D_T = T/N x D_N (the MIRD partition model)."""
    from ioplan.anatomy import load_case
    from ioplan.imaging import read_image

    out, doc = result
    best = doc["feeders"][0]
    code, text, err = run_cli(
        capsys, "sirt", "partition", "--case", case_dir, "--territory-from", out, "--feeder",
        best["branch_id"], "--tn", "4", "--lsf", "0.05", "--normal-dose-gy", "40", "--json",
    )  # fmt: skip
    assert code == 0, err
    r = json.loads(text)
    case = load_case(case_dir)
    lab = np.asarray(case.labels.array)
    mask = np.isin(
        np.asarray(read_image(out / "territories.nii.gz").array), best["territory_labels"]
    )
    vml = case.labels.grid.voxel_volume_ml
    m_t = ((lab == Label.TUMOR) & mask).sum() * vml * 1.03 / 1000
    m_n = ((lab == Label.LIVER) & mask).sum() * vml * 1.03 / 1000
    want = (40 * m_n + 160 * m_t) / 49.67 / 0.95
    assert r["activity_gbq"] == pytest.approx(want, rel=1e-3)  # output rounded to 5 digits
    assert r["territory"]["branch_id"] == best["branch_id"]
    # bad combinations: one line, exit 2
    code, _, err = run_cli(capsys, "sirt", "partition", "--territory-from", out, "--feeder", "1",
                           "--tn", "4", "--lsf", "0.05", "--normal-dose-gy", "40")  # fmt: skip
    assert_one_line_error(code, err, "--case")
    code, _, err = run_cli(
        capsys, "sirt", "partition", "--case", case_dir, "--territory-from", out, "--feeder",
        "99999", "--tn", "4", "--lsf", "0.05", "--normal-dose-gy", "40",
    )  # fmt: skip
    assert_one_line_error(code, err, "--feeder")


def test_a_territory_of_another_case_is_refused(capsys, case_dir, result, tmp_path):
    """Another case on the same grid took this case's territory (exit 0, its tumour and
    liver counted inside a territory drawn for other anatomy)."""
    import shutil

    from ioplan.anatomy import load_case
    from ioplan.embolization._arteries import labels_fingerprint

    out, doc = result
    other = tmp_path / "other"
    shutil.copytree(case_dir, other)
    case = load_case(other)
    lab = np.asarray(case.labels.array).copy()
    lab[lab == int(Label.TUMOR)] = int(Label.LIVER)  # same grid, other labels
    idx = np.argwhere(lab == int(Label.LIVER))[len(np.argwhere(lab == int(Label.LIVER))) // 2]
    lab[tuple(idx)] = int(Label.TUMOR)
    save_case(Case(case.image, case.labels.with_array(lab), name="other"), other,
              overwrite=True)  # fmt: skip
    args = ("--territory-from", out, "--feeder", doc["feeders"][0]["branch_id"], "--tn", "4",
            "--lsf", "0.05", "--normal-dose-gy", "40")  # fmt: skip
    code, _, err = run_cli(capsys, "sirt", "partition", "--case", other, *args)
    assert_one_line_error(code, err, "another case's labels")
    assert doc["case_labels_sha256"] == labels_fingerprint(load_case(case_dir).labels)


def test_sirt_voxel_and_tace_per_territory(capsys, case_dir, result, tmp_path):
    """Voxel: with local deposition all the liver's activity lies in the territory, so the
    mean dose over the perfused voxels is CF A (1 - LSF) / their mass (density from the CT).
    TACE: the BSA dose x the territory's share of the liver volume."""
    from ioplan.anatomy import load_case

    out, doc = result
    best = doc["feeders"][0]
    spect = tmp_path / "s.nii.gz"
    code, _, err = run_cli(capsys, "sirt", "synthetic-spect", case_dir, "--out", spect)
    assert code == 0, err
    code, text, err = run_cli(
        capsys, "sirt", "voxel", "--spect", spect, "--ct", case_dir / "image.nii.gz",
        "--labels", case_dir / "labels.nii.gz", "--out", tmp_path / "v", "--activity-gbq", "1",
        "--case", case_dir, "--territory-from", out, "--feeder", best["branch_id"], "--json",
        "--lsf", "0",  # (without it, the shunt is the SPECT's lung counts)
    )  # fmt: skip
    assert code == 0, err
    r = json.loads(text)
    assert r["territory"]["branch_id"] == best["branch_id"]
    assert any("perfused territory" in n for n in r["notes"])
    case = load_case(case_dir)
    lab = np.asarray(case.labels.array)
    terr_ml = best["territory_ml"]
    st = r["structures"]
    got_ml = st["normal_liver"]["volume_ml"] + st["tumor"]["volume_ml"]
    assert got_ml == pytest.approx(terr_ml, abs=0.2)  # the DVHs cover the territory only
    liver = np.isin(lab, [Label.LIVER, Label.TUMOR])
    vml = case.labels.grid.voxel_volume_ml
    assert got_ml < liver.sum() * vml
    # energy balance: sum(dose x mass) over the territory = CF x A (LSF 0), 0 Gy elsewhere
    from ioplan.imaging import read_image

    dose = np.asarray(read_image(tmp_path / "v" / "dose.nii.gz").array, float)
    ct = np.asarray(read_image(case_dir / "image.nii.gz").array, float)
    mass_kg = np.clip((ct + 1000) / 1000, 1e-3, None) * vml / 1000
    mask = np.isin(
        np.asarray(read_image(out / "territories.nii.gz").array), best["territory_labels"]
    )
    assert (dose * mass_kg)[mask & liver].sum() == pytest.approx(49.67, rel=1e-3)  # float32 map
    assert np.all(dose[liver & ~mask] == 0)
    code, text, err = run_cli(
        capsys, "sirt", "tace", "--height-cm", "175", "--weight-kg", "80", "--case", case_dir,
        "--territory-from", out, "--feeder", best["branch_id"], "--json",
    )  # fmt: skip
    assert code == 0, err
    t = json.loads(text)
    assert t["doxorubicin_territory_mg"] == pytest.approx(
        t["doxorubicin_mg"] * best["territory_ml"] / doc["liver_ml"], abs=0.1
    )
