"""Phantoms beyond the liver (issue 21): what the lung, kidney, bone and thigh phantoms share.

Each organ phantom is built like the liver's (:mod:`ioplan.anatomy._steps`): analytic
shapes in patient LPS millimetres, rasterised on the same field of view
(:data:`~ioplan.anatomy._shapes.FOV_MM`), painted in named steps, and turned into a
CT-like image by the liver phantom's :func:`~ioplan.anatomy._steps.synthesise_ct`
(label means of :data:`~ioplan.anatomy.LABEL_INFO`, cortical bone shells, 0.6 mm
Gaussian partial volume, smooth noise).

Shared here: the organs' sites and sides, the segmented spine (vertebral bodies, pedicles
with intervertebral foramina, laminae, spinous and transverse processes, discs, spinal
canal with the cord inside, nerve roots leaving through the foramina), the tumour
painter, and the dispatcher :func:`generate_organ_phantom` (the soft-tissue phantom, a
thigh with the sciatic nerve, femur and femoral vessels, is
:mod:`ioplan.anatomy._phantom_soft`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ioplan.anatomy._labels import Label
from ioplan.anatomy._phantom_soft import SOFT_STEPS, soft_grid
from ioplan.anatomy._shapes import FOV_MM, SmoothNoise, Space, lobulated_sphere, tube_mask
from ioplan.errors import InputError
from ioplan.imaging import Grid

__all__ = [
    "ORGAN_SITES",
    "ORGAN_STEPS",
    "SIDES",
    "Spine",
    "ball_share",
    "check_host",
    "check_site",
    "organ_grid",
    "paint_tumour",
    "spine_layers",
]

#: Tumour sites of each organ phantom; the first is the default.
ORGAN_SITES: dict[str, tuple[str, ...]] = {
    "lung": ("peripheral", "central"),
    "kidney": ("exophytic", "central"),
    "bone": ("vertebra", "rib"),
    # posterior thigh next to the sciatic nerve; medial thigh next to the femoral vessels
    "soft_tissue": ("thigh", "adductor"),
}
#: Sides of the body a tumour can be on.
SIDES = ("right", "left")
#: Sites on the midline, where ``--side`` has nothing to choose (refused there).
MIDLINE_SITES = ("vertebra",)

#: Names of the steps each organ phantom reports to ``progress`` (ten, like the liver's).
ORGAN_STEPS: dict[str, tuple[str, ...]] = {
    "lung": (
        "chest wall",
        "spine and cord",
        "ribs",
        "mediastinum, heart, aorta",
        "lungs and pleura",
        "fissures",
        "bronchi",
        "pulmonary vessels",
        "tumour",
        "CT image",
    ),
    "kidney": (
        "body wall",
        "spine, cord, nerve roots",
        "ribs and thorax",
        "aorta and IVC",
        "abdominal organs",
        "kidneys",
        "collecting system and ureters",
        "renal vessels and adrenals",
        "tumour",
        "CT image",
    ),
}
ORGAN_STEPS["bone"] = ORGAN_STEPS["kidney"]
ORGAN_STEPS["soft_tissue"] = SOFT_STEPS

#: z (LPS mm) of the abdominal organ phantoms' field of view: the liver phantom's frame
#: (z = 0 near the liver hilum) moved down 45 mm so that the kidneys, ureters and lumbar
#: spine are whole. The lung phantom's frame (z = 0 about 20 mm below the carina) uses
#: the liver's range.
ABDOMEN_Z_RANGE_MM = (-140.0, 40.0)
CHEST_Z_RANGE_MM = (-95.0, 85.0)


def check_site(organ: str, site: str | None, side: str | None) -> tuple[str | None, str | None]:
    """``(site, side)`` checked for ``organ`` with defaults filled in (None for the liver)."""
    if organ == "liver":
        if site is not None or side is not None:
            raise InputError(
                "--site and --side apply to --organ lung, kidney, bone or soft_tissue (the liver "
                "phantom "
                "places tumours with --tumor-centre-mm)"
            )
        return None, None
    if organ not in ORGAN_SITES:
        raise InputError(
            f"no phantom for organ {organ!r}; phantoms: liver, {', '.join(ORGAN_SITES)}"
        )
    sites = ORGAN_SITES[organ]
    site = sites[0] if site is None else str(site).strip().lower()
    if site not in sites:
        raise InputError(f"--site for {organ} must be {' or '.join(sites)}; got {site!r}")
    given = side is not None
    side = SIDES[0] if side is None else str(side).strip().lower()
    if side not in SIDES:
        raise InputError(f"--side must be right or left; got {side!r}")
    if given and site in MIDLINE_SITES:
        raise InputError(
            f"--side does not apply to --site {site}: the tumour fills the midline "
            "vertebral body (a one-sided bone tumour: --site rib --side right|left)"
        )
    return site, side


def organ_grid(organ: str, spacing_mm) -> Grid:
    """The organ phantom's grid: the liver phantom's field of view, in the organ's z range."""
    sp = tuple(float(s) for s in spacing_mm)
    if organ == "soft_tissue":  # the thigh: a field of view of its own
        return soft_grid(sp)
    shape = tuple(max(8, round(f / s)) for f, s in zip(FOV_MM, sp, strict=True))
    extent = [n * s for n, s in zip(shape, sp, strict=True)]
    z0 = ABDOMEN_Z_RANGE_MM[0] if organ in ("kidney", "bone") else CHEST_Z_RANGE_MM[0]
    origin = (-extent[2] / 2 + 0.5 * sp[2], -extent[1] / 2 + 0.5 * sp[1], z0 + 0.5 * sp[0])
    return Grid(shape, sp, origin)


