"""The live loop: frames from a folder or over OpenIGTLink, maps back over OpenIGTLink.

3D Slicer shows the maps live.

OpenIGTLink (``pyigtl``): the scanner side (or ``ioplan monitor --demo``) runs a server
and sends IMAGE messages ``ioplan_input`` with two components per voxel, magnitude and
phase (radians); ioplan connects to it as a client. pyigtl keeps only the latest message
per device name, so a frame that arrives while the previous one is processed replaces
it. To see such losses, a sender may put the frame's index in the message metadata
(OpenIGTLink 3, header version 2), key ``frame_index``: a gap in the indices is reported
as dropped frames (and the dose carries on across it, linear in time). Without the key,
frames are numbered as they arrive and a loss cannot be seen. ioplan runs a server too,
for the maps. 3D Slicer connects as a client too and receives IMAGE
messages ``ioplan_temperature`` (degC), ``ioplan_cem43`` (min) and ``ioplan_necrosis``
(0/1) after every frame. A client that disconnects mid-stream does not stop the loop:
the server keeps running and keeps what was computed.

Folder: files ``NNNN_magnitude.nii.gz`` and ``NNNN_phase.nii.gz`` (3D), frame index NNNN,
processed in order as both of a pair exist.

:func:`monitor_live` is the whole session (``ioplan monitor`` and ``ioplan demo --live``):
it checks the settings, opens the input and the map server, runs the loop and returns the
summary; a session in which no frame arrives, or only baseline frames, is an error.
"""

from __future__ import annotations

import math
import operator
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.errors import InputError
from ioplan.imaging import Grid, read_nifti_series
from ioplan.monitoring._prf import FrameResult, Thermometry, ThermometryConfig, warm_up

__all__ = [
    "MAX_BASELINE_FRAMES",
    "MAX_DEMO_FRAMES",
    "MAX_WAIT_S",
    "Frame",
    "check_port",
    "check_wait",
    "connect_tcp",
    "demo_scanner",
    "folder_frames",
    "igtl_frames",
    "ijk_to_world",
    "live_summary",
    "monitor_live",
    "parse_host_port",
    "run_live",
    "send_maps",
]

#: Longest wait for a frame, and longest time between frames (s): an hour. A longer wait
#: is a mistake (a session is over long before), and an unbounded one never ends.
MAX_WAIT_S = 3600.0
#: Most baseline frames of a live session (at 1 s per frame, over 15 minutes of baseline).
MAX_BASELINE_FRAMES = 1000
#: Most frames the synthetic scanner streams: it synthesises them all at the start, 4 x 64
#: x 64 complex voxels (128 KiB) each, so 1000 frames hold about 128 MiB.
MAX_DEMO_FRAMES = 1000


def check_wait(value: float, option: str) -> float:
    """A wait or interval in s: finite, > 0 and at most :data:`MAX_WAIT_S`.

    Parameters
    ----------
    value : float
        The time in s.
    option : str
        The option's name for the message, e.g. ``"--idle-timeout-s"``.

    Returns
    -------
    float
        ``value``.

    Raises
    ------
    InputError
        Naming ``option`` and ``value``.

    Examples
    --------
    >>> check_wait(0.5, "--idle-timeout-s")
    0.5
    >>> check_wait(-1, "--idle-timeout-s")
    Traceback (most recent call last):
    ...
    ioplan.errors.InputError: --idle-timeout-s must be > 0 and at most 3600 s, got -1
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and 0.0 < v <= MAX_WAIT_S):
        got = f"{v:g}" if not math.isnan(v) or isinstance(value, float) else repr(value)
        raise InputError(f"{option} must be > 0 and at most {MAX_WAIT_S:g} s, got {got}")
    return v


def check_port(port: int, option: str, *, allow_zero: bool) -> int:
    """A TCP port number: 1-65535, or 0 (off, or any free port) when ``allow_zero``.

    Examples
    --------
    >>> check_port(18944, "--igtl-port", allow_zero=True)
    18944
    >>> check_port(99999, "--igtl-port", allow_zero=True)
    Traceback (most recent call last):
    ...
    ioplan.errors.InputError: --igtl-port must be a TCP port 0-65535 (0: off), got 99999
    """
    lo = 0 if allow_zero else 1
    try:
        number = operator.index(port)
    except TypeError:
        number = -1
    if isinstance(port, bool) or not lo <= number <= 65535:
        off = " (0: off)" if allow_zero else ""
        raise InputError(f"{option} must be a TCP port {lo}-65535{off}, got {port}")
    return number


def parse_host_port(text: str, option: str = "--igtl-input") -> tuple[str, int]:
    """``host:port`` (host defaults to 127.0.0.1) as ``(host, port)``.

    Examples
    --------
    >>> parse_host_port("10.0.0.7:18944")
    ('10.0.0.7', 18944)
    >>> parse_host_port(":18944")
    ('127.0.0.1', 18944)
    """
    host, _, port = str(text).strip().rpartition(":")
    if not port.isdigit():
        raise InputError(f"{option} must be host:port, got {text!r}")
    return host or "127.0.0.1", check_port(int(port), option, allow_zero=False)


@dataclass(frozen=True)
class Frame:
    """One incoming complex frame."""

    index: int
    time_s: float
    data: np.ndarray
    grid: Grid


def ijk_to_world(grid: Grid) -> np.ndarray:
    """OpenIGTLink's (i, j, k) -> LPS matrix from an ioplan grid ((z, y, x) -> LPS)."""
    return grid.affine[:, [2, 1, 0, 3]]


