"""Masks read from files: label selection, and what values a mask may hold.

A mask is 0/1, a label map (a few integer labels), or probabilities between 0 and 1. An
image (CT, MR) given where a mask is expected has negative values, values above 1 in a
float array, or thousands of distinct values; it is refused with a message that says what
to give instead, rather than counted as "every non-zero voxel".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ioplan.errors import InputError, InvalidImageError
from ioplan.imaging import Volume, read_image

__all__ = [
    "MAX_LABELS",
    "PROBABILITIES",
    "ImageInput",
    "as_volume",
    "check_label",
    "mask_field",
    "read_mask",
    "select_label",
]

#: An image or mask given as a file (any format :func:`~ioplan.imaging.read_image` reads)
#: or as a :class:`~ioplan.imaging.Volume`.
ImageInput = str | Path | Volume

#: More distinct non-zero values than this and an integer array is an image, not a label
#: map (label maps of the liver, TotalSegmentator's 117 classes, ... hold far fewer).
MAX_LABELS = 255
PROBABILITIES = "probabilities (surface at 0.5)"
#: A mask of three or more labels covering more than this share of its image is a label
#: map of the anatomy, not a lesion or zone map (a tumour, or an ablation zone with its
#: margin, fills a small part of a scan; ioplan's own choice, no published figure).
WHOLE_MAP_SHARE = 0.3


def as_volume(x: ImageInput) -> Volume:
    """``x`` itself when it is a :class:`Volume`, else the image read from that file."""
    return x if isinstance(x, Volume) else read_image(x)


def check_label(label: int | None, what: str) -> None:
    """Refuse a label that cannot select a structure (labels are >= 1; 0 is background)."""
    if label is not None and label < 1:
        raise InputError(f"{what} must be a label >= 1 (0 is the background), got {label}")


def _labels_present(a: np.ndarray, limit: int = 8) -> str:
    vals = np.unique(a[a != 0])
    shown = ", ".join(f"{v:g}" for v in vals[:limit])
    return shown + (", ..." if len(vals) > limit else "") if len(vals) else "none"


def select_label(vol: Volume, label: int | None, what: str, option: str) -> Volume:
    """One label of a label map as a 0/1 mask (``vol`` unchanged when ``label`` is None).

    ``what`` names the mask and ``option`` the label's option in messages.
    """
    if label is None:
        return vol
    check_label(label, option)
    a = np.asarray(vol.array)
    m = a == label
    if not m.any():
        raise InvalidImageError(
            f"{what} holds no voxel of label {label} ({option}); labels present: "
            f"{_labels_present(a)}"
        )
    return Volume(m.astype(np.uint8), vol.grid)


def _distinct_nonzero(a: np.ndarray) -> int:
    """How many distinct non-zero values a non-negative integer array holds."""
    top = int(a.max()) if a.size else 0
    if top < 2**20:  # a count per value: linear time, 8 MB at most
        return int(np.count_nonzero(np.bincount(a.ravel(), minlength=1)[1:]))
    return len(np.unique(a[a != 0]))


def mask_field(
    arr: np.ndarray, what: str, *, label_option: str | None = None, one_structure: bool = False
) -> tuple[np.ndarray, str, np.ndarray]:
    """A float field whose 0.5 level is the surface, the mask's kind, and the voxel mask.

    Parameters
    ----------
    arr : ndarray
        Mask values, shape ``(z, y, x)``: 0/1 or booleans, integer labels (every non-zero
        label counted), or probabilities in 0-1 (a float array holding only 0 and one value
        above 0.5 is binary).
    what : str
        The mask's name in messages (``"the tumour mask (--tumor)"``).
    label_option : str, optional
        The option that selects one label, named in the message refusing an image.
    one_structure : bool
        The mask stands for one kind of structure (a tumour, an ablation zone): a label map
        of three or more labels over more than :data:`WHOLE_MAP_SHARE` of the image (the
        anatomy's segmentation) is refused.

    Returns
    -------
    field : ndarray of float32
        0/1 for a binary or label mask (not blurred), the probabilities otherwise.
    kind : str
        ``"binary"``, ``"label map (...)"`` or :data:`PROBABILITIES`.
    mask : ndarray of bool
        The voxels inside (label > 0, or probability > 0.5).

    Raises
    ------
    InvalidImageError
        NaN or infinite values, negative values, values above 1 in a float array, or more
        than :data:`MAX_LABELS` distinct labels (an image, not a mask).

    Examples
    --------
    >>> f, kind, m = mask_field(np.array([[[0, 2, 2]]]), "the tumour mask")
    >>> f.tolist(), kind, int(m.sum())
    ([[[0.0, 1.0, 1.0]]], 'label map (every non-zero label counted)', 2)
    """
    a = np.asarray(arr)
    pick = f", or select one label ({label_option})" if label_option else ""
    need = f"give a mask (0/1), a label map{pick}, or probabilities 0-1"
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise InvalidImageError(f"{what} holds NaN or infinite values")
        if a.size and (a.min() < 0.0 or a.max() > 1.0):
            raise InvalidImageError(
                f"{what} has values outside 0-1 ({a.min():g} to {a.max():g}): it looks like "
                f"an image, not a mask; {need}"
            )
        top = float(a.max()) if a.size else 0.0
        if top > 0.5 and np.all((a == 0) | (a == top)):
            # two values, 0 and one above 0.5 (a 0/0.99 export): a binary mask, blurred as
            # one; read as probabilities its surface would sit on the voxel staircase
            a = (a > 0).astype(np.uint8)
        elif np.all((a == 0) | (a == 1)):
            a = a.astype(np.uint8)
        else:
            return a.astype(np.float32), PROBABILITIES, a > 0.5
    if not np.issubdtype(a.dtype, np.integer):
        raise InvalidImageError(f"{what} has values of type {a.dtype}: {need}")
    if a.size and a.min() < 0:
        raise InvalidImageError(
            f"{what} has negative labels (down to {a.min()}): it looks like an image, not a "
            f"mask; {need}"
        )
    n = _distinct_nonzero(a) if a.size and a.max() > 1 else 1
    if n > MAX_LABELS:
        raise InvalidImageError(
            f"{what} holds {n} distinct values (0 to {a.max()}): it looks like an image, not "
            f"a mask; {need}"
        )
    binary = (a > 0).astype(np.float32)
    share = float(binary.mean()) if binary.size else 0.0
    if one_structure and n >= 3 and share > WHOLE_MAP_SHARE:
        # a segmentation of the anatomy (skin, fat, organs ...), not a lesion map
        pick = label_option or "a label option"
        raise InvalidImageError(
            f"{what} holds {n} labels covering {100 * share:.0f} % of the image: it looks "
            f"like a whole label map, not one structure; choose its label with {pick} "
            "(an ioplan case's tumour is 8)"
        )
    kind = "label map (every non-zero label counted)" if a.max(initial=0) > 1 else "binary"
    return binary, kind, binary > 0


def read_mask(x: ImageInput, what: str, *, label: int | None = None,
              label_option: str | None = None, allow_empty: bool = False,
              one_structure: bool = False) -> Volume:  # fmt: skip
    """A mask read, its label selected, its values checked; refused when empty.

    ``what`` names the mask in messages (``"the tumour mask (--tumor)"``). With
    ``allow_empty`` an empty mask is returned (a tumour gone at follow-up).
    """
    vol = select_label(as_volume(x), label, what, label_option or "label")
    _, _, inside = mask_field(vol.array, what, label_option=label_option,
                              one_structure=one_structure)  # fmt: skip
    if not allow_empty and not inside.any():
        raise InvalidImageError(f"{what} is empty (no voxel inside it)")
    return vol
