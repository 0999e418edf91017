"""Phantoms beyond the liver (issue 21): lung, kidney and bone.

Each phantom is checked against textbook topography (LPS: +x patient left, +y posterior,
+z superior) with independent recounts on its label map: the structures a plan must
respect are there, nested where they belong, the tumour has the requested size and lies
in its organ, ``infer_organ`` finds that organ, the seed fixes every voxel, and a
straight needle path exists where the site promises one. Grids of 2-3 mm keep it fast.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from scipy import ndimage

from ioplan.anatomy import Label, PhantomConfig, TumorSpec, generate_phantom, infer_organ
from ioplan.errors import InputError

LUNG_LABELS = (Label.LUNG, Label.FISSURE, Label.BRONCHUS, Label.PULMONARY_VESSEL)
SPINE_LABELS = (Label.VERTEBRA, Label.SPINAL_CANAL, Label.SPINAL_CORD, Label.NERVE_ROOT)


def _phantom(organ, site=None, side=None, diameter=24.0, spacing=3.0, seed=1, noise=0.0):
    cfg = PhantomConfig(
        spacing_mm=spacing,
        seed=seed,
        organ=organ,
        site=site,
        side=side,
        noise_hu=noise,
        tumors=(TumorSpec(diameter, irregularity=0.0, histology="other_metastasis"),),
    )
    return generate_phantom(cfg)


@pytest.fixture(scope="module")
def lung_right():
    return _phantom("lung", "peripheral", "right", spacing=2.5)


@pytest.fixture(scope="module")
def lung_left_central():
    return _phantom("lung", "central", "left", spacing=3.0)


def _extent_mm(mask, spacing):
    """Extent of a mask along z, y, x (mm): voxel count between its extremes plus one."""
    idx = np.argwhere(mask)
    return (idx.max(axis=0) - idx.min(axis=0) + 1) * np.asarray(spacing)


def _touching(labels, mask):
    """Labels of the voxels face-adjacent to ``mask`` (outside it)."""
    ring = ndimage.binary_dilation(mask) & ~mask
    return set(np.unique(labels[ring]).tolist())


def _centroid(ph, label):
    idx = np.argwhere(ph.labels.array == label)
    return ph.labels.grid.index_to_lps(idx.mean(axis=0))


# -- shared checks -------------------------------------------------------------
def _check_tumour_size(ph, diameter):
    # a sphere of diameter D covers between D/s - 1 and D/s + 1 voxel centres along an
    # axis: its extent is within one voxel of D
    sp = ph.labels.grid.spacing_mm
    ext = _extent_mm(ph.labels.array == Label.TUMOR, sp)
    assert np.all(np.abs(ext - diameter) <= np.asarray(sp) + 1e-6), ext


def _check_cord_in_canal_in_vertebra(ph, spine_levels):
    lab = ph.labels.array
    cord = lab == Label.SPINAL_CORD
    assert cord.any()
    assert _touching(lab, cord) <= {Label.SPINAL_CANAL, Label.SPINAL_CORD}
    zs = ph.labels.grid.axis_coordinates_mm()[0]
    for z in spine_levels:  # at each vertebra's mid-height the canal is ringed by bone
        sl = lab[int(np.argmin(np.abs(zs - z)))]
        canal = np.isin(sl, [Label.SPINAL_CANAL, Label.SPINAL_CORD])
        assert canal.any()
        ring = ndimage.binary_dilation(canal) & ~canal
        assert set(np.unique(sl[ring]).tolist()) == {Label.VERTEBRA}, z


def _levels(ph):
    from ioplan.anatomy._phantom_organs import Spine

    zs = ph.labels.grid.axis_coordinates_mm()[0]
    return Spine().levels_mm(zs.min() + 5, zs.max() - 5)


def _rays(n=600, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _march(ph, start, direction, step_mm=0.5):
    """Labels met from ``start`` along ``direction`` until the air outside the body."""
    g = ph.labels.grid
    lab = ph.labels.array
    out = []
    for k in range(1, 1200):
        i = np.rint(g.lps_to_index(start + direction * k * step_mm)).astype(int)
        if np.any(i < 0) or np.any(i >= lab.shape):
            return None  # left the field of view inside the body
        v = int(lab[tuple(i)])
        if v == Label.BACKGROUND:
            return out
        out.append(v)
    return None


# -- lung ----------------------------------------------------------------------
def test_lung_phantom_has_every_structure(lung_right):
    present = set(np.unique(lung_right.labels.array).tolist())
    need = {
        Label.SKIN, Label.FAT, Label.MUSCLE, Label.RIB, Label.VERTEBRA, Label.SPINAL_CANAL,
        Label.SPINAL_CORD, Label.NERVE_ROOT, Label.LUNG, Label.FISSURE, Label.BRONCHUS,
        Label.PULMONARY_VESSEL, Label.HEART, Label.AORTA, Label.DIAPHRAGM, Label.TUMOR,
    }  # fmt: skip
    assert need - present == set()
    # no liver-phantom vessel tree in the chest
    assert not present & {Label.PORTAL_VEIN, Label.HEPATIC_VEIN, Label.KIDNEY}


def test_lung_topography(lung_right):
    ph = lung_right
    lab = ph.labels.array
    heart, spine = _centroid(ph, Label.HEART), _centroid(ph, Label.VERTEBRA)
    lung_idx = np.argwhere(lab == Label.LUNG)
    lung_x = ph.labels.grid.index_to_lps(lung_idx)[:, 0]
    assert (lung_x < -60).any() and (lung_x > 60).any()  # two lungs
    assert heart[1] < spine[1]  # heart anterior to the spine
    # adult lungs 4-6 L total capacity; the field of view holds most of them (2.5-6 L)
    ml = np.count_nonzero(np.isin(lab, LUNG_LABELS)) * ph.labels.grid.voxel_volume_ml
    assert 2500 < ml < 6500
    # aerated lung is what the CT shows: below -700 HU on average
    assert np.mean(ph.image.array[lab == Label.LUNG]) < -700
    _check_cord_in_canal_in_vertebra(ph, _levels(ph))


def test_lung_tumour_size_host_and_organ(lung_right, lung_left_central):
    from ioplan.anatomy._phantom_lung import fissure_signed_mm

    for ph, side in ((lung_right, -1), (lung_left_central, 1)):
        lab = ph.labels.array
        _check_tumour_size(ph, 24.0)
        tumour = lab == Label.TUMOR
        assert _touching(lab, tumour) <= set(LUNG_LABELS)  # wholly inside the lung
        c = ph.tumors[0].centre_mm
        assert np.sign(c[0]) == side
        assert infer_organ(lab, ph.labels.grid.spacing_mm) == "lung"
        # in one lobe: all its voxels on one side of the oblique fissure's plane
        pts = ph.labels.grid.index_to_lps(np.argwhere(tumour))
        s = fissure_signed_mm("right" if side < 0 else "left", *pts.T)
        assert np.all(s > 0) or np.all(s < 0)
    # peripheral: nearer the costal pleura than the central tumour is
    d_per = np.abs(lung_right.tumors[0].centre_mm[0])
    d_cen = np.abs(lung_left_central.tumors[0].centre_mm[0])
    assert d_per > d_cen + 30


def test_fissure_splits_the_lung(lung_right):
    """Without the fissure's voxels, the lobes are separate: with them, one lung."""
    from ioplan.anatomy._phantom_lung import fissure_signed_mm

    ph = lung_right
    lab = ph.labels.array
    g = ph.labels.grid
    full = np.ones((3, 3, 3), bool)  # 26-connectivity: the strictest test of a sheet
    for side in ("right", "left"):
        sx = -1 if side == "right" else 1
        xs = g.axis_coordinates_mm()[2]
        half = (sx * xs > 0)[None, None, :]
        lung = (lab == Label.LUNG) & half
        comp, _ = ndimage.label(lung, structure=full)
        idx = np.argwhere(lung)
        s = fissure_signed_mm(side, *g.index_to_lps(idx).T)
        up, down = idx[np.argmax(s)], idx[np.argmin(s)]
        assert comp[tuple(up)] != comp[tuple(down)], side
        joined, _ = ndimage.label(np.isin(lab, [Label.LUNG, Label.FISSURE]) & half, structure=full)
        assert joined[tuple(up)] == joined[tuple(down)], side


