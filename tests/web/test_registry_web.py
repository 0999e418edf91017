"""The registry dashboard: ``/api/registry/report``, ``/api/registry/curves``, ``/registry``.

A synthetic registry (``ioplan registry demo``'s library function, 60 patients) in a
temporary folder is the one the app reads (``$IOPLAN_REGISTRY_DB``, as the CLI). The report
must be the CLI's ``registry report --json``; the overall-survival curve is recounted from
the exported CSV rows with a product-limit written here; no key or date of the cohort may
reach a page or a response; the registry file is never changed.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import run_cli
from ioplan.web import create_app

from .conftest import assert_error

#: Days per month of the registry's time axis (365.25 / 12, its documented unit).
DAYS_PER_MONTH = 30.4375


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """``(database file, CSV folder)`` of the demo cohort (seed 7, 60 patients)."""
    from ioplan.registry import run_demo

    root = tmp_path_factory.mktemp("registry")
    run_demo(root / "csv", root / "reg.sqlite", seed=7, n_patients=60)
    return root / "reg.sqlite", root / "csv"


@pytest.fixture(scope="module")
def client(registry, tmp_path_factory):
    """The app over an empty cases folder, reading the registry named by the CLI's variable."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IOPLAN_REGISTRY_DB", str(registry[0]))
        app = create_app(tmp_path_factory.mktemp("cases"), cache_dir=tmp_path_factory.mktemp("c"))
        with TestClient(app, raise_server_exceptions=False) as c:
            yield c


@pytest.fixture(scope="module")
def untouched(registry):
    """The registry file's digest and times before any request (checked by the last test)."""
    path = registry[0]
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def _rows(folder, name):
    with open(folder / name, newline="") as f:
        return list(csv.DictReader(f))


def _step_value(times, values, t):
    """Value at ``t`` of a right-continuous step function given at its jump times."""
    i = np.searchsorted(np.asarray(times), t, side="right") - 1
    return values[i]


def test_report_is_the_cli_report_json(client, registry, untouched, capsys):
    code, out, _ = run_cli(capsys, "registry", "report", "--db", registry[0], "--json")
    assert code == 0
    r = client.get("/api/registry/report")
    assert r.status_code == 200
    assert r.json() == json.loads(out)
    # the CLI's --at-months is the route's at_months
    code, out, _ = run_cli(
        capsys, "registry", "report", "--db", registry[0], "--json", "--at-months", "1,18,24"
    )
    r = client.get("/api/registry/report", params={"at_months": "1,18,24"})
    assert code == 0 and r.status_code == 200
    assert r.json() == json.loads(out)
    assert list(r.json()["survival"]) == ["1", "18", "24"]


def test_survival_curve_is_a_product_limit_recount_of_the_csv_rows(client, registry):
    """Overall survival from the exported rows: start at the first procedure, end at death
    or at the last contact, imaging or procedure; S(t) = prod (1 - d_i / n_i)."""
    folder = registry[1]
    day = dt.date.fromisoformat
    start, last = {}, {}
    for p in _rows(folder, "procedures.csv"):
        k, d = p["patient_key"], day(p["date"])
        start[k] = min(start.get(k, d), d)
        last[k] = max(last.get(k, d), d)
    for f in _rows(folder, "followups.csv"):
        last[f["patient_key"]] = max(last[f["patient_key"]], day(f["date"]))
    for p in _rows(folder, "patients.csv"):
        if p["last_contact_on"]:
            last[p["patient_key"]] = max(last[p["patient_key"]], day(p["last_contact_on"]))
    death = {d["patient_key"]: day(d["date"]) for d in _rows(folder, "deaths.csv")}
    keys = sorted(start)
    months = np.array([((death.get(k) or last[k]) - start[k]).days / DAYS_PER_MONTH for k in keys])
    died = np.array([k in death for k in keys])
    event_times = np.unique(months[died])
    surv, expected = 1.0, []
    for t in event_times:
        surv *= 1.0 - np.sum(died & (months == t)) / np.sum(months >= t)
        expected.append(surv)

    doc = client.get("/api/registry/curves").json()
    os_curve = next(c for c in doc["survival"]["curves"] if c["key"] == "os")
    assert os_curve["n"] == len(keys) == 60 and os_curve["events"] == died.sum()
    times, values = os_curve["time_months"], os_curve["estimate"]
    assert values[0] == 1.0 and times[0] == 0.0
    # tolerance: lifelines multiplies the same factors (float rounding only)
    got = [_step_value(times, values, t) for t in event_times]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # the curve steps down exactly at the death times, nowhere else
    drops = np.asarray(times)[1:][np.diff(values) < 0]
    np.testing.assert_allclose(drops, event_times, rtol=0, atol=1e-12)
    # censoring ticks: the times of those alive at their last news (not also a death time)
    censored = np.unique(months[~died])
    np.testing.assert_allclose(os_curve["censored_months"], censored, atol=1e-12)
    # numbers at risk under the axis: still followed at each tick
    ticks = doc["survival"]["ticks_months"]
    assert ticks[0] == 0 and ticks[-1] >= months.max()
    assert os_curve["at_risk"] == [int(np.sum(months >= t)) for t in ticks]


