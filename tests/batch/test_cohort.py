"""``run_batch``: one row per case, failures kept apart, resumable; margins against spheres."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ioplan.anatomy import Case, Label, save_case
from ioplan.batch import BatchOptions, dask_client, run_batch
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume, write_nifti


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2) as c:
        yield c


def _sphere_case(offset_mm: float, zone_radius_mm: float, folder: Path, n: int = 36) -> Path:
    """A 5 mm radius tumour in liver (1 mm voxels, n^3) and a follow-up zone ball around it."""
    g = Grid((n, n, n))
    pts = g.index_to_lps(np.indices(g.shape).reshape(3, -1).T).reshape(n, n, n, 3)
    c = np.full(3, (n - 1) / 2)
    lab = np.full(g.shape, int(Label.LIVER), np.int16)
    lab[np.linalg.norm(pts - c, axis=-1) <= 5.0] = int(Label.TUMOR)
    img = np.where(lab == int(Label.TUMOR), 55.0, 100.0).astype(np.float32)
    case = Case(Volume(img, g), Volume(lab, g), organ="liver",
                tumors=({"centre_mm": c.tolist(), "histology": "hcc"},))  # fmt: skip
    path = save_case(case, folder)
    zc = c + np.array([offset_mm, 0.0, 0.0])
    zone = (np.linalg.norm(pts - zc, axis=-1) <= zone_radius_mm).astype(np.uint8)
    write_nifti(Volume(zone, g), path / "followup_zone.nii.gz")
    return path


def test_margins_of_a_cohort_match_the_sphere_geometry(client, tmp_path):
    """Ball of radius R shifted by s around a tumour ball of radius 5: margin R - 5 - s."""
    cases = tmp_path / "cases"
    _sphere_case(0.0, 9.0, cases / "concentric")  # 4 mm
    _sphere_case(2.0, 10.0, cases / "shifted")  # 3 mm
    _sphere_case(0.0, 9.0, cases / "nozone")
    (cases / "nozone" / "followup_zone.nii.gz").unlink()
    doc = run_batch(BatchOptions(action="margin", margin_mm=5.0), cases, tmp_path / "out",
                    client=client)  # fmt: skip
    rows = {r["case"]: r for r in doc["rows"]}
    # two voxelised sphere surfaces at 1 mm: each within half a voxel (0.87 mm on the
    # diagonal) of the true one
    assert rows["concentric"]["minimal_margin_mm"] == pytest.approx(4.0, abs=1.0)
    assert rows["shifted"]["minimal_margin_mm"] == pytest.approx(3.0, abs=1.0)
    assert rows["concentric"]["coverage_percent"] == pytest.approx(100.0)
    assert rows["nozone"]["status"] == "failed" and "followup_zone" in rows["nozone"]["error"]
    assert (doc["ok"], doc["failed"]) == (2, 1)


def test_a_case_with_two_tumours_says_which_one_its_row_is_about(client, tmp_path):
    """The second tumour was silently left out: the row read "complete ablation" for a zone
    around the first tumour only."""
    cases = tmp_path / "cases"
    path = _sphere_case(0.0, 9.0, cases / "two", n=48)
    from ioplan.anatomy import load_case

    case = load_case(path)
    lab = np.asarray(case.labels.array).copy()
    lab[4:10, 4:10, 4:10] = int(Label.TUMOR)  # a second, separate tumour in a corner
    second = {"centre_mm": [6.5, 6.5, 6.5], "histology": "hcc"}
    save_case(Case(case.image, case.labels.with_array(lab), organ="liver",
                   tumors=(*case.tumors, second)), path, overwrite=True)  # fmt: skip
    doc = run_batch(BatchOptions(action="margin", margin_mm=5.0), cases, tmp_path / "out",
                    client=client)  # fmt: skip
    row = doc["rows"][0]
    assert row["status"] == "ok" and row["tumours_in_case"] == 2 and row["tumour_index"] == 0
    assert "2 tumours" in row["note"] and doc["notes"] == [f"two: {row['note']}"]
    # the row's tumour volume is the first ball's alone (a recount of its label voxels)
    first = (lab == int(Label.TUMOR)).sum() - 6**3
    assert row["tumour_volume_ml"] == pytest.approx(first / 1000.0, abs=1e-3)


def test_rows_as_they_finish_failures_apart_and_resume(client, small_case, tmp_path):
    cases = tmp_path / "cases"
    save_case(small_case, cases / "a")
    shutil.copytree(cases / "a", cases / "b")
    (cases / "broken").mkdir()
    (cases / "broken" / "case.toml").write_text("not toml [")
    (cases / "notacase").mkdir()  # no case.toml: not a case
    out = tmp_path / "out"
    opts = BatchOptions(action="simulate", applicator_id="covidien-emprint", power_w=45.0,
                        duration_s=60.0, direction=(1.0, 0.0, 0.0), spacing_mm=4.0)  # fmt: skip
    doc = run_batch(opts, cases, out, client=client)
    assert [r["case"] for r in doc["rows"]] == ["a", "b", "broken"]
    a, b, broken = doc["rows"]
    assert a["status"] == b["status"] == "ok"
    # the same case twice: the same figures, whichever worker ran it
    assert {k: v for k, v in a.items() if k not in ("case", "runtime_s")} == {
        k: v for k, v in b.items() if k not in ("case", "runtime_s")
    }
    assert a["zone_volume_ml"] > 0 and 0 < a["tumour_coverage_percent"] <= 100
    assert broken["status"] == "failed" and "case.toml" in broken["error"]
    # one row per case in each table, the same as the per-case files
    table = pd.read_parquet(out / "results.parquet")
    csv = pd.read_csv(out / "results.csv")
    assert list(table["case"]) == list(csv["case"]) == ["a", "b", "broken"]
    assert list(table.columns[:4]) == ["case", "status", "runtime_s", "error"]
    assert (
        table.loc[0, "zone_volume_ml"]
        == json.loads((out / "cases/a.json").read_text())["zone_volume_ml"]
    )
    # resume: the cases done are skipped, the failed one is tried again
    again = run_batch(opts, cases, out, client=client)
    assert (again["skipped"], again["ran"]) == (2, 1)
    (out / "cases" / "b.json").unlink()
    third = run_batch(opts, cases, out, client=client)
    assert (third["skipped"], third["ran"]) == (1, 2)
    assert third["rows"][1]["zone_volume_ml"] == b["zone_volume_ml"]
    # another action's folder, or a folder of other files, is refused
    with pytest.raises(InputError, match="simulate"):
        run_batch(BatchOptions(action="margin"), cases, out, client=client)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match=r"batch\.json"):
        run_batch(opts, cases, tmp_path / "mine", client=client)


def test_margins_are_recorded_for_registered_lesions(client, tmp_path):
    """Each case's registry.json names its treated lesion: the registry gets the margin."""
    import sqlalchemy as sa

    from ioplan.registry import import_csv, open_db, session_scope, write_demo_cohort

    db = str(tmp_path / "registry.sqlite")
    write_demo_cohort(tmp_path / "csv", n_patients=3)
    engine = open_db(db)
    with session_scope(engine) as s:
        import_csv(s, tmp_path / "csv")
    cases = tmp_path / "cases"
    for name, key, shift in (("one", ("P0001-A1", "P0001-L1"), 0.0),
                             ("two", ("P0002-A1", "P0002-L1"), 2.0),
                             ("stranger", ("P9999-A1", "P9999-L1"), 0.0)):  # fmt: skip
        folder = _sphere_case(shift, 10.0, cases / name)
        (folder / "registry.json").write_text(
            json.dumps({"procedure_key": key[0], "lesion_key": key[1]})
        )
    opts = BatchOptions(action="margin", registry=db, registry_overwrite=True)
    doc = run_batch(opts, cases, tmp_path / "out", client=client)
    rows = {r["case"]: r for r in doc["rows"]}
    assert rows["one"]["registry_linked"] and rows["two"]["registry_linked"]
    assert rows["stranger"]["registry_linked"] is False
    assert "no treatment" in rows["stranger"]["registry_error"]
    assert "P9999" not in rows["stranger"]["registry_error"]  # the registry's keys stay out
    with engine.connect() as conn:
        got = dict(conn.execute(sa.text(
            "SELECT l.lesion_key, t.minimal_margin_mm FROM treated_lesions t "
            "JOIN lesions l ON t.lesion_id = l.id WHERE l.lesion_key IN ('P0001-L1', 'P0002-L1')"
        )).all())  # fmt: skip
    engine.dispose()
    # what the registry holds is what the batch measured for that case
    assert got == {"P0001-L1": rows["one"]["minimal_margin_mm"],
                   "P0002-L1": rows["two"]["minimal_margin_mm"]}  # fmt: skip
    with pytest.raises(InputError, match="--registry"):
        BatchOptions(action="simulate", applicator_id="covidien-emprint", power_w=10.0,
                     duration_s=10.0, registry=db)  # fmt: skip


def test_local_workers_leave_ctrl_c_to_the_command(client):
    """Ctrl-C in a terminal reaches every process of the group: the local cluster's workers
    ignore SIGINT (they printed a KeyboardInterrupt traceback each while the command said
    "interrupted"), and the command itself keeps its own handler (it closes the cluster)."""
    import signal

    dispositions = client.run(lambda: signal.getsignal(signal.SIGINT) == signal.SIG_IGN)
    assert len(dispositions) == 2 and all(dispositions.values()), dispositions
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
