"""Simulations over HTTP: the preview, jobs with progress events, cancellation."""

from __future__ import annotations

import gzip
import json
import time

import nibabel as nib
import numpy as np
import pytest

from conftest import run_cli

from .conftest import assert_error, read_events


@pytest.fixture(scope="module")
def needle(client):
    """The plan's first applicator: id, energy, tip and entry (LPS mm)."""
    a = client.get("/api/cases/demo/plan").json()["applicators"][0]
    return a


def _setting(a, **changes):
    doc = {
        "applicator": a["id"],
        "power_w": a["power_w"],
        "duration_s": a["duration_s"],
        "needles": [{"tip_mm": a["tip_mm"], "entry_mm": a["entry_mm"]}],
    }
    return doc | changes


def _wait(client, job_id, timeout_s=60.0):
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        doc = client.get(f"/api/jobs/{job_id}").json()
        if doc["state"] in ("done", "failed", "cancelled"):
            return doc
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {doc['state']} after {timeout_s} s")


def test_a_cryo_preview_is_simulated_where_the_probe_is_resolved(client, needle):
    """The preview's 4 mm grid lost a 1.5 mm probe's lethal zone (0 mL, -35 degC at the
    coldest voxel; 0.70 mL at 2 mm): a cryoprobe is simulated at 2 mm and drawn on the
    preview grid."""
    body = {"settings": [{"applicator": "cryo-1.5mm", "protocol": "freeze:600",
                          "needles": [{"tip_mm": needle["tip_mm"],
                                       "entry_mm": needle["entry_mm"]}]}],
            "spacing_mm": 4}  # fmt: skip
    r = client.post("/api/cases/demo/preview", json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["results"][0]["settings"]["spacing_mm"] == 2.0
    assert doc["results"][0]["zone"]["volume_ml"] > 0 and doc["zone_volume_ml"] > 0


def test_preview_messages_say_what_is_wrong(client, needle):
    """Entry at the tip gave numpy reprs ("got (np.float64(0.0), ...)"); a cryoprobe's
    chart preview asked for power_w and duration_s, which a cryoprobe does not take."""
    same = _setting(needle, needles=[{"tip_mm": needle["tip_mm"], "entry_mm": needle["tip_mm"]}])
    r = client.post("/api/cases/demo/preview", json={"settings": [same]})
    assert_error(r, 400, "entry_mm equals tip_mm")
    assert "np.float64" not in r.json()["error"]
    cryo = {"applicator": "cryo-1.5mm", "protocol": "freeze:600",
            "needles": [{"tip_mm": needle["tip_mm"], "entry_mm": needle["entry_mm"]}]}  # fmt: skip
    r = client.post("/api/cases/demo/preview", json={"settings": [cryo], "method": "chart"})
    assert_error(r, 400, "no manufacturer's chart")


def test_preview_zone_grows_with_power(client, needle):
    docs = []
    for power in (30.0, 90.0):
        body = {"settings": [_setting(needle, power_w=power, duration_s=300.0)], "spacing_mm": 4}
        r = client.post("/api/cases/demo/preview", json=body)
        assert r.status_code == 200, r.text
        docs.append(r.json())
    low, high = docs
    # more power for the same time: a larger zone (the engine's, each run independent)
    assert 0 < low["zone_volume_ml"] < high["zone_volume_ml"]
    assert low["results"][0]["zone"]["volume_ml"] < high["results"][0]["zone"]["volume_ml"]
    vol = client.get(high["zone_url"])
    assert vol.status_code == 200
    arr = np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(vol.content)).dataobj)
    assert set(np.unique(arr)) == {0, 1, 2}  # background, zone, needle
    # one setting: the joined zone is the engine's zone mask moved onto the preview grid
    # voxel for voxel (the same 4 mm lattice), so its volume is the engine's zone volume
    engine_ml = high["results"][0]["zone"]["volume_ml"]
    assert high["zone_volume_ml"] == pytest.approx(engine_ml, rel=0.02)
    # in the file, needle voxels (2) are drawn over the zone: zone + needle >= zone
    assert ((arr == 1) | (arr == 2)).sum() * 0.064 >= 0.98 * high["zone_volume_ml"]


