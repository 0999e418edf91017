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
    dmg = (runner.ln_a, runner.ea_r)
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


#: Whole ``simulate`` runs timed on both backends (:func:`simulate_side_by_side`): a label,
#: then the :class:`ioplan.physics.SimulationConfig` fields. The microwave rows are
#: ``bench/engine.py``'s command (10-minute, 60 W Emprint in liver) at 1 and 0.5 mm; the
#: cryo row is a two-cycle freeze (phase change on the device's general path).
SIDE_BY_SIDE_CASES: tuple[tuple[str, dict], ...] = (
    ("mw-emprint-60w-600s-1mm", {"applicator": "covidien-emprint", "power_w": 60.0,
                                 "duration_s": 600.0, "spacing_mm": 1.0}),
    ("mw-emprint-60w-600s-0.5mm", {"applicator": "covidien-emprint", "power_w": 60.0,
                                   "duration_s": 600.0, "spacing_mm": 0.5}),
    ("cryo-2.4mm-f600-t300-f600-1mm", {"applicator": "cryo-2.4mm",
                                       "protocol": "freeze:600,thaw:300,freeze:600",
                                       "spacing_mm": 1.0}),
)  # fmt: skip


def _config(fields: dict, backend: str):
    from ioplan.devices import applicator
    from ioplan.physics import SimulationConfig

    kw = dict(fields)
    kw["applicator"] = applicator(kw["applicator"])
    if "protocol" in kw:
        from ioplan.physics import CryoProtocol

        kw["protocol"] = CryoProtocol.parse(kw["protocol"])
    return SimulationConfig(tissue="liver", backend=backend, **kw)


def simulate_side_by_side(
    cases: tuple[tuple[str, dict], ...] = SIDE_BY_SIDE_CASES, repeats: int = 3
) -> list[dict]:
    """Whole ``ioplan.physics.simulate`` runs on the CPU and the GPU, one after the other.

    Each case runs once per backend to warm up (kernels compiled or loaded, tables
    built), then ``repeats`` times per backend, alternating, so that both see the same
    machine state; the median wall times and their ratio are reported with the zones'
    differences (the GPU's zone against the CPU's).

    Returns
    -------
    list of dict
        Per case: ``case``, ``grid_shape``, ``steps``, ``cpu_s`` and ``gpu_s`` (medians,
        wall clock, host-device transfers included), their runs, ``speedup`` (cpu/gpu),
        ``zone_cpu``/``zone_gpu`` (length, width mm; volume mL) and the differences.
    """
    import statistics

    from ioplan.physics import simulate

    rows = []
    for label, fields in cases:
        cfgs = {b: _config(fields, b) for b in ("cpu", "gpu")}
        res = {b: simulate(cfgs[b]) for b in ("cpu", "gpu")}  # warm-up
        walls: dict[str, list[float]] = {"cpu": [], "gpu": []}
        for _ in range(repeats):
            for b in ("cpu", "gpu"):
                tic = time.perf_counter()
                res[b] = simulate(cfgs[b])
                walls[b].append(time.perf_counter() - tic)
        zc, zg = res["cpu"].zone, res["gpu"].zone
        cpu_s, gpu_s = statistics.median(walls["cpu"]), statistics.median(walls["gpu"])
        rows.append({
            "case": label,
            "config": fields,
            "grid_shape": list(res["cpu"].grid.shape),
            "steps": res["cpu"].steps,
            "engine_cpu": res["cpu"].engine,
            "engine_gpu": res["gpu"].engine,
            "cpu_s": cpu_s,
            "gpu_s": gpu_s,
            "cpu_s_runs": walls["cpu"],
            "gpu_s_runs": walls["gpu"],
            "speedup": cpu_s / gpu_s if gpu_s > 0 else 0.0,
            "zone_cpu": {"length_mm": zc.length_mm, "width_mm": zc.width_mm,
                         "volume_ml": zc.volume_ml},
            "zone_gpu": {"length_mm": zg.length_mm, "width_mm": zg.width_mm,
                         "volume_ml": zg.volume_ml},
            "length_difference_mm": zg.length_mm - zc.length_mm,
            "width_difference_mm": zg.width_mm - zc.width_mm,
            "volume_difference_percent": 100.0 * (zg.volume_ml / zc.volume_ml - 1.0)
            if zc.volume_ml > 0 else 0.0,
        })  # fmt: skip
    return rows


