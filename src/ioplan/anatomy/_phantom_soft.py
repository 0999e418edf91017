"""The synthetic thigh (issue 21): a soft-tissue tumour next to the sciatic nerve.

A mid-thigh segment, analytic shapes in patient LPS millimetres (x to the patient's left,
y posterior, z superior), on a field of view of its own (:data:`SOFT_FOV_MM`), centred on
the thigh's axis:

- skin (2 mm) and subcutaneous fat (12 mm) around the muscle compartments (the thigh 190 x
  180 mm across at mid-femur, about 58 cm round, narrowing distally);
- the femur (``LONG_BONE``), anterolateral, 28 mm across;
- the superficial femoral artery (7 mm) and vein (10 mm) anteromedial to the femur, in a
  fat sheath (the neurovascular bundle of the adductor canal); they carry the labels of
  the femoral artery and vein (``FEMORAL_ARTERY``, ``FEMORAL_VEIN``: the engine's heat sinks);
- the sciatic nerve (``PERIPHERAL_NERVE``, 12 x 7 mm) behind the femur, between the
  hamstrings and adductor magnus, in a 2 mm fat sheath;
- the tumour (a soft-tissue sarcoma, desmoid or metastasis) in muscle: ``thigh`` (the
  default) lateral to the sciatic nerve (between the hamstrings and vastus lateralis), its
  surface :data:`NERVE_GAP_MM` from the nerve's and about 30 mm under the skin;
  ``adductor`` medial, its surface :data:`VESSEL_GAP_MM` from the femoral vessels.

Shapes after Gray's Anatomy (42nd ed., the thigh's cross-section at mid-femur) in round
figures; the image is the liver phantom's CT synthesis
(:func:`~ioplan.anatomy._steps.synthesise_ct`). ``--side left`` mirrors x.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ioplan.anatomy import _steps as steps
from ioplan.anatomy._labels import Label
from ioplan.anatomy._shapes import SmoothNoise, Space, tube_mask
from ioplan.anatomy._vessels import VesselSegment
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume

__all__ = [
    "NERVE_GAP_MM",
    "SOFT_FOV_MM",
    "SOFT_STEPS",
    "THIGH",
    "VESSEL_GAP_MM",
    "generate_soft_tissue",
    "soft_grid",
    "soft_site_centre",
]

#: Field of view (z, y, x) in mm: a 160 mm segment of the thigh, 230 mm across (the thigh
#: and 20 mm of air around it: the engine's domain around a probe stays in the image).
SOFT_FOV_MM = (160.0, 240.0, 240.0)

#: Gap (mm) between the default site's tumour surface and the sciatic nerve: close enough
#: that the ice ball (in the engine's muscle about 10 mm beyond a lethal zone tight on the
#: tumour) comes within a centimetre of the nerve, far enough that it can stay above 10 degC.
NERVE_GAP_MM = 20.0
#: Gap (mm) between the ``adductor`` site's tumour surface and the femoral vein.
VESSEL_GAP_MM = 8.0

#: The thigh's geometry (mm, x as for the right thigh: lateral is -x).
THIGH = {
    "semi_x_mm": 95.0,
    "semi_y_mm": 90.0,
    "taper_per_mm": 0.0012,  # narrower distally: the semi-axes scale by 1 + taper * z
    "skin_mm": 2.0,
    "fat_mm": 12.0,
    "femur_xy_mm": (-10.0, -8.0),
    "femur_radius_mm": 14.0,
    "artery_xy_mm": (30.0, -22.0),
    "artery_radius_mm": 3.5,
    "vein_xy_mm": (27.0, -12.0),
    "vein_radius_mm": 5.0,
    "bundle_sheath_mm": 2.0,
    "nerve_xy_mm": (-4.0, 28.0),
    "nerve_semi_mm": (6.0, 3.5),
    "nerve_sheath_mm": 2.0,
    "tilt_per_mm": 0.06,  # the bundle and nerve drift medially 0.06 mm per mm distally
}

#: Names of the steps the soft-tissue phantom reports to ``progress`` (ten, as the others).
SOFT_STEPS = (
    "skin",
    "subcutaneous fat",
    "muscle compartments",
    "femur",
    "femoral artery",
    "femoral vein",
    "sciatic nerve",
    "fat sheaths",
    "tumour",
    "CT image",
)

#: Labels a soft-tissue tumour may be drawn over (never the nerve, vessels, bone or skin).
SOFT_REPLACEABLE = (Label.MUSCLE, Label.FAT)


def soft_grid(spacing_mm) -> Grid:
    """The thigh phantom's grid at ``spacing_mm`` ``(z, y, x)``, centred on the thigh."""
    sp = tuple(float(s) for s in spacing_mm)
    shape = tuple(max(8, round(f / s)) for f, s in zip(SOFT_FOV_MM, sp, strict=True))
    extent = [n * s for n, s in zip(shape, sp, strict=True)]
    origin = tuple(-extent[a] / 2 + 0.5 * sp[a] for a in (2, 1, 0))
    return Grid(shape, sp, origin)


