"""``ioplan simulate``: defects of issue 15, numeric options (hypothesis), corrupt files."""

from __future__ import annotations

import gzip
import json
import math

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_one_line_error, run_cli
from ioplan.devices import applicator

MW = applicator("generic-mw-2450")

# a 20 x 20 x 20 voxel map at 2 mm, off-centre block of 1e6 W/m^3 (RAS on disk)
_N, _H = 20, 2.0


def _map_ras() -> tuple[np.ndarray, np.ndarray]:
    """Array indexed (i, j, k) and its NIfTI affine in the usual RAS orientation."""
    q = np.zeros((_N, _N, _N), np.float32)
    q[8:12, 9:13, 5:11] = 1e6  # asymmetric, so that any wrong flip or transpose shows
    affine = np.diag([_H, _H, _H, 1.0])
    affine[:3, 3] = -(_N - 1) / 2 * _H
    return q, affine


def _simulate_map(capsys, path, *extra):
    code, out, err = run_cli(capsys, "simulate", "--power-density-map", path, "--duration-s",
                             "20", "--tissue", "liver", "--perfusion-per-s", "0", "--json",
                             "--quiet", *extra)  # fmt: skip
    assert code == 0, err
    return json.loads(out)


def test_power_map_in_ras_flipped_or_permuted_gives_the_same_result(tmp_path, capsys):
    """Defect: a RAS NIfTI was refused ("must be on an axis-aligned grid"), and a map
    needed an applicator. The same map stored three ways (RAS; i axis flipped; axes
    permuted) is the same physical field: the results must agree to rounding, and the
    energy must be the map's own (sum q dV t, counted here from the array)."""
    q, affine = _map_ras()
    nib.save(nib.Nifti1Image(q, affine), tmp_path / "ras.nii.gz")
    flip = affine.copy()
    flip[:3, 0] *= -1
    flip[:3, 3] += affine[:3, 0] * (_N - 1)  # voxel i = N-1 of the flipped file is i = 0
    nib.save(nib.Nifti1Image(np.ascontiguousarray(q[::-1]), flip), tmp_path / "flip.nii.gz")
    perm = np.eye(4)
    perm[:3, :3] = affine[:3, :3][:, [2, 0, 1]]
    perm[:3, 3] = affine[:3, 3]
    nib.save(nib.Nifti1Image(np.ascontiguousarray(q.transpose(2, 0, 1)), perm),
             tmp_path / "perm.nii.gz")  # fmt: skip
    docs = [_simulate_map(capsys, tmp_path / f) for f in ("ras.nii.gz", "flip.nii.gz",
                                                          "perm.nii.gz")]  # fmt: skip
    energy = float(q.astype(np.float64).sum()) * (_H * 1e-3) ** 3 * 20.0
    for doc in docs:
        assert doc["applicator"] == "" and doc["modality"] == "external"
        # float64 sum of a float32 map times dV t: 1e-9 relative
        assert doc["energy_j"] == pytest.approx(energy, rel=1e-9)
        for key in ("max_temperature_c", "min_temperature_c"):
            # the same voxels in the same order: identical up to the JSON rounding
            assert doc[key] == pytest.approx(docs[0][key], abs=1e-3)
        assert doc["isotherms"] == docs[0]["isotherms"]
    assert docs[0]["max_temperature_c"] > 40.0


def test_oblique_power_map_is_refused(tmp_path, capsys):
    q, affine = _map_ras()
    c, s = math.cos(0.3), math.sin(0.3)
    rot = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(q, rot @ affine), tmp_path / "oblique.nii.gz")
    code, _, err = run_cli(capsys, "simulate", "--power-density-map", tmp_path / "oblique.nii.gz",
                           "--duration-s", "20", "--tissue", "liver", "--quiet")  # fmt: skip
    assert_one_line_error(code, err, "axis-aligned")


def test_domain_that_cannot_fit_is_refused_before_allocating(capsys, monkeypatch):
    """Defect: --spacing-mm 0.25 --margin-mm 100 allocated 5.5 GiB and died.

    With 1 GiB available, a 0.5 mm domain with 100 mm margins (about 8e7 voxels,
    ~16 GB at the measured 200 B/voxel) must be refused with a one-line error, and
    nothing simulated. The old spelling --margin-mm still works (hidden alias).
    """
    import ioplan.resources

    monkeypatch.setattr(ioplan.resources, "available_memory_bytes", lambda: 1024**3)
    # the time loop must never start (the check comes first)
    monkeypatch.setattr("ioplan.physics._simulate.integrate", _must_not_run)
    for flag in ("--domain-margin-mm", "--margin-mm"):
        code, _, err = run_cli(capsys, "simulate", "--applicator", MW.id, "--power-w", "40",
                               "--duration-s", "60", "--tissue", "liver", "--spacing-mm", "0.5",
                               flag, "100", "--quiet")  # fmt: skip
        assert_one_line_error(code, err, "memory", "--spacing-mm")