def gpu_step_throughput(sizes: tuple[int, ...] = (128, 256, 384), steps: int = 200) -> list[dict]:
    """The step kernel launched back to back on ``n^3`` liver blocks, timed end to end.

    :func:`gpu_mw_ablation` puts a pair of CUDA events around every launch; when the
    host takes longer to launch a kernel than the device takes to run it, those pairs
    also hold the launch's host time. Here only the first and last launches are
    bracketed, so the per-step time is the larger of the launch cost and the kernel's
    own time: at small ``n`` it shows the launch cost, at large ``n`` the kernel's
    memory throughput (:data:`BYTES_PER_UPDATE_F32` per interior voxel update).

    Returns
    -------
    list of dict
        Per size: ``n``, ``voxels``, ``steps``, ``ms_per_step``, ``voxel_updates_per_s``,
        ``achieved_bytes_per_s``, ``bandwidth_fraction`` (of the measured copy bandwidth)
        and ``bound_ms_per_step`` (the step at the full copy bandwidth).
    """
    from numba import cuda

    from ioplan.physics import init_state
    from ioplan.physics._kernel import fast_coefficients, step_gpu
    from ioplan.physics._solver import _group_array, _Runner

    reason = gpu_available()
    if reason is not None:
        return [{"available": False, "reason": reason}]
    bandwidth = device_bandwidth_bytes_per_s()
    _warm_up_gpu("float32")
    rows = []
    for n in sizes:
        p = _liver_problem(n, 1.0)
        dt, _ = _time_step(p, 600.0)
        runner = _Runner(p, "gpu")
        runner.start(init_state(p).arrays())
        runner.run(dt, 0, mw_power_density(p.grid.shape, 1.0), None)  # source on the device
        a_fast, b_fast = fast_coefficients(
            p.packed, dt, min(runner.dz, runner.dy, runner.dx), np.dtype(p.dtype)
        )
        d_gt, d_a, d_b = (
            cuda.to_device(x) for x in (_group_array(None, p.body_temperature_c), a_fast, b_fast)
        )
        scal = (
            float(dt), runner.dz, runner.dy, runner.dx, float(p.blood_temperature_c),
            runner.const, runner.lo_th, runner.hi_th,
        )  # fmt: skip
        d = runner._dev
        launch = step_gpu[runner._blocks, runner._threads]
        tail = (d_a, d_b, d["P"], d_gt, *scal)
        _launch_steps(launch, d, tail, WARM_LAUNCHES)  # warm: compiled for these types
        ms = _timed_steps(launch, d, tail, steps)
        interior = (n - 2) ** 3
        rate = interior / (ms * 1e-3) if ms > 0 else 0.0
        achieved = rate * BYTES_PER_UPDATE_F32
        rows.append({
            "n": n,
            "voxels": n**3,
            "steps": steps,
            "ms_per_step": ms,
            "voxel_updates_per_s": rate,
            "achieved_bytes_per_s": achieved,
            "device_bandwidth_bytes_per_s": bandwidth,
            "bandwidth_fraction": achieved / bandwidth if bandwidth > 0 else 0.0,
            "bound_ms_per_step": interior * BYTES_PER_UPDATE_F32 / bandwidth * 1e3
            if bandwidth > 0 else 0.0,
        })  # fmt: skip
        del runner, d, tail
    return rows


#: Untimed launches before a timing (the first compiles the kernel for its types; the
#: rest let the clocks and caches settle). The simulator smoke test sets it to 1.
WARM_LAUNCHES = 5


