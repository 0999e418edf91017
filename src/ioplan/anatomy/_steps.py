"""The named steps of :func:`~ioplan.anatomy.generate_phantom`.

Each step is a function of arrays on the phantom's :class:`~ioplan.anatomy._shapes.Space`
(its grid and coordinates) that returns new arrays and, where it draws labels, a list of
*layers* ``(mask, label)`` painted in order by :func:`paint` (a later layer wins). Steps
that draw random numbers take the generator explicitly; called in the order of
``generate_phantom`` they draw the same numbers, so a seed gives the same case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ioplan.anatomy._labels import LABEL_INFO, Label
from ioplan.anatomy._shapes import (
    Z_RANGE_MM,
    Anatomy,
    SmoothNoise,
    Space,
    ellipsoid,
    lobulated_sphere,
    perpendicular,
    tube_mask,
)
from ioplan.anatomy._vessels import VesselSegment, grow_tree, rasterise_segments
from ioplan.errors import InputError
from ioplan.imaging import Grid

#: A label drawn over a mask (broadcastable to the grid).
Layer = tuple[np.ndarray, Label]


def paint(labels: np.ndarray, layers: list[Layer]) -> np.ndarray:
    """A copy of ``labels`` with each layer's label drawn over its mask, in order."""
    out = labels.copy()
    for mask, label in layers:
        out[np.broadcast_to(mask, out.shape)] = label
    return out


# -- 1. body wall ------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BodyWall:
    """Depth below the skin, subcutaneous fat thickness and the inner wall depth (mm)."""

    depth_mm: np.ndarray
    fat_mm: np.ndarray
    inner_mm: np.ndarray

    @property
    def cavity(self) -> np.ndarray:
        """Inside the muscle wall (abdominal and thoracic cavities)."""
        return self.depth_mm >= self.inner_mm


def body_wall(anat: Anatomy, sp: Space) -> tuple[BodyWall, list[Layer]]:
    """Skin, subcutaneous fat and muscle wall; the cavity is filled with (visceral) fat."""
    depth = anat.depth(sp.x, sp.y, sp.z)
    fat_t = anat.fat_thickness(sp.x, sp.y, sp.z)
    inner = anat.SKIN_MM + fat_t + anat.MUSCLE_MM
    inside = depth >= 0
    layers = [
        (inside, Label.FAT),
        (inside & (depth < anat.SKIN_MM), Label.SKIN),
        ((depth >= anat.SKIN_MM + fat_t) & (depth < inner), Label.MUSCLE),
    ]
    return BodyWall(depth, fat_t, inner), layers


# -- 2. spine ----------------------------------------------------------------
def spine_and_muscles(sp: Space, wall: BodyWall, skin_mm: float) -> list[Layer]:
    """Paraspinal muscles, vertebrae (body, arch, processes), discs, spinal canal."""
    x, y, z = sp.x, sp.y, sp.z
    layers: list[Layer] = []
    for sx in (-1.0, 1.0):
        pm = ((x - sx * 38.0) / 30.0) ** 2 + ((y - 88.0) / 24.0) ** 2 < 1.0
        layers.append((pm & (wall.depth_mm >= skin_mm + 6.0), Label.MUSCLE))
    vert = sp.full(np.sqrt(x**2 + (y - 52.0) ** 2) < 21.0)
    arch = (np.sqrt(x**2 + (y - 82.0) ** 2) < 16.0) & (y > 68.0)
    spinous = (np.abs(x) < 4.5) & (y > 82.0) & (y < 112.0)
    # transverse processes: thin, pointing postero-laterally
    transverse = (np.abs(y - 76.0 - 0.3 * (np.abs(x) - 10.0)) < 3.5) & (np.abs(x) < 40.0)
    transverse &= np.abs(x) > 10.0
    layers.append((sp.full(vert | arch | spinous | transverse), Label.VERTEBRA))
    # Discs every 32 mm along z, 7 mm thick (soft tissue: muscle properties).
    layers.append(((np.abs(((z + 20.0) % 32.0) - 16.0) < 3.5) & vert, Label.MUSCLE))
    layers.append((sp.full(np.sqrt(x**2 + (y - 82.0) ** 2) < 9.0), Label.SPINAL_CANAL))
    return layers


