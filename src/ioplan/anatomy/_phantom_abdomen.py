"""The synthetic retroperitoneum (issue 21): kidney and bone (spine, rib) tumours.

The liver phantom's abdomen (body wall, ribs, lung bases, aorta and IVC, spleen,
stomach, bowel, liver; :mod:`ioplan.anatomy._steps`), moved 45 mm up the field of view
so that the kidneys, ureters and lumbar spine are whole, with what a kidney or spine
ablation must respect drawn in detail:

- kidneys: cortex (``KIDNEY``), seven medullary pyramids (``KIDNEY_MEDULLA``), renal
  sinus fat, the collecting system (pelvis and one calyx per pyramid), the ureter down
  the psoas, the renal artery from the aorta (behind the IVC on the right) and the renal
  vein to the IVC (in front of the aorta on the left), both branching in the sinus, the
  adrenal above the upper pole, bowel in front of each kidney (duodenum on the right,
  descending colon on the left);
- the segmented lumbar spine of :func:`~ioplan.anatomy._phantom_organs.spine_layers`
  (pedicles, foramina, canal with the cord, nerve roots), psoas and quadratus lumborum.

Coordinates: LPS mm as the liver phantom (z = 0 near the liver hilum); the field of view
runs from z = -140 to 40 mm.
"""

from __future__ import annotations

import dataclasses
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
    march_to_edge,
    organ_grid,
    paint_tumour,
    spine_layers,
)
from ioplan.anatomy._shapes import Anatomy, SmoothNoise, Space, ellipsoid, tube_mask
from ioplan.anatomy._vessels import VesselSegment
from ioplan.errors import InputError
from ioplan.imaging import Volume

__all__ = ["KIDNEYS", "Kidney", "generate_abdomen"]


@dataclasses.dataclass(frozen=True)
class Kidney:
    """One kidney's frame: centre (LPS mm), semi-axes (mm) and rotation (degrees).

    The rotation is the liver phantom's (about y, then z, as
    :func:`~ioplan.anatomy._shapes.ellipsoid`): the lower pole lies lateral and anterior.
    """

    side: str
    centre_mm: tuple[float, float, float]
    semi_mm: tuple[float, float, float] = (30.0, 24.0, 56.0)

    @property
    def sx(self) -> float:
        """-1 right, +1 left (the side's sign of x)."""
        return -1.0 if self.side == "right" else 1.0

    @property
    def rot_deg(self) -> tuple[float, float, float]:
        """Rotation about x, y, z (degrees)."""
        return (0.0, self.sx * 12.0, self.sx * 20.0)

    def matrix(self) -> np.ndarray:
        """``local = M @ (world - centre)``."""
        _, ay, az = np.deg2rad(self.rot_deg)
        ry = np.array([[np.cos(ay), 0, -np.sin(ay)], [0, 1, 0], [np.sin(ay), 0, np.cos(ay)]])
        rz = np.array([[np.cos(az), np.sin(az), 0], [-np.sin(az), np.cos(az), 0], [0, 0, 1]])
        return rz @ ry

    def local(self, x, y, z):
        """World LPS coordinates to the kidney's frame (broadcast arrays)."""
        m = self.matrix()
        c = self.centre_mm
        px, py, pz = x - c[0], y - c[1], z - c[2]
        return (
            m[0, 0] * px + m[0, 1] * py + m[0, 2] * pz,
            m[1, 0] * px + m[1, 1] * py + m[1, 2] * pz,
            m[2, 0] * px + m[2, 1] * py + m[2, 2] * pz,
        )

    def world(self, points) -> np.ndarray:
        """Kidney-frame points ``(N, 3)`` to world LPS mm."""
        return np.asarray(points, float) @ self.matrix() + np.asarray(self.centre_mm)

    @property
    def medial(self) -> float:
        """Sign of local x towards the hilum."""
        return -self.sx


