"""Drainage plans on the phantom (issue 22), checked independently of the planner.

- path safety: a ray march of our own over the label map (0.25 mm steps) and distances
  from scipy's EDT of our own forbidden masks;
- catheter size: the rule recomputed here from drainage.toml's table (sources there) and
  a diameter measured here by brute force;
- dependent tip: recounted over the collection's voxels;
- HU-grown region vs the label: overlap within one voxel (tolerance justified below).
"""

from __future__ import annotations

import tomllib
from importlib import resources

import numpy as np
import pytest
from scipy import ndimage

from ioplan.anatomy import Case, Label, PhantomConfig, generate_phantom
from ioplan.errors import InputError
from ioplan.planning import DrainageConfig, plan_drainage

SP = 3.0
RULES = tomllib.loads(resources.files("ioplan.planning").joinpath("data/drainage.toml").read_text())
#: What a drain must never touch (labels) and keep the safety distance from.
NEVER = (Label.LUNG, Label.BOWEL_WALL, Label.BOWEL_CONTENT, Label.STOMACH, Label.RIB,
         Label.VERTEBRA, Label.GALLBLADDER, Label.AORTA, Label.IVC, Label.HEART,
         Label.SPINAL_CANAL, Label.KIDNEY)  # fmt: skip


def _case(site, content="abscess", size=60.0):
    ph = generate_phantom(
        PhantomConfig(
            spacing_mm=SP, collection_mm=size, collection_site=site, collection_content=content
        )
    )
    return ph, Case.from_phantom(ph)


@pytest.fixture(scope="module")
def peri():
    ph, case = _case("perihepatic")
    return ph, case, plan_drainage(case, DrainageConfig(collection_label="fluid_collection"))


@pytest.fixture(scope="module")
def pleural():
    ph, case = _case("pleural", "effusion")
    return ph, case, plan_drainage(case, DrainageConfig(collection_label="fluid_collection"))


def _march(case, entry, target, step=0.25):
    g = case.labels.grid
    n = int(np.ceil(np.linalg.norm(np.subtract(target, entry)) / step)) + 1
    pts = np.asarray(entry) + np.linspace(0, 1, n)[:, None] * np.subtract(target, entry)
    idx = np.clip(np.rint(g.lps_to_index(pts)).astype(int), 0, np.asarray(g.shape) - 1)
    return pts, idx


@pytest.mark.parametrize("which", ["peri", "pleural"])
def test_path_never_meets_lung_bowel_bone_or_great_vessels(which, request):
    _ph, case, plan = request.getfixturevalue(which)
    lab = np.asarray(case.labels.array)
    _, idx = _march(case, plan.entry_mm, plan.target_mm)
    on_path = lab[tuple(idx.T)]
    assert not np.isin(on_path, [int(v) for v in NEVER]).any()
    # distance from our own EDT of the forbidden union, on the way to the collection (inside
    # it the catheter lies in the fluid its wall holds; the lung counts all the way): the
    # planner keeps 5 mm measured at the nearest voxel centre, so the true distance may be
    # short by half a voxel diagonal
    forbidden = np.isin(lab, [int(v) for v in NEVER])
    dist = ndimage.distance_transform_edt(~forbidden, sampling=case.labels.grid.spacing_mm)
    outside = ~plan.mask[tuple(idx.T)]
    tol = 0.5 * np.sqrt(3) * SP
    assert dist[tuple(idx[outside].T)].min() >= 5.0 - tol
    lung = ndimage.distance_transform_edt(lab != Label.LUNG, sampling=case.labels.grid.spacing_mm)
    assert lung[tuple(idx.T)].min() >= 5.0 - tol
    # and the planner's own record of it agrees with ours within that tolerance
    assert min(plan.avoided.values()) >= 5.0 - 1e-9
    # the path starts at the skin (entry in the body, one step further out is air) and
    # ends inside the collection
    g = case.labels.grid
    d = np.subtract(plan.target_mm, plan.entry_mm)
    d /= np.linalg.norm(d)
    outside = np.asarray(plan.entry_mm) - d * SP
    if g.contains_lps(outside):
        assert lab[tuple(np.rint(g.lps_to_index(outside)).astype(int))] == Label.BACKGROUND
    assert plan.mask[tuple(idx[-1])]
    assert plan.path_length_mm == pytest.approx(np.linalg.norm(d * 0 + np.subtract(
        plan.target_mm, plan.entry_mm)), abs=1e-6)  # fmt: skip


