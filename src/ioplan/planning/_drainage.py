"""Percutaneous drainage of a fluid collection: catheter, technique and a safe dependent path.

Issue 22. The collection comes from a label of the case (``fluid_collection`` on the
phantom's ``--collection``) or is found by attenuation: the region of 0-30 HU connected to
a seed point, grown in the median-filtered image (noise), opened by one voxel (thin
bridges into neighbouring fluid are cut), bounded in volume (a larger region has leaked).
Then:

- its volume (mL) and largest diameter (mm, the largest distance between two of its voxel
  centres plus one voxel);
- the catheter size (8-14 Fr) from its content (thin fluid or viscous pus) and largest
  diameter (``planning/data/drainage.toml``: sources named there; the thresholds in mm are
  ioplan's own choices);
- the tip position: the most dependent part of the collection (patient supine: gravity
  points to +y in LPS, posterior), at least 8 mm inside its wall, so that the pigtail's side
  holes lie where the fluid settles; the most dependent point that has a safe path wins;
- the path: the trajectory engine (:func:`~ioplan.planning.candidate_trajectories`: bone,
  lung, bowel, vessels >= 3 mm, gallbladder, ... kept 5 mm away) plus, for a collection
  outside the pleura, the costodiaphragmatic recess (below the lung, under the chest wall)
  which a subphrenic or perihepatic drain must not cross;
- the technique: trocar for a large (>= 50 mm), superficial (<= 50 mm deep) collection with
  a wide window (>= 10 mm clearance), Seldinger otherwise (ioplan's thresholds).
"""

from __future__ import annotations

import html
import json
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ioplan.anatomy import Case, Label, label_from_name
from ioplan.errors import InputError
from ioplan.imaging import (
    Volume,
    atomic_output_folder,
    check_replaceable,
    write_markups_lines,
    write_nifti,
)
from ioplan.planning._trajectories import (
    Trajectory,
    TrajectoryConfig,
    candidate_trajectories,
    forbidden_groups,
)

__all__ = [
    "DRAINAGE_CONTENTS",
    "DRAINAGE_FOLDER_ENTRIES",
    "DrainageConfig",
    "DrainagePlan",
    "catheter_fr",
    "check_drainage_output",
    "check_drainage_request",
    "collection_diameter_mm",
    "drainage_settings",
    "grow_fluid_region",
    "plan_drainage",
    "pleural_recess_mask",
    "write_drainage",
]

#: What ``--content`` accepts (``auto``: the case's record, else from the attenuation).
DRAINAGE_CONTENTS = ("auto", "abscess", "biloma", "ascites", "effusion", "bile", "urine")
#: What an organ's own lumen holds, drained through its label (``auto``, unless dense).
_LUMEN_CONTENT = {"gallbladder": "bile", "collecting_system": "urine"}
#: The avoided groups that are the drained organ itself or its route in: the gallbladder
#: (cholecystostomy, transhepatic or transperitoneal); the renal parenchyma and the
#: collecting system for a nephrostomy, which enters a calyx through the parenchyma
#: (Dagli M, Ramchandani P, Percutaneous nephrostomy: technical aspects and indications,
#: Semin Intervent Radiol 2011;28:424-437). The ureter stays avoided.
_ROUTE_GROUPS = {
    "gallbladder": ("gallbladder",),
    "collecting_system": ("kidney", "collecting system/ureter"),
}
#: What ``ioplan drainage`` writes into its folder.
DRAINAGE_FOLDER_ENTRIES = frozenset(
    {"drainage.json", "drainage.mrk.json", "collection.nii.gz", "report.html", "figures"}
)
_GUIDANCE = ("CT", "US")
#: Labels a drain may target: a collection, the gallbladder (cholecystostomy), the renal
#: collecting system (nephrostomy). A solid organ or a tumour is not drained.
DRAINABLE_LABELS = ("fluid_collection", "gallbladder", "collecting_system")
#: Groups whose distance counts inside the collection too (the rest: on the way to it).
_EVERYWHERE = ("lung/pleura", "pleural recess")


@lru_cache(maxsize=1)
def _settings() -> dict[str, Any]:
    text = resources.files("ioplan.planning").joinpath("data/drainage.toml").read_text()
    return tomllib.loads(text)