#: The kidneys (right lower than left): the liver phantom's, 4 mm more medial and 18 mm
#: more anterior, in front of the quadratus lumborum and beside the psoas.
KIDNEYS = (Kidney("right", (-72.0, 50.0, -52.0)), Kidney("left", (72.0, 50.0, -42.0)))
#: Sinus centre (local mm, x towards the hilum) and semi-axes.
SINUS_MM, SINUS_SEMI_MM = (10.0, -2.0, 0.0), (13.0, 10.0, 34.0)
#: Pyramid angles (degrees, in the coronal plane round the sinus) and their ellipse.
PYRAMID_DEG = np.linspace(-72.0, 72.0, 7)
PYRAMID_RING_MM, PYRAMID_SEMI_MM = (21.0, 44.0), (8.0, 10.0, 8.0)
#: Renal pelvis (local mm) and calyx radius.
PELVIS_MM, PELVIS_SEMI_MM, CALYX_R_MM = (16.0, -2.0, -4.0), (8.0, 6.0, 12.0), 2.5
#: Radii (mm): ureter, renal artery and vein (main / in the sinus).
URETER_R_MM, ARTERY_R_MM, VEIN_R_MM = 3.0, (3.0, 2.0), (5.0, 2.5)
#: Labels a kidney tumour replaces; a bone tumour's.
KIDNEY_REPLACEABLE = (Label.KIDNEY, Label.KIDNEY_MEDULLA, Label.FAT, Label.MUSCLE, Label.TUMOR)
BONE_REPLACEABLE = (Label.VERTEBRA, Label.RIB, Label.MUSCLE, Label.FAT, Label.TUMOR)
#: Height of the exophytic tumour relative to the kidney's centre (mm).
EXOPHYTIC_DZ_MM = -25.0
#: The central kidney tumour's centre in the kidney's frame: 10 mm lateral to the sinus
#: centre's axis, 8 mm above the hilum (in a pyramid, calyces at its medial edge).
CENTRAL_LOCAL_MM = (10.0, 8.0)
#: Share of a tumour's ball that must be replaceable for its site to take it.
FIT_FRACTION = 0.85
#: The spine: vertebral mid-heights at z = -45 + 34 k mm; the bone tumour's vertebra.
SPINE = Spine(level0_mm=-45.0)
VERTEBRA_TUMOUR_MM = (0.0, 50.0, -45.0)
#: The rib of a rib tumour: posterior height z0 (the liver phantom's fourth rib, at the
#: kidneys' upper poles) and the angle from posterior (rad) along it.
RIB_Z0_MM, RIB_PHI = 26.0, 0.5


def _pyramid_centres(k: Kidney) -> np.ndarray:
    th = np.deg2rad(PYRAMID_DEG)
    m = k.medial
    return np.stack(
        [
            m * SINUS_MM[0] - m * PYRAMID_RING_MM[0] * np.cos(th),
            np.full_like(th, SINUS_MM[1]),
            PYRAMID_RING_MM[1] * np.sin(th),
        ],
        axis=1,
    )


def _kidney_parts(sp: Space, k: Kidney):
    """Masks (on the kidney's box) of the kidney, sinus, medulla, collecting system."""
    c = np.asarray(k.centre_mm)
    reach = max(k.semi_mm) + 8.0
    box, x, y, z = sp.box(c - reach, c + reach)
    lx, ly, lz = k.local(x, y, z)
    a, b, cz = k.semi_mm
    kidney = (lx / a) ** 2 + (ly / b) ** 2 + (lz / cz) ** 2 < 1.0
    m = k.medial
    sc = (m * SINUS_MM[0], SINUS_MM[1], SINUS_MM[2])
    sinus = ellipsoid(lx, ly, lz, sc, SINUS_SEMI_MM) < 1.0
    sinus |= (m * lx > SINUS_MM[0]) & (np.abs(ly - SINUS_MM[1]) < 8.0) & (np.abs(lz) < 14.0)
    sinus &= kidney
    pyramids = _pyramid_centres(k)
    medulla = np.zeros(kidney.shape, bool)
    for p in pyramids:
        medulla |= ellipsoid(lx, ly, lz, p, PYRAMID_SEMI_MM) < 1.0
    medulla &= kidney & ~sinus
    pelvis_c = np.array([m * PELVIS_MM[0], PELVIS_MM[1], PELVIS_MM[2]])
    collecting = ellipsoid(lx, ly, lz, pelvis_c, PELVIS_SEMI_MM) < 1.0
    for p in pyramids:
        toward = np.asarray(sc) - p
        tip = p + toward / np.linalg.norm(toward) * 6.0  # the papilla, sinus side
        collecting |= tube_mask(lx, ly, lz, np.array([pelvis_c, tip]), CALYX_R_MM)
        collecting |= ellipsoid(lx, ly, lz, tip, (4.0, 4.0, 4.0)) < 1.0  # minor calyx cup
    collecting &= sinus | medulla
    return box, kidney, sinus, medulla, collecting