def test_bronchi_narrow_away_from_the_carina(lung_right):
    """Mean local bronchial radius falls with distance from the carina (label recount)."""
    from ioplan.anatomy._phantom_lung import CARINA_MM

    ph = lung_right
    g = ph.labels.grid
    bronchus = ph.labels.array == Label.BRONCHUS
    # local radius: the largest inscribed distance near each voxel
    radius = ndimage.maximum_filter(
        ndimage.distance_transform_edt(bronchus, sampling=g.spacing_mm), size=3
    )
    idx = np.argwhere(bronchus)
    dist = np.linalg.norm(g.index_to_lps(idx) - np.asarray(CARINA_MM), axis=1)
    r = radius[bronchus]
    near, far = r[dist < 30].mean(), r[dist > 80].mean()
    assert (dist > 80).sum() > 20
    assert far < 0.6 * near, (near, far)
    # airway diameters 2-15 mm from the carina on (centrelines; the trachea is 15 mm)
    radii = [s.radius_mm for s in ph.airways]
    assert min(radii) >= 1.0 and max(radii) <= 7.5
    vessel_radii = [s.radius_mm for s in ph.vessels]  # pulmonary vessels 3-20 mm
    assert min(vessel_radii) >= 1.5 and max(vessel_radii) <= 10.0


