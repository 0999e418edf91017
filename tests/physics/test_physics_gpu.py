"""The GPU kernels (numba.cuda) against the CPU kernels.

Each comparison runs in a fresh Python process: on numba's CUDA simulator (which must be
switched on before numba is imported) everywhere, and on the real device too where numba
finds one. The CPU path (a vectorised fast path over rows plus a second pass of general
updates) and the GPU path (one thread per voxel, each choosing its path) are separate
code; they share only the scalar enthalpy and damage functions.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from ioplan.anatomy import Label
    from ioplan.imaging import Grid
    from ioplan.physics import ThermalProblem, init_state, step, tissue_material_table

    tab = tissue_material_table().with_material(
        70, "probe", fixed_group=1, k_w_m_k=0.52, c_vol_j_m3_k=3.8e6
    )
    g = Grid((5, 8, 9), (1.0, 1.5, 2.0))  # 12 blocks of 4 x 4 x 4 (simulator), 6 of 32 x 4 x 2
    mat = np.full(g.shape, int(Label.LIVER), np.uint8)
    mat[2:5, 3, 3] = int(Label.FAT)
    mat[3, 4, 4] = 70  # a cold fixed voxel: phase change around it
    p = ThermalProblem(g, mat, tab, dtype="float64")
    q = np.zeros(g.shape)
    q[3, 4, 6] = 4e7
    s_cpu = s_gpu = init_state(p)
    for _ in range(3):
        s_cpu = step(p, s_cpu, 0.2, source_w_m3=q, group_temperatures_c=[37.0, -150.0])
        s_gpu = step(p, s_gpu, 0.2, source_w_m3=q, group_temperatures_c=[37.0, -150.0],
                     backend="gpu")
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(s_cpu.arrays(), s_gpu.arrays()))
    t = s_cpu.temperature_c
    print("WORST", worst, "TMIN", float(t.min()), "TMAX", float(t.max()))
    """
)

# A 12 s run through ``ioplan.physics.run`` on both backends: a -150 degC fixed probe
# (freezing, and perfusion stopping below -2 degC), a 2-voxel source strong enough to
# pass the water's vaporisation plateau (boiling), a fat streak (interface voxels, two
# materials), anisotropic spacing, two damage intervals (Arrhenius and CEM43 accumulate;
# tissue coagulated at 10 s stops its perfusion for the last 2 s). The grid is small
# because the simulator starts one Python thread per CUDA thread: 384 voxels in 6 blocks
# of 4 x 4 x 4 on the simulator (ioplan.physics._solver.THREADS_SIMULATOR; 1024 threads
# in the device's blocks of 32 x 4 x 2 took twice as long). It prints, as
# JSON, each array's largest difference and what the tolerances need.
RUN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from numba import cuda
    from ioplan.anatomy import Label
    from ioplan.imaging import Grid
    from ioplan.physics import ThermalProblem, run, tissue_material_table
    from ioplan.physics import _kernel as K

    if not cuda.is_available():
        print(json.dumps({"skip": "no CUDA device"}))
        sys.exit(0)
    dtype = sys.argv[1]
    tab = tissue_material_table().with_material(
        70, "probe", fixed_group=1, k_w_m_k=0.52, c_vol_j_m3_k=3.8e6
    )
    g = Grid((4, 8, 12), (2.0, 2.0, 2.5))  # 6 blocks of 4 x 4 x 4 (simulator), 4 of 32 x 4 x 2
    mat = np.full(g.shape, int(Label.LIVER), np.uint8)
    mat[1:3, 2, 5] = int(Label.FAT)
    mat[1:3, 4, 2] = 70
    p = ThermalProblem(g, mat, tab, dtype=dtype)
    q = np.zeros(g.shape)
    q[1:3, 4, 8] = 3e8
    groups = [37.0, -150.0]
    out = {}
    for backend in ("cpu", "gpu"):
        s, stats = run(p, 12.0, source=q, group_temperatures=groups, backend=backend)
        out[backend] = [np.asarray(a, np.float64) for a in s.arrays()]
        out["steps"] = stats["steps"]
    names = ["E", "T", "omega", "cem43", "tmin", "tmax"]
    cpu, gpu = out["cpu"], out["gpu"]
    free = p.packed[K.FIXED, p.material] < 0
    present = np.unique(p.material[free])
    P = p.packed
    slope = max(float(np.max(P[r, present])) for r in (K.C, K.CF, K.CAPP, K.CV))
    absd, rel = {}, {}
    for n, a, b in zip(names, cpu, gpu):
        d = np.where(a == b, 0.0, np.abs(b - a))  # equal infinities (float32 CEM43) agree
        absd[n] = float(np.max(d))
        rel[n] = float(np.max(d / np.maximum(np.abs(a), 1e-300)))
    print(json.dumps({
        "absdiff": absd,
        "reldiff": rel,
        "steps": out["steps"],
        "max_abs_theta": float(np.max(np.abs(cpu[1] - 37.0))),
        "max_slope_j_m3_k": slope,
        "ulp_e": float(np.spacing(np.asarray(np.max(np.abs(cpu[0])), dtype))),
        "tmin": float(cpu[1][free].min()),
        "tmax": float(cpu[5].max()),
        "vapor_start_c": float(np.min(P[K.TV1, present])),
        "frozen_tissue": int(np.sum(cpu[4][free] < p.perfusion_stop_c)),
        "coagulated": int(np.sum(cpu[2] >= 1.0)),
    }))
    """
)


@functools.cache
def _has_device() -> bool:
    """Whether numba finds a real CUDA device (asked in a process without the simulator)."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    code = "from numba import cuda; print(cuda.is_available())"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    return proc.stdout.strip().endswith("True")


