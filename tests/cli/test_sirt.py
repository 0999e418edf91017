"""``ioplan sirt ...``: every defect of issue 15 (reliability) reproduced, property-based
tests of the numeric options (exit 0, or one line and exit 2; analytic answers checked
against formulas written here), corrupt files, and the help stating units and ranges."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_one_line_error, run_cli
from ioplan.anatomy import Label
from ioplan.imaging import Grid, Volume, write_nifti

# numbers a user may type: the plausible, the edges, the absurd and the non-finite
_ANY = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, -1.0, 1e-12, 1e30, 0.5, 1.0, 100.0]),
)
_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _ok_or_one_line(code, out, err):
    """Exit 0, or one line ``error: ...`` and exit 2: never a traceback or internal error."""
    if code == 0:
        return json.loads(out)
    assert_one_line_error(code, err)
    return None


# ---- single compartment -----------------------------------------------------------------
def _mird_activity(dose_gy, mass_kg, lsf, cf=49.67):
    """MIRD single compartment, written independently: A = D m / (CF (1 - LSF))."""
    return dose_gy * mass_kg / (cf * (1.0 - lsf))


@_SETTINGS
@given(
    mass=st.one_of(_ANY, st.floats(0.05, 5.0)),
    lsf=st.one_of(_ANY, st.floats(0.0, 0.99)),
    dose=st.one_of(_ANY, st.floats(1.0, 1000.0)),
    residual=st.one_of(_ANY, st.floats(0.0, 0.99)),
    hours=st.one_of(_ANY, st.floats(0.0, 720.0)),
)
def test_single_numeric_options_and_the_mird_formula(capsys, mass, lsf, dose, residual, hours):
    code, out, err = run_cli(
        capsys, "sirt", "single", "--mass-kg", mass, "--lsf", lsf, "--dose-gy", dose,
        "--residual", residual, "--decay-hours", hours, "--json",
    )  # fmt: skip
    doc = _ok_or_one_line(code, out, err)
    valid = (
        0 < mass <= 5 and 0 <= lsf < 1 and 0 < dose <= 1000 and 0 <= residual < 1
        and 0 <= hours <= 720
    )  # fmt: skip
    assert (doc is not None) == valid, (code, err)
    if doc is None:
        return
    a = _mird_activity(dose, mass, lsf)
    # the output is rounded to 5 decimals (GBq): 1e-5 absolute, plus float rounding
    assert doc["activity_gbq"] == pytest.approx(a, rel=1e-9, abs=1e-5)
    # vial residual then physical decay, Y-90 half-life 64.1 h (ICRP 107)
    order = a / (1 - residual)
    calib = order * 2.0 ** (hours / 64.1)
    assert doc["order_activity_gbq"] == pytest.approx(order, rel=1e-9, abs=1e-5)
    assert doc["calibration_activity_gbq"] == pytest.approx(calib, rel=1e-9, abs=1e-5)
    # lung dose CF A LSF / 1 kg (the convention when no lung mass is given), rounded to 1e-4
    assert doc["lung_dose_gy"] == pytest.approx(49.67 * a * lsf, rel=1e-9, abs=1e-4)


def test_single_refuses_a_zero_lung_mass_and_applies_the_default_only_when_not_given(capsys):
    """Was: --lung-mass-kg 0 silently became 1 kg."""
    base = ("sirt", "single", "--mass-kg", "1", "--dose-gy", "100", "--lsf", "0.1", "--json")
    code, _, err = run_cli(capsys, *base, "--lung-mass-kg", "0")
    assert_one_line_error(code, err, "--lung-mass-kg", "got 0")
    code, out, _ = run_cli(capsys, *base, "--lung-mass-kg", "0.5")
    a = _mird_activity(100, 1, 0.1)
    assert json.loads(out)["lung_dose_gy"] == pytest.approx(49.67 * a * 0.1 / 0.5, abs=1e-4)


def test_sphere_is_a_closed_vocabulary(capsys):
    """Was: --sphere gold accepted silently (no limit checked)."""
    code, _, err = run_cli(capsys, "sirt", "single", "--mass-kg", "1", "--dose-gy", "100",
                           "--lsf", "0.1", "--sphere", "gold")  # fmt: skip
    assert_one_line_error(code, err, "--sphere", "gold", "glass", "resin")
    # the command's choices are the library's
    from ioplan.cli.sirt import _Sphere
    from ioplan.embolization import Sphere

    assert {s.value for s in _Sphere} == {s.value for s in Sphere}
    code, out, err = run_cli(capsys, "sirt", "single", "--mass-kg", "1", "--dose-gy", "150",
                             "--lsf", "0.05", "--sphere", "RESIN", "--json")  # fmt: skip
    assert code == 0 and "40 Gy for resin" in " ".join(json.loads(out)["warnings"])


# ---- reports ----------------------------------------------------------------------------
_SINGLE = ("sirt", "single", "--mass-kg", "1", "--dose-gy", "100", "--lsf", "0.1")


def test_report_onto_a_file_is_one_line(capsys, tmp_path):
    """Was: internal error when --report names an existing file."""
    f = tmp_path / "rep"
    f.write_text("mine")
    code, _, err = run_cli(capsys, *_SINGLE, "--report", f)
    assert_one_line_error(code, err, str(f))
    assert f.read_text() == "mine"


@pytest.mark.parametrize(
    "cmd",
    [
        _SINGLE,
        ("sirt", "bsa", "--height-cm", "175", "--weight-kg", "80", "--tumor-ml", "300",
         "--normal-ml", "1500"),
    ],
)  # fmt: skip
def test_an_edited_report_is_kept_without_overwrite(capsys, tmp_path, cmd):
    """Was: sirt single|bsa --report DIR silently replaced an edited report."""
    rep = tmp_path / "r"
    assert run_cli(capsys, *cmd, "--report", rep)[0] == 0
    (rep / "report.html").write_text("edited by hand")
    code, _, err = run_cli(capsys, *cmd, "--report", rep)
    assert_one_line_error(code, err, "--overwrite")
    assert (rep / "report.html").read_text() == "edited by hand"
    code, _, _ = run_cli(capsys, *cmd, "--report", rep, "--overwrite")
    assert code == 0 and "edited" not in (rep / "report.html").read_text()
    # written through a temporary folder renamed into place: nothing left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    assert sorted(p.name for p in rep.iterdir()) == ["ioplan-complete.json", "report.html"]


def test_overwrite_never_deletes_files_the_command_did_not_write(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, *_SINGLE, "--report", tmp_path, "--overwrite")
    assert_one_line_error(code, err, "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_interrupted_report_leaves_the_earlier_one(monkeypatch, tmp_path):
    from ioplan.embolization import single_compartment, write_sirt_report

    doc = single_compartment(1.0, 0.1, dose_gy=100).to_dict()
    write_sirt_report(doc, tmp_path / "r", "first")

    def boom(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr("ioplan.embolization._report.write_page", boom)  # mid-write
    with pytest.raises(KeyboardInterrupt):
        write_sirt_report(doc, tmp_path / "r", "second", overwrite=True)
    monkeypatch.undo()
    assert "first" in (tmp_path / "r" / "report.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


# ---- partition, lsf: contradictory inputs ----------------------------------------------
_PART = ("sirt", "partition", "--tumor-kg", "0.15", "--normal-kg", "1.35", "--lsf", "0.05")


def test_tn_and_counts_together_are_refused(capsys):
    """Was: --tn won silently over --tumor-counts/--normal-counts."""
    code, _, err = run_cli(capsys, *_PART, "--tn", "4", "--tumor-counts", "600",
                           "--normal-counts", "1350", "--activity-gbq", "1")  # fmt: skip
    assert_one_line_error(code, err, "--tn", "--tumor-counts", "not both")
    code, _, err = run_cli(capsys, *_PART, "--tumor-counts", "600", "--activity-gbq", "1")
    assert_one_line_error(code, err, "--normal-counts")


def test_spect_counts_and_planar_views_together_are_refused(capsys):
    """Was: --planar won silently over --lung-counts/--liver-counts."""
    code, _, err = run_cli(capsys, "sirt", "lsf", "--lung-counts", "40", "--liver-counts",
                           "720", "--planar", "1,1,1,1")  # fmt: skip
    assert_one_line_error(code, err, "--planar", "--lung-counts", "not both")


@_SETTINGS
@given(
    mt=st.one_of(_ANY, st.floats(0.01, 5.0)),
    mn=st.one_of(_ANY, st.floats(0.05, 5.0)),
    tn=st.one_of(_ANY, st.floats(0.1, 100.0)),
    lsf=st.one_of(_ANY, st.floats(0.0, 0.99)),
    dn=st.one_of(_ANY, st.floats(1.0, 1000.0)),
)
def test_partition_numeric_options_and_the_partition_formula(capsys, mt, mn, tn, lsf, dn):
    code, out, err = run_cli(
        capsys, "sirt", "partition", "--tumor-kg", mt, "--normal-kg", mn, "--tn", tn,
        "--lsf", lsf, "--normal-dose-gy", dn, "--json",
    )  # fmt: skip
    doc = _ok_or_one_line(code, out, err)
    valid = 0 < mt <= 5 and 0 < mn <= 5 and 0 < tn <= 100 and 0 <= lsf < 1 and 0 < dn <= 1000
    assert (doc is not None) == valid, (code, err)
    if doc is None:
        return
    # Ho et al. 1996: D_N = CF A (1 - LSF) / (T/N M_T + M_N), so A = D_N (T/N M_T + M_N) / ...
    a = dn * (tn * mt + mn) / (49.67 * (1 - lsf))
    assert doc["activity_gbq"] == pytest.approx(a, rel=1e-9, abs=1e-5)  # 5 decimals printed
    assert doc["tumor_dose_gy"] == pytest.approx(tn * dn, rel=1e-9, abs=1e-4)


@_SETTINGS
@given(counts=st.lists(_ANY, min_size=4, max_size=4))
def test_lsf_planar_numeric_values(capsys, counts):
    la, lp, va, vp = counts
    code, out, err = run_cli(capsys, "sirt", "lsf", "--planar", ",".join(map(repr, counts)),
                             "--json")  # fmt: skip
    doc = _ok_or_one_line(code, out, err)
    finite = all(math.isfinite(c) and 0 <= c <= 1e15 for c in counts)
    if not finite:
        assert doc is None
        return
    gl, gv = math.sqrt(la * lp), math.sqrt(va * vp)
    if gl + gv == 0:
        assert doc is None
    else:
        assert doc["lsf"] == pytest.approx(gl / (gl + gv), abs=1e-6)  # printed to 6 decimals


# ---- bsa, tace --------------------------------------------------------------------------
@_SETTINGS
@given(
    h=st.one_of(_ANY, st.floats(100, 250)),
    w=st.one_of(_ANY, st.floats(20, 300)),
    vt=st.one_of(_ANY, st.floats(1, 5000)),
    lsf=st.one_of(_ANY, st.floats(0, 0.09)),
)
def test_bsa_numeric_options_and_the_resin_formula(capsys, h, w, vt, lsf):
    code, out, err = run_cli(
        capsys, "sirt", "bsa", "--height-cm", h, "--weight-kg", w, "--tumor-ml", vt,
        "--normal-ml", "1500", "--lsf", lsf, "--json",
    )  # fmt: skip
    doc = _ok_or_one_line(code, out, err)
    valid = 100 <= h <= 250 and 20 <= w <= 300 and 0 < vt <= 5000 and 0 <= lsf < 1
    assert (doc is not None) == valid, (code, err)
    if doc is None or lsf >= 0.10:
        return
    # DuBois BSA and the resin IFU formula (no reduction below a 10 % shunt)
    bsa = 0.20247 * (h / 100) ** 0.725 * w**0.425
    assert doc["activity_gbq"] == pytest.approx(bsa - 0.2 + vt / (vt + 1500), abs=1e-5)


@_SETTINGS
@given(h=_ANY, w=_ANY, mg=st.one_of(_ANY, st.floats(50, 75)))
def test_tace_numeric_options(capsys, h, w, mg):
    code, out, err = run_cli(capsys, "sirt", "tace", "--height-cm", h, "--weight-kg", w,
                             "--mg-m2", mg, "--json")  # fmt: skip
    doc = _ok_or_one_line(code, out, err)
    assert (doc is not None) == (100 <= h <= 250 and 20 <= w <= 300 and 50 <= mg <= 75)


# ---- territories: the CSV --------------------------------------------------------------
_HEAD = "name,tumor_kg,normal_kg,tn,normal_dose_gy\n"


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (_HEAD.encode() + "\xe9t\xe9,0.1,1,4,40\n".encode("latin-1"), ("not UTF-8", "0xe9")),
        (b"name,tumor_kg,normal_kg,normal_dose_gy\nright,0.1,1,40\n", ("missing column", "tn")),
        (_HEAD.encode() + b"right,0.1,1,x,40\n", ("row 2, column tn", "not a number", "'x'")),
        (_HEAD.encode() + b"right,0.1,1,4,40\nright,0.2,1,4,40\n",
         ("row 3, column name", "'right'", "row 2")),
        (_HEAD.encode() + b"right,0.1,1,-4,40\n", ("row 2, column tn", "> 0")),
        (_HEAD.encode() + b"right,0.1,1,nan,40\n", ("row 2, column tn",)),
        (_HEAD.encode() + b"right,0.1,1,4\n", ("row 2", "4 values for 5 columns")),
        (_HEAD.encode() + b"right,0.1,1,4,\n", ("row 2", "exactly one")),
        (b"name,tumor_kg,normal_kg,tn,normal_dose_gy,tumour_kg\n", ("unknown column", "tumour_kg")),
        (b"", ("empty",)),
        (_HEAD.encode(), ("no territory rows",)),
        (b"name,tumor_kg\x00\n", ("NUL",)),
    ],
)  # fmt: skip
def test_corrupt_territory_tables(capsys, tmp_path, content, fragments):
    f = tmp_path / "t.csv"
    f.write_bytes(content)
    code, _, err = run_cli(capsys, "sirt", "territories", f, "--lsf", "0.05")
    assert_one_line_error(code, err, *fragments)


def test_territory_table_reading_lives_in_the_library(tmp_path):
    from ioplan.embolization import read_territories

    f = tmp_path / "t.csv"
    # UTF-8 with a byte-order mark (Excel's "CSV UTF-8"), a target column left empty
    f.write_text("\ufeffname,tumor_kg,normal_kg,tn,normal_dose_gy,activity_gbq\n"
                 "droite,0.15,1.35,4,40,\ngauche,0.05,0.45,4,,0.5\n", encoding="utf-8")  # fmt: skip
    items = read_territories(f)
    assert [it["name"] for it in items] == ["droite", "gauche"]
    assert items[0]["normal_dose_gy"] == 40 and items[1]["activity_gbq"] == 0.5
    assert "activity_gbq" not in items[0]


# ---- synthetic-spect and voxel: images -------------------------------------------------
def _labels_case():
    """Label map and CT: a liver block with a tumour and a lung (4 mm voxels)."""
    g = Grid((20, 24, 24), (4.0, 4.0, 4.0))
    lab = np.zeros(g.shape, np.uint8)
    lab[4:16, 4:20, 4:16] = int(Label.LIVER)
    lab[8:12, 8:12, 8:12] = int(Label.TUMOR)
    lab[4:16, 4:20, 18:22] = int(Label.LUNG)
    ct = np.where(lab == int(Label.LUNG), -700.0, 40.0).astype(np.float32)
    return g, lab, ct


@pytest.fixture(scope="module")
def spect_case(tmp_path_factory, small_case):
    """The session's small phantom case, saved once."""
    from ioplan.anatomy import save_case

    return save_case(small_case, tmp_path_factory.mktemp("sirt-case") / "case")


