"""Benchmark of ablation confirmation: `ioplan margin` with rigid registration.

On a 512 x 512 x 200 CT-sized case (the issue's goal: < 10 s on the 2-core machine).

The ioplan phantom's abdomen resampled to that grid (about 0.8 x 0.8 mm in-plane): the
post image is the pre image moved by a known rigid transform (registration must find its
inverse); the tumour (28 mm) is drawn on the pre image, the ablation zone (45 x 40 mm) on
the post image, the liver on the post image. Times each
step of the library calls the command makes, and checks the registration against the
known motion. Prints a table and writes bench/results/margin.json.

Usage: python bench/margin.py [--shape 200 512 512] [--out bench/results/margin.json]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import SimpleITK as sitk
from _results import machine, write_result

from ioplan.assessment import measure_margin
from ioplan.assessment._register import register_images, warp
from ioplan.imaging import Grid, Volume, from_sitk, to_sitk


def synthetic(shape):
    """The ioplan phantom (2 mm) resampled onto a CT-sized grid over the same extent."""
    from ioplan.anatomy import Label, PhantomConfig, generate_phantom
    from ioplan.imaging import resample

    ph = generate_phantom(PhantomConfig(spacing_mm=2.0, seed=0))
    src = ph.image.grid
    extent = np.asarray(src.shape) * np.asarray(src.spacing_mm)
    sp = tuple(float(e / n) for e, n in zip(extent, shape, strict=True))
    origin = src.index_to_lps([-0.5 + 0.5 * s / s0 for s, s0 in zip(sp, src.spacing_mm,
                                                                    strict=True)])  # fmt: skip
    g = Grid(tuple(shape), sp, tuple(origin), src.direction)
    img = np.asarray(resample(ph.image, g, interpolation="linear").array, np.float32)
    lab = np.asarray(resample(ph.labels, g, interpolation="nearest").array)
    liver = np.isin(lab, [int(Label.LIVER), int(Label.TUMOR)])
    centre = g.index_to_lps(np.argwhere(lab == int(Label.TUMOR)).mean(axis=0))
    return g, img, liver, centre


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", nargs=3, type=int, default=[200, 512, 512])
    ap.add_argument("--out", default="bench/results/margin.json")
    args = ap.parse_args()
    g, img, liver, centre = synthetic(args.shape)
    pre = Volume(img, g)
    true = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.02, -0.03, 0.025, (3.0, -2.0, 4.0))
    post_img = sitk.Resample(to_sitk(pre), to_sitk(pre), true.GetInverse(), sitk.sitkLinear, -1000)
    post = Volume(np.asarray(from_sitk(post_img).array, np.float32), g)
    z, y, x = g.axis_coordinates_mm()
    zz, yy, xx = z[:, None, None], y[None, :, None], x[None, None, :]
    cx, cy, cz = centre
    tumour = Volume(
        ((xx - cx) ** 2 + (yy - cy) ** 2 + (zz - cz) ** 2 <= 14.0**2).astype(np.uint8), g
    )
    # the zone on the post image: around where the tumour moved to
    # post(x) = pre(true^-1(x)): a pre point p shows at true(p) on the post image
    c = np.array(true.TransformPoint(tuple(float(v) for v in centre)))
    zone = Volume(
        (((xx - c[0]) / 22.5) ** 2 + ((yy - c[1]) / 20) ** 2 + ((zz - c[2]) / 20) ** 2 <= 1)
        .astype(np.uint8), g,
    )  # fmt: skip
    moved = sitk.Resample(
        to_sitk(Volume(liver.astype(np.uint8), g)), to_sitk(pre), true.GetInverse(),
        sitk.sitkNearestNeighbor, 0,
    )  # fmt: skip
    liver_post = Volume(np.asarray(from_sitk(moved).array), g)
    t0 = time.perf_counter()
    reg = register_images(post, pre, liver_post=liver_post)
    t1 = time.perf_counter()
    tum_post = warp(tumour, reg, post)
    t2 = time.perf_counter()
    res = measure_margin(tum_post, zone, liver=liver_post)
    t3 = time.perf_counter()
    pts = np.random.default_rng(0).uniform(-60, 60, (50, 3))
    err = max(
        np.linalg.norm(np.array(reg.transform.TransformPoint(p.tolist()))
                       - np.array(true.GetInverse().TransformPoint(p.tolist())))
        for p in pts
    )  # fmt: skip
    rows = {"register_rigid_s": t1 - t0, "warp_tumour_s": t2 - t1, "margin_s": t3 - t2,
            "total_s": t3 - t0}  # fmt: skip
    result = {
        "machine": machine(),
        "shape": args.shape,
        "spacing_mm": list(g.spacing_mm),
        "timings": rows,
        "goal_total_s": 10.0,
        "registration_max_error_mm": float(err),
        "minimal_margin_mm": res.minimal_margin_mm,
    }
    print(f"{'step':>18} {'seconds':>8}")
    for k, v in rows.items():
        print(f"{k:>18} {v:>8.2f}")
    print(f"registration error vs the known motion: max {err:.2f} mm over 50 points")
    print(f"minimal margin {res.minimal_margin_mm:.2f} mm (goal total < 10 s)")
    write_result(result, args.out)


if __name__ == "__main__":
    main()
