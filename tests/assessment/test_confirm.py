"""``confirm_margin`` (the library behind ``ioplan margin``) and masks on different grids."""

from __future__ import annotations

import numpy as np
import pytest

from ioplan.assessment import confirm_margin, mask_field, measure_margin
from ioplan.assessment._masks import PROBABILITIES
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume


def _ball(g: Grid, centre_mm, radius_mm: float) -> np.ndarray:
    idx = np.argwhere(np.ones(g.shape, bool))
    d = np.linalg.norm(g.index_to_lps(idx) - np.asarray(centre_mm, float), axis=1)
    return (d <= radius_mm).reshape(g.shape).astype(np.uint8)


def test_a_tumour_reaching_beyond_the_zone_image_is_not_cut():
    """The tumour (r 6 mm at x = 5) on a fine 0.8 mm grid cropped tightly around it; the
    zone (r 14 mm at x = 0) on a coarser 1 mm grid. The zone reaches far beyond the
    tumour's image: measured on the tumour's grid alone, the zone was cut at that image's
    edge. Analytic margin: 14 - 6 - 5 = 3 mm."""
    gt = Grid((18, 18, 18), (0.8, 0.8, 0.8), (-1.8, -6.8, -6.8))  # x from -1.8 to 11.8
    gz = Grid((36, 36, 36), (1.0, 1.0, 1.0), (-17.5, -17.5, -17.5))
    t = Volume(_ball(gt, (5.0, 0.0, 0.0), 6.0), gt)
    z = Volume(_ball(gz, (0.0, 0.0, 0.0), 14.0), gz)
    res = measure_margin(t, z)
    assert any("widened" in n for n in res.notes), res.notes
    # 1 mm zone voxels resampled onto 0.8 mm: the analytic tests' bounds at 1 mm
    # (0.45 mm below the truth, 0.2 mm above)
    assert -0.45 <= res.minimal_margin_mm - 3.0 <= 0.2, res.minimal_margin_mm
    # the grid that was measured holds the whole zone (28 mm across), not the 14 mm crop
    lo, hi = res.grid.bounds_lps()
    assert np.all(hi - lo > 28.0)


def test_confirm_margin_is_measure_margin_plus_the_document():
    g = Grid((30, 30, 30), (1.0, 1.0, 1.0), (-14.5, -14.5, -14.5))
    t, z = Volume(_ball(g, (1, 0, 0), 5.0), g), Volume(_ball(g, (0, 0, 0), 11.0), g)
    c = confirm_margin(t, z, margin_mm=4.0)
    ref = measure_margin(t, z, margin_mm=4.0)
    assert c.result.minimal_margin_mm == ref.minimal_margin_mm  # same computation
    assert c.document["registration"] == {"performed": False}
    assert c.document["minimal_margin_mm"] == round(ref.minimal_margin_mm, 3)
    assert c.registration is None and c.report is None and c.warnings == ()
    # analytic: 11 - 5 - 1 = 5 mm, within the 1 mm voxel bounds
    assert -0.45 <= c.result.minimal_margin_mm - 5.0 <= 0.2


def test_confirm_margin_checks_cheap_things_before_reading_files(tmp_path):
    """Bad options are refused before the (missing) files are opened."""
    missing = tmp_path / "missing.nii.gz"
    with pytest.raises(InputError, match="--margin-mm must be 0-30 mm, got 40"):
        confirm_margin(missing, missing, margin_mm=40)
    with pytest.raises(InputError, match="unknown stage 'elastic'"):
        confirm_margin(missing, missing, registration="rigid,elastic")
    with pytest.raises(InputError, match="--tumor-label"):
        confirm_margin(missing, missing, tumour_label=0)
    with pytest.raises(InputError, match="--pre-image and --post-image"):
        confirm_margin(missing, missing, pre_image=missing)
    # stages without the images they register were silently ignored
    with pytest.raises(InputError, match="--registration needs --pre-image and --post-image"):
        confirm_margin(missing, missing, registration="rigid,affine")


def test_label_maps_and_images_are_told_apart():
    """TotalSegmentator-like maps (up to 117 labels) are masks; a CT is not."""
    labels = np.zeros((472, 1, 1), np.uint8)  # (a quarter of the image labelled)
    labels[:118, 0, 0] = np.arange(118, dtype=np.uint8)
    _, kind, inside = mask_field(labels, "the map")
    assert kind.startswith("label map") and int(inside.sum()) == 117
    ct = np.random.default_rng(1).integers(0, 3000, (10, 10, 10)).astype(np.uint16)
    with pytest.raises(InputError, match="distinct values"):
        mask_field(ct, "the map", label_option="--tumor-label")


def test_a_whole_label_map_is_no_tumour_mask():
    """A case's labels.nii.gz (23 labels over 74 % of the image) given as --tumor measured
    a -244 mm margin for an 11.8 L "tumour"; a map of a few lesions is still counted."""
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[:, :, :15] = np.arange(1, 16, dtype=np.uint8)[None, None, :]  # skin, fat, ...
    with pytest.raises(InputError, match=r"whole label map.*--tumor-label"):
        mask_field(labels, "the tumour mask", label_option="--tumor-label", one_structure=True)
    lesions = np.zeros((20, 20, 20), np.uint8)
    lesions[2:5, 2:5, 2:5], lesions[10:13, 10:13, 10:13], lesions[15:18, 2:5, 2:5] = 1, 2, 3
    _, kind, inside = mask_field(lesions, "the tumour mask")
    assert kind.startswith("label map") and int(inside.sum()) == 81


