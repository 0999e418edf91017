"""A deterministic synthetic abdomen: label map and CT-like image in HU.

The anatomy is built from analytic shapes (superellipses, ellipsoids, tubes,
smooth unions) in patient LPS millimetres, deformed by seeded smooth noise,
and rasterised on the requested grid. The same seed and parameters give the
same case on every machine.

Coordinates: +x towards the patient's left, +y posterior, +z superior. The
body midline is x = 0; z = 0 is about the level of the liver hilum.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ioplan.anatomy import _steps as steps
from ioplan.anatomy._collection import (
    PhantomExtras,
    add_collection,
    add_necrosis,
    check_collection,
)
from ioplan.anatomy._labels import Label
from ioplan.anatomy._organ import check_organ
from ioplan.anatomy._phantom_organs import check_site, generate_organ_phantom
from ioplan.anatomy._shapes import FOV_MM, Z_RANGE_MM, Anatomy, Space
from ioplan.anatomy._vessels import (
    ARTERY_VARIANTS,
    VesselSegment,
    artery_variant_for_seed,
    hepatic_artery_tree,
    rasterise_segments,
)
from ioplan.errors import InputError
from ioplan.imaging import Grid, Volume
from ioplan.resources import check_memory

__all__ = [
    "DEFAULT_TUMOR_CENTRES_MM",
    "PHANTOM_STEPS",
    "Phantom",
    "PhantomConfig",
    "TumorSpec",
    "check_phantom_memory",
    "generate_phantom",
    "phantom_grid",
]

#: Default tumour centres (LPS mm), used in turn when a tumour has no centre:
#: right posterior (segment VI/VII), right anterior (V/VIII), medial (IV), right inferior (VI).
DEFAULT_TUMOR_CENTRES_MM: tuple[tuple[float, float, float], ...] = (
    (-85.0, 25.0, 15.0),
    (-45.0, -45.0, 20.0),
    (-10.0, -50.0, 15.0),
    (-95.0, -5.0, -20.0),
)

#: Tumour histologies the phantom knows (the margin a plan needs depends on it).
HISTOLOGIES = ("hcc", "colorectal_metastasis", "other_metastasis", "cholangiocarcinoma")
#: Allowed ranges (inclusive) of the phantom's numeric parameters, stated in the CLI's help.
SPACING_RANGE_MM = (0.5, 5.0)
DIAMETER_RANGE_MM = (3.0, 120.0)
IRREGULARITY_RANGE = (0.0, 0.5)
SEED_RANGE = (0, 2**32 - 1)
MAX_TUMORS = 8


def _in_range(value: float, lo: float, hi: float) -> bool:
    return bool(np.isfinite(value)) and lo <= value <= hi


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
        lo, hi = DIAMETER_RANGE_MM
        if not _in_range(self.diameter_mm, lo, hi):
            raise InputError(
                f"tumour diameter (--tumor-diameter-mm) must be {lo:g}-{hi:g} mm, "
                f"got {self.diameter_mm:g}"
            )
        lo, hi = IRREGULARITY_RANGE
        if not _in_range(self.irregularity, lo, hi):
            raise InputError(f"--irregularity must be {lo:g}-{hi:g}, got {self.irregularity:g}")
        if self.histology not in HISTOLOGIES:
            raise InputError(
                f"--histology must be one of {', '.join(HISTOLOGIES)}; got {self.histology!r}"
            )
        if self.centre_mm is not None:
            c = np.asarray(self.centre_mm, float).reshape(-1)
            if c.shape != (3,) or not np.all(np.isfinite(c)):
                raise InputError(
                    f"tumour centre (--tumor-centre-mm) must be 3 finite numbers in mm, "
                    f"got {self.centre_mm}"
                )
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
        shape, image noise), 0 to 2**32 - 1.
    tumors : tuple of TumorSpec
        One to eight tumours.
    noise_hu : float
        Standard deviation of the image noise in HU (typical abdominal CT:
        10-20 HU).
    organ : str
        ``"liver"`` (the abdomen with its vessel trees), ``"lung"`` (the chest),
        ``"kidney"`` or ``"bone"`` (the retroperitoneum and lumbar spine), ``"soft_tissue"``
        (a thigh).
    site : str, optional
        Where the tumour lies (organ phantoms only; default the first):
        lung ``"peripheral"`` or ``"central"``, kidney ``"exophytic"`` or ``"central"``
        (near the collecting system), bone ``"vertebra"`` (vertebral body) or ``"rib"``.
    side : str, optional
        ``"right"`` (default) or ``"left"`` (organ phantoms only).
    collection_mm : float, optional
        Largest diameter (15-150 mm) of a fluid collection
        (:mod:`ioplan.anatomy._collection`, label ``FLUID_COLLECTION``); default none.
    collection_site : str
        ``"perihepatic"``, ``"subphrenic"``, ``"pelvic"``, ``"intrahepatic"`` (liver
        phantom) or ``"pleural"`` (liver or lung phantom).
    collection_content : str
        ``"abscess"`` (20 HU, enhancing wall), ``"biloma"`` (8 HU), ``"ascites"`` (5 HU)
        or ``"effusion"`` (10 HU).
    necrosis_mm : float, optional
        Diameter of a necrotic centre (15 HU) in the first tumour, at most 0.8 x its
        diameter; the label stays tumour. Default none.
    arterial_tree : bool
        Liver phantom: replace the hepatic artery pieces beside the large portal branches
        by one connected arterial tree (:func:`~ioplan.anatomy._vessels.hepatic_artery_tree`:
        common and proper hepatic artery, gastroduodenal, right gastric and cystic
        branches, an artery beside every portal branch). Default off (the phantom as before).
    artery_variant : str, optional
        ``"standard"``, ``"replaced_right"`` or ``"replaced_left"`` (implies
        ``arterial_tree``); default with ``arterial_tree``: drawn from the seed
        (:func:`~ioplan.anatomy._vessels.artery_variant_for_seed`).
    """

    spacing_mm: float | tuple[float, float, float] = 1.0
    seed: int = 0
    tumors: tuple[TumorSpec, ...] = (TumorSpec(),)
    noise_hu: float = 12.0
    organ: str = "liver"
    site: str | None = None
    side: str | None = None
    collection_mm: float | None = None
    collection_site: str = "perihepatic"
    collection_content: str = "abscess"
    necrosis_mm: float | None = None
    arterial_tree: bool = False
    artery_variant: str | None = None

    def __post_init__(self) -> None:
        sp = np.broadcast_to(np.asarray(self.spacing_mm, float), (3,))
        lo, hi = SPACING_RANGE_MM
        if not all(_in_range(v, lo, hi) for v in sp):
            shown = ", ".join(f"{v:g}" for v in np.unique(sp))
            raise InputError(f"voxel spacing (--spacing-mm) must be {lo:g}-{hi:g} mm, got {shown}")
        object.__setattr__(self, "spacing_mm", tuple(float(s) for s in sp))
        tumors = tuple(self.tumors)
        if not 1 <= len(tumors) <= MAX_TUMORS:
            raise InputError(f"the phantom holds 1-{MAX_TUMORS} tumours, got {len(tumors)}")
        if any(not isinstance(t, TumorSpec) for t in tumors):
            raise InputError("tumors must be TumorSpec instances")
        object.__setattr__(self, "tumors", tumors)
        lo_seed, hi_seed = SEED_RANGE
        if (
            isinstance(self.seed, bool)
            or int(self.seed) != self.seed
            or not lo_seed <= self.seed <= hi_seed
        ):
            raise InputError(f"--seed must be an integer {lo_seed}-{hi_seed}, got {self.seed}")
        if not np.isfinite(self.noise_hu) or not 0 <= self.noise_hu <= 100:
            raise InputError(f"noise_hu must be 0-100 HU, got {self.noise_hu}")
        organ = check_organ(self.organ)
        object.__setattr__(self, "organ", organ)
        side_given = self.side is not None
        site, side = check_site(organ, self.site, self.side)
        if side_given and organ in ("lung", "kidney", "bone") and all(
            t.centre_mm is not None for t in tumors
        ):  # there the side only places the tumour (the soft-tissue phantom's limb is built on it)
            raise InputError(
                "--side places the tumour at its --site; every tumour has a --tumor-centre-mm, "
                "so it would have no effect: leave it out"
            )
        object.__setattr__(self, "site", site)
        object.__setattr__(self, "side", side)
        if organ != "liver" and sum(t.centre_mm is None for t in tumors) > 1:
            raise InputError(
                f"the {organ} phantom places one tumour at its --site; give a "
                "--tumor-centre-mm for each other tumour"
            )
        coarsest = max(self.spacing_mm)
        for t in tumors:
            if t.diameter_mm < 2.0 * coarsest:
                raise InputError(
                    f"--tumor-diameter-mm {t.diameter_mm:g} is under two voxels at "
                    f"--spacing-mm {coarsest:g}; use a finer --spacing-mm or a larger tumour"
                )
        check_collection(
            self.collection_mm, self.collection_site, self.collection_content, self.spacing_mm
        )
        if self.necrosis_mm is not None:
            d = tumors[0].diameter_mm
            if not (np.isfinite(self.necrosis_mm) and 2 * coarsest <= self.necrosis_mm <= 0.8 * d):
                raise InputError(
                    f"--necrosis-mm must be two voxels ({2 * coarsest:g} mm) to 0.8 x the first "
                    f"tumour's diameter ({0.8 * d:g} mm), got {self.necrosis_mm:g}"
                )
        self._check_arteries()

    def _check_arteries(self) -> None:
        if self.artery_variant is not None and self.artery_variant not in ARTERY_VARIANTS:
            raise InputError(
                f"artery variant must be one of {', '.join(ARTERY_VARIANTS)}, "
                f"got {self.artery_variant!r}"
            )
        wanted = bool(self.arterial_tree) or self.artery_variant is not None
        if wanted and self.organ != "liver":
            raise InputError("the arterial tree (artery variant) is a liver phantom option")
        object.__setattr__(self, "arterial_tree", wanted)

    def resolved_artery_variant(self) -> str | None:
        """The arterial variant the phantom draws (None without ``arterial_tree``)."""
        if not self.arterial_tree:
            return None
        return self.artery_variant or artery_variant_for_seed(self.seed)

    def resolved_tumors(self) -> tuple[TumorSpec, ...]:
        """The tumours with default centres filled in (organ phantoms: in the generator)."""
        if self.organ != "liver":
            return self.tumors
        out = []
        defaults = iter(DEFAULT_TUMOR_CENTRES_MM)
        for t in self.tumors:
            if t.centre_mm is None:
                c = next(defaults, None)
                if c is None:
                    raise InputError(
                        f"{len(self.tumors)} tumours but {len(DEFAULT_TUMOR_CENTRES_MM)} built-in "
                        "sites: give a --tumor-centre-mm for each tumour (tumour centre_mm)"
                    )
                t = TumorSpec(t.diameter_mm, c, t.irregularity, t.histology)
            out.append(t)
        return tuple(out)