def test_curves_agree_with_the_report_at_its_times(client):
    report = client.get("/api/registry/report", params={"at_months": "3,6,12,24"}).json()
    doc = client.get("/api/registry/curves").json()
    by_key = {c["key"]: c for c in doc["survival"]["curves"] + doc["incidence"]["curves"]}
    assert set(by_key) == {"os", "ltp_free", "ltp", "distant"}
    for key, section in (
        ("os", "survival"),
        ("ltp_free", "ltp_free_survival"),
        ("ltp", "ltp_rate"),
        ("distant", "distant_recurrence_rate"),
    ):
        c = by_key[key]
        for t, row in report[section].items():
            assert _step_value(c["time_months"], c["estimate"], float(t)) == pytest.approx(
                row["estimate"], abs=1e-12
            ), (key, t)
    # competing risks: the incidence curves say what competes and count its events
    assert by_key["ltp"]["competing"] == "death" and by_key["ltp"]["events"] == report["ltp_events"]
    assert by_key["os"]["events"] == report["deaths"]


def test_page_has_the_tables_and_the_curves_for_the_script(client):
    r = client.get("/registry")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    report = client.get("/api/registry/report").json()
    for table in ("cohort", "technical-success", "at-times", "cox-ltp", "by-modality"):
        assert f'id="{table}"' in html, table
    ts = report["technical_success"]["per_tumor"]
    assert f"<td>{ts['successes']}/{ts['n']}</td>" in html
    hr = report["cox_ltp"]["terms"]["margin_mm"]
    assert f"<td>{hr['hazard_ratio']:.2f}</td>" in html
    assert f"<td>{hr['ci_low']:.2f}-{hr['ci_high']:.2f}</td>" in html
    assert '<script type="module" src="/static/registry.js">' in html or "registry.js" not in html
    block = re.search(r'<script type="application/json" id="ioplan-config">(.*?)</script>', html)
    config = json.loads(block.group(1))
    assert config["page"] == "registry"
    assert config["curves"] == client.get("/api/registry/curves").json()
    # the times form keeps the query; another time shows in the table header
    assert "<th>24 months</th>" in client.get("/registry?at_months=3,24").text


def test_no_patient_key_or_date_in_any_page_or_response(client, registry):
    folder = registry[1]
    secrets = set()
    for name in ("patients.csv", "lesions.csv", "procedures.csv", "followups.csv",
                 "complications.csv", "deaths.csv"):  # fmt: skip
        for row in _rows(folder, name):
            for col, value in row.items():
                if col.endswith("_key") or col == "date" or col.endswith("_on"):
                    if value:
                        secrets.add(value)
    assert len(secrets) > 300  # keys and dates of 60 patients
    answers = {
        "page": client.get("/registry").text,
        "report": client.get("/api/registry/report").text,
        "curves": client.get("/api/registry/curves").text,
    }
    for what, text in answers.items():
        leaked = sorted(s for s in secrets if s in text)
        assert not leaked, (what, leaked[:5])
        assert not re.search(r"P\d{4}", text), what  # the demo's patient key pattern
        assert not re.search(r"\b(19|20)\d\d-\d\d-\d\d\b", text), what  # no date at all