def test_synthetic_spect_bad_options_are_one_line_and_checked_before_work(
    capsys, tmp_path, spect_case
):
    """Were internal errors (--tn -1, --total-counts 1e30, --seed -1, --out x.txt) and a hang
    (--fwhm-mm 1e6)."""
    base = ("sirt", "synthetic-spect", spect_case)
    out = tmp_path / "s.nii.gz"
    for opt, val, frag in (
        ("--tn", "-1", "--tn"),
        ("--total-counts", "1e30", "--total-counts"),
        ("--seed", "-1", "--seed"),
        ("--fwhm-mm", "1e6", "--fwhm-mm"),
        ("--lsf", "5", "percentage"),
    ):
        code, _, err = run_cli(capsys, *base, "--out", out, opt, val)
        assert_one_line_error(code, err, frag)
    code, _, err = run_cli(capsys, *base, "--out", tmp_path / "x.txt")
    assert_one_line_error(code, err, "x.txt", ".nii")
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cli(capsys, *base, "--out", blocker / "s.nii.gz")
    assert_one_line_error(code, err, str(blocker))
    # the largest FWHM allowed finishes (the kernel is cut at the image size)
    code, _, err = run_cli(capsys, *base, "--out", out, "--fwhm-mm", "100")
    assert code == 0, err
    code, _, err = run_cli(capsys, *base, "--out", out)
    assert_one_line_error(code, err, "--overwrite")