@dataclass(frozen=True, eq=False)
class Phantom:
    """A generated phantom: CT image (HU), label map, tumours and vessel centrelines.

    ``airways`` holds the bronchial tree's centrelines (lung phantom; empty otherwise).
    """

    image: Volume
    labels: Volume
    tumors: tuple[TumorSpec, ...]
    vessels: tuple[VesselSegment, ...]
    config: PhantomConfig = field(repr=False)
    airways: tuple[VesselSegment, ...] = ()
    extras: PhantomExtras = field(default_factory=PhantomExtras)


def _with_extras(ph: Phantom) -> Phantom:
    """``ph`` with the configured necrotic centre and fluid collection (issue 22)."""
    cfg = ph.config
    if cfg.necrosis_mm is None and cfg.collection_mm is None:
        return ph  # unchanged, voxel for voxel
    sp = Space.of(ph.labels.grid)
    labels, image = np.asarray(ph.labels.array), np.asarray(ph.image.array)
    necrosis_ml, centre, collection_ml = 0.0, None, 0.0
    if cfg.necrosis_mm is not None:
        t = ph.tumors[0]
        image, necrosis_ml = add_necrosis(
            labels, image, sp, centre_mm=t.centre_mm, tumour_diameter_mm=t.diameter_mm,
            necrosis_mm=cfg.necrosis_mm,
        )  # fmt: skip
    if cfg.collection_mm is not None:
        labels, image, centre, collection_ml = add_collection(
            labels, image, sp, size_mm=cfg.collection_mm, site=cfg.collection_site,
            content=cfg.collection_content, seed=cfg.seed,
        )  # fmt: skip
    extras = PhantomExtras(centre, collection_ml, necrosis_ml)
    g = ph.labels.grid
    return Phantom(
        Volume(image, g), Volume(labels, g), ph.tumors, ph.vessels, cfg, ph.airways, extras
    )