def drainage_settings() -> dict[str, Any]:
    """The drainage rules and their sources (``planning/data/drainage.toml``), a copy."""
    return json.loads(json.dumps(_settings()))


@dataclass(frozen=True)
class DrainageConfig:
    """What to drain and how.

    Attributes
    ----------
    collection_label : str, optional
        Name of the collection's label (``fluid_collection``, or any
        :class:`~ioplan.anatomy.Label` name).
    seed_mm : tuple of 3 float, optional
        LPS point inside the collection, to find it by attenuation (0-30 HU). Exactly one
        of ``collection_label`` and ``seed_mm``.
    content : str
        ``auto``, ``abscess``, ``biloma``, ``ascites`` or ``effusion``.
    guidance : str
        ``CT`` (30 deg craniocaudal limit) or ``US`` (any angle).
    safety_mm : float
        Distance kept from forbidden structures (0-30 mm).
    n_directions : int
        Candidate path directions over the sphere.
    """

    collection_label: str | None = None
    seed_mm: tuple[float, float, float] | None = None
    content: str = "auto"
    guidance: str = "CT"
    safety_mm: float = 5.0
    n_directions: int = 600


def check_drainage_request(cfg: DrainageConfig) -> DrainageConfig:
    """Refuse a bad request before any work (one-line :class:`InputError`); normalised copy."""
    if (cfg.collection_label is None) == (cfg.seed_mm is None):
        raise InputError("give exactly one of --collection-label NAME and --seed-mm X,Y,Z")
    label = cfg.collection_label
    if label is not None:
        label = label_from_name(label).name.lower()
        if label not in DRAINABLE_LABELS:
            raise InputError(
                f"--collection-label {label}: not a fluid-filled structure to drain (one of "
                f"{', '.join(DRAINABLE_LABELS)}; or find the collection by --seed-mm)"
            )
    seed = cfg.seed_mm
    if seed is not None:
        s = np.asarray(seed, float).reshape(-1)
        if s.shape != (3,) or not np.all(np.isfinite(s)):
            raise InputError(f"--seed-mm must be 3 finite numbers x,y,z in mm, got {seed}")
        seed = tuple(float(v) for v in s)
    content = str(cfg.content).lower()
    if content not in DRAINAGE_CONTENTS:
        raise InputError(
            f"--content must be one of {', '.join(DRAINAGE_CONTENTS)}; got {content!r}"
        )
    guidance = str(cfg.guidance).upper()
    if guidance not in _GUIDANCE:
        raise InputError(f"--guidance must be CT or US, got {cfg.guidance!r}")
    if not (np.isfinite(cfg.safety_mm) and 0.0 <= cfg.safety_mm <= 30.0):
        raise InputError(f"--safety-mm must be 0-30 mm, got {cfg.safety_mm}")
    if not 50 <= int(cfg.n_directions) <= 20000:
        raise InputError(f"n_directions must be 50-20000, got {cfg.n_directions}")
    return DrainageConfig(label, seed, content, guidance, float(cfg.safety_mm),
                          int(cfg.n_directions))  # fmt: skip