def test_synthetic_spect_overwrite_replaces_only_its_own_file(capsys, tmp_path, spect_case):
    """--overwrite onto the case's own image.nii.gz replaced the patient's CT (exit 0)."""
    import shutil

    case = tmp_path / "case"
    shutil.copytree(spect_case, case)
    before = (case / "image.nii.gz").read_bytes()
    code, _, err = run_cli(capsys, "sirt", "synthetic-spect", case, "--out",
                           case / "image.nii.gz", "--overwrite")  # fmt: skip
    assert_one_line_error(code, err, "not a synthetic SPECT")
    assert (case / "image.nii.gz").read_bytes() == before
    # an earlier synthetic SPECT is replaced: another seed gives other counts
    out = tmp_path / "s.nii.gz"
    assert run_cli(capsys, "sirt", "synthetic-spect", case, "--out", out)[0] == 0
    first = out.read_bytes()
    code, _, err = run_cli(capsys, "sirt", "synthetic-spect", case, "--out", out, "--overwrite",
                           "--seed", "3")  # fmt: skip
    assert code == 0, err
    assert out.read_bytes() != first


def test_synthetic_spect_of_a_corrupt_case(capsys, tmp_path, spect_case):
    import shutil

    case = tmp_path / "case"
    shutil.copytree(spect_case, case)
    (case / "case.toml").write_bytes(b"\xff\xfe not toml")
    code, _, err = run_cli(capsys, "sirt", "synthetic-spect", case, "--out", tmp_path / "s.nii")
    assert_one_line_error(code, err)
    code, _, err = run_cli(capsys, "sirt", "synthetic-spect", tmp_path / "nothing", "--out",
                           tmp_path / "s.nii")  # fmt: skip
    assert_one_line_error(code, err)


