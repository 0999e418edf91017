"""Live monitoring: thermometry frames streamed to the page, with alerts.

``POST /api/live/sessions`` starts a session (``ioplan monitor``'s settings; the synthetic
scanner with ``demo: true``, a ``folder`` inside the cases folder, or a scanner's
OpenIGTLink server, ``igtl_input: "host:port"``), one at a time (409 while one runs);
``GET /api/live/sessions/{id}`` is its state and summary (the keys of
``ioplan monitor --json``); ``GET /api/live/sessions/{id}/frames`` streams its frames as
server-sent events (``start``, ``baseline``, ``frame``, ``end``); ``DELETE`` stops it.
``GET /live`` is the page that draws them. The session itself is
:mod:`ioplan.web._live_session`.
"""

from __future__ import annotations

import asyncio
import threading
from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from ioplan.errors import InputError
from ioplan.web._api_cases import Services
from ioplan.web._cases import CaseNotFoundError
from ioplan.web._live_session import LiveManager, LiveRequest, SessionBusy, thresholds
from ioplan.web._pages import page

__all__ = ["router"]

router = APIRouter()

#: Seconds between keep-alive comments on a quiet stream.
KEEP_ALIVE_S = 10.0
_manager_lock = threading.Lock()


def manager(request: Request) -> LiveManager:
    """The app's :class:`LiveManager` (made at the first use)."""
    with _manager_lock:
        live = getattr(request.app.state, "ioplan_live", None)
        if live is None:
            live = request.app.state.ioplan_live = LiveManager()
        return live


def _session(request: Request, session_id: str):
    s = manager(request).get(session_id)
    if s is None:
        raise CaseNotFoundError("no such live session")
    return s


@router.post("/api/live/sessions", status_code=201, summary="Start a live monitoring session")
def start_session(req: LiveRequest, request: Request, svc: Services) -> dict[str, Any]:
    """Start ``ioplan monitor`` in the server: ``demo: true``, ``folder`` or ``igtl_input``.

    Settings as the command's options: ``b0_t`` (T), ``te_ms``, ``baseline_frames``,
    ``multi_baseline``, ``idle_timeout_s``, ``start_timeout_s``, ``alert_c`` (the
    protected-structure limit, degC; default the library's 45); the demo's ``frames``,
    ``interval_s`` (wall-clock s between frames), ``seed``, ``motion_mm``; the folder's
    ``frame_s``; ``slice`` (the slice streamed; default the middle one). 400 for a bad
    setting or a folder outside the cases folder, 409 while another session runs.
    """
    if req.alert_c is not None and not req.demo:
        # the demo adds a structure at risk; a folder or an OpenIGTLink input carries none,
        # so the limit would never be checked (as `thermometry --alert-c` without --protected)
        raise InputError("alert_c needs a structure at risk to watch: only the demo has one "
                         "(a folder or OpenIGTLink input carries none)")  # fmt: skip
    try:
        session = manager(request).start(req, svc.store.root)
    except SessionBusy as exc:
        raise HTTPException(409, str(exc)) from None
    return session.document()


@router.get("/api/live/sessions", summary="The live sessions the server remembers")
def list_sessions(request: Request) -> list[dict[str, Any]]:
    """Every remembered session's state, newest first."""
    return [s.document() for s in manager(request).list()]


@router.get("/api/live/sessions/{session_id}", summary="A live session's state")
def get_session(session_id: str, request: Request) -> dict[str, Any]:
    """The session's document.

    ``id``, ``state`` (starting, baseline, running, done, failed, cancelled), ``error``,
    ``settings``, ``summary`` (``ioplan monitor --json``'s keys), ``last_frame``,
    ``thresholds`` (values and sources).
    """
    return _session(request, session_id).document()


@router.delete("/api/live/sessions/{session_id}", summary="Stop a live session")
def stop_session(session_id: str, request: Request) -> JSONResponse:
    """Stop a running session (202); a finished one is left as it is (200)."""
    s = _session(request, session_id)
    was_active = s.active
    s.cancel()
    return JSONResponse(s.document(), status_code=202 if was_active else 200)


