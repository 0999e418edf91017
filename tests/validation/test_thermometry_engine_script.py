"""Smoke test of validation/thermometry_engine.py (makes the README's engine-thermometry case)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import load_validation_script


def test_script_writes_the_series_and_truth_and_never_overwrites(tmp_path, capsys):
    """The two 4D series have one frame per 5 s up to 100 s (21) on the 8 x 28 x 28 slab;
    the truth is a zone that exists; the printed command names the files; a second run
    into the same folder is refused before anything is written."""
    from ioplan.imaging import read_nifti_series

    mod = load_validation_script("thermometry_engine")
    mod.main(tmp_path)
    out = capsys.readouterr().out.splitlines()
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["necrosis_volume_ml"] > 0 and truth["power_w"] == 80.0
    frames, grid, frame_s = read_nifti_series(tmp_path / "emag.nii.gz")
    assert frames.shape == (21, 8, 28, 28) and grid.shape == (8, 28, 28)
    assert frame_s == pytest.approx(5.0)
    assert np.isfinite(frames).all()
    assert out[-1].startswith("ioplan thermometry") and "emag.nii.gz" in out[-1]
    before = (tmp_path / "truth.json").stat().st_mtime_ns
    with pytest.raises(SystemExit) as exc:
        mod.main(tmp_path)
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert (tmp_path / "truth.json").stat().st_mtime_ns == before