def _must_not_run(*args, **kwargs):
    raise AssertionError("the simulation ran")


def test_unwritable_output_folder_fails_before_the_computation(tmp_path, capsys, monkeypatch):
    """Defect: an output folder that cannot be written was found after the whole run."""
    import ioplan.physics

    monkeypatch.setattr(ioplan.physics, "simulate", _must_not_run)
    (tmp_path / "file.txt").write_text("x")
    code, _, err = run_cli(capsys, "simulate", "--applicator", MW.id, "--power-w", "40",
                           "--duration-s", "60", "--tissue", "liver", "--output-dir",
                           tmp_path / "file.txt" / "out", "--quiet")  # fmt: skip
    assert_one_line_error(code, err, "file.txt")


def test_power_w_has_no_invalid_default_and_is_required_for_mw(capsys):
    """Defect: `simulate --power-w` showed a default of 0, which is invalid."""
    code, out, _ = run_cli(capsys, "simulate", "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert "--domain-margin-mm" in flat and "10-100" in flat
    assert "--margin-mm " not in flat  # the old name is a hidden alias
    # the --power-w entry: from its name to the next option (the table may wrap)
    power_help = flat[flat.index("--power-w") : flat.index("--duration-s")]
    assert "default" not in power_help and "0-300" in power_help
    code, _, err = run_cli(capsys, "simulate", "--applicator", MW.id, "--duration-s", "60",
                           "--tissue", "liver", "--quiet")  # fmt: skip
    assert_one_line_error(code, err, "--power-w")


def test_external_map_with_power_is_contradictory(tmp_path, capsys):
    q, affine = _map_ras()
    nib.save(nib.Nifti1Image(q, affine), tmp_path / "q.nii.gz")
    code, _, err = run_cli(capsys, "simulate", "--power-density-map", tmp_path / "q.nii.gz",
                           "--power-w", "40", "--duration-s", "20", "--tissue", "liver",
                           "--quiet")  # fmt: skip
    assert_one_line_error(code, err, "--power-w")


def test_applicator_and_applicator_file_together_are_refused(tmp_path, capsys):
    """Contradictory inputs were resolved silently (the file won)."""
    (tmp_path / "a.json").write_text(json.dumps(MW.to_dict()))
    code, _, err = run_cli(capsys, "simulate", "--applicator", MW.id, "--applicator-file",
                           tmp_path / "a.json", "--power-w", "40", "--duration-s", "10",
                           "--tissue", "liver", "--quiet")  # fmt: skip
    assert_one_line_error(code, err, "--applicator-file")


def test_sar_map_in_wrong_units_names_the_option(tmp_path, capsys):
    q, affine = _map_ras()  # 1e6 "W/kg" is a power density written as SAR
    nib.save(nib.Nifti1Image(q * 10.0, affine), tmp_path / "sar.nii.gz")
    code, _, err = run_cli(capsys, "simulate", "--sar-map", tmp_path / "sar.nii.gz",
                           "--duration-s", "10", "--tissue", "liver", "--quiet")  # fmt: skip
    assert_one_line_error(code, err, "--sar-map", "W/kg")


# -- numeric options (hypothesis) ----------------------------------------------------
_BAD = st.sampled_from([float("nan"), float("inf"), -1.0, 0.0, 1e9, -1e-300])


def _opt(valid):
    return st.one_of(_BAD, valid)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    power=_opt(st.floats(1.0, 300.0)),
    duration=_opt(st.floats(0.5, 4.0)),
    spacing=_opt(st.floats(3.0, 5.0)),
    margin=_opt(st.floats(10.0, 14.0)),
    perfusion=_opt(st.floats(0.0, 0.1)),
    initial=_opt(st.floats(0.0, 45.0)),
    array=st.integers(-2, 10),
    between=_opt(st.floats(3.0, 8.0)),
)
def test_simulate_numeric_options(capsys, power, duration, spacing, margin, perfusion, initial,
                                  array, between):  # fmt: skip
    """Any numbers: exit 0, or a one-line error with exit 2 (never a traceback or hang).

    Cheap by construction: a block of liver, <= 4 s of heating, >= 3 mm voxels.
    """
    code, _, err = run_cli(
        capsys, "simulate", "--applicator", MW.id, "--tissue", "liver", "--quiet",
        "--power-w", power, "--duration-s", duration, "--spacing-mm", spacing,
        "--domain-margin-mm", margin, "--perfusion-per-s", perfusion,
        "--initial-temperature-c", initial, "--array", array, "--spacing-between-mm", between,
    )  # fmt: skip
    if code != 0:
        assert_one_line_error(code, err)


