"""The perivascular part of a tumour: its surface next to large vessels (the heat sink).

Blood in a large vessel stays at body temperature and carries heat away, so the tumour
surface next to it is the hardest part to ablate. :func:`perivascular_report` measures
that part against the same vessels the thermal engine holds at blood temperature
(``ioplan.planning._metrics._large_vessel_lumen``: vessel voxels whose local radius is at
least the small-vessel radius of :func:`ioplan.tissue.blood_flow_parameters`).

Distances are voxel-based. A mask stands for the union of its voxel cubes, so the
distance from a point to a mask's boundary is taken as the Euclidean distance transform
(EDT, ``scipy.ndimage.distance_transform_edt`` with the grid spacing) to the nearest
voxel *centre* of the mask, interpolated trilinearly at the point, minus half the
smallest voxel size, clipped at 0. Points on the tumour surface are the centroids of
the faces of its marching-cubes mesh (level 0.5 of the mask padded by one voxel and
blurred by one voxel, as in :mod:`ioplan.assessment`).
The error of this definition is below one voxel.

All the work is done in the bounding box of the tumour dilated by the search reach
(``within_mm`` plus 20 mm, or twice ``margin_mm`` plus 1 mm when that is more), so that
a large CT grid costs no more than the box around the tumour. Vessels farther than that
reach from the tumour are not reported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.measure import marching_cubes, mesh_surface_area

from ioplan.anatomy import VESSEL_LABELS, Label
from ioplan.errors import InputError
from ioplan.imaging import Grid
from ioplan.planning._metrics import _large_vessel_lumen

__all__ = ["describe", "perivascular_report"]

#: How far beyond ``within_mm`` vessels are looked for (mm).
SEARCH_MM = 20.0

#: Half-width (mm) of the box around a vessel's nearest voxel where its diameter is taken.
INSCRIBED_BOX_MM = 25.0

#: How the perivascular margin to the zone is measured (recorded in the report).
MARGIN_METHOD = (
    "voxel-based: EDT of the zone (to voxel centres) interpolated trilinearly at the "
    "perivascular face centroids, minus half a voxel; negative outside the zone"
)


def _r(x: float, nd: int = 1) -> float:
    """``x`` as a plain float rounded to ``nd`` decimals."""
    return round(float(x), nd)


def _bool_on_grid(a: Any, grid: Grid, name: str) -> np.ndarray:
    """``a`` as a bool array of ``grid.shape``; raises :class:`InputError` otherwise."""
    arr = np.asarray(a)
    if arr.shape != tuple(grid.shape):
        raise InputError(f"{name} must have the grid's shape {grid.shape}, got {arr.shape}")
    return arr.astype(bool, copy=False)


def _box(tumour: np.ndarray, grid: Grid, reach_mm: float) -> tuple[slice, ...]:
    """Slices of the tumour's bounding box dilated by ``reach_mm`` (clipped to the grid)."""
    lo, hi = [], []
    for ax in range(3):
        hit = np.flatnonzero(tumour.any(axis=tuple(a for a in range(3) if a != ax)))
        lo.append(hit[0])
        hi.append(hit[-1])
    pad = np.ceil(reach_mm / np.asarray(grid.spacing_mm)).astype(int) + 1
    return tuple(
        slice(max(int(a) - int(p), 0), min(int(b) + int(p) + 1, n))
        for a, b, p, n in zip(lo, hi, pad, grid.shape, strict=True)
    )


def _edt_outside(mask: np.ndarray, sp) -> np.ndarray:
    """Distance (mm) from every voxel centre to the nearest voxel centre of ``mask``."""
    return ndimage.distance_transform_edt(~mask, sampling=sp)