def test_peripheral_lung_tumour_has_a_one_pleura_path_between_ribs(lung_right):
    """A straight skin-to-tumour path exists that crosses the pleura once and no rib.

    Independent ray march over 600 directions from the tumour's centre: a pleural
    crossing is a step between a lung label and a non-lung label (the tumour aside).
    """
    ph = lung_right
    c = np.asarray(ph.tumors[0].centre_mm)
    blocked = {
        Label.RIB, Label.FISSURE, Label.BRONCHUS, Label.PULMONARY_VESSEL, Label.HEART,
        Label.AORTA, Label.VERTEBRA,
    }  # fmt: skip
    good = 0
    crossings_seen = set()
    for d in _rays():
        path = _march(ph, c, d)
        if path is None:
            continue
        path = [v for v in path if v != Label.TUMOR]
        in_lung = [v in LUNG_LABELS for v in path]
        crossings = sum(a != b for a, b in pairwise(in_lung))
        crossings_seen.add(crossings)
        if crossings == 1 and not blocked & set(path) and path[-1] == Label.SKIN:
            good += 1
    assert good >= 5, crossings_seen
    assert max(crossings_seen) >= 3  # the march does see paths through both pleurae


def test_organ_phantom_is_fixed_by_its_seed(lung_left_central):
    again = _phantom("lung", "central", "left", spacing=3.0)
    np.testing.assert_array_equal(again.labels.array, lung_left_central.labels.array)
    np.testing.assert_array_equal(again.image.array, lung_left_central.image.array)
    other = _phantom("lung", "central", "left", spacing=3.0, seed=2)
    assert not np.array_equal(other.labels.array, lung_left_central.labels.array)
    # the abdomen's seed too (small bowel loops, shape and image noise); noise on
    kidney = [_phantom("kidney", spacing=4.0, seed=s, noise=12.0) for s in (5, 5, 6)]
    np.testing.assert_array_equal(kidney[0].image.array, kidney[1].image.array)
    np.testing.assert_array_equal(kidney[0].labels.array, kidney[1].labels.array)
    assert not np.array_equal(kidney[0].image.array, kidney[2].image.array)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"organ": "brain"}, "unknown organ"),
        ({"organ": "lung", "site": "exophytic"}, "peripheral or central"),
        ({"organ": "kidney", "side": "middle"}, "right or left"),
        ({"site": "central"}, "apply to --organ lung"),
    ],
)
def test_bad_organ_options_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        PhantomConfig(spacing_mm=4.0, **kwargs)


def test_too_large_a_tumour_for_the_site_is_refused():
    with pytest.raises(InputError, match="does not fit"):
        _phantom("lung", "peripheral", "right", diameter=110.0, spacing=4.0)


# -- kidney --------------------------------------------------------------------
@pytest.fixture(scope="module")
def kidney_exophytic():
    return _phantom("kidney", "exophytic", "right", spacing=2.5)


@pytest.fixture(scope="module")
def kidney_central():
    return _phantom("kidney", "central", "left", spacing=2.5)


KIDNEY_NEEDS = {
    Label.KIDNEY, Label.KIDNEY_MEDULLA, Label.COLLECTING_SYSTEM, Label.URETER,
    Label.RENAL_ARTERY, Label.RENAL_VEIN, Label.ADRENAL, Label.BOWEL_WALL, Label.BOWEL_CONTENT,
    Label.MUSCLE, Label.RIB, Label.VERTEBRA, Label.SPINAL_CANAL, Label.SPINAL_CORD,
    Label.NERVE_ROOT, Label.AORTA, Label.IVC, Label.LIVER, Label.SPLEEN, Label.FAT,
    Label.TUMOR,
}  # fmt: skip


