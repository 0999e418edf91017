"""The synthetic chest (issue 21): a lung tumour with what a lung ablation must respect.

Chest wall (skin, fat, muscle, ribs with intercostal spaces, sternum), thoracic spine
with canal, cord and nerve roots, mediastinum (fat, heart, aorta, trachea), aerated
lungs whose surface is the pleura, oblique fissures in both lungs and the horizontal
fissure of the right lung, bronchial trees (15 mm trachea and main bronchi, then
branches to 2 mm) and pulmonary arteries and veins (20 mm trunk, branches to 3 mm),
the diaphragm with liver and spleen below, and one tumour in a lobe.

Coordinates: LPS mm (+x left, +y posterior, +z superior); x = 0 is the midline, the
carina is at z = 25 mm.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import numpy as np
from scipy import ndimage

from ioplan.anatomy import _steps as steps
from ioplan.anatomy._labels import Label
from ioplan.anatomy._phantom_organs import (
    ORGAN_STEPS,
    Spine,
    ball_share,
    check_host,
    organ_grid,
    paint_tumour,
    spine_layers,
)
from ioplan.anatomy._shapes import Anatomy, SmoothNoise, Space, ellipsoid, tube_mask
from ioplan.anatomy._vessels import VesselSegment, grow_tree, rasterise_segments
from ioplan.errors import InputError
from ioplan.imaging import Volume

__all__ = ["CARINA_MM", "ChestAnatomy", "fissure_signed_mm", "generate_lung"]

#: The carina (LPS mm), where the trachea divides into the main bronchi.
CARINA_MM = (0.0, 8.0, 25.0)
#: Radius (mm) of the trachea and main bronchi: 15, 13 and 12 mm across (adult trachea
#: 15-20 mm, main bronchi 10-15 mm; Weibel, Morphometry of the Human Lung, 1963).
TRACHEA_R_MM, MAIN_BRONCHUS_R_MM = 7.5, (6.5, 6.0)
#: Segment length over radius of the lobar trees.
LENGTH_PER_RADIUS = 4.0
#: Smallest bronchus (2 mm across) and pulmonary vessel (3 mm across) drawn.
MIN_BRONCHUS_R_MM, MIN_VESSEL_R_MM = 1.0, 1.5
#: Oblique fissures: z = a + 0.7 y (LPS mm), high posteriorly (about T4) and at the
#: diaphragm anteriorly; ``a`` for the right and the left lung. Horizontal fissure of
#: the right lung at this z, anterior to the oblique one.
OBLIQUE_A_MM = {"right": -20.0, "left": -25.0}
OBLIQUE_SLOPE = 0.7
HORIZONTAL_Z_MM = 0.0
#: Fissure (visceral pleura, two layers) thickness drawn: 1.5 mm, or as thick as the grid
#: needs for the sheet to separate the lobes (no 26-neighbour pair of voxels straddles it).
FISSURE_MM = 1.5
#: Nominal tumour centres (y, z in LPS mm) per site; x is found from the lung's edge.
SITE_YZ_MM = {"peripheral": (-10.0, 32.0), "central": (5.0, 30.0)}
#: Gap (mm) between the tumour's edge and the pleura: costal pleura for a peripheral
#: tumour, mediastinal pleura (hilum) for a central one.
SITE_GAP_MM = {"peripheral": 10.0, "central": 4.0}
#: Share of the tumour's ball that must be lung for a site to take it.
FIT_FRACTION = 0.9
#: Labels a lung tumour replaces, and the ones its centre may lie in.
LUNG_REPLACEABLE = (Label.LUNG, Label.BRONCHUS, Label.PULMONARY_VESSEL, Label.TUMOR)


class ChestAnatomy(Anatomy):
    """The chest's outline: wider than deep, thinner fat than the abdomen's."""

    AX, AY_ANT, AY_POST, P = 150.0, 100.0, 108.0, 2.4
    SKIN_MM, MUSCLE_MM = 2.0, 12.0

    def fat_thickness(self, x, y, z):
        """Subcutaneous fat over the chest (mm): 8-13 mm, thicker laterally."""
        phi = np.arctan2(np.abs(x), y)
        return 8.0 + 5.0 * np.sin(phi) ** 2 + 2.0 * self.fat_noise(x, y, z * 0.3)

    def dome_z(self, x, y):
        """The diaphragm's domes, 125 mm below the abdomen's (right higher)."""
        return super().dome_z(x, y) - 125.0


def _sides():
    return (("right", -1.0), ("left", 1.0))


def fissure_signed_mm(side: str, x, y, z):
    """Signed distance (mm) to the oblique fissure's plane: > 0 above (upper lobe)."""
    del x
    return (z - OBLIQUE_A_MM[side] - OBLIQUE_SLOPE * y) / np.sqrt(1.0 + OBLIQUE_SLOPE**2)


