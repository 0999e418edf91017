"""A deterministic synthetic abdomen: label map and CT-like image in HU.

The anatomy is built from analytic shapes (superellipses, ellipsoids, tubes,
smooth unions) in patient LPS millimetres, deformed by seeded smooth noise,
and rasterised on the requested grid. The same seed and parameters give the
same case on every machine.

Coordinates: +x towards the patient's left, +y posterior, +z superior. The
body midline is x = 0; z = 0 is about the level of the liver hilum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
from scipy import ndimage

from ioplan.anatomy._labels import LABEL_INFO, Label
from ioplan.anatomy._vessels import VesselSegment, grow_tree, rasterise_segments
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume

__all__ = ["DEFAULT_TUMOR_CENTRES_MM", "Phantom", "PhantomConfig", "TumorSpec", "generate_phantom"]

#: Field of view ``(z, y, x)`` in mm: from below the right kidney's hilum to the lung bases.
FOV_MM = (180.0, 260.0, 340.0)
_Z_RANGE = (-95.0, 85.0)

#: Default tumour centres (LPS mm), used in turn when a tumour has no centre:
#: right posterior (segment VI/VII), right anterior (V/VIII), medial (IV), right inferior (VI).
DEFAULT_TUMOR_CENTRES_MM: tuple[tuple[float, float, float], ...] = (
    (-85.0, 25.0, 15.0),
    (-45.0, -45.0, 20.0),
    (-10.0, -50.0, 15.0),
    (-95.0, -5.0, -20.0),
)

_HISTOLOGIES = ("hcc", "colorectal_metastasis", "other_metastasis", "cholangiocarcinoma")


@dataclass(frozen=True)
class TumorSpec:
    """One tumour of the phantom.

    Attributes
    ----------
    diameter_mm : float
        Mean diameter (the irregularity changes the local radius around it).
    centre_mm : tuple of 3 float, optional
        LPS centre; default: the next of :data:`DEFAULT_TUMOR_CENTRES_MM`.
    irregularity : float
        Relative amplitude of the smooth radial perturbation, 0 (sphere) to 0.5.
    histology : str
        ``"hcc"``, ``"colorectal_metastasis"``, ``"other_metastasis"`` or
        ``"cholangiocarcinoma"`` (the margin a plan needs depends on it).
    """

    diameter_mm: float = 30.0
    centre_mm: tuple[float, float, float] | None = None
    irregularity: float = 0.15
    histology: str = "hcc"

    def __post_init__(self) -> None:
        if not np.isfinite(self.diameter_mm) or not 3.0 <= self.diameter_mm <= 120.0:
            raise InputError(f"tumour diameter_mm must be 3-120 mm, got {self.diameter_mm}")
        if not np.isfinite(self.irregularity) or not 0.0 <= self.irregularity <= 0.5:
            raise InputError(f"tumour irregularity must be 0-0.5, got {self.irregularity}")
        if self.histology not in _HISTOLOGIES:
            raise InputError(
                f"tumour histology must be one of {', '.join(_HISTOLOGIES)}; got {self.histology!r}"
            )
        if self.centre_mm is not None:
            c = np.asarray(self.centre_mm, float).reshape(-1)
            if c.shape != (3,) or not np.all(np.isfinite(c)):
                raise InputError(f"tumour centre_mm must be 3 finite numbers, got {self.centre_mm}")
            object.__setattr__(self, "centre_mm", tuple(float(v) for v in c))


@dataclass(frozen=True)
class PhantomConfig:
    """Parameters of :func:`generate_phantom`.

    Attributes
    ----------
    spacing_mm : float or tuple of 3 float
        Voxel spacing ``(z, y, x)`` in mm (a number means isotropic). 0.5-5 mm.
    seed : int
        Seed of every random choice (shape noise, vessel trees, tumour
        shape, image noise).
    tumors : tuple of TumorSpec
        One to eight tumours.
    noise_hu : float
        Standard deviation of the image noise in HU (typical abdominal CT:
        10-20 HU).
    """

    spacing_mm: float | tuple[float, float, float] = 1.0
    seed: int = 0
    tumors: tuple[TumorSpec, ...] = (TumorSpec(),)
    noise_hu: float = 12.0

    def __post_init__(self) -> None:
        sp = np.broadcast_to(np.asarray(self.spacing_mm, float), (3,))
        if not np.all(np.isfinite(sp)) or np.any(sp < 0.5) or np.any(sp > 5.0):
            raise InputError(f"spacing_mm must be 0.5-5 mm, got {self.spacing_mm}")
        object.__setattr__(self, "spacing_mm", tuple(float(s) for s in sp))
        tumors = tuple(self.tumors)
        if not 1 <= len(tumors) <= 8:
            raise InputError(f"the phantom holds 1-8 tumours, got {len(tumors)}")
        if any(not isinstance(t, TumorSpec) for t in tumors):
            raise InputError("tumors must be TumorSpec instances")
        object.__setattr__(self, "tumors", tumors)
        if int(self.seed) != self.seed or self.seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {self.seed}")
        if not np.isfinite(self.noise_hu) or not 0 <= self.noise_hu <= 100:
            raise InputError(f"noise_hu must be 0-100 HU, got {self.noise_hu}")
        coarsest = max(self.spacing_mm)
        for t in tumors:
            if t.diameter_mm < 2.0 * coarsest:
                raise InputError(
                    f"tumour diameter_mm {t.diameter_mm} is under two voxels at spacing "
                    f"{coarsest} mm; use a finer --spacing-mm"
                )

    def resolved_tumors(self) -> tuple[TumorSpec, ...]:
        """The tumours with default centres filled in."""
        out = []
        defaults = iter(DEFAULT_TUMOR_CENTRES_MM)
        for t in self.tumors:
            if t.centre_mm is None:
                c = next(defaults, None)
                if c is None:
                    raise InputError(
                        f"give centre_mm for tumours beyond the {len(DEFAULT_TUMOR_CENTRES_MM)} "
                        "default positions"
                    )
                t = TumorSpec(t.diameter_mm, c, t.irregularity, t.histology)
            out.append(t)
        return tuple(out)


@dataclass(frozen=True, eq=False)
class Phantom:
    """A generated phantom: CT image (HU), label map, tumours and vessel centrelines."""

    image: Volume
    labels: Volume
    tumors: tuple[TumorSpec, ...]
    vessels: tuple[VesselSegment, ...]
    config: PhantomConfig = field(repr=False)


class _SmoothNoise:
    """Seeded smooth random field in [-1, 1] (cubic interpolation of a coarse lattice)."""

    def __init__(self, rng: np.random.Generator, lattice_mm: float, lo_mm, hi_mm) -> None:
        self.lattice_mm = lattice_mm
        self.lo = np.asarray(lo_mm, float) - 2 * lattice_mm
        n = np.ceil((np.asarray(hi_mm, float) + 2 * lattice_mm - self.lo) / lattice_mm).astype(int)
        raw = rng.uniform(-1.0, 1.0, size=tuple(n + 1))
        # Smoothing the lattice a little keeps cubic overshoot in check.
        self.coeffs = ndimage.spline_filter(ndimage.gaussian_filter(raw, 0.6) * 1.6, order=3)

    def __call__(self, x, y, z) -> np.ndarray:
        x, y, z = np.broadcast_arrays(x, y, z)
        coords = np.stack(
            [
                (x - self.lo[0]) / self.lattice_mm,
                (y - self.lo[1]) / self.lattice_mm,
                (z - self.lo[2]) / self.lattice_mm,
            ]
        ).reshape(3, -1)
        v = ndimage.map_coordinates(self.coeffs, coords, order=3, prefilter=False, mode="nearest")
        return np.clip(v.reshape(x.shape), -1.0, 1.0)


def _softmin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth minimum of two implicit fields (smooth union of the shapes)."""
    m = np.minimum(a, b)
    return m - k * np.log1p(np.exp(-np.abs(a - b) / k))


