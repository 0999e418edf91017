"""The GPU kernel (numba.cuda) against the CPU kernel, on numba's CUDA simulator.

The simulator must be switched on before numba is imported, so the comparison
runs in a fresh Python process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

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
    g = Grid((7, 8, 9), (1.0, 1.5, 2.0))
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


@pytest.mark.slow
def test_gpu_kernel_matches_cpu_on_the_cuda_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    fields = proc.stdout.split()
    worst = float(fields[fields.index("WORST") + 1])
    tmin = float(fields[fields.index("TMIN") + 1])
    tmax = float(fields[fields.index("TMAX") + 1])
    # same float64 arithmetic in the same order; only libm's exp/pow may differ in the last bit
    assert worst < 1e-9
    assert tmin < -100.0 and tmax > 38.0  # the case exercised freezing and heating
