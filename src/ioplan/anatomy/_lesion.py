"""A virtual lesion written into a copy of a case: planning studies on real anatomy.

Planning and simulation studies on real patients often insert a synthetic tumour of
known size and place into real anatomy (the image's own texture and noise kept), so
that the same lesion can be planned in many livers. :func:`add_lesion` does that:

- Shape: the phantom's tumour shape (:func:`ioplan.anatomy._shapes.lobulated_sphere`
  with the same seeded :class:`~ioplan.anatomy._shapes.SmoothNoise` field as the
  phantom's tumour step), evaluated at the LPS position of every voxel, so that a
  flipped or permuted grid (RAS NIfTI) gets the same lesion in the patient.
- Labels: the lesion's voxels inside the organ that holds its centre become
  :attr:`~ioplan.anatomy.Label.TUMOR` (the connected part around the centre). Other
  structures inside the shape (a vessel, the gallbladder) keep their labels: a tumour
  grows around a vessel, and the vessel stays a heat sink.
- Image: an offset is *added* (the texture and noise stay), weighted by the share of
  each voxel the lesion fills: a ramp one voxel wide across the surface, the
  partial-volume fraction of a voxel cut by a plane (its width is the voxel's extent
  along the surface normal). CT: ``hu_contrast`` in HU (default -30 HU: hypodense,
  as most liver metastases and many HCC are in the portal venous phase). MR: a
  relative change in percent of the organ's median signal around the lesion
  (default -30 %).
- Record: the case's ``tumors`` list gets the lesion (``source = "virtual"``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.anatomy._case import Case
from ioplan.anatomy._labels import Label
from ioplan.anatomy._phantom import DIAMETER_RANGE_MM, HISTOLOGIES, IRREGULARITY_RANGE, SEED_RANGE
from ioplan.anatomy._shapes import SmoothNoise, lobulated_sphere
from ioplan.errors import InputError

__all__ = [
    "ABLATABLE_ORGANS",
    "CT_CONTRAST_RANGE_HU",
    "DEFAULT_CT_CONTRAST_HU",
    "DEFAULT_MR_CONTRAST_PERCENT",
    "MR_CONTRAST_RANGE_PERCENT",
    "add_lesion",
]

#: Organs a lesion may be placed in: those percutaneous ablation treats.
ABLATABLE_ORGANS = (Label.LIVER, Label.KIDNEY, Label.LUNG)
#: Default CT contrast: a hypodense lesion 30 HU below the local parenchyma (hypovascular
#: metastases and many HCC in the portal venous phase are 20-50 HU below the liver).
DEFAULT_CT_CONTRAST_HU = -30.0
#: Default MR contrast: 30 % below the organ's local signal (T1-weighted hypointense lesion).
DEFAULT_MR_CONTRAST_PERCENT = -30.0
#: Accepted CT contrast, HU (from fluid-like to calcified).
CT_CONTRAST_RANGE_HU = (-500.0, 500.0)
#: Accepted MR contrast, percent of the local signal (never a negative signal).
MR_CONTRAST_RANGE_PERCENT = (-90.0, 300.0)
#: Least share of the lesion's shape that must lie in its organ.
_MIN_IN_ORGAN = 0.5
#: Lattice (mm) and box of the lobulation noise: the phantom's tumour step uses the same.
_NOISE_LATTICE_MM = 25.0
_NOISE_BOX_MM = 40.0


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise InputError(f"{name} must be finite, got {v:g}")
    return v


def _check_inputs(
    case: Case, centre_mm, diameter_mm, irregularity, hu_contrast, histology, seed
) -> tuple[np.ndarray, float, float, float, str]:
    """Validated ``(centre, diameter, irregularity, contrast, unit)``; errors name the options."""
    try:
        c = np.asarray(centre_mm, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        c = np.full(1, np.nan)
    if c.shape != (3,) or not np.all(np.isfinite(c)):
        raise InputError(f"--centre-mm must be three finite numbers x,y,z in mm, got {centre_mm!r}")
    d = _number(diameter_mm, "--diameter-mm")
    lo, hi = DIAMETER_RANGE_MM
    if not lo <= d <= hi:
        raise InputError(f"--diameter-mm must be {lo:g}-{hi:g} mm, got {d:g}")
    irr = _number(irregularity, "--irregularity")
    lo, hi = IRREGULARITY_RANGE
    if not lo <= irr <= hi:
        raise InputError(f"--irregularity must be {lo:g}-{hi:g}, got {irr:g}")
    if histology not in HISTOLOGIES:
        raise InputError(f"--histology must be one of {', '.join(HISTOLOGIES)}; got {histology!r}")
    lo_s, hi_s = SEED_RANGE
    is_int = isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
    if not is_int or not lo_s <= seed <= hi_s:
        raise InputError(f"--seed must be an integer {lo_s}-{hi_s}, got {seed!r}")
    if case.modality == "MR":
        unit, default, (lo, hi) = "percent", DEFAULT_MR_CONTRAST_PERCENT, MR_CONTRAST_RANGE_PERCENT
    else:
        unit, default, (lo, hi) = "HU", DEFAULT_CT_CONTRAST_HU, CT_CONTRAST_RANGE_HU
    contrast = default if hu_contrast is None else _number(hu_contrast, "--hu-contrast")
    if not lo <= contrast <= hi:
        what = "HU" if unit == "HU" else "% of the local MR signal"
        raise InputError(f"--hu-contrast must be {lo:g} to {hi:g} {what}, got {contrast:g}")
    return c, d, irr, contrast, unit


def _fmt(point) -> str:
    return ", ".join(f"{v:g}" for v in np.round(np.asarray(point, float), 2))


def _existing_tumour_records(case: Case) -> list[dict[str, Any]]:
    """Records for tumours the labels hold but ``case.tumors`` does not list.

    Planning counts tumours by their records when there are any; a labelled tumour
    without one would become unreachable once the virtual lesion is listed.
    """
    if case.tumors:
        return [dict(t) for t in case.tumors]
    tum = np.asarray(case.labels.array) == Label.TUMOR
    if not tum.any():
        return []
    grid = case.labels.grid
    comps, n = ndimage.label(tum)
    out = []
    for k in range(1, n + 1):
        idx = np.argwhere(comps == k)
        # the component's voxel nearest its centroid: a centre that lies in the tumour
        near = idx[np.argmin(((idx - idx.mean(axis=0)) ** 2).sum(axis=1))]
        vol_mm3 = len(idx) * grid.voxel_volume_ml * 1000.0
        out.append(
            {
                "centre_mm": [round(float(v), 3) for v in grid.index_to_lps(near)],
                "diameter_mm": round(2.0 * (3.0 * vol_mm3 / (4.0 * math.pi)) ** (1 / 3), 2),
                "source": "labels",
            }
        )
    return out


def add_lesion(
    case: Case,
    centre_mm,
    diameter_mm: float,
    *,
    irregularity: float = 0.0,
    hu_contrast: float | None = None,
    histology: str = "hcc",
    seed: int = 0,
) -> Case:
    """A copy of ``case`` with a virtual lesion written into its image and labels.

    Parameters
    ----------
    case : Case
        A CT or MR case; the lesion's centre must lie in one of its
        :data:`ABLATABLE_ORGANS` (liver, kidney, lung).
    centre_mm : sequence of 3 float
        Centre ``(x, y, z)``, patient LPS mm.
    diameter_mm : float
        Nominal diameter, 3-120 mm.
    irregularity : float
        0 (a sphere) to 0.5: the local radius varies by up to this share, as the
        phantom's tumours (same shape function, same seeded noise).
    hu_contrast : float, optional
        CT: offset added to the image inside the lesion, HU (-500 to 500; default
        :data:`DEFAULT_CT_CONTRAST_HU`, -30). MR: change in percent of the organ's
        median signal around the lesion (-90 to 300; default -30).
    histology : str
        One of :data:`~ioplan.anatomy.HISTOLOGIES` (recorded; planning reads it for
        the margin).
    seed : int
        Seed of the lobulation (0 to 2**32 - 1); the same seed gives the same bytes.

    Returns
    -------
    Case
        A new case (the input is not changed): image and labels copied with the
        lesion, ``tumors`` extended by a record ``{"centre_mm", "diameter_mm",
        "irregularity", "histology", "source": "virtual", "seed", "organ",
        "contrast", "contrast_unit", "volume_ml"}``. Other fields are kept.

    Raises
    ------
    ioplan.errors.InputError
        Numbers out of range; a centre outside the image, in no ablatable organ
        (the message names the structure there), or inside a tumour; a lesion that
        would leave the image, touch or overlap an existing tumour, or lie mostly
        (over half) outside its organ.

    Notes
    -----
    Voxels of the shape are those whose centre lies inside it; the image offset is
    weighted by ``clip(0.5 - d / h, 0, 1)``, with ``d`` the signed distance of the
    voxel centre to the surface (mm, positive outside) and ``h`` the voxel's extent
    along the surface normal: the filled share of a voxel cut by a plane, a blur of
    one voxel. Only voxels of the organ within one voxel of the lesion change, so
    fat or vessels beside it keep their values.

    Examples
    --------
    >>> from ioplan.anatomy import PhantomConfig, generate_phantom
    >>> case = Case.from_phantom(generate_phantom(PhantomConfig(spacing_mm=5.0, seed=1)))
    >>> new = add_lesion(case, (-100.0, 0.0, 0.0), 20.0, seed=4)
    >>> new.tumors[-1]["source"], len(new.tumors) == len(case.tumors) + 1
    ('virtual', True)
    """
    c, diameter, irr, contrast, unit = _check_inputs(
        case, centre_mm, diameter_mm, irregularity, hu_contrast, histology, seed
    )
    grid = case.image.grid
    labels = np.asarray(case.labels.array)
    spacing = np.asarray(grid.spacing_mm, float)
    shape = np.asarray(grid.shape)
    where = _fmt(c)
    if not bool(grid.contains_lps(c)):
        raise InputError(f"lesion centre (--centre-mm) {where} mm lies outside the image")
    ci = grid.lps_to_index(c)
    at = labels[tuple(np.clip(np.rint(ci).astype(int), 0, shape - 1))]
    if at == Label.TUMOR:
        raise InputError(f"lesion centre (--centre-mm) {where} mm lies in an existing tumour")
    if at not in [int(o) for o in ABLATABLE_ORGANS]:
        try:
            name = Label(int(at)).name.lower()
        except ValueError:
            name = f"label value {int(at)}"
        if at == Label.BACKGROUND:
            name = "no labelled organ (background)"
        organs = ", ".join(o.name.lower() for o in ABLATABLE_ORGANS)
        raise InputError(
            f"lesion centre (--centre-mm) {where} mm lies in {name}, not in an organ "
            f"that ablation treats ({organs})"
        )
    organ = Label(int(at))
    coarsest = float(np.max(spacing))
    if diameter < 2.0 * coarsest:
        # as `ioplan phantom`: a lesion under two voxels is a voxel or two of noise that no
        # plan, margin or response measure can resolve
        raise InputError(
            f"--diameter-mm {diameter:g} is under two voxels of this image ({2 * coarsest:g} mm "
            f"at {coarsest:g} mm voxels)"
        )
    r_max = 0.5 * diameter * (1.0 + irr)
    # the shape's extent in index units (exact for any orthonormal direction)
    reach = r_max / spacing
    room_mm = float(np.min(np.minimum(ci + 0.5, shape - 0.5 - ci) * spacing))
    if np.any(ci - reach < -0.5) or np.any(ci + reach > shape - 0.5):
        raise InputError(
            f"a lesion of {diameter:g} mm (reaching {r_max:.1f} mm from its centre) at {where} mm "
            f"would leave the image: its centre is {max(room_mm, 0.0):.1f} mm from the edge"
        )
    # the box: the shape plus two voxels (the edge ramp and the touch test)
    pad = reach + 2.0
    i0 = np.maximum(np.floor(ci - pad).astype(int), 0)
    i1 = np.minimum(np.ceil(ci + pad).astype(int) + 1, shape)
    box = tuple(slice(a, b) for a, b in zip(i0, i1, strict=True))
    idx = np.stack(
        np.meshgrid(*(np.arange(a, b) for a, b in zip(i0, i1, strict=True)), indexing="ij"),
        axis=-1,
    )
    p = grid.index_to_lps(idx)
    rel = p - c
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    rng = np.random.default_rng(int(seed))
    half = (-_NOISE_BOX_MM,) * 3, (_NOISE_BOX_MM,) * 3
    noise = SmoothNoise(rng, _NOISE_LATTICE_MM, *half)
    inside, frac = lobulated_sphere(x, y, z, c, diameter, irr, noise)
    sub = labels[box]
    region = sub == organ
    # the connected part around the centre (a shape across a fissure keeps one piece)
    comps, _ = ndimage.label(inside & region)
    centre_local = tuple(np.clip(np.rint(ci).astype(int) - i0, 0, np.asarray(sub.shape) - 1))
    pick = int(comps[centre_local])
    tumour = comps == pick if pick else np.zeros(sub.shape, bool)
    if np.any(ndimage.binary_dilation(inside) & (sub == Label.TUMOR)):
        raise InputError(
            f"a lesion of {diameter:g} mm at {where} mm would touch or overlap an existing tumour"
        )
    n_shape = int(inside.sum())
    if n_shape == 0 or tumour.sum() < _MIN_IN_ORGAN * n_shape:
        share = 0.0 if n_shape == 0 else 100.0 * tumour.sum() / n_shape
        raise InputError(
            f"only {share:.0f} % of a lesion of {diameter:g} mm at {where} mm lies in the "
            f"{organ.name.lower()} (at least {100 * _MIN_IN_ORGAN:.0f} % must): move it deeper"
        )
    # signed distance to the surface (mm, + outside) and the voxel's extent along the normal
    r = np.sqrt((rel * rel).sum(axis=-1))
    local_r = np.where(frac > 1e-9, r / np.maximum(frac, 1e-9), 0.5 * diameter)
    dist = r - local_r
    normal_idx = (rel @ grid.direction_matrix) / np.maximum(r, 1e-9)[..., None]
    h = np.where(r > 1e-9, np.abs(normal_idx) @ spacing, float(spacing.mean()))
    weight = np.clip(0.5 - dist / h, 0.0, 1.0)
    near = ndimage.binary_dilation(tumour) & (region | tumour)
    weight = np.where(near, weight, 0.0)
    image = np.asarray(case.image.array)
    values = image[box].astype(np.float64)
    if unit == "HU":
        offset = contrast
    else:
        shell = region & ~inside & (r <= r_max + 10.0)
        ref_vals = values[shell] if shell.any() else values[tumour]
        offset = contrast / 100.0 * float(np.median(ref_vals))
    values = values + weight * offset
    new_image = image.copy()
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        new_image[box] = np.clip(np.rint(values), info.min, info.max).astype(image.dtype)
    else:
        new_image[box] = values.astype(image.dtype)
    new_labels = labels.copy()
    new_labels[box][tumour] = int(Label.TUMOR)
    record = {
        "centre_mm": [float(v) for v in c],
        "diameter_mm": diameter,
        "irregularity": irr,
        "histology": histology,
        "source": "virtual",
        "seed": int(seed),
        "organ": organ.name.lower(),
        "contrast": contrast,
        "contrast_unit": unit,
        "volume_ml": round(float(tumour.sum()) * grid.voxel_volume_ml, 4),
    }
    return dataclasses.replace(
        case,
        image=case.image.with_array(new_image),
        labels=case.labels.with_array(new_labels),
        tumors=(*_existing_tumour_records(case), record),
    )