# -- 3. ribs -----------------------------------------------------------------
#: Height (mm) of each rib at the spine, and how far round it runs (angle from posterior).
RIB_POSTERIOR_Z_MM = (110.0, 82.0, 54.0, 26.0, -2.0, -30.0)
RIB_PHI_MAX = (2.8, 2.7, 2.5, 2.2, 1.7, 1.1)


def ribs(sp: Space, wall: BodyWall, skin_mm: float, muscle_mm: float) -> list[Layer]:
    """Ribs: bands in the chest wall that descend anteriorly."""
    phi = np.arctan2(np.abs(sp.x), sp.y)  # 0 posterior, pi anterior
    wall_mid = skin_mm + wall.fat_mm + 0.55 * muscle_mm
    layers: list[Layer] = []
    for z0, phi_max in zip(RIB_POSTERIOR_Z_MM, RIB_PHI_MAX, strict=True):
        zc = z0 - 85.0 * phi / np.pi
        in_rib = ((sp.z - zc) / 5.5) ** 2 + ((wall.depth_mm - wall_mid) / 4.5) ** 2 < 1.0
        in_rib &= (phi > 0.42) & (phi < phi_max)
        layers.append((in_rib, Label.RIB))
    return layers


# -- 4. thorax ---------------------------------------------------------------
def thorax(anat: Anatomy, sp: Space, cavity: np.ndarray) -> tuple[np.ndarray, list[Layer]]:
    """Diaphragm, lungs, heart; returns the abdominal cavity (below the diaphragm) too.

    The heart sits on the central tendon, the lungs around it, the posterior
    mediastinum (fat, aorta) between them.
    """
    x, y, z = sp.x, sp.y, sp.z
    dome = anat.dome_z(x, y)
    diaphragm = cavity & (z >= dome) & (z < dome + 5.0)
    chest = cavity & (z >= dome + 5.0)
    heart = chest & (ellipsoid(x, y, z, (8.0, -22.0, 100.0), (68.0, 58.0, 48.0)) < 1.0)
    mediastinum = (np.abs(x) < 24.0) & (y > -15.0)
    layers = [
        (diaphragm, Label.DIAPHRAGM),
        (chest & ~heart & ~mediastinum, Label.LUNG),
        (heart, Label.HEART),
    ]
    return cavity & (z < dome), layers


