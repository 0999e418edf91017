"""Security: token, path traversal, upload limits, no patient identifier anywhere."""

from __future__ import annotations

import gzip
import io
import logging
import os

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient

from ioplan.imaging import Grid, Volume, write_nifti
from ioplan.web import create_app

from .conftest import assert_error

TOKEN = "s3cret-token-0123456789"
#: Text planted in files and folder names that must never come back.
IDENTIFIERS = ("Smith^John", "19610412", "MRN4455667")


@pytest.fixture(scope="module")
def tricky_dir(tmp_path_factory, cases_dir):
    """A cases folder beside an outside folder, with links out and identifiers planted."""
    base = tmp_path_factory.mktemp("tricky")
    root = base / "cases"
    root.mkdir()
    os.symlink(cases_dir / "demo", root / "demo")  # a link to a case elsewhere: refused too
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP-SECRET " + IDENTIFIERS[0])
    (outside / "case.toml").write_text('image = "../outside/secret.txt"\n')
    os.symlink(outside, root / "escape")  # a link out of the cases folder
    # a case folder named after a patient: never listed, never served
    os.symlink(cases_dir / "demo", root / "John_Smith")
    # a case whose image header carries identifiers (NIfTI descrip and aux_file)
    named = root / "headers"
    named.mkdir()
    g = Grid((8, 9, 10), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    labels = np.zeros(g.shape, np.uint8)
    labels[2:6, 2:6, 2:6] = 7
    write_nifti(Volume(labels, g), named / "labels.nii.gz")
    img = nib.Nifti1Image(np.zeros((10, 9, 8), np.float32), np.diag([-2.0, -2.0, 2.0, 1.0]))
    img.header["descrip"] = f"{IDENTIFIERS[0]} DOB {IDENTIFIERS[1]}".encode()
    img.header["aux_file"] = IDENTIFIERS[2].encode()
    nib.save(img, str(named / "image.nii.gz"))
    (named / "case.toml").write_text(
        'format = "ioplan-case"\nformat_version = 1\nname = "headers"\n'
        'image = "image.nii.gz"\nlabels = "labels.nii.gz"\n[label_values]\nliver = 7\n'
    )
    return root


@pytest.fixture(scope="module")
def tricky(tricky_dir, tmp_path_factory):
    app = create_app(tricky_dir, cache_dir=tmp_path_factory.mktemp("c"), max_upload_mb=0.02)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def locked(cases_dir, tmp_path_factory):
    app = create_app(cases_dir, token=TOKEN, cache_dir=tmp_path_factory.mktemp("c"))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_token_is_required_when_set(locked):
    assert_error(locked.get("/api/cases"), 401, "token")
    assert locked.get("/api/cases").headers["www-authenticate"] == "Bearer"
    assert_error(locked.get("/api/cases", headers={"Authorization": "Bearer wrong"}), 401)
    assert_error(locked.get("/api/cases?token=wrong"), 401)
    assert_error(locked.get("/cases/demo"), 401)
    assert_error(locked.get("/api/cases/demo/volumes/image.nii.gz"), 401)
    ok = locked.get("/api/cases", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()[0]["name"] == "demo"
    assert locked.get(f"/cases/demo?token={TOKEN}").status_code == 200
    assert locked.get("/api/health").status_code == 200  # says nothing about the cases


def test_the_token_never_reaches_the_log(locked, caplog):
    with caplog.at_level(logging.INFO, logger="ioplan.web"):
        assert locked.get(f"/api/cases?token={TOKEN}").status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "ioplan.web"]
    assert any("/api/cases 200" in line for line in lines), lines
    assert not any(TOKEN in line for line in lines), lines


TRAVERSALS = [
    "/api/cases/..%2f..%2fetc%2fpasswd",
    "/api/cases/%2e%2e",
    "/api/cases/%2e%2e%2foutside",
    "/api/cases/..%2foutside/volumes/image.nii.gz",
    "/api/cases/escape",
    "/api/cases/escape/volumes/image.nii.gz",
    "/api/cases/demo/volumes/..%2f..%2fcase.toml",
    "/api/cases/demo/volumes/%2e%2e%2fcase.toml.nii.gz",
    "/api/cases/demo/plan/volumes/..%2fplan.json.nii.gz",
    "/api/cases/%2fetc%2fpasswd",
    "/api/previews/..%2f..%2fsecret.nii.gz",
    "/api/jobs/..%2f..",
    "/cases/..%2f..%2foutside",
    "/cases/escape/plan",
    "/static/..%2f..%2f_app.py",
    "/api/cases/demo%00",
]


@pytest.mark.parametrize("url", TRAVERSALS)
def test_nothing_outside_the_cases_folder(tricky, url):
    r = tricky.get(url)
    assert r.status_code in (400, 404, 422), (url, r.status_code)
    assert b"TOP-SECRET" not in r.content and b"root:" not in r.content
    assert list(r.json()) == ["error"]


def test_links_out_and_identifier_names_are_not_listed(tricky):
    names = [d["name"] for d in tricky.get("/api/cases").json()]
    assert names == ["headers"]
    assert_error(tricky.get("/api/cases/demo"), 404)
    r = tricky.get("/api/cases/John_Smith")
    assert_error(r, 404)
    assert "Smith" not in r.text  # the refused name is not echoed


def test_no_identifier_in_any_response(tricky):
    urls = [
        "/",
        "/api/cases",
        "/api/cases/headers",
        "/cases/headers",
        "/api/cases/headers/volumes/image.nii.gz",
        "/api/cases/headers/volumes/labels.nii.gz",
    ]
    for url in urls:
        r = tricky.get(url)
        assert r.status_code == 200, (url, r.text[:200])
        body = gzip.decompress(r.content) if url.endswith(".gz") else r.content
        for ident in IDENTIFIERS:
            assert ident.encode() not in body, (url, ident)


def test_upload_size_limit(tricky):
    big = io.BytesIO(b"\0" * 50_000)  # 50 kB > 20 kB limit
    files = {"image": ("i.nii", big), "labels": ("l.nii", b"")}
    r = tricky.post("/api/cases", data={"name": "big"}, files=files)
    assert_error(r, 413, "limit")

    def chunks():  # no Content-Length: counted while it streams
        for _ in range(10):
            yield b"\0" * 5_000

    form = {"content-type": "multipart/form-data; boundary=xyz"}
    r = tricky.post("/api/cases", content=chunks(), headers=form)
    assert_error(r, 413, "limit")
    assert not (tricky.app.state.ioplan.store.root / "big").exists()


def test_import_a_case_by_upload(tmp_path, tmp_path_factory):
    g = Grid((10, 12, 14), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    lab = np.zeros(g.shape, np.uint8)
    lab[2:8, 2:10, 2:12] = 1
    lab[4:6, 5:7, 5:7] = 2
    img = np.where(lab == 0, -1000.0, 60.0).astype(np.float32)  # air around (a CT in HU)
    write_nifti(Volume(img, g), tmp_path / "i.nii.gz")
    write_nifti(Volume(lab, g), tmp_path / "l.nii.gz")
    root = tmp_path_factory.mktemp("import")
    app = create_app(root, cache_dir=tmp_path_factory.mktemp("c"))
    with TestClient(app, raise_server_exceptions=False) as c:
        files = {"image": ("i.nii.gz", (tmp_path / "i.nii.gz").read_bytes()),
                 "labels": ("l.nii.gz", (tmp_path / "l.nii.gz").read_bytes())}  # fmt: skip
        form = {"name": "liver-017", "label_map": "liver=1,tumor=2"}
        r = c.post("/api/cases", data=form, files=files)
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "liver-017"
        info = c.get("/api/cases/liver-017").json()
        volumes = {d["label"]: d["voxels"] for d in info["labels"]}
        assert volumes == {"liver": int((lab == 1).sum()), "tumor": int((lab == 2).sum())}
        assert_error(c.post("/api/cases", data=form, files=files), 400, "exists")
        bad = form | {"name": "John_Smith"}
        assert_error(c.post("/api/cases", data=bad, files=files), 400, "pseudonymous")
        assert not (root / "John_Smith").exists()
        # organs labelled inside an unlabelled body: the body outline is found from the
        # image, as import-case does (the web import skipped it: needle "entries" inside)
        body = np.full(g.shape, -1000.0, np.float32)
        body[1:9, 1:11, 1:13] = 40.0
        body[lab > 0] = 60.0
        write_nifti(Volume(body, g), tmp_path / "b.nii.gz")
        files["image"] = ("b.nii.gz", (tmp_path / "b.nii.gz").read_bytes())
        r = c.post("/api/cases", data=form | {"name": "trunk-1"}, files=files)
        assert r.status_code == 201, r.text
        labels = {d["label"] for d in c.get("/api/cases/trunk-1").json()["labels"]}
        assert "skin" in labels and {"liver", "tumor"} <= labels


def test_upload_errors_name_the_uploaded_file_not_the_server_folder(tmp_path, tmp_path_factory):
    """A failed import named the server's scratch file (``upload-k3j2/labels.nii.gz``, under
    the cache folder); it names the file as uploaded, or the field when that name looks
    like a patient's. A class file on the server is not read for ``label_map``."""
    g = Grid((10, 12, 14), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    lab = np.zeros(g.shape, np.uint8)
    lab[2:8, 2:10, 2:12] = 1
    write_nifti(Volume(np.where(lab == 0, -1000.0, 60.0).astype(np.float32), g),
                tmp_path / "i.nii.gz")  # fmt: skip
    write_nifti(Volume(np.zeros(g.shape, np.uint8), g), tmp_path / "empty.nii.gz")
    image = ("ct-017.nii.gz", (tmp_path / "i.nii.gz").read_bytes())
    (tmp_path / "map.toml").write_text("liver = 1\n")  # a file on the server
    root, cache = tmp_path_factory.mktemp("import"), tmp_path_factory.mktemp("c")
    app = create_app(root, cache_dir=cache)
    form = {"name": "liver-018", "label_map": "liver=1"}
    cases = [
        ({"image": ("ct-017.nii.gz", b"not a nifti"), "labels": image}, form,
         "ct-017.nii.gz: not a readable NIfTI"),
        ({"image": image, "labels": ("seg.nii", b"")}, form, "seg.nii: not a readable"),
        ({"image": image, "labels": ("C:\\scans\\seg.nii.gz",
                                     (tmp_path / "empty.nii.gz").read_bytes())},
         form, "seg.nii.gz: label map is empty"),
        # a file name that looks like a patient's is not echoed: the field is named
        ({"image": image, "labels": ("Smith^John.nii.gz", b"x")}, form,
         "the uploaded labels: not a readable"),
        ({"image": image, "labels": image}, form | {"label_map": str(tmp_path / "map.toml")},
         "the server reads no class file"),
    ]  # fmt: skip
    with TestClient(app, raise_server_exceptions=False) as c:
        for files, data, fragment in cases:
            r = c.post("/api/cases", data=data, files=files)
            assert_error(r, 400, fragment)
            for server in ("upload-", str(cache), str(root), str(tmp_path), "Smith", "tmp"):
                assert server not in r.json()["error"], (server, r.json())
    assert list(root.iterdir()) == []
    assert [p.name for p in cache.iterdir() if p.name.startswith("upload-")] == []


def test_cross_site_writes_are_refused(client, needle_request):
    evil = {"Origin": "http://evil.example"}
    r = client.post("/api/cases/demo/preview", json=needle_request, headers=evil)
    assert_error(r, 403, "cross-site")
    r = client.delete("/api/jobs/x", headers={"Sec-Fetch-Site": "cross-site"})
    assert_error(r, 403, "cross-site")
    # the same origin (the page's own requests) passes the guard
    same = {"Origin": "http://testserver"}
    assert client.delete("/api/jobs/x", headers=same).status_code == 404


def test_only_the_allowed_host_names(cases_dir, tmp_path):
    app = create_app(cases_dir, cache_dir=tmp_path, allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/cases").status_code == 200
        assert c.get("/api/cases", headers={"Host": "localhost:8000"}).status_code == 200
        assert_error(c.get("/api/cases", headers={"Host": "rebound.example:8000"}), 400, "Host")


@pytest.fixture
def needle_request(client):
    a = client.get("/api/cases/demo/plan").json()["applicators"][0]
    setting = {"applicator": a["id"], "power_w": 1000.0, "duration_s": 60.0,
               "needles": [{"tip_mm": a["tip_mm"]}]}  # fmt: skip
    return {"settings": [setting], "spacing_mm": 4.0}