def _timed_steps(launch, d: dict, tail: tuple, steps: int) -> float:
    """Milliseconds a step: ``steps`` launches back to back, CUDA events at the ends."""
    from numba import cuda

    cuda.synchronize()
    start, stop = cuda.event(), cuda.event()
    start.record()
    _launch_steps(launch, d, tail, steps)
    stop.record()
    stop.synchronize()
    return _elapsed_ms(start, stop) / steps


def _launch_steps(launch, d: dict, tail: tuple, count: int) -> None:
    """``count`` step launches back to back, swapping the two theta buffers after each."""
    for _ in range(count):
        launch(d["th"], d["th2"], d["mat"], d["qs"], d["perf"], d["uni"], *tail)
        d["th"], d["th2"] = d["th2"], d["th"]


#: Launch variants tried by :func:`gpu_launch_variants`: (register cap or None, threads).
LAUNCH_VARIANTS: tuple[tuple[int | None, tuple[int, int, int]], ...] = (
    (None, (32, 4, 2)), (None, (64, 4, 1)), (None, (128, 2, 1)), (None, (32, 8, 1)),
    (32, (32, 4, 2)), (40, (32, 4, 2)), (48, (32, 4, 2)), (64, (32, 4, 2)),
    (40, (128, 2, 1)), (48, (128, 2, 1)),
)  # fmt: skip


def gpu_launch_variants(n: int = 256, steps: int = 100, variants=LAUNCH_VARIANTS) -> list[dict]:
    """The step kernel recompiled with a register cap and launched with other block shapes.

    The same Python function as ``step_gpu`` compiled by ``cuda.jit(max_registers=...)``
    and launched back to back on a ``n^3`` liver block; each variant's theta after
    ``steps`` steps is compared with the shipped kernel's (same arithmetic: equal).
    """
    from numba import cuda

    from ioplan.physics import init_state
    from ioplan.physics._kernel import fast_coefficients, step_gpu
    from ioplan.physics._solver import _group_array, _Runner

    reason = gpu_available()
    if reason is not None:
        return [{"available": False, "reason": reason}]
    p = _liver_problem(n, 1.0)
    dt, _ = _time_step(p, 600.0)
    runner = _Runner(p, "gpu")
    state0 = init_state(p).arrays()
    runner.start(state0)
    runner.run(dt, 0, mw_power_density(p.grid.shape, 1.0), None)
    a_fast, b_fast = fast_coefficients(
        p.packed, dt, min(runner.dz, runner.dy, runner.dx), np.dtype(p.dtype)
    )
    gt = _group_array(None, p.body_temperature_c)
    tail = (
        *(cuda.to_device(x) for x in (a_fast, b_fast)), runner._dev["P"], cuda.to_device(gt),
        float(dt), runner.dz, runner.dy, runner.dx, float(p.blood_temperature_c),
        runner.const, runner.lo_th, runner.hi_th,
    )  # fmt: skip
    d = runner._dev
    th0 = d["th"].copy_to_host()
    reference = None
    rows = []
    for cap, threads in variants:
        try:
            kernel = step_gpu if cap is None else cuda.jit(max_registers=cap)(step_gpu.py_func)
        except TypeError:  # numba's simulator takes no register cap
            kernel = cuda.jit(step_gpu.py_func)
        nz, ny, nx = p.grid.shape
        blocks = tuple(-(-a // b) for a, b in zip((nx, ny, nz), threads, strict=True))
        launch = kernel[blocks, threads]
        d["th"].copy_to_device(th0)
        _launch_steps(launch, d, tail, min(2, WARM_LAUNCHES))  # compile and warm
        d["th"].copy_to_device(th0)
        ms = _timed_steps(launch, d, tail, steps)
        out = d["th"].copy_to_host()
        if reference is None:
            reference = out
        rows.append({
            "max_registers": cap,
            "threads": list(threads),
            "ms_per_step": ms,
            "voxel_updates_per_s": (n - 2) ** 3 / (ms * 1e-3) if ms > 0 else 0.0,
            "max_abs_diff_c": float(np.max(np.abs(out - reference))),
        })  # fmt: skip
    return rows
