"""A live monitoring session in the server: the library's live loop, its frames as events.

One session runs at a time, in a worker thread: frames come from the synthetic scanner
(the series of ``ioplan monitor --demo``: :func:`ioplan.monitoring.gaussian_heating` and
:func:`ioplan.monitoring.synthetic_frames` on the grid of
:func:`ioplan.monitoring.demo_scanner`, handed over in the server's memory, paced at
``interval_s``: pyigtl's server installs signal handlers, which only the main thread may
do, and would take SIGINT from uvicorn) or from a folder inside the cases folder
(:func:`ioplan.monitoring.folder_frames`, as ``ioplan monitor --folder``), and go through
:func:`ioplan.monitoring.run_live` with a :class:`ioplan.monitoring.Thermometry` of the
request's settings. A scanner's OpenIGTLink server (``igtl_input``: ``host:port``, as
``ioplan monitor --igtl-input``; the server connects as a client, which needs no signal
handler) feeds it too: ``ioplan monitor --demo``'s scanner included. Each frame becomes one
server-sent event, encoded once and shared by every page that follows the session: its
numbers (the keys of ``ioplan monitor --json``'s per-frame table and alerts) and one slice
of the temperature (degC) and CEM43 (min) maps as base64 little-endian float32.

Server time stamps: ``received_s`` (epoch s) when the frame arrived from the scanner or
the folder, ``sent_s`` when its event was queued to the pages; ``ms`` is the library's
processing time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import threading
import time
import tomllib
import uuid
from collections import deque
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from ioplan.errors import InputError

__all__ = ["LiveManager", "LiveRequest", "LiveSession", "thresholds"]

#: Events of a session kept for pages that join late (the start event is always kept).
EVENTS_KEPT = 600
#: Finished sessions remembered (their state and summary).
SESSIONS_KEPT = 10
#: The synthetic structure at risk of the demo: a cylinder through the slices, this far
#: (mm) from the heat source at the centre of the image, of this radius (mm). Its edge is
#: 6 mm from the source: the demo's hot spot (40 degC rise, 6 mm wide) passes the alert
#: limit there after about 10 s of heating.
DEMO_AT_RISK_OFFSET_MM = 10.5
DEMO_AT_RISK_RADIUS_MM = 4.5
DEMO_AT_RISK_NAME = "structure at risk (synthetic, 10.5 mm from the source)"
#: The synthetic scanner's grid (that of :func:`ioplan.monitoring.demo_scanner`).
DEMO_SHAPE = (4, 64, 64)
DEMO_SPACING_MM = 1.5
#: Session states; the last three are final.
ACTIVE = ("starting", "baseline", "running")
FINAL = ("done", "failed", "cancelled")


class LiveRequest(BaseModel):
    """Settings of a session, named as ``ioplan monitor``'s options.

    Give one input: ``demo: true`` (the synthetic scanner), ``folder`` (a folder inside the
    cases folder that the scanner writes ``NNNN_magnitude.nii.gz`` /
    ``NNNN_phase.nii.gz`` into) or ``igtl_input`` (the scanner's OpenIGTLink server,
    ``host:port``).
    """

    model_config = ConfigDict(extra="forbid")

    demo: bool = False
    folder: str | None = None
    igtl_input: str | None = None
    b0_t: float = 3.0
    te_ms: float = 10.0
    baseline_frames: int = 10
    multi_baseline: bool = False
    frame_s: float = 1.0
    frames: int = 60
    interval_s: float = 0.2
    seed: int = 0
    motion_mm: float = 0.0
    alert_c: float | None = None
    idle_timeout_s: float = 5.0
    start_timeout_s: float = 30.0
    slice: int | None = None


def thresholds() -> dict[str, dict[str, Any]]:
    """The alert and necrosis thresholds of the library, each with its source."""
    from ioplan.monitoring import prf_constants
    from ioplan.physics import CEM43_NECROSIS_MIN
    from ioplan.tissue import source_of

    text = resources.files("ioplan.monitoring").joinpath("data/prf.toml").read_text()
    prf = tomllib.loads(text)
    return {
        "alert_temperature_c": {
            "value": prf_constants()["alert_temperature_c"],
            "source": prf["alert_temperature_c"]["source"],
        },
        "necrosis_cem43_min": {
            "value": CEM43_NECROSIS_MIN,
            "source": source_of("damage.cem43.necrosis_threshold_min"),
        },
    }


def _finite(v: float, digits: int) -> float | None:
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


def _b64(a: np.ndarray, dtype: str = "<f4") -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def resolve_folder(root: Path, text: str) -> Path:
    """``text`` as a folder inside ``root`` (links followed); anything else is refused."""
    if not text or "\x00" in text or Path(text).is_absolute() or text.startswith("~"):
        raise InputError(f"folder must be a path relative to the cases folder, got {text[:80]!r}")
    shown = text if len(text) <= 80 else text[:77] + "..."
    try:
        real = (root / text).resolve()
        inside = real == root or root in real.parents
        is_dir = inside and real.is_dir()
    except (OSError, ValueError, RuntimeError):  # a name too long, a loop of links
        raise InputError(f"folder {shown!r}: not a folder inside the cases folder") from None
    if not inside:
        raise InputError(f"folder {shown!r} is not inside the cases folder")
    if not is_dir:
        raise InputError(f"folder {shown!r}: no such folder inside the cases folder")
    return real


def demo_at_risk(shape: tuple[int, ...], spacing_mm: tuple[float, ...]) -> np.ndarray:
    """The demo's structure at risk on the frames' grid (see :data:`DEMO_AT_RISK_OFFSET_MM`)."""
    ny, nx = shape[-2:]
    sy, sx = spacing_mm[-2:]
    y = (np.arange(ny) - (ny - 1) / 2) * sy
    x = (np.arange(nx) - (nx - 1) / 2) * sx - DEMO_AT_RISK_OFFSET_MM
    disc = (y[:, None] ** 2 + x[None, :] ** 2) <= DEMO_AT_RISK_RADIUS_MM**2
    return np.broadcast_to(disc, shape).copy()


def check_demo(req: LiveRequest) -> None:
    """The demo's settings, in the ranges of :func:`ioplan.monitoring.demo_scanner`."""
    from ioplan.monitoring import MAX_DEMO_FRAMES

    if not 1 <= req.frames <= MAX_DEMO_FRAMES:
        raise InputError(f"frames must be 1-{MAX_DEMO_FRAMES}, got {req.frames}")
    if not (math.isfinite(req.interval_s) and 0.0 <= req.interval_s <= 10.0):
        raise InputError(f"interval_s must be in 0-10 s, got {req.interval_s}")
    if not (math.isfinite(req.motion_mm) and abs(req.motion_mm) <= 20.0):
        raise InputError(f"motion_mm must be in -20..20 mm, got {req.motion_mm}")
    if req.seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {req.seed}")