def phantom_grid(spacing_mm: Sequence[float]) -> Grid:
    """The axis-aligned grid of the phantom's field of view at ``spacing_mm`` ``(z, y, x)``."""
    shape = tuple(max(8, round(f / s)) for f, s in zip(FOV_MM, spacing_mm, strict=True))
    extent = [n * s for n, s in zip(shape, spacing_mm, strict=True)]
    origin_z = Z_RANGE_MM[0] + 0.5 * spacing_mm[0]
    origin_y = -extent[1] / 2 + 0.5 * spacing_mm[1]
    origin_x = -extent[2] / 2 + 0.5 * spacing_mm[2]
    return Grid(shape, tuple(spacing_mm), (origin_x, origin_y, origin_z))


#: Names of the steps :func:`generate_phantom` reports to ``progress``, in order.
PHANTOM_STEPS = (
    "body wall",
    "spine and muscles",
    "ribs",
    "lungs, heart, diaphragm",
    "aorta and IVC",
    "abdominal organs",
    "liver",
    "vessel trees",
    "tumours",
    "CT image",
)

#: Peak memory of :func:`generate_phantom` per voxel of its grid, in bytes: tracemalloc
#: measured 99.6-99.8 bytes per voxel at 2, 3 and 4 mm (before and after the split into
#: steps); 20 % more covers the allocator and the interpreter.
PHANTOM_BYTES_PER_VOXEL = 120