def grid_from_igtl(shape_kji, matrix) -> Grid:
    m = np.asarray(matrix, float)
    return Grid.from_affine(shape_kji, m[:, [2, 1, 0, 3]])


def check_live_phase(phase: np.ndarray, where: str) -> None:
    """Refuse a live phase that is not in radians.

    Degrees or scanner units read as radians wrap into nonsense temperatures (about 150
    degC and necrosis from a 1.5 rad heating).
    """
    p = np.asarray(phase, dtype=np.float64)
    if p.size == 0 or not np.all(np.isfinite(p)):
        raise InputError(f"{where}: the phase holds no values or NaN/infinite ones")
    lo, hi = float(p.min()), float(p.max())
    if lo < -math.pi - 1e-3 or hi > math.pi + 1e-3:
        raise InputError(
            f"{where}: phase runs {lo:.4g} to {hi:.4g}, outside -pi..pi: the live input takes "
            "phase in radians (convert degrees or the scanner's units first)"
        )


def folder_frames(folder: Path, *, frame_s: float, poll_s: float = 0.05,
                  idle_timeout_s: float = 5.0,
                  first_wait_s: float | None = None) -> Iterator[Frame]:  # fmt: skip
    """Frames as their magnitude/phase pair appears in ``folder``.

    Parameters
    ----------
    folder : path
        The folder the scanner writes ``NNNN_magnitude.nii.gz`` and ``NNNN_phase.nii.gz``
        into (3D NIfTI, frame index ``NNNN``).
    frame_s : float
        Time between frames (s): frame ``NNNN`` is at ``NNNN * frame_s``.
    poll_s : float
        How often the folder is listed (s).
    idle_timeout_s : float
        Stop after this long without a new frame (s).
    first_wait_s : float, optional
        How long to wait for the first frame (s); default ``idle_timeout_s``.

    Yields
    ------
    Frame
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--folder {folder}: not a folder")
    check_wait(frame_s, "--frame-s")
    check_wait(idle_timeout_s, "--idle-timeout-s")
    wait = check_wait(idle_timeout_s if first_wait_s is None else first_wait_s,
                      "--start-timeout-s")  # fmt: skip
    done: set[int] = set()
    idle_since = time.monotonic()
    while True:
        ready = []
        for mag in sorted(folder.glob("*_magnitude.nii*")):
            stem = mag.name.split("_magnitude")[0]
            if not stem.isdigit() or int(stem) in done:
                continue
            phase = mag.with_name(mag.name.replace("_magnitude", "_phase"))
            if phase.exists():
                ready.append((int(stem), mag, phase))
        for idx, mag, phase in sorted(ready):
            m, grid, _ = read_nifti_series(mag, what="magnitude")
            p, grid_p, _ = read_nifti_series(phase, what="phase")
            if grid.mismatch(grid_p) is not None:
                raise InputError(f"frame {idx}: magnitude and phase are on different grids")
            check_live_phase(p, f"frame {idx}")
            done.add(idx)
            idle_since = time.monotonic()
            wait = idle_timeout_s
            yield Frame(idx, idx * frame_s, (m[0] * np.exp(1j * p[0])).astype(np.complex64), grid)
        if time.monotonic() - idle_since > wait:
            return
        time.sleep(poll_s)


def igtl_frames(server, *, device: str = "ioplan_input", idle_timeout_s: float = 10.0,
                first_wait_s: float = 30.0,
                notes: list[str] | None = None) -> Iterator[Frame]:  # fmt: skip
    """Frames from IMAGE messages (components: magnitude, phase) received by ``server``.

    A message whose metadata ``frame_index`` is not after the last one is skipped, with a
    line in ``notes``: its dose interval has passed.

    Parameters
    ----------
    server : pyigtl.OpenIGTLinkClient or pyigtl.OpenIGTLinkServer
        The connection the scanner's messages come in on.
    device : str
        The device name of the IMAGE messages.
    idle_timeout_s : float
        Stop after this long without a frame (s).
    first_wait_s : float
        How long to wait for the first frame (s).
    notes : list of str, optional
        Lines about skipped frames are appended here.

    Yields
    ------
    Frame
    """
    check_wait(idle_timeout_s, "--idle-timeout-s")
    check_wait(first_wait_s, "--start-timeout-s")
    index = -1
    t_first = None
    wait = first_wait_s
    while True:
        msg = _wait_for_message(server, device, wait)
        if msg is None:
            return  # nothing came: the stream is over (or never started), or it broke
        wait = idle_timeout_s
        img = np.asarray(msg.image, float)
        if img.ndim != 4 or img.shape[-1] != 2:
            raise InputError(
                f"IMAGE {device} must have two components (magnitude, phase), got {img.shape}"
            )
        meta = getattr(msg, "metadata", None) or {}
        sent = str(meta.get("frame_index", "")).strip()
        if sent.isdigit():
            if int(sent) <= index:
                if notes is not None:
                    notes.append(f"frame {sent} arrived after frame {index}: skipped")
                continue
            index = int(sent)
        else:
            index += 1
        ts = float(msg.timestamp)
        t_first = ts if t_first is None else t_first
        grid = grid_from_igtl(img.shape[:3], msg.ijk_to_world_matrix)
        check_live_phase(img[..., 1], f"IMAGE {device} frame {index}")
        data = (img[..., 0] * np.exp(1j * img[..., 1])).astype(np.complex64)
        yield Frame(index, ts - t_first, data, grid)


def _wait_for_message(server, device: str, timeout_s: float):
    """``server.wait_for_message``, ended early (None) when the connection is lost."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        msg = server.wait_for_message(device, timeout=max(0.0, min(left, 0.1)))
        if msg is not None or left <= 0 or _lost_reason(server) is not None:
            return msg


