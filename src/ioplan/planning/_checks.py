"""Cheap checks of a planning request, made before any simulation.

Everything here runs in well under a second on a case of any size (no distance maps,
no simulation): the option ranges, which tumour, whether it lies in the liver, the
applicator's modality and the memory the plan will need. :func:`plan_ablation` calls
:func:`check_plan_request` first; the command line calls it before it starts its work.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ioplan.anatomy import Case, Label, label_from_name
from ioplan.errors import InputError
from ioplan.resources import check_memory

if TYPE_CHECKING:
    from ioplan.imaging import Grid
    from ioplan.planning._plan import PlanConfig

__all__ = [
    "MARGIN_RANGE_MM",
    "PROTECT_RANGE_MM",
    "SPACING_RANGE_MM",
    "check_in_range",
    "check_plan_request",
    "check_target_label",
    "check_tumour_index",
    "plan_memory_bytes",
    "tumour_count",
]

#: Allowed voxel size of the planning simulation (mm): below 1 mm the verification
#: runs take hours, above 4 mm the zone's edge is no longer resolved.
SPACING_RANGE_MM = (1.0, 4.0)
#: Allowed ablative margin (mm): published targets are 5-10 mm (Laimer et al. 2020;
#: Wang et al. 2013); 20 mm leaves room for a research question.
MARGIN_RANGE_MM = (0.0, 20.0)
#: Allowed distance kept between lethal damage and protected structures (mm).
PROTECT_RANGE_MM = (0.0, 30.0)

#: Largest ratio of voxel sides planned on as given; above it the case is resampled.
ANISOTROPY_LIMIT = 3.0

#: Peak bytes the planner holds per voxel of the case grid (label map, tumour and zone
#: masks, float64 distance maps of the trajectory search and the metrics, resampled
#: temperature maps): measured 130-150 B/voxel on the demo case at 2 and 4 mm
#: (peak RSS less the case itself), rounded up.
_CASE_BYTES_PER_VOXEL = 160.0
#: Peak bytes per voxel of the simulation domain: measured 183 B/voxel on a 1 mm
#: microwave block of 1.1 million voxels (peak RSS increase), rounded up.
_ENGINE_BYTES_PER_VOXEL = 200.0
#: The engine's domain around the applicators (mm): its starting margin, the spread of
#: an applicator array and the longest active part in the catalogue, rounded up.
_DOMAIN_MARGIN_MM, _ARRAY_SPREAD_MM, _ACTIVE_EXTENT_MM = 40.0, 15.0, 60.0


def check_in_range(value: float, lo: float, hi: float, name: str, unit: str = "mm") -> float:
    """Return ``value`` if it is finite and in ``[lo, hi]``; else raise :class:`InputError`.

    ``name`` is what the user typed (``"--spacing-mm"`` on the command line).

    Examples
    --------
    >>> check_in_range(2.0, 1.0, 4.0, "--spacing-mm")
    2.0
    >>> try:
    ...     check_in_range(0.25, 1.0, 4.0, "--spacing-mm")
    ... except InputError as exc:
    ...     print(exc)
    --spacing-mm must be 1-4 mm, got 0.25
    """
    if not math.isfinite(value) or not lo <= value <= hi:
        raise InputError(f"{name} must be {lo:g}-{hi:g} {unit}, got {value:g}")
    return value


def tumour_count(case: Case) -> int:
    """How many tumours ``case`` has: its tumour records, else 1 if it has tumour voxels."""
    if case.tumors:
        return len(case.tumors)
    return int(bool(np.any(np.asarray(case.labels.array) == int(Label.TUMOR))))


def check_tumour_index(case: Case, index: int, *, name: str = "tumour index") -> None:
    """Refuse a tumour index that is negative or beyond the case's tumours.

    A negative index is refused rather than counted from the end (``-1`` would
    silently plan the last tumour).
    """
    n = tumour_count(case)
    if n == 0:
        raise InputError("the case has no tumour label: nothing to plan for")
    if not 0 <= index < n:
        which = "0" if n == 1 else f"0-{n - 1}"
        raise InputError(
            f"{name} {index} does not exist: the case has {n} tumour{'s' if n > 1 else ''} "
            f"({name} {which})"
        )


def check_target_label(case: Case, name: str, *, option: str = "--target-label") -> Label:
    """The :class:`Label` called ``name``, if it is a structure of ``case``'s label map.

    The background (label 0) is no structure to aim at, and a label with no voxel in the
    case cannot be reached: both are refused with one line that names ``option`` and the
    labels the case holds.

    Examples
    --------
    >>> import numpy as np
    >>> from ioplan.imaging import Grid, Volume
    >>> lab = np.full((4, 4, 4), int(Label.LIVER), np.int16)
    >>> lab[0] = int(Label.BACKGROUND)
    >>> v = Volume(lab, Grid(shape=lab.shape, spacing_mm=(1.0, 1.0, 1.0)))
    >>> case = Case(v, v)
    >>> check_target_label(case, "liver")
    <Label.LIVER: 7>
    >>> check_target_label(case, "background")
    Traceback (most recent call last):
    ...
    ioplan.errors.InputError: --target-label background: label 0 is the background, ...
    """
    label = label_from_name(name)
    lab = np.asarray(case.labels.array)
    if label != Label.BACKGROUND and np.any(lab == int(label)):
        return label
    if label == Label.BACKGROUND:
        why = "label 0 is the background, not a structure"
    else:
        why = f"the case has no {label.name.lower()} voxels"
    known = {int(v) for v in Label} - {int(Label.BACKGROUND)}
    present = [Label(int(v)).name.lower() for v in np.unique(lab) if int(v) in known]
    raise InputError(f"{option} {name}: {why}; labels present: {', '.join(present) or 'none'}")


def _planning_grid_shape(grid: Grid, spacing_mm: float) -> tuple[int, ...]:
    """Shape of the grid the planner works on (resampled when very anisotropic)."""
    sp = np.asarray(grid.spacing_mm, float)
    if sp.max() / sp.min() > ANISOTROPY_LIMIT:
        return tuple(math.ceil(n * s / spacing_mm) for n, s in zip(grid.shape, sp, strict=True))
    return tuple(grid.shape)


def plan_memory_bytes(grid: Grid, spacing_mm: float) -> float:
    """Estimated peak memory of a plan of a case on ``grid`` at ``spacing_mm`` (bytes).

    The case grid's work (per voxel, :data:`_CASE_BYTES_PER_VOXEL`) plus the
    simulation domain around the applicators at ``spacing_mm`` (its starting margin;
    the engine grows it only when heat reaches its boundary).

    Examples
    --------
    >>> from ioplan.imaging import Grid
    >>> g = Grid((100, 100, 100), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    >>> # 1e6 case voxels at 160 B, a 170 mm domain at 2 mm: 86**3 voxels at 200 B
    >>> round(plan_memory_bytes(g, 2.0) / 2**20)  # (160e6 + 127.2e6) B in MiB
    274
    """
    n_case = float(np.prod(_planning_grid_shape(grid, spacing_mm), dtype=float))
    side_mm = 2.0 * (_DOMAIN_MARGIN_MM + _ARRAY_SPREAD_MM) + _ACTIVE_EXTENT_MM
    n_sim = (math.ceil(side_mm / spacing_mm) + 1) ** 3
    return n_case * _CASE_BYTES_PER_VOXEL + n_sim * _ENGINE_BYTES_PER_VOXEL


def check_plan_request(case: Case, cfg: PlanConfig, *, tumour_name: str = "tumour index",
                       spacing_name: str = "spacing") -> None:  # fmt: skip
    """Every check of a plan that needs no simulation, cheapest first.

    The applicator and its modality, the tumour index, the memory the plan needs
    (:func:`ioplan.resources.check_memory`), and whether the tumour lies in its organ
    (``cfg.organ``, the case's, or inferred; the liver by default).

    Raises
    ------
    InputError
        Naming the option (``tumour_name``, ``spacing_name``) and the value received.
    """
    cfg.applicator()
    check_tumour_index(case, cfg.tumour_index, name=tumour_name)
    shape = _planning_grid_shape(case.labels.grid, cfg.spacing_mm)
    check_memory(
        plan_memory_bytes(case.labels.grid, cfg.spacing_mm),
        f"planning on a {' x '.join(map(str, shape))} case grid with {cfg.spacing_mm:g} mm "
        "simulation voxels",
        hint=f"use a coarser {spacing_name} or crop the case",
    )
    from ioplan.planning._metrics import tumour_mask
    from ioplan.planning._organ_rules import planning_organ

    # refuses a tumour that does not lie in its organ (given, the case's, or inferred)
    tumour_mask(case, cfg.tumour_index, planning_organ(case, cfg.organ))
