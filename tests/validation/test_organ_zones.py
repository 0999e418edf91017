"""Smoke test of the organ zone check (issue 21): structure, sources and the uncalibrated flag.

A coarse run (5 mm voxels) of every published lung and kidney row; the figures themselves are
the 2 mm report's (validation/organs/). The rows are recounted from the CSV file independently.
"""

from __future__ import annotations

import csv
import json
import math
from importlib import resources

import pytest

from ioplan.cli import main
from ioplan.validation import predict_organ_zones, write_organ_zone_report


def _csv_rows() -> list[dict[str, str]]:
    text = resources.files("ioplan.tissue").joinpath("data/organ_zones.csv").read_text()
    return list(csv.DictReader(ln for ln in text.splitlines() if ln and not ln.startswith("#")))


@pytest.fixture(scope="module")
def doc() -> dict:
    return predict_organ_zones(spacing_mm=5.0)


def test_every_row_with_source_and_uncalibrated_flag(doc):
    published = _csv_rows()
    assert doc["spacing_mm"] == 5.0 and len(doc["rows"]) == len(published)
    for rec, raw in zip(doc["rows"], published, strict=True):
        assert rec["organ"] == raw["organ"] and rec["modality"] == raw["modality"]
        assert rec["source"] == raw["source"] and rec["source"].strip()
        # the one row the kidney's effective perfusion was fitted to says so (tissues.toml)
        fitted = raw["organ"] == "kidney" and raw["modality"] == "MWA"
        want = f"uncalibrated for {raw['organ']}"
        if fitted:
            want = "kidney perfusion fitted to this row"
        assert rec["calibration"] == want
        assert "skipped" not in rec  # every row of the table has an engine setup today
        eng, pred = rec["engine"], rec["predicted"]
        assert eng["applicator"] and eng["device_note"] and eng["approximations"]
        assert eng["tissue"] == {"lung": "lung", "kidney": "kidney", "liver": "liver"}[raw["organ"]]
        assert rec["tissues"]  # the engine's label -> tissue map of the block
        for key in ("length_mm", "width_mm", "volume_ml", "transverse_cm2", "axial_plane_cm2"):
            assert math.isfinite(pred[key]) and pred[key] >= 0
        # the errors are predicted minus published, for the figures the source gives
        for key in ("length_mm", "width_mm"):
            if raw[key]:
                assert rec["error"][key] == pytest.approx(pred[key] - float(raw[key]), abs=0.011)
            else:
                assert key not in rec["error"]
        if raw["area_cm2"]:
            area = float(raw["area_cm2"])
            assert rec["error"]["transverse_cm2"] == pytest.approx(
                pred["transverse_cm2"] - area, abs=0.002
            )


def test_lung_zone_grows_with_time_at_100_w(doc):
    """Damage only accumulates (Omega is a time integral): 1, 2, 3 min can only grow the zone."""
    lung = [r for r in doc["rows"] if r["organ"] == "lung"]
    lung.sort(key=lambda r: r["engine"]["duration_s"])
    vols = [r["predicted"]["volume_ml"] for r in lung]
    assert len(vols) == 3 and vols[0] <= vols[1] <= vols[2] and vols[0] < vols[2]


def test_report_files(doc, tmp_path):
    paths = write_organ_zone_report(doc, tmp_path / "organs")
    text = (tmp_path / "organs" / "summary.txt").read_text()
    assert text.count("[uncalibrated for lung]") == 3
    # one kidney row had the kidney's effective perfusion fitted to it (tissues.toml), named so
    fitted = sum(r["organ"] == "kidney" and r["modality"] == "MWA" for r in doc["rows"])
    assert text.count("[kidney perfusion fitted to this row]") == fitted
    liver = sum(r["organ"] == "liver" for r in doc["rows"])
    assert text.count("[uncalibrated for liver]") == liver == 1
    assert text.count("[uncalibrated for kidney]") == len(doc["rows"]) - 3 - fitted - liver
    assert text.count("source: ") == len(doc["rows"])
    assert json.loads(paths[1].read_text()) == json.loads(json.dumps(doc))


def test_cli(capsys):
    assert main(["validate", "--organs", "--spacing-mm", "5", "--rows", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["rows"]) == 1 and out["rows"][0]["calibration"] == "uncalibrated for lung"
    assert main(["validate", "--organs", "--spacing-mm", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--spacing-mm" in err and len(err.splitlines()) == 1


def test_single_probe_cryo_rows_carry_subvoxel_widths_near_the_lattice_ones(doc):
    """Single-probe cryo rows also give sub-voxel widths (the isotherm's level set). Two
    independent measures of one region: the lattice width includes the voxels' own extent
    and is largest over 36 directions, the level set crosses between the last voxel centre
    inside and the first outside, so they differ by at most about one voxel (here 5 mm),
    and the ice ball contains the lethal zone."""
    h = doc["spacing_mm"]
    cryo = [r for r in doc["rows"] if r["engine"]["protocol"] and r["engine"]["array"] == 1]
    assert cryo
    for rec in cryo:
        p = rec["predicted"]
        assert abs(p["width_subvoxel_mm"] - p["width_mm"]) <= 1.5 * h, p
        ice_lattice = p["isotherms_mm"]["0"][1]
        assert abs(p["ice_ball_width_subvoxel_mm"] - ice_lattice) <= 1.5 * h, p
        assert p["ice_ball_width_subvoxel_mm"] >= p["width_subvoxel_mm"]
