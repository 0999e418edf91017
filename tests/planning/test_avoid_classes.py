"""Extra classes of an imported case (structures with no ioplan label) are avoided by
needle paths when their role is "avoid", and may be crossed when it is "pass"."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ioplan.anatomy import EXTRA_STAND_IN, ExtraClass
from ioplan.imaging import Volume
from ioplan.planning import TrajectoryConfig, candidate_trajectories

CFG = TrajectoryConfig(n_directions=150)


@pytest.fixture(scope="module")
def baseline(small_case):
    target = tuple(small_case.tumors[0]["centre_mm"])
    paths = candidate_trajectories(small_case, target, CFG)
    best = next(t for t in paths if t.accepted)
    return target, best


def _with_block(case, best, role):
    """A 3 x 3 x 3 voxel block centred on the middle of the best path."""
    g = case.labels.grid
    mid = 0.5 * (np.asarray(best.entry_mm) + np.asarray(best.target_mm))  # LPS mm
    c = np.rint(g.lps_to_index(mid)).astype(int)
    block = tuple(slice(i - 1, i + 2) for i in c)
    extra = np.zeros(g.shape, np.uint8)
    extra[block] = 100
    labels = np.asarray(case.labels.array).copy()
    labels[block] = int(EXTRA_STAND_IN)
    return dataclasses.replace(
        case,
        labels=Volume(labels, g),
        extra_classes=(ExtraClass("test_block", 100, role),),
        extra_labels=Volume(extra, g),
    )


def test_an_avoided_extra_class_rejects_the_path_through_it(small_case, baseline):
    target, best = baseline
    case = _with_block(small_case, best, "avoid")
    paths = candidate_trajectories(case, target, CFG)
    same = min(paths, key=lambda t: np.linalg.norm(np.subtract(t.entry_mm, best.entry_mm)))
    assert np.allclose(same.entry_mm, best.entry_mm)
    assert not same.accepted
    assert any("other structure test_block" in r for r in same.reasons), same.reasons
    # independent check: every accepted path keeps the safety distance from each of the
    # block's 27 voxel centres, less half a voxel diagonal (the planner samples the path at
    # the voxel centres nearest to it, which moves a point by at most that much)
    g = case.labels.grid
    centres = g.index_to_lps(np.argwhere(np.asarray(case.extra_labels.array) == 100))
    assert len(centres) == 27
    slack = 0.5 * float(np.linalg.norm(g.spacing_mm))
    s = np.linspace(0.0, 1.0, 400)[:, None]
    for t in paths:
        if t.accepted:
            pts = np.asarray(t.entry_mm) + s * (np.subtract(t.target_mm, t.entry_mm))
            d = np.linalg.norm(pts[:, None, :] - centres[None, :, :], axis=2)
            assert d.min() >= CFG.safety_mm - slack


def test_a_passable_extra_class_does_not(small_case, baseline):
    target, best = baseline
    case = _with_block(small_case, best, "pass")
    paths = candidate_trajectories(case, target, CFG)
    same = min(paths, key=lambda t: np.linalg.norm(np.subtract(t.entry_mm, best.entry_mm)))
    assert same.accepted, same.reasons