# -- corrupt files -------------------------------------------------------------------
_CORRUPT = {
    "empty.json": b"",
    "garbage.json": b"\x00\xff\xfe not json",
    "list.json": b"[1, 2, 3]",
    "truncated.json": b'{"id": "x", "modality": "mw"',
    "latin1.json": '{"id": "\xe9"}'.encode("latin-1"),
}


@pytest.mark.parametrize("name", sorted(_CORRUPT))
def test_corrupt_applicator_file(tmp_path, capsys, name):
    path = tmp_path / name
    path.write_bytes(_CORRUPT[name])
    code, _, err = run_cli(capsys, "simulate", "--applicator-file", path, "--power-w", "40",
                           "--duration-s", "10", "--tissue", "liver", "--quiet")  # fmt: skip
    assert_one_line_error(code, err)


def _corrupt_images(tmp_path):
    q, affine = _map_ras()
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(q, affine), good)
    raw = gzip.decompress(good.read_bytes())
    files = {
        "text.nii.gz": b"not an image",
        "truncated.nii.gz": gzip.compress(raw[: len(raw) // 3]),
        "header_only.nii": raw[:348],
        "garbage.nrrd": b"NRRD0004\ntype: nonsense\n\n\x00\x01",
    }
    out = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        out.append(tmp_path / name)
    nan = q.copy()
    nan[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(nan, affine), tmp_path / "nan.nii.gz")
    out.append(tmp_path / "nan.nii.gz")
    nib.save(nib.Nifti1Image(q[:, :, :2], affine), tmp_path / "thin.nii.gz")
    out.append(tmp_path / "thin.nii.gz")
    return out


@pytest.mark.parametrize("flag", ["--power-density-map", "--sar-map"])
def test_corrupt_power_and_sar_maps(tmp_path, capsys, flag):
    for path in _corrupt_images(tmp_path):
        code, _, err = run_cli(capsys, "simulate", flag, path, "--duration-s", "10",
                               "--tissue", "liver", "--quiet")  # fmt: skip
        assert_one_line_error(code, err)


_QUICK = ["simulate", "--applicator", MW.id, "--power-w", "40", "--duration-s", "5",
          "--tissue", "liver", "--spacing-mm", "4", "--quiet"]  # fmt: skip


def test_earlier_outputs_are_kept_without_overwrite(tmp_path, capsys, monkeypatch):
    import ioplan.physics

    out = tmp_path / "sim"
    out.mkdir()
    (out / "result.json").write_text("edited by hand")
    monkeypatch.setattr(ioplan.physics, "simulate", _must_not_run)
    code, _, err = run_cli(capsys, *_QUICK, "--output-dir", out)
    assert_one_line_error(code, err, "--overwrite")
    assert (out / "result.json").read_text() == "edited by hand"


def test_an_interrupted_write_leaves_the_folder_as_it_was(tmp_path, capsys, monkeypatch):
    """Outputs go to a temporary sibling and are renamed into place at the end."""
    out = tmp_path / "sim"
    code, _, err = run_cli(capsys, *_QUICK, "--output-dir", out)  # the earlier run
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr("ioplan.physics._outputs._zone_picture", interrupted)  # the last file
    code, _, _ = run_cli(capsys, *_QUICK, "--duration-s", "6", "--output-dir", out,
                         "--overwrite")  # fmt: skip
    assert code == 130  # interrupted (Ctrl-C)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim"]  # no temporary left
    monkeypatch.undo()
    code, _, err = run_cli(capsys, *_QUICK, "--duration-s", "6", "--output-dir", out,
                           "--overwrite")  # fmt: skip
    assert code == 0, err
    assert json.loads((out / "result.json").read_text())["settings"]["duration_s"] == 6.0
    assert (out / "zone.png").exists()


def test_overwrite_never_replaces_the_users_files(tmp_path, capsys, monkeypatch):
    """--overwrite wrote into a folder of the user's (a result.json of their own was
    replaced; a case folder got the maps beside its files). Only an earlier output of
    simulate is replaced."""
    import ioplan.physics

    monkeypatch.setattr(ioplan.physics, "simulate", _must_not_run)
    for files in ({"result.json": "mine"}, {"case.toml": "x", "notes.txt": "y"}):
        out = tmp_path / f"d{len(files)}"
        out.mkdir()
        for name, text in files.items():
            (out / name).write_text(text)
        code, _, err = run_cli(capsys, *_QUICK, "--output-dir", out, "--overwrite")
        assert_one_line_error(code, err, "did not write")
        assert {p.name: p.read_text() for p in out.iterdir()} == files


def test_simulate_console_gives_the_absorbed_share_of_the_generator_output(capsys):
    """One microwave antenna: the console's share of the generator's output is the JSON's
    absorbed energy over power x time (recount), and the generic antenna (efficiency 0.75,
    no detuning; a cooled shaft takes a few % beside it) absorbs at most 75 % of it."""
    import re

    args = ["simulate", "--applicator", MW.id, "--power-w", "40", "--duration-s", "60",
            "--spacing-mm", "3"]  # fmt: skip
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    m = re.search(r"energy (\d+) J \((\d+) % of the generator's (\d+) J\)", " ".join(out.split()))
    assert m is not None, out
    assert int(m[3]) == 2400
    code, js, err = run_cli(capsys, *args, "--json")
    energy = json.loads(js)["energy_j"]
    assert int(m[2]) == round(100 * energy / 2400)
    assert 0 < energy <= 0.75 * 2400 + 1e-6


def _console(capsys, args) -> str:
    """``ioplan ARGS``'s console output as one line (rich wraps it), after a clean exit."""
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    return " ".join(out.split())


def test_simulate_console_reports_the_rf_generator(capsys):
    """RF: the console's generator line is the JSON's settings (recount), and the ideal
    power source's energy not taken by dried tissue, the tissue's energy and the share of
    the unbounded liver beyond the block (in series with it) make P x t."""
    import re

    args = ["simulate", "--applicator", "cooled-rf-3cm", "--tissue", "liver", "--power-w",
            "200", "--duration-s", "60", "--spacing-mm", "3", "--rf-mode", "power"]  # fmt: skip
    text = _console(capsys, args)
    m = re.search(r"RF generator: (\d+) pulses, mean ([\d.]+) W, impedance (\d+) -> (\d+) ohm; "
                  r"(\d+) J not taken by tissue that boiled dry; (\d+) J in the medium beyond "
                  r"the block \(([\d.]+) ohm in series\)", text)  # fmt: skip
    assert m is not None, text
    code, js, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    doc = json.loads(js)
    s = doc["settings"]
    assert int(m[1]) == s["rf_pulses"] == 0  # the ideal source never pulses
    assert float(m[2]) == pytest.approx(s["rf_mean_power_w"], abs=0.05)  # printed to 0.1 W
    assert int(m[5]) == round(s["rf_boiling_limited_j"])
    assert int(m[6]) == round(s["rf_series_energy_j"])
    assert float(m[7]) == pytest.approx(s["rf_return"]["series_ohm"], abs=0.05)
    # 1e-6 relative: float sums of the same held output
    total = doc["energy_j"] + s["rf_boiling_limited_j"] + s["rf_series_energy_j"]
    assert total == pytest.approx(200 * 60, rel=1e-6)


def test_simulate_shows_the_manufacturer_chart_beside_the_zone(capsys):
    """A charted antenna: the console prints the chart's zone at this setting and the
    model's residual on that chart; the JSON carries both (settings.chart). The chart row
    (Emprint 45 W, 150 s: 24 x 23 mm) is the published one, read from applicators.toml."""
    import re
    import tomllib
    from importlib import resources

    raw = tomllib.loads(
        resources.files("ioplan.devices").joinpath("data/applicators.toml").read_text()
    )
    row = next(r for r in raw["covidien-emprint"]["zone_chart"]
               if (r["power_w"], r["duration_s"]) == (45, 150))  # fmt: skip
    args = ["simulate", "--applicator", "covidien-emprint", "--tissue", "liver", "--power-w",
            "45", "--duration-s", "150", "--spacing-mm", "3"]  # fmt: skip
    text = _console(capsys, args)
    m = re.search(r"manufacturer chart \(ex vivo\) at 45 W, 150 s: length ([\d.]+) mm, width "
                  r"([\d.]+) mm \(a chart row\)", text)  # fmt: skip
    assert m is not None, text
    assert (float(m[1]), float(m[2])) == (row["length_mm"], row["width_mm"])
    m = re.search(r"this model on that chart: mean \|error\| ([\d.]+) mm, max ([\d.]+) mm over "
                  r"(\d+) rows", text)  # fmt: skip
    assert m is not None, text
    assert int(m[3]) == len(raw["covidien-emprint"]["zone_chart"])
    code, js, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    chart = json.loads(js)["settings"]["chart"]
    assert chart["zone"]["length_mm"] == row["length_mm"] and chart["zone"]["interpolated"] is False
    assert float(m[1]) == pytest.approx(chart["model_fit"]["mean_abs_error_mm"], abs=0.005)
    # outside the chart (above 100 W): said so, with the chart's range
    code, out, err = run_cli(capsys, *args[:6], "120", *args[7:])
    assert code == 0, err
    assert "outside it (45-100 W, 150-600 s)" in " ".join(out.split())