def test_huge_fwhm_is_a_flat_blur_that_keeps_the_counts():
    """The kernel is cut at the image size: the expected counts are still the total asked
    (Poisson: within 5 standard deviations, sqrt(1e6) = 1000)."""
    from ioplan.embolization import synthetic_spect

    g = Grid((10, 12, 12), (4.0, 4.0, 4.0))
    lab = np.full(g.shape, int(Label.LIVER), np.uint8)
    s = synthetic_spect(Volume(lab, g), fwhm_mm=100.0, total_counts=1e6, seed=2)
    assert abs(float(np.asarray(s.array).sum()) - 1e6) < 5000


def test_voxel_corrupt_images_and_swapped_inputs(capsys, tmp_path):
    g, lab, ct = _labels_case()
    spect = np.where(lab > 0, 100.0, 0.0).astype(np.float32)
    for name, arr in (("s", spect), ("c", ct), ("l", lab)):
        write_nifti(Volume(arr, g), tmp_path / f"{name}.nii.gz")
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b not a gzip stream")
    (tmp_path / "text.nii").write_text("hello")

    def voxel(s="s.nii.gz", c="c.nii.gz", la="l.nii.gz", *more):
        return run_cli(capsys, "sirt", "voxel", "--spect", tmp_path / s, "--ct", tmp_path / c,
                       "--labels", tmp_path / la, "--activity-gbq", "1", "--out",
                       tmp_path / "v", *more)  # fmt: skip

    for args in (("bad.nii.gz",), ("s.nii.gz", "text.nii"), ("s.nii.gz", "c.nii.gz", "no.nii")):
        code, _, err = voxel(*args)
        assert_one_line_error(code, err)
    # the CT given as labels (a CT is not a label map)
    code, _, err = voxel("s.nii.gz", "l.nii.gz", "c.nii.gz")
    assert_one_line_error(code, err, "label map")
    code, _, err = voxel("s.nii.gz", "c.nii.gz", "l.nii.gz", "--method", "monte-carlo")
    assert_one_line_error(code, err, "--method", "ldm", "kernel")
    code, _, err = voxel("s.nii.gz", "c.nii.gz", "l.nii.gz", "--lung-mass-kg", "0")
    assert_one_line_error(code, err, "--lung-mass-kg")
    assert not (tmp_path / "v").exists()
    code, out, err = voxel("s.nii.gz", "c.nii.gz", "l.nii.gz", "--json", "--lsf", "0")
    assert code == 0, err
    # the local deposition dose of a uniform liver without shunt is CF A / M (M at 1.04
    # g/mL, 40 HU; the SPECT's lung counts would otherwise set the shunt)
    perfused_kg = (lab == int(Label.LIVER)).sum() + (lab == int(Label.TUMOR)).sum()
    perfused_kg *= 0.064 * 1.04 / 1000  # 4 mm voxels: 0.064 mL
    doc = json.loads(out)
    assert doc["structures"]["normal_liver"]["mean_gy"] == pytest.approx(
        49.67 * 1.0 / perfused_kg,
        rel=1e-4,  # float32 dose map, 4 decimals printed
    )
    code, _, err = voxel("s.nii.gz", "c.nii.gz", "l.nii.gz")
    assert_one_line_error(code, err, "--overwrite")


