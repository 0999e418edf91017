"""Smoke test of validation/convergence.py (the full 2-0.5 mm tables are a command)."""

from __future__ import annotations

import pytest

from conftest import load_validation_script


@pytest.mark.slow
def test_convergence_script_writes_a_row_per_run_and_never_overwrites(tmp_path, capsys):
    mod = load_validation_script("convergence")
    out = tmp_path / "conv.md"
    assert mod.main(["--runs", "cryo", "rf-short", "cryo-vivo", "--spacings", "4",
                     "--out", str(out)]) == 0  # fmt: skip
    text = out.read_text()
    vivo = [ln for ln in text.splitlines() if ln.startswith("| cryo-vivo | 4 |")]
    assert len(vivo) == 1, text
    w0, w20, w40 = (float(c) for c in vivo[0].strip("|").split("|")[2:5])
    # the isotherms nest (0 degC outside -20 outside -40; at 4 mm no tissue node reaches
    # -40 degC in 10 min, so its width may be 0)
    assert w0 > w20 > 0 and w20 > w40 >= 0, vivo
    rows = [ln for ln in text.splitlines() if ln.startswith(("| cryo | 4 |", "| rf-short | 4 |"))]
    assert len(rows) == 2, text
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        # zone length, width and volume are positive numbers (columns 5-7 of the cryo table,
        # 4-6 of the RF table)
        nums = [float(c) for c in (cells[5:8] if cells[0] == "cryo" else cells[4:7])]
        assert all(v > 0 for v in nums), row
    assert "4 min" in text and "Command: `python validation/convergence.py" in text
    capsys.readouterr()
    # an existing file is not replaced without --overwrite: one line, exit 2, unchanged
    out.write_text("mine")
    assert mod.main(["--runs", "cryo", "--spacings", "4", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "mine"


def test_convergence_script_refuses_bad_sizes(capsys):
    mod = load_validation_script("convergence")
    for bad in ("0.1", "9", "nan"):
        assert mod.main(["--spacings", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: voxel sizes") and len(err.strip().splitlines()) == 1