def grow_fluid_region(image: Volume, seed_mm) -> np.ndarray:
    """The fluid region (boolean mask) connected to ``seed_mm``, found by attenuation.

    The image is median filtered (3 x 3 x 3 voxels: the noise falls, an edge stays),
    thresholded to ``[hu] window_hu`` (0-30 HU), opened by one voxel (a bridge one voxel
    wide to other fluid is cut); the 6-connected piece holding the seed (or the nearest
    voxel of the window within 3 mm of it) is kept, dilated by one voxel inside the window
    (what the opening took from its surface) and its enclosed holes filled. Fluid of the
    same attenuation in wide contact (gallbladder, bile ducts, bowel fluid) is not cut:
    such a region is refused only when it exceeds ``max_volume_ml`` or reaches the image
    edge; give the collection's label then.

    Raises
    ------
    ioplan.errors.InputError
        The seed is outside the image or not in fluid; the region touches the image's edge
        or is larger than ``[hu] max_volume_ml`` (it has leaked) or smaller than
        ``min_volume_ml``.
    """
    hu = _settings()["hu"]
    lo, hi = (float(v) for v in hu["window_hu"])
    g = image.grid
    seed = np.asarray(seed_mm, float)
    if not g.contains_lps(seed):
        raise InputError(f"--seed-mm {_fmt(seed)} lies outside the image")
    arr = np.asarray(image.array, np.float32)
    # a 3 x 3 x 3 median: noise down (about 4x), edges kept where they are
    sm = ndimage.median_filter(arr, size=int(hu["median_voxels"]))
    window = (sm >= lo) & (sm <= hi)
    # cut bridges one voxel wide (opening), then give back the voxel the opening took
    # from the surface (reconstruction by one dilation inside the window)
    fluid = ndimage.binary_opening(window)
    idx = np.rint(g.lps_to_index(seed)).astype(int)
    start = _nearest_true(fluid, idx, g.spacing_mm, 3.0)
    if start is None:
        value = float(sm[tuple(np.clip(idx, 0, np.asarray(g.shape) - 1))])
        raise InputError(
            f"no fluid collection at --seed-mm {_fmt(seed)}: {value:.0f} HU there (median "
            f"filtered), outside {lo:g}-{hi:g} HU"
        )
    pieces, _ = ndimage.label(fluid)
    region = ndimage.binary_dilation(pieces == pieces[start], mask=window)
    vox_ml = float(np.prod(g.spacing_mm)) / 1000.0
    vol = float(region.sum()) * vox_ml
    edge = region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any()
    edge = edge or region[:, :, 0].any() or region[:, :, -1].any()
    if edge or vol > hu["max_volume_ml"]:
        raise InputError(
            f"the {lo:g}-{hi:g} HU region at --seed-mm {_fmt(seed)} leaks ({vol:.0f} mL"
            f"{', reaches the image edge' if edge else ''}; limit {hu['max_volume_ml']:g} mL): "
            "give --collection-label, or a seed inside a bounded collection"
        )
    if vol < hu["min_volume_ml"]:
        raise InputError(f"the fluid region at --seed-mm {_fmt(seed)} holds {vol:.2f} mL, "
                         f"under {hu['min_volume_ml']:g} mL")  # fmt: skip
    return ndimage.binary_fill_holes(region)


def _nearest_true(mask: np.ndarray, idx: np.ndarray, spacing, radius_mm: float):
    """Index of ``mask``'s voxel nearest ``idx`` within ``radius_mm`` (or None)."""
    half = np.ceil(radius_mm / np.asarray(spacing)).astype(int)
    lo = np.clip(idx - half, 0, np.asarray(mask.shape))
    hi = np.clip(idx + half + 1, 0, np.asarray(mask.shape))
    win = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    hits = np.argwhere(win)
    if hits.size == 0:
        return None
    d = np.linalg.norm((hits + lo - idx) * np.asarray(spacing), axis=1)
    k = int(np.argmin(d))
    return tuple(int(v) for v in hits[k] + lo) if d[k] <= radius_mm else None


def collection_diameter_mm(mask: np.ndarray, grid) -> float:
    """Largest diameter (mm): the longest distance between two voxel centres plus a voxel.

    Computed over the convex hull's vertices of the voxel centres (the farthest pair of a
    point set lies on its hull).
    """
    pts = grid.index_to_lps(np.argwhere(mask).astype(float))
    if len(pts) < 2:
        return float(np.mean(grid.spacing_mm))
    if len(pts) > 4:
        from scipy.spatial import ConvexHull, QhullError

        try:
            pts = pts[ConvexHull(pts).vertices]
        except QhullError:  # flat or degenerate: all points
            pass
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    return float(np.sqrt(d2.max())) + float(np.mean(grid.spacing_mm))


def catheter_fr(content: str, diameter_mm: float) -> int:
    """Catheter size (Fr) for ``content`` and the collection's largest diameter (mm).

    The first row of ``[catheter] thin_rules`` or ``viscous_rules`` whose bound (mm) the
    diameter does not exceed (``drainage.toml``; sources there).
    """
    cat = _settings()["catheter"]
    if content in cat["viscous"]:
        rules = cat["viscous_rules"]
    elif content in cat["thin"]:
        rules = cat["thin_rules"]
    else:
        raise InputError(
            f"content must be one of {', '.join(DRAINAGE_CONTENTS[1:])}; got {content!r}"
        )
    for bound_mm, fr in rules:
        if diameter_mm <= bound_mm:
            return int(fr)
    return int(rules[-1][1])