def _psoas_and_quadratus(sp: Space) -> np.ndarray:
    x, y, z = sp.x, sp.y, sp.z
    below = np.maximum(-20.0 - z, 0.0)
    out = np.zeros(sp.grid.shape, bool)
    for sx in (-1.0, 1.0):
        psoas = ((x - sx * (33.0 + 0.05 * below)) / (7.0 + 0.12 * below)) ** 2
        psoas = psoas + ((y - 58.0) / (9.0 + 0.08 * below)) ** 2 < 1.0
        quadratus = ((x - sx * 62.0) / 16.0) ** 2 + ((y - 84.0) / 9.0) ** 2 < 1.0
        out |= (psoas & (z < -15.0)) | (quadratus & (z < 0.0))
    return out


def _anterior_bowel(sp: Space, k: Kidney) -> tuple[np.ndarray, np.ndarray]:
    """Bowel in front of the kidney: duodenum (right), descending colon (left)."""
    zc = k.centre_mm[2]
    if k.side == "right":
        pts = np.array(
            [[-45, -20, zc + 35], [-62, 6, zc + 5], [-58, 8, zc - 30], [-12, -12, zc - 45]],
            float,
        )
        r = 12.0
    else:
        pts = np.array([[95, -2, zc + 45], [92, 4, zc], [88, 6, zc - 70]], float)
        r = 15.0
    box, x, y, z = sp.box(pts.min(axis=0) - r, pts.max(axis=0) + r)
    wall = np.zeros(sp.grid.shape, bool)
    lumen = np.zeros(sp.grid.shape, bool)
    wall[box] = tube_mask(x, y, z, pts, r)
    lumen[box] = tube_mask(x, y, z, pts, r - 3.0)
    return wall, lumen


def _paint_tube(labels, sp: Space, pts, radius, label, allowed_labels) -> None:
    pts = np.asarray(pts, float)
    box, x, y, z = sp.box(pts.min(axis=0) - radius, pts.max(axis=0) + radius)
    sub = labels[box]
    inside = tube_mask(x, y, z, pts, radius) & np.isin(sub, [int(v) for v in allowed_labels])
    sub[inside] = label


def _renal_vessels(k: Kidney) -> dict[Label, list[tuple[np.ndarray, float]]]:
    """Renal artery and vein polylines (world mm) with radii; the ureter."""
    m = k.medial
    zc = k.centre_mm[2]
    hilum_a = k.world([[m * 34.0, 4.0, 4.0]])[0]
    hilum_v = k.world([[m * 34.0, -8.0, 0.0]])[0]
    pelvis_exit = k.world([[m * 26.0, -2.0, -10.0]])[0]
    artery = [(np.array([[18.0, 18.0, zc + 8.0], hilum_a]), ARTERY_R_MM[0])]
    if k.side == "right":
        vein_pts = np.array([hilum_v, [-24.0, 12.0, zc + 5.0]])
    else:  # the left renal vein crosses in front of the aorta
        vein_pts = np.array([hilum_v, [18.0, -4.0, zc + 6.0], [-24.0, 12.0, zc + 6.0]])
    vein = [(vein_pts, VEIN_R_MM[0])]
    for lz in (-22.0, 0.0, 22.0):  # segmental branches in the sinus
        artery.append((k.world([[m * 34.0, 4.0, 4.0], [m * 4.0, 4.0, lz]]), ARTERY_R_MM[1]))
        vein.append((k.world([[m * 34.0, -8.0, 0.0], [m * 4.0, -8.0, lz]]), VEIN_R_MM[1]))
    ureter = np.array(
        [k.world([[m * 14.0, -2.0, -4.0]])[0], pelvis_exit, [k.sx * 46.0, 46.0, zc - 45.0],
         [k.sx * 40.0, 44.0, -150.0]]
    )  # fmt: skip
    return {
        Label.RENAL_ARTERY: artery,
        Label.RENAL_VEIN: vein,
        Label.URETER: [(ureter, URETER_R_MM)],
    }


def _check_fit(labels, sp: Space, centre, diameter_mm, replaceable, what: str) -> None:
    ok = np.isin(labels, [int(v) for v in replaceable])
    if ball_share(ok, sp, centre, diameter_mm) < FIT_FRACTION:
        raise InputError(
            f"a {diameter_mm:g} mm tumour does not fit at the {what}; use a smaller "
            "--tumor-diameter-mm"
        )


