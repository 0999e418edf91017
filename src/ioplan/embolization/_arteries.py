"""Transarterial planning: arterial tree, feeders, catheter positions, territories.

Also the non-target branches and Couinaud segments from the portal tree.

Perfusion model (documented, simple): every liver voxel (labels liver and tumour) is
supplied by the *nearest terminal* branch of the arterial tree that ends in the liver
(exact point-to-segment distance to the terminal's centreline). The territory of a
catheter position (the start of a branch) is the union of the voxels of the terminals
downstream of it; the territories of sibling branches are disjoint and a parent's is the
union of its children's (the tree's construction, by definition).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.anatomy import Label, VesselSegment
from ioplan.errors import InputError

__all__ = [
    "ARTERY_PREFIX",
    "COUINAUD_NAMES",
    "NON_TARGET_ARTERIES",
    "ArterialPlan",
    "ArterialTree",
    "arterial_plan",
    "couinaud_segments",
    "nearest_terminal",
    "tree_from_mask",
    "tree_from_segments",
    "vessel_mask_from_image",
]

#: Tree-name prefix of the phantom's connected arterial segments (``vessels.csv``).
ARTERY_PREFIX = "artery:"
#: Named arteries that leave the liver: what an embolisation must not reach.
NON_TARGET_ARTERIES = ("gastroduodenal", "right_gastric", "cystic")
#: A terminal ending farther than this outside the liver supplies no liver voxel (mm).
_OUTSIDE_MM = 5.0
#: Non-target branches this far upstream of the catheter tip are named too (reflux), mm.
REFLUX_MM = 20.0
#: Where the catheter tip sits along its branch: this far past the branch point (or half the
#: branch, if shorter), mm.
TIP_MM = 5.0
#: Above this, a bright tube is bone (rib), not a contrast-filled artery (HU).
_BONE_HU = 600.0
#: Couinaud segment values of ``segments.nii.gz`` (caudate, I, is not modelled).
COUINAUD_NAMES = {2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}


@dataclass(frozen=True, eq=False)
class ArterialTree:
    """Straight centreline segments of an arterial forest, parents before children.

    Attributes
    ----------
    start_mm, end_mm : ndarray (n, 3)
        LPS end points.
    radius_mm : ndarray (n,)
        Lumen radius per segment.
    parent : ndarray (n,) of int
        Parent segment, -1 for a root.
    names : tuple of str
        Branch name per segment (``"right_hepatic"``, ``"gastroduodenal"``, ...; from the
        skeleton: ``"branch"`` or ``"extrahepatic"``).
    source : str
        ``"centrelines"`` (the case's ``vessels.csv``) or ``"skeleton"`` (label map).
    """

    start_mm: np.ndarray
    end_mm: np.ndarray
    radius_mm: np.ndarray
    parent: np.ndarray
    names: tuple[str, ...]
    source: str

    @property
    def n(self) -> int:
        """Number of segments."""
        return len(self.parent)

    @property
    def length_mm(self) -> np.ndarray:
        """Centreline length of every segment (mm)."""
        return np.linalg.norm(self.end_mm - self.start_mm, axis=1)

    def children(self) -> list[list[int]]:
        """Children of every segment."""
        out: list[list[int]] = [[] for _ in range(self.n)]
        for i, p in enumerate(self.parent):
            if p >= 0:
                out[int(p)].append(i)
        return out

    def ancestors(self, i: int) -> list[int]:
        """``i`` and its ancestors up to the root, in that order."""
        path = [int(i)]
        while self.parent[path[-1]] >= 0:
            path.append(int(self.parent[path[-1]]))
        return path

    def descendants(self, i: int) -> list[int]:
        """``i`` and every segment downstream of it."""
        kids = self.children()
        out, stack = [], [int(i)]
        while stack:
            j = stack.pop()
            out.append(j)
            stack.extend(kids[j])
        return out

    def depth_mm(self) -> np.ndarray:
        """Path length from the root to the start of every segment (mm)."""
        d = np.zeros(self.n)
        lengths = self.length_mm
        for i in range(self.n):  # parents come first
            p = self.parent[i]
            d[i] = 0.0 if p < 0 else d[p] + lengths[p]
        return d


def tree_from_segments(segments: tuple[VesselSegment, ...] | list[VesselSegment]) -> ArterialTree:
    """The arterial tree of a case's centrelines (segments named ``"artery:<branch>"``).

    Raises
    ------
    InputError
        No such segments, or a parent that is not an earlier segment.
    """
    segs = sorted((s for s in segments if s.tree.startswith(ARTERY_PREFIX)), key=lambda s: s.index)
    if not segs:
        raise InputError("the case's vessels.csv holds no arterial tree (artery:* segments)")
    pos = {s.index: k for k, s in enumerate(segs)}
    parent = []
    for k, s in enumerate(segs):
        p = pos.get(s.parent, -1) if s.parent >= 0 else -1
        if s.parent >= 0 and (s.parent not in pos or p >= k):
            raise InputError(f"arterial segment {s.index}: parent {s.parent} is not before it")
        parent.append(p)
    return ArterialTree(
        np.array([s.start_mm for s in segs], float),
        np.array([s.end_mm for s in segs], float),
        np.array([s.radius_mm for s in segs], float),
        np.array(parent, int),
        tuple(s.tree[len(ARTERY_PREFIX) :] for s in segs),
        "centrelines",
    )


def tree_from_mask(
    mask: np.ndarray, grid, *, root_hint_mm=None, piece_mm: float = 6.0, gap_mm: float = 8.0
) -> ArterialTree:
    """An arterial tree from a vessel mask: skeleton (scikit-image), branch graph (skan).

    Each skeleton path is cut into straight pieces of about ``piece_mm``; the radius of a
    piece is the mean distance-transform value on its skeleton voxels plus half a voxel.
    The component with the end point nearest ``root_hint_mm`` (the aorta's centroid when
    the case has one: the hepatic artery comes from there; else the largest component)
    is rooted there and walked breadth first (a loop of the skeleton is cut). The other
    components are joined in turn, nearest first, at their node nearest the tree built so
    far when that gap is at most ``gap_mm`` (a label broken where the artery crosses a
    vein or a tumour); farther ones stay roots of their own.
    """
    from skan import Skeleton
    from skimage.morphology import skeletonize

    skel = skeletonize(np.asarray(mask, bool))
    if skel.sum() < 2:
        raise InputError("the hepatic artery label is empty or too small to give a tree")
    sp = np.asarray(grid.spacing_mm, float)
    edt = ndimage.distance_transform_edt(mask, sampling=sp)
    sk = Skeleton(skel)
    ends = [(int(sk.paths[i].indices[0]), int(sk.paths[i].indices[-1])) for i in range(sk.n_paths)]
    adj: dict[int, list[int]] = {}
    for i, (a, b) in enumerate(ends):
        adj.setdefault(a, []).append(i)
        adj.setdefault(b, []).append(i)
    coords = sk.coordinates
    node_mm = {v: grid.index_to_lps(coords[v].astype(float)) for v in adj}
    comps: list[list[int]] = []
    seen: set[int] = set()
    for v0 in adj:
        if v0 in seen:
            continue
        comp, stack = [], [v0]
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            comp.append(v)
            for p in adj[v]:
                stack.extend(ends[p])
        comps.append(comp)
    start: list[np.ndarray] = []
    end: list[np.ndarray] = []
    radius: list[float] = []
    parent: list[int] = []

    def walk(root: int, attach: int) -> None:
        queue, visited, done = [(root, attach)], {root}, set()
        while queue:
            v, pseg = queue.pop(0)
            for p in adj[v]:
                if p in done:
                    continue
                done.add(p)
                a, b = ends[p]
                idx = sk.paths[p].indices
                if a != v:
                    idx, b = idx[::-1], a
                pix = coords[idx]
                mm = grid.index_to_lps(pix.astype(float))
                seg_len = np.r_[0, np.cumsum(np.linalg.norm(np.diff(mm, axis=0), axis=1))]
                n_pieces = max(1, round(float(seg_len[-1]) / piece_mm))
                cuts = np.searchsorted(seg_len, np.linspace(0, seg_len[-1], n_pieces + 1))
                cuts = np.unique(np.clip(cuts, 0, len(idx) - 1))
                if len(cuts) < 2:
                    cuts = np.array([0, len(idx) - 1])
                last = pseg
                for c0, c1 in itertools.pairwise(cuts):
                    r = float(edt[tuple(pix[c0 : c1 + 1].T.astype(int))].mean()) + 0.5 * sp.min()
                    start.append(mm[c0])
                    end.append(mm[c1])
                    radius.append(r)
                    parent.append(last)
                    last = len(start) - 1
                if b not in visited:
                    visited.add(b)
                    queue.append((b, last))

    hint = None if root_hint_mm is None else np.asarray(root_hint_mm, float)

    def tips(comp: list[int]) -> list[int]:
        return [v for v in comp if len(adj[v]) == 1] or comp

    if hint is not None:
        first = min(comps, key=lambda c: min(np.linalg.norm(node_mm[v] - hint) for v in tips(c)))
        root = min(tips(first), key=lambda v: np.linalg.norm(node_mm[v] - hint))
    else:
        first = max(comps, key=len)
        root = max(tips(first), key=lambda v: edt[tuple(coords[v].astype(int))])
    walk(root, -1)
    rest = [c for c in comps if c is not first]
    while rest:
        built = np.array(end)
        best = None  # (gap, comp position, node, segment)
        for k, comp in enumerate(rest):
            pts = np.array([node_mm[v] for v in comp])
            d = np.linalg.norm(pts[:, None, :] - built[None, :, :], axis=-1)
            a, b = np.unravel_index(int(np.argmin(d)), d.shape)
            if best is None or d[a, b] < best[0]:
                best = (float(d[a, b]), k, comp[a], int(b))
        gap, k, node, seg = best
        comp = rest.pop(k)
        if gap <= gap_mm:
            walk(node, seg)
        else:
            walk(min(tips(comp), key=lambda v: -edt[tuple(coords[v].astype(int))]), -1)
    return ArterialTree(
        np.array(start, float), np.array(end, float), np.array(radius, float),
        np.array(parent, int), ("branch",) * len(start), "skeleton",
    )  # fmt: skip


def vessel_mask_from_image(
    image_hu: np.ndarray,
    region: np.ndarray,
    spacing_mm,
    *,
    min_hu: float = 180.0,
    sigmas_mm: tuple[float, ...] = (1.0, 1.5, 2.5),
    margin_mm: float = 20.0,
) -> np.ndarray:
    """Bright tubes of an arterial-phase CT or cone-beam CT: Frangi vesselness and a HU floor.

    The Frangi filter (Frangi et al., MICCAI 1998; :func:`skimage.filters.frangi`, bright
    ridges) at ``sigmas_mm`` (converted with the mean spacing: near-isotropic grids) runs on
    the bounding box of ``region`` grown by ``margin_mm`` (the hilum and the vessels that
    leave the liver); a voxel is vessel where the vesselness is at least a tenth of its
    99.9th percentile in that box and the attenuation at least ``min_hu`` (contrast-filled
    arteries: 200-400 HU in the arterial phase; the portal vein is still dim then) and at
    most 600 HU (bone: ribs, vertebrae).

    Returns
    -------
    ndarray of bool
        The vessel mask on the image grid.
    """
    from skimage.filters import frangi

    img = np.asarray(image_hu, float)
    sp = np.asarray(spacing_mm, float)
    grow = np.maximum(1, np.ceil(margin_mm / sp).astype(int))
    idx = np.argwhere(region)
    if len(idx) == 0:
        raise InputError("no liver to look for arteries in")
    lo = np.maximum(idx.min(axis=0) - grow, 0)
    hi = np.minimum(idx.max(axis=0) + grow + 1, img.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    sub = img[box]
    sig = [s / float(sp.mean()) for s in sigmas_mm]
    v = frangi(sub, sigmas=sig, black_ridges=False)
    ref = float(np.percentile(v, 99.9))
    out = np.zeros(img.shape, bool)
    if ref > 0:
        out[box] = (v >= 0.1 * ref) & (sub >= min_hu) & (sub <= _BONE_HU)
    return out


def _point_segment_d2(points: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    v = p1 - p0
    vv = float(v @ v)
    t = np.clip(((points - p0) @ v) / vv, 0.0, 1.0) if vv > 0 else np.zeros(len(points))
    d = points - (p0 + t[:, None] * v)
    return np.einsum("ij,ij->i", d, d)


def nearest_terminal(
    points_mm: np.ndarray, tree: ArterialTree, terminals: np.ndarray
) -> np.ndarray:
    """For each point, the position in ``terminals`` of its nearest terminal segment.

    Exact point-to-segment distance; a tie goes to the lower position.
    """
    pts = np.asarray(points_mm, float).reshape(-1, 3)
    best = np.full(len(pts), np.inf)
    which = np.zeros(len(pts), int)
    for k, t in enumerate(terminals):
        d2 = _point_segment_d2(pts, tree.start_mm[t], tree.end_mm[t])
        closer = d2 < best
        best[closer] = d2[closer]
        which[closer] = k
    return which


def _liver_terminals(tree: ArterialTree, outside_mm_of) -> np.ndarray:
    kids = tree.children()
    term = [i for i in range(tree.n) if not kids[i]]
    out = [
        i
        for i in term
        if tree.names[i] not in NON_TARGET_ARTERIES and outside_mm_of(tree.end_mm[i]) <= _OUTSIDE_MM
    ]
    if not out:
        raise InputError("no branch of the arterial tree ends in the liver")
    return np.array(out, int)


def _non_target_origins(tree: ArterialTree, liver_terms: set[int]) -> list[tuple[int, str]]:
    """Segments where a branch leaving the liver starts.

    Named ones, or (skeleton) a subtree with no terminal in the liver whose parent's has one.
    """
    kids = tree.children()
    out = []
    if tree.source == "centrelines":
        for i in range(tree.n):
            p = tree.parent[i]
            if tree.names[i] in NON_TARGET_ARTERIES and (p < 0 or tree.names[p] != tree.names[i]):
                out.append((i, tree.names[i]))
        return out
    has_liver = np.zeros(tree.n, bool)
    for i in range(tree.n - 1, -1, -1):  # children after parents
        has_liver[i] = i in liver_terms or any(has_liver[k] for k in kids[i])
    for i in range(tree.n):
        p = tree.parent[i]
        if not has_liver[i] and p >= 0 and has_liver[p]:
            out.append((i, f"extrahepatic_branch_{i}"))
    return out


def couinaud_segments(portal: list[VesselSegment], points_mm: np.ndarray) -> np.ndarray:
    """Couinaud segment (2-8) of each point, from the portal venous tree.

    Each point goes to its nearest portal terminal (as the arterial territories). The right
    portal vein's two largest subtrees are the anterior (the one lying more anterior, -y)
    and posterior sectors; the left's, the lateral (more to the patient's left, +x) and
    medial (IV) sectors. Right sectors and the left lateral one are split at the hilum's
    height (z of the portal bifurcation): posterior VII above, VI below; anterior VIII above,
    V below; lateral II above, III below. A sketch of Couinaud's scheme, not an anatomical
    segmentation; the caudate lobe (I) is not separated.
    """
    segs = sorted((s for s in portal if s.tree == "portal"), key=lambda s: s.index)
    if len(segs) < 3:
        raise InputError("the case's vessels.csv holds no portal tree for Couinaud segments")
    tree = ArterialTree(
        np.array([s.start_mm for s in segs]), np.array([s.end_mm for s in segs]),
        np.array([s.radius_mm for s in segs]), np.array([s.parent for s in segs]),
        ("portal",) * len(segs), "centrelines",
    )  # fmt: skip
    kids = tree.children()
    hilum_z = tree.end_mm[0, 2]
    first = sorted(kids[0], key=lambda i: tree.end_mm[i, 0])  # right (-x) first
    right, left = first[0], first[-1]
    sector: dict[int, str] = {}

    def split(i: int, key, names: tuple[str, str]) -> None:
        sub = sorted(kids[i], key=lambda k: -len(tree.descendants(k)))[:2]
        if len(sub) < 2:
            sector.update({d: names[0] for d in tree.descendants(i)})
            return
        sub = sorted(sub, key=lambda k: key(np.mean(tree.end_mm[tree.descendants(k)], axis=0)))
        for k, name in zip(sub, names, strict=True):
            sector.update({d: name for d in tree.descendants(k)})
        sector.setdefault(i, names[0])
        for d in tree.descendants(i):
            sector.setdefault(d, names[0])

    split(right, lambda c: c[1], ("right_anterior", "right_posterior"))
    split(left, lambda c: -c[0], ("left_lateral", "left_medial"))
    terms = np.array([i for i in range(tree.n) if not kids[i] and i in sector], int)
    which = terms[nearest_terminal(points_mm, tree, terms)]
    pts = np.asarray(points_mm, float).reshape(-1, 3)
    above = pts[:, 2] >= hilum_z
    names = np.array([sector[i] for i in which])
    out = np.zeros(len(pts), np.uint8)
    for name, hi, lo in (
        ("right_posterior", 7, 6), ("right_anterior", 8, 5), ("left_lateral", 2, 3),
        ("left_medial", 4, 4),
    ):  # fmt: skip
        m = names == name
        out[m & above] = hi
        out[m & ~above] = lo
    return out


@dataclass(frozen=True, eq=False)
class ArterialPlan:
    """What :func:`arterial_plan` finds.

    Attributes
    ----------
    tree : ArterialTree
    terminals : ndarray of int
        Segments that supply the liver.
    territories : ndarray (z, y, x) of uint8
        Exclusive territory label of every liver voxel (0 outside the liver).
    segments : ndarray (z, y, x) of uint8 or None
        Couinaud segment of every liver voxel (None without a portal tree).
    doc : dict
        The JSON document (``feeders``, ``territories``, ``segments``, ...).
    """

    tree: ArterialTree
    terminals: np.ndarray
    territories: np.ndarray
    segments: np.ndarray | None
    doc: dict[str, Any]


def _tumour_mask(labels: np.ndarray, tumour: int | None, tumours_meta, grid) -> np.ndarray:
    mask = labels == Label.TUMOR
    if not mask.any():
        raise InputError("the case has no tumour label (8): nothing to feed")
    if tumour is None:
        return mask
    comp, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if not 0 <= tumour < n:
        raise InputError(f"--tumour must be 0-{n - 1} (the case has {n} tumours), got {tumour}")
    centres = [t.get("centre_mm") for t in tumours_meta] if tumours_meta else []
    if tumour < len(centres) and centres[tumour] is not None:  # the component nearest it
        vox = np.argwhere(mask)
        d = np.linalg.norm(
            grid.index_to_lps(vox.astype(float)) - np.asarray(centres[tumour], float), axis=1
        )
        return comp == comp[tuple(vox[int(np.argmin(d))])]
    sizes = ndimage.sum_labels(mask, comp, index=np.arange(1, n + 1))
    order = np.argsort(-sizes, kind="stable")
    return comp == order[tumour] + 1


def arterial_plan(
    case, *, tumour: int | None = None, from_image: bool = False, min_hu: float = 180.0
) -> ArterialPlan:
    """Arterial tree, feeders of the tumour, ranked catheter positions, territories.

    Parameters
    ----------
    case : ioplan.anatomy.Case
        Labels with liver (7) and tumour (8); the arterial tree from its ``vessels.csv``
        (``artery:*`` segments, the phantom's ``arterial_tree`` option), else skeletonised
        from its hepatic artery label (11).
    tumour : int, optional
        Which tumour (connected component; the case's order when ``case.toml`` gives
        centres, else by size); default every tumour voxel.
    from_image : bool
        Find the arteries in the case's image (arterial-phase CT or cone-beam CT) by
        :func:`vessel_mask_from_image` with ``min_hu``, instead of centrelines or labels.

    Returns
    -------
    ArterialPlan
        ``doc["feeders"]`` lists the candidate catheter positions (branches on the way from
        the root to a feeder, one per distinct territory, the most distal kept), ranked:
        first those whose territory holds >= 95 % of the tumour, by the normal liver they
        treat (least first), then the rest by tumour coverage.
    """
    grid = case.labels.grid
    labels = np.asarray(case.labels.array)
    liver = np.isin(labels, [Label.LIVER, Label.TUMOR])
    if not (labels == Label.LIVER).any():
        raise InputError("the case has no liver label (7)")
    tmask = _tumour_mask(labels, tumour, case.tumors, grid)
    if from_image:
        art = vessel_mask_from_image(
            np.asarray(case.image.array), liver, grid.spacing_mm, min_hu=min_hu
        )
        aorta = np.argwhere(labels == Label.AORTA)
        hint = grid.index_to_lps(aorta.mean(axis=0)) if len(aorta) else None
        tree = tree_from_mask(art, grid, root_hint_mm=hint)
    elif any(s.tree.startswith(ARTERY_PREFIX) for s in case.vessels):
        tree = tree_from_segments(case.vessels)
    else:
        art = labels == Label.HEPATIC_ARTERY
        aorta = np.argwhere(labels == Label.AORTA)
        hint = grid.index_to_lps(aorta.mean(axis=0)) if len(aorta) else None
        tree = tree_from_mask(art, grid, root_hint_mm=hint)
    sp = np.asarray(grid.spacing_mm, float)
    outside = ndimage.distance_transform_edt(~liver, sampling=sp)

    def outside_mm_of(p: np.ndarray) -> float:
        idx = np.rint(grid.lps_to_index(np.asarray(p, float))).astype(int)
        if np.any(idx < 0) or np.any(idx >= np.asarray(labels.shape)):
            return np.inf
        return float(outside[tuple(idx)])

    terms = _liver_terminals(tree, outside_mm_of)
    vox = np.argwhere(liver)
    which = nearest_terminal(grid.index_to_lps(vox.astype(float)), tree, terms)
    in_tumour = tmask[tuple(vox.T)]
    voxel_ml = float(np.prod(sp)) / 1000.0
    n_term = len(terms)
    tum_count = np.bincount(which[in_tumour], minlength=n_term)
    all_count = np.bincount(which, minlength=n_term)
    term_pos = {int(t): k for k, t in enumerate(terms)}
    down_terms = [
        [term_pos[d] for d in tree.descendants(i) if d in term_pos] for i in range(tree.n)
    ]
    n_tum = int(in_tumour.sum())
    # feeders: terminals supplying the tumour, and branches whose centreline enters it
    feeders = {int(terms[k]) for k in np.flatnonzero(tum_count > 0)}
    for i in range(tree.n):
        pts = tree.start_mm[i] + np.linspace(0, 1, 12)[:, None] * (
            tree.end_mm[i] - tree.start_mm[i]
        )
        idx = np.rint(grid.lps_to_index(pts)).astype(int)
        ok = np.all((idx >= 0) & (idx < np.asarray(labels.shape)), axis=1)
        if ok.any() and tmask[tuple(idx[ok].T)].any():
            feeders.add(i)
    chain: set[int] = set()
    for f in feeders:
        chain.update(tree.ancestors(f))
    # one candidate per distinct territory: the most distal segment of a chain that shares it
    by_set: dict[tuple[int, ...], int] = {}
    depth = tree.depth_mm()
    for i in sorted(chain, key=lambda i: depth[i]):
        key = tuple(sorted(down_terms[i]))
        if key:
            by_set[key] = i  # deeper ones overwrite
    cands = list(by_set.values())

    def stats(i: int) -> tuple[float, float, float]:
        ks = down_terms[i]
        tum = float(tum_count[ks].sum())
        tot = float(all_count[ks].sum())
        return 100.0 * tum / max(n_tum, 1), tot * voxel_ml, (tot - tum) * voxel_ml

    info = {i: stats(i) for i in cands}
    good = sorted((i for i in cands if info[i][0] >= 95.0), key=lambda i: (info[i][2], -depth[i]))
    rest = sorted((i for i in cands if info[i][0] < 95.0), key=lambda i: (-info[i][0], info[i][2]))
    ranked = good + rest
    if len(ranked) > 250:
        ranked = ranked[:250]
    label_of = {c: k + 1 for k, c in enumerate(ranked)}
    # exclusive territory: each terminal to its deepest candidate ancestor; others: rest label
    rest_label = len(ranked) + 1
    term_label = np.full(n_term, rest_label, np.uint8)
    for k, t in enumerate(terms):
        for a in tree.ancestors(int(t)):  # deepest first
            if a in label_of:
                term_label[k] = label_of[a]
                break
    territories = np.zeros(labels.shape, np.uint8)
    territories[tuple(vox.T)] = term_label[which]
    origins = _non_target_origins(tree, set(int(t) for t in terms))
    feeders_doc = []
    for c in ranked:
        cov, tot_ml, normal_ml = info[c]
        feeders_doc.append(
            {
                "branch_id": int(c),
                "branch": tree.names[c],
                "catheter_tip_mm": [round(float(v), 1) for v in _tip(tree, c)],
                "territory_label": label_of[c],
                "territory_labels": sorted(
                    {label_of[d] for d in tree.descendants(c) if d in label_of}
                ),
                "territory_ml": round(tot_ml, 1),
                "tumour_covered_percent": round(cov, 2),
                "normal_liver_ml": round(normal_ml, 1),
                "radius_mm": round(float(tree.radius_mm[c]), 2),
                "non_target": _non_target_of(tree, c, origins),
            }
        )
    labels_doc = [
        {
            "territory_label": label_of[c],
            "branch_id": int(c),
            "exclusive_ml": round(float((territories == label_of[c]).sum()) * voxel_ml, 1),
        }
        for c in ranked
    ]
    n_rest = int((territories == rest_label).sum())
    if n_rest:
        labels_doc.append(
            {"territory_label": rest_label, "branch_id": None,
             "exclusive_ml": round(n_rest * voxel_ml, 1)}
        )  # fmt: skip
    segments = None
    portal = [s for s in case.vessels if s.tree == "portal"]
    seg_doc = None
    if len(portal) >= 3:
        segments = np.zeros(labels.shape, np.uint8)
        segments[tuple(vox.T)] = couinaud_segments(portal, grid.index_to_lps(vox.astype(float)))
        counts = np.bincount(segments[tuple(vox.T)], minlength=9)
        seg_doc = {COUINAUD_NAMES[v]: round(float(counts[v]) * voxel_ml, 1) for v in COUINAUD_NAMES}
    doc = {
        "tree": {
            "source": tree.source,
            "segments": tree.n,
            "roots": int((tree.parent < 0).sum()),
            "root_branches": sorted({tree.names[i] for i in np.flatnonzero(tree.parent < 0)}),
            "liver_terminals": n_term,
            "total_length_mm": round(float(tree.length_mm.sum()), 1),
        },
        "tumour": {"voxels": n_tum, "ml": round(n_tum * voxel_ml, 2)},
        "liver_ml": round(len(vox) * voxel_ml, 1),
        "feeding_branches": sorted(feeders),
        "feeders": feeders_doc,
        "territories": "territories.nii.gz",
        "territory_labels": labels_doc,
        "segments": None if segments is None else "segments.nii.gz",
        "segment_ml": seg_doc,
        "perfusion_model": "nearest terminal branch ending in the liver (point-to-centreline)",
    }
    return ArterialPlan(tree, terms, territories, segments, doc)


def _tip(tree: ArterialTree, i: int) -> np.ndarray:
    v = tree.end_mm[i] - tree.start_mm[i]
    length = float(np.linalg.norm(v))
    if length == 0:
        return tree.start_mm[i]
    return tree.start_mm[i] + v * min(TIP_MM, 0.5 * length) / length


def _non_target_of(tree: ArterialTree, c: int, origins) -> list[dict[str, Any]]:
    """Branches leaving the liver downstream of the tip of ``c``, or upstream within reach.

    Distance along the tree from the catheter tip to the branch's origin (mm); upstream
    ones within :data:`REFLUX_MM` (reflux).
    """
    depth = tree.depth_mm()
    tip_depth = depth[c] + float(np.linalg.norm(_tip(tree, c) - tree.start_mm[c]))
    down = set(tree.descendants(c))
    up = tree.ancestors(c)
    out = []
    for i, name in origins:
        if i in down:
            out.append(
                {"branch": name, "branch_id": int(i), "downstream": True,
                 "distance_mm": round(float(max(depth[i] - tip_depth, 0.0)), 1)}
            )  # fmt: skip
            continue
        p = int(tree.parent[i])
        if p in up:  # leaves the path upstream of the tip: reflux risk if close
            dist = tip_depth - depth[i]
            if dist <= REFLUX_MM:
                out.append(
                    {"branch": name, "branch_id": int(i), "downstream": False,
                     "distance_mm": round(float(dist), 1)}
                )  # fmt: skip
    return sorted(out, key=lambda d: d["distance_mm"])


#: What ``ioplan arteries`` writes into its output folder.
ARTERIES_FOLDER_ENTRIES = frozenset(
    {"arteries.json", "territories.nii.gz", "segments.nii.gz", "tree.csv", "figures"}
)


def check_arteries_folder(out, *, overwrite: bool = False):
    """Refuse an output folder ``ioplan arteries`` may not write (before any work)."""
    from ioplan.imaging import check_replaceable

    return check_replaceable(
        out, command="arteries", names=ARTERIES_FOLDER_ENTRIES, overwrite=overwrite
    )


def write_arterial_plan(plan: ArterialPlan, labels_volume, out, *, overwrite: bool = False):
    """Write the plan into ``out``, whole or not at all.

    ``arteries.json``, ``territories.nii.gz``, ``segments.nii.gz`` (with a portal tree) and
    ``tree.csv``.
    """
    import csv
    import json
    from pathlib import Path

    from ioplan.imaging import atomic_output_folder, write_image

    out = Path(out)
    with atomic_output_folder(
        out, command="arteries", names=ARTERIES_FOLDER_ENTRIES, overwrite=overwrite
    ) as tmp:
        write_image(labels_volume.with_array(plan.territories), tmp / "territories.nii.gz")
        if plan.segments is not None:
            write_image(labels_volume.with_array(plan.segments), tmp / "segments.nii.gz")
        t = plan.tree
        with open(tmp / "tree.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["branch_id", "parent", "branch", "x0_mm", "y0_mm", "z0_mm",
                        "x1_mm", "y1_mm", "z1_mm", "radius_mm"])  # fmt: skip
            for i in range(t.n):
                w.writerow(
                    [i, int(t.parent[i]), t.names[i], *(f"{v:.2f}" for v in t.start_mm[i]),
                     *(f"{v:.2f}" for v in t.end_mm[i]), f"{t.radius_mm[i]:.2f}"]
                )  # fmt: skip
        doc = {**plan.doc, "case_labels_sha256": labels_fingerprint(labels_volume)}
        (tmp / "arteries.json").write_text(json.dumps(doc, indent=2) + "\n")
        _territory_picture(plan, labels_volume, tmp / "figures" / "territories.png")
    return out


def _territory_picture(plan: ArterialPlan, labels_volume, path) -> None:
    """The territories on the coronal slice through the first position's catheter tip."""
    from ioplan.anatomy import Label
    from ioplan.report import save_territory_figure

    first = plan.doc["feeders"][0] if plan.doc.get("feeders") else None
    t = plan.tree
    save_territory_figure(
        labels_volume.with_array(plan.territories), path,
        segments_mm=list(zip(t.start_mm, t.end_mm, strict=True)),
        tip_mm=first["catheter_tip_mm"] if first else None,
        chosen_labels=first.get("territory_labels", [first["territory_label"]]) if first else (),
        tumour=np.asarray(labels_volume.array) == int(Label.TUMOR),
        title=(f"position at branch {first['branch_id']}: tumour "
               f"{first['tumour_covered_percent']:.0f} %, territory {first['territory_ml']:.0f} mL"
               if first else "no feeder found"),
    )  # fmt: skip


def labels_fingerprint(labels_volume) -> str:
    """SHA-256 of a label map's values and grid: which case an output was made from.

    Stored in ``arteries.json`` (``case_labels_sha256``) so that a territory is never
    applied to another case, or to a case whose labels changed since (same grid or not).
    """
    import hashlib

    arr = np.ascontiguousarray(np.asarray(labels_volume.array), dtype=np.uint16)
    g = labels_volume.grid
    h = hashlib.sha256()
    h.update(repr((tuple(g.shape), tuple(round(float(v), 4) for v in g.spacing_mm),
                   tuple(round(float(v), 3) for v in g.origin_mm))).encode())  # fmt: skip
    h.update(arr.tobytes())
    return h.hexdigest()


def read_territory(folder, feeder: int, labels_grid, *,
                   labels_volume=None) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """The whole territory of candidate ``feeder`` (its ``branch_id``), and its JSON entry.

    Read from an ``ioplan arteries`` output folder; the mask is on the case grid. With
    ``labels_volume`` (the case's labels), an output made from other labels is refused
    (outputs older than the fingerprint are not checked).

    Raises
    ------
    InputError
        Not such a folder, an unknown feeder, a territory map on another grid, or one
        made from another case's labels.
    """
    import json
    from pathlib import Path

    from ioplan.imaging import read_image

    folder = Path(folder)
    doc_path = folder / "arteries.json"
    if not doc_path.is_file() or not (folder / "territories.nii.gz").is_file():
        raise InputError(f"{folder}: not an 'ioplan arteries' output (arteries.json, territories)")
    try:
        doc = json.loads(doc_path.read_text())
        entries = {int(f["branch_id"]): f for f in doc["feeders"]}
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{doc_path}: not an 'ioplan arteries' result") from None
    if feeder not in entries:
        known = ", ".join(str(k) for k in list(entries)[:20])
        raise InputError(f"--feeder {feeder} is not a candidate position; candidates: {known}")
    made_from = doc.get("case_labels_sha256")
    if labels_volume is not None and made_from is not None and (
        made_from != labels_fingerprint(labels_volume)
    ):
        raise InputError(
            f"{folder} was made from another case's labels (or this case's labels changed "
            "since): run `ioplan arteries` on this case"
        )
    vol = read_image(folder / "territories.nii.gz")
    diff = labels_grid.mismatch(vol.grid)
    if diff is not None:
        raise InputError(f"{folder}: territories are not on the case grid: {diff}")
    entry = entries[feeder]
    mask = np.isin(np.asarray(vol.array), entry["territory_labels"])
    return mask, entry