def pleural_recess_mask(labels: np.ndarray, grid) -> np.ndarray:
    """The costodiaphragmatic recess: below the lung, under the chest wall (boolean mask).

    In each ``(y, x)`` column holding lung: the voxels within ``[path]
    recess_below_lung_mm`` below the lung's lowest voxel, inside the body and within
    ``recess_max_depth_mm`` of the skin, that are not lung (an axis-aligned grid; none
    otherwise).
    """
    p = _settings()["path"]
    lung = labels == int(Label.LUNG)
    if not lung.any():
        return np.zeros(labels.shape, bool)
    try:
        zc = grid.axis_coordinates_mm()[0]
    except Exception:  # an oblique grid: no recess model
        return np.zeros(labels.shape, bool)
    z3 = zc[:, None, None]
    lowest = np.where(lung, z3, np.inf).min(axis=0)[None]
    body = labels != int(Label.BACKGROUND)
    depth = ndimage.distance_transform_edt(body, sampling=grid.spacing_mm)
    band = (z3 < lowest) & (z3 >= lowest - p["recess_below_lung_mm"])
    return band & body & ~lung & (depth <= p["recess_max_depth_mm"])


@dataclass(frozen=True)
class DrainagePlan:
    """A drainage plan (serialised by :meth:`to_dict`; keys of issue 22)."""

    collection: dict[str, Any]
    catheter_fr: int
    technique: str
    entry_mm: tuple[float, float, float]
    target_mm: tuple[float, float, float]
    path_length_mm: float
    depth_mm: float
    dependent: dict[str, Any]
    avoided: dict[str, float]
    notes: tuple[str, ...]
    trajectory: Trajectory = field(repr=False)
    mask: np.ndarray = field(repr=False)
    guidance: str = "CT"
    sources: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (no patient identifier)."""
        return {
            "schema": "ioplan.drainage/1",
            "collection": self.collection,
            "catheter_fr": self.catheter_fr,
            "technique": self.technique,
            "guidance": self.guidance,
            "entry_mm": [round(v, 2) for v in self.entry_mm],
            "target_mm": [round(v, 2) for v in self.target_mm],
            "path_length_mm": round(self.path_length_mm, 1),
            "depth_mm": round(self.depth_mm, 1),
            "clearance_mm": round(self.trajectory.clearance_mm, 1),
            "angle_deg": round(self.trajectory.angle_deg, 1),
            "dependent": self.dependent,
            "avoided": self.avoided,
            "notes": list(self.notes),
            "sources": self.sources,
        }


def _fmt(p) -> str:
    return ",".join(f"{float(v):g}" for v in p)


def _collection(case: Case, cfg: DrainageConfig) -> tuple[np.ndarray, str]:
    lab = np.asarray(case.labels.array)
    if cfg.collection_label is not None:
        lbl = label_from_name(cfg.collection_label)
        mask = lab == int(lbl)
        if not mask.any():
            raise InputError(f"--collection-label {cfg.collection_label}: no such voxel in "
                             "this case")  # fmt: skip
        pieces, n = ndimage.label(mask)
        if n > 1:  # the largest piece
            sizes = ndimage.sum(mask, pieces, range(1, n + 1))
            mask = pieces == 1 + int(np.argmax(sizes))
        return mask, "label"
    if case.image is None:
        raise InputError("--seed-mm needs the case's image (this case has labels only)")
    if case.image.grid != case.labels.grid:
        raise InputError("--seed-mm: the case's image and labels are on different grids")
    return grow_fluid_region(case.image, cfg.seed_mm), "hu"


def _content(case: Case, cfg: DrainageConfig, mask: np.ndarray, mean_hu: float | None,
             pleural: bool) -> tuple[str, str]:  # fmt: skip
    if cfg.content != "auto":
        return cfg.content, "given"
    recorded = (case.source or {}).get("collection_content")
    lumen = cfg.collection_label if cfg.collection_label in _LUMEN_CONTENT else None
    if recorded in DRAINAGE_CONTENTS[1:] and lumen is None:
        return str(recorded), "case.toml"
    if lumen is not None:  # an organ's lumen: bile or urine, pus when dense
        if mean_hu is not None and mean_hu >= 15.0:
            return "abscess", f"mean {mean_hu:.0f} HU >= 15 HU in the {lumen} (empyema?)"
        what = lumen.replace("_", " ")
        return _LUMEN_CONTENT[lumen], f"the {what}'s content"
    if mean_hu is not None and mean_hu >= 15.0:
        return (
            "abscess",
            f"mean {mean_hu:.0f} HU >= 15 HU (denser than simple fluid; ioplan's rule)",
        )
    return ("effusion" if pleural else "ascites"), "simple-fluid attenuation (ioplan's rule)"


def _targets(mask: np.ndarray, grid, tip_inside_mm: float, n_max: int = 60) -> np.ndarray:
    """Candidate tip points (LPS mm), most dependent (largest y) first, >= 6 mm apart.

    Points at least ``tip_inside_mm`` inside the wall (or 60 % of the collection's largest
    inscribed radius when it is thinner).
    """
    depth = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=grid.spacing_mm)[
        1:-1, 1:-1, 1:-1
    ]
    need = min(tip_inside_mm, 0.6 * float(depth.max()))
    idx = np.argwhere(depth >= need)
    pts = grid.index_to_lps(idx.astype(float))
    order = np.lexsort((-depth[tuple(idx.T)], -pts[:, 1]))  # y desc, then deeper first
    chosen: list[np.ndarray] = []
    for k in order:
        p = pts[k]
        if all(np.linalg.norm(p - q) >= 6.0 for q in chosen):
            chosen.append(p)
            if len(chosen) >= n_max:
                break
    return np.asarray(chosen)


def plan_drainage(case: Case, cfg: DrainageConfig, *, log=None) -> DrainagePlan:
    """Plan a percutaneous drainage of the collection in ``case`` (see the module docstring).

    Parameters
    ----------
    case : Case
        The case (labels; the image for ``seed_mm``).
    cfg : DrainageConfig
        The collection (label or seed), content, guidance, safety distance.
    log : callable, optional
        Called with progress messages.

    Raises
    ------
    ioplan.errors.InputError
        Unknown label, no collection, a leaking region, or no safe path to any part of it.
    """
    cfg = check_drainage_request(cfg)
    say = log or (lambda _m: None)
    s = _settings()
    g = case.labels.grid
    lab = np.asarray(case.labels.array)
    mask, source = _collection(case, cfg)
    vox_ml = float(np.prod(g.spacing_mm)) / 1000.0
    volume_ml = float(mask.sum()) * vox_ml
    diameter = collection_diameter_mm(mask, g)
    img = None
    if case.image is not None and case.image.grid == g:
        img = np.asarray(case.image.array)
    mean_hu = float(img[mask].mean()) if img is not None else None
    shell = ndimage.binary_dilation(mask) & ~mask
    lung_share = float(np.mean(lab[shell] == int(Label.LUNG))) if shell.any() else 0.0
    pleural = lung_share >= 0.2
    content, content_from = _content(case, cfg, mask, mean_hu, pleural)
    fr = catheter_fr(content, diameter)
    say(f"collection {volume_ml:.1f} mL, {diameter:.0f} mm, {content}: {fr} Fr")

    p = s["path"]
    tcfg = TrajectoryConfig(
        safety_mm=cfg.safety_mm,
        n_directions=cfg.n_directions,
        max_ct_angle_deg=30.0 if cfg.guidance == "CT" else float(p["us_max_angle_deg"]),
    )
    dmaps = dict(forbidden_groups(case, tcfg))
    notes = []
    for name in _ROUTE_GROUPS.get(cfg.collection_label or "", ()):
        dmaps.pop(name, None)
    if cfg.collection_label == "collecting_system":
        ureter = lab == int(Label.URETER)
        if ureter.any():
            dmaps["ureter"] = ndimage.distance_transform_edt(
                ~ureter, sampling=g.spacing_mm
            ).astype(np.float32)
        notes.append("nephrostomy: the path enters a calyx through the renal parenchyma "
                     "(not avoided); the ureter and the hilar vessels are")  # fmt: skip
    if not pleural:
        recess = pleural_recess_mask(lab, g) & ~mask
        if recess.any():
            dmaps["pleural recess"] = ndimage.distance_transform_edt(
                ~recess, sampling=g.spacing_mm
            ).astype(np.float32)
            notes.append("extrapleural collection: the path does not cross the "
                         f"costodiaphragmatic recess (up to {p['recess_below_lung_mm']:g} mm "
                         "below the lung, under the chest wall): no transpleural path")  # fmt: skip
    else:
        notes.append(f"pleural collection ({100 * lung_share:.0f} % of its wall is lung): the "
                     "path enters the pleural space and keeps clear of the lung")  # fmt: skip
    # Inside the collection the catheter lies in fluid: the structures forming its wall
    # (diaphragm, bowel wall, vessels, capsule) are what it drains, not what it crosses.
    # Distances count on the way to it; the lung (and the recess) count all the way.
    # The recess is a margin already (40 mm below the lung): it may not be crossed, and
    # needs no safety distance of its own (raw distance 0 inside it, >= a voxel outside).
    walled = {
        name: (dm if name in _EVERYWHERE else np.where(mask, np.float32(1e3), dm))
        for name, dm in dmaps.items()
    }
    if "pleural recess" in walled:
        shift = cfg.safety_mm - 0.5 * min(g.spacing_mm)
        walled["pleural recess"] = walled["pleural recess"] + np.float32(shift)
    targets = _targets(mask, g, float(p["tip_inside_mm"]))
    best, rank, first_reasons = None, -1, ()
    for k, t in enumerate(targets):
        cands = candidate_trajectories(case, tuple(t), tcfg, distance_maps=walled)
        ok = [c for c in cands if c.accepted]
        if ok:
            best = max(ok, key=_drain_score)
            rank = k
            break
        if k == 0 and cands:
            first_reasons = cands[0].reasons
    if best is None:
        why = f" (most dependent point: {first_reasons[0]})" if first_reasons else ""
        raise InputError(f"no safe drainage path to any of {len(targets)} dependent points of "
                         f"the collection{why}")  # fmt: skip
    entry, target = np.asarray(best.entry_mm), np.asarray(best.target_mm)
    depth_mm = _depth_to_collection(mask, g, entry, target)
    path_len = float(np.linalg.norm(target - entry))
    tech = s["technique"]
    trocar = (
        depth_mm <= tech["trocar_max_depth_mm"]
        and diameter >= tech["trocar_min_diameter_mm"]
        and best.clearance_mm >= tech["trocar_min_clearance_mm"]
    )
    technique = "trocar" if trocar else "seldinger"
    ys = g.index_to_lps(np.argwhere(mask).astype(float))[:, 1]
    dependent = {
        "axis": "+y (LPS posterior: down for a supine patient)",
        "target_y_mm": round(float(target[1]), 1),
        "collection_y_range_mm": [round(float(ys.min()), 1), round(float(ys.max()), 1)],
        "height_fraction": round(float((target[1] - ys.min()) / max(np.ptp(ys), 1e-6)), 3),
        "volume_fraction_more_dependent": round(float(np.mean(ys > target[1])), 3),
        "candidate_rank": rank,
        "tip_inside_mm": float(p["tip_inside_mm"]),
    }
    if rank > 0:
        notes.append(f"the {rank} more dependent tip position(s) had no safe path")
    avoided = _clearances(dmaps, g, entry, target, mask)
    cat = s["catheter"]
    if content in cat["viscous"] and diameter < cat["aspiration_note_below_mm"]:
        notes.append(f"abscess under {cat['aspiration_note_below_mm']:g} mm: needle aspiration "
                     "alone may suffice (jaffe2016)")  # fmt: skip
    notes.append(f"content {content} ({content_from})")
    notes.append("catheter and technique thresholds in mm are ioplan's choices "
                 "(drainage.toml); success and complication thresholds: wallace2010")  # fmt: skip
    if cfg.guidance == "US":
        notes.append("ultrasound: any in-plane angle; bone and bowel gas block the window")
    collection = {
        "volume_ml": round(volume_ml, 2),
        "size_mm": round(diameter, 1),
        "extent_mm": [round(v, 1) for v in _extents(mask, g)],
        "content": content,
        "source": source,
        "label": cfg.collection_label,
        "seed_mm": list(cfg.seed_mm) if cfg.seed_mm is not None else None,
        "mean_hu": round(mean_hu, 1) if mean_hu is not None else None,
        "voxels": int(mask.sum()),
        "pleural": pleural,
    }
    return DrainagePlan(
        collection=collection,
        catheter_fr=fr,
        technique=technique,
        entry_mm=tuple(float(v) for v in entry),
        target_mm=tuple(float(v) for v in target),
        path_length_mm=path_len,
        depth_mm=depth_mm,
        dependent=dependent,
        avoided=avoided,
        notes=tuple(notes),
        trajectory=best,
        mask=mask,
        guidance=cfg.guidance,
        sources=dict(s["sources"]),
    )


def _drain_score(t: Trajectory) -> float:
    """Rank of a safe path: short, wide clearance, small angle, imaged (no liver bonus)."""
    return -t.length_mm + 2.0 * min(t.clearance_mm, 20.0) - 0.5 * t.angle_deg - 2.0 * t.unimaged_mm


def _samples(g, entry: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points on the path (the trajectory engine's: from the tip outwards, half-voxel steps)."""
    step = 0.5 * min(g.spacing_mm)
    length = float(np.linalg.norm(target - entry))
    u = (entry - target) / max(length, 1e-9)
    s = np.append(np.arange(0.0, length, step), length)
    pts = (target[None] + s[:, None] * u[None])[::-1]  # entry first
    idx = np.clip(np.rint(g.lps_to_index(pts)).astype(int), 0, np.asarray(g.shape) - 1)
    return pts, idx