def test_bad_times_are_refused_in_one_line(client):
    for value, fragment in (("abc", "at_months"), ("0", "above 0, at most 240"),
                            ("3,nan", "above 0, at most 240"), ("300", "240"),
                            (",".join(["1"] * 25), "at most 24")):  # fmt: skip
        assert_error(client.get("/api/registry/report", params={"at_months": value}), 400,
                     fragment)  # fmt: skip
    assert_error(client.get("/api/registry/report", params={"at_months": "1" * 201}), 422)
    page = client.get("/registry", params={"at_months": "abc"})
    assert page.status_code == 400 and 'id="registry-missing"' in page.text


def _app_on(db, tmp_path, monkeypatch):
    monkeypatch.setenv("IOPLAN_REGISTRY_DB", str(db))
    app = create_app(tmp_path / "cases", cache_dir=tmp_path / "cache")
    return TestClient(app, raise_server_exceptions=False)


def test_no_registry_is_a_404_and_a_page_that_says_how_to_make_one(tmp_path, monkeypatch):
    (tmp_path / "cases").mkdir()
    missing = tmp_path / "none.sqlite"
    with _app_on(missing, tmp_path, monkeypatch) as c:
        for route in ("/api/registry/report", "/api/registry/curves"):
            assert_error(c.get(route), 404, "no registry", "ioplan registry demo")
        page = c.get("/registry")
        assert page.status_code == 200
        assert 'id="registry-missing"' in page.text and "ioplan registry demo" in page.text
        assert str(tmp_path) not in page.text  # the server's folders are not shown
    assert not missing.exists()  # read only: the web never creates a registry


def test_empty_registry_is_a_404(tmp_path, monkeypatch, capsys):
    (tmp_path / "cases").mkdir()
    db = tmp_path / "empty.sqlite"
    assert run_cli(capsys, "registry", "init", "--db", db)[0] == 0
    with _app_on(db, tmp_path, monkeypatch) as c:
        assert_error(c.get("/api/registry/report"), 404, "holds no patient")
        assert "holds no patient" in c.get("/registry").text
    blank = tmp_path / "blank.sqlite"
    blank.write_bytes(b"")
    with _app_on(blank, tmp_path, monkeypatch) as c:
        assert_error(c.get("/api/registry/report"), 404, "is empty")
    assert blank.read_bytes() == b""


def test_unreadable_registry_is_a_503_without_server_paths(tmp_path, monkeypatch):
    (tmp_path / "cases").mkdir()
    bad = tmp_path / "notes.sqlite"
    bad.write_text("not a database\n")
    with _app_on(bad, tmp_path, monkeypatch) as c:
        r = c.get("/api/registry/report")
        assert_error(r, 503, "not a SQLite database")
        assert str(tmp_path) not in r.text


def test_the_app_setting_wins_over_the_environment(client, tmp_path):
    """``app.state.registry_db`` (what create_app's registry option sets) is read first."""
    app = client.app
    app.state.registry_db = str(tmp_path / "elsewhere.sqlite")
    try:
        assert_error(client.get("/api/registry/report"), 404, "elsewhere.sqlite")
    finally:
        del app.state.registry_db
    assert client.get("/api/registry/report").status_code == 200


def test_the_report_route_is_in_the_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    params = paths["/api/registry/report"]["get"]["parameters"]
    assert [p["name"] for p in params] == ["at_months"]
    assert "/api/registry/curves" in paths and "/registry" not in paths


def test_zz_the_registry_file_is_unchanged(registry, untouched):
    """Read only: after every request above, the same bytes and modification time."""
    path = registry[0]
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == untouched