# -- spine --------------------------------------------------------------------
@dataclass(frozen=True)
class Spine:
    """The segmented spine's geometry (LPS mm): a column along z at the midline.

    Attributes
    ----------
    body_y_mm, body_radius_mm : float
        Centre (y) and radius of the vertebral bodies.
    canal_y_mm, canal_radius_mm, cord_radius_mm : float
        Centre (y) of the spinal canal, its radius and the cord's.
    pitch_mm : float
        Height of one vertebra and its disc.
    disc_mm : float
        Disc height.
    level0_mm : float
        z of one vertebra's mid-height (the others are ``level0_mm + k * pitch_mm``).
    """

    body_y_mm: float = 52.0
    body_radius_mm: float = 22.0
    canal_y_mm: float = 82.0
    canal_radius_mm: float = 9.0
    cord_radius_mm: float = 5.0
    pitch_mm: float = 34.0
    disc_mm: float = 8.0
    level0_mm: float = -45.0

    def relative_z(self, z):
        """The z relative to the nearest vertebra's mid-height, in [-pitch/2, pitch/2)."""
        p = self.pitch_mm
        return (z - self.level0_mm + 0.5 * p) % p - 0.5 * p

    def levels_mm(self, z_lo: float, z_hi: float) -> list[float]:
        """Mid-heights of the vertebrae between ``z_lo`` and ``z_hi``."""
        k0 = int(np.ceil((z_lo - self.level0_mm) / self.pitch_mm))
        k1 = int(np.floor((z_hi - self.level0_mm) / self.pitch_mm))
        return [self.level0_mm + k * self.pitch_mm for k in range(k0, k1 + 1)]

    def pedicle_axis(self, sx: float) -> tuple[np.ndarray, np.ndarray]:
        """Two points (x, y) on the pedicle's axis: body's posterolateral corner, facet."""
        return (
            np.array([sx * 9.0, self.body_y_mm + 12.0]),
            np.array([sx * 15.0, self.canal_y_mm + 11.0]),
        )


