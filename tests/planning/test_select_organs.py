"""`select_treatment` / `ioplan select` per organ (issue 21): lung, kidney, bone, soft tissue.

Synthetic label volumes built here (2 mm voxels). The cut-offs asserted are the cited ones
(lung <= 3 cm: SIR 2021 position statement; kidney T1a <= 4 cm, T1b <= 7 cm: TNM 8th ed.;
R.E.N.A.L. points: Kutikov & Uzzo 2009). Distances are recounted independently by a k-d tree
over voxel centres (exact Euclidean distance, as the code's distance transform; tolerance
1e-6 mm for rounding to 0.1 mm in the output: 0.05 mm).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from ioplan.anatomy import Case, Label, save_case
from ioplan.cli import main
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume
from ioplan.planning import select_treatment

SP = 2.0


def _grid(extent_mm: float) -> Grid:
    n = round(2 * extent_mm / SP) + 1
    return Grid((n, n, n), (SP, SP, SP), (-extent_mm, -extent_mm, -extent_mm))


def _coords(g: Grid):
    z, y, x = g.axis_coordinates_mm()
    return z[:, None, None], y[None, :, None], x[None, None, :]


def _ball(g: Grid, centre_xyz, radius_mm) -> np.ndarray:
    z, y, x = _coords(g)
    cx, cy, cz = centre_xyz
    return (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius_mm**2


def _box(g: Grid, lo_xyz, hi_xyz) -> np.ndarray:
    z, y, x = _coords(g)
    return (
        (x >= lo_xyz[0]) & (x <= hi_xyz[0])
        & (y >= lo_xyz[1]) & (y <= hi_xyz[1])
        & (z >= lo_xyz[2]) & (z <= hi_xyz[2])
    )  # fmt: skip


def _case(g: Grid, lab: np.ndarray, img: np.ndarray | None = None, **kw) -> Case:
    if img is None:
        img = np.full(lab.shape, 40.0, np.float32)
    return Case(Volume(img.astype(np.float32), g), Volume(lab.astype(np.uint8), g), **kw)


def _kd_distance(lab: np.ndarray, g: Grid, tumour: np.ndarray, labels) -> float:
    """Independent recount: nearest voxel-centre distance (mm), tumour -> labels."""
    target = np.argwhere(np.isin(lab, [int(v) for v in labels])) * SP
    src = np.argwhere(tumour) * SP
    d, _ = cKDTree(target).query(src)
    return float(d.min())


# --- lung ---------------------------------------------------------------------------------


def _lung_case(tumour_diameter_mm: float, *, bronchus_gap_mm: float | None = None) -> Case:
    """A block of aerated lung (-850 HU) in muscle, a tumour at the centre."""
    g = _grid(50.0)
    lab = np.full(g.shape, int(Label.MUSCLE), np.uint8)
    lung = _box(g, (-40, -40, -40), (40, 40, 40))
    lab[lung] = int(Label.LUNG)
    r = tumour_diameter_mm / 2
    if bronchus_gap_mm is not None:  # a bronchus along z at x = r + gap
        x0 = r + bronchus_gap_mm
        lab[_box(g, (x0, -3, -40), (x0 + 4, 3, 40))] = int(Label.BRONCHUS)
    lab[_ball(g, (0, 0, 0), r)] = int(Label.TUMOR)
    img = np.where(lab == int(Label.LUNG), -850.0, 40.0)
    return _case(g, lab, img)


def test_lung_is_inferred_and_a_25_mm_tumour_is_within_3_cm():
    sel = select_treatment(_lung_case(25.0))
    assert sel.organ == "lung" and sel.organ_source == "inferred" and not sel.organ_given
    assert sel.modality is not None and "ablation" in sel.recommendation
    assert sel.ablation_within_guidelines is True and sel.outside_guidelines == ()
    # the voxelised 25 mm ball's volume-equivalent diameter (2 mm voxels: within 1 voxel)
    assert abs(sel.measurements["diameters_mm"][0] - 25.0) < SP
    assert all(r["source"] for r in sel.reasons)
    assert any("SIR" in r["source"] or "Genshaft" in r["source"] for r in sel.reasons)
    # the lung's rules, not the liver's (BCLC is a liver staging system)
    assert not any("BCLC" in r["source"] for r in sel.reasons)


def test_lung_tumour_of_35_mm_is_named_larger_than_3_cm():
    sel = select_treatment(_lung_case(35.0))
    assert sel.ablation_within_guidelines is False
    assert any("larger than 3 cm" in t for t in sel.outside_guidelines)
    assert any("larger than 3 cm" in r["reason"] for r in sel.reasons)
    assert "larger than 3 cm" in sel.recommendation


def test_lung_counts_tumours_per_lung():
    """Four 8 mm tumours in one lung: more than 3 per lung; the same four split 2 + 2 between
    two separate lungs: within the count."""
    g = _grid(60.0)
    lab = np.full(g.shape, int(Label.MUSCLE), np.uint8)
    right, left = _box(g, (-55, -50, -50), (-5, 50, 50)), _box(g, (5, -50, -50), (55, 50, 50))
    lab[right | left] = int(Label.LUNG)
    one_lung = lab.copy()
    for c in ((-30, -25, 0), (-30, 25, 0), (-30, 0, -25), (-30, 0, 25)):
        one_lung[_ball(g, c, 4.0)] = int(Label.TUMOR)
    sel = select_treatment(_case(g, one_lung))
    assert sel.measurements["tumours_per_lung_max"] == 4
    assert sel.ablation_within_guidelines is False and sel.modality is None
    assert any("more than 3 per lung" in t for t in sel.outside_guidelines)
    split = lab.copy()
    for c in ((-30, -25, 0), (-30, 25, 0), (30, 0, -25), (30, 0, 25)):
        split[_ball(g, c, 4.0)] = int(Label.TUMOR)
    sel = select_treatment(_case(g, split))
    assert sel.measurements["tumours"] == 4 and sel.measurements["tumours_per_lung_max"] == 2
    assert sel.ablation_within_guidelines is True


@pytest.mark.parametrize(
    "diameter_mm, gap_mm, central", [(20.0, 8.0, True), (20.0, 30.0, False), (10.0, 42.0, False)]
)
def test_central_lung_tumour_is_flagged_by_bronchus_distance(diameter_mm, gap_mm, central):
    """The last case lies beyond the 40 mm search box around the tumour: the whole volume is
    searched then, and the distance must still match the recount."""
    case = _lung_case(diameter_mm, bronchus_gap_mm=gap_mm)
    sel = select_treatment(case)
    lab = np.asarray(case.labels.array)
    ref = _kd_distance(lab, case.labels.grid, lab == int(Label.TUMOR), (Label.BRONCHUS,))
    assert abs(sel.measurements["bronchus_mm"] - ref) <= 0.05 + 1e-6
    assert (ref < 20.0) is central  # RTOG central zone: 2 cm around the proximal bronchi
    assert any("central tumour" in r["reason"] for r in sel.reasons) is central


def test_emphysema_index_is_the_share_of_lung_below_950_hu():
    case = _lung_case(20.0)
    lab = np.asarray(case.labels.array)
    img = np.asarray(case.image.array).copy()
    lung_idx = np.flatnonzero(lab == int(Label.LUNG))
    k = len(lung_idx) // 5  # exactly 20 % of the lung voxels made -980 HU
    img.flat[lung_idx[:k]] = -980.0
    sel = select_treatment(_case(case.labels.grid, lab, img))
    assert abs(sel.measurements["emphysema_laa950_pct"] - 100.0 * k / len(lung_idx)) < 0.05
    assert any("emphysema" in r["reason"] for r in sel.reasons)


# --- kidney -------------------------------------------------------------------------------


def _kidney_case(tumour_diameter_mm: float, centre_xyz=(0, 0, 25), *, cs: bool = True) -> Case:
    """A kidney block (fat around), its collecting system a slab at the bottom (z <= -20)."""
    g = _grid(70.0)
    lab = np.full(g.shape, int(Label.FAT), np.uint8)
    lab[_box(g, (-45, -45, -60), (45, 45, 60))] = int(Label.KIDNEY)
    if cs:
        lab[_box(g, (-20, -20, -40), (20, 20, -20))] = int(Label.COLLECTING_SYSTEM)
    lab[_ball(g, centre_xyz, tumour_diameter_mm / 2)] = int(Label.TUMOR)
    return _case(g, lab)


def test_kidney_t1a_35_mm_is_in_and_t1b_50_mm_is_named():
    sel = select_treatment(_kidney_case(35.0))
    assert sel.organ == "kidney" and sel.ablation_within_guidelines is True
    assert sel.measurements["t_stage_by_size"] == "T1a"
    assert sel.modality is not None
    big = select_treatment(_kidney_case(50.0))
    assert big.measurements["t_stage_by_size"] == "T1b"
    assert big.ablation_within_guidelines is False
    assert any("larger than 4 cm" in t for t in big.outside_guidelines)
    assert any("T1a <= 4 cm" in t for t in big.outside_guidelines)
    t2 = select_treatment(_kidney_case(76.0, (0, 0, 15)))  # > 7 cm: T2, no ablation
    assert t2.measurements["t_stage_by_size"] == "T2" and t2.modality is None
    assert any("larger than 7 cm" in t for t in t2.outside_guidelines)
    assert t2.measurements["renal_nephrometry"]["R"] == 3  # >= 7 cm


@pytest.mark.parametrize("z_mm, near", [(0.0, True), (32.0, False)])
def test_collecting_system_within_reach_of_heat_asks_for_cryo(z_mm, near):
    """A 20 mm tumour whose edge lies 10 mm (z=0) or 42 mm (z=32) from the collecting system
    (its top at z=-20): heat is limited to >= 20 mm from it, so the near one gets cryo or
    pyeloperfusion."""
    case = _kidney_case(20.0, (0, 0, z_mm))
    sel = select_treatment(case)
    lab = np.asarray(case.labels.array)
    ref = _kd_distance(lab, case.labels.grid, lab == int(Label.TUMOR), (Label.COLLECTING_SYSTEM,))
    assert abs(sel.measurements["collecting_system_mm"] - ref) <= 0.05 + 1e-6
    assert (ref < 20.0) is near
    advice = any("pyeloperfusion" in r["reason"] for r in sel.reasons)
    assert advice is near
    assert (sel.modality == "cryo") is near
    # R.E.N.A.L. N points from the recounted distance (>= 7: 1, > 4 and < 7: 2, <= 4: 3)
    n_ref = 1 if ref >= 7 else (2 if ref > 4 else 3)
    assert sel.measurements["renal_nephrometry"]["N"] == n_ref


def test_renal_score_exophytic_share_from_a_ball_across_the_kidney_surface():
    """A ball of radius 10 mm centred 5 mm outside the kidney's flat lateral surface
    (x = 45): the share of its surface outside is (1 + h/r)/2 = 0.75 (spherical cap), so
    E = 1 (>= 50 % exophytic); a ball deep inside is entirely endophytic (E = 3)."""
    exo = select_treatment(_kidney_case(20.0, (50, 0, 20))).measurements["renal_nephrometry"]
    # one-voxel shell on a 2 mm grid: the share within 0.1 of the analytic cap area
    assert abs(exo["exophytic_fraction"] - 0.75) < 0.1 and exo["E"] == 1
    assert exo["R"] == 1  # 2 cm <= 4 cm
    endo = select_treatment(_kidney_case(20.0, (0, 0, 20))).measurements["renal_nephrometry"]
    assert endo["E"] == 3 and endo["exophytic_fraction"] < 0.05
    assert endo["L"] is None and endo["partial_score_REN"] == endo["R"] + endo["E"] + endo["N"]


# --- bone ---------------------------------------------------------------------------------


def _vertebra_case(cord_gap_mm: float) -> Case:
    """A vertebral body block with the spinal cord behind it (+y, posterior in LPS)."""
    g = _grid(50.0)
    lab = np.full(g.shape, int(Label.MUSCLE), np.uint8)
    lab[_box(g, (-20, -20, -15), (20, 20, 15))] = int(Label.VERTEBRA)
    r = 8.0
    y0 = r + cord_gap_mm
    lab[_box(g, (-5, y0, -40), (5, y0 + 10, 40))] = int(Label.SPINAL_CORD)
    lab[_ball(g, (0, 0, 0), r)] = int(Label.TUMOR)
    return _case(g, lab, tumors=({"histology": "metastasis"},))


@pytest.mark.parametrize("gap_mm, protect", [(6.0, True), (24.0, False)])
def test_cord_within_1_cm_asks_for_thermal_protection(gap_mm, protect):
    case = _vertebra_case(gap_mm)
    sel = select_treatment(case)
    assert sel.organ == "bone" and sel.organ_source == "inferred"
    lab = np.asarray(case.labels.array)
    ref = _kd_distance(lab, case.labels.grid, lab == int(Label.TUMOR), (Label.SPINAL_CORD,))
    assert abs(sel.measurements["spinal_cord_mm"] - ref) <= 0.05 + 1e-6
    assert (ref < 10.0) is protect
    asked = any("thermal protection" in r["reason"] for r in sel.reasons)
    assert asked is protect
    if protect:  # the cited juxtaneural limits (Sag & Husain 2022: 10-45 degC)
        assert any("45 degC" in r["reason"] for r in sel.reasons)
    assert sel.measurements["vertebral"] and "cementoplasty" in sel.recommendation
    assert any("MOTION" in r["source"] for r in sel.reasons)


# --- organ given, other organs, CLI -------------------------------------------------------


def test_organ_given_overrides_inference_and_soft_tissue_has_no_borrowed_rules():
    case = _lung_case(20.0)
    sel = select_treatment(case, "kidney")
    assert sel.organ == "kidney" and sel.organ_source == "option" and sel.organ_given
    # applied as asked, but not silently: the labels put the tumour in the lung
    assert any("put it in the lung" in n for n in sel.notes)
    assert select_treatment(case, "lung").notes == ()
    soft = select_treatment(case, "soft-tissue")
    assert soft.organ == "soft_tissue" and soft.modality == "cryo"
    assert soft.ablation_within_guidelines is None  # no cited size rule speaks
    assert any("Papalexis" in r["source"] for r in soft.reasons)
    assert not any("BCLC" in r["source"] for r in soft.reasons)
    with pytest.raises(InputError, match="unknown organ"):
        select_treatment(case, "spleen")
    with pytest.raises(InputError, match="unknown histology"):
        select_treatment(case, histology="melanoma-ish")
    nsclc = select_treatment(case, histology="nsclc")
    assert nsclc.measurements["histology"] == "nsclc"
    assert any("stage I" in r["reason"] for r in nsclc.reasons)


def test_to_dict_is_json_and_keeps_every_key():
    d = select_treatment(_kidney_case(30.0)).to_dict()
    back = json.loads(json.dumps(d))
    for k in ("recommendation", "modality", "reasons", "measurements", "disclaimer", "organ",
              "organ_source", "organ_given", "ablation_within_guidelines",
              "outside_guidelines"):  # fmt: skip
        assert k in back
    assert back == d


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_select_organ_option_json_keys_and_bad_organ(tmp_path, capsys):
    save_case(_lung_case(35.0), tmp_path / "c")
    code, out, err = _run(capsys, "select", str(tmp_path / "c"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["organ"] == "lung" and doc["organ_given"] is False
    assert doc["organ_source"] == "inferred"
    assert any("larger than 3 cm" in t for t in doc["outside_guidelines"])
    code, out, err = _run(capsys, "select", str(tmp_path / "c"), "--json", "--organ", "Kidney")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["organ"] == "kidney" and doc["organ_given"] is True
    code, out, err = _run(
        capsys, "select", str(tmp_path / "c"), "--histology", "nsclc", "--organ", "lung"
    )
    assert code == 0 and "organ: lung (given)" in out and "larger than 3 cm" in out
    code, out, err = _run(capsys, "select", str(tmp_path / "c"), "--organ", "spleen")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "unknown organ" in err
    assert "Traceback" not in err
    code, out, err = _run(capsys, "select", str(tmp_path / "c"), "--histology", "x")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "histology" in err


def test_liver_case_keeps_its_rules_and_organ_from_case_toml_is_given():
    """A tumour in a liver block: the liver's rules (BCLC) as before, organ inferred; the
    same labels with ``organ = "kidney"`` in case.toml take the kidney's rules."""
    g = _grid(50.0)
    lab = np.full(g.shape, int(Label.FAT), np.uint8)
    lab[_box(g, (-40, -40, -40), (40, 40, 40))] = int(Label.LIVER)
    lab[_ball(g, (0, 0, 0), 8.0)] = int(Label.TUMOR)
    liver = select_treatment(_case(g, lab))
    assert liver.organ == "liver" and liver.organ_source == "inferred"
    assert liver.modality == "mwa" and any("BCLC" in r["source"] for r in liver.reasons)
    d = liver.to_dict()
    for k in ("large_vessel_mm", "bowel_or_gallbladder_mm", "bile_duct_mm", "capsule_mm",
              "margin_mm", "tumours", "diameters_mm", "histology", "imaging"):  # fmt: skip
        assert k in d["measurements"]
    as_kidney = select_treatment(_case(g, lab, organ="kidney"))
    assert as_kidney.organ == "kidney" and as_kidney.organ_source == "case"
    assert as_kidney.organ_given and not any("BCLC" in r["source"] for r in as_kidney.reasons)