def _side_sign(side: str) -> float:
    """-1 for the right thigh (x as drawn), +1 for the left (mirrored)."""
    return -1.0 if side == "right" else 1.0


def _line(xy_mm, sx: float, z_lo: float, z_hi: float) -> np.ndarray:
    """Two LPS points of a straight structure along z (with its medial drift)."""
    pts = []
    for z in (z_lo, z_hi):
        x, y = _xy(xy_mm, sx, z)
        pts.append([x, y, z])
    return np.array(pts)


def _xy(xy_mm, sx: float, z: float) -> tuple[float, float]:
    """(x, y) at height ``z`` of a structure drawn at ``xy_mm`` on the right thigh."""
    drift = THIGH["tilt_per_mm"] * (-z)  # distal: medial, +x on the right thigh
    x = xy_mm[0] + drift
    return (-sx * x, xy_mm[1])  # sx = -1 (right): as drawn; +1 (left): mirrored


def soft_site_centre(site: str, side: str, diameter_mm: float) -> tuple[float, float, float]:
    """The default tumour centre (LPS mm) of ``site`` at z = 0.

    ``thigh``: lateral to the sciatic nerve, its surface
    :data:`NERVE_GAP_MM` from the nerve's; ``adductor``: medial, its surface
    :data:`VESSEL_GAP_MM` from the femoral vein's wall, in the adductor muscles behind the
    bundle.
    """
    sx = _side_sign(side)
    r = 0.5 * diameter_mm
    if site == "thigh":
        nx, ny = _xy(THIGH["nerve_xy_mm"], sx, 0.0)
        d = np.array([-1.0 if sx < 0 else 1.0, -0.1])  # lateral (the side's outside)
        d /= np.linalg.norm(d)
        # the nerve's half-width toward the tumour (its ellipse along d)
        a, b = THIGH["nerve_semi_mm"]
        half = 1.0 / np.sqrt((d[0] / a) ** 2 + (d[1] / b) ** 2)
        c = np.array([nx, ny]) + d * (half + NERVE_GAP_MM + r)
    else:
        vx, vy = _xy(THIGH["vein_xy_mm"], sx, 0.0)
        d = np.array([0.45 if sx < 0 else -0.45, 0.9])  # medial, posterior
        d /= np.linalg.norm(d)
        c = np.array([vx, vy]) + d * (THIGH["vein_radius_mm"] + VESSEL_GAP_MM + r)
    return (float(c[0]), float(c[1]), 0.0)


def _layers(sp: Space, sx: float):
    """The thigh's masks, outside in: body, fat core, muscle, femur, vessels, nerve, sheaths."""
    x, y, z = sp.x, sp.y, sp.z
    t = THIGH
    scale = 1.0 + t["taper_per_mm"] * z
    ax, ay = t["semi_x_mm"] * scale, t["semi_y_mm"] * scale
    # distance inward from the skin surface, approximately (an ellipse's normal distance)
    rho = np.sqrt((x / ax) ** 2 + (y / ay) ** 2)
    depth = (1.0 - rho) * np.minimum(ax, ay)
    body = sp.full(depth > 0.0)
    skin = body & sp.full(depth < t["skin_mm"])
    muscle = sp.full(depth >= t["skin_mm"] + t["fat_mm"])
    return body, skin, muscle


def _tube(sp: Space, pts: np.ndarray, radius: float) -> np.ndarray:
    box, bx, by, bz = sp.box(pts.min(axis=0) - radius - 1.0, pts.max(axis=0) + radius + 1.0)
    out = np.zeros(sp.grid.shape, bool)
    out[box] = tube_mask(bx, by, bz, pts, radius)
    return out


def _nerve(sp: Space, sx: float, grow_mm: float = 0.0) -> np.ndarray:
    """The sciatic nerve: an elliptic cross-section (wider than deep) along z."""
    a, b = THIGH["nerve_semi_mm"]
    z = sp.z
    drift = THIGH["tilt_per_mm"] * (-z)
    nx0, ny = THIGH["nerve_xy_mm"]
    cx = -sx * (nx0 + drift)
    inside = ((sp.x - cx) / (a + grow_mm)) ** 2 + ((sp.y - ny) / (b + grow_mm)) ** 2 <= 1.0
    return sp.full(inside)


