"""The REST API: every route, the contract keys, one-line JSON errors, Range requests."""

from __future__ import annotations

import gzip
import json

import nibabel as nib
import numpy as np
import pytest

from conftest import run_cli
from ioplan.anatomy import load_case
from ioplan.imaging import read_image

from .conftest import assert_error


def _nifti(content: bytes) -> nib.Nifti1Image:
    raw = gzip.decompress(content)
    return nib.Nifti1Image.from_bytes(raw)


def test_health(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and "version" in r.json()


def test_cases_lists_objects_with_a_name(client):
    r = client.get("/api/cases")
    assert r.status_code == 200
    docs = r.json()
    assert [d["name"] for d in docs] == ["demo"]
    assert docs[0]["has_plan"] is True and docs[0]["modality"] == "CT"


def test_case_document_is_the_cli_info_json(client, cases_dir, capsys):
    code, out, _ = run_cli(capsys, "info", cases_dir / "demo", "--json")
    assert code == 0
    assert client.get("/api/cases/demo").json() == json.loads(out)


def test_volumes_hold_the_case_voxels_on_the_case_grid(client, cases_dir):
    case = load_case(cases_dir / "demo")
    r = client.get("/api/cases/demo/volumes/labels.nii.gz")
    assert r.status_code == 200 and r.headers["content-type"] == "application/gzip"
    labels = _nifti(r.content)
    # NIfTI stores (x, y, z); the case arrays are (z, y, x)
    np.testing.assert_array_equal(np.asarray(labels.dataobj).transpose(2, 1, 0),
                                  np.asarray(case.labels.array))  # fmt: skip
    image = _nifti(client.get("/api/cases/demo/volumes/image.nii.gz").content)
    hu = np.asarray(image.dataobj).transpose(2, 1, 0)
    assert hu.dtype == np.int16
    # served as whole HU (int16): within half a unit of the stored CT
    assert np.max(np.abs(hu - np.clip(np.asarray(case.image.array), -1024, 3071))) <= 0.5
    served = read_image(_write(r.content))
    assert served.grid.shape == case.labels.grid.shape
    np.testing.assert_allclose(served.grid.affine, case.labels.grid.affine, atol=1e-4)


def _write(content: bytes, _n=[0]):  # noqa: B006 - a counter for file names
    import tempfile
    from pathlib import Path

    _n[0] += 1
    path = Path(tempfile.mkdtemp()) / f"v{_n[0]}.nii.gz"
    path.write_bytes(content)
    return path


def test_range_requests_return_the_same_bytes(client):
    url = "/api/cases/demo/volumes/image.nii.gz"
    whole = client.get(url).content
    r = client.get(url, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206
    assert r.content == whole[:100]
    assert r.headers["content-range"] == f"bytes 0-99/{len(whole)}"
    tail = client.get(url, headers={"Range": f"bytes={len(whole) - 10}-"})
    assert tail.status_code == 206 and tail.content == whole[-10:]
    assert client.get(url, headers={"Range": f"bytes={len(whole) + 5}-"}).status_code == 416


def test_plan_document_is_plan_json(client, cases_dir):
    on_disk = json.loads((cases_dir / "demo" / "plan" / "plan.json").read_text())
    doc = client.get("/api/cases/demo/plan").json()
    assert doc == on_disk
    for key in ("applicators", "at_risk", "coverage_percent", "goal_met", "margin_mm"):
        assert key in doc


@pytest.mark.parametrize("kind", ["zone", "margin_shell", "tmax"])
def test_plan_volumes_are_the_plan_files(client, cases_dir, kind):
    r = client.get(f"/api/cases/demo/plan/volumes/{kind}.nii.gz")
    assert r.status_code == 200
    served = read_image(_write(r.content))
    stored = read_image(cases_dir / "demo" / "plan" / f"{kind}.nii.gz")
    assert served.grid == stored.grid
    if kind == "tmax":
        np.testing.assert_allclose(served.array, stored.array, rtol=1e-6)
    else:
        np.testing.assert_array_equal(served.array, np.asarray(stored.array) > 0)


def test_trajectories_volume_passes_through_each_tip(client):
    plan = client.get("/api/cases/demo/plan").json()
    vol = read_image(_write(client.get("/api/cases/demo/plan/volumes/trajectories.nii.gz").content))
    arr = np.asarray(vol.array)
    for a in plan["applicators"]:
        tip = np.rint(vol.grid.lps_to_index(np.asarray(a["tip_mm"]))).astype(int)
        assert arr[tuple(tip)] == 1
    # a line: voxels along the path, not a blob (at most 4 voxels per mm of path / spacing)
    length = sum(
        np.linalg.norm(np.subtract(a["tip_mm"], a["entry_mm"])) for a in plan["applicators"]
    )
    assert 0 < arr.sum() <= 4 * length / min(vol.grid.spacing_mm) + 4


def test_labels_and_applicators(client):
    labels = client.get("/api/labels").json()
    assert {"value", "name", "color"} <= set(labels[0])
    assert any(d["name"] == "tumor" for d in labels)
    apps = client.get("/api/applicators").json()
    assert any(a["id"] == "covidien-emprint" for a in apps)


def test_openapi_lists_the_fixed_routes(client):
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    for p in (
        "/api/health",
        "/api/cases",
        "/api/cases/{name}",
        "/api/cases/{name}/simulate",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/events",
        "/api/cases/{name}/preview",
    ):
        assert p in paths, p


def test_pages(client):
    home = client.get("/")
    assert home.status_code == 200 and 'href="/cases/demo"' in home.text
    case = client.get("/cases/demo")
    assert case.status_code == 200 and "ioplan-config" in case.text and "liver" in case.text
    plan = client.get("/cases/demo/plan")
    assert plan.status_code == 200 and 'id="at-risk"' in plan.text
    assert "content-security-policy" in plan.headers
    # each applicator's predicted zone beside the manufacturer's chart at its setting,
    # the numbers of the plan's own JSON (the demo plans a charted antenna)
    a = client.get("/api/cases/demo/plan").json()["applicators"][0]
    z = a["chart"]["zone"]
    assert "manufacturer chart, ex vivo" in plan.text
    assert (
        f"{a['predicted_length_mm']:.1f} x {a['predicted_width_mm']:.1f} / "
        f"{z['length_mm']:.1f} x {z['width_mm']:.1f}" in plan.text
    )


@pytest.mark.parametrize(
    ("url", "status", "fragment"),
    [
        ("/api/cases/nope", 404, "no case named 'nope'"),
        ("/api/cases/demo/volumes/secret.nii.gz", 404, "no volume"),
        ("/api/cases/demo/plan/volumes/dicom.nii.gz", 404, "no plan volume"),
        ("/api/jobs/0123", 404, "no such job"),
        ("/api/previews/abc.nii.gz", 404, "no such preview"),
        ("/cases/nope/plan", 404, "no case"),
        ("/nothing/here", 404, "no such page or route"),
        ("/docs", 404, "no such page"),  # Swagger UI would fetch scripts from a CDN
    ],
)
def test_errors_are_one_line_json(client, url, status, fragment):
    assert_error(client.get(url), status, fragment)


def test_malformed_requests_get_422_with_one_line(client):
    assert_error(client.post("/api/cases/demo/simulate", content=b"{not json",
                             headers={"content-type": "application/json"}), 422)  # fmt: skip
    assert_error(client.post("/api/cases/demo/simulate", json={"applicator": "x"}), 422, "needles")


def test_bad_values_get_400_naming_the_parameter(client):
    req = {"applicator": "covidien-emprint", "power_w": 1000, "duration_s": 60,
           "needles": [{"tip_mm": [0, 0, 0]}]}  # fmt: skip
    r = client.post("/api/cases/demo/preview", json={"settings": [req], "spacing_mm": 4})
    assert_error(r, 400, "power_w")  # the request's field, not the command-line flag
    assert "--power-w" not in r.json()["error"]
    assert_error(client.post("/api/cases/demo/preview", json={"settings": [req], "spacing_mm": 1}),
                 400, "spacing_mm")  # fmt: skip
    # a job is refused when it is asked for, not later in the worker
    assert_error(client.post("/api/cases/demo/simulate", json=req | {"applicator": "nope"}),
                 400, "nope")  # fmt: skip
    assert_error(client.post("/api/cases/demo/simulate", json=req), 400, "power_w")
    ok = req | {"power_w": 60}
    assert_error(client.post("/api/cases/demo/simulate", json=ok | {"cooldown_s": -1}),
                 400, "cooldown_s")  # fmt: skip


def test_no_cors_headers(client):
    r = client.options("/api/cases", headers={"Origin": "http://evil.example",
                                              "Access-Control-Request-Method": "GET"})  # fmt: skip
    assert "access-control-allow-origin" not in r.headers
    r = client.get("/api/cases", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_the_case_is_read_once(app):
    store = app.state.ioplan.store
    assert store.load("demo") is store.load("demo")


def test_without_the_viewer_the_pages_say_so(cases_dir, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from ioplan.web import _app, create_app

    monkeypatch.setattr(_app, "STATIC_DIR", tmp_path / "not-built")
    with TestClient(create_app(cases_dir, cache_dir=tmp_path / "c")) as c:
        assert c.get("/api/health").json()["viewer_built"] is False
        page = c.get("/cases/demo/plan")
        assert page.status_code == 200 and 'id="viewer-missing"' in page.text
        assert "viewer.js" not in page.text and 'id="at-risk"' in page.text
        assert c.get("/static/viewer.js").status_code == 404


def test_page_settings_cannot_end_their_script_element(app):
    import json as _json

    from ioplan.web._pages import _page

    html = _page("t", "", {"page": "case", "x": "</script><script>alert(1)</script>&"}, True)
    text = html.body.decode()
    block = text.split('id="ioplan-config">', 1)[1].split("</script>", 1)[0]
    assert _json.loads(block)["x"] == "</script><script>alert(1)</script>&"
    assert "alert(1)</script>" not in text


def test_every_link_of_the_pages_leads_somewhere(client):
    """Each page's links (header, case, plan) answer 200: no dead link in the workspace."""
    import re

    seen, todo = set(), ["/", "/cases/demo", "/cases/demo/plan"]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        r = client.get(page)
        assert r.status_code == 200, (page, r.status_code)
        if page in ("/", "/cases/demo", "/cases/demo/plan"):
            todo += [
                h for h in re.findall(r'href="(/[^"#?]*)"', r.text) if not h.startswith("/api")
            ]
    for p in ("/registry", "/live", "/cases/demo/margin", "/cases/demo/sirt"):
        assert p in seen, p