@_SETTINGS
@given(
    a=st.one_of(_ANY, st.floats(0.1, 20)),
    lsf=st.one_of(_ANY, st.floats(0, 0.5)),
    ml=st.one_of(st.none(), _ANY, st.floats(0.1, 3)),
)
def test_voxel_numeric_options(capsys, tmp_path_factory, a, lsf, ml):
    d = tmp_path_factory.mktemp("vox")
    g = Grid((8, 8, 8), (4.0, 4.0, 4.0))
    lab = np.full(g.shape, int(Label.LIVER), np.uint8)
    lab[:, :, :2] = int(Label.LUNG)
    ct = np.where(lab == int(Label.LUNG), -700.0, 40.0).astype(np.float32)
    for name, arr in (("s", np.ones(g.shape, np.float32)), ("c", ct), ("l", lab)):
        write_nifti(Volume(arr, g), d / f"{name}.nii.gz")
    more = () if ml is None else ("--lung-mass-kg", ml)
    code, out, err = run_cli(capsys, "sirt", "voxel", "--spect", d / "s.nii.gz", "--ct",
                             d / "c.nii.gz", "--labels", d / "l.nii.gz", "--activity-gbq", a,
                             "--lsf", lsf, "--out", d / "v", "--json", *more)  # fmt: skip
    doc = _ok_or_one_line(code, out, err)
    valid = 0 < a <= 20 and 0 <= lsf < 1 and (ml is None or 0.1 <= ml <= 3)
    assert (doc is not None) == valid, (code, err)
    if doc is not None and ml is not None:
        # lung: CF A LSF / M_lung, printed to 4 decimals
        assert doc["lung_dose_gy"] == pytest.approx(49.67 * a * lsf / ml, rel=1e-9, abs=1e-4)
        # and warned above EANM 2022's 30 Gy per treatment, as `sirt single` does (was: 614 Gy
        # with no warning); 1e-3 Gy off the limit the printed dose decides
        lung = 49.67 * a * lsf / ml
        if abs(lung - 30.0) > 1e-3:
            warned = any(w.startswith("lung dose") for w in doc["warnings"])
            assert warned == (lung > 30.0), (lung, doc["warnings"])