def check_phantom_memory(spacing_mm: float | Sequence[float]) -> Grid:
    """The phantom's grid at ``spacing_mm``; refuse it if the machine lacks the memory.

    Raises
    ------
    ioplan.errors.InputError
        The estimated peak (:data:`PHANTOM_BYTES_PER_VOXEL` per voxel) exceeds what
        :func:`ioplan.resources.check_memory` allows.
    """
    sp = tuple(float(s) for s in np.broadcast_to(np.asarray(spacing_mm, float), (3,)))
    grid = phantom_grid(sp)
    nz, ny, nx = grid.shape
    check_memory(
        float(nz) * ny * nx * PHANTOM_BYTES_PER_VOXEL,
        f"the phantom at {max(sp):g} mm ({nx} x {ny} x {nz} voxels)",
        hint="use a coarser --spacing-mm",
    )
    return grid


def generate_phantom(
    config: PhantomConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> Phantom:
    """Generate a synthetic CT and its label map: abdomen, chest or retroperitoneum.

    The liver's is the abdomen; the lung's the chest; the kidney's and the bone's the
    retroperitoneum and lumbar spine.

    ``config.organ`` other than ``"liver"`` builds the organ's phantom
    (:mod:`ioplan.anatomy._phantom_lung`, :mod:`ioplan.anatomy._phantom_abdomen`,
    ten steps of :data:`~ioplan.anatomy.ORGAN_STEPS`) with one tumour at
    ``config.site`` on ``config.side``; what follows describes the liver's.

    The anatomy is built in ten named steps (:data:`PHANTOM_STEPS`, functions of
    :mod:`ioplan.anatomy._steps`): body wall, spine, ribs, thorax, great vessels,
    abdominal organs, liver, vessel trees, tumours, CT image. Each is a function of
    arrays on the grid; the random generator seeded by ``config.seed`` is passed to
    them in that order, so the same configuration gives the same voxels.

    Parameters
    ----------
    config : PhantomConfig, optional
        Spacing (mm, 0.5-5), seed, tumours (1-8), image noise (HU). Default: 1 mm,
        seed 0, one 30 mm HCC at the first default site.
    progress : callable, optional
        Called with the name of each step as it starts (for progress bars).

    Returns
    -------
    Phantom
        CT image (int16 HU) and label map (uint8, :class:`~ioplan.anatomy.Label`
        values) on an axis-aligned LPS grid of shape ``(z, y, x)`` covering
        :data:`FOV_MM` (180 x 260 x 340 mm), the tumours with their centres, and
        the vessel centrelines.

    Raises
    ------
    ioplan.errors.InputError
        A tumour centre outside the liver, or a grid that does not fit in memory
        (checked before anything is allocated).

    See Also
    --------
    ioplan.anatomy.save_case : write it as a case folder (with ``Case.from_phantom``).

    Notes
    -----
    Coordinates are patient LPS mm (+x left, +y posterior, +z superior); the body
    midline is x = 0 and z = 0 is about the level of the liver hilum. CT values are
    typical portal venous phase attenuations (:data:`~ioplan.anatomy.LABEL_INFO`);
    the image is blurred by a Gaussian of 0.6 mm sigma (partial volume) and carries
    smooth Gaussian noise of ``config.noise_hu`` standard deviation inside the body.

    Examples
    --------
    >>> ph = generate_phantom(PhantomConfig(spacing_mm=4.0, noise_hu=0.0))
    >>> ph.labels.grid.shape  # (z, y, x): 180 x 260 x 340 mm at 4 mm
    (45, 65, 85)
    >>> int((ph.labels.array == Label.TUMOR).sum()) > 0
    True
    """
    cfg = config if config is not None else PhantomConfig()
    if cfg.organ != "liver":
        check_phantom_memory(cfg.spacing_mm)
        return _with_extras(generate_organ_phantom(cfg, progress))
    report = progress or (lambda _name: None)
    tumors = cfg.resolved_tumors()
    grid = check_phantom_memory(cfg.spacing_mm)
    rng = np.random.default_rng(cfg.seed)
    sp = Space.of(grid)
    anat = Anatomy(rng)
    names = iter(PHANTOM_STEPS)
    labels = np.zeros(grid.shape, np.uint8)

    report(next(names))
    wall, layers = steps.body_wall(anat, sp)
    labels = steps.paint(labels, layers)
    report(next(names))
    labels = steps.paint(labels, steps.spine_and_muscles(sp, wall, anat.SKIN_MM))
    report(next(names))
    labels = steps.paint(labels, steps.ribs(sp, wall, anat.SKIN_MM, anat.MUSCLE_MM))
    report(next(names))
    cavity = wall.cavity
    abdominal, layers = steps.thorax(anat, sp, cavity)
    labels = steps.paint(labels, layers)
    report(next(names))
    aorta, ivc = steps.great_vessels(sp)
    ivc_in_body = ivc & cavity
    del layers, ivc, cavity
    report(next(names))
    organs = steps.abdominal_organs(sp, rng)
    labels = steps.paint(labels, organs.layers(abdominal))
    report(next(names))
    liver, keep_out = steps.liver(anat, sp, organs, abdominal, wall)
    gallbladder = organs.gallbladder & abdominal & ~keep_out
    del organs, keep_out, wall, abdominal
    labels = steps.paint(
        labels,
        [
            (liver, Label.LIVER),
            (gallbladder, Label.GALLBLADDER),
            (aorta, Label.AORTA),
            (ivc_in_body, Label.IVC),
        ],
    )
    del gallbladder, aorta
    report(next(names))
    trees = steps.vessel_trees(liver, grid, rng)
    if cfg.arterial_tree:
        gb = np.argwhere(labels == Label.GALLBLADDER)
        gb_mm = grid.index_to_lps(gb.mean(axis=0)) if len(gb) else np.array([-30.0, -55.0, -25.0])
        artery = hepatic_artery_tree(
            trees.portal, gallbladder_mm=gb_mm, variant=cfg.resolved_artery_variant()
        )
        trees = dataclasses.replace(trees, artery=tuple(artery))
    labels = steps.paint_vessels(labels, trees, grid, ivc_in_body)
    if cfg.arterial_tree:
        # thin arteries drawn at least half a voxel diagonal wide, so that the label stays
        # connected (every voxel holding a point of the centreline is painted)
        rasterise_segments(
            labels, Label.HEPATIC_ARTERY, list(trees.artery), grid.lps_to_index,
            grid.index_to_lps, grid.spacing_mm, allowed=np.isin(labels, [Label.LIVER, Label.FAT]),
            min_radius_mm=0.5 * float(np.linalg.norm(grid.spacing_mm)),
        )  # fmt: skip
    report(next(names))
    labels, rim = steps.tumours(labels, liver, tumors, sp, rng)
    report(next(names))
    image = steps.synthesise_ct(labels, grid, rim, cfg.noise_hu, rng)
    return _with_extras(Phantom(Volume(image, grid), Volume(labels, grid), tumors, trees.all, cfg))