def test_simulation_job_result_has_the_cli_keys(client, cases_dir, needle, capsys):
    req = _setting(needle, power_w=60.0, duration_s=120.0) | {"spacing_mm": 4.0}
    r = client.post("/api/cases/demo/simulate", json=req)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "running") and job["url"] == f"/api/jobs/{job['id']}"
    doc = _wait(client, job["id"])
    assert doc["state"] == "done", doc
    tip = ",".join(str(v) for v in needle["tip_mm"])
    d = np.subtract(needle["tip_mm"], needle["entry_mm"])
    code, out, err = run_cli(
        capsys, "simulate", "--case", cases_dir / "demo", "--applicator", needle["id"],
        "--power-w", 60, "--duration-s", 120, "--spacing-mm", 4, "--tip-mm", tip,
        "--direction", ",".join(str(v) for v in d), "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    cli = json.loads(out)
    assert set(doc["result"]) == set(cli)
    assert set(doc["result"]["zone"]) == set(cli["zone"])
    # the same engine on the same case and needle: the same zone (different code paths set
    # the needle: placements here, tip and direction there)
    assert doc["result"]["zone"]["volume_ml"] == pytest.approx(cli["zone"]["volume_ml"], rel=0.02)
    zone = client.get(f"/api/jobs/{job['id']}/zone.nii.gz")
    assert zone.status_code == 200
    listed = client.get("/api/jobs").json()
    assert any(j["id"] == job["id"] and "result" not in j for j in listed)


def _events(client, job_id):
    """The (event, document) pairs of a job's stream, up to its ``end`` event."""
    return read_events(client, f"/api/jobs/{job_id}/events")


def test_progress_is_streamed_as_server_sent_events(client, app):
    def work(job, progress):  # each state lasts longer than the stream's look (0.1 s)
        for f in (0.25, 0.5, 0.75):
            progress(f, f"step {f}")
            time.sleep(0.3)
        return {"answer": 42}

    job = app.state.ioplan.jobs.submit("test", "demo", work)
    events = _events(client, job.id)
    fractions = [d["progress"] for _, d in events]
    assert [k for k, _ in events][-1] == "end" and events[-1][1]["result"] == {"answer": 42}
    assert {0.25, 0.5, 0.75} <= set(fractions), fractions
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_a_simulation_streams_to_its_end(client, needle):
    req = _setting(needle, power_w=60.0, duration_s=600.0) | {"spacing_mm": 4.0}
    job = client.post("/api/cases/demo/simulate", json=req).json()
    events = _events(client, job["id"])
    assert events[-1][0] == "end" and events[-1][1]["state"] == "done"
    fractions = [d["progress"] for _, d in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_a_running_job_can_be_cancelled(client, needle):
    req = _setting(needle, power_w=60.0, duration_s=3600.0) | {"spacing_mm": 3.0}
    job = client.post("/api/cases/demo/simulate", json=req).json()
    t0 = time.time()
    while client.get(f"/api/jobs/{job['id']}").json()["state"] == "queued":
        assert time.time() - t0 < 30
        time.sleep(0.05)
    r = client.delete(f"/api/jobs/{job['id']}")
    assert r.status_code == 202
    doc = _wait(client, job["id"], timeout_s=30)
    assert doc["state"] == "cancelled" and doc["progress"] < 1.0 and doc["result"] is None
    assert_error(client.get(f"/api/jobs/{job['id']}/zone.nii.gz"), 404, "no zone")
    # cancelling a finished job changes nothing
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 200


@pytest.fixture(scope="module")
def unplanned(cases_dir, tmp_path_factory):
    """A client over a copy of the demo case without its plan."""
    import shutil

    from fastapi.testclient import TestClient

    from ioplan.web import create_app

    root = tmp_path_factory.mktemp("unplanned")
    shutil.copytree(cases_dir / "demo", root / "demo", ignore=shutil.ignore_patterns("plan"))
    app = create_app(root, cache_dir=tmp_path_factory.mktemp("c"))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_plan_job_writes_the_plan_the_pages_show(unplanned, cases_dir):
    assert unplanned.get("/api/cases").json()[0]["has_plan"] is False
    assert_error(unplanned.get("/api/cases/demo/plan"), 404, "no plan")
    req = {"spacing_mm": 4.0, "robust_samples": 10, "time_budget_s": 0.0}
    assert_error(unplanned.post("/api/cases/demo/plan", json=req | {"tumor": 3}), 400, "tumor")
    r = unplanned.post("/api/cases/demo/plan", json=req)
    assert r.status_code == 202, r.text
    doc = _wait(unplanned, r.json()["id"], timeout_s=300)
    assert doc["state"] == "done", doc
    # the job's result is the plan.json the page and the API now serve, with the keys of
    # `ioplan demo`'s plan.json (the fixture's, written by the CLI's library calls)
    served = unplanned.get("/api/cases/demo/plan").json()
    assert served == doc["result"]
    reference = json.loads((cases_dir / "demo" / "plan" / "plan.json").read_text())
    assert set(served) == set(reference) - {"demo"}
    assert unplanned.get("/api/cases").json()[0]["has_plan"] is True
    assert unplanned.get("/cases/demo/plan").status_code == 200
    # a second plan needs overwrite
    assert_error(unplanned.post("/api/cases/demo/plan", json=req), 400, "overwrite")


def test_a_queued_plan_job_never_replaces_a_plan_written_meanwhile(cases_dir, tmp_path):
    """Two plan jobs queued without overwrite both ended "done", the second replacing the
    first's plan: the check ran only at submission. A plan written while the job runs is
    now kept, and the job fails saying so."""
    import shutil

    from fastapi.testclient import TestClient

    from ioplan.web import create_app

    root = tmp_path / "cases"
    shutil.copytree(cases_dir / "demo", root / "demo", ignore=shutil.ignore_patterns("plan"))
    app = create_app(root, cache_dir=tmp_path / "cache")
    with TestClient(app, raise_server_exceptions=False) as c:
        req = {"spacing_mm": 4.0, "robust_samples": 10, "time_budget_s": 0.0}
        job = c.post("/api/cases/demo/plan", json=req).json()
        # meanwhile another job (here: by hand) writes the case's plan
        shutil.copytree(cases_dir / "demo" / "plan", root / "demo" / "plan")
        kept = (root / "demo" / "plan" / "plan.json").read_bytes()
        doc = _wait(c, job["id"], timeout_s=300)
    assert doc["state"] == "failed" and "overwrite" in doc["error"], doc
    assert (root / "demo" / "plan" / "plan.json").read_bytes() == kept


def test_a_plan_job_can_be_cancelled(unplanned):
    req = {"spacing_mm": 4.0, "robust_samples": 10, "overwrite": True}
    job = unplanned.post("/api/cases/demo/plan", json=req).json()
    t0 = time.time()
    while unplanned.get(f"/api/jobs/{job['id']}").json()["state"] == "queued":
        assert time.time() - t0 < 60
        time.sleep(0.05)
    time.sleep(0.5)
    assert unplanned.delete(f"/api/jobs/{job['id']}").status_code in (200, 202)
    doc = _wait(unplanned, job["id"], timeout_s=120)
    assert doc["state"] == "cancelled", doc


def test_chart_preview_is_the_manufacturers_ellipsoid(client, needle):
    import math

    from ioplan.devices import applicator

    rows = applicator(needle["id"]).chart_rows()
    row = rows[len(rows) // 2]  # a setting of the chart itself: no interpolation
    body = {
        "settings": [_setting(needle, power_w=row["power_w"], duration_s=row["duration_s"])],
        "spacing_mm": 2.0,
        "method": "chart",
    }
    r = client.post("/api/cases/demo/preview", json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    z = doc["results"][0]["zone"]
    for k in ("length_mm", "width_mm", "centre_offset_mm"):
        assert z[k] == pytest.approx(row[k]), k
    assert z["interpolated"] is False and z["outside_chart"] is False
    # past the chart's top power: its nearest row, said to be outside
    top = max(rows, key=lambda r: (r["power_w"], r["duration_s"]))
    past = _setting(needle, power_w=top["power_w"] + 50, duration_s=top["duration_s"])
    far = {"settings": [past], "spacing_mm": 2.0, "method": "chart"}
    zf = client.post("/api/cases/demo/preview", json=far).json()["results"][0]["zone"]
    assert zf["outside_chart"] is True and zf["length_mm"] == pytest.approx(top["length_mm"])
    # nonsense settings: one-line 400s (1e308 W was a 500 "internal error" in session 42)
    for p, t in ((-5.0, 300.0), (0.0, 300.0), (1e308, 300.0), (60.0, 1e308), (60.0, -1.0)):
        bad = {"settings": [_setting(needle, power_w=p, duration_s=t)], "spacing_mm": 2.0,
               "method": "chart"}  # fmt: skip
        assert_error(client.post("/api/cases/demo/preview", json=bad), 400)
    # the voxelised ellipsoid holds the ellipsoid's volume (2 mm voxels: within 10 %)
    exact = 4 / 3 * math.pi * (z["length_mm"] / 2) * (z["width_mm"] / 2) ** 2 / 1000
    assert doc["zone_volume_ml"] == pytest.approx(exact, rel=0.10)
    assert_error(client.post("/api/cases/demo/preview", json=body | {"method": "magic"}), 400)
