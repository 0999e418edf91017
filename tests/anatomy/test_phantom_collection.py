"""The phantom's fluid collection and necrotic tumour centre (issue 22).

References: the HU values are the module's published-range choices
(:data:`ioplan.anatomy._collection.COLLECTION_HU`, docstring sources); a phantom without the
options must be the same voxels as before; with them, only the collection (labels) and
the blur's reach around the changed voxels (image) may differ.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ioplan.anatomy import COLLECTION_HU, NECROSIS_HU, Label, PhantomConfig, generate_phantom
from ioplan.errors import InputError

SP = 3.0  # mm: coarse, fast (about 0.7 s a phantom)


@pytest.fixture(scope="module")
def plain():
    return generate_phantom(PhantomConfig(spacing_mm=SP))


@pytest.mark.parametrize(
    ("site", "content", "host"),
    [
        ("perihepatic", "abscess", {Label.FAT, Label.LIVER}),
        ("intrahepatic", "biloma", {Label.LIVER}),
        ("pleural", "effusion", {Label.LUNG}),
        ("pelvic", "ascites", {Label.FAT}),
    ],
)
def test_collection_changes_only_its_host_and_has_its_content_hu(plain, site, content, host):
    ph = generate_phantom(
        PhantomConfig(
            spacing_mm=SP, collection_mm=60.0, collection_site=site, collection_content=content
        )
    )
    lab0, lab = np.asarray(plain.labels.array), np.asarray(ph.labels.array)
    coll = lab == Label.FLUID_COLLECTION
    assert coll.sum() * SP**3 / 1000 == pytest.approx(ph.extras.collection_volume_ml)
    # labels: changed exactly where the collection is, and only host tissue was displaced
    assert np.array_equal(lab0 != lab, coll)
    assert set(np.unique(lab0[coll]).tolist()) <= {int(h) for h in host}
    # one connected collection, fully inside the image (no face touches the grid edge)
    assert ndimage.label(coll)[1] == 1
    assert not (coll[0].any() or coll[-1].any() or coll[:, :, 0].any() or coll[:, :, -1].any())
    # image: the interior (one voxel in from the wall: no partial volume) has the content's
    # HU; the median of >= 100 voxels of 12 HU noise lies within 3 HU of it
    core = ndimage.binary_erosion(coll)
    assert core.sum() >= 100
    img = np.asarray(ph.image.array, float)
    assert abs(np.median(img[core]) - COLLECTION_HU[content]) <= 3.0
    assert 0.0 <= np.median(img[core]) <= 30.0
    # elsewhere the image is unchanged beyond the blur's reach (0.6 mm sigma << 1 voxel at
    # 3 mm) of the changed voxels (the collection and the abscess's 2 mm wall, 1 voxel)
    reach = ndimage.binary_dilation(coll, iterations=3)
    assert np.array_equal(np.asarray(plain.image.array)[~reach], np.asarray(ph.image.array)[~reach])


def test_abscess_has_an_enhancing_wall(plain):
    ph = generate_phantom(PhantomConfig(spacing_mm=SP, collection_mm=60.0))
    lab = np.asarray(ph.labels.array)
    coll = lab == Label.FLUID_COLLECTION
    wall = ndimage.binary_dilation(coll) & ~coll & (lab == Label.LIVER)
    img, img0 = np.asarray(ph.image.array, float), np.asarray(plain.image.array, float)
    # the wall (140 HU before blur) is brighter than the liver it replaced (105 HU): the
    # mean over its voxels rises by well over the noise's standard error
    assert wall.sum() > 50
    assert img[wall].mean() > img0[wall].mean() + 15.0


def test_same_seed_same_collection_and_seed_moves_it():
    cfg = {"spacing_mm": SP, "collection_mm": 50.0, "collection_site": "intrahepatic"}
    a = generate_phantom(PhantomConfig(**cfg))
    b = generate_phantom(PhantomConfig(**cfg))
    assert np.array_equal(a.labels.array, b.labels.array)
    assert np.array_equal(a.image.array, b.image.array)


def test_necrotic_centre_is_fluid_dark_and_the_label_stays_tumour(plain):
    ph = generate_phantom(PhantomConfig(spacing_mm=SP, necrosis_mm=18.0))
    assert np.array_equal(plain.labels.array, ph.labels.array)
    t = ph.tumors[0]
    g = ph.labels.grid
    z, y, x = np.meshgrid(*g.axis_coordinates_mm(), indexing="ij")
    r = np.sqrt((x - t.centre_mm[0]) ** 2 + (y - t.centre_mm[1]) ** 2 + (z - t.centre_mm[2]) ** 2)
    tumour = np.asarray(ph.labels.array) == Label.TUMOR
    img = np.asarray(ph.image.array, float)
    core = tumour & (r <= 9.0 - SP)  # a voxel inside the 18 mm centre
    assert core.sum() >= 5
    assert abs(np.median(img[core]) - NECROSIS_HU) <= 8.0  # few voxels: 8 HU
    # the viable tumour outside the centre keeps its HU (55 HU, 85 HU rim): much brighter
    viable = tumour & (r >= 9.0 + SP)
    assert np.median(img[viable]) > NECROSIS_HU + 30.0
    assert ph.extras.necrosis_volume_ml > 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"collection_mm": 60.0, "collection_site": "brain"}, "--collection-site"),
        ({"collection_mm": 60.0, "collection_content": "blood"}, "--collection-content"),
        ({"collection_mm": 500.0}, "--collection must be"),
        ({"collection_mm": 16.0, "spacing_mm": 5.0}, "under three voxels"),
        ({"necrosis_mm": 29.0}, "--necrosis-mm"),
    ],
)
def test_bad_collection_and_necrosis_options_are_refused(kwargs, fragment):
    with pytest.raises(InputError, match=fragment):
        PhantomConfig(**({"spacing_mm": SP} | kwargs))


def test_liver_sites_need_a_liver():
    with pytest.raises(InputError, match="needs a liver"):
        generate_phantom(
            PhantomConfig(
                spacing_mm=4.0, organ="lung", collection_mm=40.0, collection_site="perihepatic"
            )
        )


def test_a_collection_with_no_room_for_its_size_is_refused():
    """A kidney phantom's lung bases held 0.3 mL of a "30 mm" pleural collection, and
    case.toml recorded 30 mm; a lung phantom holds over half of its ellipsoid."""
    with pytest.raises(InputError, match="has room for"):
        generate_phantom(PhantomConfig(spacing_mm=4.0, organ="kidney", collection_mm=30.0,
                                       collection_site="pleural"))  # fmt: skip
    ph = generate_phantom(PhantomConfig(spacing_mm=4.0, organ="lung", collection_mm=30.0,
                                        collection_site="pleural"))  # fmt: skip
    nominal_ml = 4 / 3 * np.pi * (0.4 * 30) * (0.3 * 30) * (0.5 * 30) / 1000  # 6.8 mL
    assert ph.extras.collection_volume_ml > 0.5 * nominal_ml


def test_case_from_phantom_records_the_collection_and_the_necrosis():
    """Case.from_phantom (the library path, not only the `phantom` command) records the
    collection and necrosis options in its source; the recorded centre lies in the collection's
    label, read back on the grid independently of the generator."""
    from ioplan.anatomy import Case

    ph = generate_phantom(PhantomConfig(spacing_mm=SP, collection_mm=50.0, necrosis_mm=10.0))
    src = Case.from_phantom(ph).source
    assert src["collection_mm"] == 50.0 and src["necrosis_mm"] == 10.0
    assert src["collection_site"] == "perihepatic" and src["collection_content"] == "abscess"
    g = ph.labels.grid
    ijk = tuple(int(v) for v in np.rint(g.lps_to_index(np.array([src["collection_centre_mm"]]))[0]))
    assert int(np.asarray(ph.labels.array)[ijk]) == int(Label.FLUID_COLLECTION)
