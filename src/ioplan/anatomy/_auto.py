"""Automatic labels from the image: body, skin, fat, lung, airways, bone, liver vessels.

Every threshold and scale is read from ``anatomy/data/auto_labels.toml``, where each value
carries its source. Structures already present in the given labels are kept untouched; the
automatic ones only fill what is missing, and :attr:`AutoLabels.provenance` says which is which.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ioplan.anatomy._labels import Label
from ioplan.errors import FileFormatError, InputError
from ioplan.imaging import Volume, check_finite
from ioplan.resources import check_memory

__all__ = ["AUTO_STRUCTURES", "AutoLabels", "auto_label_parameters", "auto_labels"]

#: Structures :func:`auto_labels` can produce, with the label value each is stored as
#: (``airway`` and ``gas`` are extra classes outside :class:`Label`; values in the TOML).
AUTO_STRUCTURES = ("skin", "fat", "lung", "airway", "bone", "liver_vessels", "gas", "soft_tissue")

#: Peak memory of the whole-image steps per voxel, in bytes: tracemalloc measured 27 bytes
#: per voxel on the 512 x 512 x 48 chest CT (float32 image, boolean masks, uint8 labels,
#: int32 component labels, float32 radius map); 40 leaves room for the allocator.
_BYTES_PER_VOXEL = 40
#: Peak memory of the vesselness filter per voxel of the (isotropic) liver box: tracemalloc
#: measured about 225 bytes (scikit-image's float64 Hessian, eigenvalues, running maximum)
#: on the phantom at 2 mm; 300 leaves room.
_FRANGI_BYTES_PER_VOXEL = 300


@cache
def auto_label_parameters() -> dict[str, dict[str, float]]:
    """Thresholds and scales of ``anatomy/data/auto_labels.toml``: ``{section: {name: value}}``.

    Every entry of the file must be ``{value, source}`` with a non-empty source.
    """
    text = resources.files("ioplan.anatomy").joinpath("data/auto_labels.toml").read_text()
    raw = tomllib.loads(text)
    out: dict[str, dict[str, float]] = {}
    for section, entries in raw.items():
        out[section] = {}
        for name, entry in entries.items():
            if not isinstance(entry, dict) or set(entry) != {"value", "source"}:
                raise FileFormatError(
                    f"auto_labels.toml: {section}.{name} must be {{value, source}}"
                )
            if not str(entry["source"]).strip():
                raise FileFormatError(f"auto_labels.toml: {section}.{name} has an empty source")
            out[section][name] = float(entry["value"])
    return out


@dataclass(frozen=True, eq=False)
class AutoLabels:
    """Labels found from the image, merged with the labels given.

    Attributes
    ----------
    labels : Volume
        uint8 label map on the image grid: :class:`~ioplan.anatomy.Label` values, plus the
        extra classes named in ``classes`` (``airway``, ``gas``).
    classes : dict of str to int
        Label value of every structure named in ``provenance`` (``"bone"`` is stored as
        ``Label.RIB``, ``"liver_vessels"`` as ``Label.PORTAL_VEIN``, ``"soft_tissue"`` as
        ``Label.MUSCLE``).
    provenance : dict of str to str
        ``"auto"`` for a structure found here, ``"labels"`` for one kept from the given labels.
    voxel_counts : dict of str to int
        Voxels of each structure in ``labels``.
    vessel_radius_mm : Volume
        float32 local lumen radius in mm on the automatic vessel voxels (the radius of the
        nearest centreline point), 0 elsewhere.
    body : Volume
        bool mask of the body (largest connected component above the air threshold, holes
        filled slice by slice).
    modality : str
        ``"CT"`` or ``"MR"``.
    contrast : bool or None
        Whether the CT was taken as contrast-enhanced (None for MR).
    contrast_reason : str
        How ``contrast`` was decided (given, blood HU, liver vessels, or a default).
    notes : tuple of str
        What was done, skipped or doubtful, one sentence each.
    parameters : dict
        The thresholds used (:func:`auto_label_parameters`).
    """

    labels: Volume
    classes: dict[str, int]
    provenance: dict[str, str]
    voxel_counts: dict[str, int]
    vessel_radius_mm: Volume
    body: Volume
    modality: str
    contrast: bool | None
    contrast_reason: str
    notes: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict, repr=False)

    def volume_ml(self, name: str) -> float:
        """Volume of structure ``name`` in mL (voxel count x voxel volume)."""
        return self.voxel_counts.get(name, 0) * self.labels.grid.voxel_volume_ml


# -- geometry helpers --------------------------------------------------------------------
def _axis_of(image: Volume, lps_axis: int) -> tuple[int, int]:
    """Array axis most aligned with LPS axis ``lps_axis`` (0 x, 1 y, 2 z) and its sign."""
    d = image.grid.direction_matrix
    ax = int(np.argmax(np.abs(d[lps_axis, :])))
    return ax, int(np.sign(d[lps_axis, ax]))


def _fill_holes_slices(mask: np.ndarray, axis: int) -> np.ndarray:
    out = np.empty_like(mask)
    for i in range(mask.shape[axis]):
        sl = [slice(None)] * 3
        sl[axis] = i
        out[tuple(sl)] = ndi.binary_fill_holes(mask[tuple(sl)])
    return out


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndi.label(mask)
    if n == 0:
        return mask.copy()
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


# -- CT structures -----------------------------------------------------------------------
def _ct_body(hu: np.ndarray, axial: int, p: dict[str, float]) -> np.ndarray:
    return _fill_holes_slices(_largest_component(hu > p["body_hu"]), axial)


def _skin(body: np.ndarray, spacing, axial: int, p: dict[str, float]) -> np.ndarray:
    """The outer ``skin_mm`` of the body (ellipsoidal erosion; at least one voxel in-plane)."""
    half = [
        max(1 if a != axial else 0, int(np.floor(p["skin_mm"] / s))) for a, s in enumerate(spacing)
    ]
    r = [max(h, 1e-9) for h in half]
    zz, yy, xx = np.meshgrid(*(np.arange(-h, h + 1) for h in half), indexing="ij")
    ball = (zz / r[0]) ** 2 + (yy / r[1]) ** 2 + (xx / r[2]) ** 2 <= 1.0 + 1e-9
    return body & ~ndi.binary_erosion(body, structure=ball, border_value=1)


def _ct_lung(hu: np.ndarray, body: np.ndarray, axial: int, vox_ml: float, p) -> np.ndarray:
    """Large low-attenuation components inside the body whose median HU is parenchyma's."""
    low = body & (hu < p["lung_max_hu"])
    lab, n = ndi.label(low)
    if n == 0:
        return np.zeros_like(body)
    counts = np.bincount(lab.ravel())
    keep = []
    for k, obj in enumerate(ndi.find_objects(lab), start=1):
        if obj is None or counts[k] * vox_ml < p["lung_min_ml"]:
            continue
        med = float(np.median(hu[obj][lab[obj] == k]))
        if p["lung_median_min_hu"] <= med <= p["lung_median_max_hu"]:
            keep.append(k)
    lung = np.isin(lab, keep)
    # vessels and nodules inside the lung are holes of each axial slice: lung tissue
    return _fill_holes_slices(lung, axial) & body


