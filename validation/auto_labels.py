"""Measure the automatic labels (``ioplan.anatomy.auto_labels``) against independent references.

Cases: the synthetic phantom (its label map and vessel centrelines, painted before the CT is
synthesised) at the given spacings; the real chest CT (``pyradiomics/lung1``: HU counts
computed here, the hand-labelled tumour); the real non-contrast abdominal CT with
TotalSegmentator's labels (``totalsegmentator/example_ct_sm``; class ids of
``class_map["total"]`` in TotalSegmentator's ``map_to_binary.py``). Real data is read in place
from ``../shared/data/real`` and skipped when absent.

Usage::

    python validation/auto_labels.py                     # phantom at 2 mm, real CTs
    python validation/auto_labels.py --spacing 2 1.5 --json auto_labels.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ioplan.anatomy import Label, PhantomConfig, auto_labels, generate_phantom
from ioplan.imaging import read_image

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"
TREES = ("portal", "hepatic_right", "hepatic_middle", "hepatic_left")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(1, a.sum() + b.sum()))


def _frac(a: np.ndarray, of: np.ndarray) -> float:
    return float(np.count_nonzero(a & of) / max(1, of.sum()))


def _nearest_radius(points_mm: np.ndarray, segments) -> np.ndarray:
    best = np.full(len(points_mm), np.inf)
    radius = np.zeros(len(points_mm))
    for s in segments:
        p0, p1 = np.asarray(s.start_mm), np.asarray(s.end_mm)
        v = p1 - p0
        t = np.clip(((points_mm - p0) @ v) / (v @ v), 0.0, 1.0)
        d = np.linalg.norm(points_mm - (p0 + t[:, None] * v), axis=1)
        closer = d < best
        best[closer], radius[closer] = d[closer], s.radius_mm
    return radius


def phantom(spacing: float) -> dict:
    """Vessels (labels given without them), body, lung and bone of the phantom."""
    ph = generate_phantom(PhantomConfig(spacing_mm=spacing))
    lb = ph.labels.array
    vessels = (Label.PORTAL_VEIN, Label.HEPATIC_VEIN)
    liver = np.isin(lb, [Label.LIVER, *vessels, Label.HEPATIC_ARTERY, Label.BILE_DUCT])
    given = lb.copy()
    given[liver] = Label.LIVER
    t0 = time.perf_counter()
    out = auto_labels(ph.image, labels=given)
    t_vessels = time.perf_counter() - t0
    found = out.labels.array == Label.PORTAL_VEIN
    truth = np.isin(lb, vessels)
    grid = ph.image.grid
    segs = [s for s in ph.vessels if s.tree in TREES]
    idx = np.argwhere(truth)
    r_true = _nearest_radius(grid.index_to_lps(idx), segs)
    hit = found[tuple(idx.T)]
    fidx = np.argwhere(found & truth)
    r_seg = _nearest_radius(grid.index_to_lps(fidx), segs)
    err = out.vessel_radius_mm.array[tuple(fidx.T)] - r_seg
    row = {
        "case": f"phantom {spacing:g} mm",
        "vessel_dice": _dice(found, truth),
        "vessel_precision": float((found & truth).sum() / max(1, found.sum())),
        "seconds_with_vessels": t_vessels,
    }
    for lo, hi in ((1, 2), (2, 3), (3, 5), (5, 9)):
        m = (r_true >= lo) & (r_true < hi)
        row[f"vessel_sensitivity_r{lo}-{hi}mm"] = float(hit[m].mean()) if m.any() else None
        m = (r_seg >= lo) & (r_seg < hi)
        row[f"radius_median_error_mm_r{lo}-{hi}mm"] = float(np.median(err[m])) if m.any() else None
    t0 = time.perf_counter()
    bare = auto_labels(ph.image, contrast=False)
    row["seconds_no_labels"] = time.perf_counter() - t0
    bl = bare.labels.array
    row["body_dice"] = _dice(bare.body.array, lb != Label.BACKGROUND)
    row["lung_dice"] = _dice(bl == Label.LUNG, lb == Label.LUNG)
    row["bone_dice"] = _dice(bl == Label.RIB, np.isin(lb, [Label.RIB, Label.VERTEBRA]))
    return row


def chest() -> dict | None:
    """The real chest CT against HU counts and its tumour label."""
    path = REAL / "pyradiomics" / "lung1_image.nrrd"
    if not path.exists():
        return None
    image = read_image(path)
    hu = image.array
    t0 = time.perf_counter()
    out = auto_labels(image)
    sec = time.perf_counter() - t0
    lab, _ = ndi.label(hu > -500)
    big = lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1
    body = np.stack([ndi.binary_fill_holes(s) for s in big])
    low = body & (hu < -400)
    lung = out.labels.array == Label.LUNG
    air = out.labels.array == out.classes.get("airway", -1)
    bone = out.labels.array == Label.RIB
    tumour = read_image(REAL / "pyradiomics" / "lung1_label.nrrd").array > 0
    return {
        "case": "real chest CT (lung1)",
        "seconds": sec,
        "body_voxels_vs_reference": float(out.body.array.sum() / body.sum()),
        "lung_airway_over_low_hu": float((lung | air).sum() / low.sum()),
        "low_hu_covered": _frac(lung | air, low),
        "airway_ml": out.volume_ml("airway"),
        "lung_ml": out.volume_ml("lung"),
        "bone_over_hu200": float(bone.sum() / (body & (hu > 200)).sum()),
        "tumour_in_lung": _frac(lung, tumour),
        "notes": list(out.notes),
    }


def abdomen() -> dict | None:
    """The real non-contrast abdominal CT against TotalSegmentator's labels."""
    path = REAL / "totalsegmentator" / "example_ct_sm.nii.gz"
    if not path.exists():
        return None
    image = read_image(path)
    seg = read_image(REAL / "totalsegmentator" / "example_seg.nii.gz").array
    given = np.where(seg == 5, int(Label.LIVER), 0).astype(np.uint8)
    t0 = time.perf_counter()
    out = auto_labels(image, labels=given)
    sec = time.perf_counter() - t0
    ts_bone = np.isin(seg, [*range(25, 51), *range(92, 117)])
    bone = out.labels.array == Label.RIB
    dense = ts_bone & (image.array > 200)
    ts_lung = np.isin(seg, range(10, 15))
    return {
        "case": "real abdominal CT (TotalSegmentator example, non-contrast)",
        "seconds": sec,
        "contrast": out.contrast,
        "contrast_reason": out.contrast_reason,
        "vessel_voxels": int(np.count_nonzero(out.labels.array == Label.PORTAL_VEIN)),
        "bone_precision_vs_ts": float((bone & ts_bone).sum() / max(1, bone.sum())),
        "bone_sensitivity_vs_ts": _frac(bone, ts_bone),
        "bone_sensitivity_vs_ts_over_200hu": _frac(bone, dense),
        "lung_dice_vs_ts": _dice(out.labels.array == Label.LUNG, ts_lung),
        "ts_in_body": _frac(out.body.array, seg > 0),
    }


def main() -> None:
    """Run the cases, print a table, optionally write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spacing", type=float, nargs="*", default=[2.0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = [phantom(s) for s in args.spacing]
    rows += [r for r in (chest(), abdomen()) if r is not None]
    for row in rows:
        print(row["case"])
        for k, v in row.items():
            if k != "case":
                shown = f"{v:.3f}" if isinstance(v, float) else v
                print(f"  {k:40s} {shown}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
