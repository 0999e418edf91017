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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ioplan.errors import InputError
from ioplan.imaging import Grid, read_nifti_series
from ioplan.monitoring._prf import FrameResult, Thermometry

__all__ = [
    "Frame",
    "demo_scanner",
    "folder_frames",
    "igtl_frames",
    "ijk_to_world",
    "run_live",
    "send_maps",
]


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


def folder_frames(folder: Path, *, frame_s: float, poll_s: float = 0.05,
                  idle_timeout_s: float = 5.0) -> Iterator[Frame]:  # fmt: skip
    """Frames as their magnitude/phase pair appears in ``folder``.

    Stops after ``idle_timeout_s`` without a new frame.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
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
            done.add(idx)
            idle_since = time.monotonic()
            yield Frame(idx, idx * frame_s, (m[0] * np.exp(1j * p[0])).astype(np.complex64), grid)
        if time.monotonic() - idle_since > idle_timeout_s:
            return
        time.sleep(poll_s)


def igtl_frames(server, *, device: str = "ioplan_input", idle_timeout_s: float = 10.0,
                first_wait_s: float = 30.0,
                notes: list[str] | None = None) -> Iterator[Frame]:  # fmt: skip
    """Frames from IMAGE messages (components: magnitude, phase) received by ``server``.

    A message whose metadata ``frame_index`` is not after the last one is skipped, with a
    line in ``notes``: its dose interval has passed.
    """
    index = -1
    t_first = None
    wait = first_wait_s
    while True:
        msg = server.wait_for_message(device, timeout=wait)
        if msg is None:
            return  # nothing came: the stream is over (or never started)
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
        data = (img[..., 0] * np.exp(1j * img[..., 1])).astype(np.complex64)
        yield Frame(index, ts - t_first, data, grid)


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
    """
    import threading

    import pyigtl

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