# -- 5. great vessels --------------------------------------------------------
def great_vessels(sp: Space) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the aorta (whole height) and the IVC (below the right atrium)."""
    x, y, z = sp.x, sp.y, sp.z
    aorta = sp.full((x - 18.0) ** 2 + (y - 18.0) ** 2 < 11.0**2)
    ivc = (((x + 24.0) / 13.0) ** 2 + ((y - 12.0) / 10.5) ** 2 < 1.0) & (z < 75.0)
    return aorta, ivc


# -- 6. abdominal organs -----------------------------------------------------
@dataclass(frozen=True, eq=False)
class Organs:
    """Masks of the abdominal organs, before they are cut by the diaphragm."""

    kidney: np.ndarray
    renal_sinus: np.ndarray
    spleen: np.ndarray
    stomach: np.ndarray
    stomach_lumen: np.ndarray
    bowel: np.ndarray
    bowel_lumen: np.ndarray
    gallbladder: np.ndarray

    def layers(self, abdominal: np.ndarray) -> list[Layer]:
        """The organs below the diaphragm, painted before the liver (cut around them)."""
        return [
            (self.kidney & abdominal, Label.KIDNEY),
            (self.renal_sinus & self.kidney & abdominal, Label.FAT),
            (self.spleen & abdominal, Label.SPLEEN),
            (self.stomach & abdominal, Label.STOMACH),
            (self.stomach_lumen & abdominal, Label.BOWEL_CONTENT),
            (self.bowel & abdominal, Label.BOWEL_WALL),
            (self.bowel_lumen & abdominal, Label.BOWEL_CONTENT),
        ]


#: Colon centreline (LPS mm), from the caecum round to the descending colon; radius 21 mm.
COLON_MM = (
    (-115, 15, -110),
    (-105, -5, -80),
    (-88, -38, -62),
    (-45, -62, -70),
    (10, -68, -76),
    (60, -55, -70),
    (100, -25, -55),
    (112, 10, -40),
)


def small_bowel_loops(rng: np.random.Generator) -> list[np.ndarray]:
    """Six seeded meandering loops (6 points each) in the lower central abdomen (LPS mm)."""
    lo_box, hi_box = np.array([-70.0, -75.0, -115.0]), np.array([70.0, 15.0, -50.0])
    loops = []
    for _ in range(6):
        pts = [rng.uniform(lo_box, hi_box)]
        for _ in range(5):
            pts.append(
                np.clip(pts[-1] + rng.normal(0.0, 1.0, 3) * (22.0, 22.0, 12.0), lo_box, hi_box)
            )
        loops.append(np.array(pts))
    return loops


def abdominal_organs(sp: Space, rng: np.random.Generator) -> Organs:
    """Kidneys (with renal sinus), spleen, stomach, colon and small bowel, gallbladder."""
    shape = sp.grid.shape
    kidney = np.zeros(shape, bool)
    sinus = np.zeros(shape, bool)
    for sx, zc in ((-1.0, -52.0), (1.0, -42.0)):
        sl, x, y, z = sp.box((sx * 76 - 45, 10, zc - 70), (sx * 76 + 45, 120, zc + 70))
        k = ellipsoid(
            x, y, z, (sx * 76.0, 68.0, zc), (30.0, 24.0, 56.0), (0.0, sx * 12.0, sx * 20.0)
        )
        s = ellipsoid(x, y, z, (sx * 58.0, 60.0, zc), (12.0, 10.0, 30.0))
        kidney[sl] |= k < 1.0
        sinus[sl] |= s < 1.0
    spleen = np.zeros(shape, bool)
    sl, x, y, z = sp.box((40, -40, -40), (170, 140, 110))
    outer = ellipsoid(x, y, z, (98.0, 58.0, 30.0), (34.0, 55.0, 58.0), (0.0, 0.0, 25.0))
    inner = ellipsoid(x, y, z, (60.0, 45.0, 30.0), (28.0, 45.0, 70.0), (0.0, 0.0, 25.0))
    spleen[sl] = (outer < 1.0) & (inner > 1.0)
    stomach = np.zeros(shape, bool)
    stomach_lumen = np.zeros(shape, bool)
    sl, x, y, z = sp.box((-20, -90, -40), (120, 60, 110))
    st = ellipsoid(x, y, z, (52.0, -18.0, 32.0), (44.0, 38.0, 55.0), (20.0, 0.0, -25.0))
    stomach[sl] = st < 1.0
    stomach_lumen[sl] = st < 1.0 - 4.5 / 40.0
    bowel = np.zeros(shape, bool)
    bowel_lumen = np.zeros(shape, bool)
    tubes = [(np.array(COLON_MM, float), 21.0)]
    tubes += [(pts, 12.0) for pts in small_bowel_loops(rng)]
    for pts, radius in tubes:
        sl, x, y, z = sp.box(pts.min(axis=0) - radius, pts.max(axis=0) + radius)
        bowel[sl] |= tube_mask(x, y, z, pts, radius)
        bowel_lumen[sl] |= tube_mask(x, y, z, pts, radius - 3.0)
    gallbladder = np.zeros(shape, bool)
    sl, x, y, z = sp.box((-80, -110, -90), (30, 10, 20))
    gb = ellipsoid(x, y, z, (-28.0, -52.0, -32.0), (15.0, 16.0, 38.0), (35.0, 0.0, 10.0))
    gallbladder[sl] = gb < 1.0
    return Organs(kidney, sinus, spleen, stomach, stomach_lumen, bowel, bowel_lumen, gallbladder)


# -- 7. liver ----------------------------------------------------------------
def liver(
    anat: Anatomy, sp: Space, organs: Organs, abdominal: np.ndarray, wall: BodyWall
) -> tuple[np.ndarray, np.ndarray]:
    """The liver mask (one connected piece) and the keep-out region it was cut from.

    The implicit shape, below the diaphragm, 1 mm inside the muscle wall, at least
    3 mm from the kidneys, spleen, stomach and bowel, not left of and behind the IVC
    (aorta, crura, spine) nor in the left flank, and not in the gallbladder.
    """
    x, y = sp.x, sp.y
    sl, bx, by, bz = sp.box((-200, -150, Z_RANGE_MM[0]), (130, 150, Z_RANGE_MM[1]))
    mask = np.zeros(sp.grid.shape, bool)
    mask[sl] = anat.liver_field(bx, by, bz) < 1.0
    keep_out = organs.kidney | organs.spleen | organs.stomach | organs.bowel
    keep_out = ndimage.binary_dilation(
        keep_out, iterations=max(1, round(3.0 / min(sp.grid.spacing_mm)))
    )
    keep_out |= ((x - 22.0) / 38.0) ** 2 + ((y - 58.0) / 48.0) ** 2 < 1.0
    keep_out |= ((x - 120.0) / 75.0) ** 2 + ((y - 60.0) / 90.0) ** 2 < 1.0
    mask &= abdominal & ~keep_out & (wall.depth_mm >= wall.inner_mm + 1.0)
    mask &= ~(organs.gallbladder & abdominal)
    return largest_component(mask), keep_out


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected piece of ``mask`` (face connectivity); cuts can leave crumbs."""
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
    return lab == (1 + int(np.argmax(sizes)))


