"""Ablation confirmation from files: read, select labels, register, warp, measure, write.

:func:`confirm_margin` is the whole of ``ioplan margin`` (and of the web app's margin
job): the command only parses its options, calls it and prints. Every cheap check (option
ranges, registration stages, labels, the output folder, the masks' values) comes before
the registration, the expensive step.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ioplan.assessment._margin import MarginResult, check_margin_options, measure_margin
from ioplan.assessment._masks import ImageInput, as_volume, check_label, read_mask
from ioplan.assessment._outputs import write_margin_outputs
from ioplan.assessment._register import (
    Registration,
    parse_stages,
    register_images,
    register_landmarks,
    warp,
)
from ioplan.errors import InputError
from ioplan.imaging import Volume, check_mergeable, read_points

__all__ = ["MarginConfirmation", "confirm_margin"]

PointsInput = str | Path | np.ndarray


@dataclass(frozen=True)
class MarginConfirmation:
    """What :func:`confirm_margin` found.

    Attributes
    ----------
    result : MarginResult
        The margins (mm), coverage (%), volumes of insufficient coverage (mL).
    document : dict
        The JSON document ``ioplan margin --json`` prints and ``margin.json`` holds: the
        keys of :meth:`MarginResult.to_dict` plus ``registration`` and ``runtime_s``.
    registration : Registration or None
        The pre -> post registration, when one was made.
    tumour, zone : Volume
        The masks as measured: the tumour on the zone's grid when it was registered.
    report : Path or None
        ``report.html`` in the output folder, when one was given.
    """

    result: MarginResult
    document: dict[str, Any]
    registration: Registration | None
    tumour: Volume
    zone: Volume
    report: Path | None = None

    @property
    def warnings(self) -> tuple[str, ...]:
        """Warnings about the registration's quality (empty without a registration)."""
        return self.registration.warnings if self.registration is not None else ()


def _points(x: PointsInput) -> np.ndarray:
    return np.asarray(x, float) if isinstance(x, np.ndarray) else np.asarray(read_points(x), float)