def _fissure_half_mm(normal, spacing) -> float:
    # a 26-neighbour step changes n.p by at most sum_i |n_i| s_i: a sheet that thick
    # cannot be stepped over
    n = np.abs(np.asarray(normal, float)) / np.linalg.norm(normal)
    grid_l1 = float(n[0] * spacing[2] + n[1] * spacing[1] + n[2] * spacing[0])
    return 0.5 * max(FISSURE_MM, grid_l1 + 1e-6)


def _ribs(sp: Space, anat: ChestAnatomy, wall) -> list:
    """Ribs every 28 mm, 11 mm high, descending 85 mm from back to front; the sternum."""
    phi = np.arctan2(np.abs(sp.x), sp.y)
    wall_mid = anat.SKIN_MM + wall.fat_mm + 0.55 * anat.MUSCLE_MM
    rib = np.zeros(sp.grid.shape, bool)
    for z0 in np.arange(-60.0, 200.0, 28.0):
        zc = z0 - 85.0 * phi / np.pi
        band = ((sp.z - zc) / 5.5) ** 2 + ((wall.depth_mm - wall_mid) / 4.5) ** 2 < 1.0
        rib |= band & (phi > 0.30) & (phi < 2.75)
    sternum = (np.abs(sp.x) < 16.0) & (sp.y < 0.0) & (wall.depth_mm >= anat.SKIN_MM + wall.fat_mm)
    sternum &= wall.depth_mm < wall.inner_mm - 1.0
    return [(rib, Label.RIB), (sternum, Label.RIB)]


def _mediastinum(sp: Space, chest: np.ndarray) -> tuple[np.ndarray, list, list[np.ndarray]]:
    """Mediastinal fat, heart, aorta and the big airway/vessel tubes (masks, layers)."""
    x, y, z = sp.x, sp.y, sp.z
    fat = chest & (((np.abs(x) < 28.0) & (y > -30.0)) | (np.abs(x) < 14.0))
    heart = chest & (ellipsoid(x, y, z, (15.0, -35.0, -45.0), (65.0, 55.0, 50.0)) < 1.0)
    zlo = float(sp.z.min()) - 5.0
    aorta_pts = np.array(
        [
            [-14.0, -30.0, -5.0],
            [-14.0, -30.0, 45.0],
            [-10.0, -22.0, 55.0],
            [8.0, -14.0, 68.0],
            [26.0, 12.0, 62.0],
            [26.0, 28.0, 40.0],
            [26.0, 28.0, zlo],
        ]
    )
    aorta = tube_mask(x, y, z, aorta_pts, 13.0)
    return (
        fat | heart,
        [(fat, Label.FAT), (heart, Label.HEART), (aorta, Label.AORTA)],
        [aorta],
    )


def _airways_and_vessel_roots() -> dict[str, list]:
    """Central tubes (points, radius) and the roots of the lobar trees."""
    c = np.array(CARINA_MM)
    tubes = {
        Label.BRONCHUS: [
            (np.array([[0.0, 8.0, 95.0], c]), TRACHEA_R_MM),
            (np.array([c, [-38.0, 12.0, 5.0]]), MAIN_BRONCHUS_R_MM[0]),
            (np.array([c, [38.0, 12.0, 0.0]]), MAIN_BRONCHUS_R_MM[1]),
        ],
        Label.PULMONARY_VESSEL: [
            (np.array([[14.0, -40.0, -15.0], [16.0, -28.0, 10.0]]), 10.0),  # trunk, 20 mm
            (np.array([[16.0, -28.0, 10.0], [4.0, -8.0, 8.0], [-45.0, -2.0, 4.0]]), 9.0),
            (np.array([[16.0, -28.0, 10.0], [45.0, 5.0, 16.0]]), 8.5),
            (np.array([[10.0, -5.0, -25.0], [-48.0, 10.0, -15.0]]), 6.0),  # veins to the LA
            (np.array([[10.0, -5.0, -25.0], [48.0, 10.0, -15.0]]), 6.0),
        ],
    }
    # (tree name, side, lobe, start, direction, radius)
    roots = [
        ("bronchus_right_upper", "right", "upper", (-38, 12, 5), (-0.6, -0.3, 0.75), 5.0),
        ("bronchus_right_lower", "right", "lower", (-38, 12, 5), (-0.5, 0.4, -0.75), 5.5),
        ("bronchus_left_upper", "left", "upper", (38, 12, 0), (0.6, -0.3, 0.75), 5.0),
        ("bronchus_left_lower", "left", "lower", (38, 12, 0), (0.5, 0.4, -0.75), 5.0),
        ("pulmonary_artery_right_upper", "right", "upper", (-45, -2, 4), (-0.5, -0.4, 0.75), 6.5),
        ("pulmonary_artery_right_lower", "right", "lower", (-45, -2, 4), (-0.5, 0.3, -0.8), 7.0),
        ("pulmonary_artery_left_upper", "left", "upper", (45, 5, 16), (0.5, -0.4, 0.75), 6.0),
        ("pulmonary_artery_left_lower", "left", "lower", (45, 10, -8), (0.5, 0.3, -0.8), 6.5),
        ("pulmonary_vein_right_upper", "right", "upper", (-48, 10, -15), (-0.6, -0.5, 0.6), 5.0),
        ("pulmonary_vein_right_lower", "right", "lower", (-48, 10, -15), (-0.5, 0.3, -0.8), 5.5),
        ("pulmonary_vein_left_upper", "left", "upper", (48, 10, -15), (0.6, -0.5, 0.6), 5.0),
        ("pulmonary_vein_left_lower", "left", "lower", (48, 10, -15), (0.5, 0.3, -0.8), 5.5),
    ]
    return {"tubes": tubes, "roots": roots}