def _ellipsoid(x, y, z, centre, semi, rot_deg=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Normalised radius of an ellipsoid (< 1 inside); rotation about x, y, z in degrees."""
    px, py, pz = x - centre[0], y - centre[1], z - centre[2]
    ax, ay, az = np.deg2rad(rot_deg)
    if ax:
        py, pz = np.cos(ax) * py + np.sin(ax) * pz, -np.sin(ax) * py + np.cos(ax) * pz
    if ay:
        px, pz = np.cos(ay) * px - np.sin(ay) * pz, np.sin(ay) * px + np.cos(ay) * pz
    if az:
        px, py = np.cos(az) * px + np.sin(az) * py, -np.sin(az) * px + np.cos(az) * py
    return np.sqrt((px / semi[0]) ** 2 + (py / semi[1]) ** 2 + (pz / semi[2]) ** 2)


class _Anatomy:
    """The analytic anatomy; every method takes broadcastable LPS coordinate arrays."""

    # body outline: superellipse half-axes (mm) and exponent
    AX, AY_ANT, AY_POST, P = 160.0, 118.0, 110.0, 2.6
    SKIN_MM, MUSCLE_MM = 2.0, 11.0

    def __init__(self, rng: np.random.Generator) -> None:
        lo = (-200.0, -150.0, _Z_RANGE[0] - 20)
        hi = (200.0, 150.0, _Z_RANGE[1] + 20)
        self.body_noise = _SmoothNoise(rng, 70.0, lo, hi)
        self.liver_noise = _SmoothNoise(rng, 45.0, lo, hi)
        self.fat_noise = _SmoothNoise(rng, 60.0, lo, hi)

    # -- body wall ---------------------------------------------------------
    def depth(self, x, y, z) -> np.ndarray:
        """Approximate depth below the skin (mm), along the ray from the body axis."""
        ay = np.where(y < 0, self.AY_ANT, self.AY_POST)
        scale = 1.0 + 0.02 * self.body_noise(x * 0, y * 0 + 0.0, z) + 0.0003 * (z - _Z_RANGE[0])
        rho = (
            (np.abs(x) / (self.AX * scale)) ** self.P + (np.abs(y) / (ay * scale)) ** self.P
        ) ** (1.0 / self.P)
        r = np.sqrt(x * x + y * y)
        return np.where(rho > 0, r * (1.0 / np.maximum(rho, 1e-6) - 1.0), 1e3)

    def fat_thickness(self, x, y, z) -> np.ndarray:
        """Subcutaneous fat thickness (mm): thicker anteriorly and at the flanks."""
        phi = np.arctan2(np.abs(x), y)  # 0 posterior, pi anterior
        return 16.0 + 8.0 * np.sin(phi) ** 2 + 4.0 * self.fat_noise(x, y, z * 0.3)

    def wall_depth(self, x, y, z) -> np.ndarray:
        """Depth of the inner surface of the muscle wall (mm)."""
        return self.SKIN_MM + self.fat_thickness(x, y, z) + self.MUSCLE_MM

    # -- thorax ------------------------------------------------------------
    def dome_z(self, x, y) -> np.ndarray:
        """Height (mm) of the diaphragm's lower surface; right dome higher than left."""
        right = 70.0 - 0.0055 * (x + 55.0) ** 2 - 0.0045 * y**2 - 0.12 * np.maximum(y, 0)
        left = 60.0 - 0.0055 * (x - 60.0) ** 2 - 0.0045 * y**2 - 0.12 * np.maximum(y, 0)
        # smooth maximum of the two domes (no step at the midline), 6 mm softness
        k = 6.0
        return np.logaddexp(right / k, left / k) * k

    # -- liver -------------------------------------------------------------
    def liver_field(self, x, y, z) -> np.ndarray:
        """Implicit liver shape (< 1 inside), before cuts by neighbouring organs."""
        right = _ellipsoid(x, y, z, (-62.0, 8.0, 12.0), (82.0, 95.0, 78.0), (0.0, -8.0, 0.0))
        left = _ellipsoid(x, y, z, (15.0, -32.0, 42.0), (70.0, 45.0, 33.0), (0.0, 0.0, -12.0))
        return _softmin(right, left, 0.10) + 0.06 * self.liver_noise(x, y, z)


def _tumour_mask(x, y, z, spec: TumorSpec, noise: _SmoothNoise) -> tuple[np.ndarray, np.ndarray]:
    """Inside mask and normalised radius (0 centre, 1 surface) of one tumour."""
    c = spec.centre_mm
    dx, dy, dz = x - c[0], y - c[1], z - c[2]
    r = np.sqrt(dx * dx + dy * dy + dz * dz)
    rr = np.maximum(r, 1e-6)
    # Radial perturbation: the noise field sampled on a sphere of radius 30 mm
    # around the centre (so the lobulation scale does not depend on size).
    pert = noise(30.0 * dx / rr, 30.0 * dy / rr, 30.0 * dz / rr)
    local_r = 0.5 * spec.diameter_mm * (1.0 + spec.irregularity * pert)
    frac = r / local_r
    return frac <= 1.0, frac


class _Raster:
    """Voxel-space helpers for an axis-aligned grid."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.z, self.y, self.x = grid.axis_coordinates_mm()

    def box(self, lo_xyz, hi_xyz):
        """Index slices and broadcast coordinates for the LPS box [lo, hi]."""
        sl = []
        coords = []
        for ax_coords, lo, hi in (
            (self.z, lo_xyz[2], hi_xyz[2]),
            (self.y, lo_xyz[1], hi_xyz[1]),
            (self.x, lo_xyz[0], hi_xyz[0]),
        ):
            i0 = int(np.searchsorted(ax_coords, lo, side="left"))
            i1 = int(np.searchsorted(ax_coords, hi, side="right"))
            sl.append(slice(i0, max(i0, i1)))
            coords.append(ax_coords[i0 : max(i0, i1)])
        z = coords[0][:, None, None]
        y = coords[1][None, :, None]
        x = coords[2][None, None, :]
        return tuple(sl), x, y, z


def _tube_mask(x, y, z, points: np.ndarray, radius: float) -> np.ndarray:
    """Voxels within ``radius`` of a polyline."""
    best = np.full(np.broadcast(x, y, z).shape, np.inf)
    for p0, p1 in pairwise(points):
        v = p1 - p0
        t = ((x - p0[0]) * v[0] + (y - p0[1]) * v[1] + (z - p0[2]) * v[2]) / float(v @ v)
        t = np.clip(t, 0.0, 1.0)
        d2 = (x - p0[0] - t * v[0]) ** 2 + (y - p0[1] - t * v[1]) ** 2 + (z - p0[2] - t * v[2]) ** 2
        best = np.minimum(best, d2)
    return best <= radius * radius


def phantom_grid(spacing_mm: Sequence[float]) -> Grid:
    """The axis-aligned grid of the phantom's field of view at ``spacing_mm`` ``(z, y, x)``."""
    shape = tuple(max(8, round(f / s)) for f, s in zip(FOV_MM, spacing_mm, strict=True))
    extent = [n * s for n, s in zip(shape, spacing_mm, strict=True)]
    origin_z = _Z_RANGE[0] + 0.5 * spacing_mm[0]
    origin_y = -extent[1] / 2 + 0.5 * spacing_mm[1]
    origin_x = -extent[2] / 2 + 0.5 * spacing_mm[2]
    return Grid(shape, tuple(spacing_mm), (origin_x, origin_y, origin_z))


def generate_phantom(
    config: PhantomConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> Phantom:
    """Generate the synthetic abdomen.

    Parameters
    ----------
    config : PhantomConfig, optional
        Spacing, seed, tumours, noise. Default: 1 mm, seed 0, one 30 mm HCC.
    progress : callable, optional
        Called with the name of each step as it starts (for progress bars).

    Returns
    -------
    Phantom
        CT image (int16 HU), label map (uint8, :class:`Label` values), the
        tumours with their centres, and the vessel centrelines.

    Examples
    --------
    >>> ph = generate_phantom(PhantomConfig(spacing_mm=4.0, noise_hu=0.0))
    >>> int((ph.labels.array == Label.TUMOR).sum()) > 0
    True
    """
    cfg = config if config is not None else PhantomConfig()
    step = progress or (lambda _name: None)
    rng = np.random.default_rng(cfg.seed)
    tumors = cfg.resolved_tumors()
    grid = phantom_grid(cfg.spacing_mm)
    ras = _Raster(grid)
    anat = _Anatomy(rng)
    labels = np.zeros(grid.shape, np.uint8)

    def full(mask: np.ndarray) -> np.ndarray:
        return np.broadcast_to(mask, grid.shape)

    # 1. Body wall: skin, subcutaneous fat, muscle; cavity filled with visceral fat.
    step("body wall")
    z3, y3, x3 = ras.z[:, None, None], ras.y[None, :, None], ras.x[None, None, :]
    depth = anat.depth(x3, y3, z3)
    fat_t = anat.fat_thickness(x3, y3, z3)
    labels[depth >= 0] = Label.FAT
    labels[(depth >= 0) & (depth < anat.SKIN_MM)] = Label.SKIN
    wall_inner = anat.SKIN_MM + fat_t + anat.MUSCLE_MM
    muscle = (depth >= anat.SKIN_MM + fat_t) & (depth < wall_inner)
    labels[muscle] = Label.MUSCLE
    cavity = depth >= wall_inner
    del muscle

    # 2. Paraspinal muscles, spine, spinal canal, intervertebral discs.
    step("spine and muscles")
    for sx in (-1.0, 1.0):
        pm = ((x3 - sx * 38.0) / 30.0) ** 2 + ((y3 - 88.0) / 24.0) ** 2 < 1.0
        labels[pm & (depth >= anat.SKIN_MM + 6.0)] = Label.MUSCLE
    r_body = np.sqrt(x3**2 + (y3 - 52.0) ** 2)
    vert = full(r_body < 21.0)
    arch = (np.sqrt(x3**2 + (y3 - 82.0) ** 2) < 16.0) & (y3 > 68.0)
    spinous = (np.abs(x3) < 4.5) & (y3 > 82.0) & (y3 < 112.0)
    # transverse processes: thin, pointing postero-laterally
    transverse = (np.abs(y3 - 76.0 - 0.3 * (np.abs(x3) - 10.0)) < 3.5) & (np.abs(x3) < 40.0)
    transverse &= np.abs(x3) > 10.0
    bone_shape = full(vert | arch | spinous | transverse)
    labels[bone_shape] = Label.VERTEBRA
    # Discs every 32 mm along z, 7 mm thick (soft tissue: muscle properties).
    disc = (np.abs(((z3 + 20.0) % 32.0) - 16.0) < 3.5) & vert
    labels[disc] = Label.MUSCLE
    canal = full(np.sqrt(x3**2 + (y3 - 82.0) ** 2) < 9.0)
    labels[canal] = Label.SPINAL_CANAL
    del r_body, vert, arch, spinous, transverse, bone_shape, disc, canal

    # 3. Ribs: bands in the chest wall that descend anteriorly.
    step("ribs")
    phi = np.arctan2(np.abs(x3), y3)  # 0 posterior, pi anterior
    wall_mid = anat.SKIN_MM + fat_t + 0.55 * anat.MUSCLE_MM
    rib_posterior_z = (110.0, 82.0, 54.0, 26.0, -2.0, -30.0)
    rib_phi_max = (2.8, 2.7, 2.5, 2.2, 1.7, 1.1)
    for z0, phi_max in zip(rib_posterior_z, rib_phi_max, strict=True):
        zc = z0 - 85.0 * phi / np.pi
        in_rib = ((z3 - zc) / 5.5) ** 2 + ((depth - wall_mid) / 4.5) ** 2 < 1.0
        in_rib &= (phi > 0.42) & (phi < phi_max)
        labels[in_rib] = Label.RIB
    del phi, wall_mid, fat_t

    # 4. Above the diaphragm: heart on the central tendon, lungs around it,
    # posterior mediastinum (fat, aorta) between them.
    step("lungs, heart, diaphragm")
    dome = anat.dome_z(x3, y3)
    diaphragm = cavity & (z3 >= dome) & (z3 < dome + 5.0)
    thorax = cavity & (z3 >= dome + 5.0)
    heart = thorax & (_ellipsoid(x3, y3, z3, (8.0, -22.0, 100.0), (68.0, 58.0, 48.0)) < 1.0)
    mediastinum = (np.abs(x3) < 24.0) & (y3 > -15.0)
    labels[diaphragm] = Label.DIAPHRAGM
    labels[thorax & ~heart & ~mediastinum] = Label.LUNG
    labels[heart] = Label.HEART
    below_diaphragm = cavity & (z3 < dome)
    del diaphragm, thorax, heart, mediastinum, dome

    # 5. Great vessels.
    step("aorta and IVC")
    aorta = full((x3 - 18.0) ** 2 + (y3 - 18.0) ** 2 < 11.0**2)
    ivc = (((x3 + 24.0) / 13.0) ** 2 + ((y3 - 12.0) / 10.5) ** 2 < 1.0) & (z3 < 75.0)
    # 6. Abdominal organs (painted before the liver, which is cut around them).
    step("abdominal organs")
    kidney = np.zeros(grid.shape, bool)
    sinus = np.zeros(grid.shape, bool)
    for sx, zc in ((-1.0, -52.0), (1.0, -42.0)):
        sl, x, y, z = ras.box((sx * 76 - 45, 10, zc - 70), (sx * 76 + 45, 120, zc + 70))
        k = _ellipsoid(
            x, y, z, (sx * 76.0, 68.0, zc), (30.0, 24.0, 56.0), (0.0, sx * 12.0, sx * 20.0)
        )
        s = _ellipsoid(x, y, z, (sx * 58.0, 60.0, zc), (12.0, 10.0, 30.0))
        kidney[sl] |= k < 1.0
        sinus[sl] |= s < 1.0
    spleen = np.zeros(grid.shape, bool)
    sl, x, y, z = ras.box((40, -40, -40), (170, 140, 110))
    outer = _ellipsoid(x, y, z, (98.0, 58.0, 30.0), (34.0, 55.0, 58.0), (0.0, 0.0, 25.0))
    inner = _ellipsoid(x, y, z, (60.0, 45.0, 30.0), (28.0, 45.0, 70.0), (0.0, 0.0, 25.0))
    spleen[sl] = (outer < 1.0) & (inner > 1.0)
    stomach = np.zeros(grid.shape, bool)
    stomach_lumen = np.zeros(grid.shape, bool)
    sl, x, y, z = ras.box((-20, -90, -40), (120, 60, 110))
    st = _ellipsoid(x, y, z, (52.0, -18.0, 32.0), (44.0, 38.0, 55.0), (20.0, 0.0, -25.0))
    stomach[sl] = st < 1.0
    stomach_lumen[sl] = st < 1.0 - 4.5 / 40.0
    bowel = np.zeros(grid.shape, bool)
    bowel_lumen = np.zeros(grid.shape, bool)
    colon = np.array(
        [
            (-115, 15, -110),
            (-105, -5, -80),
            (-88, -38, -62),
            (-45, -62, -70),
            (10, -68, -76),
            (60, -55, -70),
            (100, -25, -55),
            (112, 10, -40),
        ],
        float,
    )
    # Small bowel: seeded meandering loops in the lower central abdomen.
    tubes = [(colon, 21.0)]
    lo_box, hi_box = np.array([-70.0, -75.0, -115.0]), np.array([70.0, 15.0, -50.0])
    for _ in range(6):
        pts = [rng.uniform(lo_box, hi_box)]
        for _ in range(5):
            pts.append(
                np.clip(pts[-1] + rng.normal(0.0, 1.0, 3) * (22.0, 22.0, 12.0), lo_box, hi_box)
            )
        tubes.append((np.array(pts), 12.0))
    for pts, radius in tubes:
        lo = pts.min(axis=0) - radius
        hi = pts.max(axis=0) + radius
        sl, x, y, z = ras.box(lo, hi)
        bowel[sl] |= _tube_mask(x, y, z, pts, radius)
        bowel_lumen[sl] |= _tube_mask(x, y, z, pts, radius - 3.0)
    gallbladder = np.zeros(grid.shape, bool)
    sl, x, y, z = ras.box((-80, -110, -90), (30, 10, 20))
    gb = _ellipsoid(x, y, z, (-28.0, -52.0, -32.0), (15.0, 16.0, 38.0), (35.0, 0.0, 10.0))
    gallbladder[sl] = gb < 1.0

    abdominal = below_diaphragm
    labels[kidney & abdominal] = Label.KIDNEY
    labels[sinus & kidney & abdominal] = Label.FAT
    labels[spleen & abdominal] = Label.SPLEEN
    labels[stomach & abdominal] = Label.STOMACH
    labels[stomach_lumen & abdominal] = Label.BOWEL_CONTENT
    labels[bowel & abdominal] = Label.BOWEL_WALL
    labels[bowel_lumen & abdominal] = Label.BOWEL_CONTENT

    # 7. Liver: the implicit shape, below the diaphragm, away from its neighbours.
    step("liver")
    sl, x, y, z = ras.box((-200, -150, _Z_RANGE[0]), (130, 150, _Z_RANGE[1]))
    liver = np.zeros(grid.shape, bool)
    liver[sl] = anat.liver_field(x, y, z) < 1.0
    keep_out = kidney | spleen | stomach | bowel
    keep_out = ndimage.binary_dilation(
        keep_out, iterations=max(1, round(3.0 / min(cfg.spacing_mm)))
    )
    # no liver left of and behind the IVC (aorta, crura, spine), nor in the left flank
    keep_out |= ((x3 - 22.0) / 38.0) ** 2 + ((y3 - 58.0) / 48.0) ** 2 < 1.0
    keep_out |= ((x3 - 120.0) / 75.0) ** 2 + ((y3 - 60.0) / 90.0) ** 2 < 1.0
    liver &= abdominal & ~keep_out & (depth >= anat.wall_depth(x3, y3, z3) + 1.0)
    liver &= ~(gallbladder & abdominal)
    # Keep the largest connected piece (cuts can leave crumbs).
    lab, n = ndimage.label(liver)
    if n > 1:
        sizes = ndimage.sum_labels(liver, lab, index=np.arange(1, n + 1))
        liver = lab == (1 + int(np.argmax(sizes)))
    labels[liver] = Label.LIVER
    labels[gallbladder & abdominal & ~keep_out] = Label.GALLBLADDER
    labels[aorta] = Label.AORTA
    labels[ivc & cavity] = Label.IVC
    del keep_out, kidney, sinus, spleen, stomach, stomach_lumen, bowel, bowel_lumen
    del gallbladder, depth, aorta

    # 8. Vessel trees, grown inside the liver.
    step("vessel trees")
    depth_in_liver = ndimage.distance_transform_edt(liver, sampling=grid.spacing_mm)

    def inside_depth(points: np.ndarray) -> np.ndarray:
        idx = np.rint(grid.lps_to_index(points)).astype(int)
        ok = np.all((idx >= 0) & (idx < np.asarray(grid.shape)), axis=-1)
        out = np.zeros(len(points))
        out[ok] = depth_in_liver[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        return out

    hilum = np.array([-30.0, -8.0, -12.0])
    # Right and left portal veins split the trunk by Murray's law (r^3 conserved).
    r_trunk, r_right = 7.0, 5.9
    r_left = (r_trunk**3 - r_right**3) ** (1.0 / 3.0)
    portal: list[VesselSegment] = [
        VesselSegment("portal", 0, -1, (2.0, 2.0, -82.0), tuple(hilum), r_trunk)
    ]
    for name, direction, radius in (
        ("portal", (-1.0, 0.25, 0.35), r_right),
        ("portal", (1.0, -0.55, 0.7), r_left),
    ):
        sub = grow_tree(
            name, hilum, np.array(direction), radius, inside_depth_mm=inside_depth, rng=rng
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
    confluence = np.array([-24.0, 12.0, 45.0])
    for name, direction, radius in (
        ("hepatic_right", (-1.0, 0.15, -0.55), 6.5),
        ("hepatic_middle", (-0.3, -0.9, -0.6), 5.5),
        ("hepatic_left", (0.8, -0.7, -0.2), 4.8),
    ):
        hepatic += grow_tree(
            name, confluence, np.array(direction), radius, inside_depth_mm=inside_depth, rng=rng
        )
    # Hepatic artery and bile ducts run beside the central portal branches.
    artery: list[VesselSegment] = [
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
    ducts: list[VesselSegment] = [
        VesselSegment(
            "bile_duct", 0, -1, (-12.0, -2.0, -85.0), tuple(hilum + np.array([0.0, 9.0, -6.0])), 3.5
        ),
    ]
    for seg in portal[1:]:
        if seg.radius_mm < 2.8:
            continue
        p0, p1 = np.asarray(seg.start_mm), np.asarray(seg.end_mm)
        e1, _ = _perp(p1 - p0)
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
    soft = np.isin(labels, [Label.LIVER, Label.FAT])
    args = (grid.lps_to_index, grid.index_to_lps, grid.spacing_mm)
    rasterise_segments(labels, Label.PORTAL_VEIN, portal, *args, allowed=soft)
    rasterise_segments(
        labels, Label.HEPATIC_VEIN, hepatic, *args, allowed=soft | (labels == Label.IVC)
    )
    soft = np.isin(labels, [Label.LIVER, Label.FAT])
    rasterise_segments(labels, Label.HEPATIC_ARTERY, artery, *args, allowed=soft)
    rasterise_segments(labels, Label.BILE_DUCT, ducts, *args, allowed=soft)
    labels[ivc & cavity] = Label.IVC
    del ivc, cavity

    # 9. Tumours: inside the liver; they replace liver and small vessels.
    step("tumours")
    tumour_noise = _SmoothNoise(rng, 25.0, (-40, -40, -40), (40, 40, 40))
    rim = np.zeros(grid.shape, bool)
    replaceable = np.isin(
        labels,
        [
            Label.LIVER,
            Label.HEPATIC_ARTERY,
            Label.BILE_DUCT,
            Label.PORTAL_VEIN,
            Label.HEPATIC_VEIN,
            Label.TUMOR,
        ],
    )
    for t in tumors:
        c = np.asarray(t.centre_mm)
        if not grid.contains_lps(c) or not liver[tuple(np.rint(grid.lps_to_index(c)).astype(int))]:
            raise InputError(f"tumour centre_mm {t.centre_mm} lies outside the liver")
        rmax = 0.5 * t.diameter_mm * (1 + t.irregularity) + 1.0
        sl, x, y, z = ras.box(c - rmax, c + rmax)
        inside, frac = _tumour_mask(x, y, z, t, tumour_noise)
        inside &= replaceable[sl]
        labels[sl][inside] = Label.TUMOR
        rim[sl] |= inside & (frac > 0.82)

    # 10. CT image.
    step("CT image")
    image = _synthesise_ct(labels, grid, rim, cfg.noise_hu, rng)
    vessels = tuple(portal + hepatic + artery + ducts)
    return Phantom(Volume(image, grid), Volume(labels, grid), tumors, vessels, cfg)


def _perp(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = v / np.linalg.norm(v)
    helper = np.array([0.0, 0.0, 1.0]) if abs(v[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(v, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(v, e1)


def _synthesise_ct(
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
    pieces, n = ndimage.label(content)
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
