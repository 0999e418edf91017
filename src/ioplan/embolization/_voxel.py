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
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.signal import fftconvolve

from ioplan.anatomy import Label
from ioplan.embolization._models import _cf, check_lsf, constants, mean_life_s
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume, resample

__all__ = [
    "KERNEL_VOXEL_MM",
    "VoxelDose",
    "dvh_statistics",
    "s_value_kernel",
    "synthetic_spect",
    "voxel_dose",
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "cf_gy_kg_per_gbq": self.cf_gy_kg_per_gbq,
            "structures": self.structures,
            "lung_mass_kg": None if self.lung_mass_kg is None else round(self.lung_mass_kg, 4),
            "lung_dose_gy": self.lung_dose_gy,
            "notes": list(self.notes),
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
    spect: Volume, ct: Volume, labels: Volume, activity_gbq: float | None, *, lsf: float = 0.0,
    method: str = "ldm", cf: float | None = None, lung_mass_kg: float | None = None,
    absolute: bool = False,
) -> VoxelDose:  # fmt: skip
    """Absorbed dose (Gy) per voxel on the CT/label grid (see the module doc).

    ``lung_mass_kg`` overrides the lung mass measured on the CT (whose lung label may
    hold only the bases on an abdominal scan). ``absolute``: the image holds activity
    concentration in Bq/mL at the time of injection (quantitative Y-90 PET or calibrated
    SPECT); the activity in the liver is then read from it and ``activity_gbq`` (which
    must then be None) is not needed; the lung receives ``lsf`` of the total.
    """
    c = _cf(cf)
    f = check_lsf(lsf)
    if absolute:
        if activity_gbq is not None:
            raise InputError("give either an absolute (Bq/mL) image or --activity-gbq, not both")
    elif activity_gbq is None or not np.isfinite(activity_gbq) or activity_gbq <= 0:
        raise InputError(f"activity must be > 0 GBq, got {activity_gbq}")
    if method not in ("ldm", "kernel"):
        raise InputError(f"method must be ldm or kernel, got {method!r}")
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
    if not perfused.any():
        raise InputError("the label map has no liver or tumour: no perfused territory")
    c_in = np.where(perfused, counts, 0.0)
    total = c_in.sum()
    if total <= 0:
        raise InputError("the SPECT has no counts in the perfused liver")
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
    rho = np.clip((np.asarray(ct.array, float) + 1000.0) / 1000.0, 1e-3, None)  # g/mL
    mass_kg = rho * g.voxel_volume_ml / 1000.0
    if method == "ldm":
        dose = c * act / mass_kg
    else:
        dose = _kernel_dose_gy(act, g)
    lung = lab == int(Label.LUNG)
    lung_kg = None
    if lung_mass_kg is not None and (not np.isfinite(lung_mass_kg) or lung_mass_kg <= 0):
        raise InputError(f"lung mass must be > 0 kg, got {lung_mass_kg}")
    if lung.any() or lung_mass_kg is not None:
        lung_kg = float(mass_kg[lung].sum()) if lung_mass_kg is None else float(lung_mass_kg)
        d_lung = c * activity_gbq * f / lung_kg
        dose = np.where(lung, d_lung, dose)
        how = "given" if lung_mass_kg is not None else "measured on the CT"
        notes.append(f"lung: mean dose {d_lung:.2f} Gy, mass {lung_kg:.3f} kg ({how})")
        if lung_mass_kg is None and lung_kg < 0.5:
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
    )


def synthetic_spect(
    labels: Volume, *, tn: float = 4.0, lsf: float = 0.05, fwhm_mm: float = 12.0,
    total_counts: float = 2e6, seed: int = 0,
) -> Volume:  # fmt: skip
    """A SPECT-like count map for tests and demos.

    Liver 1, tumour ``tn``, lungs carrying ``lsf`` of all counts, blurred to ``fwhm_mm``
    and drawn with Poisson noise (``seed``).
    """
    lab = np.asarray(labels.array)
    liver = lab == int(Label.LIVER)
    tum = lab == int(Label.TUMOR)
    lung = lab == int(Label.LUNG)
    act = liver * 1.0 + tum * float(tn)
    if lung.any() and lsf > 0:
        act = act + lung * (lsf / (1 - lsf)) * act.sum() / lung.sum()
    sigma = fwhm_mm / 2.3548 / np.asarray(labels.grid.spacing_mm)
    blurred = ndimage.gaussian_filter(act, sigma)
    blurred *= total_counts / max(blurred.sum(), 1e-12)
    counts = np.random.default_rng(seed).poisson(blurred).astype(np.float32)
    return Volume(counts, labels.grid)