def _lobe_depths(lobes: dict, grid) -> Callable:
    """``depth(name)(points)``: depth (mm) of points inside a lobe (0 outside)."""
    cache: dict = {}

    def depth_of(key):
        if key not in cache:
            cache[key] = ndimage.distance_transform_edt(lobes[key], sampling=grid.spacing_mm)
        edt = cache[key]

        def inside(points):
            idx = np.rint(grid.lps_to_index(points)).astype(int)
            ok = np.all((idx >= 0) & (idx < np.asarray(grid.shape)), axis=-1)
            out = np.zeros(len(points))
            out[ok] = edt[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
            return out

        return inside

    return depth_of


def _site_centre(lung: np.ndarray, sp: Space, site: str, side: str, diameter_mm: float):
    """The tumour centre of ``site`` on ``side``: ``SITE_GAP_MM`` from the pleura.

    ``lung`` is the aerated lung without the fissures: the row of voxels at the site's
    (y, z) on ``side`` gives the costal (lateral end) and mediastinal (medial end) pleura.
    """
    y0, z0 = SITE_YZ_MM[site]
    iz = int(np.argmin(np.abs(sp.z.reshape(-1) - z0)))
    iy = int(np.argmin(np.abs(sp.y.reshape(-1) - y0)))
    xs = sp.x.reshape(-1)
    on_side = (xs < 0) if side == "right" else (xs > 0)
    row = lung[iz, iy, :] & on_side
    if not row.any():
        raise InputError(f"no {side} lung at the {site} site")
    lateral = xs[row].min() if side == "right" else xs[row].max()
    medial = xs[row].max() if side == "right" else xs[row].min()
    r = 0.5 * diameter_mm + SITE_GAP_MM[site]
    sx = -1.0 if side == "right" else 1.0
    x = lateral - sx * r if site == "peripheral" else medial + sx * r
    centre = (float(x), float(sp.y.reshape(-1)[iy]), float(sp.z.reshape(-1)[iz]))
    # the tumour must lie in one lobe (it may push a little against the pleura or a
    # fissure, not cross it, nor leave the field of view)
    if ball_share(lung, sp, centre, diameter_mm) < FIT_FRACTION:
        raise InputError(
            f"a {diameter_mm:g} mm tumour does not fit at the {site} site of the {side} lung; "
            "use a smaller --tumor-diameter-mm"
        )
    return centre


def generate_lung(cfg, progress: Callable[[str], None] | None = None):
    """The chest phantom of ``cfg`` (organ ``"lung"``); see the module's docstring."""
    from ioplan.anatomy._phantom import Phantom, TumorSpec

    report = progress or (lambda _name: None)
    names = iter(ORGAN_STEPS["lung"])
    grid = organ_grid("lung", cfg.spacing_mm)
    sp = Space.of(grid)
    rng = np.random.default_rng(cfg.seed)
    anat = ChestAnatomy(rng)
    labels = np.zeros(grid.shape, np.uint8)

    report(next(names))
    wall, layers = steps.body_wall(anat, sp)
    labels = steps.paint(labels, layers)
    report(next(names))
    labels = steps.paint(labels, spine_layers(sp, wall.depth_mm, anat.SKIN_MM, Spine()))
    report(next(names))
    labels = steps.paint(labels, _ribs(sp, anat, wall))
    report(next(names))
    cavity = wall.cavity & (labels == Label.FAT)
    dome = anat.dome_z(sp.x, sp.y)
    chest = cavity & (sp.z >= dome + 5.0)
    below = cavity & (sp.z < dome)
    labels[cavity & (sp.z >= dome) & (sp.z < dome + 5.0)] = Label.DIAPHRAGM
    labels[below & (sp.x < 15.0)] = Label.LIVER
    labels[below & (sp.x > 45.0) & (sp.y > -30.0)] = Label.SPLEEN
    mediastinum, layers, _ = _mediastinum(sp, chest)
    report(next(names))
    lung = chest & ~mediastinum
    for mask, label in layers:
        labels[np.broadcast_to(mask, grid.shape)] = label
    lung &= labels == Label.FAT
    labels[lung] = Label.LUNG
    del cavity, below, mediastinum, wall, dome

    report(next(names))
    x, y, z = sp.x, sp.y, sp.z
    lobes: dict[tuple[str, str], np.ndarray] = {}
    n_oblique = (0.0, -OBLIQUE_SLOPE, 1.0)
    h_ob = _fissure_half_mm(n_oblique, grid.spacing_mm)
    h_hz = _fissure_half_mm((0.0, 0.0, 1.0), grid.spacing_mm)
    fissure = np.zeros(grid.shape, bool)
    for side, sx in _sides():
        half = lung & (sx * x > 0)
        s = fissure_signed_mm(side, x, y, z)
        fissure |= half & (np.abs(s) <= h_ob)
        lobes[(side, "upper")] = half & (s > h_ob)
        lobes[(side, "lower")] = half & (s < -h_ob)
        if side == "right":
            fissure |= half & (s > h_ob) & (np.abs(z - HORIZONTAL_Z_MM) <= h_hz)
    labels[fissure] = Label.FISSURE
    del fissure
    lung_only = labels == Label.LUNG

    depth_of = _lobe_depths(lobes, grid)
    central = _airways_and_vessel_roots()
    args = (grid.lps_to_index, grid.index_to_lps, grid.spacing_mm)
    segments: dict[Label, list[VesselSegment]] = {Label.BRONCHUS: [], Label.PULMONARY_VESSEL: []}
    for label, min_r, kind in (
        (Label.BRONCHUS, MIN_BRONCHUS_R_MM, "bronchus"),
        (Label.PULMONARY_VESSEL, MIN_VESSEL_R_MM, "pulmonary"),
    ):
        report(next(names))
        for name, side, lobe, start, direction, radius in central["roots"]:
            if not name.startswith(kind):
                continue
            segments[label] += grow_tree(
                name,
                np.array(start, float),
                np.array(direction, float),
                radius,
                inside_depth_mm=depth_of((side, lobe)),
                rng=rng,
                min_radius_mm=min_r,
                max_segments=400,
                length_per_radius=LENGTH_PER_RADIUS,
            )
        allowed = np.isin(labels, [Label.LUNG, Label.FISSURE, Label.FAT, label])
        trunk = "airway_central" if label == Label.BRONCHUS else "pulmonary_central"
        for pts, radius in central["tubes"][label]:
            box, bx, by, bz = grid_box(sp, pts, radius)
            labels[box][tube_mask(bx, by, bz, pts, radius) & allowed[box]] = label
            for a, b in pairwise(pts):
                n = sum(seg.tree == trunk for seg in segments[label])
                segments[label].append(
                    VesselSegment(trunk, n, -1, tuple(map(float, a)), tuple(map(float, b)), radius)
                )
        rasterise_segments(labels, label, segments[label], *args, allowed=allowed)

    report(next(names))
    tumors = []
    noise = SmoothNoise(rng, 25.0, (-40, -40, -40), (40, 40, 40))
    rim = np.zeros(grid.shape, bool)
    for t in cfg.tumors:
        if t.centre_mm is None:
            centre = _site_centre(lung_only, sp, cfg.site, cfg.side, t.diameter_mm)
            t = TumorSpec(t.diameter_mm, centre, t.irregularity, t.histology)
        rim |= paint_tumour(
            labels, sp, t, LUNG_REPLACEABLE, (*LUNG_REPLACEABLE, Label.FISSURE), noise,
            "lung", steps.RIM_FROM,
        )  # fmt: skip
        tumors.append(t)
    check_host(labels, grid.spacing_mm, "lung", cfg.site)
    report(next(names))
    image = steps.synthesise_ct(labels, grid, rim, cfg.noise_hu, rng)
    vessels = tuple(segments[Label.PULMONARY_VESSEL])
    airways = tuple(segments[Label.BRONCHUS])
    return Phantom(Volume(image, grid), Volume(labels, grid), tuple(tumors), vessels, cfg, airways)


def grid_box(sp: Space, pts: np.ndarray, radius: float):
    """``sp.box`` around a polyline's points, ``radius`` wide."""
    return sp.box(pts.min(axis=0) - radius, pts.max(axis=0) + radius)
