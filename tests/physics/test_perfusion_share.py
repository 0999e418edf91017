"""Perfusion shutdown below the voxel size (``ioplan.physics._perfusion``, issue 19).

The share of a voxel that has frozen or coagulated is checked against an independent
count: the fraction of 40^3 sample points of the voxel past the threshold, for the same
linear field.
"""

from __future__ import annotations

import numpy as np
import pytest

from ioplan.anatomy import Label
from ioplan.physics import tissue_material_table
from ioplan.physics._kernel import PERF_FIXED, PERF_FULL, pack_properties
from ioplan.physics._perfusion import perfusion_share_cpu

TSTOP_C = -2.0


def _voxel_share_sampled(grad, value_at_centre, threshold, above: bool) -> float:
    """Fraction of a unit voxel where the linear field is past ``threshold`` (40^3 points)."""
    u = (np.arange(40) + 0.5) / 40 - 0.5
    z, y, x = np.meshgrid(u, u, u, indexing="ij")
    f = value_at_centre + grad[0] * z + grad[1] * y + grad[2] * x
    return float(np.mean(f >= threshold if above else f < threshold))


def _run(omega, tmin, mat=None, perf=None):
    table = tissue_material_table()
    mat = np.full(omega.shape, int(Label.LIVER), np.uint8) if mat is None else mat
    P = pack_properties(table)
    perf = np.full(omega.shape, PERF_FULL, np.uint8) if perf is None else perf
    perfusion_share_cpu(omega, tmin, perf, mat, P, 0, TSTOP_C)
    return perf


def _linear(grad, centre_value):
    """A 5^3 field, linear with ``grad`` per voxel, ``centre_value`` at (2, 2, 2)."""
    i = np.arange(5) - 2.0
    z, y, x = np.meshgrid(i, i, i, indexing="ij")
    return centre_value + grad[0] * z + grad[1] * y + grad[2] * x


@pytest.mark.parametrize(
    "grad, centre",
    [((0.0, 0.0, 8.0), 1.0), ((0.0, 0.0, 8.0), -4.5), ((8.0, 0.0, 0.0), -2.0),
     ((0.0, 6.0, 6.0), 0.5), ((5.0, 5.0, 5.0), -3.0), ((0.0, 3.0, 9.0), 1.5)],
)  # fmt: skip
def test_frozen_share_matches_a_sampled_count(grad, centre):
    """Lowest temperature linear across the voxel (K per voxel), share below -2 degC.

    Along an axis the ramp is exact, so the share agrees with the count to the storage
    step (1/100) plus the count's own step (1/40 on a face-normal field): 0.04. Oblique,
    the ramp matches the field's spread over the cube (its standard deviation), not its
    exact distribution: scanned over 81 offsets, the largest gap to the count was 0.046
    (gradient along a face diagonal), 0.049 (a cube diagonal) and 0.028 ((0, 3, 9));
    0.10 leaves room for the storage step, and a ramp over the L1 width (twice as wide on
    a face diagonal) fails it.
    """
    tmin = _linear(grad, centre)
    omega = np.zeros_like(tmin)
    perf = _run(omega, tmin)
    share = 1.0 - perf[2, 2, 2] / PERF_FULL
    ref = _voxel_share_sampled(grad, centre, TSTOP_C, above=False)
    on_axis = sum(g != 0 for g in grad) == 1
    assert share == pytest.approx(ref, abs=0.04 if on_axis else 0.10), (share, ref)


def test_coagulated_share_from_ln_omega():
    """ln Omega linear across the voxel: the share with Omega >= 1, as counted."""
    grad, centre = (0.0, 0.0, 4.0), -1.0  # ln Omega per voxel; 1/4 of the voxel past 0
    omega = np.exp(_linear(grad, centre))
    tmin = np.full(omega.shape, 37.0)
    perf = _run(omega, tmin)
    ref = _voxel_share_sampled(grad, centre, 0.0, above=True)
    assert ref == pytest.approx(0.25, abs=0.03)
    assert 1.0 - perf[2, 2, 2] / PERF_FULL == pytest.approx(ref, abs=0.04)


def test_share_only_grows_and_fixed_voxels_are_left_alone():
    """Blood does not return: a voxel whose field warms again keeps its stopped share;
    a fixed voxel keeps its mark; a voxel far from any threshold keeps full perfusion."""
    tmin = _linear((0.0, 0.0, 8.0), -6.0)  # three quarters of the centre voxel frozen
    omega = np.zeros_like(tmin)
    perf = _run(omega, tmin)
    first = int(perf[2, 2, 2])
    assert first < PERF_FULL // 2
    warmer = _linear((0.0, 0.0, 8.0), 10.0)  # (a lowest temperature cannot rise; a guard)
    again = _run(omega, warmer, perf=perf.copy())
    assert int(again[2, 2, 2]) == first
    mat = np.full(tmin.shape, int(Label.LIVER), np.uint8)
    table = tissue_material_table().with_material(70, "probe", fixed_group=1)
    mat[2, 2, 1] = 70
    P = pack_properties(table)
    perf = np.full(tmin.shape, PERF_FULL, np.uint8)
    perf[2, 2, 1] = PERF_FIXED
    perfusion_share_cpu(omega, tmin, perf, mat, P, 0, TSTOP_C)
    assert perf[2, 2, 1] == PERF_FIXED
    # beside the fixed voxel the change is one-sided (from the free neighbour): the same
    # linear field, so the same share as before
    assert int(perf[2, 2, 2]) == first
    far = _run(omega, np.full(tmin.shape, 30.0))
    assert np.all(far == PERF_FULL)


def test_constant_properties_never_stop_perfusion():
    """Verification runs (``constant_properties``) keep every voxel perfused."""
    table = tissue_material_table()
    tmin = _linear((0.0, 0.0, 8.0), -20.0)
    perf = np.full(tmin.shape, PERF_FULL, np.uint8)
    perfusion_share_cpu(np.zeros_like(tmin), tmin, perf,
                        np.full(tmin.shape, int(Label.LIVER), np.uint8),
                        pack_properties(table), 1, TSTOP_C)  # fmt: skip
    assert np.all(perf == PERF_FULL)
