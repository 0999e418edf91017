"""GPU measurements of the bioheat engine, for ``bench/engine.py --gpu``.

- :func:`gpu_available`: whether numba finds a CUDA device (None) or why not.
- :func:`device_bandwidth_bytes_per_s`: the device's memory bandwidth, from a large
  device-to-device copy timed with CUDA events (bytes read + written per second).
- :func:`gpu_mw_ablation`: a 10-minute microwave-like ablation on a 128^3 liver block at
  1 mm, run by the GPU kernels (``step_gpu``, ``damage_gpu``) with every launch timed by
  CUDA events, its achieved fraction of the bandwidth, and the ablation zone compared
  with the same run on the CPU.

Targets (issue 18): kernel time < 50 ms for the 10-min ablation at 1 mm on 128^3, and
>= 60 % of the memory bandwidth, on an H100/H200.

On numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) :func:`gpu_mw_ablation` runs end
to end at a small ``n`` (a check of the code path); its timings are zero and meaningless
(the result says ``"simulator": True``).
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

#: Bytes a float32 fast-path update moves to and from memory: theta at the voxel (its six
#: neighbours come from cache: neighbouring threads load them), the source ``qs`` (4),
#: ``mat``, ``perf`` and ``uni`` (1 each), and theta written (4). The material's two
#: coefficients are a 256-entry table in cache. Voxels on the general path read more
#: (the property table, from cache) but are few (the source's neighbourhood, while it
#: boils or freezes).
BYTES_PER_UPDATE_F32 = 4 + 4 + 1 + 1 + 1 + 4

#: Targets to report against (issue 18).
TARGET_KERNEL_MS = 50.0
TARGET_BANDWIDTH_FRACTION = 0.60


def _simulator() -> bool:
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def gpu_available() -> str | None:
    """None when numba finds a real CUDA device; otherwise the reason, in one line.

    Returns
    -------
    str or None
        Why no GPU measurement can be made here (numba missing, no driver or device,
        or numba's CUDA simulator switched on), or None.
    """
    try:
        from numba import cuda
    except Exception as exc:  # any import failure is a reason
        return f"numba.cuda cannot be imported: {exc}"
    if _simulator():
        return "numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): no device timings"
    try:
        if not cuda.is_available():
            return "numba finds no CUDA device (no NVIDIA GPU or driver here)"
        cuda.get_current_device()
    except Exception as exc:  # a driver error is a reason
        return f"CUDA device unusable: {type(exc).__name__}: {exc}"
    return None


def _device_name() -> str:
    from numba import cuda

    if _simulator():
        return "numba CUDA simulator"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def _elapsed_ms(start, stop) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the simulator warns that its timings are bogus
        return float(start.elapsed_time(stop))


def device_bandwidth_bytes_per_s(n_bytes: int = 1 << 30, repeats: int = 10) -> float:
    """The device's memory bandwidth: the best device-to-device copy of ``n_bytes``.

    Parameters
    ----------
    n_bytes : int
        Size of the copied array (bytes); 1 GiB by default, far above any cache.
    repeats : int
        Copies timed (CUDA events around each); the fastest counts.

    Returns
    -------
    float
        Bytes read plus bytes written per second (``2 n_bytes / t``); 0 on the
        simulator, which records no time.
    """
    from numba import cuda

    n = max(1, n_bytes // 4)
    a = cuda.device_array(n, np.float32)
    b = cuda.device_array(n, np.float32)
    b.copy_to_device(a)  # first touch
    start, stop = cuda.event(), cuda.event()
    best = math.inf
    for _ in range(repeats):
        start.record()
        b.copy_to_device(a)
        stop.record()
        stop.synchronize()
        best = min(best, _elapsed_ms(start, stop))
    if not best > 0:
        return 0.0
    return 2.0 * a.nbytes / (best * 1e-3)


def mw_power_density(
    shape: tuple[int, int, int],
    spacing_mm: float,
    power_w: float = 60.0,
    *,
    attenuation_per_m: float = 50.0,
    axial_sigma_mm: float = 12.0,
    antenna_radius_mm: float = 1.5,
) -> np.ndarray:
    """A microwave-like power density (W/m^3): an axial Gaussian times ``exp(-2 a r) / r``.

    One antenna along z through the block's centre, its feed at the centre:
    ``Q = Q0 exp(-(z - z0)^2 / (2 s^2)) exp(-2 a r) / r`` with ``r`` the distance from
    the axis (at least the antenna radius), scaled so that the voxels hold ``power_w``.
    Fixed in time (no drying, no detuning), so hotter near the antenna than
    :func:`ioplan.physics.microwave_source`: at 128^3, 1 mm, 60 W for 600 s the CPU
    reaches about 340 degC on the axis and a zone (Omega >= 1) of about 110 mL; a
    kernel benchmark, not a clinical model.

    Parameters
    ----------
    shape : tuple of int
        Grid shape ``(z, y, x)``.
    spacing_mm : float
        Isotropic voxel spacing (mm).
    power_w : float
        Absorbed power (W).
    attenuation_per_m : float
        Field attenuation ``a`` (1/m); 50 /m: power halves every 7 mm off the axis.
    axial_sigma_mm : float
        Axial spread ``s`` of the feed's Gaussian (mm).
    antenna_radius_mm : float
        Smallest ``r`` (mm): the antenna with its catheter.

    Returns
    -------
    ndarray of float32, shape ``shape``
    """
    nz, ny, nx = shape
    h = spacing_mm * 1e-3
    z = (np.arange(nz) - (nz - 1) / 2.0) * h
    y = (np.arange(ny) - (ny - 1) / 2.0) * h
    x = (np.arange(nx) - (nx - 1) / 2.0) * h
    r = np.maximum(np.hypot(y[:, None], x[None, :]), antenna_radius_mm * 1e-3)
    radial = np.exp(-2.0 * attenuation_per_m * r) / r
    axial = np.exp(-0.5 * (z / (axial_sigma_mm * 1e-3)) ** 2)
    q = axial[:, None, None] * radial[None, :, :]
    q[0, :, :] = q[-1, :, :] = 0.0  # the outer layer is the far boundary
    q[:, 0, :] = q[:, -1, :] = 0.0
    q[:, :, 0] = q[:, :, -1] = 0.0
    q *= power_w / (float(q.sum()) * h**3)
    return q.astype(np.float32)


def _liver_problem(n: int, spacing_mm: float):
    from ioplan.anatomy import Label
    from ioplan.imaging import Grid
    from ioplan.physics import ThermalProblem, tissue_material_table

    g = Grid((n, n, n), (spacing_mm,) * 3)
    mat = np.full(g.shape, int(Label.LIVER), np.uint8)
    return ThermalProblem(g, mat, tissue_material_table(), dtype="float32")


def _time_step(problem, duration_s: float) -> tuple[float, int]:
    """The time loop's step for a heating run (never below body temperature)."""
    from ioplan.physics import stable_time_step

    dt = stable_time_step(problem, min_temperature_c=problem.body_temperature_c)
    n_steps = max(1, math.ceil(duration_s / dt - 1e-9))
    return duration_s / n_steps, n_steps


def _warm_up_gpu(dtype: str) -> None:
    """Compile both GPU kernels for ``dtype`` on a small block (before any clock)."""
    from ioplan.physics import init_state
    from ioplan.physics._solver import _Runner

    p = _liver_problem(8, 1.0)
    if p.dtype != dtype:
        raise ValueError(f"warm-up dtype {p.dtype} is not {dtype}")
    r = _Runner(p, "gpu", damage_interval_s=0.1)
    r.advance(init_state(p).arrays(), 0.1, 1, None, None)


def _run_gpu_timed(runner, dt: float, n_steps: int, q: np.ndarray) -> dict:
    """Advance ``runner`` (started, on the device) by ``n_steps`` with every launch timed.

    The same sequence of launches as ``_Runner.run`` on the GPU (a step per ``dt``, the
    damage every ``runner.damage_interval_s`` and at the end), with a pair of CUDA
    events around each launch; nothing is copied between host and device in between.
    """
    from numba import cuda

    from ioplan.physics._kernel import damage_gpu, fast_coefficients, step_gpu
    from ioplan.physics._solver import _group_array

    p = runner.problem
    runner.run(dt, 0, q, None)  # prepares the source and copies it to the device
    a_fast, b_fast = fast_coefficients(
        p.packed, dt, min(runner.dz, runner.dy, runner.dx), np.dtype(p.dtype)
    )
    gt = _group_array(None, p.body_temperature_c)
    d_gt, d_a, d_b = (cuda.to_device(x) for x in (gt, a_fast, b_fast))
    scal = (
        float(dt), runner.dz, runner.dy, runner.dx, float(p.blood_temperature_c), runner.const,
        runner.lo_th, runner.hi_th,
    )  # fmt: skip
    dmg = (runner.const, float(p.perfusion_stop_c), runner.ln_a, runner.ea_r)
    d = runner._dev
    blocks, threads = runner._blocks, runner._threads
    steps, damages = [], []
    pending = 0.0
    cuda.synchronize()
    first = cuda.event()
    first.record()

    def damage(span: float) -> None:
        ev = (cuda.event(), cuda.event())
        ev[0].record()
        damage_gpu[blocks, threads](
            d["th"], d["snap"], d["om"], d["cem"], d["tmin"], d["tmax"], d["perf"], d["mat"],
            d["P"], span, *dmg, d["rates"],
        )  # fmt: skip
        ev[1].record()
        damages.append(ev)

    for _ in range(n_steps):
        ev = (cuda.event(), cuda.event())
        ev[0].record()
        step_gpu[blocks, threads](
            d["th"], d["th2"], d["mat"], d["qs"], d["perf"], d["uni"], d_a, d_b, d["P"], d_gt,
            *scal,
        )  # fmt: skip
        ev[1].record()
        steps.append(ev)
        d["th"], d["th2"] = d["th2"], d["th"]
        pending += dt
        if pending >= runner.damage_interval_s * (1 - 1e-9):
            damage(pending)
            pending = 0.0
    if pending > 0:
        damage(pending)
    last = cuda.event()
    last.record()
    last.synchronize()
    runner._pending_s = 0.0  # all damage integrated above
    return {
        "step_ms": sum(_elapsed_ms(a, b) for a, b in steps),
        "damage_ms": sum(_elapsed_ms(a, b) for a, b in damages),
        "wall_ms": _elapsed_ms(first, last),
        "step_launches": len(steps),
        "damage_launches": len(damages),
    }


def gpu_mw_ablation(n: int = 128, spacing_mm: float = 1.0, duration_s: float = 600.0) -> dict:
    """A 10-minute microwave-like ablation in liver on the GPU, timed, against the CPU.

    A ``n^3`` block of liver (float32) at ``spacing_mm``, a fixed 60 W power density
    (:func:`mw_power_density`), the time loop's stable step; the GPU kernels' launches
    are timed with CUDA events (kernel time, transfers excluded). The same problem,
    step and source then run on the CPU kernels for the zone (Omega >= 1) comparison.

    Parameters
    ----------
    n : int
        Voxels per axis (>= 8).
    spacing_mm : float
        Voxel spacing (mm).
    duration_s : float
        Simulated time (s).

    Returns
    -------
    dict
        ``available`` (bool) and ``reason`` when not; otherwise ``device``,
        ``simulator`` (True: timings meaningless), ``steps``, ``dt_s``, ``kernel_ms``
        (step + damage launches, each timed by CUDA events), ``step_kernel_ms``,
        ``damage_kernel_ms``, ``launch_wall_ms`` (first to last event, launch gaps
        included), ``voxel_updates_per_s`` (interior voxels x steps / step kernel
        time), ``bytes_per_update`` (:data:`BYTES_PER_UPDATE_F32`),
        ``achieved_bytes_per_s``, ``device_bandwidth_bytes_per_s``,
        ``bandwidth_fraction``, the targets and whether they are met, and the zones:
        ``zone_ml_gpu``, ``zone_ml_cpu`` (mL), ``zone_voxels_differing``,
        ``tmax_c_gpu``, ``tmax_c_cpu``, ``max_abs_dt_c`` (largest |T_gpu - T_cpu|),
        ``cpu_s`` (the CPU run's wall time).
    """
    reason = gpu_available()
    sim = _simulator()
    if reason is not None and not sim:
        return {"available": False, "reason": reason}
    if n < 8:
        raise ValueError(f"n must be >= 8, got {n}")
    from ioplan.physics import init_state
    from ioplan.physics._solver import _Runner

    problem = _liver_problem(n, spacing_mm)
    q = mw_power_density(problem.grid.shape, spacing_mm)
    dt, n_steps = _time_step(problem, duration_s)
    state0 = init_state(problem)
    _warm_up_gpu(problem.dtype)

    gpu = _Runner(problem, "gpu")
    gpu.start(state0.arrays())
    timing = _run_gpu_timed(gpu, dt, n_steps, q)
    power_w = gpu.source_power_w
    _, t_gpu, om_gpu, *_ = gpu.finish()

    tic = time.perf_counter()
    cpu = _Runner(problem, "cpu")
    _, t_cpu, om_cpu, *_ = cpu.advance(state0.arrays(), dt, n_steps, q, None)
    cpu_s = time.perf_counter() - tic

    bandwidth = device_bandwidth_bytes_per_s(1 << 30 if not sim else 1 << 16)
    interior = (n - 2) ** 3
    step_s = timing["step_ms"] * 1e-3
    rate = interior * n_steps / step_s if step_s > 0 else 0.0
    achieved = rate * BYTES_PER_UPDATE_F32
    kernel_ms = timing["step_ms"] + timing["damage_ms"]
    voxel_ml = problem.grid.voxel_volume_m3 * 1e6
    fraction = achieved / bandwidth if bandwidth > 0 else 0.0
    return {
        "available": True,
        "simulator": sim,
        "device": _device_name(),
        "n": n,
        "spacing_mm": spacing_mm,
        "duration_s": duration_s,
        "dtype": problem.dtype,
        "power_w": power_w,
        "steps": n_steps,
        "dt_s": dt,
        "kernel_ms": kernel_ms,
        "step_kernel_ms": timing["step_ms"],
        "damage_kernel_ms": timing["damage_ms"],
        "damage_launches": timing["damage_launches"],
        "launch_wall_ms": timing["wall_ms"],
        "voxel_updates_per_s": rate,
        "bytes_per_update": BYTES_PER_UPDATE_F32,
        "achieved_bytes_per_s": achieved,
        "device_bandwidth_bytes_per_s": bandwidth,
        "bandwidth_fraction": fraction,
        "target_kernel_ms": TARGET_KERNEL_MS,
        "target_bandwidth_fraction": TARGET_BANDWIDTH_FRACTION,
        "meets_kernel_target": (not sim) and kernel_ms < TARGET_KERNEL_MS,
        "meets_bandwidth_target": (not sim) and fraction >= TARGET_BANDWIDTH_FRACTION,
        "zone_ml_gpu": float(np.count_nonzero(om_gpu >= 1.0)) * voxel_ml,
        "zone_ml_cpu": float(np.count_nonzero(om_cpu >= 1.0)) * voxel_ml,
        "zone_voxels_differing": int(np.count_nonzero((om_gpu >= 1.0) != (om_cpu >= 1.0))),
        "tmax_c_gpu": float(np.max(t_gpu)),
        "tmax_c_cpu": float(np.max(t_cpu)),
        "max_abs_dt_c": float(np.max(np.abs(t_gpu.astype(np.float64) - t_cpu))),
        "cpu_s": cpu_s,
    }