@router.get(
    "/api/live/sessions/{session_id}/frames",
    summary="A live session's frames as server-sent events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def frames(session_id: str, request: Request) -> StreamingResponse:
    """The session's events.

    ``start`` (grid, slice, structure at risk, thresholds), ``baseline`` per baseline
    frame, ``frame`` per measured frame, ``end`` (the session's state) last.

    A ``frame``: ``frame``, ``time_s``, ``received_s`` and ``sent_s`` (server epoch s),
    ``ms`` (processing), ``max_temperature_c``, ``max_cem43_min``, ``necrosis_volume_ml``,
    ``baseline_used``, ``alerts`` (the library's: ``frame``, ``time_s``, ``voxel``,
    ``temperature_c``, ``limit_c``), ``slice``, ``shape`` (rows, columns) and the slice's
    ``temperature_c`` (degC) and ``cem43_min`` (min) as base64 little-endian float32,
    row-major. Events a page missed are sent again from the ``Last-Event-ID`` it gives.
    """
    s = _session(request, session_id)
    last = request.headers.get("last-event-id", "")
    backlog, queue = s.subscribe(int(last) if last.isdigit() else 0)

    async def stream():
        try:
            for _, text in backlog:
                yield text
            if queue is None:
                return
            while True:
                try:
                    _, text = await asyncio.wait_for(queue.get(), timeout=KEEP_ALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                yield text
                if text.split("\n", 2)[1] == "event: end":
                    return
        finally:
            if queue is not None:
                s.unsubscribe(queue)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _field(name: str, label: str, value: Any, step: str = "any") -> str:
    return (
        f'<label>{escape(label)} <input id="set-{name}" data-key="{name}" type="number" '
        f'step="{step}" value="{escape(str(value))}"></label><br>'
    )


@router.get("/live", response_class=HTMLResponse, include_in_schema=False)
def live_page(svc: Services) -> HTMLResponse:
    """The live monitoring page: temperature map, CEM43 contour, plot, alerts, latency."""
    d = LiveRequest()
    th = thresholds()
    fields = "".join(
        _field(k, label, getattr(d, k), step)
        for k, label, step in (
            ("frames", "heating frames", "1"),
            ("interval_s", "seconds between frames", "any"),
            ("baseline_frames", "baseline frames", "1"),
            ("b0_t", "B0 (T)", "any"),
            ("te_ms", "TE (ms)", "any"),
            ("seed", "noise seed", "1"),
        )
    )
    alert_c = th["alert_temperature_c"]
    nec = th["necrosis_cem43_min"]
    body = f"""<main><div id="side"><h2>Live monitoring</h2>
<p>MR thermometry frames (PRF shift) as they arrive: temperature, thermal dose (CEM43)
and alerts. The demo plays the synthetic scanner of <code>ioplan monitor --demo</code>.</p>
<div id="settings"><label>input <select id="set-input"><option value="demo">synthetic
scanner (demo)</option><option value="folder">folder in the cases folder</option>
<option value="igtl">scanner over OpenIGTLink</option></select></label><br>
<label>folder <input id="set-folder" style="width:160px" placeholder="frames"></label><br>
<label>OpenIGTLink <input id="set-igtl" style="width:160px" placeholder="127.0.0.1:18944">
</label><br>{fields}</div>
<button id="start">start</button><button id="stop" disabled>stop</button>
<p id="state">no session</p>
<table id="numbers"><tr><th>frame</th><td id="frame-count">-</td></tr>
<tr><th>scan time (s)</th><td id="scan-time">-</td></tr>
<tr><th>max temperature (&deg;C)</th><td id="max-temperature">-</td></tr>
<tr><th>max CEM43 (min)</th><td id="max-cem43">-</td></tr>
<tr><th>necrosis (mL, CEM43 &ge; {nec["value"]:g} min)</th><td id="necrosis">-</td></tr>
<tr><th>processing (ms, server)</th><td id="server-ms">-</td></tr>
<tr><th>arrival &rarr; display p50 / p95 (ms)</th><td><span id="latency-p50">-</span> /
<span id="latency-p95">-</span></td></tr>
<tr><th>scanner frame &rarr; display p95 (ms)</th><td id="e2e-p95">-</td></tr></table>
<p style="color:#aaa">Latency: from the frame's message arriving in the page to the frame
on screen (the next animation frame after drawing), over the last 200 frames; the second
line from the frame's arrival in the server (server clock: exact on this machine only).</p>
<h3>Alerts</h3><p style="color:#aaa">Temperature above
{alert_c["value"]:g} &deg;C in a structure at risk ({escape(alert_c["source"])}).
Necrosis: CEM43 &ge; {nec["value"]:g} min ({escape(nec["source"])}).</p>
<ol id="alerts" reversed></ol></div>
<div id="viewer"><div style="display:flex;gap:12px;align-items:flex-start">
<canvas id="map" width="512" height="512" style="background:#000;image-rendering:pixelated">
</canvas><canvas id="colourbar" width="90" height="512"></canvas></div>
<p><span class="swatch" style="background:#fff"></span>CEM43 &ge; {nec["value"]:g} min
(contour) <span class="swatch" style="background:#0f0"></span>structure at risk</p>
<canvas id="plot" width="620" height="200" style="background:#000"></canvas>
<div id="status"></div></div></main>"""
    cfg = {
        "page": "live",
        "defaults": d.model_dump(),
        "thresholds": {k: v["value"] for k, v in th.items()},
        "display_range_c": [37.0, 80.0],  # the demo peaks near 77 degC
    }
    return page("live monitoring", body, cfg, svc.viewer_built, script="live.js")