def test_perihepatic_path_is_not_transpleural(peri):
    """Recount: no path sample lies in the costodiaphragmatic recess, i.e. below lung in the
    same column by <= 40 mm and within 40 mm of the skin (the rule's numbers, gray)."""
    _ph, case, plan = peri
    lab = np.asarray(case.labels.array)
    g = case.labels.grid
    zc = g.axis_coordinates_mm()[0]
    body = lab != Label.BACKGROUND
    skin = ndimage.distance_transform_edt(body, sampling=g.spacing_mm)
    _, idx = _march(case, plan.entry_mm, plan.target_mm)
    for k, j, i in {tuple(v) for v in idx.tolist()}:
        column = np.flatnonzero(lab[:, j, i] == Label.LUNG)
        if column.size == 0 or skin[k, j, i] > 40.0:
            continue
        gap = zc[column.min()] - zc[k]
        assert not 0 < gap <= 40.0, (k, j, i, gap)
    assert not plan.collection["pleural"]


def test_pleural_effusion_is_recognised_and_its_path_stays_off_the_lung(pleural):
    plan = pleural[2]
    assert plan.collection["pleural"]
    assert plan.avoided["lung/pleura"] >= 5.0 - 0.5 * np.sqrt(3) * SP
    assert plan.collection["content"] == "effusion"


def _feret_brute(mask, g):
    shell = mask & ~ndimage.binary_erosion(mask)
    pts = g.index_to_lps(np.argwhere(shell).astype(float))
    best = 0.0
    for k in range(0, len(pts), 64):  # all pairs, in blocks
        d = np.linalg.norm(pts[k : k + 64, None] - pts[None], axis=-1)
        best = max(best, float(d.max()))
    return best + float(np.mean(g.spacing_mm))


@pytest.mark.parametrize("which", ["peri", "pleural"])
def test_catheter_size_follows_the_rule_table(which, request):
    _ph, case, plan = request.getfixturevalue(which)
    g = case.labels.grid
    mask = np.asarray(case.labels.array) == Label.FLUID_COLLECTION
    diameter = _feret_brute(mask, g)
    assert plan.collection["size_mm"] == pytest.approx(diameter, abs=0.1)
    assert plan.collection["volume_ml"] == pytest.approx(mask.sum() * SP**3 / 1000, abs=0.01)
    cat = RULES["catheter"]
    rows = cat["viscous_rules"] if plan.collection["content"] in cat["viscous"] else cat[
        "thin_rules"]  # fmt: skip
    expected = next(fr for bound, fr in rows if diameter <= bound)
    assert plan.catheter_fr == expected
    assert 8 <= plan.catheter_fr <= 14
    # technique: the trocar rule recomputed from its three thresholds
    t = RULES["technique"]
    trocar = (plan.depth_mm <= t["trocar_max_depth_mm"] and diameter >= t["trocar_min_diameter_mm"]
              and plan.trajectory.clearance_mm >= t["trocar_min_clearance_mm"])  # fmt: skip
    assert plan.technique == ("trocar" if trocar else "seldinger")


def test_catheter_rule_spans_the_range():
    from ioplan.planning import catheter_fr

    # thin fluid small -> 8 Fr; viscous large -> 14 Fr (the table's ends, 8-14 Fr)
    assert catheter_fr("ascites", 20.0) == RULES["catheter"]["thin_rules"][0][1] == 8
    assert catheter_fr("abscess", 120.0) == RULES["catheter"]["viscous_rules"][-1][1] == 14
    assert catheter_fr("abscess", 60.0) > catheter_fr("biloma", 60.0)


def test_tip_sits_in_the_dependent_part(peri):
    """Recount over the collection's voxels: few lie more posterior (+y, down when supine)
    than the tip. The tip is >= 8 mm inside the wall, so the part behind it is the cap of
    an about 60 mm collection cut 8 mm in: ~5 % of the volume for a sphere (h^2 (3R - h) /
    4R^3 with h = 8, R = 30); 10 % allows the phantom's 10 % lobulation."""
    _ph, case, plan = peri
    g = case.labels.grid
    mask = np.asarray(case.labels.array) == Label.FLUID_COLLECTION
    ys = g.index_to_lps(np.argwhere(mask).astype(float))[:, 1]
    frac = float(np.mean(ys > plan.target_mm[1]))
    assert frac <= 0.10
    assert plan.dependent["volume_fraction_more_dependent"] == pytest.approx(frac, abs=1e-3)
    # and the tip is at least 8 mm inside the wall (minus half a voxel diagonal: EDT at
    # the voxel centre)
    inner = ndimage.distance_transform_edt(mask, sampling=g.spacing_mm)
    tip = tuple(np.rint(g.lps_to_index(plan.target_mm)).astype(int))
    assert inner[tip] >= 8.0 - 0.5 * np.sqrt(3) * SP