def send_maps(server, th: Thermometry, result: FrameResult, grid: Grid) -> None:
    """Temperature, CEM43 and necrosis maps as IMAGE messages (what 3D Slicer shows)."""
    import pyigtl

    m = ijk_to_world(grid)
    maps = {
        "ioplan_temperature": result.temperature_c.astype(np.float32),
        "ioplan_cem43": np.minimum(th.cem43, 1e4).astype(np.float32),
        "ioplan_necrosis": (th.cem43 >= th.cfg.necrosis_cem43_min).astype(np.uint8),
    }
    for name, arr in maps.items():
        server.send_message(
            pyigtl.ImageMessage(arr, ijk_to_world_matrix=m, device_name=name), wait=False
        )


def run_live(frames: Iterator[Frame], th: Thermometry, *, server=None,
             on_frame: Callable[[Frame, FrameResult | None], None] | None = None,
             ) -> list[FrameResult]:  # fmt: skip
    """Process frames as they arrive; send the maps back when ``server`` is given.

    Call :func:`ioplan.monitoring.warm_up` before frames start to arrive, so that the
    first one does not wait for the kernels to load.
    """
    results: list[FrameResult] = []
    grid0 = None
    for f in frames:
        if grid0 is None:
            grid0 = f.grid
            th.voxel_ml = f.grid.voxel_volume_ml
        elif f.grid.mismatch(grid0) is not None:
            raise InputError(f"frame {f.index} is on another grid than the first")
        r = th.add(f.data, f.time_s, index=f.index)
        if r is not None:
            results.append(r)
            if server is not None:
                send_maps(server, th, r, f.grid)
        if on_frame is not None:
            on_frame(f, r)
    return results