def demo_frames(req: LiveRequest, stop: threading.Event):
    """The synthetic scanner's series, one frame every ``interval_s`` of wall-clock time.

    As :func:`ioplan.monitoring.demo_scanner` sends it: 4 x 64 x 64 voxels of 1.5 mm,
    SNR 50, a hot spot from the end of the baseline, 1 s of scan time per frame.
    """
    from ioplan.imaging import Grid
    from ioplan.monitoring import Frame, ScannerConfig, gaussian_heating, synthetic_frames

    shape, sp = DEMO_SHAPE, DEMO_SPACING_MM
    times = np.arange(0, req.baseline_frames + req.frames, 1.0)
    temp = gaussian_heating(shape, sp, times, heat_from_s=req.baseline_frames)
    data = synthetic_frames(temp, times, ScannerConfig(snr=50, spacing_mm=sp, seed=req.seed,
                                                       motion_mm=req.motion_mm))  # fmt: skip
    grid = Grid(shape, (sp,) * 3)
    for i, f in enumerate(data):
        if i and stop.wait(req.interval_s):
            return
        yield Frame(i, float(times[i]), f, grid)


class LiveSession:
    """One session: its settings, its worker, its events and the pages following it."""

    def __init__(self, req: LiveRequest, cases_root: Path) -> None:
        from ioplan.monitoring import ThermometryConfig, check_wait, parse_host_port

        given = [n for n, v in (("demo", req.demo or None), ("folder", req.folder),
                                ("igtl_input", req.igtl_input)) if v is not None]  # fmt: skip
        if len(given) != 1:
            got = f" (got {', '.join(given)})" if given else ""
            raise InputError(
                "give one input: demo true (the synthetic scanner), folder (a folder inside "
                f"the cases folder) or igtl_input (the scanner's OpenIGTLink host:port){got}"
            )
        self.cfg = ThermometryConfig(
            b0_t=req.b0_t, te_ms=req.te_ms, baseline_frames=req.baseline_frames,
            multi_baseline=req.multi_baseline, alert_temperature_c=req.alert_c,
        )  # fmt: skip
        check_wait(req.idle_timeout_s, "idle_timeout_s")
        check_wait(req.start_timeout_s, "start_timeout_s")
        check_wait(req.frame_s, "frame_s")
        if req.slice is not None and req.slice < 0:
            raise InputError(f"slice must be >= 0, got {req.slice}")
        self.req = req
        self.folder = resolve_folder(cases_root, req.folder) if req.folder is not None else None
        self.demo = req.demo
        self.host_port = None
        if req.igtl_input is not None:
            self.host_port = parse_host_port(req.igtl_input, "igtl_input")
        if req.demo:
            check_demo(req)
        self.id = uuid.uuid4().hex[:16]
        self.state = "starting"
        self.error: str | None = None
        self.created_s = time.time()
        self.results: list[Any] = []
        self.notes: list[str] = []
        self.last: dict[str, Any] | None = None
        self.slice: int | None = None
        self.baseline_seen = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._seq = 0
        self._start_event: tuple[int, str] | None = None
        self._events: deque[tuple[int, str]] = deque(maxlen=EVENTS_KEPT)
        self._subs: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []
        self._thread = threading.Thread(target=self._run, name="ioplan-live", daemon=True)

    # -- the API's side --------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def settings(self) -> dict[str, Any]:
        keep = ("b0_t", "te_ms", "baseline_frames", "multi_baseline", "alert_c",
                "idle_timeout_s", "start_timeout_s", "slice")  # fmt: skip
        if self.req.demo:
            keep += ("frames", "interval_s", "seed", "motion_mm")
        elif self.req.folder is not None:
            keep += ("frame_s",)
        doc = {k: getattr(self.req, k) for k in keep}
        kind = "demo" if self.demo else "folder" if self.folder is not None else "igtl"
        return doc | {"input": kind, "folder": self.req.folder, "igtl_input": self.req.igtl_input}

    def document(self) -> dict[str, Any]:
        """The session's state: ``GET /api/live/sessions/{id}``.

        ``summary`` holds the keys of ``ioplan monitor --json`` (``frames``,
        ``max_temperature_c``, ``necrosis_volume_ml``, ``ms_per_frame``, ``alerts``,
        ``notes``) over the frames measured so far; ``last_frame`` the last frame's numbers.
        """
        from ioplan.monitoring import live_summary

        with self._lock:
            results = list(self.results)
            summary = live_summary(results, list(self.notes))
            if summary["max_temperature_c"] != summary["max_temperature_c"]:  # NaN: no frame
                summary["max_temperature_c"] = None
            return {
                "id": self.id,
                "state": self.state,
                "error": self.error,
                "settings": self.settings(),
                "baseline_frames_seen": self.baseline_seen,
                "slice": self.slice,
                "summary": summary,
                "last_frame": self.last,
                "thresholds": thresholds(),
                "url": f"/api/live/sessions/{self.id}",
                "frames_url": f"/api/live/sessions/{self.id}/frames",
            }

    def cancel(self) -> None:
        """Stop the session now.

        Its pages get the end event; the worker stops at once (the demo) or at its next
        frame (a wait for a folder ends at the next frame or the idle timeout).
        """
        self._stop.set()
        self._finish("cancelled", None)

    def subscribe(self, after: int) -> tuple[list[tuple[int, str]], asyncio.Queue | None]:
        """The kept events after ``after`` and, while the session runs, a queue of the next."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        with self._lock:
            backlog = [e for e in self._events if e[0] > after]
            if self._start_event is not None and self._start_event[0] > after:
                if not backlog or backlog[0][0] != self._start_event[0]:
                    backlog.insert(0, self._start_event)
            if self.state in FINAL:
                return backlog, None
            self._subs.append((loop, queue))
        return backlog, queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s[1] is not queue]

    # -- events ----------------------------------------------------------------------------
    def _publish(self, kind: str, doc: dict[str, Any], *, final: bool = False) -> None:
        with self._lock:
            if self.state in FINAL and not final:
                return
            self._seq += 1
            text = f"id: {self._seq}\nevent: {kind}\ndata: {json.dumps(doc)}\n\n"
            entry = (self._seq, text)
            self._events.append(entry)
            if kind == "start":
                self._start_event = entry
            for loop, queue in self._subs:
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, entry)
                except RuntimeError:  # that page's loop is gone
                    pass
            if final:
                self._subs = []

    def _finish(self, state: str, error: str | None) -> None:
        with self._lock:
            if self.state in FINAL:
                return
            self.state, self.error = state, error
        self._publish("end", self.document(), final=True)

    # -- the worker ------------------------------------------------------------------------
    def _run(self) -> None:
        from ioplan.errors import IoplanError

        closers: list = []
        try:
            self._loop(closers)
        except IoplanError as exc:
            self._finish("failed", " ".join(str(exc).split()))
        except Exception as exc:  # a bug: the session says so, the server goes on
            self._finish("failed", f"internal error: {type(exc).__name__}")
        else:
            if not self.results and not self._stop.is_set():
                n = self.baseline_seen
                self._finish("failed", f"no frame arrived within {self.req.start_timeout_s:g} s"
                             if not n else f"{n} frames arrived, all used as baseline: "
                             "nothing measured")  # fmt: skip
            else:
                self._finish("done", None)
        finally:
            for c in closers:
                c.stop()

    def _loop(self, closers: list) -> None:
        from ioplan.monitoring import Thermometry, folder_frames, igtl_frames, run_live, warm_up

        th = Thermometry(self.cfg)
        self.notes = th.notes
        warm_up()  # before the scanner streams: the first frame must not wait for kernels
        if self._stop.is_set():
            return
        if self.demo:
            frames = demo_frames(self.req, self._stop)
        elif self.host_port is not None:
            import pyigtl

            from ioplan.monitoring import connect_tcp

            host, port = self.host_port
            # opened here and handed to pyigtl's client, not probed first: a scanner that
            # starts streaming at its first client (the demo's) would send its first frame to
            # the probe; pyigtl's client, left to connect itself, retries for ever
            sock, why = connect_tcp(host, port, self.req.start_timeout_s, self._stop)
            if sock is None:
                if self._stop.is_set():
                    return
                waited = "" if why.startswith("host not found") else (
                    f", for {self.req.start_timeout_s:g} s: start_timeout_s")
                raise InputError(f"cannot reach {host}:{port} ({why}{waited}); is the "
                                 "scanner's OpenIGTLink stream running?")  # fmt: skip
            sock.settimeout(0.01)  # as pyigtl's client sets its own socket
            client = pyigtl.OpenIGTLinkClient(host=host, port=port, start_now=False)
            client.socket, client._connected = sock, True  # its thread reads from it
            client.start()
            closers.append(client)
            frames = igtl_frames(client, idle_timeout_s=self.req.idle_timeout_s,
                                 first_wait_s=self.req.start_timeout_s, notes=th.notes)  # fmt: skip
        else:
            frames = folder_frames(self.folder, frame_s=self.req.frame_s,
                                   idle_timeout_s=self.req.idle_timeout_s,
                                   first_wait_s=self.req.start_timeout_s)  # fmt: skip
        stamp = {"received_s": 0.0}

        def arriving(source):
            for f in source:
                if self._stop.is_set():
                    return
                stamp["received_s"] = time.time()
                if self.slice is None:
                    self._setup(th, f)
                yield f

        def on_frame(f, r) -> None:
            self._frame(th, f, r, stamp["received_s"])

        run_live(arriving(frames), th, on_frame=on_frame)

    def _setup(self, th, f) -> None:
        """At the first frame: the slice shown, the structure at risk, the start event."""
        nz = f.data.shape[0] if f.data.ndim == 3 else 1
        k = self.req.slice if self.req.slice is not None else nz // 2
        if not 0 <= k < nz:
            raise InputError(f"slice must be 0-{nz - 1} (the frames have {nz}), got {k}")
        at_risk = None
        if self.demo:
            th.protected = demo_at_risk(f.data.shape, f.grid.spacing_mm)
            at_risk = {"name": DEMO_AT_RISK_NAME, "mask": _b64(th.protected[k], "u1")}
        self.slice = k
        shape = list(f.data.shape)
        self._publish("start", {
            "id": self.id, "settings": self.settings(), "shape": shape, "slice": k,
            "spacing_mm": [float(v) for v in f.grid.spacing_mm], "at_risk": at_risk,
            "thresholds": thresholds(), "received_s": time.time(),
        })  # fmt: skip

    def _frame(self, th, f, r, received_s: float) -> None:
        if self._stop.is_set():
            return
        if r is None:
            with self._lock:
                self.baseline_seen += 1
                self.state = "baseline" if self.state == "starting" else self.state
                n = self.baseline_seen
            self._publish("baseline", {"frame": f.index, "time_s": f.time_s,
                                       "baseline": n, "of": self.cfg.baseline_frames,
                                       "received_s": received_s})  # fmt: skip
            return
        k = self.slice
        temp = r.temperature_c[k] if r.temperature_c.ndim == 3 else r.temperature_c
        cem = th.cem43[k] if th.cem43.ndim == 3 else th.cem43
        doc = {
            "frame": r.index,
            "time_s": r.time_s,
            "received_s": received_s,
            "ms": round(r.ms, 3),
            "max_temperature_c": _finite(r.max_temperature_c, 3),
            "max_cem43_min": _finite(np.max(th.cem43), 4),
            "necrosis_volume_ml": round(r.necrosis_volume_ml, 4),
            "baseline_used": r.baseline_used,
            "alerts": r.alerts,
            "slice": k,
            "shape": list(temp.shape),
            "temperature_c": _b64(temp),
            "cem43_min": _b64(np.minimum(cem, 1e30)),
        }
        meta = {k2: v for k2, v in doc.items() if k2 not in ("temperature_c", "cem43_min")}
        with self._lock:
            self.results.append(r)
            self.last = meta
            if self.state in ACTIVE:
                self.state = "running"
        doc["sent_s"] = time.time()
        self._publish("frame", doc)


class LiveManager:
    """The sessions of one app: one running at a time, the last few remembered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, LiveSession] = {}

    def start(self, req: LiveRequest, cases_root: Path) -> LiveSession:
        """Check ``req``, start its session; :class:`SessionBusy` while another one runs."""
        with self._lock:
            running = [s for s in self._sessions.values() if s.active]
            if running:
                raise SessionBusy(
                    f"a live session is running already ({running[0].id}): stop it first "
                    f"(DELETE /api/live/sessions/{running[0].id})"
                )
            session = LiveSession(req, cases_root)
            self._sessions[session.id] = session
            while len(self._sessions) > SESSIONS_KEPT:
                old = next(iter(self._sessions))
                if self._sessions[old].active:
                    break
                del self._sessions[old]
        session.start()
        return session

    def get(self, session_id: str) -> LiveSession | None:
        with self._lock:
            return self._sessions.get(session_id)

    def list(self) -> list[LiveSession]:
        with self._lock:
            return sorted(self._sessions.values(), key=lambda s: -s.created_s)

    def shutdown(self) -> None:
        """Stop every session (the app's shutdown)."""
        for s in self.list():
            if s.active:
                s.cancel()


class SessionBusy(Exception):
    """A second session while one runs (the API answers 409)."""