def generate_soft_tissue(cfg, progress: Callable[[str], None] | None = None):
    """The thigh phantom of ``cfg`` (a :class:`PhantomConfig` with organ ``soft_tissue``)."""
    from ioplan.anatomy._phantom import Phantom, TumorSpec

    report = progress or (lambda _name: None)
    names = iter(SOFT_STEPS)
    grid = soft_grid(cfg.spacing_mm)
    sp = Space.of(grid)
    rng = np.random.default_rng(cfg.seed)
    sx = _side_sign(cfg.side or "right")
    t = THIGH
    z_lo, z_hi = float(sp.z.min()) - 5.0, float(sp.z.max()) + 5.0
    labels = np.zeros(grid.shape, np.uint8)

    report(next(names))
    body, skin, muscle = _layers(sp, sx)
    labels[body] = Label.FAT
    labels[skin] = Label.SKIN
    report(next(names))  # the subcutaneous fat is what stays FAT between skin and muscle
    report(next(names))
    labels[muscle] = Label.MUSCLE
    report(next(names))
    femur = _tube(sp, _line(t["femur_xy_mm"], sx, z_lo, z_hi), t["femur_radius_mm"])
    report(next(names))
    artery_pts = _line(t["artery_xy_mm"], sx, z_lo, z_hi)
    artery = _tube(sp, artery_pts, t["artery_radius_mm"])
    report(next(names))
    vein_pts = _line(t["vein_xy_mm"], sx, z_lo, z_hi)
    vein = _tube(sp, vein_pts, t["vein_radius_mm"])
    report(next(names))
    nerve = _nerve(sp, sx)
    report(next(names))
    sheath = t["bundle_sheath_mm"]
    bundle = _tube(sp, artery_pts, t["artery_radius_mm"] + sheath) | _tube(
        sp, vein_pts, t["vein_radius_mm"] + sheath
    )
    nerve_sheath = _nerve(sp, sx, t["nerve_sheath_mm"])
    labels[(bundle | nerve_sheath) & muscle] = Label.FAT
    labels[femur] = Label.LONG_BONE
    labels[vein] = Label.FEMORAL_VEIN
    labels[artery] = Label.FEMORAL_ARTERY
    labels[nerve] = Label.PERIPHERAL_NERVE
    segments = (
        VesselSegment("femoral_artery", 0, -1, *map(_pt, artery_pts), t["artery_radius_mm"]),
        VesselSegment("femoral_vein", 0, -1, *map(_pt, vein_pts), t["vein_radius_mm"]),
    )

    report(next(names))
    from ioplan.anatomy._phantom_organs import paint_tumour

    noise = SmoothNoise(rng, 25.0, (-40, -40, -40), (40, 40, 40))
    rim = np.zeros(grid.shape, bool)
    tumors = []
    for i, spec in enumerate(cfg.tumors):
        if spec.centre_mm is None:
            centre = soft_site_centre(cfg.site or "thigh", cfg.side or "right", spec.diameter_mm)
            spec = TumorSpec(spec.diameter_mm, centre, spec.irregularity, spec.histology)
            _check_fit(labels, sp, spec, cfg.site or "thigh")
        rim |= paint_tumour(labels, sp, spec, SOFT_REPLACEABLE, (*SOFT_REPLACEABLE, Label.TUMOR),
                            noise, "thigh's muscle or fat", steps.RIM_FROM)  # fmt: skip
        tumors.append(spec)
        del i
    report(next(names))
    image = steps.synthesise_ct(labels, grid, rim, cfg.noise_hu, rng)
    return Phantom(Volume(image, grid), Volume(labels, grid), tuple(tumors), segments, cfg)


def _pt(p) -> tuple[float, float, float]:
    return tuple(float(v) for v in p)


def _check_fit(labels: np.ndarray, sp: Space, spec, site: str) -> None:
    """Refuse a default-site tumour that would leave the muscle (skin, bone, vessels, nerve).

    The tumour's ball (its diameter plus 2 mm) must lie in muscle or fat only.
    """
    c = np.asarray(spec.centre_mm, float)
    half = 0.5 * spec.diameter_mm + 2.0
    box, x, y, z = sp.box(c - half, c + half)
    ball = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= half**2
    sub = labels[box]
    bad = ball & ~np.isin(sub, [int(v) for v in SOFT_REPLACEABLE])
    out_of_view = any(
        lo - half < edge_lo or hi + half > edge_hi
        for lo, hi, edge_lo, edge_hi in zip(c, c, *_extent(sp), strict=True)
    )
    if bad.any() or out_of_view:
        raise InputError(
            f"a {spec.diameter_mm:g} mm tumour does not fit at the {site} site (it would reach "
            "the skin, femur, femoral vessels or sciatic nerve); use a smaller "
            "--tumor-diameter-mm"
        )


def _extent(sp: Space) -> tuple[list[float], list[float]]:
    xs, ys, zs = sp.x.reshape(-1), sp.y.reshape(-1), sp.z.reshape(-1)
    return [xs.min(), ys.min(), zs.min()], [xs.max(), ys.max(), zs.max()]
