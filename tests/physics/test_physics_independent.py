"""The engine against an independent solver: scikit-fem (finite elements).

Steady Pennes problem with a Gaussian source in a perfused cube, temperature
held at blood temperature on the cube's faces. scikit-fem solves it with
trilinear hexahedral elements whose nodes sit on the engine's voxel centres; the
engine marches its explicit finite-volume scheme to steady state. Agreement
within 0.5 degC (issue 3) on a peak rise of about 30 degC (measured: 0.12 degC).
"""

from __future__ import annotations

import numpy as np
import pytest

from ioplan.anatomy import Label
from ioplan.imaging import Grid
from ioplan.physics import ThermalProblem, run, tissue_material_table

skfem = pytest.importorskip("skfem", reason="scikit-fem is a test-only dependency ([dev])")


@pytest.mark.slow
def test_steady_gaussian_source_agrees_with_scikit_fem():
    from skfem import Basis, BilinearForm, ElementHex1, LinearForm, MeshHex, condense, solve
    from skfem.helpers import dot, grad

    n, h = 25, 1.5  # 36 mm cube
    tab = tissue_material_table(perfusion_override_1_per_s={"liver": 0.01})
    liver = int(Label.LIVER)
    k = float(tab.k_w_m_k[liver])
    b = float(tab.perfusion_w_m3_k[liver])
    c = float(tab.c_vol_j_m3_k[liver])
    g = Grid((n, n, n), (h, h, h))
    centre_mm = (n - 1) / 2 * h
    s_mm, q0 = 4.0, 3.0e6

    def q_of(xyz_mm):
        r2 = sum((xyz_mm[i] - centre_mm) ** 2 for i in range(3))
        return q0 * np.exp(-r2 / (2 * s_mm**2))

    # engine (constant properties: the same linear problem)
    p = ThermalProblem(g, np.full(g.shape, liver, np.uint8), tab, constant_properties=True,
                       dtype="float64")  # fmt: skip
    zz, yy, xx = np.meshgrid(*(np.arange(n) * h,) * 3, indexing="ij")
    final, _ = run(p, 10 * c / b, source=q_of((xx, yy, zz)))  # 10 perfusion time constants
    engine = final.temperature_c - 37.0

    # scikit-fem, in metres
    coords = np.arange(n) * h * 1e-3
    mesh = MeshHex.init_tensor(coords, coords, coords)
    basis = Basis(mesh, ElementHex1())

    @BilinearForm
    def pennes(u, v, w):
        return k * dot(grad(u), grad(v)) + b * u * v

    @LinearForm
    def source(v, w):
        return q_of(w.x * 1e3) * v

    a_mat = pennes.assemble(basis)
    f_vec = source.assemble(basis)
    theta = solve(*condense(a_mat, f_vec, D=basis.get_dofs().all()))
    # node (x, y, z) in m -> engine voxel (z, y, x)
    ijk = np.rint(mesh.p * 1e3 / h).astype(int)
    fem_on_grid = np.zeros(g.shape)
    fem_on_grid[ijk[2], ijk[1], ijk[0]] = theta
    assert engine.max() > 15.0
    assert np.max(np.abs(engine - fem_on_grid)) < 0.5
