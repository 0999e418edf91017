"""The RF potential's multigrid kept between solves (ioplan.physics._amg).

Reference: a solve without a cache (a fresh hierarchy for the matrix at hand). Kept coarse
operators change only the preconditioner, so the potentials agree to CG's tolerance.
"""

from __future__ import annotations

import numpy as np

from ioplan.imaging import Grid
from ioplan.physics import _amg, rf_potential


def _setup():
    g = Grid((14, 14, 14), (2.0, 2.0, 2.0))
    electrode = np.zeros(g.shape, bool)
    electrode[5:9, 7, 7] = True
    ground = np.zeros(g.shape, bool)
    ground[0], ground[-1] = True, True
    return g, electrode, ground


def test_kept_coarse_operators_give_the_fresh_solution(monkeypatch):
    g, electrode, ground = _setup()
    sigma = np.full(g.shape, 0.2)
    cache: dict = {}
    rf_potential(g, sigma, electrode, ground, tol=1e-10, cache=cache)
    assert cache["refresh"] is False  # a fresh hierarchy: few iterations
    # the tissue around the electrode heats: its conductivity doubles there (and falls 100x
    # in a boiled shell), as in a run; the kept coarse operators are the cold tissue's
    sigma2 = sigma.copy()
    sigma2[3:11, 5:10, 5:10] = 0.4
    sigma2[4:10, 6:9, 6:9] = 0.002
    calls = []
    original = _amg.amg_update

    def spy(ml, mat, *, coarse=True):
        calls.append(coarse)
        return original(ml, mat, coarse=coarse)

    monkeypatch.setattr(_amg, "amg_update", spy)
    phi_kept, q_kept, p_kept = rf_potential(g, sigma2, electrode, ground, tol=1e-10, cache=cache)
    phi_ref, q_ref, p_ref = rf_potential(g, sigma2, electrode, ground, tol=1e-10)
    assert calls == [False]  # the coarse operators were kept
    # a 100x drop in a shell is far from the operators the hierarchy holds: CG needed more
    # than STALE_MAX_ITERATIONS, so the next call recomputes them (in runs: 5-6 iterations)
    assert cache["refresh"] is True
    # both solved to a relative residual of 1e-10: equal potentials and power to ~1e-8
    np.testing.assert_allclose(phi_kept, phi_ref, atol=1e-8)
    np.testing.assert_allclose(q_kept, q_ref, rtol=0, atol=1e-6 * float(q_ref.max()))
    assert abs(p_kept / p_ref - 1.0) < 1e-7
    # a solve that needed more than STALE_MAX_ITERATIONS recomputes them at the next call
    # (here: any iteration at all; the conductivity goes back to the cold tissue's)
    monkeypatch.setattr(_amg, "STALE_MAX_ITERATIONS", 0)
    rf_potential(g, sigma, electrode, ground, tol=1e-10, cache=cache)
    assert cache["refresh"] is True
    phi3, _, _ = rf_potential(g, sigma2, electrode, ground, tol=1e-10, cache=cache)
    assert calls[-1] is True and len(calls) == 3
    np.testing.assert_allclose(phi3, phi_ref, atol=1e-8)
    # and a solve within the limit keeps them at the next call
    monkeypatch.setattr(_amg, "STALE_MAX_ITERATIONS", 10**6)
    rf_potential(g, sigma, electrode, ground, tol=1e-10, cache=cache)
    assert cache["refresh"] is False