# ---- help -------------------------------------------------------------------------------
def _sirt_commands():
    from ioplan.cli import app

    group = typer.main.get_command(app).commands["sirt"]
    return group.commands


def test_every_sirt_option_has_help_and_numeric_ones_state_units_or_ranges():
    """Was: --json without a description; ranges never stated."""
    for name, cmd in _sirt_commands().items():
        for p in cmd.params:
            if p.name == "help":
                continue
            assert p.help, (name, p.name)
            if str(p.bare_type()) in ("float", "int"):
                assert any(ch.isdigit() for ch in p.help), (name, p.name, p.help)


def test_help_states_the_ranges_the_library_enforces():
    from ioplan.embolization import RANGES, range_text

    words = {  # option -> range key (ranges in the help as "> 0 and <= 5" or "a-b")
        "mass_kg": "mass_kg", "tumor_kg": "tumor_kg", "normal_kg": "normal_kg",
        "tn": "tn", "dose_gy": "dose_gy", "fwhm_mm": "fwhm_mm", "tumor_ml": "tumor_ml",
    }  # fmt: skip
    for cmd in _sirt_commands().values():
        for p in cmd.params:
            key = words.get(p.name)
            if key is None or key not in RANGES:
                continue
            text = range_text(key).rsplit(" ", 1)[0] if RANGES[key][4] else range_text(key)
            assert text in p.help, (p.name, text, p.help)
