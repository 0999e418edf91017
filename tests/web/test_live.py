"""Live monitoring over HTTP: sessions, the frame stream, an independent dose recount.

The app here serves its own cases folder (empty but for a folder of frames), so that the
tests do not wait for the demo case. The synthetic scanner runs with 20 ms between
frames: a session of 30 frames lasts about a second.
"""

from __future__ import annotations

import base64
import json
import math
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ioplan.web import create_app

from .conftest import assert_error, read_events

FAST = {"demo": True, "interval_s": 0.02, "baseline_frames": 3, "frames": 30}
FRAME_KEYS = {
    "frame", "time_s", "received_s", "sent_s", "ms", "max_temperature_c", "max_cem43_min",
    "necrosis_volume_ml", "baseline_used", "alerts", "slice", "shape", "temperature_c",
    "cem43_min",
}  # fmt: skip
#: The keys of ``ioplan monitor --json`` (ioplan.monitoring.live_summary).
SUMMARY_KEYS = {"frames", "max_temperature_c", "necrosis_volume_ml", "ms_per_frame", "alerts",
                "notes"}  # fmt: skip


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return tmp_path_factory.mktemp("live-cases")


@pytest.fixture(scope="module")
def live(cases, tmp_path_factory):
    app = create_app(cases, cache_dir=tmp_path_factory.mktemp("live-cache"))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def client(live):
    """The client; a session a test leaves running is stopped after it."""
    yield live
    for s in live.get("/api/live/sessions").json():
        if s["state"] in ("starting", "baseline", "running"):
            live.delete(s["url"])


def _events(client, sid, *, stop_after=None, headers=None, query=""):
    """(event, document) pairs of a session's stream up to ``end`` (or ``stop_after``
    frame events)."""

    def enough(out):
        return stop_after is not None and sum(k == "frame" for k, _ in out) >= stop_after

    return read_events(client, f"/api/live/sessions/{sid}/frames{query}", headers=headers,
                       stop=enough)  # fmt: skip


def _f32(doc, key):
    raw = np.frombuffer(base64.b64decode(doc[key]), "<f4")
    return raw.reshape(doc["shape"]).astype(float)


