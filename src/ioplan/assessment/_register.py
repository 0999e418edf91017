"""Registration of the pre-procedure image to the post-procedure image (SimpleITK).

Stages: rigid (Euler 3D), then affine, then deformable (B-spline), each starting from the
last. The metric (Mattes mutual information, so CT to CT or CT to MR both work) is
restricted to the liver mask on the post image (widened by 10 mm) when one is given; in the
deformable stage
the ablation zone is left out of that mask, so that the deformation cannot stretch the
tumour into the zone. Paired landmarks give a rigid transform directly (least squares),
for when image registration fails.

Quality: the target registration error of held-out landmarks when given, else the liver
surface distance when both livers are given, else only the final metric. A warning is
raised when the error exceeds half the margin being measured: beyond that the margin's
class (0-5, 5-10 mm) can no longer be trusted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from ioplan.errors import InputError
from ioplan.imaging import Volume, from_sitk, resample, to_sitk

__all__ = [
    "STAGES",
    "Registration",
    "parse_stages",
    "register_images",
    "register_landmarks",
    "warp",
]

STAGES = ("rigid", "affine", "bspline")


@dataclass(frozen=True)
class Registration:
    """A pre -> post registration (maps post points to pre points, as SimpleITK does)."""

    method: str
    stages: tuple[str, ...]
    metric: float | None
    landmark_error_mm: float | None
    surface_distance_mm: float | None
    warnings: tuple[str, ...]
    runtime_s: float
    transform: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The ``registration`` object of the margin JSON."""
        return {
            "performed": True,
            "method": self.method,
            "stages": list(self.stages),
            "metric_mattes_mi": None if self.metric is None else round(self.metric, 5),
            "landmark_error_mm": _r(self.landmark_error_mm),
            "liver_surface_distance_mm": _r(self.surface_distance_mm),
            "warnings": list(self.warnings),
            "runtime_s": round(self.runtime_s, 3),
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 3)


def _method(mask: sitk.Image | None, shrink: tuple[int, ...]) -> sitk.ImageRegistrationMethod:
    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    r.SetMetricSamplingStrategy(r.RANDOM)
    r.SetMetricSamplingPercentage(0.1, seed=1)
    if mask is not None:
        r.SetMetricFixedMask(mask)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetShrinkFactorsPerLevel(list(shrink))
    r.SetSmoothingSigmasPerLevel([max(0, s - 1) for s in shrink])
    r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return r


#: Largest voxel (mm) of the registration pyramid's coarsest level.
COARSEST_LEVEL_MM = 6.0
#: Spacing of the B-spline control points (mm).
BSPLINE_NODE_MM = 50.0
#: Registration runs on copies resampled to cubic voxels holding about this many voxels
#: (512 x 512 x 200 CT: about 2.5 mm), smoothed first against aliasing; the transform is
#: in patient mm, so it applies to the full-resolution images unchanged.
WORKING_VOXELS = 2.0e6


def _working(img: sitk.Image) -> sitk.Image:
    size = np.array(img.GetSize(), float)
    sp = np.array(img.GetSpacing(), float)
    w = max(float(sp.min()), float((np.prod(size * sp) / WORKING_VOXELS) ** (1 / 3)))
    if w <= 1.05 * float(sp.max()):
        return img
    sm = sitk.SmoothingRecursiveGaussian(img, [0.5 * w] * 3)
    new_size = [max(1, round(n * s / w)) for n, s in zip(size, sp, strict=True)]
    return sitk.Resample(
        sm, new_size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), [w] * 3,
        img.GetDirection(), float(np.min(sitk.GetArrayViewFromImage(img))), sitk.sitkFloat32,
    )  # fmt: skip


#: The liver mask is widened by this much (mm) for the metric: the liver's own edge is the
#: strongest feature a rigid fit has, and a mask that stops at it leaves half of it out.
MASK_DILATION_MM = 10.0


def _mask_on(mask: np.ndarray, like: Volume, ref: sitk.Image,
             exclude: np.ndarray | None = None) -> sitk.Image:  # fmt: skip
    """``mask`` on the working grid, widened; ``exclude`` (e.g. the zone) cut out after."""

    def on_ref(a: np.ndarray) -> sitk.Image:
        m = to_sitk(Volume(a.astype(np.uint8), like.grid))
        return sitk.Resample(m, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)

    r = [max(1, round(MASK_DILATION_MM / s)) for s in ref.GetSpacing()]
    m = sitk.BinaryDilate(on_ref(mask), r)
    if exclude is not None:
        m = sitk.And(m, sitk.Not(on_ref(exclude)))
    return m


