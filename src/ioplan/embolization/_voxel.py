"""Voxel dosimetry on SPECT/CT or Y-90 PET: local deposition and S-value kernel; DVHs.

Activity: the injected activity times (1 - LSF) is spread over the perfused liver (tumour
and liver labels) in proportion to the image's counts (patient-relative calibration);
the shunted part goes to the lungs, where the dose is the mean lung dose from the CT
lung mass (density (HU + 1000)/1000 g/mL, Kao et al. 2014), since SPECT counts in the
lung are unreliable and the soft-tissue kernel does not hold there.

``ldm``: local deposition, D = CF A_voxel / m_voxel with the CT density.
``kernel``: convolution (FFT) with the Y-90 voxel S-values in soft tissue of Lanconelli
et al. (2012) at 4.8 mm. Images on another voxel size are brought to 4.8 mm voxels by
moving the activity, convolved, and the dose is interpolated back. This is defensible because
SPECT resolution (10-15 mm FWHM) is coarser than the 4.8 mm voxel, so the resampling
loses nothing the image held. The activity is moved by conservative rebinning (each fine
voxel shared by volume overlap), so the total is kept exactly and locally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.signal import fftconvolve

from ioplan.anatomy import Label
from ioplan.embolization._checks import check_lsf, check_range
from ioplan.embolization._models import _cf, _lung_mass, constants, mean_life_s
from ioplan.errors import InputError, InvalidImageError, OutputExistsError
from ioplan.imaging import Grid, Volume, check_writable, resample

__all__ = [
    "KERNEL_VOXEL_MM",
    "VoxelDose",
    "dvh_statistics",
    "s_value_kernel",
    "synthetic_spect",
    "voxel_dose",
    "write_synthetic_spect",
]

KERNEL_VOXEL_MM = 4.8
#: Structures reported (ioplan labels).
STRUCTURES = {
    "tumor": (Label.TUMOR,),
    "normal_liver": (Label.LIVER,),
    "lung": (Label.LUNG,),
}


@lru_cache(maxsize=1)
def s_value_kernel() -> np.ndarray:
    """The 11 x 11 x 11 kernel (mGy per MBq s) from the tabulated first octant."""
    text = resources.files("ioplan.embolization").joinpath(
        "data/y90_s_values_4.8mm_soft.csv"
    ).read_text()  # fmt: skip
    rows = [ln.split(",") for ln in text.splitlines() if ln and not ln.startswith(("#", "i,"))]
    k = np.zeros((11, 11, 11))
    for i, j, kk, v in rows:
        idx = (int(i), int(j), int(kk))
        for perm in {(a, b, c) for a in idx for b in idx for c in idx
                     if sorted((a, b, c)) == sorted(idx)}:  # fmt: skip
            for s in np.ndindex(2, 2, 2):
                p = tuple(5 + (-1 if s[n] else 1) * perm[n] for n in range(3))
                k[p] = float(v)
    if np.any(k == 0):
        raise RuntimeError("the S-value table is incomplete")
    return k


def kernel_energy_mev() -> float:
    """Energy per decay deposited within the kernel: sum(S) x voxel mass (closure check)."""
    rho = constants()["constants"]["soft_tissue_density_g_ml"]
    m_kg = (KERNEL_VOXEL_MM / 10.0) ** 3 * rho / 1000.0
    # S in mGy per MBq s = 1e-3 J/kg per 1e6 decays
    j_per_decay = float(s_value_kernel().sum()) * 1e-3 * m_kg / 1e6
    return j_per_decay / 1.602176634e-13


@dataclass(frozen=True)
class VoxelDose:
    """A dose map and its statistics."""

    dose: Volume
    method: str
    cf_gy_kg_per_gbq: float
    structures: dict[str, dict[str, float]]
    lung_mass_kg: float | None
    lung_dose_gy: float | None
    notes: tuple[str, ...]
    dvh: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False, default_factory=dict)
    lsf: float = 0.0
    #: where the shunt came from: "given", "spect" (lung counts) or "none" (taken as 0)
    lsf_from: str = "given"
    #: the activity the map holds (GBq, with the lung's share) and whether the image gave
    #: it (``absolute``) or the user did
    activity_gbq: float | None = None
    absolute: bool = False

    @property
    def warnings(self) -> tuple[str, ...]:
        """Warnings: the EANM 2022 limits, an implausible activity or mean dose.

        The lung dose and shunt against the EANM 2022 limits, as ``sirt single`` does; an
        absolute image whose activity no treatment has; a mean dose past any target.
        """
        from ioplan.embolization._checks import RANGES
        from ioplan.embolization._models import limit_warnings

        doses = {} if self.lung_dose_gy is None else {"lung_dose_gy": self.lung_dose_gy}
        if "normal_liver" in self.structures:  # the mean dose to the normal liver
            doses["normal_dose_gy"] = float(self.structures["normal_liver"]["mean_gy"])
        out = limit_warnings(doses, self.lsf, None,
                             activity_gbq=self.activity_gbq if self.absolute else None)
        least = constants()["limits"]["smallest_vial_gbq"]
        if self.absolute and self.activity_gbq is not None and self.activity_gbq < 0.1 * least:
            out.append(
                f"the absolute image holds {self.activity_gbq:.3g} GBq, a tenth of the "
                f"smallest vial ({least:g} GBq) or less: is it in counts, not Bq/mL? (then "
                "give --activity-gbq instead of --absolute)"
            )
        ceiling = RANGES["dose_gy"][1]
        for name, st in self.structures.items():
            if float(st.get("mean_gy", 0.0)) > ceiling:
                out.append(
                    f"mean dose {float(st['mean_gy']):.0f} Gy to {name} is beyond any "
                    f"published target (the {ceiling:g} Gy ceiling; glass segmentectomy > "
                    "400 Gy, EANM 2022): check that the SPECT is a Y-90 image of this "
                    "treatment (not a mask) on this case"
                )
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "cf_gy_kg_per_gbq": self.cf_gy_kg_per_gbq,
            "structures": self.structures,
            "lung_mass_kg": None if self.lung_mass_kg is None else round(self.lung_mass_kg, 4),
            "lung_dose_gy": self.lung_dose_gy,
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }


def dvh_statistics(dose: np.ndarray, mask: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """Mean, D50/D70/D95/D98 (Gy received by at least that % of the volume), V100/V150/V205."""
    d = np.sort(np.asarray(dose, float)[mask])[::-1]
    if d.size == 0:
        return {}
    out = {"volume_ml": float(d.size * voxel_ml), "mean_gy": float(d.mean()),
           "max_gy": float(d[0])}  # fmt: skip
    for p in (50, 70, 95, 98):
        out[f"d{p}_gy"] = float(d[min(d.size - 1, int(np.ceil(p / 100 * d.size)) - 1)])
    for v in (100, 150, 205):
        out[f"v{v}_percent"] = float(100.0 * np.mean(d >= v))
    return {k: round(v, 4) for k, v in out.items()}


def _overlap(n_fine: int, h_fine: float, n_coarse: int, h_coarse: float) -> np.ndarray:
    """W[c, f]: the fraction of fine cell f lying in coarse cell c (1D, shared first edge)."""
    f0 = np.arange(n_fine) * h_fine
    c0 = np.arange(n_coarse) * h_coarse
    lo = np.maximum(c0[:, None], f0[None, :])
    hi = np.minimum(c0[:, None] + h_coarse, f0[None, :] + h_fine)
    return np.clip(hi - lo, 0.0, None) / h_fine


def _kernel_dose_gy(act_gbq: np.ndarray, grid: Grid) -> np.ndarray:
    """Dose (Gy) from activity per voxel by convolution with the 4.8 mm S-value kernel."""
    k = s_value_kernel()
    a_mbq_s = act_gbq * 1e3 * mean_life_s()  # cumulated activity, MBq s
    if np.allclose(grid.spacing_mm, KERNEL_VOXEL_MM, atol=0.05):
        return fftconvolve(a_mbq_s, k, mode="same") * 1e-3
    extent = np.asarray(grid.shape) * np.asarray(grid.spacing_mm)
    shape = tuple(int(max(1, np.ceil(e / KERNEL_VOXEL_MM))) for e in extent)
    first = grid.index_to_lps(
        [0.5 * KERNEL_VOXEL_MM / s - 0.5 for s in grid.spacing_mm]
    )  # the coarse grid's first centre, edges aligned
    coarse = Grid(shape, (KERNEL_VOXEL_MM,) * 3, tuple(first), grid.direction)
    # conservative rebinning: each fine voxel's activity is shared among the coarse voxels
    # by the overlap of their extents, axis by axis (both grids start at the same edge)
    ac = a_mbq_s
    for axis, (nf, sf, nc) in enumerate(zip(grid.shape, grid.spacing_mm, shape, strict=True)):
        w = _overlap(nf, sf, nc, KERNEL_VOXEL_MM)
        ac = np.moveaxis(np.tensordot(w, np.moveaxis(ac, axis, 0), axes=(1, 0)), 0, axis)
    dose_c = fftconvolve(ac, k, mode="same") * 1e-3
    back = resample(Volume(dose_c.astype(np.float32), coarse), grid, interpolation="linear")
    return np.asarray(back.array, float)


def voxel_dose(
    spect: Volume, ct: Volume, labels: Volume, activity_gbq: float | None, *,
    lsf: float | None = 0.0,
    method: str = "ldm", cf: float | None = None, lung_mass_kg: float | None = None,
    absolute: bool = False, territory: np.ndarray | None = None,
) -> VoxelDose:  # fmt: skip
    """Absorbed dose (Gy) per voxel on the CT/label grid (see the module doc).

    Parameters
    ----------
    spect : Volume
        SPECT (counts, >= 0) or, with ``absolute``, activity concentration (Bq/mL) at
        injection (quantitative Y-90 PET or calibrated SPECT); any grid overlapping the
        labels (resampled linearly onto them).
    ct : Volume
        CT (HU) on the label grid; density (HU + 1000) / 1000 g/mL.
    labels : Volume
        ioplan label map (liver 7, tumour 8, lung 21), integer values.
    activity_gbq : float or None
        Injected activity (GBq, > 0 and <= 20); None with ``absolute``.
    lsf : float or None
        Lung shunt fraction, in [0, 1): the lung receives that part of the activity. None:
        the SPECT's share of counts in the lung label (lung / (lung + perfused liver)),
        or 0 without a lung label or lung counts (said in ``notes``).
    method : {"ldm", "kernel"}
        Local deposition, or convolution with the 4.8 mm Y-90 voxel S-values.
    cf : float, optional
        Dose constant (Gy kg/GBq) for the local deposition: 49.67 (default), 50, 49.38.
    lung_mass_kg : float, optional
        Lung mass (kg, 0.1-3) instead of the one measured on the CT lung label (which may
        hold only the bases on an abdominal scan).
    absolute : bool
        The image holds Bq/mL; the liver's activity is read from it.
    territory : ndarray of bool, optional
        The perfused territory on the label grid (``ioplan arteries``): liver and tumour
        outside it are neither perfused nor counted in the DVHs.

    Returns
    -------
    VoxelDose
        The dose map (Gy, float32, on the label grid), DVH statistics per structure
        (mean, D50/70/95/98, V100/150/205), the lung mass and mean lung dose, notes.

    References
    ----------
    Lanconelli N et al., A free database of radionuclide voxel S values for the dosimetry
    of nonuniform activity distributions, Phys Med Biol 2012;57:517-533 (kernel); Kao et
    al., EJNMMI Res 2014;4:33, doi:10.1186/s13550-014-0033-7 (lung mass from CT); EANM
    2022 (Weber et al.), doi:10.1007/s00259-021-05600-z.

    Examples
    --------
    A uniform block of liver at 1.04 g/mL (40 HU) with 2 GBq: the local deposition dose is
    CF A / M everywhere.

    >>> g = Grid((10, 10, 10), (4.8, 4.8, 4.8))
    >>> lab = Volume(np.full(g.shape, int(Label.LIVER), np.uint8), g)
    >>> ct = Volume(np.full(g.shape, 40.0, np.float32), g)
    >>> spect = Volume(np.ones(g.shape, np.float32), g)
    >>> res = voxel_dose(spect, ct, lab, 2.0)
    >>> mass_kg = 1000 * 0.48**3 * 1.04 / 1000
    >>> bool(abs(res.structures["normal_liver"]["mean_gy"] - 49.67 * 2.0 / mass_kg) < 1e-2)
    True
    """
    c = _cf(cf)
    f = check_lsf(lsf) if lsf is not None else None
    if absolute:
        if activity_gbq is not None:
            raise InputError("give either an absolute (Bq/mL) image or --activity-gbq, not both")
    elif activity_gbq is None:
        raise InputError("give the injected activity (--activity-gbq), or --absolute")
    else:
        activity_gbq = check_range("activity_gbq", activity_gbq)
    if method not in ("ldm", "kernel"):
        raise InputError(f"method (--method) must be ldm or kernel, got {method!r}")
    if lung_mass_kg is not None:
        lung_mass_kg = _lung_mass(lung_mass_kg)
    _check_labels(labels)
    ct_hu = np.asarray(ct.array, float)
    if not np.all(np.isfinite(ct_hu)):
        raise InvalidImageError("the CT holds NaN or infinite values")
    g = labels.grid
    ct.grid.require_same(g, what="label map (the CT and the labels must share a grid)")
    notes = []
    counts = np.asarray(spect.array, float)
    if not np.all(np.isfinite(counts)):
        raise InputError("the SPECT holds NaN or infinite values")
    if counts.min() < 0:
        raise InputError(f"the SPECT has negative counts (min {counts.min():g})")
    if spect.grid != g:
        if not spect.grid.overlaps(g):
            raise InputError("the SPECT and the label map do not overlap in space")
        counts = np.asarray(resample(Volume(counts.astype(np.float32), spect.grid), g,
                                     interpolation="linear").array, float)  # fmt: skip
        notes.append("the SPECT was resampled (linear) onto the CT/label grid")
    lab = np.asarray(labels.array)
    perfused = np.isin(lab, [int(Label.LIVER), int(Label.TUMOR)])
    if territory is not None:
        if np.shape(territory) != lab.shape:
            raise InputError("the territory is not on the label grid")
        outside = perfused & ~np.asarray(territory, bool)
        lab = np.where(outside, 0, lab)
        perfused &= ~outside
        notes.append(
            f"perfused territory: {perfused.sum() * g.voxel_volume_ml:.1f} mL "
            f"(liver and tumour outside it, {outside.sum() * g.voxel_volume_ml:.1f} mL, left out)"
        )
    if not perfused.any():
        raise InputError("the label map has no liver or tumour: no perfused territory")
    if not (lab == int(Label.LIVER)).any():
        raise InputError("the label map has no liver: radioembolization dosimetry is for the "
                         "liver (a tumour elsewhere is not reached through the hepatic artery)"
                         )  # fmt: skip
    c_in = np.where(perfused, counts, 0.0)
    total = c_in.sum()
    if total <= 0:
        raise InputError("the SPECT has no counts in the perfused liver")
    lsf_from = "given"
    if f is None:
        in_lung = float(counts[lab == int(Label.LUNG)].sum())
        f = in_lung / (in_lung + total) if in_lung > 0 else 0.0
        lsf_from = "spect" if in_lung > 0 else "none"
        notes.append(
            f"lung shunt fraction {f:.4f} from the SPECT's counts in the lung label (--lsf "
            "sets it, e.g. from planar MAA)" if in_lung > 0 else
            "no counts in a lung label: the lung shunt is taken as 0 (--lsf sets it)"
        )  # fmt: skip
        f = check_lsf(min(f, 0.99))
    tum = lab == int(Label.TUMOR)
    if tum.any() and c_in[tum].sum() <= 0.01 * total * tum.sum() / perfused.sum():
        notes.append("the tumour holds almost no counts: it may lie outside the perfused territory")
    if absolute:
        act = c_in * g.voxel_volume_ml * 1e-9  # Bq/mL -> GBq per voxel
        activity_gbq = float(act.sum()) / (1.0 - f)
        notes.append(
            f"absolute image: {act.sum():.4f} GBq in the perfused liver, "
            f"{activity_gbq:.4f} GBq with the lung shunt"
        )
    else:
        act = activity_gbq * (1.0 - f) * c_in / total  # GBq per voxel
    rho = np.clip((ct_hu + 1000.0) / 1000.0, 1e-3, None)  # g/mL
    mass_kg = rho * g.voxel_volume_ml / 1000.0
    if method == "ldm":
        dose = c * act / mass_kg
    else:
        dose = _kernel_dose_gy(act, g)
    lung = lab == int(Label.LUNG)
    lung_kg = None
    if lung.any() or lung_mass_kg is not None:
        lung_kg = float(mass_kg[lung].sum()) if lung_mass_kg is None else float(lung_mass_kg)
        d_lung = c * activity_gbq * f / lung_kg
        dose = np.where(lung, d_lung, dose)
        how = "given" if lung_mass_kg is not None else "measured on the CT"
        notes.append(f"lung: mean dose {d_lung:.2f} Gy, mass {lung_kg:.3f} kg ({how})")
        if lung_mass_kg is None and lung_kg < 0.5 and d_lung > 0:
            notes.append(
                f"the lung label holds only {lung_kg:.2f} kg (part of the lungs on this scan?): "
                "the lung dose reads high; give --lung-mass-kg (1 kg convention) if so"
            )
    elif f > 0:
        notes.append("no lung label: the lung dose is not in the map")
    stats, dvh = {}, {}
    for name, labs in STRUCTURES.items():
        m = np.isin(lab, [int(x) for x in labs])
        if m.any():
            stats[name] = dvh_statistics(dose, m, g.voxel_volume_ml)
            d = np.sort(dose[m])
            dvh[name] = (d, 100.0 * (1.0 - np.arange(d.size) / d.size))
    return VoxelDose(
        dose=Volume(dose.astype(np.float32), g),
        method=method,
        cf_gy_kg_per_gbq=c,
        structures=stats,
        lung_mass_kg=lung_kg,
        lung_dose_gy=None if lung_kg is None else round(c * activity_gbq * f / lung_kg, 4),
        notes=tuple(notes),
        dvh=dvh,
        lsf=float(f),
        lsf_from=lsf_from,
        activity_gbq=float(activity_gbq),
        absolute=bool(absolute),
    )


def _check_labels(labels: Volume) -> None:
    """An ioplan label map: a few non-negative integer values (not a CT, not a SPECT)."""
    vals = np.unique(np.asarray(labels.array))
    if (
        vals.size > 256
        or not np.all(np.isfinite(vals))
        or np.any(vals != np.round(vals))
        or vals.min() < 0
    ):
        raise InvalidImageError(
            f"the label map holds {vals.size} distinct values from {vals.min():g} to "
            f"{vals.max():g}, not labels: is it a CT or a SPECT? (--labels takes an ioplan "
            "label map: liver 7, tumour 8, lung 21)"
        )


def _check_spect_parameters(tn: float, lsf: float, fwhm_mm: float, total_counts: float,
                            seed: int) -> None:  # fmt: skip
    check_range("tn", tn)
    check_lsf(lsf)
    check_range("fwhm_mm", fwhm_mm)
    check_range("total_counts", total_counts)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**63:
        raise InputError(f"seed (--seed) must be an integer >= 0 and < 2^63, got {seed}")


def synthetic_spect(
    labels: Volume, *, tn: float = 4.0, lsf: float = 0.05, fwhm_mm: float = 12.0,
    total_counts: float = 2e6, seed: int = 0,
) -> Volume:  # fmt: skip
    """A SPECT-like count map for tests and demos.

    Liver uptake 1, tumour ``tn``, lungs carrying ``lsf`` of all counts, blurred by a
    Gaussian of ``fwhm_mm`` (its kernel never wider than the image) and drawn with
    Poisson noise (``seed``).

    Parameters
    ----------
    labels : Volume
        ioplan label map with a liver or a tumour.
    tn : float
        Tumour-to-normal uptake ratio, > 0 and <= 100.
    lsf : float
        Lung shunt fraction, in [0, 1).
    fwhm_mm : float
        Resolution (mm), > 0 and <= 100.
    total_counts : float
        Expected total counts, 1 to 1e10.
    seed : int
        Seed of the Poisson noise, >= 0.

    Examples
    --------
    >>> g = Grid((8, 8, 8), (4.0, 4.0, 4.0))
    >>> lab = np.full(g.shape, int(Label.LIVER), np.uint8)
    >>> spect = synthetic_spect(Volume(lab, g), total_counts=1e5, seed=1)
    >>> bool(abs(float(spect.array.sum()) - 1e5) < 5 * 1e5**0.5)
    True
    """
    _check_spect_parameters(tn, lsf, fwhm_mm, total_counts, seed)
    _check_labels(labels)
    lab = np.asarray(labels.array)
    liver = lab == int(Label.LIVER)
    tum = lab == int(Label.TUMOR)
    lung = lab == int(Label.LUNG)
    if not (liver.any() or tum.any()):
        raise InputError("the label map has no liver or tumour: nothing takes up the spheres")
    act = liver * 1.0 + tum * float(tn)
    if lung.any() and lsf > 0:
        act = act + lung * (lsf / (1 - lsf)) * act.sum() / lung.sum()
    sigma = float(fwhm_mm) / 2.3548 / np.asarray(labels.grid.spacing_mm)
    # the usual 4-sigma kernel, but never wider than the image (a huge FWHM is a flat blur)
    radius = [min(int(4.0 * s + 0.5), n) for s, n in zip(sigma, lab.shape, strict=True)]
    blurred = ndimage.gaussian_filter(act, sigma, radius=radius)
    blurred *= float(total_counts) / max(blurred.sum(), 1e-12)
    counts = np.random.default_rng(int(seed)).poisson(blurred).astype(np.float32)
    return Volume(counts, labels.grid)


#: The NIfTI header description that marks a synthetic SPECT (``--overwrite`` replaces
#: only a file that carries it).
SYNTHETIC_SPECT_DESCRIPTION = "ioplan synthetic SPECT (counts)"


def write_synthetic_spect(
    case: str | Path, out: str | Path, *, tn: float = 4.0, lsf: float = 0.05,
    fwhm_mm: float = 12.0, total_counts: float = 2e6, seed: int = 0, overwrite: bool = False,
) -> Path:  # fmt: skip
    """The synthetic SPECT of a case folder written to ``out`` (NIfTI); cheap checks first.

    The parameters and the output (a ``.nii``/``.nii.gz`` name, not there unless
    ``overwrite``, writable) are checked before the case is read; see
    :func:`synthetic_spect`.
    """
    from ioplan.anatomy import load_case
    from ioplan.imaging import nifti_description, write_nifti

    _check_spect_parameters(tn, lsf, fwhm_mm, total_counts, seed)
    out = Path(out)
    if not out.name.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"--out must be a NIfTI file name (.nii or .nii.gz), got {out}")
    if out.is_dir():
        raise OutputExistsError(f"{out} is a folder; --out takes a NIfTI file name")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists (--overwrite replaces it)")
    if out.exists() and nifti_description(out) != SYNTHETIC_SPECT_DESCRIPTION:
        # --overwrite replaces an earlier synthetic SPECT, never a case's image or labels
        raise OutputExistsError(
            f"{out} is not a synthetic SPECT written by ioplan: --overwrite replaces only "
            "this command's earlier output; choose another file name"
        )
    check_writable(out.parent)
    c = load_case(case)
    spect = synthetic_spect(c.labels, tn=tn, lsf=lsf, fwhm_mm=fwhm_mm,
                            total_counts=total_counts, seed=seed)  # fmt: skip
    return write_nifti(spect, out, overwrite=overwrite, description=SYNTHETIC_SPECT_DESCRIPTION)
