"""The named steps of the phantom: shapes, painting order, memory refusal, step reports."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ioplan import resources
from ioplan.anatomy import PHANTOM_STEPS, Label, PhantomConfig, generate_phantom
from ioplan.anatomy._shapes import ellipsoid, tube_mask
from ioplan.anatomy._steps import largest_component, paint
from ioplan.errors import InputError


def test_tube_with_a_repeated_point_keeps_its_voxels():
    """Defect: a small-bowel loop whose clipped points repeat (seed 7) had a zero-length
    segment; 0/0 made the distance NaN and the whole loop vanished (and a RuntimeWarning)."""
    x = np.arange(-5.0, 16.0)[None, None, :]
    y = np.arange(-5.0, 6.0)[None, :, None]
    z = np.zeros((1, 1, 1))
    pts = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    mask = tube_mask(x, y, z, pts, 2.0)
    # hand count: a capsule of radius 2 around x in [0, 10], y = z = 0 on this plane:
    # |y| <= 2 for 0 <= x <= 10 (11 x 5 = 55), plus the caps (x = -2..-1, 11..12):
    # x = -1 and 11: |y| <= 1.73 -> 3 each; x = -2 and 12: y = 0 -> 1 each.
    assert int(mask.sum()) == 55 + 2 * 3 + 2 * 1


def test_seed_7_generates_without_warnings():
    """The seed that met the zero-length segment: pytest turns any warning into an error."""
    ph = generate_phantom(PhantomConfig(spacing_mm=5.0, seed=7, noise_hu=0.0))
    assert np.count_nonzero(ph.labels.array == Label.BOWEL_WALL) > 0


def test_paint_later_layer_wins_and_input_is_untouched():
    labels = np.zeros((2, 2, 2), np.uint8)
    a = np.zeros((2, 2, 2), bool)
    a[0] = True
    b = np.zeros((1, 1, 2), bool)  # broadcast over z and y
    b[..., 1] = True
    out = paint(labels, [(a, Label.LIVER), (b, Label.TUMOR)])
    assert labels.sum() == 0
    expected = np.array([[[7, 8], [7, 8]], [[0, 8], [0, 8]]], np.uint8)
    np.testing.assert_array_equal(out, expected)


def test_largest_component():
    m = np.zeros((1, 5, 9), bool)
    m[0, 1:4, 0:3] = True  # 9 voxels
    m[0, 0, 6:9] = True  # 3 voxels
    out = largest_component(m)
    assert out.sum() == 9 and not out[0, 0, 6:9].any()


def test_ellipsoid_rotation_about_z():
    """A 90 degree turn about z swaps the x and y semi-axes (analytic)."""
    p = ellipsoid(np.array([0.0, 3.0]), np.array([3.0, 0.0]), 0.0, (0, 0, 0), (6.0, 3.0, 1.0))
    q = ellipsoid(
        np.array([0.0, 3.0]), np.array([3.0, 0.0]), 0.0, (0, 0, 0), (6.0, 3.0, 1.0), (0, 0, 90)
    )
    np.testing.assert_allclose(p, [1.0, 0.5])
    np.testing.assert_allclose(q, [0.5, 1.0], atol=1e-12)


def test_progress_reports_every_step_in_order():
    seen: list[str] = []
    generate_phantom(PhantomConfig(spacing_mm=5.0, noise_hu=0.0), progress=seen.append)
    assert tuple(seen) == PHANTOM_STEPS and len(seen) == 10


def test_memory_is_checked_before_allocating(monkeypatch):
    """At 0.5 mm the grid has 360 x 520 x 680 voxels; with 1 GiB free it is refused at once."""
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 1024**3)
    with pytest.raises(InputError, match="--spacing-mm") as exc:
        generate_phantom(PhantomConfig(spacing_mm=0.5))
    assert "680 x 520 x 360" in str(exc.value)


def test_liver_is_one_piece_and_clear_of_its_neighbours(small_phantom):
    """Independent checks of the liver step: one connected piece, 3 mm from the kidney."""
    lab = small_phantom.labels.array
    liver_region = np.isin(
        lab,
        [Label.LIVER, Label.TUMOR, Label.PORTAL_VEIN, Label.HEPATIC_VEIN, Label.HEPATIC_ARTERY],
    )
    pieces, _ = ndimage.label(liver_region)
    # vessels leave the liver (portal trunk, artery from the aorta): count only the
    # pieces that hold parenchyma; the step keeps the largest piece of the liver
    with_liver = np.unique(pieces[lab == Label.LIVER])
    assert len(with_liver) == 1 and with_liver[0] > 0
    # the liver is cut at least one 4 mm voxel away from kidney, spleen and stomach
    grown = ndimage.binary_dilation(lab == Label.LIVER)
    assert not np.any(np.isin(lab[grown], [Label.KIDNEY, Label.SPLEEN, Label.STOMACH]))