def test_a_mask_of_zeros_and_099_is_binary():
    """A 0/0.99 export was read as probabilities, its surface on the voxel staircase: the
    minimal margin moved by 0.14 mm against the same mask as 0/1 (spheres 6 and 12 mm)."""
    g = Grid((40, 40, 40), (1.0, 1.0, 1.0))
    z, y, x = np.indices(g.shape)
    r = np.sqrt((x - 19.5) ** 2 + (y - 19.5) ** 2 + (z - 19.5) ** 2)
    t, zone = (r <= 6).astype(np.float32), (r <= 12).astype(np.float32)
    ref = confirm_margin(Volume(t, g), Volume(zone, g), margin_mm=5.0)
    soft = confirm_margin(Volume(0.99 * t, g), Volume(0.99 * zone, g), margin_mm=5.0)
    assert soft.document["tumour_mask"] == "binary" == soft.document["zone_mask"]
    assert soft.result.minimal_margin_mm == ref.result.minimal_margin_mm
    # a real probability map (a linear ramp across the edge) is still read as one
    ramp = np.clip(6.5 - r, 0.0, 1.0).astype(np.float32)
    f, kind, _ = mask_field(ramp, "the map")
    assert kind == PROBABILITIES and np.array_equal(f, ramp)


def test_a_one_voxel_hole_in_the_zone_at_the_tumour_is_not_smoothed_away():
    """A tumour voxel outside the zone means tumour left untreated: the minimal margin
    cannot be positive (definition of the MAM), even when the hole is smaller than the
    blur the surfaces are drawn with (found on a plan: 98.8 % coverage, MAM +6.9 mm)."""
    import numpy as np

    from ioplan.assessment import measure_margin
    from ioplan.imaging import Grid, Volume

    g = Grid((40, 40, 40), (1.0, 1.0, 1.0), (-19.5, -19.5, -19.5))
    z, y, x = np.indices(g.shape) - 19.5
    r = np.sqrt(x * x + y * y + z * z)
    tumour = (r <= 8).astype(np.uint8)
    zone = (r <= 15).astype(np.uint8)
    full = measure_margin(Volume(tumour, g), Volume(zone, g), margin_mm=5)
    assert full.minimal_margin_mm > 5  # 7 mm analytic, sub-voxel method within 0.5 mm
    edge = tuple(np.argwhere((tumour == 1) & (r > 7.2))[0])  # a voxel on the tumour's rim
    zone[edge] = 0
    holed = measure_margin(Volume(tumour, g), Volume(zone, g), margin_mm=5)
    assert holed.coverage_percent < 100
    assert holed.minimal_margin_mm <= -0.5  # its centre is half a voxel from ablated tissue
    assert not holed.complete_ablation and not holed.technical_success
    assert any("holes of the zone" in n for n in holed.notes)


@pytest.mark.parametrize("slices", [12, 2])
def test_masks_cut_by_the_image_edge_keep_their_margin(slices):
    """Concentric balls (10 and 15 mm) centred on the image's lower z edge, and in a
    2-slice image: the edge cut both masks, and the cut faces counted as tumour surface
    with a negative margin (-0.53 and -0.20 mm, 14.5 % and 98.8 % of the surface below 0
    mm, while 100 % of the tumour was covered). The true margin is 5 mm everywhere inside
    the image; 0.45 mm is the 1 mm-voxel bound of the sub-voxel method on balls."""
    from ioplan.assessment import measure_margin

    g = Grid((slices, 60, 60), (1.0, 1.0, 1.0), (-29.5, -29.5, 0.0))
    z, y, x = np.indices(g.shape).astype(float)
    r = np.sqrt((x - 29.5) ** 2 + (y - 29.5) ** 2 + z**2)  # centre on the first slice
    res = measure_margin(Volume((r <= 10).astype(np.uint8), g),
                         Volume((r <= 15).astype(np.uint8), g), margin_mm=5.0)  # fmt: skip
    assert abs(res.minimal_margin_mm - 5.0) <= 0.45
    assert res.surface_fraction["lt0"] == 0.0 and res.coverage_percent == 100.0
    assert any("image's edge" in n for n in res.notes)
    # the closest point lies inside the image (z >= 0 mm, within half a voxel)
    assert res.closest_point_mm[2] >= -0.5


def test_a_tumour_a_voxel_across_keeps_its_surface():
    """A one-voxel tumour at 4 mm (a 14 mm lung tumour planned at 4 mm) lost its 0.5 level
    to the sub-voxel blur: "the mask has no surface". Its voxel surface is used instead:
    the zone's faces lie 3 voxels (12 mm) beyond the tumour's, within half a voxel."""
    from ioplan.assessment import measure_margin

    g = Grid((20, 20, 20), (4.0, 4.0, 4.0))
    t = np.zeros(g.shape, np.uint8)
    t[10, 10, 10] = 1
    z = np.zeros(g.shape, np.uint8)
    z[7:14, 7:14, 7:14] = 1
    res = measure_margin(Volume(t, g), Volume(z, g))
    assert abs(res.minimal_margin_mm - 12.0) <= 2.0
    assert any("few voxels across" in n for n in res.notes)
