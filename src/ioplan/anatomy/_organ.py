"""The organ a case's tumour lies in: given (``case.toml`` ``organ``, ``--organ``) or inferred.

The organ is a parameter of the whole path (issue 21): tissue properties of the tumour and
its host, the planner's rules (pleura for lung, collecting system for kidney, cord for
spine), treatment selection and margins. When it is not given it is inferred from the
labels that surround the tumour: the host tissue is what a thin shell around the tumour
touches most among the organ labels below (fat, muscle and vessels do not vote).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ioplan.anatomy._labels import Label
from ioplan.errors import InputError

__all__ = ["HOST_LABELS", "ORGANS", "check_organ", "infer_organ", "organ_of"]

#: Organs ioplan plans for. "soft_tissue": muscle or fat hosts (sarcoma, soft-tissue
#: metastases).
ORGANS = ("liver", "lung", "kidney", "bone", "soft_tissue")

#: The labels that make each organ the host (which labels a tumour's shell may touch).
HOST_LABELS: dict[str, tuple[Label, ...]] = {
    "liver": (Label.LIVER,),
    "lung": (Label.LUNG, Label.FISSURE),
    "kidney": (Label.KIDNEY, Label.KIDNEY_MEDULLA),
    "bone": (Label.VERTEBRA, Label.RIB),
    "soft_tissue": (Label.MUSCLE, Label.FAT),
}

#: Shell thickness around the tumour used to find its host (mm): a few voxels of the usual
#: 1-4 mm grids, thin enough to stay inside a small organ (a rib is ~10 mm thick).
SHELL_MM = 3.0


def check_organ(organ: str) -> str:
    """``organ`` lower-cased, or a one-line error naming the known ones."""
    key = str(organ).strip().lower().replace("-", "_").replace(" ", "_")
    if key not in ORGANS:
        raise InputError(f"unknown organ {organ!r}; known: {', '.join(ORGANS)}")
    return key


def infer_organ(labels: np.ndarray, spacing_mm, *, tumor_label: int = Label.TUMOR) -> str | None:
    """The organ whose labels the tumour's surface touches most, or None (no tumour, no host).

    A shell of :data:`SHELL_MM` (at least 1.01 voxel steps) around the tumour (Euclidean
    distance, anisotropic spacing respected) is counted by host label group; organs win over
    soft tissue when both are touched (a tumour at the liver capsule touches fat too), soft
    tissue is the host only when no organ label is in the shell.
    """
    lab = np.asarray(labels)
    tumour = lab == int(tumor_label)
    if not tumour.any():
        return None
    # only the tumour's box plus the shell matters: crop (a whole CT's distance map takes
    # seconds; the box, milliseconds)
    sp = tuple(float(s) for s in spacing_mm)
    # at least one voxel step in every direction (a 3 mm shell on a 4 mm grid is empty)
    shell_mm = max(SHELL_MM, 1.01 * max(sp))
    idx = np.argwhere(tumour)
    pad = [int(np.ceil(shell_mm / s)) + 1 for s in sp]
    box = tuple(
        slice(max(0, lo - p), min(n, hi + p + 1))
        for lo, hi, p, n in zip(idx.min(axis=0), idx.max(axis=0), pad, lab.shape, strict=True)
    )
    lab, tumour = lab[box], tumour[box]
    dist = ndimage.distance_transform_edt(~tumour, sampling=sp)
    shell = (dist > 0) & (dist <= shell_mm)
    votes = {
        organ: int(np.isin(lab[shell], [int(v) for v in values]).sum())
        for organ, values in HOST_LABELS.items()
    }
    organs = {k: v for k, v in votes.items() if k != "soft_tissue" and v > 0}
    if organs:
        return max(organs, key=organs.get)
    return "soft_tissue" if votes["soft_tissue"] > 0 else None


def organ_of(case, organ: str | None = None) -> str:
    """The organ to plan for: ``organ`` if given, else the case's, else inferred, else liver.

    Parameters
    ----------
    case : Case
        The case (its ``organ`` attribute is ``case.toml``'s ``organ``, or None).
    organ : str, optional
        Given by the user (``--organ``); checked against :data:`ORGANS`.
    """
    if organ is not None:
        return check_organ(organ)
    if getattr(case, "organ", None):
        return check_organ(case.organ)
    found = infer_organ(case.labels.array, case.labels.grid.spacing_mm)
    return found or "liver"