def test_kidney_phantom_has_every_structure(kidney_exophytic):
    present = set(np.unique(kidney_exophytic.labels.array).tolist())
    assert KIDNEY_NEEDS - present == set()


def test_kidney_topography(kidney_exophytic):
    from ioplan.anatomy._phantom_abdomen import KIDNEYS, _kidney_parts
    from ioplan.anatomy._shapes import Space

    ph = kidney_exophytic
    lab = ph.labels.array
    sp = Space.of(ph.labels.grid)
    kidney_ml = 0.0
    for k in KIDNEYS:
        box, outline, sinus, _, _ = _kidney_parts(sp, k)
        sub = lab[box]
        # the collecting system lies within the kidney's outline (pelvis in the sinus,
        # calyces into the pyramids)
        cs = sub == Label.COLLECTING_SYSTEM
        assert cs.any() and np.all(outline[cs])
        # ... and mostly in the sinus: the pelvis is the bulk of it
        assert np.count_nonzero(cs & sinus) > 0.5 * np.count_nonzero(cs)
        # the medulla lies deep to the cortex: none of it touches the perirenal fat
        med = sub == Label.KIDNEY_MEDULLA
        assert med.any()
        touching = _touching(sub, med)
        assert Label.BOWEL_WALL not in touching and Label.MUSCLE not in touching
        kidney_ml += np.count_nonzero(np.isin(sub, [Label.KIDNEY, Label.KIDNEY_MEDULLA]))
    # adult kidney 120-200 mL each (e.g. Emamian et al., AJR 1993;160:83: 10-12 cm long)
    kidney_ml *= ph.labels.grid.voxel_volume_ml
    assert 240 < kidney_ml < 420
    right, left = (_centroid_side(ph, Label.KIDNEY, s) for s in (-1, 1))
    assert right[2] < left[2]  # the right kidney lies lower (under the liver)
    aorta, ivc = _centroid(ph, Label.AORTA), _centroid(ph, Label.IVC)
    adrenal = _centroid_side(ph, Label.ADRENAL, -1)
    assert adrenal[2] > right[2] + 40  # adrenal above the upper pole
    ureter = np.argwhere(lab == Label.URETER)
    ureter_z = ph.labels.grid.index_to_lps(ureter)[:, 2]
    assert ureter_z.min() < right[2] - 60  # the ureter runs down out of the kidney
    # renal vessels join the aorta and the IVC
    for label, target in ((Label.RENAL_ARTERY, Label.AORTA), (Label.RENAL_VEIN, Label.IVC)):
        assert target in _touching(lab, lab == label), label.name
    assert ivc[0] < aorta[0]
    # bowel lies in front of each kidney, within 3 cm
    for s in (-1, 1):
        bowel = _side_mask(ph, np.isin(lab, [Label.BOWEL_WALL]), s)
        kid = _side_mask(ph, lab == Label.KIDNEY, s)
        dist = ndimage.distance_transform_edt(~kid, sampling=ph.labels.grid.spacing_mm)
        assert dist[bowel].min() < 30.0
    _check_cord_in_canal_in_vertebra(ph, _levels_abdomen(ph))


def test_kidney_tumours(kidney_exophytic, kidney_central):
    for ph in (kidney_exophytic, kidney_central):
        lab = ph.labels.array
        _check_tumour_size(ph, 24.0)
        assert infer_organ(lab, ph.labels.grid.spacing_mm) == "kidney"
        touching = _touching(lab, lab == Label.TUMOR)
        assert Label.KIDNEY in touching
        assert not touching & {Label.BOWEL_WALL, Label.RIB, Label.VERTEBRA, Label.BACKGROUND}

    # exophytic: a large share of the tumour's surface faces perirenal fat; the central
    # one abuts the collecting system and barely reaches the fat
    def fat_share(ph):
        lab = ph.labels.array
        tumour = lab == Label.TUMOR
        ring = ndimage.binary_dilation(tumour) & ~tumour
        return np.mean(np.isin(lab[ring], [Label.FAT, Label.MUSCLE]))

    assert fat_share(kidney_exophytic) > 0.3
    assert fat_share(kidney_central) < 0.25
    lab = kidney_central.labels.array
    assert Label.COLLECTING_SYSTEM in _touching(lab, lab == Label.TUMOR)
    assert kidney_exophytic.tumors[0].centre_mm[0] < 0 < kidney_central.tumors[0].centre_mm[0]