def parse_stages(stages: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Registration stages from ``"rigid,affine"`` or a sequence; unknown names refused.

    >>> parse_stages("rigid, affine")
    ('rigid', 'affine')
    """
    names = stages.split(",") if isinstance(stages, str) else list(stages)
    out = tuple(str(x).strip().lower() for x in names if str(x).strip())
    bad = [x for x in out if x not in STAGES]
    if bad or not out:
        raise InputError(
            f"--registration: unknown stage {', '.join(map(repr, bad)) or 'list (empty)'} in "
            f"{stages!r}; stages are {', '.join(STAGES)} (e.g. rigid,affine,bspline)"
        )
    return out


def register_images(
    post: Volume,
    pre: Volume,
    *,
    liver_post: Volume | None = None,
    zone_post: Volume | None = None,
    stages: tuple[str, ...] = ("rigid",),
    liver_pre: Volume | None = None,
    margin_mm: float = 5.0,
) -> Registration:
    """Register ``pre`` onto ``post`` through ``stages`` (see the module doc)."""
    t0 = time.perf_counter()
    stages = parse_stages(stages)
    if not post.grid.overlaps(pre.grid):
        raise InputError("the pre- and post-procedure images do not overlap in space")
    fixed = _working(sitk.Cast(to_sitk(post), sitk.sitkFloat32))
    moving = _working(sitk.Cast(to_sitk(pre), sitk.sitkFloat32))
    mask = None
    if liver_post is not None:
        lm = np.asarray(liver_post.array) > 0
        if not lm.any():
            raise InputError("the liver mask is empty")
        mask = _mask_on(lm, liver_post, fixed)
    tx: sitk.Transform = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    metric = None
    # pyramid levels whose voxels stay below 6 mm: coarser ones blur away the liver's
    # vessels and lesions, and a fit that starts there can wander off
    w = float(min(fixed.GetSpacing()))
    levels = tuple(k for k in (4, 2, 1) if k * w <= COARSEST_LEVEL_MM) or (1,)
    for stage in stages:
        if stage in ("rigid", "affine"):
            r = _method(mask, levels)
            r.SetOptimizerAsRegularStepGradientDescent(
                learningRate=1.0, minStep=1e-4, numberOfIterations=200,
                gradientMagnitudeTolerance=1e-6,
            )  # fmt: skip
            r.SetOptimizerScalesFromPhysicalShift()
            if stage == "affine":
                aff = sitk.AffineTransform(3)
                aff.SetMatrix(tx.GetMatrix())
                aff.SetTranslation(tx.GetTranslation())
                aff.SetCenter(tx.GetCenter())
                tx = aff
            r.SetInitialTransform(tx, inPlace=True)
        else:
            dmask = mask
            if zone_post is not None and mask is not None:
                zv = zone_post
                if zv.grid != liver_post.grid:  # type: ignore[union-attr]
                    zv = resample(zv, liver_post.grid, interpolation="nearest")  # type: ignore[union-attr]
                zm = np.asarray(zv.array) > 0
                lm = np.asarray(liver_post.array) > 0  # type: ignore[union-attr]
                dmask = _mask_on(lm, liver_post, fixed, exclude=zm)  # type: ignore[arg-type]
            r = _method(dmask, levels[-2:])
            # control points every ~50 mm: liver motion between scans is smooth, and a
            # finer grid fits image noise (tested: 6 nodes over 100 mm moved 3-4 mm wrong)
            size_mm = np.array(fixed.GetSize()) * np.array(fixed.GetSpacing())
            mesh = [max(1, round(v / BSPLINE_NODE_MM)) for v in size_mm]
            bs = sitk.BSplineTransformInitializer(fixed, mesh)
            r.SetOptimizerAsLBFGSB(numberOfIterations=50, gradientConvergenceTolerance=1e-5)
            comp = sitk.CompositeTransform([tx, bs])
            r.SetInitialTransform(comp, inPlace=True)
            r.SetMovingInitialTransform(sitk.Transform())
            tx = comp
        r.Execute(fixed, moving)
        metric = float(r.GetMetricValue())
    warnings: list[str] = []
    sd = None
    if liver_pre is not None and liver_post is not None:
        sd = _surface_distance(liver_post, liver_pre, tx)
        if sd > 0.5 * margin_mm:
            warnings.append(
                f"poor registration: the livers' mean surface distance is {sd:.1f} mm, more "
                f"than half the {margin_mm:g} mm margin; check it or use landmarks"
            )
    if not np.isfinite(metric or 0.0):
        warnings.append("registration metric is not finite: the registration failed")
    return Registration(
        method="image (Mattes MI)" + (" in the liver mask" if mask is not None else ""),
        stages=tuple(stages),
        metric=metric,
        landmark_error_mm=None,
        surface_distance_mm=sd,
        warnings=tuple(warnings),
        runtime_s=time.perf_counter() - t0,
        transform=tx,
    )


#: Least RMS distance (mm) of the landmarks from their best-fitting line: below it the
#: rotation about that line is not determined (coincident or collinear points), and the
#: least-squares fit returns an arbitrary one. 1 mm: a fraction of the usual 1-3 mm
#: CT/MR voxel, far below the tens of mm between landmarks spread over a liver.
MIN_LANDMARK_SPREAD_MM = 1.0


def _spread_off_line_mm(points: np.ndarray) -> float:
    """RMS distance (mm) of ``points`` from their best-fitting line (0: on one line)."""
    centred = points - points.mean(axis=0)
    sv = np.linalg.svd(centred, compute_uv=False)
    return float(np.sqrt(np.sum(sv[1:] ** 2) / len(points)))


def register_landmarks(
    post_points_mm: np.ndarray, pre_points_mm: np.ndarray, *, margin_mm: float = 5.0
) -> Registration:
    """Rigid transform from paired landmarks (LPS mm), least squares; error by leave-one-out."""
    t0 = time.perf_counter()
    a = np.asarray(post_points_mm, float)
    b = np.asarray(pre_points_mm, float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3:
        raise InputError("landmarks must be two equal lists of x,y,z points")
    if len(a) < 3:
        raise InputError(f"landmark registration needs at least 3 pairs, got {len(a)}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise InputError("landmarks hold NaN or infinite values")
    for pts, which in ((b, "pre"), (a, "post")):
        spread = _spread_off_line_mm(pts)
        if spread < MIN_LANDMARK_SPREAD_MM:
            raise InputError(
                f"the {which} landmarks are coincident or on one line (RMS distance from their "
                f"best line {spread:.2g} mm, need >= {MIN_LANDMARK_SPREAD_MM:g} mm): a rigid "
                "registration is then not determined; mark points that span a triangle"
            )

    def fit(p, q):
        return sitk.LandmarkBasedTransformInitializer(
            sitk.VersorRigid3DTransform(), p.ravel().tolist(), q.ravel().tolist()
        )

    tx = fit(a, b)
    errs = []
    if len(a) >= 4:
        for i in range(len(a)):
            m = np.arange(len(a)) != i
            t_i = fit(a[m], b[m])
            errs.append(np.linalg.norm(np.array(t_i.TransformPoint(a[i].tolist())) - b[i]))
    tre = float(np.mean(errs)) if errs else None
    warnings = []
    if tre is not None and tre > 0.5 * margin_mm:
        warnings.append(
            f"poor registration: leave-one-out landmark error {tre:.1f} mm is more than half "
            f"the {margin_mm:g} mm margin"
        )
    return Registration(
        method="landmarks (rigid, least squares)",
        stages=("rigid",),
        metric=None,
        landmark_error_mm=tre,
        surface_distance_mm=None,
        warnings=tuple(warnings),
        runtime_s=time.perf_counter() - t0,
        transform=tx,
    )


def warp(pre_mask: Volume, reg: Registration, post: Volume) -> Volume:
    """A pre-image mask on the post grid, as a fraction (linear), for sub-voxel surfaces."""
    arr = np.asarray(pre_mask.array)
    f = arr.astype(np.float32) if np.issubdtype(arr.dtype, np.floating) else (arr > 0)
    img = to_sitk(Volume(np.asarray(f, np.float32), pre_mask.grid))
    ref = to_sitk(Volume(np.zeros(post.grid.shape, np.float32), post.grid))
    out = sitk.Resample(img, ref, reg.transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    res = from_sitk(out)
    return Volume(np.clip(np.asarray(res.array), 0.0, 1.0).astype(np.float32), post.grid)


def _surface_distance(liver_post: Volume, liver_pre: Volume, tx) -> float:
    """Mean symmetric surface distance (mm) between the post liver and the warped pre liver."""
    from scipy import ndimage

    reg = Registration("", (), None, None, None, (), 0.0, tx)
    warped = np.asarray(warp(liver_pre, reg, liver_post).array) > 0.5
    fixed = np.asarray(liver_post.array) > 0
    sp = liver_post.grid.spacing_mm

    def surf(m):
        return m & ~ndimage.binary_erosion(m)

    if not warped.any():
        return float("inf")
    d_to_fixed = ndimage.distance_transform_edt(~surf(fixed), sampling=sp)
    d_to_warped = ndimage.distance_transform_edt(~surf(warped), sampling=sp)
    return float(0.5 * (d_to_fixed[surf(warped)].mean() + d_to_warped[surf(fixed)].mean()))