# -- 8. vessel trees ---------------------------------------------------------
@dataclass(frozen=True)
class VesselTrees:
    """Centrelines of the liver's vessel trees and bile ducts."""

    portal: tuple[VesselSegment, ...]
    hepatic: tuple[VesselSegment, ...]
    artery: tuple[VesselSegment, ...]
    ducts: tuple[VesselSegment, ...]

    @property
    def all(self) -> tuple[VesselSegment, ...]:
        """Every segment: portal, hepatic veins, artery, ducts."""
        return self.portal + self.hepatic + self.artery + self.ducts


#: Hilum of the liver (LPS mm), where the portal vein divides.
HILUM_MM = (-30.0, -8.0, -12.0)
#: Confluence of the hepatic veins at the IVC (LPS mm).
CONFLUENCE_MM = (-24.0, 12.0, 45.0)


def vessel_trees(liver_mask: np.ndarray, grid: Grid, rng: np.random.Generator) -> VesselTrees:
    """Portal and hepatic vein trees grown inside the liver; artery and ducts beside the portal.

    Right and left portal veins split the 7 mm trunk by Murray's law (r^3 conserved;
    Murray, PNAS 1926;12:207).
    """
    depth_in_liver = ndimage.distance_transform_edt(liver_mask, sampling=grid.spacing_mm)

    def inside_depth(points: np.ndarray) -> np.ndarray:
        idx = np.rint(grid.lps_to_index(points)).astype(int)
        ok = np.all((idx >= 0) & (idx < np.asarray(grid.shape)), axis=-1)
        out = np.zeros(len(points))
        out[ok] = depth_in_liver[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        return out

    hilum = np.array(HILUM_MM)
    r_trunk, r_right = 7.0, 5.9
    r_left = (r_trunk**3 - r_right**3) ** (1.0 / 3.0)
    portal = [VesselSegment("portal", 0, -1, (2.0, 2.0, -82.0), tuple(hilum), r_trunk)]
    for direction, radius in (((-1.0, 0.25, 0.35), r_right), ((1.0, -0.55, 0.7), r_left)):
        sub = grow_tree(
            "portal", hilum, np.array(direction), radius, inside_depth_mm=inside_depth, rng=rng
        )
        offset = len(portal)
        portal += [
            VesselSegment(
                s.tree,
                s.index + offset,
                0 if s.parent < 0 else s.parent + offset,
                s.start_mm,
                s.end_mm,
                s.radius_mm,
            )
            for s in sub
        ]
    hepatic: list[VesselSegment] = []
    for name, direction, radius in (
        ("hepatic_right", (-1.0, 0.15, -0.55), 6.5),
        ("hepatic_middle", (-0.3, -0.9, -0.6), 5.5),
        ("hepatic_left", (0.8, -0.7, -0.2), 4.8),
    ):
        hepatic += grow_tree(
            name,
            np.array(CONFLUENCE_MM),
            np.array(direction),
            radius,
            inside_depth_mm=inside_depth,
            rng=rng,
        )
    artery, ducts = _artery_and_ducts(portal, hilum)
    return VesselTrees(tuple(portal), tuple(hepatic), tuple(artery), tuple(ducts))


def _artery_and_ducts(
    portal: list[VesselSegment], hilum: np.ndarray
) -> tuple[list[VesselSegment], list[VesselSegment]]:
    """Hepatic artery (portal radius >= 2.8 mm) and bile ducts (>= 3.8 mm) beside the portal."""
    artery = [
        VesselSegment("hepatic_artery", 0, -1, (18.0, 5.0, -60.0), (-5.0, -12.0, -30.0), 2.5),
        VesselSegment(
            "hepatic_artery",
            1,
            0,
            (-5.0, -12.0, -30.0),
            tuple(hilum + np.array([0.0, -9.0, -6.0])),
            2.2,
        ),
    ]
    ducts = [
        VesselSegment(
            "bile_duct", 0, -1, (-12.0, -2.0, -85.0), tuple(hilum + np.array([0.0, 9.0, -6.0])), 3.5
        ),
    ]
    for seg in portal[1:]:
        if seg.radius_mm < 2.8:
            continue
        p0, p1 = np.asarray(seg.start_mm), np.asarray(seg.end_mm)
        e1, _ = perpendicular(p1 - p0)
        off_a = e1 * (seg.radius_mm + 2.5)
        artery.append(
            VesselSegment(
                "hepatic_artery",
                len(artery),
                -1,
                tuple(p0 + off_a),
                tuple(p1 + off_a),
                max(1.0, 0.3 * seg.radius_mm),
            )
        )
        if seg.radius_mm >= 3.8:
            off_d = -e1 * (seg.radius_mm + 2.5)
            ducts.append(
                VesselSegment(
                    "bile_duct",
                    len(ducts),
                    -1,
                    tuple(p0 + off_d),
                    tuple(p1 + off_d),
                    max(1.0, 0.35 * seg.radius_mm),
                )
            )
    return artery, ducts


def paint_vessels(
    labels: np.ndarray, trees: VesselTrees, grid: Grid, ivc: np.ndarray
) -> np.ndarray:
    """A copy of ``labels`` with the trees drawn through liver and fat, the IVC kept whole."""
    out = labels.copy()
    soft = np.isin(out, [Label.LIVER, Label.FAT])
    args = (grid.lps_to_index, grid.index_to_lps, grid.spacing_mm)
    rasterise_segments(out, Label.PORTAL_VEIN, list(trees.portal), *args, allowed=soft)
    rasterise_segments(
        out, Label.HEPATIC_VEIN, list(trees.hepatic), *args, allowed=soft | (out == Label.IVC)
    )
    soft = np.isin(out, [Label.LIVER, Label.FAT])
    rasterise_segments(out, Label.HEPATIC_ARTERY, list(trees.artery), *args, allowed=soft)
    rasterise_segments(out, Label.BILE_DUCT, list(trees.ducts), *args, allowed=soft)
    out[ivc] = Label.IVC
    return out


# -- 9. tumours --------------------------------------------------------------
#: Labels a tumour replaces (liver, small vessels, another tumour); never the IVC.
_REPLACEABLE = (
    Label.LIVER,
    Label.HEPATIC_ARTERY,
    Label.BILE_DUCT,
    Label.PORTAL_VEIN,
    Label.HEPATIC_VEIN,
    Label.TUMOR,
)
#: Outer share of the normalised radius that enhances (the tumour's rim).
RIM_FROM = 0.82


def tumours(
    labels: np.ndarray, liver_mask: np.ndarray, specs, sp: Space, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``labels`` with the tumours drawn, and the mask of their enhancing rims.

    ``specs`` are :class:`~ioplan.anatomy.TumorSpec` with centres; a centre outside
    the liver is refused.
    """
    grid = sp.grid
    noise = SmoothNoise(rng, 25.0, (-40, -40, -40), (40, 40, 40))
    out = labels.copy()
    rim = np.zeros(grid.shape, bool)
    replaceable = np.isin(out, _REPLACEABLE)
    for t in specs:
        c = np.asarray(t.centre_mm)
        inside_grid = grid.contains_lps(c)
        if not inside_grid or not liver_mask[tuple(np.rint(grid.lps_to_index(c)).astype(int))]:
            where = ", ".join(f"{v:g}" for v in t.centre_mm)
            raise InputError(f"tumour centre (--tumor-centre-mm) {where} mm lies outside the liver")
        rmax = 0.5 * t.diameter_mm * (1 + t.irregularity) + 1.0
        sl, x, y, z = sp.box(c - rmax, c + rmax)
        inside, frac = lobulated_sphere(x, y, z, c, t.diameter_mm, t.irregularity, noise)
        inside &= replaceable[sl]
        out[sl][inside] = Label.TUMOR
        rim[sl] |= inside & (frac > RIM_FROM)
    return out, rim


# -- 10. CT image ------------------------------------------------------------
def synthesise_ct(
    labels: np.ndarray,
    grid: Grid,
    tumour_rim: np.ndarray,
    noise_hu: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """CT-like HU image: label means, cortical bone rims, gas-fluid levels, blur, noise."""
    lut = np.zeros(256, np.float32)
    for lbl, info in LABEL_INFO.items():
        lut[int(lbl)] = info.ct_hu
    hu = lut[labels]
    # Cortical shell of bones: 1.5 mm of dense bone around cancellous bone.
    for lbl, cortex in ((Label.VERTEBRA, 800.0), (Label.RIB, 850.0)):
        mask = labels == lbl
        it = max(1, round(1.5 / min(grid.spacing_mm)))
        shell = mask & ~ndimage.binary_erosion(mask, iterations=it)
        hu[shell] = cortex
        hu[mask & ~shell] = 250.0 if lbl == Label.VERTEBRA else 300.0
    # Bowel and stomach content: gas rises anteriorly (patient supine, -y is up).
    content = labels == Label.BOWEL_CONTENT
    hu[content] = 15.0
    y = grid.axis_coordinates_mm()[1]
    pieces, _ = ndimage.label(content)
    for k, sl in enumerate(ndimage.find_objects(pieces), start=1):
        # Gas fills the anterior 30 % of each lumen, above a flat fluid level.
        ys = y[sl[1]]
        level = ys[0] + 0.3 * (ys[-1] - ys[0])
        piece = pieces[sl] == k
        hu[sl][piece & (ys[None, :, None] < level)] = -950.0
    # Enhancing tumour rim (e.g. colorectal metastasis "target" appearance).
    hu[tumour_rim] = 85.0
    sigma_vox = [0.6 / s for s in grid.spacing_mm]  # partial volume of a ~1.4 mm FWHM system
    hu = ndimage.gaussian_filter(hu, sigma=sigma_vox)
    if noise_hu > 0:
        n = rng.standard_normal(labels.shape, dtype=np.float32)
        n = ndimage.gaussian_filter(n, sigma=[0.5 / s for s in grid.spacing_mm])
        n *= noise_hu / max(float(n.std()), 1e-6)
        inside = labels != Label.BACKGROUND
        hu = np.where(inside, hu + n, hu + 0.2 * n)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