def _site_centre(labels, sp: Space, cfg, diameter_mm: float):
    """The tumour centre of ``cfg.site`` on ``cfg.side`` (LPS mm), checked to fit."""
    k = KIDNEYS[0] if cfg.side == "right" else KIDNEYS[1]
    r = 0.5 * diameter_mm
    if cfg.organ == "kidney" and cfg.site == "exophytic":
        # half out of the posterolateral cortex, between the hilum and the lower pole
        # (below the twelfth rib)
        start = np.add(k.centre_mm, (0.0, 0.0, EXOPHYTIC_DZ_MM))
        d = np.array([k.sx * 0.8, 0.6, 0.0])
        kid = np.isin(labels, [Label.KIDNEY, Label.KIDNEY_MEDULLA])
        edge = march_to_edge(kid, sp.grid, start, d)
        centre = edge - d / np.linalg.norm(d) * 1.0
        what, repl = f"{cfg.side} kidney's posterolateral surface", KIDNEY_REPLACEABLE
    elif cfg.organ == "kidney":
        # lateral to the sinus, in the upper half: the collecting system at its edge
        centre = k.world([[-k.medial * CENTRAL_LOCAL_MM[0], 0.0, CENTRAL_LOCAL_MM[1]]])[0]
        what, repl = f"{cfg.side} kidney's centre", (*KIDNEY_REPLACEABLE, Label.COLLECTING_SYSTEM)
    elif cfg.site == "vertebra":
        centre = np.array(VERTEBRA_TUMOUR_MM)
        what, repl = "vertebral body", BONE_REPLACEABLE
    else:
        centre = _rib_point(labels, sp, k.sx)
        what, repl = f"{cfg.side} {RIB_Z0_MM:g} mm rib", BONE_REPLACEABLE
    del r
    _check_fit(labels, sp, centre, diameter_mm, repl, what)
    return tuple(float(v) for v in centre)


def _rib_point(labels, sp: Space, sx: float) -> np.ndarray:
    """The centroid of the rib's voxels near ``RIB_PHI`` on the side ``sx``."""
    idx = np.argwhere(labels == Label.RIB)
    p = sp.grid.index_to_lps(idx)
    phi = np.arctan2(np.abs(p[:, 0]), p[:, 1])
    zc = RIB_Z0_MM - 85.0 * RIB_PHI / np.pi
    near = (np.abs(phi - RIB_PHI) < 0.06) & (np.sign(p[:, 0]) == sx) & (np.abs(p[:, 2] - zc) < 9)
    if not near.any():
        raise InputError("no rib at the rib tumour's site at this spacing")
    return p[near].mean(axis=0)


