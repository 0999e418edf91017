"""``ioplan batch plan|simulate|margin``: rows per case, the summary, one-line refusals."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """A 15 mm tumour case at 4 mm, and a folder whose case.toml is broken."""
    from ioplan.cli import main

    root = tmp_path_factory.mktemp("batch-cli") / "cases"
    assert main(["phantom", "--out", str(root / "p1"), "--tumor-diameter-mm", "15",
                 "--spacing-mm", "4", "--seed", "1"]) == 0  # fmt: skip
    (root / "zz-broken").mkdir()
    (root / "zz-broken" / "case.toml").write_text("format = ")
    return root


def test_batch_plan_writes_a_row_and_a_plan_per_case(capsys, cases, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "batch", "plan", cases, "--out", out, "--margin-mm", 3,
                                "--time-budget-s", 10, "--workers", 2, "--json")  # fmt: skip
    assert code == 0, err
    doc = json.loads(stdout)
    assert (doc["cases"], doc["ok"], doc["failed"], doc["workers"]) == (2, 1, 1, 2)
    row = doc["rows"][0]
    plan = json.loads((out / "cases" / "p1" / "plan" / "plan.json").read_text())
    # the row reports the plan written for that case
    assert row["margin_coverage_percent"] == pytest.approx(plan["margin_coverage_percent"])
    assert row["goal_met"] == plan["goal_met"]
    assert row["applicators"] == len(plan["applicators"])
    assert doc["rows"][1]["status"] == "failed" and "TOML" in doc["rows"][1]["error"]
    table = pd.read_csv(out / "results.csv")
    assert list(table["case"]) == ["p1", "zz-broken"]
    assert list(table["status"]) == ["ok", "failed"]
    # resumed: the plan is not made again
    code, stdout, err = run_cli(capsys, "batch", "plan", cases, "--out", out, "--margin-mm", 3,
                                "--time-budget-s", 10, "--workers", 1, "--json")  # fmt: skip
    assert code == 0, err
    again = json.loads(stdout)
    assert (again["skipped"], again["ran"]) == (1, 1)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nonsense"], "plan, simulate or margin"),
        (["simulate"], "--applicator"),
        (["simulate", "--applicator", "covidien-emprint"], "--power-w"),
        (["plan", "--spacing-mm", "0.1"], "--spacing-mm"),
        (["plan", "--scheduler", "nowhere"], "--scheduler"),
        (["plan", "--direction", "1,2"], "--direction"),
        # another action's options were run past and recorded in batch.json as if used
        (["simulate", "--applicator", "covidien-emprint", "--power-w", "100", "--duration-s",
          "300", "--modality", "cryo"], "--modality is not used by batch simulate"),
        (["margin", "--applicator", "amica"], "--applicator is not used by batch margin"),
        (["plan", "--zone-file", "z.nii.gz"], "--zone-file is not used by batch plan"),
        # every simulation setting is checked once, before any case (sweep, session 51:
        # these ran and failed every case alike)
        (["simulate", "--applicator", "amica", "--power-w", "-60", "--duration-s", "60"],
         "--power-w"),
        (["simulate", "--applicator", "amica", "--power-w", "60", "--duration-s", "nan"],
         "--duration-s"),
        (["simulate", "--applicator", "cryo-2.4mm", "--power-w", "60", "--duration-s", "60"],
         "--protocol"),
        (["simulate", "--applicator", "cryo-2.4mm", "--protocol", "freeze:-5"], "--protocol"),
        (["plan", "--time-budget-s", "-1"], "0-3600 s"),
        (["plan", "--protocol", "freeze:60"], "--protocol is not used by batch plan"),
    ],
)
def test_bad_input_is_one_line_before_any_work(capsys, cases, tmp_path, args, fragment):
    out = tmp_path / "out"
    action, *rest = args
    code, _, err = run_cli(capsys, "batch", action, cases, "--out", out, *rest)
    assert_one_line_error(code, err, fragment)
    assert not out.exists()


def test_refuses_a_folder_without_cases_and_a_foreign_output(capsys, cases, tmp_path):
    code, _, err = run_cli(capsys, "batch", "plan", tmp_path, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "case.toml")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    code, _, err = run_cli(capsys, "batch", "plan", cases, "--out", mine)
    assert_one_line_error(code, err, "batch.json")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_batch_simulate_runs_a_cryoprobe_with_its_protocol(capsys, cases, tmp_path):
    """Cryoprobes take a freeze-thaw protocol (they could not be batched before session
    51): the row's zone is the one `ioplan simulate --case` gives for the same settings."""
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "batch", "simulate", cases, "--out", out,
                                "--applicator", "cryo-2.4mm", "--protocol", "freeze:300",
                                "--workers", 1, "--json", "-q")  # fmt: skip
    assert code == 0, err
    row = json.loads(stdout)["rows"][0]
    assert row["status"] == "ok", row
    import tomllib

    centre = tomllib.loads((cases / "p1" / "case.toml").read_text())["tumors"][0]["centre_mm"]
    code, stdout, err = run_cli(capsys, "simulate", "--case", cases / "p1", "--applicator",
                                "cryo-2.4mm", "--protocol", "freeze:300", "--spacing-mm", 4,
                                "--tip-mm", ",".join(f"{v:g}" for v in centre),
                                "--direction", "0,0,-1", "--json")  # fmt: skip
    assert code == 0, err
    alone = json.loads(stdout)["zone"]
    assert row["zone_volume_ml"] == pytest.approx(alone["volume_ml"], rel=1e-6)
    assert row["zone_length_mm"] == pytest.approx(alone["length_mm"], rel=1e-6)