def spine_layers(sp: Space, depth_mm: np.ndarray, skin_mm: float, spine: Spine) -> list:
    """Paraspinal muscles, vertebrae, discs, canal, cord and nerve roots as paint layers.

    The pedicles exist only over the middle of each vertebra's height: at the disc levels
    the gap between two pedicles is the intervertebral foramen, where a nerve root (5 mm
    across) leaves the canal antero-laterally and downwards.
    """
    x, y, z = sp.x, sp.y, sp.z
    s = spine
    zr = s.relative_z(z)
    layers = []
    for sx in (-1.0, 1.0):  # erector spinae
        pm = ((x - sx * 38.0) / 28.0) ** 2 + ((y - s.canal_y_mm - 6.0) / 22.0) ** 2 < 1.0
        layers.append((pm & (depth_mm >= skin_mm + 6.0), Label.MUSCLE))
    body = np.sqrt(x**2 + (y - s.body_y_mm) ** 2) < s.body_radius_mm
    # the body's flat back, the canal's anterior wall
    body = sp.full(body | ((np.abs(x) < 12.0) & (y >= s.body_y_mm) & (y <= s.canal_y_mm)))
    disc = body & (np.abs(zr) > 0.5 * (s.pitch_mm - s.disc_mm))
    rc = np.sqrt(x**2 + (y - s.canal_y_mm) ** 2)
    arch_level = np.abs(zr) < 0.5 * s.pitch_mm - 3.0
    lamina = (rc >= s.canal_radius_mm) & (rc < s.canal_radius_mm + 7.0)
    lamina = lamina & (y > s.canal_y_mm + 2.0) & arch_level
    pedicle = np.zeros(np.broadcast(x, y).shape, bool)
    for sx in (-1.0, 1.0):
        a, b = s.pedicle_axis(sx)
        pedicle |= tube_mask(x, y, 0.0 * x, np.array([[*a, 0.0], [*b, 0.0]]), 4.5)
    pedicle = pedicle & (np.abs(zr) < 0.5 * (s.pitch_mm - s.disc_mm) - 4.0)
    spinous = (np.abs(x) < 4.5) & (y > s.canal_y_mm + 10.0) & (y < s.canal_y_mm + 40.0)
    spinous = spinous & (np.abs(zr) < 11.0) & (depth_mm >= skin_mm + 8.0)
    transverse = (np.abs(y - s.canal_y_mm - 4.0) < 4.0) & (np.abs(x) > 15.0) & (np.abs(x) < 42.0)
    transverse = transverse & (np.abs(zr) < 6.0)
    bone = body | lamina | pedicle | spinous | transverse
    layers.append((sp.full(bone), Label.VERTEBRA))
    layers.append((sp.full(disc), Label.MUSCLE))  # discs: soft tissue (muscle properties)
    layers.append((sp.full(rc < s.canal_radius_mm), Label.SPINAL_CANAL))
    layers.append((sp.full(rc < s.cord_radius_mm), Label.SPINAL_CORD))
    roots = np.zeros(sp.grid.shape, bool)
    z_lo, z_hi = float(z.min()), float(z.max())
    for zm in s.levels_mm(z_lo - s.pitch_mm, z_hi + s.pitch_mm):
        zd = zm + 0.5 * s.pitch_mm  # the disc above this vertebra
        for sx in (-1.0, 1.0):
            pts = np.array(
                [
                    [sx * 6.0, s.canal_y_mm, zd + 2.0],
                    [sx * 16.0, s.canal_y_mm - 6.0, zd],
                    [sx * 30.0, s.canal_y_mm - 16.0, zd - 10.0],
                    [sx * 40.0, s.canal_y_mm - 26.0, zd - 20.0],
                ]
            )
            box, bx, by, bz = sp.box(pts.min(axis=0) - 3.0, pts.max(axis=0) + 3.0)
            roots[box] |= tube_mask(bx, by, bz, pts, 2.5)
    # roots run in the foramen and the soft tissue around it, never through bone
    layers.append((roots & ~sp.full(bone | (rc < s.canal_radius_mm)), Label.NERVE_ROOT))
    return layers