def confirm_margin(
    tumour: ImageInput,
    zone: ImageInput,
    *,
    margin_mm: float = 5.0,
    liver: ImageInput | None = None,
    capsule_exclusion_mm: float = 0.0,
    tumour_label: int | None = None,
    zone_label: int | None = None,
    liver_label: int | None = None,
    pre_image: ImageInput | None = None,
    post_image: ImageInput | None = None,
    pre_liver: ImageInput | None = None,
    registration: str | tuple[str, ...] | None = None,
    landmarks_pre: PointsInput | None = None,
    landmarks_post: PointsInput | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> MarginConfirmation:
    """Confirm an ablation: the minimal ablative margin of a tumour against its zone.

    The tumour, drawn on the pre-procedure image, is brought onto the post-procedure
    image (where the zone was drawn) by paired landmarks or by image registration when
    either is given; then :func:`measure_margin` measures the margins between sub-voxel
    surfaces. Messages name the ``ioplan margin`` options.

    Parameters
    ----------
    tumour, zone : str, Path or Volume
        Tumour mask (on the pre image, or on the post image when there is no
        registration) and ablation-zone mask (on the post image); files in any format
        :func:`~ioplan.imaging.read_image` reads. Values: 0/1, labels (every non-zero
        counted, or one selected) or probabilities 0-1.
    margin_mm : float
        The margin wanted for technical success, 0-30 mm.
    liver : str, Path or Volume, optional
        Liver mask on the post image: restricts the registration, and with
        ``capsule_exclusion_mm`` marks the capsule.
    capsule_exclusion_mm : float
        Leave out tumour surface this close (0-30 mm) to the liver capsule.
    tumour_label, zone_label, liver_label : int, optional
        Take this label (>= 1) of a label map instead of every non-zero voxel.
    pre_image, post_image : str, Path or Volume, optional
        The images the tumour and the zone were drawn on; both, to register.
    pre_liver : str, Path or Volume, optional
        Liver mask on the pre image: the registration's liver surface distance (mm).
    registration : str or tuple of str, optional
        Stages, ``"rigid"`` (the default), ``"rigid,affine"`` or ``"rigid,affine,bspline"``;
        only with ``pre_image`` and ``post_image`` (refused without them).
    landmarks_pre, landmarks_post : str, Path or ndarray, optional
        The same points (x, y, z LPS mm; shape ``(n, 3)``, n >= 3) on the pre and post
        images: a rigid registration by least squares, instead of image registration.
    out : str or Path, optional
        Folder for ``margin.json``, the surface (PLY, VTK), the map and ``report.html``.
    overwrite : bool
        Replace the outputs of an earlier run in ``out``.

    Returns
    -------
    MarginConfirmation
        The result, the JSON document, the registration and the report's path.

    Raises
    ------
    ioplan.errors.InputError
        A value out of range, an unknown stage, an empty mask, a missing label, an image
        given as a mask, masks that do not overlap in space.
    ioplan.errors.FileFormatError, ioplan.errors.InputFileNotFoundError
        An unreadable or missing file.
    ioplan.errors.OutputExistsError
        ``out`` holds files and ``overwrite`` is False (checked before any work).

    References
    ----------
    .. [1] Ahmed M et al. Image-guided tumor ablation: standardization of terminology and
       reporting criteria - a 10-year update. Radiology 2014;273:241-260.
       https://doi.org/10.1148/radiol.14132958

    Examples
    --------
    A 6 mm tumour ball centred in a 12 mm zone ball (1 mm voxels): the margin is
    12 - 6 = 6 mm, within the voxel-scale error the tests bound.

    >>> import numpy as np
    >>> from ioplan.imaging import Grid, Volume
    >>> g = Grid((40, 40, 40), (1.0, 1.0, 1.0), (-19.5, -19.5, -19.5))
    >>> r = np.linalg.norm(np.indices(g.shape) - 19.5, axis=0)
    >>> c = confirm_margin(Volume((r <= 6).astype(np.uint8), g),
    ...                    Volume((r <= 12).astype(np.uint8), g), margin_mm=5.0)
    >>> abs(c.result.minimal_margin_mm - 6.0) < 0.5, c.document["technical_success"]
    (True, True)
    """
    t0 = time.perf_counter()
    # cheap checks first: options, stages, labels, pairs, the output folder
    check_margin_options(margin_mm, capsule_exclusion_mm, liver is not None)
    stages = parse_stages("rigid" if registration is None else registration)
    for label, option in ((tumour_label, "--tumor-label"), (zone_label, "--zone-label"),
                          (liver_label, "--liver-label")):  # fmt: skip
        check_label(label, option)
    if liver_label is not None and liver is None:
        raise InputError("--liver-label needs the liver mask (--liver)")
    if (landmarks_pre is None) != (landmarks_post is None):
        raise InputError("give both --landmarks-pre and --landmarks-post")
    use_landmarks = landmarks_pre is not None
    if (pre_image is None) != (post_image is None) and not use_landmarks:
        raise InputError("give both --pre-image and --post-image to register")
    if registration is not None and pre_image is None and not use_landmarks:
        raise InputError("--registration needs --pre-image and --post-image (the images "
                         "it registers)")  # fmt: skip
    notes: list[str] = []
    if registration is not None and use_landmarks:
        notes.append("--registration was not used: the landmarks register (rigid)")
    if use_landmarks and pre_image is not None:
        notes.append("--pre-image and --post-image were not used: the landmarks register")
    if pre_liver is not None and (use_landmarks or pre_image is None):
        notes.append("--pre-liver was not used: it measures an image registration only")
    if out is not None:
        # --overwrite replaces an earlier margin output's files, never another command's
        check_mergeable(out, command="margin", own_json="margin.json", overwrite=overwrite,
                        accept=lambda d: "minimal_margin_mm" in d)  # fmt: skip
    # the masks: read, labels selected, values checked (still cheap)
    tum = read_mask(tumour, "the tumour mask (--tumor)", label=tumour_label, one_structure=True,
                    label_option="--tumor-label")  # fmt: skip
    zon = read_mask(zone, "the zone mask (--zone)", label=zone_label, label_option="--zone-label",
                    one_structure=True)  # fmt: skip
    liv = None
    if liver is not None:
        liv = read_mask(liver, "the liver mask (--liver)", label=liver_label,
                        label_option="--liver-label")  # fmt: skip
    # the registration, then the tumour on the zone's grid
    reg = None
    if landmarks_pre is not None and landmarks_post is not None:
        reg = register_landmarks(
            _points(landmarks_post), _points(landmarks_pre), margin_mm=margin_mm
        )
    elif pre_image is not None and post_image is not None:
        reg = register_images(
            as_volume(post_image),
            as_volume(pre_image),
            liver_post=liv,
            zone_post=zon,
            stages=stages,
            liver_pre=as_volume(pre_liver) if pre_liver is not None else None,
            margin_mm=margin_mm,
        )
    if reg is not None:
        tum = _warped(tum, reg, zon)
    res = measure_margin(
        tum, zon, margin_mm=margin_mm, liver=liv, capsule_exclusion_mm=capsule_exclusion_mm
    )
    if notes:
        res = dataclasses.replace(res, notes=res.notes + tuple(notes))
    doc = res.to_dict() | {
        "registration": reg.to_dict() if reg is not None else {"performed": False},
        "runtime_s": round(time.perf_counter() - t0, 3),
    }
    report = None
    if out is not None:
        report = write_margin_outputs(res, tum, out, doc, overwrite=overwrite, zone=zon)
    return MarginConfirmation(res, doc, reg, tum, zon, report)


def _warped(tumour: Volume, reg: Registration, zone: Volume) -> Volume:
    """The tumour on the zone's grid; refused when the registration moved it off that grid."""
    moved = warp(tumour, reg, zone)
    m = np.asarray(moved.array) > 0.5
    if not m.any():
        raise InputError(
            "the tumour, moved by the registration, lies outside the zone mask's image: "
            "check the registration (or give landmarks)"
        )
    edge = m[[0, -1]].any() or m[:, [0, -1]].any() or m[:, :, [0, -1]].any()
    if edge:
        raise InputError(
            "the tumour, moved by the registration, reaches the edge of the zone mask's "
            "image, so part of it would be cut off: give the zone mask on the whole "
            "post-procedure image"
        )
    return moved
