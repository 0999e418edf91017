"""Vessel trees: centreline segments with radii, grown by a seeded branching rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ARTERY_VARIANTS",
    "NON_TARGET_ARTERIES",
    "VesselSegment",
    "artery_variant_for_seed",
    "grow_tree",
    "hepatic_artery_tree",
    "local_radius_mm",
    "rasterise_segments",
]

#: Hepatic artery anatomies of the phantom: the common pattern (Michels type I) and the
#: two most frequent variants (a replaced right hepatic artery from the superior mesenteric
#: artery, a replaced left hepatic artery from the left gastric artery).
ARTERY_VARIANTS = ("standard", "replaced_right", "replaced_left")
#: Their frequencies in 1000 liver donors (Hiatt et al., Ann Surg 1994;220:50): type I
#: 75.7 %, replaced right 10.6 %, replaced left 9.7 %; the other 4 % count as standard here.
ARTERY_VARIANT_FREQUENCIES = (0.797, 0.106, 0.097)
#: Arterial branches that leave the liver (non-target territory of an embolisation).
NON_TARGET_ARTERIES = ("gastroduodenal", "right_gastric", "cystic")
#: Prefix of the tree name of the phantom's arterial segments (``"artery:<branch>"``);
#: their ``index`` and ``parent`` count over all such segments together.
ARTERY_PREFIX = "artery:"


@dataclass(frozen=True)
class VesselSegment:
    """One straight piece of a vessel centreline, in LPS mm.

    Attributes
    ----------
    tree : str
        Name of the tree (``"portal"``, ``"hepatic_right"``, ...).
    index, parent : int
        Position in the tree's list; ``parent`` is -1 for a root.
    start_mm, end_mm : tuple of 3 float
        LPS end points.
    radius_mm : float
        Lumen radius (constant along the segment).
    """

    tree: str
    index: int
    parent: int
    start_mm: tuple[float, float, float]
    end_mm: tuple[float, float, float]
    radius_mm: float

    @property
    def length_mm(self) -> float:
        """Centreline length in mm."""
        return float(np.linalg.norm(np.subtract(self.end_mm, self.start_mm)))


def _perpendicular_basis(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(d, e1)


def _rotate_towards(d: np.ndarray, axis_dir: np.ndarray, angle: float) -> np.ndarray:
    """Tilt unit vector ``d`` by ``angle`` towards unit vector ``axis_dir`` (perpendicular to d)."""
    v = np.cos(angle) * d + np.sin(angle) * axis_dir
    return v / np.linalg.norm(v)


def grow_tree(
    name: str,
    root_start_mm: np.ndarray,
    root_direction: np.ndarray,
    root_radius_mm: float,
    *,
    inside_depth_mm: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    min_radius_mm: float = 1.0,
    max_segments: int = 1500,
    length_per_radius: float = 6.0,
) -> list[VesselSegment]:
    """Grow a bifurcating vessel tree inside an organ.

    Each parent of radius ``r0`` splits into two children whose radii obey
    Murray's law, ``r0^3 = r1^3 + r2^3`` (Murray, PNAS 1926;12:207), with a
    random asymmetry, at the angles that minimise the work of flow for that
    split (Zamir, J Gen Physiol 1978;72:837):
    ``cos(theta_1) = (r0^4 + r1^4 - r2^4) / (2 r0^2 r1^2)``. A child is kept
    only if its end lies at least its radius plus 1 mm inside the organ;
    of twelve bifurcation planes, the larger child takes the one that leads
    deepest into the organ and the smaller child the opposite side. Growth stops below
    ``min_radius_mm``.

    Parameters
    ----------
    name : str
        Tree name stored in each segment.
    root_start_mm, root_direction : array of 3
        Where the root starts, and its direction (normalised here).
    root_radius_mm : float
        Radius of the root segment.
    inside_depth_mm : callable
        Maps points ``(N, 3)`` in LPS mm to their depth inside the organ, in
        mm (negative or zero outside).
    rng : numpy.random.Generator
        Source of the random asymmetry and bifurcation planes.

    Returns
    -------
    list of VesselSegment
        Parents come before their children.
    """
    segments: list[VesselSegment] = []
    d0 = np.asarray(root_direction, float)
    d0 /= np.linalg.norm(d0)
    # (start, direction, radius, parent index)
    queue: list[tuple[np.ndarray, np.ndarray, float, int]] = [
        (np.asarray(root_start_mm, float), d0, float(root_radius_mm), -1)
    ]
    while queue and len(segments) < max_segments:
        start, d, r0, parent = queue.pop(0)
        length = float(np.clip(length_per_radius * r0 * rng.uniform(0.8, 1.25), 5.0, 35.0))
        end = start + d * length
        idx = len(segments)
        segments.append(
            VesselSegment(name, idx, parent, tuple(map(float, start)), tuple(map(float, end)), r0)
        )
        if r0 < min_radius_mm * 1.26:  # children would fall below the minimum radius
            continue
        asym = rng.uniform(0.45, 1.0)  # r2 / r1
        r1 = r0 / (1.0 + asym**3) ** (1.0 / 3.0)
        r2 = asym * r1
        cos1 = (r0**4 + r1**4 - r2**4) / (2 * r0**2 * r1**2)
        cos2 = (r0**4 + r2**4 - r1**4) / (2 * r0**2 * r2**2)
        th1, th2 = float(np.arccos(np.clip(cos1, -1, 1))), float(np.arccos(np.clip(cos2, -1, 1)))
        e1, e2 = _perpendicular_basis(d)
        # Candidate bifurcation planes: 12 azimuths. The larger child takes the
        # plane that leads deepest into the organ; the smaller one goes to the
        # opposite side (within +-60 degrees), as Murray-Zamir geometry wants.
        psis = rng.uniform(0, 2 * np.pi) + np.arange(12) * (np.pi / 6)
        chosen: float | None = None
        for th, r, is_first in ((th1, r1, True), (th2, r2, False)):
            if r < min_radius_mm:
                continue
            child_len = float(np.clip(length_per_radius * r, 5.0, 35.0))
            best, best_depth = None, -np.inf
            for psi in psis:
                if not is_first and chosen is not None:
                    gap = np.angle(np.exp(1j * (psi - chosen - np.pi)))
                    if abs(gap) > np.pi / 3:
                        continue
                axis = np.cos(psi) * e1 + np.sin(psi) * e2
                dc = _rotate_towards(d, axis, th)
                depth = inside_depth_mm(
                    np.stack([end + dc * child_len, end + dc * 0.5 * child_len])
                )
                if np.all(depth >= r + 0.5) and depth.min() > best_depth:
                    best, best_depth = (psi, dc), float(depth.min())
            if best is None:
                continue
            if is_first:
                chosen = best[0]
            queue.append((end, best[1], r, idx))
    return segments


def rasterise_segments(
    labels: np.ndarray,
    value: int,
    segments: list[VesselSegment],
    lps_to_index: Callable[[np.ndarray], np.ndarray],
    index_to_lps: Callable[[np.ndarray], np.ndarray],
    spacing_mm: tuple[float, float, float],
    *,
    allowed: np.ndarray | None = None,
    min_radius_mm: float | None = None,
) -> None:
    """Paint ``value`` into ``labels`` wherever a voxel centre lies within a segment's radius.

    Parameters
    ----------
    labels : ndarray (z, y, x)
        Modified in place.
    value : int
        Label value to paint.
    segments : list of VesselSegment
        Centrelines.
    lps_to_index, index_to_lps : callable
        The grid's mappings.
    spacing_mm : tuple of 3 float
        Voxel spacing ``(z, y, x)``.
    allowed : ndarray of bool, optional
        Only these voxels may be painted.
    min_radius_mm : float, optional
        Radii below this are drawn with this radius, so that thin vessels stay
        connected on coarse grids (default: half the largest spacing).
    """
    shape = np.asarray(labels.shape)
    floor_r = 0.5 * max(spacing_mm) if min_radius_mm is None else min_radius_mm
    for seg in segments:
        p0 = np.asarray(seg.start_mm)
        p1 = np.asarray(seg.end_mm)
        r = max(seg.radius_mm, floor_r)
        lo_mm = np.minimum(p0, p1) - r
        hi_mm = np.maximum(p0, p1) + r
        corners = np.array(
            [
                [a, b, c]
                for a in (lo_mm[0], hi_mm[0])
                for b in (lo_mm[1], hi_mm[1])
                for c in (lo_mm[2], hi_mm[2])
            ]
        )
        idx = lps_to_index(corners)
        lo = np.maximum(np.floor(idx.min(axis=0)).astype(int), 0)
        hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        zz, yy, xx = np.meshgrid(
            *(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij"
        )
        pts = index_to_lps(np.stack([zz, yy, xx], axis=-1))
        seg_v = p1 - p0
        seg_len2 = float(seg_v @ seg_v)
        t = np.clip(((pts - p0) @ seg_v) / seg_len2, 0.0, 1.0) if seg_len2 > 0 else 0.0
        closest = p0 + np.asarray(t)[..., None] * seg_v
        inside = np.sum((pts - closest) ** 2, axis=-1) <= r * r
        sub = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        if allowed is not None:
            inside &= allowed[sub]
        labels[sub][inside] = value


def local_radius_mm(mask: np.ndarray, spacing_mm) -> np.ndarray:
    """Local radius (mm) of a tubular mask at each voxel.

    The largest inscribed distance within 2 voxels, plus half a voxel (the centreline
    voxel's own half-width).

    Zero outside ``mask``'s neighbourhood; only its values on ``mask`` are meaningful.
    """
    from scipy import ndimage

    edt = ndimage.distance_transform_edt(mask, sampling=spacing_mm)
    return ndimage.maximum_filter(edt, size=5) + 0.5 * min(spacing_mm)


def artery_variant_for_seed(seed: int) -> str:
    """The hepatic artery variant a phantom seed draws (:data:`ARTERY_VARIANT_FREQUENCIES`).

    Drawn from a generator of its own (``default_rng([seed, 24])``) so that the other
    random choices of the phantom do not change.
    """
    u = np.random.default_rng([int(seed), 24]).uniform()
    cum = np.cumsum(ARTERY_VARIANT_FREQUENCIES)
    return ARTERY_VARIANTS[int(np.searchsorted(cum, u * cum[-1]))]


def hepatic_artery_tree(
    portal: list[VesselSegment] | tuple[VesselSegment, ...],
    *,
    gallbladder_mm: np.ndarray,
    variant: str = "standard",
) -> list[VesselSegment]:
    """A connected hepatic artery tree beside the portal tree, with non-target branches.

    Extrahepatic trunk, branches leaving the liver, and intrahepatic branches running
    beside every portal branch (the portal triad).

    Standard anatomy: the common hepatic artery leaves the coeliac trunk in front of the
    aorta, gives the gastroduodenal artery (downwards, out of the liver) and continues as
    the proper hepatic artery, which gives the right gastric artery (towards the stomach)
    and divides at the hilum into right and left hepatic arteries; the right gives the
    cystic artery (to the gallbladder). ``"replaced_right"``: the right hepatic artery
    arises from the superior mesenteric artery (a second root, posterior course);
    ``"replaced_left"``: the left hepatic artery arises from the left gastric artery
    (a second root, along the lesser curvature).

    Each intrahepatic artery segment follows one portal segment, offset sideways by the
    portal radius plus 1.5 mm, with 0.35 x its radius; node by node, so that the tree is
    connected (a child starts where its parent ends).

    Parameters
    ----------
    portal : sequence of VesselSegment
        The portal tree (index 0 the trunk ending at the hilum; its children the right
        and left portal veins).
    gallbladder_mm : array of 3
        Where the cystic artery ends (LPS mm).
    variant : str
        One of :data:`ARTERY_VARIANTS`.

    Returns
    -------
    list of VesselSegment
        Tree names ``"artery:<branch>"``; ``index``/``parent`` over this list (parents
        first); roots have parent -1.
    """
    if variant not in ARTERY_VARIANTS:
        raise ValueError(f"artery variant must be one of {', '.join(ARTERY_VARIANTS)}")
    out: list[VesselSegment] = []

    def add(name: str, parent: int, p0, p1, r: float) -> int:
        out.append(
            VesselSegment(
                ARTERY_PREFIX + name,
                len(out),
                parent,
                tuple(float(v) for v in p0),
                tuple(float(v) for v in p1),
                float(r),
            )
        )
        return len(out) - 1

    trunk = portal[0]
    hilum = np.asarray(trunk.end_mm, float)
    children = [s for s in portal if s.parent == 0]
    right = min(children, key=lambda s: s.end_mm[0])  # the right portal vein runs to -x
    left = max(children, key=lambda s: s.end_mm[0])
    coeliac = np.array([18.0, 6.0, -60.0])
    gda_origin = np.array([-2.0, -10.0, -38.0])
    hilum_a = hilum + np.array([0.0, -9.0, -6.0])  # bifurcation of the proper hepatic
    pha_mid = 0.5 * (gda_origin + hilum_a)
    right_b = hilum_a + np.array([-10.0, 2.0, 1.0])
    left_b = hilum_a + np.array([10.0, -5.0, 3.0])

    cha = add("common_hepatic", -1, coeliac, gda_origin, 2.6)
    add("gastroduodenal", cha, gda_origin, gda_origin + np.array([4.0, -14.0, -40.0]), 1.6)
    pha1 = add("proper_hepatic", cha, gda_origin, pha_mid, 2.2)
    add("right_gastric", pha1, pha_mid, pha_mid + np.array([30.0, -12.0, -4.0]), 0.8)
    pha2 = add("proper_hepatic", pha1, pha_mid, hilum_a, 2.2)
    if variant == "replaced_right":
        sma = add("replaced_right_hepatic", -1, (16.0, 8.0, -85.0), (-12.0, 8.0, -40.0), 1.9)
        rha = add("replaced_right_hepatic", sma, (-12.0, 8.0, -40.0), right_b, 1.9)
        right_name = "replaced_right_hepatic"
    else:
        rha = add("right_hepatic", pha2, hilum_a, right_b, 1.9)
        right_name = "right_hepatic"
    if variant == "replaced_left":
        lga = add("replaced_left_hepatic", -1, (22.0, 4.0, -56.0), (32.0, -24.0, -24.0), 1.6)
        lha = add("replaced_left_hepatic", lga, (32.0, -24.0, -24.0), left_b, 1.6)
        left_name = "replaced_left_hepatic"
    else:
        lha = add("left_hepatic", pha2, hilum_a, left_b, 1.6)
        left_name = "left_hepatic"
    add("cystic", rha, right_b, np.asarray(gallbladder_mm, float), 0.8)

    # intrahepatic: one artery segment per portal segment, parents first
    node: dict[int, np.ndarray] = {}  # portal index -> artery node at its end
    seg_of: dict[int, int] = {right.index: rha, left.index: lha}
    start_of = {right.index: right_b, left.index: left_b}
    name_of = {right.index: right_name, left.index: left_name}
    for s in portal[1:]:
        p0, p1 = np.asarray(s.start_mm), np.asarray(s.end_mm)
        e1, _ = _perpendicular_basis((p1 - p0) / max(np.linalg.norm(p1 - p0), 1e-9))
        end = p1 + e1 * (s.radius_mm + 1.5)
        if s.parent == 0:
            start, parent, name = start_of[s.index], seg_of[s.index], name_of[s.index]
        else:
            start, parent, name = node[s.parent], seg_of[s.parent], name_of[s.parent]
        seg_of[s.index] = add(name, parent, start, end, 0.35 * s.radius_mm)
        node[s.index] = end
        name_of[s.index] = name
    return out