# -- tumour -------------------------------------------------------------------
def paint_tumour(
    labels: np.ndarray,
    sp: Space,
    spec,
    replaceable: tuple[Label, ...],
    host: tuple[Label, ...],
    noise: SmoothNoise,
    where: str,
    rim_from: float,
) -> np.ndarray:
    """Draw one tumour over the ``replaceable`` labels (in place); return its rim mask.

    The centre must lie in one of the ``host`` labels (``where`` names the host in the
    error).
    """
    grid = sp.grid
    c = np.asarray(spec.centre_mm, float)
    idx = np.rint(grid.lps_to_index(c)).astype(int)
    if not grid.contains_lps(c) or labels[tuple(idx)] not in [int(h) for h in host]:
        shown = ", ".join(f"{v:g}" for v in c)
        raise InputError(f"tumour centre (--tumor-centre-mm) {shown} mm lies outside the {where}")
    rmax = 0.5 * spec.diameter_mm * (1 + spec.irregularity) + 1.0
    sl, x, y, z = sp.box(c - rmax, c + rmax)
    inside, frac = lobulated_sphere(x, y, z, c, spec.diameter_mm, spec.irregularity, noise)
    inside &= np.isin(labels[sl], [int(v) for v in replaceable])
    labels[sl][inside] = Label.TUMOR
    rim = np.zeros(grid.shape, bool)
    rim[sl] = inside & (frac > rim_from)
    return rim


def ball_share(mask: np.ndarray, sp: Space, centre, diameter_mm: float) -> float:
    """Share of the voxels of a ball (``diameter_mm``, at ``centre``) that lie in ``mask``.

    0 when the ball leaves the field of view (a tumour cut by the scan's edge).
    """
    half = 0.5 * diameter_mm
    c = np.asarray(centre, float)
    grid = sp.grid
    lo = np.asarray(grid.index_to_lps((0, 0, 0)))
    hi = np.asarray(grid.index_to_lps(tuple(n - 1 for n in grid.shape)))
    if np.any(c - half < np.minimum(lo, hi)) or np.any(c + half > np.maximum(lo, hi)):
        return 0.0
    box, x, y, z = sp.box(c - half, c + half)
    ball = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= half**2
    n = np.count_nonzero(ball)
    return float(np.count_nonzero(mask[box] & ball) / n) if n else 0.0


def check_host(labels: np.ndarray, spacing_mm, organ: str, site: str | None) -> None:
    """Refuse a tumour whose surroundings make it another organ's (:func:`infer_organ`).

    Only a box around the tumours is searched (the inference looks 3 mm out).
    """
    from ioplan.anatomy._organ import SHELL_MM, infer_organ

    idx = np.argwhere(labels == Label.TUMOR)
    pad = np.ceil(SHELL_MM / np.asarray(spacing_mm, float)).astype(int) + 1
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = idx.max(axis=0) + pad + 1
    sub = labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    found = infer_organ(sub, spacing_mm)
    # None: no host label within the inference's shell (on grids coarser than it), no say
    if found is not None and found != organ:
        raise InputError(
            f"the tumour at the {site or 'given'} site touches the {found} more than the "
            f"{organ}; use a smaller --tumor-diameter-mm or another --site/--side"
        )


def march_to_edge(mask: np.ndarray, grid: Grid, start, direction, step_mm: float = 0.5):
    """The last point (LPS mm) inside ``mask`` going from ``start`` along ``direction``."""
    d = np.asarray(direction, float)
    d /= np.linalg.norm(d)
    p = np.asarray(start, float)
    last = p.copy()
    shape = np.asarray(grid.shape)
    for k in range(1, 2000):
        q = p + d * k * step_mm
        i = np.rint(grid.lps_to_index(q)).astype(int)
        if np.any(i < 0) or np.any(i >= shape):
            break
        if mask[tuple(i)]:
            last = q
        elif k * step_mm > 3.0 and not mask[tuple(i)] and np.linalg.norm(q - last) > 3.0:
            break
    return last


def generate_organ_phantom(cfg, progress: Callable[[str], None] | None = None):
    """The lung, kidney, bone or soft-tissue phantom of ``cfg`` (a :class:`PhantomConfig`)."""
    if cfg.organ == "soft_tissue":
        from ioplan.anatomy._phantom_soft import generate_soft_tissue

        return generate_soft_tissue(cfg, progress)
    if cfg.organ == "lung":
        from ioplan.anatomy._phantom_lung import generate_lung

        return generate_lung(cfg, progress)
    from ioplan.anatomy._phantom_abdomen import generate_abdomen

    return generate_abdomen(cfg, progress)