@pytest.mark.parametrize(("site", "content"), [("perihepatic", "abscess"),
                                               ("pleural", "effusion")])  # fmt: skip
def test_hu_grown_region_matches_the_label(site, content):
    """Tolerance: the 3x3x3 median moves a smooth edge by at most one voxel and image noise
    (12 HU) flips isolated voxels, so: the region lies inside the label dilated by one voxel
    and covers the label eroded by one voxel, each up to 1 % of the label's voxels; Dice
    >= 0.85 (at 3 mm a one-voxel shell is ~30 % of a 60 mm collection's voxels)."""
    ph, case = _case(site, content)
    label = np.asarray(case.labels.array) == Label.FLUID_COLLECTION
    plan = plan_drainage(case, DrainageConfig(seed_mm=ph.extras.collection_centre_mm))
    grown = plan.mask
    assert plan.collection["source"] == "hu"
    n = label.sum()
    assert (grown & ~ndimage.binary_dilation(label)).sum() <= 0.01 * n
    assert (ndimage.binary_erosion(label) & ~grown).sum() <= 0.01 * n
    assert 2 * (grown & label).sum() / (grown.sum() + n) >= 0.85


def test_bad_requests_are_one_line_input_errors(peri):
    _ph, case, _ = peri
    with pytest.raises(InputError, match="unknown label name"):
        plan_drainage(case, DrainageConfig(collection_label="abscess_cavity"))
    with pytest.raises(InputError, match="no such voxel"):  # a liver phantom: no kidney
        plan_drainage(case, DrainageConfig(collection_label="collecting_system"))
    with pytest.raises(InputError, match="not a fluid-filled structure"):
        plan_drainage(case, DrainageConfig(collection_label="pancreas"))
    with pytest.raises(InputError, match="exactly one"):
        plan_drainage(case, DrainageConfig(collection_label="fluid_collection", seed_mm=(0, 0, 0)))
    # a seed in subcutaneous fat (-100 HU): no fluid there
    lab = np.asarray(case.labels.array)
    fat = np.argwhere(ndimage.binary_erosion(lab == Label.FAT, iterations=2))[0]
    seed = tuple(case.labels.grid.index_to_lps(fat.astype(float)))
    with pytest.raises(InputError, match="no fluid collection"):
        plan_drainage(case, DrainageConfig(seed_mm=seed))


def test_cholecystostomy_and_nephrostomy_drain_the_organ_they_enter():
    """The gallbladder drained was listed under "avoided" and its bile called "ascites"; a
    nephrostomy was refused at the default safety distance, since any path to the
    collecting system crosses the kidney (which a nephrostomy must: Dagli & Ramchandani
    2011). The path's labels are recounted along it."""
    _ph, case = _case("perihepatic")
    gb = plan_drainage(case, DrainageConfig(collection_label="gallbladder"))
    assert gb.collection["content"] == "bile" and "gallbladder" not in gb.avoided
    kid = Case.from_phantom(generate_phantom(PhantomConfig(spacing_mm=SP, organ="kidney")))
    nep = plan_drainage(kid, DrainageConfig(collection_label="collecting_system"))
    assert nep.collection["content"] == "urine"
    assert "kidney" not in nep.avoided and "ureter" in nep.avoided
    assert nep.avoided["ureter"] >= 5.0 and nep.avoided["large vessel"] >= 5.0
    _, idx = _march(kid, nep.entry_mm, nep.target_mm)
    crossed = set(np.asarray(kid.labels.array)[tuple(idx.T)].tolist())
    assert int(Label.COLLECTING_SYSTEM) in crossed  # the tip is in the collecting system
    assert {int(Label.KIDNEY), int(Label.KIDNEY_MEDULLA)} & crossed  # through parenchyma


def test_a_leaking_region_is_refused():
    # the pelvic ascites touches bowel fluid of the same attenuation: the 0-30 HU region
    # runs to the image's caudal edge
    ph, case = _case("pelvic", "ascites")
    with pytest.raises(InputError, match="leaks"):
        plan_drainage(case, DrainageConfig(seed_mm=ph.extras.collection_centre_mm))
