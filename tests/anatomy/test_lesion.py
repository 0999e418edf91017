"""add_lesion: a virtual tumour written into a copy of a case (the 4 mm phantom here).

References are computed here with plain numpy from the grid's affine (voxel centre =
origin + direction @ (spacing * index)), not with the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from ioplan.anatomy import Case, Label, add_lesion
from ioplan.errors import InputError
from ioplan.imaging import Grid

# Deep in the right lobe of the seed-3 4 mm phantom: more than 24 mm of liver (no vessel)
# around it and more than 50 mm from the phantom's own tumour.
DEEP = np.array([-60.0, -32.0, -17.0])


def _centres_lps(grid: Grid) -> np.ndarray:
    """LPS mm of every voxel centre, shape grid.shape + (3,), from the affine (independent)."""
    idx = np.stack(np.meshgrid(*(np.arange(n) for n in grid.shape), indexing="ij"), axis=-1)
    m = np.asarray(grid.direction, float) * np.asarray(grid.spacing_mm)[None, :]
    return idx @ m.T + np.asarray(grid.origin_mm)


def _new_tumour(case: Case, new: Case) -> np.ndarray:
    return (new.labels.array == Label.TUMOR) & (case.labels.array != Label.TUMOR)


def test_sphere_voxels_are_the_analytic_sphere_in_the_liver(small_case):
    new = add_lesion(small_case, DEEP, 30.0, seed=1)
    pts = _centres_lps(small_case.labels.grid)
    in_sphere = np.linalg.norm(pts - DEEP, axis=-1) <= 15.0
    liver = small_case.labels.array == Label.LIVER
    assert in_sphere[liver].sum() == in_sphere.sum()  # the test's premise: all liver there
    assert np.array_equal(_new_tumour(small_case, new), in_sphere & liver)
    # nothing else changed in the labels
    changed = new.labels.array != small_case.labels.array
    assert np.array_equal(changed, in_sphere)


def test_sphere_volume_matches_the_analytic_volume(small_case):
    """Voxel-count volume of a 30 mm sphere at 4 mm voxels vs 4/3 pi r^3.

    Counting voxel centres inside a sphere of radius 3.75 voxels is exact only on
    average: over a uniformly random sub-voxel offset the expected count is V / h^3
    exactly; a Monte Carlo of 2000 offsets (numpy, once) gave a spread of 1.2 % (one
    sigma) and a worst case of 5.8 %. So each lesion is held to 7 % and the mean of 8
    lesions at random offsets to 1.5 % (more than 3 sigma of a mean of 8, 0.41 %).
    """
    rng = np.random.default_rng(7)
    voxel_ml = small_case.labels.grid.voxel_volume_ml
    exact_ml = 4.0 / 3.0 * math.pi * 15.0**3 / 1000.0
    vols = []
    for _ in range(8):
        c = DEEP + rng.uniform(-2.0, 2.0, 3)  # +- half a voxel
        new = add_lesion(small_case, c, 30.0, seed=1)
        vols.append(_new_tumour(small_case, new).sum() * voxel_ml)
        assert new.tumors[-1]["volume_ml"] == pytest.approx(vols[-1], abs=1e-3)
    rel = np.asarray(vols) / exact_ml - 1.0
    assert np.all(np.abs(rel) < 0.07), rel
    assert abs(rel.mean()) < 0.015, rel.mean()


def test_contrast_is_added_with_a_one_voxel_edge(small_case):
    old = small_case.image.array.astype(np.float64)
    new_case = add_lesion(small_case, DEEP, 30.0, hu_contrast=-40.0, seed=2)
    new = new_case.image.array.astype(np.float64)
    assert new_case.image.array.dtype == small_case.image.array.dtype
    tumour = _new_tumour(small_case, new_case)
    r = np.linalg.norm(_centres_lps(small_case.image.grid) - DEEP, axis=-1)
    liver = small_case.labels.array == Label.LIVER
    interior = r <= 15.0 - 4.0  # more than one voxel inside: fully filled
    shell = liver & (r >= 15.0 + 8.0) & (r <= 15.0 + 16.0)  # two to four voxels outside
    before = old[interior].mean() - old[shell].mean()
    after = new[interior].mean() - new[shell].mean()
    assert after - before == pytest.approx(-40.0, abs=1e-9)
    # the texture is kept: the offset is the same at every interior voxel
    assert np.all(new[interior] - old[interior] == -40.0)
    # the edge: voxels within half a voxel of the surface change by part of the offset
    diff = new - old
    edge = (np.abs(r - 15.0) < 1.0) & liver
    assert np.all((diff[edge] <= 0) & (diff[edge] >= -40)) and np.any(
        (diff[edge] < 0) & (diff[edge] > -40)
    )
    # beyond one voxel outside the surface and outside the liver nothing changes
    assert np.all(diff[(r > 15.0 + 4.0 * math.sqrt(3))] == 0)
    assert np.all(diff[~liver & ~tumour] == 0)
    rec = new_case.tumors[-1]
    assert (rec["contrast"], rec["contrast_unit"], rec["source"]) == (-40.0, "HU", "virtual")


def test_default_contrast_is_hypodense(small_case):
    new = add_lesion(small_case, DEEP, 20.0)
    interior = np.linalg.norm(_centres_lps(small_case.image.grid) - DEEP, axis=-1) <= 6.0
    diff = new.image.array.astype(float) - small_case.image.array.astype(float)
    assert np.all(diff[interior] == -30.0)


def test_same_seed_same_bytes_other_seed_other_shape(small_case):
    a = add_lesion(small_case, DEEP, 30.0, irregularity=0.3, seed=11)
    b = add_lesion(small_case, DEEP, 30.0, irregularity=0.3, seed=11)
    c = add_lesion(small_case, DEEP, 30.0, irregularity=0.3, seed=12)
    assert a.image.array.tobytes() == b.image.array.tobytes()
    assert a.labels.array.tobytes() == b.labels.array.tobytes()
    assert a.tumors == b.tumors
    assert not np.array_equal(a.labels.array, c.labels.array)
    # the input case is not changed
    assert not np.array_equal(a.labels.array, small_case.labels.array)


def test_irregular_lesion_lies_between_its_extreme_radii(small_case):
    irr = 0.4
    new = add_lesion(small_case, DEEP, 30.0, irregularity=irr, seed=5)
    r = np.linalg.norm(_centres_lps(small_case.labels.grid) - DEEP, axis=-1)
    tum = _new_tumour(small_case, new)
    liver = small_case.labels.array == Label.LIVER
    assert np.all(r[tum] <= 15.0 * (1 + irr))
    assert np.all(tum[(r <= 15.0 * (1 - irr)) & liver])
    assert new.tumors[-1]["irregularity"] == irr


def _flipped_ras(case: Case) -> tuple[Case, object]:
    """The case as a RAS NIfTI holds it: y and x array axes reversed, same patient."""
    g = case.image.grid
    d = np.asarray(g.direction, float)
    d[:, 1:] *= -1.0
    last = np.array([0, g.shape[1] - 1, g.shape[2] - 1])  # the old voxel the new (0, 0, 0) is
    origin = np.asarray(g.origin_mm) + np.asarray(g.direction, float) @ (
        np.asarray(g.spacing_mm) * last
    )
    g2 = Grid(g.shape, g.spacing_mm, tuple(origin), tuple(map(tuple, d)))

    def flip(a):
        return np.ascontiguousarray(a[:, ::-1, ::-1])

    out = Case(
        case.image.__class__(flip(case.image.array), g2),
        case.labels.__class__(flip(case.labels.array), g2),
        tumors=case.tumors,
    )
    return out, flip


def _permuted(case: Case, perm=(2, 0, 1)) -> tuple[Case, object]:
    g = case.image.grid
    d = np.asarray(g.direction, float)[:, list(perm)]
    g2 = Grid(
        tuple(g.shape[p] for p in perm),
        tuple(g.spacing_mm[p] for p in perm),
        g.origin_mm,
        tuple(map(tuple, d)),
    )
    out = Case(
        case.image.__class__(np.transpose(case.image.array, perm), g2),
        case.labels.__class__(np.transpose(case.labels.array, perm), g2),
        tumors=case.tumors,
    )
    return out, lambda a: np.ascontiguousarray(np.transpose(a, perm))


@pytest.mark.parametrize("make", [_flipped_ras, _permuted], ids=["ras-flipped", "permuted"])
def test_reoriented_case_gets_the_same_lesion(small_case, make):
    other, same_layout = make(small_case)
    # premise: the copy holds the same patient (voxel centres map to the same LPS points)
    pts = _centres_lps(small_case.image.grid)
    moved = np.stack([same_layout(pts[..., k]) for k in range(3)], axis=-1)
    assert np.allclose(_centres_lps(other.image.grid), moved)
    kw = dict(irregularity=0.3, hu_contrast=-25.0, seed=9)
    ref = add_lesion(small_case, DEEP, 28.0, **kw)
    got = add_lesion(other, DEEP, 28.0, **kw)
    assert np.array_equal(got.labels.array, same_layout(ref.labels.array))
    assert np.array_equal(got.image.array, same_layout(ref.image.array))


def _refused(case, *args, **kw) -> str:
    with pytest.raises(InputError) as info:
        add_lesion(case, *args, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_centre_outside_an_ablatable_organ(small_case):
    lab = small_case.labels.array
    g = small_case.labels.grid
    fat = g.index_to_lps(np.argwhere(lab == Label.FAT)[len(np.argwhere(lab == Label.FAT)) // 2])
    assert "lies in fat, not in an organ that ablation treats (liver, kidney, lung)" in _refused(
        small_case, fat, 10.0
    )
    spleen = g.index_to_lps(np.argwhere(lab == Label.SPLEEN)[0])
    assert "lies in spleen" in _refused(small_case, spleen, 10.0)
    assert "outside the image" in _refused(small_case, (0.0, 0.0, 900.0), 10.0)
    tumour = small_case.tumors[0]["centre_mm"]
    assert "in an existing tumour" in _refused(small_case, tumour, 10.0)


def test_kidney_lesion_is_allowed(small_case):
    lab = small_case.labels.array
    g = small_case.labels.grid
    kidney = lab == Label.KIDNEY
    depth = ndimage.distance_transform_edt(kidney)
    c = g.index_to_lps(np.unravel_index(np.argmax(depth), lab.shape))
    new = add_lesion(small_case, c, 12.0)
    assert new.tumors[-1]["organ"] == "kidney"
    assert np.all(small_case.labels.array[_new_tumour(small_case, new)] == Label.KIDNEY)


def test_lesion_leaving_the_image(small_case):
    lab = small_case.labels.array
    g = small_case.labels.grid
    liver = np.argwhere(lab == Label.LIVER)
    low = liver[np.argmin(liver[:, 0])]  # the liver's lowest voxel
    room = (low[0] + 0.5) * g.spacing_mm[0]  # mm to the image's lower edge
    d = min(120.0, 2 * room + 8.0)
    msg = _refused(small_case, g.index_to_lps(low), d)
    assert "would leave the image" in msg and f"{room:.1f} mm from the edge" in msg


def test_lesion_overlapping_a_tumour(small_case):
    t = small_case.tumors[0]
    c = np.asarray(t["centre_mm"]) + np.array([0.0, 0.0, -24.0])
    assert (
        small_case.labels.array[tuple(np.rint(small_case.labels.grid.lps_to_index(c)).astype(int))]
        == Label.LIVER
    )
    assert "touch or overlap an existing tumour" in _refused(small_case, c, 20.0)


def test_lesion_mostly_outside_the_liver(small_case):
    lab = small_case.labels.array
    g = small_case.labels.grid
    liver = lab == Label.LIVER
    edge = np.argwhere(liver & ndimage.binary_dilation(lab == Label.FAT))
    c = g.index_to_lps(edge[len(edge) // 2])
    assert "lies in the liver (at least 50 % must)" in _refused(small_case, c, 60.0)


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"diameter_mm": 2.0}, "--diameter-mm must be 3-120 mm, got 2"),
        ({"diameter_mm": 121.0}, "--diameter-mm must be 3-120 mm"),
        ({"diameter_mm": float("nan")}, "--diameter-mm must be finite"),
        ({"irregularity": 0.6}, "--irregularity must be 0-0.5, got 0.6"),
        ({"irregularity": -0.1}, "--irregularity must be 0-0.5"),
        ({"seed": -1}, "--seed must be an integer 0-4294967295, got -1"),
        ({"seed": 1.5}, "--seed must be an integer"),
        ({"hu_contrast": 900.0}, "--hu-contrast must be -500 to 500 HU"),
        ({"histology": "sarcoma"}, "--histology must be one of"),
        ({"centre_mm": (1.0, 2.0)}, "--centre-mm must be three finite numbers"),
    ],
)
def test_bad_numbers(small_case, kw, fragment):
    args = {"centre_mm": DEEP, "diameter_mm": 20.0} | kw
    centre, diameter = args.pop("centre_mm"), args.pop("diameter_mm")
    assert fragment in _refused(small_case, centre, diameter, **args)


def test_mr_contrast_is_relative(small_case):
    import dataclasses

    mr = dataclasses.replace(
        small_case, modality="MR", image=small_case.image.with_array(
            small_case.image.array.astype(np.float32) + 500.0
        )
    )  # fmt: skip
    new = add_lesion(mr, DEEP, 30.0, hu_contrast=-20.0)
    r = np.linalg.norm(_centres_lps(mr.image.grid) - DEEP, axis=-1)
    liver = mr.labels.array == Label.LIVER
    ring = liver & (r > 15.0) & (r <= 25.0)  # the organ within 10 mm of the lesion
    expected = -0.20 * np.median(mr.image.array[ring])
    diff = new.image.array - mr.image.array
    assert np.allclose(diff[r <= 11.0], expected, rtol=1e-5)
    assert new.tumors[-1]["contrast_unit"] == "percent"
    assert "% of the local MR signal" in _refused(mr, DEEP, 20.0, hu_contrast=-95.0)


def test_labelled_tumour_without_a_record_gets_one(small_case):
    import dataclasses

    bare = dataclasses.replace(small_case, tumors=())
    new = add_lesion(bare, DEEP, 20.0)
    assert [t["source"] for t in new.tumors] == ["labels", "virtual"]
    first = np.asarray(new.tumors[0]["centre_mm"])
    idx = tuple(np.rint(small_case.labels.grid.lps_to_index(first)).astype(int))
    assert small_case.labels.array[idx] == Label.TUMOR