def _at(field: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``field`` interpolated trilinearly at continuous indices ``pts`` ``(n, 3)``."""
    return ndimage.map_coordinates(field, pts.T, order=1, mode="nearest")


def _surface(tum: np.ndarray, sp) -> tuple[float, np.ndarray, np.ndarray]:
    """Area (mm2) of the tumour surface, its face areas (mm2) and face centroids (index).

    The surface is the 0.5 level (marching cubes) of the mask padded by one voxel and
    blurred with a Gaussian of one voxel, as :mod:`ioplan.assessment` makes its
    surfaces: on the binary staircase marching cubes overestimates a sphere's area by
    about 9 %, on the blurred mask it is within 2 % for radii of 10 voxels or more (the
    0.5 level moves inwards by ``sigma^2 / R``, a few hundredths of a millimetre).
    """
    from ioplan.assessment import SMOOTH_SIGMA_VOXELS

    padded = np.pad(tum, 1).astype(np.float32)
    blurred = ndimage.gaussian_filter(padded, SMOOTH_SIGMA_VOXELS, mode="constant")
    # a tumour a few voxels across would lose its 0.5 level to the blur: keep its voxels
    padded = blurred if float(blurred.max()) > 0.5 + 1e-3 else padded
    verts, faces, _, _ = marching_cubes(padded, level=0.5, spacing=sp)
    total = float(mesh_surface_area(verts, faces))
    tri = verts[faces]  # (n, 3 vertices, 3) in mm
    areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    centroids = tri.mean(axis=1) / np.asarray(sp) - 1.0  # index in the unpadded box
    return total, areas, centroids


def _inscribed_radius_mm(lumen: np.ndarray, p: np.ndarray, sp) -> float:
    """Radius (mm) of the largest ball inscribed in ``lumen`` that contains voxel ``p``.

    For a tube this is the tube's radius at ``p`` even when ``p`` lies on its wall: the
    ball centred on the centreline next to ``p`` reaches ``p``. The ball's centre is a
    voxel centre and its radius the EDT (mm) to the nearest non-lumen voxel centre; the
    result adds half a voxel (the centre voxel's own half-width), the convention of
    :func:`ioplan.anatomy.local_radius_mm` that decides which vessels are large. The
    centreline may pass up to half a voxel diagonal from the nearest voxel centre, so
    the radius is within about -0.2 to +0.5 voxel of the true one.
    Only the lumen within :data:`INSCRIBED_BOX_MM` of ``p`` is looked at: exact for
    diameters up to that size, larger vessels come out at about that size or less.
    """
    half_box = np.ceil(INSCRIBED_BOX_MM / np.asarray(sp)).astype(int)
    lo = np.maximum(p - half_box, 0)
    sub = tuple(slice(a, b) for a, b in zip(lo, p + half_box + 1, strict=True))
    m = lumen[sub]
    inside = ndimage.distance_transform_edt(np.pad(m, 1), sampling=sp)[1:-1, 1:-1, 1:-1]
    rad = inside[m]
    d = np.linalg.norm((np.argwhere(m) + lo - p) * np.asarray(sp), axis=1)
    ok = d < rad
    return float(rad[ok].max() if ok.any() else 0.0) + 0.5 * min(sp)


def perivascular_report(
    tumour: np.ndarray,
    labels: np.ndarray,
    grid: Grid,
    *,
    zone: np.ndarray | None = None,
    within_mm: float = 5.0,
    margin_mm: float = 5.0,
) -> dict[str, Any]:
    """How much of the tumour lies next to large vessels (the heat sink).

    Parameters
    ----------
    tumour : ndarray of bool, shape ``grid.shape``
        The tumour's voxels, array axes ``(z, y, x)``.
    labels : ndarray of int, shape ``grid.shape``
        Label map of :class:`ioplan.anatomy.Label` values on the same grid.
    grid : ioplan.imaging.Grid
        Geometry of both arrays; only ``spacing_mm`` (mm) and ``voxel_volume_ml`` are used.
    zone : ndarray of bool, shape ``grid.shape``, optional
        Ablation zone (e.g. the verified plan's). Adds the zone keys below.
    within_mm : float, default 5.0
        Tumour surface within this distance (mm) of a large-vessel wall is perivascular.
    margin_mm : float, default 5.0
        Ablative margin (mm): the tissue between tumour and vessel that must be ablated
        lies within this distance of both.

    Returns
    -------
    dict
        JSON-ready (plain floats, lists, bools):

        - ``within_mm``, ``margin_mm``, ``search_mm`` (mm): the parameters and how far
          vessels are looked for (``within_mm + 20``, or ``2 * margin_mm + 1``).
        - ``vessel_min_diameter_mm``: twice the small-vessel radius (mm); thinner vessels
          do not count.
        - ``tumour_surface_area_mm2``: marching-cubes area of the tumour surface (mm2),
          the 0.5 level of the mask blurred by one voxel (within 2 % of a sphere's).
        - ``surface_area_mm2``: the area of faces whose centroid lies within
          ``within_mm`` of a large-vessel wall (mm2); ``surface_percent`` its share (%).
        - ``minimal_distance_mm``: smallest tumour-surface-to-vessel-wall distance (mm),
          0 when touching; None when no large vessel lies within ``search_mm``.
        - ``vessels``: one dict per vessel label within ``search_mm``, nearest first:
          ``vessel`` (``Label`` name in lower case), ``diameter_mm`` (twice the radius of
          the largest inscribed ball through the lumen voxel nearest the tumour, plus
          one voxel as :func:`ioplan.anatomy.local_radius_mm` counts it),
          ``minimal_distance_mm`` and ``surface_area_mm2``.
        - ``tissue_between_ml``: volume (mL) of the voxels that are neither tumour nor
          lumen and lie within ``margin_mm`` of both the tumour and a lumen.
        - ``perivascular``: True when ``surface_area_mm2 > 0``.
        - With ``zone``: ``tissue_between_ablated_percent`` (share of that tissue in the
          zone, %; None when there is none), ``surface_covered_percent`` (area share of
          the perivascular faces whose centroid's voxel is in the zone, %),
          ``perivascular_minimal_margin_mm`` (smallest signed distance, mm, from those
          centroids to the zone's outside, negative outside the zone; None when there is
          no perivascular surface) and ``margin_method``.

    Raises
    ------
    InputError
        When an array does not have the grid's shape, the tumour is empty, or a distance
        is negative or not finite.

    Notes
    -----
    Distances are voxel-based (see the module's docstring): EDT to the nearest voxel
    centre of a mask minus half the smallest voxel size, clipped at 0, interpolated
    trilinearly at the surface's face centroids. Margins beyond ``search_mm`` from the
    tumour are lower bounds (the zone is cut at the search box).

    Examples
    --------
    >>> g = Grid((40, 40, 60), (1.0, 1.0, 1.0))
    >>> z, y, x = np.indices(g.shape)
    >>> tum = (z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 8**2
    >>> lab = np.where(x >= 31, int(Label.HEPATIC_VEIN), int(Label.LIVER)).astype(np.uint8)
    >>> rep = perivascular_report(tum, lab, g)
    >>> rep["perivascular"], rep["vessels"][0]["vessel"]
    (True, 'hepatic_vein')
    """
    if not (math.isfinite(within_mm) and within_mm >= 0):
        raise InputError(f"within_mm must be a finite distance >= 0 mm, got {within_mm!r}")
    if not (math.isfinite(margin_mm) and margin_mm >= 0):
        raise InputError(f"margin_mm must be a finite distance >= 0 mm, got {margin_mm!r}")
    tum_full = _bool_on_grid(tumour, grid, "tumour")
    lab_full = np.asarray(labels)
    if lab_full.shape != tuple(grid.shape):
        raise InputError(f"labels must have the grid's shape {grid.shape}, got {lab_full.shape}")
    zone_full = None if zone is None else _bool_on_grid(zone, grid, "zone")
    if not tum_full.any():
        raise InputError("tumour is empty: no voxel to report on")
    return _report_impl(tum_full, lab_full, grid, zone_full, float(within_mm), float(margin_mm))


def _report_impl(tum_full: np.ndarray, lab_full: np.ndarray, grid: Grid,
                 zone_full: np.ndarray | None, within_mm: float,
                 margin_mm: float) -> dict[str, Any]:  # fmt: skip
    """:func:`perivascular_report` on validated inputs."""
    from ioplan.tissue import blood_flow_parameters

    sp = tuple(float(s) for s in grid.spacing_mm)
    half = 0.5 * min(sp)
    reach = max(within_mm + SEARCH_MM, 2.0 * margin_mm + 1.0)
    box = _box(tum_full, grid, reach)
    tum = tum_full[box]
    lab = lab_full[box]
    to_tumour = _edt_outside(tum, sp)  # mm, to tumour voxel centres
    near = to_tumour - half <= reach
    lumen = _large_vessel_lumen(lab, sp) & ~tum & near

    total, areas, cents = _surface(tum, sp)
    rep: dict[str, Any] = {
        "within_mm": _r(within_mm, 2),
        "margin_mm": _r(margin_mm, 2),
        "search_mm": _r(reach, 2),
        "vessel_min_diameter_mm": _r(2.0 * blood_flow_parameters()["small_vessel_radius_mm"], 2),
        "tumour_surface_area_mm2": _r(total),
        "surface_area_mm2": 0.0,
        "surface_percent": 0.0,
        "minimal_distance_mm": None,
        "vessels": [],
        "tissue_between_ml": 0.0,
        "perivascular": False,
    }
    peri = np.zeros(len(areas), bool)
    tissue = np.zeros(tum.shape, bool)
    if lumen.any():
        to_lumen = np.full(tum.shape, np.inf)
        vessels = []
        for lbl in VESSEL_LABELS:
            lv = lumen & (lab == int(lbl))
            if not lv.any():
                continue
            dv = _edt_outside(lv, sp)
            np.minimum(to_lumen, dv, out=to_lumen)
            face_d = np.clip(_at(dv, cents) - half, 0.0, None)
            q = np.argwhere(lv)
            p = q[np.argmin(to_tumour[lv])]  # the lumen voxel nearest the tumour
            vessels.append({
                "vessel": Label(lbl).name.lower(),
                "diameter_mm": _r(2.0 * _inscribed_radius_mm(lv, p, sp)),
                "minimal_distance_mm": _r(face_d.min(), 2),
                "surface_area_mm2": _r(areas[face_d <= within_mm].sum()),
            })  # fmt: skip
        vessels.sort(key=lambda v: v["minimal_distance_mm"])
        face_d = np.clip(_at(to_lumen, cents) - half, 0.0, None)
        peri = face_d <= within_mm
        area = float(areas[peri].sum())
        tissue = ~tum & ~lumen & (to_tumour - half <= margin_mm) & (to_lumen - half <= margin_mm)
        rep.update(
            surface_area_mm2=_r(area),
            surface_percent=_r(100.0 * area / total) if total > 0 else 0.0,
            minimal_distance_mm=_r(face_d.min(), 2),
            vessels=vessels,
            tissue_between_ml=_r(tissue.sum() * grid.voxel_volume_ml, 3),
            perivascular=bool(area > 0),
        )
    if zone_full is not None:
        rep.update(_zone_keys(zone_full[box], sp, tissue, areas, cents, peri))
    return rep


def _zone_keys(z: np.ndarray, sp, tissue: np.ndarray, areas: np.ndarray,
               cents: np.ndarray, peri: np.ndarray) -> dict[str, Any]:  # fmt: skip
    """The zone's share of the tissue between, of the perivascular surface, and its margin."""
    half = 0.5 * min(sp)
    out: dict[str, Any] = {
        "tissue_between_ablated_percent": (
            _r(100.0 * z[tissue].sum() / tissue.sum()) if tissue.any() else None
        ),
        "surface_covered_percent": None,
        "perivascular_minimal_margin_mm": None,
        "margin_method": MARGIN_METHOD,
    }
    if not peri.any():
        return out
    pts = cents[peri]
    idx = np.clip(np.rint(pts).astype(int), 0, np.asarray(z.shape) - 1)
    inside = z[tuple(idx.T)]
    out["surface_covered_percent"] = _r(100.0 * areas[peri][inside].sum() / areas[peri].sum())
    # Signed distance at voxel centres: +(EDT to the outside - half a voxel) in the zone,
    # -(EDT to the zone - half a voxel) outside; 0 on the voxel faces between the two.
    # The zone is cut at the box (padded with outside), so large margins are lower bounds.
    zp = np.pad(z, 1)
    d_in = ndimage.distance_transform_edt(zp, sampling=sp)[1:-1, 1:-1, 1:-1]
    if z.any():
        d_out = ndimage.distance_transform_edt(~z, sampling=sp)
    else:
        d_out = np.full(z.shape, np.inf)
    signed = np.where(z, d_in - half, -(np.minimum(d_out, 1e6) - half))
    out["perivascular_minimal_margin_mm"] = _r(_at(signed, pts).min())
    return out


def _vessel_name(name: str) -> str:
    """``hepatic_vein`` -> ``hepatic vein``, ``ivc`` -> ``IVC``."""
    return name.upper() if len(name) <= 3 else name.replace("_", " ")


def describe(report: dict[str, Any]) -> str:
    """One-line summary of a :func:`perivascular_report`.

    Examples
    --------
    >>> describe({"within_mm": 5.0, "search_mm": 25.0, "vessel_min_diameter_mm": 3.0,
    ...           "surface_percent": 18.2, "surface_area_mm2": 210.4, "perivascular": True,
    ...           "minimal_distance_mm": 1.8, "vessels": [{"vessel": "hepatic_vein",
    ...           "diameter_mm": 6.1, "minimal_distance_mm": 1.8, "surface_area_mm2": 210.4}]})
    '18 % of the tumour surface (210 mm2) lies within 5 mm of the hepatic vein (6 mm), 1.8 mm away at the closest'
    """  # noqa: E501
    w = f"{report['within_mm']:g}"
    vessels = report.get("vessels") or []
    if not vessels:
        return (
            f"no large vessel (>= {report['vessel_min_diameter_mm']:g} mm) within "
            f"{report['search_mm']:g} mm of the tumour"
        )
    names = [
        f"the {_vessel_name(v['vessel'])} ({v['diameter_mm']:.0f} mm)"
        for v in vessels
        if v["surface_area_mm2"] > 0
    ]
    d = report["minimal_distance_mm"]
    if not report["perivascular"] or not names:
        v = vessels[0]
        return (
            f"no part of the tumour surface lies within {w} mm of a large vessel; the closest "
            f"is the {_vessel_name(v['vessel'])} ({v['diameter_mm']:.0f} mm), {d:.1f} mm away"
        )
    which = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    line = (
        f"{report['surface_percent']:.0f} % of the tumour surface "
        f"({report['surface_area_mm2']:.0f} mm2) lies within {w} mm of {which}, "
        f"{d:.1f} mm away at the closest"
    )
    if report.get("surface_covered_percent") is not None:
        line += (
            f"; the zone covers {report['surface_covered_percent']:.0f} % of it, "
            f"margin there {report['perivascular_minimal_margin_mm']:.1f} mm"
        )
    return line