def _env(mode: str) -> dict:
    if mode == "device" and not _has_device():
        pytest.skip("no CUDA device here")
    return dict(os.environ, NUMBA_ENABLE_CUDASIM="1" if mode == "simulator" else "0")


MODES = ["simulator", "device"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_gpu_kernel_matches_cpu(mode):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=_env(mode),
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    fields = proc.stdout.split()
    worst = float(fields[fields.index("WORST") + 1])
    tmin = float(fields[fields.index("TMIN") + 1])
    tmax = float(fields[fields.index("TMAX") + 1])
    # same float64 arithmetic (on a device the compiler may fuse a multiply-add: one
    # rounding less, 1e-16 relative per step); only libm's exp/pow may differ in the last bit
    assert worst < 1e-9
    assert tmin < -100.0 and tmax > 38.0  # the case exercised freezing and heating


def _run(mode: str, dtype: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", RUN_SCRIPT, dtype], capture_output=True, text=True,
        env=_env(mode), check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in res:
        pytest.skip(res["skip"])
    # the case exercised what it is meant to: freezing (and perfusion stopping there),
    # boiling (the vaporisation plateau reached), coagulation (and perfusion stopping)
    assert res["tmin"] < -20.0 and res["frozen_tissue"] > 0
    assert res["tmax"] >= res["vapor_start_c"]
    assert res["coagulated"] > 0
    return res


def _check(res: dict, tol_t: float, rtol_dose: float) -> None:
    """Compare each array within tolerances derived from a temperature tolerance ``tol_t``.

    E is a function of T (the run ends with E = E(T) on the host for both backends), so
    E may differ by the steepest slope dE/dT of a present material (the vaporisation
    plateau, ~1.6e9 J/m^3/K) times ``tol_t``, plus two of E's own units in the last place.
    ``tmin``/``tmax`` are temperatures sampled at the damage steps: ``tol_t``. The
    Arrhenius and CEM43 doses are compared relatively: ``rtol_dose``.
    """
    d = res["absdiff"]
    r = res["reldiff"]
    assert d["T"] <= tol_t, (d, tol_t)
    assert d["tmin"] <= tol_t, (d, tol_t)
    assert d["tmax"] <= tol_t, (d, tol_t)
    assert d["E"] <= res["max_slope_j_m3_k"] * tol_t + 2 * res["ulp_e"], d
    assert r["omega"] <= rtol_dose, r
    assert r["cem43"] <= rtol_dose, r


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_gpu_run_matches_cpu_float64(mode):
    res = _run(mode, "float64")
    # The same float64 arithmetic in both paths (the GPU's fast path computes exactly
    # step_cpu's expression); what differs is the fast/general choice of interface voxels
    # (same physics, different rounding), a fused multiply-add on a device and libm's exp:
    # about 1e-16 relative per operation, a few hundred operations per voxel per step over
    # ~20-40 steps, with the explicit scheme not amplifying differences (it is stable, and
    # the enthalpy map is monotone). 1e-9 degC is ~1e4 times that and far below anything
    # physical. The doses' sensitivity to T is at most ln(4) = 1.39 per degC (CEM43 below
    # 43 degC; Arrhenius: Ea / (R T^2) <= 0.32 per degC), so 1e-8 relative covers them.
    _check(res, tol_t=1e-9, rtol_dose=1e-8)


@pytest.mark.slow
# device only: the simulator runs the kernels as Python per thread (about 40 s for this run
# on two busy cores), and the float32 kernels are the float64 ones compiled for another
# dtype, whose logic the simulator already checks in float64 above (suite time budget)
@pytest.mark.parametrize("mode", ["device"])
def test_gpu_run_matches_cpu_float32(mode):
    res = _run(mode, "float32")
    # float32: the fast path is the same float32 expression on both sides, but (a) on a
    # device the compiler fuses multiply-adds (one rounding less); (b) on the simulator the
    # general update adds 37 degC to a float32 theta in float32 (numpy's scalar rules),
    # where the compiled CPU code does so in float64; (c) interface voxels take the CPU's
    # float32 interface path but the GPU's float64 general path. Each is at most about two
    # units in the last place of theta per step; the explicit scheme carries such
    # differences forward without amplifying them (stable, monotone enthalpy map), so they
    # add up to at most steps x 2 ulp(max |theta|) (~1e-3 degC here), far below what the
    # model resolves.
    ulp = float(np.spacing(np.float32(res["max_abs_theta"])))
    tol_t = res["steps"] * 2 * ulp
    # the doses: sensitivity to T at most 1.39 per degC (see float64), plus float32
    # accumulation over three damage intervals (a few units of 6e-8 relative)
    _check(res, tol_t=tol_t, rtol_dose=1.39 * tol_t + 1e-6)


# A CUDA installation that finds the device but cannot compile the kernels (seen on an
# H200 machine: its numba-cuda 0.30.4 registers an overload for np.row_stack, which
# numpy 2.5 removed) must give one line, not a traceback at the first launch.
BROKEN_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from ioplan.anatomy import Label
    from ioplan.errors import InputError
    from ioplan.imaging import Grid
    from ioplan.physics import ThermalProblem, run, tissue_material_table
    from ioplan.physics import _solver

    class Broken:
        def __getitem__(self, config):
            raise AttributeError("module 'numpy' has no attribute 'row_stack'")

    g = Grid((6, 6, 6), (1.0, 1.0, 1.0))
    p = ThermalProblem(g, np.full(g.shape, int(Label.LIVER), np.uint8), tissue_material_table())
    s, _ = run(p, 0.5, backend="gpu")  # the simulator's kernels run
    print("OK", float(s.temperature_c.max()))
    _solver._GPU_CHECKED.clear()
    _solver.step_gpu = Broken()
    try:
        run(p, 0.5, backend="gpu")
    except InputError as exc:
        print("ERROR", str(exc))
    """
)


@pytest.mark.slow
def test_gpu_that_cannot_compile_gives_one_line():
    proc = subprocess.run(
        [sys.executable, "-c", BROKEN_SCRIPT], capture_output=True, text=True,
        env=_env("simulator"), check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("OK ")  # a working device path passes the check
    assert abs(float(lines[0].split()[1]) - 37.0) < 1e-3  # nothing heats: body temperature
    err = lines[1]
    assert err.startswith("ERROR the CUDA kernels do not run here (AttributeError:"), err
    assert "row_stack" in err and err.endswith("run without --gpu")
    assert len(lines) == 2  # one line: no traceback in the message