def _depth_to_collection(mask, g, entry, target) -> float:
    """Skin entry to the first voxel of the collection along the path (mm)."""
    pts, idx = _samples(g, entry, target)
    inside = np.flatnonzero(mask[tuple(idx.T)])
    k = int(inside[0]) if inside.size else len(pts) - 1
    return float(np.linalg.norm(pts[k] - entry))


def _clearances(dmaps, g, entry, target, mask) -> dict[str, float]:
    """Smallest distance (mm) from the path outside the collection to each avoided group."""
    _, idx = _samples(g, entry, target)
    out = idx[~mask[tuple(idx.T)]]
    if len(out) == 0:
        out = idx[:1]
    return {name: round(float(dm[tuple(out.T)].min()), 1) for name, dm in sorted(dmaps.items())}


def _extents(mask, g) -> list[float]:
    """Extents (mm) along the collection's principal axes, largest first."""
    pts = g.index_to_lps(np.argwhere(mask).astype(float))
    if len(pts) < 3:
        return [float(np.mean(g.spacing_mm))] * 3
    c = pts - pts.mean(0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    proj = c @ vt.T
    ext = np.ptp(proj, axis=0) + float(np.mean(g.spacing_mm))
    return sorted((float(v) for v in ext), reverse=True)


def write_drainage(plan: DrainagePlan, case: Case, folder: str | Path, *,
                   overwrite: bool = False) -> Path:  # fmt: skip
    """Write the drainage folder whole or not at all; return the report's path.

    ``drainage.json``, ``drainage.mrk.json`` (Slicer line: entry, tip),
    ``collection.nii.gz``, ``report.html`` and ``figures/path.png``.
    """
    with atomic_output_folder(
        folder, command="drainage", names=DRAINAGE_FOLDER_ENTRIES, overwrite=overwrite
    ) as tmp:
        figs = tmp / "figures"
        figs.mkdir(parents=True, exist_ok=True)
        g = case.labels.grid
        write_nifti(Volume(plan.mask.astype(np.uint8), g), tmp / "collection.nii.gz")
        write_markups_lines([("drain", plan.entry_mm, plan.target_mm)], tmp / "drainage.mrk.json")
        _figure(plan, case, figs / "path.png")
        doc = plan.to_dict()
        (tmp / "report.html").write_text(_report_html(doc))
        (tmp / "drainage.json").write_text(json.dumps(doc, indent=2) + "\n")
    return Path(folder) / "report.html"


def check_drainage_output(folder: str | Path, *, overwrite: bool) -> Path:
    """Refuse an output folder ``ioplan drainage`` may not write (before any work)."""
    return check_replaceable(folder, command="drainage", names=DRAINAGE_FOLDER_ENTRIES,
                             overwrite=overwrite)  # fmt: skip


def _figure(plan: DrainagePlan, case: Case, path: Path) -> None:
    """The path over the image: the oblique plane holding the path and the axial slice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = case.labels.grid
    vol = case.image if case.image is not None and case.image.grid == g else case.labels
    arr = np.asarray(vol.array, np.float32)
    entry, target = np.asarray(plan.entry_mm), np.asarray(plan.target_mm)
    u = (target - entry) / max(np.linalg.norm(target - entry), 1e-9)
    v = np.cross(u, [0.0, 0.0, 1.0])
    if np.linalg.norm(v) < 0.3:
        v = np.cross(u, [1.0, 0.0, 0.0])
    v /= np.linalg.norm(v)
    step = min(g.spacing_mm)
    length = float(np.linalg.norm(target - entry))
    a = np.arange(-20.0, length + 40.0, step)
    b = np.arange(-70.0, 70.0 + step, step)
    pts = entry[None, None] + a[None, :, None] * u + b[:, None, None] * v
    idx = g.lps_to_index(pts.reshape(-1, 3)).T
    plane = ndimage.map_coordinates(arr, idx, order=1, cval=-1000.0).reshape(len(b), len(a))
    inside = ndimage.map_coordinates(plan.mask.astype(np.float32), idx, order=1, cval=0.0)
    inside = inside.reshape(len(b), len(a))
    ct = case.image is not None and vol is case.image
    kw = {"cmap": "gray", "vmin": -160, "vmax": 240} if ct else {"cmap": "tab20"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    ext = (a[0], a[-1], b[-1], b[0])
    axes[0].imshow(plane, extent=ext, **kw)
    if inside.max() > 0.5:
        axes[0].contour(a, b, inside, levels=[0.5], colors="cyan", linewidths=1.0)
    axes[0].plot([0, length], [0, 0], color="yellow", lw=2)
    axes[0].plot([length], [0], "o", color="red")
    axes[0].set_title("plane of the path (mm from the skin entry)")
    k = int(np.clip(np.rint(g.lps_to_index(target))[0], 0, g.shape[0] - 1))
    axes[1].imshow(arr[k], **kw)
    if plan.mask[k].any():
        axes[1].contour(plan.mask[k].astype(float), levels=[0.5], colors="cyan", linewidths=1.0)
    ei, ti = g.lps_to_index(entry), g.lps_to_index(target)
    axes[1].plot([ei[2], ti[2]], [ei[1], ti[1]], color="yellow", lw=2)
    axes[1].plot([ti[2]], [ti[1]], "o", color="red")
    axes[1].set_title(f"axial slice at the tip (z = {target[2]:.0f} mm; path projected)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"drainage: {plan.catheter_fr} Fr {plan.technique}, "
                 f"{plan.path_length_mm:.0f} mm path")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _report_html(doc: dict[str, Any]) -> str:
    c = doc["collection"]
    rows = [
        ("collection", f"{c['volume_ml']:.1f} mL, largest diameter {c['size_mm']:.0f} mm, "
                       f"{c['content']} (from {c['source']})"),
        ("catheter", f"{doc['catheter_fr']} Fr, {doc['technique']} technique"),
        ("entry (LPS mm)", _fmt(doc["entry_mm"])),
        ("tip (LPS mm)", _fmt(doc["target_mm"])),
        ("path", f"{doc['path_length_mm']:.0f} mm, {doc['depth_mm']:.0f} mm to the collection, "
                 f"{doc['angle_deg']:.0f} deg out of the axial plane"),
        ("dependent part", f"{100 * doc['dependent']['volume_fraction_more_dependent']:.0f} % "
                           "of the collection lies more posterior than the tip"),
        ("clearance (mm)", ", ".join(f"{k} {v:g}" for k, v in doc["avoided"].items())),
    ]  # fmt: skip
    table = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    notes = "\n".join(f"<li>{html.escape(n)}</li>" for n in doc["notes"])
    srcs = "\n".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in doc["sources"].items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ioplan drainage</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "th{text-align:left;padding-right:1em}</style></head><body>"
        "<h1>Percutaneous drainage plan</h1>"
        f"<table>{table}</table>"
        "<p><img src='figures/path.png' alt='the drainage path over the image' "
        "style='max-width:100%'></p>"
        f"<h2>Notes</h2><ul>{notes}</ul><h2>Sources</h2><ul>{srcs}</ul>"
        "<p>Planning aid for research; not for clinical use.</p></body></html>\n"
    )
