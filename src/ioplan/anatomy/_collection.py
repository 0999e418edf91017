"""Fluid collections and necrotic tumour centres added to a generated phantom (issue 22).

Both are painted after the phantom's ten steps, so that a phantom without them is the
same, voxel for voxel, as before: the label map gains the collection
(:attr:`~ioplan.anatomy.Label.FLUID_COLLECTION`), and the CT image gains the change of
attenuation, blurred by the phantom's own 0.6 mm Gaussian (partial volume). Blurring is
linear, so adding the blurred change to the finished image equals synthesising the image
from the new labels, up to the rounding to integer HU (at most 1 HU; the image noise is
added after the blur either way and is unchanged).

Attenuation of the fluids (CT, HU): simple fluid (ascites, transudative pleural
effusion, bile) 0-15 HU, and pus and exudates 10-30 HU with an enhancing wall around an
abscess (Radiopaedia "Hounsfield unit", "liver abscess", "pleural effusion"; Brant &
Helms, Fundamentals of Diagnostic Radiology, 4th ed.). The values below are ioplan's
choices inside those ranges; they make the image plausible and the drainage planner's
0-30 HU search meaningful. A necrotic tumour centre is 15 HU, against 55 HU for the
tumour and 85 HU for its enhancing rim (:data:`~ioplan.anatomy.LABEL_INFO`).

Sites (patient LPS mm, +x left, +y posterior, +z superior), placed from the phantom's
own labels so that they follow the seed's anatomy:

- ``perihepatic``: against the lateral surface of the right liver lobe (indents liver
  and fills the fat up to the body wall);
- ``subphrenic``: over the dome of the right lobe, under the diaphragm (flattened);
- ``intrahepatic``: inside the right lobe, where it is furthest from vessels, tumours
  and the liver surface;
- ``pleural``: the posterior costophrenic recess of the right lung (replaces the
  dependent lung base, as an effusion does);
- ``pelvic``: the phantom ends at z = -95 mm, above the true pelvis: the collection
  lies in the deepest peritoneal fat of the right lower quadrant just above the image's
  caudal end (the right paracolic gutter, the way a pelvic collection extends upwards).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ioplan.anatomy._labels import LABEL_INFO, Label
from ioplan.anatomy._shapes import SmoothNoise, Space
from ioplan.errors import InputError

__all__ = [
    "ABSCESS_WALL_HU",
    "ABSCESS_WALL_MM",
    "COLLECTION_CONTENTS",
    "COLLECTION_HU",
    "COLLECTION_SITES",
    "COLLECTION_SIZE_RANGE_MM",
    "NECROSIS_HU",
    "PhantomExtras",
    "add_collection",
    "add_necrosis",
    "check_collection",
    "phantom_source_extras",
]

#: Where ``--collection-site`` may put a collection.
COLLECTION_SITES = ("perihepatic", "subphrenic", "pelvic", "intrahepatic", "pleural")
#: What it may hold.
COLLECTION_CONTENTS = ("abscess", "biloma", "ascites", "effusion")
#: Mean attenuation of each content (HU, before blur and noise): ioplan's choices inside
#: the published ranges (module docstring).
COLLECTION_HU: dict[str, float] = {"abscess": 20.0, "biloma": 8.0, "ascites": 5.0, "effusion": 10.0}
#: The abscess's enhancing wall: thickness (mm) and attenuation (HU); image only, its
#: label stays the tissue it lies in.
ABSCESS_WALL_MM = 2.0
ABSCESS_WALL_HU = 140.0
#: Attenuation of a necrotic tumour centre (HU).
NECROSIS_HU = 15.0
#: Largest diameter of a collection (mm), inclusive.
COLLECTION_SIZE_RANGE_MM = (15.0, 150.0)
#: The viable rim kept around a necrotic centre: the centre's diameter is at most this
#: fraction of the tumour's.
NECROSIS_MAX_FRACTION = 0.8

#: Labels a collection may displace at each site.
_HOSTS: dict[str, tuple[Label, ...]] = {
    "perihepatic": (Label.FAT, Label.LIVER),
    "subphrenic": (Label.FAT, Label.LIVER),
    "intrahepatic": (Label.LIVER,),
    "pleural": (Label.LUNG,),
    "pelvic": (Label.FAT,),
}
#: Smallest share of a collection's ellipsoid that its host tissue must hold (the rest
#: is clipped by the host's walls); below it the phantom refuses the size (ioplan's choice).
MIN_PAINTED_SHARE = 0.25
#: Semi-axes of each site's ellipsoid as fractions of the size ``(x, y, z)``.
_SEMI: dict[str, tuple[float, float, float]] = {
    "perihepatic": (0.3, 0.5, 0.5),
    "subphrenic": (0.5, 0.5, 0.25),
    "intrahepatic": (0.5, 0.5, 0.5),
    "pleural": (0.4, 0.3, 0.5),
    "pelvic": (0.5, 0.5, 0.5),
}


@dataclass(frozen=True)
class PhantomExtras:
    """What :func:`add_collection` and :func:`add_necrosis` added (recorded in case.toml).

    Attributes
    ----------
    collection_centre_mm : tuple of 3 float or None
        LPS centre of the collection's ellipsoid.
    collection_volume_ml : float
        Volume of the painted collection label.
    necrosis_volume_ml : float
        Volume of the necrotic centre.
    """

    collection_centre_mm: tuple[float, float, float] | None = None
    collection_volume_ml: float = 0.0
    necrosis_volume_ml: float = 0.0


def check_collection(
    size_mm: float | None, site: str, content: str, spacing_mm: tuple[float, ...]
) -> None:
    """Refuse a collection size, site or content the phantom cannot draw (one line)."""
    if site not in COLLECTION_SITES:
        raise InputError(f"--collection-site must be one of {', '.join(COLLECTION_SITES)}; "
                         f"got {site!r}")  # fmt: skip
    if content not in COLLECTION_CONTENTS:
        raise InputError(
            f"--collection-content must be one of {', '.join(COLLECTION_CONTENTS)}; got {content!r}"
        )
    if size_mm is None:
        return
    lo, hi = COLLECTION_SIZE_RANGE_MM
    if not (np.isfinite(size_mm) and lo <= size_mm <= hi):
        raise InputError(f"--collection must be {lo:g}-{hi:g} mm, got {size_mm:g}")
    thinnest = min(_SEMI[site]) * 2 * size_mm
    if thinnest < 3 * max(spacing_mm):
        raise InputError(
            f"--collection {size_mm:g} mm at {site} is under three voxels thick at "
            f"--spacing-mm {max(spacing_mm):g}; use a larger collection or finer spacing"
        )


def _lut() -> np.ndarray:
    lut = np.zeros(256, np.float32)
    for lbl, info in LABEL_INFO.items():
        lut[int(lbl)] = info.ct_hu
    return lut


def _apply_hu(image: np.ndarray, before: np.ndarray, change: np.ndarray, sp) -> np.ndarray:
    """``image`` plus the change of pre-blur HU on ``before`` (a mask), blurred as the CT is."""
    delta = np.zeros(image.shape, np.float32)
    delta[before] = change
    delta = ndimage.gaussian_filter(delta, sigma=[0.6 / s for s in sp])
    out = image.astype(np.float32) + delta
    return np.clip(np.rint(out), -1024, 3071).astype(np.int16)


def _centre(site: str, labels: np.ndarray, sp: Space, size_mm: float) -> np.ndarray:
    """The collection's centre (LPS mm) at ``site``, from the phantom's labels."""
    g = sp.grid
    z, y, x = (np.broadcast_to(a, labels.shape) for a in (sp.z, sp.y, sp.x))

    def need(lbl: Label, what: str) -> np.ndarray:
        m = labels == lbl
        if not m.any():
            raise InputError(f"--collection-site {site} needs {what}; this phantom has none "
                             "(use --organ liver, or --organ lung for pleural)")  # fmt: skip
        return m

    if site in ("perihepatic", "subphrenic", "intrahepatic"):
        liver = need(Label.LIVER, "a liver")
        right = liver & (x < -40.0) & (z > -60.0) & (z < 70.0)
        if right.sum() * np.prod(g.spacing_mm) < 200e3:  # under 200 mL: no right lobe
            raise InputError(f"--collection-site {site} needs a liver's right lobe; this "
                             "phantom has none (use --organ liver)")  # fmt: skip
        if site == "perihepatic":
            band = right & (z > -40.0) & (z < 0.0) & (np.abs(y) < 20.0)
            band = band if band.any() else right
            k = np.flatnonzero(band.reshape(-1))[int(np.argmin(x[band]))]
            p = np.array([x.flat[k], y.flat[k], z.flat[k]])
            return p + np.array([0.25 * size_mm * _SEMI[site][0] * 2, 0.0, 0.0])
        if site == "subphrenic":
            band = right & (x > -100.0) & (x < -50.0) & (np.abs(y) < 30.0)
            band = band if band.any() else right
            k = np.flatnonzero(band.reshape(-1))[int(np.argmax(z[band]))]
            p = np.array([x.flat[k], y.flat[k], z.flat[k]])
            return p - np.array([0.0, 0.0, 0.6 * size_mm * _SEMI[site][2]])
        # intrahepatic: furthest from the liver surface, vessels and tumours
        # (below the dome, where a drain can reach it under the ribs)
        inner = ndimage.distance_transform_edt(liver, sampling=g.spacing_mm)
        score = np.where(right & (z > -40.0) & (z < 25.0), inner, -1.0)
        k = int(np.argmax(score))
        return np.array([x.flat[k], y.flat[k], z.flat[k]])
    if site == "pleural":
        lung = need(Label.LUNG, "a lung")
        right = lung & (x < -30.0)
        if not right.any():
            right = lung
        # the lowest posterior lung base: largest y - z (posterior and caudal)
        k = np.flatnonzero(right.reshape(-1))[int(np.argmax((y - z)[right]))]
        p = np.array([x.flat[k], y.flat[k], z.flat[k]])
        return p + np.array([0.0, -0.5, 0.6]) * size_mm * np.array(_SEMI[site])
    # pelvic: the fat furthest from other structures in the caudal right abdomen
    fat = labels == Label.FAT
    depth = ndimage.distance_transform_edt(fat, sampling=g.spacing_mm)
    body_x = np.abs(x) < 0.7 * np.abs(x[labels != Label.BACKGROUND]).max()
    z_lo = float(z.min()) + 0.5 * size_mm  # the whole collection inside the image
    zone = fat & (z >= z_lo) & (z < z_lo + 25.0) & (x < -50.0) & body_x
    if not zone.any():
        raise InputError("--collection-site pelvic: no peritoneal fat at the caudal end")
    k = np.flatnonzero(zone.reshape(-1))[int(np.argmax(depth[zone]))]
    return np.array([x.flat[k], y.flat[k], z.flat[k]])


def add_collection(
    labels: np.ndarray,
    image: np.ndarray,
    sp: Space,
    *,
    size_mm: float,
    site: str,
    content: str,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], float]:
    """Paint a fluid collection into copies of ``labels`` and ``image``.

    Parameters
    ----------
    labels, image : ndarray ``(z, y, x)``
        The finished phantom's label map (uint8) and CT (int16 HU).
    sp : Space
        Their grid with broadcast LPS coordinates.
    size_mm : float
        Largest diameter of the collection's ellipsoid (its semi-axes by site).
    site, content : str
        One of :data:`COLLECTION_SITES` and :data:`COLLECTION_CONTENTS`.
    seed : int
        The phantom's seed; the collection's shape noise uses its own generator
        ``default_rng([seed, 22])`` so the phantom's other voxels do not change.

    Returns
    -------
    labels, image, centre_mm, volume_ml
    """
    g = sp.grid
    centre = _centre(site, labels, sp, size_mm)
    semi = np.asarray(_SEMI[site]) * size_mm
    rng = np.random.default_rng([int(seed), 22])
    noise = SmoothNoise(rng, 20.0, centre - semi - 5, centre + semi + 5)
    sl, x, y, z = sp.box(centre - semi * 1.2 - 2, centre + semi * 1.2 + 2)
    q = ((x - centre[0]) / semi[0]) ** 2 + ((y - centre[1]) / semi[1]) ** 2
    q = q + ((z - centre[2]) / semi[2]) ** 2
    wobble = 1.0 + 0.1 * noise(x, y, z)  # mild lobulation, 10 % of the radius
    host = np.isin(labels[sl], [int(h) for h in _HOSTS[site]])
    inside = (np.sqrt(q) <= wobble) & host
    # keep the piece that holds the centre (a host split by a wall stays one collection)
    pieces, n = ndimage.label(inside)
    if n > 1:
        sizes = ndimage.sum(inside, pieces, range(1, n + 1))
        inside = pieces == 1 + int(np.argmax(sizes))
    if not inside.any():
        raise InputError(f"--collection {size_mm:g} mm at {site}: no room in this phantom")
    # the host tissue may hold only a sliver of the ellipsoid (a kidney phantom's lung
    # bases): a "30 mm" collection of 0.3 mL would be recorded as 30 mm
    painted_ml = float(inside.sum()) * float(np.prod(g.spacing_mm)) / 1000.0
    nominal_ml = 4.0 / 3.0 * np.pi * float(np.prod(semi)) / 1000.0
    if painted_ml < MIN_PAINTED_SHARE * nominal_ml:
        raise InputError(
            f"--collection {size_mm:g} mm at {site}: this phantom has room for {painted_ml:.1f} "
            f"mL of its {nominal_ml:.1f} mL there (use --organ liver, or --organ lung for "
            "pleural)"
        )
    out_l = labels.copy()
    lut = _lut()
    full = np.zeros(labels.shape, bool)
    full[sl] = inside
    change_mask = full.copy()
    target = np.full(labels.shape, np.nan, np.float32)
    target[full] = COLLECTION_HU[content]
    if content == "abscess":
        it = max(1, round(ABSCESS_WALL_MM / min(g.spacing_mm)))
        wall = ndimage.binary_dilation(full, iterations=it) & ~full
        wall &= np.isin(labels, [int(Label.FAT), int(Label.LIVER), int(Label.LUNG),
                                 int(Label.MUSCLE)])  # fmt: skip
        change_mask |= wall
        target[wall] = ABSCESS_WALL_HU
    change = target[change_mask] - lut[labels[change_mask]]
    out_l[full] = Label.FLUID_COLLECTION
    out_i = _apply_hu(image, change_mask, change, g.spacing_mm)
    volume_ml = float(full.sum()) * float(np.prod(g.spacing_mm)) / 1000.0
    return out_l, out_i, tuple(float(v) for v in centre), volume_ml


def add_necrosis(
    labels: np.ndarray,
    image: np.ndarray,
    sp: Space,
    *,
    centre_mm,
    tumour_diameter_mm: float,
    necrosis_mm: float,
) -> tuple[np.ndarray, float]:
    """The image with a necrotic centre of diameter ``necrosis_mm`` in a tumour.

    The centre is the tumour's voxels within ``necrosis_mm / 2`` of ``centre_mm`` that lie
    deeper than the enhancing rim (the outer 18 % of the radius, plus a voxel); its
    attenuation becomes :data:`NECROSIS_HU`. The label map is not changed (the centre is
    still tumour).

    Returns
    -------
    image, volume_ml
    """
    g = sp.grid
    if necrosis_mm > NECROSIS_MAX_FRACTION * tumour_diameter_mm:
        raise InputError(
            f"--necrosis-mm {necrosis_mm:g} leaves no viable rim in a {tumour_diameter_mm:g} mm "
            f"tumour (at most {NECROSIS_MAX_FRACTION:g} x the diameter)"
        )
    c = np.asarray(centre_mm, float)
    r = 0.5 * necrosis_mm
    # a box holding the whole tumour (its radius varies by at most 50 %), so that the
    # depth below its surface is measured to the surface, not to the box
    half = 0.75 * tumour_diameter_mm + 2 * max(g.spacing_mm)
    sl, x, y, z = sp.box(c - half, c + half)
    tumour = labels[sl] == Label.TUMOR
    ball = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r * r
    depth = ndimage.distance_transform_edt(tumour, sampling=g.spacing_mm)
    deep = depth > 0.18 * 0.5 * tumour_diameter_mm + max(g.spacing_mm)
    core = tumour & ball & deep
    if not core.any():
        raise InputError(f"--necrosis-mm {necrosis_mm:g} is under one voxel deep in the tumour")
    mask = np.zeros(labels.shape, bool)
    mask[sl] = core
    change = NECROSIS_HU - LABEL_INFO[Label.TUMOR].ct_hu
    volume_ml = float(core.sum()) * float(np.prod(g.spacing_mm)) / 1000.0
    return _apply_hu(image, mask, np.float32(change), g.spacing_mm), volume_ml


def phantom_source_extras(phantom) -> dict:
    """What a phantom's options add to its case's ``source`` record (case.toml).

    The fluid collection and the necrotic centre (issue 22), the arterial tree's variant
    (issue 24); nothing for a phantom without them.
    """
    cfg, out = phantom.config, {}
    if getattr(cfg, "collection_mm", None) is not None:
        extras = getattr(phantom, "extras", None)
        out |= {
            "collection_mm": cfg.collection_mm,
            "collection_site": cfg.collection_site,
            "collection_content": cfg.collection_content,
            "collection_centre_mm": list(getattr(extras, "collection_centre_mm", None) or ()),
        }
    if getattr(cfg, "necrosis_mm", None) is not None:
        out["necrosis_mm"] = cfg.necrosis_mm
    if getattr(cfg, "arterial_tree", False):
        out["arterial_tree"] = True
        out["artery_variant"] = cfg.resolved_artery_variant()
    return out