def demo_scanner(port: int, *, frames: int = 60, baseline: int = 10, interval_s: float = 0.2,
                 motion_mm: float = 0.0, seed: int = 0,
                 drop: frozenset[int] = frozenset()):  # fmt: skip
    """Start a synthetic scanner: an OpenIGTLink server streaming a heating series.

    ``port`` 0 takes a free port (then ``server.port`` says which). Each IMAGE carries its
    frame index in its metadata (``frame_index``); the frames in ``drop`` are not sent
    (a lost frame, for tests). Returns the server and the thread that streams once a
    client has connected.

    Parameters
    ----------
    port : int
        TCP port to serve on, 0-65535 (0: any free port).
    frames : int
        Heating frames, 1 s apart in scan time, 1 to :data:`MAX_DEMO_FRAMES`.
    baseline : int
        Unheated frames before them, 1 to :data:`MAX_BASELINE_FRAMES`.
    interval_s : float
        Wall-clock time between frames sent (s), 0-10.
    motion_mm : float
        Amplitude of the rigid respiratory motion (mm).
    seed : int
        Seed of the noise (>= 0).
    drop : frozenset of int
        Frame indices left out.

    Returns
    -------
    server : pyigtl.OpenIGTLinkServer
    thread : threading.Thread
    """
    import threading

    import pyigtl

    check_port(port, "port", allow_zero=True)
    for name, v, hi in (("--live-frames", frames, MAX_DEMO_FRAMES),
                        ("--baseline-frames", baseline, MAX_BASELINE_FRAMES)):  # fmt: skip
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
            raise InputError(f"{name} must be 1-{hi}, got {v}")
    if not (math.isfinite(interval_s) and 0.0 <= interval_s <= 10.0):
        raise InputError(f"--interval-s must be in 0-10 s, got {interval_s}")
    if not math.isfinite(motion_mm) or abs(motion_mm) > 20.0:
        raise InputError(f"motion must be in -20..20 mm, got {motion_mm}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"--seed must be an integer >= 0, got {seed}")

    from ioplan.monitoring._synthetic import ScannerConfig, gaussian_heating, synthetic_frames

    shape, sp = (4, 64, 64), 1.5
    times = np.arange(0, baseline + frames, 1.0)
    temp = gaussian_heating(shape, sp, times, heat_from_s=baseline)
    data = synthetic_frames(temp, times, ScannerConfig(snr=50, spacing_mm=sp, seed=seed,
                                                       motion_mm=motion_mm))  # fmt: skip
    grid = Grid(shape, (sp,) * 3)
    server = pyigtl.OpenIGTLinkServer(port=port, local_server=True)
    server.port = server.server_address[1]

    def stream():
        while not server.is_connected():
            time.sleep(0.05)
        t0 = time.time()
        for i, f in enumerate(data):
            if i in drop:
                continue
            img = np.stack([np.abs(f), np.angle(f)], axis=-1).astype(np.float32)
            msg = pyigtl.ImageMessage(img, ijk_to_world_matrix=ijk_to_world(grid),
                                      device_name="ioplan_input", timestamp=t0 + i)  # fmt: skip
            msg.header_version = 2
            msg.metadata = {"frame_index": str(i)}
            server.send_message(msg, wait=True)
            time.sleep(interval_s)

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    return server, thread


def connect_tcp(
    host: str, port: int, timeout_s: float, stop: threading.Event | None = None
) -> tuple[socket.socket | None, str]:
    """A TCP connection to ``host:port`` within ``timeout_s`` (retried), or why there is none.

    Opened here rather than by pyigtl's client, which retries for ever in its thread and
    leaves a socket open at each refused attempt. A refused or unanswered connection is
    retried until ``timeout_s`` (the scanner's stream may start a moment later); a host
    name that does not resolve is reported at once. ``stop`` set: no socket, reason
    "stopped" (the web app's live session when its user stops it).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if stop is not None and stop.is_set():
            return None, "stopped"
        left = deadline - time.monotonic()
        try:
            sock = socket.create_connection((host, port), timeout=max(0.05, min(left, 2.0)))
        except socket.gaierror as exc:
            return None, f"host not found: {str(exc.strerror or exc).lower()}"
        except TimeoutError:
            reason = "no answer"
        except OSError as exc:
            reason = str(exc.strerror or type(exc).__name__).lower()
        else:
            return sock, ""
        if time.monotonic() >= deadline:
            return None, reason
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def _check_reachable(host: str, port: int, timeout_s: float) -> socket.socket:
    """:func:`_connect`'s socket, or the one-line error naming ``host:port`` and why."""
    sock, reason = connect_tcp(host, port, timeout_s)
    if sock is not None:
        return sock
    if reason.startswith("host not found"):
        raise InputError(f"cannot reach {host}:{port} ({reason}); check the host of --igtl-input")
    raise InputError(
        f"cannot reach {host}:{port} ({reason}, for {timeout_s:g} s: --start-timeout-s); is "
        "the scanner's OpenIGTLink stream running?"
    )


def _quiet_client(sock: socket.socket, host: str, port: int):
    """Pyigtl's client reading ``sock``; a connection error kept in ``lost``, not printed.

    pyigtl prints the traceback of a receive error (a peer that resets the connection:
    another service on the port) on stderr from its thread and reconnects for ever; this
    client stops its thread instead, and :func:`igtl_frames` ends the stream.
    """
    import pyigtl

    class QuietClient(pyigtl.OpenIGTLinkClient):
        lost: OSError | None = None

        def _receive_message_from_socket(self, ssocket):
            try:
                return super()._receive_message_from_socket(ssocket)
            except OSError as exc:
                self.lost = exc
                self.communication_thread_stop_requested = True  # the thread closes sock
                return False

    client = QuietClient(host=host, port=port, start_now=False)
    sock.settimeout(0.01)  # as pyigtl's client sets its own socket
    client.socket, client._connected = sock, True  # its thread reads from it
    client.start()
    return client


def _lost_reason(client) -> str | None:
    """Why ``client``'s connection ended (``connection reset by peer``), or None."""
    exc = getattr(client, "lost", None)
    return None if exc is None else str(exc.strerror or type(exc).__name__).lower()


def live_summary(results: list[FrameResult], notes: list[str]) -> dict[str, Any]:
    """The summary of a live session (JSON keys of ``ioplan monitor --json``).

    Parameters
    ----------
    results : list of FrameResult
        The measured frames (after the baseline), in order.
    notes : list of str
        The session's notes (dropped or skipped frames).

    Returns
    -------
    dict
        ``frames`` (count), ``max_temperature_c`` (degC, the highest frame maximum, NaN
        without frames), ``necrosis_volume_ml`` (mL, at the last frame),
        ``ms_per_frame`` (median processing time, ms; None without frames), ``alerts``
        (every frame's) and ``notes``.
    """
    return {
        "frames": len(results),
        "max_temperature_c": round(
            max((r.max_temperature_c for r in results), default=float("nan")), 3
        ),
        "necrosis_volume_ml": round(results[-1].necrosis_volume_ml, 4) if results else 0.0,
        "ms_per_frame": round(float(np.median([r.ms for r in results])), 3) if results else None,
        "alerts": [a for r in results for a in r.alerts],
        "notes": list(notes),
    }


def monitor_live(cfg: ThermometryConfig, *, folder: str | Path | None = None,
                 igtl_input: str | None = None, demo: dict[str, Any] | None = None,
                 frame_s: float = 1.0, igtl_port: int = 18944, idle_timeout_s: float = 5.0,
                 start_timeout_s: float = 30.0,
                 on_frame: Callable[[Frame, FrameResult | None], None] | None = None,
                 ) -> dict[str, Any]:  # fmt: skip
    """A live thermometry session: frames in, maps out to 3D Slicer, the summary back.

    Give one input: ``folder``, ``igtl_input`` or ``demo``. The settings are checked
    before anything starts; the numba kernels are loaded before the first frame can
    arrive (:func:`ioplan.monitoring.warm_up`). The session ends when no frame came for
    ``idle_timeout_s``.

    Parameters
    ----------
    cfg : ThermometryConfig
        Acquisition and processing (B0, TE, baseline frames).
    folder : path, optional
        Folder the scanner writes ``NNNN_magnitude.nii.gz`` / ``NNNN_phase.nii.gz`` into.
    igtl_input : str, optional
        The scanner's OpenIGTLink server, ``host:port``.
    demo : dict, optional
        Play the synthetic scanner over loopback: keyword arguments of
        :func:`demo_scanner` (``frames``, ``interval_s``, ``seed``, ...).
    frame_s : float
        Time between frames of ``folder`` input (s), > 0 and at most :data:`MAX_WAIT_S`.
    igtl_port : int
        Serve the maps (IMAGE ``ioplan_temperature``, ``ioplan_cem43``,
        ``ioplan_necrosis``) on this TCP port, 0-65535 (0: off).
    idle_timeout_s : float
        End the session after this long without a frame (s), > 0 and at most
        :data:`MAX_WAIT_S`.
    start_timeout_s : float
        Wait this long for the first frame (s), > 0 and at most :data:`MAX_WAIT_S`.
    on_frame : callable, optional
        Called as ``on_frame(frame, result)`` after every frame (``result`` None for a
        baseline frame): a live display.

    Returns
    -------
    dict
        :func:`live_summary` of the session.

    Raises
    ------
    InputError
        Not one input; a setting out of range; the map port busy; no frame within
        ``start_timeout_s`` (an unreachable scanner, an empty folder); only baseline
        frames; a frame on another grid.
    """
    inputs = [n for n, v in (("--folder", folder), ("--igtl-input", igtl_input),
                             ("--demo", demo)) if v is not None]  # fmt: skip
    if len(inputs) != 1:
        given = f" (got {', '.join(inputs)})" if inputs else ""
        raise InputError(f"give one input: --folder, --igtl-input host:port, or --demo{given}")
    check_wait(frame_s, "--frame-s")
    check_wait(idle_timeout_s, "--idle-timeout-s")
    check_wait(start_timeout_s, "--start-timeout-s")
    check_port(igtl_port, "--igtl-port", allow_zero=True)
    if folder is not None and not Path(folder).is_dir():
        raise InputError(f"--folder {folder}: not a folder")
    host_port = parse_host_port(igtl_input) if igtl_input is not None else None
    if host_port is not None:  # before the kernels load (seconds): a wrong address at once
        _check_reachable(*host_port, start_timeout_s).close()

    import pyigtl

    th = Thermometry(cfg)
    closers = []
    arrived = 0
    client = None

    def counted(frames: Iterator[Frame]) -> Iterator[Frame]:
        nonlocal arrived
        for f in frames:
            arrived += 1
            yield f

    try:
        if demo is not None:  # checks its settings first; streams once ioplan connects
            scanner, _ = demo_scanner(0, baseline=cfg.baseline_frames, **demo)
            closers.append(scanner)
            host_port = ("127.0.0.1", scanner.port)
        if igtl_port:
            try:
                closers.append(out_server := pyigtl.OpenIGTLinkServer(port=igtl_port))
            except OSError as exc:
                raise InputError(
                    f"cannot serve OpenIGTLink on port {igtl_port}: {exc.strerror}"
                ) from None
        else:
            out_server = None
        warm_up()  # before frames arrive: the first frame must not wait for the kernels
        if folder is not None:
            where = f"--folder {folder}"
            frames = folder_frames(Path(folder), frame_s=frame_s, idle_timeout_s=idle_timeout_s,
                                   first_wait_s=start_timeout_s)  # fmt: skip
        else:
            assert host_port is not None
            where = "the synthetic scanner" if demo is not None else "{}:{}".format(*host_port)
            # connected after the warm-up: frames sent meanwhile would replace each other
            sock = _check_reachable(*host_port, start_timeout_s)
            client = _quiet_client(sock, *host_port)
            closers.append(client)
            frames = igtl_frames(client, idle_timeout_s=idle_timeout_s,
                                 first_wait_s=start_timeout_s, notes=th.notes)  # fmt: skip
        results = run_live(counted(frames), th, server=out_server, on_frame=on_frame)
    finally:
        for c in reversed(closers):
            c.stop()
    lost = _lost_reason(client) if client is not None else None
    if not arrived and lost is not None:
        raise InputError(f"cannot reach {where} ({lost} before the first frame); is that "
                         "port the scanner's OpenIGTLink stream?")  # fmt: skip
    if not arrived:
        raise InputError(f"no frame arrived from {where} within {start_timeout_s:g} s "
                         "(--start-timeout-s)")  # fmt: skip
    if not results:
        raise InputError(
            f"{arrived} frame{'s' if arrived > 1 else ''} arrived from {where}, all used as "
            f"baseline (--baseline-frames {cfg.baseline_frames}): nothing measured"
        )
    return live_summary(results, th.notes)