def test_hcc_evidence_is_cited_for_hcc_only():
    """An NSCLC or RCC metastasis in the liver was told "ablation is first line [BCLC]"
    with the HCC margin evidence; colorectal metastases cite ESMO 2023."""
    g = _grid(50.0)
    lab = np.full(g.shape, int(Label.FAT), np.uint8)
    lab[_box(g, (-40, -40, -40), (40, 40, 40))] = int(Label.LIVER)
    lab[_ball(g, (0, 0, 0), 8.0)] = int(Label.TUMOR)
    case = _case(g, lab)
    for histology in ("nsclc", "rcc", "other_metastasis"):
        sel = select_treatment(case, histology=histology)
        sources = " ".join(r["source"] for r in sel.reasons)
        assert "Reig" not in sources and "Laimer" not in sources  # BCLC 2022, HCC margins
        assert "No histology-specific" in sources
    crc = select_treatment(case, histology="colorectal_metastasis")
    assert any("ESMO" in r["source"] for r in crc.reasons)
    assert crc.measurements["margin_mm"] == 10.0
    hcc = select_treatment(case, histology="hcc")
    assert any("BCLC" in r["source"] for r in hcc.reasons)


def test_an_organ_without_rules_says_so_instead_of_borrowing_the_liver_s():
    from ioplan.planning._select_organs import select_organ

    case = _lung_case(20.0)
    lab = np.asarray(case.labels.array)
    comps = (lab == int(Label.TUMOR)).astype(int)
    rec, mod, reasons, _meas, within, _outside = select_organ(
        "pancreas", lab, comps, [20.0], (SP, SP, SP), "unknown", None, "CT"
    )
    assert "no selection rules for pancreas" in rec and mod is None and within is None
    assert not any("BCLC" in r["source"] for r in reasons)


def test_every_threshold_in_selection_toml_names_a_known_source():
    from ioplan.planning._select_organs import organ_rules

    rules = organ_rules()
    sources = rules["sources"]
    n = 0
    for organ in ("lung", "kidney", "bone", "soft_tissue"):
        for key, value in rules[organ].items():
            if key.endswith("_source"):
                n += 1
                assert value == "ioplan" or value in sources, (organ, key, value)
                assert key[: -len("_source")] in rules[organ] or key == "neural_limits_source"
            else:
                # every number has its source next to it (neural limits share one)
                assert f"{key}_source" in rules[organ] or key.startswith("neural_m"), key
    assert n >= 15
