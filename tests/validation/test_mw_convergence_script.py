"""Smoke test of validation/mw_convergence.py (the full 2-0.5 mm run is a command)."""

from __future__ import annotations

import json

import pytest

from conftest import load_validation_script


@pytest.mark.slow
def test_mw_convergence_script_prints_every_chart_time(tmp_path, capsys):
    mod = load_validation_script("mw_convergence")
    out = tmp_path / "conv.json"
    mod.main(["4", str(out)])
    doc = json.loads(out.read_text())
    assert set(doc) == {f"{d} 4.0" for d in mod.SETTINGS}
    table = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ")]
    # one line per chart time of the three settings (3 + 5 + 3), after the header
    from ioplan.devices import applicator
    from ioplan.validation._zones import rows_from_chart

    times = sum(
        sum(1 for r in rows_from_chart(applicator(d)) if r.power_w == p)
        for d, p in mod.SETTINGS.items()
    )
    assert len(table) == 1 + times == 12
    for rows in doc.values():
        assert rows["mw_model"] == "lumped"
        assert all(length > 0 and width > 0 for _, length, width in rows["rows"])


@pytest.mark.parametrize("args", [["2", "--mw-model", "maxwell"], ["2", "--mw-model"]])
def test_mw_convergence_script_refuses_an_unknown_model(tmp_path, args, capsys):
    mod = load_validation_script("mw_convergence")
    with pytest.raises(SystemExit) as exc:
        mod.main([*args, str(tmp_path / "x.json")])
    assert exc.value.code == 2
    assert "--mw-model must be lumped or field" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_mw_convergence_script_refuses_an_unwritable_output_before_running(tmp_path, capsys):
    mod = load_validation_script("mw_convergence")
    with pytest.raises(SystemExit) as exc:
        mod.main(["2", str(tmp_path / "missing" / "x.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "does not exist or cannot be written" in err and "Traceback" not in err
    assert not (tmp_path / "missing").exists()