def _trachea_seed(hu, body, lung_raw, image: Volume, p, thr: float) -> tuple[int, int, int] | None:
    """A voxel of the trachea: a round air component at the midline near the superior end."""
    axial, sup_sign = _axis_of(image, 2)
    lr_axis, _ = _axis_of(image, 0)
    sp = image.grid.spacing_mm
    in_plane = [a for a in range(3) if a != axial]
    px_mm2 = sp[in_plane[0]] * sp[in_plane[1]]
    n_sl = hu.shape[axial]
    n_search = max(1, round(p["trachea_search_mm"] / sp[axial]))
    order = (
        range(n_sl - 1, max(-1, n_sl - 1 - n_search), -1)
        if sup_sign > 0
        else range(min(n_search, n_sl))
    )
    lr_in_plane = in_plane.index(lr_axis) if lr_axis in in_plane else 1
    for i in order:
        sl = [slice(None)] * 3
        sl[axial] = i
        b = body[tuple(sl)]
        if not b.any():
            continue
        air = b & (hu[tuple(sl)] < thr) & lung_raw[tuple(sl)]
        lab, n = ndi.label(air)
        if n == 0:
            continue
        cols = np.nonzero(b.any(axis=1 - lr_in_plane))[0]
        centre, width = 0.5 * (cols[0] + cols[-1]), float(cols[-1] - cols[0] + 1)
        best, best_off = None, np.inf
        for k, obj in enumerate(ndi.find_objects(lab), start=1):
            comp = lab[obj] == k
            area = comp.sum() * px_mm2
            if not p["trachea_min_mm2"] <= area <= p["trachea_max_mm2"]:
                continue
            pts = np.argwhere(comp) + [s.start for s in obj]
            off = abs(pts[:, lr_in_plane].mean() - centre) / width
            if off <= p["trachea_central_fraction"] and off < best_off:
                best, best_off = pts[len(pts) // 2], off
        if best is not None:
            seed = [0, 0, 0]
            seed[axial] = i
            seed[in_plane[0]], seed[in_plane[1]] = int(best[0]), int(best[1])
            return (seed[0], seed[1], seed[2])
    return None


def _airways(hu, body, lung_raw, image: Volume, p, notes: list[str]) -> np.ndarray:
    vox_ml = image.grid.voxel_volume_ml
    for thr in (p["airway_max_hu"], p["airway_retry_hu"]):
        seed = _trachea_seed(hu, body, lung_raw, image, p, thr)
        if seed is None:
            notes.append(
                "airways: no trachea (round midline air, "
                f"{p['trachea_min_mm2']:g}-{p['trachea_max_mm2']:g} mm^2, connected to the lungs) "
                f"within {p['trachea_search_mm']:g} mm of the superior end; none labelled"
            )
            return np.zeros_like(body)
        lab, _ = ndi.label(body & (hu < thr))
        grown = lab == lab[seed]
        vol = grown.sum() * vox_ml
        if vol <= p["airway_max_ml"]:
            notes.append(
                f"airways: grown below {thr:g} HU from the trachea at voxel {seed}, {vol:.0f} mL"
            )
            return grown
        notes.append(
            f"airways: growth below {thr:g} HU leaked ({vol:.0f} mL > {p['airway_max_ml']:g} mL)"
        )
    notes.append("airways: every growth leaked into the lung; none labelled")
    return np.zeros_like(body)


def _bone(hu, body, vox_ml, p) -> np.ndarray:
    lab, n = ndi.label(body & (hu > p["bone_hu"]))
    if n == 0:
        return np.zeros_like(body)
    counts = np.bincount(lab.ravel())
    counts[0] = 0
    return (counts * vox_ml >= p["bone_min_ml"])[lab]


def _decide_contrast(hu, given, contrast, p) -> tuple[bool, str]:
    if contrast is not None:
        return bool(contrast), f"given: contrast={bool(contrast)}"
    if given is not None:
        for lbl in (Label.AORTA, Label.IVC, Label.PORTAL_VEIN):
            m = ndi.binary_erosion(given == lbl)
            if m.sum() >= 20:
                med = float(np.median(hu[m]))
                c = med > p["blood_contrast_hu"]
                return c, (
                    f"median HU of the {lbl.name.lower()} label {med:.0f} "
                    f"{'>' if c else '<='} {p['blood_contrast_hu']:g} HU"
                )
        liver = ndi.binary_erosion(given == Label.LIVER, iterations=2)
        if liver.sum() >= 1000:
            sm = ndi.gaussian_filter(hu.astype(np.float32), 1.0)[liver]
            med = float(np.median(sm))
            frac = float(np.mean(sm > med + p["liver_vessel_excess_hu"]))
            c = frac >= p["liver_contrast_fraction"]
            return c, (
                f"{100 * frac:.1f} % of the liver is brighter than its median ({med:.0f} HU) by "
                f"{p['liver_vessel_excess_hu']:g} HU ({'>=' if c else '<'} "
                f"{100 * p['liver_contrast_fraction']:g} %)"
            )
    return False, "no aorta, IVC, portal vein or liver label to judge from: taken as non-contrast"


# -- liver vessels -------------------------------------------------------------------------
def _liver_vessels(hu, liver, spacing, p, pv, notes) -> tuple[np.ndarray, np.ndarray]:
    """Vessel mask and per-voxel radius (mm) inside ``liver`` by Frangi vesselness."""
    from skimage.filters import frangi
    from skimage.morphology import skeletonize

    vessels = np.zeros(liver.shape, bool)
    radius = np.zeros(liver.shape, np.float32)
    obj = ndi.find_objects(liver.astype(np.uint8))[0]
    pad = [max(2, int(np.ceil(pv["radius_max_mm"] / s))) for s in spacing]
    box = tuple(
        slice(max(0, o.start - m), min(n, o.stop + m))
        for o, m, n in zip(obj, pad, liver.shape, strict=True)
    )
    sub = hu[box].astype(np.float32)
    liv = liver[box]
    med = float(np.median(sub[liv]))
    sub = np.where(liv, sub, med)  # no liver edge: only structures inside the liver respond
    iso = max(min(spacing), pv["max_isotropic_mm"])
    zoom = [s / iso for s in spacing]
    n_iso = int(np.prod([n * z for n, z in zip(sub.shape, zoom, strict=True)]))
    check_memory(n_iso * _FRANGI_BYTES_PER_VOXEL, "the vesselness filter over the liver")
    work = ndi.zoom(sub, zoom, order=1) if any(abs(z - 1) > 1e-6 for z in zoom) else sub
    radii = np.geomspace(pv["radius_min_mm"], pv["radius_max_mm"], int(pv["n_scales"]))
    sigmas = radii * pv["sigma_per_radius"] / iso
    vness = frangi(
        work, sigmas=sigmas, alpha=pv["frangi_alpha"], beta=pv["frangi_beta"], black_ridges=False
    )
    if work is not sub:
        coords = np.meshgrid(
            *(np.arange(n) * z for n, z in zip(sub.shape, zoom, strict=True)), indexing="ij"
        )
        vness = ndi.map_coordinates(vness, coords, order=1, mode="nearest")
    ref = float(np.percentile(vness[liv], 99.9)) if liv.any() else 0.0
    smooth = ndi.gaussian_filter(sub, 0.5)
    # bright voxels (the half-maximum edge) form the vessel; a bright component is kept when
    # enough of it is tubular (vesselness), so a wide vessel whose centre the filter misses
    # stays whole and enhancing blobs without a tube are dropped
    bright = liv & (smooth > med + pv["vessel_excess_hu"])
    tubular = bright & (vness > pv["vesselness_fraction"] * ref)
    lab, n = ndi.label(bright)
    vox_mm3 = float(np.prod(spacing))
    cand = np.zeros_like(bright)
    if n:
        tub = np.bincount(lab[tubular], minlength=n + 1)
        tub[0] = 0
        cand = (tub * vox_mm3 >= pv["min_component_mm3"])[lab]
    if not cand.any():
        notes.append("liver vessels: contrast CT but no vessel found inside the liver")
        return vessels, radius
    # local radius: the distance from the centreline to the first voxel centre outside the
    # mask, carried to every vessel voxel from its nearest centreline voxel. That distance
    # exceeds the mask's own radius by about half a voxel, which the half-maximum edge of
    # a blurred vessel takes off again (on the phantom: median error under a voxel).
    dist = ndi.distance_transform_edt(np.pad(cand, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    skel = skeletonize(cand).astype(bool) & cand
    r_skel = np.where(skel, dist, 0.0)
    _, idx = ndi.distance_transform_edt(~skel, sampling=spacing, return_indices=True)
    r_all = r_skel[idx[0], idx[1], idx[2]]
    vessels[box] = cand
    radius[box] = np.where(cand, r_all, 0.0).astype(np.float32)
    notes.append(
        f"liver vessels: Frangi vesselness at radii {radii[0]:.1f}-{radii[-1]:.1f} mm on "
        f"{iso:g} mm voxels, brighter than the liver median ({med:.0f} HU) by "
        f"{pv['vessel_excess_hu']:g} HU; portal and hepatic veins are one class "
        "(stored as portal_vein)"
    )
    return vessels, radius


# -- MR structures -------------------------------------------------------------------------
def _mr_body_lung(sig, axial, vox_ml, pm) -> tuple[np.ndarray, np.ndarray, float]:
    from skimage.filters import threshold_otsu

    thr = float(threshold_otsu(sig))
    body = _fill_holes_slices(_largest_component(sig > thr), axial)
    noise = float(np.median(sig[~body])) if (~body).any() else 0.0
    dark = body & (sig < pm["void_of_background"] * max(noise, 1e-6 * thr))
    lab, n = ndi.label(dark)
    lung = np.zeros_like(body)
    if n:
        counts = np.bincount(lab.ravel())
        counts[0] = 0
        lung = (counts * vox_ml >= pm["lung_min_ml"])[lab]
        lung = _fill_holes_slices(lung, axial) & body
    return body, lung, thr


def _extra_values(extra, values, present) -> dict[str, int]:
    out = {k: values[k] for k in ("airway", "gas")}
    for name, v in dict(extra or {}).items():
        if name not in out:
            raise InputError(f"extra_values: unknown class {name!r}; known: airway, gas")
        if isinstance(v, bool) or int(v) != v or not 1 <= int(v) <= 255:
            raise InputError(f"extra_values[{name!r}] must be an integer 1-255, got {v!r}")
        out[name] = int(v)
    known = {int(lbl) for lbl in Label}
    for name, v in out.items():
        if v in known or v in present:
            where = "a Label value" if v in known else "already used in labels"
            raise InputError(f"extra class {name!r} value {v} is {where}; pass extra_values")
    if out["airway"] == out["gas"]:
        raise InputError(f"extra_values: airway and gas share the value {out['gas']}")
    return out


# -- public --------------------------------------------------------------------------------
def _validate(image, modality, labels) -> tuple[str, np.ndarray | None]:
    if not isinstance(image, Volume):
        raise InputError(f"image must be an ioplan Volume, got {type(image).__name__}")
    if min(image.shape) < 2:
        raise InputError(
            f"image must be 3D with at least 2 voxels per axis, got shape {image.shape}"
        )
    mod = str(modality).strip().upper()
    if mod not in ("CT", "MR", "MRI"):
        raise InputError(f"modality must be 'CT' or 'MR', got {modality!r}")
    arr = np.asarray(image.array)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"image must hold real numbers, got dtype {arr.dtype}")
    check_finite(arr, what="image")
    given = None
    if labels is not None:
        given = np.asarray(labels)
        if given.shape != image.shape:
            raise InputError(
                f"labels shape {given.shape} differs from the image shape {image.shape}"
            )
        if not np.issubdtype(given.dtype, np.integer):
            raise InputError(f"labels must be integers, got dtype {given.dtype}")
        if given.size and (given.min() < 0 or given.max() > 255):
            raise InputError(f"labels must be 0-255, got {int(given.min())}-{int(given.max())}")
    return ("MR" if mod == "MRI" else mod), given


def auto_labels(
    image: Volume,
    *,
    modality: str = "CT",
    labels: np.ndarray | None = None,
    contrast: bool | None = None,
    extra_values: Mapping[str, int] | None = None,
) -> AutoLabels:
    """Find body, skin, fat, lung, airways, bone and liver vessels from the image.

    Structures already in ``labels`` win: an automatic structure whose label value is present
    in ``labels`` is not computed, and automatic voxels never overwrite a labelled voxel.

    CT: body = largest connected component above ``body_hu`` (-500 HU) with holes filled slice
    by slice; skin = its outer ``skin_mm`` (2 mm, at least one voxel); fat = -190 to -30 HU;
    lung = components under -400 HU inside the body of at least 20 mL whose median HU is
    -930 to -650 (so bowel gas and gas-stool mixtures are not lung), holes filled slice by
    slice; airways = region growing under -950 HU (-980 HU if that leaks) from the trachea, a
    round midline air component near the superior end; bone = components over 200 HU of at
    least 0.5 mL (ribs and vertebrae are one class, stored as ``RIB``); other gas inside the
    body = ``gas``; the rest of the body = ``soft_tissue`` (``MUSCLE``). With contrast and a
    liver label: the liver vessels = the components inside the liver 20 HU brighter than its
    median that hold at least 100 mm^3 of tubular voxels by multiscale Frangi vesselness
    (radii 1.5-8 mm), with their local radius from the distance transform on the skeleton.

    MR: body = largest component above Otsu's threshold, holes filled; lung = large signal
    voids inside it; vessels only from labels.

    Parameters
    ----------
    image : Volume
        CT in HU, or MR magnitude (any scale), indexed ``(z, y, x)``; any orientation.
    modality : {"CT", "MR"}
        Imaging modality.
    labels : ndarray of int, optional
        Label map on the image grid (:class:`~ioplan.anatomy.Label` values, 0-255); 0 is
        unlabelled.
    extra_values : mapping of str to int, optional
        Label values for the extra classes ``"airway"`` and ``"gas"`` (default 200 and 201,
        from ``auto_labels.toml``); each must be 1-255, outside :class:`Label` and not used
        in ``labels``.
    contrast : bool, optional
        Whether the CT is contrast-enhanced. Default: decided from the median HU of an
        aorta, IVC or portal vein label (> 120 HU), else from the bright voxels of a liver
        label, else taken as non-contrast; the decision is in ``contrast_reason``.

    Returns
    -------
    AutoLabels
        Merged label map, per-structure provenance and voxel counts, vessel radii (mm), the
        body mask and notes.

    Raises
    ------
    ioplan.errors.InputError
        Not a 3D Volume, NaN or infinite voxels, unknown modality, labels of another shape
        or out of 0-255, or not enough memory.

    References
    ----------
    Frangi AF et al., Multiscale vessel enhancement filtering, MICCAI 1998,
    doi:10.1007/BFb0056195. Sato Y et al., Med Image Anal 1998;2:143,
    doi:10.1016/S1361-8415(98)80009-1. Sources of every threshold: ``auto_labels.toml``.

    Examples
    --------
    >>> import numpy as np
    >>> from ioplan.imaging import Grid, Volume
    >>> hu = np.full((12, 40, 40), -1000, np.int16)
    >>> hu[:, 5:35, 5:35] = 40          # a soft-tissue block in air
    >>> hu[:, 12:28, 12:28] = -850      # with aerated "lung" inside
    >>> out = auto_labels(Volume(hu, Grid(hu.shape, (5.0, 2.0, 2.0))))
    >>> out.provenance["lung"], out.voxel_counts["lung"] == 12 * 16 * 16
    ('auto', True)
    """
    mod, given = _validate(image, modality, labels)
    grid = image.grid
    n_vox = int(np.prod(grid.shape))
    check_memory(
        n_vox * _BYTES_PER_VOXEL, f"automatic labels of a {'x'.join(map(str, grid.shape))} image"
    )
    params = auto_label_parameters()
    p, pv, pm, pc = params["ct"], params["vessels"], params["mr"], params["classes"]
    sp = grid.spacing_mm
    vox_ml = grid.voxel_volume_ml
    axial, _ = _axis_of(image, 2)
    notes: list[str] = []
    values = {
        "skin": int(Label.SKIN),
        "fat": int(Label.FAT),
        "lung": int(Label.LUNG),
        "airway": int(pc["airway"]),
        "bone": int(Label.RIB),
        "liver_vessels": int(Label.PORTAL_VEIN),
        "gas": int(pc["gas"]),
        "soft_tissue": int(Label.MUSCLE),
    }
    out = np.zeros(grid.shape, np.uint8) if given is None else given.astype(np.uint8, copy=True)
    present = set() if given is None else {int(v) for v in np.unique(given)} - {0}
    values.update(_extra_values(extra_values, values, present))
    provenance: dict[str, str] = {}
    masks: dict[str, np.ndarray] = {}
    vessel_radius = np.zeros(grid.shape, np.float32)
    hu = np.asarray(image.array).astype(np.float32, copy=False)

    if mod == "CT":
        contrast_used, reason = _decide_contrast(hu, given, contrast, p)
        body = _ct_body(hu, axial, p)
        low = body & (hu < p["lung_max_hu"])
        masks["skin"] = _skin(body, sp, axial, p)
        lung = _ct_lung(hu, body, axial, vox_ml, p)
        masks["airway"] = _airways(hu, body, lung & low, image, p, notes) if lung.any() else lung
        masks["lung"] = lung & ~masks["airway"]
        masks["bone"] = _bone(hu, body, vox_ml, p)
        masks["fat"] = body & (hu >= p["fat_min_hu"]) & (hu <= p["fat_max_hu"]) & ~lung
        masks["gas"] = low & ~lung & ~masks["airway"]
        if given is not None and int(Label.LIVER) in present and contrast_used:
            if int(Label.PORTAL_VEIN) in present or int(Label.HEPATIC_VEIN) in present:
                notes.append("liver vessels: taken from the labels (portal or hepatic veins given)")
            else:
                v, r = _liver_vessels(hu, given == Label.LIVER, sp, p, pv, notes)
                masks["liver_vessels"] = v
                vessel_radius = r
        elif not contrast_used:
            notes.append(
                "liver vessels: non-contrast CT, vessels not searched (only labels give them)"
            )
        else:
            notes.append("liver vessels: no liver label, vessels not searched")
    else:
        contrast_used, reason = None, "MR: not applicable"
        body, lung, thr = _mr_body_lung(hu, axial, vox_ml, pm)
        masks["skin"] = _skin(body, sp, axial, p)
        masks["lung"] = lung
        notes.append(
            f"MR: body above Otsu's threshold {thr:.4g}; "
            f"lung = signal voids (under {pm['void_of_background']:g} x the median signal outside "
            f"the body) over {pm['lung_min_ml']:g} mL"
        )
        notes.append(
            "MR: fat, bone, airways and vessels are not found from MR signal (labels give them)"
        )
    notes.append(f"contrast: {reason}")

    # paint in priority order, each only where still unlabelled
    order = ("airway", "lung", "bone", "liver_vessels", "skin", "fat", "gas")
    for name in order:
        if name not in masks:
            continue
        value = values[name]
        if value in present or (
            name == "bone" and int(Label.VERTEBRA) in present and int(Label.RIB) in present
        ):
            provenance[name] = "labels"
            continue
        free = out == 0
        if name == "liver_vessels":  # vessels lie inside the liver label: they refine it
            free |= out == Label.LIVER
        paint = masks[name] & free
        if not paint.any():
            if not any(n.startswith(name.split("_")[0][:5]) for n in notes):
                notes.append(f"{name}: none found")
            continue
        out[paint] = value
        provenance[name] = "auto"
        if name == "liver_vessels":
            vessel_radius[~paint] = 0.0
    # what is left of the body is soft tissue, whatever the labels hold (their voxels stay)
    soft = body & (out == 0)
    if soft.any():
        out[soft] = values["soft_tissue"]
        provenance["soft_tissue"] = "auto"
        notes.append(
            f"soft tissue: {int(soft.sum())} unlabelled body voxels stored as muscle "
            "(soft-tissue properties)"
        )
    elif int(Label.MUSCLE) in present:
        provenance["soft_tissue"] = "labels"
    if mod == "CT" and provenance.get("bone") == "auto":
        notes.append("bone: ribs, vertebrae and other bone are one class, stored as rib")
    classes = {name: values[name] for name in provenance}
    counts = {name: int(np.count_nonzero(out == v)) for name, v in classes.items()}
    return AutoLabels(
        labels=Volume(out, grid),
        classes=classes,
        provenance=provenance,
        voxel_counts=counts,
        vessel_radius_mm=Volume(vessel_radius, grid),
        body=Volume(body, grid),
        modality=mod,
        contrast=contrast_used,
        contrast_reason=reason,
        notes=tuple(notes),
        parameters=params,
    )