def generate_abdomen(cfg, progress: Callable[[str], None] | None = None):
    """The kidney or bone phantom of ``cfg``; see the module's docstring."""
    from ioplan.anatomy._phantom import Phantom, TumorSpec

    report = progress or (lambda _name: None)
    names = iter(ORGAN_STEPS[cfg.organ])
    grid = organ_grid(cfg.organ, cfg.spacing_mm)
    sp = Space.of(grid)
    rng = np.random.default_rng(cfg.seed)
    anat = Anatomy(rng)
    labels = np.zeros(grid.shape, np.uint8)

    report(next(names))
    wall, layers = steps.body_wall(anat, sp)
    labels = steps.paint(labels, layers)
    report(next(names))
    labels = steps.paint(labels, spine_layers(sp, wall.depth_mm, anat.SKIN_MM, SPINE))
    report(next(names))
    labels = steps.paint(labels, steps.ribs(sp, wall, anat.SKIN_MM, anat.MUSCLE_MM))
    cavity = wall.cavity & (labels == Label.FAT)
    abdominal, layers = steps.thorax(anat, sp, cavity)
    labels = steps.paint(labels, layers)
    report(next(names))
    aorta, ivc = steps.great_vessels(sp)
    ivc &= cavity
    report(next(names))
    organs = steps.abdominal_organs(sp, rng)
    kidney_all = np.zeros(grid.shape, bool)
    sinus_all = np.zeros(grid.shape, bool)
    parts = []
    for k in KIDNEYS:
        box, kidney, sinus, medulla, collecting = _kidney_parts(sp, k)
        kidney_all[box] |= kidney
        sinus_all[box] |= sinus
        parts.append((box, kidney, sinus, medulla, collecting))
        bw, bl = _anterior_bowel(sp, k)
        organs = dataclasses.replace(
            organs, bowel=organs.bowel | bw, bowel_lumen=organs.bowel_lumen | bl
        )
    organs = dataclasses.replace(
        organs, bowel=organs.bowel & ~kidney_all, bowel_lumen=organs.bowel_lumen & ~kidney_all
    )
    # the spleen and the muscles give way to the kidneys (3 mm of fat between)
    clear = ndimage.binary_dilation(
        kidney_all, iterations=max(1, round(3.0 / min(grid.spacing_mm)))
    )
    organs = dataclasses.replace(
        organs, kidney=kidney_all, renal_sinus=sinus_all, spleen=organs.spleen & ~clear
    )
    muscles = _psoas_and_quadratus(sp) & cavity & ~clear & (labels == Label.FAT)
    labels[muscles] = Label.MUSCLE
    abdominal &= ~muscles
    del kidney_all, sinus_all, clear, muscles
    labels = steps.paint(labels, organs.layers(abdominal))
    # the liver is cut 3 mm clear of the renal vessels and ureters too
    tubes = np.zeros(grid.shape, bool)
    for k in KIDNEYS:
        for items in _renal_vessels(k).values():
            for pts, r in items:
                box, x, y, z = sp.box(pts.min(axis=0) - r, pts.max(axis=0) + r)
                tubes[box] |= tube_mask(x, y, z, pts, r)
    cut = dataclasses.replace(organs, kidney=organs.kidney | tubes)
    liver, _ = steps.liver(anat, sp, cut, abdominal, wall)
    del cut, tubes
    gallbladder = organs.gallbladder & abdominal & ~liver
    labels = steps.paint(
        labels,
        [(liver, Label.LIVER), (gallbladder, Label.GALLBLADDER), (aorta, Label.AORTA),
         (ivc, Label.IVC)],
    )  # fmt: skip
    del organs, liver, gallbladder, wall, cavity, aorta
    report(next(names))
    for box, _kidney, _sinus, medulla, _ in parts:
        sub = labels[box]
        sub[medulla & (sub == Label.KIDNEY)] = Label.KIDNEY_MEDULLA
    report(next(names))
    soft = (Label.FAT, Label.MUSCLE, Label.KIDNEY, Label.KIDNEY_MEDULLA)
    for box, kidney, _sinus, _medulla, collecting in parts:
        sub = labels[box]
        sub[collecting & kidney] = Label.COLLECTING_SYSTEM
    for k in KIDNEYS:
        for pts, r in _renal_vessels(k)[Label.URETER]:
            _paint_tube(labels, sp, pts, r, Label.URETER, soft[:2])
    report(next(names))
    segments = []
    for k in KIDNEYS:
        vessels = _renal_vessels(k)
        for label in (Label.RENAL_VEIN, Label.RENAL_ARTERY):
            for pts, r in vessels[label]:
                _paint_tube(labels, sp, pts, r, label, soft)
                name = "renal_artery" if label == Label.RENAL_ARTERY else "renal_vein"
                for a, b in pairwise(pts):
                    segments.append(
                        VesselSegment(
                            f"{name}_{k.side}", len(segments), -1, tuple(map(float, a)),
                            tuple(map(float, b)), float(r),
                        )
                    )  # fmt: skip
        # above the upper pole, medially, behind the IVC on the right (where the liver's
        # bare area meets it: the gland is drawn over liver there)
        top_z = k.world([[0.0, 0.0, k.semi_mm[2]]])[0][2]
        adrenal_c = np.array([k.sx * 44.0, 54.0, top_z + 8.0])
        box, x, y, z = sp.box(adrenal_c - 25.0, adrenal_c + 25.0)
        gland = np.zeros(np.broadcast(x, y, z).shape, bool)
        for tilt in (-35.0, 35.0):  # two limbs: an inverted V
            gland |= ellipsoid(x, y, z, adrenal_c, (3.5, 14.0, 16.0), (tilt, 0.0, 0.0)) < 1.0
        sub = labels[box]
        sub[gland & np.isin(sub, [Label.FAT, Label.LIVER])] = Label.ADRENAL
    del parts

    report(next(names))
    tumors = []
    noise = SmoothNoise(rng, 25.0, (-40, -40, -40), (40, 40, 40))
    rim = np.zeros(grid.shape, bool)
    if cfg.organ == "kidney":
        repl, host, where = KIDNEY_REPLACEABLE, (Label.KIDNEY, Label.KIDNEY_MEDULLA), "kidney"
    else:
        repl, host, where = BONE_REPLACEABLE, (Label.VERTEBRA, Label.RIB), "bone"
    for t in cfg.tumors:
        if t.centre_mm is None:
            centre = _site_centre(labels, sp, cfg, t.diameter_mm)
            t = TumorSpec(t.diameter_mm, centre, t.irregularity, t.histology)
        rim |= paint_tumour(labels, sp, t, repl, (*host, Label.TUMOR), noise, where,
                            steps.RIM_FROM)  # fmt: skip
        tumors.append(t)
    check_host(labels, grid.spacing_mm, cfg.organ, cfg.site)
    report(next(names))
    image = steps.synthesise_ct(labels, grid, rim, cfg.noise_hu, rng)
    return Phantom(Volume(image, grid), Volume(labels, grid), tuple(tumors), tuple(segments), cfg)
