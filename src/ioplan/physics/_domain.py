"""Step 1 of a simulation: the domain (grid, labels, applicator placements).

A homogeneous block around the applicators, a crop of a case, or the grid of an
external power map (reoriented onto the axial grid the engine runs on). The domain's
memory is estimated, and an impossible one refused, before anything is allocated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ioplan.anatomy import LABEL_INFO, VESSEL_LABELS, Label, local_radius_mm
from ioplan.devices import Applicator
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume, resample
from ioplan.physics._materials import FIRST_EXTRA_ID, MaterialTable, blood_properties
from ioplan.physics._sources import Placement, array_placements, nusselt_wall_h

if TYPE_CHECKING:
    from ioplan.physics._simulate import SimulationConfig

__all__: list[str] = []

# Extra materials (ids from FIRST_EXTRA_ID).
COOLED_SHAFT = FIRST_EXTRA_ID  # applicator held at its cooling (or probe) temperature
INSULATED_SHAFT = FIRST_EXTRA_ID + 1  # vacuum-insulated cryo shaft: no heat flow
FIRST_VESSEL = FIRST_EXTRA_ID + 8  # vessel classes with their wall coefficient

# Typical mean blood velocities (m/s) used to estimate the flow of label-map vessels.
# Portal vein ~0.15-0.2 m/s and hepatic veins ~0.2 m/s on Doppler ultrasound; hepatic
# artery ~0.3 m/s; IVC ~0.2 m/s; aorta ~0.4 m/s (textbook Doppler ranges, e.g. Zwiebel
# & Pellerito, Introduction to Vascular Ultrasonography). Beyond the liver (issue 21), time-
# averaged means of the same order, from the same kind of Doppler ranges (recalled, not
# re-read this session): renal artery ~0.3 m/s (peak systolic 0.6-1.0), renal vein ~0.2,
# pulmonary arteries and veins ~0.2 (main pulmonary artery peak 0.6-0.9 m/s).
_TYPICAL_VELOCITY_M_S = {
    Label.PORTAL_VEIN: 0.15,
    Label.HEPATIC_VEIN: 0.2,
    Label.IVC: 0.2,
    Label.AORTA: 0.4,
    Label.HEPATIC_ARTERY: 0.3,
    Label.RENAL_ARTERY: 0.3,
    Label.RENAL_VEIN: 0.2,
    Label.PULMONARY_VESSEL: 0.2,
    # the thigh (issue 21): resting common femoral artery flow 350 +/- 141 mL/min, lumen
    # 10 mm (men) / 7.8 mm (women) (duplex ultrasound, Ultrasound Med Biol 1986;12:777,
    # doi:10.1016/0301-5629(86)90075-x); mean velocity = flow / lumen area: 350 mL/min
    # through 9 mm is 0.09 m/s. The femoral vein returns the same flow through the
    # phantom's 10 mm lumen: 0.07 m/s.
    Label.FEMORAL_ARTERY: 0.09,
    Label.FEMORAL_VEIN: 0.07,
}


@dataclass(frozen=True, eq=False)
class Domain:
    """Step 1: the cropped grid, its materials (labels) and where the applicators sit."""

    grid: Grid
    material: np.ndarray
    centre: Placement
    placements: list[Placement]
    #: how far (mm) a case domain reaches past the scanned image on each patient side
    #: (``"superior": 12.0``); there the edge slices were continued (empty: it fits)
    past_scan_mm: dict[str, float] = field(default_factory=dict)


def make_domain(cfg: SimulationConfig) -> Domain:
    """The grid around the applicators (a block, a case crop or an external map's grid).

    With ``cfg.placements`` those are the applicators and ``centre`` is the first of
    them: the zone's length, width and tip extent are measured along its axis.
    """
    app = cfg.applicator
    past: dict[str, float] = {}
    if cfg.case is not None:
        grid, material, centre, past = case_domain(cfg)
    else:
        grid, material, centre = block_domain(cfg)
    if cfg.placements:
        # applicators on independent paths; the zone metrics follow the first one's axis
        placements = list(cfg.placements)
    elif app is None:
        placements = [centre]  # an external source: the axis only orients the zone metrics
    elif app.electrodes > 1:
        # a cluster applicator: its electrodes around the axis, driven together
        placements = array_placements(centre, app.electrodes, app.electrode_spacing_mm)
    else:
        placements = array_placements(centre, cfg.array, cfg.spacing_between_mm)
    for pl in placements:
        if not grid.contains_lps(pl.tip_mm):
            raise InputError(f"applicator tip {pl.tip_mm} mm lies outside the grid")
    return Domain(grid, material, centre, placements, past)


def tissue_label(name: str) -> Label:
    """The label a block of tissue ``name`` is made of.

    The first label whose tissue (:data:`~ioplan.anatomy.LABEL_INFO`) is ``name``; a
    tissue of the table that no label has (``lung_tumor``, ``kidney_cortex``) takes the
    tumour label, whose tissue :func:`label_tissue_overrides` then sets to ``name``.
    """
    for lbl, info in LABEL_INFO.items():
        if info.tissue == name and lbl != Label.BACKGROUND:
            return lbl
    from ioplan.tissue import tissue_names

    if name in tissue_names():
        return Label.TUMOR
    raise InputError(f"unknown tissue {name!r} for a block; known: {', '.join(tissue_names())}")


def organ_tumor_tissue(organ: str | None) -> str | None:
    """The tumour tissue of ``organ`` (``lung`` -> ``lung_tumor``); None: the label's own."""
    if organ is None:
        return None
    from ioplan.tissue import organ_tissues

    try:
        return organ_tissues(organ)["tumor"]
    except InputError:  # an organ without a tumour tissue (soft tissue): the label's own
        return None


def label_tissue_overrides(cfg: SimulationConfig) -> dict[int, str]:
    """The label -> tissue overrides of LABEL_INFO for ``cfg`` (empty: none).

    The tumour label takes the organ's tumour tissue (:func:`~ioplan.tissue.organ_tissues`:
    liver keeps ``tumor``, lung ``lung_tumor``, kidney ``renal_tumor``, bone
    ``bone_tumor``); a block of a tissue no label has is made of the tumour label with
    that tissue (:func:`tissue_label`). Only differences from LABEL_INFO are kept, so a
    liver simulation has no override at all.
    """
    out: dict[int, str] = {}
    tumor = organ_tumor_tissue(cfg.organ)
    if tumor is not None:
        out[int(Label.TUMOR)] = tumor
    if cfg.case is None and cfg.tissue is not None:
        lbl = tissue_label(cfg.tissue)
        if LABEL_INFO[lbl].tissue != cfg.tissue:
            out[int(lbl)] = cfg.tissue
    return {k: v for k, v in out.items() if LABEL_INFO[Label(k)].tissue != v}


def _host_labels(organ: str | None) -> list[int]:
    """The labels of ``organ``'s parenchyma (the liver's when no organ is known)."""
    from ioplan.anatomy import HOST_LABELS

    hosts = HOST_LABELS.get(organ or "liver", HOST_LABELS["liver"])
    return [int(v) for v in hosts]


def active_extent_mm(app: Applicator) -> float:
    if app.modality == "mw":
        return app.feed_offset_mm + 3.0 * app.axial_sigma_backward_mm
    if app.modality == "rf":
        return app.active_length_mm
    return app.tip_offset_mm + app.freeze_zone_length_mm


def zone_centre_offset_mm(app: Applicator) -> float:
    """How far behind the tip the zone is centred (first guess, before calibration)."""
    if app.modality == "mw":
        return app.feed_offset_mm
    if app.modality == "rf":
        return 0.5 * app.active_length_mm
    return app.tip_offset_mm + 0.5 * app.freeze_zone_length_mm


def block_domain(cfg: SimulationConfig) -> tuple[Grid, np.ndarray, Placement]:
    lbl = tissue_label(cfg.tissue or "liver")
    ext_map = cfg.power_density_w_m3 if cfg.power_density_w_m3 is not None else cfg.sar_w_kg
    if ext_map is not None:
        grid = ext_map.grid  # axial: SimulationConfig reoriented it
        if min(grid.spacing_mm) < 0.25 or max(grid.spacing_mm) > 5.0 or min(grid.shape) < 8:
            raise InputError(
                f"a power or SAR map needs 0.25-5 mm voxels and >= 8 voxels per axis, got "
                f"spacing {grid.spacing_mm} mm, shape {grid.shape}"
            )
        centre = grid.index_to_lps((np.asarray(grid.shape) - 1) / 2.0)
        tip = tuple(centre) if cfg.tip_mm is None else cfg.tip_mm
    elif cfg.placements:
        grid = _placements_block(cfg)
        tip = cfg.placements[0].tip_mm
    else:
        h = cfg.spacing_mm
        extent = active_extent_mm(cfg.applicator)
        spread = 0.0 if cfg.array == 1 else cfg.spacing_between_mm
        half_xy = (
            cfg.margin_mm
            + spread
            + max((v.distance_mm + v.diameter_mm for v in cfg.vessels), default=0)
        )
        half_z = cfg.margin_mm + extent
        n_xy = 2 * math.ceil(half_xy / h) + 1
        n_z = 2 * math.ceil(half_z / h) + 1
        shape = (n_z, n_xy, n_xy)
        origin = (-(n_xy // 2) * h, -(n_xy // 2) * h, -(n_z // 2) * h)
        grid = Grid(shape, (h, h, h), origin)
        tip = (0.0, 0.0, 0.0) if cfg.tip_mm is None else cfg.tip_mm
    check_domain_memory(cfg, grid)
    material = np.full(grid.shape, int(lbl), np.uint8)
    if cfg.placements:
        return grid, material, cfg.placements[0]
    return grid, material, Placement(tip, cfg.direction)


def _active_points(cfg: SimulationConfig) -> np.ndarray:
    """Each placement's tip and the far end of its active part (``tip - d * extent``)."""
    extent = active_extent_mm(cfg.applicator)
    pts = []
    for pl in cfg.placements:
        tip = np.asarray(pl.tip_mm)
        pts += [tip, tip - np.asarray(pl.direction) * extent]
    return np.asarray(pts)


def _placements_block(cfg: SimulationConfig) -> Grid:
    """A block centred on the box around every placement's active part, plus the margin."""
    pts = _active_points(cfg)
    # centred on the box, with voxel centres on multiples of h (the lattice of the block
    # around one applicator or an array at the origin)
    h = cfg.spacing_mm
    mid = np.round(0.5 * (pts.min(axis=0) + pts.max(axis=0)) / h) * h
    vessels = max((v.distance_mm + v.diameter_mm for v in cfg.vessels), default=0)
    half = np.max(np.abs(pts - mid), axis=0) + cfg.margin_mm + vessels
    n = [2 * math.ceil(half[a] / h) + 1 for a in range(3)]  # x, y, z
    origin = tuple(float(mid[a] - (n[a] // 2) * h) for a in range(3))
    return Grid((n[2], n[1], n[0]), (h, h, h), origin)


# Peak memory per voxel of one run, measured (peak RSS over a 1.8-2.4 M voxel block at
# 0.8 mm, float32 state): microwave 163 B, cryo 135 B, RF 1130 B (the sparse conductance
# matrix and its multigrid hierarchy). Rounded up; float64 states add 6 arrays x 4 B x 2.
_BYTES_PER_VOXEL = {"rf": 1300.0, "other": 200.0}
_FLOAT64_EXTRA_BYTES_PER_VOXEL = 48.0


def check_domain_memory(cfg: SimulationConfig, grid: Grid) -> None:
    """Refuse a domain that cannot fit in memory, before allocating it."""
    from ioplan.resources import check_memory

    rf = cfg.applicator is not None and cfg.applicator.modality == "rf"
    per_voxel = _BYTES_PER_VOXEL["rf" if rf else "other"]
    if cfg.dtype == "float64":
        per_voxel += _FLOAT64_EXTRA_BYTES_PER_VOXEL
    n = math.prod(grid.shape)
    check_memory(
        n * per_voxel,
        f"a simulation domain of {grid.shape[0]} x {grid.shape[1]} x {grid.shape[2]} voxels",
        hint="use a coarser --spacing-mm or a smaller --domain-margin-mm",
    )


#: Patient side of the low and high end of each LPS axis (x: right to left, y: anterior
#: to posterior, z: inferior to superior).
_SIDES = (("right", "left"), ("anterior", "posterior"), ("inferior", "superior"))


def past_scan_mm(image: Grid, grid: Grid) -> dict[str, float]:
    """How far ``grid``'s voxel centres reach past ``image``'s outer voxel edges (mm).

    One entry per patient side reached (``{"superior": 12.0}``), rounded to 0.1 mm;
    empty when ``grid`` lies inside ``image``. Reaches under 1e-6 mm are rounding.
    """
    idx = _corner_indices(image, grid)
    out: dict[str, float] = {}
    cols = image.direction_matrix
    for a in range(3):
        lps_axis = int(np.argmax(np.abs(cols[:, a])))
        sign = 1 if cols[lps_axis, a] > 0 else -1
        below = (-0.5 - idx[:, a].min()) * image.spacing_mm[a]
        above = (idx[:, a].max() - (image.shape[a] - 0.5)) * image.spacing_mm[a]
        for reach, end in ((below, 0), (above, 1)):
            if reach > 1e-6:
                side = _SIDES[lps_axis][end if sign > 0 else 1 - end]
                out[side] = max(out.get(side, 0.0), round(float(reach), 1))
    return out


def zone_past_scan(image: Grid, grid: Grid, zone: np.ndarray) -> tuple[dict[str, float], float]:
    """How far the ``zone`` (a mask on ``grid``) reaches past ``image``, and how much.

    Returns the reach (mm per patient side, as :func:`past_scan_mm`) and the zone's
    volume there (mL: its voxels whose centres lie outside the image).
    """
    idx = np.argwhere(zone)
    if idx.size == 0:
        return {}, 0.0
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    box = Grid(tuple(int(v) for v in hi - lo + 1), grid.spacing_mm,
               tuple(float(v) for v in grid.index_to_lps(lo)), grid.direction)  # fmt: skip
    reach = past_scan_mm(image, box)
    if not reach:
        return {}, 0.0
    ci = image.lps_to_index(grid.index_to_lps(idx))
    outside = np.any((ci < -0.5) | (ci > np.asarray(image.shape) - 0.5), axis=1)
    return reach, float(outside.sum() * np.prod(grid.spacing_mm) * 1e-3)


def past_scan_warning(past: dict[str, float], what: str, volume_ml: float | None = None) -> str:
    """The warning for a ``what`` (the zone, the domain) that reaches past the scan."""
    sides = ", ".join(f"{v:g} mm {k}" for k, v in sorted(past.items(), key=lambda kv: -kv[1]))
    there = "" if volume_ml is None else f", {volume_ml:.1f} mL of it"
    return (
        f"the {what} reaches past the scanned range ({sides}{there}): the edge slices were "
        "continued there, so the anatomy beyond the scan is assumed, not imaged"
    )


def _corner_indices(image: Grid, grid: Grid) -> np.ndarray:
    """The continuous indices on ``image`` of ``grid``'s eight corner voxel centres."""
    hi = np.asarray(grid.shape) - 1
    corners = np.array([[i, j, k] for i in (0, hi[0]) for j in (0, hi[1]) for k in (0, hi[2])])
    return image.lps_to_index(grid.index_to_lps(corners))


def edge_extended(volume: Volume, grid: Grid) -> Volume:
    """``volume`` with its outer planes repeated outward until it covers ``grid``.

    Like ``np.pad(mode="edge")`` on the volume's own lattice (whole voxels, origin moved
    by as many), so every voxel inside the original keeps its value and position; a
    ``grid`` inside the volume gets the volume itself back.
    """
    idx = _corner_indices(volume.grid, grid)
    n = np.asarray(volume.grid.shape)
    lo = np.maximum(0, np.ceil(-0.5 - idx.min(axis=0) + 1e-9)).astype(int)
    hi = np.maximum(0, np.ceil(idx.max(axis=0) - (n - 0.5) + 1e-9)).astype(int)
    if not (lo.any() or hi.any()):
        return volume
    lo, hi = lo + 1, hi + 1  # one plane more: a centre on the outer edge stays inside
    g = volume.grid
    padded = np.pad(np.asarray(volume.array), list(zip(lo, hi, strict=True)), mode="edge")
    origin = tuple(float(v) for v in g.index_to_lps(-lo))
    return Volume(padded, Grid(padded.shape, g.spacing_mm, origin, g.direction))


def case_domain(cfg: SimulationConfig) -> tuple[Grid, np.ndarray, Placement, dict[str, float]]:
    case = cfg.case
    assert case is not None
    if cfg.placements:
        return _placements_case_domain(cfg)
    if cfg.tip_mm is None:
        if case.tumors and "centre_mm" in case.tumors[0]:
            # the tip goes beyond the tumour centre so that the zone's centre lands on it
            tip_np = np.asarray(case.tumors[0]["centre_mm"], float) + np.asarray(
                Placement((0.0, 0.0, 0.0), cfg.direction).direction
            ) * zone_centre_offset_mm(cfg.applicator)
        else:
            raise InputError("give --tip-mm: the case lists no tumour to aim at")
        tip = tuple(float(v) for v in tip_np)
    else:
        tip = cfg.tip_mm
    pl = Placement(tip, cfg.direction)
    if not case.labels.grid.contains_lps(pl.tip_mm):
        raise InputError(f"applicator tip {pl.tip_mm} mm lies outside the case grid")
    d = np.asarray(pl.direction)
    extent = active_extent_mm(cfg.applicator)
    spread = 0.0 if cfg.array == 1 else cfg.spacing_between_mm
    pts = [np.asarray(pl.tip_mm) - d * extent, np.asarray(pl.tip_mm)]
    lo = np.min(pts, axis=0) - cfg.margin_mm - spread
    hi = np.max(pts, axis=0) + cfg.margin_mm + spread
    grid, material, past = _case_crop(cfg, lo, hi, [pl])
    return grid, material, pl, past


def _placements_case_domain(
    cfg: SimulationConfig,
) -> tuple[Grid, np.ndarray, Placement, dict[str, float]]:
    """The case crop around every placement's tip and active part, plus the margin."""
    case = cfg.case
    assert case is not None
    for pl in cfg.placements:
        if not case.labels.grid.contains_lps(pl.tip_mm):
            raise InputError(f"applicator tip {pl.tip_mm} mm lies outside the case grid")
    pts = _active_points(cfg)
    lo = pts.min(axis=0) - cfg.margin_mm
    hi = pts.max(axis=0) + cfg.margin_mm
    grid, material, past = _case_crop(cfg, lo, hi, list(cfg.placements))
    return grid, material, cfg.placements[0], past


def _snapped(image: Grid, lo: np.ndarray) -> np.ndarray:
    """``lo`` moved down onto the case's voxel lattice (an axis-aligned case grid only).

    With the simulation's voxels on the case's lattice (and the simulation spacing a
    multiple of the case's), every simulation voxel centre is a case voxel centre: the
    labels map onto the simulation grid and the zone back onto the case without the
    half-voxel shifts that would move a vessel wall into the tissue beside it.
    """
    cols = image.direction_matrix
    if not np.allclose(np.abs(cols), np.round(np.abs(cols)), atol=1e-6):
        return lo  # oblique: no common lattice
    origin = np.asarray(image.origin_mm, float)
    sp = np.empty(3)
    for a in range(3):  # the spacing along each LPS axis, whichever array axis runs along it
        sp[int(np.argmax(np.abs(cols[:, a])))] = image.spacing_mm[a]
    return origin + np.floor((lo - origin) / sp + 1e-9) * sp


def _case_crop(
    cfg: SimulationConfig, lo: np.ndarray, hi: np.ndarray, tips: list[Placement]
) -> tuple[Grid, np.ndarray, dict[str, float]]:
    """The case's labels on the box ``lo``-``hi`` (LPS mm); each tip must lie in the body."""
    case = cfg.case
    assert case is not None
    h = cfg.spacing_mm
    lo = _snapped(case.labels.grid, np.asarray(lo, float))
    shape = tuple(math.ceil((hi[a] - lo[a]) / h) + 1 for a in (2, 1, 0))
    grid = Grid(shape, (h, h, h), tuple(float(v) for v in lo))
    check_domain_memory(cfg, grid)
    # where the domain reaches past the scanned range (a slab of slices), the edge slices
    # are continued outward: the anatomy there is assumed, not imaged (a 37 degC boundary
    # or fat at the image edge would shape the zone)
    past = past_scan_mm(case.labels.grid, grid)
    labels = resample(
        edge_extended(case.labels, grid) if past else case.labels, grid,
        interpolation="nearest", default_value=int(Label.FAT),
    )  # fmt: skip
    material = np.asarray(labels.array, np.uint8).copy()
    organ = cfg.organ or "liver"
    if not np.isin(material, [Label.LIVER, Label.TUMOR, *_host_labels(organ)]).any():
        what = "liver" if organ == "liver" else f"{organ}, liver"
        raise InputError(f"the case has no {what} or tumor label around the applicator")
    for pl in tips:
        tip_idx = tuple(np.clip(np.rint(grid.lps_to_index(pl.tip_mm)).astype(int), 0,
                                np.asarray(grid.shape) - 1))  # fmt: skip
        if material[tip_idx] == Label.BACKGROUND:
            raise InputError(f"applicator tip {pl.tip_mm} mm lies outside the body (in air)")
    # air inside the crop (outside the body) conducts like fat but is never heated
    material[material == Label.BACKGROUND] = Label.FAT
    return grid, material, past


def vessel_materials(
    grid: Grid, material: np.ndarray, table: MaterialTable, heated_length_mm: float,
    organ: str | None = None,
) -> MaterialTable:  # fmt: skip
    """Label-map vessels: >= 3 mm diameter become fixed at blood temperature with a wall h.

    Smaller ones become the organ's parenchyma (its first host label: liver, lung,
    kidney, vertebra), where their flow counts through perfusion.
    """
    from ioplan.tissue import blood_flow_parameters

    r_small = blood_flow_parameters()["small_vessel_radius_mm"]
    next_id = FIRST_VESSEL + 8
    for lbl in VESSEL_LABELS:
        mask = material == lbl
        if not mask.any():
            continue
        radius = local_radius_mm(mask, grid.spacing_mm)
        small = mask & (radius < r_small)
        material[small] = _host_labels(organ)[0]  # small vessels count through perfusion
        big = mask & ~small
        if not big.any():
            continue
        for r_lo, r_hi in ((r_small, 2.5), (2.5, 4.0), (4.0, 6.0), (6.0, 9.0), (9.0, 100.0)):
            sel = big & (radius >= r_lo) & (radius < r_hi)
            if not sel.any():
                continue
            r_mm = float(np.median(radius[sel]))
            d_mm = 2.0 * r_mm
            flow = _TYPICAL_VELOCITY_M_S[lbl] * math.pi * (d_mm * 1e-3) ** 2 / 4 * 6e7
            h = nusselt_wall_h(min(d_mm, 40.0), min(flow, 5000.0), heated_length_mm)
            if next_id > 250:
                raise InputError("too many vessel classes")
            table = table.with_material(
                next_id,
                f"{lbl.name.lower()} r~{r_mm:.1f}mm",
                fixed_group=0,
                wall_h_w_m2_k=h,
                k_w_m_k=blood_properties()["k_w_m_k"],
            )
            material[sel] = next_id
            next_id += 1
    return table