# -- bone ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def bone_vertebra():
    return _phantom("bone", "vertebra", spacing=2.0, diameter=20.0)


@pytest.fixture(scope="module")
def bone_rib():
    return _phantom("bone", "rib", "left", spacing=2.5, diameter=20.0)


def test_bone_phantoms(bone_vertebra, bone_rib):
    for ph in (bone_vertebra, bone_rib):
        lab = ph.labels.array
        present = set(np.unique(lab).tolist())
        assert set(SPINE_LABELS) | {Label.AORTA, Label.IVC, Label.MUSCLE, Label.TUMOR} <= present
        _check_tumour_size(ph, 20.0)
        assert infer_organ(lab, ph.labels.grid.spacing_mm) == "bone"
    lab = bone_vertebra.labels.array
    touching = _touching(lab, lab == Label.TUMOR)
    assert touching <= {Label.VERTEBRA, Label.MUSCLE}  # body and discs only
    # the aorta and IVC lie in front of the vertebral body, the cord behind it
    c = np.asarray(bone_vertebra.tumors[0].centre_mm)
    for label in (Label.AORTA, Label.IVC):
        assert _centroid(bone_vertebra, label)[1] < c[1] - 20
    assert _centroid(bone_vertebra, Label.SPINAL_CORD)[1] > c[1] + 20
    lab = bone_rib.labels.array
    assert Label.RIB in _touching(lab, lab == Label.TUMOR)
    assert bone_rib.tumors[0].centre_mm[0] > 0  # left


def test_vertebral_tumour_reachable_through_a_pedicle(bone_vertebra):
    """A straight posterior path from the skin through a pedicle into the tumour that
    meets no canal, cord, nerve root, vessel or organ (independent ray march)."""
    ph = bone_vertebra
    c = np.asarray(ph.tumors[0].centre_mm)
    allowed = {Label.VERTEBRA, Label.MUSCLE, Label.FAT, Label.SKIN}
    good = 0
    for d in _rays(2000, seed=1):
        if d[1] < 0.5:  # posterior directions only
            continue
        path = _march(ph, c, d)
        if path is None:
            continue
        path = [v for v in path if v != Label.TUMOR]
        if set(path) <= allowed and path[-1] == Label.SKIN and path[0] == Label.VERTEBRA:
            # bone first: the path leaves the body through the pedicle, not the foramen
            good += 1
    assert good >= 3


def _side_mask(ph, mask, sx):
    xs = ph.labels.grid.axis_coordinates_mm()[2]
    return mask & (np.sign(xs) == sx)[None, None, :]


def _centroid_side(ph, label, sx):
    idx = np.argwhere(_side_mask(ph, ph.labels.array == label, sx))
    return ph.labels.grid.index_to_lps(idx.mean(axis=0))


def _levels_abdomen(ph):
    from ioplan.anatomy._phantom_abdomen import SPINE

    zs = ph.labels.grid.axis_coordinates_mm()[0]
    return SPINE.levels_mm(zs.min() + 5, zs.max() - 5)


def test_a_tumour_that_would_be_another_organs_is_refused():
    """A 40 mm right rib tumour reaches the liver's bare area: its host would be read as
    the liver, so the phantom refuses it rather than write a case that contradicts itself."""
    with pytest.raises(InputError, match="touches the liver"):
        _phantom("bone", "rib", "right", diameter=40.0, spacing=3.0)


def test_a_given_centre_must_lie_in_the_organ():
    heart = (15.0, -35.0, -45.0)  # the chest phantom's heart centre, not lung
    cfg = PhantomConfig(
        spacing_mm=4.0, organ="lung", tumors=(TumorSpec(12.0, centre_mm=heart),), noise_hu=0.0
    )
    with pytest.raises(InputError, match="outside the lung"):
        generate_phantom(cfg)
    inside = (-100.0, -10.0, 30.0)  # right upper lobe, 28 mm inside the costal pleura
    cfg = PhantomConfig(
        spacing_mm=4.0, organ="lung", tumors=(TumorSpec(12.0, centre_mm=inside),), noise_hu=0.0
    )
    ph = generate_phantom(cfg)
    assert ph.tumors[0].centre_mm == inside
    assert np.count_nonzero(ph.labels.array == Label.TUMOR) > 0
