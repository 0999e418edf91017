"""Benchmark of the bioheat engine's production kernel.

Measures, in one run on this machine:
- voxel updates per second of the float32 CPU kernel (numba, all cores) at 128^3 and 256^3;
- the machine's memory bandwidth (a large array copy, bytes read + written per second);
- the kernel's fraction of the bandwidth bound (bytes it must move per update / bandwidth);
- the same transient problem in scikit-fem (trilinear FE, implicit Euler with one sparse
  LU factorisation) on the same grid and number of steps, and the speed ratio;
- the GPU kernel where numba finds a CUDA device.

Usage: python bench/engine.py [--sizes 128 256] [--steps 20] [--out bench/results/engine.json]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _results import machine, write_result

from ioplan.anatomy import Label
from ioplan.imaging import Grid
from ioplan.physics import ThermalProblem, init_state, tissue_material_table
from ioplan.physics._solver import _Runner

# Bytes the kernel must move per voxel update (float32 state, uint8 material):
# reads E, T, Q, omega, cem, tmin, tmax (7 x 4) + material (1); writes E2, T2, omega, cem,
# tmin, tmax (6 x 4). Neighbour values of T and material come from cache.
BYTES_PER_UPDATE = 7 * 4 + 1 + 6 * 4


def memory_bandwidth(n_bytes: int = 1 << 30, repeats: int = 5) -> float:
    """Best copy bandwidth (bytes read + written per second) of a large array."""
    a = np.ones(n_bytes // 8)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best


def engine_rate(n: int, steps: int, backend: str = "cpu") -> float:
    tab = tissue_material_table()
    g = Grid((n, n, n), (1.0, 1.0, 1.0))
    p = ThermalProblem(g, np.full(g.shape, int(Label.LIVER), np.uint8), tab)
    st = init_state(p)
    q = np.zeros(g.shape, np.float32)
    q[n // 2 - 4 : n // 2 + 4, n // 2 - 4 : n // 2 + 4, n // 2 - 4 : n // 2 + 4] = 5e6
    runner = _Runner(p, backend)
    arrays = tuple(a.copy() for a in st.arrays())
    runner.advance(arrays, 0.5, 2, q, None)  # compile and warm up
    t0 = time.perf_counter()
    runner.advance(arrays, 0.5, steps, q, None)
    dt = time.perf_counter() - t0
    return (n - 2) ** 3 * steps / dt


def skfem_rate(n: int, steps: int) -> tuple[float, float]:
    """Voxel (node) updates per second of scikit-fem on the same problem, and its setup time."""
    import scipy.sparse.linalg as spla
    from skfem import Basis, BilinearForm, ElementHex1, LinearForm, MeshHex, condense
    from skfem.helpers import dot, grad

    k, c, b = 0.52, 1079 * 3540.0, 0.0036 * 1060 * 3617
    dt = 0.5
    coords = np.arange(n) * 1e-3
    t0 = time.perf_counter()
    mesh = MeshHex.init_tensor(coords, coords, coords)
    basis = Basis(mesh, ElementHex1())

    @BilinearForm
    def lhs(u, v, w):
        return c / dt * u * v + k * dot(grad(u), grad(v)) + b * u * v

    @BilinearForm
    def mass(u, v, w):
        return c / dt * u * v

    @LinearForm
    def src(v, w):
        centre = (n - 1) / 2 * 1e-3
        inside = np.all(np.abs(w.x - centre) < 4e-3, axis=0)
        return 5e6 * inside * v

    a_mat = lhs.assemble(basis)
    m_mat = mass.assemble(basis)
    f = src.assemble(basis)
    dofs = basis.get_dofs().all()
    a_in, _, _, interior = condense(a_mat, f, D=dofs)
    lu = spla.splu(a_in.tocsc())
    setup = time.perf_counter() - t0
    theta = np.zeros(basis.N)
    t0 = time.perf_counter()
    for _ in range(steps):
        rhs = (m_mat @ theta + f)[interior]
        theta[interior] = lu.solve(rhs)
    return (n - 2) ** 3 * steps / (time.perf_counter() - t0), setup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--fem-size", type=int, default=32)
    ap.add_argument("--out", default="bench/results/engine.json")
    args = ap.parse_args()
    bw = memory_bandwidth()
    rows = []
    for n in args.sizes:
        rate = engine_rate(n, args.steps)
        bound = bw / BYTES_PER_UPDATE
        rows.append(
            {
                "size": n,
                "backend": "cpu",
                "voxel_updates_per_s": rate,
                "bandwidth_bound_updates_per_s": bound,
                "fraction_of_bound": rate / bound,
            }
        )
    n = args.fem_size
    ours = engine_rate(n, args.steps)
    fem, fem_setup = skfem_rate(n, args.steps)
    gpu = None
    try:
        from numba import cuda

        if cuda.is_available() and not os.environ.get("NUMBA_ENABLE_CUDASIM"):
            gpu = {str(s): engine_rate(s, args.steps * 10, backend="gpu") for s in args.sizes}
    except Exception as exc:  # no CUDA driver: record why
        gpu = {"unavailable": str(exc)}
    result = {
        "machine": machine(),
        "memory_bandwidth_bytes_per_s": bw,
        "bytes_per_update": BYTES_PER_UPDATE,
        "kernel": rows,
        "comparison": {
            "size": n,
            "steps": args.steps,
            "ioplan_updates_per_s": ours,
            "skfem_updates_per_s": fem,
            "skfem_setup_s": fem_setup,
            "speed_ratio": ours / fem,
        },
        "gpu": gpu,
    }
    print(
        f"memory bandwidth (copy, read + write): {bw / 1e9:.1f} GB/s; "
        f"kernel moves {BYTES_PER_UPDATE} B per update"
    )
    print(f"{'size':>6} {'M updates/s':>12} {'bound M/s':>10} {'of bound':>9}")
    for r in rows:
        print(
            f"{r['size']:>6} {r['voxel_updates_per_s'] / 1e6:>12.1f} "
            f"{r['bandwidth_bound_updates_per_s'] / 1e6:>10.1f} {r['fraction_of_bound']:>8.0%}"
        )
    print(
        f"same problem at {n}^3, {args.steps} steps: ioplan {ours / 1e6:.1f} M updates/s, "
        f"scikit-fem {fem / 1e6:.2f} M updates/s (+{fem_setup:.1f} s setup): "
        f"ratio {ours / fem:.0f}x"
    )
    print(f"gpu: {gpu}")
    write_result(result, args.out)


if __name__ == "__main__":
    main()