def _start(client, **settings):
    r = client.post("/api/live/sessions", json=FAST | settings)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_demo_session_streams_its_frames_to_the_end(client):
    doc = _start(client)
    assert doc["state"] in ("starting", "baseline", "running")
    assert set(doc["summary"]) == SUMMARY_KEYS
    events = _events(client, doc["id"])
    kinds = [k for k, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert kinds.count("baseline") == 3
    frames = [d for k, d in events if k == "frame"]
    assert len(frames) == 30  # every heating frame, none lost on the way
    for f in frames:
        assert set(f) == FRAME_KEYS
        assert f["shape"] == [64, 64] and f["slice"] == 2  # the middle of 4 slices
        assert f["received_s"] <= f["sent_s"]
        # the slice's maximum is at most the volume's (the map is of one of its slices)
        assert _f32(f, "temperature_c").max() <= f["max_temperature_c"] + 1e-3
    assert [f["frame"] for f in frames] == list(range(3, 33))
    assert [f["time_s"] for f in frames] == [float(i) for i in range(3, 33)]  # 1 s of scan
    end = events[-1][1]
    assert end["state"] == "done" and end["error"] is None
    summary = end["summary"]
    assert set(summary) == SUMMARY_KEYS and summary["frames"] == 30
    assert summary["max_temperature_c"] == pytest.approx(
        max(f["max_temperature_c"] for f in frames), abs=1e-3
    )
    # the demo heats 40 degC at the centre, tau 30 s: after 30 s well above 60 degC, and
    # necrosis (CEM43 >= 240 min) reached there
    assert summary["max_temperature_c"] > 55
    assert summary["necrosis_volume_ml"] > 0
    state = client.get(doc["url"]).json()
    assert state["state"] == "done" and state["summary"] == summary
    assert state["last_frame"]["frame"] == 32 and "temperature_c" not in state["last_frame"]
    th = state["thresholds"]
    assert th["alert_temperature_c"]["value"] == 45.0 and th["alert_temperature_c"]["source"]
    assert th["necrosis_cem43_min"]["value"] == 240.0
    assert "Sapareto" in th["necrosis_cem43_min"]["source"]


def _cem43_line(t0, t1, dt_s):
    """CEM43 minutes for T linear from t0 to t1 over dt_s, integrated in closed form.

    Sapareto & Dewey 1984 (DOI 10.1016/0360-3016(84)90379-1): CEM43 = sum R^(43 - T) dt,
    R = 0.5 at or above 43 degC, 0.25 below. On a line T = t0 + s (t1 - t0), s in [0, 1],
    the integral of exp(k (T - 43)) with k = -ln R is dt (e^(k(t1-43)) - e^(k(t0-43))) /
    (k (t1 - t0)); a line crossing 43 degC is split there. Written here from the paper,
    not with the library's code.
    """
    t0 = np.asarray(t0, float)
    t1 = np.asarray(t1, float)

    def piece(a, b, length, k):
        d = b - a
        flat = np.abs(d) < 1e-9
        safe = np.where(flat, 1.0, d)
        out = length * (np.exp(k * (b - 43.0)) - np.exp(k * (a - 43.0))) / (k * safe)
        return np.where(flat, length * np.exp(k * (a - 43.0)), out)

    k_hi, k_lo = -math.log(0.5), -math.log(0.25)
    lo, hi = np.minimum(t0, t1), np.maximum(t0, t1)
    span = np.where(hi - lo < 1e-12, 1.0, hi - lo)
    frac_below = np.clip((43.0 - lo) / span, 0.0, 1.0)  # time share below 43 degC
    below_end = np.minimum(hi, 43.0)
    above_start = np.maximum(lo, 43.0)
    total = piece(lo, below_end, dt_s * frac_below, k_lo)
    total = total + piece(above_start, hi, dt_s * (1 - frac_below), k_hi)
    flat = hi - lo < 1e-12
    k = np.where(lo >= 43.0, k_hi, k_lo)
    total = np.where(flat, dt_s * np.exp(k * (lo - 43.0)), total)
    return total / 60.0


def test_the_streamed_dose_is_the_dose_of_the_streamed_temperatures(client):
    doc = _start(client)
    events = _events(client, doc["id"])
    base = [d for k, d in events if k == "baseline"]
    frames = [d for k, d in events if k == "frame"]
    assert len(frames) == 30
    # the first measured frame's line starts at the baseline temperature (37 degC) at the
    # last baseline frame's time; then from each streamed frame to the next
    prev_t = np.full(frames[0]["shape"], 37.0)
    prev_s = base[-1]["time_s"]
    dose = np.zeros(frames[0]["shape"])
    for f in frames:
        temp = _f32(f, "temperature_c")
        dose += _cem43_line(prev_t, temp, f["time_s"] - prev_s)
        prev_t, prev_s = temp, f["time_s"]
        # float32 maps: temperature to ~4e-6 degC, so the dose to ~3e-6 relative
        # (d ln CEM / dT = ln 4 at most); 1e-4 leaves room, far below any clinical use
        np.testing.assert_allclose(_f32(f, "cem43_min"), dose, rtol=1e-4, atol=1e-9)
    # the region the page outlines (CEM43 >= 240 min) is there, at the hot spot
    necrosis = dose >= 240.0
    assert 0 < necrosis.sum() < necrosis.size / 4
    cy, cx = np.argwhere(necrosis).mean(axis=0)
    assert abs(cy - 31.5) < 2 and abs(cx - 31.5) < 2


def test_alerts_are_those_of_the_streamed_temperatures_at_the_structure_at_risk(client):
    doc = _start(client)
    events = _events(client, doc["id"])
    start = events[0][1]
    assert events[0][0] == "start" and start["at_risk"]["name"]
    mask = np.frombuffer(base64.b64decode(start["at_risk"]["mask"]), np.uint8).reshape(64, 64)
    # a disc of radius 3 voxels (4.5 mm) centred 7 voxels right of the image centre (31.5,
    # 31.5): voxel centres at half-integer offsets (a, b) with a^2 + b^2 <= 9 are 8 per
    # quadrant ((.5,.5), (.5,1.5), (1.5,.5), (.5,2.5), (2.5,.5), (1.5,1.5), (1.5,2.5),
    # (2.5,1.5)): 32 voxels
    assert mask.sum() == 32 and mask[31:33, 38].all() and not mask[31:33, 31].any()
    limit = start["thresholds"]["alert_temperature_c"]["value"]
    fired = 0
    for k, f in events:
        if k != "frame":
            continue
        hottest = _f32(f, "temperature_c")[mask.astype(bool)].max()
        if hottest > limit:  # over the limit in this slice: the frame must say so
            assert len(f["alerts"]) == 1, f["frame"]
        for a in f["alerts"]:
            assert a["limit_c"] == limit and a["temperature_c"] > limit
            assert a["frame"] == f["frame"] and mask[a["voxel"][1], a["voxel"][2]]
            # the volume's hottest voxel in the structure, at least this slice's
            assert a["temperature_c"] >= round(hottest, 2) - 0.006
            fired += 1
    assert fired >= 5  # the demo's heat reaches the structure after ~10 s of 30
    assert len(events[-1][1]["summary"]["alerts"]) == fired


def test_a_stopped_session_stops_streaming_and_frees_the_place(client):
    doc = _start(client, frames=500, interval_s=0.05)
    seen = _events(client, doc["id"], stop_after=2)
    assert sum(k == "frame" for k, _ in seen) == 2
    r = client.delete(doc["url"])
    assert r.status_code == 202 and r.json()["state"] == "cancelled"
    count = client.get(doc["url"]).json()["summary"]["frames"]
    time.sleep(0.4)  # 8 frame intervals: a session still running would have grown
    after = client.get(doc["url"]).json()
    assert after["state"] == "cancelled" and after["summary"]["frames"] == count < 500
    rest = _events(client, doc["id"])  # a finished session's stream ends with its end
    assert rest[-1] == ("end", rest[-1][1]) and rest[-1][1]["state"] == "cancelled"
    assert client.delete(doc["url"]).status_code == 200  # finished: left as it is
    again = _start(client)  # the place is free
    assert client.delete(again["url"]).status_code == 202


def test_a_second_session_is_refused_while_one_runs(client):
    doc = _start(client, frames=500, interval_s=0.05)
    assert_error(client.post("/api/live/sessions", json=FAST), 409, "running already")
    client.delete(doc["url"])


def test_late_pages_get_the_kept_events_and_skip_what_they_had(client):
    doc = _start(client, frames=5)
    everything = _events(client, doc["id"])
    n = len(everything)
    # a page that reconnects after event 4 (EventSource sends the last id it saw) gets
    # events 5.. only; a new page gets all of them, the start event first
    again = _events(client, doc["id"], headers={"Last-Event-ID": "4"})
    assert again == everything[4:] and len(again) == n - 4
    assert _events(client, doc["id"]) == everything


@pytest.mark.parametrize(
    ("settings", "status", "fragment"),
    [
        ({"b0_t": 50}, 400, "B0 (T)"),
        ({"te_ms": 0}, 400, "TE (ms)"),
        ({"baseline_frames": 0}, 400, "baseline frames"),
        ({"frames": 0}, 400, "frames must be 1-1000"),
        ({"interval_s": -1}, 400, "interval_s"),
        ({"motion_mm": 99}, 400, "motion_mm"),
        ({"seed": -3}, 400, "seed"),
        ({"alert_c": 20}, 400, "alert temperature"),
        # a folder carries no structure at risk: the limit was accepted and never checked
        ({"demo": False, "folder": "frames", "alert_c": 40}, 400, "structure at risk"),
        ({"idle_timeout_s": 0}, 400, "idle_timeout_s"),
        ({"slice": -1}, 400, "slice"),
        ({"demo": False}, 400, "give one input"),
        ({"folder": "x"}, 400, "give one input"),
        ({"b0_t": "strong"}, 422, "b0_t"),
        ({"speed": 3}, 422, "speed"),
    ],
)
def test_bad_settings_are_refused_in_one_line(client, settings, status, fragment):
    assert_error(client.post("/api/live/sessions", json=FAST | settings), status, fragment)


def test_a_slice_outside_the_frames_fails_the_session_in_one_line(client):
    doc = _start(client, slice=9)
    end = _events(client, doc["id"])[-1]
    assert end[0] == "end" and end[1]["state"] == "failed"
    assert end[1]["error"] == "slice must be 0-3 (the frames have 4), got 9"


@pytest.mark.parametrize(
    "folder", ["..", "../..", "/etc", "/", "frames/../../x", "~", "outside-link", "nowhere"]
)
def test_folders_outside_the_cases_folder_are_refused(client, cases, tmp_path, folder):
    (cases / "outside-link").unlink(missing_ok=True)
    (cases / "outside-link").symlink_to(tmp_path, target_is_directory=True)
    r = client.post("/api/live/sessions", json={"folder": folder, "baseline_frames": 2})
    assert_error(r, 400, "folder")
    assert str(tmp_path) not in r.text and str(cases) not in r.text


def test_a_folder_of_frames_inside_the_cases_folder_is_monitored(client, cases):
    from ioplan.imaging import Grid, write_nifti_series
    from ioplan.monitoring import ScannerConfig, gaussian_heating, synthetic_frames

    shape, sp = (2, 24, 24), 1.5
    times = np.arange(6.0)
    z = synthetic_frames(gaussian_heating(shape, sp, times, heat_from_s=2.0), times,
                         ScannerConfig(spacing_mm=sp, snr=80, seed=2))  # fmt: skip
    folder = cases / "scanner" / "frames"
    g = Grid(shape, (sp,) * 3)
    for i, f in enumerate(z):
        write_nifti_series(np.abs(f)[None], g, folder / f"{i:04d}_magnitude.nii.gz")
        write_nifti_series(np.angle(f)[None], g, folder / f"{i:04d}_phase.nii.gz")
    r = client.post("/api/live/sessions", json={"folder": "scanner/frames", "baseline_frames": 2,
                                                "idle_timeout_s": 0.3, "frame_s": 2.0})  # fmt: skip
    assert r.status_code == 201, r.text
    events = _events(client, r.json()["id"])
    frames = [d for k, d in events if k == "frame"]
    assert [f["frame"] for f in frames] == [2, 3, 4, 5]
    assert [f["time_s"] for f in frames] == [4.0, 6.0, 8.0, 10.0]  # frame_s apart
    assert frames[0]["shape"] == [24, 24] and frames[0]["slice"] == 1
    assert events[0][1]["at_risk"] is None  # no structure at risk for a folder
    assert events[-1][1]["state"] == "done" and events[-1][1]["settings"]["input"] == "folder"


def test_unknown_sessions_are_404(client):
    assert_error(client.get("/api/live/sessions/nope"), 404, "no such live session")
    assert_error(client.delete("/api/live/sessions/nope"), 404, "no such live session")
    assert_error(client.get("/api/live/sessions/nope/frames"), 404, "no such live session")


def test_the_live_page(client):
    r = client.get("/live")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    for needle in ('id="latency-p95"', 'id="map"', 'id="plot"', 'id="alerts"',
                   'id="colourbar"', 'id="ioplan-config"'):  # fmt: skip
        assert needle in html, needle
    assert '<script type="module" src="/static/live.js">' in html or "viewer-missing" in html
    assert "<script>" not in html  # no inline script (the CSP forbids it)
    cfg = html.split('id="ioplan-config">')[1].split("</script>")[0]
    cfg = json.loads(cfg)
    assert cfg["page"] == "live" and cfg["thresholds"]["necrosis_cem43_min"] == 240.0


def test_with_a_token_the_stream_takes_it_in_the_query(cases, tmp_path):
    # EventSource cannot send headers: the page passes the token as ?token=
    app = create_app(cases, token="s3cret", cache_dir=tmp_path)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert_error(c.post("/api/live/sessions", json=FAST), 401, "token")
        r = c.post("/api/live/sessions", json=FAST | {"frames": 3},
                   headers={"Authorization": "Bearer s3cret"})  # fmt: skip
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        assert_error(c.get(f"/api/live/sessions/{sid}/frames"), 401, "token")
        events = _events(c, sid, query="?token=s3cret")
        assert events[-1][0] == "end" and sum(k == "frame" for k, _ in events) == 3


def test_openapi_lists_the_live_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/api/live/sessions"]) == {"get", "post"}
    assert set(paths["/api/live/sessions/{session_id}"]) == {"get", "delete"}
    assert "text/event-stream" in str(paths["/api/live/sessions/{session_id}/frames"])
    assert "/live" not in paths  # the page is not API


def test_a_scanner_over_openigtlink_feeds_the_session_as_the_demo_does(client):
    # ioplan monitor --demo's scanner (an OpenIGTLink server, started here in the main
    # thread: pyigtl's server sets signal handlers), read by the session as a client
    from ioplan.monitoring import demo_scanner

    scanner, _ = demo_scanner(0, frames=10, baseline=3, interval_s=0.1, seed=4)
    try:
        r = client.post("/api/live/sessions", json={"igtl_input": f"127.0.0.1:{scanner.port}",
                                                    "baseline_frames": 3,
                                                    "idle_timeout_s": 0.5})  # fmt: skip
        assert r.status_code == 201, r.text
        events = _events(client, r.json()["id"])
    finally:
        scanner.stop()
    assert events[-1][1]["state"] == "done" and events[-1][1]["settings"]["input"] == "igtl"
    sent = {d["frame"]: d for k, d in events if k == "frame"}
    assert len(sent) >= 8  # pyigtl keeps the latest message only: a frame may be replaced
    # the same series played in the server's memory (the demo input): same temperatures.
    # OpenIGTLink carries magnitude and phase as float32 (phase to ~2e-7 rad, which is
    # 1e-6 degC at 3 T, TE 10 ms); 1e-3 degC leaves room for the frames' float32 maps
    demo = _events(client, _start(client, frames=10, seed=4)["id"])
    for k, d in demo:
        if k == "frame" and d["frame"] in sent:
            np.testing.assert_allclose(_f32(sent[d["frame"]], "temperature_c"),
                                       _f32(d, "temperature_c"), atol=1e-3)  # fmt: skip


def test_an_unreachable_scanner_fails_the_session_in_one_line(client):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    r = client.post("/api/live/sessions", json={"igtl_input": f"127.0.0.1:{port}",
                                                "start_timeout_s": 0.3})  # fmt: skip
    assert r.status_code == 201, r.text
    end = _events(client, r.json()["id"])[-1][1]
    assert end["state"] == "failed" and end["error"].startswith(
        f"cannot reach 127.0.0.1:{port} (connection refused, for 0.3 s: start_timeout_s)"
    )
    assert_error(client.post("/api/live/sessions", json={"igtl_input": "nohost"}), 400,
                 "igtl_input must be host:port")  # fmt: skip
