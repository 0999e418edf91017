"""A phantom written as a case folder: what ``ioplan phantom`` does, as one library call."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from ioplan.anatomy._case import Case, save_case
from ioplan.anatomy._phantom import (
    PhantomConfig,
    TumorSpec,
    check_phantom_memory,
    generate_phantom,
)
from ioplan.errors import InputError
from ioplan.imaging import check_output_folder

__all__ = ["write_phantom_case"]


def write_phantom_case(
    out: str | Path,
    *,
    tumor_diameters_mm: Sequence[float] = (30.0,),
    tumor_centres_mm: Sequence[Sequence[float]] | None = None,
    irregularity: float = 0.15,
    histology: str = "hcc",
    seed: int = 0,
    spacing_mm: float = 1.0,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
    organ: str = "liver",
    site: str | None = None,
    side: str | None = None,
    collection_mm: float | None = None,
    collection_site: str = "perihepatic",
    collection_content: str = "abscess",
    necrosis_mm: float | None = None,
    arterial_tree: bool = False,
    artery_variant: str | None = None,
) -> Case:
    """Generate a phantom and write it as a case folder, checking every cheap thing first.

    In order: the output folder (writable, empty unless ``overwrite``), the parameters,
    the memory the grid needs; then the phantom's ten steps, then the case files.

    Parameters
    ----------
    out : path
        Case folder to write (``case.toml``, ``image.nii.gz``, ``labels.nii.gz``,
        ``vessels.csv``).
    tumor_diameters_mm : sequence of float
        One diameter (3-120 mm) per tumour; 1-8 tumours.
    tumor_centres_mm : sequence of (x, y, z), optional
        LPS centres in mm, one per diameter; default: the built-in sites
        (:data:`~ioplan.anatomy.DEFAULT_TUMOR_CENTRES_MM`).
    irregularity : float
        Shape irregularity of every tumour, 0 (sphere) to 0.5.
    histology : str
        Histology of every tumour (see :class:`~ioplan.anatomy.TumorSpec`).
    seed : int
        Seed of every random choice, 0 to 2**32 - 1.
    spacing_mm : float
        Isotropic voxel spacing, 0.5-5 mm.
    overwrite : bool
        Replace the case files of an earlier case in ``out``.
    progress : callable, optional
        Called with each step's name (the ten of
        :data:`~ioplan.anatomy.PHANTOM_STEPS`, or the organ's ten, then ``"saving case"``).
    organ : str
        ``"liver"``, ``"lung"``, ``"kidney"`` or ``"bone"``; written to ``case.toml``.
    site, side : str, optional
        Where the organ phantom's tumour lies (see :class:`~ioplan.anatomy.PhantomConfig`).
    collection_mm, collection_site, collection_content, necrosis_mm
        A fluid collection and a necrotic tumour centre (issue 22; see
        :class:`~ioplan.anatomy.PhantomConfig`); recorded in ``case.toml``'s source.
    arterial_tree, artery_variant
        The hepatic arterial tree and its variant (issue 24; see
        :class:`~ioplan.anatomy.PhantomConfig`).

    Returns
    -------
    Case
        The case as written.

    Raises
    ------
    ioplan.errors.OutputExistsError, ioplan.errors.OutputNotWritableError
        ``out`` holds files (without ``overwrite``) or cannot be written.
    ioplan.errors.InputError
        A parameter out of range, centres that do not pair with the diameters, a
        centre outside the liver, or a grid too large for the machine's memory.
    """
    out = check_output_folder(out, overwrite=overwrite)
    diameters = list(tumor_diameters_mm)
    centres = list(tumor_centres_mm) if tumor_centres_mm else []
    if centres and len(centres) != len(diameters):
        raise InputError(
            f"give one --tumor-centre-mm per --tumor-diameter-mm ({len(diameters)} diameters, "
            f"{len(centres)} centres)"
        )
    tumors = tuple(
        TumorSpec(
            diameter_mm=d,
            centre_mm=tuple(centres[i]) if centres else None,
            irregularity=irregularity,
            histology=histology,
        )
        for i, d in enumerate(diameters)
    )
    config = PhantomConfig(
        spacing_mm=spacing_mm,
        seed=seed,
        tumors=tumors,
        organ=organ,
        site=site,
        side=side,
        collection_mm=collection_mm,
        collection_site=collection_site,
        collection_content=collection_content,
        necrosis_mm=necrosis_mm,
        arterial_tree=arterial_tree,
        artery_variant=artery_variant,
    )
    config.resolved_tumors()  # more tumours than default sites: refused now
    check_phantom_memory(config.spacing_mm)
    phantom = generate_phantom(config, progress=progress)
    if progress is not None:
        progress("saving case")
    case = Case.from_phantom(phantom)
    where = {"organ": config.organ}
    if config.site is not None:
        where |= {"site": config.site, "side": config.side}
    if config.collection_mm is not None:
        where |= {
            "collection_mm": config.collection_mm,
            "collection_site": config.collection_site,
            "collection_content": config.collection_content,
            "collection_centre_mm": list(phantom.extras.collection_centre_mm or ()),
        }
    if config.necrosis_mm is not None:
        where |= {"necrosis_mm": config.necrosis_mm}
    case = dataclasses.replace(case, organ=config.organ, source={**case.source, **where})
    save_case(case, out, overwrite=overwrite)
    return case
